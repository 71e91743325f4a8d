//! `Rp`: the real proxy with one OIDC connection (`acme-oidc`, the built-in
//! implementation) to a provider on loopback, a real DNS server proving
//! the tenants' domains, and helpers that walk the login like a browser
//! with a reqwest client (cookies carried by hand, redirects followed by
//! hand so each hop can be inspected or tampered with).

use portcullis::auth::Factories;
use portcullis::clock::Clock;

use super::dns::DnsServer;
use super::env::*;
use super::idp::cookie_pair;
use super::refusal::{AppLog, Refusal, login_failure};

pub(crate) const CONNECTION: &str = "acme-oidc";

pub(crate) struct Rp {
    pub env: TestEnv,
    pub dns: DnsServer,
    /// Every request the app received.
    pub app_saw: AppLog,
    _app: tokio::task::JoinHandle<()>,
}

/// A flow stopped at the callback: the URL the provider sent the browser
/// to, and the browser's flow cookie.
pub(crate) struct AtCallback {
    pub url: String,
    pub flow_cookie: String,
    /// The authorization request the browser was sent to.
    pub authorize_url: String,
}

pub(crate) fn rp_toml(
    dns: std::net::SocketAddr,
    issuer: &str,
    preset: &str,
    oidc_extra: &str,
) -> String {
    format!(
        r#"
[dns]
nameservers = ["{dns}"]

[[tenants]]
id = "acme"
domains = ["acme.com"]
group_roles = {{ "Engineering" = ["developer"] }}
[[tenants.connections]]
id = "{CONNECTION}"
protocol = "oidc"
preset = "{preset}"
[tenants.connections.oidc]
issuer = "{issuer}"
jwks_min_refresh_seconds = 1
{oidc_extra}

[[tenants]]
id = "globex"
domains = ["globex.com"]
"#
    )
}

impl Rp {
    /// `oidc_extra`: more keys of the connection's `oidc` table, including
    /// `client_id` and the client authentication.
    pub(crate) async fn start(issuer: &str, preset: &str, oidc_extra: &str) -> Rp {
        Self::start_with(issuer, preset, oidc_extra, Clock::system(), None).await
    }

    /// [`Rp::start`] with the provider's intervals (discovery refresh, key
    /// refetch limit) timed by `clock`.
    pub(crate) async fn start_clocked(
        issuer: &str,
        preset: &str,
        oidc_extra: &str,
        clock: Clock,
    ) -> Rp {
        Self::start_with(issuer, preset, oidc_extra, clock, None).await
    }

    /// [`Rp::start`] on the store at `store_url` (default: a SQLite file in
    /// the environment's temp dir).
    pub(crate) async fn start_with_store(
        issuer: &str,
        preset: &str,
        oidc_extra: &str,
        store_url: Option<String>,
    ) -> Rp {
        Self::start_with(issuer, preset, oidc_extra, Clock::system(), store_url).await
    }

    /// [`Rp::start`] with the generated tenants text passed through `edit`
    /// (e.g. other `group_roles`).
    pub(crate) async fn start_edited(
        issuer: &str,
        preset: &str,
        oidc_extra: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Rp {
        Self::start_inner(issuer, preset, oidc_extra, Clock::system(), None, edit).await
    }

    async fn start_with(
        issuer: &str,
        preset: &str,
        oidc_extra: &str,
        clock: Clock,
        store_url: Option<String>,
    ) -> Rp {
        Self::start_inner(issuer, preset, oidc_extra, clock, store_url, |t| t).await
    }

    async fn start_inner(
        issuer: &str,
        preset: &str,
        oidc_extra: &str,
        clock: Clock,
        store_url: Option<String>,
        edit: impl FnOnce(String) -> String,
    ) -> Rp {
        let dns = DnsServer::start().await;
        let (upstream, app, app_saw) = start_counting_upstream().await;
        let env = TestEnv::with(Options {
            upstream: Some(upstream),
            store_url,
            extra: edit(rp_toml(dns.addr(), issuer, preset, oidc_extra)),
            factories: Factories {
                builtin_oidc: true,
                clock,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
        let rp = Rp {
            env,
            dns,
            app_saw,
            _app: app,
        };
        rp.verify("acme", "acme.com").await;
        rp.verify("globex", "globex.com").await;
        rp
    }

    pub(crate) async fn verify(&self, tenant: &str, domain: &str) {
        let cfg = self.env.shared.config();
        let domains =
            portcullis::domains::Domains::new(self.env.shared.store.clone(), &cfg.dns).unwrap();
        let now = portcullis::clock::now();
        let entry = domains.add(tenant, domain, now).await.unwrap();
        let (name, value) = domains.txt_record(&entry);
        self.dns.set_txt(&name, &value);
        let checked = domains.verify(domain, now).await.unwrap();
        assert_eq!(checked.status.to_string(), "verified", "{checked:?}");
    }

    /// The start endpoint: the provider's authorization URL and the flow
    /// cookie.
    pub(crate) async fn start_flow(&self, return_to: &str) -> (String, String) {
        let start = client()
            .get(self.env.url(&format!(
                "/.portcullis/sso/{CONNECTION}/start?return_to={return_to}&login_hint=alice@acme.com"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 302, "{}", start.text().await.unwrap());
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        let flow = cookie_pair(&start, "portcullis_flow_").expect("flow cookie");
        (location, flow)
    }

    /// start → provider (scripted login answering at once) → the callback
    /// URL, not yet followed.
    pub(crate) async fn begin(&self) -> AtCallback {
        let (authorize_url, flow_cookie) = self.start_flow("/dashboard").await;
        let at_op = client().get(&authorize_url).send().await.unwrap();
        assert!(at_op.status().is_redirection(), "{}", at_op.status());
        let url = at_op.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            url.starts_with(
                &self
                    .env
                    .url(&format!("/.portcullis/oidc/{CONNECTION}/callback?"))
            ),
            "{url}"
        );
        AtCallback {
            url,
            flow_cookie,
            authorize_url,
        }
    }

    pub(crate) async fn callback(&self, url: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = client().get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    /// A whole login; returns the callback's response and the session.
    pub(crate) async fn login(&self) -> (reqwest::Response, Option<String>) {
        let at = self.begin().await;
        let cb = self.callback(&at.url, Some(&at.flow_cookie)).await;
        let session =
            cookie_pair(&cb, "portcullis_session=").filter(|s| s != "portcullis_session=");
        (cb, session)
    }

    /// The state before a callback that must be refused with `reason`.
    pub(crate) async fn refusal(&self, reason: &str) -> Refusal {
        self.env
            .refusal(&login_failure(reason))
            .await
            .app(&self.app_saw)
    }

    /// Asserts that `resp` is the generic refusal page, that it created no
    /// session (cookie or store row), reached no app, and that exactly one
    /// more failure with `reason` was counted since `before`.
    pub(crate) async fn assert_refused(
        &self,
        resp: reqwest::Response,
        reason: &str,
        before: Refusal,
    ) {
        let body = before.assert(resp, 403).await;
        assert!(
            body.contains("couldn"),
            "{reason}: generic page expected: {body}"
        );
    }
}

/// The value of the first sample of `metric` whose labels contain
/// `reason="…"` (or `result="…"`).
pub(crate) fn counter(metrics: &str, metric: &str, reason: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with(metric)
                && (l.contains(&format!("reason=\"{reason}\""))
                    || l.contains(&format!("result=\"{reason}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
