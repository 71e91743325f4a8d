//!
//! Central XmlSec1 Context
//!
use crate::crypto::xmlsec::wrapper::bindings;

use lazy_static::lazy_static;

use super::backend;
use super::error::XmlSecError;
use super::XmlSecResult;
use std::borrow::Cow;
use std::convert::TryInto;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::ptr::null;
use std::sync::Mutex;

lazy_static! {
    static ref XMLSEC: Mutex<Option<XmlSecContext>> = Mutex::new(None);
}

pub fn guarantee_xmlsec_init() -> XmlSecResult<()> {
    let mut inner = XMLSEC
        .lock()
        .expect("Unable to lock global wrapper initalization wrapper");

    if inner.is_none() {
        *inner = Some(XmlSecContext::new()?);
    }

    Ok(())
}

/// XmlSec Global Context
///
/// This object initializes the underlying wrapper global state and cleans it
/// up once gone out of scope. It is checked by all objects in the library that
/// require the context to be initialized. See [`globals`][globals].
///
/// [globals]: globals
pub struct XmlSecContext {}

impl XmlSecContext {
    /// Runs wrapper initialization and returns instance of itself.
    pub fn new() -> XmlSecResult<Self> {
        unsafe {
            libxml::bindings::xmlInitParser();
        }

        init_xmlsec()?;
        init_crypto_app()?;
        init_crypto()?;

        // PORTCULLIS PATCH: libxmlsec1's default error callback writes every
        // diagnostic (`func=xmlSec...:file=...`) straight to stderr through
        // libxml2's generic error handler, bypassing the application's
        // logging; a refused signature is an expected event for a service
        // provider, so those lines are reported through `log` at debug
        // level instead. Set after `xmlSecInit`, once, under the `XMLSEC`
        // lock held by `guarantee_xmlsec_init`.
        unsafe { bindings::xmlSecErrorsSetCallback(Some(errors_to_log)) };

        Ok(Self {})
    }
}

impl Drop for XmlSecContext {
    fn drop(&mut self) {
        cleanup_crypto();
        cleanup_crypto_app();
        cleanup_xmlsec();
    }
}

/// PORTCULLIS PATCH: the `log` target libxmlsec1's diagnostics go to.
pub const XMLSEC_LOG_TARGET: &str = "xmlsec";

/// PORTCULLIS PATCH: libxmlsec1's error callback (see `XmlSecContext::new`):
/// one `log` record at debug level per diagnostic, with the same fields the
/// library's default callback prints. It never unwinds into C: formatting is
/// skipped unless the record is enabled, and any panic is caught.
unsafe extern "C" fn errors_to_log(
    file: *const c_char,
    line: c_int,
    func: *const c_char,
    error_object: *const c_char,
    error_subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
) {
    let _ = std::panic::catch_unwind(|| {
        if !log::log_enabled!(target: XMLSEC_LOG_TARGET, log::Level::Debug) {
            return;
        }
        // SAFETY: libxmlsec1 passes NUL-terminated strings or NULL, valid for
        // the duration of the call; nothing is kept beyond it.
        let text = |p: *const c_char| -> Cow<'_, str> {
            if p.is_null() {
                Cow::Borrowed("")
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy()
            }
        };
        log::debug!(
            target: XMLSEC_LOG_TARGET,
            "libxmlsec1: {}: {} (func={} obj={} subj={} error={} file={}:{})",
            reason_text(reason),
            text(msg),
            text(func),
            text(error_object),
            text(error_subject),
            reason,
            text(file),
            line
        );
    });
}

/// PORTCULLIS PATCH: the library's text for an error code, looked up the way
/// its default callback does.
fn reason_text(reason: c_int) -> Cow<'static, str> {
    for pos in 0..bindings::XMLSEC_ERRORS_MAX_NUMBER {
        // SAFETY: positions are checked against the table size by the
        // library (NULL past the end); the returned strings are static.
        let msg = unsafe { bindings::xmlSecErrorsGetMsg(pos as _) };
        if msg.is_null() {
            break;
        }
        if unsafe { bindings::xmlSecErrorsGetCode(pos as _) } == reason {
            return unsafe { CStr::from_ptr(msg) }.to_string_lossy();
        }
    }
    Cow::Borrowed("unknown error")
}

/// Init wrapper library
fn init_xmlsec() -> XmlSecResult<()> {
    let rc = unsafe {
        bindings::xmlSecCheckVersionExt(
            bindings::XMLSEC_VERSION_MAJOR.try_into().unwrap(),
            bindings::XMLSEC_VERSION_MINOR.try_into().unwrap(),
            bindings::XMLSEC_VERSION_SUBMINOR.try_into().unwrap(),
            bindings::xmlSecCheckVersionMode_xmlSecCheckVersionABICompatible,
        )
    };

    if rc < 0 {
        return Err(XmlSecError::XmlSecAbiMismatch);
    }

    let rc = unsafe { bindings::xmlSecInit() };

    if rc < 0 {
        Err(XmlSecError::XmlSecInitError)
    } else {
        Ok(())
    }
}

/// Load default crypto engine if we are supporting dynamic loading for
/// wrapper-crypto libraries. Use the crypto library name ("openssl",
/// "nss", etc.) to load corresponding wrapper-crypto library.
fn init_crypto_app() -> XmlSecResult<()> {
    #[cfg(xmlsec_dynamic)]
    {
        let rc = unsafe { backend::xmlSecCryptoDLLoadLibrary(null()) };
        if rc < 0 {
            return Err(XmlSecError::CryptoLoadLibraryError);
        }
    }

    let rc = unsafe { backend::xmlSecCryptoAppInit(null()) };

    if rc < 0 {
        Err(XmlSecError::CryptoInitOpenSSLAppError)
    } else {
        Ok(())
    }
}

/// Init wrapper-crypto library
fn init_crypto() -> XmlSecResult<()> {
    let rc = unsafe { backend::xmlSecCryptoInit() };

    if rc < 0 {
        Err(XmlSecError::CryptoInitOpenSSLError)
    } else {
        Ok(())
    }
}

/// Shutdown wrapper-crypto library
fn cleanup_crypto() {
    unsafe { backend::xmlSecCryptoShutdown() };
}

/// Shutdown crypto library
fn cleanup_crypto_app() {
    unsafe { backend::xmlSecCryptoAppShutdown() };
}

/// Shutdown wrapper library
fn cleanup_xmlsec() {
    unsafe { bindings::xmlSecShutdown() };
}
