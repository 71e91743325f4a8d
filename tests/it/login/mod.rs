//! Signing in: SSO routing and policy, SSO enforcement, logout, the login page in Chromium, the development IdP, domain verification.

mod browser;
mod dev_idp;
mod domains;
mod enforce;
mod logout;
mod sso;
