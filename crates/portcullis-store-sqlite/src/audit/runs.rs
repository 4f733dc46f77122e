//! The audit log's indexes by app and by user, kept as sorted runs so that writing them appends.
//!
//! A B-tree index on `(app_id, id)` takes each event's entry on a page of its own app's range:
//! a batch of events over many apps and users dirties a page per event in each index, and every
//! dirty page is written whole to the write-ahead log at each commit and again at checkpoint
//! (measured: 26k events/s over 1,000 apps and 10,000 users, against 96k/s with no index).
//!
//! Here each batch writes its index entries as a new *run*, numbered above every other: a row
//! per key and up to [`CHUNK`] of its ids (`(run, key, last id)`, the ids a JSON array), sorted,
//! so the inserts append at the tree's right edge, and a batch of one user's decisions writes one
//! row per index, not one per decision. When the newest [`FANOUT`] runs are of one level they are
//! merged into one run of the next level (a sorted rewrite of a contiguous key range: appends
//! again), up to [`MAX_LEVEL`]. A day holds at most `FANOUT - 1` runs per level below the top,
//! and a top-level run per `FANOUT^MAX_LEVEL` batches (or a run below, when merging would exceed
//! [`MERGE_MAX`] entries).
//!
//! A search walks a day's runs newest first and seeks the key in each, its rows newest first. It
//! skips a run whose ids are all at or past the cursor, or all older than the page it already
//! has: the runs hold successive batches, so a page rarely reads more than the newest few.
//!
//! Tables per day, beside `events_YYYYMMDD`: `runs_YYYYMMDD` (number, level, size and the range
//! of ids of each run), `app_runs_YYYYMMDD` and `user_runs_YYYYMMDD`.

use portcullis_domain::StoreError;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::day_name;
use crate::backend;
use crate::rows::read_err;

/// How many runs of one level are merged into one of the next.
const FANOUT: usize = 32;
/// The most ids a row of a run holds: a run has a row per key and `CHUNK` ids, so a batch of
/// one user's decisions writes one row per index, and a page of a search unpacks a row or two.
const CHUNK: usize = 256;
/// The level runs stop being merged at.
const MAX_LEVEL: i64 = 2;
/// The most entries (of both indexes) a merge writes: merges read one index's entries into
/// memory, and hold the writer meanwhile. Runs whose merge would exceed it stay as they are.
///
/// With the audit writer's batches of 100 events, a level-2 run holds 102,400 events (205,000
/// entries): a day of 10 million events is about 100 runs, and each entry is written twice on its
/// way up (measured, batches of 1,000 events over 1,000 apps and 10,000 users: 66k events/s with
/// 32 runs a merge and two levels, 53k/s with 16 and three).
const MERGE_MAX: i64 = 1_000_000;

/// The two indexes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Index {
    App,
    User,
}

impl Index {
    pub(super) fn table(self, day: u32) -> String {
        match self {
            Self::App => format!("app_runs_{}", day_name(day)),
            Self::User => format!("user_runs_{}", day_name(day)),
        }
    }

    /// The events table's column the index is on.
    pub(super) fn column(self) -> &'static str {
        match self {
            Self::App => "app_id",
            Self::User => "user_id",
        }
    }
}

fn runs_table(day: u32) -> String {
    format!("runs_{}", day_name(day))
}

/// Creates a day's run tables if they do not exist.
pub(super) fn create(tx: &Connection, day: u32) -> Result<(), StoreError> {
    let runs = runs_table(day);
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {runs} (
            run INTEGER PRIMARY KEY,
            level INTEGER NOT NULL,
            entries INTEGER NOT NULL,
            min_id TEXT NOT NULL,
            max_id TEXT NOT NULL
        );"
    );
    for index in [Index::App, Index::User] {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                run INTEGER NOT NULL,
                key TEXT NOT NULL,
                last TEXT NOT NULL,
                ids TEXT NOT NULL,
                PRIMARY KEY (run, key, last)
            ) WITHOUT ROWID;",
            index.table(day)
        ));
    }
    tx.execute_batch(&sql).map_err(backend)
}

/// The entries of one batch's run: per index, `(key, id)` of each event written, borrowed from
/// the batch.
#[derive(Default)]
pub(super) struct Entries<'a> {
    pub(super) app: Vec<(&'a str, &'a str)>,
    pub(super) user: Vec<(&'a str, &'a str)>,
}

/// Writes `entries` as a new run of `day`, then merges runs while the newest [`FANOUT`] are of
/// one level.
pub(super) fn write(
    tx: &Transaction<'_>,
    day: u32,
    entries: Entries<'_>,
) -> Result<(), StoreError> {
    write_capped(tx, day, entries, MERGE_MAX)
}

/// [`write`], with merges of at most `cap` entries.
fn write_capped(
    tx: &Transaction<'_>,
    day: u32,
    mut entries: Entries<'_>,
    cap: i64,
) -> Result<(), StoreError> {
    let ids = entries.app.iter().chain(&entries.user).map(|&(_, id)| id);
    let (Some(min_id), Some(max_id)) = (ids.clone().min(), ids.max()) else {
        return Ok(());
    };
    let runs = runs_table(day);
    let run: i64 = tx
        .prepare_cached(&format!("SELECT COALESCE(MAX(run), 0) + 1 FROM {runs}"))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(backend)?;
    for (index, list) in [
        (Index::App, &mut entries.app),
        (Index::User, &mut entries.user),
    ] {
        list.sort_unstable();
        list.dedup();
        insert_sorted(tx, &index.table(day), run, list)?;
    }
    let n = (entries.app.len() + entries.user.len()) as i64;
    tx.prepare_cached(&format!(
        "INSERT INTO {runs} (run, level, entries, min_id, max_id) VALUES (?1, 0, ?2, ?3, ?4)"
    ))
    .and_then(|mut s| s.execute(params![run, n, min_id, max_id]))
    .map_err(backend)?;
    while merge_newest(tx, day, cap)? {}
    Ok(())
}

/// Writes `entries`, sorted, as run `run` of `table`: a row per key and [`CHUNK`] ids.
fn insert_sorted(
    tx: &Transaction<'_>,
    table: &str,
    run: i64,
    entries: &[(impl AsRef<str>, impl AsRef<str>)],
) -> Result<(), StoreError> {
    let mut chunks = Chunks::new(tx, table, run)?;
    for (key, id) in entries {
        chunks.push(key.as_ref(), id.as_ref())?;
    }
    chunks.finish()
}

/// The rows of a run being written: ids are pushed sorted by key, then id, and written a key's
/// [`CHUNK`] at a time, as a JSON array (which SQL reads with `json_each`) built as they come.
struct Chunks<'a> {
    insert: rusqlite::CachedStatement<'a>,
    run: i64,
    key: String,
    /// The row's ids so far: a JSON array without its closing bracket.
    ids: Vec<u8>,
    count: usize,
    last: String,
}

impl<'a> Chunks<'a> {
    fn new(tx: &'a Connection, table: &str, run: i64) -> Result<Self, StoreError> {
        Ok(Self {
            insert: tx
                .prepare_cached(&format!(
                    "INSERT INTO {table} (run, key, last, ids) VALUES (?1, ?2, ?3, ?4)"
                ))
                .map_err(backend)?,
            run,
            key: String::new(),
            ids: Vec::new(),
            count: 0,
            last: String::new(),
        })
    }

    fn push(&mut self, key: &str, id: &str) -> Result<(), StoreError> {
        if key != self.key || self.count >= CHUNK {
            self.flush()?;
            key.clone_into(&mut self.key);
        }
        self.ids.push(if self.count == 0 { b'[' } else { b',' });
        serde_json::to_writer(&mut self.ids, id)
            .map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))?;
        id.clone_into(&mut self.last);
        self.count += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.count == 0 {
            return Ok(());
        }
        self.ids.push(b']');
        let ids = std::str::from_utf8(&self.ids)
            .map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))?;
        self.insert
            .execute(params![self.run, self.key, self.last, ids])
            .map_err(backend)?;
        self.ids.clear();
        self.count = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<(), StoreError> {
        self.flush()
    }
}

/// Merges the newest [`FANOUT`] runs of `day` into one when they are of one level below
/// [`MAX_LEVEL`] and hold at most `cap` entries ([`MERGE_MAX`], but in tests); answers whether it
/// did.
fn merge_newest(tx: &Transaction<'_>, day: u32, cap: i64) -> Result<bool, StoreError> {
    let runs = runs_table(day);
    let newest: Vec<(i64, i64, i64)> = tx
        .prepare_cached(&format!(
            "SELECT run, level, entries FROM {runs} ORDER BY run DESC LIMIT {FANOUT}"
        ))
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(backend)?;
    let level = newest.first().map_or(MAX_LEVEL, |&(_, l, _)| l);
    let entries: i64 = newest.iter().map(|&(_, _, n)| n).sum();
    if newest.len() < FANOUT
        || level >= MAX_LEVEL
        || entries > cap
        || newest.iter().any(|&(_, l, _)| l != level)
    {
        return Ok(false);
    }
    let (top, bottom) = (newest[0].0, newest[FANOUT - 1].0);
    // The merged run keeps the newest's number, so the runs stay in the order of their batches:
    // its entries are read, the runs deleted, and the entries written back sorted under `top`,
    // above every other run (appends again).
    for index in [Index::App, Index::User] {
        let table = index.table(day);
        let mut entries: Vec<(String, String)> = tx
            .prepare_cached(&format!(
                "SELECT x.key, j.value FROM {table} x, json_each(x.ids) j \
                 WHERE x.run >= ?1 AND x.run <= ?2"
            ))
            .and_then(|mut s| {
                s.query_map(params![bottom, top], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(backend)?;
        entries.sort_unstable();
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE run >= ?1 AND run <= ?2"
        ))
        .and_then(|mut s| s.execute(params![bottom, top]))
        .map_err(backend)?;
        insert_sorted(tx, &table, top, &entries)?;
    }
    tx.execute(
        &format!(
            "UPDATE {runs} SET level = ?3, entries = ?4, \
             min_id = (SELECT MIN(min_id) FROM {runs} WHERE run >= ?2 AND run <= ?1), \
             max_id = (SELECT MAX(max_id) FROM {runs} WHERE run >= ?2 AND run <= ?1) \
             WHERE run = ?1"
        ),
        params![top, bottom, level + 1, entries],
    )
    .map_err(backend)?;
    tx.execute(
        &format!("DELETE FROM {runs} WHERE run >= ?2 AND run < ?1"),
        params![top, bottom],
    )
    .map_err(backend)?;
    Ok(true)
}

/// A run as a search sees it.
struct Run {
    run: i64,
    min_id: String,
    max_id: String,
}

/// The newest `want` rows of a day's index search, newest first by id: `page(run, want)` reads
/// at most `want` rows of one run, newest first, with ids below `before` when it is given; `id`
/// names a row's event id.
pub(super) fn search<T>(
    c: &Connection,
    day: u32,
    before: Option<&str>,
    want: usize,
    mut page: impl FnMut(i64, usize) -> Result<Vec<T>, StoreError>,
    id: impl Fn(&T) -> &str,
) -> Result<Vec<T>, StoreError> {
    let runs: Vec<Run> = c
        .prepare_cached(&format!(
            "SELECT run, min_id, max_id FROM {} ORDER BY run DESC",
            runs_table(day)
        ))
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(Run {
                    run: r.get(0)?,
                    min_id: r.get(1)?,
                    max_id: r.get(2)?,
                })
            })?
            .collect()
        })
        .map_err(read_err)?;
    let mut out: Vec<T> = Vec::new();
    for run in runs {
        if before.is_some_and(|b| run.min_id.as_str() >= b) {
            continue;
        }
        if out.len() >= want
            && out
                .get(want - 1)
                .is_some_and(|last| run.max_id.as_str() < id(last))
        {
            continue;
        }
        out.extend(page(run.run, want)?);
        out.sort_unstable_by(|a, b| id(b).cmp(id(a)));
        out.truncate(want);
    }
    Ok(out)
}

/// Gives a day written before its indexes were runs of chunks (an events table with B-tree
/// indexes by app and by user, or runs of one row per entry) its runs: one top-level run of all
/// its events. The old indexes go.
pub(super) fn adopt_day(c: &Connection, day: u32, events: &str) -> Result<(), StoreError> {
    let has_runs: Option<String> = c
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [Index::App.table(day)],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    if has_runs.is_some() {
        return Ok(());
    }
    let name = day_name(day);
    let tx = c.unchecked_transaction().map_err(backend)?;
    tx.execute_batch(&format!(
        "DROP INDEX IF EXISTS {events}_by_app; DROP INDEX IF EXISTS {events}_by_user;
         DROP TABLE IF EXISTS by_app_{name}; DROP TABLE IF EXISTS by_user_{name};
         DROP TABLE IF EXISTS runs_{name};"
    ))
    .map_err(backend)?;
    create(&tx, day)?;
    let mut entries = 0i64;
    for index in [Index::App, Index::User] {
        let mut chunks = Chunks::new(&tx, &index.table(day), 1)?;
        let mut read = tx
            .prepare(&format!(
                "SELECT {column}, id FROM {events} WHERE {column} IS NOT NULL \
                 ORDER BY {column}, id",
                column = index.column(),
            ))
            .map_err(backend)?;
        let mut rows = read.query([]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let (key, id): (String, String) =
                (row.get(0).map_err(backend)?, row.get(1).map_err(backend)?);
            chunks.push(&key, &id)?;
            entries += 1;
        }
        chunks.finish()?;
    }
    tx.execute(
        &format!(
            "INSERT INTO {} (run, level, entries, min_id, max_id) \
             SELECT 1, {MAX_LEVEL}, ?1, MIN(id), MAX(id) FROM {events} HAVING COUNT(*) > 0",
            runs_table(day),
        ),
        [entries],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)
}

/// Drops a day's run tables.
pub(super) fn drop_day(tx: &Connection, day: u32) -> Result<(), StoreError> {
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
        runs_table(day),
        Index::App.table(day),
        Index::User.table(day)
    ))
    .map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_with(batches: usize) -> Connection {
        day_capped(batches, MERGE_MAX)
    }

    fn day_capped(batches: usize, cap: i64) -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        let tx = c.transaction().unwrap();
        create(&tx, 1).unwrap();
        for b in 0..batches {
            let apps: Vec<(String, String)> = (0..3)
                .map(|i| (format!("app{}", i % 2), format!("evt_{b:04}_{i}")))
                .collect();
            let entries = Entries {
                app: apps
                    .iter()
                    .map(|(k, id)| (k.as_str(), id.as_str()))
                    .collect(),
                user: vec![("ada", &apps[0].1)],
            };
            write_capped(&tx, 1, entries, cap).unwrap();
        }
        tx.commit().unwrap();
        c
    }

    fn levels(c: &Connection) -> Vec<i64> {
        c.prepare("SELECT level FROM runs_19700102 ORDER BY run")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Runs merge like a counter in base FANOUT: FANOUT level-0 runs become one of level 1, and
    /// so on.
    #[test]
    fn runs_merge_by_level() {
        let c = day_with(FANOUT * FANOUT + 3);
        assert_eq!(levels(&c), [2, 0, 0, 0]);
        let entries: i64 = c
            .query_row(
                "SELECT entries FROM runs_19700102 ORDER BY run LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(entries, 4 * (FANOUT * FANOUT) as i64);
        let entries: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM app_runs_19700102 x, json_each(x.ids)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(entries, 3 * (FANOUT * FANOUT + 3) as i64);
        // The merged run holds app0's 2 ids a batch in rows of CHUNK.
        let rows: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM app_runs_19700102 WHERE key = 'app0' \
                 AND run = (SELECT MIN(run) FROM runs_19700102)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, (2 * FANOUT * FANOUT).div_ceil(CHUNK) as i64);
    }

    /// Runs whose merge would exceed the cap stay as they are.
    #[test]
    fn merges_are_capped() {
        // 4 entries a batch: FANOUT level-1 runs hold FANOUT * FANOUT * 4, over 1,000.
        let c = day_capped(FANOUT * FANOUT + 1, 1000);
        let mut expected = vec![1; FANOUT];
        expected.push(0);
        assert_eq!(levels(&c), expected);
    }

    /// Keys and ids of any text survive a run's JSON rows, written and merged.
    #[test]
    fn any_text_survives_the_rows() {
        let odd = ["evt_\"q\"", "evt_\\b", "evt_\u{7f}", "evt_é🙂", "evt_,]"];
        let mut c = Connection::open_in_memory().unwrap();
        let tx = c.transaction().unwrap();
        create(&tx, 1).unwrap();
        for b in 0..FANOUT {
            let ids: Vec<String> = odd.iter().map(|id| format!("{id}{b:02}")).collect();
            let entries = Entries {
                app: ids.iter().map(|id| ("k\"[\u{1}", id.as_str())).collect(),
                user: Vec::new(),
            };
            write(&tx, 1, entries).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(levels(&c), [1]);
        let mut got: Vec<String> = c
            .prepare(
                "SELECT j.value FROM app_runs_19700102 x, json_each(x.ids) j \
                 WHERE x.key = 'k\"[' || char(1)",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        got.sort();
        let mut want: Vec<String> = (0..FANOUT)
            .flat_map(|b| odd.iter().map(move |id| format!("{id}{b:02}")))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    /// A search pages through every run newest first, without gaps or repeats, whatever the
    /// page size.
    #[test]
    fn a_search_pages_across_runs() {
        let c = day_with(FANOUT * FANOUT + 3);
        let all: Vec<String> = (0..FANOUT * FANOUT + 3)
            .rev()
            .flat_map(|b| [format!("evt_{b:04}_2"), format!("evt_{b:04}_0")])
            .collect();
        for want in [1, 7, 50, 1000] {
            let mut got = Vec::new();
            let mut before: Option<String> = None;
            loop {
                let page = search(
                    &c,
                    1,
                    before.as_deref(),
                    want,
                    |run, want| {
                        let mut s = c
                            .prepare(
                                "SELECT j.value FROM app_runs_19700102 x, json_each(x.ids) j \
                                 WHERE x.run = ?1 AND x.key = 'app0' AND j.value < ?2 \
                                 ORDER BY x.last DESC, j.value DESC LIMIT ?3",
                            )
                            .unwrap();
                        let rows = s
                            .query_map(
                                params![run, before.as_deref().unwrap_or("\u{7f}"), want as i64],
                                |r| r.get::<_, String>(0),
                            )
                            .unwrap();
                        Ok(rows.collect::<Result<_, _>>().unwrap())
                    },
                    String::as_str,
                )
                .unwrap();
                if page.is_empty() {
                    break;
                }
                before = page.last().cloned();
                got.extend(page);
            }
            assert_eq!(got, all, "pages of {want}");
        }
    }
}
