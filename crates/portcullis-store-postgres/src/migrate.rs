//! Schema migrations, applied at start.

use deadpool_postgres::Pool;
use portcullis_domain::StoreError;

use crate::error::{db, describe, pool};
use crate::rows::get;

/// The migrations, in order: (version, SQL).
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
    (15, include_str!("../migrations/0015_used_assertions.sql")),
    (16, include_str!("../migrations/0016_code_replays.sql")),
    (17, include_str!("../migrations/0017_sso_connections.sql")),
    (18, include_str!("../migrations/0018_code_nonces.sql")),
    (
        19,
        include_str!("../migrations/0019_refresh_tokens_by_family.sql"),
    ),
    (20, include_str!("../migrations/0020_audit_inputs.sql")),
    (21, include_str!("../migrations/0021_audit_by_time.sql")),
    (22, include_str!("../migrations/0022_user_id_collation.sql")),
];

/// The advisory lock taken while migrating ("portcull" in ASCII). Advisory locks are per database,
/// so nodes of other deployments on the same server do not wait for each other.
const LOCK_KEY: i64 = 0x706f_7274_6375_6c6c;

/// Applies pending migrations in one transaction, under a transaction-scoped advisory lock: nodes
/// starting together wait for the first, then find its migrations recorded and apply nothing. A
/// failed migration rolls back whole (PostgreSQL's DDL is transactional) and releases the lock.
pub(crate) async fn run(pool_: &Pool) -> Result<(), StoreError> {
    let mut client = pool_.get().await.map_err(pool)?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(db)?;
    let applied: Vec<i64> = tx
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_, _>>()?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if let Some(newest) = applied.iter().max().filter(|v| **v > known) {
        tracing::warn!(
            newest,
            known,
            "the database has migrations this build does not know; it was migrated by a newer release"
        );
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, "applying PostgreSQL migration");
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Backend(format!("migration {version} failed: {}", describe(&e)))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
            &[version],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
