//! What each provider sends, as data: which claims carry the email, name
//! and groups, how (and whether) it says an email is verified, and which
//! extra tenant binding its tokens must show.
//!
//! `email_verified`, per provider (see docs/architecture.md, "OIDC"):
//! - **Google, Okta, generic**: the claim is sent and must be `true`
//!   (absent counts as unverified). Google's consumer accounts can carry
//!   unverified addresses; Okta marks self-service emails unverified.
//! - **Entra ID, OneLogin, JumpCloud, Duo**: directories whose email is set
//!   by the customer's own administrators; their ID tokens usually carry no
//!   `email_verified`. Absent is accepted because (a) the connection is
//!   bound to one customer directory (Entra: tenant-specific issuer plus
//!   `tid`; the others: a client registered in that customer's org), and
//!   (b) policy only admits emails of the tenant's DNS-proven domains. An
//!   explicit `false` (or Entra's `xms_edov: false`) is always refused.

/// How a provider expresses that the email belongs to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailVerified {
    /// `email_verified` must be `true`; absent is refused.
    Required,
    /// Absent is accepted (directory-managed email, see module docs);
    /// `false` is refused.
    DirectoryManaged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub email_claims: &'static [&'static str],
    pub name_claims: &'static [&'static str],
    pub groups_claims: &'static [&'static str],
    pub scopes: &'static [&'static str],
    pub email_verified: EmailVerified,
    /// Google Workspace: `hd` must be one of the tenant's domains.
    pub check_hd: bool,
    /// Entra ID: `tid` must equal the tenant id in the issuer.
    pub check_tid: bool,
}

const STANDARD_SCOPES: &[&str] = &["openid", "email", "profile"];

const GENERIC: Preset = Preset {
    name: "generic",
    email_claims: &["email"],
    name_claims: &["name"],
    groups_claims: &["groups"],
    scopes: STANDARD_SCOPES,
    email_verified: EmailVerified::Required,
    check_hd: false,
    check_tid: false,
};

/// The preset called `name` (`generic` for none or an unknown name; config
/// validation refuses unknown names).
pub fn preset(name: Option<&str>) -> Preset {
    match name.unwrap_or("generic") {
        // Google sends no groups over OIDC; `hd` is the Workspace domain.
        "google" => Preset {
            name: "google",
            groups_claims: &[],
            check_hd: true,
            ..GENERIC
        },
        // Entra: `email` is optional and admin-set; `preferred_username`
        // (the UPN) is the usual fallback. Groups are object ids; with too
        // many, Entra sends `_claim_names` instead (overage, reported).
        "entra" => Preset {
            name: "entra",
            email_claims: &["email", "preferred_username"],
            email_verified: EmailVerified::DirectoryManaged,
            check_tid: true,
            ..GENERIC
        },
        "okta" => Preset {
            name: "okta",
            ..GENERIC
        },
        "onelogin" => Preset {
            name: "onelogin",
            email_verified: EmailVerified::DirectoryManaged,
            ..GENERIC
        },
        "jumpcloud" => Preset {
            name: "jumpcloud",
            email_verified: EmailVerified::DirectoryManaged,
            ..GENERIC
        },
        "duo" => Preset {
            name: "duo",
            email_verified: EmailVerified::DirectoryManaged,
            ..GENERIC
        },
        _ => GENERIC,
    }
}

/// The Entra tenant id in a tenant-specific issuer
/// (`https://login.microsoftonline.com/{tid}/v2.0`).
pub(super) fn entra_tenant_id(issuer: &str) -> Option<String> {
    let rest = issuer.split_once("://")?.1;
    let seg = rest.split('/').nth(1)?;
    let ok = seg.len() == 36 && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then(|| seg.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configurable_preset_has_data() {
        for p in crate::config::PRESETS {
            let got = preset(Some(p));
            assert_eq!(got.name, *p);
            assert!(!got.email_claims.is_empty() && got.scopes.contains(&"openid"));
        }
        assert!(preset(Some("google")).check_hd);
        assert_eq!(preset(Some("okta")).email_verified, EmailVerified::Required);
        assert_eq!(
            preset(Some("entra")).email_verified,
            EmailVerified::DirectoryManaged
        );
    }

    #[test]
    fn entra_issuer_tenant() {
        assert_eq!(
            entra_tenant_id(
                "https://login.microsoftonline.com/9188040D-6C67-4C5B-B112-36A304B66DAD/v2.0"
            )
            .as_deref(),
            Some("9188040d-6c67-4c5b-b112-36a304b66dad")
        );
        assert_eq!(
            entra_tenant_id("https://login.microsoftonline.com/common/v2.0"),
            None
        );
        assert_eq!(entra_tenant_id("nonsense"), None);
    }
}
