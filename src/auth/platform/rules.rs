//! Each provider's rules, as pure functions over what it sent (verified
//! already: an ID token's signature, issuer and audience, or GitHub's API
//! over TLS with the user's own token). Every refusal has a closed reason.
//!
//! `tenant_domains` is what the caller resolved for the connection's
//! tenant: its configured domains that are also verified in the store.

use serde_json::{Map, Value};

use super::endpoints::APPLE_PRIVATE_RELAY_DOMAIN;
use crate::auth::ConnectionError;
use crate::auth::oidc::as_bool;
use crate::auth::policy::email_domain;
use crate::config::MICROSOFT_CONSUMER_TENANT;

fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn in_domains(domain: &str, domains: &[String]) -> bool {
    domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

/// Google: a Workspace account (`hd` present) of one of the tenant's
/// domains, with a verified address. A personal account, gmail.com
/// included, has no `hd` and never matches.
pub(crate) fn google(
    claims: &Map<String, Value>,
    tenant_domains: &[String],
) -> Result<(), ConnectionError> {
    let Some(hd) = str_claim(claims, "hd") else {
        return Err(ConnectionError::new(
            "hd_missing",
            "no `hd`: not a Google Workspace account (e.g. a personal gmail.com one)",
        ));
    };
    if !in_domains(hd, tenant_domains) {
        return Err(ConnectionError::new(
            "hd_mismatch",
            format!("`hd` {hd:?} is not one of the tenant's verified domains {tenant_domains:?}"),
        ));
    }
    if as_bool(claims.get("email_verified")) != Some(true) {
        return Err(ConnectionError::new(
            "email_unverified",
            "Google does not say the address is verified",
        ));
    }
    Ok(())
}

/// Microsoft (multi-tenant): never a personal account; only pinned Entra
/// tenants when the connection pins some. Unpinned, any organisation's
/// directory could set any `email`, so only an `email` the directory
/// marks domain-verified (`xms_edov: true`) is accepted; pinned, the
/// tenant's own directory is trusted as for the Entra preset (an explicit
/// `false` is still refused when the login is mapped).
pub(crate) fn microsoft(
    claims: &Map<String, Value>,
    pins: &[String],
) -> Result<(), ConnectionError> {
    let tid = str_claim(claims, "tid").unwrap_or("");
    if tid.eq_ignore_ascii_case(MICROSOFT_CONSUMER_TENANT) {
        return Err(ConnectionError::new(
            "personal_account",
            "a personal Microsoft account (consumer tenant)",
        ));
    }
    if !pins.is_empty() {
        if !pins.iter().any(|p| p.eq_ignore_ascii_case(tid)) {
            return Err(ConnectionError::new(
                "tenant_not_allowed",
                format!("Entra tenant {tid:?} is not one of the connection's tenant_ids"),
            ));
        }
        return Ok(());
    }
    if str_claim(claims, "email").is_none() || as_bool(claims.get("xms_edov")) != Some(true) {
        return Err(ConnectionError::new(
            "email_unverified",
            "unpinned Microsoft connection: needs an `email` with `xms_edov: true` (add both optional claims to the app registration, or pin tenant_ids)",
        ));
    }
    Ok(())
}

/// Sign in with Apple: a verified address that is not a private relay
/// (a relay address proves nothing about a tenant's domain).
pub(crate) fn apple(claims: &Map<String, Value>) -> Result<(), ConnectionError> {
    let email = str_claim(claims, "email").unwrap_or("");
    let relay_domain =
        email_domain(email).is_some_and(|d| d.eq_ignore_ascii_case(APPLE_PRIVATE_RELAY_DOMAIN));
    if as_bool(claims.get("is_private_email")) == Some(true) || relay_domain {
        return Err(ConnectionError::new(
            "apple_private_relay",
            "a private relay address (Hide My Email) stands for no tenant domain",
        ));
    }
    if as_bool(claims.get("email_verified")) != Some(true) {
        return Err(ConnectionError::new(
            "email_unverified",
            "Apple does not say the address is verified",
        ));
    }
    Ok(())
}

/// The name in Apple's first-time `user` form field
/// (`{"name":{"firstName","lastName"},"email"}`). Unsigned, so only the
/// display name is ever taken from it, never the address.
pub(crate) fn apple_first_time_name(user: &str) -> Option<String> {
    let v: Value = serde_json::from_str(user).ok()?;
    let name = v.get("name")?;
    let part = |k: &str| {
        name.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let full: Vec<&str> = [part("firstName"), part("lastName")]
        .into_iter()
        .flatten()
        .collect();
    let full = full.join(" ");
    (!full.is_empty() && full.len() <= 256 && !full.chars().any(char::is_control)).then_some(full)
}

/// One address of GitHub's `GET /user/emails`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct GithubEmail {
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) primary: bool,
    #[serde(default)]
    pub(crate) verified: bool,
}

/// GitHub: the user's primary address when it is verified and in a tenant
/// domain, else the first verified tenant-domain address in the API's
/// order. The primary address alone is never trusted: it may be
/// unverified, and anyone can add any address to an account.
pub(crate) fn github_email(
    emails: &[GithubEmail],
    tenant_domains: &[String],
) -> Result<String, ConnectionError> {
    let in_tenant: Vec<&GithubEmail> = emails
        .iter()
        .filter(|e| email_domain(&e.email).is_some_and(|d| in_domains(&d, tenant_domains)))
        .collect();
    if in_tenant.is_empty() {
        return Err(ConnectionError::new(
            "no_tenant_email",
            format!(
                "none of the account's {} address(es) is in the tenant's verified domains {tenant_domains:?}",
                emails.len()
            ),
        ));
    }
    let verified: Vec<&&GithubEmail> = in_tenant.iter().filter(|e| e.verified).collect();
    let chosen = verified
        .iter()
        .find(|e| e.primary)
        .or_else(|| verified.first())
        .ok_or_else(|| {
            ConnectionError::new(
                "email_unverified",
                format!(
                    "{} address(es) in the tenant's domains, none verified at GitHub",
                    in_tenant.len()
                ),
            )
        })?;
    Ok(chosen.email.trim().to_ascii_lowercase())
}

/// GitHub: `GET /user/memberships/orgs/{org}` answered `status` with
/// `body`. Only an active membership passes; 404 (not a member, or the
/// organisation hides it) and 403 (the organisation has not approved the
/// OAuth app) are refusals like a pending invitation.
pub(crate) fn github_org(status: u16, body: &Value, org: &str) -> Result<(), ConnectionError> {
    match status {
        200 => match body.get("state").and_then(Value::as_str) {
            Some("active") => Ok(()),
            state => Err(ConnectionError::new(
                "org_membership",
                format!("membership of {org} is {state:?}, not active"),
            )),
        },
        403 | 404 => Err(ConnectionError::new(
            "org_membership",
            format!(
                "no visible membership of {org} (HTTP {status}; not a member, or the organisation has not approved this OAuth app)"
            ),
        )),
        s => Err(ConnectionError::new(
            "userinfo",
            format!("organisation membership: HTTP {s}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn acme() -> Vec<String> {
        vec!["acme.com".into(), "acme.org".into()]
    }

    fn reason<T: std::fmt::Debug>(r: Result<T, ConnectionError>) -> &'static str {
        r.unwrap_err().reason
    }

    #[test]
    fn google_needs_workspace_hd_of_the_tenant_and_a_verified_email() {
        let ok = json!({"email": "a@acme.com", "email_verified": true, "hd": "ACME.org"});
        assert!(google(&obj(ok), &acme()).is_ok());
        for (claims, want) in [
            (
                json!({"email": "a@gmail.com", "email_verified": true}),
                "hd_missing",
            ),
            (
                json!({"email": "a@acme.com", "email_verified": true, "hd": ""}),
                "hd_missing",
            ),
            (
                json!({"email": "a@acme.com", "email_verified": true, "hd": 1}),
                "hd_missing",
            ),
            (
                json!({"email": "a@acme.com", "email_verified": true, "hd": "gmail.com"}),
                "hd_mismatch",
            ),
            (
                json!({"email": "a@acme.com", "email_verified": true, "hd": "acme.com.evil"}),
                "hd_mismatch",
            ),
            (
                json!({"email": "a@acme.com", "hd": "acme.com"}),
                "email_unverified",
            ),
            (
                json!({"email": "a@acme.com", "email_verified": "false", "hd": "acme.com"}),
                "email_unverified",
            ),
        ] {
            assert_eq!(
                reason(google(&obj(claims.clone()), &acme())),
                want,
                "{claims}"
            );
        }
        // No verified domain at all: nothing matches.
        let ok = json!({"email": "a@acme.com", "email_verified": true, "hd": "acme.com"});
        assert_eq!(reason(google(&obj(ok), &[])), "hd_mismatch");
    }

    #[test]
    fn microsoft_refuses_personal_accounts_unpinned_tenants_and_unproven_emails() {
        const T1: &str = "6f1e0d2c-1234-4abc-9def-0123456789ab";
        const T2: &str = "11111111-2222-3333-4444-555555555555";
        let work = |extra: Value| {
            let mut c = obj(json!({"tid": T1, "email": "a@acme.com"}));
            c.extend(obj(extra));
            c
        };
        assert!(microsoft(&work(json!({"xms_edov": true})), &[]).is_ok());
        assert!(microsoft(&work(json!({"xms_edov": "true"})), &[]).is_ok());
        assert_eq!(reason(microsoft(&work(json!({})), &[])), "email_unverified");
        assert_eq!(
            reason(microsoft(&work(json!({"xms_edov": false})), &[])),
            "email_unverified"
        );
        let upn_only =
            obj(json!({"tid": T1, "preferred_username": "a@acme.com", "xms_edov": true}));
        assert_eq!(reason(microsoft(&upn_only, &[])), "email_unverified");
        // Pinned: the pinned directory is trusted like the Entra preset.
        assert!(microsoft(&work(json!({})), &[T1.to_uppercase()]).is_ok());
        assert_eq!(
            reason(microsoft(&work(json!({"xms_edov": true})), &[T2.into()])),
            "tenant_not_allowed"
        );
        let personal = obj(
            json!({"tid": MICROSOFT_CONSUMER_TENANT, "email": "a@outlook.com", "xms_edov": true}),
        );
        assert_eq!(reason(microsoft(&personal, &[])), "personal_account");
        assert_eq!(
            reason(microsoft(&personal, &[MICROSOFT_CONSUMER_TENANT.into()])),
            "personal_account"
        );
    }

    #[test]
    fn apple_refuses_relay_addresses_and_unverified_ones() {
        assert!(
            apple(&obj(
                json!({"email": "a@acme.com", "email_verified": "true"})
            ))
            .is_ok()
        );
        assert!(
            apple(&obj(
                json!({"email": "a@acme.com", "email_verified": true, "is_private_email": "false"})
            ))
            .is_ok()
        );
        for (claims, want) in [
            (
                json!({"email": "x@privaterelay.appleid.com", "email_verified": true}),
                "apple_private_relay",
            ),
            (
                json!({"email": "x@PrivateRelay.AppleID.com", "email_verified": true}),
                "apple_private_relay",
            ),
            (
                json!({"email": "a@acme.com", "email_verified": true, "is_private_email": "true"}),
                "apple_private_relay",
            ),
            (
                json!({"email": "a@acme.com", "email_verified": "false"}),
                "email_unverified",
            ),
            (json!({"email": "a@acme.com"}), "email_unverified"),
        ] {
            assert_eq!(reason(apple(&obj(claims.clone()))), want, "{claims}");
        }
    }

    #[test]
    fn apple_first_time_name_is_the_name_only() {
        let user =
            r#"{"name":{"firstName":"Alice","lastName":"Example"},"email":"evil@other.com"}"#;
        assert_eq!(
            apple_first_time_name(user).as_deref(),
            Some("Alice Example")
        );
        assert_eq!(
            apple_first_time_name(r#"{"name":{"firstName":" Al "}}"#).as_deref(),
            Some("Al")
        );
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"name":{}}"#,
            r#"{"name":{"firstName":"a\u0000b"}}"#,
        ] {
            assert_eq!(apple_first_time_name(bad), None, "{bad}");
        }
    }

    fn e(email: &str, primary: bool, verified: bool) -> GithubEmail {
        GithubEmail {
            email: email.into(),
            primary,
            verified,
        }
    }

    #[test]
    fn github_takes_a_verified_tenant_address_primary_first() {
        let d = acme();
        // The primary qualifies: it wins over an earlier one.
        let emails = [e("b@acme.org", false, true), e("A@Acme.com", true, true)];
        assert_eq!(github_email(&emails, &d).unwrap(), "a@acme.com");
        // A primary outside the tenant: the first qualifying in API order.
        let emails = [
            e("me@gmail.com", true, true),
            e("x@acme.com", false, false),
            e("b@acme.org", false, true),
            e("c@acme.com", false, true),
        ];
        assert_eq!(github_email(&emails, &d).unwrap(), "b@acme.org");
        // An unverified tenant primary is never used.
        let emails = [e("a@acme.com", true, false), e("me@gmail.com", false, true)];
        assert_eq!(reason(github_email(&emails, &d)), "email_unverified");
        let emails = [
            e("me@gmail.com", true, true),
            e("a@acme.com.evil.io", false, true),
        ];
        assert_eq!(reason(github_email(&emails, &d)), "no_tenant_email");
        assert_eq!(reason(github_email(&[], &d)), "no_tenant_email");
    }

    #[test]
    fn github_org_membership_must_be_active() {
        assert!(github_org(200, &json!({"state": "active", "role": "member"}), "acme").is_ok());
        assert_eq!(
            reason(github_org(200, &json!({"state": "pending"}), "acme")),
            "org_membership"
        );
        assert_eq!(
            reason(github_org(200, &json!({}), "acme")),
            "org_membership"
        );
        assert_eq!(
            reason(github_org(404, &Value::Null, "acme")),
            "org_membership"
        );
        assert_eq!(
            reason(github_org(403, &Value::Null, "acme")),
            "org_membership"
        );
        assert_eq!(reason(github_org(500, &Value::Null, "acme")), "userinfo");
    }
}
