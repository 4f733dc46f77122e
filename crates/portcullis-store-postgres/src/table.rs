//! The SQL for records every backend stores the same way (roles, tenants: see
//! [`portcullis_domain::table`]); what they hold, their CRUD and the rules of their writes are the
//! domain's.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_domain::table::{Cell, CellKind, Table, TableStore};
use portcullis_domain::{Change, PageRequest, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{db, write};
use crate::rows::{get, limit};
use crate::{PostgresStore, begin, execute, query, query_opt};

fn binds(cells: &[Cell]) -> Vec<&(dyn ToSql + Sync)> {
    cells
        .iter()
        .map(|cell| -> &(dyn ToSql + Sync) {
            match cell {
                Cell::Text(s) => s,
                Cell::OptText(s) => s,
                Cell::Millis(ms) => ms,
            }
        })
        .collect()
}

/// Reads a row of the table's columns, in order.
fn cells(table: &Table, row: &Row) -> Result<Vec<Cell>, StoreError> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            CellKind::Text => get(row, i).map(Cell::Text),
            CellKind::OptText => get(row, i).map(Cell::OptText),
            CellKind::Millis => get(row, i).map(Cell::Millis),
        })
        .collect()
}

#[async_trait]
impl TableStore for PostgresStore {
    async fn row(&self, table: &'static Table, key: &str) -> Result<Option<Vec<Cell>>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "SELECT {} FROM {} WHERE {} = $1",
                table.column_list(),
                table.name,
                table.key_column()
            ),
            &[&key],
        )
        .await
        .map_err(db)?
        .map(|row| cells(table, &row))
        .transpose()
    }

    async fn rows(
        &self,
        table: &'static Table,
        page: &PageRequest,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let client = self.client().await?;
        let after = page.after.as_deref().unwrap_or_default();
        let key = table.key_column();
        query(
            &client,
            &format!(
                "SELECT {} FROM {} WHERE {key} > $1 ORDER BY {key} LIMIT $2",
                table.column_list(),
                table.name
            ),
            &[&after, &limit(page.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|row| cells(table, row))
        .collect()
    }

    async fn insert_row(&self, table: &'static Table, cells: Vec<Cell>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = insert_tx(&tx, table, &cells).await?;
        self.commit(tx, changes).await
    }

    async fn update_row(&self, table: &'static Table, cells: Vec<Cell>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = update_tx(&tx, table, &cells).await?;
        self.commit(tx, changes).await
    }

    async fn delete_row(&self, table: &'static Table, key: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = delete_tx(&tx, table, key, db).await?;
        self.commit(tx, changes).await
    }
}

impl portcullis_domain::ResourceStore for PostgresStore {}

impl portcullis_domain::SsoStore for PostgresStore {}

/// Inserts a row (all its cells) within a transaction; the changes to publish after it commits.
pub(crate) async fn insert_tx<C: GenericClient>(
    c: &C,
    table: &Table,
    cells: &[Cell],
) -> Result<Vec<Change>, StoreError> {
    let placeholders = (1..=table.columns.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    execute(
        c,
        &format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            table.name,
            table.column_list()
        ),
        &binds(cells),
    )
    .await
    .map_err(write(table.entity))?;
    Ok(table.inserted())
}

/// Updates a row (its key, then the cells an update rewrites) within a transaction; the changes to
/// publish after it commits.
pub(crate) async fn update_tx<C: GenericClient>(
    c: &C,
    table: &Table,
    cells: &[Cell],
) -> Result<Vec<Change>, StoreError> {
    let set = table
        .updated_columns()
        .enumerate()
        .map(|(i, c)| format!("{} = ${}", c.name, i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let n = execute(
        c,
        &format!(
            "UPDATE {} SET {set} WHERE {} = $1",
            table.name,
            table.key_column()
        ),
        &binds(cells),
    )
    .await
    .map_err(write(table.entity))?;
    table.written(n > 0)
}

/// Deletes a row by its key within a transaction, mapping a database error with `on_error`;
/// `NotFound` when there is none.
pub(crate) async fn delete_tx<C: GenericClient>(
    c: &C,
    table: &Table,
    key: &str,
    on_error: impl Fn(tokio_postgres::Error) -> StoreError,
) -> Result<Vec<Change>, StoreError> {
    let n = execute(
        c,
        &format!(
            "DELETE FROM {} WHERE {} = $1",
            table.name,
            table.key_column()
        ),
        &[&key],
    )
    .await
    .map_err(on_error)?;
    table.written(n > 0)
}
