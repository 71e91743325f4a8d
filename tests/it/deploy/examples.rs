//! examples/traefik and examples/envoy: neither proxy runs here, so these
//! tests read the files (YAML and TOML) and check what decides safety: every
//! identity header of Portcullis' configuration (the library's defaults,
//! which the examples keep) is removed from the client's request and copied
//! from Portcullis' answer, nothing else is, the auth endpoint and the
//! convention agree with the shipped portcullis.toml, and the endpoint is
//! not a public path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis::config::HeadersConfig;
use serde_yaml::Value;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// The configured identity header names and the assertion's, lowercased.
fn identity_names(h: &HeadersConfig) -> BTreeSet<String> {
    [
        &h.user,
        &h.email,
        &h.name,
        &h.groups,
        &h.roles,
        &h.tenant,
        &h.principal_type,
        &h.assertion,
    ]
    .iter()
    .map(|n| n.to_ascii_lowercase())
    .collect()
}

/// The example's portcullis.toml: its listener, its one forward-auth
/// endpoint (path, convention), and its headers, which must be the
/// library's defaults the proxy configs were written against.
struct Shipped {
    listener: String,
    path: String,
    convention: String,
}

fn shipped(example: &str) -> Shipped {
    let text = std::fs::read_to_string(dir(example).join("portcullis.toml")).unwrap();
    let env = |n: &str| match n {
        "PORTCULLIS_SESSION_KEY" => Some(crate::support::env::KEY_A.to_owned()),
        "PORTCULLIS_STORE_KEY" => Some(crate::support::env::STORE_KEY.to_owned()),
        _ => None,
    };
    // The whole file loads and validates, [forward_auth] included, with no
    // warnings; the forward-auth tables are also read as plain TOML below.
    let cfg = portcullis::config::from_str(&text, example, &env)
        .unwrap_or_else(|e| panic!("{example}/portcullis.toml: {e}"));
    assert!(cfg.warnings.is_empty(), "{example}: {:?}", cfg.warnings);
    assert!(cfg.forward_auth.enabled(), "{example}");
    assert_eq!(
        identity_names(&cfg.headers),
        identity_names(&HeadersConfig::default()),
        "{example}/portcullis.toml renames headers its proxy config does not"
    );
    let raw: toml::Table = text.parse().unwrap();
    let fa = &raw["forward_auth"];
    let trusted = fa["trusted_proxies"].as_array().unwrap();
    assert!(
        trusted
            .iter()
            .all(|t| t.as_str().unwrap().starts_with("127.")),
        "{example}: the proxy runs on the same host: {trusted:?}"
    );
    let eps = fa["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 1);
    let path = eps[0]["path"].as_str().unwrap().to_owned();
    assert!(path.starts_with(&cfg.server.internal_prefix));
    Shipped {
        listener: cfg.listeners[0].address.clone(),
        path,
        convention: eps[0]["convention"].as_str().unwrap().to_owned(),
    }
}

/// `regex` (Go RE2 syntax as Traefik reads it; the subset used here means
/// the same in Python's `re`) against each name: whether it matches.
fn regex_matches(regex: &str, names: &[String]) -> Vec<bool> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import re, sys\nr = re.compile(sys.argv[1])\nfor n in sys.argv[2:]:\n    print(1 if r.search(n) else 0)",
            regex,
        ])
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "1")
        .collect()
}

/// Go's canonical form of a header name (what Traefik's regex sees):
/// upper-case first letter and letters after `-`, the rest lower-case.
fn go_canonical(name: &str) -> String {
    let mut up = true;
    name.chars()
        .map(|c| {
            let out = if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            up = c == '-';
            out
        })
        .collect()
}

#[test]
fn traefik_and_envoy_examples_name_every_configured_header() {
    let want = identity_names(&HeadersConfig::default());
    traefik(&want);
    envoy(&want);
}

fn traefik(want: &BTreeSet<String>) {
    let pc = shipped("traefik");
    assert_eq!(pc.convention, "forward");
    let d = yaml(&dir("traefik").join("dynamic.yml"));
    let http = &d["http"];

    let fa = &http["middlewares"]["portcullis-auth"]["forwardAuth"];
    assert_eq!(
        s(&fa["address"]),
        format!("http://{}{}", pc.listener, pc.path)
    );
    assert_eq!(fa["trustForwardHeader"], false);
    let listed: BTreeSet<String> = seq(&fa["authResponseHeaders"])
        .iter()
        .map(|v| s(v).to_ascii_lowercase())
        .collect();
    assert_eq!(&listed, want, "authResponseHeaders");

    // The regex removes every spelling of every name a client could send,
    // and nothing Traefik or the app needs.
    let regex = s(&fa["authResponseHeadersRegex"]);
    let mut spellings = Vec::new();
    for n in want {
        let under = n.replace('-', "_");
        for v in [
            n.clone(),
            n.to_ascii_uppercase(),
            under.clone(),
            under.to_ascii_uppercase(),
        ] {
            spellings.push(go_canonical(&v));
        }
    }
    let hits = regex_matches(regex, &spellings);
    for (name, hit) in spellings.iter().zip(&hits) {
        assert!(hit, "authResponseHeadersRegex misses {name}");
    }
    let keep: Vec<String> = [
        "Cookie",
        "Authorization",
        "Accept",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Uri",
        "X-Forwarded-Method",
        "X-Forwarded-Port",
        "X-Forwarded-User-Agent",
        "X-Real-Ip",
    ]
    .iter()
    .map(|n| n.to_string())
    .collect();
    for (name, hit) in keep.iter().zip(regex_matches(regex, &keep)) {
        assert!(!hit, "authResponseHeadersRegex would strip {name}");
    }

    // The app's router goes through the middleware; Portcullis' own router
    // does not, and does not expose the auth endpoint.
    let routers = &http["routers"];
    let app = &routers["app"];
    assert!(
        seq(&app["middlewares"])
            .iter()
            .any(|m| m == "portcullis-auth")
    );
    let own = &routers["portcullis"];
    assert!(seq(&own["middlewares"]).is_empty());
    let rule = s(&own["rule"]);
    assert!(rule.contains("PathPrefix(`/.portcullis/`)"), "{rule}");
    assert!(rule.contains(&format!("!Path(`{}`)", pc.path)), "{rule}");
    assert!(own["priority"].as_u64() > app["priority"].as_u64());
    let url =
        |svc: &str| s(&seq(&http["services"][svc]["loadBalancer"]["servers"])[0]["url"]).to_owned();
    assert_eq!(url(s(&own["service"])), format!("http://{}", pc.listener));
    assert_ne!(url(s(&app["service"])), url(s(&own["service"])));
}

/// The HTTP connection manager of the (one) listener.
fn hcm(bootstrap: &Value) -> &Value {
    let listeners = seq(&bootstrap["static_resources"]["listeners"]);
    assert_eq!(listeners.len(), 1);
    let chain = &seq(&listeners[0]["filter_chains"])[0];
    let f = seq(&chain["filters"])
        .iter()
        .find(|f| f["name"] == "envoy.filters.network.http_connection_manager")
        .expect("an HTTP connection manager");
    &f["typed_config"]
}

fn cluster_address(bootstrap: &Value, name: &str) -> String {
    let c = seq(&bootstrap["static_resources"]["clusters"])
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name}"));
    let ep = &seq(&seq(&c["load_assignment"]["endpoints"])[0]["lb_endpoints"])[0];
    let a = &ep["endpoint"]["address"]["socket_address"];
    format!("{}:{}", s(&a["address"]), a["port_value"].as_u64().unwrap())
}

fn envoy(want: &BTreeSet<String>) {
    let pc = shipped("envoy");
    assert_eq!(pc.convention, "envoy");
    let b = yaml(&dir("envoy").join("envoy.yaml"));
    let hcm = hcm(&b);

    let underscores = s(&hcm["common_http_protocol_options"]["headers_with_underscores_action"]);
    assert!(
        ["DROP_HEADER", "REJECT_REQUEST"].contains(&underscores),
        "headers_with_underscores_action = {underscores} lets X_Forwarded_Email through"
    );
    assert_eq!(hcm["use_remote_address"], true);

    let filters = seq(&hcm["http_filters"]);
    let at = |name: &str| {
        filters
            .iter()
            .position(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} filter"))
    };
    let (strip, authz, router) = (
        at("envoy.filters.http.header_mutation"),
        at("envoy.filters.http.ext_authz"),
        at("envoy.filters.http.router"),
    );
    assert!(
        strip < authz && authz < router,
        "the client's identity headers must be removed before ext_authz adds Portcullis' values"
    );

    let removed: BTreeSet<String> =
        seq(&filters[strip]["typed_config"]["mutations"]["request_mutations"])
            .iter()
            .map(|m| s(&m["remove"]).to_ascii_lowercase())
            .collect();
    let mut must = want.clone();
    must.insert("x-forwarded-host".to_owned());
    assert!(
        removed.is_superset(&must),
        "header_mutation removes {removed:?}, not all of {must:?}"
    );

    let ea = &filters[authz]["typed_config"];
    assert_ne!(ea["failure_mode_allow"], true);
    let svc = &ea["http_service"];
    assert_eq!(s(&svc["path_prefix"]), pc.path);
    assert_eq!(
        s(&svc["server_uri"]["uri"]),
        format!("http://{}", pc.listener)
    );
    assert_eq!(
        cluster_address(&b, s(&svc["server_uri"]["cluster"])),
        pc.listener
    );
    let exact = |v: &Value| -> BTreeSet<String> {
        seq(&v["patterns"])
            .iter()
            .map(|p| s(&p["exact"]).to_ascii_lowercase())
            .collect()
    };
    assert_eq!(
        &exact(&svc["authorization_response"]["allowed_upstream_headers"]),
        want,
        "allowed_upstream_headers"
    );
    let sent = exact(&ea["allowed_headers"]);
    for h in ["cookie", "accept"] {
        assert!(sent.contains(h), "ext_authz does not send {h}: {sent:?}");
    }
    assert!(
        ea["authorization_request"]["allowed_headers"].is_null(),
        "authorization_request.allowed_headers is deprecated; use ExtAuthz.allowed_headers"
    );

    // Routes: the auth endpoint is not public, Portcullis' pages skip
    // authorization, everything else is authorized.
    let vh = &seq(&hcm["route_config"]["virtual_hosts"])[0];
    let routes = seq(&vh["routes"]);
    let disabled = |r: &Value| {
        r["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] == true
    };
    let first_for = |path: &str| {
        routes
            .iter()
            .find(|r| {
                let m = &r["match"];
                m["path"].as_str() == Some(path)
                    || m["prefix"].as_str().is_some_and(|p| path.starts_with(p))
            })
            .unwrap()
    };
    let auth = first_for(&pc.path);
    assert!(
        !auth["direct_response"].is_null(),
        "{} reaches Portcullis from outside",
        pc.path
    );
    let login = first_for("/.portcullis/login");
    assert_eq!(s(&login["route"]["cluster"]), "portcullis");
    assert!(disabled(login));
    let page = first_for("/anything");
    assert!(!disabled(page));
    assert_ne!(
        cluster_address(&b, s(&page["route"]["cluster"])),
        pc.listener
    );
}
