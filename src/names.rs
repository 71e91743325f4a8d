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
    fn slugs_and_tokens() {
        assert!(is_slug("acme-eu_1") && is_slug(&"a".repeat(64)));
        assert!(!is_slug("") && !is_slug("Acme") && !is_slug("a.b") && !is_slug(&"a".repeat(65)));
        assert!(is_token("__Host-portcullis.session"));
        assert!(!is_token("") && !is_token("a b") && !is_token("a;b") && !is_token("a=b"));
    }
}
