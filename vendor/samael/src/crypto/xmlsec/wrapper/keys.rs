//!
//! Wrapper for XmlSec Key and Certificate management Context
//!
use crate::crypto::xmlsec::wrapper::bindings;

use super::backend;
use super::error::XmlSecError;
use super::error::XmlSecResult;
use super::xmlsec_internal;

use std::collections::HashMap;
use std::ptr::null;
use std::ptr::null_mut;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// x509 key format.
#[allow(dead_code)]
#[allow(missing_docs)]
#[repr(u32)]
pub enum XmlSecKeyFormat {
    Unknown = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatUnknown,
    Binary = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatBinary,
    Pem = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPem,
    Der = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatDer,
    Pkcs8Pem = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPkcs8Pem,
    Pkcs8Der = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPkcs8Der,
    Pkcs12 = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPkcs12,
    CertPem = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatCertPem,
    CertDer = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatCertDer,
}

/// PORTCULLIS PATCH: certificates are few (one to three per IdP); the cap
/// only bounds memory if metadata refreshes keep rotating them, and a full
/// cache is simply emptied (each certificate is then parsed once more).
const CERT_KEYS_MAX: usize = 64;

/// PORTCULLIS PATCH: see [`XmlSecKey::from_cert_der_cached`].
static CERT_KEYS: OnceLock<Mutex<HashMap<Vec<u8>, Arc<SharedKey>>>> = OnceLock::new();

/// PORTCULLIS PATCH: a cached, value-only key, shared by all threads.
struct SharedKey(XmlSecKey);

// SAFETY: a `SharedKey` is never mutated after it is built (`drop_key_data`
// runs before it is shared); threads only pass it to `xmlSecKeyDuplicate`,
// which reads the key's fields and duplicates the value with
// `EVP_PKEY_up_ref`, an atomic reference count in OpenSSL. The `EVP_PKEY`
// itself is then used read-only by each verification's own `EVP_PKEY_CTX`,
// which openssl-threads(7) allows from several threads at once (the
// `openssl` crate's `PKey` is `Send + Sync` on the same grounds). The key is
// destroyed only when the last `Arc` goes, on whichever thread that is:
// `xmlSecKeyDestroy` has no thread affinity. xmlsec itself is initialised
// once per process and never shut down (see `xmlsec_internal`), so a cached
// key never outlives the library.
unsafe impl Send for SharedKey {}
unsafe impl Sync for SharedKey {}

/// Key with which we sign/verify signatures or encrypt data. Used by [`XmlSecSignatureContext`][sigctx].
///
/// [sigctx]: struct.XmlSecSignatureContext.html
#[derive(Debug)]
pub struct XmlSecKey(*mut bindings::xmlSecKey);

impl XmlSecKey {
    /// Load key from buffer in memory, specifying format and optionally the password required to decrypt/unlock.
    pub fn from_memory(buffer: &[u8], format: XmlSecKeyFormat) -> XmlSecResult<Self> {
        xmlsec_internal::guarantee_xmlsec_init()?;

        // Load key from buffer
        let key = unsafe {
            backend::xmlSecCryptoAppKeyLoadMemory(
                buffer.as_ptr(),
                buffer.len().try_into().expect("Key buffer length overflow"),
                format as u32,
                null(),
                null_mut(),
                null_mut(),
            )
        };

        if key.is_null() {
            return Err(XmlSecError::KeyLoadError);
        }

        Ok(Self(key))
    }

    /// PORTCULLIS PATCH: the public key of a DER certificate, parsed once per
    /// process and then handed out as cheap copies.
    ///
    /// `from_memory(.., CertDer)` decodes the certificate and its public key
    /// on every call; under OpenSSL 3 that decoder path was a quarter of a
    /// whole SAML response verification. Verification with a preset key
    /// (`XmlSecSignatureContext::insert_key`) only ever reads the key's
    /// *value*: `xmlSecDSigCtxProcessKeyInfoNode` skips `<ds:KeyInfo>` when
    /// `signKey` is set, `xmlSecKeyMatch` checks the value's klass, type and
    /// size, and the signature transform's `SetKey` takes the value's
    /// `EVP_PKEY`. The certificate (`X509Data`) attached to the key is never
    /// consulted, so the cached key drops it: duplicating a key that still
    /// held it would copy the certificate through the same slow decoder,
    /// while duplicating the value alone is an `EVP_PKEY_up_ref`.
    ///
    /// The cache is keyed by the full DER bytes (never a digest or prefix),
    /// so a different certificate can never be answered with another's key.
    pub fn from_cert_der_cached(cert_der: &[u8]) -> XmlSecResult<Self> {
        let cache = CERT_KEYS.get_or_init(Default::default);
        let cached = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cert_der)
            .cloned();
        let shared = match cached {
            Some(shared) => shared,
            None => {
                // parsed outside the lock: two threads may both parse a new
                // certificate, and the second insert wins; both keys are equal
                let key = Self::from_memory(cert_der, XmlSecKeyFormat::CertDer)?;
                key.drop_key_data();
                let shared = Arc::new(SharedKey(key));
                let mut map = cache.lock().unwrap_or_else(PoisonError::into_inner);
                if map.len() >= CERT_KEYS_MAX {
                    map.clear();
                }
                map.insert(cert_der.to_vec(), shared.clone());
                shared
            }
        };
        shared.0.duplicate()
    }

    /// PORTCULLIS PATCH: drop everything but the key value (and the name,
    /// usage and validity fields), i.e. the `X509Data` that
    /// `xmlSecCryptoAppKeyLoadMemory` attaches for a certificate.
    fn drop_key_data(&self) {
        // SAFETY: `self.0` is a valid key owned by `self` (from_memory checks
        // for NULL); `dataList` is owned by the key and, once destroyed, set
        // to NULL, which every xmlsec key function accepts ("no extra data").
        unsafe {
            let key = &mut *self.0;
            if !key.dataList.is_null() {
                bindings::xmlSecPtrListDestroy(key.dataList);
                key.dataList = null_mut();
            }
        }
    }

    /// PORTCULLIS PATCH: `xmlSecKeyDuplicate` with its NULL result checked
    /// (`Clone` does not check it).
    fn duplicate(&self) -> XmlSecResult<Self> {
        // SAFETY: `self.0` is a valid key; the copy is a new, owned key.
        let new = unsafe { bindings::xmlSecKeyDuplicate(self.0) };
        if new.is_null() {
            return Err(XmlSecError::KeyLoadError);
        }
        Ok(Self(new))
    }

    /// Create from raw pointer to an underlying wrapper key structure. Henceforth its lifetime will be managed by this
    /// object.
    pub unsafe fn from_ptr(ptr: *mut bindings::xmlSecKey) -> Self {
        Self(ptr)
    }

    /// Leak the internal resource. This is needed by [`XmlSecSignatureContext`][sigctx], since wrapper takes over the
    /// lifetime management of the underlying resource when setting it as the active key for signature signing or
    /// verification.
    ///
    /// [sigctx]: struct.XmlSecSignatureContext.html
    pub unsafe fn leak(key: Self) -> *mut bindings::xmlSecKey {
        let ptr = key.0;

        std::mem::forget(key);

        ptr
    }
}

impl PartialEq for XmlSecKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 // compare pointer addresses
    }
}

impl Eq for XmlSecKey {}

impl Clone for XmlSecKey {
    fn clone(&self) -> Self {
        let new = unsafe { bindings::xmlSecKeyDuplicate(self.0) };

        Self(new)
    }
}

impl Drop for XmlSecKey {
    fn drop(&mut self) {
        unsafe { bindings::xmlSecKeyDestroy(self.0) };
    }
}
