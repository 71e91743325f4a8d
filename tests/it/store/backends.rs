//! Store conformance suite: every scenario is written once as a generic async
//! fn and stamped out for SQLite (temp file) and PostgreSQL (throwaway
//! cluster, fresh database per test) by `conformance!`.

use std::time::{Duration, Instant};

use portcullis::store::{
    Backend, DirectoryChange, DomainCheck, DomainRecord, DomainStatus, DueCutoffs, IdpBinding,
    ScimKind, ScimLogin, ScimMember, ScimRow, ServiceAccountKeyRow, ServiceAccountRow,
    SessionRecord, SessionSelector, Store, StoreError, StoreEvent, StoredKey, UserRecord,
};
use sqlx::{Connection, Row};
use tokio::sync::broadcast;

use crate::support::env::{STORE_KEY, STORE_KEY_2};
use crate::support::postgres::PgCluster;

/// Opens `url` with these base64 store keys (first seals).
async fn open_keyed(url: &str, keys: &[&str]) -> Result<Store, StoreError> {
    let keys: Vec<[u8; 32]> = keys
        .iter()
        .map(|k| portcullis::config::decode_store_key(k).unwrap())
        .collect();
    Store::open_sealed(url, &keys).await
}

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
        let dir = crate::support::env::private_tempdir().expect("tempdir");
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

    /// Opens another store on the same database (a "replica"), sealing
    /// secrets under the test environments' store key.
    async fn open(&self) -> Store {
        let store = self.open_keyed(&[STORE_KEY]).await.expect("open store");
        assert_eq!(store.backend(), self.backend);
        store
    }

    /// Opens with these `[store] encryption_key` values (first seals).
    async fn open_keyed(&self, keys: &[&str]) -> Result<Store, StoreError> {
        open_keyed(&self.url, keys).await
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
    directory_groups_follow_nesting_and_stop_on_cycles,
    one_time_values_are_single_use,
    secrets_are_sealed_and_bound_to_their_row,
    legacy_plaintext_secrets_are_sealed_at_open,
    rotation_reseals_and_a_wrong_key_stops_startup,
    service_accounts_rotate_revoke_and_announce,
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
        claims: [
            ("department".to_owned(), vec!["R&D".to_owned()]),
            ("emp\"id".to_owned(), vec!["1".to_owned(), "2".to_owned()]),
        ]
        .into(),
        acr: Some("urn:acme:mfa".into()),
        amr: vec!["pwd".into(), "otp".into()],
        auth_time: Some(999),
    }
}

/// Which of `candidates` still exist, to assert exactly which rows a revoke took.
async fn ids(store: &Store, candidates: &[&str]) -> Vec<String> {
    let mut present = Vec::new();
    for id in candidates {
        if store.sessions().get(id).await.expect("get").is_some() {
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
    assert_eq!(store.sessions().count().await.unwrap(), 0);
    assert_eq!(
        db.migration_versions().await,
        vec![1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13]
    );
    store.close().await;
}

async fn reopen_is_idempotent(db: &TestDb) {
    let first = db.open().await;
    first
        .sessions()
        .insert(&session("a", "u1", None, None))
        .await
        .unwrap();
    first.close().await;

    let second = db.open().await;
    let third = db.open().await;
    assert_eq!(
        db.migration_versions().await,
        vec![1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13]
    );
    assert_eq!(second.sessions().count().await.unwrap(), 1);
    assert!(third.sessions().get("a").await.unwrap().is_some());
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
        ..SessionRecord::default()
    };
    store.sessions().insert(&full).await.unwrap();
    store.sessions().insert(&bare).await.unwrap();
    assert_eq!(store.sessions().get("full").await.unwrap(), Some(full));
    assert_eq!(store.sessions().get("bare").await.unwrap(), Some(bare));
    assert_eq!(store.sessions().count().await.unwrap(), 2);
    assert_eq!(store.sessions().keys().await.unwrap(), ["bare", "full"]);
    store.close().await;
}

async fn get_missing_is_none(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.sessions().get("nope").await.unwrap(), None);
    store.close().await;
}

async fn duplicate_insert_fails(db: &TestDb) {
    let store = db.open().await;
    let s = session("dup", "u1", None, None);
    store.sessions().insert(&s).await.unwrap();
    let mut other = s.clone();
    other.user_id = "intruder".into();
    assert!(matches!(
        store.sessions().insert(&other).await,
        Err(StoreError::Query(_))
    ));
    assert_eq!(store.sessions().get("dup").await.unwrap(), Some(s));
    store.close().await;
}

async fn touch_moves_last_seen_forward(db: &TestDb) {
    let store = db.open().await;
    let s = session("t", "u1", None, None);
    store.sessions().insert(&s).await.unwrap();
    store.sessions().touch("t", 5_000).await.unwrap();
    assert_eq!(
        store
            .sessions()
            .get("t")
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        5_000
    );
    // An older timestamp (slow replica) never moves it back.
    store.sessions().touch("t", 2_000).await.unwrap();
    let after = store.sessions().get("t").await.unwrap().unwrap();
    assert_eq!(after.last_seen_at, 5_000);
    assert_eq!(
        after,
        SessionRecord {
            last_seen_at: 5_000,
            ..s
        }
    );
    // Missing is a no-op, not an error.
    store.sessions().touch("missing", 5_000).await.unwrap();
    assert_eq!(store.sessions().count().await.unwrap(), 1);
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
        store.sessions().insert(&s).await.unwrap();
    }

    let n = store
        .sessions()
        .revoke(&SessionSelector::Id("s6".into()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(ids(&store, &all).await, ["s1", "s2", "s3", "s4", "s5"]);

    let n = store
        .sessions()
        .revoke(&SessionSelector::User("alice".into()))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(ids(&store, &all).await, ["s3", "s4", "s5"]);

    let n = store
        .sessions()
        .revoke(&SessionSelector::Connection("okta".into()))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(ids(&store, &all).await, ["s5"]);

    let n = store
        .sessions()
        .revoke(&SessionSelector::Tenant("acme".into()))
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = store
        .sessions()
        .revoke(&SessionSelector::Tenant("globex".into()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(store.sessions().count().await.unwrap(), 0);

    for id in all {
        store
            .sessions()
            .insert(&session(id, id, None, None))
            .await
            .unwrap();
    }
    let n = store
        .sessions()
        .revoke(&SessionSelector::All)
        .await
        .unwrap();
    assert_eq!(n, 6);
    assert_eq!(store.sessions().count().await.unwrap(), 0);
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
        store.sessions().insert(&s).await.unwrap();
    }
    // The binding round-trips.
    let got = store.sessions().get("a1").await.unwrap().unwrap();
    assert_eq!(got, session("a1", "alice", Some("acme"), Some("okta")));
    assert_eq!(store.sessions().get("c1").await.unwrap().unwrap().idp, None);

    // Both given: only that IdP session of that subject.
    let n = store
        .sessions()
        .revoke(&SessionSelector::Idp {
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
        .sessions()
        .revoke(&SessionSelector::Idp {
            connection: "entra".into(),
            subject: Some("sub-bob".into()),
            session: None,
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Session id alone (OIDC back-channel logout with only `sid`).
    let n = store
        .sessions()
        .revoke(&SessionSelector::Idp {
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
        .sessions()
        .revoke(&SessionSelector::Idp {
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
        .sessions()
        .revoke(&SessionSelector::Idp {
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
        .sessions()
        .insert(&session("e1", "alice", None, None))
        .await
        .unwrap();
    let selector = SessionSelector::User("alice".into());
    assert_eq!(store.sessions().revoke(&selector).await.unwrap(), 1);
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(selector)).await;

    // Published even when nothing matched: a cache may still hold a copy.
    let selector = SessionSelector::Id("never-existed".into());
    assert_eq!(store.sessions().revoke(&selector).await.unwrap(), 0);
    expect_event(&mut rx, &StoreEvent::SessionsRevoked(selector)).await;

    // A clone shares the channel.
    let clone = store.clone();
    clone
        .sessions()
        .revoke(&SessionSelector::All)
        .await
        .unwrap();
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
        publisher.sessions().revoke(&selector).await.unwrap();
        expect_event(&mut rx, &StoreEvent::SessionsRevoked(selector)).await;
    }
    // Oversized selectors degrade to All rather than failing the revoke.
    let huge = SessionSelector::User("u".repeat(10_000));
    publisher.sessions().revoke(&huge).await.unwrap();
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
    store
        .sessions()
        .insert(&mk("expired", 100, 95))
        .await
        .unwrap();
    store
        .sessions()
        .insert(&mk("expires-now", 100, 99))
        .await
        .unwrap();
    store
        .sessions()
        .insert(&mk("idle", 1_000, 40))
        .await
        .unwrap();
    store
        .sessions()
        .insert(&mk("idle-edge", 1_000, 50))
        .await
        .unwrap();
    store
        .sessions()
        .insert(&mk("live", 1_000, 99))
        .await
        .unwrap();

    // now = 100, idle cutoff = 50: both bounds inclusive.
    let n = store.sessions().delete_expired(100, 50).await.unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        ids(
            &store,
            &["expired", "expires-now", "idle", "idle-edge", "live"]
        )
        .await,
        ["live"]
    );
    assert_eq!(store.sessions().delete_expired(100, 50).await.unwrap(), 0);
    store.close().await;
}

async fn key_first_writer_wins(db: &TestDb) {
    let store = db.open().await;
    let material: Vec<u8> = (0..=255u8).collect();
    let first = store
        .keys()
        .get_or_insert("assertion", "kid-1", &material)
        .await
        .unwrap();
    assert_eq!(first.kid, "kid-1");
    assert_eq!(first.material, material);
    assert!(first.created_at > 1_600_000_000);

    let second = store
        .keys()
        .get_or_insert("assertion", "kid-2", b"other")
        .await
        .unwrap();
    assert_eq!(second, first);

    let other = store
        .keys()
        .get_or_insert("cookie", "kid-3", &[])
        .await
        .unwrap();
    assert_eq!(other.kid, "kid-3");
    assert!(other.material.is_empty());

    // Survives a reopen.
    store.close().await;
    let reopened = db.open().await;
    assert_eq!(
        reopened
            .keys()
            .get_or_insert("assertion", "kid-4", b"x")
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
                .keys()
                .get_or_insert("race", &format!("kid-{i}"), &[i; 32])
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
            ..SessionRecord::default()
        };
        store.sessions().insert(&s).await.unwrap();
        assert_eq!(store.sessions().get(&s.id_hash).await.unwrap(), Some(s));
    }
    let big = SessionRecord {
        email: format!("{}@example.com", "e".repeat(10 * 1024)),
        groups: (0..2_000).map(|i| format!("group-{i}")).collect(),
        ..session("big", "big", None, None)
    };
    store.sessions().insert(&big).await.unwrap();
    assert_eq!(store.sessions().get("big").await.unwrap(), Some(big));

    // Hostile selectors match literally and the table survives.
    let n = store
        .sessions()
        .revoke(&SessionSelector::User(hostile[0].into()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = store
        .sessions()
        .revoke(&SessionSelector::Tenant("%".into()))
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        store.sessions().count().await.unwrap(),
        hostile.len() as u64
    );

    let key = store
        .keys()
        .get_or_insert(hostile[0], hostile[4], hostile[1].as_bytes())
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
        store.sessions().insert(&s).await,
        Err(StoreError::InvalidInput(_))
    ));
    s.email = "ok@example.com".into();
    s.groups = vec!["g\0".into()];
    assert!(matches!(
        store.sessions().insert(&s).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.sessions().get("a\0").await,
        Err(StoreError::InvalidInput(_))
    ));
    // Binary key material may contain NUL bytes.
    let key = store
        .keys()
        .get_or_insert("k", "kid", &[0, 0, 1])
        .await
        .unwrap();
    assert_eq!(key.material, [0, 0, 1]);
    assert_eq!(store.sessions().count().await.unwrap(), 0);
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
    assert_eq!(store.domains().get("acme.com").await.unwrap(), None);
    let full = DomainRecord {
        status: DomainStatus::Lapsed,
        last_checked_at: Some(5),
        verified_at: Some(3),
        last_seen_at: Some(4),
        detail: Some("NXDOMAIN".into()),
        ..domain("acme.com", "acme")
    };
    assert_eq!(store.domains().insert(&full).await.unwrap(), full);
    assert_eq!(
        store.domains().get("acme.com").await.unwrap(),
        Some(full.clone())
    );
    store
        .domains()
        .insert(&domain("b.example", "globex"))
        .await
        .unwrap();
    store
        .domains()
        .insert(&domain("a.example", "acme"))
        .await
        .unwrap();

    let all: Vec<String> = store
        .domains()
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.domain)
        .collect();
    assert_eq!(all, ["a.example", "acme.com", "b.example"]);
    let acme: Vec<String> = store
        .domains()
        .list(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.domain)
        .collect();
    assert_eq!(acme, ["a.example", "acme.com"]);
    assert!(
        store
            .domains()
            .list(Some("nobody"))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(store.domains().delete("acme.com").await.unwrap());
    assert!(!store.domains().delete("acme.com").await.unwrap());
    assert_eq!(store.domains().get("acme.com").await.unwrap(), None);
    store.close().await;
}

async fn domain_conflict_names_owner_and_same_tenant_is_idempotent(db: &TestDb) {
    let store = db.open().await;
    let first = store
        .domains()
        .insert(&domain("acme.com", "acme"))
        .await
        .unwrap();
    let mut again = domain("acme.com", "acme");
    again.token = "another-token".into();
    again.created_at = 999;
    assert_eq!(
        store.domains().insert(&again).await.unwrap(),
        first,
        "existing row wins"
    );
    match store.domains().insert(&domain("acme.com", "globex")).await {
        Err(StoreError::Conflict { owner }) => assert_eq!(owner, "acme"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = store
        .domains()
        .insert(&domain("acme.com", "globex"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`acme`"), "{err}");
    // Another store on the same database sees the same owner.
    let other = db.open().await;
    assert!(matches!(
        other.domains().insert(&domain("acme.com", "initech")).await,
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
                .domains()
                .insert(&domain("race.example", &format!("tenant-{i}")))
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
        .domains()
        .insert(&domain("acme.com", "acme"))
        .await
        .unwrap();
    let verified = check(DomainStatus::Verified, 200, Some(200), "record found");
    assert!(
        store
            .domains()
            .update_check("acme.com", &d.token, &verified)
            .await
            .unwrap()
    );
    let row = store.domains().get("acme.com").await.unwrap().unwrap();
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
            .domains()
            .update_check("acme.com", "old-token", &stale)
            .await
            .unwrap()
    );
    assert!(
        !store
            .domains()
            .update_check("missing.example", &d.token, &stale)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .domains()
            .get("acme.com")
            .await
            .unwrap()
            .unwrap()
            .status,
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
        store.domains().insert(&d).await.unwrap();
    }
    let cutoffs = DueCutoffs {
        recheck_before: 900,
        reverify_before: 600,
    };
    let due: Vec<String> = store
        .domains()
        .list_due(cutoffs, 100)
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
    assert_eq!(store.domains().list_due(cutoffs, 2).await.unwrap().len(), 2);
    store.close().await;
}

async fn domain_hostile_strings_and_nul(db: &TestDb) {
    let store = db.open().await;
    let hostile = "'; DROP TABLE domains; --";
    let mut d = domain(hostile, hostile);
    d.detail = Some("ünïcødé \u{202e} $1 ?".into());
    assert_eq!(store.domains().insert(&d).await.unwrap(), d);
    assert_eq!(store.domains().list(Some("%")).await.unwrap(), []);
    assert_eq!(
        store.domains().list(Some(hostile)).await.unwrap(),
        [d.clone()]
    );
    assert!(matches!(
        store.domains().insert(&domain("a\0.example", "t")).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.domains().get("a\0").await,
        Err(StoreError::InvalidInput(_))
    ));
    let mut bad = check(DomainStatus::Pending, 1, None, "x");
    bad.detail = Some("nul\0".into());
    assert!(matches!(
        store.domains().update_check(hostile, &d.token, &bad).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(store.domains().delete(hostile).await.unwrap());
    store.close().await;
}

// ---- backend-specific and URL handling ----

#[tokio::test]
async fn sqlite_open_creates_file_and_parent_dirs() {
    let dir = crate::support::env::private_tempdir().unwrap();
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
    let store = open_keyed(odd.to_str().unwrap(), &[STORE_KEY])
        .await
        .unwrap();
    assert!(odd.exists());
    store
        .sessions()
        .insert(&session("x", "u", None, None))
        .await
        .unwrap();
    store.close().await;
    let store = open_keyed(odd.to_str().unwrap(), &[STORE_KEY])
        .await
        .unwrap();
    assert_eq!(store.sessions().count().await.unwrap(), 1);
    store.close().await;
}

/// The `PRAGMA` statement's value, read on a connection of its own to a store just opened at a
/// fresh SQLite file (per-file settings persist; process-wide ones are
/// the process').
async fn sqlite_pragma<T>(pragma: &'static str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    let dir = crate::support::env::private_tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pragma.db").display());
    let store = Store::open(&url).await.unwrap();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let value: T = sqlx::query(pragma)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    let _ = conn.close().await;
    store.close().await;
    value
}

#[tokio::test]
async fn sqlite_uses_wal() {
    let mode: String = sqlite_pragma("PRAGMA journal_mode").await;
    assert_eq!(mode.to_lowercase(), "wal");
}

/// SQLite's memory is one budget for the whole pool (see
/// `store::connect::SQLITE_SOFT_HEAP_LIMIT`), not a cache per connection
/// that random lookups fill eight times over.
#[tokio::test]
async fn sqlite_memory_is_one_budget_for_the_pool() {
    let limit: i64 = sqlite_pragma("PRAGMA soft_heap_limit").await;
    assert_eq!(limit, 16 * 1024 * 1024);
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
    publisher.sessions().revoke(&selector).await.unwrap();
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

/// A SCIM resource row as the SCIM layer would write it.
fn scim_row(id: &str, name: &str, external_id: Option<&str>) -> ScimRow {
    ScimRow {
        id: id.into(),
        tenant: "acme".into(),
        name: name.into(),
        external_id: external_id.map(str::to_owned),
        doc: "{}".into(),
        version: 1,
        seq: 1,
        created_at: 1,
        updated_at: 1,
    }
}

/// Nested groups are flattened for sessions, and a membership cycle
/// (written here behind the SCIM layer's back, which refuses them) ends
/// every walk instead of looping. The commit announces whom the change
/// touched to another store on the same database.
async fn directory_groups_follow_nesting_and_stop_on_cycles(db: &TestDb) {
    let store = db.open().await;
    let other = db.open().await;
    let mut events = other.subscribe();
    let mut tx = store.begin_write("acme").await.unwrap();
    let login = ScimLogin {
        email: "Alice@acme.com".into(),
        name: Some("Alice".into()),
        active: true,
        role: Some("member".into()),
    };
    assert_eq!(
        tx.logins().link("u-alice", &login, 1).await.unwrap(),
        "u-alice"
    );
    tx.scim()
        .insert(ScimKind::User, &scim_row("u-alice", "alice", None))
        .await
        .unwrap();
    for (id, name, ext) in [
        ("g-a", "A", Some("ext-a")),
        ("g-b", "b", None),
        ("g-c", "C", None),
        ("g-x", "unrelated", None),
    ] {
        tx.scim()
            .insert(ScimKind::Group, &scim_row(id, name, ext))
            .await
            .unwrap();
    }
    let member = |id: &str, kind: &str| ScimMember {
        id: id.into(),
        kind: kind.into(),
    };
    // A ⊃ B ⊃ alice, C ⊃ A, and B ⊃ C closes the cycle A → B → C → A.
    for (group, m) in [
        ("g-b", member("u-alice", "User")),
        ("g-a", member("g-b", "Group")),
        ("g-c", member("g-a", "Group")),
        ("g-b", member("g-c", "Group")),
    ] {
        tx.scim().add_members(group, &[m]).await.unwrap();
    }
    assert!(tx.directory().reaches("g-a", "g-c").await.unwrap());
    assert!(tx.directory().reaches("g-c", "g-c").await.unwrap());
    assert!(!tx.directory().reaches("g-a", "g-x").await.unwrap());
    assert!(!tx.directory().reaches("g-x", "g-a").await.unwrap());
    assert_eq!(tx.directory_change(), None);
    tx.directory().touched_group("g-c").await.unwrap();
    tx.directory().touched_group("g-x").await.unwrap();
    let change = DirectoryChange {
        tenant: "acme".into(),
        users: Some(vec!["u-alice".into()]),
    };
    assert_eq!(tx.directory_change(), Some(change.clone()));
    tx.commit().await.unwrap();
    expect_event(
        &mut events,
        &StoreEvent::DirectoryChanged {
            tenant: change.tenant,
            users: change.users,
        },
    )
    .await;

    let alice = store
        .directory()
        .user("acme", "u-alice")
        .await
        .unwrap()
        .expect("SCIM-managed");
    assert_eq!(
        (
            alice.email.as_str(),
            alice.name.as_deref(),
            alice.role.as_deref()
        ),
        ("Alice@acme.com", Some("Alice"), Some("member"))
    );
    assert!(alice.active);
    let names: Vec<(&str, &str, Option<&str>)> = alice
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.name.as_str(), g.external_id.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("g-a", "A", Some("ext-a")),
            ("g-b", "b", None),
            ("g-c", "C", None)
        ]
    );
    // Another tenant's view, a user SCIM does not manage: nobody.
    assert_eq!(
        store.directory().user("globex", "u-alice").await.unwrap(),
        None
    );
    store
        .users()
        .insert(&UserRecord {
            id: "u-bob".into(),
            tenant: "acme".into(),
            email: "bob@acme.com".into(),
            name: None,
            role: None,
            source: "jit".into(),
            active: true,
            subject: None,
            created_at: 1,
            updated_at: 1,
            last_login_at: None,
        })
        .await
        .unwrap();
    assert_eq!(store.directory().user("acme", "u-bob").await.unwrap(), None);
    assert_eq!(store.directory().user("acme", "u\0").await.unwrap(), None);

    // Past the named-user limit, a change is the whole tenant's.
    let mut tx = store.begin_write("acme").await.unwrap();
    tx.directory()
        .touched_users((0..=150).map(|i| format!("u-{i}")));
    assert_eq!(
        tx.directory_change(),
        Some(DirectoryChange {
            tenant: "acme".into(),
            users: None
        })
    );
    tx.commit().await.unwrap();
    store.close().await;
    other.close().await;
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
        .users()
        .insert(&user("u1", "acme", "Alice@Acme.com"))
        .await
        .unwrap();
    // same email, other case, same tenant: refused
    assert!(matches!(
        store
            .users()
            .insert(&user("u2", "acme", "alice@ACME.com"))
            .await,
        Err(StoreError::Duplicate(_))
    ));
    // same email in another tenant: a different user
    store
        .users()
        .insert(&user("u3", "globex", "alice@acme.com"))
        .await
        .unwrap();
    let found = store
        .users()
        .by_email("acme", "ALICE@acme.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, user("u1", "acme", "Alice@Acme.com"));
    store
        .users()
        .record_login("u1", "idp:sub-1", 20)
        .await
        .unwrap();
    store.users().set_active("u1", false, 30).await.unwrap();
    let found = store
        .users()
        .by_email("acme", "alice@acme.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.active, found.subject.as_deref(), found.last_login_at),
        (false, Some("idp:sub-1"), Some(20))
    );
    assert_eq!(store.users().list(Some("acme")).await.unwrap().len(), 1);
    assert_eq!(store.users().list(None).await.unwrap().len(), 2);
    assert!(
        store
            .users()
            .delete("acme", "alice@acme.com")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .users()
            .delete("acme", "alice@acme.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .users()
            .by_email("acme", "nobody@acme.com")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

async fn one_time_values_are_single_use(db: &TestDb) {
    let store = db.open().await;
    let other = db.open().await;
    assert!(
        store
            .one_time()
            .consume("test-signin", "n1", 100)
            .await
            .unwrap()
    );
    // a replay fails, on this store and on another replica
    assert!(
        !store
            .one_time()
            .consume("test-signin", "n1", 100)
            .await
            .unwrap()
    );
    assert!(
        !other
            .one_time()
            .consume("test-signin", "n1", 100)
            .await
            .unwrap()
    );
    // kinds are separate namespaces
    assert!(
        other
            .one_time()
            .consume("saml-assertion", "n1", 100)
            .await
            .unwrap()
    );
    // seen without being used, on every replica, until it expires
    assert!(
        other
            .one_time()
            .seen("test-signin", "n1", 99)
            .await
            .unwrap()
    );
    assert!(
        !other
            .one_time()
            .seen("test-signin", "n1", 100)
            .await
            .unwrap()
    );
    assert!(!store.one_time().seen("test-signin", "n2", 0).await.unwrap());
    assert!(
        store
            .one_time()
            .consume("test-signin", "n2", 100)
            .await
            .unwrap()
    );
    assert_eq!(store.one_time().delete_expired(100).await.unwrap(), 3);
    store.close().await;
    other.close().await;
}

// ---- secrets at rest ----

/// A raw connection behind the store's back, to see what is really stored.
async fn raw(db: &TestDb) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&db.url)
        .await
        .expect("raw connection")
}

async fn raw_hint(db: &TestDb, id_hash: &str) -> String {
    let mut conn = raw(db).await;
    let v: String = sqlx::query("SELECT logout_hint FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    let _ = conn.close().await;
    v
}

async fn raw_material(db: &TestDb, purpose: &str) -> Vec<u8> {
    let mut conn = raw(db).await;
    let v: Vec<u8> = sqlx::query("SELECT material FROM keys WHERE purpose = $1")
        .bind(purpose)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    let _ = conn.close().await;
    v
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn store_key_id(key: &str) -> String {
    portcullis::store::key_id(&portcullis::config::decode_store_key(key).unwrap())
}

const SIGNING_SECRET: &[u8] =
    b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAsigning-key-bytes-XYZZY\n-----END PRIVATE KEY-----\n";

fn with_hint(id: &str, hint: &str) -> SessionRecord {
    let mut s = session(id, "u", Some("t"), Some("c"));
    s.idp.as_mut().unwrap().logout_hint = Some(hint.to_owned());
    s
}

/// The signing key and the ID token are stored sealed (no plaintext in the
/// column), open back to what was written, and a sealed value moved to
/// another row or column does not open. A store opened without keys can
/// neither write nor read them.
async fn secrets_are_sealed_and_bound_to_their_row(db: &TestDb) {
    let store = db.open().await;
    let token_a = "eyJhbGciOiJSUzI1NiJ9.ID-TOKEN-OF-A.sig-a";
    let token_b = "eyJhbGciOiJSUzI1NiJ9.ID-TOKEN-OF-B.sig-b";
    store
        .sessions()
        .insert(&with_hint("a", token_a))
        .await
        .unwrap();
    store
        .sessions()
        .insert(&with_hint("b", token_b))
        .await
        .unwrap();
    let key = store
        .keys()
        .get_or_insert("assertion-es256", "generated", SIGNING_SECRET)
        .await
        .unwrap();
    assert_eq!(key.material, SIGNING_SECRET);

    let prefix = format!("pcs1:{}:", store_key_id(STORE_KEY));
    let (hint_a, material) = (
        raw_hint(db, "a").await,
        raw_material(db, "assertion-es256").await,
    );
    assert!(hint_a.starts_with(&prefix), "{hint_a}");
    assert!(!hint_a.contains("ID-TOKEN-OF-A"), "{hint_a}");
    assert!(material.starts_with(prefix.as_bytes()));
    assert!(!contains(&material, b"signing-key-bytes"));
    let got = store.sessions().get("a").await.unwrap().unwrap();
    assert_eq!(got.idp.unwrap().logout_hint.as_deref(), Some(token_a));

    // A's sealed ID token copied into B's row: refused, not B's and not A's.
    let mut conn = raw(db).await;
    sqlx::query("UPDATE sessions SET logout_hint = $1 WHERE id_hash = 'b'")
        .bind(hint_a.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    match store.sessions().get("b").await {
        Err(StoreError::Sealing(msg)) => {
            assert!(
                msg.contains("sessions.logout_hint") && msg.contains("`b`"),
                "{msg}"
            );
            assert!(!msg.contains("ID-TOKEN"), "{msg}");
        }
        other => panic!("a moved ciphertext opened: {other:?}"),
    }
    // ...and into the keys table (another column): refused too.
    sqlx::query("UPDATE keys SET material = $1 WHERE purpose = 'assertion-es256'")
        .bind(hint_a.into_bytes())
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    assert!(matches!(
        store
            .keys()
            .get_or_insert("assertion-es256", "generated", b"x")
            .await,
        Err(StoreError::Sealing(_))
    ));
    store.close().await;

    // Without keys: no secret is written in the clear, none is read.
    sqlx::any::install_default_drivers();
    let keyless = Store::open(&db.url).await.unwrap();
    assert!(matches!(
        keyless.sessions().insert(&with_hint("c", "tok")).await,
        Err(StoreError::Sealing(_))
    ));
    assert_eq!(ids(&keyless, &["c"]).await, Vec::<String>::new());
    assert!(matches!(
        keyless.sessions().get("a").await,
        Err(StoreError::Sealing(_))
    ));
    // Sessions without a hint need no key.
    let mut plain = session("d", "u", None, None);
    plain.idp = None;
    keyless.sessions().insert(&plain).await.unwrap();
    keyless.close().await;
}

/// Rows written before sealing existed (plaintext ID token, plaintext PEM)
/// are sealed by the next open with a key, and read back unchanged.
async fn legacy_plaintext_secrets_are_sealed_at_open(db: &TestDb) {
    db.open().await.close().await; // schema only
    let legacy_token = "eyJhbGciOiJSUzI1NiJ9.LEGACY-ID-TOKEN.sig";
    let mut conn = raw(db).await;
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, email, name, tenant, connection, groups_json, \
         roles_json, created_at, expires_at, last_seen_at, idp_subject, idp_session, logout_hint) \
         VALUES ('old', 'u', 'u@example.com', NULL, 't', 'c', '[]', '[]', 1, 10000, 1, 'sub', \
         NULL, $1)",
    )
    .bind(legacy_token)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO keys (purpose, kid, material, created_at) VALUES ('assertion-es256', 'generated', $1, 1)",
    )
    .bind(SIGNING_SECRET.to_vec())
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;

    let store = db.open().await;
    let prefix = format!("pcs1:{}:", store_key_id(STORE_KEY));
    let hint = raw_hint(db, "old").await;
    assert!(
        hint.starts_with(&prefix) && !hint.contains("LEGACY"),
        "{hint}"
    );
    let material = raw_material(db, "assertion-es256").await;
    assert!(material.starts_with(prefix.as_bytes()));
    assert!(!contains(&material, b"signing-key-bytes"));
    let got = store.sessions().get("old").await.unwrap().unwrap();
    assert_eq!(got.idp.unwrap().logout_hint.as_deref(), Some(legacy_token));
    let key = store
        .keys()
        .get_or_insert("assertion-es256", "x", b"candidate")
        .await
        .unwrap();
    assert_eq!(key.material, SIGNING_SECRET);
    store.close().await;
}

/// Rotation: `[new, old]` opens rows sealed under old and re-seals them
/// under new at startup, after which `[new]` alone works; a store whose
/// secrets were sealed under a key that is not configured refuses to open,
/// naming the key ids.
async fn rotation_reseals_and_a_wrong_key_stops_startup(db: &TestDb) {
    let token = "eyJhbGciOiJSUzI1NiJ9.ROTATED-ID-TOKEN.sig";
    let store = db.open_keyed(&[STORE_KEY]).await.unwrap();
    store
        .sessions()
        .insert(&with_hint("r", token))
        .await
        .unwrap();
    store
        .keys()
        .get_or_insert("assertion-es256", "generated", SIGNING_SECRET)
        .await
        .unwrap();
    store.close().await;
    let (old_id, new_id) = (store_key_id(STORE_KEY), store_key_id(STORE_KEY_2));

    // The wrong key: a clear startup error, and nothing rewritten.
    match db.open_keyed(&[STORE_KEY_2]).await {
        Err(e @ StoreError::Sealing(_)) => {
            let msg = e.to_string();
            assert!(msg.contains(&old_id) && msg.contains(&new_id), "{msg}");
            assert!(msg.contains("encryption_key"), "{msg}");
        }
        Err(other) => panic!("expected a sealing error, got {other:?}"),
        Ok(_) => panic!("opened with the wrong key"),
    }
    assert!(
        raw_hint(db, "r")
            .await
            .starts_with(&format!("pcs1:{old_id}:"))
    );

    // Rotation: new first, old after it.
    let store = db.open_keyed(&[STORE_KEY_2, STORE_KEY]).await.unwrap();
    assert!(
        raw_hint(db, "r")
            .await
            .starts_with(&format!("pcs1:{new_id}:"))
    );
    assert!(
        raw_material(db, "assertion-es256")
            .await
            .starts_with(format!("pcs1:{new_id}:").as_bytes())
    );
    let got = store.sessions().get("r").await.unwrap().unwrap();
    assert_eq!(got.idp.unwrap().logout_hint.as_deref(), Some(token));
    store.close().await;

    // The old key can go now.
    let store = db.open_keyed(&[STORE_KEY_2]).await.unwrap();
    let got = store.sessions().get("r").await.unwrap().unwrap();
    assert_eq!(got.idp.unwrap().logout_hint.as_deref(), Some(token));
    let key = store
        .keys()
        .get_or_insert("assertion-es256", "x", b"candidate")
        .await
        .unwrap();
    assert_eq!(key.material, SIGNING_SECRET);
    store.close().await;
    // ...and the old key alone no longer opens the store.
    assert!(matches!(
        db.open_keyed(&[STORE_KEY]).await,
        Err(StoreError::Sealing(_))
    ));
}

/// Mode bits of a path.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A new store's directory is 0700 and its files 0600 (WAL and shared
/// memory included); a directory or file open to group or others is
/// refused, with the path and the `chmod` that fixes it.
#[tokio::test]
async fn sqlite_files_are_private_and_loose_permissions_are_refused() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.join("p.db");
    let url = format!("sqlite://{}", path.display());
    let store = open_keyed(&url, &[STORE_KEY]).await.unwrap();
    store
        .sessions()
        .insert(&with_hint("a", "tok"))
        .await
        .unwrap();
    assert_eq!(mode(&data), 0o700);
    for suffix in ["", "-wal", "-shm"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    store.close().await;

    let refused = |e: StoreError, what: &std::path::Path| {
        let msg = e.to_string();
        assert!(matches!(e, StoreError::Permissions { .. }), "{e:?}");
        assert!(
            msg.contains(&what.display().to_string())
                && msg.contains(&format!("chmod go-rwx {}", what.display())),
            "{msg}"
        );
    };
    chmod(&path, 0o644);
    refused(
        open_keyed(&url, &[STORE_KEY])
            .await
            .expect_err("0644 file opened"),
        &path,
    );
    chmod(&path, 0o600);
    chmod(&data, 0o755);
    refused(
        open_keyed(&url, &[STORE_KEY])
            .await
            .expect_err("0755 dir opened"),
        &data,
    );
    chmod(&data, 0o700);
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    std::fs::write(&wal, b"").unwrap();
    chmod(&wal, 0o640);
    refused(
        open_keyed(&url, &[STORE_KEY])
            .await
            .expect_err("0640 wal opened"),
        &wal,
    );
    std::fs::remove_file(&wal).unwrap();
    // Fixed: opens again, data intact.
    let store = open_keyed(&url, &[STORE_KEY]).await.unwrap();
    assert_eq!(store.sessions().count().await.unwrap(), 1);
    store.close().await;
}

/// The SQLite files, byte for byte, hold neither the ID token nor the
/// signing key; the session's id hash is there (the grep sees the data).
#[tokio::test]
async fn sqlite_file_bytes_hold_no_secret() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let token = "eyJhbGciOiJSUzI1NiJ9.FILE-GREP-ID-TOKEN.sig";
    store
        .sessions()
        .insert(&with_hint("hash-in-file", token))
        .await
        .unwrap();
    store
        .keys()
        .get_or_insert("assertion-es256", "generated", SIGNING_SECRET)
        .await
        .unwrap();
    // Read while open (data may be in the WAL) and after close (checkpointed).
    for phase in ["open", "closed"] {
        if phase == "closed" {
            store.close().await;
        }
        let bytes = sqlite_bytes(db.url.trim_start_matches("sqlite://"));
        assert!(
            contains(&bytes, b"hash-in-file"),
            "{phase}: the grep sees the rows"
        );
        assert!(
            !contains(&bytes, b"FILE-GREP-ID-TOKEN"),
            "{phase}: ID token in the file"
        );
        assert!(
            !contains(&bytes, b"signing-key-bytes"),
            "{phase}: signing key in the file"
        );
    }
}

/// The database file and its -wal/-shm companions, concatenated.
pub(crate) fn sqlite_bytes(path: &str) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
            all.extend(b);
        }
    }
    all
}

/// Service accounts: one active name per tenant, lookups by key id, a
/// rotation retires the other keys (deleting those already retired), a
/// revocation is once; rotation and revocation reach another store's
/// subscribers (the token caches), nothing commits on a rollback.
async fn service_accounts_rotate_revoke_and_announce(db: &TestDb) {
    let store = db.open().await;
    let other = db.open().await;
    let mut rx = other.subscribe();
    let account = |id: &str, name: &str| ServiceAccountRow {
        id: id.into(),
        tenant: "acme".into(),
        name: name.into(),
        role: Some("it's \"quoted\" 租户".into()),
        created_by: "cli:test".into(),
        created_at: 100,
        expires_at: Some(10_000),
        revoked_at: None,
        last_used_at: None,
    };
    let key = |key_id: &str, account: &str, at: i64| ServiceAccountKeyRow {
        key_id: key_id.into(),
        account_id: account.into(),
        secret_hash: format!("hash-{key_id}"),
        created_at: at,
        retires_at: None,
    };
    let mut tx = store.begin_write("acme").await.unwrap();
    tx.service_accounts()
        .create(&account("sa_1", "sync"), &key("k1", "sa_1", 100))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // the same active name again is a duplicate; in another tenant it is not
    let mut tx = store.begin_write("acme").await.unwrap();
    let dup = tx
        .service_accounts()
        .create(&account("sa_2", "sync"), &key("k2", "sa_2", 100))
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
    drop(tx);
    let (a, k) = store
        .service_accounts()
        .lookup("k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a, account("sa_1", "sync"));
    assert_eq!(k, key("k1", "sa_1", 100));
    assert!(
        store
            .service_accounts()
            .lookup("k2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.service_accounts().lookup("k\0").await.is_err());

    // rotate: k1 retires at 500, k3 works; a second rotation at 600
    // deletes k1 (retired by then) and retires k3 at 700
    let mut tx = store.begin_write("acme").await.unwrap();
    tx.service_accounts()
        .rotate(&key("k3", "sa_1", 200), 500, 200)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    expect_event(
        &mut rx,
        &StoreEvent::ServiceAccountChanged {
            account: "sa_1".into(),
        },
    )
    .await;
    let retires = |k: &str| {
        let store = store.clone();
        let k = k.to_owned();
        async move {
            store
                .service_accounts()
                .lookup(&k)
                .await
                .unwrap()
                .map(|(_, k)| k.retires_at)
        }
    };
    assert_eq!(retires("k1").await, Some(Some(500)));
    assert_eq!(retires("k3").await, Some(None));
    let mut tx = store.begin_write("acme").await.unwrap();
    tx.service_accounts()
        .rotate(&key("k4", "sa_1", 600), 700, 600)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(retires("k1").await, None, "a retired key is deleted");
    assert_eq!(retires("k3").await, Some(Some(700)));
    assert_eq!(retires("k4").await, Some(None));
    // a rotation that ends nothing earlier leaves an earlier retirement
    let mut tx = store.begin_write("acme").await.unwrap();
    tx.service_accounts()
        .rotate(&key("k5", "sa_1", 610), 900, 610)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(retires("k3").await, Some(Some(700)));
    assert_eq!(retires("k4").await, Some(Some(900)));

    // a rolled-back revocation changes nothing and announces nothing here
    let mut tx = store.begin_write("acme").await.unwrap();
    assert!(tx.service_accounts().revoke("sa_1", 800).await.unwrap());
    drop(tx);
    let mut tx = store.begin_write("acme").await.unwrap();
    let active = tx.service_accounts().active("acme", "sync").await.unwrap();
    assert_eq!(active.map(|a| a.id).as_deref(), Some("sa_1"));
    assert!(tx.service_accounts().revoke("sa_1", 800).await.unwrap());
    tx.commit().await.unwrap();
    expect_event(
        &mut rx,
        &StoreEvent::ServiceAccountChanged {
            account: "sa_1".into(),
        },
    )
    .await;
    let mut tx = store.begin_write("acme").await.unwrap();
    assert!(!tx.service_accounts().revoke("sa_1", 900).await.unwrap());
    assert!(
        tx.service_accounts()
            .active("acme", "sync")
            .await
            .unwrap()
            .is_none()
    );
    // the name is free again
    tx.service_accounts()
        .create(&account("sa_2", "sync"), &key("k2", "sa_2", 900))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    store.service_accounts().touch("sa_2", 1_000).await.unwrap();
    store.service_accounts().touch("sa_2", 1_030).await.unwrap();
    let list = store.service_accounts().list("acme").await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].0.revoked_at, Some(800));
    assert_eq!(
        list[0].1.len(),
        3,
        "k3, k4, k5 and nothing else: {:?}",
        list[0].1
    );
    assert_eq!(list[1].0.last_used_at, Some(1_000), "at most once a minute");
    assert!(
        store
            .service_accounts()
            .list("globex")
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
    other.close().await;
}
