//! The management API, under `/v1/mgmt`. Every handler's first extractor is [`Admin`]: no admin
//! key, no call.

mod access;
mod apply;
mod apps;
mod audit;
mod directory;
mod grants;
mod resources;
mod sso;
mod vault;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(apps::routes())
        .merge(vault::routes())
        .merge(directory::routes())
        .merge(access::routes())
        .merge(audit::routes())
        .merge(apply::routes())
        .merge(resources::routes())
        .merge(grants::routes())
        .merge(sso::routes())
}

/// The management API's part of the OpenAPI document.
pub(crate) fn doc() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut api = apps::Doc::openapi();
    api.merge(vault::Doc::openapi());
    api.merge(directory::Doc::openapi());
    api.merge(access::Doc::openapi());
    api.merge(audit::Doc::openapi());
    api.merge(apply::Doc::openapi());
    api.merge(resources::Doc::openapi());
    api.merge(grants::Doc::openapi());
    api.merge(sso::Doc::openapi());
    api
}

/// Records a management change by `admin` (after it succeeded): `before` and `after` are views
/// the API shows, so no secret is recorded.
pub(crate) async fn record<B: serde::Serialize, A: serde::Serialize>(
    s: &AppState,
    admin: &portcullis_core::AdminIdentity,
    action: &str,
    target: String,
    before: Option<B>,
    after: Option<A>,
) {
    s.core
        .record_change(
            admin,
            action,
            target,
            portcullis_core::changes::before_after(before, after),
        )
        .await;
}

/// A 201 with a JSON body.
pub(crate) fn created<T: serde::Serialize>(v: T) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

/// A 204.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
