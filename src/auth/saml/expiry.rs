//! IdP signing certificates expire, and when the last trusted one does,
//! every login of that tenant fails. Operators get a gauge to alert on and
//! log warnings 30 and 7 days ahead.

use super::metadata::IdpMetadata;
use crate::config::Config;
use crate::metrics::Metrics;

const WARN_DAYS: [i64; 2] = [7, 30];

/// Sets `portcullis_saml_idp_cert_expiry_seconds{connection}` — seconds
/// until the *last* trusted certificate expires (during a rotation the new
/// one keeps logins working) — and, when `log` is set, warns about each
/// certificate inside 30 or 7 days and errors about expired ones.
pub fn report(config: &Config, metrics: &Metrics, now: i64, log: bool) {
    for tenant in &config.tenants {
        for conn in &tenant.connections {
            let Some(saml) = &conn.saml else { continue };
            if saml.idp.is_some() || saml.idp_metadata_url.is_some() {
                // the development IdP: a certificate generated at startup;
                // a metadata URL: its refresh loop sets the gauge
                continue;
            }
            let expiries = match IdpMetadata::load(saml).and_then(|m| m.signing_cert_expiries()) {
                Ok(e) => e,
                Err(e) => {
                    if log {
                        tracing::warn!(connection = %conn.id, error = %e, "cannot read IdP certificate expiry");
                    }
                    continue;
                }
            };
            if let Some(last) = expiries.iter().max() {
                metrics
                    .saml_cert_expiry
                    .with_label_values(&[&conn.id])
                    .set(last - now);
            }
            if !log {
                continue;
            }
            for (n, exp) in expiries.iter().enumerate() {
                let left = exp - now;
                if left <= 0 {
                    tracing::error!(connection = %conn.id, certificate = n, "IdP signing certificate has expired");
                } else if let Some(days) = WARN_DAYS.iter().find(|d| left <= *d * 86_400) {
                    tracing::warn!(
                        connection = %conn.id,
                        certificate = n,
                        days_left = left / 86_400,
                        "IdP signing certificate expires within {days} days; ask the tenant for the new one and list both"
                    );
                }
            }
        }
    }
}
