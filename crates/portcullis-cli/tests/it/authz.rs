//! Portcullis as the MCP servers' OAuth 2.1 authorization server, driven as a browser and a
//! client would: the authorization request, the real sign-in and consent pages (their forms,
//! CSRF cookie and session cookie), the code exchange with PKCE, refresh-token rotation and reuse
//! detection, client credentials, introspection, revocation, userinfo — and the access tokens
//! accepted by the access control plane with no configuration. Every refusal the RFCs name has
//! its case.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestServer};

pub(crate) const RESOURCE: &str = "http://127.0.0.1:9/mcp";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:5555/callback";

/// A browser: no automatic redirects, cookies kept by name.
pub(crate) struct Browser {
    http: reqwest::Client,
    pub(crate) cookies: HashMap<String, String>,
}

/// A page or a redirect.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

impl Answer {
    /// A hidden field's value on the page.
    pub(crate) fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} on the page: {}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].replace("&amp;", "&")
    }

    /// A query parameter of the redirect.
    pub(crate) fn param(&self, name: &str) -> Option<String> {
        let loc = url::Url::parse(self.location.as_deref()?).ok()?;
        loc.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

impl Browser {
    pub(crate) fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(set.contains("HttpOnly"), "{set}");
            let (k, v) = set.split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        Answer {
            status,
            location,
            body: resp.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, url: &str) -> Answer {
        let req = self.http.get(url);
        self.send(req).await
    }

    pub(crate) async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }
}

impl Browser {
    /// Signs in on a sign-in page.
    pub(crate) async fn sign_in(
        &mut self,
        s: &TestServer,
        page: &Answer,
        login: &str,
        password: &str,
    ) -> Answer {
        self.post(
            &format!("{}/oauth2/authorize", s.url),
            &[
                ("request", &page.field("request")),
                ("csrf", &page.field("csrf")),
                ("action", "sign_in"),
                ("login", login),
                ("password", password),
            ],
        )
        .await
    }

    /// Allows on a consent screen (remembered or not).
    pub(crate) async fn allow(&mut self, s: &TestServer, page: &Answer, remember: bool) -> Answer {
        let mut form = vec![
            ("request".to_owned(), page.field("request")),
            ("csrf".to_owned(), page.field("csrf")),
            ("action".to_owned(), "allow".to_owned()),
        ];
        if remember {
            form.push(("remember".to_owned(), "1".to_owned()));
        }
        let req = self
            .http
            .post(format!("{}/oauth2/authorize", s.url))
            .form(&form);
        self.send(req).await
    }
}

/// A PKCE verifier and its S256 challenge.
pub(crate) fn pkce() -> (String, String) {
    let verifier = portcullis_crypto::random_token(32);
    (
        verifier.clone(),
        portcullis_crypto::pkce::challenge_s256(&verifier),
    )
}

pub(crate) fn authorize_url(
    s: &TestServer,
    client: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut u = url::Url::parse(&format!("{}/oauth2/authorize", s.url)).unwrap();
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in [
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("scope", "tools.read outbound.token.fetch"),
            ("state", "st-123"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("resource", RESOURCE),
        ] {
            if !extra.iter().any(|(ek, _)| *ek == k) {
                q.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
    }
    u.to_string()
}

/// A resource, a role, a user with a password, a public client and a confidential one.
pub(crate) async fn setup(s: &TestServer) -> String {
    s.must_post(
        "/v1/mgmt/resources",
        json!({"id": "mcp", "uri": RESOURCE, "name": "Calendar MCP",
               "scopes": [{"name": "tools.read", "description": "Read your calendar tools"}]}),
    )
    .await;
    s.must_post("/v1/mgmt/roles", json!({"name": "engineer"}))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "alice", "email": "Alice@Example.com", "roles": ["engineer"]}),
    )
    .await;
    let (st, e) = s
        .put(
            "/v1/mgmt/users/alice/password",
            json!({"password": "correct horse battery"}),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let (st, e) = s
        .put(
            "/v1/mgmt/users/alice/password",
            json!({"password": "short"}),
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_password")));
    let app = s
        .must_post(
            "/v1/mgmt/clients",
            json!({"id": "desktop", "name": "Desktop <Agent>",
                   "redirectUris": ["http://127.0.0.1/callback"], "tokenEndpointAuthMethod": "none"}),
        )
        .await;
    assert_eq!(app["tokenEndpointAuthMethod"], "none");
    assert!(app.get("clientSecret").is_none(), "{app}");
    assert_eq!(
        app["grantTypes"],
        json!(["authorization_code", "refresh_token"])
    );
    let rs = s
        .must_post(
            "/v1/mgmt/clients",
            json!({"id": "gateway", "name": "Gateway", "grantTypes": ["client_credentials"]}),
        )
        .await;
    rs["clientSecret"].as_str().unwrap().to_owned()
}

/// Signs in and consents through the real pages; returns the redirect back to the client.
async fn sign_in_and_allow(s: &TestServer, b: &mut Browser, url: &str) -> Answer {
    let page = b.get(url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Sign in"), "{}", page.body);
    let consent = b
        .sign_in(s, &page, "alice@example.com", "correct horse battery")
        .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    // The consent screen: the client's name (escaped), the host the answer goes to, the
    // resource, the scopes with their descriptions.
    for shown in [
        "Desktop &lt;Agent&gt;",
        "127.0.0.1",
        "Calendar MCP",
        "Read your calendar tools",
        "outbound.token.fetch",
    ] {
        assert!(consent.body.contains(shown), "{shown}: {}", consent.body);
    }
    b.allow(s, &consent, true).await
}

async fn token(s: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth2/token", s.url))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers().get("cache-control").unwrap(),
        "no-store",
        "token answers are not cached"
    );
    (status, resp.json().await.unwrap())
}

pub(crate) async fn redeem(s: &TestServer, code: &str, verifier: &str) -> (u16, Value) {
    token(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "desktop"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(s: &TestServer, rt: &str) -> (u16, Value) {
    token(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "desktop"),
            ("refresh_token", rt),
        ],
    )
    .await
}

pub(crate) fn claims(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let header = serde_json::from_slice(&B64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&B64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

async fn form_as(
    s: &TestServer,
    path: &str,
    basic: (&str, &str),
    form: &[(&str, &str)],
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", s.url))
        .basic_auth(basic.0, Some(basic.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn the_code_flow_issues_tokens_the_plane_accepts(backend: Backend) {
    let s = TestServer::start(backend).await;
    let gateway_secret = setup(&s).await;
    let issuer = s.core.settings().public_url.clone();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let url = authorize_url(&s, "desktop", &challenge, &[]);

    // A wrong password is refused on the page, which stays usable.
    let page = b.get(&url).await;
    let wrong = b.sign_in(&s, &page, "alice", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong user id, email or password"));

    let back = sign_in_and_allow(&s, &mut b, &url).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(back.location.as_deref().unwrap().starts_with(REDIRECT));
    assert_eq!(back.param("state").as_deref(), Some("st-123"));
    assert_eq!(back.param("iss").as_deref(), Some(issuer.as_str()));
    let code = back.param("code").unwrap();

    let (st, t) = redeem(&s, &code, &verifier).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "tools.read outbound.token.fetch");
    assert!(
        t.get("id_token").is_none(),
        "no ID token without openid: {t}"
    );
    let at = t["access_token"].as_str().unwrap();
    let (header, c) = claims(at);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(c["iss"], issuer.as_str());
    assert_eq!(c["aud"], RESOURCE);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["client_id"], "desktop");
    assert_eq!(c["roles"], json!(["engineer"]));
    assert!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() == 300);

    // The plane reads it as an inbound token of a directory user: the app is unknown, not the
    // token.
    let (st, e, _) = s.fetch(Some(at), "nope", json!({})).await;
    assert_eq!(st, 404, "{e}");
    // A token without the fetch scope is refused by the plane.
    let (st, t2) = refresh(&s, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200, "{t2}");
    let (st, narrow) = token(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "desktop"),
            ("refresh_token", t2["refresh_token"].as_str().unwrap()),
            ("scope", "tools.read"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{narrow}");
    assert_eq!(narrow["scope"], "tools.read");
    let (st, e, _) = s
        .fetch(narrow["access_token"].as_str(), "nope", json!({}))
        .await;
    assert_eq!(st, 403, "{e}");
    // Asking more than the grant is refused.
    let (st, e) = token(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "desktop"),
            ("refresh_token", narrow["refresh_token"].as_str().unwrap()),
            ("scope", "tools.write"),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_scope")));

    // Userinfo, introspection (a confidential client), revocation.
    let info: Value = reqwest::Client::new()
        .get(format!("{}/oauth2/userinfo", s.url))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["email"], "Alice@Example.com");
    let (st, i) = form_as(
        &s,
        "/oauth2/introspect",
        ("gateway", &gateway_secret),
        &[("token", at)],
    )
    .await;
    assert_eq!(st, 200, "{i}");
    assert_eq!(
        (i["active"].as_bool(), i["sub"].as_str()),
        (Some(true), Some("alice"))
    );
    assert_eq!(i["aud"], RESOURCE);
    let (st, _) = form_as(
        &s,
        "/oauth2/introspect",
        ("gateway", "wrong"),
        &[("token", at)],
    )
    .await;
    assert_eq!(st, 401);
    let current = narrow["refresh_token"].as_str().unwrap();
    let (_, i) = form_as(
        &s,
        "/oauth2/introspect",
        ("gateway", &gateway_secret),
        &[("token", current)],
    )
    .await;
    assert_eq!(i["active"], true, "{i}");
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth2/revoke", s.url))
        .form(&[("client_id", "desktop"), ("token", current)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, i) = form_as(
        &s,
        "/oauth2/introspect",
        ("gateway", &gateway_secret),
        &[("token", current)],
    )
    .await;
    assert_eq!(i, json!({"active": false}));
    let (st, e) = refresh(&s, current).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));

    // The remembered consent and the session: the next authorization answers at once.
    let (verifier2, challenge2) = pkce();
    let again = b.get(&authorize_url(&s, "desktop", &challenge2, &[])).await;
    assert_eq!(again.status, 303, "{}", again.body);
    let (st, t3) = redeem(&s, &again.param("code").unwrap(), &verifier2).await;
    assert_eq!(st, 200, "{t3}");
    // A loopback redirect URI matches on any port (RFC 8252), and only so.
    let (_, challenge3) = pkce();
    let other_port = b
        .get(&authorize_url(
            &s,
            "desktop",
            &challenge3,
            &[("redirect_uri", "http://127.0.0.1:6000/callback")],
        ))
        .await;
    assert_eq!(other_port.status, 303);
    assert!(
        other_port
            .location
            .unwrap()
            .starts_with("http://127.0.0.1:6000/callback?code=")
    );

    // An admin revokes the consent: the grant's refresh tokens stop, and the screen asks again.
    let (st, list) = s.get("/v1/mgmt/users/alice/consents").await;
    assert_eq!(st, 200);
    assert_eq!(list["items"][0]["clientId"], "desktop");
    assert_eq!(list["items"][0]["resource"], RESOURCE);
    let (st, _) = s
        .admin(
            Method::DELETE,
            "/v1/mgmt/users/alice/consents?clientId=desktop",
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, e) = refresh(&s, t3["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (_, challenge4) = pkce();
    let asks = b.get(&authorize_url(&s, "desktop", &challenge4, &[])).await;
    assert_eq!(asks.status, 200);
    assert!(asks.body.contains("Allow access?"));

    // The user revokes the consent on their own page: the screen asks again next time.
    let allowed = b.allow(&s, &asks, true).await;
    assert_eq!(allowed.status, 303);
    let own = b.get(&format!("{}/oauth2/consents", s.url)).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(
        own.body.contains("desktop") && own.body.contains(RESOURCE),
        "{}",
        own.body
    );
    let revoked = b
        .post(
            &format!("{}/oauth2/consents", s.url),
            &[
                ("csrf", &own.field("csrf")),
                ("action", "revoke"),
                ("client_id", "desktop"),
            ],
        )
        .await;
    assert_eq!(revoked.status, 303);
    let own = b.get(&format!("{}/oauth2/consents", s.url)).await;
    assert!(
        own.body.contains("not allowed any application"),
        "{}",
        own.body
    );
    let (_, challenge6) = pkce();
    let asks = b.get(&authorize_url(&s, "desktop", &challenge6, &[])).await;
    assert!(asks.body.contains("Allow access?"));
    // Another browser is not signed in: it sees the sign-in form, not alice's consents.
    let mut other = Browser::new();
    let page = other.get(&format!("{}/oauth2/consents", s.url)).await;
    assert!(page.body.contains("Sign in") && !page.body.contains("desktop"));

    // Client credentials: a confidential client's own token, never the fetch scope.
    let (st, cc) = form_as(
        &s,
        "/oauth2/token",
        ("gateway", &gateway_secret),
        &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
    )
    .await;
    assert_eq!(st, 200, "{cc}");
    assert_eq!(cc["scope"], "tools.read");
    assert!(cc.get("refresh_token").is_none());
    let (_, c) = claims(cc["access_token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str()),
        (Some("gateway"), Some("gateway"))
    );
    let (st, e) = form_as(
        &s,
        "/oauth2/token",
        ("gateway", &gateway_secret),
        &[
            ("grant_type", "client_credentials"),
            ("resource", RESOURCE),
            ("scope", "outbound.token.fetch"),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_scope")));
    let (st, e) = form_as(
        &s,
        "/oauth2/token",
        ("gateway", &gateway_secret),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_target")));
    // A public client may not; the gateway may not use codes.
    let (st, e) = token(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "desktop"),
            ("resource", RESOURCE),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{e}"
    );

    // The metadata says what is served.
    let (_, meta) = s.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{issuer}/oauth2/authorize")
    );
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["response_types_supported"], json!(["code"]));
}

async fn codes_and_refresh_tokens_are_used_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    setup(&s).await;
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let back = sign_in_and_allow(&s, &mut b, &authorize_url(&s, "desktop", &challenge, &[])).await;
    let code = back.param("code").unwrap();
    // A wrong verifier spends the code: it is tried once.
    let (st, e) = redeem(&s, &code, &pkce().0).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (st, e) = redeem(&s, &code, &verifier).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );

    // A code presented twice revokes the tokens it gave.
    let (verifier, challenge) = pkce();
    let again = b.get(&authorize_url(&s, "desktop", &challenge, &[])).await;
    let code = again.param("code").unwrap();
    let (st, t) = redeem(&s, &code, &verifier).await;
    assert_eq!(st, 200, "{t}");
    let (st, _) = redeem(&s, &code, &verifier).await;
    assert_eq!(st, 400);
    let (st, e) = refresh(&s, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );

    // A refresh token replayed after rotation revokes the whole family.
    let (verifier, challenge) = pkce();
    let third = b.get(&authorize_url(&s, "desktop", &challenge, &[])).await;
    let (_, t) = redeem(&s, &third.param("code").unwrap(), &verifier).await;
    let first = t["refresh_token"].as_str().unwrap().to_owned();
    let (st, rotated) = refresh(&s, &first).await;
    assert_eq!(st, 200);
    let (st, e) = refresh(&s, &first).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{e}"
    );
    let (st, _) = refresh(&s, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 400, "the successor is revoked with its family");

    // Token-endpoint refusals.
    let (verifier, challenge) = pkce();
    let fourth = b.get(&authorize_url(&s, "desktop", &challenge, &[])).await;
    let code = fourth.param("code").unwrap();
    let (st, e) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "desktop"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:5555/callback/other"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (st, e) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "ghost"),
            ("code", "x"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (401, Some("invalid_client")),
        "{e}"
    );
    let (st, e) = token(&s, &[("grant_type", "password"), ("client_id", "desktop")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (st, e) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "desktop"),
            ("code", "pcc_unknown"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (st, e) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "desktop"),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
}

async fn bad_authorization_requests_are_refused_per_the_rfcs(backend: Backend) {
    let s = TestServer::start(backend).await;
    setup(&s).await;
    let issuer = s.core.settings().public_url.clone();
    let mut b = Browser::new();
    let (_, challenge) = pkce();
    // What cannot go back to the client is shown, never redirected.
    for (extra, shown) in [
        (vec![("client_id", "ghost")], "not registered"),
        (
            vec![("redirect_uri", "http://127.0.0.1:5555/callback/evil")],
            "redirect URI",
        ),
        (
            vec![("redirect_uri", "http://127.0.0.1:5555/callbac")],
            "redirect URI",
        ),
        (
            vec![("redirect_uri", "https://evil.example/callback")],
            "redirect URI",
        ),
    ] {
        let a = b
            .get(&authorize_url(&s, "desktop", &challenge, &extra))
            .await;
        assert_eq!(a.status, 400, "{extra:?}");
        assert!(a.location.is_none());
        assert!(a.body.contains(shown), "{extra:?}: {}", a.body);
    }
    // The rest goes back with the error, the state and the issuer (RFC 9207).
    let bad_challenge = "a".repeat(43);
    for (extra, error) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (
            vec![
                ("code_challenge_method", "plain"),
                ("code_challenge", bad_challenge.as_str()),
            ],
            "invalid_request",
        ),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("resource", "")], "invalid_target"),
        (
            vec![("resource", "https://other.example/mcp")],
            "invalid_target",
        ),
        (
            vec![("resource", "http://127.0.0.1:9/mcp/")],
            "invalid_target",
        ),
        (vec![("scope", "tools.read admin")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
    ] {
        let a = b
            .get(&authorize_url(&s, "desktop", &challenge, &extra))
            .await;
        assert_eq!(a.status, 303, "{extra:?}: {}", a.body);
        assert_eq!(a.param("error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(a.param("state").as_deref(), Some("st-123"));
        assert_eq!(a.param("iss").as_deref(), Some(issuer.as_str()));
    }
    // A client not allowed the code flow.
    let a = b.get(&authorize_url(&s, "gateway", &challenge, &[])).await;
    assert_eq!(a.status, 400, "the gateway has no redirect URI: {}", a.body);

    // The forms: a missing or wrong CSRF token, a tampered request.
    let page = b.get(&authorize_url(&s, "desktop", &challenge, &[])).await;
    let sign_in = |csrf: String, request: String| {
        vec![
            ("request".to_owned(), request),
            ("csrf".to_owned(), csrf),
            ("action".to_owned(), "sign_in".to_owned()),
            ("login".to_owned(), "alice".to_owned()),
            ("password".to_owned(), "correct horse battery".to_owned()),
        ]
    };
    let post = |form: Vec<(String, String)>, cookies: Option<String>| {
        let mut req = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/oauth2/authorize", s.url))
            .form(&form);
        if let Some(c) = cookies {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let csrf = page.field("csrf");
    let request = page.field("request");
    let r = post(sign_in(csrf.clone(), request.clone()), None)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "no CSRF cookie");
    let r = post(
        sign_in("x".repeat(43), request.clone()),
        Some(format!("portcullis_csrf={csrf}")),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a CSRF token that is not the cookie's"
    );
    let mut tampered = request.clone();
    tampered.replace_range(10..11, if &tampered[10..11] == "A" { "B" } else { "A" });
    let r = post(
        sign_in(csrf.clone(), tampered),
        Some(format!("portcullis_csrf={csrf}")),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400, "a tampered request");

    // Lockout: five failures in a row lock the user, even with the right password after.
    for _ in 0..5 {
        let mut form = sign_in(csrf.clone(), request.clone());
        form[4].1 = "wrong password".into();
        let r = post(form, Some(format!("portcullis_csrf={csrf}")))
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 401 | 403));
    }
    let r = post(
        sign_in(csrf.clone(), request.clone()),
        Some(format!("portcullis_csrf={csrf}")),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("locked"));
    // An admin setting a new password clears the lockout.
    let (st, _) = s
        .put(
            "/v1/mgmt/users/alice/password",
            json!({"password": "a new long password"}),
        )
        .await;
    assert_eq!(st, 204);
    let mut form = sign_in(csrf.clone(), request.clone());
    form[4].1 = "a new long password".into();
    let r = post(form, Some(format!("portcullis_csrf={csrf}")))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

async fn register(s: &TestServer, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/oauth2/register", s.url))
        .json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn clients_register_themselves_as_public_clients(backend: Backend) {
    let s = TestServer::start(backend).await;
    setup(&s).await;
    let (_, meta) = s.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta["registration_endpoint"],
        format!("{}/oauth2/register", s.core.settings().public_url)
    );
    let (_, before) = s.get("/v1/mgmt/clients").await;
    // Refusals say which rule, and store nothing.
    for (body, error) in [
        (
            json!({"redirect_uris": ["com.example.app:/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "application_type": "native"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (json!({"client_name": "x"}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "application_type": "tv"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "https://app.example/cb"}),
            "invalid_client_metadata",
        ),
        (json!([1, 2]), "invalid_client_metadata"),
    ] {
        let (st, e) = register(&s, None, body.clone()).await;
        assert_eq!((st, e["error"].as_str()), (400, Some(error)), "{body}: {e}");
    }
    let (_, after) = s.get("/v1/mgmt/clients").await;
    assert_eq!(before["items"], after["items"]);

    // A native app registers, with unknown metadata ignored, and runs the whole flow.
    let (st, reg) = register(
        &s,
        None,
        json!({"redirect_uris": ["http://127.0.0.1/callback"], "client_name": "Claude Desktop",
               "application_type": "native", "grant_types": ["authorization_code", "refresh_token"],
               "logo_uri": "https://app.example/logo.png"}),
    )
    .await;
    assert_eq!(st, 201, "{reg}");
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert!(reg.get("client_secret").is_none());
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let page = b.get(&authorize_url(&s, &id, &challenge, &[])).await;
    let consent = b.sign_in(&s, &page, "alice", "correct horse battery").await;
    assert!(consent.body.contains("Claude Desktop"), "{}", consent.body);
    let back = b.allow(&s, &consent, false).await;
    let (st, t) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &id),
            ("code", &back.param("code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert!(t["refresh_token"].is_string());
    // Not remembered: the next request asks again.
    let (_, challenge) = pkce();
    assert_eq!(
        b.get(&authorize_url(&s, &id, &challenge, &[])).await.status,
        200
    );

    // A removed registration gets a clear invalid_client.
    let (st, _) = s.delete(&format!("/v1/mgmt/clients/{id}")).await;
    assert_eq!(st, 204);
    let (st, e) = token(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &id),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (401, Some("invalid_client")),
        "{e}"
    );
}

/// With an initial access token configured, registering needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_can_require_an_initial_access_token() {
    let s = TestServer::start_with(Backend::Sqlite, |env| {
        env.insert(
            "PORTCULLIS_REGISTRATION_TOKEN".into(),
            "iat-0123456789abcdef".into(),
        );
    })
    .await;
    let body = json!({"redirect_uris": ["https://app.example/cb"]});
    let (st, e) = register(&s, None, body.clone()).await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_token")));
    let (st, _) = register(&s, Some("iat-wrong-0123456789"), body.clone()).await;
    assert_eq!(st, 401);
    let (st, reg) = register(&s, Some("iat-0123456789abcdef"), body).await;
    assert_eq!(st, 201, "{reg}");
    let s = s
        .restart_with(|env| {
            env.insert("PORTCULLIS_DYNAMIC_REGISTRATION".into(), "false".into());
        })
        .await;
    let (st, e) = register(
        &s,
        Some("iat-0123456789abcdef"),
        json!({"redirect_uris": ["https://app.example/cb"]}),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (403, Some("access_denied")));
    let (_, meta) = s.get("/.well-known/oauth-authorization-server").await;
    assert!(meta["registration_endpoint"].is_null());
}

async fn id_jag_grants_are_exchanged_within_what_they_grant(backend: Backend) {
    let s = TestServer::start(backend).await;
    setup(&s).await;
    let idp = crate::support::Idp::start().await;
    s.trust(&idp).await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "bob", "identities": idp.identity("bob@corp"), "roles": ["engineer"]}),
    )
    .await;
    let agent = s
        .must_post(
            "/v1/mgmt/clients",
            json!({"id": "agent", "name": "Agent",
                   "grantTypes": ["urn:ietf:params:oauth:grant-type:jwt-bearer"]}),
        )
        .await;
    let secret = agent["clientSecret"].as_str().unwrap().to_owned();
    let issuer = s.core.settings().public_url.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let grant = |extra: Value| {
        let mut c = json!({
            "iss": idp.issuer, "sub": "bob@corp", "aud": issuer, "client_id": "agent",
            "resource": RESOURCE, "scope": "tools.read outbound.token.fetch",
            "iat": now, "exp": now + 300, "jti": portcullis_crypto::random_token(8),
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let exchange = |assertion: String, scope: Option<&'static str>| {
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
        ];
        if let Some(sc) = scope {
            form.push(("scope", sc.to_owned()));
        }
        let secret = secret.clone();
        let s = &s;
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{}/oauth2/token", s.url))
                .basic_auth("agent", Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let jag = |claims: &Value| idp.sign_typed(Some("oauth-id-jag+jwt"), claims);

    // The grant's scopes, or a subset; the token is for the grant's resource, for bob.
    let (st, t) = exchange(jag(&grant(json!({}))), None).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["scope"], "tools.read outbound.token.fetch");
    assert!(t.get("refresh_token").is_none());
    let (_, c) = claims(t["access_token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].as_str(), c["aud"].as_str()),
        (Some("bob"), Some(RESOURCE))
    );
    assert_eq!(c["client_id"], "agent");
    let (st, e, _) = s.fetch(t["access_token"].as_str(), "nope", json!({})).await;
    assert_eq!(st, 404, "the plane reads it: {e}");
    let once = jag(&grant(json!({})));
    let (st, t) = exchange(once.clone(), Some("tools.read")).await;
    assert_eq!((st, t["scope"].as_str()), (200, Some("tools.read")), "{t}");
    // A grant is used once.
    let (st, e) = exchange(once, Some("tools.read")).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "a replay: {e}"
    );
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );

    // Refusals.
    let narrow = grant(json!({"scope": "tools.read"}));
    let (st, e) = exchange(jag(&narrow), Some("tools.read outbound.token.fetch")).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_scope")),
        "a scope beyond the grant: {e}"
    );
    for (why, assertion) in [
        ("a wrong audience", jag(&grant(json!({"aud": RESOURCE})))),
        (
            "an expired grant",
            jag(&grant(json!({"iat": now - 900, "exp": now - 600}))),
        ),
        (
            "another client's grant",
            jag(&grant(json!({"client_id": "desktop"}))),
        ),
        (
            "an access token, not a grant",
            idp.sign_typed(Some("at+jwt"), &grant(json!({}))),
        ),
        (
            "an unlinked subject",
            jag(&grant(json!({"sub": "mallory@corp"}))),
        ),
    ] {
        let (st, e) = exchange(assertion, None).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (400, Some("invalid_grant")),
            "{why}: {e}"
        );
    }
    let untrusted = crate::support::Idp::start().await;
    let forged = untrusted.sign_typed(
        Some("oauth-id-jag+jwt"),
        &grant(json!({"iss": untrusted.issuer})),
    );
    let (st, e) = exchange(forged, None).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "an untrusted issuer: {e}"
    );
    let (st, e) = exchange(
        jag(&grant(json!({"resource": "https://other.example/mcp"}))),
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_target")),
        "{e}"
    );
    // A client not given the grant may not use it.
    let (st, e) = form_as(
        &s,
        "/oauth2/token",
        ("gateway", "x"),
        &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")],
    )
    .await;
    assert_eq!(st, 401, "{e}");
    let (_, meta) = s.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );
}

/// A server of client ID metadata documents; counts the fetches of `/client.json`.
async fn document_server(fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let doc = json!({"client_id": format!("{base}/client.json"), "client_name": "Doc Agent",
                     "redirect_uris": ["http://127.0.0.1/callback"],
                     "grant_types": ["authorization_code", "refresh_token"]});
    let other = json!({"client_id": "https://elsewhere.example/client.json",
                       "redirect_uris": ["http://127.0.0.1/callback"]});
    let app = axum::Router::new()
        .route(
            "/client.json",
            get(move || {
                let doc = doc.clone();
                let fetches = fetches.clone();
                async move {
                    fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    ([("cache-control", "max-age=300")], axum::Json(doc))
                }
            }),
        )
        .route("/other.json", get(move || async move { axum::Json(other) }))
        .route(
            "/big.json",
            get(|| async { axum::Json(json!({"padding": "x".repeat(20_000)})) }),
        )
        .route(
            "/moved.json",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "/client.json")],
                )
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn client_id_metadata_documents_are_fetched_with_guards(backend: Backend) {
    let s = TestServer::start_with(backend, |env| {
        env.insert(
            "PORTCULLIS_DANGER_ALLOW_PRIVATE_CLIENT_METADATA".into(),
            "true".into(),
        );
    })
    .await;
    setup(&s).await;
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let base = document_server(fetches.clone()).await;
    let id = format!("{base}/client.json");
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let page = b.get(&authorize_url(&s, &id, &challenge, &[])).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let consent = b.sign_in(&s, &page, "alice", "correct horse battery").await;
    assert!(consent.body.contains("Doc Agent"), "{}", consent.body);
    let back = b.allow(&s, &consent, true).await;
    let (st, t) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &id),
            ("code", &back.param("code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    let (_, c) = claims(t["access_token"].as_str().unwrap());
    assert_eq!(c["client_id"], id.as_str());
    let (st, _) = refresh_as(&s, &id, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200);
    // Kept as its Cache-Control allows: fetched once for all of that.
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Documents that cannot be used are shown as such, never redirected to.
    for (path, shown) in [
        ("/other.json", "not its URL"),
        ("/big.json", "larger than"),
        ("/moved.json", "302"),
        ("/missing.json", "404"),
    ] {
        let (_, challenge) = pkce();
        let a = b
            .get(&authorize_url(
                &s,
                &format!("{base}{path}"),
                &challenge,
                &[],
            ))
            .await;
        assert_eq!(a.status, 400, "{path}");
        assert!(a.body.contains(shown), "{path}: {}", a.body);
    }
}

/// Without the danger switch, a metadata document at a loopback or private address is not
/// fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_documents_at_private_addresses_are_refused() {
    let s = TestServer::start(Backend::Sqlite).await;
    setup(&s).await;
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let base = document_server(fetches.clone()).await;
    let mut b = Browser::new();
    let (_, challenge) = pkce();
    for id in [
        format!("{base}/client.json"),
        "https://127.0.0.1/client.json".to_owned(),
        "https://10.1.2.3/client.json".to_owned(),
        "https://localhost/client.json".to_owned(),
        "https://[::1]/client.json".to_owned(),
    ] {
        let a = b.get(&authorize_url(&s, &id, &challenge, &[])).await;
        assert_eq!(a.status, 400, "{id}: {}", a.body);
        assert!(a.location.is_none());
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (_, meta) = s.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);
}

async fn refresh_as(s: &TestServer, client: &str, rt: &str) -> (u16, Value) {
    token(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", rt),
        ],
    )
    .await
}

/// OpenID Connect: discovery at its well-known location, and an ID token for a code flow that
/// asks for `openid` — for the client, with the request's nonce, bound to the access token by
/// `at_hash`, signed with a key of the JWK set — and again on refresh, without the nonce.
async fn openid_connect_adds_id_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    setup(&s).await;
    let issuer = s.core.settings().public_url.clone();
    let (st, e) = s
        .put(
            "/v1/mgmt/users/alice",
            json!({"email": "Alice@Example.com", "name": "Alice Liddell", "roles": ["engineer"]}),
        )
        .await;
    assert_eq!(st, 200, "{e}");
    let http = reqwest::Client::new();
    let discovery: Value = http
        .get(format!("{}/.well-known/openid-configuration", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metadata: Value = http
        .get(format!("{}/.well-known/oauth-authorization-server", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery, metadata, "one document at both locations");
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(discovery["subject_types_supported"], json!(["public"]));
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(
        discovery["scopes_supported"],
        json!(["openid", "profile", "email"])
    );

    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        &s,
        "desktop",
        &challenge,
        &[
            ("scope", "openid profile email tools.read"),
            ("nonce", "n-0S6_WzA2Mj"),
        ],
    );
    let page = b.get(&url).await;
    let consent = b.sign_in(&s, &page, "alice", "correct horse battery").await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    for shown in [
        "Know who you are",
        "See your name",
        "See your email address",
    ] {
        assert!(consent.body.contains(shown), "{shown}: {}", consent.body);
    }
    let back = b.allow(&s, &consent, false).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let (st, t) = redeem(&s, &back.param("code").unwrap(), &verifier).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["scope"], "openid profile email tools.read");
    let at = t["access_token"].as_str().unwrap();
    let id_token = t["id_token"].as_str().unwrap();
    let (header, c) = claims(id_token);
    assert_eq!(
        (header["typ"].as_str(), header["alg"].as_str()),
        (Some("JWT"), Some("ES256"))
    );
    assert_eq!(c["iss"], issuer.as_str());
    assert_eq!(c["aud"], "desktop");
    assert_eq!(c["azp"], "desktop");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(c["name"], "Alice Liddell");
    assert_eq!(c["email"], "Alice@Example.com");
    assert!(c["auth_time"].as_i64().unwrap() <= c["iat"].as_i64().unwrap());
    let digest = portcullis_crypto::sha256(at.as_bytes());
    assert_eq!(c["at_hash"], B64.encode(&digest[..16]));
    // Signed with a key of the JWK set.
    let jwks: portcullis_crypto::jws::JwkSet = http
        .get(format!("{}/.well-known/jwks.json", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (keys, _) = portcullis_crypto::jws::KeySet::from_jwks(&jwks);
    portcullis_crypto::jws::Unverified::parse(id_token, 16 * 1024)
        .unwrap()
        .verify_with(&keys)
        .unwrap();
    // A refresh returns a new ID token, without the nonce.
    let (st, r) = refresh(&s, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200, "{r}");
    let (_, c) = claims(r["id_token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].as_str(), c["aud"].as_str()),
        (Some("alice"), Some("desktop"))
    );
    assert!(c.get("nonce").is_none(), "{c}");
    // Narrowed to the resource's scopes, it returns none.
    let (st, r) = token(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "desktop"),
            ("refresh_token", r["refresh_token"].as_str().unwrap()),
            ("scope", "tools.read"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert!(r.get("id_token").is_none(), "{r}");
    // A nonce with a control character is refused back at the client.
    let url = authorize_url(
        &s,
        "desktop",
        &challenge,
        &[("scope", "openid"), ("nonce", "a\u{7}b")],
    );
    let answer = b.get(&url).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.param("error").as_deref(), Some("invalid_request"));
}

both_backends!(
    openid_connect_adds_id_tokens,
    client_id_metadata_documents_are_fetched_with_guards,
    id_jag_grants_are_exchanged_within_what_they_grant,
    clients_register_themselves_as_public_clients,
    the_code_flow_issues_tokens_the_plane_accepts,
    codes_and_refresh_tokens_are_used_once,
    bad_authorization_requests_are_refused_per_the_rfcs,
);

/// Two nodes on one PostgreSQL database: a session, a code and a refresh token work on either; a
/// code is redeemed once in the whole cluster, and a refresh token replayed on the other node
/// revokes its family there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_hold_across_nodes() {
    // Nodes behind one load balancer share the public URL: Portcullis's issuer identifier.
    let a = TestServer::start_with(Backend::Postgres, |env| {
        env.insert("PORTCULLIS_PUBLIC_URL".into(), "http://127.0.0.1:1".into());
    })
    .await;
    let b_node = a.another_node().await;
    setup(&a).await;
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let back = sign_in_and_allow(
        &a,
        &mut browser,
        &authorize_url(&a, "desktop", &challenge, &[]),
    )
    .await;
    let code = back.param("code").unwrap();
    // Both nodes at once: one wins.
    let (ra, rb) = tokio::join!(
        redeem(&a, &code, &verifier),
        redeem(&b_node, &code, &verifier)
    );
    // At most one wins; the other presentation is a replay, which revokes what the code gave,
    // on every node — even a token the first redemption had not stored yet (then neither wins).
    let winners: Vec<&Value> = [&ra, &rb]
        .iter()
        .filter(|(st, _)| *st == 200)
        .map(|(_, t)| t)
        .collect();
    assert!(winners.len() <= 1, "{ra:?} {rb:?}");
    for (st, e) in [&ra, &rb].into_iter().filter(|(st, _)| *st != 200) {
        assert_eq!(
            (*st, e["error"].as_str()),
            (400, Some("invalid_grant")),
            "{e}"
        );
    }
    if let Some(t) = winners.first() {
        // The access token is an inbound token on the other node too.
        let (st, e, _) = b_node
            .fetch(t["access_token"].as_str(), "nope", json!({}))
            .await;
        assert_eq!(st, 404, "{e}");
        let (st, e) = refresh(&b_node, t["refresh_token"].as_str().unwrap()).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (400, Some("invalid_grant")),
            "{e}"
        );
    }
    // The session cookie and the remembered consent hold on the other node.
    let (verifier2, challenge2) = pkce();
    let again = browser
        .get(&authorize_url(&b_node, "desktop", &challenge2, &[]))
        .await;
    assert_eq!(again.status, 303, "{}", again.body);
    let (st, t) = redeem(&a, &again.param("code").unwrap(), &verifier2).await;
    assert_eq!(st, 200);
    // Rotated on one node, replayed on the other: the family is revoked everywhere.
    let first = t["refresh_token"].as_str().unwrap().to_owned();
    let (st, rotated) = refresh(&b_node, &first).await;
    assert_eq!(st, 200, "{rotated}");
    let (st, e) = refresh(&a, &first).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (st, _) = refresh(&b_node, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 400);
}
