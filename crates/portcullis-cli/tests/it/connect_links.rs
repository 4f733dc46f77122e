//! Connect links are bound to the user they were made for, and a flow to the browser that
//! started it. The attack they stop: an attacker starts a connect flow for their own account and
//! has a victim consent at the provider, so that the victim's third-party account lands in the
//! attacker's connection. Each browser here is its own cookie jar.

use serde_json::json;

use crate::authz::Browser;
use crate::both_backends;
use crate::support::{Backend, Idp, Provider, TestServer};

const APP: &str = "calendar";

async fn world(backend: Backend) -> (TestServer, Idp, Provider) {
    let p = Provider::start().await;
    let idp = Idp::start().await;
    let s = TestServer::start(backend).await;
    s.trust(&idp).await;
    s.must_post("/v1/mgmt/outbound-apps", p.app(APP, &["calendar.read"]))
        .await;
    (s, idp, p)
}

async fn link_for(s: &TestServer, token: &str) -> String {
    s.connect_link(token, APP, json!({"scopes": ["calendar.read"]}))
        .await
}

/// The link's page, then "Continue" in `b`: the provider's authorization URL.
async fn continue_in(b: &mut Browser, link: &str) -> String {
    let page = b.get(link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let go = b
        .post(
            link,
            &[("action", "continue"), ("csrf", &page.field("csrf"))],
        )
        .await;
    assert_eq!(go.status, 303, "{}", go.body);
    go.location.unwrap()
}

/// The provider consents at once; the callback in `b`.
async fn consent_in(b: &mut Browser, provider_url: &str) -> (u16, String) {
    let back = b.get(provider_url).await;
    assert_eq!(back.status, 302);
    let done = b.get(back.location.as_deref().unwrap()).await;
    (done.status, done.body)
}

async fn connections_of(s: &TestServer, user: &str) -> usize {
    let (_, list) = s.get(&format!("/v1/mgmt/users/{user}/connections")).await;
    list["items"].as_array().map_or(0, Vec::len)
}

async fn a_started_flow_completes_only_in_its_browser(backend: Backend) {
    let (s, idp, _p) = world(backend).await;
    let mallory = idp.token("mallory");
    let principal = portcullis_core::external_principal(&idp.issuer, "mallory");

    // Mallory starts a flow in her browser and sends the provider's URL to a victim.
    let mut attacker = Browser::new();
    let provider_url = continue_in(&mut attacker, &link_for(&s, &mallory).await).await;
    let mut victim = Browser::new();
    let (st, page) = consent_in(&mut victim, &provider_url).await;
    assert_eq!(st, 403, "{page}");
    assert!(page.contains("another browser"), "{page}");
    let (_, conns) = s
        .get(&format!("/v1/mgmt/outbound-apps/{APP}/connections"))
        .await;
    assert_eq!(
        conns["items"],
        json!([]),
        "nothing was stored for {principal}"
    );

    // The same flow in the browser that started it completes (the victim's answer did not spend
    // it).
    let (st, page) = consent_in(&mut attacker, &provider_url).await;
    assert_eq!(st, 200, "{page}");
    let (_, conns) = s
        .get(&format!("/v1/mgmt/outbound-apps/{APP}/connections"))
        .await;
    assert_eq!(conns["items"].as_array().unwrap().len(), 1);
    assert_eq!(conns["items"][0]["userId"], principal.as_str());
}

async fn a_link_belongs_to_the_first_browser_that_opens_it(backend: Backend) {
    let (s, idp, _p) = world(backend).await;
    let link = link_for(&s, &idp.token("mallory")).await;

    // The first browser claims it and is shown who connects what.
    let mut first = Browser::new();
    let page = first.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "mallory",
        "App calendar",
        "calendar.read",
        "cannot be opened in any other",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    let ticket = link.rsplit('/').next().unwrap();
    assert!(
        first
            .cookies
            .contains_key(&portcullis_core::claim_cookie_name(ticket))
    );
    // Another link claimed in the same browser meanwhile does not take this one's claim.
    let other = link_for(&s, &idp.token("mallory")).await;
    assert_eq!(first.get(&other).await.status, 200);
    // Any other browser is refused, before and after the first continues.
    let mut second = Browser::new();
    let other = second.get(&link).await;
    assert_eq!(other.status, 410, "{}", other.body);
    assert!(other.body.contains("another browser"), "{}", other.body);
    // A claim cookie copied from another link, or none, does not continue it.
    let forged = second
        .post(&link, &[("action", "continue"), ("csrf", "x")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    second
        .cookies
        .insert("portcullis_csrf".into(), "c".repeat(43));
    let no_claim = second
        .post(&link, &[("action", "continue"), ("csrf", &"c".repeat(43))])
        .await;
    assert_eq!(no_claim.status, 403, "{}", no_claim.body);
    // The first browser reopens it (the page again), continues, and connects.
    let again = first.get(&link).await;
    assert_eq!(again.status, 200, "{}", again.body);
    let provider_url = continue_in(&mut first, &link).await;
    let (st, page) = consent_in(&mut first, &provider_url).await;
    assert_eq!(st, 200, "{page}");
    // The link is spent.
    let spent = first.get(&link).await;
    assert_eq!(spent.status, 410, "{}", spent.body);
}

async fn a_user_who_signs_in_here_must_be_signed_in_as_the_links_user(backend: Backend) {
    let (s, idp, _p) = world(backend).await;
    // Alice and Bob are directory users with passwords (Portcullis signs them in); their
    // inbound tokens come from the IdP.
    for id in ["alice", "bob"] {
        s.must_post(
            "/v1/mgmt/users",
            json!({"id": id, "identities": idp.identity(id)}),
        )
        .await;
        let (st, e) = s
            .put(
                &format!("/v1/mgmt/users/{id}/password"),
                json!({"password": format!("{id} correct horse")}),
            )
            .await;
        assert_eq!(st, 204, "{e}");
    }
    let link = link_for(&s, &idp.token("alice")).await;

    // Bob, signed in here, opens the link Alice's application made: refused.
    let mut bob = Browser::new();
    let page = bob.get(&link).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in"), "{}", page.body);
    let signed_in = bob
        .post(
            &link,
            &[
                ("action", "sign_in"),
                ("csrf", &page.field("csrf")),
                ("login", "bob"),
                ("password", "bob correct horse"),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let refused = bob.get(&link).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("made for another account"));
    let csrf = bob.cookies["portcullis_csrf"].clone();
    let refused = bob
        .post(&link, &[("action", "continue"), ("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // "Continue" from a browser signed in as no one asks to sign in (and starts nothing).
    let mut nobody = Browser::new();
    let page = nobody.get(&link).await;
    let asked = nobody
        .post(
            &link,
            &[("action", "continue"), ("csrf", &page.field("csrf"))],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("Sign in"), "{}", asked.body);
    assert!(asked.location.is_none());
    // A wrong password keeps the page.
    let mut alice = Browser::new();
    let page = alice.get(&link).await;
    let wrong = alice
        .post(
            &link,
            &[
                ("action", "sign_in"),
                ("csrf", &page.field("csrf")),
                ("login", "alice"),
                ("password", "not it at all"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    // Alice signs in on the page, sees what she connects, continues, consents.
    let signed_in = alice
        .post(
            &link,
            &[
                ("action", "sign_in"),
                ("csrf", &page.field("csrf")),
                ("login", "alice"),
                ("password", "alice correct horse"),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let provider_url = continue_in(&mut alice, &link).await;
    let (st, page) = consent_in(&mut alice, &provider_url).await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(connections_of(&s, "alice").await, 1);
    assert_eq!(connections_of(&s, "bob").await, 0);
}

both_backends!(
    a_started_flow_completes_only_in_its_browser,
    a_link_belongs_to_the_first_browser_that_opens_it,
    a_user_who_signs_in_here_must_be_signed_in_as_the_links_user,
);
