//! The email a password login is for, read the way the app might read it.
//!
//! Rule: look the domain up in the form the *most forgiving* app would
//! reach. Frameworks trim, case-fold and (ASP.NET Identity, Django's
//! `normalize_email` plus database collations) compatibility-normalise
//! before finding the account, so `ALICE@ACME.COM `, `alice@ａｃｍｅ.com`
//! and `alice@acme.com.` are all Acme's user. Anything that isn't a plain
//! `local@domain` (display names, comments, quotes, a second `@`) is not an
//! email Portcullis can vouch for, and the submission is refused.

use unicode_normalization::UnicodeNormalization;

/// A normalised address and its domain (ASCII, IDNA-mapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub address: String,
    pub domain: String,
}

/// Characters that make an address something other than a plain
/// `local@domain`: RFC 5322 specials and whitespace.
fn special(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '"' | '(' | ')' | '<' | '>' | ',' | ';' | ':' | '\\' | '[' | ']'
        )
}

/// Normalises `raw`, or `None` when it is not a plain address.
pub(crate) fn normalize(raw: &str) -> Option<Email> {
    let nfkc: String = raw.trim().nfkc().collect::<String>().to_lowercase();
    if nfkc.len() > 320 || nfkc.chars().any(special) {
        return None;
    }
    let (local, domain) = nfkc.split_once('@')?;
    if local.is_empty() || domain.contains('@') {
        return None;
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    // UTS 46 mapping: drops ignorable characters (soft hyphen, zero-width
    // joiners) and turns Unicode labels into their `xn--` form, as a mail
    // library would before looking the account up.
    let domain = idna::domain_to_ascii(domain).ok()?;
    let domain = domain.strip_suffix('.').unwrap_or(&domain).to_owned();
    if !crate::names::is_hostname(&domain) || !domain.contains('.') {
        return None;
    }
    Some(Email {
        address: format!("{local}@{domain}"),
        domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(s: &str) -> Option<String> {
        normalize(s).map(|e| e.domain)
    }

    #[test]
    fn forgiving_forms_reach_the_same_domain() {
        for s in [
            "alice@acme.com",
            "ALICE@ACME.COM",
            "  alice@acme.com\t",
            "alice@acme.com.",
            "alice@\u{ff41}cme.com",
            "\u{ff41}lice\u{ff20}acme\u{ff0e}com",
            "alice@ac\u{ad}me.com",
            "alice@acme.com\u{a0}",
            "alice@ACME.COM.",
        ] {
            assert_eq!(domain(s).as_deref(), Some("acme.com"), "{s:?}");
        }
        assert_eq!(
            domain("alice@b\u{fc}cher.de").as_deref(),
            Some("xn--bcher-kva.de")
        );
        assert_eq!(
            normalize("Alice@Acme.com").unwrap().address,
            "alice@acme.com"
        );
    }

    #[test]
    fn not_plain_addresses() {
        for s in [
            "",
            "alice",
            "@acme.com",
            "alice@",
            "alice@localhost",
            "a lice@acme.com",
            "a@b@acme.com",
            "\"a@b\"@acme.com",
            "Alice <alice@acme.com>",
            "alice(x)@acme.com",
            "alice@acme.com,bob@acme.com",
            "alice@acme.com;x",
            "alice@[127.0.0.1]",
            "alice@acme..com",
            "alice@acme.com\u{0}",
            "alice\n@acme.com",
            "al\u{1}ice@acme.com",
            "al\u{7f}ice@acme.com",
        ] {
            assert_eq!(normalize(s), None, "{s:?}");
        }
    }

    /// RFC 5321's 320-character limit, inclusive.
    #[test]
    fn at_most_320_characters() {
        let at_limit = format!("{}@acme.com", "a".repeat(311));
        assert_eq!(at_limit.len(), 320);
        assert_eq!(domain(&at_limit).as_deref(), Some("acme.com"));
        assert_eq!(normalize(&format!("a{at_limit}")), None);
        assert_eq!(normalize(&format!("{}{at_limit}", "a".repeat(100))), None);
    }
}
