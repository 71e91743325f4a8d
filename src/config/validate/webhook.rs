//! `[webhook]`: where user and group events are delivered.

use crate::config::load::Collector;
use crate::config::schema::Config;

/// `[webhook]`: a URL we can POST to and secrets a receiver can verify.
pub(super) fn webhook(cfg: &Config, c: &mut Collector<'_>) {
    let Some(w) = &cfg.webhook else { return };
    match w.url.parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some_and(|h| !h.is_empty()) => {}
        _ => c.push("webhook.url", "must be an absolute http:// or https:// URL"),
    }
    if w.secrets.is_empty() {
        c.push(
            "webhook.secrets",
            "at least one secret is required, e.g. secrets = [\"${PORTCULLIS_WEBHOOK_SECRET}\"] \
             (generate: echo whsec_$(openssl rand -base64 32))",
        );
    }
    for (i, s) in w.secrets.iter().enumerate() {
        if let Err(e) = crate::config::schema::decode_webhook_secret(s) {
            c.push(format!("webhook.secrets[{i}]"), e);
        }
    }
    super::nonzero(
        "webhook",
        [
            ("timeout_seconds", w.timeout_seconds),
            ("retry_initial_ms", w.retry_initial_ms),
            ("retry_max_ms", w.retry_max_ms),
            ("max_age_seconds", w.max_age_seconds),
            ("poll_interval_ms", w.poll_interval_ms),
            ("retention_days", w.retention_days),
        ],
        c,
    );
    if w.retry_max_ms < w.retry_initial_ms {
        c.push("webhook.retry_max_ms", "must be at least retry_initial_ms");
    }
    if w.concurrency == 0 || w.concurrency > 1024 {
        c.push("webhook.concurrency", "must be between 1 and 1024");
    }
    if let Some(ca) = &w.ca_file
        && !ca.is_file()
    {
        c.push(
            "webhook.ca_file",
            format!("{} is not a readable file", ca.display()),
        );
    }
}
