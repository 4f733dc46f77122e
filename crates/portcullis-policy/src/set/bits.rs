//! Bitsets: scopes over an app's universe (at most 256, inline), roles over a set's role names.

use crate::limits::MAX_OFFERED_SCOPES;

const SCOPE_WORDS: usize = MAX_OFFERED_SCOPES / 64;

/// A set of scope indices into an app's offered scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct ScopeBits([u64; SCOPE_WORDS]);

impl ScopeBits {
    /// Adds scope `index`; an index past the universe is ignored (compile never produces one).
    pub(crate) fn insert(&mut self, index: usize) {
        if let Some(word) = self.0.get_mut(index / 64) {
            *word |= 1 << (index % 64);
        }
    }

    /// Whether scope `index` is in the set.
    pub(crate) fn contains(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    /// Adds every scope of `other`.
    pub(crate) fn union_with(&mut self, other: &Self) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine |= theirs;
        }
    }

    /// Whether every scope of `self` is in `other`.
    pub(crate) fn is_subset_of(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0)
            .all(|(mine, theirs)| mine & !theirs == 0)
    }
}

/// Scopes granted: every scope, or a bitset of the app's scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Grant {
    /// Every scope, including ones the app does not list.
    pub(crate) all: bool,
    /// The app's scopes granted (meaningless when `all`).
    pub(crate) bits: ScopeBits,
}

impl Grant {
    /// Nothing.
    pub(crate) const NONE: Self = Self {
        all: false,
        bits: ScopeBits([0; SCOPE_WORDS]),
    };

    /// Everything.
    pub(crate) const ALL: Self = Self {
        all: true,
        bits: ScopeBits([0; SCOPE_WORDS]),
    };

    /// Adds everything `other` grants.
    pub(crate) fn union_with(&mut self, other: &Self) {
        self.all |= other.all;
        self.bits.union_with(&other.bits);
    }

    /// Whether every requested scope is granted.
    pub(crate) fn covers(&self, requested: &Requested) -> bool {
        self.all || (!requested.unknown && requested.bits.is_subset_of(&self.bits))
    }

    /// Whether one scope, by its index in the app's universe (`None`: not offered), is granted.
    pub(crate) fn allows(&self, index: Option<usize>) -> bool {
        self.all || index.is_some_and(|i| self.bits.contains(i))
    }
}

/// Requested scopes, looked up once in the app's universe.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Requested {
    /// The requested scopes the app offers.
    pub(crate) bits: ScopeBits,
    /// Whether some requested scope is not offered by the app (only `all` grants it).
    pub(crate) unknown: bool,
}

/// Sets bit `index` of a word slice (roles); out of range is ignored.
pub(crate) fn set_bit(words: &mut [u64], index: usize) {
    if let Some(word) = words.get_mut(index / 64) {
        *word |= 1 << (index % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_bits_cover_the_whole_universe() {
        let mut bits = ScopeBits::default();
        for i in [0, 63, 64, 200, 255] {
            bits.insert(i);
        }
        bits.insert(256); // ignored
        for i in 0..300 {
            assert_eq!(bits.contains(i), [0, 63, 64, 200, 255].contains(&i), "{i}");
        }
    }

    #[test]
    fn grant_covers_requests() {
        let mut grant = Grant::NONE;
        grant.bits.insert(1);
        grant.bits.insert(70);
        let mut req = Requested::default();
        assert!(grant.covers(&req), "an empty request is covered");
        req.bits.insert(70);
        assert!(grant.covers(&req));
        req.bits.insert(2);
        assert!(!grant.covers(&req));
        let unknown = Requested {
            bits: ScopeBits::default(),
            unknown: true,
        };
        assert!(!grant.covers(&unknown));
        assert!(Grant::ALL.covers(&unknown));
        assert!(Grant::ALL.allows(None));
        assert!(!grant.allows(None));
        assert!(grant.allows(Some(1)));
        let mut union = Grant::NONE;
        union.union_with(&grant);
        assert_eq!(union, grant);
        union.union_with(&Grant::ALL);
        assert!(union.all);
    }

    #[test]
    fn role_bits() {
        let mut words = [0u64; 2];
        set_bit(&mut words, 65);
        set_bit(&mut words, 3);
        set_bit(&mut words, 500); // ignored
        assert_eq!(words, [1 << 3, 1 << 1]);
    }
}
