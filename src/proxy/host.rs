//! The host a request is for, as the app behind might take it.
//!
//! Rule: every name the app could read as "the host" is a name the route
//! table must honour. That is the `Host` header, the authority of an
//! absolute-form target (`GET http://h/ HTTP/1.1`, which RFC 9112 says wins
//! over `Host`), and — only behind a trusted balancer — `X-Forwarded-Host`,
//! which Rails and Django (with `USE_X_FORWARDED_HOST`) route on. Requests
//! that leave the host ambiguous are refused: an HTTP/1.1 request without
//! `Host`, two `Host` headers, or a `Host` that disagrees with the target's
//! authority.

use http::{HeaderMap, Version, header::HOST};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("HTTP/1.1 request without a Host header")]
    Missing,
    #[error("more than one Host header")]
    Duplicate,
    #[error("Host header disagrees with the request target's authority")]
    Mismatch,
    #[error("malformed host")]
    Malformed,
}

impl HostError {
    /// Closed label set for `portcullis_requests_refused_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            HostError::Missing => "host_missing",
            HostError::Duplicate => "host_duplicate",
            HostError::Mismatch => "host_mismatch",
            HostError::Malformed => "host_malformed",
        }
    }
}

/// The normalised hosts of a request (lower-case, no port, no trailing
/// dot): usually one, none for an HTTP/1.0 request without `Host`.
/// `target` is the request target as sent (pingora keeps an absolute-form
/// target's authority off the parsed `Uri`, so it is read from the bytes).
pub fn request_hosts(
    version: Version,
    target: &[u8],
    headers: &HeaderMap,
    trust_forwarded: bool,
) -> Result<Vec<String>, HostError> {
    let mut values = headers.get_all(HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(HostError::Duplicate);
    }
    let header = header
        .map(|v| v.to_str().map_err(|_| HostError::Malformed))
        .transpose()?
        .map(normalize)
        .transpose()?;
    let authority = target_authority(target).map(normalize).transpose()?;
    let mut hosts = match (header, authority) {
        (Some(h), Some(a)) if h != a => return Err(HostError::Mismatch),
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400, even
        // with an absolute-form target.
        (None, _) if version >= Version::HTTP_11 => return Err(HostError::Missing),
        (Some(h), _) | (None, Some(h)) => vec![h],
        (None, None) => Vec::new(),
    };
    if trust_forwarded {
        for v in headers.get_all("x-forwarded-host") {
            let v = v.to_str().map_err(|_| HostError::Malformed)?;
            for h in v.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                let h = normalize(h)?;
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
        }
    }
    Ok(hosts)
}

/// The authority of an absolute-form target (`http://h:8080/x` →
/// `h:8080`), as sent; `None` for the origin form (`/x`) and anything that
/// is not UTF-8 (the path check refuses those).
pub fn target_authority(target: &[u8]) -> Option<&str> {
    // The origin form, what nearly every request sends, is answered without
    // reading on: an absolute-form target begins with its scheme, never
    // `/` (and `/http://h/` is a path, which the checks below also find).
    if target.first() == Some(&b'/') {
        return None;
    }
    let target = std::str::from_utf8(target).ok()?;
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// `Example.COM.:8080` → `example.com`; `[::1]:80` → `[::1]`. Anything that
/// isn't a plain DNS name or IP literal (userinfo, spaces, `%`, non-ASCII)
/// is malformed: an app parsing it with a laxer grammar might see another
/// name.
pub fn normalize(authority: &str) -> Result<String, HostError> {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(HostError::Malformed)?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(port_ok))
            || v6.parse::<std::net::Ipv6Addr>().is_err()
        {
            return Err(HostError::Malformed);
        }
        return Ok(format!("[{}]", v6.to_ascii_lowercase()));
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if port_ok(p) => h,
            Some(_) => return Err(HostError::Malformed),
            None => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        // no empty label: no leading, trailing or doubled dot
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !host.as_bytes().windows(2).any(|w| w == b"..");
    if !ok {
        return Err(HostError::Malformed);
    }
    Ok(host.to_ascii_lowercase())
}

/// The digits after the colon.
fn port_ok(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(
        version: Version,
        target: &str,
        host: &[&str],
        xfh: Option<&str>,
        trust: bool,
    ) -> Result<Vec<String>, HostError> {
        let mut h = HeaderMap::new();
        for v in host {
            h.append(HOST, v.parse().unwrap());
        }
        if let Some(x) = xfh {
            h.insert("x-forwarded-host", x.parse().unwrap());
        }
        request_hosts(version, target.as_bytes(), &h, trust)
    }

    const V11: Version = Version::HTTP_11;

    #[test]
    fn a_host_with_an_empty_label_is_malformed() {
        // Every name of up to 7 bytes over {a, .}, with and without a
        // port: malformed exactly when a label other than the one a
        // trailing dot ends is empty.
        for len in 1..=7u32 {
            for code in 0..2usize.pow(len) {
                let name: String = (0..len)
                    .map(|i| if code >> i & 1 == 1 { '.' } else { 'a' })
                    .collect();
                let bare = name.strip_suffix('.').unwrap_or(&name);
                let expected = !bare.is_empty() && !bare.split('.').any(str::is_empty);
                for authority in [name.clone(), format!("{name}:80")] {
                    assert_eq!(normalize(&authority).is_ok(), expected, "{authority}");
                }
            }
        }
    }

    #[test]
    fn host_header_normalised() {
        assert_eq!(
            hosts(V11, "/", &["App.Example.COM.:8443"], None, false),
            Ok(vec!["app.example.com".into()])
        );
        assert_eq!(
            hosts(V11, "/", &["[::1]:80"], None, false),
            Ok(vec!["[::1]".into()])
        );
        assert_eq!(hosts(Version::HTTP_10, "/", &[], None, false), Ok(vec![]));
    }

    #[test]
    fn absolute_form_authority_counts() {
        // HTTP/1.0 needs no Host: the authority is the host
        assert_eq!(
            hosts(
                Version::HTTP_10,
                "http://api.example.com/x",
                &[],
                None,
                false
            ),
            Ok(vec!["api.example.com".into()])
        );
        assert_eq!(
            hosts(
                Version::HTTP_10,
                "HTTP://API.example.com.:80?q",
                &[],
                None,
                false
            ),
            Ok(vec!["api.example.com".into()])
        );
        // HTTP/1.1 must still send one
        assert_eq!(
            hosts(V11, "http://api.example.com/x", &[], None, false),
            Err(HostError::Missing)
        );
        assert_eq!(
            hosts(
                Version::HTTP_10,
                "http://user@api.example.com/x",
                &[],
                None,
                false
            ),
            Err(HostError::Malformed)
        );
        assert_eq!(target_authority(b"/x"), None);
        assert_eq!(target_authority(b"/redirect?to=http://evil/"), None);
        assert_eq!(target_authority(b"/http://evil/x"), None);
        assert_eq!(target_authority(b"/\xff"), None);
        assert_eq!(target_authority(b"*"), None);
        assert_eq!(target_authority(b"h:443"), None);
        assert_eq!(target_authority(b"HTTP://H/x"), Some("H"));
        assert_eq!(target_authority(b"ftp://h/x"), None);
        assert_eq!(target_authority(b"https://h:8443"), Some("h:8443"));
        assert_eq!(
            hosts(
                V11,
                "http://api.example.com/x",
                &["api.example.com"],
                None,
                false
            ),
            Ok(vec!["api.example.com".into()])
        );
        assert_eq!(
            hosts(
                V11,
                "http://api.example.com/x",
                &["www.example.com"],
                None,
                false
            ),
            Err(HostError::Mismatch)
        );
    }

    #[test]
    fn ambiguous_hosts_refused() {
        assert_eq!(hosts(V11, "/", &[], None, false), Err(HostError::Missing));
        assert_eq!(
            hosts(V11, "/", &["a.com", "b.com"], None, false),
            Err(HostError::Duplicate)
        );
        for bad in [
            "",
            "a b",
            "user@a.com",
            "a.com:x",
            "a..com",
            "[::1",
            "[zz]",
            "a%2ecom",
            ".",
            "a.com:123456",
            "a.com:",
            "a.com:+80",
            "[::1]:",
            "[::1]80",
            "[::1]:8x",
            "[::1]:123456",
        ] {
            assert_eq!(normalize(bad), Err(HostError::Malformed), "{bad:?}");
        }
    }

    /// The labels are the `reason` of a refusal metric.
    #[test]
    fn refusal_labels_are_stable() {
        use HostError::*;
        assert_eq!(
            [Missing, Duplicate, Mismatch, Malformed].map(HostError::label),
            [
                "host_missing",
                "host_duplicate",
                "host_mismatch",
                "host_malformed"
            ]
        );
    }

    #[test]
    fn forwarded_host_only_when_trusted() {
        assert_eq!(
            hosts(V11, "/", &["lb.internal"], Some("app.example.com"), false),
            Ok(vec!["lb.internal".into()])
        );
        assert_eq!(
            hosts(
                V11,
                "/",
                &["lb.internal"],
                Some("app.example.com, other.com"),
                true
            ),
            Ok(vec![
                "lb.internal".into(),
                "app.example.com".into(),
                "other.com".into()
            ])
        );
    }
}
