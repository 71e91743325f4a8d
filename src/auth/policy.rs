//! Completing a login: the one place that decides whether a verified IdP
//! response lets someone in, whatever the protocol. An IdP may only assert
//! emails of its own tenant's verified domains; unverified emails, unknown
//! users (with JIT off) and deactivated users are refused.

use async_trait::async_trait;

use super::connection::VerifiedLogin;
use crate::config::TenantConfig;
use crate::events::{self, EventType};
use crate::identity::Principal;
use crate::store::{Store, StoreError, UserRecord};

/// Which tenant owns a domain, counting only *verified* domains.
#[async_trait]
pub trait DomainRouter: Send + Sync {
    async fn verified_tenant(&self, domain: &str) -> Result<Option<String>, String>;
}

#[async_trait]
impl DomainRouter for crate::domains::Domains {
    async fn verified_tenant(&self, domain: &str) -> Result<Option<String>, String> {
        crate::domains::Domains::verified_tenant(self, domain)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Why a login was refused. `reason` is a closed label for metrics and the
/// log; the browser only ever sees a generic page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct LoginFailure {
    pub reason: &'static str,
    pub detail: String,
}

fn fail(reason: &'static str, detail: impl Into<String>) -> LoginFailure {
    LoginFailure {
        reason,
        detail: detail.into(),
    }
}

/// The domain part of a plausible email address, lower-cased.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let ok = !local.is_empty()
        && email.len() <= 320
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        && crate::names::is_hostname(&domain)
        && domain.contains('.');
    ok.then_some(domain)
}

/// Why an address does not belong to a tenant ([`tenant_email_domain`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForeignEmail {
    /// Not a plausible address at all, so no domain to judge.
    #[error("not an email address")]
    NotAnAddress,
    /// A real address in a domain that is not one of the given ones.
    #[error("{domain} is not one of the tenant's domains")]
    OutsideTenant { domain: String },
}

/// The domain of `email` when it is one of `domains` (case-insensitively).
///
/// The one rule for "this address is inside the tenant", so every way a
/// person is added to a tenant judges an address the same way: `users
/// invite` passes the tenant's configured domains, SCIM the ones login
/// routing would send to the tenant (verified in the store and still
/// configured). Whoever passes the list decides what "the tenant's
/// domains" means; parsing and comparing are only here.
pub fn tenant_email_domain<'a>(
    email: &str,
    domains: impl IntoIterator<Item = &'a str>,
) -> Result<String, ForeignEmail> {
    let domain = email_domain(email).ok_or(ForeignEmail::NotAnAddress)?;
    if domains.into_iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
        Ok(domain)
    } else {
        Err(ForeignEmail::OutsideTenant { domain })
    }
}

/// Roles: the user's own role plus every role mapped from their groups,
/// de-duplicated, in a stable order.
pub fn map_roles(user_role: Option<&str>, groups: &[String], tenant: &TenantConfig) -> Vec<String> {
    let mut roles: Vec<String> = user_role.map(str::to_owned).into_iter().collect();
    for g in groups {
        if let Some(mapped) = tenant.group_roles.get(g) {
            roles.extend(mapped.iter().cloned());
        }
    }
    let mut seen = std::collections::HashSet::new();
    roles.retain(|r| seen.insert(r.clone()));
    roles
}

/// Whether a completed login may change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real login: JIT-provision and record it.
    Live,
    /// A test sign-in: decide only; the principal of a user JIT would create
    /// has the user id `(new user)`.
    DryRun,
}

/// Decides and, on success, provisions (JIT) and records the login.
pub async fn complete(
    login: &VerifiedLogin,
    tenant: &TenantConfig,
    domains: &dyn DomainRouter,
    store: &Store,
    now: i64,
    mode: Mode,
) -> Result<Principal, LoginFailure> {
    let domain = email_domain(&login.email).ok_or_else(|| {
        fail(
            "invalid_email",
            format!("asserted email {:?} is not an address", login.email),
        )
    })?;
    if login.email_verified == Some(false) {
        return Err(fail(
            "email_unverified",
            format!("IdP says {} is not verified", login.email),
        ));
    }
    match domains
        .verified_tenant(&domain)
        .await
        .map_err(|e| fail("store", e))?
    {
        Some(owner)
            if owner == tenant.id
                && !tenant
                    .domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(&domain)) =>
        {
            return Err(fail(
                "domain_not_verified",
                format!(
                    "{domain} is verified for tenant {} but no longer in its configured domains",
                    tenant.id
                ),
            ));
        }
        Some(owner) if owner == tenant.id => {}
        Some(owner) => {
            return Err(fail(
                "foreign_domain",
                format!(
                    "connection of tenant {} asserted {} whose domain belongs to tenant {owner}",
                    tenant.id, login.email
                ),
            ));
        }
        None => {
            return Err(fail(
                "domain_not_verified",
                format!("{domain} is not a verified domain of tenant {}", tenant.id),
            ));
        }
    }
    let store_err = |e: StoreError| fail("store", e.to_string());
    let user = match store
        .users()
        .by_email(&tenant.id, &login.email)
        .await
        .map_err(store_err)?
    {
        Some(u) => u,
        None if tenant.jit.enabled => {
            let u = UserRecord {
                id: uuid::Uuid::new_v4().to_string(),
                tenant: tenant.id.clone(),
                email: login.email.clone(),
                name: login.name.clone(),
                role: tenant.jit.default_role.clone(),
                source: "jit".into(),
                active: true,
                subject: None,
                created_at: now,
                updated_at: now,
                last_login_at: None,
            };
            if mode == Mode::DryRun {
                return Ok(principal(
                    login,
                    tenant,
                    UserRecord {
                        id: "(new user)".into(),
                        ..u
                    },
                ));
            }
            match create_jit_user(store, &u, now).await {
                Ok(()) => u,
                // Two first logins racing: the other one created the user.
                Err(StoreError::Duplicate(_)) => store
                    .users()
                    .by_email(&tenant.id, &login.email)
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| fail("store", "user vanished after a duplicate insert"))?,
                Err(e) => return Err(store_err(e)),
            }
        }
        None => {
            return Err(fail(
                "not_provisioned",
                format!(
                    "{} is not provisioned in tenant {} and JIT is off",
                    login.email, tenant.id
                ),
            ));
        }
    };
    if !user.active {
        return Err(fail(
            "deactivated",
            format!("user {} ({}) is deactivated", user.id, user.email),
        ));
    }
    if mode == Mode::Live {
        let subject = format!("{}:{}", login.connection_id, login.subject);
        store
            .users()
            .record_login(&user.id, &subject, now)
            .await
            .map_err(store_err)?;
    }
    Ok(principal(login, tenant, user))
}

/// Creates a JIT user and its `user.created` webhook event in one
/// transaction, so the app hears of every user who can sign in.
async fn create_jit_user(store: &Store, u: &UserRecord, now: i64) -> Result<(), StoreError> {
    let mut tx = store.begin_write(&u.tenant).await?;
    tx.users().insert(u).await?;
    tx.outbox()
        .emit(EventType::UserCreated, events::user(u.into()), now * 1000)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn principal(login: &VerifiedLogin, tenant: &TenantConfig, user: UserRecord) -> Principal {
    Principal {
        user_id: user.id,
        email: login.email.clone(),
        name: login.name.clone().or(user.name),
        roles: map_roles(user.role.as_deref(), &login.groups, tenant),
        groups: login.groups.clone(),
        tenant: Some(tenant.id.clone()),
        connection: Some(login.connection_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_domains() {
        assert_eq!(email_domain("Alice@Acme.COM").as_deref(), Some("acme.com"));
        assert_eq!(email_domain("a@b@acme.com").as_deref(), Some("acme.com"));
        for bad in [
            "",
            "alice",
            "@acme.com",
            "alice@",
            "alice@localhost",
            "a lice@acme.com",
            "a@acme..com",
            "a@\u{0}.com",
        ] {
            assert_eq!(email_domain(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tenant_email_domains() {
        let domains = ["acme.com", "Acme.org"];
        assert_eq!(
            tenant_email_domain("Alice@ACME.com.", domains).as_deref(),
            Ok("acme.com")
        );
        assert_eq!(
            tenant_email_domain("a@acme.org", domains).as_deref(),
            Ok("acme.org")
        );
        for (email, domain) in [
            ("a@eu.acme.com", "eu.acme.com"),
            ("a@acme.com.evil.io", "acme.com.evil.io"),
        ] {
            assert_eq!(
                tenant_email_domain(email, domains),
                Err(ForeignEmail::OutsideTenant {
                    domain: domain.into()
                }),
            );
        }
        assert_eq!(
            tenant_email_domain("acme.com", domains),
            Err(ForeignEmail::NotAnAddress)
        );
    }

    #[test]
    fn roles_from_groups() {
        let mut t: TenantConfig = toml::from_str("id = \"acme\"").unwrap();
        t.group_roles
            .insert("eng".into(), vec!["developer".into(), "member".into()]);
        t.group_roles.insert("ops".into(), vec!["operator".into()]);
        let groups = vec!["eng".to_string(), "ops".into(), "sales".into()];
        assert_eq!(
            map_roles(Some("member"), &groups, &t),
            ["member", "developer", "operator"]
        );
        assert_eq!(map_roles(None, &[], &t), Vec::<String>::new());
    }
}
