//! The SQL for records every backend stores the same way (roles, tenants: see
//! [`portcullis_domain::table`]); what they hold and the rules of their writes are the domain's.

use deadpool_postgres::GenericClient;
use portcullis_domain::table::{Cell, CellKind, SimpleTable};
use portcullis_domain::{Change, PageRequest, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{db, write};
use crate::rows::{get, limit};
use crate::{PostgresStore, begin, execute, query, query_opt};

/// A cell as a bind value.
fn bind(cell: &Cell) -> &(dyn ToSql + Sync) {
    match cell {
        Cell::Text(s) => s,
        Cell::OptText(s) => s,
        Cell::Millis(ms) => ms,
    }
}

fn binds(cells: &[Cell]) -> Vec<&(dyn ToSql + Sync)> {
    cells.iter().map(bind).collect()
}

/// Reads a row of `R`'s columns, in order, as a record.
fn from_row<R: SimpleTable>(row: &Row) -> Result<R, StoreError> {
    let cells = R::COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            CellKind::Text => get(row, i).map(Cell::Text),
            CellKind::OptText => get(row, i).map(Cell::OptText),
            CellKind::Millis => get(row, i).map(Cell::Millis),
        })
        .collect::<Result<Vec<_>, _>>()?;
    R::from_cells(cells)
}

impl PostgresStore {
    /// Reads one record by its key.
    pub(crate) async fn record<R: SimpleTable>(&self, key: &str) -> Result<Option<R>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "SELECT {} FROM {} WHERE {} = $1",
                R::column_list(),
                R::TABLE,
                R::key_column()
            ),
            &[&key],
        )
        .await
        .map_err(db)?
        .map(|row| from_row(&row))
        .transpose()
    }

    /// Lists records by key.
    pub(crate) async fn records<R: SimpleTable>(
        &self,
        page: &PageRequest,
    ) -> Result<Vec<R>, StoreError> {
        let client = self.client().await?;
        let after = page.after.as_deref().unwrap_or_default();
        let key = R::key_column();
        query(
            &client,
            &format!(
                "SELECT {} FROM {} WHERE {key} > $1 ORDER BY {key} LIMIT $2",
                R::column_list(),
                R::TABLE
            ),
            &[&after, &limit(page.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Inserts a record in its own transaction.
    pub(crate) async fn insert_record<R: SimpleTable>(&self, record: &R) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = insert_tx(&tx, record).await?;
        self.commit(tx, changes).await
    }

    /// Updates a record in its own transaction.
    pub(crate) async fn update_record<R: SimpleTable>(&self, record: &R) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = update_tx(&tx, record).await?;
        self.commit(tx, changes).await
    }
}

/// Inserts a record within a transaction; the changes to publish after it commits.
pub(crate) async fn insert_tx<R: SimpleTable, C: GenericClient>(
    c: &C,
    record: &R,
) -> Result<Vec<Change>, StoreError> {
    let cells = record.to_cells()?;
    let placeholders = (1..=cells.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    execute(
        c,
        &format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            R::TABLE,
            R::column_list()
        ),
        &binds(&cells),
    )
    .await
    .map_err(write(R::ENTITY))?;
    Ok(R::inserted())
}

/// Updates a record within a transaction; the changes to publish after it commits.
pub(crate) async fn update_tx<R: SimpleTable, C: GenericClient>(
    c: &C,
    record: &R,
) -> Result<Vec<Change>, StoreError> {
    let cells = record.update_cells()?;
    let set = R::COLUMNS
        .iter()
        .filter(|c| c.updated)
        .enumerate()
        .map(|(i, c)| format!("{} = ${}", c.name, i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let n = execute(
        c,
        &format!(
            "UPDATE {} SET {set} WHERE {} = $1",
            R::TABLE,
            R::key_column()
        ),
        &binds(&cells),
    )
    .await
    .map_err(db)?;
    R::written(n > 0)
}

/// Deletes a record by its key within a transaction, mapping a database error with `on_error`;
/// `NotFound` when there is none.
pub(crate) async fn delete_tx<R: SimpleTable, C: GenericClient>(
    c: &C,
    key: &str,
    on_error: impl Fn(tokio_postgres::Error) -> StoreError,
) -> Result<Vec<Change>, StoreError> {
    let n = execute(
        c,
        &format!("DELETE FROM {} WHERE {} = $1", R::TABLE, R::key_column()),
        &[&key],
    )
    .await
    .map_err(on_error)?;
    R::written(n > 0)
}
