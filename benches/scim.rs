//! SCIM at scale, in-process on SQLite (a temp file, WAL):
//!
//! - `scim/username_eq_100k`: `GET /Users?filter=userName eq "…"` answered
//!   by the service (filter parse, indexed lookup, exact evaluation,
//!   rendering) with 100,000 users in the tenant. Target: p99 ≤ 1 ms.
//! - `scim/bulk_100k_users`: 100,000 users provisioned through `POST /Bulk`
//!   (1,000 requests of 100 operations) via the real router, token check
//!   and JSON included. Target: ≥ 5,000 users/s.
//! - `scim/patch_member_50k_group`: one PATCH that removes a member from a
//!   50,000-member group and adds another (Okta Group Push), through the
//!   service: membership is rows, so this must not depend on group size.
//!
//! Besides criterion's own report, each prints the figures the README
//! quotes (p50/p99, users/s) on stdout.

// A benchmark is a harness like a test: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use portcullis::metrics::Metrics;
use portcullis::scim::Scim;
use portcullis::scim::schema::Kind;
use portcullis::scim::service::ListQuery;
use portcullis::session::Sessions;
use portcullis::store::Store;
use serde_json::json;
use tower::ServiceExt;

const USERS: usize = 100_000;
const BATCH: usize = 100;

fn config() -> Arc<portcullis::config::Config> {
    let text = r#"
[server]
public_url = "http://127.0.0.1:8080"
[[listeners]]
address = "127.0.0.1:8080"
[upstream]
address = "127.0.0.1:8081"
[session]
keys = ["bench-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]
[store]
encryption_key = "cG9ydGN1bGxpcy1iZW5jaC1zdG9yZS1rZXktMDAwMDE="
[[tenants]]
id = "acme"
domains = ["acme.com"]
"#;
    Arc::new(portcullis::config::from_str(text, "bench.toml", &|_| None).unwrap())
}

fn service(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Arc<Scim> {
    let store = rt
        .block_on(Store::open(&format!("sqlite://{}/scim.db", dir.display())))
        .unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let sessions = Sessions::new(
        store.clone(),
        1000,
        Duration::from_secs(60),
        metrics.clone(),
    );
    Arc::new(Scim {
        store,
        sessions,
        config: config(),
        metrics,
        base: "http://127.0.0.1:8080/scim/v2".into(),
        max_matches: portcullis::scim::service::MAX_MATCHES,
        schemas: Default::default(),
    })
}

fn bulk_body(from: usize) -> Vec<u8> {
    let ops: Vec<_> = (from..from + BATCH)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                            "userName": format!("user{i}@acme.com"),
                            "externalId": format!("ext-{i}"),
                            "name": {"givenName": "User", "familyName": format!("N{i}")},
                            "emails": [{"value": format!("user{i}@acme.com"), "type": "work", "primary": true}],
                            "active": true}})
        })
        .collect();
    serde_json::to_vec(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}))
        .unwrap()
}

/// This process' CPU time (user + system, all threads: the SQLite worker
/// threads too) from /proc, so a figure can be given that does not depend on
/// how busy the other processes of a shared machine are.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), in clock ticks (100 Hz on Linux).
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Provisions `USERS` users through `/Bulk`; returns users per wall-clock
/// second and per CPU second.
fn provision(rt: &tokio::runtime::Runtime, scim: &Arc<Scim>) -> (f64, f64) {
    let router = portcullis::scim::http::router(scim.clone());
    let token = portcullis::scim::token::generate().unwrap();
    rt.block_on(
        scim.store
            .scim()
            .token_set("acme", &token.key_id, &token.hash, 0),
    )
    .unwrap();
    // SCIM accepts users only in the tenant's verified domains.
    rt.block_on(verify_domain(&scim.store, "acme", "acme.com"));
    let bodies: Vec<Vec<u8>> = (0..USERS / BATCH).map(|b| bulk_body(b * BATCH)).collect();
    let start = Instant::now();
    let cpu = cpu_time();
    for body in bodies {
        let req = Request::post("/scim/v2/Bulk")
            .header("authorization", format!("Bearer {}", token.token))
            .header("content-type", "application/scim+json")
            .body(Body::from(body))
            .unwrap();
        let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
        assert_eq!(resp.status(), 200);
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu).as_secs_f64();
    (USERS as f64 / wall, USERS as f64 / cpu)
}

/// Records `domain` as verified for `tenant`, as `portcullis domains
/// verify` does once it finds the TXT record.
async fn verify_domain(store: &Store, tenant: &str, domain: &str) {
    use portcullis::store::{DomainCheck, DomainRecord, DomainStatus};
    let entry = store
        .domains()
        .insert(&DomainRecord {
            domain: domain.into(),
            tenant: tenant.into(),
            token: "0".repeat(64),
            status: DomainStatus::Pending,
            created_at: 0,
            last_checked_at: None,
            verified_at: None,
            last_seen_at: None,
            detail: None,
        })
        .await
        .unwrap();
    let check = DomainCheck {
        status: DomainStatus::Verified,
        last_checked_at: 0,
        verified_at: Some(0),
        last_seen_at: Some(0),
        detail: None,
    };
    assert!(
        store
            .domains()
            .update_check(domain, &entry.token, &check)
            .await
            .unwrap()
    );
}

fn lookup(rt: &tokio::runtime::Runtime, scim: &Scim, i: usize) {
    let q = ListQuery {
        filter: Some(format!("userName eq \"USER{i}@acme.com\"")),
        ..Default::default()
    };
    let v = rt.block_on(scim.list("acme", Kind::User, &q)).unwrap();
    assert_eq!(v["totalResults"], 1);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = {
        use std::os::unix::fs::PermissionsExt;
        // The store refuses a directory others can read.
        tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
    }
    .unwrap();
    let scim = service(&rt, dir.path());

    let (per_sec, per_cpu_sec) = provision(&rt, &scim);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "scim/bulk_100k_users: {USERS} users in {} bulk requests: {per_sec:.0} users/s wall clock, {per_cpu_sec:.0} users per CPU second (loadavg {})",
        USERS / BATCH,
        load.split_whitespace().next().unwrap_or("?")
    );
    let count = rt
        .block_on(
            scim.store
                .scim()
                .count(portcullis::store::ScimKind::User, "acme"),
        )
        .unwrap();
    assert_eq!(count as usize, USERS);

    // Percentiles over many single lookups, spread over the whole table.
    let mut samples = Vec::with_capacity(20_000);
    for n in 0..20_000usize {
        let i = (n * 7919) % USERS;
        let t = Instant::now();
        lookup(&rt, &scim, i);
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "scim/username_eq_100k: p50 {:?}, p99 {:?}, max {:?} over {} lookups",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1],
        samples.len()
    );

    // A 50,000-member group: members added through the store in one
    // transaction, then single PATCHes timed.
    let group = rt
        .block_on(async {
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"});
            let (g, _) = scim.create("acme", Kind::Group, &body).await.unwrap();
            let id = g["id"].as_str().unwrap().to_owned();
            let users = scim
                .store
                .scim().scan(portcullis::store::ScimKind::User, "acme", None, 50_001)
                .await
                .unwrap();
            let mut tx = scim.store.begin_write("acme").await.unwrap();
            let members: Vec<_> = users[..50_000]
                .iter()
                .map(|u| portcullis::store::ScimMember { id: u.id.clone(), kind: "User".into() })
                .collect();
            tx.scim().add_members(&id, &members).await.unwrap();
            tx.commit().await.unwrap();
            (id, users)
        });
    let (gid, users) = group;
    let mut samples = Vec::new();
    for n in 0..500usize {
        let (out, inn) = (&users[n].id, &users[50_000 - (n % 2)].id);
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "remove", "path": format!("members[value eq \"{out}\"]")},
            {"op": "add", "path": "members", "value": [{"value": inn}]}]});
        let t = Instant::now();
        rt.block_on(scim.patch("acme", Kind::Group, &gid, &body, None))
            .unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "scim/patch_member_50k_group: p50 {:?}, p99 {:?} over {} PATCHes",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        samples.len()
    );

    let mut n = 0usize;
    c.bench_function("scim/username_eq_100k", |b| {
        b.iter(|| {
            n = (n + 7919) % USERS;
            lookup(&rt, &scim, n);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
