//! One check for every refusal: the answer set no session
//! cookie, the store holds no session row it didn't hold before, the app
//! never saw a request, and the reason was counted exactly once.
//!
//! ```ignore
//! let refusal = env.refusal("portcullis_login_failures_total{reason=\"expired\"}").await;
//! let resp = /* the request that must be refused */;
//! let body = refusal.assert(resp, 403).await;
//! ```
//!
//! A proxy that is not a [`TestEnv`] (the real binary as a child process)
//! is watched through a [`Watch`] of its admin listener, its store and its
//! app.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis::store::Store;

use super::env::TestEnv;

/// What a counting upstream saw: one `"METHOD /path"` per request (or one
/// request head per request, for the recording upstreams).
pub(crate) type AppLog = Arc<Mutex<Vec<String>>>;

/// A proxy whose refusals are checked: its admin listener (metrics), its
/// store (opened by the test too, for a child process), the session cookie
/// name, and the app behind it when the test can see what the app got.
pub(crate) struct Watch<'a> {
    pub admin: SocketAddr,
    pub store: &'a Store,
    pub cookie: &'a str,
    pub app: Option<&'a AppLog>,
}

/// The state before a request that must be refused.
pub(crate) struct Refusal {
    admin: SocketAddr,
    store: Store,
    cookie: String,
    app: Option<(AppLog, usize)>,
    /// Session keys (hashed ids) before; `None` while the store is
    /// unreachable (then nothing can be written).
    sessions: Option<BTreeSet<String>>,
    /// `(series, value before)`: the series as rendered, with its labels.
    counter: Option<(String, u64)>,
    /// What was refused, for the failure messages.
    what: String,
}

impl Watch<'_> {
    /// Takes the state before a request that must be refused; `series` is
    /// the counter that must count it (e.g.
    /// `portcullis_login_failures_total{reason="signature"}`), or `""` for
    /// refusals that count nothing of their own.
    pub(crate) async fn refusal(&self, series: &str) -> Refusal {
        settle(self.admin).await;
        let counter = if series.is_empty() {
            None
        } else {
            Some((
                series.to_owned(),
                sample(&metrics_at(self.admin).await, series),
            ))
        };
        Refusal {
            admin: self.admin,
            store: self.store.clone(),
            cookie: self.cookie.to_owned(),
            app: self.app.map(|log| {
                let n = log.lock().unwrap().len();
                (log.clone(), n)
            }),
            sessions: session_keys(self.store).await,
            counter,
            what: String::new(),
        }
    }
}

impl TestEnv {
    /// [`Watch::refusal`] for this env. The app is the env's own counting
    /// upstream when it has one; see [`Refusal::app`] otherwise.
    pub(crate) async fn refusal(&self, series: &str) -> Refusal {
        let cookie = self.shared.config().session.cookie_name.clone();
        Watch {
            admin: self.admin,
            store: &self.shared.store,
            cookie: &cookie,
            app: self.app.as_ref(),
        }
        .refusal(series)
        .await
    }
}

impl Refusal {
    /// The app behind this proxy is `log` (a counting upstream the test
    /// started itself).
    pub(crate) fn app(mut self, log: &AppLog) -> Self {
        let n = log.lock().unwrap().len();
        self.app = Some((log.clone(), n));
        self
    }

    /// Names the request in failure messages (one case of a table).
    pub(crate) fn named(mut self, what: impl std::fmt::Display) -> Self {
        self.what = format!("{what}: ");
        self
    }

    /// Asserts that `resp` (the answer to the request that must be
    /// refused) has `status`, set no session cookie, created no session in
    /// the store, reached no app, and was counted once. Returns the body.
    pub(crate) async fn assert(self, resp: reqwest::Response, status: u16) -> String {
        let got = resp.status().as_u16();
        let set: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let body = resp.text().await.unwrap();
        self.check(got, &set, body, status).await
    }

    /// [`Refusal::assert`] for a raw HTTP/1.x response as
    /// [`raw_request`](super::env::raw_request) returns it: for requests a
    /// client library would have rewritten (dot segments, odd bytes).
    pub(crate) async fn assert_raw(self, resp: &str, status: u16) -> String {
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
        let got = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let set: Vec<String> = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.trim().to_owned())
            .collect();
        self.check(got, &set, body.to_owned(), status).await
    }

    async fn check(self, got: u16, set_cookies: &[String], body: String, status: u16) -> String {
        let cookie = self.cookie.as_str();
        let set: Vec<&String> = set_cookies
            .iter()
            .filter(|v| {
                // `__Host-` or other prefixes included; an empty value is a
                // deletion, not a session.
                v.split(';').next().is_some_and(|pair| {
                    pair.split_once('=').is_some_and(|(name, value)| {
                        name.trim().ends_with(cookie) && !value.is_empty()
                    })
                })
            })
            .collect();
        let what = &self.what;
        assert_eq!(got, status, "{what}refusal status: {body}");
        assert!(
            set.is_empty(),
            "{what}a refusal set a session cookie: {set:?}"
        );
        // Compared by key, not by count: the background sweep may delete
        // expired rows meanwhile, which must not hide a new one.
        if let Some(before) = &self.sessions {
            let after = session_keys(&self.store)
                .await
                .expect("the store answered before the refusal but not after");
            let new: Vec<&String> = after.difference(before).collect();
            assert!(
                new.is_empty(),
                "{what}a refusal created {} session row(s) in the store: {new:?}",
                new.len()
            );
        }
        if let Some((log, before)) = &self.app {
            let log = log.lock().unwrap();
            assert_eq!(
                log.len(),
                *before,
                "{what}a refused request reached the app: {:?}",
                &log[*before..]
            );
        }
        if let Some((series, before)) = &self.counter {
            // Some counters are updated in pingora's logging phase, just
            // after the client has its answer: wait (bounded) for the
            // count, then require exactly one.
            let (mut now, mut metrics) = (0, String::new());
            for _ in 0..100 {
                metrics = metrics_at(self.admin).await;
                now = sample(&metrics, series);
                if now > *before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let family = series.split('{').next().unwrap_or_default();
            let seen: Vec<&str> = metrics.lines().filter(|l| l.starts_with(family)).collect();
            assert_eq!(
                now,
                before + 1,
                "{what}{series} counts the refusal once; the family now: {seen:#?}"
            );
        }
        body
    }
}

/// The session keys in `store`, or `None` when it can't be read (an
/// outage under test).
async fn session_keys(store: &Store) -> Option<BTreeSet<String>> {
    store
        .sessions()
        .keys()
        .await
        .ok()
        .map(|k| k.into_iter().collect())
}

/// The metrics text of the admin listener at `admin`.
pub(crate) async fn metrics_at(admin: SocketAddr) -> String {
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The sum of every sample of `series`' metric whose labels include all of
/// `series`' labels (`name{k="v",...}`; a bare name sums all samples), 0
/// when there is none.
/// Waits (bounded) until every request the proxy has answered is counted:
/// counters move in pingora's logging phase, just after the client has its
/// answer, so a "before" reading taken too early would still miss the
/// previous request.
async fn settle(admin: std::net::SocketAddr) {
    for _ in 0..250 {
        if sample(&metrics_at(admin).await, "portcullis_requests_in_flight") == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("requests still in flight after 5 s");
}

pub(crate) fn sample(metrics: &str, series: &str) -> u64 {
    let (name, wanted) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.trim_end_matches('}')),
        None => (series, ""),
    };
    let wanted: Vec<&str> = wanted.split(',').filter(|l| !l.is_empty()).collect();
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (metric, labels) = head.split_once('{').unwrap_or((head, ""));
            let labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
            (metric == name && wanted.iter().all(|w| labels.contains(w)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum::<f64>() as u64
}

/// The login failure counter for `reason` (any tenant and connection).
pub(crate) fn login_failure(reason: &str) -> String {
    format!("portcullis_login_failures_total{{reason=\"{reason}\"}}")
}

/// The counter of requests refused before routing for `reason` (an
/// ambiguous path or host).
pub(crate) fn refused_before_routing(reason: &str) -> String {
    format!("portcullis_requests_refused_total{{reason=\"{reason}\"}}")
}

/// The counter of password-login submissions refused for `reason`.
pub(crate) fn login_refused(reason: &str) -> String {
    format!("portcullis_login_refused_total{{reason=\"{reason}\"}}")
}

/// The counter of requests answered on `policy` routes with a `class`
/// status (`4xx`, `5xx`): a gate denial's only count.
pub(crate) fn answered(policy: &str, class: &str) -> String {
    format!("portcullis_requests_total{{class=\"{class}\",policy=\"{policy}\"}}")
}
