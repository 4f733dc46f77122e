//! The admin console, driven over HTTP the way its page does: the session exchange, the cookie's
//! flags and content, the CSRF token on changing calls, revocation and expiry taking effect at
//! once, sign-out, the audit trail, and the static files' Content-Security-Policy.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::authz::{Answer, Browser};
use crate::support::{Backend, TestServer};

const COOKIE: &str = "portcullis_console";

/// A signed-in console: the cookie pair to send and the CSRF token.
struct Console {
    cookie: String,
    csrf: String,
    set_cookie: String,
    body: Value,
}

/// `POST /console/session` with `key`: the status, the `Set-Cookie` headers and the body.
async fn sign_in_raw(s: &TestServer, key: &str) -> (u16, Vec<String>, Value) {
    let resp = s
        .http
        .post(format!("{}/console/session", s.url))
        .json(&json!({ "adminKey": key }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cookies = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, cookies, body)
}

async fn sign_in(s: &TestServer, key: &str) -> Console {
    let (status, cookies, body) = sign_in_raw(s, key).await;
    assert_eq!(status, 200, "{body}");
    let set_cookie = cookies
        .into_iter()
        .find(|c| c.starts_with(&format!("{COOKIE}=")))
        .expect("a console cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Console {
        cookie,
        csrf: body["csrfToken"].as_str().unwrap().to_owned(),
        set_cookie,
        body,
    }
}

/// A call as the console's page makes it: the cookie, and `csrf` as `X-CSRF-Token` when given.
async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.url))
        .header(header::COOKIE, cookie);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn app(id: &str) -> Value {
    json!({ "id": id, "name": format!("App {id}"), "type": "apiKey" })
}

async fn signing_in_sets_a_sealed_strict_cookie(backend: Backend) {
    let s = TestServer::start(backend).await;

    // A wrong key: 401, and no cookie.
    let (status, cookies, body) = sign_in_raw(&s, "pca_not-a-key").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    assert!(cookies.is_empty(), "{cookies:?}");
    let (status, cookies, _) = sign_in_raw(&s, "").await;
    assert_eq!(status, 401);
    assert!(cookies.is_empty());

    // The right key: the cookie is HttpOnly, SameSite=Strict, for the whole site, eight hours,
    // not Secure on http, and holds neither the key nor anything readable.
    let c = sign_in(&s, &s.admin_key).await;
    let flags: Vec<&str> = c.set_cookie.split(';').map(str::trim).collect();
    for f in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(flags.contains(&f), "{f} in {}", c.set_cookie);
    }
    assert!(!flags.contains(&"Secure"), "{}", c.set_cookie);
    let value = &c.cookie[COOKIE.len() + 1..];
    assert!(
        !value.contains(&s.admin_key),
        "the key is not in the cookie"
    );
    assert!(!value.contains("ak_"), "the key's id is sealed, not shown");
    assert!(!c.set_cookie.contains(&c.csrf));
    assert_eq!(c.body["name"], "bootstrap");
    assert_eq!(c.body["scopes"], json!(["admin"]));
    assert!(c.body["actorId"].as_str().unwrap().starts_with("ak_"));
    assert_eq!(c.body["kind"], "key");
    assert!(c.body.get("adminKey").is_none());
    assert!(!c.body.to_string().contains(&s.admin_key));

    // The session comes back with its CSRF token (the page reloaded).
    let (status, again) = call(&s, Method::GET, "/console/session", &c.cookie, None, None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["csrfToken"], c.body["csrfToken"]);
    assert_eq!(again["actorId"], c.body["actorId"]);
}

async fn the_cookie_authenticates_and_changes_need_the_csrf_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = sign_in(&s, &s.admin_key).await;

    // A read needs only the cookie.
    let (status, page) = call(
        &s,
        Method::GET,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");

    // A change without the token, or with another one: 403, and nothing is stored.
    let (status, body) = call(
        &s,
        Method::POST,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        None,
        Some(app("nocsrf")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "csrf_mismatch");
    let other = sign_in(&s, &s.admin_key).await;
    assert_ne!(other.csrf, c.csrf, "each session has its own token");
    let (status, body) = call(
        &s,
        Method::POST,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        Some(&other.csrf),
        Some(app("nocsrf")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &s,
        Method::DELETE,
        "/v1/mgmt/outbound-apps/nocsrf",
        &c.cookie,
        Some("wrong"),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(s.get("/v1/mgmt/outbound-apps/nocsrf").await.0, 404);

    // With the token: it works, and the management audit names the key as the actor.
    let (status, body) = call(
        &s,
        Method::POST,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        Some(&c.csrf),
        Some(app("viaconsole")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    s.flush_audit().await;
    let (status, log) = call(
        &s,
        Method::GET,
        "/v1/mgmt/audit?kind=management&target=outbound-apps/viaconsole",
        &c.cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let event = &log["items"][0];
    assert_eq!(event["action"], "app.create", "{log}");
    assert_eq!(event["actorId"], c.body["actorId"]);
    assert_eq!(event["actorName"], "bootstrap");

    // A bearer key still works alone, and wins over a cookie (no CSRF token needed with it).
    let resp = s
        .http
        .post(format!("{}/v1/mgmt/outbound-apps", s.url))
        .bearer_auth(&s.admin_key)
        .header(header::COOKIE, &c.cookie)
        .json(&app("viabearer"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Neither a key nor a cookie: the usual 401.
    let resp = s
        .http
        .get(format!("{}/v1/mgmt/outbound-apps", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn a_session_ends_with_its_key(backend: Backend) {
    let s = TestServer::start(backend).await;
    let key = s
        .must_post(
            "/v1/mgmt/admin-keys",
            json!({ "name": "ops", "scopes": ["apps"] }),
        )
        .await;
    let c = sign_in(&s, key["key"].as_str().unwrap()).await;
    assert_eq!(c.body["scopes"], json!(["apps"]));
    // The key's scopes apply: it cannot read the audit log.
    let (status, body) = call(&s, Method::GET, "/v1/mgmt/audit", &c.cookie, None, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "insufficient_scope");
    let (status, _) = call(
        &s,
        Method::GET,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Revoked: the very next call is refused, and the session is gone.
    let (status, _) = s
        .delete(&format!(
            "/v1/mgmt/admin-keys/{}",
            key["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &s,
        Method::GET,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let (status, _) = call(
        &s,
        Method::POST,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        Some(&c.csrf),
        Some(app("revoked")),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(&s, Method::GET, "/console/session", &c.cookie, None, None).await;
    assert_eq!(status, 401);
    assert_eq!(s.get("/v1/mgmt/outbound-apps/revoked").await.0, 404);
}

async fn tampered_and_expired_cookies_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = sign_in(&s, &s.admin_key).await;
    let value = &c.cookie[COOKIE.len() + 1..];

    // One character changed, a truncated value, garbage: 401.
    let mut bytes = value.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{COOKIE}={}", String::from_utf8(bytes).unwrap());
    let truncated = format!("{COOKIE}={}", &value[..value.len() - 4]);
    for bad in [flipped, truncated, format!("{COOKIE}=garbage")] {
        let (status, body) =
            call(&s, Method::GET, "/v1/mgmt/outbound-apps", &bad, None, None).await;
        assert_eq!(status, 401, "{bad}: {body}");
        let (status, _) = call(&s, Method::GET, "/console/session", &bad, None, None).await;
        assert_eq!(status, 401);
    }

    // A fresh session works, and lasts eight hours (its expiry is sealed in; an expired one is
    // refused: see `an_expired_key_ends_its_session`).
    let sealed = s.core.start_console_session(&s.admin_key).await.unwrap();
    let (status, _) = call(
        &s,
        Method::GET,
        "/v1/mgmt/outbound-apps",
        &format!("{COOKIE}={}", sealed.cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let lifetime = s
        .core
        .open_console_session(&sealed.cookie)
        .await
        .map(|session| session.expires_at.as_secs() - now_secs())
        .unwrap();
    assert!(
        (28_700..=28_800).contains(&lifetime),
        "the session lasts eight hours: {lifetime}"
    );
}

/// Seconds since the epoch, now.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn an_expired_key_ends_its_session(backend: Backend) {
    let s = TestServer::start(backend).await;
    // A key that expires in two seconds: the session lasts no longer than the key, and once its
    // end has passed the sealed cookie is refused.
    let expires = time_in(2);
    let key = s
        .must_post(
            "/v1/mgmt/admin-keys",
            json!({ "name": "brief", "scopes": ["read"], "expiresAt": expires }),
        )
        .await;
    let c = sign_in(&s, key["key"].as_str().unwrap()).await;
    assert!(
        c.set_cookie.contains("Max-Age=1") || c.set_cookie.contains("Max-Age=2"),
        "{}",
        c.set_cookie
    );
    let (status, _) = call(
        &s,
        Method::GET,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let (status, body) = call(
        &s,
        Method::GET,
        "/v1/mgmt/outbound-apps",
        &c.cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

/// RFC 3339 for `secs` seconds from now.
fn time_in(secs: i64) -> String {
    portcullis_domain::Timestamp::from_secs(now_secs() + secs).to_rfc3339()
}

async fn signing_out_clears_the_cookie(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = sign_in(&s, &s.admin_key).await;
    let resp = s
        .http
        .delete(format!("{}/console/session", s.url))
        .header(header::COOKIE, &c.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let set = resp
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.starts_with(&format!("{COOKIE}=;")), "{set}");
    assert!(set.contains("Max-Age=0"), "{set}");
    // The browser then has no cookie: the session endpoint says so.
    let resp = s
        .http
        .get(format!("{}/console/session", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn the_console_is_served_under_a_strict_csp(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (path, media, needle) in [
        ("/console", "text/html", "<html lang=\"en\">"),
        ("/console/app.js", "text/javascript", "/console/session"),
        ("/console/console.css", "text/css", ":focus-visible"),
        ("/console/ui.js", "text/javascript", "x-csrf-token"),
    ] {
        let resp = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers().clone();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            h[header::CONTENT_TYPE].to_str().unwrap().starts_with(media),
            "{path}"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{path}");
        if path == "/console" {
            // No inline script or style: the CSP would block them anyway.
            assert!(!text.contains("<script>"), "no inline script");
            assert!(!text.contains("style="), "no inline style");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "no external asset"
            );
        }
    }
}

async fn the_console_serves_only_its_own_files(backend: Backend) {
    let s = TestServer::start(backend).await;
    for path in [
        "/console/nothing.js",
        "/console/..%2FCargo.toml",
        "/console/%2e%2e",
        "/console/app.js.map",
        "/console/APP.JS",
    ] {
        let resp = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
}

/// Creates the user `id` with `roles` and the password `correct horse battery`.
async fn user_with_roles(s: &TestServer, id: &str, roles: &[&str]) {
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": id, "name": format!("{id} the admin"), "roles": roles}),
    )
    .await;
    let (status, body) = s
        .put(
            &format!("/v1/mgmt/users/{id}/password"),
            json!({"password": "correct horse battery"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

/// Signs in on the console's sign-in page (the page is fetched first, for its CSRF token).
async fn sign_in_as_user(s: &TestServer, b: &mut Browser, login: &str, password: &str) -> Answer {
    let url = format!("{}/console/sign-in", s.url);
    let page = b.get(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    b.post(
        &url,
        &[
            ("csrf", &page.field("csrf")),
            ("action", "sign_in"),
            ("login", login),
            ("password", password),
        ],
    )
    .await
}

async fn a_user_with_an_admin_role_signs_in_to_the_console(backend: Backend) {
    let s = TestServer::start(backend).await;
    for role in ["portcullis.read", "portcullis.apps", "Viewer"] {
        s.must_post("/v1/mgmt/roles", json!({ "name": role })).await;
    }
    user_with_roles(&s, "ada", &["portcullis.read", "portcullis.apps"]).await;
    user_with_roles(&s, "bob", &["Viewer"]).await;

    // The sign-in page is Portcullis's own; a wrong password shows it again, with no session.
    let mut b = Browser::new();
    let wrong = sign_in_as_user(&s, &mut b, "ada", "not the password").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("Wrong user id"), "{}", wrong.body);
    assert!(!b.cookies.contains_key(COOKIE));

    // The right password: on to the console, with a console session acting as the user, holding
    // the scopes their portcullis.* roles grant.
    let ok = sign_in_as_user(&s, &mut b, "ada", "correct horse battery").await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location.as_deref(), Some("/console"));
    let cookie = format!("{COOKIE}={}", b.cookies[COOKIE]);
    let (status, me) = call(&s, Method::GET, "/console/session", &cookie, None, None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["kind"], "user");
    assert_eq!(me["actorId"], "user:ada");
    assert_eq!(me["name"], "ada the admin");
    assert_eq!(me["scopes"], json!(["read", "apps"]));
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();

    // What the roles grant works, recorded with the user as the actor; what they do not is 403.
    let (status, body) = call(
        &s,
        Method::POST,
        "/v1/mgmt/outbound-apps",
        &cookie,
        Some(&csrf),
        Some(app("notes")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &s,
        Method::POST,
        "/v1/mgmt/roles",
        &cookie,
        Some(&csrf),
        Some(json!({"name": "Editor"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "insufficient_scope");
    let (status, _) = call(
        &s,
        Method::POST,
        "/v1/mgmt/outbound-apps",
        &cookie,
        None,
        Some(app("x")),
    )
    .await;
    assert_eq!(status, 403, "the CSRF token is needed as with a key");
    s.flush_audit().await;
    let (status, log) = call(
        &s,
        Method::GET,
        "/v1/mgmt/audit?kind=management&target=outbound-apps/notes",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["items"][0]["actorId"], "user:ada", "{log}");
    assert_eq!(log["items"][0]["actorName"], "ada the admin", "{log}");

    // Signed in to Portcullis already: the sign-in page goes straight to the console.
    let again = b.get(&format!("{}/console/sign-in", s.url)).await;
    assert_eq!(again.status, 303, "{}", again.body);
    assert_eq!(again.location.as_deref(), Some("/console"));

    // Taking the admin roles away signs the user out at once; so does disabling them.
    let (status, body) = s
        .put(
            "/v1/mgmt/users/ada",
            json!({"id": "ada", "name": "ada the admin", "roles": ["Viewer"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &s,
        Method::GET,
        "/v1/mgmt/outbound-apps",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no longer holds an admin role"),
        "{body}"
    );
    let (status, body) = s
        .put(
            "/v1/mgmt/users/ada",
            json!({"id": "ada", "name": "ada the admin", "roles": ["portcullis.read"], "disabled": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&s, Method::GET, "/console/session", &cookie, None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("disabled"),
        "{body}"
    );

    // A user without an admin role signs in to Portcullis, but gets no console session.
    let mut other = Browser::new();
    let refused = sign_in_as_user(&s, &mut other, "bob", "correct horse battery").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("holds no Portcullis admin role"),
        "{}",
        refused.body
    );
    assert!(
        !other.cookies.contains_key(COOKIE),
        "{:?}",
        other.cookies.keys()
    );

    // The form is CSRF-bound like every sign-in form of Portcullis.
    let forged = Browser::new()
        .post(
            &format!("{}/console/sign-in", s.url),
            &[
                ("csrf", "x"),
                ("action", "sign_in"),
                ("login", "ada"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    // A form past 4 KiB, or with a field given twice, is refused before anything reads it — even
    // with the page's own CSRF token — and gives no session.
    let url = format!("{}/console/sign-in", s.url);
    let mut hostile = Browser::new();
    let page = hostile.get(&url).await;
    let csrf = page.field("csrf");
    let huge = "x".repeat(5000);
    let oversized = hostile
        .post(
            &url,
            &[
                ("csrf", csrf.as_str()),
                ("action", "sign_in"),
                ("login", "ada"),
                ("password", huge.as_str()),
            ],
        )
        .await;
    assert_eq!(oversized.status, 413, "{}", oversized.body);
    assert!(
        oversized.body.contains("The form is too large."),
        "{}",
        oversized.body
    );
    let twice = hostile
        .post(
            &url,
            &[
                ("csrf", csrf.as_str()),
                ("action", "sign_in"),
                ("login", "ada"),
                ("login", "bob"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(twice.status, 400, "{}", twice.body);
    assert!(!hostile.cookies.contains_key(COOKIE));
}

/// Now, shifted by `secs`, as RFC 3339 text and milliseconds.
fn at(secs: i64) -> (String, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = portcullis_domain::Timestamp::from_millis(now + secs * 1000);
    (t.to_rfc3339(), t.as_millis())
}

/// The dashboard's data: decisions made through the real check endpoint come back counted per
/// bucket and outcome and per app, computed by the database, in an epoch-aligned window; a bad
/// window is a 400 naming what is wrong.
async fn the_dashboard_summary_counts_decisions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = crate::support::Idp::start().await;
    s.trust(&idp).await;
    for id in ["docs", "mail"] {
        s.must_post(
            "/v1/mgmt/outbound-apps",
            json!({"id": id, "name": id, "type": "oauth", "clientId": "c", "clientSecret": "s",
                "authorizationUrl": "https://provider.example/authorize",
                "tokenUrl": "https://provider.example/token", "scopes": [{"name": "read"}]}),
        )
        .await;
        s.must_post(
            &format!("/v1/mgmt/outbound-apps/{id}/policies"),
            json!({"name": "Viewers", "conditions": [{"source": "userRoles", "operator": "in", "value": ["Viewer"]}], "scopes": "all"}),
        )
        .await;
    }
    let check = |app: &str, sub: &str, roles: Value| {
        let token = idp.token_with(
            portcullis_crypto::jws::Algorithm::ES256,
            sub,
            json!({ "roles": roles }),
        );
        let url = format!("{}/v1/outbound/apps/{app}/check", s.url);
        let http = s.http.clone();
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"scopes": ["read"]}))
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    // docs: two allowed by the policies (then not connected), one denied; mail: two denied.
    assert_eq!(check("docs", "v1", json!(["Viewer"])).await, 404);
    assert_eq!(check("docs", "v2", json!(["Viewer"])).await, 404);
    assert_eq!(check("docs", "x1", json!([])).await, 403);
    assert_eq!(check("mail", "x1", json!([])).await, 403);
    assert_eq!(check("mail", "x2", json!(["Editor"])).await, 403);
    s.flush_audit().await;

    // Read as the console reads it: with the session cookie.
    let c = sign_in(&s, &s.admin_key).await;
    let get = |q: String| {
        let cookie = c.cookie.clone();
        let s = &s;
        async move {
            call(
                s,
                Method::GET,
                &format!("/v1/mgmt/audit/summary{q}"),
                &cookie,
                None,
                None,
            )
            .await
        }
    };
    let (since, since_ms) = at(-3600);
    let (until, until_ms) = at(60);
    let (status, sum) = get(format!("?since={since}&until={until}&bucket=60")).await;
    assert_eq!(status, 200, "{sum}");
    assert_eq!(sum["bucketSeconds"], 60);
    // The window starts on a minute boundary, at or before `since`; every bucket is listed.
    let start = portcullis_domain::Timestamp::parse_rfc3339(sum["since"].as_str().unwrap())
        .unwrap()
        .as_millis();
    assert_eq!(start % 60_000, 0, "{sum}");
    assert!(start <= since_ms && since_ms - start < 60_000, "{sum}");
    assert_eq!(sum["until"], until.as_str());
    let buckets = sum["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.len() as i64,
        (until_ms - start + 59_999) / 60_000,
        "{sum}"
    );
    assert_eq!(
        buckets[1]["start"],
        portcullis_domain::Timestamp::from_millis(start + 60_000).to_rfc3339()
    );
    let total = |outcome: &str| -> u64 {
        buckets
            .iter()
            .filter_map(|b| b["outcomes"][outcome].as_u64())
            .sum()
    };
    assert_eq!(total("not_connected"), 2, "{sum}");
    assert_eq!(total("denied"), 3, "{sum}");
    assert_eq!(total("allowed"), 0, "{sum}");
    let per_app: u64 = buckets
        .iter()
        .filter_map(|b| b["apps"]["mail"].as_u64())
        .sum();
    assert_eq!(per_app, 2);
    // The apps: the most decisions first, with their denials and latency.
    let apps = sum["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2, "{sum}");
    assert_eq!(apps[0]["appId"], "docs");
    assert_eq!(apps[0]["decisions"], 3);
    assert_eq!(apps[0]["denied"], 1);
    assert_eq!(apps[1]["appId"], "mail");
    assert_eq!(apps[1]["denied"], 2);
    assert!(apps[0]["maxLatencyUs"].as_u64().unwrap() >= apps[0]["avgLatencyUs"].as_u64().unwrap());

    // The defaults: the last 24 hours by the hour (25 buckets, or 24 on an hour boundary).
    let (status, sum) = get(String::new()).await;
    assert_eq!(status, 200, "{sum}");
    assert_eq!(sum["bucketSeconds"], 3600);
    let n = sum["buckets"].as_array().unwrap().len();
    assert!(n == 24 || n == 25, "{n}");
    assert_eq!(sum["apps"][0]["decisions"], 3);

    // A window before the decisions: every bucket, none counted.
    let (status, sum) = get("?since=2020-01-01T00:30:00Z&until=2020-01-02T00:00:00Z".into()).await;
    assert_eq!(status, 200, "{sum}");
    assert_eq!(sum["since"], "2020-01-01T00:00:00Z");
    assert_eq!(sum["buckets"].as_array().unwrap().len(), 24);
    assert!(
        sum["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["outcomes"] == json!({}))
    );
    assert_eq!(sum["apps"], json!([]));

    // Bad windows: 400s that say what is wrong.
    for (q, says) in [
        // A day by the minute: 1441 buckets, more than 500.
        ("?bucket=60", "at most 500"),
        ("?bucket=59", "bucket must be between"),
        ("?bucket=0", "bucket must be between"),
        ("?bucket=hourly", ""),
        ("?since=yesterday", "since must be an RFC 3339"),
        (
            "?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z",
            "since must be before until",
        ),
        (
            "?since=2020-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
            "since must be before until",
        ),
        ("?window=1d", ""),
    ] {
        let (status, body) = get(q.to_owned()).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{q}: {body}"
        );
    }
}

crate::both_backends!(
    signing_in_sets_a_sealed_strict_cookie,
    the_cookie_authenticates_and_changes_need_the_csrf_token,
    a_session_ends_with_its_key,
    tampered_and_expired_cookies_are_refused,
    an_expired_key_ends_its_session,
    signing_out_clears_the_cookie,
    the_console_is_served_under_a_strict_csp,
    the_dashboard_summary_counts_decisions,
    the_console_serves_only_its_own_files,
    a_user_with_an_admin_role_signs_in_to_the_console,
);
