//! Domain-name input checking. Every name that reaches the store or the
//! resolver passes through here, so hostile input (from the CLI or a login
//! form) gets one clear error instead of a surprising lookup.

use super::DomainError;

/// Lower-cases and checks a domain: ASCII letters, digits, `-` and `_` in
/// dot-separated labels of 1-63 bytes, at least two labels, 253 bytes in
/// all (the same rules as `[[tenants]] domains` in the configuration).
/// Internationalised names must be given in their IDNA (`xn--`) form,
/// because that is what DNS and most mail systems carry.
pub fn normalize_domain(input: &str) -> Result<String, DomainError> {
    let invalid = |reason: &str| DomainError::Invalid {
        input: printable(input),
        reason: reason.to_owned(),
    };
    if input.is_empty() {
        return Err(invalid("it is empty"));
    }
    if input.contains('@') {
        return Err(invalid("give the domain only, not an email address"));
    }
    if input.chars().any(char::is_whitespace) {
        return Err(invalid("it contains whitespace"));
    }
    if !input.is_ascii() {
        return Err(invalid(
            "it contains non-ASCII characters; use the IDNA form (xn--...)",
        ));
    }
    if input.ends_with('.') {
        return Err(invalid("remove the trailing dot"));
    }
    if input.len() > 253 {
        return Err(invalid("longer than 253 characters"));
    }
    let lower = input.to_ascii_lowercase();
    if lower.split('.').any(str::is_empty) {
        return Err(invalid("it has an empty label (`..` or a leading dot)"));
    }
    if lower.split('.').any(|l| l.len() > 63) {
        return Err(invalid("a label is longer than 63 characters"));
    }
    if !crate::names::is_hostname(&lower) {
        return Err(invalid(
            "labels may contain only letters, digits, `-` and `_`, and may not start or end with `-`",
        ));
    }
    if !lower.contains('.') {
        return Err(invalid("it needs at least two labels (like `example.com`)"));
    }
    Ok(lower)
}

/// Echoes input in errors without letting it forge terminal output or log
/// lines: control characters are escaped and very long input is cut.
fn printable(input: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = input
        .chars()
        .take(MAX)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if input.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> String {
        match normalize_domain(input) {
            Err(DomainError::Invalid { reason, .. }) => reason,
            other => panic!("{input:?}: expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn lower_cases_valid_names() {
        assert_eq!(normalize_domain("Acme.COM").unwrap(), "acme.com");
        assert_eq!(normalize_domain("eu.acme.com").unwrap(), "eu.acme.com");
        assert_eq!(
            normalize_domain("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn hostile_input_is_a_clear_error() {
        assert!(reason("").contains("empty"));
        assert!(reason("a..com").contains("empty label"));
        assert!(reason(".acme.com").contains("empty label"));
        assert!(reason("acme.com.").contains("trailing dot"));
        assert!(reason("bob@acme.com").contains("email"));
        assert!(reason("bücher.de").contains("IDNA"));
        assert!(reason("acme .com").contains("whitespace"));
        assert!(reason("localhost").contains("two labels"));
        assert!(reason("-acme.com").contains("labels may contain"));
        assert!(reason("ac!me.com").contains("labels may contain"));
        assert!(reason(&format!("{}.com", "a".repeat(300))).contains("253"));
        assert!(reason(&format!("{}.com", "a".repeat(64))).contains("63"));
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(reason(&long).contains("253"));
    }

    #[test]
    fn errors_escape_control_characters() {
        let err = normalize_domain("acme\n.com").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
    }
}
