//! The SQL for records every backend stores the same way (roles, tenants: see
//! [`portcullis_domain::table`]); what they hold and the rules of their writes are the domain's.

use portcullis_domain::table::{Cell, CellKind, SimpleTable};
use portcullis_domain::{Change, PageRequest, StoreError};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params_from_iter};

use crate::rows::read_err;
use crate::{SqliteStore, backend, write_error};

fn value(cell: Cell) -> Value {
    match cell {
        Cell::Text(s) | Cell::OptText(Some(s)) => Value::Text(s),
        Cell::OptText(None) => Value::Null,
        Cell::Millis(ms) => Value::Integer(ms),
    }
}

fn values(cells: Vec<Cell>) -> impl Iterator<Item = Value> {
    cells.into_iter().map(value)
}

/// Reads a row of `R`'s columns, in order.
fn cells<R: SimpleTable>(row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Cell>> {
    R::COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            CellKind::Text => row.get(i).map(Cell::Text),
            CellKind::OptText => row.get(i).map(Cell::OptText),
            CellKind::Millis => row.get(i).map(Cell::Millis),
        })
        .collect()
}

impl SqliteStore {
    /// Reads one record by its key.
    pub(crate) async fn record<R: SimpleTable>(&self, key: &str) -> Result<Option<R>, StoreError> {
        let key = key.to_owned();
        let cells = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {} FROM {} WHERE {} = ?1",
                    R::column_list(),
                    R::TABLE,
                    R::key_column()
                ))
                .and_then(|mut s| s.query_row([&key], cells::<R>).optional())
                .map_err(read_err)
            })
            .await?;
        cells.map(R::from_cells).transpose()
    }

    /// Lists records by key.
    pub(crate) async fn records<R: SimpleTable>(
        &self,
        page: &PageRequest,
    ) -> Result<Vec<R>, StoreError> {
        let key = R::key_column();
        self.read_page(
            format!(
                "SELECT {} FROM {} WHERE {key} > ?1 ORDER BY {key} LIMIT ?2",
                R::column_list(),
                R::TABLE
            ),
            page,
            cells::<R>,
        )
        .await?
        .into_iter()
        .map(R::from_cells)
        .collect()
    }

    /// Inserts a record in its own transaction.
    pub(crate) async fn insert_record<R: SimpleTable + Clone>(
        &self,
        record: &R,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |tx| Ok(((), insert_tx(tx, &record)?)))
            .await
    }

    /// Updates a record in its own transaction.
    pub(crate) async fn update_record<R: SimpleTable + Clone>(
        &self,
        record: &R,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |tx| Ok(((), update_tx(tx, &record)?)))
            .await
    }
}

/// Inserts a record within a transaction; the changes to publish after it commits.
pub(crate) fn insert_tx<R: SimpleTable>(
    tx: &Transaction<'_>,
    record: &R,
) -> Result<Vec<Change>, StoreError> {
    let placeholders = (1..=R::COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.execute(
        &format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            R::TABLE,
            R::column_list()
        ),
        params_from_iter(values(record.to_cells()?)),
    )
    .map_err(write_error(R::ENTITY))?;
    Ok(R::inserted())
}

/// Updates a record within a transaction; the changes to publish after it commits.
pub(crate) fn update_tx<R: SimpleTable>(
    tx: &Transaction<'_>,
    record: &R,
) -> Result<Vec<Change>, StoreError> {
    let set = R::COLUMNS
        .iter()
        .filter(|c| c.updated)
        .enumerate()
        .map(|(i, c)| format!("{} = ?{}", c.name, i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let n = tx
        .execute(
            &format!(
                "UPDATE {} SET {set} WHERE {} = ?1",
                R::TABLE,
                R::key_column()
            ),
            params_from_iter(values(record.update_cells()?)),
        )
        .map_err(backend)?;
    R::written(n > 0)
}

/// Deletes a record by its key within a transaction; `NotFound` when there is none.
pub(crate) fn delete_tx<R: SimpleTable>(
    tx: &Transaction<'_>,
    key: &str,
) -> Result<Vec<Change>, StoreError> {
    let n = tx
        .execute(
            &format!("DELETE FROM {} WHERE {} = ?1", R::TABLE, R::key_column()),
            [key],
        )
        .map_err(backend)?;
    R::written(n > 0)
}
