//! Secret wrappers: values that redact themselves in logs and are wiped from memory on drop.
//!
//! A secret is read only through an explicit `expose()` call, so every place that handles the raw
//! value is visible in the code. The wrappers implement `Deserialize` (configuration and requests
//! carry secrets in) but deliberately not `Serialize`: writing a secret out must be done on purpose,
//! through `expose()`.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use crate::compare::constant_time_eq;

const REDACTED: &str = "[redacted]";

/// A UTF-8 secret (a password, a token, an encoded key) that prints as `[redacted]` and is
/// zeroized when dropped.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps `value`; the `String`'s buffer is taken over, not copied.
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Reads the secret. Call it only where the raw value is really needed.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Same as [`SecretString::expose`], for callers that prefer the `secrecy`-style name.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        self.expose()
    }

    /// The length of the secret in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is the empty string.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

/// Constant-time comparison, so that comparing a presented secret with a stored one does not leak
/// how many leading bytes matched.
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Secret bytes (key material, a decrypted token) that print as `[redacted]` and are zeroized
/// when dropped, including the spare capacity of the buffer.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps `value`; the `Vec`'s buffer is taken over, not copied.
    #[must_use]
    pub fn new(value: Vec<u8>) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Reads the secret. Call it only where the raw bytes are really needed.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Same as [`SecretBytes::expose`], for callers that prefer the `secrecy`-style name.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        self.expose()
    }

    /// The number of secret bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no secret bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(value: Vec<u8>) -> Self {
        Self::new(value)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(value: &[u8]) -> Self {
        Self::new(value.to_vec())
    }
}

/// Constant-time comparison, like [`SecretString`]'s.
impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.expose(), other.expose())
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = SecretString::from("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        let b = SecretBytes::from(vec![1, 2, 3]);
        assert_eq!(format!("{b:?}"), "[redacted]");
        assert_eq!(format!("{b}"), "[redacted]");
    }

    #[test]
    fn expose_reads_the_value() {
        let s = SecretString::from(String::from("hunter2"));
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(s.expose_secret(), "hunter2");
        assert_eq!(s.len(), 7);
        assert!(!s.is_empty());
        let b = SecretBytes::from(&[9u8, 8][..]);
        assert_eq!(b.expose(), &[9, 8]);
        assert_eq!(b.clone().expose_secret(), &[9, 8]);
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(SecretString::from("a"), SecretString::from("a"));
        assert_ne!(SecretString::from("a"), SecretString::from("b"));
        assert_ne!(SecretString::from("a"), SecretString::from("ab"));
        assert_eq!(SecretBytes::from(vec![1]), SecretBytes::from(vec![1]));
        assert_ne!(SecretBytes::from(vec![1]), SecretBytes::from(vec![2]));
    }

    #[test]
    fn deserializes_but_debug_of_containing_struct_stays_redacted() {
        #[derive(Debug, Deserialize)]
        struct Config {
            password: SecretString,
            key: SecretBytes,
        }
        let config: Config =
            serde_json::from_str(r#"{"password":"hunter2","key":[1,2,3]}"#).unwrap();
        assert_eq!(config.password.expose(), "hunter2");
        assert_eq!(config.key.expose(), &[1, 2, 3]);
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }
}
