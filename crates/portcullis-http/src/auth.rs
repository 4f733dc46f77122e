//! Who is calling: the admin behind a management call, or the bearer token of an outbound call.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use portcullis_core::AdminIdentity;

use crate::AppState;
use crate::error::ApiError;

/// The `Authorization: Bearer` credential of a request, if any. Any other scheme, a malformed
/// header, or several Authorization headers count as no credential.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The bearer token of an outbound call (verified by the service, which also audits a missing one).
#[derive(Debug, Clone)]
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(bearer(parts).map(str::to_owned)))
    }
}

/// An authenticated admin (every management handler takes one first).
#[derive(Debug, Clone)]
pub struct Admin(pub AdminIdentity);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let identity = state.core.authenticate_admin(bearer(parts)).await?;
        Ok(Self(identity))
    }
}
