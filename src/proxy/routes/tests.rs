use super::*;
use crate::proxy::canon::readings;

const BASE: &str = r#"
[[listeners]]
address = "127.0.0.1:1"
[session]
keys = ["0123456789012345678901234567890123456789"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
"#;

fn table(extra: &str) -> RouteTable {
    let cfg = crate::config::from_str(&format!("{BASE}{extra}"), "t", &|_| None).unwrap();
    RouteTable::compile(&cfg)
}

fn standard() -> RouteTable {
    table(
        r#"
[server]
default_policy = "public"
[[routes]]
prefix = "/"
policy = "optional"
[[routes]]
prefix = "/admin"
policy = "required"
allowed_groups = ["admins"]
[[routes]]
prefix = "/public/"
policy = "public"
"#,
    )
}

fn req<'a>(t: &'a RouteTable, host: Option<&str>, path: &str) -> Requirement<'a> {
    let r = readings(path).unwrap();
    let hosts: Vec<&str> = host.into_iter().collect();
    t.requirement(&hosts, &r)
}

fn policy(t: &RouteTable, host: Option<&str>, path: &str) -> Policy {
    req(t, host, path).policy()
}

fn who(tenant: Option<&str>, groups: &[&str], roles: &[&str]) -> Principal {
    Principal {
        user_id: "u".into(),
        email: "a@acme.com".into(),
        name: None,
        groups: groups.iter().map(|s| s.to_string()).collect(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
        tenant: tenant.map(str::to_owned),
        connection: None,
        ..Principal::default()
    }
}

#[test]
fn longest_prefix_on_segment_boundaries() {
    let t = standard();
    let host = Some("app.example.com");
    assert_eq!(policy(&t, host, "/admin"), Policy::Required);
    assert_eq!(policy(&t, host, "/admin/x"), Policy::Required);
    assert_eq!(policy(&t, host, "/adminx"), Policy::Optional);
    assert_eq!(policy(&t, host, "/public/a.css"), Policy::Public);
    assert_eq!(policy(&t, host, "/public"), Policy::Public);
}

#[test]
fn traversal_tricks_get_every_reading_s_conditions() {
    let t = standard();
    for p in [
        "/public/../admin",
        "/public/..%2Fadmin",
        "/public/%2e%2e/admin",
        "/public/%252e%252e/admin",
        "/public/..\\admin",
        "/public/..;/admin",
        "/public;x/../admin",
        "/public/..;x/admin/",
        "//admin",
        "/public/./../admin/",
        "/%61dmin",
        "/admin;jsessionid=1",
        "/admin;/users",
        "/ADMIN",
        "/Admin/users",
        "/admin.json",
        "/admin./users",
        "/admin%20/users",
        "/adm%C4%B1n",
        "/\u{ff41}dmin",
        "/ADM\u{130}N",
        "/public/../ADMIN.xml",
    ] {
        let r = req(&t, Some("app.example.com"), p);
        assert_eq!(r.policy(), Policy::Required, "{p}");
        assert!(
            !r.admits(&who(None, &["eng"], &[])),
            "{p}: a non-admin must not pass"
        );
        assert!(r.admits(&who(None, &["admins"], &[])), "{p}");
    }
}

#[test]
fn public_routes_hold_only_under_every_reading() {
    let t = table(
        r#"
[server]
default_policy = "required"
[[routes]]
prefix = "/static"
policy = "public"
"#,
    );
    let h = Some("h");
    assert_eq!(policy(&t, h, "/static/app.js"), Policy::Public);
    assert_eq!(policy(&t, h, "/static/../secret"), Policy::Required);
    // A case-sensitive app reads `/STATIC` as another resource, which the
    // default (required) covers.
    assert_eq!(policy(&t, h, "/STATIC/app.js"), Policy::Required);
    assert_eq!(policy(&t, h, "/static;x/app.js"), Policy::Required);
}

#[test]
fn case_sensitive_routes_opt_out_of_folding() {
    let t = table(
        r#"
[server]
default_policy = "public"
[[routes]]
prefix = "/Admin"
policy = "required"
case_sensitive = true
"#,
    );
    assert_eq!(policy(&t, None, "/Admin/x"), Policy::Required);
    assert_eq!(policy(&t, None, "/admin/x"), Policy::Public);
    assert_eq!(policy(&t, None, "/ADMIN/x"), Policy::Public);
    // Decoding and parameters still apply.
    assert_eq!(policy(&t, None, "/x/../Admin;p"), Policy::Required);
}

#[test]
fn raw_and_decoded_readings_must_both_admit() {
    let t = table(
        r#"
[server]
default_policy = "public"
[[routes]]
prefix = "/ops"
policy = "required"
allowed_groups = ["ops"]
[[routes]]
prefix = "/ops/billing"
policy = "required"
allowed_groups = ["finance"]
"#,
    );
    // Raw reading: `/ops/x;/../billing` is under /ops (ops); the stripped
    // reading is /ops/billing (finance). Only someone in both passes.
    let r = req(&t, None, "/ops/x;/../billing");
    assert!(r.is_ambiguous());
    assert!(!r.admits(&who(None, &["ops"], &[])));
    assert!(!r.admits(&who(None, &["finance"], &[])));
    assert!(r.admits(&who(None, &["ops", "finance"], &[])));
    // The plain request needs only its own route.
    let plain = req(&t, None, "/ops/billing/x");
    assert!(!plain.is_ambiguous());
    assert!(plain.admits(&who(None, &["finance"], &[])));
}

#[test]
fn tenant_scoped_conditions() {
    let t = table(
        r#"
[server]
default_policy = "public"
[[tenants]]
id = "acme"
[[tenants]]
id = "globex"
[[routes]]
prefix = "/acme-admin"
policy = "required"
allowed_groups = ["acme:admins"]
[[routes]]
prefix = "/acme"
policy = "required"
allowed_tenants = ["acme"]
[[routes]]
prefix = "/roles"
policy = "required"
allowed_roles = ["globex:owner"]
[[routes]]
prefix = "/urn"
policy = "required"
allowed_groups = ["urn:x:admins"]
"#,
    );
    let admins = req(&t, None, "/acme-admin");
    assert!(admins.admits(&who(Some("acme"), &["admins"], &[])));
    assert!(!admins.admits(&who(Some("globex"), &["admins"], &[])));
    assert!(!admins.admits(&who(None, &["admins"], &[])));
    assert!(!admins.admits(&who(None, &["acme:admins"], &[])));

    let acme = req(&t, None, "/acme/x");
    assert!(acme.admits(&who(Some("acme"), &[], &[])));
    assert!(!acme.admits(&who(Some("globex"), &["admins"], &[])));
    assert!(!acme.admits(&who(None, &[], &[])));

    let roles = req(&t, None, "/roles");
    assert!(roles.admits(&who(Some("globex"), &[], &["owner"])));
    assert!(!roles.admits(&who(Some("acme"), &[], &["owner"])));

    // `urn` is no tenant: the name is taken whole.
    let urn = req(&t, None, "/urn");
    assert!(urn.admits(&who(Some("acme"), &["urn:x:admins"], &[])));
    assert!(!urn.admits(&who(Some("acme"), &["x:admins"], &[])));
}

#[test]
fn unknown_hosts_get_every_host_s_routes() {
    let t = table(
        r#"
[server]
default_policy = "public"
[[routes]]
prefix = "/"
host = "api.example.com"
policy = "required"
allowed_groups = ["api"]
[[routes]]
prefix = "/"
host = "www.example.com"
policy = "optional"
"#,
    );
    assert_eq!(policy(&t, Some("www.example.com"), "/x"), Policy::Optional);
    for host in [Some("evil.com"), Some("127.0.0.1"), None] {
        let r = req(&t, host, "/x");
        assert_eq!(r.policy(), Policy::Required, "{host:?}");
        assert!(!r.admits(&who(None, &[], &[])), "{host:?}");
    }
}

#[test]
fn fold_equates_what_runtimes_equate() {
    assert_eq!(fold("ADMIN"), "admin");
    assert_eq!(fold("adm\u{131}n"), "admin");
    assert_eq!(fold("\u{17f}ecret"), "secret");
    assert_eq!(fold("\u{212a}ey"), "key");
    assert_eq!(fold("\u{ff21}dmin"), "admin");
    assert_eq!(prefix_segments("/"), Vec::<&str>::new());
    assert_eq!(prefix_segments("/api/"), vec!["api"]);
    assert_eq!(prefix_segments("/a/b"), vec!["a", "b"]);
}

#[test]
fn a_name_is_qualified_only_by_a_configured_tenant() {
    assert!(Member::parse("acme:admins", &["acme"]).is_qualified());
    assert!(!Member::parse("admins", &["acme"]).is_qualified());
    assert!(!Member::parse("urn:x:admins", &["acme"]).is_qualified());
}

/// Readings that all select the same route are no ambiguity.
#[test]
fn readings_that_agree_are_not_ambiguous() {
    let t = standard();
    for p in ["/admin/x.json", "/admin/x/../y"] {
        let r = req(&t, None, p);
        assert_eq!(r.routes().count(), 1, "{p}");
        assert!(!r.is_ambiguous(), "{p}");
    }
}

/// A prefix written with capitals: a case-sensitive app reads the
/// lower-case path as another resource, which the default covers.
#[test]
fn a_capitalised_prefix_does_not_cover_other_spellings() {
    let t = table(
        r#"
[server]
default_policy = "required"
[[routes]]
prefix = "/Static"
policy = "public"
"#,
    );
    assert_eq!(policy(&t, None, "/Static/app.js"), Policy::Public);
    assert_eq!(policy(&t, None, "/static/app.js"), Policy::Required);
    assert_eq!(policy(&t, None, "/STATIC/app.js"), Policy::Required);
}
