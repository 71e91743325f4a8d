//! SSO enforcement on the app's own password login: find the email in the
//! submitted body and, when its verified domain's tenant enforces SSO,
//! answer before the request reaches the app.

use crate::config::{LoginConfig, PasswordEndpoint};

/// Login bodies are small; pingora can replay at most 64 KiB to the app
/// after we've read it, so anything larger is refused rather than guessed.
pub const MAX_LOGIN_BODY: usize = 64 * 1024;

/// The endpoint `method path` is, if any.
pub fn endpoint<'a>(
    cfg: &'a LoginConfig,
    method: &str,
    path: &str,
) -> Option<&'a PasswordEndpoint> {
    let normalized = super::routes::normalize_path(path);
    cfg.password_endpoints.iter().find(|e| {
        e.method == method
            && (e.path == path
                || e.path == normalized
                || e.path == normalized.trim_end_matches('/'))
    })
}

/// The submitted email, from a form field or a JSON pointer.
pub fn email_in(ep: &PasswordEndpoint, content_type: &str, body: &[u8]) -> Option<String> {
    let ct = content_type.to_ascii_lowercase();
    if let Some(pointer) = &ep.email_json_pointer {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        return v.pointer(pointer)?.as_str().map(str::to_owned);
    }
    let field = ep.email_field.as_deref().unwrap_or("email");
    if ct.starts_with("application/x-www-form-urlencoded") {
        return form_urlencoded::parse(body)
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.into_owned());
    }
    if ct.starts_with("application/json") {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        return v.get(field)?.as_str().map(str::to_owned);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(field: Option<&str>, pointer: Option<&str>) -> PasswordEndpoint {
        PasswordEndpoint {
            path: "/login".into(),
            method: "POST".into(),
            email_field: field.map(str::to_owned),
            email_json_pointer: pointer.map(str::to_owned),
        }
    }

    #[test]
    fn finds_the_email() {
        let form = "application/x-www-form-urlencoded";
        assert_eq!(
            email_in(&ep(None, None), form, b"email=a%40acme.com&password=x").as_deref(),
            Some("a@acme.com")
        );
        assert_eq!(
            email_in(&ep(Some("user"), None), form, b"user=b@acme.com").as_deref(),
            Some("b@acme.com")
        );
        assert_eq!(
            email_in(
                &ep(None, None),
                "application/json",
                br#"{"email":"c@acme.com"}"#
            )
            .as_deref(),
            Some("c@acme.com")
        );
        assert_eq!(
            email_in(
                &ep(None, Some("/user/email")),
                "application/json; charset=utf-8",
                br#"{"user":{"email":"d@acme.com"}}"#
            )
            .as_deref(),
            Some("d@acme.com")
        );
        for (ct, body) in [
            (form, &b"password=x"[..]),
            ("application/json", b"{not json"),
            ("text/plain", b"email=a@b.com"),
            ("application/json", b"{\"email\": 5}"),
        ] {
            assert_eq!(email_in(&ep(None, None), ct, body), None);
        }
    }

    #[test]
    fn matches_method_and_path() {
        let cfg = LoginConfig {
            password_endpoints: vec![ep(None, None)],
            ..LoginConfig::default()
        };
        assert!(endpoint(&cfg, "POST", "/login").is_some());
        assert!(endpoint(&cfg, "POST", "/x/../login").is_some());
        assert!(endpoint(&cfg, "POST", "//login").is_some());
        assert!(endpoint(&cfg, "GET", "/login").is_none());
        assert!(endpoint(&cfg, "POST", "/login2").is_none());
    }
}
