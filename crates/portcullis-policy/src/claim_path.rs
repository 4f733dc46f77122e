//! Claim paths: a claim name, or a dotted path into nested objects of the token's claims.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ErrorCode;

/// The longest claim path, in characters, as written (escapes included).
pub const MAX_CLAIM_PATH_LEN: usize = 256;

/// The most segments in a claim path.
pub const MAX_CLAIM_PATH_SEGMENTS: usize = 16;

/// A parsed claim path such as `org.department` or `https://example\.com/roles`.
///
/// A `.` separates segments, `\.` is a literal dot and `\\` a literal backslash; any other escape
/// is an error, as is an empty segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimPath {
    raw: String,
    // INVARIANT: `segments` is the parse of `raw`: 1..=MAX_CLAIM_PATH_SEGMENTS non-empty segments,
    // and `raw` is at most MAX_CLAIM_PATH_LEN long.
    segments: Vec<String>,
}

/// Why a claim path does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimPathError {
    /// The path is the empty string.
    #[error("a claim path cannot be empty")]
    Empty,
    /// The path is longer than [`MAX_CLAIM_PATH_LEN`].
    #[error("a claim path can be at most {MAX_CLAIM_PATH_LEN} characters long")]
    TooLong,
    /// The path holds a control character.
    #[error("a claim path cannot contain control characters")]
    ControlCharacter,
    /// The path has more than [`MAX_CLAIM_PATH_SEGMENTS`] segments.
    #[error("a claim path can have at most {MAX_CLAIM_PATH_SEGMENTS} segments")]
    TooManySegments,
    /// Two dots in a row, or a leading or trailing dot.
    #[error(
        "a claim path cannot have an empty segment (check for a leading, trailing or doubled dot)"
    )]
    EmptySegment,
    /// A backslash not followed by `.` or `\`.
    #[error("a backslash in a claim path must be followed by a dot or another backslash")]
    BadEscape,
}

impl ClaimPathError {
    /// The validation code this error is reported with.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Self::TooLong | Self::TooManySegments => ErrorCode::LimitExceeded,
            Self::Empty | Self::EmptySegment | Self::BadEscape | Self::ControlCharacter => {
                ErrorCode::InvalidClaimPath
            }
        }
    }
}

impl ClaimPath {
    /// Parses a claim path.
    ///
    /// # Errors
    /// When the path is empty, too long, has too many or empty segments, or a bad escape.
    pub fn parse(raw: &str) -> Result<Self, ClaimPathError> {
        if raw.is_empty() {
            return Err(ClaimPathError::Empty);
        }
        if raw.chars().count() > MAX_CLAIM_PATH_LEN {
            return Err(ClaimPathError::TooLong);
        }
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('.' | '\\')) => current.push(escaped),
                    _ => return Err(ClaimPathError::BadEscape),
                },
                '.' => {
                    if current.is_empty() {
                        return Err(ClaimPathError::EmptySegment);
                    }
                    segments.push(std::mem::take(&mut current));
                }
                c if c.is_control() => return Err(ClaimPathError::ControlCharacter),
                other => current.push(other),
            }
        }
        if current.is_empty() {
            return Err(ClaimPathError::EmptySegment);
        }
        segments.push(current);
        if segments.len() > MAX_CLAIM_PATH_SEGMENTS {
            return Err(ClaimPathError::TooManySegments);
        }
        Ok(Self {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// The path as written, escapes included.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The segments, unescaped: `https://example\.com/roles` has the one segment
    /// `https://example.com/roles`.
    #[must_use]
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value at this path in `claims`: `None` when a segment is absent or an intermediate
    /// value is not an object. A JSON `null` is returned as is.
    #[must_use]
    pub fn resolve<'v>(&self, claims: &'v Map<String, Value>) -> Option<&'v Value> {
        resolve_segments(&self.segments, claims)
    }
}

/// Follows `segments` into `claims`; see [`ClaimPath::resolve`].
pub(crate) fn resolve_segments<'v, S: AsRef<str>>(
    segments: &[S],
    claims: &'v Map<String, Value>,
) -> Option<&'v Value> {
    let (first, rest) = segments.split_first()?;
    let mut value = claims.get(first.as_ref())?;
    for segment in rest {
        value = value.as_object()?.get(segment.as_ref())?;
    }
    Some(value)
}

impl FromStr for ClaimPath {
    type Err = ClaimPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for ClaimPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn segs(raw: &str) -> Vec<String> {
        ClaimPath::parse(raw).unwrap().segments().to_vec()
    }

    #[test]
    fn splits_on_dots_and_honours_escapes() {
        assert_eq!(segs("department"), ["department"]);
        assert_eq!(segs("org.department"), ["org", "department"]);
        assert_eq!(
            segs(r"https://example\.com/roles"),
            ["https://example.com/roles"]
        );
        assert_eq!(segs(r"a\\.b"), [r"a\", "b"]);
        assert_eq!(segs(r"a\\\.b"), [r"a\.b"]);
        assert_eq!(segs(r"\."), ["."]);
        assert_eq!(segs("ünï.cødé"), ["ünï", "cødé"]);
    }

    #[test]
    fn rejects_malformed_paths() {
        assert_eq!(ClaimPath::parse(""), Err(ClaimPathError::Empty));
        for bad in [".", "a.", ".a", "a..b"] {
            assert_eq!(
                ClaimPath::parse(bad),
                Err(ClaimPathError::EmptySegment),
                "{bad}"
            );
        }
        for bad in [r"a\", r"a\b", r"\n"] {
            assert_eq!(
                ClaimPath::parse(bad),
                Err(ClaimPathError::BadEscape),
                "{bad}"
            );
        }
    }

    #[test]
    fn enforces_limits() {
        let sixteen = vec!["a"; 16].join(".");
        assert!(ClaimPath::parse(&sixteen).is_ok());
        let seventeen = vec!["a"; 17].join(".");
        assert_eq!(
            ClaimPath::parse(&seventeen),
            Err(ClaimPathError::TooManySegments)
        );
        assert!(ClaimPath::parse(&"x".repeat(256)).is_ok());
        assert_eq!(
            ClaimPath::parse(&"x".repeat(257)),
            Err(ClaimPathError::TooLong)
        );
        assert_eq!(ClaimPathError::TooLong.code(), ErrorCode::LimitExceeded);
        assert_eq!(
            ClaimPathError::BadEscape.code(),
            ErrorCode::InvalidClaimPath
        );
    }

    #[test]
    fn resolves_into_nested_objects() {
        let claims = json!({
            "org": {"department": "eng", "tier": null},
            "https://example.com/roles": ["a"],
            "flat": "x"
        });
        let claims = claims.as_object().unwrap();
        let get = |p: &str| ClaimPath::parse(p).unwrap().resolve(claims).cloned();
        assert_eq!(get("org.department"), Some(json!("eng")));
        assert_eq!(get("org.tier"), Some(json!(null)));
        assert_eq!(get(r"https://example\.com/roles"), Some(json!(["a"])));
        assert_eq!(get("org.missing"), None);
        assert_eq!(get("flat.deeper"), None);
        assert_eq!(get("absent"), None);
    }

    #[test]
    fn round_trips_as_written() {
        let p = ClaimPath::parse(r"https://example\.com/roles").unwrap();
        assert_eq!(p.to_string(), r"https://example\.com/roles");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!(r"https://example\.com/roles")
        );
    }
}
