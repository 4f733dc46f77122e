//! Base64 flavours used across the crate.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};

/// base64url without padding, decoding strictly: no padding, no whitespace, no non-zero trailing
/// bits. This is the only encoding RFC 7515 allows in a compact JWS.
pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url decoding (see [`b64url_encode`]).
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Operator-supplied base64: the standard or the URL-safe alphabet, with or without padding.
pub(crate) fn b64_decode_lenient(text: &str) -> Option<Vec<u8>> {
    LENIENT_STANDARD
        .decode(text)
        .or_else(|_| LENIENT_URL_SAFE.decode(text))
        .ok()
}

/// Standard base64 with padding, for values written out for operators.
pub(crate) fn b64_encode_standard(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_url_decoding() {
        assert_eq!(b64url_decode("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(b64url_decode("AQ"), Some(vec![1]));
        assert_eq!(b64url_decode("AQ=="), None, "padding is rejected");
        assert_eq!(
            b64url_decode("AR"),
            None,
            "non-zero trailing bits are rejected"
        );
        assert_eq!(
            b64url_decode("A+/B"),
            None,
            "the standard alphabet is rejected"
        );
        assert_eq!(b64url_decode("AQ AB"), None, "whitespace is rejected");
        assert_eq!(b64url_decode(""), Some(vec![]));
    }

    #[test]
    fn lenient_decoding() {
        assert_eq!(b64_decode_lenient("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(b64_decode_lenient("+/8"), Some(vec![0xfb, 0xff]));
        assert_eq!(b64_decode_lenient("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(b64_decode_lenient("-_8="), Some(vec![0xfb, 0xff]));
        assert_eq!(b64_decode_lenient("!!"), None);
    }
}
