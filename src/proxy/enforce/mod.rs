//! SSO enforcement on the app's own password login.
//!
//! Rule: fail closed. A submission to a configured password endpoint is
//! forwarded only when Portcullis has read exactly one email from it
//! ([`body`]), normalised it the way the most forgiving framework would
//! ([`email`]), looked its domain up, and found no tenant enforcing SSO.
//! Everything else — an unreadable body, a second email, credentials in the
//! query string, a domain lookup that failed — is refused before the app
//! sees it.
//!
//! The endpoint's path matches like a route, under every reading of the
//! request path (case, `;params`, dot segments, trailing slash, format
//! suffixes such as `/login.json`), and every request to it that carries a
//! body or a method other than GET/HEAD/OPTIONS is inspected, whatever the
//! configured `method`: frameworks accept `_method` overrides and bodies on
//! GET.
//!
//! This module reads a submission; what follows from it is decided by
//! `gate::decide_login`, a pure function, and only translated by the
//! proxy's `request_filter`.

mod body;
mod email;

use http::{HeaderMap, Method};

pub(super) use body::{FieldSpec, Refusal};
pub(super) use email::{Email, normalize};

use crate::config::LoginConfig;

use super::canon::Readings;
use super::routes::{fold, prefix_segments};

/// Login bodies are small; pingora can replay at most 64 KiB to the app
/// after we've read it, so anything larger is refused rather than guessed.
pub(super) const MAX_LOGIN_BODY: usize = 64 * 1024;

/// Headers through which frameworks let a POST pose as another method.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The configured password endpoints, compiled once per generation.
#[derive(Debug, Clone, Default)]
pub struct PasswordEndpoints {
    endpoints: Vec<Endpoint>,
}

/// One password endpoint: its folded path segments and where the
/// credentials are.
#[derive(Debug, Clone)]
pub struct Endpoint {
    segments: Vec<String>,
    email: FieldSpec,
    password: FieldSpec,
}

impl PasswordEndpoints {
    pub fn compile(cfg: &LoginConfig) -> Self {
        let endpoints = cfg
            .password_endpoints
            .iter()
            .map(|e| Endpoint {
                segments: prefix_segments(&e.path)
                    .into_iter()
                    .map(|s| fold(s).into_owned())
                    .collect(),
                email: FieldSpec::new(e.email_field.as_deref(), e.email_json_pointer.as_deref()),
                password: FieldSpec::new(
                    Some(e.password_field.as_deref().unwrap_or("password")),
                    None,
                ),
            })
            .collect();
        Self { endpoints }
    }

    /// The endpoint any reading of `path` names, if any.
    pub fn find(&self, path: &Readings<'_>) -> Option<&Endpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        self.endpoints
            .iter()
            .find(|e| path.iter().any(|p| e.is_path(p)))
    }
}

impl Endpoint {
    /// Exactly the endpoint's segments, folded, with an optional trailing
    /// slash.
    fn is_path(&self, path: &str) -> bool {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let mut segs = path.split('/').skip(1).filter(|s| !s.is_empty());
        self.segments
            .iter()
            .all(|t| segs.next().is_some_and(|s| fold(s) == t.as_str()))
            && segs.next().is_none()
    }

    /// Credentials in the query string are refused on any method: PHP's
    /// `$_REQUEST`, Express's `req.query` fallbacks and ASP.NET model
    /// binding all read them.
    pub fn check_query(&self, query: Option<&str>) -> Result<(), Refusal> {
        match query {
            Some(q) if body::query_names(q, &[&self.email, &self.password])? => {
                Err(Refusal::QueryCredentials)
            }
            _ => Ok(()),
        }
    }

    /// The submitted email, normalised, or why the submission is refused.
    pub async fn submitted_email(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: bytes::Bytes,
    ) -> Result<Email, Refusal> {
        let raw = body::email_value(content_type, content_encoding, body, &self.email).await?;
        normalize(&raw).ok_or(Refusal::NotAnEmail)
    }
}

/// Must the body be read? Any request that could carry credentials: a body,
/// a method other than GET/HEAD/OPTIONS, or a method override.
pub(super) fn inspects(method: &Method, headers: &HeaderMap) -> bool {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let has_body = headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    !safe || has_body || METHOD_OVERRIDES.iter().any(|h| headers.contains_key(*h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PasswordEndpoint;
    use crate::proxy::canon::readings;

    fn endpoints() -> PasswordEndpoints {
        PasswordEndpoints::compile(&LoginConfig {
            password_endpoints: vec![PasswordEndpoint {
                path: "/api/login".into(),
                method: "POST".into(),
                email_field: None,
                email_json_pointer: None,
                password_field: None,
            }],
            ..LoginConfig::default()
        })
    }

    #[test]
    fn endpoint_path_matches_like_routes() {
        let e = endpoints();
        for p in [
            "/api/login",
            "/API/Login",
            "/api/login/",
            "/api/login;jsessionid=1",
            "/api/login.json",
            "/api/login.xml",
            "/api/x/../login",
            "/api/x/..;/login",
            "//api//login",
            "/api/%6cogin",
            "/api/login.",
            "/api/log%C4%B1n",
        ] {
            assert!(e.find(&readings(p).unwrap()).is_some(), "{p}");
        }
        for p in ["/api/login2", "/api/login/x", "/api", "/login"] {
            assert!(e.find(&readings(p).unwrap()).is_none(), "{p}");
        }
    }

    /// pingora replays at most 64 KiB of a body it has read to the app.
    #[test]
    fn the_body_limit_is_what_pingora_can_replay() {
        assert_eq!(MAX_LOGIN_BODY, 65_536);
    }

    #[test]
    fn what_gets_inspected() {
        let mut h = HeaderMap::new();
        assert!(!inspects(&Method::GET, &h));
        assert!(inspects(&Method::POST, &h));
        assert!(inspects(&Method::PUT, &h));
        assert!(inspects(&Method::from_bytes(b"post").unwrap(), &h));
        h.insert("content-length", "10".parse().unwrap());
        assert!(inspects(&Method::GET, &h));
        let mut o = HeaderMap::new();
        o.insert("x-http-method-override", "POST".parse().unwrap());
        assert!(inspects(&Method::GET, &o));
    }

    #[test]
    fn query_credentials_refused() {
        let e = endpoints();
        let ep = e.find(&readings("/api/login").unwrap()).unwrap();
        assert_eq!(ep.check_query(None), Ok(()));
        assert_eq!(ep.check_query(Some("next=%2Fhome")), Ok(()));
        assert_eq!(
            ep.check_query(Some("email=a@acme.com")),
            Err(Refusal::QueryCredentials)
        );
        assert_eq!(
            ep.check_query(Some("Password=x")),
            Err(Refusal::QueryCredentials)
        );
    }
}
