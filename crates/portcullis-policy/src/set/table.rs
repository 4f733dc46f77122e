//! A read-only name → index table for the hot path's lookups (requested scopes, subject roles):
//! open addressing over a small, fast hash.
//!
//! Only names chosen by administrators are inserted; callers only look names up, so a caller
//! cannot lengthen a probe sequence beyond what the table holds.

/// Names and their indices (the index is the position in the list given to [`NameTable::new`]).
#[derive(Debug, Default)]
pub(crate) struct NameTable {
    names: Box<[Box<str>]>,
    /// `0`: empty; `i + 1`: `names[i]`. A power of two long, at most half full.
    slots: Box<[u32]>,
}

impl NameTable {
    /// A table of distinct `names`; a repeated name keeps its first index.
    pub(crate) fn new(names: Vec<Box<str>>) -> Self {
        let capacity = (names.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![0u32; capacity].into_boxed_slice();
        let mask = capacity - 1;
        for (index, name) in names.iter().enumerate() {
            let Ok(tag) = u32::try_from(index + 1) else {
                break;
            };
            let mut slot = hash(name.as_bytes()) & mask;
            loop {
                match slots.get(slot).copied() {
                    Some(0) => {
                        if let Some(entry) = slots.get_mut(slot) {
                            *entry = tag;
                        }
                        break;
                    }
                    Some(other) if names.get(other as usize - 1) == Some(name) => break,
                    _ => slot = (slot + 1) & mask,
                }
            }
        }
        Self {
            names: names.into_boxed_slice(),
            slots,
        }
    }

    /// The index of `name`.
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut slot = hash(name.as_bytes()) & mask;
        // INVARIANT: the table is at most half full, so an empty slot ends every probe.
        loop {
            let tag = *self.slots.get(slot)?;
            if tag == 0 {
                return None;
            }
            let index = tag as usize - 1;
            if self
                .names
                .get(index)
                .is_some_and(|candidate| **candidate == *name)
            {
                return Some(index);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The number of names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// A multiply-rotate hash over 8-byte words (the `FxHash` recipe), finished with a mix so that
/// the low bits used for the slot depend on every byte.
#[inline]
fn hash(bytes: &[u8]) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        if let Some(prefix) = word.get_mut(..rest.len()) {
            prefix.copy_from_slice(rest);
        }
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    // Truncation on 32-bit targets is fine: only the low bits pick a slot.
    h as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_and_nothing_else() {
        let names: Vec<Box<str>> = (0..300).map(|i| format!("scope.{i}").into()).collect();
        let table = NameTable::new(names);
        assert_eq!(table.len(), 300);
        for i in 0..300 {
            assert_eq!(table.get(&format!("scope.{i}")), Some(i));
        }
        for miss in [
            "",
            "scope.",
            "scope.300",
            "scope.1 ",
            "SCOPE.1",
            "scope.0000000000000001",
        ] {
            assert_eq!(table.get(miss), None, "{miss}");
        }
    }

    #[test]
    fn empty_and_duplicate_tables() {
        let empty = NameTable::new(Vec::new());
        assert_eq!(empty.get("x"), None);
        assert_eq!(NameTable::default().get("x"), None);
        let dup = NameTable::new(vec!["a".into(), "a".into(), "b".into()]);
        assert_eq!(dup.get("a"), Some(0));
        assert_eq!(dup.get("b"), Some(2));
    }

    #[test]
    fn hash_depends_on_every_byte() {
        assert_ne!(hash(b"scope.01"), hash(b"scope.02"));
        assert_ne!(hash(b"scope.01x"), hash(b"scope.01y"));
        assert_ne!(hash(b"a"), hash(b"a\0"));
    }
}
