//! Portcullis's embedded storage backend: one SQLite file in WAL mode.
//!
//! One writer connection (SQLite allows one writer at a time), owned by a thread of its own that
//! runs the writes in the order they arrive, and a few reader connections whose calls run on
//! tokio's blocking pool. Every write is an `IMMEDIATE` transaction; the changes it makes are
//! published on the in-process change feed after it commits. SQLite serves one node; run
//! PostgreSQL to run several.

mod apps;
mod audit;
mod connections;
mod directory;
mod grants;
mod management;
mod principals;
mod rows;
mod signing;
mod table;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use portcullis_domain::{Change, LocalChangeFeed, PageRequest, StoreError, StoreHealth};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_identities.sql")),
    (6, include_str!("../migrations/0006_admin_key_scopes.sql")),
    (7, include_str!("../migrations/0007_management_events.sql")),
    (8, include_str!("../migrations/0008_rejected_requests.sql")),
    (
        9,
        include_str!("../migrations/0009_issuer_required_typ.sql"),
    ),
    (10, include_str!("../migrations/0010_data_key_seals.sql")),
    (11, include_str!("../migrations/0011_signing_keys.sql")),
    (12, include_str!("../migrations/0012_resources.sql")),
    (13, include_str!("../migrations/0013_grants.sql")),
    (
        14,
        include_str!("../migrations/0014_refresh_tokens_by_hash.sql"),
    ),
    (15, include_str!("../migrations/0015_used_assertions.sql")),
    (16, include_str!("../migrations/0016_code_replays.sql")),
    (17, include_str!("../migrations/0017_sso_connections.sql")),
    (18, include_str!("../migrations/0018_code_nonces.sql")),
    (
        19,
        include_str!("../migrations/0019_refresh_tokens_by_family.sql"),
    ),
    (20, include_str!("../migrations/0020_refresh_families.sql")),
    (21, include_str!("../migrations/0021_audit_inputs.sql")),
    (22, include_str!("../migrations/0022_audit_by_time.sql")),
];
const READERS: usize = 4;

/// The SQLite backend. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// A write, run by the writer thread on its connection.
type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

struct Inner {
    main: Db,
    /// The decision audit log, in a file of its own.
    audit: audit::AuditLog,
    feed: LocalChangeFeed,
}

/// One database file: its writer thread and its readers.
pub(crate) struct Db {
    /// The writer thread's queue. A queue, not a lock over the connection: concurrent writes wait
    /// in line instead of each parking a blocking-pool thread on a mutex (measured: the futex
    /// handoffs cost a refresh-token rotation a quarter of its time).
    writer: std::sync::mpsc::Sender<WriteJob>,
    readers: Arc<Readers>,
}

/// A database's reader connections, taken in turn.
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Db {
    /// Starts the writer thread on `writer`, its checkpointer resting `rest` between checkpoints
    /// (see [`spawn_checkpointer`]), and opens `readers` reader connections to `path`.
    fn start(
        path: &Path,
        writer: Connection,
        readers: usize,
        rest: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let conns = (0..readers)
            .map(|_| open_connection(path, None).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            writer: spawn_writer(writer, open_connection(path, None)?, rest)?,
            readers: Arc::new(Readers {
                conns,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// Runs `f` on a reader connection, off the async threads.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let i = readers.next.fetch_add(1, Ordering::Relaxed) % readers.conns.len();
            let conn = lock(&readers.conns[i]);
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a database task failed: {e}")))?
    }

    /// Runs a point read `f` (a few rows by key, tens of microseconds) in one read transaction:
    /// on the calling thread when a reader connection is free, else as [`Db::read`] does. The
    /// token path's cold reads (its user, identity, connection, app) are such reads: handing each
    /// to the blocking pool and back cost more than the read (measured: thread wake-ups and parks
    /// were ~65 µs of a cold request's ~140). A read that has to wait for the disk holds the
    /// async thread meanwhile. Everything `f` reads is of one snapshot (a user and its roles,
    /// an app and its policies), and the database's shared lock is taken once, not per statement.
    pub(crate) async fn read_point<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conns = &self.readers.conns;
        let first = self.readers.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..conns.len() {
            let conn = match conns[(first + k) % conns.len()].try_lock() {
                Ok(conn) => conn,
                // See `lock`: a poisoned connection is still sound.
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            return in_snapshot(&conn, f);
        }
        self.read(|c| in_snapshot(c, f)).await
    }

    /// Runs `f` in one write transaction on the writer thread; publishes the changes it returns
    /// on `feed` once the transaction has committed.
    pub(crate) async fn write<T, F>(
        &self,
        feed: Option<&LocalChangeFeed>,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<(T, Vec<Change>), StoreError> + Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel();
        let feed = feed.cloned();
        let job: WriteJob = Box::new(move |conn| {
            let result = (|| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(backend)?;
                let (value, changes) = f(&tx)?;
                tx.commit().map_err(backend)?;
                if let Some(feed) = feed {
                    for change in changes {
                        feed.publish(change);
                    }
                }
                Ok(value)
            })();
            // The caller may have gone (its request was cancelled): the write stands.
            let _ = done.send(result);
        });
        self.writer
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("a database write failed".into()))?
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies pending migrations, and
    /// the audit log beside it (`<name>-audit.db`; see [`audit`]). Audit events an older version
    /// kept in the main file are moved into the log first.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = open_connection(path, Some(16_384))?;
        migrate(&writer)?;
        let audit_path = audit::AuditLog::path_beside(path);
        let audit_writer = audit::AuditLog::prepare(&audit_path)?;
        audit::adopt_legacy(&writer, &audit_writer)?;
        let inner = Arc::new(Inner {
            main: Db::start(path, writer, READERS, CHECKPOINT_REST)?,
            audit: audit::AuditLog::start(&audit_path, audit_writer)?,
            feed: LocalChangeFeed::new(4096),
        });
        Ok(Self { inner })
    }

    /// The change feed every write of this store publishes to.
    pub fn change_feed(&self) -> LocalChangeFeed {
        self.inner.feed.clone()
    }

    /// Reads one page of a list ordered by its key: `sql` takes the cursor as `?1` and the limit
    /// as `?2`.
    pub(crate) async fn read_page<T: Send + 'static>(
        &self,
        sql: String,
        page: &PageRequest,
        from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let page = page.clone();
        self.read(move |c| {
            c.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(
                        rusqlite::params![page.after.unwrap_or_default(), rows::limit(page.limit)],
                        from_row,
                    )?
                    .collect()
                })
                .map_err(rows::read_err)
        })
        .await
    }

    /// Runs `f` on a reader connection of the main database, off the async threads.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.main.read(f).await
    }

    /// Runs a point read of the main database (see [`Db::read_point`]).
    pub(crate) async fn read_point<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.main.read_point(f).await
    }

    /// Runs `f` in one write transaction of the main database, off the async threads; publishes
    /// the changes it returns once the transaction has committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<(T, Vec<Change>), StoreError> + Send + 'static,
    {
        self.inner.main.write(Some(&self.inner.feed), f).await
    }

    /// The decision audit log.
    pub(crate) fn audit_log(&self) -> &audit::AuditLog {
        &self.inner.audit
    }
}

/// Starts the writer thread: it runs each write on `conn`, in the order they were queued, until
/// the store is dropped. A write that panics is rolled back (its transaction is dropped) and its
/// caller told; the thread goes on with the next.
fn spawn_writer(
    mut conn: Connection,
    checkpointer: Connection,
    rest: std::time::Duration,
) -> Result<std::sync::mpsc::Sender<WriteJob>, StoreError> {
    let (queue, jobs) = std::sync::mpsc::channel::<WriteJob>();
    // One pending nudge is enough: the checkpoint it starts copies every commit before it.
    let (written, nudges) = std::sync::mpsc::sync_channel::<()>(1);
    spawn_checkpointer(checkpointer, nudges, rest)?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            for job in jobs {
                let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("a database write panicked; it was rolled back");
                }
                let _ = written.try_send(());
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the database writer: {e}")))?;
    Ok(queue)
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// How long the main database's checkpointer rests after a checkpoint before the next.
const CHECKPOINT_REST: std::time::Duration = std::time::Duration::from_millis(10);

/// Checkpoints the write-ahead log from a thread of its own, after writes (at most every
/// `rest`: 10 ms for the main database), until the writer stops. A checkpoint syncs the log and the database to disk; run by
/// the writer (SQLite's default, at each 1,000 pages) those syncs stall every commit behind it.
/// `PASSIVE` copies what it can without waiting for the writer or the readers; a commit then only
/// appends to the log (`synchronous = NORMAL`: durable at the next checkpoint, consistent
/// always). Small and frequent: under sustained writes a checkpoint's syncs grow with the log
/// they copy, and so does the latency of the commits they overlap (measured, refresh-token
/// rotations at 16 connections: p99 5 ms checkpointing every 10 ms, 19 ms every 100 ms, 120 ms
/// every second). An idle store is not woken.
fn spawn_checkpointer(
    conn: Connection,
    written: std::sync::mpsc::Receiver<()>,
    rest: std::time::Duration,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // Ends when the writer does (its end of the channel is dropped).
            while written.recv().is_ok() {
                // Busy (a reader holds the log's start) is normal: the next round catches up.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                std::thread::sleep(rest);
            }
        })
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpointer: {e}")))
}

/// Runs `f` in one read transaction on `c`.
fn in_snapshot<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.prepare_cached("BEGIN")
        .and_then(|mut s| s.execute([]))
        .map_err(rows::read_err)?;
    let value = f(c);
    // Ending a read transaction loses nothing; should it fail, roll back rather than leave the
    // connection reading an old snapshot.
    if let Err(e) = c.prepare_cached("COMMIT").and_then(|mut s| s.execute([])) {
        let _ = c.execute_batch("ROLLBACK");
        return Err(rows::read_err(e));
    }
    value
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a half-done transaction behind (it rolls back on
    // drop), so a poisoned connection is still sound to use.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens a connection; a writer's (`page_size`: `Some`) sets the page size of a new file and
/// write-ahead logging.
fn open_connection(path: &Path, page_size: Option<u32>) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    // A larger page cache and memory-mapped reads: without them every page the B-trees touch is
    // copied in from the OS (measured: 4x slower audit writes).
    let mut pragmas = String::from(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; \
         PRAGMA cache_size = -32768; PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = 1000;",
    );
    if let Some(page_size) = page_size {
        // The page size is set before the first table exists (an existing database keeps its
        // own). The main database has 16 KiB pages: its bulk writes (imports, a key rotation)
        // write whole new pages, fewer and larger ones are cheaper to log and checkpoint, and a
        // small write still logs only the pages it touches. The audit log has 4 KiB pages: its
        // writes append (measured with its indexes kept as runs, events spread over 1,000 apps:
        // 53k/s, 46k/s with 16 KiB pages).
        pragmas.push_str(&format!(
            " PRAGMA page_size = {page_size}; PRAGMA journal_mode = WAL;"
        ));
        // The writer leaves checkpoints to the checkpointer thread (see `spawn_checkpointer`)
        // unless the log grows past 256 MiB (the thread stalled): a commit never waits for a
        // checkpoint's disk syncs.
        pragmas.push_str(" PRAGMA wal_autocheckpoint = 16384;");
    }
    conn.execute_batch(&pragmas).map_err(backend)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .map_err(backend)?;
    for (version, sql) in MIGRATIONS {
        let applied: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if applied {
            continue;
        }
        tracing::info!(version, "applying SQLite migration");
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, CAST(unixepoch('subsec') * 1000 AS INTEGER)); COMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::Backend(format!("migration {version} failed: {e}"))
        })?;
    }
    Ok(())
}

/// Maps a database error that is not a constraint violation the caller expects.
pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Maps a write error, turning constraint violations into the domain's errors.
pub(crate) fn write_error(entity: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::AlreadyExists { entity }
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::MissingReference {
                entity,
                id: String::new(),
            }
        }
        _ => backend(e),
    }
}

#[async_trait]
impl portcullis_domain::ApplyStore for SqliteStore {
    async fn apply_writes(&self, writes: &[portcullis_domain::Write]) -> Result<(), StoreError> {
        use portcullis_domain::table::SimpleTable;
        use portcullis_domain::{Role, TenantRecord, Write};
        let writes = writes.to_vec();
        self.write(move |tx| {
            let mut changes = Vec::new();
            for w in &writes {
                changes.extend(match w {
                    Write::InsertRole(r) => table::insert_tx(tx, Role::TABLE, r.to_cells()?)?,
                    Write::UpdateRole(r) => table::update_tx(tx, Role::TABLE, r.update_cells()?)?,
                    Write::InsertTenant(t) => {
                        table::insert_tx(tx, TenantRecord::TABLE, t.to_cells()?)?
                    }
                    Write::UpdateTenant(t) => {
                        table::update_tx(tx, TenantRecord::TABLE, t.update_cells()?)?
                    }
                    Write::InsertUser(u) => directory::insert_user_tx(tx, u)?,
                    Write::UpdateUser(u) => directory::update_user_tx(tx, u)?,
                    Write::InsertApp(a) => apps::insert_app_tx(tx, a)?,
                    Write::UpdateApp {
                        app,
                        expected_revision,
                    } => apps::update_app_tx(tx, app, *expected_revision)?,
                    Write::InsertPolicy {
                        policy,
                        expected_app_revision,
                    } => apps::insert_policy_tx(tx, policy, *expected_app_revision)?,
                    Write::UpdatePolicy {
                        policy,
                        expected_app_revision,
                    } => apps::update_policy_tx(tx, policy, *expected_app_revision)?,
                    Write::DeletePolicy { app_id, id } => apps::delete_policy_tx(tx, app_id, id)?,
                    Write::Management(e) => management::append_management_tx(tx, e)?,
                });
            }
            Ok(((), changes))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point read runs in one snapshot on the calling thread; with every reader connection
    /// busy it waits on the blocking pool instead, and still answers.
    #[tokio::test]
    async fn point_reads_run_inline_or_wait_for_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let writer = open_connection(&path, Some(4096)).unwrap();
        writer
            .execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let db = Arc::new(Db::start(&path, writer, 2, CHECKPOINT_REST).unwrap());
        let sum = |c: &Connection| {
            assert!(!c.is_autocommit(), "a point read is one transaction");
            c.query_row("SELECT SUM(n) FROM t", [], |r| r.get::<_, i64>(0))
                .map_err(backend)
        };
        assert_eq!(db.read_point(sum).await.unwrap(), 3);
        // Every reader busy for a moment: the read waits for one.
        let (held, release) = std::sync::mpsc::channel::<()>();
        let (taken, wait_taken) = std::sync::mpsc::channel::<()>();
        let busy = db.clone();
        let holder = std::thread::spawn(move || {
            let guards: Vec<_> = busy.readers.conns.iter().map(lock).collect();
            taken.send(()).unwrap();
            let _ = release.recv_timeout(std::time::Duration::from_millis(50));
            drop(guards);
        });
        wait_taken.recv().unwrap();
        assert_eq!(db.read_point(sum).await.unwrap(), 3);
        drop(held);
        holder.join().unwrap();
        // The connection is back out of its transaction.
        assert!(db.readers.conns.iter().all(|c| lock(c).is_autocommit()));
    }
}
