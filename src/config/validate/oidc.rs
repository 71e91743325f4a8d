//! Validation of `[tenants.connections.oidc]`: an OIDC connection needs an
//! issuer it can trust, a way to authenticate at the token endpoint, and an
//! algorithm list that can't be downgraded to `none` or to HMAC keyed with
//! a public key.

use crate::config::load::Collector;
use crate::config::schema::{OidcConfig, TokenAuthMethod};

/// Signature algorithms an ID token may use. HMAC (`HS*`) is absent on
/// purpose: its key would be the client secret, or — the classic confusion
/// attack — a public key anyone can fetch.
pub const OIDC_SIGNING_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Authorization request parameters Portcullis sets itself; an operator
/// overriding one would break the flow's binding to the browser.
const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "response_mode",
    "request",
    "request_uri",
];

/// The `oidc` table of an OIDC connection at `key`.
pub(super) fn oidc(o: &OidcConfig, preset: Option<&str>, key: &str, c: &mut Collector<'_>) {
    let k = |name: &str| format!("{key}.oidc.{name}");
    // Where it may point (https, public host) is `tenants::egress`; an
    // issuer is compared exactly, so it has no query either.
    if o.issuer.contains('?') {
        c.push(k("issuer"), "must not carry a query");
    }
    if preset == Some("entra") {
        let lower = o.issuer.to_ascii_lowercase();
        if ["/common/", "/organizations/", "/consumers/"]
            .iter()
            .any(|m| lower.contains(m))
        {
            c.push(
                k("issuer"),
                "Entra ID needs the tenant-specific issuer `https://login.microsoftonline.com/{tenant-id}/v2.0`; multi-tenant endpoints would accept any Entra tenant",
            );
        }
    }
    if o.client_id.trim().is_empty() {
        c.push(k("client_id"), "must not be empty");
    }
    match o.token_auth_method {
        TokenAuthMethod::ClientSecretBasic | TokenAuthMethod::ClientSecretPost => {
            if o.client_secret.as_deref().unwrap_or("").is_empty() {
                c.push(
                    k("client_secret"),
                    "required for this token_auth_method; write it as `${ENV_VAR}`",
                );
            }
            if o.private_key.is_some() {
                c.push(
                    k("private_key"),
                    "only used with token_auth_method = \"private_key_jwt\"",
                );
            }
        }
        TokenAuthMethod::PrivateKeyJwt => {
            match o.private_key.as_deref() {
                Some(p) if p.contains("-----BEGIN PRIVATE KEY-----") => {}
                _ => c.push(
                    k("private_key"),
                    "private_key_jwt needs a PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----), e.g. `${OIDC_KEY}`",
                ),
            }
            if o.client_secret.is_some() {
                c.push(
                    k("client_secret"),
                    "not used with private_key_jwt; remove it",
                );
            }
        }
    }
    if o.allowed_algs.is_empty() {
        c.push(k("allowed_algs"), "must list at least one algorithm");
    }
    for (n, alg) in o.allowed_algs.iter().enumerate() {
        if alg.eq_ignore_ascii_case("none") || alg.to_ascii_uppercase().starts_with("HS") {
            c.push(
                format!("{key}.oidc.allowed_algs[{n}]"),
                format!("`{alg}` is never accepted: unsigned or HMAC ID tokens can be forged"),
            );
        } else if !OIDC_SIGNING_ALGS.contains(&alg.as_str()) {
            c.push(
                format!("{key}.oidc.allowed_algs[{n}]"),
                format!(
                    "unknown algorithm `{alg}`, expected one of {}",
                    OIDC_SIGNING_ALGS.join(", ")
                ),
            );
        }
    }
    if let Some(scopes) = &o.scopes {
        for (n, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.contains(char::is_whitespace) {
                c.push(
                    format!("{key}.oidc.scopes[{n}]"),
                    "a scope is one non-empty word",
                );
            }
        }
    }
    for name in o.extra_auth_params.keys() {
        if RESERVED_AUTH_PARAMS.contains(&name.as_str()) || name.is_empty() {
            c.push(
                k("extra_auth_params"),
                format!("`{name}` is set by Portcullis and can't be overridden"),
            );
        }
    }
    for (name, v) in [
        ("email_claim", &o.email_claim),
        ("name_claim", &o.name_claim),
        ("groups_claim", &o.groups_claim),
        ("private_key_id", &o.private_key_id),
    ] {
        if v.as_deref() == Some("") {
            c.push(k(name), "must not be empty (omit it for the default)");
        }
    }
    for (n, a) in o.trusted_audiences.iter().enumerate() {
        if a.is_empty() || *a == o.client_id {
            c.push(
                format!("{key}.oidc.trusted_audiences[{n}]"),
                "must be another client's id (not empty, not client_id)",
            );
        }
    }
    if o.clock_skew_seconds > 600 {
        c.push(
            k("clock_skew_seconds"),
            "at most 600; a larger window mostly helps replays",
        );
    }
    if !(60..=86_400).contains(&o.discovery_refresh_seconds) {
        c.push(k("discovery_refresh_seconds"), "between 60 and 86400");
    }
    if !(1..=3600).contains(&o.jwks_min_refresh_seconds) {
        c.push(k("jwks_min_refresh_seconds"), "between 1 and 3600");
    }
    if !(100..=60_000).contains(&o.http_timeout_ms) {
        c.push(k("http_timeout_ms"), "between 100 and 60000");
    }
    for (name, v) in [
        ("machine_audience", &o.machine_audience),
        ("machine_role", &o.machine_role),
        ("machine_groups_claim", &o.machine_groups_claim),
    ] {
        if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
            c.push(k(name), "must not be empty (omit it to turn it off)");
        }
    }
    if o.machine_audience.is_none()
        && (o.machine_role.is_some() || o.machine_groups_claim.is_some())
    {
        c.push(
            k("machine_audience"),
            "machine_role and machine_groups_claim need machine_audience (which turns machine access on)",
        );
    }
    if o.machine_audience.as_deref() == Some(o.client_id.as_str()) {
        c.push(
            k("machine_audience"),
            "must not be client_id: an ID token issued to Portcullis would pass as an access token",
        );
    }
    if let Some(u) = &o.post_logout_redirect_uri
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        c.push(
            k("post_logout_redirect_uri"),
            "must be an absolute http(s) URL registered at the provider",
        );
    }
}
