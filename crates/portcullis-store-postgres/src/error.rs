//! How PostgreSQL's errors become the domain's.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use portcullis_domain::StoreError;
use tokio_postgres::error::SqlState;

/// Describes an error with its causes, without naming Rust types (the driver's own `Display` says
/// only "db error" for what the server reported).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether the error means the server could not be reached or the connection was lost (as opposed
/// to the server refusing a statement).
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS;
    }
    if e.is_closed() {
        return true;
    }
    let mut source = e.source();
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    // The driver's connect timeout and its TLS failures (a server that does not offer TLS, a
    // certificate refused) have no public kind; a TLS failure is a failure to connect.
    let text = e.to_string();
    text.starts_with("timeout") || text.starts_with("error performing TLS handshake")
}

/// Maps an error the caller does not expect: `Unavailable` for a lost or unreachable server,
/// `Backend` for the rest.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    if is_connection_error(&e) {
        StoreError::Unavailable(describe(&e))
    } else {
        StoreError::Backend(describe(&e))
    }
}

/// The SQLSTATE of an error the server reported.
fn code(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.code()
}

/// Whether the server refused a write for a duplicate unique value (23505).
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    code(e) == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Whether the server refused a write for a reference to a missing row (23503).
pub(crate) fn is_foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    code(e) == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

/// The name of the constraint an error is about.
pub(crate) fn constraint(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().and_then(|d| d.constraint())
}

/// Maps a write error: a unique violation becomes `AlreadyExists { entity }`, a foreign-key
/// violation `MissingReference { entity }` (the caller names the id where it knows it), the rest as
/// [`db`].
pub(crate) fn write(entity: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists { entity }
        } else if is_foreign_key_violation(&e) {
            StoreError::MissingReference {
                entity,
                id: String::new(),
            }
        } else {
            db(e)
        }
    }
}

/// Maps a failure to get a pooled connection.
pub(crate) fn pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => db(e),
        PoolError::Timeout(_) => StoreError::Unavailable(
            "no database connection could be had in time (the server is slow or unreachable, or the pool is exhausted)".into(),
        ),
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        other => StoreError::Backend(format!("cannot get a database connection: {other}")),
    }
}

/// A row that does not decode as expected.
pub(crate) fn decode(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("a stored {what} cannot be read: {e}"))
}
