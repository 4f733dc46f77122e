//! The decision audit log: a SQLite file of its own beside the main database
//! (`portcullis-audit.db` beside `portcullis.db`), with its own writer thread and readers, so that
//! its writes never wait behind the main database's writes (a key rotation, refreshes) nor make
//! them wait.
//!
//! One table per UTC day (`events_20261204`, and `blobs_20261204` and the index runs beside
//! it): retention drops whole days. Rows are compact:
//! - the columns a query filters on (`id`, `at`, `app_id`, `user_id`, `tenant_id`, `client_id`,
//!   `outcome` as a number, `latency_us`), then everything else in one binary record (`rest`);
//! - what many decisions share is stored once in `blobs` and referenced by its row number: the
//!   inputs of a token (its claims and the user's roles: every presentation of one token reads the
//!   same) and the list of an app's policies (which matched is a bitmap in the event). The writer
//!   remembers what it stored by a 128-bit SHA-256 prefix of the bytes (a bounded map; past it, or
//!   after a restart, a blob is stored again: it costs room, never correctness).
//!
//! Every insert appends: ids are time-ordered, blobs are numbered, and the indexes by app and
//! by user are kept as sorted runs, a run per batch, merged as they accumulate (see [`runs`]).
//! 4 KiB pages (the main database has 16 KiB ones): what a commit dirties is written whole to
//! the write-ahead log.
//!
//! Events are listed newest first by id; ids are time-ordered, and an event's day is the day of
//! its `at`, which is the time its id carries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use portcullis_domain::{
    AuditEvent, AuditOutcome, AuditQuery, AuditSummaryRow, DecisionInputs, PolicyVerdict,
    RecordedDecision, StoreError, Timestamp,
};
use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params, params_from_iter};

use crate::rows::{json_col, read_err, ts};
use crate::{Db, backend, open_connection, write_error};

mod runs;
use runs::Index;

const DAY_MS: i64 = 86_400_000;
/// The reader connections of the audit log.
const READERS: usize = 2;
/// How long the audit log's checkpointer rests after a checkpoint before the next. Longer than
/// the main database's 10 ms: nothing waits for an audit commit, and a page the batches of a
/// quarter second rewrite (the ends of the day's tables and runs) is copied to the file once.
const CHECKPOINT_REST: std::time::Duration = std::time::Duration::from_millis(250);
/// The most blob keys the writer remembers as stored (then it forgets them all and asks the
/// database again): bounds its memory whatever the traffic.
const KNOWN_BLOBS: usize = 200_000;
/// The outcomes in the order of their stored numbers. Append only.
const OUTCOMES: [AuditOutcome; 7] = [
    AuditOutcome::Allowed,
    AuditOutcome::Denied,
    AuditOutcome::ConsentRequired,
    AuditOutcome::NotConnected,
    AuditOutcome::InvalidToken,
    AuditOutcome::InvalidRequest,
    AuditOutcome::Error,
];
/// The version of the `rest` record's layout.
const REST_V1: u8 = 1;

type BlobKey = [u8; 16];
/// What the writer knows is stored: the days whose tables exist, and blobs (their day and key,
/// and their row).
#[derive(Default)]
struct Known {
    days: HashSet<u32>,
    blobs: HashMap<(u32, BlobKey), i64>,
}

/// What one batch added to [`Known`]: to forget if it is rolled back.
#[derive(Default)]
struct Added {
    days: Vec<u32>,
    blobs: Vec<(u32, BlobKey)>,
}

impl Known {
    fn forget(&mut self, added: &Added) {
        for d in &added.days {
            self.days.remove(d);
        }
        for k in &added.blobs {
            self.blobs.remove(k);
        }
    }

    fn forget_day(&mut self, day: u32) {
        self.days.remove(&day);
        self.blobs.retain(|(d, _), _| *d != day);
    }
}

/// The decision audit log of a SQLite store.
pub(crate) struct AuditLog {
    db: Db,
    /// The blobs the writer knows are stored, per day (only write jobs touch it).
    known: Arc<Mutex<Known>>,
}

impl AuditLog {
    /// The audit log's file beside the main database's: `dir/name.db` → `dir/name-audit.db`.
    pub(crate) fn path_beside(main: &Path) -> PathBuf {
        let stem = main
            .file_stem()
            .map_or_else(|| "portcullis".into(), |s| s.to_string_lossy().into_owned());
        main.with_file_name(format!("{stem}-audit.db"))
    }

    /// Opens (creating if needed) the log's file and returns its writer connection.
    /// Days of the previous layout get their index runs (see [`runs::adopt_day`]).
    pub(crate) fn prepare(path: &Path) -> Result<Connection, StoreError> {
        let conn = open_connection(path, Some(4096))?;
        for day in stored_days(&conn)? {
            runs::adopt_day(&conn, day, &events_table(day))?;
        }
        Ok(conn)
    }

    /// Starts the log's writer thread and readers.
    pub(crate) fn start(path: &Path, writer: Connection) -> Result<Self, StoreError> {
        Ok(Self {
            db: Db::start(path, writer, READERS, CHECKPOINT_REST)?,
            known: Arc::new(Mutex::new(Known::default())),
        })
    }

    /// Appends a batch in one transaction: a duplicate id anywhere in it leaves none of it stored.
    pub(crate) async fn append(&self, events: Arc<[AuditEvent]>) -> Result<(), StoreError> {
        let known = self.known.clone();
        let written = self
            .db
            .write(None, move |tx| {
                let mut known = lock(&known);
                if known.blobs.len() > KNOWN_BLOBS {
                    known.blobs.clear();
                }
                let mut added = Added::default();
                let result = append_tx(tx, &events, &mut known, &mut added, false);
                if result.is_err() {
                    // Rolled back: what this batch stored is not there.
                    known.forget(&added);
                }
                // The batch comes back to be freed here, not on the writer thread.
                result.map(|()| (events, vec![]))
            })
            .await;
        if written.is_err() {
            // The commit itself may have failed: forget everything rather than trust it.
            *lock(&self.known) = Known::default();
        }
        written.map(drop)
    }

    /// The events `query` selects, newest first. Filtered by app or by user, a search of that
    /// index's runs (see [`runs`]); else the day's events newest first.
    pub(crate) async fn events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let q = query.clone();
        self.db
            .read(move |c| {
                across_days(c, &q, |day, want| {
                    let index = match (&q.app_id, &q.user_id) {
                        (Some(app), _) => Some((Index::App, app.clone())),
                        (None, Some(user)) => Some((Index::User, user.clone())),
                        (None, None) => None,
                    };
                    // With an index, ?1 is the run and ?2 the key.
                    let (from, mut sql, mut args) = match &index {
                        Some((index, key)) => (
                            format!(
                                "{} x, json_each(x.ids) j JOIN {} e ON e.id = j.value",
                                index.table(day),
                                events_table(day)
                            ),
                            " AND x.run = ?1 AND x.key = ?2".to_owned(),
                            vec![Value::Integer(0), Value::Text(key.clone())],
                        ),
                        None => (
                            format!("{} e", events_table(day)),
                            String::new(),
                            Vec::new(),
                        ),
                    };
                    let mut filter = |column: &str, op: &str, value: Value| {
                        args.push(value);
                        sql.push_str(&format!(" AND {column} {op} ?{}", args.len()));
                    };
                    if let Some(v) = &q.app_id {
                        filter("e.app_id", "=", Value::Text(v.clone()));
                    }
                    if let Some(v) = &q.user_id {
                        filter("e.user_id", "=", Value::Text(v.clone()));
                    }
                    if let Some(v) = &q.tenant_id {
                        filter("e.tenant_id", "=", Value::Text(v.clone()));
                    }
                    if let Some(v) = &q.client_id {
                        filter("e.client_id", "=", Value::Text(v.clone()));
                    }
                    if let Some(v) = q.outcome {
                        filter("e.outcome", "=", Value::Integer(outcome_code(v)));
                    }
                    if let Some(v) = q.since {
                        filter("e.at", ">=", Value::Integer(v.as_millis()));
                    }
                    if let Some(v) = q.until {
                        filter("e.at", "<", Value::Integer(v.as_millis()));
                    }
                    if let Some(v) = &q.before_id {
                        let column = if index.is_some() { "j.value" } else { "e.id" };
                        filter(column, "<", Value::Text(v.clone()));
                    }
                    // A run's rows for a key hold successive ranges of ids.
                    let order = if index.is_some() {
                        "x.last DESC, j.value DESC"
                    } else {
                        "e.id DESC"
                    };
                    let sql = format!(
                        "SELECT e.id, e.at, e.app_id, e.user_id, e.tenant_id, e.client_id, \
                         e.outcome, e.latency_us, e.rest, p.body, i.body FROM {from} \
                         LEFT JOIN {blobs} p ON p.id = e.policies \
                         LEFT JOIN {blobs} i ON i.id = e.inputs WHERE 1 = 1{sql} \
                         ORDER BY {order} LIMIT ?{}",
                        args.len() + 1,
                        blobs = blobs_table(day),
                    );
                    let mut read = |run: i64, want: usize| -> Result<Vec<AuditEvent>, StoreError> {
                        if index.is_some() {
                            args[0] = Value::Integer(run);
                        }
                        let limit = Value::Integer(i64::try_from(want).unwrap_or(i64::MAX));
                        c.prepare_cached(&sql)
                            .and_then(|mut s| {
                                s.query_map(
                                    params_from_iter(args.iter().chain([&limit])),
                                    event_from_row,
                                )?
                                .collect()
                            })
                            .map_err(read_err)
                    };
                    match index {
                        Some(_) => {
                            runs::search(c, day, q.before_id.as_deref(), want, read, |e| &e.id)
                        }
                        None => read(0, want),
                    }
                })
            })
            .await
    }

    /// An app's decisions that carry their inputs, newest first: what a replay reads.
    pub(crate) async fn recorded(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<RecordedDecision>, StoreError> {
        let q = query.clone();
        let since = q.since.map_or(i64::MIN, Timestamp::as_millis);
        let until = q.until.map_or(i64::MAX, Timestamp::as_millis);
        // A cursor above every id: ids are ASCII.
        let before = q.before_id.clone().unwrap_or_else(|| "\u{7f}".to_owned());
        self.db
            .read(move |c| {
                let Some(app) = q.app_id.clone() else {
                    return Ok(Vec::new());
                };
                across_days(c, &q, |day, want| {
                    let sql = format!(
                        "SELECT e.id, e.user_id, e.rest, i.body FROM {by_app} x, \
                         json_each(x.ids) j JOIN {events} e ON e.id = j.value \
                         JOIN {blobs} i ON i.id = e.inputs \
                         WHERE x.run = ?1 AND x.key = ?2 AND j.value < ?3 AND e.at >= ?4 \
                         AND e.at < ?5 ORDER BY x.last DESC, j.value DESC LIMIT ?6",
                        by_app = Index::App.table(day),
                        events = events_table(day),
                        blobs = blobs_table(day),
                    );
                    let read = |run: i64, want: usize| {
                        let mut stmt = c.prepare_cached(&sql).map_err(read_err)?;
                        let want = i64::try_from(want).unwrap_or(i64::MAX);
                        stmt.query_map(params![run, app, before, since, until, want], |r| {
                            let rest: Vec<u8> = r.get(2)?;
                            let inputs: Vec<u8> = r.get(3)?;
                            let rest = Rest::decode(&rest).map_err(|e| bad_record(2, e))?;
                            let (roles, claims, truncated) =
                                decode_inputs(&inputs).map_err(|e| bad_record(3, e))?;
                            let (allowed, scopes) = rest.inputs.unwrap_or_default();
                            Ok(RecordedDecision {
                                id: r.get(0)?,
                                user_id: r.get(1)?,
                                requested_scopes: rest.requested,
                                inputs: DecisionInputs {
                                    roles,
                                    claims,
                                    truncated,
                                    allowed,
                                    scopes,
                                },
                            })
                        })
                        .and_then(Iterator::collect)
                        .map_err(read_err)
                    };
                    runs::search(c, day, q.before_id.as_deref(), want, read, |d| &d.id)
                })
            })
            .await
    }

    /// Decisions of `[since, until)` grouped by bucket, app and outcome.
    pub(crate) async fn summary(
        &self,
        since: Timestamp,
        until: Timestamp,
        bucket_ms: i64,
    ) -> Result<Vec<AuditSummaryRow>, StoreError> {
        let bucket_ms = bucket_ms.max(1);
        self.db
            .read(move |c| {
                type Group = (u32, Option<String>, i64);
                let mut groups: BTreeMap<Group, (u64, u64, u64)> = BTreeMap::new();
                for day in days_for(c, Some(since), Some(until), None)? {
                    // `at >= since`, so the integer division is a floor: the bucket's index.
                    let sql = format!(
                        "SELECT (at - ?1) / ?3 AS bucket, app_id, outcome, COUNT(*), \
                         SUM(latency_us), MAX(latency_us) FROM {} \
                         WHERE at >= ?1 AND at < ?2 GROUP BY bucket, app_id, outcome",
                        events_table(day)
                    );
                    let mut stmt = c.prepare_cached(&sql).map_err(read_err)?;
                    let rows = stmt
                        .query_map(
                            params![since.as_millis(), until.as_millis(), bucket_ms],
                            |r| {
                                let n =
                                    |i| r.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                                Ok((
                                    (
                                        u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                                        r.get::<_, Option<String>>(1)?,
                                        r.get::<_, i64>(2)?,
                                    ),
                                    (n(3)?, n(4)?, n(5)?),
                                ))
                            },
                        )
                        .map_err(read_err)?;
                    for row in rows {
                        let (group, (count, sum, max)) = row.map_err(read_err)?;
                        let g = groups.entry(group).or_default();
                        g.0 += count;
                        g.1 += sum;
                        g.2 = g.2.max(max);
                    }
                }
                groups
                    .into_iter()
                    .map(|((bucket, app_id, outcome), (count, sum, max))| {
                        Ok(AuditSummaryRow {
                            bucket,
                            app_id,
                            outcome: outcome_from_code(outcome).ok_or_else(|| {
                                StoreError::Backend(format!("unknown outcome number {outcome}"))
                            })?,
                            count,
                            latency_sum_us: sum,
                            latency_max_us: max,
                        })
                    })
                    .collect()
            })
            .await
    }

    /// Deletes what is older than `before`: every day wholly before it (a dropped table each),
    /// then at most `limit` events of the day `before` falls in. Answers how many events went: less
    /// than `limit` when nothing older is left.
    pub(crate) async fn prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let known = self.known.clone();
        self.db
            .write(None, move |tx| {
                let cut = day_of(before);
                let mut gone = 0u64;
                let days = stored_days(tx)?;
                for &day in days.iter().filter(|&&d| d < cut) {
                    let events = events_table(day);
                    let n: i64 = tx
                        .query_row(&format!("SELECT COUNT(*) FROM {events}"), [], |r| r.get(0))
                        .map_err(backend)?;
                    tx.execute_batch(&format!(
                        "DROP TABLE {events}; DROP TABLE {};",
                        blobs_table(day)
                    ))
                    .map_err(backend)?;
                    runs::drop_day(tx, day)?;
                    lock(&known).forget_day(day);
                    gone += u64::try_from(n).unwrap_or(0);
                }
                if days.contains(&cut) {
                    let events = events_table(cut);
                    gone += tx
                        .execute(
                            &format!(
                                "DELETE FROM {events} WHERE id IN \
                                 (SELECT id FROM {events} WHERE at < ?1 ORDER BY id LIMIT ?2)"
                            ),
                            params![before.as_millis(), i64::from(limit)],
                        )
                        .map_err(backend)? as u64;
                }
                Ok((gone, vec![]))
            })
            .await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes `events` in `tx`, creating their days' tables as needed. With `skip_duplicates`, an id
/// already stored is left as it is (moving an older version's events, which may be resumed);
/// without, it fails the batch.
fn append_tx(
    tx: &Transaction<'_>,
    events: &[AuditEvent],
    known: &mut Known,
    added: &mut Added,
    skip_duplicates: bool,
) -> Result<(), StoreError> {
    // Each day's statements, looked up once a batch.
    let mut statements = HashMap::new();
    // Each day's index entries, written as a run once the events are.
    let mut entries: BTreeMap<u32, runs::Entries> = BTreeMap::new();
    let verb = if skip_duplicates {
        "INSERT OR IGNORE"
    } else {
        "INSERT"
    };
    for e in events {
        let day = day_of(e.at);
        let (insert_event, insert_blob) = match statements.entry(day) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                if known.days.insert(day) {
                    create_day(tx, day)?;
                    added.days.push(day);
                }
                let insert_event = format!(
                    "{verb} INTO {} (id, at, app_id, user_id, tenant_id, client_id, outcome, \
                     latency_us, policies, inputs, rest) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    events_table(day)
                );
                let insert_blob = format!("INSERT INTO {} (body) VALUES (?1)", blobs_table(day));
                v.insert((
                    tx.prepare_cached(&insert_event).map_err(backend)?,
                    tx.prepare_cached(&insert_blob).map_err(backend)?,
                ))
            }
        };
        let mut blob = |bytes: Vec<u8>| -> Result<i64, StoreError> {
            let key = blob_key(&bytes);
            if let Some(&row) = known.blobs.get(&(day, key)) {
                return Ok(row);
            }
            // Not `RETURNING`: it gathers the rows it returns in a temporary table, opened and
            // closed per statement (measured: a sixth of the writer's time).
            insert_blob.execute(params![bytes]).map_err(backend)?;
            let row = tx.last_insert_rowid();
            known.blobs.insert((day, key), row);
            added.blobs.push((day, key));
            Ok(row)
        };
        let policies = if e.considered_policies.is_empty() {
            None
        } else {
            Some(blob(encode_policies(&e.considered_policies))?)
        };
        let inputs = match &e.inputs {
            Some(i) => Some(blob(encode_inputs(i)?)?),
            None => None,
        };
        let written = insert_event
            .execute(params![
                e.id,
                e.at.as_millis(),
                e.app_id,
                e.user_id,
                e.tenant_id,
                e.client_id,
                outcome_code(e.outcome),
                i64::try_from(e.latency_us).unwrap_or(i64::MAX),
                policies,
                inputs,
                Rest::encode(e),
            ])
            .map_err(write_error("audit event"))?;
        // Not written: an id already stored, skipped; it has its entries.
        if written == 1 {
            let day = entries.entry(day).or_default();
            if let Some(app) = &e.app_id {
                day.app.push((app, &e.id));
            }
            if let Some(user) = &e.user_id {
                day.user.push((user, &e.id));
            }
        }
    }
    for (day, entries) in entries {
        runs::write(tx, day, entries)?;
    }
    Ok(())
}

/// Creates a day's tables if they do not exist.
fn create_day(tx: &Connection, day: u32) -> Result<(), StoreError> {
    let (events, blobs) = (events_table(day), blobs_table(day));
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {events} (
            id TEXT PRIMARY KEY,
            at INTEGER NOT NULL,
            app_id TEXT,
            user_id TEXT,
            tenant_id TEXT,
            client_id TEXT,
            outcome INTEGER NOT NULL,
            latency_us INTEGER NOT NULL,
            policies INTEGER,
            inputs INTEGER,
            rest BLOB NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {blobs} (id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
    ))
    .map_err(backend)?;
    runs::create(tx, day)
}

/// Reads the days `q` selects, newest first, a page a day (`page(day, want)`: at most `want`
/// rows), until `q.limit` rows are read.
fn across_days<T>(
    c: &Connection,
    q: &AuditQuery,
    mut page: impl FnMut(u32, usize) -> Result<Vec<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for day in days_for(c, q.since, q.until, q.before_id.as_deref())? {
        let want = (q.limit as usize).saturating_sub(out.len());
        if want == 0 {
            break;
        }
        out.extend(page(day, want)?);
    }
    Ok(out)
}

/// The days stored, oldest first.
fn stored_days(c: &Connection) -> Result<Vec<u32>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'events\\_%' ESCAPE '\\'",
        )
        .map_err(read_err)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(read_err)?;
    let mut days = Vec::new();
    for name in names {
        if let Some(day) = name
            .map_err(read_err)?
            .strip_prefix("events_")
            .and_then(parse_day)
        {
            days.push(day);
        }
    }
    days.sort_unstable();
    Ok(days)
}

/// The days a query reads, newest first: those that meet `[since, until)`, and none after the
/// day of a cursor's id when the id carries its time.
fn days_for(
    c: &Connection,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    before_id: Option<&str>,
) -> Result<Vec<u32>, StoreError> {
    let first = since.map_or(0, day_of);
    // `until` is exclusive: an event at `until - 1 ms` is the last one that counts.
    let mut last = until.map_or(u32::MAX, |t| day_of(t.add_millis(-1)));
    if let Some(day) = before_id.and_then(id_day) {
        last = last.min(day);
    }
    let mut days = stored_days(c)?;
    days.retain(|d| (first..=last).contains(d));
    days.reverse();
    Ok(days)
}

/// The UTC day of an instant, in days since 1970-01-01 (0 before).
fn day_of(t: Timestamp) -> u32 {
    u32::try_from(t.as_millis().div_euclid(DAY_MS)).unwrap_or(if t.as_millis() < 0 {
        0
    } else {
        u32::MAX
    })
}

/// The day of an event id that carries its time (`evt_` and 26 Crockford base32 characters, the
/// first ten the milliseconds).
fn id_day(id: &str) -> Option<u32> {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let body = id.strip_prefix("evt_")?;
    if body.len() != 26 || !body.bytes().all(|b| ALPHABET.contains(&b)) {
        return None;
    }
    let mut millis: i64 = 0;
    for b in body.bytes().take(10) {
        let digit = ALPHABET.iter().position(|&a| a == b)?;
        millis = (millis << 5) | digit as i64;
    }
    Some(day_of(Timestamp::from_millis(millis)))
}

/// `events_YYYYMMDD`.
fn events_table(day: u32) -> String {
    format!("events_{}", day_name(day))
}

/// `blobs_YYYYMMDD`.
fn blobs_table(day: u32) -> String {
    format!("blobs_{}", day_name(day))
}

/// A day as `YYYYMMDD` (the proleptic Gregorian calendar; Howard Hinnant's `civil_from_days`).
fn day_name(day: u32) -> String {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}")
}

/// The day a `YYYYMMDD` name stands for (Hinnant's `days_from_civil`).
fn parse_day(name: &str) -> Option<u32> {
    if name.len() < 8 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, rest) = name.split_at(name.len() - 4);
    let y: i64 = y.parse().ok()?;
    let m: i64 = rest[..2].parse().ok()?;
    let d: i64 = rest[2..].parse().ok()?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u32::try_from(era * 146_097 + doe - 719_468).ok()
}

fn outcome_code(o: AuditOutcome) -> i64 {
    OUTCOMES.iter().position(|&x| x == o).unwrap_or(0) as i64
}

fn outcome_from_code(code: i64) -> Option<AuditOutcome> {
    usize::try_from(code)
        .ok()
        .and_then(|i| OUTCOMES.get(i))
        .copied()
}

fn blob_key(bytes: &[u8]) -> BlobKey {
    let full = portcullis_crypto::sha256(bytes);
    let mut key = [0u8; 16];
    key.copy_from_slice(&full[..16]);
    key
}

fn bad_record(column: usize, what: &'static str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Blob, what.into())
}

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEvent> {
    let outcome: i64 = r.get(6)?;
    let rest: Vec<u8> = r.get(8)?;
    let rest = Rest::decode(&rest).map_err(|e| bad_record(8, e))?;
    let policies = match r.get::<_, Option<Vec<u8>>>(9)? {
        Some(bytes) => decode_policies(&bytes, &rest.matched).map_err(|e| bad_record(9, e))?,
        None => Vec::new(),
    };
    let deciding_policies = rest.deciding.unwrap_or_else(|| {
        policies
            .iter()
            .filter(|p| p.matched && !p.shadow)
            .map(|p| p.id.clone())
            .collect()
    });
    let inputs = match (r.get::<_, Option<Vec<u8>>>(10)?, rest.inputs) {
        (Some(bytes), Some((allowed, scopes))) => {
            let (roles, claims, truncated) =
                decode_inputs(&bytes).map_err(|e| bad_record(10, e))?;
            Some(DecisionInputs {
                roles,
                claims,
                truncated,
                allowed,
                scopes,
            })
        }
        _ => None,
    };
    Ok(AuditEvent {
        id: r.get(0)?,
        at: ts(r, 1)?,
        action: rest.action,
        app_id: r.get(2)?,
        user_id: r.get(3)?,
        tenant_id: r.get(4)?,
        client_id: r.get(5)?,
        issuer: rest.issuer,
        requested_scopes: rest.requested,
        granted_scopes: rest.granted,
        outcome: outcome_from_code(outcome).ok_or_else(|| bad_record(6, "unknown outcome"))?,
        reason: rest.reason,
        deciding_policies,
        considered_policies: policies,
        shadow_outcome: rest.shadow_outcome,
        latency_us: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        inputs,
    })
}

/// What an event keeps besides its columns and blobs.
struct Rest {
    action: String,
    issuer: Option<String>,
    requested: Vec<String>,
    granted: Vec<String>,
    reason: Option<String>,
    shadow_outcome: Option<String>,
    /// Which of the considered policies matched, a bit each.
    matched: Vec<bool>,
    /// The deciding policies, when they are not the matching enforcing ones.
    deciding: Option<Vec<String>>,
    /// Whether the policies allowed it and the scopes it got, when they ran.
    inputs: Option<(bool, Vec<String>)>,
}

impl Rest {
    fn encode(e: &AuditEvent) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(128));
        w.0.push(REST_V1);
        w.str(&e.action);
        w.opt(e.issuer.as_deref());
        w.list(&e.requested_scopes);
        w.list(&e.granted_scopes);
        w.opt(e.reason.as_deref());
        w.opt(e.shadow_outcome.as_deref());
        w.bits(e.considered_policies.iter().map(|p| p.matched));
        let derived = e
            .considered_policies
            .iter()
            .filter(|p| p.matched && !p.shadow)
            .map(|p| &p.id);
        if derived.eq(e.deciding_policies.iter()) {
            w.0.push(0);
        } else {
            w.0.push(1);
            w.list(&e.deciding_policies);
        }
        match &e.inputs {
            None => w.0.push(0),
            Some(i) => {
                w.0.push(1 + u8::from(i.allowed));
                w.list(&i.scopes);
            }
        }
        w.0
    }

    fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut r = Reader(bytes);
        if r.byte()? != REST_V1 {
            return Err("an audit record of an unknown layout");
        }
        let action = r.str()?;
        let issuer = r.opt()?;
        let requested = r.list()?;
        let granted = r.list()?;
        let reason = r.opt()?;
        let shadow_outcome = r.opt()?;
        let matched = r.bits()?;
        let deciding = match r.byte()? {
            0 => None,
            _ => Some(r.list()?),
        };
        let inputs = match r.byte()? {
            0 => None,
            flag => Some((flag == 2, r.list()?)),
        };
        Ok(Self {
            action,
            issuer,
            requested,
            granted,
            reason,
            shadow_outcome,
            matched,
            deciding,
            inputs,
        })
    }
}

/// A list of policies (ids and shadow flags); which matched is the event's.
fn encode_policies(policies: &[PolicyVerdict]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(32 * policies.len()));
    w.varint(policies.len() as u64);
    for p in policies {
        w.str(&p.id);
        w.0.push(u8::from(p.shadow));
    }
    w.0
}

fn decode_policies(bytes: &[u8], matched: &[bool]) -> Result<Vec<PolicyVerdict>, &'static str> {
    let mut r = Reader(bytes);
    let n = r.len()?;
    let mut out = Vec::with_capacity(n.min(256));
    for i in 0..n {
        let id = r.str()?;
        let shadow = r.byte()? != 0;
        out.push(PolicyVerdict {
            id,
            matched: matched.get(i).copied().unwrap_or(false),
            shadow,
        });
    }
    Ok(out)
}

/// What every presentation of one token shares: the roles, the claims (as JSON) and whether
/// some were left out.
fn encode_inputs(i: &DecisionInputs) -> Result<Vec<u8>, StoreError> {
    let claims = serde_json::to_string(&i.claims)
        .map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))?;
    let mut w = Writer(Vec::with_capacity(claims.len() + 32));
    w.list(&i.roles);
    w.0.push(u8::from(i.truncated));
    w.str(&claims);
    Ok(w.0)
}

type Inputs = (
    Vec<String>,
    serde_json::Map<String, serde_json::Value>,
    bool,
);

fn decode_inputs(bytes: &[u8]) -> Result<Inputs, &'static str> {
    let mut r = Reader(bytes);
    let roles = r.list()?;
    let truncated = r.byte()? != 0;
    let claims = serde_json::from_str(&r.str()?).map_err(|_| "claims that are not JSON")?;
    Ok((roles, claims, truncated))
}

/// Little binary records: lengths as LEB128 varints, strings as their UTF-8 bytes.
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    /// An optional string: 0 for none, else its length plus one.
    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.varint(s.len() as u64 + 1);
                self.0.extend_from_slice(s.as_bytes());
            }
        }
    }

    fn list(&mut self, l: &[String]) {
        self.varint(l.len() as u64);
        for s in l {
            self.str(s);
        }
    }

    fn bits(&mut self, bits: impl ExactSizeIterator<Item = bool>) {
        self.varint(bits.len() as u64);
        let mut byte = 0u8;
        let mut n = 0;
        for b in bits {
            byte |= u8::from(b) << (n % 8);
            n += 1;
            if n % 8 == 0 {
                self.0.push(byte);
                byte = 0;
            }
        }
        if n % 8 != 0 {
            self.0.push(byte);
        }
    }
}

struct Reader<'a>(&'a [u8]);

const TRUNCATED: &str = "a truncated audit record";

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let (&b, rest) = self.0.split_first().ok_or(TRUNCATED)?;
        self.0 = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("an audit record with an overlong number")
    }

    /// A length, no longer than what is left.
    fn len(&mut self) -> Result<usize, &'static str> {
        let n = usize::try_from(self.varint()?).map_err(|_| TRUNCATED)?;
        if n > self.0.len() {
            return Err(TRUNCATED);
        }
        Ok(n)
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8], &'static str> {
        if n > self.0.len() {
            return Err(TRUNCATED);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<String, &'static str> {
        let n = self.len()?;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "an audit record with text that is not UTF-8")
    }

    fn opt(&mut self) -> Result<Option<String>, &'static str> {
        match self.varint()? {
            0 => Ok(None),
            n => {
                let n = usize::try_from(n - 1).map_err(|_| TRUNCATED)?;
                let b = self.bytes(n)?;
                String::from_utf8(b.to_vec())
                    .map(Some)
                    .map_err(|_| "an audit record with text that is not UTF-8")
            }
        }
    }

    fn list(&mut self) -> Result<Vec<String>, &'static str> {
        let n = self.len()?;
        (0..n).map(|_| self.str()).collect()
    }

    fn bits(&mut self) -> Result<Vec<bool>, &'static str> {
        let n = usize::try_from(self.varint()?).map_err(|_| TRUNCATED)?;
        let b = self.bytes(n.div_ceil(8))?;
        Ok((0..n).map(|i| b[i / 8] & (1 << (i % 8)) != 0).collect())
    }
}

/// Moves the audit events an older version kept in the main database (`audit_events`) into the
/// log, ten thousand at a time, then drops that table. Resumable: a batch is committed to the
/// log before it is deleted from the main file, and ids already moved are skipped.
pub(crate) fn adopt_legacy(main: &Connection, log: &Connection) -> Result<(), StoreError> {
    let exists: bool = main
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events')",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !exists {
        return Ok(());
    }
    let mut moved = 0u64;
    let mut known = Known::default();
    loop {
        let batch: Vec<AuditEvent> = main
            .prepare(
                "SELECT id, at, action, app_id, user_id, tenant_id, client_id, issuer, \
                 requested_scopes, granted_scopes, outcome, reason, deciding_policies, \
                 considered_policies, shadow_outcome, latency_us, inputs \
                 FROM audit_events ORDER BY id LIMIT 10000",
            )
            .and_then(|mut s| s.query_map([], legacy_from_row)?.collect())
            .map_err(backend)?;
        if batch.is_empty() {
            break;
        }
        let tx = log.unchecked_transaction().map_err(backend)?;
        append_tx(&tx, &batch, &mut known, &mut Added::default(), true)?;
        tx.commit().map_err(backend)?;
        let last = batch.last().map(|e| e.id.clone()).unwrap_or_default();
        main.execute("DELETE FROM audit_events WHERE id <= ?1", [last])
            .map_err(backend)?;
        moved += batch.len() as u64;
        if known.blobs.len() > KNOWN_BLOBS {
            known.blobs.clear();
        }
        tracing::info!(moved, "moving audit events into the audit log's own file");
    }
    main.execute_batch("DROP TABLE audit_events")
        .map_err(backend)?;
    Ok(())
}

fn legacy_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEvent> {
    let outcome: String = row.get(10)?;
    Ok(AuditEvent {
        id: row.get(0)?,
        at: ts(row, 1)?,
        action: row.get(2)?,
        app_id: row.get(3)?,
        user_id: row.get(4)?,
        tenant_id: row.get(5)?,
        client_id: row.get(6)?,
        issuer: row.get(7)?,
        requested_scopes: json_col(row, 8)?,
        granted_scopes: json_col(row, 9)?,
        outcome: AuditOutcome::parse(&outcome).ok_or_else(|| bad_record(10, "unknown outcome"))?,
        reason: row.get(11)?,
        deciding_policies: json_col(row, 12)?,
        considered_policies: json_col(row, 13)?,
        shadow_outcome: row.get(14)?,
        latency_us: u64::try_from(row.get::<_, i64>(15)?).unwrap_or(0),
        inputs: row
            .get::<_, Option<String>>(16)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(16, rusqlite::types::Type::Text, e.into())
            })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_round_trip() {
        for (day, name) in [(0, "19700101"), (20_791, "20261204"), (11_016, "20000229")] {
            assert_eq!(day_name(day), name);
            assert_eq!(parse_day(name), Some(day));
        }
        assert_eq!(parse_day("2026120"), None);
        assert_eq!(parse_day("2026x204"), None);
    }

    #[test]
    fn event_ids_name_their_day() {
        // evt_ + the 48-bit milliseconds in ten base32 digits + 16 random digits.
        let ms: i64 = 1_796_400_000_000; // 2026-12-04
        let mut digits = String::new();
        for i in (0..10).rev() {
            digits.push(char::from(
                b"0123456789abcdefghjkmnpqrstvwxyz"[((ms >> (5 * i)) & 31) as usize],
            ));
        }
        let id = format!("evt_{digits}0000000000000000");
        assert_eq!(id_day(&id), Some(day_of(Timestamp::from_millis(ms))));
        assert_eq!(id_day("evt_01"), None);
        assert_eq!(id_day("evt_0000000000000000000000000!"), None);
    }

    /// A day's events by app and by user are a search of each run's rows for the key, newest
    /// row first, not a scan of the day or of the run.
    #[test]
    fn a_day_is_searched_by_app_and_by_user() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        create_day(&tx, 20_791).unwrap();
        for table in ["app_runs_20261204", "user_runs_20261204"] {
            let plan: Vec<String> = tx
                .prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT e.id FROM {table} x, json_each(x.ids) j \
                     JOIN events_20261204 e ON e.id = j.value \
                     WHERE x.run = 1 AND x.key = 'x' AND j.value < 'y' \
                     ORDER BY x.last DESC, j.value DESC LIMIT 100"
                ))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.contains("SEARCH x USING PRIMARY KEY (run=? AND key=?)")),
                "{table}: {plan:?}"
            );
            assert!(
                plan.iter()
                    .any(|step| step.contains("SEARCH e USING PRIMARY KEY (id=?)")),
                "{table}: {plan:?}"
            );
            // Sorted a row at a time (the rows come in order), never the run's rows for the key.
            assert!(
                !plan
                    .iter()
                    .any(|step| step == "USE TEMP B-TREE FOR ORDER BY"),
                "{table}: {plan:?}"
            );
        }
    }

    #[test]
    fn hostile_records_are_refused_not_panicked_on() {
        for bytes in [
            &[][..],
            &[1],
            &[1, 200],
            &[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
            ],
            &[2, 0],
        ] {
            assert!(Rest::decode(bytes).is_err());
        }
        assert!(decode_policies(&[5, 1, b'a'], &[]).is_err());
        assert!(decode_inputs(&[0, 0, 3, b'{', b'x', b'}']).is_err());
    }
}
