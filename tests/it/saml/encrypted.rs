//! Encrypted assertions: `xmlsec1 --encrypt` at test time, decrypted with
//! the SP key, and the IdP's signature on the decrypted assertion still
//! verified. Key transport and content algorithms are allow-listed.

use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::saml::*;

const GCM128: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
const CBC256: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
const OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA15: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
const TRIPLE_DES: &str = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc";

async fn with_sp_key() -> (SamlSso, IdpKey) {
    let keys = tempfile::tempdir().unwrap().keep();
    let sp = IdpKey::generate(&keys, "sp");
    let s = SamlSso::start(&format!(
        "sp_key_file = \"{}\"\nsp_cert_file = \"{}\"",
        sp.key.display(),
        sp.cert.display()
    ))
    .await;
    (s, sp)
}

async fn expect_refused(s: &SamlSso, st: &Started, xml: &str, reason: &str) {
    let refusal = s
        .env
        .refusal(&crate::support::refusal::login_failure(reason))
        .await;
    refusal.assert(s.post(st, &b64(xml)).await, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_signed_assertions_are_decrypted_and_verified() {
    let (s, sp) = with_sp_key().await;
    let dir = s.dir.path();
    // the SP metadata publishes the key for encryption
    let md = client()
        .get(
            s.env
                .url(&format!("/.portcullis/saml/{CONNECTION}/metadata")),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.contains("<md:KeyDescriptor use=\"encryption\">"), "{md}");

    for (data_alg, sign) in [
        (GCM128, Sign::Assertion),
        (CBC256, Sign::Assertion),
        (GCM128, Sign::Both),
    ] {
        let st = s.begin().await;
        let mut r = s.resp(&st);
        r.sign = sign;
        let xml = encrypt_assertion(&r.signed(&s.key, dir), &sp.cert, dir, data_alg, OAEP);
        assert!(xml.contains("EncryptedAssertion") && !xml.contains("alice@acme.com"));
        let resp = s.post(&st, &b64(&xml)).await;
        assert_eq!(
            resp.status(),
            303,
            "{data_alg} {sign:?}: {}",
            resp.text().await.unwrap()
        );
        let session = cookie_pair(&resp, "portcullis_session=").expect("session");
        assert_alice_engineer(&s.env, &session).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_assertions_that_must_not_pass() {
    let (s, sp) = with_sp_key().await;
    let dir = s.dir.path();
    let stranger = IdpKey::generate(dir, "other-sp");

    // encrypted but not signed: the IdP's signature is still required
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.sign = Sign::Nothing;
    let xml = encrypt_assertion(&r.signed(&s.key, dir), &sp.cert, dir, GCM128, OAEP);
    expect_refused(&s, &st, &xml, "signature").await;

    // signed, encrypted, then tampered inside: the signature fails
    let st = s.begin().await;
    let r = s.resp(&st);
    let tampered = r.signed(&s.key, dir).replace(">Everyone<", ">admins<");
    let xml = encrypt_assertion(&tampered, &sp.cert, dir, GCM128, OAEP);
    expect_refused(&s, &st, &xml, "signature").await;

    // encrypted for someone else's key
    let st = s.begin().await;
    let xml = encrypt_assertion(
        &s.resp(&st).signed(&s.key, dir),
        &stranger.cert,
        dir,
        GCM128,
        OAEP,
    );
    expect_refused(&s, &st, &xml, "decryption").await;

    // a flipped ciphertext byte: GCM authentication fails
    let st = s.begin().await;
    let xml = encrypt_assertion(
        &s.resp(&st).signed(&s.key, dir),
        &sp.cert,
        dir,
        GCM128,
        OAEP,
    );
    let last = xml.rfind("</xenc:CipherValue>").unwrap();
    let mut bytes = xml.into_bytes();
    bytes[last - 5] = if bytes[last - 5] == b'A' { b'B' } else { b'A' };
    expect_refused(&s, &st, &String::from_utf8(bytes).unwrap(), "decryption").await;

    // algorithms off the allow-list: RSA PKCS#1 v1.5 key transport, 3DES
    for (data_alg, key_alg) in [(GCM128, RSA15), (TRIPLE_DES, OAEP)] {
        let st = s.begin().await;
        let xml = encrypt_assertion(
            &s.resp(&st).signed(&s.key, dir),
            &sp.cert,
            dir,
            data_alg,
            key_alg,
        );
        expect_refused(&s, &st, &xml, "algorithm").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_sp_key_encrypted_assertions_are_unsupported() {
    let s = SamlSso::start("").await;
    let keys = tempfile::tempdir().unwrap();
    let sp = IdpKey::generate(keys.path(), "sp");
    let st = s.begin().await;
    let xml = encrypt_assertion(
        &s.resp(&st).signed(&s.key, s.dir.path()),
        &sp.cert,
        s.dir.path(),
        GCM128,
        OAEP,
    );
    expect_refused(&s, &st, &xml, "unsupported").await;
}
