//! The OpenAPI descriptions of the services' wire types: what `portcullis-core` reads and
//! answers, described here, in the HTTP crate, where the document is made. Core's types carry
//! serde only. These mirrors are never built: the integration tests check real answers against
//! them and `scripts/api-check` (schemathesis) checks that the server accepts exactly the requests
//! they describe, so a mirror cannot drift from its type unnoticed.

#![expect(
    dead_code,
    reason = "documentation-only types: they describe wire shapes for the OpenAPI document and are never built"
)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

/// What an admin key may do. Each management operation needs one scope; `admin` holds them all
/// and is the only one that manages admin keys. Reading an area (a `GET`) needs `read` or that
/// area's own scope.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum AdminScope {
    /// Every `GET` of the management API (no secret is ever readable).
    Read,
    /// Outbound apps: create, change, delete.
    Apps,
    /// Access control policies: create, change, delete; the simulator.
    Policies,
    /// Connections: API keys, token import, admin connect links, revoke, force refresh.
    Vault,
    /// Users, roles, tenants and identity links.
    Directory,
    /// Trusted inbound issuers.
    Issuers,
    /// OAuth clients and their secrets.
    Clients,
    /// The audit log and its export.
    Audit,
    /// Data-key rotation.
    Keys,
    /// Everything, and managing admin keys.
    Admin,
}

/// An admin key's metadata (never its secret).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdminKeyInfo {
    /// The key's id (not the key itself).
    id: String,
    /// What it is for.
    name: String,
    /// When the key was created.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the key stops working (never, when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// What the key may do.
    scopes: Vec<AdminScope>,
}

/// A key just created: the secret is in this answer and nowhere else, ever.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewAdminKey {
    /// Its metadata.
    #[serde(flatten)]
    info: AdminKeyInfo,
    /// The key. Store it now: only its hash is kept.
    #[schema(value_type = String)]
    key: String,
}

/// A request for a new admin key.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AdminKeyInput {
    /// What the key is for, 1 to 128 characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    name: String,
    /// What the key may do: one or more scopes (give each key the least it needs).
    #[schema(min_items = 1)]
    scopes: Vec<AdminScope>,
    /// When it stops working (RFC 3339); never when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
}

/// The desired state (`POST /v1/mgmt/apply`): what `portcullis apply -f` sends.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApplyInput {
    /// Check and plan only; change nothing.
    #[serde(default)]
    dry_run: bool,
    /// Roles, each as `POST /v1/mgmt/roles` takes it.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    roles: Vec<Value>,
    /// Tenants, each as `POST /v1/mgmt/tenants` takes it.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    tenants: Vec<Value>,
    /// Users, each as `POST /v1/mgmt/users` takes it; the fields an entry omits keep their stored
    /// values.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    users: Vec<Value>,
    /// Apps, each as `POST /v1/mgmt/outbound-apps` takes it, with its `policies` (each as
    /// `POST .../policies` takes it).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    apps: Vec<Value>,
}

/// One change of a plan.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlannedChange {
    /// `create`, `update` or `delete`.
    action: String,
    /// `role`, `tenant`, `user`, `app` or `policy`.
    kind: String,
    /// What: the id, or `app/policy name` for a policy.
    name: String,
    /// The fields that change (updates).
    fields: Vec<String>,
}

/// What an apply did (or, in a dry run, would do).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplyOutcome {
    /// Whether this was a dry run.
    dry_run: bool,
    /// Whether anything was written.
    applied: bool,
    /// The changes, in the order they are written; empty when the server already matches.
    changes: Vec<PlannedChange>,
}

/// One problem of a desired state.
#[derive(ToSchema)]
pub(crate) struct ApplyProblem {
    /// Where: `apps[1].policies[0].conditions[0].operator`, `users[2]`, ...
    path: String,
    /// A stable code (`invalid_body`, `invalid_policy`, `duplicate`, ...).
    code: String,
    /// What is wrong.
    message: String,
}

/// An outbound app, as written by the management API (POST and PUT).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AppInput {
    /// The app's id: a slug, immutable, used in every URL (required on create; on update, it must
    /// match the path if given).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    id: String,
    /// The name shown to administrators and on consent pages, 1 to 128 characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    name: String,
    /// What the app is for, at most 1,024 characters.
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    description: Option<String>,
    /// How the app hands out credentials: `oauth` (users connect through the provider's consent
    /// flow) or `apiKey` (an admin stores keys).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: String,
    /// The OAuth client id registered with the provider (OAuth apps).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 512)]
    client_id: Option<String>,
    /// The OAuth client secret registered with the provider. It is write-only: sealed at rest,
    /// never shown; on update, leaving it out keeps the stored one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    client_secret: Option<String>,
    /// The provider's authorization endpoint, where users consent (OAuth apps).
    #[serde(default)]
    #[schema(
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    authorization_url: Option<String>,
    /// The provider's token endpoint, for the code exchange and refreshes (OAuth apps).
    #[serde(default)]
    #[schema(
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    token_url: Option<String>,
    /// The provider's token revocation endpoint (RFC 7009), called when a connection is revoked.
    #[serde(default)]
    #[schema(
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    revocation_url: Option<String>,
    /// An OpenID Connect userinfo endpoint, read once at connect time for the user's id at the
    /// provider.
    #[serde(default)]
    #[schema(
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    userinfo_url: Option<String>,
    /// The scopes the app offers, with descriptions; policies may only name these.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    scopes: Vec<Value>,
    /// The scopes asked for when a request names none (at most 256).
    #[serde(default)]
    #[schema(max_items = 256)]
    default_scopes: Vec<String>,
    /// Whether the authorization request uses PKCE with S256 (default true).
    #[serde(default)]
    pkce: Option<bool>,
    /// Extra parameters added to the authorization request (e.g. `access_type=offline`); the OAuth
    /// parameters Portcullis sets itself cannot be overridden.
    #[serde(default)]
    authorization_params: BTreeMap<String, String>,
    /// Whether the provider honours a narrower `scope` on refresh (RFC 6749 §6), which lets
    /// Portcullis hand out tokens downscoped to what the policies allow.
    #[serde(default)]
    narrow_scopes_on_refresh: bool,
    /// How Portcullis authenticates at the provider's token endpoint: `client_secret_basic` (the
    /// default), `client_secret_post`, or `none` (a public client, with PKCE).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    token_endpoint_auth_method: Option<String>,
    /// What a request the policies do not allow gets: `forbid` (the default: a 403 `access_denied`)
    /// or `reconsent` (a 403 `consent_required` with a link asking the provider for only what the
    /// policies allow).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    on_deny: Option<String>,
    /// How much of a denial's explanation callers see: `full` (every condition with its expected
    /// value and what was seen), `policies` (the default: the policies and each failing
    /// condition's source, claim and operator, without values) or `reason` (the reason and the
    /// scopes refused). The simulator always shows everything.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    denial_detail: Option<String>,
    /// The provider's issuer identifier (RFC 9207): when set, the provider's redirect back must
    /// carry it as `iss` (OAuth apps).
    #[serde(default)]
    issuer: Option<String>,
    /// Keep the shared callback `/v1/outbound/callback` as the `redirect_uri` instead of the
    /// app's own `/v1/outbound/callback/{appId}` (default false; apps registered before per-app
    /// callbacks keep the shared one until this is set to false). Register the `redirect_uri`
    /// the app uses with the provider.
    #[serde(default)]
    shared_callback: Option<bool>,
}

/// An outbound app, as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppView {
    /// The app's id (a slug).
    id: String,
    /// The app's name.
    name: String,
    /// What the app is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// How the app hands out credentials: `oauth` or `apiKey`.
    #[serde(rename = "type")]
    kind: String,
    /// Everything else.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    settings: Value,
    /// Whether a client secret is stored (it is never shown).
    has_client_secret: bool,
    /// Bumped by every change to the app or its policies.
    revision: i64,
    /// When the app was registered.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the app was last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A policy as the management API shows it: the document with its id and times.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyView {
    /// The policy's id.
    id: String,
    /// The app the policy belongs to.
    app_id: String,
    /// The document (`name`, `description`, `conditions`, `scopes`, `mode`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    document: Value,
    /// When the policy was created.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the policy was last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A user as written by the management API.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserInput {
    /// The user's id in the directory (required on create).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    id: String,
    /// The identities that are this user: a token whose `iss` and `sub` match one of these is
    /// this user (at most 16; each identity belongs to one user).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    #[schema(max_items = 16)]
    identities: Vec<Value>,
    /// The user's email address, unique (case-insensitive).
    #[serde(default)]
    #[schema(
        max_length = 254,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]+@[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    email: Option<String>,
    /// The user's display name, at most 256 characters.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// The roles the user holds everywhere (each one must exist); policies' `userRoles` conditions
    /// read them.
    #[serde(default)]
    #[schema(max_items = 256)]
    roles: Vec<String>,
    /// The tenants the user belongs to, with the roles the user holds in each (each tenant and role
    /// must exist).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    #[schema(max_items = 256)]
    tenants: Vec<Value>,
    /// Free-form attributes: a JSON object of at most 16 KiB.
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: Value,
    /// Whether the user is disabled: a disabled user gets no outbound token.
    #[serde(default)]
    disabled: bool,
}

/// A user as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserView {
    /// The user's id in the directory.
    id: String,
    /// The identities that are this user (issuer and subject).
    #[schema(value_type = Vec<Object>)]
    identities: Vec<Value>,
    /// The user's email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// The user's display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The roles the user holds everywhere.
    roles: Vec<String>,
    /// The tenants the user belongs to, with the user's roles in each.
    #[schema(value_type = Vec<Object>)]
    tenants: Vec<Value>,
    /// Free-form attributes.
    #[schema(value_type = Object)]
    attributes: Value,
    /// Whether the user is disabled (a disabled user gets no outbound token).
    disabled: bool,
    /// When the user was added.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the user was last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A role as written and shown by the management API.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RoleInput {
    /// The role's name (its id; required on create).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    name: String,
    /// What the role is for, at most 1,024 characters.
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    description: Option<String>,
}

/// A role as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoleView {
    /// The role's name (its id).
    name: String,
    /// What the role is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// When the role was added.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the role was last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A tenant as written by the management API.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TenantInput {
    /// The tenant's id: a slug, immutable (required on create).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    id: String,
    /// The tenant's name, 1 to 128 characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    name: String,
    /// Free-form attributes: a JSON object of at most 16 KiB.
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: Value,
}

/// A tenant as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TenantView {
    /// The tenant's id (a slug).
    id: String,
    /// The tenant's name.
    name: String,
    /// Free-form attributes.
    #[schema(value_type = Object)]
    attributes: Value,
    /// When the tenant was added.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the tenant was last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A trusted issuer as written by the management API.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IssuerInput {
    /// The exact `iss` of its tokens.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    issuer: String,
    /// The URL of the issuer's JSON Web Key Set.
    #[serde(default)]
    #[schema(
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    jwks_url: Option<String>,
    /// Its OpenID Connect discovery URL (used when `jwksUrl` is absent).
    #[serde(default)]
    #[schema(
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    discovery_url: Option<String>,
    /// Accepted audiences (at least one).
    #[schema(min_items = 1)]
    audiences: Vec<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA).
    #[serde(default)]
    #[schema(min_items = 1)]
    algorithms: Option<Vec<String>>,
    /// Claim with the user's roles (dotted path).
    #[serde(default)]
    #[schema(
        max_length = 256,
        pattern = r"^(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+(?:\.(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+){0,15}$"
    )]
    roles_claim: Option<String>,
    /// Claim with the user's tenant(s).
    #[serde(default)]
    #[schema(
        max_length = 256,
        pattern = r"^(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+(?:\.(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+){0,15}$"
    )]
    tenant_claim: Option<String>,
    /// Leeway on `exp`/`nbf`/`iat` (default 60, at most 600).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 600)]
    clock_skew_seconds: Option<u32>,
    /// The `typ` header its tokens must carry, such as `at+jwt` (RFC 9068 access tokens):
    /// tokens without it (an ID token, say) are refused. Absent: any `typ`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[!-~]+$")]
    required_typ: Option<String>,
}

/// A trusted issuer as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IssuerView {
    /// The issuer's id: `config:<n>` for the configuration file's issuers, a generated id for those
    /// added through the API.
    id: String,
    /// The exact `iss` of the issuer's tokens.
    issuer: String,
    /// The URL of the issuer's JSON Web Key Set.
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_url: Option<String>,
    /// The issuer's OpenID Connect discovery URL (used when there is no JWKS URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    discovery_url: Option<String>,
    /// The audiences accepted: a token must name one of them in `aud`.
    audiences: Vec<String>,
    /// The signature algorithms accepted.
    algorithms: Vec<String>,
    /// The claim holding the user's roles (a dotted path), for users who are not in the directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    roles_claim: Option<String>,
    /// The claim holding the user's tenant or tenants (a dotted path).
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_claim: Option<String>,
    /// The leeway on `exp`, `nbf` and `iat`, in seconds.
    clock_skew_seconds: u32,
    /// The `typ` header its tokens must carry, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    required_typ: Option<String>,
    /// `api` (stored) or `config` (from the configuration file, read-only).
    source: String,
}

/// An OAuth client as written by the management API.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ClientInput {
    /// The `client_id` (a slug; generated when absent on create).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    id: Option<String>,
    /// The client's name, 1 to 128 characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    name: String,
    /// The outbound apps it may fetch tokens for by token exchange (all when absent).
    #[serde(default)]
    allowed_apps: Option<Vec<String>>,
    /// The grant types it may use, each once. Default: `authorization_code` and `refresh_token`
    /// when it has redirect URIs, token exchange otherwise. `authorization_code` needs a redirect
    /// URI; a public client cannot use `client_credentials`, token exchange or jwt-bearer.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 5)]
    grant_types: Option<Vec<ClientGrantType>>,
    /// Its redirect URIs (at most 20), matched exactly (a loopback `http` URI on any port): each
    /// absolute, in canonical form, without a fragment, and `https`, `http` on 127.0.0.1,
    /// `[::1]` or `localhost`, or a reverse-domain private-use scheme (`com.example.app:/cb`).
    #[serde(default)]
    #[schema(max_items = 20)]
    redirect_uris: Option<Vec<String>>,
    /// How it authenticates: `client_secret_basic` (the default), `client_secret_post`, or
    /// `none` (a public client: no secret, PKCE only). Fixed at registration.
    #[serde(default)]
    token_endpoint_auth_method: Option<ClientAuthMethodName>,
}

/// A grant type a client may be given.
#[derive(ToSchema)]
pub(crate) enum ClientGrantType {
    /// The authorization code flow, with PKCE.
    #[schema(rename = "authorization_code")]
    AuthorizationCode,
    /// Refresh tokens.
    #[schema(rename = "refresh_token")]
    RefreshToken,
    /// Client credentials (confidential clients).
    #[schema(rename = "client_credentials")]
    ClientCredentials,
    /// RFC 8693 token exchange (confidential clients).
    #[schema(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
    /// ID-JAG assertions from a trusted enterprise issuer (confidential clients).
    #[schema(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
}

/// How a client authenticates at the token endpoint.
#[derive(ToSchema)]
pub(crate) enum ClientAuthMethodName {
    /// HTTP Basic.
    #[schema(rename = "client_secret_basic")]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form.
    #[schema(rename = "client_secret_post")]
    ClientSecretPost,
    /// A public client.
    #[schema(rename = "none")]
    None,
}

/// An OAuth client as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientView {
    /// The client's `client_id`.
    id: String,
    /// The client's name.
    name: String,
    /// Apps it may fetch tokens for (all when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_apps: Option<Vec<String>>,
    /// The grant types the client may use.
    grant_types: Vec<ClientGrantType>,
    /// Its redirect URIs.
    redirect_uris: Vec<String>,
    /// How it authenticates: `client_secret_basic`, `client_secret_post`, or `none` (public).
    token_endpoint_auth_method: ClientAuthMethodName,
    /// When the client was registered.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the client was last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A client just registered: a confidential client's secret is in this answer and nowhere else,
/// ever.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewClient {
    /// The client.
    #[serde(flatten)]
    client: ClientView,
    /// The client secret (confidential clients; a public client has none). Store it now: only
    /// its hash is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    client_secret: Option<String>,
}

/// A "what would this get?" question.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SimulateInput {
    /// An inbound token to evaluate (verified like a real request, scope included).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    token: Option<String>,
    /// Or a subject described directly.
    #[serde(default)]
    subject: Option<SimulatedSubject>,
    /// The outbound app the request is for.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    app_id: String,
    /// The scopes asked for (empty: the app's default scopes).
    #[serde(default)]
    scopes: Vec<String>,
    /// The tenant the request names, if any (the user's roles in that tenant apply).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    tenant_id: Option<String>,
}

/// A subject for the simulator.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SimulatedSubject {
    /// The user's id: their directory roles apply unless `roles` is given.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    user_id: Option<String>,
    /// The roles to evaluate with, instead of the user's roles in the directory.
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// The inbound token's claims, for `jwtClaims` conditions.
    #[serde(default)]
    #[schema(value_type = Object)]
    claims: Value,
}

/// The simulator's answer.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SimulateOutput {
    /// The user the decision was evaluated for.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// The roles the decision was evaluated with.
    roles: Vec<String>,
    /// Where the roles came from: `directory`, `token` or `given`.
    roles_source: String,
    /// The scopes evaluated (the app's default scopes when the question named none).
    requested_scopes: Vec<String>,
    /// The decision and its explanation.
    #[schema(value_type = Object)]
    decision: Value,
}

/// A replay question: a draft of the app's whole policy set and a window.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplayInput {
    /// The app's whole policy set as it would be after the change, as policy documents (names
    /// unique). An empty list replays the app with no policy (open).
    #[schema(max_items = 1000)]
    policies: Vec<crate::openapi::schemas::PolicyDocument>,
    /// The start of the window (default: seven days before `until`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// The end of the window, exclusive (default: now).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// How many users each list shows (default 20).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// What a draft policy set would change over the window.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayOutput {
    /// The app.
    app_id: String,
    /// The window replayed.
    #[schema(value_type = String, format = DateTime)]
    since: String,
    /// Its end, exclusive.
    #[schema(value_type = String, format = DateTime)]
    until: String,
    /// The decisions re-decided (those recorded with their inputs).
    #[schema(minimum = 0)]
    replayed: u64,
    /// Those whose outcome or scopes would differ.
    #[schema(minimum = 0)]
    changed: u64,
    /// Allowed then, denied with the draft.
    #[schema(minimum = 0)]
    newly_denied: u64,
    /// Denied then, allowed with the draft.
    #[schema(minimum = 0)]
    newly_allowed: u64,
    /// Decisions whose claims were cut for size when recorded: their replay may be inexact.
    #[schema(minimum = 0)]
    inexact: u64,
    /// Whether the whole window was replayed (false past 10,000,000 decisions).
    complete: bool,
    /// The users who would lose scopes they got.
    losing: ReplayImpact,
    /// The users who would get scopes they did not.
    gaining: ReplayImpact,
    /// Per scope, how many users would lose and gain it.
    scopes: std::collections::BTreeMap<String, ReplayScopeImpact>,
}

/// Users affected one way by a draft.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayImpact {
    /// How many users.
    #[schema(minimum = 0)]
    users: u64,
    /// The first of them (`limit`): the most affected decisions first, then by id.
    first: Vec<ReplayUserImpact>,
}

/// One user's change under a draft.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayUserImpact {
    /// The user.
    user_id: String,
    /// The scopes they would lose (or gain); empty when a denial loses a request that asked
    /// for none.
    scopes: Vec<String>,
    /// How many of their recorded decisions would change that way.
    #[schema(minimum = 0)]
    decisions: u64,
}

/// How many users would lose and gain one scope.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayScopeImpact {
    /// Users who would lose it.
    #[schema(minimum = 0)]
    losing: u64,
    /// Users who would gain it.
    #[schema(minimum = 0)]
    gaining: u64,
}

/// A data key, as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DataKeyView {
    /// Its id (written in every ciphertext it seals).
    id: u32,
    /// Whether new secrets are sealed with it.
    active: bool,
    /// The master key that wraps it.
    master_key_id: String,
    /// When the key was created.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
}

/// The state of the background re-encryption.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReencryptionStatus {
    /// `running`, `done` or `failed`.
    state: String,
    /// The data key secrets are moved to.
    target_key_id: u32,
    /// What was re-sealed so far (when done).
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<ReencryptReport>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    started_at: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    finished_at: Option<String>,
}

/// The key ring's state.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyStatus {
    /// The key new secrets are sealed with.
    active_key_id: u32,
    /// Every data key.
    keys: Vec<DataKeyView>,
    /// The last re-encryption started on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    reencryption: Option<ReencryptionStatus>,
}

/// A scope a resource server offers.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourceScope {
    /// The scope (RFC 6749 §3.3: printable ASCII without spaces, quotes or backslashes), unique
    /// on the resource.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\u0021\u0023-\u005b\u005d-\u007e]+$",
        example = "tools.read"
    )]
    name: String,
    /// What it grants, in words (the consent screen), at most 1,024 characters.
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    description: Option<String>,
}

/// A resource server (MCP server) as written by the management API.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ResourceInput {
    /// Its id: a slug, immutable (required on create).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    id: String,
    /// Its canonical URI: `https://` and a DNS host name, or (outside production) `http://` and
    /// `localhost`, `127.0.0.1` or `[::1]`; any port; no query, no fragment, no credentials. Stored canonical (lower-case scheme and host, no lone
    /// trailing `/`): the `aud` of the tokens issued for it.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?$",
        example = "https://mcp.example.com/mcp"
    )]
    uri: String,
    /// A display name, 1 to 128 characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    name: String,
    /// What it is, for people, at most 1,024 characters.
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    description: Option<String>,
    /// The scopes it offers (at most 256); `outbound.token.fetch` is added when absent.
    #[serde(default)]
    #[schema(max_items = 256)]
    scopes: Vec<ResourceScope>,
}

/// A resource server as the management API shows it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceView {
    /// Its id.
    id: String,
    /// Its canonical URI.
    uri: String,
    /// Its name.
    name: String,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// The scopes it offers (`outbound.token.fetch` among them).
    scopes: Vec<ResourceScope>,
    /// When it was registered.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A token-signing key (never its private part).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SigningKeyView {
    /// The key id (`kid`), its RFC 7638 thumbprint.
    kid: String,
    /// The JWS algorithm (`ES256`, `RS256`, `EdDSA`...).
    alg: String,
    /// `active` (it signs) or `retired` (published until `publishedUntil`).
    #[schema(value_type = String, pattern = "^(active|retired)$")]
    state: String,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When it stopped signing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    retired_at: Option<String>,
    /// Until when a retired key stays in the JWK set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    published_until: Option<String>,
}

/// A credential handed out.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutboundToken {
    /// The OAuth access token (OAuth apps).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    access_token: Option<String>,
    /// The API key (API-key apps), present instead of `accessToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    api_key: Option<String>,
    /// `Bearer`, or the provider's type.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    /// When the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// The scopes the credential carries.
    scopes: Vec<String>,
    /// The outbound app the credential is for.
    app_id: String,
    /// Whom the credential was fetched for: the directory user's id, or for a subject of an
    /// external issuer that no directory user is linked to, its principal id (`ext:…:<sub>`).
    user_id: String,
    /// The tenant, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    /// Whose credential it is: `user`, `tenant` or `app`.
    owner: String,
}

/// The decision behind an allowed request, in short.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DecisionSummary {
    /// Always `allow`.
    outcome: String,
    /// `open` (no enforcing policy) or `matched`.
    reason: String,
    /// The enforcing policies that matched.
    deciding_policies: Vec<String>,
    /// The scopes the policies allow: `"all"` or a list.
    #[schema(value_type = Object)]
    allowed_scopes: Value,
    /// Whether the token was narrowed to fewer scopes than the stored grant.
    downscoped: bool,
}

/// A handed-out credential and the decision that allowed it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Granted {
    /// The credential to call the provider with.
    token: OutboundToken,
    /// Why it was allowed: the decision in short.
    decision: DecisionSummary,
}

/// A check's answer: a fetch would hand a credential out.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Checked {
    /// The scopes the credential would carry (none for an API key).
    scopes: Vec<String>,
    /// Why it is allowed: the decision in short.
    decision: DecisionSummary,
}

/// How far a re-encryption got.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReencryptReport {
    /// Connections re-sealed under the active key.
    connections: u64,
    /// App client secrets re-sealed.
    app_secrets: u64,
    /// Pending consents re-sealed.
    consent_states: u64,
    /// SSO connections' client secrets re-sealed.
    sso_secrets: u64,
}

/// What a user asks for when connecting an app.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConnectRequest {
    /// Scopes to ask the provider for (default: the app's default scopes). With an existing
    /// connection, the grant is extended (incremental consent).
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// Connect within this tenant (the user must be a member of it).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    tenant_id: Option<String>,
    /// Connect for the whole tenant (a tenant admin only).
    #[serde(default)]
    tenant_level: bool,
    /// Where to send the browser afterwards (must be allowed by the configuration).
    #[serde(default)]
    return_url: Option<String>,
}

/// A connection's metadata, as the management API shows it (never a token).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionInfo {
    /// The connection's id.
    id: String,
    /// The outbound app the connection is to.
    app_id: String,
    /// The user who owns the connection (absent for a tenant's or the app's connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// The tenant: a tenant's shared connection, or a user's within the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    /// Whose credential it is: `user`, `tenant` or `app`.
    owner: String,
    /// What the credential is: `oauth` (tokens Portcullis refreshes) or `apiKey`.
    #[serde(rename = "type")]
    kind: String,
    /// `active`, or `consentRequired` when the provider refused the grant and the user must connect
    /// again.
    status: String,
    /// The scopes the provider granted.
    scopes: Vec<String>,
    /// The access token's type, usually `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    /// When the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// Whether a refresh token is stored.
    has_refresh_token: bool,
    /// The user's id at the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_subject: Option<String>,
    /// When the token was last refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_refresh_at: Option<String>,
    /// Why the last refresh failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_refresh_error: Option<String>,
    /// When the credential was last handed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<String>,
    /// Who created the connection: `user:<id>` (the user's consent) or `admin:<key id>` (an admin's
    /// link, import or API key).
    #[serde(skip_serializing_if = "Option::is_none")]
    granted_by: Option<String>,
    /// When the connection was created.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the connection last changed (a refresh, a new consent).
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A token to import (migration from another vault).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ImportToken {
    /// The owning user (for a user connection).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    user_id: Option<String>,
    /// The tenant (for a tenant connection, or a user's within a tenant).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    tenant_id: Option<String>,
    /// The access token (sealed at rest, never shown).
    #[schema(value_type = String)]
    #[schema(min_length = 1)]
    access_token: String,
    /// The refresh token, if any: Portcullis refreshes the access token with it when it expires.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    refresh_token: Option<String>,
    /// The token type (default `Bearer`).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    token_type: Option<String>,
    /// When the access token expires (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// The scopes the token was granted (each one the app offers).
    #[serde(default)]
    scopes: Vec<String>,
    /// The user's id at the provider.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    provider_subject: Option<String>,
}

/// What revoking a connection did.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokeReport {
    /// The connection removed.
    connection: ConnectionInfo,
    /// Whether the provider's revocation endpoint confirmed.
    provider_revoked: bool,
    /// Why the provider did not confirm (the connection is removed regardless).
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_error: Option<String>,
}

/// An admin's request for a connect link: a tenant's shared connection (or a named user's).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AdminConnectRequest {
    /// The tenant whose shared connection this creates.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    tenant_id: Option<String>,
    /// Or the user whose connection this creates (the link must be opened by that user).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    user_id: Option<String>,
    /// Scopes to ask for (default: the app's default scopes).
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// Where to send the browser afterwards.
    #[serde(default)]
    return_url: Option<String>,
}

/// List parameters: `limit` (1–200, default 50) and an opaque `cursor`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// How many items (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `nextCursor` of the previous page: base64url text. Any such text is a position in the
    /// list (one no page ended at reads on from wherever it falls).
    #[param(
        min_length = 2,
        max_length = 684,
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"
    )]
    cursor: Option<String>,
}

/// The window and bucket width of an audit summary.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(crate) struct AuditSummaryParams {
    /// The window's start (RFC 3339; default `until` minus 24 hours), rounded down to a bucket
    /// boundary counted from the Unix epoch. Must be before `until`.
    #[param(format = DateTime)]
    since: Option<String>,
    /// The window's end, excluded (RFC 3339; default now).
    #[param(format = DateTime)]
    until: Option<String>,
    /// The bucket width in seconds (60 to 31,622,400; default 3600). The window may hold at most
    /// 500 buckets: a narrower bucket is a 400.
    #[param(minimum = 60, maximum = 31_622_400)]
    bucket: Option<u64>,
}

/// Filters of the audit log.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(crate) struct AuditParams {
    /// Only this app.
    app_id: Option<String>,
    /// Only this user.
    user_id: Option<String>,
    /// Only this tenant.
    tenant_id: Option<String>,
    /// Only this client.
    client_id: Option<String>,
    /// Only this outcome (`allowed`, `denied`, `consent_required`, `not_connected`,
    /// `invalid_token`, `invalid_request`, `error`).
    outcome: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events before this instant (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// How many events (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `nextCursor` of the previous page: base64url text. Any such text is a position in the
    /// list (one no page ended at reads on from wherever it falls).
    #[param(
        min_length = 2,
        max_length = 684,
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"
    )]
    cursor: Option<String>,
    /// Which log: `decision` (the default: token decisions) or `management` (who changed what
    /// through this API).
    kind: Option<AuditKind>,
    /// Management events only: this actor (an admin key's id).
    actor: Option<String>,
    /// Management events only: this target or anything under it (`outbound-apps/cal`).
    target: Option<String>,
    /// Management events only: this action (`policy.update`, ...).
    action: Option<String>,
}

/// Which audit log.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub(crate) enum AuditKind {
    /// Token decisions.
    Decision,
    /// Management changes: who changed what through this API.
    Management,
}

/// An identity of a user: a token whose `iss` and `sub` are these is this user.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Identity {
    /// The issuer's exact `iss`: 1 to 2,048 characters, no whitespace or control characters.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    issuer: String,
    /// The subject's exact `sub` at that issuer: 1 to 255 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    subject: String,
}

/// A user's new password.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PasswordInput {
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256, write_only)]
    password: String,
}

/// A consent a user gave a client for a resource.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsentView {
    /// The client.
    client_id: String,
    /// The resource's URI.
    resource: String,
    /// The scopes consented to.
    scopes: Vec<String>,
    /// When first given.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When last widened.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

/// A user's consents.
#[derive(ToSchema)]
pub(crate) struct ConsentList {
    /// By client, then resource.
    items: Vec<ConsentView>,
}

/// Which consents to revoke.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(crate) struct ConsentParams {
    /// Only this client's (every client's when absent).
    client_id: Option<String>,
}

/// A rule of an SSO connection: when the id_token's `claim` holds `value` (equals it, or is an
/// array holding it; numbers and booleans compared as their JSON text), the user holds `roles` —
/// across the deployment, or in `tenant` (and is its member).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ClaimMapping {
    /// The claim: a top-level name (`groups`, `roles`) or a dotted path (`\.` a literal dot).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+(?:\.(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+){0,15}$",
        example = "groups"
    )]
    claim: String,
    /// The value it must hold: a group's object id, a role's name.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    value: String,
    /// The roles it gives (each must exist).
    #[serde(default)]
    #[schema(max_items = 64)]
    roles: Vec<String>,
    /// The tenant the roles are held in (it must exist); absent: deployment-wide.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    tenant: Option<String>,
}

/// A single sign-on connection as written by the management API: an upstream OpenID Connect
/// provider (Entra ID, Okta, Google...) users sign in with. Register
/// `{publicUrl}/oauth2/sso/callback` as the redirect URI at the provider.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SsoConnectionInput {
    /// Its id: a slug, immutable (required on create).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    id: String,
    /// What the sign-in button says: "Sign in with {name}".
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$",
        example = "Entra ID"
    )]
    name: String,
    /// The provider's exact issuer (its id_tokens' `iss`); its discovery document is read at
    /// `{issuer}/.well-known/openid-configuration`. `https://` and a DNS host name (or, outside
    /// production, `http://` on a loopback host), a port, a path, no query.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^(?:https://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*|http://(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?$",
        example = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
    )]
    issuer: String,
    /// Portcullis's client id at the provider.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    client_id: String,
    /// Portcullis's client secret at the provider (sent with HTTP Basic): write-only, sealed at
    /// rest. Absent on create: a public client (PKCE only); absent on update: the stored one stays.
    #[serde(default)]
    #[schema(
        write_only,
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    client_secret: Option<String>,
    /// The scopes asked for (at most 32); `openid` is added when absent. Default
    /// `openid email profile`.
    #[serde(default)]
    #[schema(max_items = 32)]
    scopes: Option<Vec<String>>,
    /// Whether a first sign-in creates the user, linked to the provider's issuer and subject
    /// (default true). Without it, only users an admin linked (`identities`) can sign in.
    #[serde(default)]
    provision: Option<bool>,
    /// The rules mapping the id_token's claims to roles and tenants (at most 256), applied at
    /// every sign-in: the deployment-wide roles the rules name, and the memberships of the
    /// tenants they name, follow the rules; the user's other roles and tenants are left alone.
    #[serde(default)]
    #[schema(max_items = 256)]
    mappings: Vec<ClaimMapping>,
    /// The id_token claims copied to the user at every sign-in (at most 32 top-level names of 1
    /// to 64 letters, digits, `_`, `-`, `.`, `:`; not one Portcullis sets itself: `iss`, `sub`,
    /// `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id`, `scope`, `roles`, `tenants`, `email`,
    /// `auth_time`, `azp`, `nonce`, `at_hash`, `name`). Portcullis's access tokens carry them,
    /// for policies' `jwtClaims` conditions; the user's attribute `upstreamClaims` holds them.
    #[serde(default)]
    #[schema(max_items = 32)]
    claims: Vec<String>,
}

/// A single sign-on connection as the management API shows it (never its secret).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SsoConnectionView {
    /// Its id.
    id: String,
    /// Its name.
    name: String,
    /// The provider's issuer.
    issuer: String,
    /// Portcullis's client id at the provider.
    client_id: String,
    /// Whether a client secret is stored.
    has_client_secret: bool,
    /// The scopes asked for (`openid` first).
    scopes: Vec<String>,
    /// Whether a first sign-in creates the user.
    provision: bool,
    /// The claim-mapping rules.
    mappings: Vec<ClaimMapping>,
    /// The id_token claims copied to the user.
    claims: Vec<String>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}
