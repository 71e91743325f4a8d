//! `portcullis domains add | verify | list | remove`: each helper opens the
//! store from the configuration, does one thing through `domains::Domains`
//! and returns the text to print.

use std::fmt::Write as _;

use clap::Subcommand;

use super::local::with_ops;
use super::{CliError, ConfigArg, Output, block_on, rfc3339};
use crate::admin::{Actor, operator};
use crate::config::{Config, TenantConfig};
use crate::domains::{DomainEntry, DomainError, DomainStatus, Domains, normalize_domain};

#[derive(Debug, Subcommand)]
pub(super) enum DomainsCommand {
    /// Claim DOMAIN for a tenant and print the TXT record to publish.
    Add {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        domain: String,
    },
    /// Check DOMAIN's TXT record now.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        domain: String,
    },
    /// Show domains and their state (pending, verified, failed, lapsed).
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Forget DOMAIN (it stops routing logins at once).
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        domain: String,
    },
}

pub(super) fn run(cmd: DomainsCommand) -> Result<Output, CliError> {
    let text = match cmd {
        DomainsCommand::Add {
            config,
            tenant,
            domain,
        } => {
            let cfg = config.load()?;
            block_on(add(&cfg, &tenant, &domain))?
        }
        DomainsCommand::Verify { config, domain } => {
            let cfg = config.load()?;
            block_on(verify(&cfg, &domain))?
        }
        DomainsCommand::List { config, tenant } => {
            let cfg = config.load()?;
            block_on(async { Ok(list(&cfg, tenant.as_deref()).await?) })?
        }
        DomainsCommand::Remove { config, domain } => {
            let cfg = config.load()?;
            block_on(remove(&cfg, &domain))?
        }
    };
    Ok(Output::text(text))
}

/// `domains add --tenant T DOMAIN`: claims the domain and prints the TXT
/// record to publish. Only domains the configuration lists for that tenant
/// are accepted, so the config file stays the one place that says which
/// tenant may own what. Re-running prints the same record. The claim is
/// made by `admin::operator` (actor `cli`), audited like the API's.
pub async fn add(cfg: &Config, tenant: &str, domain: &str) -> Result<String, CliError> {
    let tenant_cfg = find_tenant(cfg, tenant)?;
    let domain = normalize_domain(domain)?;
    // The more precise refusal first: nobody can own a public mail domain,
    // whatever the configuration says.
    if crate::names::is_public_mail_domain(&domain) {
        return Err(DomainError::PublicMail(domain).into());
    }
    if !tenant_cfg
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        return Err(DomainError::NotInConfig {
            tenant: tenant.to_owned(),
            domain,
        }
        .into());
    }
    let domain = &domain;
    let v = with_ops(cfg, |cur| async move {
        operator::claim_listed_domain(&cur, &Actor::cli(), tenant, domain).await
    })
    .await?;
    let mut out = String::new();
    let _ = writeln!(out, "Domain:  {}", v.domain);
    let _ = writeln!(out, "Tenant:  {tenant}");
    let _ = writeln!(out, "Status:  {}", v.status);
    let _ = writeln!(out, "Type:    TXT");
    let _ = writeln!(out, "Name:    {}", v.record_name);
    let _ = writeln!(out, "Value:   {}", v.record_value);
    let _ = writeln!(
        out,
        "Publish this TXT record in the DNS zone of {}, then run `portcullis domains verify {}` \
         (or wait for the background check).",
        v.domain, v.domain
    );
    Ok(out)
}

/// `domains verify DOMAIN`: checks now (through `admin::operator`, audited)
/// and prints the verdict and detail. Returns `Ok` whatever the verdict;
/// the status line says it.
pub async fn verify(cfg: &Config, domain: &str) -> Result<String, CliError> {
    let domain = &claimed(cfg, domain).await?;
    let v = with_ops(cfg, |cur| async move {
        operator::verify_claim(&cur, &Actor::cli(), domain).await
    })
    .await?;
    let mut out = format!(
        "{}: {} ({})\n",
        v.domain,
        v.status,
        v.detail.as_deref().unwrap_or("not checked")
    );
    if v.status != DomainStatus::Verified.as_str() {
        let _ = writeln!(
            out,
            "Expected: TXT {} \"{}\"",
            v.record_name, v.record_value
        );
    }
    Ok(out)
}

/// `domains list [--tenant T]`: a table of every claimed domain with its
/// state and times (RFC 3339, UTC).
pub async fn list(cfg: &Config, tenant: Option<&str>) -> Result<String, DomainError> {
    with_domains(cfg, |domains| async move {
        Ok(render_table(&domains.list(tenant).await?))
    })
    .await
}

/// `domains remove DOMAIN`: releases a claim (it stops routing at once and
/// can then be added again, possibly by another tenant), through
/// `admin::operator` (audited).
pub async fn remove(cfg: &Config, domain: &str) -> Result<String, CliError> {
    let domain = &claimed(cfg, domain).await?;
    with_ops(cfg, |cur| async move {
        operator::release_claim(&cur, &Actor::cli(), domain).await
    })
    .await?;
    Ok(format!("{domain}: removed\n"))
}

/// `domain` normalised, if it is claimed (else the CLI's own refusal).
async fn claimed(cfg: &Config, domain: &str) -> Result<String, CliError> {
    let domain = normalize_domain(domain)?;
    let d = domain.clone();
    with_domains(cfg, |domains| async move {
        match domains.get(&d).await? {
            Some(_) => Ok(String::new()),
            None => Err(DomainError::NotFound(d)),
        }
    })
    .await?;
    Ok(domain)
}

fn find_tenant<'a>(cfg: &'a Config, tenant: &str) -> Result<&'a TenantConfig, DomainError> {
    cfg.tenants
        .iter()
        .find(|t| t.id == tenant)
        .ok_or_else(|| DomainError::UnknownTenant(tenant.to_owned()))
}

/// Opens the store, runs `f`, and closes the store whatever `f` returned,
/// so a CLI run never leaves SQLite's WAL un-checkpointed.
async fn with_domains<F, Fut>(cfg: &Config, f: F) -> Result<String, DomainError>
where
    F: FnOnce(Domains) -> Fut,
    Fut: Future<Output = Result<String, DomainError>>,
{
    let store = super::source::open_store(cfg).await?;
    let result = match Domains::new(store.clone(), &cfg.dns) {
        Ok(domains) => f(domains).await,
        Err(error) => Err(error),
    };
    store.close().await;
    result
}

fn render_table(entries: &[DomainEntry]) -> String {
    const HEADER: [&str; 7] = [
        "DOMAIN",
        "TENANT",
        "STATUS",
        "CREATED",
        "LAST CHECKED",
        "VERIFIED",
        "DETAIL",
    ];
    if entries.is_empty() {
        return "no domains\n".to_owned();
    }
    let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                e.domain.clone(),
                e.tenant.clone(),
                e.status.to_string(),
                rfc3339(e.created_at),
                time(e.last_checked_at),
                time(e.verified_at),
                e.detail.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&HEADER);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let entry = DomainEntry {
            domain: "acme.com".into(),
            tenant: "acme".into(),
            token: "t".into(),
            status: DomainStatus::Pending,
            created_at: 0,
            last_checked_at: None,
            verified_at: None,
            last_seen_at: None,
            detail: None,
        };
        let table = render_table(&[entry]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("DOMAIN    TENANT  STATUS   CREATED"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("acme.com  acme    pending  1970-01-01T00:00:00Z  -"),
            "{table}"
        );
    }
}
