//! Portcullis's scale-out storage backend: PostgreSQL, shared by any number of stateless nodes.
//!
//! A pool of connections (`tokio-postgres` under `deadpool-postgres`, statements prepared once
//! per connection and cached) serves the calls. Every write is one transaction; the changes it
//! makes are sent with `pg_notify` inside that transaction, so that PostgreSQL delivers them to every
//! node at commit (and never for a write that rolled back), and are published on this node's feed
//! right after the commit. A dedicated listener connection per node republishes the other nodes'
//! changes (see [`PgChangeFeed`]). The schema is applied at start, once, under an advisory lock.
//!
//! Exactly-once work across nodes rests on the database: the refresh lease is a conditional
//! `UPDATE`, the bootstrap admin key and the first data key are inserted under a table lock.
//!
//! Connections are plain TCP or TLS as the URL's `sslmode` and `sslrootcert` say, with libpq's
//! meanings (see [`PostgresStore::connect`]); the pool and the listener always use the same
//! settings. TLS is rustls on the aws-lc-rs provider; `verify-full` is its standard verification,
//! and the two weaker modes (`require`: nothing verified; `verify-ca`: the chain but not the host
//! name) use verifiers of their own, named `Danger*` for what they give up. For a managed
//! PostgreSQL service use `sslmode=verify-full` with its CA as `sslrootcert` (or
//! `sslrootcert=system` when its certificate chains to a public root).

mod apps;
mod config;
mod connections;
mod directory;
mod error;
mod feed;
mod grants;
mod management;
mod migrate;
mod principals;
mod rows;
mod signing;
mod table;
mod tls;

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Runtime};
use portcullis_domain::{Change, LocalChangeFeed, StoreError, StoreHealth};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub use config::PgOptions;
pub use feed::PgChangeFeed;

use crate::error::{db, pool};

/// How many events the local half of the change feed buffers per subscriber.
const FEED_CAPACITY: usize = 4096;

/// The shortest listener heartbeat honoured (a zero would spin).
const MIN_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(50);

/// The PostgreSQL backend: one node's view of the shared database. Cheap to clone; the listener
/// connection stops when the last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    feed: LocalChangeFeed,
    node_id: String,
    // Held for its `Drop`: stops the listener task and marks the feed not live.
    _listener: feed::Listener,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database named by `url` (`postgres://` or `postgresql://`), applies pending
    /// migrations (once, even with several nodes starting together) and starts listening for other
    /// nodes' changes.
    ///
    /// The URL's `sslmode` and `sslrootcert` secure every connection (the pool's and the
    /// listener's) as they do for libpq:
    /// - `disable`, `allow`, `prefer` or none: plain TCP. `allow` and `prefer` never try TLS here
    ///   (so they never fall back from it either): ask for `verify-full` to have TLS.
    /// - `require`: TLS, the server's certificate not verified (encrypted, not authenticated: a
    ///   warning is logged); with an `sslrootcert`, as `verify-ca`.
    /// - `verify-ca`: TLS, the certificate chain verified against the roots in the PEM file named
    ///   by `sslrootcert` (or, without it, the system's trust store); the host name not checked.
    /// - `verify-full`: as `verify-ca`, and the host name (or IP address) of the URL checked
    ///   against the certificate. `sslrootcert=system` names the system's trust store and is
    ///   allowed with `verify-full` only (its default then).
    ///
    /// A server that does not offer TLS when it is asked for is refused, never used in plain text.
    /// `Unavailable` when the server cannot be reached, when the `sslrootcert` file is missing or
    /// unreadable, or when the server's certificate does not verify; `Backend` for a malformed URL
    /// (an unknown `sslmode`, one given twice). No error repeats the URL (it may hold a password).
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let config::Target {
            config: pg_config,
            tls,
        } = config::parse_url(url, &options)?;
        let connector = tls::Connector::new(&tls)?;
        if tls == config::TlsPolicy::Unauthenticated {
            tracing::warn!(
                "the database connections are encrypted but the server is not authenticated \
                 (sslmode=require): anyone able to intercept them can impersonate the database; \
                 use sslmode=verify-full with sslrootcert"
            );
        }
        let pool = Pool::builder(connector.manager(pg_config.clone()))
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        // The first connection, for an error that says how it was attempted (it then returns to
        // the pool for the migrations).
        drop(pool.get().await.map_err(|e| match error::pool(e) {
            StoreError::Unavailable(why) => {
                StoreError::Unavailable(format!("cannot connect to the database ({tls}): {why}"))
            }
            other => other,
        })?);
        migrate::run(&pool).await?;

        let node_id = random_hex::<16>()?;
        let feed = LocalChangeFeed::new(FEED_CAPACITY);
        // Not live until the listener has said LISTEN: until then other nodes' changes are missed.
        feed.set_live(false);
        let listener = feed::Listener::start(
            config::listener_config(&pg_config, &node_id),
            connector,
            feed.clone(),
            node_id.clone(),
            options.listener_heartbeat.max(MIN_HEARTBEAT),
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                feed,
                node_id,
                _listener: listener,
            }),
        })
    }

    /// The change feed: this node's own writes and, through the listener, every other node's.
    pub fn change_feed(&self) -> PgChangeFeed {
        PgChangeFeed::new(self.inner.feed.clone())
    }

    /// This node's random id, sent with its notifications (so that it skips its own) and shown in
    /// its listener connection's `application_name` (`portcullis-listener-<node id>`).
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(pool)
    }

    /// Commits a write transaction: sends its changes to the other nodes (delivered at commit),
    /// commits, then publishes them on this node's feed.
    pub(crate) async fn commit(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        if !changes.is_empty() {
            let payloads: Vec<String> = changes
                .iter()
                .map(|c| feed::encode(&self.inner.node_id, c))
                .collect();
            execute(
                &tx,
                "SELECT pg_notify('portcullis_changes', payload) FROM unnest($1::text[]) AS payload",
                &[&payloads],
            )
            .await
            .map_err(db)?;
        }
        // A commit that fails or is abandoned half way may still have happened on the server (and
        // reached the other nodes): this node's caches must then forget everything.
        let unsure = ResetOnDrop(Some(&self.inner.feed));
        tx.commit().await.map_err(db)?;
        unsure.disarm();
        for change in changes {
            self.inner.feed.publish(change);
        }
        Ok(())
    }
}

/// Publishes a `Reset` when dropped armed.
struct ResetOnDrop<'a>(Option<&'a LocalChangeFeed>);

impl ResetOnDrop<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(feed) = self.0 {
            feed.reset();
        }
    }
}

/// Begins a write transaction on a pooled connection.
pub(crate) async fn begin(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client.transaction().await.map_err(db)
}

/// Runs a cached statement, returning its rows.
pub(crate) async fn query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    match c.query(&statement, params).await {
        // A parameter PostgreSQL cannot even hold (a NUL in text) matches no row.
        Err(e) if cannot_match(&e) => Ok(Vec::new()),
        other => other,
    }
}

/// Whether a parameter of a read is a value no stored row can hold (text with a NUL character).
fn cannot_match(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE)
}

/// Runs a cached statement that returns at most one row.
pub(crate) async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    match c.query_opt(&statement, params).await {
        Err(e) if cannot_match(&e) => Ok(None),
        other => other,
    }
}

/// Runs a cached statement that returns exactly one row.
pub(crate) async fn query_one<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    c.query_one(&statement, params).await
}

/// Runs a cached statement, returning how many rows it touched.
pub(crate) async fn execute<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    c.execute(&statement, params).await
}

/// `N` random bytes from the operating system, as lowercase hex.
fn random_hex<const N: usize>() -> Result<String, StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Backend(format!("cannot draw random bytes: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[async_trait]
impl StoreHealth for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        query_one(&client, "SELECT 1", &[]).await.map_err(db)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

#[async_trait]
impl portcullis_domain::ApplyStore for PostgresStore {
    async fn apply_writes(&self, writes: &[portcullis_domain::Write]) -> Result<(), StoreError> {
        use portcullis_domain::table::SimpleTable;
        use portcullis_domain::{Role, TenantRecord, Write};
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let mut changes = Vec::new();
        for w in writes {
            changes.extend(match w {
                Write::InsertRole(r) => table::insert_tx(&tx, Role::TABLE, &r.to_cells()?).await?,
                Write::UpdateRole(r) => {
                    table::update_tx(&tx, Role::TABLE, &r.update_cells()?).await?
                }
                Write::InsertTenant(t) => {
                    table::insert_tx(&tx, TenantRecord::TABLE, &t.to_cells()?).await?
                }
                Write::UpdateTenant(t) => {
                    table::update_tx(&tx, TenantRecord::TABLE, &t.update_cells()?).await?
                }
                Write::InsertUser(u) => directory::insert_user_tx(&tx, u).await?,
                Write::UpdateUser(u) => directory::update_user_tx(&tx, u).await?,
                Write::InsertApp(a) => apps::insert_app_tx(&tx, a).await?,
                Write::UpdateApp {
                    app,
                    expected_revision,
                } => apps::update_app_tx(&tx, app, *expected_revision).await?,
                Write::InsertPolicy {
                    policy,
                    expected_app_revision,
                } => apps::insert_policy_tx(&tx, policy, *expected_app_revision).await?,
                Write::UpdatePolicy {
                    policy,
                    expected_app_revision,
                } => apps::update_policy_tx(&tx, policy, *expected_app_revision).await?,
                Write::DeletePolicy { app_id, id } => {
                    apps::delete_policy_tx(&tx, app_id, id).await?
                }
                Write::Management(e) => {
                    management::append_management_in(&tx, e).await?;
                    Vec::new()
                }
            });
        }
        self.commit(tx, changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_hex_and_differ() {
        let a = random_hex::<16>().unwrap();
        let b = random_hex::<16>().unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
