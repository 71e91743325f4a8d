//! This SP's own key pair (`sp_key_file`, `sp_cert_file`): it signs
//! HTTP-Redirect messages (SAML bindings §3.4.4.1) and decrypts
//! `EncryptedAssertion`s; the certificate goes into the SP metadata.

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

pub(super) const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

#[derive(Debug, thiserror::Error)]
pub(super) enum KeyError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} is not a PEM private key: {1}")]
    Key(String, String),
    #[error("{0} is not a PEM certificate: {1}")]
    Cert(String, String),
    #[error("the SP key must be RSA (signatures are RSA-SHA256, key transport is RSA-OAEP)")]
    NotRsa,
    #[error("the SP certificate does not belong to the SP key")]
    Mismatch,
}

pub(super) struct SpKey {
    pub pkey: PKey<Private>,
    /// The certificate, DER, for the metadata's `X509Certificate`.
    pub cert_der: Vec<u8>,
}

impl SpKey {
    pub(super) fn load(key_file: &str, cert_file: &str) -> Result<Self, KeyError> {
        let key_pem =
            std::fs::read(key_file).map_err(|e| KeyError::Read(key_file.to_owned(), e))?;
        let cert_pem =
            std::fs::read(cert_file).map_err(|e| KeyError::Read(cert_file.to_owned(), e))?;
        let pkey = PKey::private_key_from_pem(&key_pem)
            .map_err(|e| KeyError::Key(key_file.to_owned(), e.to_string()))?;
        if pkey.rsa().is_err() {
            return Err(KeyError::NotRsa);
        }
        let cert = openssl::x509::X509::from_pem(&cert_pem)
            .map_err(|e| KeyError::Cert(cert_file.to_owned(), e.to_string()))?;
        let public = cert
            .public_key()
            .map_err(|e| KeyError::Cert(cert_file.to_owned(), e.to_string()))?;
        if !pkey.public_eq(&public) {
            return Err(KeyError::Mismatch);
        }
        let cert_der = cert
            .to_der()
            .map_err(|e| KeyError::Cert(cert_file.to_owned(), e.to_string()))?;
        Ok(Self { pkey, cert_der })
    }

    pub(super) fn cert_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.cert_der)
    }

    /// RSA-SHA256 over `data`, base64.
    pub(super) fn sign(&self, data: &[u8]) -> Result<String, openssl::error::ErrorStack> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.pkey)?;
        signer.update(data)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::x509::{X509, X509NameBuilder};

    fn cert_for(key: &PKey<Private>) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "sp").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn write(dir: &std::path::Path, name: &str, pem: &[u8]) -> String {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    }

    #[test]
    fn key_and_certificate_must_match_and_be_rsa() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let b = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let a_key = write(d, "a.key", &a.private_key_to_pem_pkcs8().unwrap());
        let a_cert = write(d, "a.crt", &cert_for(&a).to_pem().unwrap());
        let b_cert = write(d, "b.crt", &cert_for(&b).to_pem().unwrap());
        let key = SpKey::load(&a_key, &a_cert).unwrap();
        assert!(!key.cert_b64().is_empty());
        assert!(!key.sign(b"x").unwrap().is_empty());
        assert!(matches!(
            SpKey::load(&a_key, &b_cert),
            Err(KeyError::Mismatch)
        ));
        assert!(matches!(
            SpKey::load(&a_cert, &a_cert),
            Err(KeyError::Key(..))
        ));
        assert!(matches!(
            SpKey::load(&a_key, &a_key),
            Err(KeyError::Cert(..))
        ));
        assert!(matches!(
            SpKey::load("/nonexistent", &a_cert),
            Err(KeyError::Read(..))
        ));
        let ec = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let ec_key = write(d, "ec.key", &ec.private_key_to_pem_pkcs8().unwrap());
        let ec_cert = write(d, "ec.crt", &cert_for(&ec).to_pem().unwrap());
        assert!(matches!(
            SpKey::load(&ec_key, &ec_cert),
            Err(KeyError::NotRsa)
        ));
    }
}
