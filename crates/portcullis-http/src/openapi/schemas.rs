//! Documentation-only types: the wire shapes that no type of the services describes for the
//! OpenAPI document (the error bodies, the policy document, decision explanations, the audit
//! event, list pages, the token exchange form). They are never built; the integration test checks
//! real answers against them, so they cannot drift from the wire unnoticed.

#![expect(
    dead_code,
    reason = "documentation-only types: they describe wire shapes for the OpenAPI document and are never built"
)]

use std::borrow::Cow;

use super::services::{
    AdminKeyInfo, AppView, ClientView, ConnectionInfo, IssuerView, PolicyView, ResourceView,
    RevokeReport, RoleView, SsoConnectionView, TenantView, UserView,
};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::{PartialSchema, ToSchema};

// ----- Errors --------------------------------------------------------------------------------

/// The one error shape of the API (every endpoint but `/oauth2/token`, which answers in the
/// RFC 6749 shape). Clients branch on `error`, a stable machine-readable code; `message` is for
/// humans and may change.
#[derive(ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    /// A stable machine-readable code such as `unauthorized`, `not_found`, `invalid_request`,
    /// `invalid_body`, `invalid_policy`, `already_exists` or `unavailable`.
    #[schema(example = "not_found")]
    error: String,
    /// What went wrong, as one lowercase sentence meant for a human (it may change between
    /// versions; never parse it).
    #[schema(example = "app github not found")]
    message: String,
    /// Structured details when the code has some: for a 400 about a field of the request body,
    /// the list of problems as `{path, message}` objects, `path` being the JSON path of the field
    /// as it is written in the body (`scopes[1].name`, `redirectUris[0]`, `email`), so that a
    /// client can show each problem beside its field without reading the message; for a 400
    /// about a query parameter, `[{parameter, message}]` naming it (`limit`, `cursor`, `since`,
    /// `outcome`, `bucket`...); for `invalid_policy`, that list with a `code` for each problem (see `PolicyProblem`); for
    /// `not_found` and `unknown_reference`, the `entity` and `id`; for `already_exists`, the
    /// `entity` whose id or unique value is taken (`user`, `user email`, `user identity`...); for
    /// `not_ready`, the state of each dependency.
    details: Option<Value>,
}

/// An error of the outbound surface (the token endpoint and the connect call): the shared error
/// shape, with `connectUrl` when the user can fix the problem by connecting (again), and
/// `decision` when the access control policies refused.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct OutboundError {
    /// One of `invalid_token` (401), `insufficient_scope`, `access_denied`, `consent_required`,
    /// `forbidden`, `not_a_tenant_member`, `not_a_tenant_admin`, `user_disabled` (403),
    /// `not_connected`, `app_not_found` (404), `invalid_scope`, `invalid_request`,
    /// `invalid_body`, `invalid_json`, `not_an_oauth_app`, `invalid_return_url` (400),
    /// `provider_unavailable` (503), `internal` (500).
    #[schema(example = "not_connected")]
    error: String,
    /// What went wrong, as one lowercase sentence meant for a human.
    message: String,
    /// Structured details: `reason` (for `invalid_token`, the verification failure such as
    /// `expired`, `bad_signature`, `unknown_issuer` or `missing_token`; for `access_denied` and
    /// `consent_required`, the decision's reason; for `not_connected`, one of `no_connection`,
    /// `missing_scopes`, `consent_required_by_provider`, `expired`), `missingScopes` (for
    /// `not_connected`), `requiredScope` (for `insufficient_scope`), `appId` (for
    /// `app_not_found`).
    details: Option<Value>,
    /// Where to send the user's browser to connect the app or grant the missing scopes
    /// (`not_connected` with an OAuth app, and `consent_required`): a connect link for this user
    /// (a page of Portcullis, `/v1/outbound/connect/{ticket}`, bound to the user), valid once
    /// and for a limited time, that leads to the provider.
    #[schema(format = "uri")]
    connect_url: Option<String>,
    /// The policy decision that refused the request, with every policy's verdict
    /// (`access_denied` and `consent_required`).
    decision: Option<Explanation>,
}

/// An error of the OAuth token endpoint, in the RFC 6749 §5.2 shape (as OAuth client libraries
/// expect), with Portcullis extensions when a policy decision or a connection is involved.
#[derive(ToSchema)]
pub(crate) struct OAuthError {
    /// The RFC 6749 / RFC 8693 error code.
    error: OAuthErrorCode,
    /// What went wrong, in a sentence.
    error_description: String,
    /// Why, as a stable code: the inbound token's verification failure (`expired`,
    /// `bad_signature`...), the decision's reason (`no_policy_matched`, `scopes_not_allowed`...),
    /// or the connection problem (`no_connection`, `missing_scopes`...).
    reason: Option<String>,
    /// Where the user connects the app or consents again (`consent_required`).
    #[schema(format = "uri")]
    connect_url: Option<String>,
    /// The requested scopes the user's grant lacks (`consent_required` for a missing
    /// connection or scope).
    missing_scopes: Option<Vec<String>>,
    /// The policy decision that refused the request (`access_denied` by the policies, and
    /// `consent_required` when the app asks for re-consent).
    decision: Option<Explanation>,
    /// Seconds to wait (`rate_limited`, with `Retry-After`).
    #[schema(minimum = 1)]
    retry_after: Option<u64>,
}

/// The `error` codes of the OAuth endpoints: RFC 6749 §5.2, RFC 8693 §2.2.2 (`invalid_target`),
/// RFC 6750 §3.1 (`invalid_token`, userinfo), and `consent_required` (the user must connect the
/// app or consent again) and `temporarily_unavailable` / `server_error` (RFC 6749 §4.1.2.1).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum OAuthErrorCode {
    /// The request is malformed (a missing or repeated parameter, an unsupported token type).
    InvalidRequest,
    /// The client did not authenticate, or its credentials are wrong (401).
    InvalidClient,
    /// The code, refresh token or subject token is missing, invalid, expired, spent, or (a
    /// subject token) lacks the fetch scope.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// `grant_type` is not one the token endpoint serves.
    UnsupportedGrantType,
    /// A requested scope is not one the app, the resource or the grant offers.
    InvalidScope,
    /// `resource`/`audience` does not name exactly one outbound app the client may use, or the
    /// resource is not the grant's or not registered.
    InvalidTarget,
    /// The bearer access token (userinfo) or initial access token (registration) is missing or
    /// not valid (401).
    InvalidToken,
    /// Registration: a redirect URI is not acceptable.
    InvalidRedirectUri,
    /// Registration: other client metadata is not acceptable.
    InvalidClientMetadata,
    /// The policies, the directory or the tenant refuse the request (403).
    AccessDenied,
    /// The user must connect the app, or consent again to what the policies allow.
    ConsentRequired,
    /// The client address or the subject is over its rate limit (429, with `Retry-After`).
    RateLimited,
    /// The provider or the database is unavailable (503); retry shortly.
    TemporarilyUnavailable,
    /// The server failed (500).
    ServerError,
}

/// One problem of a policy document, as listed in the `details` of an `invalid_policy` error.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct PolicyProblem {
    /// The JSON path of the offending part, relative to the document (`conditions[1].value`);
    /// empty for the document as a whole.
    #[schema(example = "conditions[0].operator")]
    path: String,
    /// What is wrong, machine-readable.
    code: PolicyProblemCode,
    /// What is wrong, as a lowercase sentence for a human.
    message: String,
    /// The policy the problem is in, when several policies are checked together.
    policy_id: Option<String>,
}

/// The machine-readable codes of policy validation problems.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum PolicyProblemCode {
    /// A field the format does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    InvalidType,
    /// `source` is neither `userRoles` nor `jwtClaims`.
    UnknownSource,
    /// `operator` is not one of the five operators.
    UnknownOperator,
    /// A condition's `value` does not fit its operator or source.
    InvalidValueType,
    /// `scopes` is an empty array, or names an empty scope.
    EmptyScopes,
    /// A scope is listed twice.
    DuplicateScope,
    /// A scope the app does not offer.
    UnknownScope,
    /// Two policies of one app share a name (case-insensitive).
    DuplicateName,
    /// A claim path that does not parse.
    InvalidClaimPath,
    /// A `jwtClaims` condition without a `claim`.
    MissingClaim,
    /// A `userRoles` condition with a `claim`.
    UnexpectedClaim,
    /// A size limit is exceeded.
    LimitExceeded,
    /// `name` is empty or only whitespace.
    EmptyName,
}

// ----- Policies ------------------------------------------------------------------------------

/// An access control policy of an outbound app. On every token request, the app's enforcing
/// policies whose conditions all hold for the caller are the matching ones; the request is
/// allowed when the scopes they grant together cover every requested scope. An app with no
/// enforcing policy is open (every authenticated user may fetch tokens); once it has one, whoever
/// no policy matches is denied. Shadow policies are evaluated and reported (in explanations and
/// the audit log) but never decide, so a new rule can be observed before it is enforced.
///
/// A document is checked as a whole, and every problem is reported with its JSON path; fields
/// other than those below are refused, in the document and in its conditions.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyDocument {
    /// A name, unique on the app (case-insensitive), 1 to 128 characters, not only whitespace, without control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$",
        example = "Engineers read repositories"
    )]
    name: String,
    /// A description for humans, at most 1,024 characters.
    #[schema(max_length = 1024)]
    description: Option<String>,
    /// The conditions that must all hold for the policy to match (at most 32). An empty list
    /// matches every authenticated user.
    #[schema(max_items = 32)]
    conditions: Vec<Condition>,
    /// The scopes the policy grants when it matches: `"all"`, or a list of scopes the app
    /// offers.
    scopes: Scopes,
    /// Whether the policy decides (`enforce`, the default) or is only evaluated and reported
    /// (`shadow`).
    #[schema(default = "enforce", nullable = false)]
    mode: Option<Mode>,
}

/// One condition of a policy: a predicate on the caller's roles (`userRoles`) or on a claim of
/// the caller's inbound token (`jwtClaims`). A `jwtClaims` condition on a missing claim (or a
/// `null` one) does not hold, whatever the operator.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub(crate) struct Condition {
    /// What the condition reads.
    source: Source,
    /// For `jwtClaims` (required there, forbidden for `userRoles`): the claim's path, segments
    /// separated by `.` (a literal `.` or `\` escaped with `\`), at most 16 segments and 256
    /// characters. For example `org_id`, `realm_access.roles`, or `https://example\.com/tier`.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+(?:\.(?:[^.\\\u0000-\u001f\u007f-\u009f]|\\[.\\])+){0,15}$",
        example = "org_id"
    )]
    claim: Option<String>,
    /// The predicate.
    operator: Operator,
    /// The operand: one scalar for `equals`, `notEquals` and `contains`; a non-empty array of at
    /// most 256 scalars for `in` and `notIn`. `userRoles` values are role names (strings);
    /// strings are at most 1,024 characters and compared exactly, numbers by numeric value.
    value: ConditionValue,
}

/// What a condition reads.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum Source {
    /// The caller's roles: from the directory when the user is registered there (tenant roles
    /// included for the request's tenant), else mapped from the inbound token's roles claim.
    UserRoles,
    /// The claims of the caller's verified inbound token.
    JwtClaims,
}

/// The five operators. On `userRoles`, `equals`, `contains` and `in` hold when the caller has
/// (one of) the role(s), `notEquals` and `notIn` when they have none of them. On `jwtClaims`,
/// `equals`/`notEquals` compare the claim with the value, `in`/`notIn` test the claim's
/// membership in the list, and `contains` holds when the claim is an array holding the value.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum Operator {
    /// The claim equals the value (the caller has the role).
    Equals,
    /// The claim differs from the value (the caller lacks the role).
    NotEquals,
    /// The claim is one of the values (the caller has one of the roles).
    In,
    /// The claim is none of the values (the caller has none of the roles).
    NotIn,
    /// The claim is an array that holds the value (the caller has the role).
    Contains,
}

/// Whether a policy decides.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum Mode {
    /// The policy takes part in decisions (the default).
    Enforce,
    /// The policy is evaluated and reported, never deciding.
    Shadow,
}

/// A scalar operand of a condition.
pub(crate) struct Scalar;

impl PartialSchema for Scalar {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String).max_length(Some(1024)))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .description(Some(
                "A scalar operand: a string (compared exactly, at most 1,024 characters), a number (compared by numeric value) or a boolean.",
            ))
            .into()
    }
}

impl ToSchema for Scalar {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Scalar")
    }
}

/// The operand of a condition: one scalar, or a list of them.
pub(crate) struct ConditionValue;

impl PartialSchema for ConditionValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(scalar_ref())
            .item(
                ArrayBuilder::new()
                    .items(scalar_ref())
                    .min_items(Some(1))
                    .max_items(Some(256)),
            )
            .description(Some(
                "One scalar (for `equals`, `notEquals` and `contains`), or a non-empty array of at most 256 scalars (for `in` and `notIn`).",
            ))
            .into()
    }
}

fn scalar_ref() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Scalar::name()))
}

impl ToSchema for ConditionValue {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ConditionValue")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Scalar::name().into_owned(), Scalar::schema()));
    }
}

/// A set of scopes: every scope, or a list.
pub(crate) struct Scopes;

impl PartialSchema for Scopes {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["all"]))
                    .description(Some("Every scope, including ones the app does not list.")),
            )
            .item(
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(256)),
                    )
                    .min_items(Some(1))
                    .max_items(Some(256))
                    .unique_items(true)
                    .description(Some("These scopes (each one the app offers).")),
            )
            .description(Some(
                "A set of scopes: the string `\"all\"`, or an array of scope names.",
            ))
            .into()
    }
}

impl ToSchema for Scopes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Scopes")
    }
}

/// The scopes a decision allows: every scope, or a list (empty when nothing is allowed).
pub(crate) struct AllowedScopes;

impl PartialSchema for AllowedScopes {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["all"]))
                    .description(Some("Every scope, including ones the app does not list.")),
            )
            .item(
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some(
                        "These scopes, in the app's order (empty when nothing is allowed).",
                    )),
            )
            .description(Some(
                "The scopes a decision allows: the string `\"all\"`, or an array of scope names.",
            ))
            .into()
    }
}

impl ToSchema for AllowedScopes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AllowedScopes")
    }
}

/// Why a decision came out as it did: the outcome, the scopes asked for and allowed, and every
/// policy's verdict with the first condition that failed. The simulator shows all of it; a denial
/// shows what its app's `denialDetail` allows (`policies`, the default, leaves out each failing
/// condition's `value` and `seen`; `reason` keeps only `outcome`, `reason`, `requestedScopes` and
/// `deniedScopes`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct Explanation {
    /// Allow or deny.
    outcome: Outcome,
    /// Why.
    reason: Reason,
    /// The scopes asked for, as given.
    requested_scopes: Vec<String>,
    /// The scopes the caller may have: `"all"` or a list in the app's order (absent with
    /// `denialDetail: reason`).
    allowed_scopes: Option<AllowedScopes>,
    /// The requested scopes that are not allowed (every one, when no policy matched).
    denied_scopes: Vec<String>,
    /// The ids of the enforcing policies that matched (absent with `denialDetail: reason`).
    deciding_policies: Option<Vec<String>>,
    /// Every policy of the app with its verdict (absent with `denialDetail: reason`).
    policies: Option<Vec<PolicyExplanation>>,
    /// What the decision would be with the shadow policies enforcing too (only when the app has
    /// shadow policies).
    shadow: Option<ShadowExplanation>,
}

/// Whether a request is allowed.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum Outcome {
    /// The token is handed out.
    Allow,
    /// It is not.
    Deny,
}

/// Why a decision came out as it did.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum Reason {
    /// Allowed: the app has no enforcing policy.
    Open,
    /// Allowed: enforcing policies matched and grant every requested scope.
    Matched,
    /// Denied: no enforcing policy matched.
    NoPolicyMatched,
    /// Denied: enforcing policies matched, but some requested scope is granted by none of them.
    ScopesNotAllowed,
}

/// How one policy evaluated.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct PolicyExplanation {
    /// The policy's id.
    id: String,
    /// The policy's name.
    name: String,
    /// Whether it decides or is only reported.
    mode: Mode,
    /// Whether every condition held.
    matched: bool,
    /// The scopes the policy grants when it matches.
    scopes: Scopes,
    /// The first condition that did not hold (evaluation stops there).
    failed_condition: Option<FailedCondition>,
}

/// The first condition of a policy that did not hold, with what was seen.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct FailedCondition {
    /// Its index in the policy's `conditions`.
    index: u32,
    /// What it reads.
    source: Source,
    /// The claim path, for `jwtClaims`.
    claim: Option<String>,
    /// The operator.
    operator: Operator,
    /// The condition's operand (in denials, only with `denialDetail: full`).
    value: Option<ConditionValue>,
    /// What was seen: the claim's value (`null` when missing), or the caller's roles (in
    /// denials, only with `denialDetail: full`).
    seen: Option<Value>,
    /// Why it did not hold.
    reason: FailReason,
}

/// Why a condition did not hold.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum FailReason {
    /// The value was there, of the right type, and the predicate is false.
    NotSatisfied,
    /// The claim is absent (or `null`).
    Missing,
    /// The claim has a type the operator cannot compare (an object, or a string against a
    /// number).
    TypeMismatch,
}

/// The decision with the shadow policies enforcing too.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct ShadowExplanation {
    /// Allow or deny.
    outcome: Outcome,
    /// The scopes allowed.
    allowed_scopes: AllowedScopes,
}

// ----- Apps and the directory ----------------------------------------------------------------

/// A scope an app offers, with a description shown on consent pages and in the console.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeDef {
    /// The provider's scope string, e.g. `repo` or
    /// `https://www.googleapis.com/auth/calendar.readonly`.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$",
        example = "repo"
    )]
    name: String,
    /// What the scope grants, in words.
    description: Option<String>,
}

/// How an outbound app hands out credentials.
#[derive(ToSchema)]
pub(crate) enum AppType {
    /// An OAuth 2.0 provider: users connect through a consent flow, and Portcullis refreshes
    /// their tokens.
    #[schema(rename = "oauth")]
    OAuth,
    /// A static API key per user, per tenant, or for the whole app, stored by an admin.
    #[schema(rename = "apiKey")]
    ApiKey,
}

/// How Portcullis authenticates at the provider's token endpoint (RFC 6749 §2.3.1).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum TokenEndpointAuthMethod {
    /// HTTP Basic with the client id and secret (the default).
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
    /// Only `client_id` in the body: a public client, with PKCE.
    None,
}

/// What a token request that the policies do not allow gets.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum OnDeny {
    /// A 403 `access_denied` with the decision's explanation (the default).
    Forbid,
    /// A 403 `consent_required` with a connect URL asking the provider for only what the policies
    /// allow (OAuth apps).
    Reconsent,
}

/// How much of a denial's explanation callers (MCP servers, and through them users) see; the
/// simulator always shows everything to administrators.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) enum DenialDetail {
    /// The whole explanation: each failing condition with its expected value and what was seen.
    Full,
    /// The policies considered, and each failing condition's source, claim and operator, without
    /// the expected value or what was seen (the default).
    Policies,
    /// Only the outcome, the reason, and the scopes asked for and refused.
    Reason,
}

/// The provider settings of an outbound app, as the management API shows them. For an
/// `apiKey` app the OAuth fields are `null` or empty.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct AppSettings {
    /// The OAuth client id registered with the provider.
    client_id: Option<String>,
    /// The provider's authorization endpoint.
    #[schema(format = "uri")]
    authorization_url: Option<String>,
    /// The provider's token endpoint.
    #[schema(format = "uri")]
    token_url: Option<String>,
    /// The provider's token revocation endpoint (RFC 7009), called when a connection is revoked.
    #[schema(format = "uri")]
    revocation_url: Option<String>,
    /// An OpenID Connect userinfo endpoint, read once at connect time for the user's id at the
    /// provider.
    #[schema(format = "uri")]
    userinfo_url: Option<String>,
    /// The scopes the app offers; policies may only name these.
    scopes: Vec<ScopeDef>,
    /// The scopes asked for when a request names none.
    default_scopes: Vec<String>,
    /// Whether the authorization request uses PKCE (S256).
    pkce: bool,
    /// Extra authorization request parameters (e.g. `access_type=offline`).
    authorization_params: std::collections::BTreeMap<String, String>,
    /// Whether the provider honours a narrower `scope` on refresh (RFC 6749 §6), which lets
    /// Portcullis hand out a token downscoped to what the policies allow.
    narrow_scopes_on_refresh: bool,
    /// How Portcullis authenticates at the provider's token endpoint.
    token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// What a request the policies do not allow gets.
    on_deny: OnDeny,
    /// How much of a denial's explanation callers see.
    denial_detail: DenialDetail,
    /// The provider's issuer identifier (RFC 9207), required as `iss` on its redirect back.
    issuer: Option<String>,
    /// Whether the app keeps the shared callback `/v1/outbound/callback` as its `redirect_uri`
    /// (else `/v1/outbound/callback/{appId}`).
    shared_callback: bool,
}

/// A user's membership of a tenant, with the roles the user holds there.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantMembership {
    /// The tenant.
    #[schema(example = "acme")]
    tenant_id: String,
    /// The roles the user holds within this tenant (added to the user's roles for requests
    /// naming the tenant); none when absent.
    #[serde(default)]
    roles: Vec<String>,
}

// ----- Audit ---------------------------------------------------------------------------------

/// A recorded decision: one per token request or token exchange, whatever its outcome. It never
/// holds a token.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct AuditEvent {
    /// A time-ordered id (`evt_…`): newer events sort after older ones.
    id: String,
    /// When the decision was made.
    #[schema(format = DateTime)]
    at: String,
    /// Which surface decided: `token` (the token endpoint) or `token_exchange` (RFC 8693).
    #[schema(example = "token")]
    action: String,
    /// The outbound app asked for.
    app_id: Option<String>,
    /// The user the inbound token names.
    user_id: Option<String>,
    /// The tenant of the request.
    tenant_id: Option<String>,
    /// The OAuth client (token exchange) or the inbound token's client (`azp` or `client_id`).
    client_id: Option<String>,
    /// The inbound token's issuer.
    issuer: Option<String>,
    /// The scopes asked for.
    requested_scopes: Vec<String>,
    /// The scopes handed out (empty unless allowed).
    granted_scopes: Vec<String>,
    /// How the request ended.
    outcome: AuditOutcome,
    /// Why, as a stable code (`no_policy_matched`, `expired`, `missing_scopes`...).
    reason: Option<String>,
    /// The ids of the enforcing policies that matched.
    deciding_policies: Vec<String>,
    /// Every policy considered, with its verdict.
    considered_policies: Vec<PolicyVerdict>,
    /// What the decision would have been with the shadow policies enforcing (`allowed` or
    /// `denied`), when the app has shadow policies.
    shadow_outcome: Option<String>,
    /// The time spent deciding, in microseconds.
    #[schema(minimum = 0)]
    latency_us: u64,
    /// What the policies read and allowed (what a policy replay re-decides); `null` when the
    /// request was refused before the policies ran.
    inputs: Option<DecisionInputs>,
}

/// What the policies read for a decision, and what they allowed.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct DecisionInputs {
    /// The user's roles the policies saw (in the request's tenant, if any).
    roles: Vec<String>,
    /// The inbound token's claims as kept: without the claims configured never to be stored
    /// (`audit.never_store_claims`), and within 4 KiB.
    #[schema(value_type = Object)]
    claims: serde_json::Map<String, serde_json::Value>,
    /// Present (`true`) when claims were left out for size: a replay of this decision may be
    /// inexact.
    #[serde(default)]
    truncated: bool,
    /// Whether the policies allowed the request.
    allowed: bool,
    /// The requested scopes the request got (none when denied).
    scopes: Vec<String>,
}

/// A change made through the management API (`kind=management`). Never holds a secret.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct ManagementEvent {
    /// A time-ordered id (`chg_…`).
    id: String,
    /// When the change was made.
    #[schema(format = DateTime)]
    at: String,
    /// Who made it: the admin key's id (`ak_…`).
    actor_id: String,
    /// The admin key's name.
    actor_name: String,
    /// What was done (`policy.update`, `app.create`, `connection.revoke`, ...).
    #[schema(example = "policy.update")]
    action: String,
    /// What it was done to (`outbound-apps/cal/policies/pol_…`, `users/alice`, ...).
    target: String,
    /// The change: `before` and `after` (the views the API shows) where they apply.
    #[schema(value_type = Object)]
    change: Value,
    /// The request that made it (its answer's `X-Request-Id`).
    request_id: Option<String>,
}

/// The audit log's page: decisions, or with `kind=management` management changes. `anyOf`, not
/// `oneOf`: an empty page is both.
pub(crate) struct AuditLogPage;

impl PartialSchema for AuditLogPage {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("AuditPage"))
            .item(utoipa::openapi::Ref::from_schema_name("ManagementPage"))
            .description(Some(
                "The audit log's page: token decisions (the default), or with `kind=management` management changes.",
            ))
            .into()
    }
}

impl ToSchema for AuditLogPage {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AuditLogPage")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("AuditPage".to_owned(), AuditPage::schema()));
        schemas.push(("ManagementPage".to_owned(), ManagementPage::schema()));
        <AuditPage as ToSchema>::schemas(schemas);
        <ManagementPage as ToSchema>::schemas(schemas);
    }
}

/// Requests refused before a decision in one minute, on one surface, for one reason.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RejectedCount {
    /// The start of the minute.
    #[schema(format = DateTime)]
    minute: String,
    /// Where: `token`, `token_exchange`, `connect`, `callback`, `oauth`.
    surface: String,
    /// Why, in a stable code: `missing_token`, `expired`, `bad_signature`, ... (the inbound
    /// token), `invalid_request`, `invalid_client`, `rate_limited`.
    reason: String,
    /// How many requests.
    #[schema(minimum = 1)]
    count: u64,
}

/// Counts of rejected requests.
#[derive(ToSchema)]
pub(crate) struct RejectedList {
    /// Newest minute first.
    items: Vec<RejectedCount>,
}

/// Decisions per outcome and per app over a window, for a dashboard: counted by the database,
/// per bucket of `bucketSeconds` (aligned on the Unix epoch), every bucket of the window listed.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditSummary {
    /// The window's start: the first bucket's (`since` rounded down to a bucket boundary).
    #[schema(format = DateTime)]
    since: String,
    /// The window's end, excluded.
    #[schema(format = DateTime)]
    until: String,
    /// The width of a bucket, in seconds.
    #[schema(minimum = 60, maximum = 31_622_400)]
    bucket_seconds: u64,
    /// Every bucket of the window, oldest first, empty ones included (at most 500).
    #[schema(max_items = 500)]
    buckets: Vec<SummaryBucket>,
    /// Every app with a decision in the window, the most decisions first.
    apps: Vec<AppSummary>,
}

/// The decisions of one bucket.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SummaryBucket {
    /// The bucket's start.
    #[schema(format = DateTime)]
    start: String,
    /// How many decisions had each outcome (`allowed`, `denied`, `consent_required`,
    /// `not_connected`, `invalid_token`, `invalid_request`, `error`); outcomes without one are
    /// absent.
    outcomes: std::collections::BTreeMap<String, u64>,
    /// How many decisions each app had, by app id (apps without one are absent; decisions refused
    /// before an app was known count in `outcomes` only).
    apps: std::collections::BTreeMap<String, u64>,
}

/// One app's decisions over a summary's window.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppSummary {
    /// The app.
    app_id: String,
    /// How many decisions.
    #[schema(minimum = 1)]
    decisions: u64,
    /// How many the policies denied (outcomes `denied` and `consent_required`).
    denied: u64,
    /// The mean decision latency, in microseconds.
    avg_latency_us: u64,
    /// The longest decision latency, in microseconds.
    max_latency_us: u64,
}

/// How a token request ended.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum AuditOutcome {
    /// The token was handed out.
    Allowed,
    /// The policies (or the directory) denied the request.
    Denied,
    /// The policies denied it and the app asks for re-consent.
    ConsentRequired,
    /// The user has no usable connection, or the grant lacks a scope.
    NotConnected,
    /// The inbound token was missing or invalid.
    InvalidToken,
    /// The request was malformed or named something unknown.
    InvalidRequest,
    /// The provider or the server failed.
    Error,
}

/// One policy's verdict in a recorded decision.
#[derive(ToSchema)]
pub(crate) struct PolicyVerdict {
    /// The policy's id.
    id: String,
    /// Whether all its conditions held.
    matched: bool,
    /// Whether it is a shadow policy (absent when it is not).
    shadow: Option<bool>,
}

// ----- Lists ---------------------------------------------------------------------------------

/// Declares the page type of a list: the items and the cursor of the next page.
macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(ToSchema)]
        #[schema(rename_all = "camelCase")]
        pub(crate) struct $name {
            /// The items of this page, in the list's order.
            items: Vec<$item>,
            /// Pass it as `cursor` to read the next page; absent on the last page.
            next_cursor: Option<String>,
        }
    };
}

page!(
    /// A page of outbound apps, by id.
    AppPage,
    AppView
);
page!(
    /// A page of an app's policies, oldest first.
    PolicyPage,
    PolicyView
);
page!(
    /// A page of users, by id.
    UserPage,
    UserView
);
page!(
    /// A page of roles, by name.
    RolePage,
    RoleView
);
page!(
    /// A page of tenants, by id.
    TenantPage,
    TenantView
);
page!(
    /// A page of OAuth clients, by id.
    ClientPage,
    ClientView
);
page!(
    /// A page of resource servers, by id.
    ResourcePage,
    ResourceView
);
page!(
    /// A page of SSO connections, by id.
    SsoConnectionPage,
    SsoConnectionView
);
page!(
    /// A page of admin keys, oldest first.
    AdminKeyPage,
    AdminKeyInfo
);
page!(
    /// A page of connections, oldest first.
    ConnectionPage,
    ConnectionInfo
);
page!(
    /// A page of the audit log, newest first.
    AuditPage,
    AuditEvent
);
page!(
    /// A page of the management audit, newest first.
    ManagementPage,
    ManagementEvent
);

page!(
    /// A page of trusted issuers, by id: those of the configuration file (`config:<n>`) and those
    /// added through the API (`iss_...`).
    IssuerPage,
    IssuerView
);

/// The connections a call created or changed.
#[derive(ToSchema)]
pub(crate) struct ConnectionList {
    /// The connections, in the order of the request.
    items: Vec<ConnectionInfo>,
}

/// What revoking every connection of a user did, connection by connection.
#[derive(ToSchema)]
pub(crate) struct RevokeReportList {
    /// One report per connection removed.
    items: Vec<RevokeReport>,
}

// ----- Outbound ------------------------------------------------------------------------------

/// A link that starts a consent flow.
#[derive(ToSchema)]
pub(crate) struct ConnectLink {
    /// The URL to open in the user's browser: a connect link, a page of Portcullis bound to the
    /// user it was made for, which leads to the provider's authorization page; the provider comes
    /// back to Portcullis's callback in that browser only. Valid for a single use, for a limited
    /// time.
    #[schema(format = "uri")]
    url: String,
}

// ----- Token exchange ------------------------------------------------------------------------

/// A token request (`application/x-www-form-urlencoded`): RFC 8693 token exchange, or one of
/// Portcullis's own grants (`authorization_code` with PKCE, `refresh_token`, `client_credentials`).
/// The client authenticates with HTTP Basic (`client_secret_basic`) or with `client_id` and
/// `client_secret` in the form (`client_secret_post`), not both; a public client sends its
/// `client_id` alone. Parameters other than `resource` and `audience` may appear once; each grant
/// reads its own and ignores the rest.
#[derive(ToSchema)]
pub(crate) struct TokenForm {
    /// The grant type.
    #[schema(example = "urn:ietf:params:oauth:grant-type:token-exchange")]
    grant_type: GrantType,
    /// `authorization_code`: the code the authorization endpoint returned.
    code: Option<String>,
    /// `authorization_code`: the redirect URI the authorization request sent, if it sent one.
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (43 to 128 characters).
    #[schema(write_only)]
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token (it is rotated: use the new one next).
    #[schema(write_only)]
    refresh_token: Option<String>,
    /// `jwt-bearer`: the ID-JAG (`typ` `oauth-id-jag+jwt`) from a trusted enterprise issuer, for
    /// Portcullis (its audience), issued to this client.
    #[schema(write_only)]
    assertion: Option<String>,
    /// Token exchange: the user's inbound token (the JWT the MCP server received).
    subject_token: Option<String>,
    /// Token exchange: the subject token's type.
    subject_token_type: Option<SubjectTokenType>,
    /// Token exchange: the outbound app, as `urn:portcullis:outbound-app:<appId>` or as the app's
    /// token endpoint URL (`<public URL>/v1/outbound/apps/<appId>`); together with `audience` it
    /// must name exactly one app. Other grants: the resource server's URI (RFC 8707), which must
    /// be the grant's. Repeatable.
    #[schema(example = json!(["urn:portcullis:outbound-app:github"]))]
    resource: Option<Vec<String>>,
    /// Token exchange: the outbound app, by id. Repeatable.
    audience: Option<Vec<String>>,
    /// The scopes wanted, space-separated: for token exchange, absent means the app's default
    /// scopes; for a refresh, a subset of the grant's; for client credentials, of the resource's.
    scope: Option<String>,
    /// Token exchange: the token type wanted: an access token (the default), or an API key for an
    /// API-key app.
    requested_token_type: Option<IssuedTokenType>,
    /// Token exchange: not supported (delegation is refused with `invalid_request`).
    actor_token: Option<String>,
    /// Token exchange, a Portcullis extension: the tenant whose token (or within which the user's
    /// token) is wanted.
    tenant_id: Option<String>,
    /// The client's id (`client_secret_post`, or a public client; with Basic, it must match if
    /// given).
    client_id: Option<String>,
    /// The client's secret (`client_secret_post`).
    #[schema(write_only)]
    client_secret: Option<String>,
}

/// The grant types of the token endpoint.
#[derive(ToSchema)]
pub(crate) enum GrantType {
    /// RFC 8693 token exchange.
    #[schema(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
    /// The authorization code, with PKCE.
    #[schema(rename = "authorization_code")]
    AuthorizationCode,
    /// A refresh token.
    #[schema(rename = "refresh_token")]
    RefreshToken,
    /// Client credentials (confidential clients).
    #[schema(rename = "client_credentials")]
    ClientCredentials,
    /// An Identity Assertion JWT Authorization Grant (RFC 7523 profile; confidential clients).
    #[schema(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
}

/// A dynamic client registration request (RFC 7591 §2). Metadata not listed is ignored.
#[derive(ToSchema)]
pub(crate) struct RegistrationRequest {
    /// The client's redirect URIs (1 to 20), matched exactly (loopback `http` on any port).
    #[schema(min_items = 1, max_items = 20)]
    redirect_uris: Vec<String>,
    /// Its name, shown on the consent screen: 1 to 128 characters, no control character, no
    /// white space at either end.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,126}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    client_name: Option<String>,
    /// `none` (the default here): only public clients register.
    token_endpoint_auth_method: Option<RegistrationAuthMethod>,
    /// `authorization_code` (the default), optionally with `refresh_token`; it must include
    /// `authorization_code`.
    #[schema(min_items = 1, max_items = 2)]
    grant_types: Option<Vec<RegistrationGrantType>>,
    /// `code`.
    response_types: Option<Vec<RegistrationResponseType>>,
    /// `web` (the default) or `native`.
    application_type: Option<ApplicationType>,
}

/// How a registered client authenticates: `none`.
#[derive(ToSchema)]
pub(crate) enum RegistrationAuthMethod {
    /// A public client.
    #[schema(rename = "none")]
    None,
}

/// A grant type a registered client may use.
#[derive(ToSchema)]
pub(crate) enum RegistrationGrantType {
    /// The code flow.
    #[schema(rename = "authorization_code")]
    AuthorizationCode,
    /// Refresh tokens.
    #[schema(rename = "refresh_token")]
    RefreshToken,
}

/// A response type a registered client may use.
#[derive(ToSchema)]
pub(crate) enum RegistrationResponseType {
    /// The code flow.
    #[schema(rename = "code")]
    Code,
}

/// The kind of application (OpenID Connect Dynamic Client Registration §2).
#[derive(ToSchema)]
pub(crate) enum ApplicationType {
    /// A web application: https redirect URIs (loopback http allowed for development).
    #[schema(rename = "web")]
    Web,
    /// A native application: loopback http or a private-use scheme.
    #[schema(rename = "native")]
    Native,
}

/// A registered client (RFC 7591 §3.2.1).
#[derive(ToSchema)]
pub(crate) struct RegisteredClient {
    /// The new `client_id`.
    client_id: String,
    /// When it was issued (seconds since the epoch).
    client_id_issued_at: i64,
    /// Its name.
    client_name: String,
    /// Its redirect URIs.
    redirect_uris: Vec<String>,
    /// Its grant types.
    grant_types: Vec<String>,
    /// `["code"]`.
    response_types: Vec<String>,
    /// `none`: a public client.
    token_endpoint_auth_method: String,
    /// `web` or `native`.
    application_type: String,
}

/// A token revocation request (RFC 7009), authenticated as at the token endpoint.
#[derive(ToSchema)]
pub(crate) struct RevocationForm {
    /// The token to revoke.
    #[schema(write_only, min_length = 1)]
    token: String,
    /// A hint: `refresh_token` or `access_token` (read but not needed).
    token_type_hint: Option<String>,
    /// The client's id (`client_secret_post`, or a public client).
    client_id: Option<String>,
    /// The client's secret (`client_secret_post`).
    #[schema(write_only)]
    client_secret: Option<String>,
}

/// A token introspection request (RFC 7662), from a confidential client.
#[derive(ToSchema)]
pub(crate) struct IntrospectionForm {
    /// The token.
    #[schema(write_only, min_length = 1)]
    token: String,
    /// A hint: `refresh_token` or `access_token` (read but not needed).
    token_type_hint: Option<String>,
    /// The client's id (`client_secret_post`).
    client_id: Option<String>,
    /// The client's secret (`client_secret_post`).
    #[schema(write_only)]
    client_secret: Option<String>,
}

/// An introspection answer (RFC 7662 §2.2): `active`, and for an active token its claims.
#[derive(ToSchema)]
pub(crate) struct Introspection {
    /// Whether the token is active.
    active: bool,
    /// `Bearer` (an access token) or `refresh_token`.
    token_type: Option<String>,
    /// The client it was issued to.
    client_id: Option<String>,
    /// The user (or, for client credentials, the client).
    sub: Option<String>,
    /// The resource it is for (a string for an access token's `aud`).
    aud: Option<String>,
    /// Its scopes, space-separated.
    scope: Option<String>,
    /// Portcullis's issuer identifier.
    iss: Option<String>,
    /// When it was issued (seconds since the epoch).
    iat: Option<i64>,
    /// When it expires (seconds since the epoch).
    exp: Option<i64>,
    /// An access token's id.
    jti: Option<String>,
    /// An access token's user's roles when it was issued.
    roles: Option<Vec<String>>,
    /// An access token's user's tenants when it was issued.
    tenants: Option<Vec<String>>,
    /// An access token's user's email.
    email: Option<String>,
    /// When the user signed in (seconds since the epoch).
    auth_time: Option<i64>,
}

/// A revocation's answer: an empty object (RFC 7009 §2.2: the status says it all).
#[derive(ToSchema)]
pub(crate) struct Revoked {}

/// The user of an access token (OpenID Connect userinfo).
#[derive(ToSchema)]
pub(crate) struct Userinfo {
    /// The user's id in the directory.
    sub: String,
    /// Their email address.
    email: Option<String>,
    /// Their name.
    name: Option<String>,
    /// Their roles across the deployment, now.
    roles: Vec<String>,
}

/// The accepted subject token types.
#[derive(ToSchema)]
pub(crate) enum SubjectTokenType {
    /// An access token (the inbound JWT).
    #[schema(rename = "urn:ietf:params:oauth:token-type:access_token")]
    AccessToken,
    /// A JWT.
    #[schema(rename = "urn:ietf:params:oauth:token-type:jwt")]
    Jwt,
}

/// The token types Portcullis issues.
#[derive(ToSchema)]
pub(crate) enum IssuedTokenType {
    /// An OAuth access token of the provider (OAuth apps).
    #[schema(rename = "urn:ietf:params:oauth:token-type:access_token")]
    AccessToken,
    /// An API key (API-key apps).
    #[schema(rename = "urn:portcullis:params:oauth:token-type:api_key")]
    ApiKey,
}

/// A token response (RFC 6749 §5.1; for token exchange, RFC 8693 §2.2.1): for token exchange,
/// the user's outbound credential; for the other grants, an access token of Portcullis (an RFC
/// 9068 JWT), with a refresh token for clients that may refresh.
#[derive(ToSchema)]
pub(crate) struct TokenResponse {
    /// The credential: the provider's access token or the API key (token exchange), or
    /// Portcullis's access token.
    access_token: String,
    /// Token exchange only: what `access_token` is.
    issued_token_type: Option<IssuedTokenType>,
    /// How to present it: `Bearer` (or the provider's type), or `N_A` for an API key.
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the access token expires, when known.
    #[schema(minimum = 0)]
    expires_in: Option<i64>,
    /// The scopes the access token carries, space-separated.
    scope: Option<String>,
    /// A refresh token (`authorization_code` and `refresh_token` grants, for clients that may
    /// refresh). Rotated on every use.
    refresh_token: Option<String>,
    /// An OpenID Connect ID token (`authorization_code` and `refresh_token` grants whose scopes
    /// hold `openid`): `aud` the client, `nonce` of the authorization request, `at_hash`.
    id_token: Option<String>,
}

// ----- Operations ----------------------------------------------------------------------------

/// Protected resource metadata (RFC 9728).
#[derive(ToSchema)]
pub(crate) struct ProtectedResourceMetadata {
    /// The resource's canonical URI.
    resource: String,
    /// Its authorization server: Portcullis's issuer identifier.
    authorization_servers: Vec<String>,
    /// The scopes it offers.
    scopes_supported: Vec<String>,
    /// How it takes tokens: `header`.
    bearer_methods_supported: Vec<String>,
    /// Its name.
    resource_name: String,
}

/// A JWK set (RFC 7517).
#[derive(ToSchema)]
pub(crate) struct JwkSet {
    /// The public keys, each with `kid`, `alg`, `use: sig` and its key parameters.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

/// Authorization server metadata (RFC 8414).
#[derive(ToSchema)]
pub(crate) struct AuthorizationServerMetadata {
    /// The issuer identifier: the public URL, the `iss` of every token Portcullis signs.
    issuer: String,
    /// The JWK set's URL.
    jwks_uri: String,
    /// The authorization endpoint (sign-in and consent pages).
    authorization_endpoint: String,
    /// The token endpoint.
    token_endpoint: String,
    /// The revocation endpoint (RFC 7009).
    revocation_endpoint: String,
    /// The introspection endpoint (RFC 7662).
    introspection_endpoint: String,
    /// The userinfo endpoint.
    userinfo_endpoint: String,
    /// The grants the token endpoint accepts.
    grant_types_supported: Vec<String>,
    /// How clients authenticate at the token endpoint (`none`: public clients).
    token_endpoint_auth_methods_supported: Vec<String>,
    /// How clients authenticate at the revocation endpoint.
    revocation_endpoint_auth_methods_supported: Vec<String>,
    /// How clients authenticate at the introspection endpoint (confidential clients only).
    introspection_endpoint_auth_methods_supported: Vec<String>,
    /// The response types of the authorization endpoint: `code`.
    response_types_supported: Vec<String>,
    /// The response modes: `query`.
    response_modes_supported: Vec<String>,
    /// PKCE methods: `S256` only.
    code_challenge_methods_supported: Vec<String>,
    /// Authorization responses carry `iss` (RFC 9207).
    authorization_response_iss_parameter_supported: bool,
    /// Whether a `client_id` may be the URL of a client ID metadata document.
    client_id_metadata_document_supported: bool,
    /// The registration endpoint (RFC 7591), when clients may register themselves.
    registration_endpoint: Option<String>,
    /// The authorization grant profiles of the jwt-bearer grant: ID-JAG.
    authorization_grant_profiles_supported: Vec<String>,
    /// The scopes beyond the resources' own: the OpenID Connect ones (`openid`, `profile`,
    /// `email`).
    scopes_supported: Vec<String>,
    /// OpenID Connect: `public` subjects (directory user ids).
    subject_types_supported: Vec<String>,
    /// OpenID Connect: how ID tokens are signed (the signing key's algorithm).
    id_token_signing_alg_values_supported: Vec<String>,
    /// OpenID Connect: the claims ID tokens and userinfo may carry.
    claims_supported: Vec<String>,
}

/// The liveness answer.
#[derive(ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// The readiness answer.
#[derive(ToSchema)]
pub(crate) struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: String,
    /// The database backend: `sqlite` or `postgres`.
    #[schema(example = "postgres")]
    database: String,
}

/// An OpenAPI 3.1 document (this one).
pub(crate) struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "An OpenAPI 3.1 document, as specified at https://spec.openapis.org/oas/v3.1.0.",
            ))
            .into()
    }
}

impl ToSchema for OpenApiDocument {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OpenApiDocument")
    }
}
