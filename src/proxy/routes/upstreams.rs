//! `RouteTable::upstream_for`: which app a request goes to, and that no
//! reading of it can send it to one app under another app's policy.

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

const DEFAULT: usize = 0;
const APP2: usize = 1;

/// Two apps by host, plus a path routed to the second app for every host
/// that has no routes of its own.
const TWO_APPS: &str = r#"
[[upstreams]]
name = "default"
address = "127.0.0.1:3001"
[[upstreams]]
name = "app2"
address = "127.0.0.1:3002"

[[routes]]
host = "app1.example.com"
prefix = "/"
policy = "public"
[[routes]]
host = "app1.example.com"
prefix = "/admin"
policy = "required"
allowed_groups = ["admins"]
[[routes]]
host = "app2.example.com"
prefix = "/"
policy = "required"
allowed_groups = ["eng"]
upstream = "app2"
[[routes]]
prefix = "/reports"
policy = "public"
upstream = "app2"
[[routes]]
prefix = "/"
policy = "required"
"#;

fn table(extra: &str) -> RouteTable {
    let cfg = crate::config::from_str(&format!("{BASE}{extra}"), "t", &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    RouteTable::compile(&cfg)
}

fn up(t: &RouteTable, hosts: &[&str], path: &str) -> Result<usize, UpstreamConflict> {
    t.upstream_for(hosts, &readings(path).unwrap())
}

#[test]
fn each_host_goes_to_its_own_upstream() {
    let t = table(TWO_APPS);
    for p in ["/", "/x", "/admin", "/reports/q"] {
        assert_eq!(up(&t, &["app1.example.com"], p), Ok(DEFAULT), "{p}");
        assert_eq!(up(&t, &["app2.example.com"], p), Ok(APP2), "{p}");
    }
}

#[test]
fn routes_can_name_an_upstream_by_path() {
    let t = table(TWO_APPS);
    assert_eq!(up(&t, &["other.example.com"], "/reports/q"), Ok(APP2));
    assert_eq!(up(&t, &["other.example.com"], "/reportsx"), Ok(DEFAULT));
    assert_eq!(up(&t, &["other.example.com"], "/x"), Ok(DEFAULT));
}

/// An unknown, absent or extra host is read only under the host-less
/// routes: it never reaches a host's app, whatever the path.
#[test]
fn unknown_hosts_never_pick_a_host_s_app() {
    let t = table(TWO_APPS);
    for hosts in [
        vec!["evil.example.com"],
        vec![],
        vec!["app2.example.com", "evil.example.com"],
    ] {
        assert_eq!(up(&t, &hosts, "/x"), Ok(DEFAULT), "{hosts:?}");
        // and under every host's policy (the requirement's rule)
        let r = t.requirement(&hosts, &readings("/x").unwrap());
        assert_eq!(r.policy(), Policy::Required, "{hosts:?}");
    }
}

/// Hosts that are all known but name different apps (a trusted
/// `X-Forwarded-Host` naming another app than `Host`): refused.
#[test]
fn hosts_of_different_apps_conflict() {
    let t = table(TWO_APPS);
    assert_eq!(
        up(&t, &["app1.example.com", "app2.example.com"], "/x"),
        Err(UpstreamConflict)
    );
    assert_eq!(
        up(&t, &["app2.example.com", "app2.example.com"], "/x"),
        Ok(APP2)
    );
}

#[test]
fn readings_that_pick_different_upstreams_conflict() {
    let t = table(TWO_APPS);
    for p in [
        "/reports/../x",
        "/reports/..%2fx",
        "/reports/%2e%2e/x",
        "/reports/..;/x",
        // a case-sensitive server reads it as another path, which the
        // catch-all sends elsewhere
        "/REPORTS/q",
        "/Reports",
    ] {
        assert_eq!(
            up(&t, &["other.example.com"], p),
            Err(UpstreamConflict),
            "{p}"
        );
    }
    // ...while readings that agree pick their app
    for p in ["/reports/a/../b", "/reports/q.json", "/x/../y"] {
        assert!(up(&t, &["other.example.com"], p).is_ok(), "{p}");
    }
}

/// Invariant: the chosen app is the app of every route whose conditions
/// apply. For each case, every route of the requirement belongs to the
/// chosen upstream.
#[test]
fn the_chosen_upstream_is_every_applied_route_s() {
    let t = table(TWO_APPS);
    let upstream_of = |m: &RouteMatch| {
        t.routes
            .iter()
            .find(|r| std::ptr::eq(&r.target, m))
            .map_or(t.default_upstream, |r| r.upstream)
    };
    let mut checked = 0;
    for host in ["app1.example.com", "app2.example.com"] {
        for p in ["/", "/admin/x", "/reports/../admin", "/ADMIN", "/x;y"] {
            let r = readings(p).unwrap();
            let chosen = t.upstream_for(&[host], &r);
            let req = t.requirement(&[host], &r);
            if let Ok(u) = chosen {
                checked += 1;
                assert!(req.routes().all(|m| upstream_of(m) == Some(u)), "{host}{p}");
            }
        }
    }
    assert_eq!(checked, 10);
}

/// Case-sensitive routes compare one spelling: no fold to disagree with.
#[test]
fn a_case_sensitive_route_picks_only_its_spelling() {
    let t = table(&TWO_APPS.replace(
        "prefix = \"/reports\"\n",
        "prefix = \"/reports\"\ncase_sensitive = true\n",
    ));
    assert_eq!(up(&t, &[], "/reports/q"), Ok(APP2));
    assert_eq!(up(&t, &[], "/REPORTS/q"), Ok(DEFAULT));
}

/// Without a default upstream, validation made every route name one and
/// required a host-less catch-all.
#[test]
fn without_a_default_the_catch_all_route_decides() {
    let t = table(
        r#"
[[upstreams]]
name = "web"
address = "127.0.0.1:3001"
[[upstreams]]
name = "api"
address = "127.0.0.1:3002"
[[routes]]
prefix = "/api"
policy = "required"
upstream = "api"
[[routes]]
prefix = "/"
policy = "public"
upstream = "web"
"#,
    );
    assert_eq!(up(&t, &[], "/api/v1"), Ok(1));
    assert_eq!(up(&t, &["any.example.com"], "/index.html"), Ok(0));
}

#[test]
fn one_upstream_is_never_a_conflict() {
    let t = table(
        r#"
[upstream]
address = "127.0.0.1:3001"
[[routes]]
prefix = "/reports"
policy = "public"
upstream = "default"
[[routes]]
prefix = "/"
policy = "required"
"#,
    );
    assert_eq!(up(&t, &[], "/reports/../x"), Ok(0));
    assert_eq!(up(&t, &[], "/REPORTS"), Ok(0));
}
