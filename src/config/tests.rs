use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "SESSION_KEY" => Some("k".repeat(40)),
        "STORE_KEY" => Some(STORE_KEY.into()),
        _ => None,
    }
}

/// Base64 of 32 bytes, a valid `[store] encryption_key`.
const STORE_KEY: &str = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=";

// The store key sits on the first line (an inline table) so the line
// numbers the tests below assert are those of the file without it.
const MINIMAL: &str = r#"store = { encryption_key = "${STORE_KEY}" }
[[listeners]]
address = "127.0.0.1:8080"

[session]
keys = ["${SESSION_KEY}"]
"#;

fn errors(text: &str) -> Vec<String> {
    match from_str(text, "t.toml", &env) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let cfg = from_str(MINIMAL, "t.toml", &env).unwrap();
    assert_eq!(cfg.session.keys, vec!["k".repeat(40)]);
    assert_eq!(cfg.session.cookie_name, "portcullis_session");
    assert!(cfg.session.secure);
    assert_eq!(cfg.session.same_site, SameSite::Lax);
    assert_eq!(cfg.headers.user, "X-Forwarded-User");
    assert_eq!(cfg.server.internal_prefix, "/.portcullis/");
    assert_eq!(cfg.server.default_policy, Policy::Required);
    assert_eq!(cfg.store.url, "sqlite://data/portcullis.db");
}

#[test]
fn every_error_is_reported_with_file_line_and_key() {
    let text = r#"
[[listeners]]
address = "not-an-address"

[session]
keys = ["${SESSION_KEY}"]
secure = "yes"
cokie_name = "x"

[[routes]]
prefix = "/"
policy = "required"

[[routes]]
prefix = "/api"
policy = "sometimes"

[upstream]
address = "${MISSING_VAR}:80"
"#;
    let errs = errors(text);
    assert!(
        errs.contains(
            &"t.toml:3: listeners[0].address: must be `IP:PORT`, e.g. `0.0.0.0:8080`".to_string()
        ) || errs
            .iter()
            .any(|e| e.starts_with("t.toml:3: listeners[0].address:")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(
            "t.toml:19: upstream.address: environment variable `MISSING_VAR` is not set"
        )),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:16: routes[1].policy: unknown variant `sometimes`")),
        "{errs:#?}"
    );
    // the session section has two errors but serde stops at the first one
    // inside a section; it still names line and key.
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:7: session.secure:")
                || e.starts_with("t.toml:8: session.cokie_name:")),
        "{errs:#?}"
    );
}

#[test]
fn unknown_keys_name_the_key_and_its_line() {
    let text = format!("{MINIMAL}\n[headers]\nuser = \"X-User\"\nasertion = \"X-A\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("t.toml:10: headers.asertion: unknown field `asertion`"),
        "{errs:#?}"
    );
}

#[test]
fn unknown_section_and_missing_required_key() {
    let text = format!("{MINIMAL}\n[sesion]\nx = 1\n\n[[routes]]\nprefix = \"/a\"\n");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:8: sesion: unknown section")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:11: routes[0].policy: missing field `policy`")),
        "{errs:#?}"
    );
}

#[test]
fn syntax_errors_carry_the_line() {
    let errs = errors("[[listeners]]\naddress = \"127.0.0.1:1\"\n\n[session\nkeys = []\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("t.toml:4: (file): invalid TOML"),
        "{errs:#?}"
    );
}

#[test]
fn semantic_checks() {
    let text = r#"
[server]
public_url = "ftp://x"
internal_prefix = "portcullis"

[[listeners]]
address = "127.0.0.1:8080"

[admin]
address = "127.0.0.1:8080"

[session]
keys = ["short"]
idle_lifetime_seconds = 999999
same_site = "none"
secure = false

[headers]
user = "X-Same"
email = "x_same"

[[routes]]
prefix = "/pub"
policy = "public"
allowed_groups = ["a"]

[store]
url = "mysql://x"

[[tenants]]
id = "Acme Corp"
"#;
    let errs = errors(text);
    for want in [
        "t.toml:3: server.public_url:",
        "t.toml:4: server.internal_prefix:",
        "t.toml:10: admin.address: must differ",
        "t.toml:13: session.keys[0]: too short: 5 bytes",
        "t.toml:14: session.idle_lifetime_seconds:",
        "t.toml:15: session.same_site:",
        "t.toml:20: headers.email: `x_same` is used twice",
        "t.toml:24: routes[0].policy: allowed_groups",
        "t.toml:28: store.url:",
        "t.toml:31: tenants[0].id:",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    // errors come out in file order
    let lines: Vec<usize> = errs
        .iter()
        .map(|e| e.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn missing_session_key_is_an_error_not_a_default() {
    let errs = errors("[[listeners]]\naddress = \"127.0.0.1:8080\"\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("session.keys: at least one key")),
        "{errs:#?}"
    );
}

#[test]
fn hostile_input_never_panics() {
    for text in [
        "",
        "\u{0}",
        "[[[[",
        "a = \"${",
        "listeners = 5",
        "routes = [1, 2]",
        "[session]\nkeys = [1]",
        &"[x]\n".repeat(10_000),
        &format!("k = \"{}\"", "a".repeat(1 << 20)),
    ] {
        let _ = from_str(text, "t.toml", &env);
    }
}

#[test]
fn shipped_configs_are_valid() {
    let env = |n: &str| match n {
        "PORTCULLIS_SESSION_KEY" | "PORTCULLIS_SESSION_KEY_OLD" => Some("x".repeat(48)),
        "PORTCULLIS_STORE_KEY" | "PORTCULLIS_OLD_STORE_KEY" => Some(STORE_KEY.into()),
        "PORTCULLIS_DATA_DIR" => Some("/tmp/portcullis-demo".into()),
        "LOAD_LISTEN" => Some("127.0.0.1:1".into()),
        "LOAD_ADMIN" => Some("127.0.0.1:2".into()),
        "LOAD_UPSTREAM" => Some("127.0.0.1:3".into()),
        "LOAD_DATA" => Some("/tmp/load.db".into()),
        _ => None,
    };
    for (name, text) in [
        (
            "config/portcullis.example.toml",
            include_str!("../../config/portcullis.example.toml"),
        ),
        ("config/demo.toml", include_str!("../../config/demo.toml")),
        ("benches/load.toml", include_str!("../../benches/load.toml")),
        (
            "docker/portcullis.toml",
            include_str!("../../docker/portcullis.toml"),
        ),
    ] {
        if let Err(e) = from_str(text, name, &env) {
            panic!("{e}");
        }
    }
}

#[test]
fn tenants_domains_and_connections_are_validated() {
    let text = format!(
        r#"{MINIMAL}
[dns]
nameservers = ["127.0.0.1:5353", "1.1.1.1", "resolver.example"]

[[tenants]]
id = "acme"
domains = ["acme.com", "GMAIL.com", "not a domain"]
enforce_sso = true
group_roles = {{ "Engineering" = ["developer"] }}
[[tenants.connections]]
id = "acme-okta"
protocol = "saml"
preset = "okta"

[[tenants]]
id = "globex"
domains = ["acme.com", "globex.com"]
[[tenants.connections]]
id = "acme-okta"
protocol = "oidc"
preset = "myidp"
"#
    );
    let errs = errors(&text);
    for want in [
        "t.toml:9: dns.nameservers[2]: must be `IP` or `IP:PORT`",
        "t.toml:13: tenants[0].domains[1]: `GMAIL.com` is a public mail provider",
        "t.toml:13: tenants[0].domains[2]: `not a domain` is not a domain name",
        "t.toml:23: tenants[1].domains[0]: `acme.com` is already claimed by tenant `acme`",
        "t.toml:25: tenants[1].connections[0].id: duplicate connection id `acme-okta`",
        "t.toml:27: tenants[1].connections[0].preset: unknown preset `myidp`",
        "tenants[0].connections[0].protocol: a `saml` connection needs a `saml` table",
        "tenants[1].connections[0].protocol: an `oidc` connection needs an `oidc` table",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 8, "{errs:#?}");
}

const PEM: &str = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----";

#[test]
fn saml_settings_defaults_and_validation() {
    let text = format!(
        r#"{MINIMAL}
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "acme-okta"
protocol = "saml"
[tenants.connections.saml]
idp_entity_id = "http://idp.example/"
idp_sso_url = "https://idp.example/sso"
idp_certificates = ["{PEM}"]
"#
    );
    let cfg = from_str(&text, "t.toml", &env).unwrap();
    let s = cfg.tenants[0].connections[0].saml.clone().unwrap();
    assert_eq!(s.clock_skew_seconds, 120);
    assert!(!s.allow_sha1 && !s.sign_requests && !s.allow_idp_initiated);
    assert_eq!(s.sp_entity_id, None);

    let bad = format!(
        r#"{MINIMAL}
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "a"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_file = "/m.xml"
idp_entity_id = "x"
[[tenants.connections]]
id = "b"
protocol = "saml"
[tenants.connections.saml]
idp_sso_url = "ftp://idp"
idp_certificates = ["not pem"]
clock_skew_seconds = 3600
sign_requests = true
email_attribute = ""
[[tenants.connections]]
id = "c"
protocol = "oidc"
[tenants.connections.saml]
idp_metadata_file = "/m.xml"
[[tenants.connections]]
id = "d"
protocol = "saml"
[tenants.connections.saml]
idp_entity_id = "x"
idp_sso_url = "https://idp/sso"
[[tenants.connections]]
id = "e"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_url = "file:///etc/passwd"
idp_entity_id = "x"
metadata_refresh_seconds = 0
allow_idp_initiated = true
sp_cert_file = "/c.pem"
[[tenants.connections]]
id = "f"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_url = "https://idp.example/metadata"
landing_path = "//evil.example"
"#
    );
    let errs = errors(&bad);
    for want in [
        "tenants[0].connections[0].saml.idp_metadata_file: give either",
        "tenants[0].connections[1].saml.idp_entity_id: required",
        "tenants[0].connections[1].saml.idp_sso_url: must be an http(s) URL",
        "tenants[0].connections[1].saml.idp_certificates[0]: must be a PEM certificate",
        "tenants[0].connections[1].saml.clock_skew_seconds: at most 600",
        "tenants[0].connections[1].saml.sign_requests: needs `sp_key_file`",
        "tenants[0].connections[1].saml.email_attribute: must not be empty",
        "tenants[0].connections[2].saml: `saml` settings on an `oidc` connection",
        "tenants[0].connections[3].saml.idp_certificates: at least one IdP signing certificate",
        "tenants[0].connections[4].saml.idp_metadata_url: give one of",
        "tenants[0].connections[4].saml.idp_metadata_url: not fetched by this server: not an absolute http(s) URL",
        "tenants[0].connections[4].saml.metadata_refresh_seconds: must be at least 1",
        "tenants[0].connections[4].saml.allow_idp_initiated: needs `landing_path`",
        "tenants[0].connections[4].saml.sp_key_file: `sp_key_file` and `sp_cert_file` go together",
        "tenants[0].connections[5].saml.landing_path: must be a same-origin relative path",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 15, "{errs:#?}");
    let unknown = format!("{text}surprise = 1\n");
    assert!(
        errors(&unknown).iter().any(|e| e.contains("surprise")),
        "{:#?}",
        errors(&unknown)
    );
}

#[test]
fn saml_metadata_urls_are_https_and_pins_are_sha256() {
    let text = format!(
        r#"{MINIMAL}
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "a"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_url = "http://idp.example/metadata"
idp_certificate_fingerprints = ["AB:CD", "{good}", "{good}x"]
[[tenants.connections]]
id = "b"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_url = "http://127.0.0.1:8080/metadata"
idp_certificate_fingerprints = ["{good_colons}"]
[[tenants.connections]]
id = "c"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_url = "http://[::1]:8080/metadata"
[[tenants.connections]]
id = "d"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_url = "https://idp.example/metadata"
"#,
        good = "0".repeat(64),
        good_colons = ["Ab"; 32].join(":"),
    );
    let errs = errors(&text);
    for want in [
        "t.toml:15: tenants[0].connections[0].saml.idp_metadata_url: not fetched by this server: must be https://",
        // Loopback only under the test allowance (below).
        "t.toml:21: tenants[0].connections[1].saml.idp_metadata_url: not fetched by this server: must be https://",
        "t.toml:27: tenants[0].connections[2].saml.idp_metadata_url: not fetched by this server: must be https://",
        "t.toml:16: tenants[0].connections[0].saml.idp_certificate_fingerprints[0]: must be a SHA-256 fingerprint",
        "tenants[0].connections[0].saml.idp_certificate_fingerprints[2]: must be a SHA-256 fingerprint",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 5, "{errs:#?}");
    let allowed = text.replacen(
        "[[tenants]]",
        "[admin]\nallow_loopback_idp_urls = true\n[[tenants]]",
        1,
    );
    assert_eq!(errors(&allowed).len(), 3, "{:#?}", errors(&allowed));
    assert_eq!(
        parse_sha256_fingerprint(&["Ab"; 32].join(":")),
        Some([0xab; 32])
    );
    assert_eq!(parse_sha256_fingerprint(&"0f".repeat(32)), Some([0x0f; 32]));
    assert_eq!(parse_sha256_fingerprint(&"0f".repeat(31)), None);
    assert_eq!(parse_sha256_fingerprint(&"0g".repeat(32)), None);
}

#[test]
fn tenant_defaults() {
    let text = format!("{MINIMAL}\n[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n");
    let cfg = from_str(&text, "t.toml", &env).unwrap();
    let t = &cfg.tenants[0];
    assert!(!t.enforce_sso);
    assert!(t.jit.enabled);
    assert_eq!(t.jit.default_role.as_deref(), Some("member"));
    assert!(t.connections.is_empty());
    assert_eq!(cfg.dns.record_prefix, "_portcullis-challenge");
    assert_eq!(
        parse_nameserver("10.0.0.1"),
        Some("10.0.0.1:53".parse().unwrap())
    );
}

#[test]
fn oidc_settings_defaults_and_validation() {
    let text = format!(
        r#"{MINIMAL}
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "acme-google"
protocol = "oidc"
preset = "google"
[tenants.connections.oidc]
issuer = "https://accounts.google.com"
client_id = "123.apps.googleusercontent.com"
client_secret = "${{SESSION_KEY}}"
"#
    );
    let cfg = from_str(&text, "t.toml", &env).unwrap();
    let o = cfg.tenants[0].connections[0].oidc.clone().unwrap();
    assert_eq!(o.client_secret.as_deref(), Some("k".repeat(40).as_str()));
    assert_eq!(o.allowed_algs, vec!["RS256", "ES256", "PS256"]);
    assert_eq!(o.clock_skew_seconds, 120);
    assert_eq!(o.token_auth_method, TokenAuthMethod::ClientSecretBasic);
    assert!(o.userinfo && o.rp_logout && o.scopes.is_none());
    assert_eq!(o.discovery_refresh_seconds, 3600);

    let bad = format!(
        r#"{MINIMAL}
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "a"
protocol = "oidc"
preset = "entra"
[tenants.connections.oidc]
issuer = "https://login.microsoftonline.com/common/v2.0"
client_id = ""
allowed_algs = ["none", "HS256", "RS999"]
clock_skew_seconds = 3600
extra_auth_params = {{ state = "x", prompt = "login" }}
trusted_audiences = [""]
[[tenants.connections]]
id = "b"
protocol = "oidc"
[tenants.connections.oidc]
issuer = "http://idp.example.com"
client_id = "c"
token_auth_method = "private_key_jwt"
client_secret = "s"
scopes = ["openid", "two words"]
post_logout_redirect_uri = "/relative"
http_timeout_ms = 1
[[tenants.connections]]
id = "c"
protocol = "saml"
[tenants.connections.saml]
idp_entity_id = "x"
idp_sso_url = "https://idp/sso"
idp_certificates = ["{PEM}"]
[tenants.connections.oidc]
issuer = "https://idp"
client_id = "c"
[[tenants.connections]]
id = "d"
protocol = "oidc"
[tenants.connections.oidc]
issuer = "http://127.0.0.1:9999/op"
client_id = "c"
"#
    );
    let errs = errors(&bad);
    for want in [
        "tenants[0].connections[0].oidc.issuer: Entra ID needs the tenant-specific issuer",
        "tenants[0].connections[0].oidc.client_id: must not be empty",
        "tenants[0].connections[0].oidc.client_secret: required",
        "tenants[0].connections[0].oidc.allowed_algs[0]: `none` is never accepted",
        "tenants[0].connections[0].oidc.allowed_algs[1]: `HS256` is never accepted",
        "tenants[0].connections[0].oidc.allowed_algs[2]: unknown algorithm `RS999`",
        "tenants[0].connections[0].oidc.clock_skew_seconds: at most 600",
        "tenants[0].connections[0].oidc.extra_auth_params: `state` is set by Portcullis",
        "tenants[0].connections[0].oidc.trusted_audiences[0]: must be another client's id",
        "tenants[0].connections[1].oidc.issuer: not fetched by this server: must be https://",
        "tenants[0].connections[3].oidc.issuer: not fetched by this server: must be https://",
        "tenants[0].connections[1].oidc.private_key: private_key_jwt needs a PKCS#8 PEM key",
        "tenants[0].connections[1].oidc.client_secret: not used with private_key_jwt",
        "tenants[0].connections[1].oidc.scopes[1]: a scope is one non-empty word",
        "tenants[0].connections[1].oidc.post_logout_redirect_uri: must be an absolute http(s) URL",
        "tenants[0].connections[1].oidc.http_timeout_ms: between 100 and 60000",
        "tenants[0].connections[2].oidc: `oidc` settings on a `saml` connection",
        "tenants[0].connections[3].oidc.client_secret: required",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 18, "{errs:#?}");
}

/// The commented-out tenant example (SAML and OIDC connections) is a valid
/// configuration once uncommented, so copying it is a safe start.
#[test]
fn example_tenant_section_is_valid_when_uncommented() {
    let example = include_str!("../../config/portcullis.example.toml");
    let start = example.find("# [[tenants]]").unwrap();
    let end = example.find("# Development IdP").unwrap();
    let uncommented: String = example[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").or(l.strip_prefix("#")).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(uncommented.contains("[tenants.connections.oidc]"));
    let text = format!("{MINIMAL}\n{uncommented}\n");
    let env = |n: &str| match n {
        "ACME_GOOGLE_CLIENT_SECRET" => Some("from-the-environment".into()),
        other => env(other),
    };
    let cfg = from_str(&text, "example", &env).unwrap_or_else(|e| panic!("{e}"));
    let oidc = cfg.tenants[0].connections[1].oidc.as_ref().unwrap();
    assert_eq!(oidc.client_secret.as_deref(), Some("from-the-environment"));
    assert_eq!(oidc.extra_auth_params["prompt"], "select_account");
}

#[test]
fn scim_defaults_and_validation() {
    let cfg = from_str(MINIMAL, "t.toml", &env).unwrap();
    assert!(cfg.scim.enabled);
    assert_eq!(cfg.scim.path, "/scim/v2");
    assert_eq!(cfg.scim.max_payload_bytes, 1024 * 1024);
    assert_eq!(cfg.scim.max_operations, 100);
    assert_eq!(cfg.scim.max_results, 100);

    let text = format!(
        "{MINIMAL}\n[scim]\npath = \"scim\"\nmax_payload_bytes = 10\nmax_operations = 0\nmax_results = 0\n"
    );
    let errs = errors(&text);
    for key in [
        "scim.path",
        "scim.max_payload_bytes",
        "scim.max_operations",
        "scim.max_results",
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with("t.toml:") && e.contains(key)),
            "{key}: {errs:?}"
        );
    }
    let overlap = format!("{MINIMAL}\n[scim]\npath = \"/.portcullis/scim\"\n");
    assert!(errors(&overlap).iter().any(|e| e.contains("overlap")));
    let unknown = format!("{MINIMAL}\n[scim]\nbulk = 5\n");
    assert!(errors(&unknown).iter().any(|e| e.contains("bulk")));
}

/// `[tenants.scim]`: off by default; a misspelt key is an error with its
/// line, never a silently ignored (and so fail-open) setting.
#[test]
fn tenant_scim_settings() {
    let text = format!("{MINIMAL}\n[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n");
    let cfg = from_str(&text, "t.toml", &env).unwrap();
    assert!(!cfg.tenants[0].scim.allow_external_emails);
    let on = format!("{text}[tenants.scim]\nallow_external_emails = true\n");
    let cfg = from_str(&on, "t.toml", &env).unwrap();
    assert!(cfg.tenants[0].scim.allow_external_emails);
    let typo = format!("{text}[tenants.scim]\nallow_external_email = true\n");
    let errs = errors(&typo);
    assert!(
        errs.iter().any(|e| e.starts_with("t.toml:12:")
            && e.contains("allow_external_email")
            && e.contains("unknown field")),
        "{errs:#?}"
    );
}

/// `groups_source` and `[tenants.scim] group_name`: defaults, each value,
/// and the settings that could only leave users without groups or that
/// nothing would read, each reported with its file, line and key.
#[test]
fn tenant_groups_source_and_group_name() {
    let base = format!("{MINIMAL}\n[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n");
    let cfg = from_str(&base, "t.toml", &env).unwrap();
    assert_eq!(cfg.tenants[0].groups_source, None);
    assert_eq!(cfg.tenants[0].scim.group_name, ScimGroupName::DisplayName);
    for (value, source) in [
        ("idp", GroupsSource::Idp),
        ("scim", GroupsSource::Scim),
        ("both", GroupsSource::Both),
    ] {
        let text = format!("{base}groups_source = \"{value}\"\n");
        let cfg = from_str(&text, "t.toml", &env).unwrap();
        assert_eq!(cfg.tenants[0].groups_source, Some(source));
    }
    let text = format!("{base}[tenants.scim]\ngroup_name = \"externalId\"\n");
    let cfg = from_str(&text, "t.toml", &env).unwrap();
    assert_eq!(cfg.tenants[0].scim.group_name, ScimGroupName::ExternalId);

    let errs = errors(&format!("{base}groups_source = \"directory\"\n"));
    assert!(
        errs.iter()
            .any(|e| e
                .starts_with("t.toml:11: tenants[0].groups_source: unknown variant `directory`")),
        "{errs:#?}"
    );
    let errs = errors(&format!(
        "{base}[tenants.scim]\ngroup_name = \"externalid\"\n"
    ));
    assert!(
        errs.iter().any(|e| e
            .starts_with("t.toml:12: tenants[0].scim.group_name: unknown variant `externalid`")),
        "{errs:#?}"
    );

    // SCIM off: a SCIM-only source would leave everyone without groups,
    // and a group name nobody reads is a mistake; both reported at once.
    let off = format!(
        "{MINIMAL}\n[scim]\nenabled = false\n\n[[tenants]]\nid = \"acme\"\n\
         groups_source = \"scim\"\n\n[tenants.scim]\ngroup_name = \"externalId\"\n"
    );
    let errs = errors(&off);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "t.toml:13: tenants[0].groups_source: `scim` needs `[scim] enabled = true`"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with(
            "t.toml:16: tenants[0].scim.group_name: has no effect with `[scim] enabled = false`"
        ),
        "{errs:#?}"
    );
    // SCIM on, but the IdP's groups only: the name is never read.
    let idp =
        format!("{base}groups_source = \"idp\"\n\n[tenants.scim]\ngroup_name = \"externalId\"\n");
    let errs = errors(&idp);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "t.toml:14: tenants[0].scim.group_name: has no effect with `groups_source = \"idp\"`"
        ),
        "{errs:#?}"
    );
}

/// `[[headers.extra]]`, `assertion_claims` and `header_claims`: a good
/// mapping loads; an extra header posing as an identity, forwarding,
/// framing or credential header, a bad join, a reserved assertion claim
/// and an override of no extra header are each reported with file, line
/// and key.
#[test]
fn extra_headers_cannot_shadow_reserved_names() {
    let good = format!(
        "{MINIMAL}
[headers]
assertion_claims = [\"department\", \"employee_id\"]
[[headers.extra]]
name = \"X-Forwarded-Department\"
claim = \"department\"
[[headers.extra]]
name = \"X-Badges\"
claim = \"badges\"
join = \"; \"

[[tenants]]
id = \"acme\"
[[tenants.connections]]
id = \"acme-saml\"
protocol = \"oidc\"
[tenants.connections.oidc]
issuer = \"https://idp.example.com\"
client_id = \"c\"
client_secret = \"s\"
[tenants.connections.header_claims]
\"x_forwarded_department\" = \"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department\"
"
    );
    let cfg = from_str(&good, "t.toml", &env).unwrap_or_else(|e| panic!("{e}"));
    let h = &cfg.headers;
    assert_eq!(h.extra[1].join.as_deref(), Some("; "));
    let conn = &cfg.tenants[0].connections[0];
    assert_eq!(
        h.claim_sources(&conn.header_claims),
        [
            (
                "department".to_owned(),
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department".to_owned()
            ),
            ("badges".to_owned(), "badges".to_owned()),
            ("employee_id".to_owned(), "employee_id".to_owned()),
        ]
    );
    assert_eq!(
        h.claim_sources(&Default::default())[0],
        ("department".to_owned(), "department".to_owned())
    );

    let bad = format!(
        "{MINIMAL}
[headers]
assertion_claims = [\"groups\", \"dept\", \"dept\", \"\"]
[[headers.extra]]
name = \"X_Forwarded_Email\"
claim = \"mail\"
[[headers.extra]]
name = \"X-Forwarded-For\"
claim = \"ip\"
[[headers.extra]]
name = \"Authorization\"
claim = \"token\"
[[headers.extra]]
name = \"X Dept\"
claim = \"\"
join = \"%\"
[[headers.extra]]
name = \"X-Dept\"
claim = \"dept\"
[[headers.extra]]
name = \"x_dept\"
claim = \"dept\"
join = \"\"

[[tenants]]
id = \"acme\"
[[tenants.connections]]
id = \"acme-oidc\"
protocol = \"oidc\"
[tenants.connections.oidc]
issuer = \"https://idp.example.com\"
client_id = \"c\"
client_secret = \"s\"
[tenants.connections.header_claims]
\"X-Unknown\" = \"dept\"
"
    );
    let errs = errors(&bad);
    for expected in [
        "t.toml:9: headers.assertion_claims[0]: `groups` is a claim Portcullis sets",
        "t.toml:9: headers.assertion_claims[2]: `dept` is listed twice",
        "t.toml:9: headers.assertion_claims[3]: must name",
        "t.toml:11: headers.extra[0].name: `X_Forwarded_Email` is already the `headers.email` header",
        "t.toml:14: headers.extra[1].name: `X-Forwarded-For` is reserved",
        "t.toml:17: headers.extra[2].name: `Authorization` is reserved",
        "t.toml:20: headers.extra[3].name: `X Dept` is not a valid header name",
        "t.toml:21: headers.extra[3].claim: must name",
        "t.toml:22: headers.extra[3].join: must be 1 to 4 printable",
        "t.toml:27: headers.extra[5].name: `x_dept` is used twice",
        "t.toml:29: headers.extra[5].join: must be 1 to 4 printable",
        "t.toml:41: tenants[0].connections[0].header_claims.X-Unknown: `X-Unknown` is not a `[[headers.extra]]` header",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(expected)),
            "{expected}\n{errs:#?}"
        );
    }
    assert_eq!(errs.len(), 12, "{errs:#?}");
}

#[test]
fn limits_defaults_and_validation() {
    let cfg = from_str(MINIMAL, "t.toml", &env).unwrap();
    let l = &cfg.limits;
    assert_eq!(l.max_connections, 10_000);
    assert_eq!(l.max_active_requests, None);
    assert_eq!(cfg.max_active_requests(), 256, "128 for each of 2 threads");
    assert_eq!(l.queue_timeout_ms, 5_000);
    assert_eq!(l.active_request_hold_ms, 20);
    let cfg = from_str(
        &format!("{MINIMAL}\n[limits]\nmax_active_requests = 7\n"),
        "t.toml",
        &env,
    )
    .unwrap();
    assert_eq!(cfg.max_active_requests(), 7);
    assert_eq!(l.header_timeout_ms, 10_000);
    assert_eq!(l.keepalive_timeout_seconds, 75);
    assert_eq!(l.body_timeout_ms, 20_000);
    assert_eq!(
        (l.rate.login_start.max, l.rate.login_start.window_seconds),
        (300, 60)
    );
    assert_eq!(l.rate.scim_auth_failure.max, 10);
    assert_eq!(l.rate.max_tracked_clients, 65_536);

    let text = format!(
        "{MINIMAL}\n[limits]\nmax_connections = 0\nheader_timeout_ms = 10\nbody_timeout_ms = 0\n\
         keepalive_timeout_seconds = 0\nmax_active_requests = 0\nqueue_timeout_ms = 600001\n\
         active_request_hold_ms = 0\n\n[limits.rate]\nlogin_start = {{ max = 5, window_seconds = 0 }}\n\
         max_tracked_clients = 10\n"
    );
    let errs = errors(&text);
    for key in [
        "limits.max_connections",
        "limits.max_active_requests",
        "limits.queue_timeout_ms",
        "limits.active_request_hold_ms",
        "limits.header_timeout_ms",
        "limits.body_timeout_ms",
        "limits.keepalive_timeout_seconds",
        "limits.rate.login_start.window_seconds",
        "limits.rate.max_tracked_clients",
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with("t.toml:") && e.contains(key)),
            "{key}: {errs:?}"
        );
    }
    // Unknown keys are errors here too, with their line.
    let errs = errors(&format!("{MINIMAL}\n[limits.rate]\nlogin_starts = 3\n"));
    assert!(
        errs.iter()
            .any(|e| e.contains("t.toml:") && e.contains("login_starts")),
        "{errs:?}"
    );
}

#[test]
fn store_encryption_key_is_required_and_validated() {
    let no_key = MINIMAL.replacen(r#"store = { encryption_key = "${STORE_KEY}" }"#, "", 1);
    let errs = errors(&no_key);
    assert!(
        errs.iter().any(
            |e| e.starts_with("t.toml:1: store.encryption_key: required")
                && e.contains("openssl rand -base64 32")
        ),
        "{errs:?}"
    );
    let hex = "ab".repeat(32);
    let b64_16 = "MDEyMzQ1Njc4OWFiY2RlZg==";
    let text = format!(
        "{}\n[store]\nencryption_key = [\n  \"{STORE_KEY}\",\n  \"{hex}\",\n  \"not base64!\",\n  \"{b64_16}\",\n  \"{STORE_KEY}\",\n]\n",
        no_key
    );
    let errs = errors(&text);
    for want in [
        "t.toml:11: store.encryption_key[1]: looks like hex",
        "t.toml:12: store.encryption_key[2]: is not valid base64",
        "t.toml:13: store.encryption_key[3]: decodes to 16 bytes, need exactly 32",
        "t.toml:14: store.encryption_key[4]: the same key is listed twice",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{want}\n{errs:#?}"
        );
    }
    // No error message repeats a key.
    assert!(
        !errs
            .iter()
            .any(|e| e.contains(STORE_KEY) || e.contains(&hex))
    );
    // A single string and a list both work; the first key seals.
    let cfg = from_str(MINIMAL, "t.toml", &env).unwrap();
    assert_eq!(cfg.store.encryption_keys().unwrap().len(), 1);
    assert!(!format!("{:?}", cfg.store).contains(STORE_KEY));
    let two = format!(
        "{no_key}\n[store]\nencryption_key = [\"{STORE_KEY}\", \"cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDI=\"]\n"
    );
    let cfg = from_str(&two, "t.toml", &env).unwrap();
    let keys = cfg.store.encryption_keys().unwrap();
    assert_eq!(&keys[0], b"portcullis-test-store-key-000001");
}

/// `[[scim.extensions]]`: a good declaration loads; every mistake is
/// reported at once with its file, line and key.
#[test]
fn scim_extensions_are_declared_and_validated() {
    let good = format!(
        "{MINIMAL}
[[scim.extensions]]
urn = \"urn:example:params:scim:schemas:extension:acme:2.0:User\"
resource = \"User\"
attributes = [{{ name = \"costCode\", required = true }}, {{ name = \"badges\", multi_valued = true }},
  {{ name = \"clearance\", type = \"integer\" }}]
"
    );
    let cfg = from_str(&good, "t.toml", &env).unwrap_or_else(|e| panic!("{e}"));
    let ext = &cfg.scim.extensions[0];
    assert_eq!(ext.resource, ScimResource::User);
    assert_eq!(ext.attributes.len(), 3);
    assert_eq!(ext.attributes[0].ty, ScimAttributeType::String);
    assert!(ext.attributes[0].required && !ext.attributes[0].multi_valued);
    assert!(ext.attributes[1].multi_valued);
    assert_eq!(ext.attributes[2].ty, ScimAttributeType::Integer);

    // MINIMAL is six lines: the first extension starts on line 8.
    let bad = format!(
        "{MINIMAL}
[[scim.extensions]]
urn = \"not a urn\"
resource = \"User\"
attributes = [{{ name = \"9lives\" }}, {{ name = \"a\" }}, {{ name = \"A\" }}, {{ name = \"schemas\" }}]

[[scim.extensions]]
urn = \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"
resource = \"User\"
attributes = []

[[scim.extensions]]
urn = \"urn:ietf:params:scim:schemas:core:2.0:Device\"
resource = \"Group\"
attributes = [{{ name = \"x\" }}]

[[scim.extensions]]
urn = \"urn:example:a\"
resource = \"Group\"
attributes = [{{ name = \"x\" }}]

[[scim.extensions]]
urn = \"urn:example:a:b\"
resource = \"User\"
attributes = [{{ name = \"x\" }}]
"
    );
    let errs = errors(&bad);
    for (line, key) in [
        (9, "scim.extensions[0].urn: must be a URN"),
        (
            11,
            "scim.extensions[0].attributes[0].name: must start with a letter",
        ),
        (
            11,
            "scim.extensions[0].attributes[2].name: duplicate attribute",
        ),
        (
            11,
            "scim.extensions[0].attributes[3].name: `schemas` is reserved",
        ),
        (14, "scim.extensions[1].urn: clashes with a built-in schema"),
        (
            16,
            "scim.extensions[1].attributes: declare at least one attribute",
        ),
        (
            19,
            "scim.extensions[2].urn: SCIM core schema and message URNs are reserved",
        ),
        (
            29,
            "scim.extensions[4].urn: clashes with scim.extensions[3]",
        ),
    ] {
        let want = format!("t.toml:{line}: {key}");
        assert!(
            errs.iter().any(|e| e.starts_with(&want)),
            "{want}\n{errs:#?}"
        );
    }
    assert_eq!(errs.len(), 8, "{errs:#?}");

    // Serde's own refusals name the key too: an unknown type, resource or
    // field (deny_unknown_fields).
    for (text, key) in [
        (
            "attributes = [{ name = \"x\", type = \"decimal\" }]\nresource = \"User\"",
            "scim.extensions[0].attributes[0].type",
        ),
        (
            "attributes = [{ name = \"x\" }]\nresource = \"Device\"",
            "scim.extensions[0].resource",
        ),
        (
            "attributes = [{ name = \"x\", caseExact = true }]\nresource = \"User\"",
            "scim.extensions[0].attributes[0].caseExact",
        ),
    ] {
        let text = format!("{MINIMAL}\n[[scim.extensions]]\nurn = \"urn:example:x\"\n{text}\n");
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("t.toml:") && e.contains(key)),
            "{key}: {errs:#?}"
        );
    }
}

/// `warnings` of a file that loads.
fn warnings(text: &str) -> Vec<String> {
    match from_str(text, "t.toml", &env) {
        Ok(cfg) => cfg.warnings.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("{e}"),
    }
}

const TWO_UPSTREAMS: &str = r#"
[[upstreams]]
name = "web"
address = "127.0.0.1:3001"

[[upstreams]]
name = "api"
address = "127.0.0.1:3002"
"#;

#[test]
fn the_single_upstream_table_is_the_default_upstream() {
    let text = format!(
        "{MINIMAL}\n[upstream]\naddress = \"127.0.0.1:3001\"\n\n\
         [[routes]]\nprefix = \"/\"\npolicy = \"public\"\nupstream = \"default\"\n"
    );
    let cfg = from_str(&text, "t.toml", &env).unwrap();
    assert_eq!(cfg.upstreams().len(), 1);
    assert_eq!(cfg.upstreams()[0].address, "127.0.0.1:3001");
    assert_eq!(cfg.default_upstream(), Some(0));
    // no section at all: today's default app
    let cfg = from_str(MINIMAL, "t.toml", &env).unwrap();
    assert_eq!(cfg.upstreams()[0].address, "127.0.0.1:3000");
    assert_eq!(cfg.upstreams()[0].name, "default");
}

#[test]
fn upstream_and_upstreams_together_is_an_error() {
    let text = format!("{MINIMAL}\n[upstream]\naddress = \"127.0.0.1:3000\"\n{TWO_UPSTREAMS}");
    let errs = errors(&text);
    assert_eq!(
        errs,
        [
            "t.toml:11: upstreams: use either `[upstream]` (one app) or `[[upstreams]]` (several), not both"
        ],
    );
}

#[test]
fn routes_must_name_a_configured_upstream() {
    // the single table has one name
    let text = format!(
        "{MINIMAL}\n[upstream]\naddress = \"127.0.0.1:3001\"\n\n\
         [[routes]]\nprefix = \"/\"\npolicy = \"public\"\nupstream = \"web\"\n"
    );
    assert_eq!(
        errors(&text),
        ["t.toml:14: routes[0].upstream: no upstream `web`; configured: `default`"]
    );
    let text = format!(
        "{MINIMAL}{TWO_UPSTREAMS}\n[[routes]]\nprefix = \"/\"\npolicy = \"public\"\n\
         upstream = \"web\"\n\n[[routes]]\nprefix = \"/api\"\npolicy = \"required\"\n\
         upstream = \"apl\"\n"
    );
    assert_eq!(
        errors(&text),
        ["t.toml:24: routes[1].upstream: no upstream `apl`; configured: `web`, `api`"]
    );
}

#[test]
fn upstream_names_are_unique_slugs() {
    let text = format!(
        "{MINIMAL}{}",
        TWO_UPSTREAMS
            .replace("name = \"api\"", "name = \"web\"")
            .replace(
                "name = \"web\"\naddress = \"127.0.0.1:3001\"",
                "name = \"Web App\"\naddress = \"127.0.0.1:3001\""
            )
    );
    let errs = errors(&text);
    assert!(
        errs.contains(
            &"t.toml:9: upstreams[0].name: use 1-64 characters from a-z, 0-9, `-` and `_`"
                .to_owned()
        ),
        "{errs:#?}"
    );
    let text = format!("{MINIMAL}{}", TWO_UPSTREAMS.replace("\"api\"", "\"web\""));
    let errs = errors(&text);
    assert!(
        errs.contains(&"t.toml:13: upstreams[1].name: duplicate upstream name".to_owned()),
        "{errs:#?}"
    );
}

#[test]
fn each_upstream_gets_today_s_checks() {
    let text = format!(
        "{MINIMAL}{}",
        TWO_UPSTREAMS.replace("\"web\"", "\"default\"").replace(
            "address = \"127.0.0.1:3002\"",
            "address = \"api\"\nsni = \"api.internal\"\nread_timeout_ms = 0\nkeepalive_pool_sized = 4"
        )
    );
    // an unknown key fails the entry; the others are checked after it
    assert_eq!(
        errors(&text),
        [
            "t.toml:17: upstreams[1].keepalive_pool_sized: unknown field `keepalive_pool_sized`, expected one of `name`, `address`, `tls`, `sni`, `verify_cert`, `connect_timeout_ms`, `read_timeout_ms`, `idle_timeout_seconds`, `keepalive_pool_size`"
        ]
    );
    let text = text.replace("\nkeepalive_pool_sized = 4", "");
    let errs = errors(&text);
    assert_eq!(
        errs,
        [
            "t.toml:14: upstreams[1].address: must be `HOST:PORT`, e.g. `127.0.0.1:3000`",
            "t.toml:15: upstreams[1].sni: only applies when `tls = true`",
            "t.toml:16: upstreams[1].read_timeout_ms: must be greater than 0",
        ],
        "{errs:#?}"
    );
}

#[test]
fn several_upstreams_need_a_default_or_a_catch_all() {
    // neither: the routes without `upstream` and the request that matches
    // no route have nowhere to go
    let text =
        format!("{MINIMAL}{TWO_UPSTREAMS}\n[[routes]]\nprefix = \"/api\"\npolicy = \"required\"\n");
    assert_eq!(
        errors(&text),
        [
            "t.toml:8: upstreams: several upstreams and none is named `default`, so a request \
             that matches no route has nowhere to go: name one `default`, or add a `[[routes]]` \
             entry with `prefix = \"/\"`, no `host` and an `upstream`",
            "t.toml:16: routes[0].upstream: several upstreams and none is named `default`: \
             name this route's upstream (one of `web`, `api`)",
        ]
    );
    // a host-specific catch-all does not catch other hosts
    let text = format!(
        "{MINIMAL}{TWO_UPSTREAMS}\n[[routes]]\nprefix = \"/\"\nhost = \"a.example.com\"\n\
         policy = \"required\"\nupstream = \"web\"\n"
    );
    assert_eq!(errors(&text).len(), 1);
    // a host-less catch-all naming one does
    let text = format!(
        "{MINIMAL}{TWO_UPSTREAMS}\n[[routes]]\nprefix = \"/\"\npolicy = \"required\"\n\
         upstream = \"web\"\n\n[[routes]]\nprefix = \"/api\"\npolicy = \"required\"\n\
         upstream = \"api\"\n"
    );
    assert_eq!(warnings(&text), Vec::<String>::new());
    // so does naming one `default`
    let text = format!(
        "{MINIMAL}{}",
        TWO_UPSTREAMS.replace("\"web\"", "\"default\"")
    );
    let cfg = from_str(&text, "t.toml", &env).unwrap();
    assert_eq!(cfg.default_upstream(), Some(0));
}

#[test]
fn upstream_warnings_name_what_no_request_reaches() {
    let text = format!(
        "{MINIMAL}{}\n[[routes]]\nprefix = \"/\"\nhost = \"api.example.com\"\n\
         policy = \"required\"\nupstream = \"api\"\n\n[[routes]]\nprefix = \"/admin\"\n\
         host = \"API.example.com\"\npolicy = \"required\"\n",
        TWO_UPSTREAMS.replace("\"web\"", "\"default\"")
            + "\n[[upstreams]]\nname = \"spare\"\naddress = \"127.0.0.1:3003\"\n"
    );
    assert_eq!(
        warnings(&text),
        [
            "t.toml:17: upstreams[2].name: no route names upstream `spare` and it is not the \
             default: no request can reach it",
            "t.toml:26: routes[1].upstream: other routes for `API.example.com` go to upstream \
             `api`, this one to the default upstream `default`; set `upstream` if that is not meant",
        ]
    );
}

#[test]
fn example_upstreams_section_is_valid_when_uncommented() {
    let example = include_str!("../../config/portcullis.example.toml");
    let start = example.find("# [[upstreams]]\n# name").unwrap();
    let end = example.find("# The route table.").unwrap();
    let uncommented: String = example[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").or(l.strip_prefix("#")).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!("{MINIMAL}\n{uncommented}\n");
    let cfg = from_str(&text, "example", &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.warnings, []);
    let names: Vec<&str> = cfg.upstreams().iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["default", "billing"]);
    assert_eq!(cfg.default_upstream(), Some(0));
    assert_eq!(cfg.routes[0].upstream.as_deref(), Some("billing"));
}

#[test]
fn example_scim_extension_is_valid_when_uncommented() {
    let example = include_str!("../../config/portcullis.example.toml");
    let start = example.find("# [[scim.extensions]]").unwrap();
    let end = example.find("# Slow and greedy clients.").unwrap();
    let uncommented: String = example[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").or(l.strip_prefix("#")).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!("{MINIMAL}\n{uncommented}\n");
    let cfg = from_str(&text, "example", &env).unwrap_or_else(|e| panic!("{e}"));
    let ext = &cfg.scim.extensions[0];
    assert_eq!(ext.resource, ScimResource::User);
    let names: Vec<&str> = ext.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["costCode", "badges", "clearance"]);
}

#[test]
fn graph_settings_for_groups_overage() {
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let ok = format!(
        r#"{MINIMAL}
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "acme-entra"
protocol = "oidc"
preset = "entra"
allow_login_without_groups = true
[tenants.connections.oidc]
issuer = "https://login.microsoftonline.com/{tid}/v2.0"
client_id = "app"
client_secret = "${{SESSION_KEY}}"
[tenants.connections.graph]
graph_url = "http://127.0.0.1:9"
[admin]
allow_loopback_idp_urls = true
"#
    );
    let cfg = from_str(&ok, "t.toml", &env).unwrap();
    let c = &cfg.tenants[0].connections[0];
    let g = c.graph.clone().unwrap();
    assert_eq!((g.cache_seconds, g.security_enabled_only), (600, false));
    assert!(c.allow_login_without_groups);
    let bad = format!(
        r#"{MINIMAL}
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "acme-saml"
protocol = "saml"
preset = "entra"
[tenants.connections.saml]
idp_metadata_url = "https://login.microsoftonline.com/{tid}/federationmetadata/2007-06/federationmetadata.xml"
[tenants.connections.graph]
client_secret = ""
directory_id = "contoso.com"
cache_seconds = 100000
graph_url = "https://graph.evil.example"
authority_url = "http://10.0.0.1/"
colour = "blue"
"#
    );
    let errs = errors(&bad);
    let want = "tenants[0].connections[0].graph.colour";
    assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:#?}");
    let bad = bad.replace("colour = \"blue\"\n", "");
    let errs = errors(&bad);
    for want in [
        "tenants[0].connections[0].graph.client_id: required",
        "tenants[0].connections[0].graph.client_secret: must not be empty",
        "tenants[0].connections[0].graph.directory_id: must be the Entra tenant id",
        "tenants[0].connections[0].graph.cache_seconds: at most 86400",
        "tenants[0].connections[0].graph.graph_url: endpoint overrides exist for tests and accept loopback hosts only",
        "tenants[0].connections[0].graph.authority_url: endpoint overrides exist for tests",
    ] {
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:#?}");
    }
}

/// An injected header is added beside the request's own fields, so it may
/// not be one HTTP or the app reads from the connection (any spelling).
#[test]
fn identity_headers_may_not_be_reserved_names() {
    let text = r#"
[[listeners]]
address = "127.0.0.1:8080"

[session]
keys = ["0123456789abcdef0123456789abcdef"]

[headers]
user = "Content-Length"
email = "x_forwarded_for"
groups = "X-Request-ID"
acr = "Host"
strip = ["x-real-ip"]
"#;
    let errs = errors(text);
    for want in [
        "t.toml:9: headers.user: `Content-Length` is reserved",
        "t.toml:10: headers.email: `x_forwarded_for` is reserved",
        "t.toml:11: headers.groups: `X-Request-ID` is reserved",
        "t.toml:12: headers.acr: `Host` is reserved",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    // Stripping a reserved name is what `strip` is for.
    assert!(!errs.iter().any(|e| e.contains("strip")), "{errs:#?}");
}
