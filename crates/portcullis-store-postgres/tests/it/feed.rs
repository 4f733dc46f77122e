//! Changes crossing nodes through LISTEN/NOTIFY.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_domain::{Change, ChangeEvent, ChangeFeed, ConnectionKey, StoreError};
use tokio::sync::broadcast;

use crate::support::{TestDb, app, connection, eventually, stores_of};

/// The next event on a feed, within a few seconds.
async fn next_event(rx: &mut broadcast::Receiver<ChangeEvent>) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the feed works")
}

/// Records, per app id, when each `Changed(App(id))` was published on a feed (synchronously, at
/// publication) and how many times.
fn record_apps(feed: &dyn ChangeFeed) -> Arc<Mutex<HashMap<String, (Instant, usize)>>> {
    let seen: Arc<Mutex<HashMap<String, (Instant, usize)>>> = Arc::default();
    let sink = seen.clone();
    feed.add_listener(Arc::new(move |event| {
        if let ChangeEvent::Changed(Change::App(id)) = event {
            let mut seen = sink.lock().unwrap();
            let entry = seen.entry(id.clone()).or_insert((Instant::now(), 0));
            entry.1 += 1;
        }
    }));
    seen
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_reaches_the_other_once() {
    const SAMPLES: usize = 100;
    let db = TestDb::create().await;
    let (a, b) = (db.connect().await, db.connect().await);
    let (sa, sb) = (stores_of(&a), stores_of(&b));
    assert!(sa.changes.is_live() && sb.changes.is_live());
    let on_a = record_apps(sa.changes.as_ref());
    let on_b = record_apps(sb.changes.as_ref());
    let mut rx_b = sb.changes.subscribe();

    let mut writes = Vec::new();
    let mut end_to_end = Vec::new();
    for i in 0..SAMPLES {
        let id = format!("app-{i:03}");
        let start = Instant::now();
        sa.apps.insert_app(&app(&id)).await.unwrap();
        writes.push(start.elapsed());
        // The other node's subscriber hears of exactly this app, and nothing else.
        assert_eq!(
            next_event(&mut rx_b).await,
            ChangeEvent::Changed(Change::App(id.clone()))
        );
        let arrived = on_b.lock().unwrap()[&id].0;
        end_to_end.push(arrived - start);
        // The writing node published it itself, before the write returned.
        assert!(on_a.lock().unwrap().contains_key(&id));
    }

    // Give a node that would republish its own notifications time to do it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (node, seen) in [("writer", &on_a), ("other", &on_b)] {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), SAMPLES, "{node}");
        assert!(
            seen.values().all(|(_, n)| *n == 1),
            "{node} saw a change twice"
        );
    }

    writes.sort();
    end_to_end.sort();
    println!(
        "cross-node change latency over {SAMPLES} app inserts: write call p50 {:?} p99 {:?}; \
         write start -> other node's feed p50 {:?} p90 {:?} p99 {:?} max {:?}",
        percentile(&writes, 50),
        percentile(&writes, 99),
        percentile(&end_to_end, 50),
        percentile(&end_to_end, 90),
        percentile(&end_to_end, 99),
        end_to_end[SAMPLES - 1],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_writes_send_nothing() {
    let db = TestDb::create().await;
    let (a, b) = (db.connect().await, db.connect().await);
    let (sa, sb) = (stores_of(&a), stores_of(&b));
    let mut rx_b = sb.changes.subscribe();
    sa.apps.insert_app(&app("x")).await.unwrap();
    assert_eq!(
        next_event(&mut rx_b).await,
        ChangeEvent::Changed(Change::App("x".into()))
    );

    // Writes that fail part way: each rolls back, so nothing may reach the other node.
    assert!(matches!(
        sa.apps.insert_app(&app("x")).await,
        Err(StoreError::AlreadyExists { entity: "app" })
    ));
    let good = connection("c1", ConnectionKey::user("x", "u1", None));
    let bad = connection("c2", ConnectionKey::user("ghost", "u1", None));
    assert!(sa.connections.put_connections(&[good, bad]).await.is_err());
    let mut stale = app("x");
    stale.revision = 8;
    assert!(matches!(
        sa.apps.update_app(&stale, 7).await,
        Err(StoreError::Conflict(_))
    ));
    // And a notification sent in a transaction that rolls back is never delivered.
    let mut raw = db.raw().await;
    let tx = raw.transaction().await.unwrap();
    tx.execute(
        "SELECT pg_notify('portcullis_changes', $1)",
        &[&r#"{"node":"elsewhere","change":{"kind":"app","id":"rolled-back"}}"#],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    // Committed after all of the above: notifications arrive in commit order, so this one being
    // the next event proves that none of the above sent anything.
    raw.execute(
        "SELECT pg_notify('portcullis_changes', $1)",
        &[&r#"{"node":"elsewhere","change":{"kind":"app","id":"committed"}}"#],
    )
    .await
    .unwrap();
    assert_eq!(
        next_event(&mut rx_b).await,
        ChangeEvent::Changed(Change::App("committed".into()))
    );
    sa.apps.insert_app(&app("y")).await.unwrap();
    assert_eq!(
        next_event(&mut rx_b).await,
        ChangeEvent::Changed(Change::App("y".into()))
    );
}

/// The pid of a node's listener session.
async fn listener_pids(db: &TestDb, node_id: &str) -> Vec<i32> {
    db.raw()
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            &[&db.name, &format!("portcullis-listener-{node_id}")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_goes_not_live_resets_and_comes_back() {
    let db = TestDb::create().await;
    let (a, b) = (db.connect().await, db.connect().await);
    let (sa, sb) = (stores_of(&a), stores_of(&b));
    let mut rx_b = sb.changes.subscribe();
    // Whether the feed was live when each reset was published (recorded as it is published).
    let resets: Arc<Mutex<Vec<bool>>> = Arc::default();
    let (sink, feed) = (resets.clone(), b.change_feed());
    sb.changes.add_listener(Arc::new(move |event| {
        if *event == ChangeEvent::Reset {
            sink.lock().unwrap().push(feed.is_live());
        }
    }));

    let pids = listener_pids(&db, b.node_id()).await;
    assert_eq!(pids.len(), 1, "one listener session per node");
    let killed: bool = db
        .raw()
        .await
        .query_one("SELECT pg_terminate_backend($1)", &[&pids[0]])
        .await
        .unwrap()
        .get(0);
    assert!(killed);

    // Down: not live, and a reset. Back: live, and another reset.
    assert_eq!(next_event(&mut rx_b).await, ChangeEvent::Reset);
    assert_eq!(next_event(&mut rx_b).await, ChangeEvent::Reset);
    assert_eq!(*resets.lock().unwrap(), [false, true]);
    assert!(sb.changes.is_live());
    let again = listener_pids(&db, b.node_id()).await;
    assert_eq!(again.len(), 1);
    assert_ne!(again, pids);

    // Notifications flow again.
    sa.apps.insert_app(&app("after")).await.unwrap();
    assert_eq!(
        next_event(&mut rx_b).await,
        ChangeEvent::Changed(Change::App("after".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_stops_its_listener() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    let node = store.node_id().to_owned();
    let feed = store.change_feed();
    assert_eq!(listener_pids(&db, &node).await.len(), 1);
    drop(store);
    // Nothing tells this feed about other nodes any more.
    assert!(!feed.is_live());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !listener_pids(&db, &node).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the listener session outlived its store"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_notification_resets() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    let feed = store.change_feed();
    let mut rx = feed.subscribe();
    db.raw()
        .await
        .execute(
            "SELECT pg_notify('portcullis_changes', 'not a change')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut rx).await, ChangeEvent::Reset);
    assert!(eventually(Duration::from_secs(1), || feed.is_live()).await);
}
