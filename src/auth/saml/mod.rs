//! SAML 2.0 service provider: SP-initiated login over HTTP-Redirect, the
//! assertion consumer over HTTP-POST. Signatures are checked by samael with
//! libxmlsec1; everything samael leaves to the caller (a signing certificate
//! must exist, algorithms, a required issuer and audience, replay, size and
//! DTDs) is enforced here before or after it.

mod claims;
mod connection;
mod decrypt;
pub mod dev_idp;
pub mod expiry;
mod keys;
mod logout;
mod metadata;
mod presets;
mod remote;
mod request;
mod response;
mod sp_metadata;
mod xml;

pub use claims::AttributeMap;
pub use connection::{SamlConnection, SamlFactory};
pub use logout::IdpLogoutRequest;
pub use metadata::{IdpMetadata, MetadataError};
pub use presets::preset_attributes;
pub use remote::MetadataCache;
pub use sp_metadata::{SpMetadata, sp_metadata_xml};

/// The one-time store kind under which consumed assertion ids are kept,
/// suffixed `:{connection}` (see `connection.rs`); unsuffixed rows are
/// from before that and are still honoured until they expire.
pub const REPLAY_KIND: &str = "saml-assertion";

/// Likewise for the ids of IdP LogoutRequests.
const LOGOUT_REPLAY_KIND: &str = "saml-logout";

/// Largest `SAMLResponse` form value accepted, checked before decoding.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// This SP's entity id and ACS URL for a connection: configured, or
/// defaulted from the public URL.
pub fn sp_ids(
    conn: &crate::config::ConnectionConfig,
    urls: &crate::config::PublicUrls,
) -> (String, String) {
    let cfg = conn.saml.as_ref();
    (
        cfg.and_then(|c| c.sp_entity_id.clone())
            .unwrap_or_else(|| urls.saml_metadata(&conn.id)),
        cfg.and_then(|c| c.acs_url.clone())
            .unwrap_or_else(|| urls.saml_acs(&conn.id)),
    )
}
