//! `portcullis users invite | list | remove`: who may sign in when JIT is
//! off, and removing someone at once.

use std::fmt::Write as _;

use clap::Subcommand;

use super::local::with_ops;
use super::source::{tenant as find_tenant, with_store};
use super::{CliError, ConfigArg, Output, block_on, rfc3339};
use crate::admin::{Actor, operator};
use crate::auth::ForeignEmail;
use crate::config::Config;
use crate::store::{StoreError, UserRecord};

#[derive(Debug, Subcommand)]
pub(super) enum UsersCommand {
    /// Allow EMAIL into TENANT (needed when JIT is off).
    Invite {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// Defaults to the tenant's `jit.default_role`.
        #[arg(long)]
        role: Option<String>,
    },
    /// Every user (or a tenant's) with role, source and last sign-in.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a user and end their sessions.
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
    },
}

pub(super) fn run(cmd: UsersCommand) -> Result<Output, CliError> {
    match cmd {
        UsersCommand::Invite {
            config,
            tenant,
            email,
            role,
        } => {
            let cfg = config.load()?;
            block_on(invite(&cfg, &tenant, &email, role))
        }
        UsersCommand::List { config, tenant } => {
            let cfg = config.load()?;
            block_on(list(&cfg, tenant.as_deref()))
        }
        UsersCommand::Remove {
            config,
            tenant,
            email,
        } => {
            let cfg = config.load()?;
            block_on(remove(&cfg, &tenant, &email))
        }
    }
}

/// Only an address in one of the tenant's domains: its IdP could never
/// sign anyone else in.
pub(super) async fn invite(
    cfg: &Config,
    tenant: &str,
    email: &str,
    role: Option<String>,
) -> Result<Output, CliError> {
    let t = find_tenant(cfg, tenant)?;
    match crate::auth::tenant_email_domain(email, t.domains.iter().map(String::as_str)) {
        Ok(_) => {}
        Err(ForeignEmail::NotAnAddress) => {
            return Err(CliError::Usage(format!(
                "`{email}` is not an email address"
            )));
        }
        Err(ForeignEmail::OutsideTenant { domain }) => {
            return Err(CliError::Usage(format!(
                "{domain} is not one of tenant `{tenant}`'s domains; its IdP could never sign this user in"
            )));
        }
    }
    let now = crate::clock::now();
    let user = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.to_owned(),
        email: email.to_owned(),
        name: None,
        role: role.or_else(|| t.jit.default_role.clone()),
        source: "invite".into(),
        active: true,
        subject: None,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    };
    let user = &user;
    with_store(cfg, |store| async move {
        match store.users().insert(user).await {
            Ok(()) => Ok(Output::text(format!(
                "invited {email} to {tenant} (user id {})",
                user.id
            ))),
            Err(StoreError::Duplicate(_)) => Err(CliError::Failed(format!(
                "{email} is already a user of {tenant}"
            ))),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

pub(super) async fn list(cfg: &Config, tenant: Option<&str>) -> Result<Output, CliError> {
    let users = with_store(
        cfg,
        |store| async move { Ok(store.users().list(tenant).await?) },
    )
    .await?;
    Ok(Output::text(render(&users)))
}

/// Removes the user and ends their sessions, on every replica, through
/// `admin::operator` (actor `cli`, audited like the API's changes).
pub(super) async fn remove(cfg: &Config, tenant: &str, email: &str) -> Result<Output, CliError> {
    let n = with_ops(cfg, |cur| async move {
        operator::remove_user(&cur, &Actor::cli(), tenant, email).await
    })
    .await
    .map_err(|e| match e {
        // Nothing to remove is a runtime failure (1), as before.
        CliError::Usage(m) => CliError::Failed(m),
        other => other,
    })?;
    Ok(Output::text(format!(
        "removed {email} from {tenant}; ended {n} session(s)"
    )))
}

/// The table: last sign-in in RFC 3339 (UTC), `never` before the first.
fn render(users: &[UserRecord]) -> String {
    let mut out = format!(
        "{:<16} {:<32} {:<10} {:<7} {:<8} last login\n",
        "tenant", "email", "role", "source", "active"
    );
    for u in users {
        let _ = writeln!(
            out,
            "{:<16} {:<32} {:<10} {:<7} {:<8} {}",
            u.tenant,
            u.email,
            u.role.as_deref().unwrap_or("-"),
            u.source,
            if u.active { "yes" } else { "no" },
            u.last_login_at.map_or_else(|| "never".into(), rfc3339)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str, last_login_at: Option<i64>) -> UserRecord {
        UserRecord {
            id: "u1".into(),
            tenant: "acme".into(),
            email: email.into(),
            name: None,
            role: Some("member".into()),
            source: "jit".into(),
            active: true,
            subject: None,
            created_at: 0,
            updated_at: 0,
            last_login_at,
        }
    }

    #[test]
    fn last_login_is_rfc3339_or_never() {
        let table = render(&[
            user("alice@acme.com", Some(1_700_000_000)),
            user("bob@acme.com", None),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].ends_with("last login"), "{table}");
        assert!(lines[1].starts_with("acme "), "{table}");
        assert!(lines[1].ends_with(" 2023-11-14T22:13:20Z"), "{table}");
        assert!(lines[2].ends_with(" never"), "{table}");
    }
}
