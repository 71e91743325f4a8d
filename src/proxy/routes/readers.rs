//! Property: for any path the canonicaliser accepts, the requirement the
//! route table computes is at least as strict as the route that each
//! modelled app server would select for the same bytes. The models here
//! are written independently of `canon` (no shared code), from each
//! server's documented behaviour, so a gap in one is not hidden by the same
//! gap in the other.

use proptest::prelude::*;

use super::*;
use crate::proxy::canon::readings;

/// How one server turns a request target into the path it routes on, and
/// whether it compares case-insensitively. `None`: the server refuses it.
struct Model {
    name: &'static str,
    read: fn(&str) -> Option<String>,
    case_insensitive: bool,
}

fn pct_decode_once(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn pct_decode_all(s: &str) -> Option<String> {
    let mut cur = s.to_owned();
    for _ in 0..6 {
        let next = pct_decode_once(&cur)?;
        if next == cur {
            return Some(cur);
        }
        cur = next;
    }
    Some(cur)
}

/// RFC 3986 remove_dot_segments plus slash merging.
fn dots(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn tomcat(p: &str) -> Option<String> {
    // Path parameters go before decoding (CoyoteAdapter: parsePathParameters,
    // then the URL decoder), so a `%2F` inside one is never seen; a `%2F`
    // left after that is refused by default.
    let stripped = p
        .split('/')
        .map(|s| s.split(';').next().unwrap_or(""))
        .collect::<Vec<&str>>()
        .join("/");
    let lower = stripped.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return None;
    }
    Some(dots(&pct_decode_once(&stripped)?))
}

fn spring(p: &str) -> Option<String> {
    // UrlPathHelper: decode, drop `;…`, normalise; suffix pattern matching
    // lets `/admin.json` select `/admin`.
    let d = pct_decode_once(p)?;
    let stripped: Vec<&str> = d
        .split('/')
        .map(|s| s.split(';').next().unwrap_or(""))
        .collect();
    let n = dots(&stripped.join("/"));
    Some(match n.rsplit_once('/') {
        Some((h, last)) if last.find('.').is_some_and(|i| i > 0) => {
            format!("{h}/{}", &last[..last.find('.').unwrap_or(last.len())])
        }
        _ => n,
    })
}

fn nginx(p: &str) -> Option<String> {
    Some(dots(&pct_decode_once(p)?))
}

fn iis(p: &str) -> Option<String> {
    let d = pct_decode_all(p)?.replace('\\', "/");
    let trimmed: Vec<&str> = d
        .split('/')
        .map(|s| {
            if s.bytes().all(|b| b == b'.') {
                s
            } else {
                s.trim_end_matches(['.', ' '])
            }
        })
        .collect();
    Some(dots(&trimmed.join("/")))
}

fn express(p: &str) -> Option<String> {
    // Routes on the undecoded pathname, case-insensitively.
    Some(p.to_owned())
}

fn django(p: &str) -> Option<String> {
    // PATH_INFO is decoded; no dot-segment resolution by the framework.
    pct_decode_once(p)
}

fn rails(p: &str) -> Option<String> {
    let d = dots(&pct_decode_once(p)?);
    Some(match d.rsplit_once('/') {
        Some((h, last)) if last.find('.').is_some_and(|i| i > 0) => {
            format!("{h}/{}", &last[..last.find('.').unwrap_or(last.len())])
        }
        _ => d,
    })
}

const MODELS: &[Model] = &[
    Model {
        name: "tomcat",
        read: tomcat,
        case_insensitive: false,
    },
    Model {
        name: "spring",
        read: spring,
        case_insensitive: false,
    },
    Model {
        name: "nginx",
        read: nginx,
        case_insensitive: false,
    },
    Model {
        name: "iis",
        read: iis,
        case_insensitive: true,
    },
    Model {
        name: "express",
        read: express,
        case_insensitive: true,
    },
    Model {
        name: "django",
        read: django,
        case_insensitive: false,
    },
    Model {
        name: "rails",
        read: rails,
        case_insensitive: false,
    },
];

type Table = [(
    &'static str,
    Policy,
    &'static [&'static str],
    &'static [&'static str],
)];

/// The operator's table, matched the plain way: longest `prefix` on a
/// segment boundary, after the server's own reading. The catch-all comes
/// last.
const TABLE: &Table = &[
    ("/public", Policy::Public, &[], &[]),
    ("/admin", Policy::Required, &["admins"], &[]),
    ("/admin/billing", Policy::Required, &["acme:finance"], &[]),
    ("/api", Policy::Required, &[], &["acme"]),
    ("/", Policy::Optional, &[], &[]),
];

/// A site public by default with restricted prefixes: here encoded
/// separators are allowed wherever every reading is public, so the
/// readings themselves must find the restricted ones.
const PUBLIC_SITE: &Table = &[
    ("/admin", Policy::Required, &["admins"], &[]),
    ("/admin/billing", Policy::Required, &["acme:finance"], &[]),
    ("/api", Policy::Required, &[], &["acme"]),
    ("/", Policy::Public, &[], &[]),
];

fn table(table: &Table) -> RouteTable {
    let mut toml = String::from(
        "[[listeners]]\naddress = \"127.0.0.1:1\"\n[session]\nkeys = [\"0123456789012345678901234567890123456789\"]\n\
         [store]\nencryption_key = \"cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=\"\n\
         [server]\ndefault_policy = \"public\"\n[[tenants]]\nid = \"acme\"\n[[tenants]]\nid = \"globex\"\n",
    );
    for (prefix, policy, groups, tenants) in table {
        toml.push_str(&format!(
            "[[routes]]\nprefix = \"{prefix}\"\npolicy = \"{}\"\nallowed_groups = {groups:?}\nallowed_tenants = {tenants:?}\n",
            policy.as_str()
        ));
    }
    let cfg = crate::config::from_str(&toml, "t", &|_| None).unwrap();
    RouteTable::compile(&cfg)
}

/// The table entry a server selects for its reading.
fn reference(table: &Table, path: &str, ci: bool) -> usize {
    let norm = |s: &str| if ci { s.to_lowercase() } else { s.to_owned() };
    let p = norm(path);
    let mut best: Option<usize> = None;
    for (i, (prefix, ..)) in table.iter().enumerate() {
        let pre = norm(prefix.trim_end_matches('/'));
        let hit = pre.is_empty() || p == pre || p.starts_with(&format!("{pre}/"));
        if hit && best.is_none_or(|b| table[b].0.len() < prefix.len()) {
            best = Some(i);
        }
    }
    best.unwrap_or(table.len() - 1)
}

fn principals() -> Vec<Principal> {
    let p = |tenant: Option<&str>, groups: &[&str]| Principal {
        user_id: "u".into(),
        email: "u@x.com".into(),
        name: None,
        groups: groups.iter().map(|s| s.to_string()).collect(),
        roles: vec![],
        tenant: tenant.map(str::to_owned),
        connection: None,
        ..Principal::default()
    };
    vec![
        p(None, &[]),
        p(Some("acme"), &[]),
        p(Some("acme"), &["admins"]),
        p(Some("acme"), &["finance"]),
        p(Some("acme"), &["admins", "finance"]),
        p(Some("globex"), &["admins", "finance"]),
    ]
}

fn reference_admits(table: &Table, i: usize, p: &Principal) -> bool {
    let (_, _, groups, tenants) = table[i];
    let tenant_ok = tenants.is_empty() || p.tenant.as_deref().is_some_and(|t| tenants.contains(&t));
    let group_ok = groups.is_empty()
        || groups.iter().any(|g| match g.split_once(':') {
            Some((t, n)) => p.tenant.as_deref() == Some(t) && p.groups.iter().any(|x| x == n),
            None => p.groups.iter().any(|x| x == g),
        });
    tenant_ok && group_ok
}

const PIECES: &[&str] = &[
    "/", "admin", "ADMIN", "Admin", "billing", "public", "api", "API", "..", ".", ";", ";x", "..;",
    "%2e", "%2E", "%2f", "%5c", "\\", "%25", "2e", ".json", "%3b", "%61", "%20", "x", "//",
    "%c4%b1",
];

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 1..9)
        .prop_map(|v| format!("/{}", v.concat()))
}

/// Fails (with the path and the server) when some model reads `path` into
/// a route the gate's requirement does not cover.
fn check_covered(table: &Table, path: &str) -> Result<(), TestCaseError> {
    let t = self::table(table);
    let Ok(r) = readings(path) else {
        return Ok(());
    };
    let req = t.requirement(&[], &r);
    if r.encoded_separator() && req.policy() != Policy::Public {
        return Ok(()); // refused with 400
    }
    for m in MODELS {
        let Some(read) = (m.read)(path) else { continue };
        let i = reference(table, &read, m.case_insensitive);
        prop_assert!(
            req.policy() >= table[i].1,
            "{path:?}: {} reads {read:?} → {} ({:?}) but the gate applies {:?}",
            m.name,
            table[i].0,
            table[i].1,
            req.policy()
        );
        for p in principals() {
            prop_assert!(
                !req.admits(&p) || reference_admits(table, i, &p),
                "{path:?}: {} reads {read:?} → {}, which refuses {p:?}, but the gate admits",
                m.name,
                table[i].0
            );
        }
    }
    Ok(())
}

/// 3000 cases, unless proptest's own `PROPTEST_CASES` says otherwise:
/// mutation testing (scripts/mutants.sh) runs these for every mutant.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn every_server_reading_is_covered(path in path_strategy()) {
        check_covered(TABLE, &path)?;
    }

    #[test]
    fn every_server_reading_is_covered_on_a_public_site(path in path_strategy()) {
        check_covered(PUBLIC_SITE, &path)?;
    }
}

/// Found by hand before the property knew Tomcat's order; kept so the
/// shape stays covered whatever the generator draws.
#[test]
fn a_parameter_hiding_an_encoded_slash_is_covered() {
    for path in ["/admin;%2F../public", "/admin;x%2f%2e%2e/x", "/api;%2F../x"] {
        check_covered(PUBLIC_SITE, path).unwrap();
    }
}

/// Found by the property (Django routes on the decoded path without
/// resolving dot segments); kept for the same reason.
#[test]
fn a_decoded_path_is_read_before_resolving_too() {
    for path in ["/api%2f..", "/api%2F..", "/%61dmin/..", "/%61pi/x/%2e%2e"] {
        check_covered(PUBLIC_SITE, path).unwrap();
    }
}
