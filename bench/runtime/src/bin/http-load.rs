//! The HTTP load benchmark: a release `portcullis serve` on SQLite, a JWKS-publishing IdP, an
//! OAuth app with a connected user and ten policies; `wrk` at 16 connections against a bare
//! endpoint (`GET /healthz`) and the token endpoint (`POST /v1/outbound/apps/{app}/token`, the
//! same inbound token every time: the warm path) in the same run. Prints requests/s and latency
//! percentiles.
//!
//! `bench/load.sh` builds everything and runs this; `--seconds N` (default 10).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark driver"
)]

use portcullis_bench_runtime::{Run, wrk};

use axum::Router;
use axum::routing::get;
use portcullis_crypto::jws::{Algorithm, SigningKey};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://mcp.bench.example/mcp";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bin =
        std::env::var("PORTCULLIS_BIN").unwrap_or_else(|_| "target/release/portcullis".into());

    // The IdP.
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks = json!({ "keys": [key.public_jwk()] });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The server.
    let server = portcullis_bench_runtime::Server::start(&bin, &[]);
    let (base, admin) = (server.base.clone(), server.admin.clone());
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        }
    };
    post("/v1/mgmt/issuers", json!({"issuer": issuer, "jwksUrl": format!("{issuer}/jwks.json"), "audiences": [AUDIENCE], "algorithms": ["ES256"], "rolesClaim": "roles"})).await;
    post("/v1/mgmt/outbound-apps", json!({
        "id": "calendar", "name": "Calendar", "type": "oauth", "clientId": "c", "clientSecret": "s",
        "authorizationUrl": "https://provider.example/authorize", "tokenUrl": "https://provider.example/token",
        "scopes": [{"name": "calendar.readonly"}, {"name": "calendar"}],
    })).await;
    for i in 0..10 {
        let role = if i == 7 {
            "Viewer".to_owned()
        } else {
            format!("role-{i}")
        };
        post("/v1/mgmt/outbound-apps/calendar/policies", json!({"name": format!("policy {i}"), "conditions": [
            {"source": "userRoles", "operator": "contains", "value": role},
            {"source": "jwtClaims", "claim": "department", "operator": "in", "value": ["eng", "ops"]}
        ], "scopes": ["calendar.readonly"]})).await;
    }
    post("/v1/mgmt/roles", json!({"name": "Viewer"})).await;
    post(
        "/v1/mgmt/users",
        json!({"id": "alice", "roles": ["Viewer"]}),
    )
    .await;
    post(
        "/v1/mgmt/outbound-apps/calendar/tokens",
        json!({"tokens": [{"userId": "alice",
        "accessToken": "ya29.a0AfH6SMBx-provider-access-token-of-a-realistic-length-0123456789",
        "scopes": ["calendar.readonly"], "expiresAt": "2099-01-01T00:00:00Z"}]}),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = key
        .sign_jwt(
            &json!({"iss": issuer, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 3600,
                    "scope": "openid outbound.token.fetch", "department": "eng", "azp": "mcp-client"}),
            Some("at+jwt"),
        )
        .unwrap();
    let check = http
        .post(format!("{base}/v1/outbound/apps/calendar/token"))
        .bearer_auth(&token)
        .json(&json!({"scopes": ["calendar.readonly"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        check.status().as_u16(),
        200,
        "{}",
        check.text().await.unwrap()
    );
    let script = dir.path().join("token.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"scopes\":[\"calendar.readonly\"]}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ),
    )
    .unwrap();

    let only_token = std::env::args().any(|a| a == "--only-token");
    let warm = |url: String, script: Option<String>| {
        tokio::task::spawn_blocking(move || wrk(&url, script.as_deref(), 2))
    };
    let bare = if only_token {
        Run::default()
    } else {
        warm(format!("{base}/healthz"), None).await.unwrap();
        tokio::task::spawn_blocking({
            let url = format!("{base}/healthz");
            move || wrk(&url, None, seconds)
        })
        .await
        .unwrap()
    };
    warm(
        format!("{base}/v1/outbound/apps/calendar/token"),
        Some(script.display().to_string()),
    )
    .await
    .unwrap();
    let tokens = tokio::task::spawn_blocking({
        let url = format!("{base}/v1/outbound/apps/calendar/token");
        let s = script.display().to_string();
        move || wrk(&url, Some(&s), seconds)
    })
    .await
    .unwrap();
    drop(server);
    portcullis_bench_runtime::print_table(
        &format!("endpoint (16 connections, {seconds} s, wrk on the same 2 cores)"),
        &[
            ("GET /healthz (bare)", &bare),
            ("POST /v1/outbound/apps/{app}/token (warm)", &tokens),
        ],
    );
    println!(
        "\ntoken endpoint / bare endpoint throughput: {:.0}%",
        100.0 * tokens.requests_per_sec / bare.requests_per_sec.max(1.0)
    );
}
