//! Conversions between rows and domain values.

use portcullis_domain::{Ciphertext, StoreError, Timestamp};
use rusqlite::types::Type;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes a value as a JSON column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

/// Decodes a JSON column.
pub(crate) fn json_col<T: DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Reads a millisecond timestamp column.
pub(crate) fn ts(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Timestamp> {
    row.get::<_, i64>(idx).map(Timestamp::from_millis)
}

/// Reads an optional millisecond timestamp column.
pub(crate) fn opt_ts(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(idx)?.map(Timestamp::from_millis))
}

/// Reads a 32-byte hash column.
pub(crate) fn hash(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<[u8; 32]> {
    let bytes: Vec<u8> = row.get(idx)?;
    bytes.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            Type::Blob,
            "a hash column does not hold 32 bytes".into(),
        )
    })
}

/// Reads an optional 32-byte hash column.
pub(crate) fn opt_hash(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<[u8; 32]>> {
    match row.get::<_, Option<Vec<u8>>>(idx)? {
        None => Ok(None),
        Some(_) => hash(row, idx).map(Some),
    }
}

/// Reads a sealed secret stored as (bytes, key id) columns.
pub(crate) fn opt_sealed(
    row: &rusqlite::Row<'_>,
    bytes_idx: usize,
    key_idx: usize,
) -> rusqlite::Result<Option<Ciphertext>> {
    let bytes: Option<Vec<u8>> = row.get(bytes_idx)?;
    let key: Option<u32> = row.get(key_idx)?;
    Ok(match (bytes, key) {
        (Some(bytes), Some(key_id)) => Some(Ciphertext { key_id, bytes }),
        _ => None,
    })
}

/// The stored form of an optional key part ("" for none).
pub(crate) fn key_part(part: Option<&String>) -> String {
    part.cloned().unwrap_or_default()
}

/// Reads a key part column ("" for none).
pub(crate) fn opt_key_part(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<String>> {
    let s: String = row.get(idx)?;
    Ok(if s.is_empty() { None } else { Some(s) })
}

/// A page's limit as a bind value.
pub(crate) fn limit(l: u32) -> i64 {
    i64::from(l)
}

/// Maps a read error.
pub(crate) fn read_err(e: rusqlite::Error) -> StoreError {
    crate::backend(e)
}
