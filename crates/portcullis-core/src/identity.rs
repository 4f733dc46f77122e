//! Who a verified token is: an issuer and a subject, never a subject alone.
//!
//! A token reaches a directory user only through an identity link on that user (`identities:
//! [{issuer, subject}]`), or when Portcullis itself issued it (its subjects are directory ids).
//! Every other token is an *external subject* of its issuer, known by a principal id derived from
//! both: `ext:<22 characters naming the issuer>:<sub>`. Connections, pending consents, caches and
//! audit records are keyed by the principal id, so nothing one issuer's subject owns is reachable
//! by a token of another issuer with the same `sub`.

use base64::Engine as _;
use portcullis_domain::Identity;

use crate::ServiceError;

/// The prefix of external subjects' principal ids; directory user ids may not start with it.
pub const EXTERNAL_PREFIX: &str = "ext:";

/// The principal id of `subject` at `issuer` when no directory user is linked to it.
///
/// The issuer is named by the first 128 bits of the SHA-256 of its `iss` (base64url, 22
/// characters, no `:`), so the id is unambiguous whatever the subject holds; issuers are chosen by
/// admins, so 128 bits leave no room for a collision to be engineered.
pub fn external_principal(issuer: &str, subject: &str) -> String {
    let digest = portcullis_crypto::sha256(issuer.as_bytes());
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    let mut id = String::with_capacity(EXTERNAL_PREFIX.len() + tag.len() + 1 + subject.len());
    id.push_str(EXTERNAL_PREFIX);
    id.push_str(&tag);
    id.push(':');
    id.push_str(subject);
    id
}

/// The most identities one user may have.
pub const MAX_IDENTITIES: usize = 16;

/// Checks a user's identity links: each an issuer (1–2048 characters, no whitespace or control
/// characters) and a subject (1–255 characters, no control characters), none listed twice. Its
/// errors are placed in a request body's `identities`.
pub(crate) fn check_identities(identities: &[Identity]) -> Result<(), ServiceError> {
    if identities.len() > MAX_IDENTITIES {
        return Err(ServiceError::invalid_at(
            "invalid_request",
            "identities",
            format!("a user has at most {MAX_IDENTITIES} identities"),
        ));
    }
    for (n, i) in identities.iter().enumerate() {
        if i.issuer.is_empty()
            || i.issuer.chars().count() > 2048
            || i.issuer
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                format!("identities[{n}].issuer"),
                format!(
                    "identities[{n}].issuer must be 1 to 2048 characters without whitespace or control characters"
                ),
            ));
        }
        if i.subject.is_empty()
            || i.subject.chars().count() > 255
            || i.subject.chars().any(char::is_control)
        {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                format!("identities[{n}].subject"),
                format!(
                    "identities[{n}].subject must be 1 to 255 characters without control characters"
                ),
            ));
        }
        if identities[..n].contains(i) {
            // The link is its issuer and subject: placed at the first of them.
            return Err(ServiceError::invalid_at(
                "invalid_request",
                format!("identities[{n}].issuer"),
                format!("identities[{n}] is listed twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_principals_differ_by_issuer_and_cannot_be_forged_by_the_subject() {
        let a = external_principal("https://a.example", "alice");
        let b = external_principal("https://b.example", "alice");
        assert_ne!(a, b);
        assert!(a.starts_with(EXTERNAL_PREFIX) && a.ends_with(":alice"));
        assert_eq!(a.len(), EXTERNAL_PREFIX.len() + 22 + 1 + "alice".len());
        // A subject holding a colon cannot make another issuer's id: the tag has a fixed length.
        let tricky = external_principal("https://a.example", "x:alice");
        assert_ne!(tricky, a);
        assert_eq!(external_principal("https://a.example", "alice"), a);
    }
}
