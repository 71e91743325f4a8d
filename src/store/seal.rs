//! Secrets at rest: the columns that hold secrets are sealed with
//! AES-256-GCM under `[store] encryption_key`, so a copied database file or
//! dump does not hand out the assertion signing key or users' ID tokens.
//!
//! What is sealed, and why only that (the audit behind this list is in the
//! README, "Secrets at rest"): `keys.material` (the generated assertion
//! signing key), `sessions.logout_hint` (OIDC ID token for
//! `id_token_hint`, SAML NameID for a LogoutRequest) and
//! `tenant_connections.doc` (a connection made through the admin API, with
//! its client secret or private key). Credentials that are
//! only ever *compared* (session ids, SCIM tokens) are stored as SHA-256
//! hashes instead, which is stronger than encryption: not even the key opens
//! them.
//!
//! Stored form: `pcs1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
//! The key id (8 hex digits of a SHA-256 over the key) says which key
//! sealed a value, so rotation knows what to re-seal and a wrong key is
//! reported as such instead of as corruption. The associated data binds a
//! ciphertext to its column and row (`sessions.logout_hint` + `id_hash`,
//! `keys.material` + `purpose`): a value copied to another row or column
//! does not open.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use super::StoreError;

/// Marks a sealed value; nothing we store in these columns in plaintext
/// starts with it (PEM keys start with `-----`, ID tokens with `eyJ`, SAML
/// hints with `{`).
const PREFIX: &str = "pcs1:";

/// Domain separation for the associated data, versioned with the format.
const AAD_LABEL: &[u8] = b"portcullis-store-v1\0";

/// The columns that hold sealed values; the name is part of the associated
/// data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// `keys.material`, row = `purpose`.
    KeyMaterial,
    /// `sessions.logout_hint`, row = `id_hash`.
    LogoutHint,
    /// `tenant_connections.doc` (a connection's settings, secrets
    /// included), row = the connection id.
    ConnectionDoc,
}

impl Column {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Column::KeyMaterial => "keys.material",
            Column::LogoutHint => "sessions.logout_hint",
            Column::ConnectionDoc => "tenant_connections.doc",
        }
    }
}

/// One configured key and its public id.
struct SealKey {
    id: String,
    key: LessSafeKey,
}

/// The configured keys: the first seals, every one opens.
pub struct StoreKeys {
    keys: Vec<SealKey>,
}

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreKeys")
            .field("ids", &self.ids())
            .finish()
    }
}

/// What a stored value is, before opening it.
pub(crate) enum Stored<'a> {
    /// Written before sealing existed (or by an older Portcullis).
    Plain,
    /// Sealed under the key with this id.
    Sealed { key_id: &'a str, body: &'a str },
}

/// Tells a sealed value from a legacy plaintext one.
pub(crate) fn classify(value: &[u8]) -> Stored<'_> {
    let Some(rest) = value.strip_prefix(PREFIX.as_bytes()) else {
        return Stored::Plain;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return Stored::Plain;
    };
    match rest.split_once(':') {
        Some((key_id, body)) => Stored::Sealed { key_id, body },
        None => Stored::Plain,
    }
}

/// The public id of a key: not secret (a truncated hash of 256 random
/// bits), only a label so values name the key that sealed them.
pub fn key_id(key: &[u8; 32]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"portcullis-store-key-id\0");
    ctx.update(key);
    hex::encode(&ctx.finish().as_ref()[..4])
}

impl StoreKeys {
    /// `keys[0]` seals. An empty list is refused: a store without keys is
    /// expressed as `Option<StoreKeys>::None`.
    pub fn new(keys: &[[u8; 32]]) -> Result<Self, StoreError> {
        if keys.is_empty() {
            return Err(StoreError::Sealing("no store encryption key given".into()));
        }
        let keys = keys
            .iter()
            .map(|k| {
                let key = UnboundKey::new(&AES_256_GCM, k).map_err(|_| {
                    StoreError::Sealing("a store key was refused by AES-256-GCM".into())
                })?;
                Ok(SealKey {
                    id: key_id(k),
                    key: LessSafeKey::new(key),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self { keys })
    }

    /// The ids of the configured keys, sealing key first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// The id of the sealing key: values sealed under another one are
    /// re-sealed at startup.
    pub(crate) fn sealing_id(&self) -> &str {
        // `new` refuses an empty list.
        self.keys.first().map(|k| k.id.as_str()).unwrap_or("")
    }

    /// Seals `plain` for `column` of the row `row`.
    pub(crate) fn seal(
        &self,
        column: Column,
        row: &str,
        plain: &[u8],
    ) -> Result<String, StoreError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| StoreError::Sealing("no store encryption key".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Sealing("no randomness for a nonce".into()))?;
        let mut buf = plain.to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(column, row)),
                &mut buf,
            )
            .map_err(|_| StoreError::Sealing(format!("sealing {} failed", column.name())))?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}:{}", key.id, B64.encode(out)))
    }

    /// Opens a stored value of `column` in row `row`. Plaintext is refused:
    /// startup seals every legacy value, so one showing up later was
    /// written by something that bypassed sealing (fail closed: for the
    /// signing key that would be a substituted key).
    pub(crate) fn open(
        &self,
        column: Column,
        row: &str,
        stored: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let (key_id, body) = match classify(stored) {
            Stored::Sealed { key_id, body } => (key_id, body),
            Stored::Plain => {
                return Err(StoreError::Sealing(format!(
                    "{} of row `{row}` is not sealed (written by an older Portcullis?); \
                     restart Portcullis to seal it",
                    column.name()
                )));
            }
        };
        let Some(key) = self.keys.iter().find(|k| k.id == key_id) else {
            return Err(self.unknown_key(column, row, key_id));
        };
        let raw = B64.decode(body).map_err(|_| corrupt(column, row, key_id))?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(corrupt(column, row, key_id));
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt(column, row, key_id))?;
        let mut buf = sealed.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(aad(column, row)), &mut buf)
            .map_err(|_| corrupt(column, row, key_id))?;
        Ok(plain.to_vec())
    }

    fn unknown_key(&self, column: Column, row: &str, key_id: &str) -> StoreError {
        StoreError::Sealing(format!(
            "{} of row `{row}` was sealed with store key id {key_id}, which is not among \
             the configured keys (ids {}); put the key it was sealed with back in \
             [store] encryption_key (after the new one, to rotate)",
            column.name(),
            self.ids().join(", ")
        ))
    }
}

/// Same wording for every way a sealed value fails to open under the key it
/// names: the value was altered, moved from another row, or the key with
/// that id is not the one that sealed it.
fn corrupt(column: Column, row: &str, key_id: &str) -> StoreError {
    StoreError::Sealing(format!(
        "{} of row `{row}` does not open under store key id {key_id} (altered, copied \
         from another row, or a different key)",
        column.name()
    ))
}

fn aad(column: Column, row: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 32 + row.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(column.name().as_bytes());
    aad.push(0);
    aad.extend_from_slice(row.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[[u8; 32]]) -> StoreKeys {
        StoreKeys::new(list).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_column_and_row() {
        let k = keys(&[[1; 32]]);
        let sealed = k.seal(Column::LogoutHint, "row-a", b"id-token").unwrap();
        assert!(
            sealed.starts_with(&format!("pcs1:{}:", key_id(&[1; 32]))),
            "{sealed}"
        );
        assert!(!sealed.contains("id-token"));
        assert_eq!(
            k.open(Column::LogoutHint, "row-a", sealed.as_bytes())
                .unwrap(),
            b"id-token"
        );
        // Another row, another column: does not open.
        assert!(
            k.open(Column::LogoutHint, "row-b", sealed.as_bytes())
                .is_err()
        );
        assert!(
            k.open(Column::KeyMaterial, "row-a", sealed.as_bytes())
                .is_err()
        );
        // Two seals of one value differ (random nonce).
        assert_ne!(
            sealed,
            k.seal(Column::LogoutHint, "row-a", b"id-token").unwrap()
        );
    }

    #[test]
    fn rotation_and_wrong_keys() {
        let old = keys(&[[1; 32]]);
        let rotated = keys(&[[2; 32], [1; 32]]);
        let only_new = keys(&[[2; 32]]);
        let sealed = old.seal(Column::KeyMaterial, "p", b"pem").unwrap();
        assert_eq!(
            rotated
                .open(Column::KeyMaterial, "p", sealed.as_bytes())
                .unwrap(),
            b"pem"
        );
        let err = only_new
            .open(Column::KeyMaterial, "p", sealed.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&key_id(&[1; 32])) && err.contains("not among"),
            "{err}"
        );
        let resealed = rotated.seal(Column::KeyMaterial, "p", b"pem").unwrap();
        assert!(resealed.contains(&key_id(&[2; 32])));
        assert_eq!(
            only_new
                .open(Column::KeyMaterial, "p", resealed.as_bytes())
                .unwrap(),
            b"pem"
        );
    }

    #[test]
    fn tampered_truncated_and_plain_values_are_refused() {
        let k = keys(&[[3; 32]]);
        let sealed = k.seal(Column::LogoutHint, "r", b"secret").unwrap();
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        for bad in [
            flipped,
            sealed.as_bytes()[..sealed.len() - 4].to_vec(),
            format!("pcs1:{}:", key_id(&[3; 32])).into_bytes(),
            format!("pcs1:{}:!!!", key_id(&[3; 32])).into_bytes(),
            b"eyJhbGciOi.plain.token".to_vec(),
        ] {
            assert!(k.open(Column::LogoutHint, "r", &bad).is_err(), "{bad:?}");
        }
    }
}
