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
}
