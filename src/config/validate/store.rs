//! `[store]`: the database and the keys that seal its secrets.

use std::collections::HashSet;

use crate::config::load::Collector;
use crate::config::schema::Config;

pub(super) fn store(cfg: &Config, c: &mut Collector<'_>) {
    let u = &cfg.store.url;
    let ok = ["sqlite://", "postgres://", "postgresql://"]
        .iter()
        .any(|p| u.starts_with(p) && u.len() > p.len());
    if !ok {
        c.push(
            "store.url",
            "must be `sqlite://PATH` or `postgres://USER@HOST/DB`",
        );
    }
    store_keys(cfg, c);
}

/// `[store] encryption_key`: required, because every deployment writes
/// secrets to the store (the generated assertion signing key; OIDC ID tokens
/// and SAML NameIDs kept for logout), and they must not sit there readable.
fn store_keys(cfg: &Config, c: &mut Collector<'_>) {
    let keys = &cfg.store.encryption_key;
    if keys.is_empty() {
        c.push(
            "store.encryption_key",
            "required: Portcullis seals the secrets it keeps in the store (assertion signing key, \
             ID tokens for logout) with it; set encryption_key = \"${PORTCULLIS_STORE_KEY}\" \
             (generate: openssl rand -base64 32)",
        );
    }
    let mut seen = HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        let key = if keys.len() == 1 {
            "store.encryption_key".to_owned()
        } else {
            format!("store.encryption_key[{i}]")
        };
        match crate::config::schema::decode_store_key(k) {
            Err(e) => c.push(key, e),
            Ok(bytes) => {
                if !seen.insert(bytes) {
                    c.push(key, "the same key is listed twice");
                }
            }
        }
    }
}
