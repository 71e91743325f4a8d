//! HTML pages (askama, auto-escaped). Failure pages are deliberately
//! generic: the precise reason goes to the log and metrics, never to the
//! client.

use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage<'a> {
    pub action: &'a str,
    pub email: &'a str,
    pub return_to: &'a str,
    pub notice: Option<&'a str>,
    pub has_connections: bool,
    pub app_login_url: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "test_signin.html")]
pub(crate) struct TestSignInPage<'a> {
    pub connection: &'a str,
    pub tenant: &'a str,
    pub verdict: &'a str,
    pub principal: Option<&'a str>,
    pub claims: &'a str,
    pub request_id: &'a str,
}

#[derive(Template)]
#[template(path = "chooser.html")]
pub(crate) struct ChooserPage<'a> {
    pub email: &'a str,
    /// (href, label)
    pub choices: Vec<(String, String)>,
    pub back: &'a str,
}

/// The answer to the login form when the email routes to one connection:
/// a page that moves on by itself (`<meta http-equiv="refresh">`, with a
/// link for browsers that don't follow it), not a `303`. Chrome applies the
/// page's `form-action 'self'` to every redirect that follows a form
/// submission, and this one ends at the IdP, another origin; a refresh is a
/// new navigation, not the form's. Listing IdP origins in `form-action`
/// instead would publish which customers use which IdP to anyone who loads
/// the login page.
#[derive(Template)]
#[template(path = "continue.html")]
pub(crate) struct ContinuePage<'a> {
    pub email: &'a str,
    pub label: &'a str,
    /// Same-origin start URL of the connection.
    pub href: &'a str,
}

/// The logout confirmation: a GET only shows it; the button POSTs the
/// session's CSRF token, and only that ends the session.
#[derive(Template)]
#[template(path = "logout.html")]
pub(crate) struct LogoutPage<'a> {
    pub action: &'a str,
    pub email: &'a str,
    pub csrf: &'a str,
    pub return_to: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub link: Option<(&'a str, &'a str)>,
    pub request_id: &'a str,
}

/// Renders a message page; falls back to plain text if the template fails.
pub(crate) fn message(
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
    request_id: &str,
) -> String {
    MessagePage {
        title,
        message,
        link,
        request_id,
    }
    .render()
    .unwrap_or_else(|_| format!("{title}\n\n{message}\n"))
}

/// Security headers for every page Portcullis renders itself.
pub(crate) const PAGE_HEADERS: &[(&str, &str)] = &[
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
];

#[derive(Template)]
#[template(path = "dev_idp_pick.html")]
pub(crate) struct DevIdpPickPage<'a> {
    pub action: &'a str,
    pub sp: &'a str,
    pub saml_request: &'a str,
    pub relay_state: &'a str,
    /// (email, label)
    pub users: Vec<(String, String)>,
}

/// The auto-submit script of [`DevIdpPostPage`]; allowed by its hash.
pub(crate) const DEV_IDP_POST_SCRIPT: &str = "document.getElementById('saml-post').submit();";

#[derive(Template)]
#[template(path = "dev_idp_post.html")]
pub(crate) struct DevIdpPostPage<'a> {
    pub email: &'a str,
    pub acs: &'a str,
    pub saml_response: &'a str,
    pub relay_state: &'a str,
    pub script: &'a str,
}
