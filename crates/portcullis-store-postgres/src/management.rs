//! The management audit.

use async_trait::async_trait;
use portcullis_domain::{ManagementAuditStore, ManagementEvent, ManagementQuery, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{db, write};
use crate::rows::{get, json, limit, to_json, ts};
use crate::{PostgresStore, execute, query};

const COLUMNS: &str = "id, at, actor_id, actor_name, action, target, change, request_id";

fn from_row(row: &Row) -> Result<ManagementEvent, StoreError> {
    Ok(ManagementEvent {
        id: get(row, 0)?,
        at: ts(row, 1)?,
        actor_id: get(row, 2)?,
        actor_name: get(row, 3)?,
        action: get(row, 4)?,
        target: get(row, 5)?,
        change: json(row, 6)?,
        request_id: get(row, 7)?,
    })
}

/// `LIKE` pattern of the targets under `target`, its wildcards escaped.
fn under(target: &str) -> String {
    let mut p = String::with_capacity(target.len() + 2);
    for c in target.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push_str("/%");
    p
}

enum Arg {
    Text(String),
    Int(i64),
}

impl Arg {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Text(s) => s,
            Self::Int(n) => n,
        }
    }
}

#[async_trait]
impl ManagementAuditStore for PostgresStore {
    async fn append_management(&self, e: &ManagementEvent) -> Result<(), StoreError> {
        let client = self.client().await?;
        append_management_in(&client, e).await
    }

    async fn management_events(
        &self,
        q: &ManagementQuery,
    ) -> Result<Vec<ManagementEvent>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM management_events WHERE TRUE");
        let mut args: Vec<Arg> = Vec::new();
        if let Some(v) = &q.actor_id {
            args.push(Arg::Text(v.clone()));
            sql.push_str(&format!(" AND actor_id = ${}", args.len()));
        }
        if let Some(v) = &q.action {
            args.push(Arg::Text(v.clone()));
            sql.push_str(&format!(" AND action = ${}", args.len()));
        }
        if let Some(v) = &q.target {
            args.push(Arg::Text(v.clone()));
            args.push(Arg::Text(under(v)));
            sql.push_str(&format!(
                " AND (target = ${} OR target LIKE ${} ESCAPE '\\')",
                args.len() - 1,
                args.len()
            ));
        }
        if let Some(v) = q.since {
            args.push(Arg::Int(v.as_millis()));
            sql.push_str(&format!(" AND at >= ${}", args.len()));
        }
        if let Some(v) = q.until {
            args.push(Arg::Int(v.as_millis()));
            sql.push_str(&format!(" AND at < ${}", args.len()));
        }
        if let Some(v) = &q.before_id {
            args.push(Arg::Text(v.clone()));
            sql.push_str(&format!(" AND id < ${}", args.len()));
        }
        args.push(Arg::Int(limit(q.limit)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::as_sql).collect();
        let client = self.client().await?;
        query(&client, &sql, &params)
            .await
            .map_err(db)?
            .iter()
            .map(from_row)
            .collect()
    }
}

/// Appends a management event through `c` (a connection, or a transaction of a change set).
pub(crate) async fn append_management_in<C: deadpool_postgres::GenericClient>(
    c: &C,
    e: &ManagementEvent,
) -> Result<(), StoreError> {
    execute(
        c,
        &format!(
            "INSERT INTO management_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            &e.id,
            &e.at.as_millis(),
            &e.actor_id,
            &e.actor_name,
            &e.action,
            &e.target,
            &to_json(&e.change)?,
            &e.request_id,
        ],
    )
    .await
    .map_err(write("management event"))?;
    Ok(())
}
