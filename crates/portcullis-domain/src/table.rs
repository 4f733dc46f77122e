//! Records that every backend stores the same way: roles and tenants.
//!
//! Each lives in one table keyed by one text column, and references nothing, so that inserting,
//! reading, listing and updating one is the same in every backend but for the SQL dialect. This
//! module says once what a backend needs to know of them — the [`Table`], its columns, the values
//! to bind and how a record is built back from them — and the rules of their writes (which error,
//! which changes to publish); [`DirectoryStore`](crate::DirectoryStore) does their CRUD with it
//! over a backend's [`TableStore`], the only part a backend writes: the SQL, once for any table.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{
    Change, Ciphertext, PageRequest, ResourceRecord, Role, ScopeDef, SsoConnectionRecord,
    SsoSettings, StoreError, TenantRecord, Timestamp,
};

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// Text, never null.
    Text,
    /// Text or null.
    OptText,
    /// A timestamp as milliseconds since the epoch (a 64-bit integer).
    Millis,
}

/// One column's value, as bound or as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// A [`CellKind::Text`] value.
    Text(String),
    /// A [`CellKind::OptText`] value.
    OptText(Option<String>),
    /// A [`CellKind::Millis`] value.
    Millis(i64),
}

/// A column of a [`SimpleTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// How it is stored.
    pub kind: CellKind,
    /// Whether an update rewrites it (the key and the creation time are written once).
    pub updated: bool,
}

const fn column(name: &'static str, kind: CellKind, updated: bool) -> Column {
    Column {
        name,
        kind,
        updated,
    }
}

/// A table of records that references nothing, keyed by its first column.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// What its errors name (`NotFound`, `AlreadyExists`).
    pub entity: &'static str,
    /// The table's name.
    pub name: &'static str,
    /// Its columns, the key first.
    pub columns: &'static [Column],
    /// What every write publishes (nothing for roles and tenants: what users may do depends on
    /// their names, not on these rows' other columns).
    pub publishes: Option<Change>,
}

impl Table {
    /// The key column's name.
    pub fn key_column(&self) -> &'static str {
        self.columns[0].name
    }

    /// Every column's name, comma separated, in order.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The columns an update rewrites, in order (bound after the key).
    pub fn updated_columns(&self) -> impl Iterator<Item = &'static Column> {
        self.columns.iter().filter(|c| c.updated)
    }

    /// The changes an insert publishes (for roles and tenants none: nobody holds a new role or
    /// belongs to a new tenant).
    pub fn inserted(&self) -> Vec<Change> {
        self.publishes.iter().cloned().collect()
    }

    /// The outcome of an update (or a delete) addressed to one row, by whether it `touched` one,
    /// and the changes it publishes.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it touched none.
    pub fn written(&self, touched: bool) -> Result<Vec<Change>, StoreError> {
        StoreError::found(touched, self.entity)?;
        Ok(self.publishes.iter().cloned().collect())
    }
}

/// A record kept in a [`Table`].
pub trait SimpleTable: Sized + Send + Sync {
    /// Its table.
    const TABLE: &'static Table;

    /// Its key.
    fn key(&self) -> &str;
    /// The values of its columns, in the order of the table's columns.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a value cannot be encoded.
    fn to_cells(&self) -> Result<Vec<Cell>, StoreError>;
    /// The record, from the values of its columns read in the order of the table's columns.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a stored value cannot be read.
    fn from_cells(cells: Vec<Cell>) -> Result<Self, StoreError>;

    /// The key's value followed by the values an update rewrites, in column order (what an update
    /// binds).
    ///
    /// # Errors
    /// As [`Self::to_cells`].
    fn update_cells(&self) -> Result<Vec<Cell>, StoreError> {
        let cells = self.to_cells()?;
        Ok(cells
            .into_iter()
            .zip(Self::TABLE.columns)
            .enumerate()
            .filter(|(i, (_, c))| *i == 0 || c.updated)
            .map(|(_, (cell, _))| cell)
            .collect())
    }
}

/// The SQL a backend runs for any [`Table`]: all that differs from one backend to another. Each
/// write is one transaction, with the outcome and the changes the [`Table`] says.
#[async_trait]
pub trait TableStore: Send + Sync {
    /// Reads the row with this key, its cells in column order.
    async fn row(&self, table: &'static Table, key: &str) -> Result<Option<Vec<Cell>>, StoreError>;
    /// Lists rows by key.
    async fn rows(
        &self,
        table: &'static Table,
        page: &PageRequest,
    ) -> Result<Vec<Vec<Cell>>, StoreError>;
    /// Inserts a row (all its cells). `AlreadyExists` when the key is taken.
    async fn insert_row(&self, table: &'static Table, cells: Vec<Cell>) -> Result<(), StoreError>;
    /// Updates a row (its key, then the cells of the columns an update rewrites). `NotFound`.
    async fn update_row(&self, table: &'static Table, cells: Vec<Cell>) -> Result<(), StoreError>;
    /// Deletes the row with this key (for tables nothing references). `NotFound`.
    async fn delete_row(&self, table: &'static Table, key: &str) -> Result<(), StoreError>;
}

/// Inserts a record.
///
/// # Errors
/// As [`TableStore::insert_row`].
pub async fn insert<S, R>(store: &S, record: &R) -> Result<(), StoreError>
where
    S: TableStore + ?Sized,
    R: SimpleTable,
{
    store.insert_row(R::TABLE, record.to_cells()?).await
}

/// Reads the record with this key.
///
/// # Errors
/// As [`TableStore::row`], or a row that cannot be read.
pub async fn get<S, R>(store: &S, key: &str) -> Result<Option<R>, StoreError>
where
    S: TableStore + ?Sized,
    R: SimpleTable,
{
    store
        .row(R::TABLE, key)
        .await?
        .map(R::from_cells)
        .transpose()
}

/// Lists records by key.
///
/// # Errors
/// As [`TableStore::rows`], or a row that cannot be read.
pub async fn list<S, R>(store: &S, page: &PageRequest) -> Result<Vec<R>, StoreError>
where
    S: TableStore + ?Sized,
    R: SimpleTable,
{
    store
        .rows(R::TABLE, page)
        .await?
        .into_iter()
        .map(R::from_cells)
        .collect()
}

/// Updates a record.
///
/// # Errors
/// As [`TableStore::update_row`].
pub async fn update<S, R>(store: &S, record: &R) -> Result<(), StoreError>
where
    S: TableStore + ?Sized,
    R: SimpleTable,
{
    store.update_row(R::TABLE, record.update_cells()?).await
}

/// Reads a record's cells in order, checking each is of the kind expected.
struct Cells<R> {
    cells: std::vec::IntoIter<Cell>,
    _record: std::marker::PhantomData<R>,
}

impl<R: SimpleTable> Cells<R> {
    fn new(cells: Vec<Cell>) -> Self {
        Self {
            cells: cells.into_iter(),
            _record: std::marker::PhantomData,
        }
    }

    fn unreadable(what: &str) -> StoreError {
        StoreError::Backend(format!(
            "a stored {} cannot be read: {what}",
            R::TABLE.entity
        ))
    }

    fn text(&mut self) -> Result<String, StoreError> {
        match self.cells.next() {
            Some(Cell::Text(s)) => Ok(s),
            other => Err(Self::unreadable(&format!("expected text, found {other:?}"))),
        }
    }

    fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.cells.next() {
            Some(Cell::OptText(s)) => Ok(s),
            other => Err(Self::unreadable(&format!(
                "expected optional text, found {other:?}"
            ))),
        }
    }

    fn timestamp(&mut self) -> Result<Timestamp, StoreError> {
        match self.cells.next() {
            Some(Cell::Millis(ms)) => Ok(Timestamp::from_millis(ms)),
            other => Err(Self::unreadable(&format!(
                "expected a timestamp, found {other:?}"
            ))),
        }
    }

    fn attributes(&mut self) -> Result<Map<String, Value>, StoreError> {
        let text = self.text()?;
        serde_json::from_str(&text).map_err(|e| Self::unreadable(&e.to_string()))
    }
}

fn encode(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

impl SimpleTable for Role {
    const TABLE: &'static Table = &Table {
        entity: "role",
        name: "roles",
        columns: &[
            column("name", CellKind::Text, false),
            column("description", CellKind::OptText, true),
            column("created_at", CellKind::Millis, false),
            column("updated_at", CellKind::Millis, true),
        ],
        publishes: None,
    };

    fn key(&self) -> &str {
        &self.name
    }

    fn to_cells(&self) -> Result<Vec<Cell>, StoreError> {
        Ok(vec![
            Cell::Text(self.name.clone()),
            Cell::OptText(self.description.clone()),
            Cell::Millis(self.created_at.as_millis()),
            Cell::Millis(self.updated_at.as_millis()),
        ])
    }

    fn from_cells(cells: Vec<Cell>) -> Result<Self, StoreError> {
        let mut c = Cells::<Self>::new(cells);
        Ok(Self {
            name: c.text()?,
            description: c.opt_text()?,
            created_at: c.timestamp()?,
            updated_at: c.timestamp()?,
        })
    }
}

impl Role {
    /// Refuses to delete a role that `holders` user assignments (held across the deployment or
    /// within a tenant) still hold.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `holders` is not zero.
    pub fn check_unheld(name: &str, holders: i64) -> Result<(), StoreError> {
        if holders > 0 {
            return Err(StoreError::Conflict(format!(
                "role {name} is still held by {holders} user assignment(s); remove it from them first"
            )));
        }
        Ok(())
    }

    /// The error for a role delete that the database refused because a user was given the role
    /// after [`Role::check_unheld`] counted its holders: it is in use after all.
    pub fn held_meanwhile(name: &str) -> StoreError {
        StoreError::Conflict(format!(
            "role {name} is still held by a user; remove it from them first"
        ))
    }
}

impl SimpleTable for TenantRecord {
    const TABLE: &'static Table = &Table {
        entity: "tenant",
        name: "tenants",
        columns: &[
            column("id", CellKind::Text, false),
            column("name", CellKind::Text, true),
            column("attributes", CellKind::Text, true),
            column("created_at", CellKind::Millis, false),
            column("updated_at", CellKind::Millis, true),
        ],
        publishes: None,
    };

    fn key(&self) -> &str {
        &self.id
    }

    fn to_cells(&self) -> Result<Vec<Cell>, StoreError> {
        Ok(vec![
            Cell::Text(self.id.clone()),
            Cell::Text(self.name.clone()),
            Cell::Text(encode(&self.attributes)?),
            Cell::Millis(self.created_at.as_millis()),
            Cell::Millis(self.updated_at.as_millis()),
        ])
    }

    fn from_cells(cells: Vec<Cell>) -> Result<Self, StoreError> {
        let mut c = Cells::<Self>::new(cells);
        Ok(Self {
            id: c.text()?,
            name: c.text()?,
            attributes: c.attributes()?,
            created_at: c.timestamp()?,
            updated_at: c.timestamp()?,
        })
    }
}

impl TenantRecord {
    /// What deleting a tenant publishes: each of its members (whose effective roles change) and
    /// each of its connections, deleted with it.
    pub fn deleted(members: Vec<String>, connections: Vec<Change>) -> Vec<Change> {
        members
            .into_iter()
            .map(Change::User)
            .chain(connections)
            .collect()
    }
}

impl SimpleTable for ResourceRecord {
    const TABLE: &'static Table = &Table {
        entity: "resource",
        name: "resources",
        columns: &[
            column("id", CellKind::Text, false),
            column("uri", CellKind::Text, true),
            column("name", CellKind::Text, true),
            column("description", CellKind::OptText, true),
            column("scopes", CellKind::Text, true),
            column("created_at", CellKind::Millis, false),
            column("updated_at", CellKind::Millis, true),
        ],
        publishes: Some(Change::Resources),
    };

    fn key(&self) -> &str {
        &self.id
    }

    fn to_cells(&self) -> Result<Vec<Cell>, StoreError> {
        Ok(vec![
            Cell::Text(self.id.clone()),
            Cell::Text(self.uri.clone()),
            Cell::Text(self.name.clone()),
            Cell::OptText(self.description.clone()),
            Cell::Text(encode(&self.scopes)?),
            Cell::Millis(self.created_at.as_millis()),
            Cell::Millis(self.updated_at.as_millis()),
        ])
    }

    fn from_cells(cells: Vec<Cell>) -> Result<Self, StoreError> {
        let mut c = Cells::<Self>::new(cells);
        Ok(Self {
            id: c.text()?,
            uri: c.text()?,
            name: c.text()?,
            description: c.opt_text()?,
            scopes: {
                let text = c.text()?;
                serde_json::from_str::<Vec<ScopeDef>>(&text)
                    .map_err(|e| Cells::<Self>::unreadable(&e.to_string()))?
            },
            created_at: c.timestamp()?,
            updated_at: c.timestamp()?,
        })
    }
}

impl SimpleTable for SsoConnectionRecord {
    const TABLE: &'static Table = &Table {
        entity: "SSO connection",
        name: "sso_connections",
        columns: &[
            column("id", CellKind::Text, false),
            column("name", CellKind::Text, true),
            column("issuer", CellKind::Text, true),
            column("client_id", CellKind::Text, true),
            column("client_secret", CellKind::OptText, true),
            column("settings", CellKind::Text, true),
            column("created_at", CellKind::Millis, false),
            column("updated_at", CellKind::Millis, true),
        ],
        publishes: None,
    };

    fn key(&self) -> &str {
        &self.id
    }

    fn to_cells(&self) -> Result<Vec<Cell>, StoreError> {
        Ok(vec![
            Cell::Text(self.id.clone()),
            Cell::Text(self.name.clone()),
            Cell::Text(self.issuer.clone()),
            Cell::Text(self.client_id.clone()),
            Cell::OptText(self.client_secret.as_ref().map(sealed_text)),
            Cell::Text(encode(&self.settings)?),
            Cell::Millis(self.created_at.as_millis()),
            Cell::Millis(self.updated_at.as_millis()),
        ])
    }

    fn from_cells(cells: Vec<Cell>) -> Result<Self, StoreError> {
        let mut c = Cells::<Self>::new(cells);
        Ok(Self {
            id: c.text()?,
            name: c.text()?,
            issuer: c.text()?,
            client_id: c.text()?,
            client_secret: match c.opt_text()? {
                Some(t) => Some(
                    sealed_from_text(&t)
                        .ok_or_else(|| Cells::<Self>::unreadable("a malformed sealed secret"))?,
                ),
                None => None,
            },
            settings: {
                let text = c.text()?;
                serde_json::from_str::<SsoSettings>(&text)
                    .map_err(|e| Cells::<Self>::unreadable(&e.to_string()))?
            },
            created_at: c.timestamp()?,
            updated_at: c.timestamp()?,
        })
    }
}

/// A sealed secret in a text column: `<key id>:<hex of the sealed bytes>`.
fn sealed_text(c: &Ciphertext) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{}:", c.key_id);
    for b in &c.bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn sealed_from_text(t: &str) -> Option<Ciphertext> {
    let (key, hex) = t.split_once(':')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Ciphertext {
        key_id: key.parse().ok()?,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sealed_secrets_read_back_from_text() {
        let c = Ciphertext {
            key_id: 7,
            bytes: vec![0, 1, 0xab, 0xff],
        };
        assert_eq!(sealed_text(&c), "7:0001abff");
        assert_eq!(sealed_from_text(&sealed_text(&c)), Some(c));
        for bad in ["7", "x:00", "7:0", "7:zz"] {
            assert_eq!(sealed_from_text(bad), None, "{bad}");
        }
    }

    use super::*;

    fn role() -> Role {
        Role {
            name: "editor".into(),
            description: Some("edits".into()),
            created_at: Timestamp::from_millis(1_000),
            updated_at: Timestamp::from_millis(2_000),
        }
    }

    fn tenant() -> TenantRecord {
        let mut attributes = Map::new();
        attributes.insert("plan".into(), Value::from("pro"));
        TenantRecord {
            id: "acme".into(),
            name: "Acme".into(),
            attributes,
            created_at: Timestamp::from_millis(3_000),
            updated_at: Timestamp::from_millis(4_000),
        }
    }

    fn kinds_match<R: SimpleTable>(cells: &[Cell]) {
        assert_eq!(cells.len(), R::TABLE.columns.len());
        for (cell, column) in cells.iter().zip(R::TABLE.columns) {
            let kind = match cell {
                Cell::Text(_) => CellKind::Text,
                Cell::OptText(_) => CellKind::OptText,
                Cell::Millis(_) => CellKind::Millis,
            };
            assert_eq!(kind, column.kind, "{}.{}", R::TABLE.name, column.name);
        }
    }

    #[test]
    fn records_round_trip_through_their_cells() {
        let r = role();
        let cells = r.to_cells().unwrap();
        kinds_match::<Role>(&cells);
        assert_eq!(Role::from_cells(cells).unwrap(), r);
        let t = tenant();
        let cells = t.to_cells().unwrap();
        kinds_match::<TenantRecord>(&cells);
        assert_eq!(TenantRecord::from_cells(cells).unwrap(), t);
    }

    #[test]
    fn columns_and_keys() {
        assert_eq!(
            Role::TABLE.column_list(),
            "name, description, created_at, updated_at"
        );
        assert_eq!(Role::TABLE.key_column(), "name");
        assert_eq!(role().key(), "editor");
        assert_eq!(
            TenantRecord::TABLE.column_list(),
            "id, name, attributes, created_at, updated_at"
        );
        assert_eq!(TenantRecord::TABLE.key_column(), "id");
        let updated: Vec<_> = TenantRecord::TABLE
            .updated_columns()
            .map(|c| c.name)
            .collect();
        assert_eq!(updated, ["name", "attributes", "updated_at"]);
        assert_eq!(tenant().key(), "acme");
    }

    #[test]
    fn an_update_binds_the_key_and_what_it_rewrites() {
        assert_eq!(
            role().update_cells().unwrap(),
            vec![
                Cell::Text("editor".into()),
                Cell::OptText(Some("edits".into())),
                Cell::Millis(2_000),
            ]
        );
        assert_eq!(
            tenant().update_cells().unwrap(),
            vec![
                Cell::Text("acme".into()),
                Cell::Text("Acme".into()),
                Cell::Text(r#"{"plan":"pro"}"#.into()),
                Cell::Millis(4_000),
            ]
        );
    }

    #[test]
    fn unreadable_cells_are_backend_errors() {
        let err = Role::from_cells(vec![Cell::Millis(1)]).unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.starts_with("a stored role cannot be read")),
            "{err:?}"
        );
        let mut cells = tenant().to_cells().unwrap();
        cells[2] = Cell::Text("not json".into());
        assert!(matches!(
            TenantRecord::from_cells(cells),
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            Role::from_cells(Vec::new()),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn write_outcomes() {
        assert_eq!(Role::TABLE.written(true).unwrap(), Vec::new());
        assert!(matches!(
            TenantRecord::TABLE.written(false),
            Err(StoreError::NotFound { entity: "tenant" })
        ));
        assert!(Role::TABLE.inserted().is_empty());
        Role::check_unheld("editor", 0).unwrap();
        match Role::check_unheld("editor", 2) {
            Err(StoreError::Conflict(m)) => assert_eq!(
                m,
                "role editor is still held by 2 user assignment(s); remove it from them first"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Role::held_meanwhile("editor"),
            StoreError::Conflict(m) if m.contains("role editor is still held by a user")
        ));
        assert_eq!(
            TenantRecord::deleted(vec!["u1".into()], vec![Change::User("u2".into())]),
            vec![Change::User("u1".into()), Change::User("u2".into())]
        );
    }
}
