//! Single sign-on through an upstream OpenID provider — oauth2-mock-server playing Entra ID,
//! whose id_tokens carry the user's `groups` — driven through the real pages: the sign-in page's
//! button, the provider, the callback, the consent screen, the code exchange. The groups become
//! roles and tenant memberships at every sign-in, and the access control plane decides the next
//! token request on the directory as the last sign-in left it. Every refusal has its case: a
//! forged or replayed callback, another browser's callback, a wrong nonce, audience or issuer, an
//! expired id_token, a provider's error, an identity with no account.

use reqwest::Method;
use serde_json::{Value, json};

use crate::authz::{Answer, Browser, REDIRECT, RESOURCE, authorize_url, claims, pkce, redeem};
use crate::both_backends;
use crate::support::{Backend, Provider, TestServer};

/// The roles, tenant, SSO connection and API-key app of the scenario.
async fn world(backend: Backend) -> (TestServer, Provider) {
    let s = TestServer::start(backend).await;
    crate::authz::setup(&s).await;
    for role in ["Viewer", "Editor"] {
        s.must_post("/v1/mgmt/roles", json!({ "name": role })).await;
    }
    s.must_post("/v1/mgmt/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    let p = Provider::start().await;
    let conn = s
        .must_post(
            "/v1/mgmt/sso-connections",
            json!({
                "id": "entra", "name": "Entra ID", "issuer": p.url,
                "clientId": "portcullis-at-entra", "clientSecret": "entra-secret",
                "claims": ["department"],
                "mappings": [
                    {"claim": "groups", "value": "g-viewers", "roles": ["Viewer"]},
                    {"claim": "groups", "value": "g-editors", "roles": ["Editor"]},
                    {"claim": "groups", "value": "g-acme", "tenant": "acme", "roles": ["Editor"]},
                ],
            }),
        )
        .await;
    assert_eq!(conn["hasClientSecret"], true);
    assert!(conn.get("clientSecret").is_none(), "{conn}");
    assert_eq!(conn["scopes"], json!(["openid", "email", "profile"]));
    (s, p)
}

/// What Entra ID says about the user at the next sign-in.
async fn entra_says(p: &Provider, groups: &[&str], extra: Value) {
    let mut claims = json!({
        "sub": "entra-oid-1", "email": "Bob@Contoso.com", "name": "Bob Contoso", "groups": groups,
        "department": "engineering",
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    p.set(json!({ "idClaims": claims })).await;
}

/// Presses "Sign in with Entra ID" on the sign-in page of `url`: the redirect to the provider.
async fn press_sso(s: &TestServer, b: &mut Browser, url: &str) -> Answer {
    let page = b.get(url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Sign in with Entra ID"), "{}", page.body);
    let to_idp = b
        .post(
            &format!("{}/oauth2/sso/start", s.url),
            &[
                ("request", &page.field("request")),
                ("csrf", &page.field("csrf")),
                ("connection", "entra"),
            ],
        )
        .await;
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    to_idp
}

/// The provider signs the user in at once and sends the browser back: the callback URL.
async fn at_provider(b: &mut Browser, to_idp: &Answer) -> String {
    let back = b.get(to_idp.location.as_deref().unwrap()).await;
    assert_eq!(back.status, 302, "{}", back.body);
    back.location.unwrap()
}

/// Signs in through Entra ID; the callback's answer.
async fn sign_in_with_entra(s: &TestServer, b: &mut Browser, url: &str) -> Answer {
    let to_idp = press_sso(s, b, url).await;
    let callback = at_provider(b, &to_idp).await;
    b.get(&callback).await
}

/// The roles the access token of a fresh code flow through SSO carries, and the token.
async fn roles_after_sign_in(s: &TestServer) -> (Value, String) {
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let url = authorize_url(s, "desktop", &challenge, &[]);
    let mut answer = sign_in_with_entra(s, &mut b, &url).await;
    if answer.status == 200 {
        assert!(answer.body.contains("Allow access?"), "{}", answer.body);
        answer = b.allow(s, &answer, true).await;
    }
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.location.as_deref().unwrap().starts_with(REDIRECT));
    let (st, t) = redeem(s, &answer.param("code").unwrap(), &verifier).await;
    assert_eq!(st, 200, "{t}");
    let at = t["access_token"].as_str().unwrap().to_owned();
    let (_, c) = claims(&at);
    assert_eq!(c["aud"], RESOURCE);
    (c, at)
}

async fn groups_become_roles_at_every_sign_in(backend: Backend) {
    let (s, p) = world(backend).await;
    entra_says(&p, &["g-viewers", "unrelated"], json!({})).await;

    // The provider is asked for a code with PKCE S256, a state and a nonce, at the redirect URI
    // registered there.
    let mut b = Browser::new();
    let (_, challenge) = pkce();
    let to_idp = press_sso(&s, &mut b, &authorize_url(&s, "desktop", &challenge, &[])).await;
    let asked = url::Url::parse(to_idp.location.as_deref().unwrap()).unwrap();
    assert!(asked.as_str().starts_with(&format!("{}/authorize?", p.url)));
    let q: std::collections::HashMap<String, String> = asked.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "portcullis-at-entra");
    assert_eq!(q["redirect_uri"], format!("{}/oauth2/sso/callback", s.url));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["scope"], "openid email profile");
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);

    // First sign-in: the user is created, linked to Entra ID's issuer and subject, a Viewer.
    let (c, viewer_token) = roles_after_sign_in(&s).await;
    let user_id = c["sub"].as_str().unwrap().to_owned();
    assert!(user_id.starts_with("sso-entra-"), "{c}");
    assert_eq!(c["roles"], json!(["Viewer"]));
    // The claim the connection copies rides in the access token (for `jwtClaims` policies).
    assert_eq!(c["department"], "engineering");
    let (_, user) = s.get(&format!("/v1/mgmt/users/{user_id}")).await;
    assert_eq!(
        user["identities"],
        json!([{"issuer": p.url, "subject": "entra-oid-1"}])
    );
    assert_eq!(user["email"], "Bob@Contoso.com");
    assert_eq!(user["name"], "Bob Contoso");
    assert_eq!(user["tenants"], json!([]));

    // An admin gives the user another role by hand: the connection leaves it alone.
    s.must_post("/v1/mgmt/roles", json!({"name": "Auditor"}))
        .await;
    let mut edited = user.clone();
    for k in ["createdAt", "updatedAt"] {
        edited.as_object_mut().unwrap().remove(k);
    }
    edited["roles"] = json!(["Auditor", "Viewer"]);
    let (st, e) = s.put(&format!("/v1/mgmt/users/{user_id}"), edited).await;
    assert_eq!(st, 200, "{e}");

    // The access control plane decides on the directory: an app only Editors may use.
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({"apiKey": "crm-key-of-bob", "userId": user_id}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/policies",
        json!({"name": "Editors", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Editor"}], "scopes": "all"}),
    )
    .await;
    let (st, e, _) = s.fetch(Some(&viewer_token), "crm", json!({})).await;
    assert_eq!(st, 403, "{e}");

    // Moved from the viewers' group to the editors' and Acme's: at the next sign-in the user
    // loses Viewer, gains Editor and Acme's membership, keeps Auditor.
    entra_says(&p, &["g-editors", "g-acme"], json!({"department": "sales"})).await;
    let (c, _) = roles_after_sign_in(&s).await;
    assert_eq!(c["sub"], user_id.as_str(), "the same user");
    assert_eq!(c["department"], "sales");
    assert_eq!(c["roles"], json!(["Auditor", "Editor"]));
    let (_, user) = s.get(&format!("/v1/mgmt/users/{user_id}")).await;
    assert_eq!(user["roles"], json!(["Auditor", "Editor"]));
    assert_eq!(
        user["tenants"],
        json!([{"tenantId": "acme", "roles": ["Editor"]}])
    );
    // ... and the very next token request is decided on that, even with the token minted while
    // the user was a Viewer.
    let (st, e, _) = s.fetch(Some(&viewer_token), "crm", json!({})).await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["token"]["apiKey"], "crm-key-of-bob");

    // Out of every group: out of the roles and the tenant the connection manages.
    entra_says(&p, &[], json!({})).await;
    let (c, _) = roles_after_sign_in(&s).await;
    assert_eq!(c["roles"], json!(["Auditor"]));
    let (st, e, _) = s.fetch(Some(&viewer_token), "crm", json!({})).await;
    assert_eq!(st, 403, "{e}");

    // The secret is sealed, never shown; the connection is listed, updated, deleted.
    let (st, list) = s.get("/v1/mgmt/sso-connections").await;
    assert_eq!(st, 200);
    assert_eq!(list["items"][0]["id"], "entra");
    assert!(!list.to_string().contains("entra-secret"));
    let (st, e) = s
        .admin(
            Method::POST,
            "/v1/mgmt/sso-connections",
            Some(
                json!({"id": "bad", "name": "Bad", "issuer": p.url, "clientId": "x",
                        "mappings": [{"claim": "groups", "value": "g", "roles": ["NoSuchRole"]}]}),
            ),
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (409, Some("unknown_reference")));
    let (st, e) = s
        .admin(
            Method::POST,
            "/v1/mgmt/sso-connections",
            Some(
                json!({"id": "bad", "name": "Bad", "issuer": "ftp://idp.example", "clientId": "x"}),
            ),
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_url")));
    let (st, e) = s
        .admin(
            Method::POST,
            "/v1/mgmt/sso-connections",
            Some(json!({"id": "bad", "name": "Bad", "issuer": p.url, "clientId": "x", "claims": ["roles"]})),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    let (st, e) = s.delete("/v1/mgmt/sso-connections/entra").await;
    assert_eq!(st, 204, "{e}");
    let page = Browser::new()
        .get(&authorize_url(&s, "desktop", &challenge, &[]))
        .await;
    assert!(!page.body.contains("Entra ID"), "{}", page.body);
}

async fn forged_replayed_and_invalid_sign_ins_are_refused(backend: Backend) {
    let (s, p) = world(backend).await;
    entra_says(&p, &["g-viewers"], json!({})).await;
    let (_, challenge) = pkce();
    let url = authorize_url(&s, "desktop", &challenge, &[]);
    let users_before = s.get("/v1/mgmt/users").await.1["items"].clone();

    // Another browser opening a callback (login CSRF: an attacker's code in the victim's
    // browser) has no flow cookie: refused.
    let mut b = Browser::new();
    let to_idp = press_sso(&s, &mut b, &url).await;
    let callback = at_provider(&mut b, &to_idp).await;
    let other = Browser::new().get(&callback).await;
    assert_eq!(other.status, 400, "{}", other.body);
    assert!(
        other
            .body
            .contains("no single sign-on was started in this browser")
    );

    // A forged state in the right browser: refused.
    let forged = callback.replace("state=", "state=x");
    let answer = b.get(&forged).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("state"), "{}", answer.body);

    // The flow cookie is spent by any answer: the genuine callback replayed afterwards fails.
    let replay = b.get(&callback).await;
    assert_eq!(replay.status, 400, "{}", replay.body);

    // An id_token that is not for this sign-in.
    for (extra, why) in [
        (json!({"nonce": "not-the-one-sent"}), "nonce"),
        (json!({"aud": "another-client"}), "audience"),
        (json!({"iss": "https://evil.example"}), "issuer"),
        (json!({"exp": 1_000_000_000}), "expired"),
    ] {
        entra_says(&p, &["g-viewers"], extra.clone()).await;
        let mut b = Browser::new();
        let answer = sign_in_with_entra(&s, &mut b, &url).await;
        assert_eq!(answer.status, 400, "{extra}: {}", answer.body);
        assert!(
            answer.body.contains("id_token is not valid"),
            "{extra}: {}",
            answer.body
        );
        assert!(
            answer.body.to_lowercase().contains(why),
            "{why}: {}",
            answer.body
        );
        assert!(!b.cookies.contains_key("portcullis_session"));
    }

    // The provider refuses (the user cancelled): its error is shown.
    let mut b = Browser::new();
    let to_idp = press_sso(&s, &mut b, &url).await;
    let state = url::Url::parse(to_idp.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let answer = b
        .get(&format!(
            "{}/oauth2/sso/callback?error=access_denied&error_description=the+user+cancelled&state={state}",
            s.url
        ))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("access_denied (the user cancelled)"));

    // A mix-up: the answer names another issuer (RFC 9207).
    let mut b = Browser::new();
    entra_says(&p, &["g-viewers"], json!({})).await;
    let to_idp = press_sso(&s, &mut b, &url).await;
    let callback = at_provider(&mut b, &to_idp).await;
    let answer = b
        .get(&format!("{callback}&iss=https%3A%2F%2Fevil.example"))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);

    // An unknown connection; a form without this browser's CSRF token.
    let mut b = Browser::new();
    let page = b.get(&url).await;
    let answer = b
        .post(
            &format!("{}/oauth2/sso/start", s.url),
            &[
                ("request", &page.field("request")),
                ("csrf", &page.field("csrf")),
                ("connection", "nope"),
            ],
        )
        .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    let answer = Browser::new()
        .post(
            &format!("{}/oauth2/sso/start", s.url),
            &[
                ("request", &page.field("request")),
                ("csrf", &page.field("csrf")),
                ("connection", "entra"),
            ],
        )
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);

    // Nothing of the above created a user.
    assert_eq!(s.get("/v1/mgmt/users").await.1["items"], users_before);

    // Without provisioning, only a linked identity signs in.
    let (_, mut conn) = s.get("/v1/mgmt/sso-connections/entra").await;
    for k in ["createdAt", "updatedAt", "hasClientSecret"] {
        conn.as_object_mut().unwrap().remove(k);
    }
    conn["provision"] = json!(false);
    let (st, e) = s.put("/v1/mgmt/sso-connections/entra", conn).await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["hasClientSecret"], true, "the secret is kept");
    entra_says(&p, &["g-viewers"], json!({})).await;
    let answer = sign_in_with_entra(&s, &mut Browser::new(), &url).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("no account here is linked"));
    // An admin links alice to the Entra identity: she signs in with it, a Viewer now.
    let (_, mut alice) = s.get("/v1/mgmt/users/alice").await;
    for k in ["createdAt", "updatedAt"] {
        alice.as_object_mut().unwrap().remove(k);
    }
    alice["identities"] = json!([{"issuer": p.url, "subject": "entra-oid-1"}]);
    let (st, e) = s.put("/v1/mgmt/users/alice", alice).await;
    assert_eq!(st, 200, "{e}");
    let (c, _) = roles_after_sign_in(&s).await;
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["roles"], json!(["Viewer", "engineer"]));
    // A disabled user is refused.
    let (_, mut alice) = s.get("/v1/mgmt/users/alice").await;
    for k in ["createdAt", "updatedAt"] {
        alice.as_object_mut().unwrap().remove(k);
    }
    alice["disabled"] = json!(true);
    let (st, e) = s.put("/v1/mgmt/users/alice", alice).await;
    assert_eq!(st, 200, "{e}");
    let answer = sign_in_with_entra(&s, &mut Browser::new(), &url).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("disabled"));
}

both_backends!(
    groups_become_roles_at_every_sign_in,
    forged_replayed_and_invalid_sign_ins_are_refused,
);
