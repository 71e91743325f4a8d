//! `[upstream]` or `[[upstreams]]`, and the `upstream` each `[[routes]]`
//! entry names: every request must have exactly one app to go to, named
//! by the configuration rather than guessed by the proxy.

use std::collections::HashSet;

use crate::config::load::Collector;
use crate::config::schema::{Config, RouteConfig, UpstreamConfig};
use crate::config::upstreams::DEFAULT_UPSTREAM;

/// Each upstream: a unique slug name, an address, non-zero timeouts.
pub(super) fn upstreams(cfg: &Config, c: &mut Collector<'_>) {
    let several = !cfg.upstreams.is_empty();
    let default = cfg.default_upstream();
    let mut names = HashSet::new();
    for (i, u) in cfg.upstreams().iter().enumerate() {
        let at = if several {
            format!("upstreams[{i}]")
        } else {
            "upstream".to_owned()
        };
        super::unique_id(
            &u.name,
            format!("{at}.name"),
            &mut names,
            "upstream name",
            c,
        );
        one(&at, u, c);
        let named = cfg
            .routes
            .iter()
            .any(|r| r.upstream.as_deref() == Some(u.name.as_str()));
        if several && !named && default != Some(i) {
            c.warn(
                format!("{at}.name"),
                format!(
                    "no route names upstream `{}` and it is not the default: \
                     no request can reach it",
                    u.name
                ),
            );
        }
    }
}

fn one(at: &str, u: &UpstreamConfig, c: &mut Collector<'_>) {
    let has_port = u
        .address
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !has_port {
        c.push(
            format!("{at}.address"),
            "must be `HOST:PORT`, e.g. `127.0.0.1:3000`",
        );
    }
    super::nonzero(
        at,
        [
            ("connect_timeout_ms", u.connect_timeout_ms),
            ("read_timeout_ms", u.read_timeout_ms),
            ("idle_timeout_seconds", u.idle_timeout_seconds),
        ],
        c,
    );
    if u.sni.is_some() && !u.tls {
        c.push(format!("{at}.sni"), "only applies when `tls = true`");
    }
}

/// Each route's `upstream` names a configured one; without a default
/// upstream, every route names one and a host-less `/` route catches what
/// no other route matches.
pub(super) fn routes(cfg: &Config, c: &mut Collector<'_>) {
    let configured = cfg
        .upstreams()
        .iter()
        .map(|u| format!("`{}`", u.name))
        .collect::<Vec<_>>()
        .join(", ");
    let default = cfg.default_upstream();
    for (i, r) in cfg.routes.iter().enumerate() {
        match (&r.upstream, default) {
            (Some(name), _) if cfg.upstream_index(name).is_none() => c.push(
                format!("routes[{i}].upstream"),
                format!("no upstream `{name}`; configured: {configured}"),
            ),
            (Some(_), _) => {}
            (None, None) => c.push(
                format!("routes[{i}].upstream"),
                format!(
                    "several upstreams and none is named `{DEFAULT_UPSTREAM}`: \
                     name this route's upstream (one of {configured})"
                ),
            ),
            (None, Some(_)) => other_hosts_upstream(cfg, i, r, c),
        }
    }
    let catch_all = cfg
        .routes
        .iter()
        .any(|r| r.host.is_none() && is_root(&r.prefix) && r.upstream.is_some());
    if default.is_none() && !catch_all {
        c.push(
            "upstreams",
            format!(
                "several upstreams and none is named `{DEFAULT_UPSTREAM}`, so a request \
                 that matches no route has nowhere to go: name one `{DEFAULT_UPSTREAM}`, \
                 or add a `[[routes]]` entry with `prefix = \"/\"`, no `host` and an `upstream`"
            ),
        );
    }
}

/// A host-specific route without `upstream` goes to the default upstream
/// even when the host's other routes go elsewhere: likely a forgotten line.
fn other_hosts_upstream(cfg: &Config, i: usize, r: &RouteConfig, c: &mut Collector<'_>) {
    let Some(host) = &r.host else { return };
    let default = cfg
        .default_upstream()
        .and_then(|d| cfg.upstreams().get(d))
        .map_or(DEFAULT_UPSTREAM, |u| u.name.as_str());
    let elsewhere = cfg.routes.iter().find_map(|o| {
        let same_host = o
            .host
            .as_ref()
            .is_some_and(|h| h.eq_ignore_ascii_case(host));
        o.upstream.as_deref().filter(|u| same_host && *u != default)
    });
    if let Some(other) = elsewhere {
        c.warn(
            format!("routes[{i}].upstream"),
            format!(
                "other routes for `{host}` go to upstream `{other}`, this one to the \
                 default upstream `{default}`; set `upstream` if that is not meant"
            ),
        );
    }
}

/// `/` (or `//`): a prefix every path starts with.
fn is_root(prefix: &str) -> bool {
    prefix.split('/').all(str::is_empty)
}
