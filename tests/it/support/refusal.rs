//! One check for every refusal (issue 18): the answer set no session
//! cookie, the store holds no session it didn't hold before, the app never
//! saw a request, and the reason was counted exactly once.
//!
//! ```ignore
//! let refusal = env.refusal("portcullis_login_failures_total{reason=\"expired\"}").await;
//! let resp = /* the request that must be refused */;
//! let body = refusal.assert(resp, 403).await;
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::env::TestEnv;

/// What a counting upstream saw: one `"METHOD /path"` per request.
pub type AppLog = Arc<Mutex<Vec<String>>>;

/// The state before a request that must be refused.
pub struct Refusal<'a> {
    env: &'a TestEnv,
    app: Option<(AppLog, usize)>,
    /// `None` while the store is unreachable (then nothing can be written).
    sessions: Option<u64>,
    /// `(series, value before)`: the series as rendered, with its labels.
    counter: Option<(String, u64)>,
}

impl TestEnv {
    /// Takes the state before a request that must be refused; `series` is
    /// the counter that must count it (e.g.
    /// `portcullis_login_failures_total{reason="signature"}`), or `""` for
    /// refusals that count nothing of their own. The app is the env's own
    /// counting upstream when it has one; see [`Refusal::app`] otherwise.
    pub async fn refusal(&self, series: &str) -> Refusal<'_> {
        let counter = if series.is_empty() {
            None
        } else {
            Some((series.to_owned(), sample(&self.metrics().await, series)))
        };
        Refusal {
            env: self,
            app: self.app.clone().map(|log| {
                let n = log.lock().unwrap().len();
                (log, n)
            }),
            sessions: self.shared.store.count_sessions().await.ok(),
            counter,
        }
    }
}

impl Refusal<'_> {
    /// The app behind this env is `log` (a counting upstream the test
    /// started itself).
    pub fn app(mut self, log: &AppLog) -> Self {
        let n = log.lock().unwrap().len();
        self.app = Some((log.clone(), n));
        self
    }

    /// Asserts that `resp` (the answer to the request that must be
    /// refused) has `status`, set no session cookie, created no session in
    /// the store, reached no app, and was counted once. Returns the body.
    pub async fn assert(self, resp: reqwest::Response, status: u16) -> String {
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

    /// [`Refusal::assert`] for a raw HTTP/1.1 response as
    /// [`raw_request`](super::env::raw_request) returns it: for requests a
    /// client library would have rewritten (dot segments, odd bytes).
    pub async fn assert_raw(self, resp: &str, status: u16) -> String {
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
        let cookie = self.env.shared.config().session.cookie_name.clone();
        let set: Vec<&String> = set_cookies
            .iter()
            .filter(|v| {
                // `__Host-` or other prefixes included; an empty value is a
                // deletion, not a session.
                v.split(';').next().is_some_and(|pair| {
                    pair.split_once('=').is_some_and(|(name, value)| {
                        name.trim().ends_with(cookie.as_str()) && !value.is_empty()
                    })
                })
            })
            .collect();
        assert_eq!(got, status, "refusal status: {body}");
        assert!(set.is_empty(), "a refusal set a session cookie: {set:?}");
        // The background sweep may delete expired rows meanwhile, never add.
        if let Some(before) = self.sessions {
            let sessions = self.env.shared.store.count_sessions().await.unwrap();
            assert!(
                sessions <= before,
                "a refusal created a session in the store ({before} -> {sessions})"
            );
        }
        if let Some((log, before)) = &self.app {
            let log = log.lock().unwrap();
            assert_eq!(
                log.len(),
                *before,
                "a refused request reached the app: {:?}",
                &log[*before..]
            );
        }
        if let Some((series, before)) = &self.counter {
            // Some counters are updated in pingora's logging phase, just
            // after the client has its answer: wait (bounded) for the
            // count, then require exactly one.
            let mut now = 0;
            for _ in 0..100 {
                now = sample(&self.env.metrics().await, series);
                if now > *before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(now, before + 1, "{series} counts the refusal once");
        }
        body
    }
}

/// The sum of every sample of `series`' metric whose labels include all of
/// `series`' labels (`name{k="v",...}`; a bare name sums all samples), 0
/// when there is none.
pub fn sample(metrics: &str, series: &str) -> u64 {
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
pub fn login_failure(reason: &str) -> String {
    format!("portcullis_login_failures_total{{reason=\"{reason}\"}}")
}
