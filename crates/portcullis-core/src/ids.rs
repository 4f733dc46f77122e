//! Identifiers: a prefix and a time-ordered random part (ULID layout: 48 bits of milliseconds,
//! 80 random bits, Crockford base32), so that ids sort by creation time.

use portcullis_domain::Timestamp;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new id such as `pol_01jd8x5m3q9v7s2k4n6p8r0t2w`.
pub fn new_id(prefix: &str, now: Timestamp) -> String {
    let millis = u128::from(u64::try_from(now.as_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
    let random: [u8; 10] = portcullis_crypto::random_bytes();
    let mut value = millis << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
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
}
