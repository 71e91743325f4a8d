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
        auth: login.auth.clone(),
        ..Principal::default()
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

    /// `complete` against a real (SQLite) store and a stand-in domain
    /// registry: every refusal reason, and what a login creates.
    mod complete {
        use super::super::*;

        const NOW: i64 = 1_700_000_000;

        /// Verified domains and their owners; `None`: the registry is down.
        struct Router(Option<Vec<(&'static str, &'static str)>>);

        #[async_trait]
        impl DomainRouter for Router {
            async fn verified_tenant(&self, domain: &str) -> Result<Option<String>, String> {
                let owners = self.0.as_ref().ok_or("registry down")?;
                Ok(owners
                    .iter()
                    .find(|(d, _)| *d == domain)
                    .map(|(_, t)| (*t).to_owned()))
            }
        }

        fn router() -> Router {
            Router(Some(vec![
                ("acme.com", "acme"),
                ("old.acme.com", "acme"),
                ("globex.com", "globex"),
            ]))
        }

        fn acme(jit: bool) -> TenantConfig {
            let mut t: TenantConfig =
                toml::from_str("id = \"acme\"\ndomains = [\"acme.com\"]").unwrap();
            t.jit.enabled = jit;
            t.jit.default_role = Some("member".into());
            t.group_roles.insert("eng".into(), vec!["developer".into()]);
            t
        }

        fn login(email: &str) -> VerifiedLogin {
            VerifiedLogin {
                connection_id: "okta".into(),
                subject: "sub-1".into(),
                email: email.into(),
                email_verified: None,
                name: Some("Alice".into()),
                groups: vec!["eng".into()],
                idp_session: None,
                logout_hint: None,
                raw_claims: serde_json::Value::Null,
                ..VerifiedLogin::default()
            }
        }

        async fn store() -> (tempfile::TempDir, Store) {
            use std::os::unix::fs::PermissionsExt;
            // The store refuses a directory others can read.
            let dir = tempfile::tempdir().unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            let url = format!("sqlite://{}/store.db", dir.path().display());
            (dir, Store::open(&url).await.unwrap())
        }

        async fn reason(
            l: &VerifiedLogin,
            t: &TenantConfig,
            r: &Router,
            s: &Store,
            mode: Mode,
        ) -> &'static str {
            complete(l, t, r, s, NOW, mode).await.unwrap_err().reason
        }

        #[tokio::test]
        async fn a_tenant_s_idp_asserts_only_its_verified_configured_domains() {
            let (_dir, s) = store().await;
            let t = acme(true);
            let r = router();
            for (email, why) in [
                ("not an email", "invalid_email"),
                ("bob@globex.com", "foreign_domain"),
                // verified for acme, but no longer in its configuration
                ("bob@old.acme.com", "domain_not_verified"),
                ("bob@unknown.org", "domain_not_verified"),
            ] {
                for mode in [Mode::Live, Mode::DryRun] {
                    assert_eq!(
                        reason(&login(email), &t, &r, &s, mode).await,
                        why,
                        "{email}"
                    );
                }
            }
            let down = Router(None);
            assert_eq!(
                reason(&login("bob@acme.com"), &t, &down, &s, Mode::Live).await,
                "store"
            );
            let unverified = VerifiedLogin {
                email_verified: Some(false),
                ..login("bob@acme.com")
            };
            assert_eq!(
                reason(&unverified, &t, &r, &s, Mode::Live).await,
                "email_unverified"
            );
            // Nobody was created by any of these.
            assert!(s.users().list(None).await.unwrap().is_empty());
        }

        #[tokio::test]
        async fn jit_creates_the_user_with_its_event_and_records_the_login() {
            let (_dir, s) = store().await;
            let verified = VerifiedLogin {
                email_verified: Some(true),
                ..login("Alice@ACME.com")
            };
            let p = complete(&verified, &acme(true), &router(), &s, NOW, Mode::Live)
                .await
                .unwrap();
            let u = s
                .users()
                .by_email("acme", "alice@acme.com")
                .await
                .unwrap()
                .expect("created");
            assert_eq!(p.user_id, u.id);
            assert_eq!(
                (u.source.as_str(), u.role.as_deref(), u.active),
                ("jit", Some("member"), true)
            );
            assert_eq!(u.subject.as_deref(), Some("okta:sub-1"));
            assert_eq!(u.last_login_at, Some(NOW));
            assert_eq!(p.email, "Alice@ACME.com");
            assert_eq!(p.name.as_deref(), Some("Alice"));
            assert_eq!(p.groups, ["eng"]);
            assert_eq!(p.roles, ["member", "developer"]);
            assert_eq!(p.tenant.as_deref(), Some("acme"));
            assert_eq!(p.connection.as_deref(), Some("okta"));
            let events = s.outbox().events("acme", 0, 10).await.unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].event_type, "user.created");
            assert_eq!(events[0].created_at, NOW * 1000);
            assert!(events[0].payload.contains(&u.id), "{}", events[0].payload);
        }

        #[tokio::test]
        async fn a_dry_run_decides_without_creating_or_recording() {
            let (_dir, s) = store().await;
            let p = complete(
                &login("alice@acme.com"),
                &acme(true),
                &router(),
                &s,
                NOW,
                Mode::DryRun,
            )
            .await
            .unwrap();
            assert_eq!(p.user_id, "(new user)");
            assert_eq!(p.roles, ["member", "developer"]);
            assert!(s.users().list(None).await.unwrap().is_empty());
            assert!(s.outbox().events("acme", 0, 10).await.unwrap().is_empty());

            // A known user: the dry run leaves no login behind either.
            let (_dir, s) = store().await;
            s.users()
                .insert(&user("alice@acme.com", true))
                .await
                .unwrap();
            let p = complete(
                &login("alice@acme.com"),
                &acme(false),
                &router(),
                &s,
                NOW,
                Mode::DryRun,
            )
            .await
            .unwrap();
            assert_eq!(p.user_id, "u-1");
            let u = s.users().by_email("acme", "alice@acme.com").await.unwrap();
            assert_eq!(u.and_then(|u| u.last_login_at), None);
        }

        fn user(email: &str, active: bool) -> UserRecord {
            UserRecord {
                id: "u-1".into(),
                tenant: "acme".into(),
                email: email.into(),
                name: Some("Stored Name".into()),
                role: Some("admin".into()),
                source: "scim".into(),
                active,
                subject: None,
                created_at: 1,
                updated_at: 1,
                last_login_at: None,
            }
        }

        #[tokio::test]
        async fn known_users_jit_off_and_deactivated_users() {
            let (_dir, s) = store().await;
            let t = acme(false);
            let r = router();
            assert_eq!(
                reason(&login("alice@acme.com"), &t, &r, &s, Mode::Live).await,
                "not_provisioned"
            );
            assert!(s.users().list(None).await.unwrap().is_empty());

            s.users()
                .insert(&user("alice@acme.com", true))
                .await
                .unwrap();
            let nameless = VerifiedLogin {
                name: None,
                ..login("alice@acme.com")
            };
            let p = complete(&nameless, &t, &r, &s, NOW, Mode::Live)
                .await
                .unwrap();
            assert_eq!(p.user_id, "u-1");
            // The IdP's name wins; without one, the stored name.
            assert_eq!(p.name.as_deref(), Some("Stored Name"));
            assert_eq!(p.roles, ["admin", "developer"]);
            let u = s
                .users()
                .by_email("acme", "alice@acme.com")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(u.last_login_at, Some(NOW));
            assert_eq!(u.subject.as_deref(), Some("okta:sub-1"));

            s.users()
                .insert(&UserRecord {
                    id: "u-2".into(),
                    ..user("bob@acme.com", false)
                })
                .await
                .unwrap();
            for mode in [Mode::Live, Mode::DryRun] {
                assert_eq!(
                    reason(&login("bob@acme.com"), &acme(true), &r, &s, mode).await,
                    "deactivated"
                );
            }
        }

        /// The registry the server really uses answers through this trait.
        #[tokio::test]
        async fn the_domain_registry_is_a_router() {
            let (_dir, s) = store().await;
            let dns = crate::config::DnsConfig {
                nameservers: vec!["127.0.0.1:53".into()],
                ..crate::config::DnsConfig::default()
            };
            let domains = crate::domains::Domains::new(s.clone(), &dns).unwrap();
            domains
                .mark_verified_for_dev("acme", "acme.com", NOW)
                .await
                .unwrap();
            domains.add("acme", "pending.com", NOW).await.unwrap();
            let r: &dyn DomainRouter = &domains;
            assert_eq!(
                r.verified_tenant("acme.com").await,
                Ok(Some("acme".to_owned()))
            );
            assert_eq!(r.verified_tenant("pending.com").await, Ok(None));
            assert_eq!(r.verified_tenant("other.com").await, Ok(None));
        }
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
