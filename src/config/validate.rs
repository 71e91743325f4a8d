//! Semantic checks that serde can't express. Each names the key so the
//! operator gets `file:line: key: message`.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::load::Collector;
use super::schema::{Config, ConnectionConfig, Policy, Protocol, SameSite};
use crate::names::{
    is_hostname, is_loopback_host, is_public_mail_domain, is_slug, is_token, normalize_header_name,
};

/// Minimum cookie key length: `cookie::Key::derive_from` needs 256 bits of
/// input keying material.
pub const MIN_SESSION_KEY_BYTES: usize = 32;

pub(crate) fn validate(cfg: &Config, c: &mut Collector<'_>) {
    server(cfg, c);
    listeners(cfg, c);
    upstream(cfg, c);
    routes(cfg, c);
    session(cfg, c);
    headers(cfg, c);
    store(cfg, c);
    if tracing_subscriber::EnvFilter::try_new(&cfg.log.level).is_err() {
        c.push(
            "log.level",
            "not a valid log filter (try `info` or `portcullis=debug,info`)",
        );
    }
    dns(cfg, c);
    tenants(cfg, c);
    login(cfg, c);
    dev_idp(cfg, c);
    webhook(cfg, c);
    scim(cfg, c);
    super::limits::validate(cfg, c);
}

/// `[webhook]`: a URL we can POST to and secrets a receiver can verify.
fn webhook(cfg: &Config, c: &mut Collector<'_>) {
    let Some(w) = &cfg.webhook else { return };
    match w.url.parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some_and(|h| !h.is_empty()) => {}
        _ => c.push("webhook.url", "must be an absolute http:// or https:// URL"),
    }
    if w.secrets.is_empty() {
        c.push(
            "webhook.secrets",
            "at least one secret is required, e.g. secrets = [\"${PORTCULLIS_WEBHOOK_SECRET}\"] \
             (generate: echo whsec_$(openssl rand -base64 32))",
        );
    }
    for (i, s) in w.secrets.iter().enumerate() {
        if let Err(e) = super::schema::decode_webhook_secret(s) {
            c.push(format!("webhook.secrets[{i}]"), e);
        }
    }
    for (key, value) in [
        ("webhook.timeout_seconds", w.timeout_seconds),
        ("webhook.retry_initial_ms", w.retry_initial_ms),
        ("webhook.retry_max_ms", w.retry_max_ms),
        ("webhook.max_age_seconds", w.max_age_seconds),
        ("webhook.poll_interval_ms", w.poll_interval_ms),
        ("webhook.retention_days", w.retention_days),
    ] {
        if value == 0 {
            c.push(key, "must be greater than 0");
        }
    }
    if w.retry_max_ms < w.retry_initial_ms {
        c.push("webhook.retry_max_ms", "must be at least retry_initial_ms");
    }
    if w.concurrency == 0 || w.concurrency > 1024 {
        c.push("webhook.concurrency", "must be between 1 and 1024");
    }
    if let Some(ca) = &w.ca_file
        && !ca.is_file()
    {
        c.push(
            "webhook.ca_file",
            format!("{} is not a readable file", ca.display()),
        );
    }
}

/// `[scim]`: a path of its own, sane limits.
fn scim(cfg: &Config, c: &mut Collector<'_>) {
    let s = &cfg.scim;
    let p = s.path.trim_end_matches('/');
    if !p.starts_with('/') || p.len() < 2 || p.contains(['?', '#', '{', '}', '*', ' ']) {
        c.push("scim.path", "must be an absolute path such as `/scim/v2`");
    } else if format!("{p}/").starts_with(&cfg.server.internal_prefix)
        || cfg.server.internal_prefix.starts_with(&format!("{p}/"))
    {
        c.push("scim.path", "must not overlap server.internal_prefix");
    }
    if s.max_payload_bytes < 1024 {
        c.push("scim.max_payload_bytes", "must be at least 1024");
    }
    if s.max_operations == 0 {
        c.push("scim.max_operations", "must be greater than 0");
    }
    if s.max_results == 0 {
        c.push("scim.max_results", "must be greater than 0");
    }
}

/// `[dev_idp]` signs anything for anyone: it only runs on loopback.
fn dev_idp(cfg: &Config, c: &mut Collector<'_>) {
    let Some(d) = &cfg.dev_idp else { return };
    let public_host = cfg
        .server
        .public_url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned));
    if !public_host.as_deref().is_some_and(is_loopback_host) {
        c.push(
            "dev_idp",
            "the development IdP signs a login for anyone; it needs `server.public_url` on loopback (127.0.0.1, ::1 or localhost)",
        );
    }
    for (i, l) in cfg.listeners.iter().enumerate() {
        if let Ok(a) = l.address.parse::<SocketAddr>()
            && !a.ip().is_loopback()
        {
            c.push(
                "dev_idp",
                format!("the development IdP signs a login for anyone; `listeners[{i}].address` ({}) is not loopback", l.address),
            );
        }
    }
    match cfg.tenants.iter().find(|t| t.id == d.tenant) {
        None => c.push("dev_idp.tenant", format!("no tenant `{}`", d.tenant)),
        Some(t) => {
            let serves = t
                .connections
                .iter()
                .any(|conn| conn.saml.as_ref().and_then(|s| s.idp.as_deref()) == Some("dev"));
            if !serves {
                c.push(
                    "dev_idp.tenant",
                    format!(
                        "tenant `{}` has no saml connection with `idp = \"dev\"`",
                        d.tenant
                    ),
                );
            }
        }
    }
    for (i, t) in cfg.tenants.iter().enumerate() {
        if t.id != d.tenant
            && t.connections
                .iter()
                .any(|conn| conn.saml.as_ref().and_then(|s| s.idp.as_deref()) == Some("dev"))
        {
            c.push(
                format!("tenants[{i}]"),
                "only the `[dev_idp]` tenant may use `idp = \"dev\"`",
            );
        }
    }
    if d.users.is_empty() {
        c.push("dev_idp.users", "list at least one user");
    }
    for (i, u) in d.users.iter().enumerate() {
        if !u.email.contains('@') {
            c.push(format!("dev_idp.users[{i}].email"), "not an email address");
        }
    }
}

/// A SHA-256 certificate fingerprint as operators copy it: 64 hex digits,
/// either case, with or without colons (`AB:CD:…`, openssl's format).
pub fn parse_sha256_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = s.trim().bytes().filter(|b| *b != b':').collect();
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

fn login(cfg: &Config, c: &mut Collector<'_>) {
    if let Some(url) = &cfg.login.app_login_url {
        let ok = (url.starts_with('/') && !url.starts_with("//"))
            || url.starts_with("https://")
            || url.starts_with("http://");
        if !ok {
            c.push(
                "login.app_login_url",
                "must be a path like `/login` or an http(s) URL",
            );
        }
    }
    for (i, e) in cfg.login.password_endpoints.iter().enumerate() {
        if !e.path.starts_with('/') {
            c.push(
                format!("login.password_endpoints[{i}].path"),
                "must be a path starting with `/`",
            );
        }
        if http::Method::from_bytes(e.method.as_bytes()).is_err()
            || e.method != e.method.to_ascii_uppercase()
        {
            c.push(
                format!("login.password_endpoints[{i}].method"),
                "must be an upper-case HTTP method such as `POST`",
            );
        }
        if e.email_field.is_some() && e.email_json_pointer.is_some() {
            c.push(
                format!("login.password_endpoints[{i}].email_json_pointer"),
                "set either email_field or email_json_pointer, not both",
            );
        }
        if let Some(p) = &e.email_json_pointer
            && !p.starts_with('/')
        {
            c.push(
                format!("login.password_endpoints[{i}].email_json_pointer"),
                "a JSON pointer starts with `/`, e.g. `/user/email`",
            );
        }
    }
}

fn dns(cfg: &Config, c: &mut Collector<'_>) {
    let d = &cfg.dns;
    for (i, ns) in d.nameservers.iter().enumerate() {
        if parse_nameserver(ns).is_none() {
            c.push(
                format!("dns.nameservers[{i}]"),
                "must be `IP` or `IP:PORT`, e.g. `1.1.1.1:53`",
            );
        }
    }
    if !is_hostname(&d.record_prefix) {
        c.push(
            "dns.record_prefix",
            "must be a DNS label such as `_portcullis-challenge`",
        );
    }
    // The grace counts from the last time the record was seen; shorter than
    // the re-verification period, one missed check would lapse a domain.
    if d.lapse_grace_seconds < d.reverify_seconds {
        c.push(
            "dns.lapse_grace_seconds",
            format!("must be at least reverify_seconds ({})", d.reverify_seconds),
        );
    }
    for (k, v) in [
        ("check_interval_seconds", d.check_interval_seconds),
        ("pending_recheck_seconds", d.pending_recheck_seconds),
        ("pending_expiry_seconds", d.pending_expiry_seconds),
        ("reverify_seconds", d.reverify_seconds),
        ("lookup_timeout_ms", d.lookup_timeout_ms),
    ] {
        if v == 0 {
            c.push(format!("dns.{k}"), "must be greater than 0");
        }
    }
}

/// `IP` or `IP:PORT` (port 53 by default).
pub fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

fn tenants(cfg: &Config, c: &mut Collector<'_>) {
    let mut ids = HashSet::new();
    let mut domain_owner: std::collections::HashMap<String, &str> =
        std::collections::HashMap::new();
    let mut connection_ids = HashSet::new();
    for (i, t) in cfg.tenants.iter().enumerate() {
        for (j, d) in t.domains.iter().enumerate() {
            let key = format!("tenants[{i}].domains[{j}]");
            let lower = d.to_ascii_lowercase();
            if !is_hostname(&lower) || !lower.contains('.') {
                c.push(key, format!("`{d}` is not a domain name"));
            } else if is_public_mail_domain(&lower) {
                c.push(
                    key,
                    format!("`{d}` is a public mail provider; no tenant can own it"),
                );
            } else if let Some(owner) = domain_owner.get(&lower) {
                c.push(key, format!("`{d}` is already claimed by tenant `{owner}`; a domain belongs to one tenant"));
            } else {
                domain_owner.insert(lower, &t.id);
            }
        }
        for (j, conn) in t.connections.iter().enumerate() {
            let key = format!("tenants[{i}].connections[{j}].id");
            if !is_slug(&conn.id) {
                c.push(key, "use 1-64 characters from a-z, 0-9, `-` and `_`");
            } else if !connection_ids.insert(conn.id.as_str()) {
                c.push(
                    key,
                    format!("duplicate connection id `{}` (ids are global)", conn.id),
                );
            }
            if let Some(p) = &conn.preset
                && !PRESETS.contains(&p.as_str())
            {
                c.push(
                    format!("tenants[{i}].connections[{j}].preset"),
                    format!(
                        "unknown preset `{p}`, expected one of {}",
                        PRESETS.join(", ")
                    ),
                );
            }
            saml(
                conn,
                &format!("tenants[{i}].connections[{j}]"),
                cfg.dev_idp.is_some(),
                c,
            );
            super::validate_oidc::oidc(conn, &format!("tenants[{i}].connections[{j}]"), c);
        }
        for group in t.group_roles.keys() {
            if group.is_empty() {
                c.push(
                    format!("tenants[{i}].group_roles"),
                    "group names must not be empty",
                );
            }
        }
        if t.jit.default_role.as_deref() == Some("") {
            c.push(
                format!("tenants[{i}].jit.default_role"),
                "must not be empty (omit it for no role)",
            );
        }
        if !is_slug(&t.id) {
            c.push(
                format!("tenants[{i}].id"),
                "use 1-64 characters from a-z, 0-9, `-` and `_`",
            );
        } else if !ids.insert(t.id.as_str()) {
            c.push(
                format!("tenants[{i}].id"),
                format!("duplicate tenant id `{}`", t.id),
            );
        }
    }
}

/// A `saml` table belongs to, and is required by, a SAML connection. Its
/// metadata must come from exactly one place and name a signing certificate:
/// samael skips signature checks when the metadata has none.
fn saml(conn: &ConnectionConfig, key: &str, dev_idp: bool, c: &mut Collector<'_>) {
    let s = match (conn.protocol, &conn.saml) {
        (Protocol::Saml, Some(s)) => s,
        (Protocol::Saml, None) => {
            c.push(
                format!("{key}.protocol"),
                "a `saml` connection needs a `saml` table (IdP metadata and certificates)",
            );
            return;
        }
        (Protocol::Oidc, Some(_)) => {
            c.push(
                format!("{key}.saml"),
                "`saml` settings on an `oidc` connection",
            );
            return;
        }
        (Protocol::Oidc, None) => return,
    };
    if let Some(idp) = &s.idp {
        if idp != "dev" {
            c.push(
                format!("{key}.saml.idp"),
                "the only value is `dev` (the built-in development IdP)",
            );
        } else if !dev_idp {
            c.push(
                format!("{key}.saml.idp"),
                "`dev` needs a `[dev_idp]` section (development only)",
            );
        } else if s.idp_metadata_file.is_some()
            || s.idp_entity_id.is_some()
            || s.idp_sso_url.is_some()
            || s.idp_slo_url.is_some()
            || !s.idp_certificates.is_empty()
            || !s.idp_certificate_fingerprints.is_empty()
        {
            c.push(
                format!("{key}.saml.idp"),
                "`dev` brings its own metadata; drop `idp_metadata_file` and the `idp_*` keys",
            );
        }
        return;
    }
    for (n, pin) in s.idp_certificate_fingerprints.iter().enumerate() {
        if parse_sha256_fingerprint(pin).is_none() {
            c.push(
                format!("{key}.saml.idp_certificate_fingerprints[{n}]"),
                "must be a SHA-256 fingerprint: 64 hex digits, colons optional (`openssl x509 -noout -fingerprint -sha256`)",
            );
        }
    }
    let inline = s.idp_entity_id.is_some()
        || s.idp_sso_url.is_some()
        || s.idp_slo_url.is_some()
        || !s.idp_certificates.is_empty();
    if let Some(u) = &s.idp_metadata_url {
        if s.idp_metadata_file.is_some() || inline {
            c.push(
                format!("{key}.saml.idp_metadata_url"),
                "give one of `idp_metadata_url`, `idp_metadata_file` or the inline `idp_*` keys",
            );
        }
        // The metadata names the keys every login is checked with: fetched
        // over plain http, anyone on the path could swap them.
        if !super::validate_oidc::is_trustworthy_url(u) {
            c.push(
                format!("{key}.saml.idp_metadata_url"),
                "must be an https:// URL (plain http only to a loopback host such as 127.0.0.1, for tests)",
            );
        }
        if s.metadata_refresh_seconds == 0 {
            c.push(
                format!("{key}.saml.metadata_refresh_seconds"),
                "must be at least 1",
            );
        }
    }
    match (&s.idp_metadata_file, inline) {
        _ if s.idp_metadata_url.is_some() => {}
        (Some(_), true) => c.push(
            format!("{key}.saml.idp_metadata_file"),
            "give either `idp_metadata_file` or the inline `idp_*` keys, not both",
        ),
        (Some(f), false) if f.is_empty() => {
            c.push(format!("{key}.saml.idp_metadata_file"), "must not be empty")
        }
        (Some(_), false) => {}
        (None, _) => {
            if s.idp_entity_id.as_deref().unwrap_or("").is_empty() {
                c.push(
                    format!("{key}.saml.idp_entity_id"),
                    "required without `idp_metadata_file`",
                );
            }
            for (k, v) in [
                ("idp_sso_url", s.idp_sso_url.as_deref()),
                ("idp_slo_url", s.idp_slo_url.as_deref()),
            ] {
                match v {
                    Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                        c.push(format!("{key}.saml.{k}"), "must be an http(s) URL")
                    }
                    None if k == "idp_sso_url" => c.push(
                        format!("{key}.saml.{k}"),
                        "required without `idp_metadata_file`",
                    ),
                    _ => {}
                }
            }
            if s.idp_certificates.is_empty() {
                c.push(
                    format!("{key}.saml.idp_certificates"),
                    "at least one IdP signing certificate is required; unsigned responses are never accepted",
                );
            }
            for (n, pem) in s.idp_certificates.iter().enumerate() {
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    c.push(
                        format!("{key}.saml.idp_certificates[{n}]"),
                        "must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
                    );
                }
            }
        }
    }
    for (k, v) in [
        ("sp_entity_id", s.sp_entity_id.as_deref()),
        ("acs_url", s.acs_url.as_deref()),
        ("slo_url", s.slo_url.as_deref()),
    ] {
        if v == Some("") {
            c.push(
                format!("{key}.saml.{k}"),
                "must not be empty (omit it for the default)",
            );
        }
    }
    for (k, v) in [("acs_url", &s.acs_url), ("slo_url", &s.slo_url)] {
        if let Some(u) = v
            && !u.is_empty()
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            c.push(format!("{key}.saml.{k}"), "must be an absolute http(s) URL");
        }
    }
    if s.clock_skew_seconds > 600 {
        c.push(
            format!("{key}.saml.clock_skew_seconds"),
            "at most 600; a larger window mostly helps replays",
        );
    }
    if s.sign_requests && s.sp_key_file.is_none() {
        c.push(
            format!("{key}.saml.sign_requests"),
            "needs `sp_key_file` and `sp_cert_file` (the key that signs)",
        );
    }
    if s.sp_key_file.is_some() != s.sp_cert_file.is_some() {
        c.push(
            format!("{key}.saml.sp_key_file"),
            "`sp_key_file` and `sp_cert_file` go together",
        );
    }
    for (k, v) in [
        ("sp_key_file", &s.sp_key_file),
        ("sp_cert_file", &s.sp_cert_file),
    ] {
        if v.as_deref() == Some("") {
            c.push(format!("{key}.saml.{k}"), "must not be empty");
        }
    }
    match (&s.landing_path, s.allow_idp_initiated) {
        (None, true) => c.push(
            format!("{key}.saml.allow_idp_initiated"),
            "needs `landing_path`: where an unsolicited login lands",
        ),
        (Some(p), _) if crate::redirect::safe_return_to(p).is_none() => c.push(
            format!("{key}.saml.landing_path"),
            "must be a same-origin relative path such as `/`",
        ),
        _ => {}
    }
    for (k, v) in [
        ("email_attribute", &s.email_attribute),
        ("name_attribute", &s.name_attribute),
        ("first_name_attribute", &s.first_name_attribute),
        ("last_name_attribute", &s.last_name_attribute),
        ("groups_attribute", &s.groups_attribute),
    ] {
        if v.as_deref() == Some("") {
            c.push(
                format!("{key}.saml.{k}"),
                "must not be empty (omit it for the preset's)",
            );
        }
    }
}

fn server(cfg: &Config, c: &mut Collector<'_>) {
    let s = &cfg.server;
    match s.public_url.parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some()
                && matches!(u.path(), "" | "/")
                && u.query().is_none() => {}
        _ => c.push(
            "server.public_url",
            "must be an origin like `https://app.example.com` (scheme and host, no path)",
        ),
    }
    let p = &s.internal_prefix;
    if !(p.len() >= 3 && p.starts_with('/') && p.ends_with('/')) || p.contains(char::is_whitespace)
    {
        c.push(
            "server.internal_prefix",
            "must start and end with `/` and name a path segment, e.g. `/.portcullis/`",
        );
    }
    if !(1..=256).contains(&s.threads) {
        c.push("server.threads", "must be between 1 and 256");
    }
    if s.max_internal_body_bytes < 1024 {
        c.push("server.max_internal_body_bytes", "must be at least 1024");
    }
}

fn listeners(cfg: &Config, c: &mut Collector<'_>) {
    if cfg.listeners.is_empty() {
        c.push(
            "listeners",
            "at least one `[[listeners]]` entry with an `address` is required",
        );
    }
    let mut seen = HashSet::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        match l.address.parse::<SocketAddr>() {
            Ok(a) => {
                if !seen.insert(a) {
                    c.push(format!("listeners[{i}].address"), "listed twice");
                }
            }
            Err(_) => c.push(
                format!("listeners[{i}].address"),
                "must be `IP:PORT`, e.g. `0.0.0.0:8080`",
            ),
        }
        if let Some(tls) = &l.tls {
            for (k, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    c.push(
                        format!("listeners[{i}].tls.{k}"),
                        format!("cannot read `{path}`: {e}"),
                    );
                }
            }
        }
    }
    match cfg.admin.address.parse::<SocketAddr>() {
        Ok(a) if seen.contains(&a) => {
            c.push("admin.address", "must differ from every public listener")
        }
        Ok(_) => {}
        Err(_) => c.push("admin.address", "must be `IP:PORT`, e.g. `127.0.0.1:9090`"),
    }
}

fn upstream(cfg: &Config, c: &mut Collector<'_>) {
    let u = &cfg.upstream;
    let has_port = u
        .address
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !has_port {
        c.push(
            "upstream.address",
            "must be `HOST:PORT`, e.g. `127.0.0.1:3000`",
        );
    }
    for (k, v) in [
        ("connect_timeout_ms", u.connect_timeout_ms),
        ("read_timeout_ms", u.read_timeout_ms),
        ("idle_timeout_seconds", u.idle_timeout_seconds),
    ] {
        if v == 0 {
            c.push(format!("upstream.{k}"), "must be greater than 0");
        }
    }
    if u.sni.is_some() && !u.tls {
        c.push("upstream.sni", "only applies when `tls = true`");
    }
}

fn routes(cfg: &Config, c: &mut Collector<'_>) {
    let mut seen = HashSet::new();
    for (i, r) in cfg.routes.iter().enumerate() {
        if !r.prefix.starts_with('/') || r.prefix.contains(['?', '#']) {
            c.push(
                format!("routes[{i}].prefix"),
                "must be a path starting with `/`",
            );
        }
        if r.prefix
            .starts_with(cfg.server.internal_prefix.trim_end_matches('/'))
        {
            c.push(
                format!("routes[{i}].prefix"),
                "overlaps the reserved internal prefix (server.internal_prefix)",
            );
        }
        if let Some(h) = &r.host
            && (h.is_empty() || h.contains(['/', ' ', ':']))
        {
            c.push(
                format!("routes[{i}].host"),
                "must be a bare host name, e.g. `app.example.com`",
            );
        }
        let key = (
            r.host.as_ref().map(|h| h.to_ascii_lowercase()),
            r.prefix.to_lowercase(),
        );
        if !seen.insert(key) {
            c.push(
                format!("routes[{i}].prefix"),
                "the same host and prefix appear in an earlier route",
            );
        }
        if r.policy != Policy::Required
            && (!r.allowed_groups.is_empty()
                || !r.allowed_roles.is_empty()
                || !r.allowed_tenants.is_empty())
        {
            c.push(
                format!("routes[{i}].policy"),
                "allowed_groups / allowed_roles / allowed_tenants need `policy = \"required\"`",
            );
        }
        route_tenants(cfg, i, r, c);
    }
}

/// Tenant scoping of a route's conditions. A group or role name without a
/// tenant matches that name from *any* tenant's IdP, so with more than one
/// tenant, tenant B's administrator could open a route meant for tenant A's
/// `admins`: worth a warning that names the fix.
fn route_tenants(cfg: &Config, i: usize, r: &super::schema::RouteConfig, c: &mut Collector<'_>) {
    let known = |t: &str| cfg.tenants.iter().any(|x| x.id == t);
    for (j, t) in r.allowed_tenants.iter().enumerate() {
        if !known(t) {
            c.push(
                format!("routes[{i}].allowed_tenants[{j}]"),
                format!("no tenant `{t}` is configured"),
            );
        }
    }
    if cfg.tenants.len() < 2 {
        return;
    }
    for (list, names) in [
        ("allowed_groups", &r.allowed_groups),
        ("allowed_roles", &r.allowed_roles),
    ] {
        for (j, name) in names.iter().enumerate() {
            let qualified = name.split_once(':').is_some_and(|(t, _)| known(t));
            if !qualified && r.allowed_tenants.len() != 1 {
                c.warn(
                    format!("routes[{i}].{list}[{j}]"),
                    format!(
                        "route `{}`: `{name}` is not tied to a tenant, so any tenant's IdP \
                         can assert it; write `<tenant>:{name}` or set allowed_tenants",
                        r.prefix
                    ),
                );
            }
        }
    }
}

fn session(cfg: &Config, c: &mut Collector<'_>) {
    let s = &cfg.session;
    if !is_token(&s.cookie_name) {
        c.push(
            "session.cookie_name",
            "must be a cookie name (letters, digits, `-`, `_`, `.`)",
        );
    }
    // Browsers drop prefixed cookies that break the prefix's rules; with
    // `secure = true` and no `domain` Portcullis adds `__Host-` itself.
    if s.cookie_name.starts_with("__Host-") && !(s.secure && s.domain.is_none()) {
        c.push(
            "session.cookie_name",
            "a `__Host-` cookie needs `secure = true` and no `domain` (browsers drop it otherwise)",
        );
    }
    if s.cookie_name.starts_with("__Secure-") && !s.secure {
        c.push(
            "session.cookie_name",
            "a `__Secure-` cookie needs `secure = true` (browsers drop it otherwise)",
        );
    }
    if s.keys.is_empty() {
        c.push(
            "session.keys",
            format!(
                "at least one key of {MIN_SESSION_KEY_BYTES}+ bytes is required, e.g. keys = [\"${{PORTCULLIS_SESSION_KEY}}\"]"
            ),
        );
    }
    for (i, k) in s.keys.iter().enumerate() {
        if k.len() < MIN_SESSION_KEY_BYTES {
            c.push(
                format!("session.keys[{i}]"),
                format!(
                    "too short: {} bytes, need at least {MIN_SESSION_KEY_BYTES}",
                    k.len()
                ),
            );
        }
    }
    if s.absolute_lifetime_seconds == 0 {
        c.push(
            "session.absolute_lifetime_seconds",
            "must be greater than 0",
        );
    }
    if s.idle_lifetime_seconds == 0 || s.idle_lifetime_seconds > s.absolute_lifetime_seconds {
        c.push(
            "session.idle_lifetime_seconds",
            "must be greater than 0 and at most absolute_lifetime_seconds",
        );
    }
    if s.same_site == SameSite::None && !s.secure {
        c.push(
            "session.same_site",
            "`none` requires `secure = true` (browsers drop it otherwise)",
        );
    }
    if s.cache_capacity == 0 {
        c.push("session.cache_capacity", "must be greater than 0");
    }
    if s.cache_ttl_seconds == 0 || s.cache_ttl_seconds > 3600 {
        c.push("session.cache_ttl_seconds", "must be between 1 and 3600");
    }
}

fn headers(cfg: &Config, c: &mut Collector<'_>) {
    let h = &cfg.headers;
    let mut seen = HashSet::new();
    let named = [
        ("user", &h.user),
        ("email", &h.email),
        ("name", &h.name),
        ("groups", &h.groups),
        ("roles", &h.roles),
        ("tenant", &h.tenant),
        ("assertion", &h.assertion),
    ];
    let strip = h
        .strip
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("strip[{i}]"), n));
    for (k, name) in named.iter().map(|(k, n)| (k.to_string(), *n)).chain(strip) {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.push(
                format!("headers.{k}"),
                format!("`{name}` is not a valid header name"),
            );
        } else if !seen.insert(normalize_header_name(name)) {
            c.push(format!("headers.{k}"), format!("`{name}` is used twice"));
        }
    }
    if !(1..=3600).contains(&h.assertion_lifetime_seconds) {
        c.push(
            "headers.assertion_lifetime_seconds",
            "must be between 1 and 3600",
        );
    }
}

fn store(cfg: &Config, c: &mut Collector<'_>) {
    let u = &cfg.store.url;
    let ok = ["sqlite://", "postgres://", "postgresql://"]
        .iter()
        .any(|p| u.starts_with(p) && u.len() > p.len());
    if !ok {
        c.push(
            "store.url",
            "must be `sqlite://PATH` or `postgres://USER@HOST/DB`",
        );
    }
    store_keys(cfg, c);
}

/// `[store] encryption_key`: required, because every deployment writes
/// secrets to the store (the generated assertion signing key; OIDC ID tokens
/// and SAML NameIDs kept for logout), and they must not sit there readable.
fn store_keys(cfg: &Config, c: &mut Collector<'_>) {
    let keys = &cfg.store.encryption_key;
    if keys.is_empty() {
        c.push(
            "store.encryption_key",
            "required: Portcullis seals the secrets it keeps in the store (assertion signing key, \
             ID tokens for logout) with it; set encryption_key = \"${PORTCULLIS_STORE_KEY}\" \
             (generate: openssl rand -base64 32)",
        );
    }
    let mut seen = HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        let key = if keys.len() == 1 {
            "store.encryption_key".to_owned()
        } else {
            format!("store.encryption_key[{i}]")
        };
        match super::schema::decode_store_key(k) {
            Err(e) => c.push(key, e),
            Ok(bytes) => {
                if !seen.insert(bytes) {
                    c.push(key, "the same key is listed twice");
                }
            }
        }
    }
}

/// Provider presets the SAML and OIDC connections understand.
pub const PRESETS: &[&str] = &[
    "entra",
    "okta",
    "google",
    "onelogin",
    "jumpcloud",
    "duo",
    "generic",
];
