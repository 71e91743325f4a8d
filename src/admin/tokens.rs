//! Operator tokens of the admin API: `pat_<16 hex key id>_<43 base64url>`.
//! The store keeps the key id (to find the row) and the SHA-256 of the
//! whole token, compared in constant time; there is no cache, so a revoked
//! token stops on every replica at once.

use base64::Engine;

use super::audit::{Actor, AuditAction, row};
use crate::secret::{constant_time_eq, random_bytes, sha256_hex};
use crate::store::{AdminTokenRow, Store, StoreError};

const PREFIX: &str = "pat_";

/// Why a token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no randomness available")]
    Random,
    #[error("the name must be 1 to 64 characters without control characters")]
    Name,
    #[error("no active admin token named `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new token: shown once, never stored.
pub struct NewAdminToken {
    pub token: String,
    pub key_id: String,
}

/// Creates a token called `name` (unique among active ones), audited.
pub async fn create(store: &Store, name: &str, actor: &Actor) -> Result<NewAdminToken, TokenError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(TokenError::Name);
    }
    let key_id = hex::encode(random_bytes::<8>().map_err(|_| TokenError::Random)?);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(random_bytes::<32>().map_err(|_| TokenError::Random)?);
    let token = format!("{PREFIX}{key_id}_{secret}");
    let now = crate::clock::now();
    let stored = AdminTokenRow {
        key_id: key_id.clone(),
        name: name.to_owned(),
        secret_hash: sha256_hex(token.as_bytes()),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    let after = serde_json::json!({"name": name, "key_id": key_id});
    let audit = row(
        actor,
        AuditAction::AdminTokenCreated,
        None,
        name,
        None,
        Some(&after),
    );
    store.admin_tokens().create(&stored, &audit).await?;
    Ok(NewAdminToken { token, key_id })
}

/// Revokes the active token called `name`, audited.
pub async fn revoke(store: &Store, name: &str, actor: &Actor) -> Result<(), TokenError> {
    let audit = row(
        actor,
        AuditAction::AdminTokenRevoked,
        None,
        name,
        None,
        None,
    );
    if store
        .admin_tokens()
        .revoke(name, crate::clock::now(), &audit)
        .await?
    {
        Ok(())
    } else {
        Err(TokenError::NotFound(name.to_owned()))
    }
}

/// The name of the active token in an `Authorization` header value.
pub async fn authenticate(
    store: &Store,
    authorization: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some((token, key_id)) = authorization.and_then(parse) else {
        return Ok(None);
    };
    let found = store.admin_tokens().lookup(key_id).await?;
    // Hash and compare even for an unknown key id, so timing doesn't tell
    // a real key id from an invented one.
    let hash = found
        .as_ref()
        .map_or_else(|| "0".repeat(64), |r| r.secret_hash.clone());
    let matches = constant_time_eq(sha256_hex(token.as_bytes()).as_bytes(), hash.as_bytes());
    match found {
        Some(r) if matches && r.revoked_at.is_none() => {
            let now = crate::clock::now();
            if r.last_used_at.is_none_or(|t| now - t >= 60) {
                store.admin_tokens().touch(key_id, now).await?;
            }
            Ok(Some(r.name))
        }
        _ => Ok(None),
    }
}

/// `Bearer pat_…` → (token, key id).
fn parse(header: &str) -> Option<(&str, &str)> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.len() > 256 {
        return None;
    }
    let (key_id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    (key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((token, key_id))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_well_formed_bearer_tokens_parse() {
        let t = "pat_0123456789abcdef_c2VjcmV0";
        assert_eq!(parse(&format!("Bearer {t}")), Some((t, "0123456789abcdef")));
        for bad in [
            "",
            "Bearer",
            "Basic abc",
            "Bearer pcs_0123456789abcdef_x",
            "Bearer pat_0123_x",
            "Bearer pat_0123456789abcdef_",
            "Bearer pat_zzzzzzzzzzzzzzzz_x",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
