//! The full decision of a token request, in process: verify the inbound token, evaluate the
//! app's policies, look up the connection, open the sealed credential — against the bare
//! signature verification of the same tokens, for ES256, RS256 and EdDSA; and the repeat
//! presentation of an already verified token.
//!
//! `cargo bench -p portcullis-bench-runtime --bench decision`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark"
)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::manage::{AppInput, UserInput};
use portcullis_core::{
    Core, CoreOptions, ImportToken, IssuerSpec, KeySource, Settings, Surface, TokenRequest,
};
use portcullis_crypto::envelope::MasterKey;
use portcullis_crypto::jws::{Algorithm, KeySet, SigningKey, Unverified};
use portcullis_domain::{AppKind, Stores, SystemClock};
use serde_json::json;

/// The allocator of the `portcullis` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ISSUER: &str = "https://idp.bench.example";
const AUDIENCE: &str = "https://mcp.bench.example/mcp";
const DISTINCT_TOKENS: usize = 512;

/// An audit store that counts what it is given.
#[derive(Default)]
struct CountingAudit(std::sync::atomic::AtomicU64);

#[async_trait::async_trait]
impl portcullis_domain::AuditStore for CountingAudit {
    async fn append_audit(
        &self,
        events: Arc<[portcullis_domain::AuditEvent]>,
    ) -> Result<(), portcullis_domain::StoreError> {
        self.0
            .fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn audit(
        &self,
        _: &portcullis_domain::AuditQuery,
    ) -> Result<Vec<portcullis_domain::AuditEvent>, portcullis_domain::StoreError> {
        Ok(Vec::new())
    }

    async fn audit_summary(
        &self,
        _: portcullis_domain::Timestamp,
        _: portcullis_domain::Timestamp,
        _: i64,
    ) -> Result<Vec<portcullis_domain::AuditSummaryRow>, portcullis_domain::StoreError> {
        Ok(Vec::new())
    }

    async fn recorded_decisions(
        &self,
        _: &portcullis_domain::AuditQuery,
    ) -> Result<Vec<portcullis_domain::RecordedDecision>, portcullis_domain::StoreError> {
        Ok(Vec::new())
    }

    async fn add_rejected(
        &self,
        _: &[portcullis_domain::RejectedCount],
    ) -> Result<(), portcullis_domain::StoreError> {
        Ok(())
    }

    async fn rejected(
        &self,
        _: Option<portcullis_domain::Timestamp>,
        _: Option<portcullis_domain::Timestamp>,
        _: u32,
    ) -> Result<Vec<portcullis_domain::RejectedCount>, portcullis_domain::StoreError> {
        Ok(Vec::new())
    }

    async fn prune_audit(
        &self,
        _: portcullis_domain::Timestamp,
        _: u32,
    ) -> Result<u64, portcullis_domain::StoreError> {
        Ok(0)
    }
}

struct Bench {
    core: Arc<Core>,
    keys: Vec<SigningKey>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_store_sqlite::SqliteStore::open(&dir.path().join("p.db")).unwrap();
    let feed = Arc::new(store.change_feed());
    let mut stores = Stores::from_backend(Arc::new(store), feed);
    // The audit log's own cost (a SQLite insert per decision, batched) is measured apart, by the
    // `audit` benchmark: here the records are counted, so that this measures the decision.
    stores.audit = Arc::new(CountingAudit::default());
    let core = Core::start(
        stores,
        CoreOptions {
            // A tiny verification cache: with hundreds of distinct tokens in rotation, every
            // verification of the "miss" benchmarks is a real one.
            // The per-subject limiter runs on every request, at a rate the benchmark never reaches.
            settings: Settings {
                token_cache_capacity: 16,
                rate_limit_per_subject: Some(portcullis_core::limits::Rate {
                    per_second: 1_000_000_000,
                    burst: 1_000_000_000,
                }),
                ..Settings::default()
            },
            master_keys: vec![MasterKey::generate("bench").unwrap()],
            config_issuers: vec![],
            clock: Arc::new(SystemClock),
        },
    )
    .await
    .unwrap();
    let keys: Vec<SigningKey> = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
        .into_iter()
        .map(|a| SigningKey::generate(a).unwrap())
        .collect();
    let mut set = KeySet::default();
    for k in &keys {
        set.insert(k.verifying_key().unwrap()).unwrap();
    }
    core.inbound().set_local_issuer(
        IssuerSpec {
            id: "bench".into(),
            issuer: ISSUER.into(),
            keys: KeySource::Local,
            audiences: vec![AUDIENCE.into()],
            algorithms: vec![Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA],
            roles_claim: Some("roles".into()),
            tenant_claim: None,
            clock_skew_seconds: 60,
            required_typ: None,
        },
        Arc::new(set),
    );
    let app: AppInput = serde_json::from_value(json!({
        "id": "calendar", "name": "Calendar", "type": "oauth", "clientId": "c", "clientSecret": "s",
        "authorizationUrl": "https://provider.example/authorize", "tokenUrl": "https://provider.example/token",
        "scopes": [{"name": "calendar.readonly"}, {"name": "calendar"}, {"name": "contacts.readonly"}],
    }))
    .unwrap();
    assert_eq!(app.kind, AppKind::OAuth);
    core.create_app(&app).await.unwrap();
    // Ten policies, one of which matches the bench user.
    for i in 0..10 {
        let role = if i == 7 {
            "Viewer".to_owned()
        } else {
            format!("role-{i}")
        };
        core.create_policy(
            "calendar",
            &json!({"name": format!("policy {i}"), "conditions": [
                {"source": "userRoles", "operator": "contains", "value": role},
                {"source": "jwtClaims", "claim": "department", "operator": "in", "value": ["eng", "ops"]}
            ], "scopes": ["calendar.readonly"]}),
        )
        .await
        .unwrap();
    }
    core.create_role(&serde_json::from_value(json!({"name": "Viewer"})).unwrap())
        .await
        .unwrap();
    let user: UserInput =
        serde_json::from_value(json!({"id": "alice", "roles": ["Viewer"]})).unwrap();
    core.create_user(&user).await.unwrap();
    let import: ImportToken = serde_json::from_value(json!({
        "userId": "alice", "accessToken": "ya29.a0AfH6SMBx-provider-access-token-of-a-realistic-length-0123456789",
        "scopes": ["calendar.readonly"],
        "expiresAt": core.now().add_secs(86_400),
    }))
    .unwrap();
    core.import_tokens("calendar", &[import], "bench")
        .await
        .unwrap();
    Bench {
        core,
        keys,
        _dir: dir,
    }
}

fn token(key: &SigningKey, n: usize, now: i64) -> String {
    key.sign_jwt(
        &json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 3600,
            "jti": format!("t-{n}"), "scope": "openid outbound.token.fetch", "department": "eng",
            "azp": "mcp-client", "email": "alice@example.com",
        }),
        Some("at+jwt"),
    )
    .unwrap()
}

fn decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let b = rt.block_on(setup());
    let req = TokenRequest {
        app_id: "calendar".into(),
        scopes: vec!["calendar.readonly".into()],
        tenant_id: None,
        force_refresh: false,
    };
    let now = b.core.now().as_secs();
    let mut group = c.benchmark_group("decision");
    for key in &b.keys {
        let alg = key.algorithm();
        let tokens: Vec<String> = (0..DISTINCT_TOKENS).map(|n| token(key, n, now)).collect();
        // Sanity: the full path allows these tokens.
        let granted = rt
            .block_on(
                b.core
                    .fetch_token(Some(&tokens[0]), &req, &Surface::TokenEndpoint),
            )
            .unwrap();
        assert_eq!(granted.token.scopes, ["calendar.readonly"]);
        let verifier = key.verifying_key().unwrap();
        let parsed: Vec<(Vec<u8>, Vec<u8>)> = tokens
            .iter()
            .map(|t| {
                let (input, sig) = t.rsplit_once('.').unwrap();
                let sig = base64_url(sig);
                (input.as_bytes().to_vec(), sig)
            })
            .collect();
        let mut i = 0usize;
        group.bench_function(format!("bare signature verification/{alg}"), |bench| {
            bench.iter(|| {
                i = (i + 1) % parsed.len();
                let (input, sig) = &parsed[i];
                verifier.verify_signature(alg, input, sig).unwrap();
            });
        });
        let mut j = 0usize;
        group.bench_function(
            format!("full decision, token not seen before/{alg}"),
            |bench| {
                bench.to_async(&rt).iter(|| {
                    j = (j + 1) % tokens.len();
                    let t = &tokens[j];
                    let core = &b.core;
                    let req = &req;
                    async move {
                        core.fetch_token(Some(t), req, &Surface::TokenEndpoint)
                            .await
                            .unwrap();
                    }
                });
            },
        );
        // Parsing + verifying alone (no policy, no vault), for the breakdown.
        let mut k = 0usize;
        group.bench_function(format!("parse and verify/{alg}"), |bench| {
            bench.iter(|| {
                k = (k + 1) % tokens.len();
                let u = Unverified::parse(&tokens[k], 16 * 1024).unwrap();
                u.verify(&verifier).unwrap();
            });
        });
    }
    let repeat = token(&b.keys[0], 999_999, now);
    rt.block_on(
        b.core
            .fetch_token(Some(&repeat), &req, &Surface::TokenEndpoint),
    )
    .unwrap();
    group.bench_function(
        "full decision, token verified before (cache hit)",
        |bench| {
            bench.to_async(&rt).iter(|| {
                let core = &b.core;
                let (t, req) = (&repeat, &req);
                async move {
                    core.fetch_token(Some(t), req, &Surface::TokenEndpoint)
                        .await
                        .unwrap();
                }
            });
        },
    );
    group.finish();
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

criterion_group!(benches, decision);
criterion_main!(benches);
