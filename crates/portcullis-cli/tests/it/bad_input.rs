//! Bad input, on both backends. Every class of malformed, unauthenticated or hostile request gets a
//! 4xx — never a 5xx — in the documented error shape `{"error": <code>, "message": <string>,
//! "details"?}`, and changes nothing stored: every list endpoint reads the same before and after.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::support::{Backend, TestServer};

/// The largest body the server reads (`portcullis_http::MAX_BODY_BYTES`).
const MAX_BODY: usize = 1024 * 1024;

// ----- Requests and answers ---------------------------------------------------------------------

/// An answer: status, headers, and the body as JSON (a JSON string holding the text when the body
/// is not JSON).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn show(&self) -> String {
        let text = self.body.to_string();
        let cut: String = text.chars().take(600).collect();
        format!("{} {cut}", self.status)
    }
}

/// How a request authenticates.
enum Auth {
    /// With the server's admin key.
    Admin,
    /// Without an Authorization header.
    Nothing,
    /// With these raw Authorization header values (several: several headers).
    Raw(Vec<Vec<u8>>),
}

async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    auth: &Auth,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Answer {
    let mut req = s.http.request(method, format!("{}{path}", s.url));
    match auth {
        Auth::Admin => req = req.bearer_auth(&s.admin_key),
        Auth::Nothing => {}
        Auth::Raw(values) => {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
            }
            req = req.headers(headers);
        }
    }
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

/// An admin call with a JSON body.
async fn admin_json(s: &TestServer, method: Method, path: &str, body: &Value) -> Answer {
    call(
        s,
        method,
        path,
        &Auth::Admin,
        Some("application/json"),
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// An admin call with raw bytes as a JSON body.
async fn admin_bytes(s: &TestServer, method: Method, path: &str, body: Vec<u8>) -> Answer {
    call(
        s,
        method,
        path,
        &Auth::Admin,
        Some("application/json"),
        Some(body),
    )
    .await
}

/// An admin GET.
async fn admin_get(s: &TestServer, path: &str) -> Answer {
    call(s, Method::GET, path, &Auth::Admin, None, None).await
}

/// Base64 (RFC 4648): the URL-safe alphabet without padding, or the standard one with it.
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        if !url_safe {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

#[test]
fn base64_follows_rfc_4648() {
    for (plain, standard) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
    ] {
        assert_eq!(base64(plain.as_bytes(), false), standard);
    }
    assert_eq!(base64(&[0xfb, 0xff], true), "-_8");
    assert_eq!(base64(&[0, 0, 0], true), "AAAA");
}

/// Asserts the documented error shape: a 4xx, a JSON object with a snake_case `error` and a
/// non-empty `message`, `details` optional, nothing else.
#[track_caller]
fn assert_shape(a: &Answer, what: &str) {
    assert!(
        (400..500).contains(&a.status),
        "{what}: not a 4xx: {}",
        a.show()
    );
    let ct = a
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{what}: content type {ct:?}: {}",
        a.show()
    );
    let obj = a
        .body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not a JSON object: {}", a.show()));
    assert!(
        obj.get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
        "{what}: error code: {}",
        a.show()
    );
    assert!(
        obj.get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.trim().is_empty()),
        "{what}: message: {}",
        a.show()
    );
    for k in obj.keys() {
        assert!(
            ["error", "message", "details"].contains(&k.as_str()),
            "{what}: unexpected member {k}: {}",
            a.show()
        );
    }
}

/// Asserts a refusal: exactly `status`, the documented shape, and the error `code`.
#[track_caller]
fn assert_refused(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.show());
    assert_shape(a, what);
    assert_eq!(a.body["error"], code, "{what}: {}", a.show());
}

/// Asserts a 401 from the management API: `unauthorized` with a Bearer challenge.
#[track_caller]
fn assert_unauthorized(a: &Answer, what: &str) {
    assert_refused(a, 401, "unauthorized", what);
    assert_eq!(
        a.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "{what}"
    );
}

// ----- What is stored ---------------------------------------------------------------------------

/// Ids of what [`seed`] stored and the tests address.
struct Fixture {
    policy: String,
    issuer: String,
    connection: String,
    admin_key: String,
}

const ISSUER: &str = "https://idp.example.com";

fn app_body(id: &str) -> Value {
    json!({
        "id": id, "name": format!("App {id}"), "type": "oauth",
        "clientId": format!("{id}-client"), "clientSecret": format!("{id}-secret"),
        "authorizationUrl": "https://provider.example/authorize",
        "tokenUrl": "https://provider.example/token",
        "scopes": [{"name": "read"}, {"name": "write"}],
        "defaultScopes": ["read"],
    })
}

fn issuer_body(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwksUrl": format!("{issuer}/jwks.json"),
        "audiences": ["https://mcp.example.test/mcp"],
        "algorithms": ["ES256"],
        "rolesClaim": "roles",
        "clockSkewSeconds": 30,
    })
}

/// One of everything: roles Viewer and Editor, tenant acme, user alice (Viewer; Editor in acme),
/// an OAuth app `cal` with a policy and an imported token for alice, an API-key app `weather` with
/// alice's key, a trusted issuer, a client `mcp`.
async fn seed(s: &TestServer) -> Fixture {
    for r in ["Viewer", "Editor"] {
        s.must_post("/v1/mgmt/roles", json!({"name": r})).await;
    }
    s.must_post("/v1/mgmt/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "alice", "email": "alice@example.com", "name": "Alice", "roles": ["Viewer"],
               "tenants": [{"tenantId": "acme", "roles": ["Editor"]}]}),
    )
    .await;
    s.must_post("/v1/mgmt/outbound-apps", app_body("cal")).await;
    let policy = s
        .must_post(
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "Viewers", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Viewer"}], "scopes": ["read"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let connection = s
        .must_post(
            "/v1/mgmt/outbound-apps/cal/tokens",
            json!({"tokens": [{"userId": "alice", "accessToken": "alice-access", "refreshToken": "alice-refresh", "scopes": ["read"]}]}),
        )
        .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "weather", "name": "Weather", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/weather/api-keys",
        json!({"apiKey": "alice-weather-key", "userId": "alice"}),
    )
    .await;
    let issuer = s.must_post("/v1/mgmt/issuers", issuer_body(ISSUER)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.must_post(
        "/v1/mgmt/clients",
        json!({"id": "mcp", "name": "MCP server"}),
    )
    .await;
    let (_, keys) = s.get("/v1/mgmt/admin-keys").await;
    let admin_key = keys["items"][0]["id"].as_str().unwrap().to_owned();
    Fixture {
        policy,
        issuer,
        connection,
        admin_key,
    }
}

/// Every list of stored things.
const LISTS: [&str; 13] = [
    "/v1/mgmt/outbound-apps?limit=200",
    "/v1/mgmt/outbound-apps/cal/policies?limit=200",
    "/v1/mgmt/outbound-apps/weather/policies?limit=200",
    "/v1/mgmt/outbound-apps/cal/connections?limit=200",
    "/v1/mgmt/outbound-apps/weather/connections?limit=200",
    "/v1/mgmt/users?limit=200",
    "/v1/mgmt/users/alice/connections?limit=200",
    "/v1/mgmt/roles?limit=200",
    "/v1/mgmt/tenants?limit=200",
    "/v1/mgmt/issuers",
    "/v1/mgmt/clients?limit=200",
    "/v1/mgmt/admin-keys?limit=200",
    "/v1/mgmt/keys",
];

/// What every list answers now.
async fn snapshot(s: &TestServer) -> BTreeMap<&'static str, Value> {
    let mut out = BTreeMap::new();
    for path in LISTS {
        let a = admin_get(s, path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.show());
        out.insert(path, a.body);
    }
    out
}

/// Asserts that nothing stored changed since `before`, and that the server still answers.
async fn assert_unchanged(s: &TestServer, before: &BTreeMap<&'static str, Value>, what: &str) {
    let after = snapshot(s).await;
    for (path, was) in before {
        assert_eq!(&after[path], was, "{what} changed {path}");
    }
    let health = call(s, Method::GET, "/healthz", &Auth::Nothing, None, None).await;
    assert_eq!(health.status, 200, "{what}: the server stopped answering");
}

/// A server with [`seed`] done, and a snapshot of it.
async fn seeded(backend: Backend) -> (TestServer, Fixture, BTreeMap<&'static str, Value>) {
    let s = TestServer::start(backend).await;
    let f = seed(&s).await;
    let before = snapshot(&s).await;
    (s, f, before)
}

// ----- The endpoints ----------------------------------------------------------------------------

/// Whether an endpoint's body is a policy document (read by the policy parser, which reports
/// problems as `invalid_policy` with paths) rather than a typed body (`invalid_body`).
fn is_policy(path: &str) -> bool {
    path.contains("/policies")
}

/// Every endpoint that reads a JSON body, with a body it accepts (see
/// `the_bodies_used_here_are_accepted`).
fn json_endpoints(f: &Fixture) -> Vec<(Method, String, Value)> {
    let mut cal = app_body("cal");
    cal.as_object_mut().unwrap().remove("id");
    cal["name"] = json!("Calendar v2");
    let mut issuer = issuer_body(ISSUER);
    issuer["audiences"] = json!(["https://other.example/mcp"]);
    vec![
        (
            Method::POST,
            "/v1/mgmt/outbound-apps".into(),
            app_body("fresh"),
        ),
        (Method::PUT, "/v1/mgmt/outbound-apps/cal".into(), cal),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies".into(),
            json!({"name": "Editors", "conditions": [{"source": "jwtClaims", "claim": "dept", "operator": "in", "value": ["eng"]}], "scopes": ["write"]}),
        ),
        (
            Method::PUT,
            format!("/v1/mgmt/outbound-apps/cal/policies/{}", f.policy),
            json!({"name": "Viewers", "conditions": [], "scopes": ["read", "write"], "mode": "shadow"}),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/weather/api-keys".into(),
            json!({"apiKey": "bob-key", "userId": "bob"}),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/tokens".into(),
            json!({"tokens": [{"userId": "bob", "accessToken": "bob-access", "scopes": ["read"]}]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/connect".into(),
            json!({"userId": "bob", "scopes": ["read"]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/users".into(),
            json!({"id": "bob", "email": "bob@example.com", "roles": ["Editor"], "tenants": [{"tenantId": "acme", "roles": []}]}),
        ),
        (
            Method::PUT,
            "/v1/mgmt/users/alice".into(),
            json!({"email": "alice@example.com", "roles": ["Editor"], "attributes": {"team": "blue"}}),
        ),
        (
            Method::POST,
            "/v1/mgmt/roles".into(),
            json!({"name": "Auditor", "description": "Reads the log"}),
        ),
        (
            Method::PUT,
            "/v1/mgmt/roles/Viewer".into(),
            json!({"description": "Reads"}),
        ),
        (
            Method::POST,
            "/v1/mgmt/tenants".into(),
            json!({"id": "globex", "name": "Globex", "attributes": {"tier": "gold"}}),
        ),
        (
            Method::PUT,
            "/v1/mgmt/tenants/acme".into(),
            json!({"name": "Acme Corp"}),
        ),
        (
            Method::POST,
            "/v1/mgmt/issuers".into(),
            issuer_body("https://other-idp.example.com"),
        ),
        (
            Method::PUT,
            format!("/v1/mgmt/issuers/{}", f.issuer),
            issuer,
        ),
        (
            Method::POST,
            "/v1/mgmt/clients".into(),
            json!({"id": "other", "name": "Other", "allowedApps": ["cal"]}),
        ),
        (
            Method::PUT,
            "/v1/mgmt/clients/mcp".into(),
            json!({"name": "MCP 2"}),
        ),
        (
            Method::POST,
            "/v1/mgmt/admin-keys".into(),
            json!({"name": "ci", "scopes": ["read"]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/decisions/simulate".into(),
            json!({"appId": "cal", "subject": {"roles": ["Viewer"], "claims": {"dept": "eng"}}, "scopes": ["read"]}),
        ),
        // The outbound surface reads its body before the inbound token.
        (
            Method::POST,
            "/v1/outbound/apps/cal/token".into(),
            json!({"scopes": ["read"], "forceRefresh": false}),
        ),
        (
            Method::POST,
            "/v1/outbound/apps/cal/connect".into(),
            json!({"scopes": ["read"], "returnUrl": "http://app.test/done"}),
        ),
    ]
}

/// Every management route, with a body it accepts where it reads one.
fn every_mgmt_route(f: &Fixture) -> Vec<(Method, String, Option<Value>)> {
    let mut routes: Vec<(Method, String, Option<Value>)> = json_endpoints(f)
        .into_iter()
        .filter(|(_, p, _)| p.starts_with("/v1/mgmt"))
        .map(|(m, p, b)| (m, p, Some(b)))
        .collect();
    let gets = [
        "/v1/mgmt/outbound-apps".to_owned(),
        "/v1/mgmt/outbound-apps/cal".into(),
        "/v1/mgmt/outbound-apps/cal/policies".into(),
        format!("/v1/mgmt/outbound-apps/cal/policies/{}", f.policy),
        "/v1/mgmt/outbound-apps/cal/connections".into(),
        format!("/v1/mgmt/connections/{}", f.connection),
        "/v1/mgmt/users".into(),
        "/v1/mgmt/users/alice".into(),
        "/v1/mgmt/users/alice/connections".into(),
        "/v1/mgmt/roles".into(),
        "/v1/mgmt/roles/Viewer".into(),
        "/v1/mgmt/tenants".into(),
        "/v1/mgmt/tenants/acme".into(),
        "/v1/mgmt/issuers".into(),
        format!("/v1/mgmt/issuers/{}", f.issuer),
        "/v1/mgmt/clients".into(),
        "/v1/mgmt/clients/mcp".into(),
        "/v1/mgmt/admin-keys".into(),
        "/v1/mgmt/keys".into(),
        "/v1/mgmt/audit".into(),
        "/v1/mgmt/audit/export".into(),
    ];
    routes.extend(gets.into_iter().map(|p| (Method::GET, p, None)));
    let deletes = [
        "/v1/mgmt/outbound-apps/cal".to_owned(),
        format!("/v1/mgmt/outbound-apps/cal/policies/{}", f.policy),
        format!("/v1/mgmt/connections/{}", f.connection),
        "/v1/mgmt/users/alice/connections".into(),
        "/v1/mgmt/users/alice".into(),
        "/v1/mgmt/roles/Viewer".into(),
        "/v1/mgmt/tenants/acme".into(),
        format!("/v1/mgmt/issuers/{}", f.issuer),
        "/v1/mgmt/clients/mcp".into(),
        format!("/v1/mgmt/admin-keys/{}", f.admin_key),
    ];
    routes.extend(deletes.into_iter().map(|p| (Method::DELETE, p, None)));
    let posts = [
        format!("/v1/mgmt/connections/{}/refresh", f.connection),
        "/v1/mgmt/clients/mcp/secret".into(),
        "/v1/mgmt/keys/rotate".into(),
    ];
    routes.extend(
        posts
            .into_iter()
            .map(|p| (Method::POST, p, Some(json!({})))),
    );
    routes
}

// ----- The control ------------------------------------------------------------------------------

/// The bodies the other tests break are themselves accepted, so that every refusal below is
/// caused by what the test changed.
async fn the_bodies_used_here_are_accepted(backend: Backend) {
    let s = TestServer::start(backend).await;
    let f = seed(&s).await;
    for (method, path, body) in json_endpoints(&f) {
        let a = call(
            &s,
            method.clone(),
            &path,
            &Auth::Admin,
            Some("application/json; charset=utf-8"),
            Some(body.to_string().into_bytes()),
        )
        .await;
        if path.starts_with("/v1/outbound") {
            // Read, then refused for want of an inbound token.
            assert_refused(&a, 401, "invalid_token", &format!("{method} {path}"));
        } else {
            assert!(
                (200..300).contains(&a.status),
                "{method} {path}: {}",
                a.show()
            );
        }
    }
    s.shutdown().await;
}

// ----- Malformed bodies -------------------------------------------------------------------------

async fn malformed_json_is_invalid_json(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    // Each breaks the syntax before any field could be refused for its name or type.
    let bodies: [&[u8]; 10] = [
        b"",
        b"{",
        b"nope",
        b"{'name': 'x'}",
        b"{\"\\x\": 1}",
        b"{\"\\ud800\": 1}",
        b"{\"\xff\xfe\": 1}",
        b"[NaN]",
        b"{\"unterminated",
        b"{,}",
    ];
    for (method, path, valid) in json_endpoints(&f) {
        let valid = valid.to_string();
        let colon = valid.find(':').unwrap() + 1;
        let derived = [
            // Cut short.
            valid[..valid.len() / 2].to_owned(),
            // A value that is not JSON where the first one belongs.
            format!("{}NaN{}", &valid[..colon], &valid[colon..]),
            format!("{}'x'{}", &valid[..colon], &valid[colon..]),
            format!("{}\"\\x\"{}", &valid[..colon], &valid[colon..]),
            format!("{}}}", &valid[..colon]),
            // A byte-order mark.
            format!("\u{feff}{valid}"),
            // More after the value: JSON allows one value only.
            format!("{valid} {{}}"),
            format!("{valid},"),
            format!("{valid}x"),
        ];
        for body in bodies
            .iter()
            .map(|b| b.to_vec())
            .chain(derived.map(String::into_bytes))
        {
            let what = format!("{method} {path} {:?}", String::from_utf8_lossy(&body));
            let a = admin_bytes(&s, method.clone(), &path, body).await;
            assert_refused(&a, 400, "invalid_json", &what);
        }
    }
    assert_unchanged(&s, &before, "malformed JSON").await;
    s.shutdown().await;
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    let types = [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("text/json"),
        Some("application/jsonp"),
        Some("json"),
    ];
    for (method, path, body) in json_endpoints(&f) {
        for ct in types {
            let a = call(
                &s,
                method.clone(),
                &path,
                &Auth::Admin,
                ct,
                Some(body.to_string().into_bytes()),
            )
            .await;
            assert_refused(
                &a,
                415,
                "unsupported_media_type",
                &format!("{method} {path} {ct:?}"),
            );
        }
    }
    assert_unchanged(&s, &before, "a wrong content type").await;
    s.shutdown().await;
}

/// Fields whose value is one of a few strings (`type`, `tokenEndpointAuthMethod`, `onDeny`).
const ENUM_FIELDS: [&str; 3] = ["type", "tokenEndpointAuthMethod", "onDeny"];

/// A value of another JSON type than `v`.
fn other_type(v: &Value) -> Value {
    match v {
        Value::String(_) => json!(42),
        Value::Number(_) => json!("forty-two"),
        Value::Bool(_) => json!("yes"),
        Value::Array(_) => json!({"a": 1}),
        Value::Object(_) => json!([1]),
        Value::Null => json!(true),
    }
}

async fn wrong_field_types_are_invalid_body(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    for (method, path, body) in json_endpoints(&f) {
        // Every top-level field, one at a time, with a value of another type (enumerations
        // apart: see `an_enumeration_of_the_wrong_type_is_invalid_body`).
        for (field, value) in body.as_object().unwrap() {
            if ENUM_FIELDS.contains(&field.as_str()) && !is_policy(&path) {
                continue;
            }
            let mut bad = body.clone();
            bad[field] = other_type(value);
            let a = admin_json(&s, method.clone(), &path, &bad).await;
            let what = format!("{method} {path} {field}: {}", bad[field]);
            if is_policy(&path) {
                assert_refused(&a, 400, "invalid_policy", &what);
                let details = a.body["details"].as_array().unwrap();
                assert_eq!(details.len(), 1, "{what}: {}", a.show());
                assert_eq!(details[0]["path"], field.as_str(), "{what}");
                assert!(
                    ["invalid_type", "invalid_value_type"]
                        .contains(&details[0]["code"].as_str().unwrap()),
                    "{what}: {}",
                    a.show()
                );
            } else {
                assert_refused(&a, 400, "invalid_body", &what);
            }
        }
        // The body as a whole of another type (arrays apart: see `a_json_array_is_not_an_object`).
        for whole in [json!("x"), json!(7), json!(null), json!(true)] {
            let a = admin_json(&s, method.clone(), &path, &whole).await;
            let what = format!("{method} {path} whole body {whole}");
            // Every body, policies included, must first be a JSON object.
            assert_refused(&a, 400, "invalid_body", &what);
        }
    }
    // Nested fields and values out of range.
    let nested = [
        (Method::POST, "/v1/mgmt/outbound-apps", {
            let mut b = app_body("x");
            b["scopes"] = json!(["read"]);
            b
        }),
        (Method::POST, "/v1/mgmt/outbound-apps", {
            let mut b = app_body("x");
            b["type"] = json!("soap");
            b
        }),
        (Method::POST, "/v1/mgmt/outbound-apps", {
            let mut b = app_body("x");
            b["onDeny"] = json!("explode");
            b
        }),
        (Method::POST, "/v1/mgmt/outbound-apps", {
            let mut b = app_body("x");
            b["tokenEndpointAuthMethod"] = json!("private_key_jwt");
            b
        }),
        (Method::POST, "/v1/mgmt/outbound-apps", {
            let mut b = app_body("x");
            b["authorizationParams"] = json!({"prompt": 1});
            b
        }),
        (
            Method::POST,
            "/v1/mgmt/users",
            json!({"id": "bob", "tenants": [{"tenantId": "acme", "roles": "Editor"}]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/users",
            json!({"id": "bob", "tenants": ["acme"]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/users",
            json!({"id": "bob", "roles": [1, 2]}),
        ),
        (Method::POST, "/v1/mgmt/issuers", {
            let mut b = issuer_body("https://x.example");
            b["clockSkewSeconds"] = json!(-1);
            b
        }),
        (Method::POST, "/v1/mgmt/issuers", {
            let mut b = issuer_body("https://x.example");
            b["clockSkewSeconds"] = json!(1e12);
            b
        }),
        (Method::POST, "/v1/mgmt/issuers", {
            let mut b = issuer_body("https://x.example");
            b["clockSkewSeconds"] = json!(1.5);
            b
        }),
        (
            Method::POST,
            "/v1/mgmt/admin-keys",
            json!({"name": "k", "scopes": ["read"], "expiresAt": "tomorrow"}),
        ),
        (
            Method::POST,
            "/v1/mgmt/admin-keys",
            json!({"name": "k", "scopes": ["read"], "expiresAt": 1_900_000_000}),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/tokens",
            json!({"tokens": [{"userId": "bob", "accessToken": "t", "expiresAt": "soon"}]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/tokens",
            json!({"tokens": {"userId": "bob"}}),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/tokens",
            json!({"tokens": [{"userId": "bob", "accessToken": 7}]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/decisions/simulate",
            json!({"appId": "cal", "subject": {"roles": "Viewer"}}),
        ),
        (
            Method::POST,
            "/v1/mgmt/decisions/simulate",
            json!({"appId": "cal", "subject": {"claims": []}}),
        ),
        (
            Method::POST,
            "/v1/outbound/apps/cal/token",
            json!({"scopes": "read"}),
        ),
        (
            Method::POST,
            "/v1/outbound/apps/cal/token",
            json!({"scopes": [1]}),
        ),
    ];
    for (method, path, body) in nested {
        let a = admin_json(&s, method.clone(), path, &body).await;
        assert_refused(&a, 400, "invalid_body", &format!("{method} {path} {body}"));
    }
    // Policy documents: each problem is reported at its path.
    for (body, path, code) in [
        (
            json!({"name": "P", "conditions": [7], "scopes": ["read"]}),
            "conditions[0]",
            "invalid_type",
        ),
        (
            json!({"name": "P", "conditions": [{"source": "userRoles", "operator": "equals", "value": ["a"]}], "scopes": ["read"]}),
            "conditions[0].value",
            "invalid_value_type",
        ),
        (
            json!({"name": "P", "conditions": [{"source": "userRoles", "operator": "in", "value": "a"}], "scopes": ["read"]}),
            "conditions[0].value",
            "invalid_value_type",
        ),
        (
            json!({"name": "P", "conditions": [{"source": 1, "operator": "equals", "value": "a"}], "scopes": ["read"]}),
            "conditions[0].source",
            "invalid_type",
        ),
        (
            json!({"name": "P", "conditions": [], "scopes": [1]}),
            "scopes[0]",
            "invalid_type",
        ),
        (
            json!({"name": "P", "conditions": [], "scopes": "some"}),
            "scopes",
            "invalid_type",
        ),
    ] {
        let a = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies",
            &body,
        )
        .await;
        assert_refused(&a, 400, "invalid_policy", &body.to_string());
        assert_eq!(a.body["details"][0]["path"], path, "{}", a.show());
        assert_eq!(a.body["details"][0]["code"], code, "{}", a.show());
    }
    assert_unchanged(&s, &before, "wrong field types").await;
    s.shutdown().await;
}

async fn unknown_fields_are_refused(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    for (method, path, body) in json_endpoints(&f) {
        for extra in ["bogus", "Name", "ID", "client_secret", "__proto__"] {
            if body.get(extra).is_some() {
                continue;
            }
            let mut bad = body.clone();
            bad[extra] = json!("x");
            let a = admin_json(&s, method.clone(), &path, &bad).await;
            let what = format!("{method} {path} +{extra}");
            if is_policy(&path) {
                assert_refused(&a, 400, "invalid_policy", &what);
                assert_eq!(
                    a.body["details"],
                    json!([{"path": extra, "code": "unknown_field", "message": format!("unknown field \"{extra}\"")}]),
                    "{what}"
                );
            } else {
                assert_refused(&a, 400, "invalid_body", &what);
                assert!(
                    a.body["message"].as_str().unwrap().contains(extra),
                    "{what}: the message names the field: {}",
                    a.show()
                );
            }
        }
    }
    // Nested objects refuse unknown fields too.
    let nested = [
        (Method::POST, "/v1/mgmt/outbound-apps", {
            let mut b = app_body("x");
            b["scopes"][0]["bogus"] = json!(1);
            b
        }),
        (
            Method::POST,
            "/v1/mgmt/users",
            json!({"id": "bob", "tenants": [{"tenantId": "acme", "roles": [], "bogus": 1}]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/tokens",
            json!({"tokens": [{"userId": "bob", "accessToken": "t", "bogus": 1}]}),
        ),
        (
            Method::POST,
            "/v1/mgmt/decisions/simulate",
            json!({"appId": "cal", "subject": {"roles": [], "bogus": 1}}),
        ),
    ];
    for (method, path, body) in &nested {
        let a = admin_json(&s, method.clone(), path, body).await;
        assert_refused(&a, 400, "invalid_body", &format!("{method} {path} {body}"));
    }
    // A field given twice is refused, not resolved silently.
    for (path, body) in [
        ("/v1/mgmt/roles", r#"{"name": "Auditor", "name": "Root"}"#),
        (
            "/v1/mgmt/tenants",
            r#"{"id": "t1", "id": "t2", "name": "T"}"#,
        ),
    ] {
        let a = admin_bytes(&s, Method::POST, path, body.as_bytes().to_vec()).await;
        assert_refused(&a, 400, "invalid_body", body);
    }
    let a = admin_json(
        &s,
        Method::POST,
        "/v1/mgmt/outbound-apps/cal/policies",
        &json!({"name": "P", "conditions": [{"source": "userRoles", "operator": "equals", "value": "a", "weight": 2}], "scopes": ["read"]}),
    )
    .await;
    assert_refused(&a, 400, "invalid_policy", "an unknown condition field");
    assert_eq!(a.body["details"][0]["path"], "conditions[0].weight");
    assert_eq!(a.body["details"][0]["code"], "unknown_field");
    assert_unchanged(&s, &before, "unknown fields").await;
    s.shutdown().await;
}

/// A JSON body of exactly `len` bytes: `{"name": "aaa…"}`.
fn body_of_len(len: usize) -> Vec<u8> {
    let overhead = br#"{"name": ""}"#.len();
    let mut body = br#"{"name": ""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', len - overhead));
    body.extend(br#""}"#);
    assert_eq!(body.len(), len);
    body
}

/// Sends `body` over a raw connection, with a Content-Length or chunked, and reads the answer. A
/// server that refuses a body early may answer and close before the whole of it is sent: a failed
/// write is not an error here.
async fn raw_send(
    s: &TestServer,
    method: &Method,
    path: &str,
    body: &[u8],
    chunked: bool,
) -> Answer {
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n",
        s.admin_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read_half, mut write_half) = tokio::io::split(stream);
    let writer = async {
        for chunk in body.chunks(64 * 1024) {
            let frame = if chunked {
                [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat()
            } else {
                chunk.to_vec()
            };
            if write_half.write_all(&frame).await.is_err() {
                return;
            }
        }
        if chunked {
            let _ = write_half.write_all(b"0\r\n\r\n").await;
        }
    };
    let reader = async {
        let mut answer = Vec::new();
        let _ = read_half.read_to_end(&mut answer).await;
        answer
    };
    let ((), answer) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(writer, reader)
    })
    .await
    .expect("the server answers");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.append(
                reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(v.trim()).unwrap(),
            );
        }
    }
    Answer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())),
    }
}

async fn oversized_bodies_are_413(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    for (method, path, _) in json_endpoints(&f) {
        let a = raw_send(&s, &method, &path, &body_of_len(MAX_BODY + 1), false).await;
        assert_refused(&a, 413, "payload_too_large", &format!("{method} {path}"));
    }
    // Far larger, and without a Content-Length: cut off all the same.
    for chunked in [false, true] {
        let a = raw_send(
            &s,
            &Method::POST,
            "/v1/mgmt/roles",
            &body_of_len(8 * MAX_BODY),
            chunked,
        )
        .await;
        assert_refused(
            &a,
            413,
            "payload_too_large",
            &format!("8 MiB, chunked: {chunked}"),
        );
        let a = raw_send(
            &s,
            &Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies",
            &body_of_len(MAX_BODY + 1),
            chunked,
        )
        .await;
        assert_refused(
            &a,
            413,
            "payload_too_large",
            &format!("a policy, chunked: {chunked}"),
        );
    }
    // At the limit the body is read, and the long name is refused for what it is.
    let a = raw_send(
        &s,
        &Method::POST,
        "/v1/mgmt/roles",
        &body_of_len(MAX_BODY),
        true,
    )
    .await;
    assert_refused(&a, 400, "invalid_id", "a body of exactly 1 MiB");
    let a = admin_bytes(&s, Method::POST, "/v1/mgmt/tenants", body_of_len(MAX_BODY)).await;
    assert_refused(
        &a,
        400,
        "invalid_request",
        "a body of exactly 1 MiB without an id",
    );
    assert_unchanged(&s, &before, "oversized bodies").await;
    s.shutdown().await;
}

// ----- Ids --------------------------------------------------------------------------------------

/// Ids that break the slug rules (letters, digits, `-`, `_`, `.`; 1 to 64; a letter or digit first).
fn bad_slugs() -> Vec<String> {
    vec![
        String::new(),
        "a b".into(),
        " a".into(),
        "a\tb".into(),
        "../x".into(),
        "a/b".into(),
        "..".into(),
        "-x".into(),
        ".x".into(),
        "a".repeat(65),
        "café".into(),
        "日本".into(),
        "a\u{0}b".into(),
        "a\nb".into(),
        "%2e%2e".into(),
        "x'--".into(),
    ]
}

async fn invalid_ids_are_invalid_id(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    for id in bad_slugs() {
        let mut app = app_body("x");
        app["id"] = json!(id);
        for (path, body) in [
            ("/v1/mgmt/outbound-apps", app),
            ("/v1/mgmt/tenants", json!({"id": id, "name": "T"})),
            ("/v1/mgmt/clients", json!({"id": id, "name": "C"})),
            (
                "/v1/mgmt/clients",
                json!({"name": "C", "allowedApps": ["cal", id]}),
            ),
        ] {
            let a = admin_json(&s, Method::POST, path, &body).await;
            let what = format!("POST {path} {id:?}");
            assert_refused(&a, 400, "invalid_id", &what);
        }
    }
    // The longest slug is fine (checked on a tenant, removed afterwards).
    let longest = "a".repeat(64);
    let a = admin_json(
        &s,
        Method::POST,
        "/v1/mgmt/tenants",
        &json!({"id": longest, "name": "T"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.show());
    assert_eq!(
        s.delete(&format!("/v1/mgmt/tenants/{longest}")).await.0,
        204
    );
    // User ids are what IdPs put in `sub`: anything visible, up to 255 bytes.
    for id in [
        String::new(),
        "a b".into(),
        "a\tb".into(),
        "a\u{0}b".into(),
        "a\u{7}".into(),
        "x".repeat(256),
    ] {
        let a = admin_json(&s, Method::POST, "/v1/mgmt/users", &json!({"id": id})).await;
        assert_refused(&a, 400, "invalid_id", &format!("user {id:?}"));
    }
    // Role names: no surrounding spaces, no control characters, 1 to 128 characters.
    for name in [
        String::new(),
        " Viewer".into(),
        "Viewer ".into(),
        "a\u{1b}[31m".into(),
        "x".repeat(129),
    ] {
        let a = admin_json(&s, Method::POST, "/v1/mgmt/roles", &json!({"name": name})).await;
        assert_refused(&a, 400, "invalid_id", &format!("role {name:?}"));
    }
    // Ids in paths that cannot exist are not found.
    for path in [
        "/v1/mgmt/outbound-apps/..%2Fcal",
        "/v1/mgmt/outbound-apps/%2E%2E",
        "/v1/mgmt/outbound-apps/cal%2Fpolicies",
        "/v1/mgmt/outbound-apps/cal/policies/..%2F..%2Fcal",
        "/v1/mgmt/tenants/acme%20",
        "/v1/mgmt/users/%20alice",
        "/v1/mgmt/roles/viewer",
        "/v1/mgmt/connections/..",
        "/v1/mgmt/clients/MCP",
    ] {
        let a = admin_get(&s, path).await;
        assert_refused(&a, 404, "not_found", path);
    }
    assert_unchanged(&s, &before, "invalid ids").await;
    s.shutdown().await;
}

async fn duplicate_ids_are_409(backend: Backend) {
    let s = TestServer::start(backend).await;
    let f = seed(&s).await;
    let editors = s
        .must_post(
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "Editors", "conditions": [], "scopes": ["write"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = snapshot(&s).await;
    let mut cal = app_body("cal");
    cal["name"] = json!("Impostor");
    for (path, body) in [
        ("/v1/mgmt/outbound-apps", cal),
        (
            "/v1/mgmt/roles",
            json!({"name": "Viewer", "description": "impostor"}),
        ),
        (
            "/v1/mgmt/tenants",
            json!({"id": "acme", "name": "Impostor"}),
        ),
        ("/v1/mgmt/users", json!({"id": "alice", "name": "Impostor"})),
        (
            "/v1/mgmt/users",
            json!({"id": "alice2", "email": "ALICE@example.com"}),
        ),
        ("/v1/mgmt/clients", json!({"id": "mcp", "name": "Impostor"})),
        ("/v1/mgmt/issuers", issuer_body(ISSUER)),
    ] {
        let a = admin_json(&s, Method::POST, path, &body).await;
        assert_refused(&a, 409, "already_exists", &format!("{path} {body}"));
    }
    // Another user taking alice's email.
    let a = admin_json(
        &s,
        Method::PUT,
        "/v1/mgmt/users/alice",
        &json!({"email": "x@example.com"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.show());
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "bob", "email": "alice@example.com"}),
    )
    .await;
    let a = admin_json(
        &s,
        Method::PUT,
        "/v1/mgmt/users/alice",
        &json!({"email": "Alice@Example.com"}),
    )
    .await;
    assert_refused(
        &a,
        409,
        "already_exists",
        "an update onto another user's email",
    );
    assert_eq!(s.delete("/v1/mgmt/users/bob").await.0, 204);
    let a = admin_json(
        &s,
        Method::PUT,
        "/v1/mgmt/users/alice",
        &json!({"email": "alice@example.com", "name": "Alice", "roles": ["Viewer"], "tenants": [{"tenantId": "acme", "roles": ["Editor"]}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.show());
    // Policy names, case-insensitively, on create and on rename.
    for (method, path, name) in [
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies".to_owned(),
            " viewers ",
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies".to_owned(),
            "EDITORS",
        ),
        (
            Method::PUT,
            format!("/v1/mgmt/outbound-apps/cal/policies/{editors}"),
            "VIEWERS",
        ),
        (
            Method::PUT,
            format!("/v1/mgmt/outbound-apps/cal/policies/{}", f.policy),
            "editors ",
        ),
    ] {
        let a = admin_json(
            &s,
            method.clone(),
            &path,
            &json!({"name": name, "conditions": [], "scopes": ["write"]}),
        )
        .await;
        assert_refused(
            &a,
            409,
            "duplicate_policy_name",
            &format!("{method} {path} {name:?}"),
        );
    }
    let after = snapshot(&s).await;
    for (path, was) in &before {
        if path.starts_with("/v1/mgmt/users") {
            // alice was changed and changed back: only her updatedAt moved.
            continue;
        }
        assert_eq!(&after[path], was, "duplicates changed {path}");
    }
    let mut alice = admin_get(&s, "/v1/mgmt/users/alice").await.body;
    let mut was = before["/v1/mgmt/users?limit=200"]["items"][0].clone();
    for u in [&mut alice, &mut was] {
        u.as_object_mut().unwrap().remove("updatedAt");
    }
    assert_eq!(alice, was);
    s.shutdown().await;
}

async fn unknown_apps_are_404(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    let app = {
        let mut b = app_body("nope");
        b.as_object_mut().unwrap().remove("id");
        b
    };
    let policy = json!({"name": "P", "conditions": [], "scopes": "all"});
    for (method, path, body) in [
        (Method::GET, "/v1/mgmt/outbound-apps/nope".to_owned(), None),
        (Method::PUT, "/v1/mgmt/outbound-apps/nope".into(), Some(app)),
        (Method::DELETE, "/v1/mgmt/outbound-apps/nope".into(), None),
        (
            Method::GET,
            "/v1/mgmt/outbound-apps/nope/policies".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/nope/policies".into(),
            Some(policy.clone()),
        ),
        (
            Method::GET,
            format!("/v1/mgmt/outbound-apps/nope/policies/{}", f.policy),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/mgmt/outbound-apps/nope/policies/{}", f.policy),
            Some(policy),
        ),
        (
            Method::DELETE,
            format!("/v1/mgmt/outbound-apps/nope/policies/{}", f.policy),
            None,
        ),
        (
            Method::GET,
            "/v1/mgmt/outbound-apps/nope/connections".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/nope/api-keys".into(),
            Some(json!({"apiKey": "k", "userId": "bob"})),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/nope/tokens".into(),
            Some(json!({"tokens": [{"userId": "bob", "accessToken": "t"}]})),
        ),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/nope/connect".into(),
            Some(json!({"userId": "bob"})),
        ),
        (
            Method::POST,
            "/v1/mgmt/decisions/simulate".into(),
            Some(json!({"appId": "nope", "subject": {"roles": []}})),
        ),
    ] {
        let a = match &body {
            Some(b) => admin_json(&s, method.clone(), &path, b).await,
            None => call(&s, method.clone(), &path, &Auth::Admin, None, None).await,
        };
        let what = format!("{method} {path}");
        assert_refused(&a, 404, "not_found", &what);
        assert_eq!(
            a.body["details"],
            json!({"entity": "app", "id": "nope"}),
            "{what}"
        );
        assert!(
            a.body["message"].as_str().unwrap().contains("nope"),
            "{what}"
        );
    }
    assert_unchanged(&s, &before, "unknown apps").await;
    s.shutdown().await;
}

// ----- Credentials ------------------------------------------------------------------------------

async fn a_missing_admin_key_is_401(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    for (method, path, body) in every_mgmt_route(&f) {
        let a = call(
            &s,
            method.clone(),
            &path,
            &Auth::Nothing,
            body.as_ref().map(|_| "application/json"),
            body.map(|b| b.to_string().into_bytes()),
        )
        .await;
        assert_unauthorized(&a, &format!("{method} {path}"));
        // The credential is checked before the body is read.
        if method == Method::POST || method == Method::PUT {
            let a = call(
                &s,
                method.clone(),
                &path,
                &Auth::Nothing,
                Some("application/json"),
                Some(b"{".to_vec()),
            )
            .await;
            assert_unauthorized(&a, &format!("{method} {path} with malformed JSON"));
        }
    }
    assert_unchanged(&s, &before, "calls without an admin key").await;
    s.shutdown().await;
}

async fn a_wrong_admin_key_is_401(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    let mut near = s.admin_key.clone().into_bytes();
    let last = near.len() - 1;
    near[last] = if near[last] == b'a' { b'b' } else { b'a' };
    let wrong = [
        format!("pca_{}", portcullis_crypto::random_token(32)),
        String::from_utf8(near).unwrap(),
        s.admin_key.to_uppercase(),
        format!("{}x", s.admin_key),
        s.admin_key[..s.admin_key.len() - 1].to_owned(),
        "pca_".into(),
        "x".repeat(600),
        "a".repeat(8000),
        "' OR '1'='1".into(),
    ];
    let routes = every_mgmt_route(&f);
    for key in &wrong {
        for (method, path, body) in &routes {
            let a = call(
                &s,
                method.clone(),
                path,
                &Auth::Raw(vec![format!("Bearer {key}").into_bytes()]),
                body.as_ref().map(|_| "application/json"),
                body.as_ref().map(|b| b.to_string().into_bytes()),
            )
            .await;
            let cut: String = key.chars().take(16).collect();
            assert_unauthorized(&a, &format!("{method} {path} with {cut:?}"));
        }
    }
    assert_unchanged(&s, &before, "calls with a wrong admin key").await;
    s.shutdown().await;
}

async fn a_malformed_authorization_header_is_401(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    let key = s.admin_key.clone();
    let basic = base64(format!("admin:{key}").as_bytes(), false);
    let malformed: Vec<Vec<Vec<u8>>> = vec![
        vec![format!("Basic {basic}").into_bytes()],
        vec![format!("Token {key}").into_bytes()],
        vec![key.clone().into_bytes()],
        vec![b"Bearer".to_vec()],
        vec![b"Bearer ".to_vec()],
        vec![b"Bearer     ".to_vec()],
        vec![format!("Bearer\t{key}").into_bytes()],
        vec![format!("Bearer{key}").into_bytes()],
        vec![format!("Bearer {key} extra").into_bytes()],
        vec![format!("Bearer \"{key}\"").into_bytes()],
        vec![format!("Bearer {key},").into_bytes()],
        vec![[format!("Bearer {key}").as_bytes(), b"\xff"].concat()],
        vec![b"Bearer \xc3\xa9t\xc3\xa9".to_vec()],
        // Several Authorization headers: ambiguous, so no credential.
        vec![
            format!("Bearer {key}").into_bytes(),
            b"Bearer nope".to_vec(),
        ],
        vec![
            b"Bearer nope".to_vec(),
            format!("Bearer {key}").into_bytes(),
        ],
        vec![
            format!("Bearer {key}").into_bytes(),
            format!("Bearer {key}").into_bytes(),
        ],
    ];
    for values in malformed {
        for (method, path, body) in [
            (Method::GET, "/v1/mgmt/roles", None),
            (
                Method::POST,
                "/v1/mgmt/roles",
                Some(json!({"name": "Intruder"})),
            ),
            (Method::DELETE, "/v1/mgmt/outbound-apps/cal", None),
        ] {
            let shown: Vec<String> = values
                .iter()
                .map(|v| String::from_utf8_lossy(v).chars().take(20).collect())
                .collect();
            let a = call(
                &s,
                method.clone(),
                path,
                &Auth::Raw(values.clone()),
                body.as_ref().map(|_| "application/json"),
                body.map(|b: Value| b.to_string().into_bytes()),
            )
            .await;
            assert_unauthorized(&a, &format!("{method} {path} with {shown:?}"));
        }
    }
    assert_unchanged(&s, &before, "malformed Authorization headers").await;
    // The scheme is case-insensitive and the token trimmed (RFC 6750 §2.1): these work.
    for value in [
        format!("bearer {key}"),
        format!("BEARER {key}"),
        format!("Bearer  {key} "),
    ] {
        let a = call(
            &s,
            Method::GET,
            "/v1/mgmt/roles",
            &Auth::Raw(vec![value.clone().into_bytes()]),
            None,
            None,
        )
        .await;
        assert_eq!(a.status, 200, "{value:?}: {}", a.show());
    }
    s.shutdown().await;
}

// ----- Routing ----------------------------------------------------------------------------------

async fn unknown_routes_are_404(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    for auth in [Auth::Admin, Auth::Nothing] {
        for (method, path) in [
            (Method::GET, "/v1/mgmt/nope"),
            (Method::POST, "/v1/mgmt/nope"),
            (Method::GET, "/v1/mgmt/outbound-apps/cal/nope"),
            (Method::GET, "/v1/mgmt/outbound-apps/cal/policies/x/y"),
            (Method::DELETE, "/v1/mgmt/users/alice/connections/x"),
            (Method::GET, "/v1/nope"),
            (Method::GET, "/"),
            (Method::GET, "/v1/mgmt"),
            (Method::GET, "/v1/mgmt/"),
            (Method::GET, "/v1/mgmt/roles/"),
            (Method::GET, "/V1/MGMT/ROLES"),
            (Method::GET, "/v1/mgmt/%2e%2e/roles"),
            (Method::GET, "/v1/mgmt//roles"),
            (Method::GET, "/.env"),
            (Method::GET, "/v1/outbound/apps/cal"),
        ] {
            let a = call(&s, method.clone(), path, &auth, None, None).await;
            assert_refused(&a, 404, "not_found", &format!("{method} {path}"));
        }
    }
    // A body sent to no route is not read.
    // The server may answer before the client has finished writing, and close: a
    // client that stops at the first write error (as reqwest does) would see a reset,
    // so this one writes and reads side by side.
    for chunked in [false, true] {
        let a = raw_send(
            &s,
            &Method::POST,
            "/v1/mgmt/nope",
            &body_of_len(2 * MAX_BODY),
            chunked,
        )
        .await;
        assert_refused(&a, 404, "not_found", &format!("a body, chunked: {chunked}"));
    }
    assert_unchanged(&s, &before, "unknown routes").await;
    s.shutdown().await;
}

async fn wrong_methods_are_405(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    let policy = format!("/v1/mgmt/outbound-apps/cal/policies/{}", f.policy);
    let connection = format!("/v1/mgmt/connections/{}", f.connection);
    for (method, path, allowed) in [
        (Method::PATCH, "/v1/mgmt/outbound-apps", "GET,HEAD,POST"),
        (Method::DELETE, "/v1/mgmt/outbound-apps", "GET,HEAD,POST"),
        (Method::PUT, "/v1/mgmt/outbound-apps", "GET,HEAD,POST"),
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal",
            "GET,HEAD,PUT,DELETE",
        ),
        (
            Method::PATCH,
            "/v1/mgmt/outbound-apps/cal",
            "GET,HEAD,PUT,DELETE",
        ),
        (Method::PATCH, &policy, "GET,HEAD,PUT,DELETE"),
        (Method::PUT, &connection, "GET,HEAD,DELETE"),
        (Method::DELETE, "/v1/mgmt/roles", "GET,HEAD,POST"),
        (Method::POST, "/v1/mgmt/roles/Viewer", "GET,HEAD,PUT,DELETE"),
        (Method::GET, "/v1/mgmt/keys/rotate", "POST"),
        (Method::DELETE, "/v1/mgmt/keys", "GET,HEAD"),
        (Method::GET, "/v1/mgmt/decisions/simulate", "POST"),
        (Method::POST, "/v1/mgmt/audit", "GET,HEAD"),
        (Method::GET, "/v1/mgmt/clients/mcp/secret", "POST"),
        (Method::GET, "/v1/mgmt/outbound-apps/cal/tokens", "POST"),
        (Method::DELETE, "/v1/mgmt/admin-keys", "GET,HEAD,POST"),
        (Method::GET, "/v1/outbound/apps/cal/token", "POST"),
        (Method::POST, "/v1/outbound/callback", "GET,HEAD"),
        (Method::GET, "/oauth2/token", "POST"),
        (Method::POST, "/healthz", "GET,HEAD"),
    ] {
        for auth in [Auth::Admin, Auth::Nothing] {
            let a = call(
                &s,
                method.clone(),
                path,
                &auth,
                Some("application/json"),
                Some(b"{}".to_vec()),
            )
            .await;
            let what = format!("{method} {path}");
            assert_refused(&a, 405, "method_not_allowed", &what);
            let mut got: Vec<String> = a.headers["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            let mut want: Vec<String> = allowed.split(',').map(str::to_owned).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{what}: Allow");
        }
    }
    assert_unchanged(&s, &before, "wrong methods").await;
    s.shutdown().await;
}

async fn bad_pagination_is_400(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    let b64 = |b: &[u8]| base64(b, true);
    let queries: Vec<(String, &[&str])> = vec![
        ("limit=0".into(), &["invalid_request"]),
        ("limit=201".into(), &["invalid_request"]),
        ("limit=1000".into(), &["invalid_request"]),
        ("limit=4294967295".into(), &["invalid_request"]),
        ("limit=4294967296".into(), &["invalid_query"]),
        ("limit=-1".into(), &["invalid_query"]),
        ("limit=abc".into(), &["invalid_query"]),
        ("limit=".into(), &["invalid_query"]),
        ("limit=1.5".into(), &["invalid_query"]),
        ("limit=1&limit=2".into(), &["invalid_query"]),
        ("cursor=%25%25%25".into(), &["invalid_cursor"]),
        ("cursor=!!!".into(), &["invalid_cursor"]),
        ("cursor=%%%".into(), &["invalid_cursor", "invalid_query"]),
        (
            format!("cursor={}", b64("x".repeat(600).as_bytes())),
            &["invalid_cursor"],
        ),
        (format!("cursor={}", "A".repeat(5000)), &["invalid_cursor"]),
        ("cursor=a&cursor=b".into(), &["invalid_query"]),
        ("page=2".into(), &["invalid_query"]),
        ("offset=10".into(), &["invalid_query"]),
    ];
    for list in [
        "/v1/mgmt/outbound-apps",
        "/v1/mgmt/outbound-apps/cal/policies",
        "/v1/mgmt/outbound-apps/cal/connections",
        "/v1/mgmt/users",
        "/v1/mgmt/users/alice/connections",
        "/v1/mgmt/roles",
        "/v1/mgmt/tenants",
        "/v1/mgmt/clients",
        "/v1/mgmt/admin-keys",
    ] {
        for (q, codes) in &queries {
            let a = admin_get(&s, &format!("{list}?{q}")).await;
            let what = format!("{list}?{q}");
            assert_eq!(a.status, 400, "{what}: {}", a.show());
            assert_shape(&a, &what);
            assert!(
                codes.contains(&a.body["error"].as_str().unwrap()),
                "{what}: {}",
                a.show()
            );
        }
    }
    // Any base64url text is a position, even one no page ended at (bytes that are not UTF-8,
    // NULs): the list reads on from wherever it falls.
    for list in ["/v1/mgmt/outbound-apps", "/v1/mgmt/users", "/v1/mgmt/audit"] {
        for cursor in [b64(&[0xff, 0xfe]), b64(b"\0\0\0"), b64(b"zzz")] {
            let a = admin_get(&s, &format!("{list}?cursor={cursor}")).await;
            assert_eq!(a.status, 200, "{list}?cursor={cursor}: {}", a.show());
        }
    }
    // The audit log pages up to 1000 events; its filters are checked too.
    for list in ["/v1/mgmt/audit", "/v1/mgmt/audit/export"] {
        for q in [
            "limit=0",
            "limit=1001",
            "limit=-5",
            "cursor=!!!",
            "cursor=A",
            "since=yesterday",
            "until=2026-13-45T00:00:00Z",
            "outcome=sideways",
            "colour=red",
        ] {
            let a = admin_get(&s, &format!("{list}?{q}")).await;
            let what = format!("{list}?{q}");
            assert_eq!(a.status, 400, "{what}: {}", a.show());
            assert_shape(&a, &what);
        }
    }
    assert_unchanged(&s, &before, "bad pagination").await;
    s.shutdown().await;
}

// ----- Hostile strings --------------------------------------------------------------------------

/// Strings with control characters: no name may hold one (they would reach logs, terminals and the
/// console verbatim), on either backend.
const CONTROL: [&str; 7] = [
    "a\u{0}b",
    "bell\u{7}",
    "\u{1b}[31mred",
    "line\nbreak",
    "carriage\rreturn",
    "del\u{7f}",
    "next\u{85}line",
];

async fn long_names_and_control_characters_are_refused(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    let long = "n".repeat(129);
    let mut names: Vec<String> = CONTROL.iter().map(|c| (*c).to_owned()).collect();
    names.push(long.clone());
    names.push(" ".repeat(5));
    for name in &names {
        let what = |p: &str| format!("{p} name {name:?}");
        let mut app = app_body("x");
        app["name"] = json!(name);
        let mut cal = app_body("cal");
        cal.as_object_mut().unwrap().remove("id");
        cal["name"] = json!(name);
        for (method, path, body) in [
            (Method::POST, "/v1/mgmt/outbound-apps".to_owned(), app),
            (Method::PUT, "/v1/mgmt/outbound-apps/cal".into(), cal),
            (
                Method::POST,
                "/v1/mgmt/tenants".into(),
                json!({"id": "t", "name": name}),
            ),
            (
                Method::PUT,
                "/v1/mgmt/tenants/acme".into(),
                json!({"name": name}),
            ),
            (
                Method::POST,
                "/v1/mgmt/clients".into(),
                json!({"name": name}),
            ),
            (
                Method::PUT,
                "/v1/mgmt/clients/mcp".into(),
                json!({"name": name}),
            ),
            (
                Method::POST,
                "/v1/mgmt/admin-keys".into(),
                json!({"name": name, "scopes": ["read"]}),
            ),
        ] {
            let a = admin_json(&s, method, &path, &body).await;
            assert_refused(&a, 400, "invalid_request", &what(&path));
        }
        let a = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies",
            &json!({"name": name, "conditions": [], "scopes": ["read"]}),
        )
        .await;
        assert_refused(&a, 400, "invalid_policy", &what("policy"));
        assert_eq!(a.body["details"][0]["path"], "name", "{}", a.show());
        let a = admin_json(
            &s,
            Method::PUT,
            &format!("/v1/mgmt/outbound-apps/cal/policies/{}", f.policy),
            &json!({"name": name, "conditions": [], "scopes": ["read"]}),
        )
        .await;
        assert_refused(&a, 400, "invalid_policy", &what("policy update"));
    }
    // User names and emails.
    for bad in CONTROL {
        for (field, value) in [
            ("name", bad.to_owned()),
            ("email", format!("bob{bad}@example.com")),
        ] {
            let body = json!({"id": "bob", field: value});
            let a = admin_json(&s, Method::POST, "/v1/mgmt/users", &body).await;
            assert_refused(&a, 400, "invalid_request", &body.to_string());
            let body = json!({ field: value });
            let a = admin_json(&s, Method::PUT, "/v1/mgmt/users/alice", &body).await;
            assert_refused(&a, 400, "invalid_request", &body.to_string());
        }
        // A role or tenant named with a control character cannot exist.
        for body in [
            json!({"id": "bob", "roles": [format!("Viewer{bad}")]}),
            json!({"id": "bob", "tenants": [{"tenantId": format!("acme{bad}"), "roles": []}]}),
            json!({"id": "bob", "tenants": [{"tenantId": "acme", "roles": [format!("Editor{bad}")]}]}),
        ] {
            let a = admin_json(&s, Method::POST, "/v1/mgmt/users", &body).await;
            assert_refused(&a, 409, "unknown_reference", &body.to_string());
        }
        // Issuers.
        let a = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/issuers",
            &issuer_body(&format!("https://idp.example/{bad}")),
        )
        .await;
        assert!(a.status == 400, "issuer {bad:?}: {}", a.show());
        assert_shape(&a, "issuer");
        let mut claims = issuer_body("https://claims.example");
        claims["rolesClaim"] = json!(format!("roles{bad}"));
        let a = admin_json(&s, Method::POST, "/v1/mgmt/issuers", &claims).await;
        assert!(a.status == 400, "rolesClaim {bad:?}: {}", a.show());
        // The simulator looks nothing up for ids that cannot exist.
        let a = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/decisions/simulate",
            &json!({"appId": format!("cal{bad}"), "subject": {"roles": []}}),
        )
        .await;
        assert_refused(&a, 404, "not_found", &format!("simulate app {bad:?}"));
        let a = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/decisions/simulate",
            &json!({"appId": "cal", "subject": {"userId": format!("alice{bad}")}}),
        )
        .await;
        assert_refused(&a, 400, "invalid_id", &format!("simulate user {bad:?}"));
    }
    // Descriptions are multi-line text: line breaks and tabs are fine, other control characters not.
    for bad in ["a\u{0}b", "bell\u{7}", "\u{1b}[2J"] {
        for (method, path, body) in [
            (
                Method::PUT,
                "/v1/mgmt/roles/Viewer",
                json!({"description": bad}),
            ),
            (
                Method::POST,
                "/v1/mgmt/roles",
                json!({"name": "Auditor", "description": bad}),
            ),
            (Method::POST, "/v1/mgmt/outbound-apps", {
                let mut b = app_body("x");
                b["description"] = json!(bad);
                b
            }),
        ] {
            let a = admin_json(&s, method, path, &body).await;
            assert_refused(
                &a,
                400,
                "invalid_request",
                &format!("{path} description {bad:?}"),
            );
        }
    }
    // Too long.
    for (path, body, code) in [
        (
            "/v1/mgmt/roles",
            json!({"name": "Auditor", "description": "d".repeat(1025)}),
            "invalid_request",
        ),
        (
            "/v1/mgmt/users",
            json!({"id": "bob", "name": "n".repeat(257)}),
            "invalid_request",
        ),
        (
            "/v1/mgmt/users",
            json!({"id": "bob", "email": format!("{}@example.com", "b".repeat(250))}),
            "invalid_request",
        ),
        (
            "/v1/mgmt/issuers",
            issuer_body(&format!("https://idp.example/{}", "i".repeat(1100))),
            "invalid_issuer",
        ),
        (
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "P", "description": "d".repeat(1025), "conditions": [], "scopes": ["read"]}),
            "invalid_policy",
        ),
        (
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "P", "conditions": [{"source": "jwtClaims", "claim": "c", "operator": "equals", "value": "v".repeat(1025)}], "scopes": ["read"]}),
            "invalid_policy",
        ),
    ] {
        let a = admin_json(&s, Method::POST, path, &body).await;
        assert_refused(&a, 400, code, &format!("{path} too long"));
    }
    // Very long ids in paths and queries are answered, not choked on.
    for path in [
        format!("/v1/mgmt/outbound-apps/{}", "a".repeat(4000)),
        format!("/v1/mgmt/users/{}", "u".repeat(4000)),
        format!("/v1/mgmt/roles?cursor={}", "A".repeat(4000)),
    ] {
        let a = admin_get(&s, &path).await;
        assert!((400..500).contains(&a.status), "{}", a.show());
        assert_shape(&a, "a long path");
    }
    assert_unchanged(&s, &before, "hostile names").await;
    s.shutdown().await;
}

async fn sql_looking_and_unusual_text_is_stored_verbatim(backend: Backend) {
    let (s, _f, _before) = seeded(backend).await;
    let sql = [
        "x'); DROP TABLE users;--",
        "' OR '1'='1",
        "\"; DELETE FROM outbound_apps; --",
        "Robert'); DROP TABLE roles;--",
        "%' OR 1=1 --",
        "\\'; --",
        "$1 $2 ? %s {} ${x}",
        "🦀 ﷽ ẞ Ω \u{202e}gnp.exe",
        "zero\u{200b}width",
        "<script>alert(1)</script>",
    ];
    for (i, text) in sql.iter().enumerate() {
        let app = format!("app-{i}");
        let mut body = app_body(&app);
        body["name"] = json!(text);
        body["description"] = json!(format!("{text}\n\tsecond line"));
        let a = admin_json(&s, Method::POST, "/v1/mgmt/outbound-apps", &body).await;
        assert_eq!(a.status, 201, "{text:?}: {}", a.show());
        let got = admin_get(&s, &format!("/v1/mgmt/outbound-apps/{app}")).await;
        assert_eq!(got.body["name"], *text);
        assert_eq!(got.body["description"], format!("{text}\n\tsecond line"));

        let p = admin_json(
            &s,
            Method::POST,
            &format!("/v1/mgmt/outbound-apps/{app}/policies"),
            &json!({"name": text, "description": text, "conditions": [
                {"source": "userRoles", "operator": "equals", "value": text},
                {"source": "jwtClaims", "claim": "dept", "operator": "in", "value": [text, "x"]}
            ], "scopes": ["read"]}),
        )
        .await;
        assert_eq!(p.status, 201, "{text:?}: {}", p.show());
        assert_eq!(p.body["name"], *text);
        assert_eq!(p.body["conditions"][0]["value"], *text);

        let role = text.trim().to_owned();
        let r = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/roles",
            &json!({"name": role, "description": text}),
        )
        .await;
        assert_eq!(r.status, 201, "{role:?}: {}", r.show());
        let tenant = format!("t-{i}");
        let t = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/tenants",
            &json!({"id": tenant, "name": text, "attributes": {text.to_string(): text}}),
        )
        .await;
        assert_eq!(t.status, 201, "{text:?}: {}", t.show());
        // User ids take anything visible.
        let user: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let u = admin_json(
            &s,
            Method::POST,
            "/v1/mgmt/users",
            &json!({"id": user, "name": text, "email": format!("{}@example.com", i), "roles": [role], "tenants": [{"tenantId": tenant, "roles": [role]}], "attributes": {"note": text}}),
        )
        .await;
        assert_eq!(u.status, 201, "{user:?}: {}", u.show());
        let encoded: String = url::form_urlencoded::byte_serialize(user.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        let got = admin_get(&s, &format!("/v1/mgmt/users/{encoded}")).await;
        assert_eq!(got.status, 200, "{user:?}: {}", got.show());
        assert_eq!(got.body["id"], user.as_str());
        assert_eq!(got.body["name"], *text);
        assert_eq!(got.body["roles"], json!([role]));
        assert_eq!(got.body["tenants"][0]["roles"], json!([role]));
        let encoded_role: String = url::form_urlencoded::byte_serialize(role.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        let got = admin_get(&s, &format!("/v1/mgmt/roles/{encoded_role}")).await;
        assert_eq!(got.status, 200, "{role:?}: {}", got.show());
        assert_eq!(got.body["description"], *text);
        for (path, body) in [
            ("/v1/mgmt/clients", json!({"name": text})),
            (
                "/v1/mgmt/admin-keys",
                json!({"name": text, "scopes": ["read"]}),
            ),
        ] {
            let a = admin_json(&s, Method::POST, path, &body).await;
            assert_eq!(a.status, 201, "{path} {text:?}: {}", a.show());
            assert_eq!(a.body["name"], *text);
        }
    }
    // Wildcards and quotes in lookups match nothing but themselves.
    for path in [
        "/v1/mgmt/users/%25",
        "/v1/mgmt/users/_",
        "/v1/mgmt/users/*",
        "/v1/mgmt/users/alice'%20OR%20'1'='1",
        "/v1/mgmt/roles/%25",
        "/v1/mgmt/roles/Viewer'--",
        "/v1/mgmt/outbound-apps/%25",
        "/v1/mgmt/tenants/_",
    ] {
        let a = admin_get(&s, path).await;
        assert_refused(&a, 404, "not_found", path);
    }
    // Every table is still there and whole.
    let users = admin_get(&s, "/v1/mgmt/users?limit=200").await;
    assert_eq!(users.status, 200);
    assert_eq!(users.body["items"].as_array().unwrap().len(), sql.len() + 1);
    assert_eq!(admin_get(&s, "/v1/mgmt/users/alice").await.status, 200);
    let roles = admin_get(&s, "/v1/mgmt/roles?limit=200").await;
    assert_eq!(roles.body["items"].as_array().unwrap().len(), sql.len() + 2);
    let apps = admin_get(&s, "/v1/mgmt/outbound-apps?limit=200").await;
    assert_eq!(apps.body["items"].as_array().unwrap().len(), sql.len() + 2);
    s.shutdown().await;
}

// ----- Deep nesting -----------------------------------------------------------------------------

async fn deeply_nested_json_is_refused(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let unclosed = "[".repeat(MAX_BODY - 1);
    for (method, path, _) in json_endpoints(&f) {
        for (label, body) in [
            ("arrays", arrays.clone()),
            ("objects", objects.clone()),
            ("unclosed", unclosed.clone()),
            (
                "in a field",
                format!(r#"{{"name": "x", "attributes": {objects}}}"#),
            ),
            (
                "in a condition",
                format!(
                    r#"{{"name": "x", "conditions": [{{"source": "userRoles", "operator": "equals", "value": {arrays}}}], "scopes": ["read"]}}"#
                ),
            ),
        ] {
            let a = admin_bytes(&s, method.clone(), &path, body.into_bytes()).await;
            let what = format!("{method} {path} {label}");
            assert_eq!(a.status, 400, "{what}: {}", a.show());
            assert_shape(&a, &what);
        }
    }
    assert_unchanged(&s, &before, "deeply nested JSON").await;
    // Reasonable nesting where free-form JSON is allowed is stored as given.
    let nested = (0..50).fold(json!("leaf"), |inner, _| json!({"a": inner}));
    let a = admin_json(
        &s,
        Method::POST,
        "/v1/mgmt/tenants",
        &json!({"id": "deep", "name": "Deep", "attributes": {"tree": nested}}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.show());
    assert_eq!(
        admin_get(&s, "/v1/mgmt/tenants/deep").await.body["attributes"]["tree"],
        nested
    );
    s.shutdown().await;
}

// ----- A policy with every error ----------------------------------------------------------------

async fn a_policy_with_every_error_reports_them_all(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    let doc = json!({
        "name": "   ",
        "description": "d".repeat(1025),
        "priority": 1,
        "conditions": [
            "userRoles equals Viewer",
            {"source": "groups", "operator": "equals", "value": "x"},
            {"source": "userRoles", "claim": "roles", "operator": "equals", "value": 1},
            {"source": "jwtClaims", "operator": "in", "value": []},
            {"source": "jwtClaims", "claim": "a..b", "operator": "within", "value": "x"},
            {"source": "jwtClaims", "claim": "dept", "operator": "equals", "value": {"x": 1}},
            {"source": "userRoles", "operator": "in", "value": ["ok", null]},
            {"operator": "equals"},
            {"source": "userRoles", "operator": "equals", "value": "x", "weight": 2}
        ],
        "scopes": ["read", "read", "", 7, "admin"],
        "mode": "sometimes"
    });
    for (method, path) in [
        (
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies".to_owned(),
        ),
        (
            Method::PUT,
            format!("/v1/mgmt/outbound-apps/cal/policies/{}", _f.policy),
        ),
    ] {
        let a = admin_json(&s, method.clone(), &path, &doc).await;
        assert_refused(&a, 400, "invalid_policy", &format!("{method} {path}"));
        let got: Vec<(String, String)> = a.body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
                (
                    d["path"].as_str().unwrap().to_owned(),
                    d["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("priority", "unknown_field"),
            ("name", "empty_name"),
            ("description", "limit_exceeded"),
            ("conditions[0]", "invalid_type"),
            ("conditions[1].source", "unknown_source"),
            ("conditions[2].claim", "unexpected_claim"),
            ("conditions[2].value", "invalid_value_type"),
            ("conditions[3].claim", "missing_claim"),
            ("conditions[3].value", "invalid_value_type"),
            ("conditions[4].claim", "invalid_claim_path"),
            ("conditions[4].operator", "unknown_operator"),
            ("conditions[5].value", "invalid_value_type"),
            ("conditions[6].value[1]", "invalid_value_type"),
            ("conditions[7].source", "missing_field"),
            ("conditions[7].value", "missing_field"),
            ("conditions[8].weight", "unknown_field"),
            ("scopes[3]", "invalid_type"),
            ("scopes[1]", "duplicate_scope"),
            ("scopes[2]", "empty_scopes"),
            ("scopes[4]", "unknown_scope"),
            ("mode", "invalid_type"),
        ]
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
        assert_eq!(got, want, "{}", a.show());
        assert!(
            a.body["message"]
                .as_str()
                .unwrap()
                .contains("20 more problems"),
            "{}",
            a.show()
        );
    }
    assert_unchanged(&s, &before, "an invalid policy").await;
    s.shutdown().await;
}

// ----- Fuzz -------------------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*): no dependency, and a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Field names the API knows, so that random bodies get past the first check now and then.
const FIELDS: [&str; 40] = [
    "id",
    "name",
    "type",
    "description",
    "clientId",
    "clientSecret",
    "authorizationUrl",
    "tokenUrl",
    "revocationUrl",
    "userinfoUrl",
    "scopes",
    "defaultScopes",
    "pkce",
    "authorizationParams",
    "narrowScopesOnRefresh",
    "tokenEndpointAuthMethod",
    "onDeny",
    "conditions",
    "source",
    "claim",
    "operator",
    "value",
    "mode",
    "email",
    "roles",
    "tenants",
    "tenantId",
    "attributes",
    "disabled",
    "issuer",
    "jwksUrl",
    "audiences",
    "algorithms",
    "apiKey",
    "userId",
    "tokens",
    "accessToken",
    "expiresAt",
    "appId",
    "subject",
];

const STRINGS: [&str; 24] = [
    "",
    "a",
    "all",
    "read",
    "oauth",
    "apiKey",
    "userRoles",
    "jwtClaims",
    "equals",
    "in",
    "enforce",
    "shadow",
    "cal",
    "alice",
    "acme",
    "Viewer",
    "https://provider.example/x",
    "http://127.0.0.1:1/x",
    "x'); DROP TABLE users;--",
    "../x",
    "\u{0}",
    "\u{1b}[31m",
    "2026-01-01T00:00:00Z",
    "🦀",
];

fn random_string(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "z".repeat(rng.below(3000)),
        1 => (0..rng.below(20))
            .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'))
            .collect(),
        _ => (*rng.pick(&STRINGS)).to_owned(),
    }
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth >= 4;
    match rng.below(if leaf { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => rng
            .pick(&[
                json!(0),
                json!(-1),
                json!(1.5),
                json!(1e308),
                json!(u64::MAX),
                json!(i64::MIN),
                json!(4_294_967_296u64),
            ])
            .clone(),
        3 | 4 => json!(random_string(rng)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(6) {
                let key = if rng.below(4) == 0 {
                    random_string(rng)
                } else {
                    (*rng.pick(&FIELDS)).to_owned()
                };
                m.insert(key, random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// A valid body with one part changed: a field replaced, removed or added, somewhere inside.
fn mutate(rng: &mut Rng, v: &Value, depth: usize) -> Value {
    let mut out = v.clone();
    match &mut out {
        Value::Object(m) if !m.is_empty() && depth < 4 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(4) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    m.insert(
                        (*rng.pick(&FIELDS)).to_owned(),
                        random_value(rng, depth + 1),
                    );
                }
                2 => {
                    let inner = mutate(rng, &m[&key], depth + 1);
                    m.insert(key, inner);
                }
                _ => {
                    m.insert(key, random_value(rng, depth + 1));
                }
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 4 => {
            let i = rng.below(a.len());
            a[i] = if rng.below(2) == 0 {
                mutate(rng, &a[i], depth + 1)
            } else {
                random_value(rng, depth + 1)
            };
        }
        _ => return random_value(rng, depth),
    }
    out
}

async fn random_bodies_never_cause_a_5xx(backend: Backend) {
    let (s, f, _) = seeded(backend).await;
    let seed = std::env::var("PORTCULLIS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    let rounds: usize = std::env::var("PORTCULLIS_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // xorshift stays at zero from zero.
    let mut rng = Rng(seed.max(1));
    let endpoints = json_endpoints(&f);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for round in 0..rounds {
        let mut requests: Vec<(Method, String, Vec<u8>)> = Vec::new();
        for (method, path, valid) in &endpoints {
            let body = match rng.below(10) {
                0 => random_string(&mut rng).into_bytes(),
                1..=3 => random_value(&mut rng, 0).to_string().into_bytes(),
                _ => mutate(&mut rng, valid, 0).to_string().into_bytes(),
            };
            requests.push((method.clone(), path.clone(), body));
        }
        requests.push((
            Method::POST,
            "/oauth2/token".to_owned(),
            random_string(&mut rng).into_bytes(),
        ));
        let answers =
            futures_util::future::join_all(requests.iter().map(|(method, path, body)| {
                let ct = if path == "/oauth2/token" {
                    "application/x-www-form-urlencoded"
                } else {
                    "application/json"
                };
                call(
                    &s,
                    method.clone(),
                    path,
                    &Auth::Admin,
                    Some(ct),
                    Some(body.clone()),
                )
            }))
            .await;
        for ((method, path, body), a) in requests.iter().zip(answers) {
            *statuses.entry(a.status).or_default() += 1;
            let shown: String = String::from_utf8_lossy(body).chars().take(300).collect();
            assert!(
                a.status < 500,
                "seed {seed:#x} round {round}: {method} {path} {shown:?} → {}",
                a.show()
            );
            if a.status >= 400 && path != "/oauth2/token" {
                assert_shape(
                    &a,
                    &format!("seed {seed:#x} round {round}: {method} {path} {shown:?}"),
                );
            }
        }
    }
    // The generator reaches past the parsers: some bodies are accepted, most are refused.
    assert!(
        statuses.range(200..300).map(|(_, n)| n).sum::<usize>() > 0,
        "{statuses:?}"
    );
    assert!(
        statuses.range(400..500).map(|(_, n)| n).sum::<usize>() > 0,
        "{statuses:?}"
    );
    let health = call(&s, Method::GET, "/healthz", &Auth::Nothing, None, None).await;
    assert_eq!(health.status, 200);
    let ready = call(&s, Method::GET, "/readyz", &Auth::Nothing, None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.show());
    assert_eq!(admin_get(&s, "/v1/mgmt/users/alice").await.status, 200);
    s.shutdown().await;
}

// ----- Known bugs -------------------------------------------------------------------------------

/// A body whose enumeration field holds a number, a boolean or an array is valid JSON of the wrong
/// shape: `invalid_body`, like every other wrong type.
async fn an_enumeration_of_the_wrong_type_is_invalid_body(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    for field in ENUM_FIELDS {
        for value in [json!(42), json!(true), json!(["oauth"])] {
            let mut body = app_body("x");
            body[field] = value.clone();
            let a = admin_json(&s, Method::POST, "/v1/mgmt/outbound-apps", &body).await;
            assert_refused(&a, 400, "invalid_body", &format!("{field}: {value}"));
        }
    }
    assert_unchanged(&s, &before, "enumerations of the wrong type").await;
    s.shutdown().await;
}

/// Bodies are JSON objects: an array is not read as the fields in declaration order.
async fn a_json_array_is_not_an_object(backend: Backend) {
    let (s, f, before) = seeded(backend).await;
    for (method, path, _) in json_endpoints(&f) {
        if !is_policy(&path) {
            let a = admin_json(&s, method.clone(), &path, &json!([])).await;
            assert_refused(&a, 400, "invalid_body", &format!("{method} {path} []"));
        }
    }
    for (path, body) in [
        ("/v1/mgmt/roles", json!(["Auditor", "reads"])),
        ("/v1/mgmt/tenants", json!(["globex", "Globex"])),
        ("/v1/mgmt/admin-keys", json!(["ci"])),
    ] {
        let a = admin_json(&s, Method::POST, path, &body).await;
        assert_refused(&a, 400, "invalid_body", &format!("{path} {body}"));
    }
    assert_unchanged(&s, &before, "arrays for objects").await;
    s.shutdown().await;
}

/// An id holding NUL cannot exist: lookups answer 404, on either backend.
async fn ids_with_a_nul_byte_are_not_found(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    for (method, path) in [
        (Method::GET, "/v1/mgmt/outbound-apps/a%00b"),
        (Method::DELETE, "/v1/mgmt/outbound-apps/a%00b"),
        (Method::GET, "/v1/mgmt/outbound-apps/a%00b/policies"),
        (Method::GET, "/v1/mgmt/outbound-apps/cal/policies/a%00b"),
        (Method::GET, "/v1/mgmt/outbound-apps/a%00b/connections"),
        (Method::GET, "/v1/mgmt/connections/a%00b"),
        (Method::DELETE, "/v1/mgmt/connections/a%00b"),
        (Method::GET, "/v1/mgmt/users/a%00b"),
        (Method::DELETE, "/v1/mgmt/users/a%00b"),
        (Method::GET, "/v1/mgmt/roles/a%00b"),
        (Method::DELETE, "/v1/mgmt/roles/a%00b"),
        (Method::GET, "/v1/mgmt/tenants/a%00b"),
        (Method::GET, "/v1/mgmt/issuers/a%00b"),
        (Method::GET, "/v1/mgmt/clients/a%00b"),
        (Method::DELETE, "/v1/mgmt/admin-keys/a%00b"),
    ] {
        let a = call(&s, method.clone(), path, &Auth::Admin, None, None).await;
        assert_refused(&a, 404, "not_found", &format!("{method} {path}"));
    }
    // A user id with a control character names no possible user.
    let a = admin_get(&s, "/v1/mgmt/users/a%00b/connections").await;
    assert_refused(&a, 404, "not_found", "users/a%00b/connections");
    // Filters match nothing.
    for path in ["/v1/mgmt/audit?appId=a%00b"] {
        let a = admin_get(&s, path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.show());
        assert_eq!(a.body["items"], json!([]), "{path}");
    }
    assert_unchanged(&s, &before, "ids with NUL").await;
    s.shutdown().await;
}

/// The owner of a stored credential is named like a user, and its token type and provider subject
/// are plain text: a NUL or an escape sequence in any of them is a 400, on either backend.
async fn stored_credentials_with_control_characters_are_refused(backend: Backend) {
    let (s, _f, before) = seeded(backend).await;
    for bad in ["a\u{0}b", "a\u{1b}[2Jb"] {
        for (path, body) in [
            (
                "/v1/mgmt/outbound-apps/weather/api-keys",
                json!({"apiKey": "k", "userId": bad}),
            ),
            (
                "/v1/mgmt/outbound-apps/weather/api-keys",
                json!({"apiKey": "k", "tenantId": bad}),
            ),
            (
                "/v1/mgmt/outbound-apps/cal/tokens",
                json!({"tokens": [{"userId": bad, "accessToken": "t"}]}),
            ),
            ("/v1/mgmt/outbound-apps/cal/connect", json!({"userId": bad})),
            (
                "/v1/mgmt/outbound-apps/cal/connect",
                json!({"tenantId": bad}),
            ),
            (
                "/v1/mgmt/outbound-apps/cal/tokens",
                json!({"tokens": [{"userId": "bob", "accessToken": "t", "tokenType": bad}]}),
            ),
            (
                "/v1/mgmt/outbound-apps/cal/tokens",
                json!({"tokens": [{"userId": "bob", "accessToken": "t", "providerSubject": bad}]}),
            ),
        ] {
            let a = admin_json(&s, Method::POST, path, &body).await;
            assert_eq!(a.status, 400, "{path} {body}: {}", a.show());
            assert_shape(&a, &format!("{path} {body}"));
        }
    }
    assert_unchanged(&s, &before, "owners with control characters").await;
    s.shutdown().await;
}

/// The issuer list pages like every other list, and refuses what it does not understand.
async fn the_issuer_list_checks_its_query(backend: Backend) {
    let (s, _f, _before) = seeded(backend).await;
    for q in ["limit=0", "limit=1000", "cursor=!!!", "colour=red"] {
        let a = admin_get(&s, &format!("/v1/mgmt/issuers?{q}")).await;
        assert_eq!(a.status, 400, "{q}: {}", a.show());
        assert_shape(&a, q);
    }
    s.shutdown().await;
}

both_backends!(
    an_enumeration_of_the_wrong_type_is_invalid_body,
    a_json_array_is_not_an_object,
    the_issuer_list_checks_its_query,
    ids_with_a_nul_byte_are_not_found,
    stored_credentials_with_control_characters_are_refused,
    random_bodies_never_cause_a_5xx,
    the_bodies_used_here_are_accepted,
    malformed_json_is_invalid_json,
    a_body_that_is_not_json_is_415,
    wrong_field_types_are_invalid_body,
    unknown_fields_are_refused,
    oversized_bodies_are_413,
    invalid_ids_are_invalid_id,
    duplicate_ids_are_409,
    unknown_apps_are_404,
    a_missing_admin_key_is_401,
    a_wrong_admin_key_is_401,
    a_malformed_authorization_header_is_401,
    unknown_routes_are_404,
    wrong_methods_are_405,
    bad_pagination_is_400,
    long_names_and_control_characters_are_refused,
    sql_looking_and_unusual_text_is_stored_verbatim,
    deeply_nested_json_is_refused,
    a_policy_with_every_error_reports_them_all,
);
