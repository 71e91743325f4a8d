//! Per-tenant bearer tokens: `pcs_<key id>_<secret>`. The store keeps the
//! key id (to find the row) and the SHA-256 of the whole token, compared in
//! constant time; a new token replaces the tenant's previous one.

use base64::Engine;

use crate::secret::{constant_time_eq, random_bytes, sha256_hex};

const PREFIX: &str = "pcs_";

/// A freshly generated token and what the store keeps of it.
pub struct NewToken {
    /// Shown once to the operator, never stored.
    pub token: String,
    pub key_id: String,
    pub hash: String,
}

pub fn generate() -> Result<NewToken, ring::error::Unspecified> {
    let key_id = hex::encode(random_bytes::<8>()?);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let token = format!("{PREFIX}{key_id}_{secret}");
    let hash = sha256_hex(token.as_bytes());
    Ok(NewToken {
        token,
        key_id,
        hash,
    })
}

/// The bearer token from an `Authorization` header value, and its key id.
pub fn parse(header: &str) -> Option<(&str, &str)> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.len() > 256 {
        return None;
    }
    let rest = token.strip_prefix(PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    (key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((token, key_id))
}

/// Whether `token` hashes to `stored` (constant time).
pub fn matches(token: &str, stored: &str) -> bool {
    constant_time_eq(sha256_hex(token.as_bytes()).as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_match_only_themselves() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.token, b.token);
        let header = format!("Bearer {}", a.token);
        let (token, kid) = parse(&header).unwrap();
        assert_eq!(kid, a.key_id);
        assert!(matches(token, &a.hash));
        assert!(!matches(token, &b.hash));
        assert!(!a.hash.contains(&a.token));
        assert!(parse(&format!("bearer   {}", a.token)).is_some());
    }

    #[test]
    fn malformed_headers_are_refused() {
        for h in [
            "",
            "Bearer",
            "Basic dXNlcjpwYXNz",
            "non-token",
            "Bearer non-token",
            "Bearer pcs_",
            "Bearer pcs_zzzzzzzzzzzzzzzz_abc",
            "Bearer pcs_0123456789abcdef_",
            "Bearer pcs_0123_abc",
        ] {
            assert!(parse(h).is_none(), "{h}");
        }
        let long = format!("Bearer pcs_0123456789abcdef_{}", "a".repeat(300));
        assert!(parse(&long).is_none());
    }
}
