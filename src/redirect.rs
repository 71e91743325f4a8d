//! Redirect targets. Every `return_to` Portcullis honours goes through here
//! so there is exactly one definition of "not an open redirect".

/// A return target is only ever a same-origin relative path: `/x?y`, never
/// `//evil.com`, `/\evil.com`, `https://…`, or anything with control
/// characters (which browsers strip, turning `/\t/evil.com` into
/// `//evil.com`).
pub(crate) fn safe_return_to(s: &str) -> Option<&str> {
    let ok = s.starts_with('/')
        && !s.starts_with("//")
        && !s.starts_with("/\\")
        && s.len() <= 2048
        && !s.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(s)
}

/// A return target that may also be absolute: a [`safe_return_to`] path, or
/// `http(s)://host[:port]/…` whose host (lower-case, no trailing dot) is in
/// `hosts` — no userinfo, no backslash or control characters anywhere, at
/// most 2048 bytes, and `https` when `https_only`. For logins that start on
/// Portcullis' own host on behalf of another protected host.
pub(crate) fn safe_return_target<'a>(
    s: &'a str,
    hosts: &[String],
    https_only: bool,
) -> Option<&'a str> {
    if let Some(path) = safe_return_to(s) {
        return Some(path);
    }
    if s.len() > 2048 || s.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let (scheme, rest) = s.split_once("://")?;
    let scheme_ok = scheme.eq_ignore_ascii_case("https")
        || (!https_only && scheme.eq_ignore_ascii_case("http"));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority_host(authority)?;
    let listed = hosts.iter().any(|h| h.eq_ignore_ascii_case(&host));
    (scheme_ok && listed && (tail.is_empty() || tail.starts_with('/'))).then_some(s)
}

/// `Host.Example.:8443` → `host.example`; `[::1]:80` → `[::1]`. `None` for
/// userinfo, an empty host, a bad port or any character outside a DNS name
/// or IP literal.
fn authority_host(authority: &str) -> Option<String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        (&authority[..addr.len() + 2], after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    ok.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths() {
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "/\t/evil.com",
            "evil",
            "",
            "/a\\b",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
        assert_eq!(safe_return_to("/a/b?c=d#e"), Some("/a/b?c=d#e"));
        assert_eq!(safe_return_to(&format!("/{}", "a".repeat(5000))), None);
    }

    #[test]
    fn absolute_targets_only_on_listed_hosts() {
        let hosts = ["app.example.com".to_owned(), "[::1]".to_owned()];
        for good in [
            "/x",
            "http://app.example.com",
            "https://APP.example.com./a?b#c",
            "https://app.example.com:8443/a",
            "http://[::1]:8080/x",
            "HTTPS://app.example.com/",
        ] {
            assert_eq!(
                safe_return_target(good, &hosts, false),
                Some(good),
                "{good}"
            );
        }
        for bad in [
            "//evil.com",
            "https://evil.com/",
            "https://app.example.com.evil.com/",
            "https://evil.com#app.example.com",
            "https://user@app.example.com/",
            "https://app.example.com@evil.com/",
            "https://app.example.com\\@evil.com/",
            "https://app.example.com\t/x",
            "https://app.example.com:/x",
            "https://app.example.com:99999999/x",
            "https://app.example.com:80:80/x",
            "javascript://app.example.com/%0aalert(1)",
            "ftp://app.example.com/",
            "https:///app.example.com/",
            "https://[::2]/",
            "https://app.example.com?x",
        ] {
            assert_eq!(safe_return_target(bad, &hosts, false), None, "{bad:?}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(2048));
        assert_eq!(safe_return_target(&long, &hosts, false), None);
        assert_eq!(
            safe_return_target("http://app.example.com/x", &hosts, true),
            None
        );
        assert_eq!(
            safe_return_target("https://app.example.com/x", &hosts, true),
            Some("https://app.example.com/x")
        );
    }
}
