//! `[server]`, `[[listeners]]` and `[admin]`: where Portcullis is reached
//! and under which origin (where it forwards to is `upstreams.rs`).

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::config::load::Collector;
use crate::config::schema::Config;

pub(super) fn server(cfg: &Config, c: &mut Collector<'_>) {
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

pub(super) fn listeners(cfg: &Config, c: &mut Collector<'_>) {
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
