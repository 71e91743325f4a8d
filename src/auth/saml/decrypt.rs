//! `EncryptedAssertion` → the plain `Assertion` it carries, decrypted with
//! this SP's key and put back in its place, so that the signature the IdP
//! made over the assertion is verified afterwards exactly as for an
//! unencrypted response. A decrypted assertion that is not itself signed
//! is therefore refused (`signature`): a response-level signature covered
//! only the ciphertext and is dropped with it.
//!
//! Algorithms are allow-listed: key transport RSA-OAEP (`rsa-oaep-mgf1p`;
//! RSA PKCS#1 v1.5 is refused: Bleichenbacher), content AES-GCM or AES-CBC
//! (128/256). Every failure is one generic reason, `decryption`.

use base64::Engine;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};

use crate::auth::ConnectionError;

use super::xml::{element_span, first_attr, first_text};

const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";

fn err(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

/// Removes every `Signature` element from a fragment.
fn strip_signatures(mut xml: String) -> String {
    while let Some((s, e)) = element_span(&xml, "Signature") {
        xml.replace_range(s..e, "");
    }
    xml
}

fn b64(v: &str) -> Result<Vec<u8>, ConnectionError> {
    let compact: String = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| err("decryption", format!("CipherValue is not base64: {e}")))
}

fn symmetric(method: &str, key: &[u8], data: &[u8]) -> Result<Vec<u8>, ConnectionError> {
    let fail = |e: openssl::error::ErrorStack| err("decryption", format!("{method}: {e}"));
    let (cipher, gcm) = match method {
        AES128_GCM => (Cipher::aes_128_gcm(), true),
        AES256_GCM => (Cipher::aes_256_gcm(), true),
        AES128_CBC => (Cipher::aes_128_cbc(), false),
        AES256_CBC => (Cipher::aes_256_cbc(), false),
        other => {
            return Err(err(
                "algorithm",
                format!("content encryption {other} is not allowed"),
            ));
        }
    };
    if key.len() != cipher.key_len() {
        return Err(err(
            "decryption",
            "session key length does not fit the cipher",
        ));
    }
    let iv_len = if gcm { 12 } else { 16 };
    let tag_len = if gcm { 16 } else { 0 };
    if data.len() < iv_len + tag_len + 1 {
        return Err(err("decryption", "ciphertext too short"));
    }
    let (iv, rest) = data.split_at(iv_len);
    let (body, tag) = rest.split_at(rest.len() - tag_len);
    let mut c = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).map_err(fail)?;
    c.pad(false);
    if gcm {
        c.set_tag(tag).map_err(fail)?;
    }
    let mut out = vec![0; body.len() + cipher.block_size()];
    let n = c.update(body, &mut out).map_err(fail)?;
    let m = c.finalize(&mut out[n..]).map_err(fail)?;
    out.truncate(n + m);
    if !gcm {
        // XML Encryption padding: the last byte says how many to drop.
        let pad = usize::from(*out.last().unwrap_or(&0));
        if pad == 0 || pad > 16 || pad > out.len() {
            return Err(err("decryption", "bad padding"));
        }
        out.truncate(out.len() - pad);
    }
    Ok(out)
}

/// The response with its one `EncryptedAssertion` replaced by the
/// decrypted `Assertion`, response-level signatures dropped. Blocking
/// (RSA private-key operation): run it off the async threads.
pub(super) fn decrypt_response(xml: &str, key: &PKey<Private>) -> Result<String, ConnectionError> {
    let (s, e) = element_span(xml, "EncryptedAssertion")
        .ok_or_else(|| err("malformed", "no EncryptedAssertion element"))?;
    let enc = &xml[s..e];
    if element_span(&xml[e..], "EncryptedAssertion").is_some() {
        return Err(err("malformed", "more than one EncryptedAssertion"));
    }
    // Found by local name: IdPs use any prefixes (pysaml2 even rebinds
    // ns0/ns1 inside the EncryptedData).
    let (ks, ke) =
        element_span(enc, "EncryptedKey").ok_or_else(|| err("decryption", "no EncryptedKey"))?;
    let encrypted_key = &enc[ks..ke];
    let (ds, de) =
        element_span(enc, "EncryptedData").ok_or_else(|| err("decryption", "no EncryptedData"))?;
    // the EncryptedData without an EncryptedKey nested in its KeyInfo
    let data = if ks > ds && ke <= de {
        format!("{}{}", &enc[ds..ks], &enc[ke..de])
    } else {
        enc[ds..de].to_owned()
    };
    let key_method = first_attr(encrypted_key, "EncryptionMethod", "Algorithm")
        .ok_or_else(|| err("decryption", "EncryptedKey has no EncryptionMethod"))?;
    if key_method != RSA_OAEP_MGF1P {
        return Err(err(
            "algorithm",
            format!("key transport {key_method} is not allowed"),
        ));
    }
    let value_method = first_attr(&data, "EncryptionMethod", "Algorithm")
        .ok_or_else(|| err("decryption", "EncryptedData has no EncryptionMethod"))?;
    let key_cipher = first_text(encrypted_key, "CipherValue")
        .ok_or_else(|| err("decryption", "EncryptedKey has no CipherValue"))?;
    let value_cipher = first_text(&data, "CipherValue")
        .ok_or_else(|| err("decryption", "EncryptedData has no CipherValue"))?;
    let rsa = key
        .rsa()
        .map_err(|e| err("decryption", format!("SP key: {e}")))?;
    let wrapped = b64(key_cipher)?;
    let mut session = vec![0; rsa.size() as usize];
    let n = rsa
        .private_decrypt(&wrapped, &mut session, Padding::PKCS1_OAEP)
        .map_err(|e| err("decryption", format!("key transport: {e}")))?;
    session.truncate(n);
    let plain = symmetric(value_method, &session, &b64(value_cipher)?)?;
    let assertion = String::from_utf8(plain)
        .map_err(|_| err("decryption", "decrypted assertion is not UTF-8"))?;
    let assertion = assertion.trim();
    if super::response::has_dtd(assertion) {
        return Err(err("dtd", "decrypted assertion contains a DTD"));
    }
    match element_span(assertion, "Assertion") {
        Some((0, end)) if end == assertion.len() => {}
        _ => {
            return Err(err(
                "malformed",
                "the EncryptedAssertion does not hold exactly one Assertion",
            ));
        }
    }
    Ok(format!(
        "{}{assertion}{}",
        strip_signatures(xml[..s].to_owned()),
        strip_signatures(xml[e..].to_owned())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_signature_stripping() {
        let x = r#"<p:R><ds:Signature a="1"><x/></ds:Signature><p:EncryptedAssertion><e/></p:EncryptedAssertion></p:R>"#;
        let (s, e) = element_span(x, "EncryptedAssertion").unwrap();
        assert_eq!(
            &x[s..e],
            "<p:EncryptedAssertion><e/></p:EncryptedAssertion>"
        );
        assert_eq!(
            strip_signatures(x.to_owned()),
            "<p:R><p:EncryptedAssertion><e/></p:EncryptedAssertion></p:R>"
        );
    }

    #[test]
    fn ciphers_are_allow_listed_and_checked() {
        let key = [7u8; 16];
        assert_eq!(
            symmetric(
                "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
                &key,
                &[0; 64]
            )
            .unwrap_err()
            .reason,
            "algorithm"
        );
        assert_eq!(
            symmetric(AES128_GCM, &key, &[0; 8]).unwrap_err().reason,
            "decryption"
        );
        // a wrong tag fails authentication
        assert_eq!(
            symmetric(AES128_GCM, &key, &[0; 64]).unwrap_err().reason,
            "decryption"
        );
        assert_eq!(
            symmetric(AES256_GCM, &key, &[0; 64]).unwrap_err().reason,
            "decryption"
        );
    }
}
