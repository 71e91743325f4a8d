//! Webhook delivery throughput and latency against a local receiver.
//!
//! `cargo bench --bench webhooks` (release). Prints events/s for a backlog
//! drained by one deliverer, and write → acknowledged latency percentiles
//! for single changes. The receiver is a minimal axum server on loopback
//! that answers 200 and records the arrival time per message id; its own
//! ceiling (a tight loop of the same POSTs with the same client) is printed
//! as the baseline, so the figures read as a ratio on a noisy machine.

// A benchmark is a harness like a test: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use portcullis::config::WebhookConfig;
use portcullis::events::EventType;
use portcullis::metrics::Metrics;
use portcullis::store::Store;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/hooks",
            post(|State(s): State<Seen>, h: HeaderMap, b: Bytes| async move {
                // An event is known by tenant and sequence (the writer
                // knows both before delivery); anything else by its id.
                let key = serde_json::from_slice::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| {
                        Some(format!(
                            "{}/{}",
                            v["tenant"].as_str()?,
                            v["sequence"].as_i64()?
                        ))
                    })
                    .or_else(|| Some(h.get("webhook-id")?.to_str().ok()?.to_owned()));
                if let Some(key) = key {
                    s.lock().unwrap().insert(key, Instant::now());
                }
                "ok"
            }),
        )
        .with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, seen)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config(url: &str) -> WebhookConfig {
    toml::from_str(&format!(
        "url = \"{url}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\npoll_interval_ms = 250\n"
    ))
    .unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let events: usize = std::env::var("WEBHOOK_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let tenants = 8;
    let dir = {
        use std::os::unix::fs::PermissionsExt;
        // The store refuses a directory others can read.
        tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
    }
    .unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await
        .unwrap();
    let (url, seen) = receiver().await;

    // Baseline: the receiver's ceiling with the same kind of client and body.
    let client = reqwest::Client::new();
    let body =
        serde_json::json!({"id": "msg_x", "data": {"email": "someone@example.com"}}).to_string();
    let n_base = 5_000;
    let t = Instant::now();
    for i in 0..n_base {
        client
            .post(&url)
            .header("webhook-id", format!("base-{i}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
    }
    let base_rate = n_base as f64 / t.elapsed().as_secs_f64();
    seen.lock().unwrap().clear();

    // Backlog: `events` changes across 8 tenants, then one deliverer drains.
    let t = Instant::now();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    for chunk in 0..events / 100 {
        let tenant = format!("tenant-{}", chunk % tenants);
        *last_seq.entry(tenant.clone()).or_default() += 100;
        let mut tx = store.begin_write(&tenant).await.unwrap();
        for i in 0..100 {
            tx.outbox().emit(
                EventType::UserUpdated,
                serde_json::json!({"id": format!("u-{chunk}-{i}"), "email": "someone@example.com"}),
                now_ms(),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let write_rate = events as f64 / t.elapsed().as_secs_f64();
    let metrics = Arc::new(Metrics::new().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let handle = portcullis::webhook::spawn(store.clone(), config(&url), metrics, rx).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().unwrap().len() < events {
        assert!(Instant::now() < deadline, "backlog not drained");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_rate = events as f64 / t.elapsed().as_secs_f64();

    // Latency: one change at a time, write committed → receiver saw it.
    let mut lat = Vec::new();
    for i in 0..500 {
        let tenant = format!("tenant-{}", i % tenants);
        let start = Instant::now();
        let seq = last_seq.entry(tenant.clone()).or_default();
        *seq += 1;
        let key = format!("{tenant}/{seq}");
        let mut tx = store.begin_write(&tenant).await.unwrap();
        tx.outbox()
            .emit(
                EventType::UserUpdated,
                serde_json::json!({"id": i}),
                now_ms(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(at) = seen.lock().unwrap().get(&key) {
                lat.push(at.duration_since(start));
                break;
            }
            assert!(Instant::now() < deadline, "event {i} not delivered");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    stop.send_replace(true);
    let _ = handle.await;

    println!(
        "webhook delivery ({events} events, {tenants} tenants, SQLite store, loopback receiver)"
    );
    println!("  receiver ceiling (sequential POSTs) : {base_rate:>9.0} req/s  (baseline)");
    println!("  outbox writes (100 per transaction) : {write_rate:>9.0} events/s");
    println!(
        "  backlog drained by one deliverer    : {drain_rate:>9.0} events/s  ({:.2}x baseline)",
        drain_rate / base_rate
    );
    println!(
        "  write -> acknowledged latency       : p50 {:?}  p90 {:?}  p99 {:?}",
        p(0.5),
        p(0.9),
        p(0.99)
    );
}
