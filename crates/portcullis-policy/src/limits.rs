//! Size limits on policy documents and policy sets.

/// The most scopes an app can offer; a policy set keeps scopes as a bitset of this many bits.
pub const MAX_OFFERED_SCOPES: usize = 256;

/// The most conditions a policy can have whatever [`Limits::max_conditions`] says: a decision
/// stores the index of a failed condition in 16 bits.
pub(crate) const MAX_CONDITIONS_HARD: usize = u16::MAX as usize;

/// Size limits, checked at parse, validation and compile time.
///
/// The defaults are the format's documented limits; a deployment may tighten them. Two ceilings
/// hold whatever is configured: `max_scopes` is at most [`MAX_OFFERED_SCOPES`], and
/// `max_conditions` at most 65,535.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The most policies on one app (default 1,000).
    pub max_policies: usize,
    /// The most conditions in one policy (default 32).
    pub max_conditions: usize,
    /// The most values in one `in` / `notIn` list (default 256).
    pub max_values: usize,
    /// The longest string value of a condition, in bytes (default 1,024).
    pub max_string_len: usize,
    /// The most scopes in one policy, and offered by one app (default 256).
    pub max_scopes: usize,
    /// The longest scope name, in characters (default 256).
    pub max_scope_len: usize,
    /// The longest policy name, in characters (default 128).
    pub max_name_len: usize,
    /// The longest policy description, in characters (default 1,024).
    pub max_description_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_policies: 1000,
            max_conditions: 32,
            max_values: 256,
            max_string_len: 1024,
            max_scopes: MAX_OFFERED_SCOPES,
            max_scope_len: 256,
            max_name_len: 128,
            max_description_len: 1024,
        }
    }
}

impl Limits {
    /// `max_scopes`, capped at the bitset's size.
    pub(crate) fn scopes(&self) -> usize {
        self.max_scopes.min(MAX_OFFERED_SCOPES)
    }

    /// `max_conditions`, capped at what a decision can index.
    pub(crate) fn conditions(&self) -> usize {
        self.max_conditions.min(MAX_CONDITIONS_HARD)
    }
}
