//! The SQL for records every backend stores the same way (roles, tenants: see
//! [`portcullis_domain::table`]); what they hold, their CRUD and the rules of their writes are the
//! domain's.

use async_trait::async_trait;
use portcullis_domain::table::{Cell, CellKind, Table, TableStore};
use portcullis_domain::{Change, PageRequest, StoreError};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params_from_iter};

use crate::rows::{limit, read_err};
use crate::{SqliteStore, backend, write_error};

fn values(cells: Vec<Cell>) -> impl Iterator<Item = Value> {
    cells.into_iter().map(|cell| match cell {
        Cell::Text(s) | Cell::OptText(Some(s)) => Value::Text(s),
        Cell::OptText(None) => Value::Null,
        Cell::Millis(ms) => Value::Integer(ms),
    })
}

/// Reads a row of the table's columns, in order.
fn cells(table: &Table, row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Cell>> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            CellKind::Text => row.get(i).map(Cell::Text),
            CellKind::OptText => row.get(i).map(Cell::OptText),
            CellKind::Millis => row.get(i).map(Cell::Millis),
        })
        .collect()
}

#[async_trait]
impl TableStore for SqliteStore {
    async fn row(&self, table: &'static Table, key: &str) -> Result<Option<Vec<Cell>>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM {} WHERE {} = ?1",
                table.column_list(),
                table.name,
                table.key_column()
            ))
            .and_then(|mut s| s.query_row([&key], |r| cells(table, r)).optional())
            .map_err(read_err)
        })
        .await
    }

    async fn rows(
        &self,
        table: &'static Table,
        page: &PageRequest,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let page = page.clone();
        self.read(move |c| {
            let key = table.key_column();
            c.prepare_cached(&format!(
                "SELECT {} FROM {} WHERE {key} > ?1 ORDER BY {key} LIMIT ?2",
                table.column_list(),
                table.name
            ))
            .and_then(|mut s| {
                s.query_map(
                    rusqlite::params![page.after.unwrap_or_default(), limit(page.limit)],
                    |r| cells(table, r),
                )?
                .collect()
            })
            .map_err(read_err)
        })
        .await
    }

    async fn insert_row(&self, table: &'static Table, cells: Vec<Cell>) -> Result<(), StoreError> {
        self.write(move |tx| Ok(((), insert_tx(tx, table, cells)?)))
            .await
    }

    async fn update_row(&self, table: &'static Table, cells: Vec<Cell>) -> Result<(), StoreError> {
        self.write(move |tx| Ok(((), update_tx(tx, table, cells)?)))
            .await
    }

    async fn delete_row(&self, table: &'static Table, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |tx| Ok(((), delete_tx(tx, table, &key)?)))
            .await
    }
}

impl portcullis_domain::ResourceStore for SqliteStore {}

impl portcullis_domain::SsoStore for SqliteStore {}

/// Inserts a row (all its cells) within a transaction; the changes to publish after it commits.
pub(crate) fn insert_tx(
    tx: &Transaction<'_>,
    table: &Table,
    cells: Vec<Cell>,
) -> Result<Vec<Change>, StoreError> {
    let placeholders = (1..=table.columns.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.execute(
        &format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            table.name,
            table.column_list()
        ),
        params_from_iter(values(cells)),
    )
    .map_err(write_error(table.entity))?;
    Ok(table.inserted())
}

/// Updates a row (its key, then the cells an update rewrites) within a transaction; the changes to
/// publish after it commits.
pub(crate) fn update_tx(
    tx: &Transaction<'_>,
    table: &Table,
    cells: Vec<Cell>,
) -> Result<Vec<Change>, StoreError> {
    let set = table
        .updated_columns()
        .enumerate()
        .map(|(i, c)| format!("{} = ?{}", c.name, i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let n = tx
        .execute(
            &format!(
                "UPDATE {} SET {set} WHERE {} = ?1",
                table.name,
                table.key_column()
            ),
            params_from_iter(values(cells)),
        )
        .map_err(write_error(table.entity))?;
    table.written(n > 0)
}

/// Deletes a row by its key within a transaction; `NotFound` when there is none.
pub(crate) fn delete_tx(
    tx: &Transaction<'_>,
    table: &Table,
    key: &str,
) -> Result<Vec<Change>, StoreError> {
    let n = tx
        .execute(
            &format!(
                "DELETE FROM {} WHERE {} = ?1",
                table.name,
                table.key_column()
            ),
            [key],
        )
        .map_err(backend)?;
    table.written(n > 0)
}
