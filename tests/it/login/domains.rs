//! Domain verification against a real DNS server on 127.0.0.1 (see
//! `support::dns`): the production hickory resolver, real UDP/TCP packets,
//! and a store on a temp SQLite file (one lifecycle test on PostgreSQL).
//! Time is passed explicitly (`now`), so no test sleeps through a grace
//! period.

use std::time::Duration;

use portcullis::cli::CliError;
use portcullis::config::{self, DnsConfig};
use portcullis::domains::{self, DomainEntry, DomainError, DomainStatus, Domains};
use portcullis::store::Store;

use crate::support::dns::{Behaviour, DnsServer};
use crate::support::postgres::PgCluster;

const T0: i64 = 1_700_000_000;
const RECHECK: i64 = 60;
const EXPIRY: i64 = 1_000;
const REVERIFY: i64 = 300;
/// Longer than REVERIFY, as in the defaults (6 h vs 3 days): one missed
/// re-verification alone never lapses a domain.
const GRACE: i64 = 600;
/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

fn dns_config(server: &DnsServer) -> DnsConfig {
    DnsConfig {
        nameservers: vec![server.addr().to_string()],
        pending_recheck_seconds: RECHECK as u64,
        pending_expiry_seconds: EXPIRY as u64,
        reverify_seconds: REVERIFY as u64,
        lapse_grace_seconds: GRACE as u64,
        lookup_timeout_ms: 400,
        ..DnsConfig::default()
    }
}

struct Env {
    dns: DnsServer,
    domains: Domains,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    async fn sqlite() -> Env {
        let dir = crate::support::env::private_tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        Env::open(&url, Some(dir)).await
    }

    async fn postgres() -> Env {
        let url = PgCluster::shared().await.fresh_database().await;
        Env::open(&url, None).await
    }

    async fn open(url: &str, dir: Option<tempfile::TempDir>) -> Env {
        let dns = DnsServer::start().await;
        let store = Store::open(url).await.expect("open store");
        let domains = Domains::new(store, &dns_config(&dns)).expect("domains");
        Env {
            dns,
            domains,
            _dir: dir,
        }
    }

    /// Publishes the entry's expected record.
    fn publish(&self, entry: &DomainEntry) {
        let (name, value) = self.domains.txt_record(entry);
        self.dns.set_txt(&name, &value);
    }

    fn set(&self, entry: &DomainEntry, behaviour: Behaviour) {
        let (name, _) = self.domains.txt_record(entry);
        self.dns.set(&name, behaviour);
    }

    async fn verify(&self, domain: &str, now: i64) -> DomainEntry {
        tokio::time::timeout(WAIT, self.domains.verify(domain, now))
            .await
            .expect("verify is bounded")
            .expect("verify")
    }

    async fn status(&self, domain: &str) -> DomainStatus {
        self.domains
            .get(domain)
            .await
            .expect("get")
            .expect("domain exists")
            .status
    }
}

/// The whole life cycle, written once for both backends.
async fn lifecycle(env: &Env) {
    let d = env.domains.add("acme", "Acme.COM", T0).await.expect("add");
    assert_eq!(d.domain, "acme.com");
    assert_eq!(d.status, DomainStatus::Pending);

    // Not published yet: stays pending, detail says why.
    let e = env.verify("acme.com", T0 + 10).await;
    assert_eq!(e.status, DomainStatus::Pending);
    assert_eq!(e.detail.as_deref(), Some("NXDOMAIN"));
    assert_eq!(env.domains.verified_tenant("acme.com").await.unwrap(), None);

    // Published: verified, routes.
    env.publish(&d);
    let e = env.verify("acme.com", T0 + 20).await;
    assert_eq!(e.status, DomainStatus::Verified);
    assert_eq!(e.verified_at, Some(T0 + 20));
    assert_eq!(e.last_seen_at, Some(T0 + 20));
    assert_eq!(e.detail.as_deref(), Some("record found"));
    assert_eq!(
        env.domains
            .verified_tenant("acme.com")
            .await
            .unwrap()
            .as_deref(),
        Some("acme")
    );

    // Record disappears: still verified (and routing) within the grace.
    env.dns.remove(&env.domains.txt_record(&d).0);
    let e = env.verify("acme.com", T0 + 20 + GRACE).await;
    assert_eq!(e.status, DomainStatus::Verified);
    assert_eq!(e.detail.as_deref(), Some("NXDOMAIN"));
    assert_eq!(e.last_seen_at, Some(T0 + 20));
    assert!(
        env.domains
            .verified_tenant("acme.com")
            .await
            .unwrap()
            .is_some()
    );

    // Past the grace: lapsed, stops routing.
    let e = env.verify("acme.com", T0 + 21 + GRACE).await;
    assert_eq!(e.status, DomainStatus::Lapsed);
    assert_eq!(env.domains.verified_tenant("acme.com").await.unwrap(), None);
    assert_eq!(
        env.domains.tenant_for_email("bob@acme.com").await.unwrap(),
        None
    );

    // The record comes back: verified again, with a fresh verified_at.
    env.publish(&d);
    let e = env.verify("acme.com", T0 + 5_000).await;
    assert_eq!(e.status, DomainStatus::Verified);
    assert_eq!(e.verified_at, Some(T0 + 5_000));
    assert_eq!(
        env.domains
            .tenant_for_email("Bob@ACME.com")
            .await
            .unwrap()
            .as_deref(),
        Some("acme")
    );
}

#[tokio::test]
async fn lifecycle_pending_verified_grace_lapsed_verified_sqlite() {
    lifecycle(&Env::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_pending_verified_grace_lapsed_verified_postgres() {
    lifecycle(&Env::postgres().await).await;
}

#[tokio::test]
async fn pending_fails_after_expiry_and_verify_still_promotes_it() {
    let env = Env::sqlite().await;
    let d = env.domains.add("acme", "acme.com", T0).await.unwrap();
    env.set(&d, Behaviour::Txt(vec![]));

    let s = env.domains.check_due(T0).await.unwrap();
    assert_eq!((s.checked, s.failed), (1, 0));
    let e = env.domains.get("acme.com").await.unwrap().unwrap();
    assert_eq!(e.status, DomainStatus::Pending);
    assert_eq!(e.detail.as_deref(), Some("no TXT record"));

    let s = env.domains.check_due(T0 + EXPIRY).await.unwrap();
    assert_eq!((s.checked, s.failed), (1, 1));
    assert_eq!(env.status("acme.com").await, DomainStatus::Failed);

    // The loop leaves failed domains alone, even much later...
    let s = env.domains.check_due(T0 + 100 * EXPIRY).await.unwrap();
    assert_eq!(s.checked, 0);
    assert_eq!(env.domains.verified_tenant("acme.com").await.unwrap(), None);

    // ...but an explicit verify that finds the record promotes it.
    env.publish(&d);
    let e = env.verify("acme.com", T0 + 100 * EXPIRY).await;
    assert_eq!(e.status, DomainStatus::Verified);
}

#[tokio::test]
async fn resolver_errors_never_lapse_a_verified_domain() {
    let env = Env::sqlite().await;
    let d = env.domains.add("acme", "acme.com", T0).await.unwrap();
    env.publish(&d);
    assert_eq!(
        env.verify("acme.com", T0).await.status,
        DomainStatus::Verified
    );

    // SERVFAIL long past the grace: still verified, detail recorded.
    env.set(&d, Behaviour::ServFail);
    let e = env.verify("acme.com", T0 + 10 * GRACE).await;
    assert_eq!(e.status, DomainStatus::Verified);
    assert_eq!(e.detail.as_deref(), Some("SERVFAIL"));
    assert_eq!(e.last_seen_at, Some(T0));

    // A silent server (timeout). That the lookup ends at lookup_timeout_ms
    // is checked exactly on a paused clock by the unit test
    // domains::lookup::tests::a_silent_nameserver_ends_the_lookup_at_the_timeout.
    env.set(&d, Behaviour::Silence);
    let e = env.verify("acme.com", T0 + 20 * GRACE).await;
    assert_eq!(e.status, DomainStatus::Verified);
    assert_eq!(e.detail.as_deref(), Some("timeout"));

    // The background loop counts errors and changes nothing.
    env.set(&d, Behaviour::ServFail);
    let s = env.domains.check_due(T0 + 30 * GRACE).await.unwrap();
    assert_eq!((s.checked, s.dns_errors, s.lapsed), (1, 1, 0));
    assert_eq!(env.status("acme.com").await, DomainStatus::Verified);

    // Real evidence of absence after all that does lapse it (last seen at T0).
    env.set(&d, Behaviour::NxDomain);
    let e = env.verify("acme.com", T0 + 40 * GRACE).await;
    assert_eq!(e.status, DomainStatus::Lapsed);
}

#[tokio::test]
async fn split_txt_strings_are_joined() {
    let env = Env::sqlite().await;
    let d = env.domains.add("acme", "acme.com", T0).await.unwrap();
    let (_, value) = env.domains.txt_record(&d);
    let (a, b) = value.split_at(20);
    let (b, c) = b.split_at(25);
    env.set(
        &d,
        Behaviour::Txt(vec![vec![a.to_owned(), b.to_owned(), c.to_owned()]]),
    );
    assert_eq!(
        env.verify("acme.com", T0).await.status,
        DomainStatus::Verified
    );
}

#[tokio::test]
async fn wrong_token_is_not_proof_and_one_match_among_many_is() {
    let env = Env::sqlite().await;
    let d = env.domains.add("acme", "acme.com", T0).await.unwrap();
    let (_, value) = env.domains.txt_record(&d);
    let wrong = format!("portcullis-domain-verification={}", "0".repeat(64));
    let truncated = value[..value.len() - 1].to_owned();
    env.set(
        &d,
        Behaviour::Txt(vec![
            vec![wrong.clone()],
            vec![truncated.clone()],
            vec!["v=spf1 -all".into()],
        ]),
    );
    let e = env.verify("acme.com", T0).await;
    assert_eq!(e.status, DomainStatus::Pending);
    let detail = e.detail.unwrap();
    assert!(detail.starts_with("found other tokens"), "{detail}");
    assert!(!detail.contains(&d.token), "detail never echoes tokens");

    // Several TXT records at the name are fine as long as one matches.
    env.set(
        &d,
        Behaviour::Txt(vec![vec![wrong], vec![value], vec!["v=spf1 -all".into()]]),
    );
    assert_eq!(
        env.verify("acme.com", T0).await.status,
        DomainStatus::Verified
    );

    // Another domain's token does not verify this one.
    let other = env.domains.add("acme", "acme.org", T0).await.unwrap();
    let (other_name, _) = env.domains.txt_record(&other);
    env.dns.set_txt(&other_name, &env.domains.txt_record(&d).1);
    assert_eq!(
        env.verify("acme.org", T0).await.status,
        DomainStatus::Pending
    );
}

#[tokio::test]
async fn conflicts_between_tenants_are_refused_and_readding_is_idempotent() {
    let env = Env::sqlite().await;
    let first = env.domains.add("acme", "acme.com", T0).await.unwrap();
    match env.domains.add("globex", "ACME.com", T0 + 1).await {
        Err(DomainError::Conflict { domain, owner }) => {
            assert_eq!((domain.as_str(), owner.as_str()), ("acme.com", "acme"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let again = env.domains.add("acme", "acme.com", T0 + 2).await.unwrap();
    assert_eq!(again, first, "same row, same token, same created_at");
    assert_eq!(env.domains.list(None).await.unwrap().len(), 1);

    // After removal the domain is free again, with a new token.
    assert!(env.domains.remove("acme.com").await.unwrap());
    assert!(!env.domains.remove("acme.com").await.unwrap());
    let taken = env.domains.add("globex", "acme.com", T0 + 3).await.unwrap();
    assert_eq!(taken.tenant, "globex");
    assert_ne!(taken.token, first.token);
}

#[tokio::test]
async fn tokens_are_random_and_long() {
    let env = Env::sqlite().await;
    let a = env.domains.add("acme", "a.example", T0).await.unwrap();
    let b = env.domains.add("acme", "b.example", T0).await.unwrap();
    assert_eq!(a.token.len(), 64);
    assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a.token, b.token);
    let (name, value) = env.domains.txt_record(&a);
    assert_eq!(name, "_portcullis-challenge.a.example");
    assert_eq!(value, format!("portcullis-domain-verification={}", a.token));
}

#[tokio::test]
async fn public_mail_domains_are_refused() {
    let env = Env::sqlite().await;
    for domain in ["gmail.com", "GMAIL.COM", "outlook.com"] {
        match env.domains.add("acme", domain, T0).await {
            Err(DomainError::PublicMail(d)) => assert_eq!(d, domain.to_ascii_lowercase()),
            other => panic!("{domain}: expected PublicMail, got {other:?}"),
        }
    }
    assert!(env.domains.list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn subdomains_are_verified_separately() {
    let env = Env::sqlite().await;
    let parent = env.domains.add("acme", "acme.com", T0).await.unwrap();
    let sub = env.domains.add("acme", "eu.acme.com", T0).await.unwrap();
    assert_ne!(parent.token, sub.token);
    assert_eq!(
        env.domains.txt_record(&sub).0,
        "_portcullis-challenge.eu.acme.com"
    );
    env.publish(&parent);
    assert_eq!(
        env.verify("acme.com", T0).await.status,
        DomainStatus::Verified
    );
    assert_eq!(
        env.verify("eu.acme.com", T0).await.status,
        DomainStatus::Pending
    );
    assert!(
        env.domains
            .tenant_for_email("a@acme.com")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        env.domains.tenant_for_email("a@eu.acme.com").await.unwrap(),
        None
    );
    assert_eq!(
        env.domains.tenant_for_email("a@us.acme.com").await.unwrap(),
        None
    );

    // A subdomain can even belong to another tenant.
    let other = env.domains.add("globex", "us.acme.com", T0).await.unwrap();
    env.publish(&other);
    env.verify("us.acme.com", T0).await;
    assert_eq!(
        env.domains
            .tenant_for_email("a@us.acme.com")
            .await
            .unwrap()
            .as_deref(),
        Some("globex")
    );
}

#[tokio::test]
async fn only_verified_domains_route() {
    let env = Env::sqlite().await;
    // pending
    env.domains.add("t1", "pending.example", T0).await.unwrap();
    // verified
    let v = env.domains.add("t2", "verified.example", T0).await.unwrap();
    env.publish(&v);
    env.verify("verified.example", T0).await;
    // failed
    env.domains.add("t3", "failed.example", T0).await.unwrap();
    env.verify("failed.example", T0 + EXPIRY).await;
    // lapsed
    let l = env.domains.add("t4", "lapsed.example", T0).await.unwrap();
    env.publish(&l);
    env.verify("lapsed.example", T0).await;
    env.set(&l, Behaviour::NxDomain);
    env.verify("lapsed.example", T0 + GRACE + 1).await;

    let statuses: Vec<(String, DomainStatus)> = env
        .domains
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.domain, e.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("failed.example".into(), DomainStatus::Failed),
            ("lapsed.example".into(), DomainStatus::Lapsed),
            ("pending.example".into(), DomainStatus::Pending),
            ("verified.example".into(), DomainStatus::Verified),
        ]
    );
    assert_eq!(env.domains.list(Some("t2")).await.unwrap().len(), 1);

    for (email, tenant) in [
        ("a@pending.example", None),
        ("a@failed.example", None),
        ("a@lapsed.example", None),
        ("a@verified.example", Some("t2")),
        ("A@VERIFIED.EXAMPLE", Some("t2")),
        // The part after the *last* `@` counts.
        ("\"a@evil.example\"@verified.example", Some("t2")),
        ("a@verified.example@evil.example", None),
        ("a@unknown.example", None),
        ("no-at-sign", None),
        ("a@", None),
        ("@verified.example", Some("t2")),
        ("a@verified.example.", None),
        ("a@verified..example", None),
        ("a@\u{0}verified.example", None),
    ] {
        assert_eq!(
            env.domains
                .tenant_for_email(email)
                .await
                .unwrap()
                .as_deref(),
            tenant,
            "{email:?}"
        );
    }
}

#[tokio::test]
async fn background_pass_picks_due_domains_only() {
    let env = Env::sqlite().await;
    let a = env.domains.add("acme", "a.example", T0).await.unwrap();
    env.domains.add("acme", "b.example", T0).await.unwrap();
    env.publish(&a);

    let s = env.domains.check_due(T0).await.unwrap();
    assert_eq!((s.checked, s.verified, s.dns_errors), (2, 1, 0));
    // Nothing is due right after a pass.
    assert_eq!(env.domains.check_due(T0 + 1).await.unwrap().checked, 0);
    // The pending one is re-checked at the pending pace, the verified one not.
    assert_eq!(
        env.domains.check_due(T0 + RECHECK).await.unwrap().checked,
        1
    );
    // At the re-verify interval, both.
    assert_eq!(
        env.domains.check_due(T0 + REVERIFY).await.unwrap().checked,
        2
    );

    // A verified domain whose record went missing is watched at the pending
    // pace, so it lapses close to the end of its grace, not at the next
    // re-verification.
    env.set(&a, Behaviour::NxDomain);
    let t = T0 + 2 * REVERIFY;
    assert_eq!(env.domains.check_due(t).await.unwrap().checked, 2);
    assert_eq!(env.domains.check_due(t + RECHECK).await.unwrap().checked, 2);
    let s = env.domains.check_due(t + 6 * RECHECK).await.unwrap();
    assert_eq!(s.lapsed, 1);
    assert_eq!(env.status("a.example").await, DomainStatus::Lapsed);
}

#[tokio::test]
async fn background_pass_checks_many_domains_concurrently() {
    let env = Env::sqlite().await;
    for i in 0..40 {
        let e = env
            .domains
            .add("acme", &format!("d{i}.example"), T0)
            .await
            .unwrap();
        if i % 2 == 0 {
            env.publish(&e);
        } else {
            env.set(&e, Behaviour::Silence);
        }
    }
    let s = tokio::time::timeout(WAIT, env.domains.check_due(T0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.checked, s.verified, s.dns_errors), (40, 20, 20));
}

/// Concurrency shown without a stopwatch: with a 60 s lookup timeout, a
/// pass that checked one domain after the other would sit on the first
/// silent name for a minute, having sent two or three queries; a
/// concurrent pass sends most of them at once (the silent names hold the
/// permits, the answered ones pass through). The pass is abandoned then.
#[tokio::test]
async fn a_pass_does_not_wait_for_one_silent_name_before_the_next() {
    let dns = DnsServer::start().await;
    let dir = crate::support::env::private_tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    let config = DnsConfig {
        lookup_timeout_ms: 60_000,
        ..dns_config(&dns)
    };
    let domains = Domains::new(store, &config).unwrap();
    for i in 0..40 {
        let e = domains
            .add("acme", &format!("d{i}.example"), T0)
            .await
            .unwrap();
        let (name, value) = domains.txt_record(&e);
        if i % 2 == 0 {
            dns.set_txt(&name, &value);
        } else {
            dns.set(&name, Behaviour::Silence);
        }
    }
    let pass = tokio::spawn({
        let domains = domains.clone();
        async move { domains.check_due(T0).await }
    });
    let seen = tokio::time::timeout(WAIT, async {
        while dns.udp_queries() < 10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let queries = dns.udp_queries();
    pass.abort();
    assert!(
        seen.is_ok(),
        "only {queries} lookups started: one at a time?"
    );
}

#[tokio::test]
async fn truncated_udp_answers_fall_back_to_tcp_on_the_same_port() {
    let env = Env::sqlite().await;
    let d = env.domains.add("acme", "acme.com", T0).await.unwrap();
    env.publish(&d);
    env.dns.truncate_udp(true);
    assert_eq!(
        env.verify("acme.com", T0).await.status,
        DomainStatus::Verified
    );
    assert!(env.dns.tcp_queries() >= 1, "TCP was used");
    assert!(env.dns.udp_queries() >= 1, "UDP was tried first");
}

#[tokio::test]
async fn run_checks_verifies_in_the_background_and_stops_on_shutdown() {
    let env = Env::sqlite().await;
    let d = env
        .domains
        .add("acme", "acme.com", portcullis::clock::now())
        .await
        .unwrap();
    env.publish(&d);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(domains::run_checks(
        env.domains.clone(),
        Duration::from_millis(50),
        rx,
    ));
    tokio::time::timeout(WAIT, async {
        while env.status("acme.com").await != DomainStatus::Verified {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("verified by the background loop");
    tx.send_replace(true);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("loop stops on shutdown")
        .expect("loop did not panic");
}

#[tokio::test]
async fn hostile_input_gives_clear_errors() {
    let env = Env::sqlite().await;
    let long_label = format!("{}.com", "a".repeat(300));
    let cases: [(&str, &str); 9] = [
        ("", "empty"),
        (&long_label, "253"),
        ("bücher.de", "IDNA"),
        ("a..com", "empty label"),
        ("acme.com.", "trailing dot"),
        ("bob@acme.com", "email"),
        ("acme", "two labels"),
        ("acme.com; DROP TABLE domains", "whitespace"),
        ("\u{0}.com", "labels may contain"),
    ];
    for (input, needle) in cases {
        for result in [
            env.domains.add("acme", input, T0).await,
            env.domains.verify(input, T0).await,
        ] {
            match result {
                Err(e @ DomainError::Invalid { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(needle), "{input:?}: {text}");
                    assert!(text.len() < 300, "{input:?}: error stays short");
                }
                other => panic!("{input:?}: expected Invalid, got {other:?}"),
            }
        }
        assert_eq!(env.domains.verified_tenant(input).await.unwrap(), None);
        assert!(env.domains.remove(input).await.is_err());
    }
    // A name that only just fits DNS but not with the challenge prefix.
    let tight = format!(
        "{}.{}.com",
        vec!["a".repeat(63); 3].join("."),
        "b".repeat(40)
    );
    assert!(tight.len() <= 253 && tight.len() + 22 > 253);
    assert!(matches!(
        env.domains.add("acme", &tight, T0).await,
        Err(DomainError::Invalid { .. })
    ));
    assert!(env.domains.list(None).await.unwrap().is_empty());
    // Verifying something never added is a clear error too.
    assert!(matches!(
        env.domains.verify("never-added.example", T0).await,
        Err(DomainError::NotFound(_))
    ));
}

// ---- CLI helpers -------------------------------------------------------

fn cli_config(dns: &DnsServer, store_url: &str) -> config::Config {
    let text = format!(
        r#"
[[listeners]]
address = "127.0.0.1:8080"

[session]
keys = ["0123456789abcdef0123456789abcdef"]

[store]
url = "{store_url}"
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="

[dns]
nameservers = ["{ns}"]
lookup_timeout_ms = 500

[[tenants]]
id = "acme"
domains = ["acme.com", "Eu.Acme.com"]

[[tenants]]
id = "globex"
domains = ["globex.example"]
"#,
        ns = dns.addr()
    );
    config::from_str(&text, "test.toml", &|_| None).expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_helpers_print_the_record_verdicts_and_a_table() {
    let dns = DnsServer::start().await;
    let dir = crate::support::env::private_tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let cfg = cli_config(&dns, &url);

    let out = portcullis::cli::domains::add(&cfg, "acme", "ACME.com")
        .await
        .unwrap();
    let value_line = out
        .lines()
        .find_map(|l| l.strip_prefix("Value:   "))
        .expect("value line")
        .to_owned();
    let token = value_line
        .strip_prefix("portcullis-domain-verification=")
        .expect("value format");
    assert_eq!(token.len(), 64, "{out}");
    assert!(
        out.contains("Name:    _portcullis-challenge.acme.com\n"),
        "{out}"
    );
    assert!(out.contains("Type:    TXT\n"), "{out}");
    assert!(out.contains("portcullis domains verify acme.com"), "{out}");
    // Re-running prints the same record.
    assert_eq!(
        portcullis::cli::domains::add(&cfg, "acme", "acme.com")
            .await
            .unwrap(),
        out
    );
    // Domains listed with other cases in the config are matched case-insensitively.
    portcullis::cli::domains::add(&cfg, "acme", "eu.acme.com")
        .await
        .unwrap();

    // Refusals with operator-facing messages.
    let err = portcullis::cli::domains::add(&cfg, "acme", "globex.example")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CliError::Domains(DomainError::NotInConfig { .. })
    ));
    assert!(err.to_string().contains("[[tenants]] domains"), "{err}");
    let err = portcullis::cli::domains::add(&cfg, "nobody", "acme.com")
        .await
        .unwrap_err();
    assert!(
        matches!(err, CliError::Domains(DomainError::UnknownTenant(_))),
        "{err}"
    );
    let err = portcullis::cli::domains::add(&cfg, "acme", "acme.com.")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("trailing dot"), "{err}");

    // Verify before and after publishing.
    let out = portcullis::cli::domains::verify(&cfg, "acme.com")
        .await
        .unwrap();
    assert!(out.starts_with("acme.com: pending (NXDOMAIN)\n"), "{out}");
    assert!(
        out.contains(&format!(
            "Expected: TXT _portcullis-challenge.acme.com \"{value_line}\""
        )),
        "{out}"
    );
    dns.set_txt("_portcullis-challenge.acme.com", &value_line);
    let out = portcullis::cli::domains::verify(&cfg, "acme.com")
        .await
        .unwrap();
    assert_eq!(out, "acme.com: verified (record found)\n");

    let table = portcullis::cli::domains::list(&cfg, None).await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in [
        "DOMAIN",
        "TENANT",
        "STATUS",
        "CREATED",
        "LAST CHECKED",
        "VERIFIED",
        "DETAIL",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(lines[1].starts_with("acme.com "), "{table}");
    assert!(lines[1].contains(" verified "), "{table}");
    assert!(lines[1].ends_with("record found"), "{table}");
    assert!(lines[2].starts_with("eu.acme.com "), "{table}");
    assert!(lines[2].contains(" pending "), "{table}");
    assert!(lines[2].ends_with(" -"), "never checked: {table}");
    // RFC 3339 UTC timestamps.
    let stamp = lines[1]
        .split_whitespace()
        .find(|w| w.ends_with('Z') && w.contains('T'))
        .expect("a timestamp");
    assert_eq!(stamp.len(), "2026-01-01T00:00:00Z".len(), "{stamp}");

    assert_eq!(
        portcullis::cli::domains::list(&cfg, Some("globex"))
            .await
            .unwrap(),
        "no domains\n"
    );
    assert_eq!(
        portcullis::cli::domains::remove(&cfg, "eu.acme.com")
            .await
            .unwrap(),
        "eu.acme.com: removed\n"
    );
    assert!(matches!(
        portcullis::cli::domains::remove(&cfg, "eu.acme.com").await,
        Err(CliError::Domains(DomainError::NotFound(_)))
    ));
}

#[tokio::test]
async fn an_unusable_nameserver_is_a_resolver_error() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::open(&url).await.unwrap();
    let dns = DnsConfig {
        nameservers: vec!["not-an-ip".into()],
        ..DnsConfig::default()
    };
    assert!(matches!(
        Domains::new(store, &dns),
        Err(DomainError::Resolver(_))
    ));
}

#[tokio::test]
async fn dev_shortcuts_route_only_until_forgotten_and_never_touch_real_claims() {
    let env = Env::sqlite().await;
    let dev = env
        .domains
        .mark_verified_for_dev("example", "example.com", T0)
        .await
        .unwrap();
    assert_eq!(dev.status, DomainStatus::Verified);
    assert_eq!(
        env.domains
            .verified_tenant("example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("example")
    );
    // a real, DNS-proven claim next to it
    let real = env.domains.add("acme", "acme.com", T0).await.unwrap();
    env.publish(&real);
    assert_eq!(
        env.verify("acme.com", T0).await.status,
        DomainStatus::Verified
    );

    // a configuration without [dev_idp] is applied: the shortcut goes, the
    // real claim stays
    let removed = env.domains.forget_dev_shortcuts().await.unwrap();
    assert_eq!(removed, vec!["example.com".to_string()]);
    assert_eq!(
        env.domains.verified_tenant("example.com").await.unwrap(),
        None
    );
    assert_eq!(
        env.domains
            .verified_tenant("acme.com")
            .await
            .unwrap()
            .as_deref(),
        Some("acme")
    );
    assert!(env.domains.forget_dev_shortcuts().await.unwrap().is_empty());
}
