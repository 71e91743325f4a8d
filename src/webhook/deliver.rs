//! The outbox worker.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::{Signer, WebhookError};
use crate::config::{WebhookConfig, decode_webhook_secret};
use crate::metrics::Metrics;
use crate::store::{OutboxEvent, OutboxState, Store};

/// Events fetched per store round trip while draining a tenant.
const BATCH: i64 = 256;
/// How often queue gauges are refreshed from the store.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Sends outbox events; one per process.
pub struct Deliverer {
    store: Store,
    cfg: WebhookConfig,
    signer: Signer,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    /// This process' lease identity.
    owner: String,
    /// Tenants a task of this process is draining right now.
    active: Mutex<HashSet<String>>,
    slots: Arc<Semaphore>,
}

/// Why one attempt failed: `reason` is the metric label, `detail` the log.
struct Failure {
    reason: &'static str,
    detail: String,
}

/// Starts the deliverer; it stops when `shutdown` turns true (finishing
/// the attempts in flight, each bounded by the timeout).
pub fn spawn(
    store: Store,
    cfg: WebhookConfig,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, WebhookError> {
    let d = Arc::new(Deliverer::new(store, cfg, metrics)?);
    Ok(tokio::spawn(d.run(shutdown)))
}

impl Deliverer {
    pub fn new(
        store: Store,
        cfg: WebhookConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WebhookError> {
        let secrets = cfg
            .secrets
            .iter()
            .enumerate()
            .map(|(index, s)| {
                decode_webhook_secret(s).map_err(|message| WebhookError::Secret { index, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = reqwest::Client::builder()
            // A redirect could send signed user data anywhere: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .connect_timeout(Duration::from_secs(cfg.timeout_seconds))
            .pool_max_idle_per_host(cfg.concurrency)
            .user_agent(concat!("portcullis-webhooks/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| WebhookError::CaFile(format!("{}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| WebhookError::CaFile(format!("{}: {e}", path.display())))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        let slots = Arc::new(Semaphore::new(cfg.concurrency));
        Ok(Self {
            store,
            signer: Signer::new(&secrets),
            client,
            metrics,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            active: Mutex::new(HashSet::new()),
            slots,
            cfg,
        })
    }

    fn lease_ttl_ms(&self) -> i64 {
        // Outlives any single attempt by a wide margin, so a live deliverer
        // never loses its lease mid-request.
        (self.cfg.timeout_seconds as i64 * 3 * 1000).max(30_000)
    }

    /// Polls for tenants with due events, woken early by local commits, and
    /// drains each in its own task (bounded by `concurrency`).
    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let signal = self.store.outbox().signal();
        let poll = Duration::from_millis(self.cfg.poll_interval_ms);
        let mut last_gauges = tokio::time::Instant::now() - GAUGE_INTERVAL;
        let mut tasks = tokio::task::JoinSet::new();
        tracing::info!(url = %redacted(&self.cfg.url), "webhook deliverer started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_gauges.elapsed() >= GAUGE_INTERVAL {
                self.refresh_gauges().await;
                last_gauges = tokio::time::Instant::now();
            }
            match self
                .store
                .outbox()
                .due_tenants(crate::clock::now_ms())
                .await
            {
                Ok(tenants) => {
                    for tenant in tenants {
                        let fresh = self
                            .active
                            .lock()
                            .map(|mut a| a.insert(tenant.clone()))
                            .unwrap_or(false);
                        if fresh {
                            let me = self.clone();
                            let stop = shutdown.clone();
                            tasks.spawn(async move { me.drain(tenant, stop).await });
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook: cannot read the outbox"),
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = signal.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Attempts in flight are bounded by the timeout.
        while tasks.join_next().await.is_some() {}
        tracing::info!("webhook deliverer stopped");
    }

    /// Sends one tenant's due events in order until its queue is empty, its
    /// head must wait for a retry, or the lease is held elsewhere.
    async fn drain(self: Arc<Self>, tenant: String, shutdown: watch::Receiver<bool>) {
        if let Ok(_slot) = self.slots.clone().acquire_owned().await
            && let Err(e) = self.drain_leased(&tenant, &shutdown).await
        {
            tracing::warn!(tenant = %tenant, error = %e, "webhook: store error while delivering");
        }
        if let Ok(mut a) = self.active.lock() {
            a.remove(&tenant);
        }
    }

    async fn drain_leased(
        &self,
        tenant: &str,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), crate::store::StoreError> {
        let ttl = self.lease_ttl_ms();
        if !self
            .store
            .outbox()
            .lease(tenant, &self.owner, crate::clock::now_ms(), ttl)
            .await?
        {
            return Ok(()); // another replica delivers this tenant
        }
        let mut renewed = crate::clock::now_ms();
        let result = async {
            loop {
                let batch = self.store.outbox().pending(tenant, BATCH).await?;
                if batch.is_empty() {
                    return Ok(());
                }
                for event in batch {
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                    let now = crate::clock::now_ms();
                    if now - renewed > ttl / 3 {
                        if !self
                            .store
                            .outbox()
                            .lease(tenant, &self.owner, now, ttl)
                            .await?
                        {
                            return Ok(()); // lost it (we stalled); the new holder goes on
                        }
                        renewed = now;
                    }
                    if event.next_attempt_at > now {
                        return Ok(()); // head waits for its retry; polled again later
                    }
                    if !self.attempt(&event).await? {
                        return Ok(()); // failed: nothing behind it may overtake
                    }
                }
            }
        }
        .await;
        if let Err(e) = self.store.outbox().release(tenant, &self.owner).await {
            tracing::debug!(tenant = %tenant, error = %e, "webhook: lease release failed (it lapses)");
        }
        result
    }

    /// One delivery attempt and its bookkeeping. `Ok(true)` when the queue
    /// may go on (acknowledged, or dead-lettered).
    async fn attempt(&self, event: &OutboxEvent) -> Result<bool, crate::store::StoreError> {
        debug_assert_eq!(event.state, OutboxState::Pending);
        match self.send(event).await {
            Ok(()) => {
                let now = crate::clock::now_ms();
                self.store
                    .outbox()
                    .delivered(&event.tenant, event.seq, now)
                    .await?;
                self.metrics.webhook.delivered.inc();
                self.metrics
                    .webhook
                    .latency
                    .observe((now - event.created_at).max(0) as f64 / 1000.0);
                tracing::debug!(tenant = %event.tenant, seq = event.seq, id = %event.id, "webhook delivered");
                Ok(true)
            }
            Err(f) => {
                let now = crate::clock::now_ms();
                let attempts = event.attempts + 1;
                let dead = now - event.created_at >= self.cfg.max_age_seconds as i64 * 1000;
                let next = now + self.backoff_ms(attempts);
                self.store
                    .outbox()
                    .failed(&event.tenant, event.seq, &f.detail, next, dead)
                    .await?;
                self.metrics
                    .webhook
                    .failures
                    .with_label_values(&[f.reason])
                    .inc();
                if dead {
                    self.metrics.webhook.dead_lettered.inc();
                    tracing::error!(
                        tenant = %event.tenant, seq = event.seq, id = %event.id,
                        event_type = %event.event_type, attempts, error = %f.detail,
                        "webhook event dead-lettered after the maximum age; the tenant's queue moves on \
                         (`portcullis webhooks retry-dead` sends it again)"
                    );
                } else {
                    tracing::warn!(
                        tenant = %event.tenant, seq = event.seq, id = %event.id, attempts,
                        reason = f.reason, error = %f.detail, retry_in_ms = next - now,
                        "webhook delivery failed; will retry"
                    );
                }
                Ok(dead)
            }
        }
    }

    async fn send(&self, event: &OutboxEvent) -> Result<(), Failure> {
        let timestamp = crate::clock::now_ms() / 1000;
        let signature = self
            .signer
            .sign(&event.id, timestamp, event.payload.as_bytes());
        let response = self
            .client
            .post(&self.cfg.url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(event.payload.clone())
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        // Drain a little of the body so the connection can be reused; never
        // trust or log more than that.
        let _ = tokio::time::timeout(Duration::from_secs(1), response.bytes()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure {
                reason: "status",
                detail: format!("receiver answered HTTP {}", status.as_u16()),
            })
        }
    }

    /// Exponential backoff with full jitter: uniform in
    /// [initial, min(max, initial·2^(attempts-1))], so a fleet of replicas
    /// recovering together does not stampede the receiver.
    fn backoff_ms(&self, attempts: i64) -> i64 {
        let initial = self.cfg.retry_initial_ms as i64;
        let cap = self.cfg.retry_max_ms as i64;
        let shift = (attempts - 1).clamp(0, 30) as u32;
        let ceiling = initial.saturating_mul(1i64 << shift).min(cap).max(initial);
        let span = (ceiling - initial) as u64;
        let jitter = if span == 0 {
            0
        } else {
            crate::secret::random_bytes::<8>()
                .map(|b| u64::from_le_bytes(b) % (span + 1))
                .unwrap_or(span / 2)
        };
        initial + jitter as i64
    }

    async fn refresh_gauges(&self) {
        match self.store.outbox().status().await {
            Ok(status) => {
                let pending: i64 = status.iter().map(|s| s.pending).sum();
                let dead: i64 = status.iter().map(|s| s.dead).sum();
                let oldest = status.iter().filter_map(|s| s.oldest_pending_at).min();
                let w = &self.metrics.webhook;
                w.events.with_label_values(&["pending"]).set(pending);
                w.events.with_label_values(&["dead"]).set(dead);
                w.oldest_pending_age
                    .set(oldest.map_or(0, |t| ((crate::clock::now_ms() - t) / 1000).max(0)));
            }
            Err(e) => tracing::warn!(error = %e, "webhook: cannot read queue status"),
        }
    }
}

fn classify(e: reqwest::Error) -> Failure {
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "other"
    };
    Failure {
        reason,
        // reqwest's message names the URL; strip any userinfo/query first.
        detail: e.without_url().to_string(),
    }
}

/// The URL without userinfo or query (which may carry credentials).
fn redacted(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(u) => {
            format!(
                "{}://{}{}",
                u.scheme_str().unwrap_or("?"),
                u.host().unwrap_or("?"),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + u.path()
        }
        Err(_) => "(unparseable)".into(),
    }
}
