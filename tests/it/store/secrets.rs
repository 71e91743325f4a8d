//! Secrets at rest: after a real OIDC
//! login through the running server, the store — the SQLite file's bytes,
//! or every row of every PostgreSQL table — holds neither the ID token
//! kept for logout, nor the assertion signing key, nor the raw session id
//! (only its hash). And the binary refuses to start on a store file others
//! can read, or with a key that doesn't open the store's secrets.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use portcullis::session::CookieCodec;
use sqlx::{Connection, Row};

use crate::support::env::*;
use crate::support::oidc_op::{CLIENT_ID, CLIENT_SECRET, TestOp};
use crate::support::oidc_rp::Rp;
use crate::support::postgres::PgCluster;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn oidc_extra() -> String {
    format!(
        "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\npost_logout_redirect_uri = \"http://127.0.0.1:1/bye\"\n"
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a login left that must never be readable in the store.
struct Secrets {
    /// The raw 32-byte session id, as bytes and in every text form a
    /// careless implementation might store.
    session_id: Vec<Vec<u8>>,
    /// Something the session row holds in the clear (must be present:
    /// proves the search sees the data).
    visible: String,
    /// The ID token and its signature part.
    id_token: Vec<Vec<u8>>,
    /// The signing key (PKCS#8 DER, as generated), in binary and text
    /// forms, and its bare private scalar.
    signing_key: Vec<Vec<u8>>,
}

/// Logs alice in through the provider and collects the secrets from the
/// server's own view (cookie codec, store API), not from the database.
async fn login_and_collect(rp: &Rp) -> Secrets {
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303);
    let session = session.expect("session cookie");
    let cfg = rp.env.shared.config();
    let opened = CookieCodec::new(&cfg.session)
        .unwrap()
        .open([session.as_bytes()].into_iter(), &mut None)
        .unwrap()
        .expect("our cookie opens");
    let token = &opened.token;
    // Through the session service, so the test doesn't assume how the
    // store keys sessions.
    let active = match rp
        .env
        .shared
        .sessions
        .resolve(&opened, portcullis::clock::now(), 3600)
        .await
        .unwrap()
    {
        portcullis::session::Lookup::Active(s) => s,
        other => panic!("the new session does not resolve: {other:?}"),
    };
    // The cached session knows the IdP's subject but not the ID token
    // (up to kilobytes a session): logout reads that from the store.
    let cached = active.idp.clone().expect("IdP binding");
    assert_eq!(cached.subject, "alice-sub");
    assert_eq!(cached.logout_hint, None, "the cache holds no ID token");
    let id_token = rp
        .env
        .shared
        .sessions
        .idp_binding(&active)
        .await
        .unwrap()
        .and_then(|i| i.logout_hint)
        .expect("ID token kept for logout");
    assert_eq!(id_token.split('.').count(), 3, "{id_token}");
    let signature = id_token.rsplit('.').next().unwrap().to_owned();
    let der = rp
        .env
        .shared
        .store
        .keys()
        .get_or_insert("assertion-es256", "unused", b"unused")
        .await
        .unwrap()
        .material;
    // ECPrivateKey inside PKCS#8: version 1, then the 32-byte scalar.
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("the generated key is PKCS#8 P-256");
    let signing_key = vec![
        der[at + 5..at + 37].to_vec(),
        hex::encode(&der).into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(&der)
            .into_bytes(),
        der,
    ];
    Secrets {
        session_id: vec![
            token.id.to_vec(),
            hex::encode(token.id).into_bytes(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(token.id)
                .into_bytes(),
            base64::engine::general_purpose::STANDARD
                .encode(token.id)
                .into_bytes(),
        ],
        visible: active.principal.email.clone(),
        id_token: vec![id_token.into_bytes(), signature.into_bytes()],
        signing_key,
    }
}

fn assert_absent(what: &str, dump: &[u8], s: &Secrets) {
    assert!(
        contains(dump, s.visible.as_bytes()),
        "{what}: the session's email is not in the dump; the search sees nothing"
    );
    for (name, list) in [
        ("raw session id", &s.session_id),
        ("ID token", &s.id_token),
        ("signing key", &s.signing_key),
    ] {
        for needle in list {
            assert!(
                !contains(dump, needle),
                "{what}: the {name} ({} bytes) is in the store",
                needle.len()
            );
        }
    }
}

/// The SQLite file and its -wal/-shm, byte for byte, while the server runs.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_login_the_sqlite_file_holds_no_token_key_or_session_id() {
    let op = TestOp::start().await;
    let rp = Rp::start(&op.issuer, "generic", &oidc_extra()).await;
    let secrets = login_and_collect(&rp).await;
    let url = rp.env.shared.config().store.url.clone();
    let path = url.trim_start_matches("sqlite://");
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
            bytes.extend(b);
        }
    }
    assert_absent("sqlite", &bytes, &secrets);
}

/// Every row of every table in the PostgreSQL database, as text.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_login_no_postgres_row_holds_the_token_key_or_session_id() {
    let pg = PgCluster::shared().await.fresh_database().await;
    let op = TestOp::start().await;
    let rp = Rp::start_with_store(&op.issuer, "generic", &oidc_extra(), Some(pg.clone())).await;
    let secrets = login_and_collect(&rp).await;
    let mut conn = sqlx::postgres::PgConnection::connect(&pg).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    assert!(tables.iter().any(|t| t == "sessions") && tables.iter().any(|t| t == "keys"));
    let mut dump = Vec::new();
    for t in &tables {
        // bytea renders as hex in JSON; decode `keys.material` separately.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM \"{t}\" t"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for r in rows {
            dump.extend(r.get::<String, _>(0).into_bytes());
            dump.push(b'\n');
        }
    }
    for r in sqlx::query("SELECT material FROM keys")
        .fetch_all(&mut conn)
        .await
        .unwrap()
    {
        dump.extend(r.get::<Vec<u8>, _>(0));
    }
    let _ = conn.close().await;
    assert_absent("postgres", &dump, &secrets);
}

/// A config file for the binary with its store in `dir`, and the listeners
/// it names, held by the test: the binary must fail before it binds them,
/// and would fail differently (address in use) if it ever got that far.
fn config_file(
    dir: &std::path::Path,
    store_key: Option<&str>,
) -> (std::path::PathBuf, [std::net::TcpListener; 2]) {
    let held = [bind_local(), bind_local()];
    let key = store_key
        .map(|k| format!("encryption_key = \"{k}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:{}\"\n[admin]\naddress = \"127.0.0.1:{}\"\n\
         [session]\nkeys = [\"{KEY_A}\"]\nsecure = false\n\
         [store]\nurl = \"sqlite://{}/data/p.db\"\n{key}",
        held[0].local_addr().unwrap().port(),
        held[1].local_addr().unwrap().port(),
        dir.display()
    );
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    (path, held)
}

/// Runs the binary; it must exit (failing) within a bound.
fn run_to_failure(args: &[&str], config: &std::path::Path) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!status.success(), "{args:?} succeeded:\n{text}");
            return text;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} was still running after 30 s (it should have refused to start)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `portcullis run` on a database file others can read: refused before
/// serving, naming the file and the `chmod` that fixes it.
#[test]
fn run_refuses_a_store_file_others_can_read() {
    let dir = private_tempdir().unwrap();
    let (config, _held) = config_file(dir.path(), Some(STORE_KEY));
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    let db = data.join("p.db");
    std::fs::write(&db, b"").unwrap();
    chmod(&db, 0o644);
    let out = run_to_failure(&["run", "--config"], &config);
    assert!(
        out.contains(&format!(
            "{} is readable or writable by group or others (mode 0644)",
            db.display()
        )) && out.contains(&format!("chmod go-rwx {}", db.display())),
        "{out}"
    );
    // A directory others can list: refused too.
    chmod(&db, 0o600);
    chmod(&data, 0o755);
    let out = run_to_failure(&["run", "--config"], &config);
    assert!(
        out.contains(&format!("{} is readable or writable", data.display())),
        "{out}"
    );
}

/// `portcullis run` with a key that isn't the one the store's secrets were
/// sealed with: refused, naming both key ids and the setting.
#[tokio::test(flavor = "multi_thread")]
async fn run_refuses_a_store_sealed_under_another_key() {
    let dir = private_tempdir().unwrap();
    let (config, _held) = config_file(dir.path(), Some(STORE_KEY_2));
    let url = format!("sqlite://{}/data/p.db", dir.path().display());
    let key = portcullis::config::decode_store_key(STORE_KEY).unwrap();
    let store = portcullis::store::Store::open_sealed(&url, &[key])
        .await
        .unwrap();
    store
        .keys()
        .get_or_insert(
            "assertion-es256",
            "generated",
            b"-----BEGIN PRIVATE KEY-----",
        )
        .await
        .unwrap();
    store.close().await;
    let out = tokio::task::spawn_blocking(move || run_to_failure(&["run", "--config"], &config))
        .await
        .unwrap();
    let old_id = portcullis::store::key_id(&key);
    let new_id =
        portcullis::store::key_id(&portcullis::config::decode_store_key(STORE_KEY_2).unwrap());
    assert!(
        out.contains(&old_id) && out.contains(&new_id) && out.contains("[store] encryption_key"),
        "{out}"
    );
}

/// `portcullis check` names the missing key and how to make one.
#[test]
fn check_names_the_missing_store_key() {
    let dir = private_tempdir().unwrap();
    let (config, _held) = config_file(dir.path(), None);
    let out = run_to_failure(&["check", "--config"], &config);
    assert!(
        out.contains("store.encryption_key: required") && out.contains("openssl rand -base64 32"),
        "{out}"
    );
}
