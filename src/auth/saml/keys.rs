//! This SP's own key pair (`sp_key_file`, `sp_cert_file`): it signs
//! HTTP-Redirect messages (SAML bindings §3.4.4.1) and decrypts
//! `EncryptedAssertion`s; the certificate goes into the SP metadata.

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
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

pub struct SpKey {
    pub pkey: PKey<Private>,
    /// The certificate, DER, for the metadata's `X509Certificate`.
    pub cert_der: Vec<u8>,
}

impl SpKey {
    pub fn load(key_file: &str, cert_file: &str) -> Result<Self, KeyError> {
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

    pub fn cert_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.cert_der)
    }

    /// RSA-SHA256 over `data`, base64.
    pub fn sign(&self, data: &[u8]) -> Result<String, openssl::error::ErrorStack> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.pkey)?;
        signer.update(data)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec()?))
    }
}
