//! `portcullis domains ...`: each helper opens the store from the
//! configuration, does one thing and returns the text to print, so the
//! clap layer stays a thin dispatcher and the output is testable.

use std::fmt::Write as _;

use super::{DomainEntry, DomainError, DomainStatus, Domains, normalize_domain};
use crate::config::{Config, TenantConfig};
use crate::store::{Store, StoreError};

/// `domains add --tenant T DOMAIN`: claims the domain and prints the TXT
/// record to publish. Only domains the configuration lists for that tenant
/// are accepted, so the config file stays the one place that says which
/// tenant may own what. Re-running prints the same record.
pub async fn add(cfg: &Config, tenant: &str, domain: &str) -> Result<String, DomainError> {
    let tenant_cfg = find_tenant(cfg, tenant)?;
    let domain = normalize_domain(domain)?;
    // The more precise refusal first: nobody can own a public mail domain,
    // whatever the configuration says.
    if crate::config::is_public_mail_domain(&domain) {
        return Err(DomainError::PublicMail(domain));
    }
    if !tenant_cfg
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        return Err(DomainError::NotInConfig {
            tenant: tenant.to_owned(),
            domain,
        });
    }
    with_domains(cfg, |domains| async move {
        let entry = domains.add(tenant, &domain, crate::clock::now()).await?;
        let (name, value) = domains.txt_record(&entry);
        let mut out = String::new();
        let _ = writeln!(out, "Domain:  {}", entry.domain);
        let _ = writeln!(out, "Tenant:  {}", entry.tenant);
        let _ = writeln!(out, "Status:  {}", entry.status);
        let _ = writeln!(out, "Type:    TXT");
        let _ = writeln!(out, "Name:    {name}");
        let _ = writeln!(out, "Value:   {value}");
        let _ = writeln!(
            out,
            "Publish this TXT record in the DNS zone of {}, then run `portcullis domains verify {}` \
             (or wait for the background check).",
            entry.domain, entry.domain
        );
        Ok(out)
    })
    .await
}

/// `domains verify DOMAIN`: checks now and prints the verdict and detail.
/// Returns `Ok` whatever the verdict; the status line says it.
pub async fn verify(cfg: &Config, domain: &str) -> Result<String, DomainError> {
    with_domains(cfg, |domains| async move {
        let entry = domains.verify(domain, crate::clock::now()).await?;
        let (name, value) = domains.txt_record(&entry);
        let mut out = format!(
            "{}: {} ({})\n",
            entry.domain,
            entry.status,
            entry.detail.as_deref().unwrap_or("not checked")
        );
        if entry.status != DomainStatus::Verified {
            let _ = writeln!(out, "Expected: TXT {name} \"{value}\"");
        }
        Ok(out)
    })
    .await
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
/// can then be added again, possibly by another tenant).
pub async fn remove(cfg: &Config, domain: &str) -> Result<String, DomainError> {
    let domain = normalize_domain(domain)?;
    with_domains(cfg, |domains| async move {
        if domains.remove(&domain).await? {
            Ok(format!("{domain}: removed\n"))
        } else {
            Err(DomainError::NotFound(domain))
        }
    })
    .await
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
    let store = Store::open_sealed(
        &cfg.store.url,
        &cfg.store.encryption_keys().map_err(StoreError::Sealing)?,
    )
    .await?;
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

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), via the days-to-civil
/// algorithm (`civil_from_days`) from Howard Hinnant's date algorithms, so the
/// CLI needs no date crate.
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn rfc3339_extremes_do_not_panic() {
        let _ = rfc3339(i64::MAX / 2);
        let _ = rfc3339(i64::MIN / 2);
    }

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
