//! `[platform.providers.*]` and the `platform = "…"` connections that use
//! them: the operator's credentials are complete, the test-only endpoint
//! overrides point at loopback, and each connection names a configured
//! provider, carries only its own provider's rules and belongs to a tenant
//! with domains (a provider account proves nothing without them).

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;

use crate::config::load::Collector;
use crate::config::platform::{
    MICROSOFT_CONSUMER_TENANT, OidcPlatformProvider, PlatformKind, is_github_login, is_guid,
};
use crate::config::schema::{Config, ConnectionConfig, TenantConfig};
use crate::names::is_loopback_host;

/// What an override that is not loopback is told.
const OVERRIDE_LOOPBACK_ONLY: &str =
    "endpoint overrides exist for tests and accept loopback hosts only";
/// What an override is told without the test allowance: the fetching
/// client would refuse loopback anyway (`config::EgressRules`).
const OVERRIDE_NEEDS_ALLOWANCE: &str =
    "endpoint overrides exist for tests and need `[admin] allow_loopback_idp_urls = true`";

pub(super) fn platform(cfg: &Config, c: &mut Collector<'_>) {
    providers(cfg, c);
    for (i, t) in cfg.tenants.iter().enumerate() {
        for (j, conn) in t.connections.iter().enumerate() {
            connection(cfg, t, conn, &format!("tenants[{i}].connections[{j}]"), c);
        }
    }
}

fn providers(cfg: &Config, c: &mut Collector<'_>) {
    let p = &cfg.platform.providers;
    let allowed = cfg.admin.allow_loopback_idp_urls;
    let base = "platform.providers";
    for (name, o) in [("google", &p.google), ("microsoft", &p.microsoft)] {
        if let Some(o) = o {
            oidc_provider(o, &format!("{base}.{name}"), allowed, c);
        }
    }
    if let Some(g) = &p.github {
        let k = |f: &str| format!("{base}.github.{f}");
        credentials(&g.client_id, &g.client_secret, &k(""), c);
        for (f, v) in [
            ("authorize_url", &g.authorize_url),
            ("token_url", &g.token_url),
            ("api_url", &g.api_url),
        ] {
            loopback_override(v.as_deref(), &k(f), allowed, c);
        }
    }
    if let Some(a) = &p.apple {
        let k = |f: &str| format!("{base}.apple.{f}");
        for (f, v) in [
            ("client_id", &a.client_id),
            ("team_id", &a.team_id),
            ("key_id", &a.key_id),
        ] {
            if v.trim().is_empty() {
                c.push(k(f), "must not be empty");
            }
        }
        if !is_p256_pkcs8(&a.private_key) {
            c.push(
                k("private_key"),
                "must be the Sign in with Apple key as downloaded (.p8: a P-256 PKCS#8 PEM), e.g. `${APPLE_SIGNIN_KEY_P8}`",
            );
        }
        loopback_override(a.issuer.as_deref(), &k("issuer"), allowed, c);
    }
}

fn oidc_provider(o: &OidcPlatformProvider, key: &str, allowed: bool, c: &mut Collector<'_>) {
    credentials(&o.client_id, &o.client_secret, &format!("{key}."), c);
    loopback_override(o.issuer.as_deref(), &format!("{key}.issuer"), allowed, c);
}

/// `prefix` ends with the dot before the field name.
fn credentials(id: &str, secret: &str, prefix: &str, c: &mut Collector<'_>) {
    if id.trim().is_empty() {
        c.push(format!("{prefix}client_id"), "must not be empty");
    }
    if secret.is_empty() {
        c.push(
            format!("{prefix}client_secret"),
            "must not be empty; write it as `${ENV_VAR}`",
        );
    }
}

/// An override is `http(s)://` to a loopback host, without query or
/// fragment: the real endpoints are built in, and an override anywhere
/// else would let a configuration file redirect every tenant's logins. They
/// are fetched only under the test allowance (`allowed`).
pub(super) fn loopback_override(
    url: Option<&str>,
    key: &str,
    allowed: bool,
    c: &mut Collector<'_>,
) {
    let Some(u) = url else { return };
    let ok = !u.contains(['?', '#'])
        && u.parse::<http::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(is_loopback_host)
        });
    if !ok {
        c.push(key, OVERRIDE_LOOPBACK_ONLY);
    } else if !allowed {
        c.push(key, OVERRIDE_NEEDS_ALLOWANCE);
    }
}

fn is_p256_pkcs8(pem: &str) -> bool {
    PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).is_ok_and(|der| {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .is_ok()
    })
}

fn connection(
    cfg: &Config,
    tenant: &TenantConfig,
    conn: &ConnectionConfig,
    key: &str,
    c: &mut Collector<'_>,
) {
    let Some(kind) = conn.platform else {
        for (table, set) in [
            ("microsoft", conn.microsoft.is_some()),
            ("github", conn.github.is_some()),
        ] {
            if set {
                c.push(
                    format!("{key}.{table}"),
                    format!("`{table}` rules belong to a `platform = \"{table}\"` connection"),
                );
            }
        }
        return;
    };
    for (table, set) in [
        ("saml", conn.saml.is_some()),
        ("oidc", conn.oidc.is_some()),
        ("preset", conn.preset.is_some()),
    ] {
        if set {
            c.push(
                format!("{key}.{table}"),
                format!(
                    "a `platform` connection has no `{table}`: the operator configured the provider under `[platform.providers.{}]`",
                    kind.as_str()
                ),
            );
        }
    }
    if !cfg.platform.providers.has(kind) {
        c.push(
            format!("{key}.platform"),
            format!(
                "`{0}` is not configured; add `[platform.providers.{0}]` with the operator's client",
                kind.as_str()
            ),
        );
    }
    if tenant.domains.is_empty() {
        c.push(
            format!("{key}.platform"),
            "the tenant lists no domains: a provider account signs in only with an address in one of them",
        );
    }
    if conn.microsoft.is_some() && kind != PlatformKind::Microsoft {
        c.push(
            format!("{key}.microsoft"),
            "`microsoft` rules on a connection of another provider",
        );
    }
    if conn.github.is_some() && kind != PlatformKind::Github {
        c.push(
            format!("{key}.github"),
            "`github` rules on a connection of another provider",
        );
    }
    if let Some(m) = &conn.microsoft {
        for (i, tid) in m.tenant_ids.iter().enumerate() {
            let k = format!("{key}.microsoft.tenant_ids[{i}]");
            if !is_guid(tid) {
                c.push(k, "an Entra tenant id is a GUID (8-4-4-4-12 hex digits)");
            } else if tid.eq_ignore_ascii_case(MICROSOFT_CONSUMER_TENANT) {
                c.push(
                    k,
                    "this is the tenant of personal Microsoft accounts, which are always refused",
                );
            }
        }
    }
    if let Some(g) = &conn.github {
        match &g.org {
            Some(org) if !is_github_login(org) => c.push(
                format!("{key}.github.org"),
                "a GitHub organisation login is 1-39 of A-Z, a-z, 0-9 and `-`",
            ),
            None if g.teams_as_groups => c.push(
                format!("{key}.github.teams_as_groups"),
                "needs `org`: only the teams of the required organisation become groups",
            ),
            _ => {}
        }
    }
}
