//! What counts as a valid name: host and domain names, header names as they
//! are compared, ids and cookie names. Configuration validation, login
//! routing, the domain commands and the header plan must agree on these, so
//! each rule is written once, here.
//!
//! A leaf: it imports nothing of this crate, so any module may import it.

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`,
/// each 1-63 bytes, 253 in all.
pub(crate) fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `localhost`, 127.0.0.0/8 or ::1 (bracketed or not).
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `ip` is an address on the public internet: the only kind an
/// IdP URL of a customer may make Portcullis connect to (a customer's
/// admin must not reach the cloud metadata service, the admin port, or the
/// operator's internal network through us). See [`special_range`].
pub(crate) fn is_public_ip(ip: std::net::IpAddr) -> bool {
    special_range(ip).is_none()
}

/// The special-purpose range `ip` falls in (a short name for logs and
/// messages), or `None` for a public address. IPv4 follows the IANA
/// special-purpose registry; IPv6 is public only inside global unicast
/// `2000::/3` minus its special blocks. Forms that embed an IPv4 address a
/// socket or translator would reach (IPv4-mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that address;
/// IPv4-compatible `::/96` and Teredo are refused outright (deprecated,
/// and never where an IdP lives).
pub(crate) fn special_range(ip: std::net::IpAddr) -> Option<&'static str> {
    match ip {
        std::net::IpAddr::V4(v4) => special_range_v4(v4),
        std::net::IpAddr::V6(v6) => special_range_v6(v6),
    }
}

fn special_range_v4(ip: std::net::Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "this-network (0.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared/CGNAT (100.64.0.0/10)",
        (127, ..) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, ..) => "multicast (224.0.0.0/4)",
        (255, 255, 255) if ip.is_broadcast() => "broadcast (255.255.255.255)",
        (240..=255, ..) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn special_range_v6(ip: std::net::Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
    };
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_range_v4(v4).map(|_| "IPv4-mapped non-public (::ffff:0:0/96)");
    }
    if s[..6] == [0; 6] {
        return Some("IPv4-compatible (::/96)");
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return special_range_v4(embedded(s[6], s[7]))
            .map(|_| "NAT64 of non-public (64:ff9b::/96)");
    }
    if s[0] == 0x2002 {
        return special_range_v4(embedded(s[1], s[2])).map(|_| "6to4 of non-public (2002::/16)");
    }
    Some(match s[0] {
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        0x2001 if s[1] < 0x0200 => "IETF protocol assignments, Teredo (2001::/23)",
        0x3fff if s[1] < 0x1000 => "documentation (3fff::/20)",
        0x2000..=0x3fff => return None,
        0x0064 if s[1] == 0xff9b => "NAT64 local-use (64:ff9b:1::/48)",
        0x0100 => "discard-only (100::/64)",
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast (ff00::/8)",
        _ => "reserved (outside 2000::/3)",
    })
}

/// `true` for a loopback address in any spelling a socket would reach:
/// 127.0.0.0/8, `::1`, and 127.0.0.0/8 mapped into IPv6.
pub(crate) fn is_loopback_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

const PUBLIC_MAIL_DOMAINS: &str = include_str!("names/public_mail_domains.txt");

/// Consumer mail providers that no tenant may claim.
pub(crate) fn is_public_mail_domain(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    PUBLIC_MAIL_DOMAINS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == d)
}

/// Header names are compared case-insensitively with every character other
/// than a letter or digit read as `-`: CGI-style servers turn `-` and `_`
/// into the same `HTTP_X_FORWARDED_USER`, and some map `.` (or other
/// punctuation) the same way, so a client could otherwise smuggle
/// `X_Forwarded_User` or `X.Forwarded.User` past a strip list.
pub(crate) fn normalize_header_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                b.to_ascii_lowercase() as char
            } else {
                '-'
            }
        })
        .collect()
}

/// Headers a configured header (`[[headers.extra]]`) may never be: what
/// HTTP itself, the connection, Portcullis' forwarding and request-rewrite
/// handling or the app's own credentials use. Compared as
/// [`normalize_header_name`] spells them.
const RESERVED_HEADERS: &[&str] = &[
    // HTTP framing and hop-by-hop
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "content-type",
    "content-encoding",
    "expect",
    // credentials
    "cookie",
    "authorization",
    "proxy-authorization",
    "proxy-authenticate",
    // forwarding, set from the connection
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-ssl",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    // request rewriting (would route the app around the gate)
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    // Portcullis' own
    "x-request-id",
];

/// Whether `name` is one of the headers no configuration may inject.
pub(crate) fn is_reserved_header(name: &str) -> bool {
    let n = normalize_header_name(name);
    RESERVED_HEADERS.contains(&n.as_str())
}

/// A tenant or connection id: 1-64 of `a-z`, `0-9`, `-` and `_`. Ids appear
/// in URL paths and store keys, so nothing needs escaping.
pub(crate) fn is_slug(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A cookie name: letters, digits, `-`, `_` and `.`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_mail_domains() {
        assert!(is_public_mail_domain("gmail.com") && is_public_mail_domain("Outlook.com."));
        assert!(!is_public_mail_domain("acme.com"));
    }

    #[test]
    fn hostnames() {
        for ok in [
            "acme.com",
            "_portcullis-challenge",
            "xn--bcher-kva.example",
            "a1.b_2",
        ] {
            assert!(is_hostname(ok), "{ok}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = vec!["a".repeat(60); 5].join(".");
        for bad in [
            "",
            "a..com",
            ".acme.com",
            "-acme.com",
            "acme-.com",
            "ac!me.com",
            "a b.com",
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
        assert!(!is_hostname(&long_label) && !is_hostname(&long_name));
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["10.0.0.1", "example.com", "localhost.example.com", "[::2]"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn header_names_compare_in_one_spelling() {
        for spelling in ["X-Forwarded-User", "x_forwarded_user", "X.FORWARDED.USER"] {
            assert_eq!(normalize_header_name(spelling), "x-forwarded-user");
        }
        assert_ne!(
            normalize_header_name("X-Forwarded-Users"),
            "x-forwarded-user"
        );
    }

    #[test]
    fn public_addresses() {
        for ok in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "192.0.1.1",
            "192.0.3.1",
            "192.88.98.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.1",
            "203.0.112.1",
            "223.255.255.255",
            "11.0.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2001:200::1",
            "3fff:1000::1",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: std::net::IpAddr = ok.parse().unwrap();
            assert!(is_public_ip(ip), "{ok}: {:?}", special_range(ip));
        }
    }

    #[test]
    fn special_purpose_addresses() {
        for (bad, range) in [
            ("0.0.0.0", "this-network"),
            ("0.255.255.255", "this-network"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("100.64.0.1", "shared"),
            ("100.127.255.255", "shared"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "link-local"),
            ("169.254.0.0", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("254.255.255.255", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
            ("::ffff:169.254.169.254", "IPv4-mapped"),
            ("::ffff:0.0.0.0", "IPv4-mapped"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("::8.8.8.8", "IPv4-compatible"),
            ("::2", "IPv4-compatible"),
            ("64:ff9b::7f00:1", "NAT64"),
            ("64:ff9b::a9fe:a9fe", "NAT64"),
            ("64:ff9b::a00:1", "NAT64"),
            ("64:ff9b:1::1", "NAT64 local-use"),
            ("100::1", "discard-only"),
            ("2001::1", "Teredo"),
            ("2001:1ff:ffff::1", "IETF"),
            ("2001:2::1", "IETF"),
            ("2001:db8::1", "documentation"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:a9fe:a9fe::1", "6to4"),
            ("2002:c0a8:101::1", "6to4"),
            ("3fff::1", "documentation"),
            ("3fff:fff::1", "documentation"),
            ("fc00::1", "unique local"),
            ("fd00:ec2::254", "unique local"),
            ("fdff:ffff::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fec0::1", "site-local"),
            ("feff::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ffff::1", "multicast"),
            ("1::1", "reserved"),
            ("4000::1", "reserved"),
            ("5f00::1", "reserved"),
            ("e000::1", "reserved"),
        ] {
            let ip: std::net::IpAddr = bad.parse().unwrap();
            assert!(!is_public_ip(ip), "{bad}");
            let got = special_range(ip).unwrap();
            assert!(got.contains(range), "{bad}: {got}");
        }
    }

    #[test]
    fn loopback_in_every_spelling() {
        for ok in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback_ip(ok.parse().unwrap()), "{ok}");
        }
        for bad in ["10.0.0.1", "::2", "::ffff:10.0.0.1", "0.0.0.0", "::"] {
            assert!(!is_loopback_ip(bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn slugs_and_tokens() {
        assert!(is_slug("acme-eu_1") && is_slug(&"a".repeat(64)));
        assert!(!is_slug("") && !is_slug("Acme") && !is_slug("a.b") && !is_slug(&"a".repeat(65)));
        assert!(is_token("__Host-portcullis.session"));
        assert!(!is_token("") && !is_token("a b") && !is_token("a;b") && !is_token("a=b"));
    }
}
