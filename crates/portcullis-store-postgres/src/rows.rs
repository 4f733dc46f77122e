//! Conversions between rows and domain values.

use portcullis_domain::{Ciphertext, StoreError, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::error::decode;

/// Reads a column.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx)
        .map_err(|e| decode(&format!("column ({idx})"), crate::error::describe(&e)))
}

/// Encodes a value as a JSON column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

/// Decodes a JSON column.
pub(crate) fn json<T: DeserializeOwned>(row: &Row, idx: usize) -> Result<T, StoreError> {
    let text: &str = get(row, idx)?;
    serde_json::from_str(text).map_err(|e| decode(&format!("document ({idx})"), e))
}

/// Reads a millisecond timestamp column.
pub(crate) fn ts(row: &Row, idx: usize) -> Result<Timestamp, StoreError> {
    get::<i64>(row, idx).map(Timestamp::from_millis)
}

/// Reads an optional millisecond timestamp column.
pub(crate) fn opt_ts(row: &Row, idx: usize) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<i64>>(row, idx)?.map(Timestamp::from_millis))
}

/// An optional timestamp as a bind value.
pub(crate) fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_millis)
}

/// Reads a u32 stored as BIGINT (a key id, a number of seconds).
pub(crate) fn u32_col(row: &Row, idx: usize) -> Result<u32, StoreError> {
    let n: i64 = get(row, idx)?;
    u32::try_from(n).map_err(|_| decode(&format!("number ({idx})"), "out of range"))
}

/// Reads an optional u32 stored as BIGINT.
pub(crate) fn opt_u32_col(row: &Row, idx: usize) -> Result<Option<u32>, StoreError> {
    match get::<Option<i64>>(row, idx)? {
        None => Ok(None),
        Some(_) => u32_col(row, idx).map(Some),
    }
}

/// Reads a 32-byte hash column.
pub(crate) fn hash(row: &Row, idx: usize) -> Result<[u8; 32], StoreError> {
    let bytes: &[u8] = get(row, idx)?;
    bytes
        .try_into()
        .map_err(|_| decode("hash", "it does not hold 32 bytes"))
}

/// Reads an optional 32-byte hash column.
pub(crate) fn opt_hash(row: &Row, idx: usize) -> Result<Option<[u8; 32]>, StoreError> {
    match get::<Option<&[u8]>>(row, idx)? {
        None => Ok(None),
        Some(_) => hash(row, idx).map(Some),
    }
}

/// Reads a sealed secret stored as (bytes, key id) columns.
pub(crate) fn opt_sealed(
    row: &Row,
    bytes_idx: usize,
    key_idx: usize,
) -> Result<Option<Ciphertext>, StoreError> {
    let bytes: Option<Vec<u8>> = get(row, bytes_idx)?;
    let key = opt_u32_col(row, key_idx)?;
    Ok(match (bytes, key) {
        (Some(bytes), Some(key_id)) => Some(Ciphertext { key_id, bytes }),
        _ => None,
    })
}

/// The stored form of an optional key part ("" for none).
pub(crate) fn key_part(part: Option<&String>) -> &str {
    part.map_or("", String::as_str)
}

/// Reads a key part column ("" for none).
pub(crate) fn opt_key_part(row: &Row, idx: usize) -> Result<Option<String>, StoreError> {
    let s: String = get(row, idx)?;
    Ok(if s.is_empty() { None } else { Some(s) })
}

/// A page's limit as a bind value.
pub(crate) fn limit(l: u32) -> i64 {
    i64::from(l)
}
