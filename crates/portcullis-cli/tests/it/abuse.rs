//! Abuse of the surfaces anyone can reach, on both backends: requests without a valid token, with
//! every field at its largest, cannot grow the database (they are counted, not recorded one by
//! one) while every real decision between them is recorded; rate limits answer 429 with
//! `Retry-After` in each surface's error shape; retention deletes old audit rows.

use std::sync::Arc;

use futures_util::StreamExt;
use portcullis_domain::{AuditEvent, AuditOutcome, AuditQuery, Timestamp};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Idp, Provider, TestServer};

const SCOPES: [&str; 2] = ["calendar.readonly", "calendar"];

/// A server (rate limits as `tweak` sets them) trusting an IdP, with app `cal` on the stand-in
/// provider and alice connected to it.
async fn world(
    backend: Backend,
    tweak: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> (TestServer, Idp, Provider) {
    let s = TestServer::start_with(backend, tweak).await;
    let idp = Idp::start().await;
    let p = Provider::start().await;
    s.trust(&idp).await;
    s.must_post("/v1/mgmt/outbound-apps", p.app("cal", &SCOPES))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "alice", "identities": idp.identity("alice")}),
    )
    .await;
    s.connect(&idp.token("alice"), "cal", &SCOPES).await;
    (s, idp, p)
}

/// The size of the database in bytes: SQLite's pages in use, PostgreSQL's tables with their
/// indexes and TOAST.
async fn database_size(s: &TestServer) -> i64 {
    s.flush_audit().await;
    match &s.db {
        None => {
            let path = s.dir.path().join("portcullis.db");
            let c = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            let free: i64 = c
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .unwrap();
            let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
            (pages - free) * size
        }
        Some(db) => {
            let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query_one(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                    &[],
                )
                .await
                .unwrap()
                .get(0)
        }
    }
}

async fn allowed_decisions(s: &TestServer) -> usize {
    s.flush_audit().await;
    let (status, page) = s.get("/v1/mgmt/audit?outcome=allowed&limit=1000").await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().len()
}

async fn unauthenticated_requests_cannot_grow_the_database(backend: Backend) {
    let (s, idp, _p) = world(backend, |env| {
        env.insert("PORTCULLIS_RATE_LIMIT_PER_ADDRESS".into(), "off".into());
        env.insert("PORTCULLIS_RATE_LIMIT_PER_SUBJECT".into(), "off".into());
    })
    .await;
    let alice = idp.token("alice");
    // Warm up: the tables have their first pages.
    assert_eq!(s.fetch(Some(&alice), "cal", json!({})).await.0, 200);
    let decisions_before = allowed_decisions(&s).await;
    let size_before = database_size(&s).await;

    // Every field at the largest the server accepts: a 64-character app id, a 256-character
    // tenant, 256 scopes of 256 characters, a token of the longest length read.
    let app = "a".repeat(64);
    let tenant = "t".repeat(256);
    let scopes: Vec<String> = (0..256)
        .map(|i| format!("{i:03}{}", "s".repeat(253)))
        .collect();
    let big = json!({"scopes": scopes, "tenantId": tenant});
    let garbage_token = format!("eyJ{}.eyJ{}.sig", "A".repeat(8000), "B".repeat(8000));
    let oversize = json!({"scopes": ["x"], "tenantId": "t".repeat(257)});
    let total = 10_000;
    let valid_every = 100;
    let server = Arc::new(s);
    let outcomes: Vec<(bool, u16)> = futures_util::stream::iter(0..total)
        .map(|i| {
            let s = server.clone();
            let (alice, app, big, garbage, oversize) = (
                alice.clone(),
                app.clone(),
                big.clone(),
                garbage_token.clone(),
                oversize.clone(),
            );
            async move {
                if i % valid_every == 0 {
                    let (status, body, _) = s.fetch(Some(&alice), "cal", json!({})).await;
                    assert_eq!(status, 200, "{body}");
                    return (true, status);
                }
                let (status, body, _) = match i % 3 {
                    0 => s.fetch(None, &app, big).await,
                    1 => s.fetch(Some(&garbage), &app, big).await,
                    _ => s.fetch(Some(&garbage), "cal", oversize).await,
                };
                assert!(
                    matches!(status, 400 | 401),
                    "{status} {}",
                    body.to_string().chars().take(300).collect::<String>()
                );
                (false, status)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let s = Arc::into_inner(server).unwrap();
    let valid = outcomes.iter().filter(|(v, _)| *v).count();
    assert_eq!(valid, total / valid_every);

    let growth = database_size(&s).await - size_before;
    eprintln!("{total} requests ({valid} valid decisions) grew the database by {growth} bytes");
    assert!(
        growth < 1024 * 1024,
        "{total} requests grew the database by {growth} bytes"
    );
    // Every valid decision made between them is recorded, each on its own.
    assert_eq!(allowed_decisions(&s).await - decisions_before, valid);
    // The others are counted, per minute, surface and reason.
    let (status, rejected) = s.get("/v1/mgmt/audit/rejected?limit=1000").await;
    assert_eq!(status, 200, "{rejected}");
    let counted: u64 = rejected["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, (total - valid) as u64, "{rejected}");
    let reasons: Vec<&str> = rejected["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    for reason in ["missing_token", "invalid_request"] {
        assert!(reasons.contains(&reason), "{reasons:?}");
    }
}

async fn rate_limits_answer_429_with_retry_after(backend: Backend) {
    let (s, idp, _p) = world(backend, |env| {
        env.insert("PORTCULLIS_RATE_LIMIT_PER_ADDRESS".into(), "off".into());
        env.insert("PORTCULLIS_RATE_LIMIT_PER_SUBJECT".into(), "1/3".into());
    })
    .await;
    // Per subject: a burst of 3 (the connect above took one, and a second may have come back
    // since), then 429 with the wait, in the API's error shape.
    let alice = idp.token("alice");
    let mut allowed = 0;
    let (body, headers) = loop {
        let (status, body, headers) = s.fetch(Some(&alice), "cal", json!({})).await;
        if status == 429 {
            break (body, headers);
        }
        assert_eq!(status, 200, "{body}");
        allowed += 1;
        assert!(allowed <= 3, "the burst is 3");
    };
    assert!(allowed >= 2, "{allowed}");
    assert_eq!(body["error"], "rate_limited");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(wait, 1);
    assert_eq!(body["details"]["retryAfter"], wait);
    // Another subject has its own budget.
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "bob", "identities": idp.identity("bob")}),
    )
    .await;
    let (status, body, _) = s.fetch(Some(&idp.token("bob")), "cal", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_connected");
    // After the wait, alice gets her token again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(s.fetch(Some(&alice), "cal", json!({})).await.0, 200);

    let limited = |s: &TestServer| {
        let (url, key, http) = (s.url.clone(), s.admin_key.clone(), s.http.clone());
        async move {
            let v: Value = http
                .get(format!("{url}/v1/mgmt/audit/rejected"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["reason"] == "rate_limited")
                .map(|r| r["count"].as_u64().unwrap())
                .sum::<u64>()
        }
    };
    s.flush_audit().await;
    let limited_before = limited(&s).await;
    assert!(limited_before >= 1);

    // Per address: the outbound surface in the API's shape, the token endpoint in OAuth's; the
    // management API is not limited.
    let s = s
        .restart_with(|env| {
            env.insert("PORTCULLIS_RATE_LIMIT_PER_ADDRESS".into(), "1/4".into());
            env.insert("PORTCULLIS_RATE_LIMIT_PER_SUBJECT".into(), "off".into());
        })
        .await;
    for _ in 0..4 {
        assert_eq!(s.fetch(None, "cal", json!({})).await.0, 401);
    }
    let (status, body, headers) = s.fetch(None, "cal", json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited");
    assert!(headers.contains_key("retry-after"));
    let resp = s
        .http
        .post(format!("{}/oauth2/token", s.url))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(body["retry_after"].as_u64().unwrap() >= 1, "{body}");
    for _ in 0..10 {
        assert_eq!(s.get("/v1/mgmt/outbound-apps").await.0, 200);
    }
    // Refusals by the limit are counted, not recorded one by one.
    s.flush_audit().await;
    assert_eq!(limited(&s).await - limited_before, 2);
}

async fn retention_deletes_old_audit_rows(backend: Backend) {
    let (s, idp, _p) = world(backend, |env| {
        env.insert("PORTCULLIS_AUDIT_RETENTION_DAYS".into(), "30".into());
    })
    .await;
    assert_eq!(
        s.fetch(Some(&idp.token("alice")), "cal", json!({})).await.0,
        200
    );
    s.flush_audit().await;
    let recent: AuditEvent = s
        .core
        .stores_for_tests()
        .audit
        .audit(&AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .remove(0);
    // An event of 31 days ago, as an older version of the server would have left it.
    let mut old = recent.clone();
    let at = Timestamp::from_millis(recent.at.as_millis() - 31 * 24 * 3600 * 1000);
    old.id = format!("evt_0000000000{}", &recent.id[14..]);
    old.at = at;
    s.core
        .stores_for_tests()
        .audit
        .append_audit(Arc::from([old.clone()]))
        .await
        .unwrap();
    let all = |s: &TestServer| {
        let core = s.core.clone();
        async move {
            core.stores_for_tests()
                .audit
                .audit(&AuditQuery {
                    limit: 100,
                    ..AuditQuery::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(all(&s).await.len(), 2);
    // Retention runs when the server starts, then hourly.
    let s = s.restart_with(|_| {}).await;
    let mut left = all(&s).await;
    for _ in 0..50 {
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = all(&s).await;
    }
    assert_eq!(left, [recent.id]);
    assert_eq!(recent.outcome, AuditOutcome::Allowed);
}

both_backends!(
    unauthenticated_requests_cannot_grow_the_database,
    rate_limits_answer_429_with_retry_after,
    retention_deletes_old_audit_rows,
);
