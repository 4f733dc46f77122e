//! Management: outbound apps and their policies, the directory, trusted issuers, OAuth clients,
//! key rotation, the decision simulator. Inputs are validated here, once, with precise errors.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use portcullis_crypto::envelope::aad;
use portcullis_crypto::{SecretString, random_token, sha256};
use portcullis_domain::{
    AppKind, AppRecord, ClientAuthMethod, ClientRecord, DenialDetail, Identity, IssuerRecord,
    OAuthSettings, OnDeny, PageRequest, PolicyRecord, Role, ScopeDef, StoreError, TenantMembership,
    TenantRecord, Timestamp, UserRecord, validate_slug,
};
use portcullis_policy::{
    ErrorCode, Explanation, Limits, Mode, PolicyDocument, Scopes, Subject, ValidationError,
    ValidationErrors, validate_policy,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::urls::check_body_url;
use crate::{Core, IssuerSpec, ServiceError, ids};

mod apps;
mod audit;
mod clients;
mod directory;
mod issuers;
mod keys;
mod policies;
mod replay;
mod resources;
mod simulate;
mod sso;

pub use apps::*;
pub use audit::*;
pub use clients::*;
pub use directory::*;
pub use issuers::*;
pub use keys::*;
pub use policies::*;
pub use replay::*;
pub use resources::*;
pub use simulate::*;
pub use sso::*;

/// Serializes a secret on purpose (answers that show a secret once).
pub(crate) fn expose<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose())
}

/// The associated data binding an app's client secret to it.
pub fn app_secret_aad(app_id: &str) -> Vec<u8> {
    aad(&["app", app_id, "client_secret"])
}

/// Maps a store `NotFound` to one naming what was looked for.
pub(crate) fn not_found(e: StoreError, entity: &'static str, id: &str) -> ServiceError {
    match e {
        StoreError::NotFound { .. } => ServiceError::not_found(entity, id),
        other => other.into(),
    }
}

/// A one-line display name: 1 to 128 characters, none of them a control character (they would
/// reach logs, terminals and the console verbatim, and PostgreSQL refuses NUL in text), neither
/// the first nor the last a space. `field` is its path in the request body.
pub(crate) fn check_name(field: &str, v: &str) -> Result<(), ServiceError> {
    let n = v.chars().count();
    if n == 0 || n > 128 || v.chars().any(char::is_control) || v.trim() != v {
        return Err(ServiceError::invalid_at(
            "invalid_request",
            field,
            format!(
                "{field} must be 1 to 128 characters, without control characters or leading or trailing spaces"
            ),
        ));
    }
    Ok(())
}

/// Whether free text holds a control character other than a line break or a tab.
fn has_control_besides_whitespace(v: &str) -> bool {
    v.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// An update may repeat the id of the path, not change it.
pub(crate) fn same_id(given: Option<&str>, path: &str) -> Result<(), ServiceError> {
    if given.is_some_and(|i| i != path) {
        return Err(ServiceError::invalid_at(
            "invalid_request",
            "id",
            "id is immutable",
        ));
    }
    Ok(())
}

/// A description at `field` of the request body (`description`, `scopes[2].description`).
fn check_description(field: &str, v: Option<&str>) -> Result<(), ServiceError> {
    if v.is_some_and(|d| d.chars().count() > 1024 || has_control_besides_whitespace(d)) {
        return Err(ServiceError::invalid_at(
            "invalid_request",
            field,
            "description must be at most 1024 characters, without control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

/// A slug at `field` of the request body (its path there names it in the message too).
fn check_slug(field: &str, v: &str) -> Result<(), ServiceError> {
    validate_slug(v)
        .map_err(|why| ServiceError::invalid_at("invalid_id", field, format!("{field} {why}")))
}

/// A directory user id: 1–255 visible characters, no whitespace or control characters, and not
/// starting with `ext:` (the prefix of external subjects' principal ids). `field` is its path in
/// the request body.
fn check_user_id(field: &str, v: &str) -> Result<(), ServiceError> {
    if v.is_empty()
        || v.chars().count() > 255
        || v.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ServiceError::invalid_at(
            "invalid_id",
            field,
            "id must be 1 to 255 characters without whitespace or control characters",
        ));
    }
    if v.starts_with(crate::EXTERNAL_PREFIX) {
        return Err(ServiceError::invalid_at(
            "invalid_id",
            field,
            "ids starting with ext: are reserved for subjects of external issuers",
        ));
    }
    Ok(())
}

fn check_attributes(v: &Map<String, Value>) -> Result<(), ServiceError> {
    if serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX) > 16 * 1024 {
        return Err(ServiceError::invalid_at(
            "invalid_request",
            "attributes",
            "attributes must be at most 16 KiB of JSON",
        ));
    }
    Ok(())
}

/// A page of a list and the cursor of the next one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to read on; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` rows read: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(&id(r)))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    /// Maps the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// The read and list shape every managed entity shares, written once: one entity as its view or
/// a 404 naming it; a page of views from `limit + 1` rows with the next page's cursor.
pub(crate) fn view_of<R, V>(
    row: Option<R>,
    entity: &'static str,
    id: &str,
) -> Result<V, ServiceError>
where
    V: for<'a> From<&'a R>,
{
    row.map(|r| V::from(&r))
        .ok_or_else(|| ServiceError::not_found(entity, id))
}

/// A page of an entity's views: `rows` reads the page the parameters ask for; `key` is a row's
/// id, the cursor's position.
pub(crate) async fn page_of<R, V>(
    params: &ListParams,
    rows: impl AsyncFnOnce(&PageRequest) -> Result<Vec<R>, StoreError>,
    key: impl Fn(&R) -> String,
) -> Result<Page<V>, ServiceError>
where
    V: for<'a> From<&'a R>,
{
    let (page, limit) = params.page_request()?;
    let rows = rows(&page).await?;
    Ok(Page::from_rows(rows, limit, key).map(|r| V::from(&r)))
}

/// List parameters: `limit` (1–200, default 50) and an opaque `cursor`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// How many items (1–200, default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The store request: reads one row more than asked, to know whether there is a next page.
    pub fn page_request(&self) -> Result<(PageRequest, u32), ServiceError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ServiceError::invalid_param(
                "invalid_request",
                "limit",
                "limit must be between 1 and 200",
            ));
        }
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok((
            PageRequest {
                after,
                limit: limit + 1,
            },
            limit,
        ))
    }
}

fn encode_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Reads a cursor: any base64url text (without padding) is a position in the list — the one this
/// server wrote after the last item of a page, or any other, which reads on from wherever it
/// falls. Text that is not base64url is refused.
pub(crate) fn decode_cursor(c: &str) -> Result<String, ServiceError> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let bytes = Some(c)
        .filter(|c| !c.is_empty() && c.len() <= MAX_CURSOR_LEN)
        .and_then(|c| LENIENT.decode(c).ok())
        .ok_or_else(|| {
            ServiceError::invalid_param(
                "invalid_cursor",
                "cursor",
                "cursor must be the nextCursor of a page (base64url)",
            )
        })?;
    // No id holds a control character (and PostgreSQL refuses NUL): a position needs none.
    Ok(String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| !c.is_control())
        .collect())
}

/// A query parameter holding an RFC 3339 date-time, read: a malformed one is refused, named.
pub(crate) fn time_param(
    name: &'static str,
    value: Option<&str>,
) -> Result<Option<portcullis_domain::Timestamp>, ServiceError> {
    value
        .map(|t| {
            portcullis_domain::Timestamp::parse_rfc3339(t).ok_or_else(|| {
                ServiceError::invalid_param(
                    "invalid_request",
                    name,
                    format!("{name} must be an RFC 3339 date-time"),
                )
            })
        })
        .transpose()
}

/// The longest cursor read: the base64url of 512 bytes.
pub const MAX_CURSOR_LEN: usize = 684;

fn sorted_unique(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// A whole number, written as JSON allows it (`60`, or `60.0`).
pub(crate) fn whole_number<'de, D>(d: D) -> Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
                // The range is checked: the cast is exact.
                .map(|f| f as u64)
        })
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("invalid value: {n}, expected a whole number")))
}
