//! Prometheus metrics with closed label sets (a label value never comes from
//! the client, so cardinality is bounded). Created once per process and
//! shared across config reloads so counters don't reset on SIGHUP.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All metrics of one Portcullis process.
pub struct Metrics {
    registry: Registry,
    /// `policy` ∈ [`POLICIES`], `class` ∈ 1xx..5xx; counted through
    /// [`Metrics::request_done`].
    pub requests: IntCounterVec,
    /// Requests between their head and their count in `requests` (the
    /// logging phase, after the answer is written): a load signal for
    /// operators, and the barrier that lets a test know every answered
    /// request has been counted.
    pub requests_in_flight: IntGauge,
    pub request_duration: HistogramVec,
    /// `kind` ∈ connect|timeout|other.
    pub upstream_errors: IntCounterVec,
    pub sessions_created: IntCounter,
    /// `scope` ∈ session|user|tenant|connection|idp|all|logout.
    pub sessions_revoked: IntCounterVec,
    /// `result` ∈ hit|miss; counted through [`Metrics::session_cache_lookup`].
    pub session_cache: IntCounterVec,
    /// The series counted on every request, resolved once each.
    per_request: PerRequest,
    /// Entries in this process' session cache, as of its last housekeeping
    /// (every 5 s): what the cache holds in memory.
    pub session_cache_entries: IntGauge,
    /// `reason` ∈ undecryptable|expired|unknown|idle|store_error.
    pub session_rejected: IntCounterVec,
    /// `result` ∈ ok|error.
    pub config_reloads: IntCounterVec,
    pub config_last_reload_success: IntGauge,
    pub assertion_sign: Histogram,
    /// `tenant`/`connection` are configured ids (or `unknown`), `reason` a
    /// closed set of refusal reasons.
    pub login_failures: IntCounterVec,
    pub logins: IntCounterVec,
    /// Password logins answered by Portcullis because the tenant enforces SSO.
    pub sso_enforced: IntCounterVec,
    /// Password-login submissions refused without a domain lookup (body
    /// unreadable, a second email, credentials in the query...); `reason`
    /// is a closed set (`proxy::enforce::Refusal::label`).
    pub login_refused: IntCounterVec,
    /// Requests refused before routing because their path or host stays
    /// ambiguous, or forward-auth requests refused before any decision;
    /// `reason` is a closed set (`canon::Ambiguity::label`,
    /// `host::HostError::label`, `path_encoded_separator`,
    /// `upstream_ambiguous`, `forward_auth::Refusal::label`).
    pub requests_refused: IntCounterVec,
    /// Seconds until a SAML connection's last trusted certificate expires.
    pub saml_cert_expiry: IntGaugeVec,
    /// IdP metadata fetches from a URL; `result` ∈ ok|error.
    pub saml_metadata_refresh: IntCounterVec,
    /// Metadata refreshes that changed a connection's signing certificates.
    pub saml_signing_cert_changes: IntCounterVec,
    /// Metadata refused because a signing certificate matched no pin.
    pub saml_metadata_pin_mismatch: IntCounterVec,
    /// OIDC logins whose ID token named a groups source instead of the
    /// groups (Entra ID groups overage); the login gets no groups.
    pub groups_overage: IntCounterVec,
    /// Back-channel logout requests; `result` ∈ ok|store|<refusal reason>.
    pub oidc_backchannel_logouts: IntCounterVec,
    /// SCIM user addresses outside the tenant's verified domains; `tenant`
    /// is the authenticated (configured) tenant, `result` ∈ refused|accepted
    /// (accepted: `[tenants.scim] allow_external_emails`).
    pub scim_external_emails: IntCounterVec,
    /// Logout POSTs refused; `reason` ∈ csrf_missing|csrf_invalid.
    pub logout_refused: IntCounterVec,
    /// Fetches (and IdP URLs offered through validation) refused because
    /// they would leave for a non-public address; `reason` ∈
    /// [`IDP_EGRESS_REASONS`].
    pub idp_egress_refused: IntCounterVec,
    pub webhook: WebhookMetrics,
    pub limits: LimitMetrics,
    pub admin: AdminMetrics,
    pub machine: MachineMetrics,
}

/// Machine callers: `Authorization: Bearer` on `required` and `optional`
/// routes (service-account tokens, client-credentials JWTs).
pub struct MachineMetrics {
    /// Requests a bearer credential authenticated; `kind` ∈
    /// service_account|jwt.
    pub authenticated: IntCounterVec,
    /// Bearer credentials refused (the client gets one generic 401);
    /// `reason` is a closed set: malformed, unknown_key, wrong_secret,
    /// revoked, expired, retired, tenant_unknown, and jwt_malformed,
    /// jwt_issuer, jwt_audience, jwt_algorithm, jwt_signature, jwt_expired,
    /// jwt_not_yet_valid, jwt_subject, jwt_invalid.
    pub failures: IntCounterVec,
}

impl MachineMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let authenticated = IntCounterVec::new(
            Opts::new(
                "portcullis_machine_auth_total",
                "Requests authenticated by a bearer credential, by kind",
            ),
            &["kind"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "portcullis_machine_auth_failures_total",
                "Bearer credentials refused, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(authenticated.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self {
            authenticated,
            failures,
        })
    }
}

/// The admin API and the tenants kept in the store.
pub struct AdminMetrics {
    /// Changes made through the admin API or the CLI, counted after they
    /// committed; `action` is the audit action (a closed set).
    pub changes: IntCounterVec,
    /// Tenants in the store left out of the configuration because they no
    /// longer validate (the file claims their id, a domain, a connection id).
    pub store_tenants_invalid: IntGauge,
    /// Setup portal requests refused; `reason` ∈ link_unknown,
    /// link_expired, link_used, link_revoked, no_portal_session,
    /// session_ended, csrf, not_tenant_admin, intent_not_granted.
    pub portal_refusals: IntCounterVec,
}

impl AdminMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let changes = IntCounterVec::new(
            Opts::new(
                "portcullis_admin_changes_total",
                "Changes made through the admin API or the CLI, by audit action",
            ),
            &["action"],
        )?;
        let store_tenants_invalid = IntGauge::new(
            "portcullis_store_tenants_invalid",
            "Tenants kept in the store that no longer validate and are not served",
        )?;
        registry.register(Box::new(changes.clone()))?;
        registry.register(Box::new(store_tenants_invalid.clone()))?;
        let portal_refusals = IntCounterVec::new(
            Opts::new(
                "portcullis_portal_refusals_total",
                "Setup portal requests refused (setup links, portal sessions, CSRF, tenant admins), by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(portal_refusals.clone()))?;
        Ok(Self {
            changes,
            store_tenants_invalid,
            portal_refusals,
        })
    }
}

/// Slow and greedy clients (`[limits]`).
pub struct LimitMetrics {
    /// Clients cut off for being slow; `stage` ∈ connection_idle (a new
    /// connection that never started a request), header, internal_body,
    /// scim_body, login_body.
    pub client_timeouts: IntCounterVec,
    /// Open downstream connections on the public listeners.
    pub connections: IntGauge,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: IntCounter,
    /// Requests answered `429`; `limit` ∈ login_start, login_callback,
    /// scim_auth_failure.
    pub rate_limited: IntCounterVec,
    /// Requests waiting for one of `max_active_requests` slots.
    pub requests_queued: IntGauge,
    /// Requests answered `503` after waiting the whole queue timeout.
    pub requests_shed: IntCounter,
    /// Requests whose client closed while they waited (never forwarded).
    pub requests_abandoned: IntCounter,
    /// How long admitted requests waited for their slot (those that did).
    pub queue_wait: Histogram,
}

impl LimitMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let client_timeouts = IntCounterVec::new(
            Opts::new(
                "portcullis_client_timeouts_total",
                "Clients disconnected for sending a request too slowly, by stage",
            ),
            &["stage"],
        )?;
        let connections = IntGauge::new(
            "portcullis_downstream_connections",
            "Open downstream connections on the public listeners",
        )?;
        let connections_refused = IntCounter::new(
            "portcullis_downstream_connections_refused_total",
            "Downstream connections refused because limits.max_connections were open",
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "portcullis_rate_limited_total",
                "Requests answered 429 by a per-client rate limit",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(client_timeouts.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        let requests_queued = IntGauge::new(
            "portcullis_requests_queued",
            "Requests waiting for a slot because limits.max_active_requests are active",
        )?;
        let requests_shed = IntCounter::new(
            "portcullis_requests_shed_total",
            "Requests answered 503 after waiting limits.queue_timeout_ms for a slot",
        )?;
        let requests_abandoned = IntCounter::new(
            "portcullis_requests_abandoned_total",
            "Requests whose client closed the connection while they waited for a slot",
        )?;
        let queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "portcullis_request_queue_seconds",
                "Time requests that waited for a slot spent waiting",
            )
            .buckets(vec![0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(requests_queued.clone()))?;
        registry.register(Box::new(requests_shed.clone()))?;
        registry.register(Box::new(requests_abandoned.clone()))?;
        registry.register(Box::new(queue_wait.clone()))?;
        Ok(Self {
            client_timeouts,
            connections,
            connections_refused,
            rate_limited,
            requests_queued,
            requests_shed,
            requests_abandoned,
            queue_wait,
        })
    }
}

/// Webhook delivery (the outbox deliverer and its status refresh).
pub struct WebhookMetrics {
    /// Events acknowledged by the receiver.
    pub delivered: IntCounter,
    /// Failed attempts; `reason` ∈ connect|timeout|status|other.
    pub failures: IntCounterVec,
    /// Events given up on after the maximum age.
    pub dead_lettered: IntCounter,
    /// Current queue: `state` ∈ pending|dead, summed over tenants.
    pub events: IntGaugeVec,
    /// Age of the oldest unacknowledged event (0 when none).
    pub oldest_pending_age: IntGauge,
    /// Seconds from an event being written to its acknowledgement.
    pub latency: Histogram,
}

impl WebhookMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let delivered = IntCounter::new(
            "portcullis_webhook_delivered_total",
            "Webhook events acknowledged by the receiver",
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "portcullis_webhook_failures_total",
                "Failed webhook delivery attempts by reason",
            ),
            &["reason"],
        )?;
        let dead_lettered = IntCounter::new(
            "portcullis_webhook_dead_lettered_total",
            "Webhook events dead-lettered after the maximum age",
        )?;
        let events = IntGaugeVec::new(
            Opts::new(
                "portcullis_webhook_events",
                "Webhook events in the outbox by state (pending, dead)",
            ),
            &["state"],
        )?;
        let oldest_pending_age = IntGauge::new(
            "portcullis_webhook_oldest_pending_age_seconds",
            "Age of the oldest unacknowledged webhook event",
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "portcullis_webhook_delivery_latency_seconds",
                "Time from a change being written to its event being acknowledged",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
            ]),
        )?;
        for reason in ["connect", "timeout", "status", "other"] {
            failures.with_label_values(&[reason]);
        }
        for state in ["pending", "dead"] {
            events.with_label_values(&[state]);
        }
        registry.register(Box::new(delivered.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(oldest_pending_age.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            delivered,
            failures,
            dead_lettered,
            events,
            oldest_pending_age,
            latency,
        })
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "portcullis_requests_total",
                "Requests by route policy and status class",
            ),
            &["policy", "class"],
        )?;
        let requests_in_flight = IntGauge::new(
            "portcullis_requests_in_flight",
            "Requests received on the public listeners and not yet counted",
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "portcullis_request_duration_seconds",
                "Time from request head to the end of the response",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["policy"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "portcullis_upstream_errors_total",
                "Failures talking to the upstream app",
            ),
            &["kind"],
        )?;
        let sessions_created =
            IntCounter::new("portcullis_sessions_created_total", "Sessions created")?;
        let sessions_revoked = IntCounterVec::new(
            Opts::new(
                "portcullis_sessions_revoked_total",
                "Sessions ended by revocation or logout",
            ),
            &["scope"],
        )?;
        let session_cache = IntCounterVec::new(
            Opts::new(
                "portcullis_session_cache_requests_total",
                "Session cache lookups",
            ),
            &["result"],
        )?;
        let session_cache_entries = IntGauge::new(
            "portcullis_session_cache_entries",
            "Sessions (and unknown session ids) in this process' cache",
        )?;
        let session_rejected = IntCounterVec::new(
            Opts::new(
                "portcullis_session_rejected_total",
                "Session cookies that did not yield a session, by reason",
            ),
            &["reason"],
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "portcullis_config_reloads_total",
                "Configuration reloads by result",
            ),
            &["result"],
        )?;
        let config_last_reload_success = IntGauge::new(
            "portcullis_config_last_reload_successful",
            "1 if the last reload succeeded",
        )?;
        let assertion_sign = Histogram::with_opts(
            HistogramOpts::new(
                "portcullis_assertion_sign_seconds",
                "Time to sign an identity assertion",
            )
            .buckets(vec![0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005]),
        )?;
        let login_failures = IntCounterVec::new(
            Opts::new(
                "portcullis_login_failures_total",
                "Refused SSO logins by reason",
            ),
            &["tenant", "connection", "reason"],
        )?;
        let logins = IntCounterVec::new(
            Opts::new("portcullis_logins_total", "Completed SSO logins"),
            &["tenant", "connection"],
        )?;
        let sso_enforced = IntCounterVec::new(
            Opts::new(
                "portcullis_sso_enforced_total",
                "Password logins stopped because the tenant enforces SSO",
            ),
            &["tenant"],
        )?;
        registry.register(Box::new(sso_enforced.clone()))?;
        let login_refused = IntCounterVec::new(
            Opts::new(
                "portcullis_login_refused_total",
                "Password-login submissions refused because Portcullis could not read exactly one email",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(login_refused.clone()))?;
        let requests_refused = IntCounterVec::new(
            Opts::new(
                "portcullis_requests_refused_total",
                "Requests refused before routing because their path or host is ambiguous",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests_refused.clone()))?;
        let saml_cert_expiry = IntGaugeVec::new(
            Opts::new(
                "portcullis_saml_idp_cert_expiry_seconds",
                "Seconds until the last trusted IdP signing certificate of a SAML connection expires",
            ),
            &["connection"],
        )?;
        registry.register(Box::new(saml_cert_expiry.clone()))?;
        let saml_metadata_refresh = IntCounterVec::new(
            Opts::new(
                "portcullis_saml_metadata_refresh_total",
                "IdP metadata fetches from a URL by result (ok, error); an error keeps the last good metadata",
            ),
            &["connection", "result"],
        )?;
        registry.register(Box::new(saml_metadata_refresh.clone()))?;
        let saml_signing_cert_changes = IntCounterVec::new(
            Opts::new(
                "portcullis_saml_idp_signing_cert_changes_total",
                "IdP metadata refreshes that changed the set of signing certificates of a SAML connection",
            ),
            &["connection"],
        )?;
        registry.register(Box::new(saml_signing_cert_changes.clone()))?;
        let saml_metadata_pin_mismatch = IntCounterVec::new(
            Opts::new(
                "portcullis_saml_metadata_pin_mismatch_total",
                "IdP metadata refused because a signing certificate matches none of idp_certificate_fingerprints",
            ),
            &["connection"],
        )?;
        registry.register(Box::new(saml_metadata_pin_mismatch.clone()))?;
        let groups_overage = IntCounterVec::new(
            Opts::new(
                "portcullis_groups_overage_total",
                "Logins (OIDC or SAML) whose IdP sent a groups overage reference instead of groups",
            ),
            &["tenant", "connection"],
        )?;
        registry.register(Box::new(groups_overage.clone()))?;
        let oidc_backchannel_logouts = IntCounterVec::new(
            Opts::new(
                "portcullis_oidc_backchannel_logouts_total",
                "OIDC back-channel logout requests by result",
            ),
            &["tenant", "connection", "result"],
        )?;
        registry.register(Box::new(oidc_backchannel_logouts.clone()))?;
        let scim_external_emails = IntCounterVec::new(
            Opts::new(
                "portcullis_scim_external_emails_total",
                "SCIM user addresses outside the tenant's verified domains, refused or accepted",
            ),
            &["tenant", "result"],
        )?;
        registry.register(Box::new(scim_external_emails.clone()))?;
        let logout_refused = IntCounterVec::new(
            Opts::new(
                "portcullis_logout_refused_total",
                "Logout requests that ended nothing because their CSRF token was missing or wrong",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(logout_refused.clone()))?;
        let idp_egress_refused = IntCounterVec::new(
            Opts::new(
                "portcullis_idp_egress_refused_total",
                "IdP URLs refused, at validation or fetch, for pointing at a non-public address or an unsafe shape",
            ),
            &["reason"],
        )?;
        for reason in IDP_EGRESS_REASONS {
            idp_egress_refused.with_label_values(&[reason]);
        }
        registry.register(Box::new(idp_egress_refused.clone()))?;
        registry.register(Box::new(login_failures.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(requests_in_flight.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(sessions_created.clone()))?;
        registry.register(Box::new(sessions_revoked.clone()))?;
        registry.register(Box::new(session_cache.clone()))?;
        registry.register(Box::new(session_cache_entries.clone()))?;
        registry.register(Box::new(session_rejected.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(config_last_reload_success.clone()))?;
        registry.register(Box::new(assertion_sign.clone()))?;
        config_last_reload_success.set(1);
        let webhook = WebhookMetrics::new(&registry)?;
        let limits = LimitMetrics::new(&registry)?;
        let admin = AdminMetrics::new(&registry)?;
        let machine = MachineMetrics::new(&registry)?;
        Ok(Self {
            registry,
            requests,
            requests_in_flight,
            request_duration,
            upstream_errors,
            sessions_created,
            sessions_revoked,
            session_cache,
            per_request: PerRequest::default(),
            session_cache_entries,
            session_rejected,
            config_reloads,
            config_last_reload_success,
            assertion_sign,
            login_failures,
            logins,
            sso_enforced,
            login_refused,
            requests_refused,
            saml_cert_expiry,
            saml_metadata_refresh,
            saml_signing_cert_changes,
            saml_metadata_pin_mismatch,
            groups_overage,
            oidc_backchannel_logouts,
            scim_external_emails,
            logout_refused,
            idp_egress_refused,
            webhook,
            limits,
            admin,
            machine,
        })
    }

    /// Counts a request that ended: `policy` indexes [`POLICIES`].
    pub fn request_done(&self, policy: usize, status: u16, elapsed: Duration) {
        let p = if policy < POLICIES.len() { policy } else { 0 };
        let class = status_class_index(status);
        let cells = &self.per_request;
        cells.requests[p][class]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[POLICIES[p], STATUS_CLASSES[class]])
            })
            .inc();
        cells.durations[p]
            .get_or_init(|| self.request_duration.with_label_values(&[POLICIES[p]]))
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a session cache lookup.
    pub fn session_cache_lookup(&self, hit: bool) {
        let (i, label) = if hit { (0, "hit") } else { (1, "miss") };
        self.per_request.session_cache[i]
            .get_or_init(|| self.session_cache.with_label_values(&[label]))
            .inc();
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which
        // the registry has already rejected at registration.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// The reasons of `portcullis_idp_egress_refused_total`: the URL's shape
/// (`config::UrlRefusal::label`: invalid_url, scheme, userinfo,
/// literal_address, local_name), a name that resolved to a non-public
/// address, and a redirect (never followed).
pub const IDP_EGRESS_REASONS: [&str; 7] = [
    "invalid_url",
    "scheme",
    "userinfo",
    "literal_address",
    "local_name",
    "resolved_address",
    "redirect",
];

/// The `policy` label of `portcullis_requests_total` and
/// `portcullis_request_duration_seconds`, by index (`proxy::ctx::RouteKind`
/// in this order).
pub const POLICIES: [&str; 5] = ["none", "internal", "public", "optional", "required"];

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// The labelled series every request touches, each resolved on its first
/// use and kept: `with_label_values` hashes the label values and takes the
/// vector's lock on every call, ~250 instructions of an authenticated
/// request's ~61,000 for three lookups that always find the same few
/// series (callgrind). Resolved lazily, not up front, so the exposition
/// shows a series once it has counted something, as before.
#[derive(Default)]
struct PerRequest {
    requests: [[OnceLock<IntCounter>; 5]; 5],
    durations: [OnceLock<Histogram>; 5],
    /// hit, miss.
    session_cache: [OnceLock<IntCounter>; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series resolved once count under the labels `with_label_values`
    /// gave them, appear only once used, and keep counting.
    #[test]
    fn per_request_series_count_under_their_labels_once_used() {
        let m = Metrics::new().unwrap();
        let text = m.render();
        assert!(!text.contains("portcullis_requests_total{"), "{text}");
        assert!(!text.contains("portcullis_session_cache_requests_total{"));
        m.request_done(4, 204, Duration::from_millis(3));
        m.request_done(4, 200, Duration::from_millis(30));
        m.request_done(4, 503, Duration::from_millis(3));
        m.request_done(2, 302, Duration::from_millis(3));
        m.request_done(0, 0, Duration::from_millis(3));
        m.session_cache_lookup(true);
        m.session_cache_lookup(true);
        m.session_cache_lookup(false);
        let text = m.render();
        for line in [
            r#"portcullis_requests_total{class="2xx",policy="required"} 2"#,
            r#"portcullis_requests_total{class="5xx",policy="required"} 1"#,
            r#"portcullis_requests_total{class="3xx",policy="public"} 1"#,
            r#"portcullis_requests_total{class="5xx",policy="none"} 1"#,
            r#"portcullis_request_duration_seconds_count{policy="required"} 3"#,
            r#"portcullis_request_duration_seconds_bucket{policy="required",le="0.005"} 2"#,
            r#"portcullis_request_duration_seconds_count{policy="public"} 1"#,
            r#"portcullis_session_cache_requests_total{result="hit"} 2"#,
            r#"portcullis_session_cache_requests_total{result="miss"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains(r#"policy="optional""#), "{text}");
        assert_eq!(
            [100, 199, 200, 299, 300, 399, 400, 499, 500, 599, 0, 999].map(status_class_index),
            [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4]
        );
    }
}
