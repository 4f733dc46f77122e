//! Several nodes racing on one database.

use std::sync::Arc;

use portcullis_domain::{
    AdminKeyRecord, ConnectionKey, PageRequest, PolicyRecord, StoreError, Stores,
};
use portcullis_policy::PolicyDocument;
use tokio::sync::Barrier;

use crate::support::{T0, TestDb, app, connection, stores_of};

const NODES: usize = 3;
const TASKS_PER_NODE: usize = 6;

/// Three nodes on one database.
async fn nodes(db: &TestDb) -> Vec<Stores> {
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(stores_of(&db.connect().await));
    }
    nodes
}

/// Runs `race` on every node from `TASKS_PER_NODE` tasks each, all released at once; returns the
/// results (task `i` of node `n` gets `n * TASKS_PER_NODE + i`).
async fn race<T, F, Fut>(nodes: &[Stores], race: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Stores, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(nodes.len() * TASKS_PER_NODE));
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..TASKS_PER_NODE {
            let barrier = barrier.clone();
            let attempt = race(node.clone(), n * TASKS_PER_NODE + i);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                attempt.await
            }));
        }
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_wins_a_refresh_lease_race() {
    let db = TestDb::create().await;
    let nodes = nodes(&db).await;
    nodes[0].apps.insert_app(&app("x")).await.unwrap();
    let c = nodes[1]
        .connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    let results = race(&nodes, |node, i| {
        let id = c.id.clone();
        async move {
            let owner = format!("node-{i}");
            let won = node
                .connections
                .acquire_refresh_lease(&id, &owner, T0, T0.add_secs(30))
                .await
                .unwrap();
            won.map(|_| owner)
        }
    })
    .await;
    let winners: Vec<String> = results.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let held = nodes[2]
        .connections
        .connection_by_id("c1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.lease, Some((winners[0].clone(), T0.add_secs(30))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_inserts_the_first_admin_key() {
    let db = TestDb::create().await;
    let nodes = nodes(&db).await;
    let results = race(&nodes, |node, i| async move {
        let key = AdminKeyRecord {
            id: format!("ak{i:02}"),
            name: "bootstrap".into(),
            secret_hash: [u8::try_from(i).unwrap(); 32],
            created_at: T0,
            expires_at: None,
            scopes: vec!["admin".into()],
        };
        node.admin_keys
            .insert_first_admin_key(&key)
            .await
            .unwrap()
            .then_some(key.id)
    })
    .await;
    let winners: Vec<String> = results.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let keys = nodes[0]
        .admin_keys
        .admin_keys(&PageRequest {
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, winners[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_writer_of_an_app_revision_wins() {
    let db = TestDb::create().await;
    let nodes = nodes(&db).await;
    nodes[0].apps.insert_app(&app("x")).await.unwrap();
    let results = race(&nodes, |node, i| async move {
        let document = PolicyDocument::from_json(&serde_json::json!({
            "name": format!("policy {i}"),
            "conditions": [{"source": "userRoles", "operator": "contains", "value": "viewer"}],
            "scopes": ["read"],
        }))
        .unwrap();
        let policy = PolicyRecord {
            id: format!("pol_{i:02}"),
            app_id: "x".into(),
            document,
            created_at: T0,
            updated_at: T0,
        };
        // Everyone read revision 1.
        node.apps.insert_policy(&policy, 1).await
    })
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))),
        "{results:?}"
    );
    let (a, policies) = nodes[1].apps.app_with_policies("x").await.unwrap().unwrap();
    assert_eq!(a.revision, 2);
    assert_eq!(policies.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once() {
    let db = TestDb::create().await;
    let (a, b, c) = tokio::join!(db.connect(), db.connect(), db.connect());
    let versions: Vec<i64> = db
        .raw()
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, crate::support::migration_versions());
    for store in [a, b, c] {
        assert!(
            stores_of(&store)
                .apps
                .apps(&PageRequest {
                    after: None,
                    limit: 1
                })
                .await
                .unwrap()
                .is_empty()
        );
    }
}
