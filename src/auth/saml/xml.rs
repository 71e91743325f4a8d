//! Tiny, local-name based reading of the few SAML fragments handled
//! outside samael (EncryptedAssertion, logout messages). Only ever applied
//! to input that has passed the no-DTD check; never used to decide what is
//! signed (samael and libxmlsec1 do that).

/// `(start, end)` byte span of the first element with local name `local`,
/// end after its close tag. Elements of that name never nest in SAML.
pub(super) fn element_span(xml: &str, local: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = xml[from..].find('<').map(|i| i + from) {
        let name: String = xml[i + 1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        if name.rsplit(':').next() == Some(local) && !name.starts_with(['/', '!', '?']) {
            let close = format!("</{name}>");
            let end = xml[i..].find(&close)? + i + close.len();
            return Some((i, end));
        }
        from = i + 1;
    }
    None
}

/// The value of `attr` on the first element named `local`. The start tag
/// is read attribute by attribute (XML allows any whitespace before a name
/// and around `=`), so a required attribute can't be dodged by spelling it
/// `Destination = "…"` or after a line break, nor found inside another
/// attribute's value.
pub(super) fn first_attr<'a>(xml: &'a str, local: &str, attr: &str) -> Option<&'a str> {
    let (s, _) = element_span_or_empty(xml, local)?;
    let tag = &xml[s..s + xml[s..].find('>')?];
    // skip `<name`
    let mut rest = tag[1..].trim_start_matches(|c: char| !c.is_whitespace() && c != '/');
    loop {
        rest = rest.trim_start();
        let name_len = rest.find(|c: char| c.is_whitespace() || c == '=')?;
        let (name, after) = rest.split_at(name_len);
        let after = after.trim_start().strip_prefix('=')?.trim_start();
        let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let value_len = after[1..].find(quote)?;
        let value = &after[1..1 + value_len];
        if name == attr {
            return Some(value);
        }
        rest = &after[1 + value_len + 1..];
    }
}

/// The text content of the first element named `local`.
pub(super) fn first_text<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    let (s, e) = element_span(xml, local)?;
    let inner = &xml[s..e];
    let open_end = inner.find('>')? + 1;
    let close_start = inner.rfind("</")?;
    (open_end <= close_start).then(|| &inner[open_end..close_start])
}

/// Like `element_span`, but also finds empty elements (`<x/>`); only the
/// start is meaningful then.
fn element_span_or_empty(xml: &str, local: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = xml[from..].find('<').map(|i| i + from) {
        let name: String = xml[i + 1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        if name.rsplit(':').next() == Some(local) && !name.starts_with(['/', '!', '?']) {
            return Some((i, i));
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_attrs_and_text_by_local_name() {
        let x = r#"<p:R><ns0:EncryptionMethod Algorithm='a1'/><p:EncryptedAssertion><e/></p:EncryptedAssertion><q:CipherValue>Zm9v</q:CipherValue></p:R>"#;
        let (s, e) = element_span(x, "EncryptedAssertion").unwrap();
        assert_eq!(
            &x[s..e],
            "<p:EncryptedAssertion><e/></p:EncryptedAssertion>"
        );
        assert!(element_span("<a><b/></a>", "c").is_none());
        assert_eq!(first_attr(x, "EncryptionMethod", "Algorithm"), Some("a1"));
        assert_eq!(first_text(x, "CipherValue"), Some("Zm9v"));
        assert_eq!(first_text("<a/>", "a"), None);
        let spaced = "<p:R\n\tID = 'x' NotID=\"y\" Destination\n=\n\"https://d\"/>";
        assert_eq!(first_attr(spaced, "R", "ID"), Some("x"));
        assert_eq!(first_attr(spaced, "R", "Destination"), Some("https://d"));
        assert_eq!(first_attr("<R NotID=\"y\"/>", "R", "ID"), None);
        assert_eq!(first_attr("<R ID=y/>", "R", "ID"), None);
        assert_eq!(
            first_attr("<R A='x ID=\"evil\"' ID=\"good\"/>", "R", "ID"),
            Some("good")
        );
        assert_eq!(first_attr("<R/>", "R", "ID"), None);
        assert_eq!(first_attr("<R A=\"1\"/>", "R", "A"), Some("1"));
    }
}
