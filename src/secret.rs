//! Secrets: redacted in `Debug`, compared in constant time, hashed before
//! they reach the store.

use std::fmt;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// A string that never prints. Wrap anything an operator or client could
/// use to impersonate someone, so a stray `{:?}` can't leak it into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Deliberately named so every read of the raw value is greppable.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Constant-time equality so response timing can't reveal how many leading
/// bytes of a guessed token were right (the length is not secret: a
/// different length is unequal at once, as with `subtle`'s slices).
///
/// The bytes are XORed eight at a time into one word and only that word
/// goes through `subtle`'s comparison (its optimisation barrier): `subtle`
/// on the slices, byte by byte, each behind a barrier, took ~1,700
/// instructions for a 100-byte session cookie, and a barrier per word
/// still ~270, on every authenticated request (callgrind). An OR of XORs
/// has no early exit to take: every byte is read whatever the others are.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    let words = a_words.iter().zip(b_words).fold(0u64, |diff, (x, y)| {
        diff | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))
    });
    let diff = a_rest
        .iter()
        .zip(b_rest)
        .fold(words, |diff, (x, y)| diff | u64::from(x ^ y));
    diff.ct_eq(&0).into()
}

/// SHA-256 of `data`: the session cache's key (32 bytes kept inline in
/// the cache, where the hex form would be a heap string per entry).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// Lowercase hex SHA-256: how secrets (session ids, tokens) are stored, so a
/// leaked database row is not a usable credential.
pub fn sha256_hex(data: &[u8]) -> String {
    digest_hex(&sha256(data))
}

/// Lowercase hex of a SHA-256 digest (the store's form of a [`sha256`]
/// key), through a buffer rather than `hex::encode`'s char iterator, which
/// cost as much as the hash itself.
pub fn digest_hex(digest: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    // Neither fails: 32 bytes fill 64 hex digits, which are ASCII.
    hex::encode_to_slice(digest, &mut out)
        .ok()
        .and_then(|()| std::str::from_utf8(&out).ok())
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Fills `N` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ring::error::Unspecified> {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn comparisons_and_hashes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = random_bytes::<32>().unwrap();
        let b = random_bytes::<32>().unwrap();
        assert_ne!(a, b);
    }

    /// Word by word and the tail: every length around the word size, a
    /// difference in every position (in a word and in the tail) is seen.
    #[test]
    fn equality_is_decided_on_every_byte() {
        for len in 0..=41usize {
            let a: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            assert!(constant_time_eq(&a, &a.clone()), "{len}");
            if len > 0 {
                assert!(!constant_time_eq(&a, &a[..len - 1]), "{len}: a prefix");
            }
            for at in 0..len {
                for bit in [0x01, 0x80] {
                    let mut b = a.clone();
                    b[at] ^= bit;
                    assert!(!constant_time_eq(&a, &b), "len {len}, byte {at}");
                }
            }
        }
    }
}
