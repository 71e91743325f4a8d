//! The providers' real endpoints. Configuration may replace them only with
//! loopback addresses (tests); everywhere else these are the ones used.

pub(super) const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Microsoft's multi-tenant discovery base for work and school accounts;
/// its document names the issuer as a template, one per Entra tenant.
pub(super) const MICROSOFT_DISCOVERY: &str = "https://login.microsoftonline.com/organizations/v2.0";

/// The path segment of `MICROSOFT_DISCOVERY` that the issuer template has
/// `{tenantid}` in place of.
pub(super) const MICROSOFT_ORGANIZATIONS: &str = "/organizations/";

pub(super) const APPLE_ISSUER: &str = "https://appleid.apple.com";

pub(super) const GITHUB_AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
pub(super) const GITHUB_TOKEN: &str = "https://github.com/login/oauth/access_token";
pub(super) const GITHUB_API: &str = "https://api.github.com";

/// Apple's relay addresses ("Hide My Email"): they reach the user, but
/// prove nothing about an organisation's domain.
pub(super) const APPLE_PRIVATE_RELAY_DOMAIN: &str = "privaterelay.appleid.com";
