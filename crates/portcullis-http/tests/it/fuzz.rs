//! Fuzz targets on the stable toolchain, through the real router: the OAuth token endpoint's form
//! parser (`POST /oauth2/token`: arbitrary, repeated, percent-encoded and oversized parameters,
//! arbitrary client credentials) and the provider callback's query parser
//! (`GET /v1/outbound/callback`). No input panics a handler (a panic would be a 500), every
//! refusal is a 4xx in its documented shape, and nothing is answered 200 to garbage.
//! `PROPTEST_CASES` sets the number of cases.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use portcullis_http::AppState;
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct World {
    rt: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let router = rt.block_on(async {
        let (core, _) = crate::core_on_sqlite(dir.path(), crate::unlimited(), "fuzz").await;
        core.create_client(&portcullis_core::manage::ClientInput {
            id: Some("mcp".into()),
            name: "MCP".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        portcullis_http::router(AppState {
            core,
            metrics: None,
        })
    });
    World {
        rt,
        router,
        _dir: dir,
    }
});

/// Sends a request; the status and the body.
fn send(req: Request<Body>) -> (u16, Vec<u8>) {
    let w = &*WORLD;
    w.rt.block_on(async {
        let resp = w.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    })
}

const FORM_KEYS: [&str; 13] = [
    "grant_type",
    "subject_token",
    "subject_token_type",
    "resource",
    "audience",
    "scope",
    "client_id",
    "client_secret",
    "requested_token_type",
    "tenant_id",
    "actor_token",
    "",
    "%00",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("urn:ietf:params:oauth:grant-type:token-exchange".to_owned()),
        Just("urn:ietf:params:oauth:token-type:access_token".to_owned()),
        Just("urn:portcullis:outbound-app:cal".to_owned()),
        Just("mcp".to_owned()),
        "[a-zA-Z0-9%+=&._~-]{0,40}",
        ".{0,40}",
        (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

fn form() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Parameters, encoded as a client would, repeated at will.
        prop::collection::vec(
            (
                prop_oneof![
                    prop::sample::select(FORM_KEYS.to_vec()).prop_map(str::to_owned),
                    ".{0,12}",
                    (1usize..3000).prop_map(|n| "k".repeat(n)),
                ],
                text(),
            ),
            0..12,
        )
        .prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes()
        }),
        // Parameters written raw, encoding mistakes included.
        prop::collection::vec((prop::sample::select(FORM_KEYS.to_vec()), text()), 0..12).prop_map(
            |pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes()
            }
        ),
        // Bytes.
        prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        (".{0,20}", ".{0,40}").prop_map(|(id, secret)| {
            use base64::Engine;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            Some(format!("Basic {encoded}"))
        }),
        "[ -~]{0,80}".prop_map(Some),
    ]
}

const QUERY_KEYS: [&str; 6] = ["state", "code", "error", "error_description", "iss", "x"];

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec((prop::sample::select(QUERY_KEYS.to_vec()), text()), 0..8).prop_map(
            |pairs| url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        ),
        "[a-zA-Z0-9%&=+._~-]{0,200}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    /// Any form, any credentials: a 4xx in the OAuth error shape, never a panic, never a token.
    #[test]
    fn token_endpoint_forms_never_panic(body in form(), auth in authorization(), form_type in any::<bool>()) {
        let mut req = Request::post("/oauth2/token");
        if form_type {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(a) = &auth
            && let Ok(v) = axum::http::HeaderValue::from_str(a)
        {
            req = req.header(header::AUTHORIZATION, v);
        }
        let (status, body) = send(req.body(Body::from(body)).unwrap());
        prop_assert!((400..500).contains(&status), "{status}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        prop_assert!(v["error"].is_string(), "{v}");
        // An answer never echoes an unbounded part of the request.
        prop_assert!(body.len() < 4096, "{} bytes", body.len());
    }

    /// Any query on the callback: an HTML page or a redirect, never a panic nor a success.
    #[test]
    fn callback_queries_never_panic(q in query()) {
        let Ok(req) = Request::get(format!("/v1/outbound/callback?{q}")).body(Body::empty()) else {
            return Ok(());
        };
        let (status, _) = send(req);
        prop_assert!(matches!(status, 303 | 400..=499), "{status}");
    }
}

/// A repeated parameter is named in the answer, but only a bounded part of its name.
#[test]
fn a_repeated_long_parameter_is_not_echoed_whole() {
    let key = "k".repeat(100_000);
    let req = Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("{key}=1&{key}=2")))
        .unwrap();
    let (status, body) = send(req);
    assert_eq!(status, 400);
    assert!(body.len() < 1024, "{} bytes", body.len());
}
