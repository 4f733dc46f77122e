//! The token vault end to end: the consent flow and what can go wrong in it, incremental consent,
//! refresh (rotation, `invalid_grant`, transient and persistent provider failures, a hanging
//! provider, one refresh for many concurrent requests), API keys, token management, import, and
//! tenant connections. Everything goes over HTTP to a real server, against the stand-in provider
//! and real inbound tokens, on both backends.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_domain::Timestamp;
use serde_json::{Value, json};
use url::Url;

use crate::both_backends;
use crate::support::{Backend, Idp, Provider, TestServer};

const APP: &str = "calendar";
const READ: &str = "calendar.read";
const WRITE: &str = "calendar.write";
const CONTACTS: &str = "contacts.read";
const RETURN_URL: &str = "http://app.test/done?from=tests";

/// A server that trusts an IdP, with the app `calendar` registered on a stand-in provider.
/// The directory users every world starts with.
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

struct World {
    s: TestServer,
    idp: Idp,
    p: Provider,
}

impl World {
    async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        let p = Provider::start().await;
        let idp = Idp::start().await;
        let s = TestServer::start_with(backend, tweak).await;
        s.trust(&idp).await;
        s.must_post(
            "/v1/mgmt/outbound-apps",
            p.app(APP, &[READ, WRITE, CONTACTS]),
        )
        .await;
        // The IdP's alice, bob, carol and dave are directory users of the same ids.
        for id in USERS {
            s.must_post(
                "/v1/mgmt/users",
                json!({ "id": id, "identities": idp.identity(id) }),
            )
            .await;
        }
        Self { s, idp, p }
    }

    /// Replaces the directory user `id` (one of [`USERS`], linked to the IdP's `id`).
    async fn set_user(&self, id: &str, mut body: Value) {
        body["identities"] = self.idp.identity(id);
        let (status, answer) = self.s.put(&format!("/v1/mgmt/users/{id}"), body).await;
        assert_eq!(status, 200, "{answer}");
    }
}

// ----- helpers ------------------------------------------------------------------------------

/// A query parameter of a URL.
fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap_or_else(|e| panic!("{url:?} is not a URL: {e}"))
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Milliseconds since the epoch, now.
fn now_millis() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Seconds from now until an RFC 3339 timestamp of an answer.
fn secs_from_now(v: &Value) -> i64 {
    let t = Timestamp::parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v} is no time")))
        .unwrap_or_else(|| panic!("{v} is not RFC 3339"));
    (t.as_millis() - now_millis()) / 1000
}

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: i64) -> String {
    Timestamp::from_millis(now_millis() + secs * 1000).to_rfc3339()
}

/// The claims of a JWT, unverified (to tell who issued a token handed out).
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("{jwt:?} is not a JWT"));
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
        .unwrap_or_else(|e| panic!("{jwt:?} is not a JWT: {e}"));
    serde_json::from_slice(&bytes).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sorted strings of a JSON array.
fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("{v} is not an array"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn strings(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Waits until the wall clock enters a new second. The stand-in provider's access tokens are JWTs
/// whose only varying claim is `iat` (seconds) and RS256 signatures are deterministic, so two
/// tokens issued within one second are equal: tests that tell an old token from a new one wait.
async fn next_second() {
    let into = u64::try_from(now_millis() % 1000).unwrap();
    tokio::time::sleep(Duration::from_millis(1000 - into + 5)).await;
}

/// What is stored for an app's connections: the list without `lastUsedAt`, which every token
/// handed out moves (it is usage bookkeeping, not the credential).
async fn stored_state(s: &TestServer, app: &str) -> Vec<Value> {
    let mut all = app_connections(s, app).await;
    for c in &mut all {
        c.as_object_mut().unwrap().remove("lastUsedAt");
    }
    all
}

/// An app's connections as the management API lists them (after pending usage marks are written).
async fn app_connections(s: &TestServer, app: &str) -> Vec<Value> {
    s.flush_audit().await;
    let (st, v) = s
        .get(&format!(
            "/v1/mgmt/outbound-apps/{app}/connections?limit=100"
        ))
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("nextCursor").is_none(), "{v}");
    v["items"].as_array().unwrap().clone()
}

/// The one connection of an app.
async fn only_connection(s: &TestServer, app: &str) -> Value {
    let all = app_connections(s, app).await;
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

/// A token request that must be allowed: the `token` member.
async fn must_fetch(s: &TestServer, jwt: &str, app: &str, body: Value) -> Value {
    let (st, v, headers) = s.fetch(Some(jwt), app, body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(headers["cache-control"], "no-store");
    v["token"].clone()
}

/// The access token handed out for `scopes`.
async fn access_token(s: &TestServer, jwt: &str, app: &str, scopes: &[&str]) -> String {
    let t = must_fetch(s, jwt, app, json!({ "scopes": scopes })).await;
    t["accessToken"].as_str().unwrap().to_owned()
}

/// A token request with `forceRefresh`: the new access token.
async fn force_refresh(s: &TestServer, jwt: &str, app: &str) -> String {
    let t = must_fetch(s, jwt, app, json!({ "forceRefresh": true })).await;
    t["accessToken"].as_str().unwrap().to_owned()
}

/// A token request that must answer 404 `not_connected`; the answer.
async fn must_be_not_connected(s: &TestServer, jwt: &str, app: &str, body: Value) -> Value {
    let (st, v, _) = s.fetch(Some(jwt), app, body).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"], "not_connected", "{v}");
    v
}

/// `POST /v1/outbound/apps/{app}/connect` with the user's token: status and body.
async fn post_connect(s: &TestServer, jwt: &str, app: &str, body: Value) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/v1/outbound/apps/{app}/connect", s.url))
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The provider's redirect back to Portcullis for an authorization URL (the browser's first hop).
async fn provider_redirect(s: &TestServer, authorization_url: &str) -> String {
    let resp = s.http.get(authorization_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// Portcullis's callback URL with these query parameters.
fn callback(s: &TestServer, query: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&format!("{}/v1/outbound/callback/{APP}", s.url)).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    url.to_string()
}

/// Asserts a management answer holds none of `secrets` and no member that could carry one, and
/// no string shaped like the provider's refresh tokens (UUIDs).
fn assert_no_secrets(v: &Value, secrets: &[&str]) {
    let text = v.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "a credential leaked: {text}");
    }
    fn walk(v: &Value, text: &str) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    assert!(
                        !matches!(
                            k.as_str(),
                            "accessToken"
                                | "refreshToken"
                                | "apiKey"
                                | "idToken"
                                | "token"
                                | "clientSecret"
                                | "access"
                                | "refresh"
                        ),
                        "a credential member {k:?} in {text}"
                    );
                    walk(v, text);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, text)),
            Value::String(s) => {
                let groups: Vec<usize> = s.split('-').map(str::len).collect();
                assert!(
                    !(groups == [8, 4, 4, 4, 12]
                        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())),
                    "something like a refresh token in {text}"
                );
            }
            _ => {}
        }
    }
    walk(v, &text);
}

// ----- 1. The consent flow ------------------------------------------------------------------

async fn consent_flow_connects_and_hands_out_the_providers_token(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");

    let url =
        w.s.connect_url(
            &alice,
            APP,
            json!({ "scopes": [READ, CONTACTS], "returnUrl": RETURN_URL }),
        )
        .await;
    assert!(url.starts_with(&format!("{}/authorize?", w.p.url)), "{url}");
    assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&url, "client_id").as_deref(), Some("calendar-client"));
    assert_eq!(
        param(&url, "redirect_uri"),
        Some(format!("{}/v1/outbound/callback/{APP}", w.s.url))
    );
    assert_eq!(
        param(&url, "scope").as_deref(),
        Some("calendar.read contacts.read")
    );
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&url, "code_challenge").map(|c| c.len()), Some(43));
    assert!(param(&url, "state").is_some_and(|s| s.len() >= 32), "{url}");
    assert!(
        app_connections(&w.s, APP).await.is_empty(),
        "nothing is stored before the consent"
    );

    // The browser: provider → callback → back to the application.
    let (status, location) = w.s.consent(&url).await;
    assert_eq!(status, 303, "{location}");
    assert!(location.starts_with("http://app.test/done?"), "{location}");
    assert_eq!(param(&location, "from").as_deref(), Some("tests"));
    assert_eq!(param(&location, "connected").as_deref(), Some(APP));
    assert_eq!(param(&location, "error"), None);
    let stats = w.p.stats().await;
    assert_eq!(stats["authorization_code"], 1, "{stats}");

    let c = only_connection(&w.s, APP).await;
    assert_eq!(c["appId"], APP);
    assert_eq!(c["userId"], "alice");
    assert_eq!(c["owner"], "user");
    assert_eq!(c["type"], "oauth");
    assert_eq!(c["status"], "active");
    assert_eq!(sorted(&c["scopes"]), strings(&[READ, CONTACTS]));
    assert_eq!(c["hasRefreshToken"], true);
    assert_eq!(c["providerSubject"], "provider-user-1");
    assert_eq!(c["tokenType"], "Bearer");
    assert_eq!(c["grantedBy"], "user:alice");
    assert!(c.get("tenantId").is_none(), "{c}");
    let expires_in = secs_from_now(&c["expiresAt"]);
    assert!((3590..=3600).contains(&expires_in), "{c}");

    // The token endpoint hands out the provider's access token.
    let token = must_fetch(&w.s, &alice, APP, json!({ "scopes": [READ] })).await;
    let access = token["accessToken"].as_str().unwrap().to_owned();
    let claims = jwt_claims(&access);
    assert_eq!(claims["iss"], w.p.url.as_str(), "{claims}");
    assert_eq!(claims["sub"], "provider-user-1", "{claims}");
    assert_eq!(token["tokenType"], "Bearer");
    assert_eq!(token["owner"], "user");
    assert_eq!(token["userId"], "alice");
    assert_eq!(token["appId"], APP);
    assert_eq!(token["expiresAt"], c["expiresAt"]);
    assert!(token.get("apiKey").is_none());

    // No management answer carries a token.
    let id = c["id"].as_str().unwrap().to_owned();
    let (st, one) = w.s.get(&format!("/v1/mgmt/connections/{id}")).await;
    assert_eq!(st, 200, "{one}");
    let (st, mine) = w.s.get("/v1/mgmt/users/alice/connections").await;
    assert_eq!(st, 200, "{mine}");
    assert_eq!(mine["items"][0]["id"], id.as_str());
    for answer in [json!(app_connections(&w.s, APP).await), one, mine] {
        assert_no_secrets(&answer, &[&access]);
    }

    assert_eq!(
        w.p.stats().await["userinfo"],
        0,
        "the provider's subject came from the id_token"
    );

    // Without a returnUrl the callback shows a page.
    let url =
        w.s.connect_url(&alice, APP, json!({ "scopes": [READ] }))
            .await;
    let (status, page) = w.s.consent(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connected"), "{page}");

    // A returnUrl outside the allow list is refused before anything else.
    for bad in [
        "http://evil.test/done",
        "http://app.test.evil.test/",
        "https://app.test/done",
        "http://user@app.test/done",
        "javascript:alert(1)",
    ] {
        let (st, e) = post_connect(
            &w.s,
            &alice,
            APP,
            json!({ "scopes": [READ], "returnUrl": bad }),
        )
        .await;
        assert_eq!(st, 400, "{bad}: {e}");
        assert_eq!(e["error"], "invalid_return_url", "{bad}: {e}");
    }
    // Who may start a consent, for what.
    let resp =
        w.s.http
            .post(format!("{}/v1/outbound/apps/{APP}/connect", w.s.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let no_fetch_scope = w.idp.token_with(
        portcullis_crypto::jws::Algorithm::ES256,
        "alice",
        json!({ "scope": "openid" }),
    );
    let (st, e) = post_connect(&w.s, &no_fetch_scope, APP, json!({})).await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"], "insufficient_scope", "{e}");
    let (st, e) = post_connect(&w.s, &alice, "nope", json!({})).await;
    assert_eq!(st, 404, "{e}");
    assert_eq!(e["error"], "app_not_found", "{e}");
    let (st, e) = post_connect(&w.s, &alice, APP, json!({ "scopes": ["calendar.admin"] })).await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"], "invalid_scope", "{e}");
    // The default scopes when none are named.
    let url = w.s.connect_url(&alice, APP, json!({})).await;
    assert!(
        param(&url, "scope").is_some_and(|s| s.split(' ').any(|s| s == READ)),
        "{url}"
    );
    w.s.shutdown().await;
}

// ----- 2. Callback errors ---------------------------------------------------------------------

async fn callback_errors_leave_the_stored_connection_alone(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    w.s.connect(&alice, APP, &[READ]).await;
    let token_before = access_token(&w.s, &alice, APP, &[READ]).await;
    let before = stored_state(&w.s, APP).await;
    let unchanged = |label: &'static str| {
        let s = &w.s;
        let before = before.clone();
        async move {
            assert_eq!(
                stored_state(s, APP).await,
                before,
                "{label} changed the stored state"
            );
        }
    };

    // The provider says the user refused: back to the application with the error...
    let url =
        w.s.connect_url(
            &alice,
            APP,
            json!({ "scopes": [WRITE], "returnUrl": RETURN_URL }),
        )
        .await;
    let state = param(&url, "state").unwrap();
    let (st, location) =
        w.s.follow_callback(&callback(
            &w.s,
            &[
                ("state", &state),
                ("error", "access_denied"),
                ("error_description", "the user said no"),
            ],
        ))
        .await;
    assert_eq!(st, 303, "{location}");
    assert!(location.starts_with("http://app.test/done?"), "{location}");
    assert_eq!(param(&location, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&location, "app").as_deref(), Some(APP));
    assert_eq!(param(&location, "connected"), None);
    unchanged("access_denied with a returnUrl").await;
    // ... or, without a returnUrl, a page.
    let url =
        w.s.connect_url(&alice, APP, json!({ "scopes": [WRITE] }))
            .await;
    let state = param(&url, "state").unwrap();
    let (st, page) =
        w.s.follow_callback(&callback(
            &w.s,
            &[("state", &state), ("error", "access_denied")],
        ))
        .await;
    assert_eq!(st, 400, "{page}");
    assert!(page.contains("access_denied"), "{page}");
    unchanged("access_denied").await;
    // The state was used up by the error: a code arriving with it later finds no flow (404).
    let (st, page) =
        w.s.follow_callback(&callback(&w.s, &[("state", &state), ("code", "late")]))
            .await;
    assert_eq!(st, 404, "{page}");

    assert_eq!(access_token(&w.s, &alice, APP, &[READ]).await, token_before);

    // A replayed callback: the first use connects, the second is refused and changes nothing.
    let url =
        w.s.connect_url(&alice, APP, json!({ "scopes": [READ] }))
            .await;
    let back = provider_redirect(&w.s, &url).await;
    let (st, page) = w.s.follow_callback(&back).await;
    assert_eq!(st, 200, "{page}");
    let before_replay = stored_state(&w.s, APP).await;
    let codes = w.p.stats().await["authorization_code"].clone();
    let (st, page) = w.s.follow_callback(&back).await;
    assert_eq!(st, 404, "{page}");
    assert!(page.contains("already used"), "{page}");
    assert_eq!(stored_state(&w.s, APP).await, before_replay);
    assert_eq!(
        w.p.stats().await["authorization_code"],
        codes,
        "a replayed state never reaches the provider"
    );
    let before = before_replay;
    // The first use stored new tokens: from here on, these are the ones that must not change.
    let token_before = access_token(&w.s, &alice, APP, &[READ]).await;
    let unchanged = |label: &'static str| {
        let s = &w.s;
        let before = before.clone();
        async move {
            assert_eq!(
                stored_state(s, APP).await,
                before,
                "{label} changed the stored state"
            );
        }
    };

    // An unknown state (no browser holds its binding: 403), and no state at all (400).
    let (st, page) =
        w.s.follow_callback(&callback(
            &w.s,
            &[("state", "made-up-state-0123456789abcdef"), ("code", "c")],
        ))
        .await;
    assert_eq!(st, 403, "{page}");
    let (st, page) = w.s.follow_callback(&callback(&w.s, &[("code", "c")])).await;
    assert_eq!(st, 400, "{page}");
    let (st, page) =
        w.s.follow_callback(&callback(&w.s, &[("state", ""), ("code", "c")]))
            .await;
    assert_eq!(st, 400, "{page}");
    unchanged("an unknown or missing state").await;

    // A mismatched state: the code of one flow brought back with the state of another. The PKCE
    // verifier of the other flow does not match the code, and the provider refuses.
    let first =
        w.s.connect_url(&alice, APP, json!({ "scopes": [WRITE] }))
            .await;
    let second =
        w.s.connect_url(&alice, APP, json!({ "scopes": [WRITE] }))
            .await;
    let code = param(&provider_redirect(&w.s, &second).await, "code").unwrap();
    let state = param(&first, "state").unwrap();
    let (st, page) =
        w.s.follow_callback(&callback(&w.s, &[("state", &state), ("code", &code)]))
            .await;
    assert_eq!(st, 502, "{page}");
    assert!(page.contains("Not connected"), "{page}");
    unchanged("a mismatched state").await;

    // An expired state. The shortest consent TTL is 60 s and the server's clock is the system's,
    // so the pending flow is aged in the store itself: everything else is the real flow.
    let url =
        w.s.connect_url(
            &alice,
            APP,
            json!({ "scopes": [WRITE], "returnUrl": RETURN_URL }),
        )
        .await;
    let state = param(&url, "state").unwrap();
    let id = hex(&portcullis_crypto::sha256(state.as_bytes()));
    let states = &w.s.core.stores_for_tests().consent_states;
    let mut pending = states
        .take_state(&id)
        .await
        .unwrap()
        .expect("the flow is pending");
    pending.created_at = Timestamp::from_millis(now_millis() - 700_000);
    pending.expires_at = Timestamp::from_millis(now_millis() - 1_000);
    states.insert_state(&pending).await.unwrap();
    let codes = w.p.stats().await["authorization_code"].clone();
    let (st, location) = w.s.consent(&url).await;
    assert_eq!(st, 303, "{location}");
    assert_eq!(param(&location, "error").as_deref(), Some("expired"));
    assert_eq!(param(&location, "connected"), None);
    assert_eq!(
        w.p.stats().await["authorization_code"],
        codes,
        "an expired flow never exchanges its code"
    );
    unchanged("an expired state").await;
    // Without a returnUrl: a page.
    let url =
        w.s.connect_url(&alice, APP, json!({ "scopes": [WRITE] }))
            .await;
    let id = hex(&portcullis_crypto::sha256(
        param(&url, "state").unwrap().as_bytes(),
    ));
    let mut pending = states.take_state(&id).await.unwrap().unwrap();
    pending.expires_at = Timestamp::from_millis(now_millis() - 1_000);
    states.insert_state(&pending).await.unwrap();
    let (st, page) = w.s.consent(&url).await;
    assert_eq!(st, 400, "{page}");
    assert!(page.contains("expired"), "{page}");
    unchanged("an expired state").await;

    assert_eq!(access_token(&w.s, &alice, APP, &[READ]).await, token_before);
    w.s.shutdown().await;
}

async fn code_exchange_failures_keep_the_existing_connection(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    w.s.connect(&alice, APP, &[READ]).await;
    let token_before = access_token(&w.s, &alice, APP, &[READ]).await;
    let before = stored_state(&w.s, APP).await;

    for (mode, error) in [
        ("invalid_grant", "connect_failed"),
        ("error500", "temporarily_unavailable"),
        ("malformed", "connect_failed"),
        ("no_access_token", "connect_failed"),
    ] {
        w.p.set(json!({ "token": mode, "times": 1 })).await;
        let url =
            w.s.connect_url(
                &alice,
                APP,
                json!({ "scopes": [WRITE], "returnUrl": RETURN_URL }),
            )
            .await;
        let (st, location) = w.s.consent(&url).await;
        assert_eq!(st, 303, "{mode}: {location}");
        assert!(location.starts_with("http://app.test/done?"), "{location}");
        assert_eq!(param(&location, "error").as_deref(), Some(error), "{mode}");
        assert_eq!(param(&location, "app").as_deref(), Some(APP), "{mode}");
        assert_eq!(param(&location, "connected"), None, "{mode}");
        assert_eq!(stored_state(&w.s, APP).await, before, "{mode}");
        assert_eq!(
            access_token(&w.s, &alice, APP, &[READ]).await,
            token_before,
            "{mode}"
        );
        // WRITE was never granted.
        let e = must_be_not_connected(&w.s, &alice, APP, json!({ "scopes": [WRITE] })).await;
        assert_eq!(e["details"]["reason"], "missing_scopes", "{e}");

        // Without a returnUrl, a page that says what happened.
        w.p.set(json!({ "token": mode, "times": 1 })).await;
        let url =
            w.s.connect_url(&alice, APP, json!({ "scopes": [WRITE] }))
                .await;
        let (st, page) = w.s.consent(&url).await;
        assert_eq!(st, 502, "{mode}: {page}");
        assert!(page.contains("Nothing was changed"), "{mode}: {page}");
        assert_eq!(stored_state(&w.s, APP).await, before, "{mode}");
    }
    // A user with no connection yet gets none out of a failed exchange either.
    let bob = w.idp.token("bob");
    w.p.set(json!({ "token": "invalid_grant", "times": 1 }))
        .await;
    let url =
        w.s.connect_url(&bob, APP, json!({ "scopes": [READ] }))
            .await;
    let (st, _) = w.s.consent(&url).await;
    assert_eq!(st, 502);
    must_be_not_connected(&w.s, &bob, APP, json!({ "scopes": [READ] })).await;
    assert_eq!(stored_state(&w.s, APP).await, before);
    w.s.shutdown().await;
}

// ----- 3. Incremental consent ---------------------------------------------------------------

async fn incremental_consent_extends_one_connection(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    w.s.connect(&alice, APP, &[READ]).await;
    let first = only_connection(&w.s, APP).await;
    let e = must_be_not_connected(&w.s, &alice, APP, json!({ "scopes": [CONTACTS] })).await;
    assert_eq!(e["details"]["reason"], "missing_scopes", "{e}");
    assert_eq!(e["details"]["missingScopes"], json!([CONTACTS]), "{e}");
    assert!(e["connectUrl"].is_string(), "{e}");

    let url =
        w.s.connect_url(&alice, APP, json!({ "scopes": [CONTACTS] }))
            .await;
    assert_eq!(
        param(&url, "scope").as_deref(),
        Some("contacts.read calendar.read"),
        "the provider is asked for the new scope and what is already granted"
    );
    let (st, page) = w.s.consent(&url).await;
    assert_eq!(st, 200, "{page}");

    let c = only_connection(&w.s, APP).await;
    assert_eq!(c["id"], first["id"], "the same connection, extended");
    assert_eq!(sorted(&c["scopes"]), strings(&[READ, CONTACTS]));
    let t = must_fetch(&w.s, &alice, APP, json!({ "scopes": [READ, CONTACTS] })).await;
    assert_eq!(sorted(&t["scopes"]), strings(&[READ, CONTACTS]));
    assert_eq!(w.p.stats().await["authorization_code"], 2);

    // A provider whose answer names a scope twice (the stand-in grants the scope of the
    // authorization request, which is in the browser's hands): each scope is stored once.
    let url =
        w.s.connect_url(&alice, APP, json!({ "scopes": [READ] }))
            .await;
    let mut tampered = Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "scope" {
                "calendar.read contacts.read calendar.read".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let (st, page) = w.s.consent(tampered.as_str()).await;
    assert_eq!(st, 200, "{page}");
    let c = only_connection(&w.s, APP).await;
    assert_eq!(c["scopes"].as_array().unwrap().len(), 2, "{c}");
    assert_eq!(sorted(&c["scopes"]), strings(&[READ, CONTACTS]));
    w.s.shutdown().await;
}

// ----- 4. Refresh ---------------------------------------------------------------------------

async fn a_token_due_for_refresh_is_refreshed_once_and_rotation_is_kept(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    // A token that expires within the refresh window (60 s).
    w.p.set(json!({ "expiresIn": 30 })).await;
    w.s.connect(&alice, APP, &[READ]).await;
    w.p.set(json!({ "expiresIn": 3600 })).await;
    let c = only_connection(&w.s, APP).await;
    assert!(secs_from_now(&c["expiresAt"]) <= 30, "{c}");
    assert!(c.get("lastRefreshAt").is_none(), "{c}");

    let t = must_fetch(&w.s, &alice, APP, json!({ "scopes": [READ] })).await;
    assert_eq!(
        w.p.refresh_calls().await,
        1,
        "the due token is refreshed once"
    );
    assert!(secs_from_now(&t["expiresAt"]) > 3500, "{t}");
    let refreshed = t["accessToken"].as_str().unwrap().to_owned();
    let c = only_connection(&w.s, APP).await;
    assert!(secs_from_now(&c["expiresAt"]) > 3500, "{c}");
    assert!(c["lastRefreshAt"].is_string(), "{c}");
    assert_eq!(c["hasRefreshToken"], true);
    assert_eq!(c["status"], "active");

    // A fresh token is handed out as is.
    assert_eq!(access_token(&w.s, &alice, APP, &[READ]).await, refreshed);
    assert_eq!(
        w.p.refresh_calls().await,
        1,
        "a fresh token is not refreshed"
    );

    // forceRefresh refreshes; the provider rotates refresh tokens and rejects a used one, so a
    // second and a third refresh succeeding prove the rotated one was stored with the new token.
    next_second().await;
    let second = force_refresh(&w.s, &alice, APP).await;
    assert_ne!(second, refreshed);
    assert_eq!(w.p.refresh_calls().await, 2);
    next_second().await;
    let third = force_refresh(&w.s, &alice, APP).await;
    assert_ne!(third, second);
    assert_eq!(w.p.refresh_calls().await, 3);
    assert_eq!(access_token(&w.s, &alice, APP, &[READ]).await, third);
    let c = only_connection(&w.s, APP).await;
    assert!(c.get("lastRefreshError").is_none(), "{c}");
    assert_eq!(sorted(&c["scopes"]), strings(&[READ]));

    // A provider that does not rotate (no refresh token in its answer): the stored one is kept
    // and keeps working.
    w.p.set(json!({ "rotate": false })).await;
    next_second().await;
    let fourth = force_refresh(&w.s, &alice, APP).await;
    assert_ne!(fourth, third);
    next_second().await;
    let fifth = force_refresh(&w.s, &alice, APP).await;
    assert_ne!(fifth, fourth);
    assert_eq!(w.p.refresh_calls().await, 5);
    assert_eq!(only_connection(&w.s, APP).await["hasRefreshToken"], true);
    w.s.shutdown().await;
}

async fn invalid_grant_on_refresh_requires_consent_again(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    w.s.connect(&alice, APP, &[READ]).await;
    let before = only_connection(&w.s, APP).await;

    w.p.set(json!({ "token": "invalid_grant" })).await;
    let e = must_be_not_connected(
        &w.s,
        &alice,
        APP,
        json!({ "scopes": [READ], "forceRefresh": true }),
    )
    .await;
    assert_eq!(
        e["details"]["reason"], "consent_required_by_provider",
        "{e}"
    );
    let connect_url = w.s.open_link(e["connectUrl"].as_str().unwrap()).await;
    assert!(
        connect_url.starts_with(&format!("{}/authorize?", w.p.url)),
        "{e}"
    );
    assert_eq!(w.p.refresh_calls().await, 1, "a refusal is not retried");

    // The connection is kept, marked, with its refresh token.
    let c = only_connection(&w.s, APP).await;
    assert_eq!(c["id"], before["id"]);
    assert_eq!(c["status"], "consentRequired", "{c}");
    assert!(
        c["lastRefreshError"]
            .as_str()
            .is_some_and(|m| m.contains("invalid_grant")),
        "{c}"
    );
    assert_eq!(c["hasRefreshToken"], true);

    // The next request answers the same without calling the provider.
    let e = must_be_not_connected(&w.s, &alice, APP, json!({ "scopes": [READ] })).await;
    assert_eq!(
        e["details"]["reason"], "consent_required_by_provider",
        "{e}"
    );
    assert!(e["connectUrl"].is_string(), "{e}");
    assert_eq!(w.p.refresh_calls().await, 1);
    let (st, e2) =
        w.s.post(
            &format!("/v1/mgmt/connections/{}/refresh", c["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(st, 409, "{e2}");
    assert_eq!(e2["error"], "consent_required");

    // Consenting again through the link restores the connection.
    w.p.set(json!({ "token": "ok" })).await;
    let (st, page) = w.s.consent(&connect_url).await;
    assert_eq!(st, 200, "{page}");
    let c = only_connection(&w.s, APP).await;
    assert_eq!(c["id"], before["id"]);
    assert_eq!(c["status"], "active", "{c}");
    assert!(c.get("lastRefreshError").is_none(), "{c}");
    let token = access_token(&w.s, &alice, APP, &[READ]).await;
    next_second().await;
    assert_ne!(force_refresh(&w.s, &alice, APP).await, token);
    w.s.shutdown().await;
}

async fn a_transient_provider_failure_is_retried(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    w.s.connect(&alice, APP, &[READ]).await;
    let before = access_token(&w.s, &alice, APP, &[READ]).await;

    w.p.set(json!({ "token": "error500", "times": 1 })).await;
    next_second().await;
    let after = force_refresh(&w.s, &alice, APP).await;
    assert_ne!(after, before);
    assert_eq!(w.p.refresh_calls().await, 2, "one failure, one retry");
    let c = only_connection(&w.s, APP).await;
    assert_eq!(c["status"], "active");
    assert!(c.get("lastRefreshError").is_none(), "{c}");
    w.s.shutdown().await;
}

async fn a_persistent_provider_failure_answers_503_and_keeps_the_refresh_token(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    w.p.set(json!({ "expiresIn": 30 })).await;
    w.s.connect(&alice, APP, &[READ]).await;

    w.p.set(json!({ "token": "error500", "expiresIn": 3600 }))
        .await;
    let (st, e, _) =
        w.s.fetch(Some(&alice), APP, json!({ "scopes": [READ] }))
            .await;
    assert_eq!(st, 503, "{e}");
    assert_eq!(e["error"], "provider_unavailable", "{e}");
    assert_eq!(
        w.p.refresh_calls().await,
        3,
        "the first attempt and the two configured retries"
    );
    let c = only_connection(&w.s, APP).await;
    assert_eq!(c["status"], "active", "{c}");
    assert_eq!(c["hasRefreshToken"], true);
    assert!(c["lastRefreshError"].is_string(), "{c}");

    // The provider recovers: the stored refresh token (which the strict provider still holds
    // valid) works.
    w.p.set(json!({ "token": "ok" })).await;
    let t = must_fetch(&w.s, &alice, APP, json!({ "scopes": [READ] })).await;
    assert!(secs_from_now(&t["expiresAt"]) > 3500, "{t}");
    assert_eq!(w.p.refresh_calls().await, 4);
    let c = only_connection(&w.s, APP).await;
    assert!(c.get("lastRefreshError").is_none(), "{c}");
    w.s.shutdown().await;
}

async fn a_hanging_provider_times_out_and_blocks_no_other_app(backend: Backend) {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[outbound]\nprovider_timeout_seconds = 3\nprovider_retries = 0\n",
    )
    .unwrap();
    let path = config.path().display().to_string();
    let w = World::start_with(backend, |env| {
        env.insert("PORTCULLIS_CONFIG".into(), path);
    })
    .await;
    let other = Provider::start().await;
    w.s.must_post("/v1/mgmt/outbound-apps", other.app("mail", &["mail.read"]))
        .await;
    let (alice, bob) = (w.idp.token("alice"), w.idp.token("bob"));
    w.s.connect(&alice, APP, &[READ]).await;
    w.s.connect(&alice, "mail", &["mail.read"]).await;
    w.s.connect(&bob, APP, &[READ]).await;

    w.p.set(json!({ "token": "hang" })).await;
    let hung = async {
        let started = Instant::now();
        let answer =
            w.s.fetch(Some(&alice), APP, json!({ "forceRefresh": true }))
                .await;
        (answer, started.elapsed())
    };
    let unaffected = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let answer =
            w.s.fetch(Some(&alice), "mail", json!({ "forceRefresh": true }))
                .await;
        let mail_took = started.elapsed();
        // Another user's fresh token of the hanging provider's app is handed out at once too.
        let started = Instant::now();
        let (st, v, _) =
            w.s.fetch(Some(&bob), APP, json!({ "scopes": [READ] }))
                .await;
        assert_eq!(st, 200, "{v}");
        (answer, mail_took.max(started.elapsed()))
    };
    let (((st, e, _), hung_for), ((st2, t, _), other_took)) = tokio::join!(hung, unaffected);
    assert_eq!(st2, 200, "{t}");
    assert!(
        other_took < Duration::from_millis(1500),
        "a refresh at another provider took {other_took:?} while one provider hangs"
    );
    assert_eq!(other.refresh_calls().await, 1);
    assert_eq!(st, 503, "{e}");
    assert_eq!(e["error"], "provider_unavailable", "{e}");
    assert!(
        hung_for >= Duration::from_secs(3) && hung_for < Duration::from_millis(4500),
        "the hung refresh failed after {hung_for:?}, with a 3 s provider timeout"
    );
    assert_eq!(w.p.refresh_calls().await, 1);
    let c = app_connections(&w.s, APP).await;
    assert_eq!(c[0]["hasRefreshToken"], true);
    assert!(c[0]["lastRefreshError"].is_string(), "{c:?}");
    w.s.shutdown().await;
}

// ----- 5. One refresh for many concurrent requests ------------------------------------------

async fn concurrent_requests_share_one_refresh(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.idp.token("alice");
    w.p.set(json!({ "expiresIn": 0 })).await;
    w.s.connect(&alice, APP, &[READ]).await;
    assert!(secs_from_now(&only_connection(&w.s, APP).await["expiresAt"]) <= 0);
    // A slow refresh, so that every request arrives while it is in flight.
    w.p.set(json!({ "expiresIn": 3600, "token": "slow", "delayMs": 500, "times": 1 }))
        .await;
    let answers = futures_util::future::join_all(
        (0..20).map(|_| w.s.fetch(Some(&alice), APP, json!({ "scopes": [READ] }))),
    )
    .await;
    let tokens: Vec<String> = answers
        .iter()
        .map(|(st, v, _)| {
            assert_eq!(*st, 200, "{v}");
            v["token"]["accessToken"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(w.p.refresh_calls().await, 1, "one refresh for 20 requests");
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert!(secs_from_now(&only_connection(&w.s, APP).await["expiresAt"]) > 3500);
    w.s.shutdown().await;
}

// ----- 6. API keys --------------------------------------------------------------------------

async fn api_keys_for_users_tenants_and_the_app(backend: Backend) {
    let w = World::start(backend).await;
    let s = &w.s;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({ "id": "weather", "name": "Weather", "type": "apiKey" }),
    )
    .await;
    s.must_post("/v1/mgmt/tenants", json!({ "id": "acme", "name": "Acme" }))
        .await;
    w.set_user("bob", json!({ "tenants": [{ "tenantId": "acme" }] }))
        .await;
    w.set_user("alice", json!({ "tenants": [{ "tenantId": "acme" }] }))
        .await;
    let keys = "/v1/mgmt/outbound-apps/weather/api-keys";

    let (st, c) = s
        .post(keys, json!({ "apiKey": "key-of-alice", "userId": "alice" }))
        .await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["owner"], "user");
    assert_eq!(c["userId"], "alice");
    assert_eq!(c["type"], "apiKey");
    assert_no_secrets(&c, &["key-of-alice"]);
    let (st, c) = s
        .post(keys, json!({ "apiKey": "key-of-acme", "tenantId": "acme" }))
        .await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["owner"], "tenant");
    assert_eq!(c["tenantId"], "acme");
    let (st, e) = s
        .post(
            keys,
            json!({ "apiKey": "key-of-nobody", "tenantId": "ghost" }),
        )
        .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "unknown_reference", "{e}");
    let (st, c) = s.post(keys, json!({ "apiKey": "key-of-the-app" })).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["owner"], "app");
    let (st, e) = s.post(keys, json!({ "apiKey": "" })).await;
    assert_eq!(st, 400, "{e}");
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/calendar/api-keys",
            json!({ "apiKey": "k" }),
        )
        .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "not_an_api_key_app", "{e}");
    let (st, e) = post_connect(s, &w.idp.token("alice"), "weather", json!({})).await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"], "not_an_oauth_app", "{e}");
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/weather/connect",
            json!({ "tenantId": "acme" }),
        )
        .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "not_an_oauth_app", "{e}");
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/weather/tokens",
            json!({ "tokens": [{ "userId": "alice", "accessToken": "t" }] }),
        )
        .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "not_an_oauth_app", "{e}");
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/nope/api-keys",
            json!({ "apiKey": "k" }),
        )
        .await;
    assert_eq!(st, 404, "{e}");

    let key = |token: Value| {
        assert!(token.get("accessToken").is_none(), "{token}");
        (
            token["apiKey"].as_str().unwrap().to_owned(),
            token["owner"].as_str().unwrap().to_owned(),
        )
    };
    let alice = w.idp.token("alice");
    let bob = w.idp.token("bob");
    let carol = w.idp.token("carol");
    // The user's own key first (also within a tenant), else the tenant's, else the app's.
    let t = must_fetch(s, &alice, "weather", json!({})).await;
    assert_eq!(key(t), ("key-of-alice".into(), "user".into()));
    let t = must_fetch(s, &alice, "weather", json!({ "tenantId": "acme" })).await;
    assert_eq!(t["tenantId"], "acme");
    assert_eq!(key(t), ("key-of-alice".into(), "user".into()));
    let t = must_fetch(s, &bob, "weather", json!({ "tenantId": "acme" })).await;
    assert_eq!(t["tenantId"], "acme");
    assert_eq!(t["userId"], "bob");
    assert_eq!(key(t), ("key-of-acme".into(), "tenant".into()));
    let t = must_fetch(s, &bob, "weather", json!({})).await;
    assert_eq!(key(t), ("key-of-the-app".into(), "app".into()));
    let t = must_fetch(s, &carol, "weather", json!({})).await;
    assert_eq!(key(t), ("key-of-the-app".into(), "app".into()));
    let (st, e, _) = s
        .fetch(Some(&carol), "weather", json!({ "tenantId": "acme" }))
        .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"], "not_a_tenant_member", "{e}");
    let (st, e, _) = s
        .fetch(Some(&carol), "weather", json!({ "scopes": ["x"] }))
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"], "invalid_scope", "{e}");

    // A new key for the same owner replaces the old one.
    s.must_post(
        keys,
        json!({ "apiKey": "new-key-of-alice", "userId": "alice" }),
    )
    .await;
    let t = must_fetch(s, &alice, "weather", json!({})).await;
    assert_eq!(key(t).0, "new-key-of-alice");

    // No management answer carries a key.
    let all = app_connections(s, "weather").await;
    assert_eq!(all.len(), 3, "{all:?}");
    let (_, mine) = s.get("/v1/mgmt/users/alice/connections").await;
    let id = mine["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, one) = s.get(&format!("/v1/mgmt/connections/{id}")).await;
    let secrets = [
        "key-of-alice",
        "new-key-of-alice",
        "key-of-acme",
        "key-of-the-app",
    ];
    for answer in [json!(all), mine, one] {
        assert_no_secrets(&answer, &secrets);
    }
    // API keys are not refreshed.
    let (st, e) = s
        .post(&format!("/v1/mgmt/connections/{id}/refresh"), json!({}))
        .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "not_refreshable");
    w.s.shutdown().await;
}

// ----- 7. Token management ------------------------------------------------------------------

async fn token_management_lists_inspects_revokes_and_refreshes(backend: Backend) {
    let w = World::start(backend).await;
    let s = &w.s;
    s.must_post("/v1/mgmt/outbound-apps", w.p.app("mail", &["mail.read"]))
        .await;
    let (alice, bob, carol) = (
        w.idp.token("alice"),
        w.idp.token("bob"),
        w.idp.token("carol"),
    );
    s.connect(&alice, APP, &[READ]).await;
    s.connect(&alice, "mail", &["mail.read"]).await;
    s.connect(&bob, APP, &[READ]).await;
    s.connect(&carol, APP, &[READ]).await;

    // Lists, page by page.
    let (st, p1) = s
        .get("/v1/mgmt/outbound-apps/calendar/connections?limit=2")
        .await;
    assert_eq!(st, 200, "{p1}");
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["nextCursor"].as_str().unwrap();
    let (_, p2) = s
        .get(&format!(
            "/v1/mgmt/outbound-apps/calendar/connections?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 1, "{p2}");
    assert!(p2.get("nextCursor").is_none(), "{p2}");
    let mut users: Vec<String> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["items"].as_array().unwrap())
        .map(|c| c["userId"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob", "carol"]);
    let (_, u1) = s.get("/v1/mgmt/users/alice/connections?limit=1").await;
    assert_eq!(u1["items"].as_array().unwrap().len(), 1);
    let cursor = u1["nextCursor"].as_str().unwrap();
    let (_, u2) = s
        .get(&format!(
            "/v1/mgmt/users/alice/connections?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(u2["items"].as_array().unwrap().len(), 1);
    assert!(u2.get("nextCursor").is_none(), "{u2}");
    let mut apps = vec![
        u1["items"][0]["appId"].as_str().unwrap(),
        u2["items"][0]["appId"].as_str().unwrap(),
    ];
    apps.sort_unstable();
    assert_eq!(apps, ["calendar", "mail"]);
    let (st, e) = s.get("/v1/mgmt/outbound-apps/nope/connections").await;
    assert_eq!(st, 404, "{e}");

    // One connection.
    let conns = app_connections(s, APP).await;
    let of = |user: &str| {
        conns.iter().find(|c| c["userId"] == user).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (bob_id, carol_id) = (of("bob"), of("carol"));
    let (st, one) = s.get(&format!("/v1/mgmt/connections/{bob_id}")).await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(
        one,
        *conns.iter().find(|c| c["id"] == bob_id.as_str()).unwrap()
    );
    let (st, e) = s.get("/v1/mgmt/connections/con_doesnotexist").await;
    assert_eq!(st, 404, "{e}");
    assert_eq!(e["error"], "not_found");

    // Revoke one: at the provider too; the next request is not connected.
    assert!(!access_token(s, &bob, APP, &[READ]).await.is_empty());
    let (st, r) = s.delete(&format!("/v1/mgmt/connections/{bob_id}")).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["providerRevoked"], true, "{r}");
    assert_eq!(r["connection"]["id"], bob_id.as_str());
    assert_no_secrets(&r, &[]);
    assert_eq!(w.p.stats().await["revoke"], 1);
    let e = must_be_not_connected(s, &bob, APP, json!({ "scopes": [READ] })).await;
    assert_eq!(e["details"]["reason"], "no_connection", "{e}");
    assert!(e["connectUrl"].is_string(), "{e}");
    let (st, _) = s.get(&format!("/v1/mgmt/connections/{bob_id}")).await;
    assert_eq!(st, 404);
    let (st, _) = s.delete(&format!("/v1/mgmt/connections/{bob_id}")).await;
    assert_eq!(st, 404);

    // Revoke all of a user's.
    assert!(!access_token(s, &alice, "mail", &[]).await.is_empty());
    let (st, r) = s.delete("/v1/mgmt/users/alice/connections").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["items"].as_array().unwrap().len(), 2, "{r}");
    assert!(
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["providerRevoked"] == true),
        "{r}"
    );
    assert_eq!(w.p.stats().await["revoke"], 3);
    must_be_not_connected(s, &alice, APP, json!({ "scopes": [READ] })).await;
    must_be_not_connected(s, &alice, "mail", json!({})).await;
    let (_, none) = s.get("/v1/mgmt/users/alice/connections").await;
    assert_eq!(none["items"], json!([]), "{none}");
    let left = app_connections(s, APP).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["userId"], "carol");

    // Force a refresh.
    let before = access_token(s, &carol, APP, &[READ]).await;
    next_second().await;
    let (st, c) = s
        .post(
            &format!("/v1/mgmt/connections/{carol_id}/refresh"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(w.p.refresh_calls().await, 1);
    assert!(c["lastRefreshAt"].is_string(), "{c}");
    assert_no_secrets(&c, &[&before]);
    let after = access_token(s, &carol, APP, &[READ]).await;
    assert_ne!(
        after, before,
        "the token endpoint hands out the refreshed token"
    );
    let (st, _) = s
        .post("/v1/mgmt/connections/con_doesnotexist/refresh", json!({}))
        .await;
    assert_eq!(st, 404);

    // A provider that fails the revocation: the connection is removed regardless, and the
    // answer says so.
    w.p.set(json!({ "revokeStatus": 503 })).await;
    let (st, r) = s.delete(&format!("/v1/mgmt/connections/{carol_id}")).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["providerRevoked"], false, "{r}");
    assert!(r["providerError"].is_string(), "{r}");
    must_be_not_connected(s, &carol, APP, json!({ "scopes": [READ] })).await;
    assert!(app_connections(s, APP).await.is_empty());
    w.s.shutdown().await;
}

// ----- 8. Import ----------------------------------------------------------------------------

async fn imported_tokens_are_stored_all_or_nothing_and_refresh(backend: Backend) {
    let w = World::start(backend).await;
    let s = &w.s;
    s.must_post("/v1/mgmt/tenants", json!({ "id": "acme", "name": "Acme" }))
        .await;
    let import = "/v1/mgmt/outbound-apps/calendar/tokens";
    let (alice, bob, carol, dave) = (
        w.idp.token("alice"),
        w.idp.token("bob"),
        w.idp.token("carol"),
        w.idp.token("dave"),
    );

    // One token.
    let (st, r) = s
        .post(
            import,
            json!({ "tokens": [{
                "userId": "alice", "accessToken": "imported-access-alice",
                "refreshToken": "imported-refresh-alice", "expiresAt": in_secs(3600),
                "scopes": [READ, READ], "providerSubject": "alice-at-provider"
            }] }),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    assert_eq!(r["items"][0]["userId"], "alice");
    assert_eq!(r["items"][0]["hasRefreshToken"], true);
    assert_eq!(r["items"][0]["providerSubject"], "alice-at-provider");
    assert_eq!(r["items"][0]["scopes"], json!([READ]), "each scope once");
    assert!(secs_from_now(&r["items"][0]["expiresAt"]) > 3500, "{r}");
    assert_no_secrets(&r, &["imported-access-alice", "imported-refresh-alice"]);
    assert_eq!(
        access_token(s, &alice, APP, &[READ]).await,
        "imported-access-alice"
    );
    // The imported refresh token works once the provider knows it, and rotates.
    w.p.accept_refresh_tokens(&["imported-refresh-alice"], READ)
        .await;
    let refreshed = force_refresh(s, &alice, APP).await;
    assert_eq!(jwt_claims(&refreshed)["iss"], w.p.url.as_str());
    next_second().await;
    let again = force_refresh(s, &alice, APP).await;
    assert_ne!(again, refreshed);
    assert_eq!(w.p.refresh_calls().await, 2);

    // A batch: an expired token is refreshed on first use.
    let (st, r) = s
        .post(
            import,
            json!({ "tokens": [
                { "userId": "bob", "accessToken": "imported-access-bob", "scopes": [READ] },
                { "userId": "carol", "accessToken": "imported-access-carol",
                  "refreshToken": "imported-refresh-carol", "expiresAt": in_secs(-600),
                  "scopes": [READ, CONTACTS] },
                { "tenantId": "acme", "accessToken": "imported-access-acme", "scopes": [READ] },
            ] }),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["items"].as_array().unwrap().len(), 3);
    assert_eq!(r["items"][2]["owner"], "tenant");
    assert_no_secrets(
        &r,
        &[
            "imported-access-bob",
            "imported-access-carol",
            "imported-refresh-carol",
            "imported-access-acme",
        ],
    );
    assert_eq!(
        access_token(s, &bob, APP, &[READ]).await,
        "imported-access-bob"
    );
    // Without a refresh token there is nothing to refresh with.
    let bob_id = r["items"][0]["id"].as_str().unwrap();
    let (st, e) = s
        .post(&format!("/v1/mgmt/connections/{bob_id}/refresh"), json!({}))
        .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "not_refreshable", "{e}");
    // The tenant's token, for a member (here by the inbound token's tenant claim).
    let frank = w.idp.token_with(
        portcullis_crypto::jws::Algorithm::ES256,
        "frank",
        json!({ "org_id": "acme" }),
    );
    let t = must_fetch(
        s,
        &frank,
        APP,
        json!({ "scopes": [READ], "tenantId": "acme" }),
    )
    .await;
    assert_eq!(t["accessToken"], "imported-access-acme");
    assert_eq!(t["owner"], "tenant");
    w.p.accept_refresh_tokens(&["imported-refresh-carol"], "calendar.read contacts.read")
        .await;
    let t = must_fetch(s, &carol, APP, json!({ "scopes": [READ, CONTACTS] })).await;
    assert_ne!(t["accessToken"], "imported-access-carol");
    assert!(secs_from_now(&t["expiresAt"]) > 3500, "{t}");
    assert_eq!(w.p.refresh_calls().await, 3);
    let before = stored_state(s, APP).await;
    assert_eq!(before.len(), 4);

    // One bad item: nothing is stored, not even the good ones around it.
    let good = json!({ "userId": "alice", "accessToken": "replacement-alice", "scopes": [READ] });
    let new = json!({ "userId": "dave", "accessToken": "imported-access-dave", "scopes": [READ] });
    for (label, bad, code) in [
        (
            "unknown scope",
            json!({ "userId": "erin", "accessToken": "x", "scopes": ["calendar.admin"] }),
            "invalid_scope",
        ),
        (
            "no owner",
            json!({ "accessToken": "x", "scopes": [READ] }),
            "invalid_request",
        ),
        (
            "duplicate owner",
            json!({ "userId": "dave", "accessToken": "x", "scopes": [READ] }),
            "invalid_request",
        ),
        (
            "unknown tenant",
            json!({ "tenantId": "ghost", "accessToken": "x", "scopes": [READ] }),
            "unknown_reference",
        ),
        (
            "empty access token",
            json!({ "userId": "erin", "accessToken": "", "scopes": [READ] }),
            "invalid_request",
        ),
    ] {
        let (st, e) = s
            .post(
                import,
                json!({ "tokens": [good.clone(), new.clone(), bad] }),
            )
            .await;
        // A tenant that does not exist is a conflict with the current state (409), the rest are
        // malformed (400).
        let status = if code == "unknown_reference" {
            409
        } else {
            400
        };
        assert_eq!(st, status, "{label}: {e}");
        assert_eq!(e["error"], code, "{label}: {e}");
        assert_eq!(stored_state(s, APP).await, before, "{label}");
        assert_eq!(
            access_token(s, &alice, APP, &[READ]).await,
            again,
            "{label}"
        );
        must_be_not_connected(s, &dave, APP, json!({ "scopes": [READ] })).await;
    }
    let (st, e) = s.post(import, json!({ "tokens": [] })).await;
    assert_eq!(st, 400, "{e}");
    w.s.shutdown().await;
}

// ----- 9. Tenant connections ----------------------------------------------------------------

async fn tenant_connections_for_members_and_tenant_admins(backend: Backend) {
    let w = World::start(backend).await;
    let s = &w.s;
    s.must_post("/v1/mgmt/tenants", json!({ "id": "acme", "name": "Acme" }))
        .await;
    s.must_post("/v1/mgmt/roles", json!({ "name": "Tenant Admin" }))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({ "id": "erin", "identities": w.idp.identity("erin"), "tenants": [{ "tenantId": "acme", "roles": ["Tenant Admin"] }] }),
    )
    .await;
    w.set_user("bob", json!({ "tenants": [{ "tenantId": "acme" }] }))
        .await;
    // Tenant Admin across the deployment, but of no tenant: not a member of acme.
    s.must_post(
        "/v1/mgmt/users",
        json!({ "id": "mallory", "identities": w.idp.identity("mallory"), "roles": ["Tenant Admin"] }),
    )
    .await;
    let (erin, bob, mallory) = (
        w.idp.token("erin"),
        w.idp.token("bob"),
        w.idp.token("mallory"),
    );

    // An admin link provisions the tenant's shared connection.
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/calendar/connect",
            json!({ "tenantId": "ghost" }),
        )
        .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "unknown_reference");
    let (st, e) = s
        .post("/v1/mgmt/outbound-apps/calendar/connect", json!({}))
        .await;
    assert_eq!(st, 400, "{e}");
    let link = s
        .must_post(
            "/v1/mgmt/outbound-apps/calendar/connect",
            json!({ "tenantId": "acme", "scopes": [READ] }),
        )
        .await;
    let url = &s.open_link(link["url"].as_str().unwrap()).await;
    assert_eq!(param(url, "scope").as_deref(), Some(READ));
    let (st, page) = s.consent(url).await;
    assert_eq!(st, 200, "{page}");
    let c = only_connection(s, APP).await;
    assert_eq!(c["owner"], "tenant");
    assert_eq!(c["tenantId"], "acme");
    assert!(c.get("userId").is_none(), "{c}");
    assert!(
        c["grantedBy"].as_str().unwrap().starts_with("admin:"),
        "{c}"
    );

    // Members fetch it with the tenant named; others are refused.
    let t = must_fetch(
        s,
        &bob,
        APP,
        json!({ "scopes": [READ], "tenantId": "acme" }),
    )
    .await;
    assert_eq!(t["owner"], "tenant");
    assert_eq!(t["tenantId"], "acme");
    assert_eq!(t["userId"], "bob");
    let tenant_token = t["accessToken"].as_str().unwrap().to_owned();
    let t = must_fetch(
        s,
        &erin,
        APP,
        json!({ "scopes": [READ], "tenantId": "acme" }),
    )
    .await;
    assert_eq!(
        t["accessToken"],
        tenant_token.as_str(),
        "erin is a member too"
    );
    let e = must_be_not_connected(s, &bob, APP, json!({ "scopes": [READ] })).await;
    assert_eq!(e["details"]["reason"], "no_connection", "{e}");
    let (st, e, _) = s
        .fetch(
            Some(&mallory),
            APP,
            json!({ "scopes": [READ], "tenantId": "acme" }),
        )
        .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"], "not_a_tenant_member", "{e}");

    // A tenant admin connects for the tenant; a plain member cannot.
    let (st, e) = post_connect(
        s,
        &bob,
        APP,
        json!({ "tenantId": "acme", "tenantLevel": true, "scopes": [CONTACTS] }),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"], "not_a_tenant_admin", "{e}");
    let (st, e) = post_connect(
        s,
        &mallory,
        APP,
        json!({ "tenantId": "acme", "tenantLevel": true, "scopes": [CONTACTS] }),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"], "not_a_tenant_member", "{e}");
    let (st, e) = post_connect(s, &erin, APP, json!({ "tenantLevel": true })).await;
    assert_eq!(st, 400, "{e}");
    let url = s
        .connect_url(
            &erin,
            APP,
            json!({ "tenantId": "acme", "tenantLevel": true, "scopes": [CONTACTS] }),
        )
        .await;
    next_second().await;
    let (st, page) = s.consent(&url).await;
    assert_eq!(st, 200, "{page}");
    let after = only_connection(s, APP).await;
    assert_eq!(
        after["id"], c["id"],
        "the tenant's one connection, extended"
    );
    assert_eq!(after["owner"], "tenant");
    assert_eq!(sorted(&after["scopes"]), strings(&[READ, CONTACTS]));
    assert_eq!(after["grantedBy"], "user:erin");
    let t = must_fetch(
        s,
        &bob,
        APP,
        json!({ "scopes": [READ, CONTACTS], "tenantId": "acme" }),
    )
    .await;
    assert_eq!(t["owner"], "tenant");
    assert_ne!(t["accessToken"], tenant_token.as_str());
    w.s.shutdown().await;
}

both_backends!(
    consent_flow_connects_and_hands_out_the_providers_token,
    callback_errors_leave_the_stored_connection_alone,
    code_exchange_failures_keep_the_existing_connection,
    incremental_consent_extends_one_connection,
    a_token_due_for_refresh_is_refreshed_once_and_rotation_is_kept,
    invalid_grant_on_refresh_requires_consent_again,
    a_transient_provider_failure_is_retried,
    a_persistent_provider_failure_answers_503_and_keeps_the_refresh_token,
    a_hanging_provider_times_out_and_blocks_no_other_app,
    concurrent_requests_share_one_refresh,
    api_keys_for_users_tenants_and_the_app,
    token_management_lists_inspects_revokes_and_refreshes,
    imported_tokens_are_stored_all_or_nothing_and_refresh,
    tenant_connections_for_members_and_tenant_admins,
);
