//! The management audit.

use async_trait::async_trait;
use portcullis_domain::{
    Change, ManagementAuditStore, ManagementEvent, ManagementQuery, StoreError,
};
use rusqlite::types::Value;
use rusqlite::{Transaction, params, params_from_iter};

use crate::rows::{json_col, limit, read_err, to_json, ts};
use crate::{SqliteStore, write_error};

const COLUMNS: &str = "id, at, actor_id, actor_name, action, target, change, request_id";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ManagementEvent> {
    Ok(ManagementEvent {
        id: row.get(0)?,
        at: ts(row, 1)?,
        actor_id: row.get(2)?,
        actor_name: row.get(3)?,
        action: row.get(4)?,
        target: row.get(5)?,
        change: json_col(row, 6)?,
        request_id: row.get(7)?,
    })
}

/// `LIKE` pattern of the targets under `target`, its wildcards escaped.
pub(crate) fn under(target: &str) -> String {
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

#[async_trait]
impl ManagementAuditStore for SqliteStore {
    async fn append_management(&self, event: &ManagementEvent) -> Result<(), StoreError> {
        let e = event.clone();
        self.write(move |tx| Ok(((), append_management_tx(tx, &e)?)))
            .await
    }

    async fn management_events(
        &self,
        query: &ManagementQuery,
    ) -> Result<Vec<ManagementEvent>, StoreError> {
        let q = query.clone();
        self.read(move |c| {
            let mut sql = format!("SELECT {COLUMNS} FROM management_events WHERE 1 = 1");
            let mut args: Vec<Value> = Vec::new();
            if let Some(v) = q.actor_id {
                args.push(Value::Text(v));
                sql.push_str(&format!(" AND actor_id = ?{}", args.len()));
            }
            if let Some(v) = q.action {
                args.push(Value::Text(v));
                sql.push_str(&format!(" AND action = ?{}", args.len()));
            }
            if let Some(v) = q.target {
                args.push(Value::Text(under(&v)));
                args.push(Value::Text(v));
                sql.push_str(&format!(
                    " AND (target = ?{} OR target LIKE ?{} ESCAPE '\\')",
                    args.len(),
                    args.len() - 1
                ));
            }
            if let Some(v) = q.since {
                args.push(Value::Integer(v.as_millis()));
                sql.push_str(&format!(" AND at >= ?{}", args.len()));
            }
            if let Some(v) = q.until {
                args.push(Value::Integer(v.as_millis()));
                sql.push_str(&format!(" AND at < ?{}", args.len()));
            }
            if let Some(v) = q.before_id {
                args.push(Value::Text(v));
                sql.push_str(&format!(" AND id < ?{}", args.len()));
            }
            args.push(Value::Integer(limit(q.limit)));
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
            c.prepare(&sql)
                .and_then(|mut s| s.query_map(params_from_iter(args), from_row)?.collect())
                .map_err(read_err)
        })
        .await
    }
}

/// `append_management` within a transaction; the changes to publish after it commits.
pub(crate) fn append_management_tx(
    tx: &Transaction<'_>,
    e: &ManagementEvent,
) -> Result<Vec<Change>, StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO management_events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        params![
            e.id,
            e.at.as_millis(),
            e.actor_id,
            e.actor_name,
            e.action,
            e.target,
            to_json(&e.change)?,
            e.request_id
        ],
    )
    .map_err(write_error("management event"))?;
    Ok(vec![])
}
