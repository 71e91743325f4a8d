//! Store conformance suite: every scenario is written once as a generic async
//! fn and stamped out for SQLite (temp file) and PostgreSQL (throwaway
//! cluster, fresh database per test) by `conformance!`.

use std::time::{Duration, Instant};

use portcullis::store::{
    Backend, DomainCheck, DomainRecord, DomainStatus, DueCutoffs, IdpBinding, SessionRecord,
    SessionSelector, Store, StoreError, StoreEvent, StoredKey,
};
use sqlx::{Connection, Row};
use tokio::sync::broadcast;

use crate::support::postgres::PgCluster;

/// Bound for every event wait.
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// A database a test may open any number of stores on.
struct TestDb {
    url: String,
    backend: Backend,
    /// Keeps the SQLite file alive for the duration of the test.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh temp-file SQLite database.
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        TestDb {
            url,
            backend: Backend::Sqlite,
            _dir: Some(dir),
        }
    }

    /// A fresh database on the shared throwaway cluster.
    async fn postgres() -> TestDb {
        let url = PgCluster::shared().await.fresh_database().await;
        TestDb {
            url,
            backend: Backend::Postgres,
            _dir: None,
        }
    }

    /// Opens another store on the same database (a "replica").
    async fn open(&self) -> Store {
        let store = Store::open(&self.url).await.expect("open store");
        assert_eq!(store.backend(), self.backend);
        store
    }

    /// Reads the migration bookkeeping behind the store's back.
    async fn migration_versions(&self) -> Vec<i64> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        let rows = sqlx::query("SELECT version FROM portcullis_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("read migrations");
        let _ = conn.close().await;
        rows.iter()
            .map(|r| r.try_get::<i64, _>("version").expect("version"))
            .collect()
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::postgres().await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}

conformance!(
    open_migrates,
    reopen_is_idempotent,
    insert_get_round_trip,
    get_missing_is_none,
    duplicate_insert_fails,
    touch_moves_last_seen_forward,
    revoke_by_each_selector,
    revoke_by_idp_binding,
    revoke_publishes_local_event,
    revoke_reaches_other_store,
    delete_expired_absolute_and_idle,
    key_first_writer_wins,
    key_first_writer_wins_concurrently,
    hostile_strings_round_trip,
    nul_is_rejected_consistently,
    ping_and_close,
    domain_round_trip_list_and_delete,
    domain_conflict_names_owner_and_same_tenant_is_idempotent,
    domain_concurrent_claims_have_one_winner,
    domain_check_update_is_guarded_by_token,
    domain_due_selection,
    domain_hostile_strings_and_nul,
    users_unique_per_tenant_case_insensitively,
    one_time_values_are_single_use,
);

/// A fully populated record, so round-trips exercise every column.
fn session(id: &str, user: &str, tenant: Option<&str>, connection: Option<&str>) -> SessionRecord {
    SessionRecord {
        id_hash: id.to_owned(),
        user_id: user.to_owned(),
        email: format!("{user}@example.com"),
        name: Some(format!("Name of {user}")),
        tenant: tenant.map(str::to_owned),
        connection: connection.map(str::to_owned),
        groups: vec!["g1".into(), "g2".into()],
        roles: vec!["admin".into()],
        created_at: 1_000,
        expires_at: 10_000,
        last_seen_at: 1_000,
        idp: Some(IdpBinding {
            subject: format!("sub-{user}"),
            session: Some(format!("sid-{id}")),
            logout_hint: Some(format!("{{\"id_token\":\"t-{id}\"}}")),
        }),
    }
}

/// Which of `candidates` still exist, to assert exactly which rows a revoke took.
async fn ids(store: &Store, candidates: &[&str]) -> Vec<String> {
    let mut present = Vec::new();
    for id in candidates {
        if store.get_session(id).await.expect("get").is_some() {
            present.push((*id).to_owned());
        }
    }
    present
}

/// Waits (bounded) for a specific event, skipping others (e.g. duplicates
/// or reconnect flushes).
async fn expect_event(rx: &mut broadcast::Receiver<StoreEvent>, expected: &StoreEvent) {
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(event)) if &event == expected => return,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("event channel closed: {e}"),
            Err(_) => panic!("no {expected:?} within {EVENT_WAIT:?}"),
        }
    }
}

async fn open_migrates(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.count_sessions().await.unwrap(), 0);
    assert_eq!(db.migration_versions().await, vec![1, 2, 3, 4, 5, 6, 7, 10]);
    store.close().await;
}

async fn reopen_is_idempotent(db: &TestDb) {
    let first = db.open().await;
    first
        .insert_session(&session("a", "u1", None, None))
        .await
        .unwrap();
    first.close().await;

    let second = db.open().await;
    let third = db.open().await;
    assert_eq!(db.migration_versions().await, vec![1, 2, 3, 4, 5, 6, 7, 10]);
    assert_eq!(second.count_sessions().await.unwrap(), 1);
    assert!(third.get_session("a").await.unwrap().is_some());
    second.close().await;
    third.close().await;
}

async fn insert_get_round_trip(db: &TestDb) {
    let store = db.open().await;
    let full = session("full", "u1", Some("acme"), Some("okta"));
    let bare = SessionRecord {
        id_hash: "bare".into(),
        user_id: "u2".into(),
        email: "u2@example.com".into(),
        name: None,
        tenant: None,
        connection: None,
        groups: vec![],
        roles: vec![],
        created_at: -5,
        expires_at: i64::MAX,
        last_seen_at: 0,
        idp: None,
    };
    store.insert_session(&full).await.unwrap();
    store.insert_session(&bare).await.unwrap();
    assert_eq!(store.get_session("full").await.unwrap(), Some(full));
    assert_eq!(store.get_session("bare").await.unwrap(), Some(bare));
    assert_eq!(store.count_sessions().await.unwrap(), 2);
    store.close().await;
}

async fn get_missing_is_none(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.get_session("nope").await.unwrap(), None);
    store.close().await;
}

async fn duplicate_insert_fails(db: &TestDb) {
    let store = db.open().await;
    let s = session("dup", "u1", None, None);
    store.insert_session(&s).await.unwrap();
    let mut other = s.clone();
    other.user_id = "intruder".into();
    assert!(matches!(
        store.insert_session(&other).await,
        Err(StoreError::Query(_))
    ));
    assert_eq!(store.get_session("dup").await.unwrap(), Some(s));
    store.close().await;
}

async fn touch_moves_last_seen_forward(db: &TestDb) {
    let store = db.open().await;
    let s = session("t", "u1", None, None);
    store.insert_session(&s).await.unwrap();
    store.touch_session("t", 5_000).await.unwrap();
    assert_eq!(
        store.get_session("t").await.unwrap().unwrap().last_seen_at,
        5_000
    );
    // An older timestamp (slow replica) never moves it back.
    store.touch_session("t", 2_000).await.unwrap();
    let after = store.get_session("t").await.unwrap().unwrap();
    assert_eq!(after.last_seen_at, 5_000);
    assert_eq!(
        after,
        SessionRecord {
            last_seen_at: 5_000,
            ..s
        }
    );
    // Missing is a no-op, not an error.
    store.touch_session("missing", 5_000).await.unwrap();
    assert_eq!(store.count_sessions().await.unwrap(), 1);
    store.close().await;
}

async fn revoke_by_each_selector(db: &TestDb) {
    let store = db.open().await;
    let all = ["s1", "s2", "s3", "s4", "s5", "s6"];
    for s in [
        session("s1", "alice", Some("acme"), Some("okta")),
        session("s2", "alice", Some("acme"), Some("entra")),
        session("s3", "bob", Some("acme"), Some("okta")),
        session("s4", "carol", Some("globex"), Some("okta")),
        session("s5", "dave", Some("globex"), Some("onelogin")),
        session("s6", "erin", None, None),
    ] {
        store.insert_session(&s).await.unwrap();
    }

    let n = store
        .revoke_sessions(&SessionSelector::Id("s6".into()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(ids(&store, &all).await, ["s1", "s2", "s3", "s4", "s5"]);

    let n = store
        .revoke_sessions(&SessionSelector::User("alice".into()))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(ids(&store, &all).await, ["s3", "s4", "s5"]);

    let n = store
        .revoke_sessions(&SessionSelector::Connection("okta".into()))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(ids(&store, &all).await, ["s5"]);

    let n = store
        .revoke_sessions(&SessionSelector::Tenant("acme".into()))
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = store
        .revoke_sessions(&SessionSelector::Tenant("globex".into()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(store.count_sessions().await.unwrap(), 0);

    for id in all {
        store
            .insert_session(&session(id, id, None, None))
            .await
            .unwrap();
    }
    let n = store.revoke_sessions(&SessionSelector::All).await.unwrap();
    assert_eq!(n, 6);
    assert_eq!(store.count_sessions().await.unwrap(), 0);
    store.close().await;
}

async fn revoke_by_idp_binding(db: &TestDb) {
    let store = db.open().await;
    let all = ["a1", "a2", "a3", "b1", "c1"];
    // alice has two sessions at okta (a1, a2) and one at entra (a3), whose
    // IdP subject is the same string: selection must stay per connection.
    for s in [
        session("a1", "alice", Some("acme"), Some("okta")),
        session("a2", "alice", Some("acme"), Some("okta")),
        session("a3", "alice", Some("acme"), Some("entra")),
        session("b1", "bob", Some("acme"), Some("okta")),
        SessionRecord {
            idp: None,
            ..session("c1", "alice", Some("acme"), Some("okta"))
        },
    ] {
        store.insert_session(&s).await.unwrap();
    }
    // The binding round-trips.
    let got = store.get_session("a1").await.unwrap().unwrap();
    assert_eq!(got, session("a1", "alice", Some("acme"), Some("okta")));
    assert_eq!(store.get_session("c1").await.unwrap().unwrap().idp, None);

    // Both given: only that IdP session of that subject.
    let n = store
        .revoke_sessions(&SessionSelector::Idp {
            connection: "okta".into(),
            subject: Some("sub-alice".into()),
            session: Some("sid-a2".into()),
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(ids(&store, &all).await, ["a1", "a3", "b1", "c1"]);
    // A subject known at another connection is not this connection's.
    let n = store
        .revoke_sessions(&SessionSelector::Idp {
            connection: "entra".into(),
            subject: Some("sub-bob".into()),
            session: None,
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Session id alone (OIDC back-channel logout with only `sid`).
    let n = store
        .revoke_sessions(&SessionSelector::Idp {
            connection: "okta".into(),
            subject: None,
            session: Some("sid-b1".into()),
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Subject alone: every IdP session of alice at okta, none elsewhere,
    // and not the session minted without an IdP binding.
    let n = store
        .revoke_sessions(&SessionSelector::Idp {
            connection: "okta".into(),
            subject: Some("sub-alice".into()),
            session: None,
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(ids(&store, &all).await, ["a3", "c1"]);
    // Naming nobody would mean everybody: refused, nothing deleted.
    let err = store
        .revoke_sessions(&SessionSelector::Idp {
            connection: "entra".into(),
            subject: None,
            session: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert_eq!(ids(&store, &all).await, ["a3", "c1"]);
    store.close().await;
}

async fn revoke_publishes_local_event(db: &TestDb) {
    let store = db.open().await;
    let mut rx = store.subscribe();
    store
        .insert_session(&session("e1", "alice", None, None))
        .await
        .unwrap();
    let selector = SessionSelector::User("alice".into());
    assert_eq!(store.revoke_sessions(&selector).await.unwrap(), 1);
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(selector)).await;

    // Published even when nothing matched: a cache may still hold a copy.
    let selector = SessionSelector::Id("never-existed".into());
    assert_eq!(store.revoke_sessions(&selector).await.unwrap(), 0);
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(selector)).await;

    // A clone shares the channel.
    let clone = store.clone();
    clone.revoke_sessions(&SessionSelector::All).await.unwrap();
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(SessionSelector::All)).await;
    store.close().await;
}

async fn revoke_reaches_other_store(db: &TestDb) {
    // PostgreSQL: LISTEN/NOTIFY. SQLite: the polled `store_events` log, so a
    // CLI revocation reaches a running server on the same file.
    let publisher = db.open().await;
    let replica = db.open().await;
    let mut rx = replica.subscribe();
    for selector in [
        SessionSelector::Id("x".into()),
        SessionSelector::User("it's \"quoted\" 租户".into()),
        SessionSelector::Tenant("acme".into()),
        SessionSelector::Connection("okta".into()),
        SessionSelector::Idp {
            connection: "okta".into(),
            subject: Some("00u1".into()),
            session: None,
        },
        SessionSelector::Idp {
            connection: "okta".into(),
            subject: None,
            session: Some("sid-1".into()),
        },
        SessionSelector::All,
    ] {
        publisher.revoke_sessions(&selector).await.unwrap();
        expect_event(&mut rx, &StoreEvent::SessionsRevoked(selector)).await;
    }
    // Oversized selectors degrade to All rather than failing the revoke.
    let huge = SessionSelector::User("u".repeat(10_000));
    publisher.revoke_sessions(&huge).await.unwrap();
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(SessionSelector::All)).await;
    publisher.close().await;
    replica.close().await;
}

async fn delete_expired_absolute_and_idle(db: &TestDb) {
    let store = db.open().await;
    let mk = |id: &str, expires_at: i64, last_seen_at: i64| SessionRecord {
        expires_at,
        last_seen_at,
        ..session(id, id, None, None)
    };
    store.insert_session(&mk("expired", 100, 95)).await.unwrap();
    store
        .insert_session(&mk("expires-now", 100, 99))
        .await
        .unwrap();
    store.insert_session(&mk("idle", 1_000, 40)).await.unwrap();
    store
        .insert_session(&mk("idle-edge", 1_000, 50))
        .await
        .unwrap();
    store.insert_session(&mk("live", 1_000, 99)).await.unwrap();

    // now = 100, idle cutoff = 50: both bounds inclusive.
    let n = store.delete_expired_sessions(100, 50).await.unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        ids(
            &store,
            &["expired", "expires-now", "idle", "idle-edge", "live"]
        )
        .await,
        ["live"]
    );
    assert_eq!(store.delete_expired_sessions(100, 50).await.unwrap(), 0);
    store.close().await;
}

async fn key_first_writer_wins(db: &TestDb) {
    let store = db.open().await;
    let material: Vec<u8> = (0..=255u8).collect();
    let first = store
        .key_get_or_insert("assertion", "kid-1", &material)
        .await
        .unwrap();
    assert_eq!(first.kid, "kid-1");
    assert_eq!(first.material, material);
    assert!(first.created_at > 1_600_000_000);

    let second = store
        .key_get_or_insert("assertion", "kid-2", b"other")
        .await
        .unwrap();
    assert_eq!(second, first);

    let other = store
        .key_get_or_insert("cookie", "kid-3", &[])
        .await
        .unwrap();
    assert_eq!(other.kid, "kid-3");
    assert!(other.material.is_empty());

    // Survives a reopen.
    store.close().await;
    let reopened = db.open().await;
    assert_eq!(
        reopened
            .key_get_or_insert("assertion", "kid-4", b"x")
            .await
            .unwrap(),
        first
    );
    reopened.close().await;
}

async fn key_first_writer_wins_concurrently(db: &TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .key_get_or_insert("race", &format!("kid-{i}"), &[i; 32])
                .await
        }));
    }
    let mut results: Vec<StoredKey> = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    let winner = results[0].clone();
    assert!(results.iter().all(|k| *k == winner), "{results:?}");
    let i: u8 = winner.kid["kid-".len()..].parse().unwrap();
    assert_eq!(winner.material, vec![i; 32]);
    a.close().await;
    b.close().await;
}

async fn hostile_strings_round_trip(db: &TestDb) {
    let store = db.open().await;
    let hostile = [
        "'; DROP TABLE sessions; --",
        "\" OR 1=1 --",
        "Robert'); DELETE FROM keys;--",
        "$1 $2 ? ?1 :name @p",
        "ünïcødé 租户 🚀 \u{202e}rtl \u{feff}",
        "back\\slash \n newline \t tab",
        "%_ LIKE wildcards",
    ];
    for (i, text) in hostile.iter().enumerate() {
        let s = SessionRecord {
            id_hash: format!("{text}#{i}"),
            user_id: (*text).to_owned(),
            email: format!("{}@example.com", text.repeat(2)),
            name: Some((*text).to_owned()),
            tenant: Some((*text).to_owned()),
            connection: Some((*text).to_owned()),
            groups: vec![(*text).to_owned(), "]\",[".into(), String::new()],
            roles: vec![format!("{{\"{text}\": null}}")],
            created_at: 1,
            expires_at: 2,
            last_seen_at: 1,
            idp: Some(IdpBinding {
                subject: (*text).to_owned(),
                session: Some((*text).to_owned()),
                logout_hint: Some((*text).to_owned()),
            }),
        };
        store.insert_session(&s).await.unwrap();
        assert_eq!(store.get_session(&s.id_hash).await.unwrap(), Some(s));
    }
    let big = SessionRecord {
        email: format!("{}@example.com", "e".repeat(10 * 1024)),
        groups: (0..2_000).map(|i| format!("group-{i}")).collect(),
        ..session("big", "big", None, None)
    };
    store.insert_session(&big).await.unwrap();
    assert_eq!(store.get_session("big").await.unwrap(), Some(big));

    // Hostile selectors match literally and the table survives.
    let n = store
        .revoke_sessions(&SessionSelector::User(hostile[0].into()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = store
        .revoke_sessions(&SessionSelector::Tenant("%".into()))
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(store.count_sessions().await.unwrap(), hostile.len() as u64);

    let key = store
        .key_get_or_insert(hostile[0], hostile[4], hostile[1].as_bytes())
        .await
        .unwrap();
    assert_eq!(key.kid, hostile[4]);
    assert_eq!(key.material, hostile[1].as_bytes());
    store.close().await;
}

async fn nul_is_rejected_consistently(db: &TestDb) {
    let store = db.open().await;
    let mut s = session("nul", "u", None, None);
    s.email = "a\0b@example.com".into();
    assert!(matches!(
        store.insert_session(&s).await,
        Err(StoreError::InvalidInput(_))
    ));
    s.email = "ok@example.com".into();
    s.groups = vec!["g\0".into()];
    assert!(matches!(
        store.insert_session(&s).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.get_session("a\0").await,
        Err(StoreError::InvalidInput(_))
    ));
    // Binary key material may contain NUL bytes.
    let key = store
        .key_get_or_insert("k", "kid", &[0, 0, 1])
        .await
        .unwrap();
    assert_eq!(key.material, [0, 0, 1]);
    assert_eq!(store.count_sessions().await.unwrap(), 0);
    store.close().await;
}

async fn ping_and_close(db: &TestDb) {
    let store = db.open().await;
    store.ping().await.unwrap();
    let clone = store.clone();
    store.close().await;
    assert!(clone.ping().await.is_err());
}

// ---- domains ----

fn domain(name: &str, tenant: &str) -> DomainRecord {
    DomainRecord {
        domain: name.to_owned(),
        tenant: tenant.to_owned(),
        token: format!("token-of-{name}"),
        status: DomainStatus::Pending,
        created_at: 100,
        last_checked_at: None,
        verified_at: None,
        last_seen_at: None,
        detail: None,
    }
}

fn check(status: DomainStatus, at: i64, seen: Option<i64>, detail: &str) -> DomainCheck {
    DomainCheck {
        status,
        last_checked_at: at,
        verified_at: seen,
        last_seen_at: seen,
        detail: Some(detail.to_owned()),
    }
}

async fn domain_round_trip_list_and_delete(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.get_domain("acme.com").await.unwrap(), None);
    let full = DomainRecord {
        status: DomainStatus::Lapsed,
        last_checked_at: Some(5),
        verified_at: Some(3),
        last_seen_at: Some(4),
        detail: Some("NXDOMAIN".into()),
        ..domain("acme.com", "acme")
    };
    assert_eq!(store.insert_domain(&full).await.unwrap(), full);
    assert_eq!(
        store.get_domain("acme.com").await.unwrap(),
        Some(full.clone())
    );
    store
        .insert_domain(&domain("b.example", "globex"))
        .await
        .unwrap();
    store
        .insert_domain(&domain("a.example", "acme"))
        .await
        .unwrap();

    let all: Vec<String> = store
        .list_domains(None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.domain)
        .collect();
    assert_eq!(all, ["a.example", "acme.com", "b.example"]);
    let acme: Vec<String> = store
        .list_domains(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.domain)
        .collect();
    assert_eq!(acme, ["a.example", "acme.com"]);
    assert!(store.list_domains(Some("nobody")).await.unwrap().is_empty());

    assert!(store.delete_domain("acme.com").await.unwrap());
    assert!(!store.delete_domain("acme.com").await.unwrap());
    assert_eq!(store.get_domain("acme.com").await.unwrap(), None);
    store.close().await;
}

async fn domain_conflict_names_owner_and_same_tenant_is_idempotent(db: &TestDb) {
    let store = db.open().await;
    let first = store
        .insert_domain(&domain("acme.com", "acme"))
        .await
        .unwrap();
    let mut again = domain("acme.com", "acme");
    again.token = "another-token".into();
    again.created_at = 999;
    assert_eq!(
        store.insert_domain(&again).await.unwrap(),
        first,
        "existing row wins"
    );
    match store.insert_domain(&domain("acme.com", "globex")).await {
        Err(StoreError::Conflict { owner }) => assert_eq!(owner, "acme"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = store
        .insert_domain(&domain("acme.com", "globex"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`acme`"), "{err}");
    // Another store on the same database sees the same owner.
    let other = db.open().await;
    assert!(matches!(
        other.insert_domain(&domain("acme.com", "initech")).await,
        Err(StoreError::Conflict { .. })
    ));
    other.close().await;
    store.close().await;
}

async fn domain_concurrent_claims_have_one_winner(db: &TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .insert_domain(&domain("race.example", &format!("tenant-{i}")))
                .await
        }));
    }
    let mut winners = 0;
    let mut owners = std::collections::HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(row) => {
                winners += 1;
                owners.insert(row.tenant);
            }
            Err(StoreError::Conflict { owner }) => {
                owners.insert(owner);
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(owners.len(), 1, "everyone names the same owner: {owners:?}");
    a.close().await;
    b.close().await;
}

async fn domain_check_update_is_guarded_by_token(db: &TestDb) {
    let store = db.open().await;
    let d = store
        .insert_domain(&domain("acme.com", "acme"))
        .await
        .unwrap();
    let verified = check(DomainStatus::Verified, 200, Some(200), "record found");
    assert!(
        store
            .update_domain_check("acme.com", &d.token, &verified)
            .await
            .unwrap()
    );
    let row = store.get_domain("acme.com").await.unwrap().unwrap();
    assert_eq!(row.status, DomainStatus::Verified);
    assert_eq!(row.last_checked_at, Some(200));
    assert_eq!(row.verified_at, Some(200));
    assert_eq!(row.last_seen_at, Some(200));
    assert_eq!(row.detail.as_deref(), Some("record found"));
    assert_eq!(row.created_at, d.created_at);

    // A stale check for an old token (domain removed and re-added) is ignored.
    let stale = check(DomainStatus::Lapsed, 300, None, "NXDOMAIN");
    assert!(
        !store
            .update_domain_check("acme.com", "old-token", &stale)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_domain_check("missing.example", &d.token, &stale)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_domain("acme.com").await.unwrap().unwrap().status,
        DomainStatus::Verified
    );
    store.close().await;
}

async fn domain_due_selection(db: &TestDb) {
    let store = db.open().await;
    // (name, status, last_checked, last_seen)
    let rows: [(&str, DomainStatus, Option<i64>, Option<i64>); 10] = [
        ("pending-new", DomainStatus::Pending, None, None),
        ("pending-old", DomainStatus::Pending, Some(900), None),
        ("pending-fresh", DomainStatus::Pending, Some(950), None),
        ("lapsed-old", DomainStatus::Lapsed, Some(800), Some(100)),
        ("lapsed-fresh", DomainStatus::Lapsed, Some(999), Some(100)),
        ("failed-old", DomainStatus::Failed, Some(1), None),
        ("verified-old", DomainStatus::Verified, Some(500), Some(500)),
        (
            "verified-fresh",
            DomainStatus::Verified,
            Some(900),
            Some(900),
        ),
        // Missing at its last check: watched at the pending pace.
        (
            "verified-missing",
            DomainStatus::Verified,
            Some(900),
            Some(700),
        ),
        (
            "verified-missing-fresh",
            DomainStatus::Verified,
            Some(990),
            Some(700),
        ),
    ];
    for (name, status, checked, seen) in rows {
        let mut d = domain(&format!("{name}.example"), "t");
        d.status = status;
        d.last_checked_at = checked;
        d.last_seen_at = seen;
        d.verified_at = seen;
        store.insert_domain(&d).await.unwrap();
    }
    let cutoffs = DueCutoffs {
        recheck_before: 900,
        reverify_before: 600,
    };
    let due: Vec<String> = store
        .list_due_domains(cutoffs, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.domain.trim_end_matches(".example").to_owned())
        .collect();
    // Least recently checked first, never-checked before all.
    assert_eq!(
        due,
        [
            "pending-new",
            "verified-old",
            "lapsed-old",
            "pending-old",
            "verified-missing"
        ]
    );
    assert_eq!(store.list_due_domains(cutoffs, 2).await.unwrap().len(), 2);
    store.close().await;
}

async fn domain_hostile_strings_and_nul(db: &TestDb) {
    let store = db.open().await;
    let hostile = "'; DROP TABLE domains; --";
    let mut d = domain(hostile, hostile);
    d.detail = Some("ünïcødé \u{202e} $1 ?".into());
    assert_eq!(store.insert_domain(&d).await.unwrap(), d);
    assert_eq!(store.list_domains(Some("%")).await.unwrap(), []);
    assert_eq!(
        store.list_domains(Some(hostile)).await.unwrap(),
        [d.clone()]
    );
    assert!(matches!(
        store.insert_domain(&domain("a\0.example", "t")).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.get_domain("a\0").await,
        Err(StoreError::InvalidInput(_))
    ));
    let mut bad = check(DomainStatus::Pending, 1, None, "x");
    bad.detail = Some("nul\0".into());
    assert!(matches!(
        store.update_domain_check(hostile, &d.token, &bad).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(store.delete_domain(hostile).await.unwrap());
    store.close().await;
}

// ---- backend-specific and URL handling ----

#[tokio::test]
async fn sqlite_open_creates_file_and_parent_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("deeper").join("p.db");
    assert!(!path.exists());
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists());
    assert_eq!(store.backend(), Backend::Sqlite);
    store.close().await;

    // A bare path is SQLite too, including characters that are URL syntax.
    let odd = dir.path().join("with space?and#hash%.db");
    let store = Store::open(odd.to_str().unwrap()).await.unwrap();
    assert!(odd.exists());
    store
        .insert_session(&session("x", "u", None, None))
        .await
        .unwrap();
    store.close().await;
    let store = Store::open(odd.to_str().unwrap()).await.unwrap();
    assert_eq!(store.count_sessions().await.unwrap(), 1);
    store.close().await;
}

#[tokio::test]
async fn sqlite_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wal.db").display());
    let store = Store::open(&url).await.unwrap();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let _ = conn.close().await;
    store.close().await;
}

#[tokio::test]
async fn bad_urls_are_invalid_url_errors() {
    for url in [
        "",
        "   ",
        "mysql://root:hunter2@localhost/db",
        "sqlite://",
        "sqlite::memory:",
        "sqlite://x.db?mode=ro",
        "postgres://user:hunter2@[::1/db",
    ] {
        match Store::open(url).await {
            Err(StoreError::InvalidUrl(msg)) => {
                assert!(!msg.contains("hunter2"), "{url:?} leaked: {msg}");
            }
            Err(other) => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
            Ok(_) => panic!("{url:?}: opened"),
        }
    }
}

#[tokio::test]
async fn unreachable_postgres_fails_within_acquire_timeout() {
    let dead = crate::support::env::refusing();
    let url = format!("postgres://postgres:hunter2@{}/db", dead.addr);
    // The bound is a hang guard, not a speed claim (a loaded machine may
    // take a while): without an acquire timeout, open() would retry a
    // refusing server forever.
    let result = tokio::time::timeout(Duration::from_secs(60), Store::open(&url))
        .await
        .expect("open did not give up");
    let error = result.expect_err("opened an unreachable database");
    assert!(matches!(error, StoreError::Connect(_)), "{error:?}");
    assert!(!error.to_string().contains("hunter2"));
}

/// Counts this database's event-listener connections from the server side.
async fn listener_connections(url: &str) -> i64 {
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE application_name = 'portcullis-events' AND datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    let _ = conn.close().await;
    n
}

/// Polls (bounded) until the database has `expected` listener connections.
async fn wait_for_listeners(url: &str, expected: i64) {
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        let n = listener_connections(url).await;
        if n == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {expected} listener connections, still {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_recovers_after_connection_loss() {
    let db = TestDb::postgres().await;
    let publisher = db.open().await;
    let replica = db.open().await;
    let mut rx = replica.subscribe();
    wait_for_listeners(&db.url, 2).await;

    // Kill every listener connection behind the stores' backs.
    let mut admin = sqlx::postgres::PgConnection::connect(&db.url)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'portcullis-events' AND datname = current_database()",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;

    // Events sent during the gap are lost, so the replica flushes everything
    // once it is listening again ...
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(SessionSelector::All)).await;
    // ... and later events flow again.
    let selector = SessionSelector::User("after-reconnect".into());
    publisher.revoke_sessions(&selector).await.unwrap();
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(selector)).await;
    publisher.close().await;
    replica.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_stops_when_last_store_is_dropped() {
    let db = TestDb::postgres().await;
    let store = db.open().await;
    let clone = store.clone();
    wait_for_listeners(&db.url, 1).await;
    let mut rx = clone.subscribe();
    drop(store);
    // A clone keeps it alive: it still hears a notification sent after
    // the drop (a positive sign, instead of waiting for nothing to happen)
    // ...
    let mut admin = sqlx::postgres::PgConnection::connect(&db.url)
        .await
        .unwrap();
    sqlx::query(
        r#"NOTIFY portcullis_events, '{"type":"sessions_revoked","selector":{"kind":"user","value":"after-drop"}}'"#,
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    expect_event(
        &mut rx,
        &StoreEvent::SessionsRevoked(SessionSelector::User("after-drop".into())),
    )
    .await;
    assert_eq!(listener_connections(&db.url).await, 1);
    clone.ping().await.unwrap();
    // ... the last drop ends the task and closes its connection.
    drop(clone);
    wait_for_listeners(&db.url, 0).await;

    // close() ends it too.
    let store = db.open().await;
    wait_for_listeners(&db.url, 1).await;
    store.close().await;
    wait_for_listeners(&db.url, 0).await;
}

async fn users_unique_per_tenant_case_insensitively(db: &TestDb) {
    use portcullis::store::UserRecord;
    let store = db.open().await;
    let user = |id: &str, tenant: &str, email: &str| UserRecord {
        id: id.into(),
        tenant: tenant.into(),
        email: email.into(),
        name: Some("Zoë 'quoted'".into()),
        role: Some("member".into()),
        source: "invite".into(),
        active: true,
        subject: None,
        created_at: 10,
        updated_at: 10,
        last_login_at: None,
    };
    store
        .insert_user(&user("u1", "acme", "Alice@Acme.com"))
        .await
        .unwrap();
    // same email, other case, same tenant: refused
    assert!(matches!(
        store
            .insert_user(&user("u2", "acme", "alice@ACME.com"))
            .await,
        Err(StoreError::Duplicate(_))
    ));
    // same email in another tenant: a different user
    store
        .insert_user(&user("u3", "globex", "alice@acme.com"))
        .await
        .unwrap();
    let found = store
        .user_by_email("acme", "ALICE@acme.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, user("u1", "acme", "Alice@Acme.com"));
    store.record_login("u1", "idp:sub-1", 20).await.unwrap();
    store.set_user_active("u1", false, 30).await.unwrap();
    let found = store
        .user_by_email("acme", "alice@acme.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.active, found.subject.as_deref(), found.last_login_at),
        (false, Some("idp:sub-1"), Some(20))
    );
    assert_eq!(store.list_users(Some("acme")).await.unwrap().len(), 1);
    assert_eq!(store.list_users(None).await.unwrap().len(), 2);
    assert!(
        store
            .delete_user("acme", "alice@acme.com")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .delete_user("acme", "alice@acme.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .user_by_email("acme", "nobody@acme.com")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

async fn one_time_values_are_single_use(db: &TestDb) {
    let store = db.open().await;
    let other = db.open().await;
    assert!(store.consume_once("test-signin", "n1", 100).await.unwrap());
    // a replay fails, on this store and on another replica
    assert!(!store.consume_once("test-signin", "n1", 100).await.unwrap());
    assert!(!other.consume_once("test-signin", "n1", 100).await.unwrap());
    // kinds are separate namespaces
    assert!(
        other
            .consume_once("saml-assertion", "n1", 100)
            .await
            .unwrap()
    );
    assert_eq!(store.delete_expired_one_time(100).await.unwrap(), 2);
    store.close().await;
    other.close().await;
}
