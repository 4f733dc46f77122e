//! Identifiers: a prefix and a time-ordered random part (ULID layout: 48 bits of milliseconds,
//! 80 random bits, Crockford base32), so that ids sort by creation time.

use portcullis_domain::Timestamp;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new id such as `pol_01jd8x5m3q9v7s2k4n6p8r0t2w`.
pub fn new_id(prefix: &str, now: Timestamp) -> String {
    let random: [u8; 10] = portcullis_crypto::random_bytes();
    let mut value = 0u128;
    for b in random {
        value = (value << 8) | u128::from(b);
    }
    encode(prefix, now, value)
}

/// A new audit event id (`evt_…`), time-ordered like [`new_id`], its random part drawn from a
/// fast per-thread generator seeded from the system's secure generator: event ids must be unique
/// and sortable, not unguessable, and one is made on every token request.
pub fn new_event_id(now: Timestamp) -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(u64::from_le_bytes(portcullis_crypto::random_bytes()) | 1);
    }
    // wyrand: small, fast, good statistical quality.
    let next = || {
        STATE.with(|s| {
            let v = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            s.set(v);
            let t = u128::from(v) * u128::from(v ^ 0xe703_7ed1_a0b4_28db);
            ((t >> 64) ^ t) as u64
        })
    };
    let random = (u128::from(next()) << 16) | u128::from(next() & 0xFFFF);
    encode("evt", now, random)
}

fn encode(prefix: &str, now: Timestamp, random80: u128) -> String {
    let millis = u128::from(u64::try_from(now.as_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
    let value = (millis << 80) | (random80 & ((1u128 << 80) - 1));
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        let idx = ((value >> (5 * i)) & 0x1F) as usize;
        out.push(char::from(ALPHABET[idx]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_differ() {
        let a = new_id("evt", Timestamp::from_millis(1_000));
        let b = new_id("evt", Timestamp::from_millis(2_000));
        let c = new_id("evt", Timestamp::from_millis(2_000));
        assert!(a < b);
        assert_ne!(b, c);
        assert_eq!(a.len(), 4 + 26);
        assert!(a.starts_with("evt_"));
    }

    #[test]
    fn event_ids_sort_by_time_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        let mut last = String::new();
        for ms in 0..10_000 {
            let id = new_event_id(Timestamp::from_millis(1_000 + ms / 10));
            assert!(id.len() == 30 && id >= last, "{id} after {last}");
            assert!(seen.insert(id.clone()));
            if ms % 10 == 9 {
                last = id;
            }
        }
    }
}
