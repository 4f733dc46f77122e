//! Conditions compiled for the hot path: role names interned to bit indices, claim paths split and
//! shared, value lists sorted for binary search, numbers reduced to an exact comparable key.

use serde_json::{Number, Value};

use crate::decision::{Eval, FailReason};
use crate::document::Scalar;
use crate::set::bits::Grant;

/// One policy's hot data, ready to evaluate; its id and document live apart, in the set.
#[derive(Debug)]
pub(crate) struct CompiledPolicy {
    /// Its conditions: a range of the set's flat list of checks.
    pub(crate) checks: std::ops::Range<usize>,
    pub(crate) enforce: bool,
    pub(crate) grant: Grant,
}

/// One condition, ready to evaluate.
#[derive(Debug)]
pub(crate) enum Check {
    /// A `userRoles` condition.
    Role(RoleCheck),
    /// A `jwtClaims` condition on the set's claim path number `path`.
    Claim { path: usize, test: ClaimCheck },
}

/// A `userRoles` predicate as masks over the subject's role bits: it *hits* when the subject has
/// one of the roles; `equals`, `contains` and `in` hold on a hit, `notEquals` and `notIn` on a miss.
#[derive(Debug)]
pub(crate) struct RoleCheck {
    negate: bool,
    /// The first word and its mask, inline: one word covers 64 role names, most checks' all.
    word: usize,
    mask: u64,
    /// Further `(word, mask)` pairs.
    more: Box<[(usize, u64)]>,
}

impl RoleCheck {
    /// A check hitting on any of the roles `indices`; `negate` for `notEquals` / `notIn`.
    pub(crate) fn new(indices: &[usize], negate: bool) -> Self {
        let mut words: std::collections::BTreeMap<usize, u64> = std::collections::BTreeMap::new();
        for index in indices {
            *words.entry(index / 64).or_default() |= 1 << (index % 64);
        }
        let mut pairs = words.into_iter();
        let (word, mask) = pairs.next().unwrap_or((0, 0));
        Self {
            negate,
            word,
            mask,
            more: pairs.collect(),
        }
    }

    #[inline]
    fn holds(&self, roles: &[u64]) -> bool {
        let word = |w: usize| roles.get(w).copied().unwrap_or(0);
        let hit =
            word(self.word) & self.mask != 0 || self.more.iter().any(|(w, m)| word(*w) & m != 0);
        hit != self.negate
    }
}

/// A `jwtClaims` predicate.
#[derive(Debug)]
pub(crate) enum ClaimCheck {
    Equals(Key),
    NotEquals(Key),
    In(Box<KeySet>),
    NotIn(Box<KeySet>),
    Contains(Key),
}

/// A scalar reduced to what equality needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Str(Box<str>),
    Num(NumKey),
    Bool(bool),
}

/// A number as an exact equality key. Integral values within 64 bits, whether written as
/// integers or as floats with no fractional part (`1.0`), become `Int` (or `UInt` above
/// `i64::MAX`); any other float keeps its bits, which JSON floats compare exactly by.
// INVARIANT: a number has exactly one key: `UInt` only holds values above `i64::MAX`, and `Float`
// never holds an integral value a 64-bit integer can represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum NumKey {
    Int(i64),
    UInt(u64),
    Float(u64),
}

impl NumKey {
    /// The key of a JSON number.
    pub(crate) fn of(n: &Number) -> Self {
        if let Some(i) = n.as_i64() {
            Self::Int(i)
        } else if let Some(u) = n.as_u64() {
            Self::UInt(u)
        } else {
            Self::of_f64(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    fn of_f64(f: f64) -> Self {
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        const TWO_64: f64 = 18_446_744_073_709_551_616.0;
        if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
            // Exact: integral and within i64's range.
            Self::Int(f as i64)
        } else if f.fract() == 0.0 && (TWO_63..TWO_64).contains(&f) {
            // Exact: integral and within u64's range, above i64's.
            Self::UInt(f as u64)
        } else {
            Self::Float(f.to_bits())
        }
    }
}

impl Key {
    pub(crate) fn of(scalar: &Scalar) -> Self {
        match scalar {
            Scalar::String(s) => Self::Str(s.as_str().into()),
            Scalar::Number(n) => Self::Num(NumKey::of(n)),
            Scalar::Bool(b) => Self::Bool(*b),
        }
    }

    /// `Some(equal)` when `value` is a scalar of the key's type, `None` otherwise.
    fn matches(&self, value: &Value) -> Option<bool> {
        match (self, value) {
            (Self::Str(k), Value::String(v)) => Some(**k == **v),
            (Self::Num(k), Value::Number(v)) => Some(*k == NumKey::of(v)),
            (Self::Bool(k), Value::Bool(v)) => Some(k == v),
            _ => None,
        }
    }
}

/// The values of an `in` / `notIn` list, by type, sorted and deduplicated.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    strs: Box<[Box<str>]>,
    nums: Box<[NumKey]>,
    /// Index 0: `false` is listed; index 1: `true` is listed.
    bools: [bool; 2],
}

impl KeySet {
    pub(crate) fn of(scalars: &[Scalar]) -> Self {
        let mut strs: Vec<Box<str>> = Vec::new();
        let mut nums = Vec::new();
        let mut bools = [false; 2];
        for scalar in scalars {
            match Key::of(scalar) {
                Key::Str(s) => strs.push(s),
                Key::Num(n) => nums.push(n),
                Key::Bool(b) => bools[usize::from(b)] = true,
            }
        }
        strs.sort_unstable();
        strs.dedup();
        nums.sort_unstable();
        nums.dedup();
        Self {
            strs: strs.into(),
            nums: nums.into(),
            bools,
        }
    }

    /// `Some(listed)` when `value` is a scalar of a type present in the list, `None` otherwise.
    fn matches(&self, value: &Value) -> Option<bool> {
        match value {
            Value::String(v) if !self.strs.is_empty() => Some(
                self.strs
                    .binary_search_by(|k| (**k).cmp(v.as_str()))
                    .is_ok(),
            ),
            Value::Number(v) if !self.nums.is_empty() => {
                Some(self.nums.binary_search(&NumKey::of(v)).is_ok())
            }
            Value::Bool(v) if self.bools.iter().any(|listed| *listed) => {
                Some(self.bools[usize::from(*v)])
            }
            _ => None,
        }
    }
}

/// A claim path's value, resolved at most once per decision.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot<'v> {
    Unresolved,
    Resolved(Option<&'v Value>),
}

/// What one evaluation reads: the subject, pre-digested.
pub(crate) struct Context<'a, 'v> {
    /// The subject's roles as bits over the set's role names.
    pub(crate) roles: &'a [u64],
    pub(crate) claims: &'v serde_json::Map<String, Value>,
    /// The set's distinct claim paths, split.
    pub(crate) paths: &'a [Box<[Box<str>]>],
    /// One slot per path.
    pub(crate) memo: &'a mut [Slot<'v>],
}

impl<'v> Context<'_, 'v> {
    fn claim(&mut self, path: usize) -> Option<&'v Value> {
        match self.memo.get(path) {
            Some(Slot::Resolved(value)) => *value,
            _ => {
                let value = self.paths.get(path).and_then(|segments| {
                    crate::claim_path::resolve_segments(segments, self.claims)
                });
                if let Some(slot) = self.memo.get_mut(path) {
                    *slot = Slot::Resolved(value);
                }
                value
            }
        }
    }
}

/// Evaluates one policy: its conditions in order, stopping at the first that fails.
#[inline]
pub(crate) fn eval_policy(checks: &[Check], cx: &mut Context<'_, '_>) -> Eval {
    for (index, check) in checks.iter().enumerate() {
        if let Err(reason) = eval_check(check, cx) {
            // INVARIANT: compile rejects more than u16::MAX conditions (Limits::conditions).
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            return Eval::Failed { index, reason };
        }
    }
    Eval::Matched
}

fn holds(condition: bool) -> Result<(), FailReason> {
    if condition {
        Ok(())
    } else {
        Err(FailReason::NotSatisfied)
    }
}

/// `Some(true)` holds, `Some(false)` does not, `None` is a type mismatch.
fn verdict(result: Option<bool>) -> Result<(), FailReason> {
    match result {
        Some(value) => holds(value),
        None => Err(FailReason::TypeMismatch),
    }
}

#[inline]
pub(crate) fn eval_check(check: &Check, cx: &mut Context<'_, '_>) -> Result<(), FailReason> {
    match check {
        Check::Role(role) => holds(role.holds(cx.roles)),
        Check::Claim { path, test } => {
            let value = match cx.claim(*path) {
                None | Some(Value::Null) => return Err(FailReason::Missing),
                Some(value) => value,
            };
            match test {
                ClaimCheck::Equals(key) => verdict(key.matches(value)),
                ClaimCheck::NotEquals(key) => verdict(key.matches(value).map(|equal| !equal)),
                ClaimCheck::In(set) => verdict(set.matches(value)),
                ClaimCheck::NotIn(set) => verdict(set.matches(value).map(|listed| !listed)),
                ClaimCheck::Contains(key) => match value {
                    Value::Array(items) => {
                        holds(items.iter().any(|item| key.matches(item) == Some(true)))
                    }
                    _ => Err(FailReason::TypeMismatch),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn num(v: Value) -> NumKey {
        match v {
            Value::Number(n) => NumKey::of(&n),
            _ => unreachable!(),
        }
    }

    #[test]
    fn numbers_compare_by_value_exactly() {
        assert_eq!(num(json!(1)), num(json!(1.0)));
        assert_eq!(num(json!(-0.0)), num(json!(0)));
        assert_eq!(num(json!(u64::MAX)), NumKey::UInt(u64::MAX));
        assert_eq!(
            num(json!(9_223_372_036_854_775_808.0)),
            num(json!(9_223_372_036_854_775_808_u64))
        );
        assert_eq!(
            num(json!(-9_223_372_036_854_775_808.0)),
            NumKey::Int(i64::MIN)
        );
        assert_eq!(num(json!(1e20)), NumKey::Float(1e20_f64.to_bits()));
        assert_ne!(num(json!(1)), num(json!(1.5)));
        assert_eq!(num(json!(1.5)), num(json!(1.5)));
        // 2^53 + 1 is not representable as f64: the integer must not equal the nearest float.
        assert_ne!(
            num(json!(9_007_199_254_740_993_i64)),
            num(json!(9_007_199_254_740_992.0))
        );
        assert_eq!(
            num(json!(9_007_199_254_740_992_i64)),
            num(json!(9_007_199_254_740_992.0))
        );
        assert_eq!(num(json!(1e300)), NumKey::Float(1e300_f64.to_bits()));
    }

    #[test]
    fn role_checks_span_words() {
        let roles = [0b10u64, 0, 1 << 3];
        assert!(RoleCheck::new(&[1], false).holds(&roles));
        assert!(!RoleCheck::new(&[1], true).holds(&roles));
        assert!(RoleCheck::new(&[5, 64 * 2 + 3], false).holds(&roles));
        assert!(!RoleCheck::new(&[5, 64 + 3], false).holds(&roles));
        assert!(RoleCheck::new(&[5, 64 + 3, 64 * 9], true).holds(&roles));
        assert!(!RoleCheck::new(&[], false).holds(&roles));
        assert!(RoleCheck::new(&[], true).holds(&roles));
        assert!(
            !RoleCheck::new(&[64 * 7], false).holds(&roles),
            "past the subject's words"
        );
    }

    #[test]
    fn key_sets_know_their_types() {
        let set = KeySet::of(&[
            Scalar::from("b"),
            Scalar::from("a"),
            Scalar::from(3),
            Scalar::from(true),
        ]);
        assert_eq!(set.matches(&json!("a")), Some(true));
        assert_eq!(set.matches(&json!("c")), Some(false));
        assert_eq!(set.matches(&json!(3.0)), Some(true));
        assert_eq!(set.matches(&json!(4)), Some(false));
        assert_eq!(set.matches(&json!(true)), Some(true));
        assert_eq!(set.matches(&json!(false)), Some(false));
        assert_eq!(set.matches(&json!([1])), None);
        let strings = KeySet::of(&[Scalar::from("a")]);
        assert_eq!(strings.matches(&json!(1)), None);
        assert_eq!(strings.matches(&json!(false)), None);
    }
}
