//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Each route module describes its own operations next to its handlers (`#[utoipa::path]`) and
//! exposes them as a `Doc`; this module merges them, adds the security schemes, the tags and the
//! shared error answers, and refines the schemas that the services' types can only describe
//! loosely (see [`refine`]).

mod refine;
pub(crate) mod schemas;
pub(crate) mod services;

use std::sync::LazyLock;

use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// The OpenAPI document, as JSON.
pub fn openapi_document() -> String {
    DOCUMENT.clone()
}

/// The OpenAPI document, as a JSON value.
fn document() -> Value {
    let (doc, missed) = build();
    if !missed.is_empty() {
        tracing::warn!(?missed, "some OpenAPI refinements found no target");
    }
    doc
}

/// The document, and the refinements that found no target (a test keeps that list empty).
fn build() -> (Value, Vec<String>) {
    let mut api = ApiDoc::openapi();
    api.merge(crate::ops::Doc::openapi());
    api.merge(crate::outbound::Doc::openapi());
    api.merge(crate::oauth::Doc::openapi());
    api.merge(crate::wellknown::Doc::openapi());
    api.merge(crate::authorize::Doc::openapi());
    api.merge(crate::account::Doc::openapi());
    api.merge(crate::sso::Doc::openapi());
    api.merge(crate::connect::Doc::openapi());
    api.merge(crate::console::Doc::openapi());
    api.merge(crate::mgmt::doc());
    match serde_json::to_value(&api) {
        Ok(mut doc) => {
            let missed = refine::apply(&mut doc);
            (doc, missed)
        }
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document cannot be serialized");
            (Value::Object(serde_json::Map::new()), vec![e.to_string()])
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "Portcullis is an access control plane for MCP servers. It keeps users' \
third-party OAuth tokens and API keys in a vault, and decides every request for one from the \
caller's inbound token (the JWT the MCP server received) and the app's access control policies.\n\n\
- `/v1/outbound/...` is what MCP servers call, with the user's inbound token as bearer: fetch the \
user's token for an app, or get a link for the user to connect it.\n\
- `/oauth2/token` offers the same decision as RFC 8693 token exchange, for OAuth client libraries.\n\
- `/v1/mgmt/...` is the management API (apps, policies, connections, the directory, trusted \
issuers, clients, keys, the audit log), authenticated with an admin key.\n\n\
Every error but those of `/oauth2/token` has one shape: `{\"error\": \"<code>\", \"message\": \
\"...\", \"details\": ...}`, where `error` is a stable code to branch on.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "Outbound tokens", description = "What MCP servers call with the user's inbound token: fetch the user's credential for a third-party app, and connect an app through the provider's consent flow."),
        (name = "Token exchange", description = "RFC 8693 token exchange: the same decision as the token endpoint, for confidential OAuth clients."),
        (name = "Apps", description = "Outbound apps: the third-party providers (OAuth or API key) whose credentials Portcullis keeps."),
        (name = "Policies", description = "The access control policies of an app, which decide who may fetch which scopes."),
        (name = "Policy as code", description = "A desired state of roles, tenants, users, apps and policies, checked as a whole and applied in one transaction (what `portcullis apply -f` sends)."),
        (name = "Connections", description = "Stored credentials: users' and tenants' connections, API keys, imports, refresh and revocation."),
        (name = "Users", description = "The directory's users: their roles and tenant memberships feed the policies on the very next request."),
        (name = "Roles", description = "The roles users may hold."),
        (name = "Tenants", description = "Tenants (organizations): a user's tenant roles apply to requests naming the tenant, and a tenant can share one connection."),
        (name = "Single sign-on", description = "Upstream OpenID Connect providers (Entra ID, Okta, Google...) users sign in with, and the rules mapping their claims (groups, roles) to roles and tenants at every sign-in."),
        (name = "Issuers", description = "Trusted issuers of inbound tokens: their keys (JWKS), audiences and claim mapping."),
        (name = "Clients", description = "Confidential OAuth clients allowed to use token exchange."),
        (name = "Resources", description = "Resource servers (MCP servers) Portcullis issues tokens for: their canonical URIs, their scopes, their RFC 9728 metadata."),
        (name = "Admin keys", description = "The keys that authenticate management calls."),
        (name = "Keys", description = "The data keys that seal secrets at rest, Portcullis's token-signing keys, and their rotation."),
        (name = "Authorization server", description = "What Portcullis publishes as an authorization server: its metadata (RFC 8414) and the public keys of the tokens it signs."),
        (name = "Audit", description = "The audit log of every decision, and the decision simulator."),
        (name = "Console", description = "The admin console: its page, script and style sheet, and the session an admin key is exchanged for."),
        (name = "Operations", description = "Liveness, readiness, metrics, and this document."),
    ),
    components(schemas(
        schemas::ErrorBody,
        schemas::PolicyDocument,
        schemas::PolicyProblem,
        schemas::ScopeDef,
        schemas::AppType,
        schemas::AppSettings,
        schemas::TokenEndpointAuthMethod,
        schemas::OnDeny,
        schemas::DenialDetail,
        schemas::TenantMembership,
        schemas::Explanation,
        schemas::Scopes,
        schemas::AllowedScopes,
        schemas::AuditOutcome,
        services::Identity,
        services::AuditKind,
    )),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

/// The three ways callers authenticate.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "adminKey",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin key (`pca_...`), as `Authorization: Bearer <key>`. The first key is \
created at the first start (printed once, or preset with PORTCULLIS_BOOTSTRAP_ADMIN_KEY); more are \
created under `/v1/mgmt/admin-keys`. A key holds scopes: `read` (every `GET`; no secret is ever readable), \
`apps`, `policies` (and the simulator), `vault` (connections, API keys, token import, revoke, refresh), \
`directory` (users, roles, tenants, identity links), `issuers`, `clients` (OAuth clients and resource \
servers), `audit`, `keys` (data-key and signing-key \
rotation), and `admin` (everything, and managing admin keys; the bootstrap key's scope). Each \
operation's `security` names the scopes that allow it; reading an area needs `read` or that area's \
own scope. The admin console (`/console`) exchanges a key for a session cookie (`POST /console/session`) that management calls accept instead, with its CSRF token in `X-CSRF-Token` on every call that is not a `GET` (otherwise 403 `csrf_mismatch`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "inboundToken",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The user's inbound token: a JWT from a trusted issuer (see \
`/v1/mgmt/issuers`), with an accepted audience and the fetch scope (`outbound.token.fetch` by \
default). MCP servers pass on the token their client presented.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "accessToken",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token Portcullis issued (an RFC 9068 JWT, `typ` `at+jwt`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "registrationToken",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The initial access token, when the server requires one to register a client \
(`registration.initial_access_token`, or PORTCULLIS_REGISTRATION_TOKEN).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "clientBasic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A confidential client's id and secret (RFC 6749 §2.3.1, \
`client_secret_basic`), registered under `/v1/mgmt/clients`. The client may instead send \
`client_id` and `client_secret` in the form (`client_secret_post`), not both.",
                    ))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_refinement_finds_its_target() {
        let (_, missed) = super::build();
        assert!(
            missed.is_empty(),
            "refinements without a target: {missed:?}"
        );
    }
}
