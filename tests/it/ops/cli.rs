//! The real binary: `check`, `run` with SIGHUP/SIGTERM, `sessions`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::env::*;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

pub(crate) fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn check_prints_every_error_with_file_line_and_key() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[[listeners]]\naddress = \"127.0.0.1:8080\"\n\n[session]\nkeys = [\"${PORTCULLIS_TEST_UNSET_VAR}\"]\n\n[[routes]]\nprefix = \"/\"\npolicy = \"sometimes\"\n\n[upstream]\nadress = \"x\"\n[store]\nencryption_key = \"cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:5: session.keys[0]: environment variable `PORTCULLIS_TEST_UNSET_VAR` is not set"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:9: routes[0].policy: unknown variant `sometimes`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:12: upstream.adress: unknown field `adress`"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 3, "{err}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, format!("[[listeners]]\naddress = \"127.0.0.1:8080\"\n[session]\nkeys = [\"0123456789abcdef0123456789abcdef\"]\n[store]\nencryption_key = \"{STORE_KEY}\"\n")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/p.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nonexistent/p.toml:1: (file): cannot read file")
    );
}

/// Kills the child on drop so a failing test leaves nothing behind.
pub(crate) struct Child(pub std::process::Child);

/// Starts the real binary (`run`) on the configuration `text` makes for
/// `n` ephemeral listening addresses (see `spawn_listening`), written to
/// `path`. Its output goes nowhere, so a developer's `RUST_LOG` is not
/// passed on.
pub(crate) async fn run_binary(
    path: &std::path::Path,
    n: usize,
    mut text: impl FnMut(&[SocketAddr]) -> String,
) -> (Child, Vec<SocketAddr>) {
    let (child, addrs) = spawn_listening(n, |a| {
        std::fs::write(path, text(a)).unwrap();
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    (Child(child), addrs)
}

impl Child {
    /// Its exit status once it exits, polled every 100 ms for at most
    /// `limit`; `None` if it is still running then.
    pub(crate) async fn exit_within(
        &mut self,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn wait_ready(admin: SocketAddr) {
    wait_for_port(admin).await;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://{admin}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not ready");
}

pub(crate) async fn wait_for_metric(admin: SocketAddr, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if last.contains(needle) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("metric {needle} never appeared:\n{last}");
}

#[tokio::test]
async fn binary_reloads_on_sighup_keeps_serving_on_broken_config_and_drains_on_sigterm() {
    let (upstream, _task) = start_echo_upstream().await;
    let dir = crate::support::env::private_tempdir().unwrap();
    let store = format!("sqlite://{}/s.db", dir.path().display());
    let path = dir.path().join("p.toml");
    let mut text = String::new();
    let (mut child, addrs) = run_binary(&path, 2, |a| {
        text = config_text(a[0], a[1], upstream, &store, &[KEY_A], "");
        text.clone()
    })
    .await;
    let (proxy, admin) = (addrs[0], addrs[1]);
    let pid = child.0.id();
    wait_ready(admin).await;

    // a session minted by the CLI against the same store works on the
    // running server
    let cookie = mint_cli(
        &path,
        &["--email", "kim@example.com", "--groups", "eng,ops"],
    );
    assert!(cookie.starts_with("portcullis_session="), "{cookie}");
    let app = echo_through(proxy, &cookie).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("kim@example.com"));
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("eng,ops"));

    // `--count N`: N distinct sessions, one cookie a line (benches/load.sh
    // fills the session cache with them), each a working session.
    let out = mint_cli(&path, &["--email", "lee@example.com", "--count", "3"]);
    let cookies: Vec<&str> = out.lines().collect();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    let distinct: std::collections::HashSet<&&str> = cookies.iter().collect();
    assert_eq!(distinct.len(), 3, "{cookies:?}");
    for c in &cookies {
        let app = echo_through(proxy, c).await;
        assert_eq!(seen(&app, "x-forwarded-email"), Some("lee@example.com"));
    }

    // broken config + SIGHUP: still serving, failure counted
    std::fs::write(
        &path,
        text.replace("policy = \"required\"", "policy = \"bogus\""),
    )
    .unwrap();
    signal(pid, "-HUP");
    wait_for_metric(admin, "portcullis_config_reloads_total{result=\"error\"} 1").await;
    let m = wait_for_metric(admin, "portcullis_config_last_reload_successful 0").await;
    assert!(m.contains("portcullis_config_last_reload_successful 0"));
    let r = client()
        .get(format!("http://{proxy}/app"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        client()
            .get(format!("http://{proxy}/app"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // a good change + SIGHUP applies: `/` becomes public
    std::fs::write(
        &path,
        text.replace(
            "prefix = \"/\"\npolicy = \"required\"",
            "prefix = \"/\"\npolicy = \"public\"",
        ),
    )
    .unwrap();
    signal(pid, "-HUP");
    wait_for_metric(admin, "portcullis_config_reloads_total{result=\"ok\"} 1").await;
    assert_eq!(
        client()
            .get(format!("http://{proxy}/app"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // revoke through the CLI: the session ends
    std::fs::write(&path, &text).unwrap();
    signal(pid, "-HUP");
    wait_for_metric(admin, "portcullis_config_reloads_total{result=\"ok\"} 2").await;
    let out = Command::new(BIN)
        .args(["sessions", "revoke", "--config"])
        .arg(&path)
        .args(["--user", "kim@example.com"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "revoked 1 session(s)"
    );
    // ...and the running server, which had the session cached, stops
    // honouring it (the SQLite event log is polled every 200 ms).
    let mut status = 0;
    for _ in 0..20 {
        status = client()
            .get(format!("http://{proxy}/app"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 401,
        "CLI revocation did not reach the running server"
    );

    // SIGTERM: graceful exit, status 0, within the grace period
    signal(pid, "-TERM");
    let status = child
        .exit_within(Duration::from_secs(15))
        .await
        .expect("exited within 15 s of SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sessions_revoke_needs_a_selector() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, format!("[[listeners]]\naddress = \"127.0.0.1:1\"\n[session]\nkeys = [\"{KEY_A}\"]\n[store]\nurl = \"sqlite://{}/s.db\"\nencryption_key = \"{STORE_KEY}\"\n", dir.path().display())).unwrap();
    let out = Command::new(BIN)
        .args(["sessions", "revoke", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(BIN)
        .args(["sessions", "revoke", "--config"])
        .arg(&path)
        .arg("--all")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "revoked 0 session(s)"
    );
}

/// The operator commands of the tenants issue, through the real binary.
/// Multi-threaded: the DNS server must answer while this thread waits for
/// the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_users_and_connections_commands() {
    let dns = crate::support::dns::DnsServer::start().await;
    let dir = crate::support::env::private_tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:1\"\n[session]\nkeys = [\"{KEY_A}\"]\n[store]\nurl = \"sqlite://{}/s.db\"\nencryption_key = \"{STORE_KEY}\"\n\
             [dns]\nnameservers = [\"{}\"]\n\
             [[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n\
             [[tenants.connections]]\nid = \"acme-okta\"\nprotocol = \"saml\"\npreset = \"okta\"\ndisplay_name = \"Okta\"\n\
             [tenants.connections.saml]\nidp_entity_id = \"http://idp.example/\"\nidp_sso_url = \"https://idp.example/sso\"\n\
             idp_certificates = [\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\"]\n",
            dir.path().display(),
            dns.addr()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(&args[..1])
            .args(&args[1..2])
            .arg("--config")
            .arg(&path)
            .args(&args[2..])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["domains", "add", "--tenant", "acme", "acme.com"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("_portcullis-challenge.acme.com"), "{out}");
    let token = out
        .split("portcullis-domain-verification=")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_hexdigit())
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 64, "{out}");
    // not listed for the tenant, and public mail domains: refused
    let (code, _, err) = run(&["domains", "add", "--tenant", "acme", "globex.com"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not listed for tenant `acme`"), "{err}");
    let (code, _, err) = run(&["domains", "add", "--tenant", "acme", "gmail.com"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("public mail provider"), "{err}");

    let (_, out, _) = run(&["domains", "verify", "acme.com"]);
    assert!(out.contains("pending") && !out.contains("timeout"), "{out}");
    dns.set_txt(
        "_portcullis-challenge.acme.com",
        &format!("portcullis-domain-verification={token}"),
    );
    let (code, out, _) = run(&["domains", "verify", "acme.com"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("verified"), "{out}");
    let (_, out, _) = run(&["domains", "list"]);
    assert!(
        out.contains("acme.com") && out.contains("verified"),
        "{out}"
    );

    let (code, out, _) = run(&[
        "users",
        "invite",
        "--tenant",
        "acme",
        "--email",
        "alice@acme.com",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains("invited alice@acme.com to acme"), "{out}");
    let (code, _, err) = run(&[
        "users",
        "invite",
        "--tenant",
        "acme",
        "--email",
        "alice@ACME.com",
    ]);
    assert_eq!(code, Some(1), "{err}");
    let (code, _, err) = run(&[
        "users",
        "invite",
        "--tenant",
        "acme",
        "--email",
        "eve@evil.com",
    ]);
    assert_eq!(code, Some(64), "{err}");
    let (_, out, _) = run(&["users", "list"]);
    assert!(
        out.contains("alice@acme.com") && out.contains("member") && out.contains("invite"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "users",
        "remove",
        "--tenant",
        "acme",
        "--email",
        "alice@acme.com",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains("removed alice@acme.com from acme"), "{out}");

    let (_, out, _) = run(&["connections", "list"]);
    assert!(
        out.contains("acme-okta") && out.contains("saml") && out.contains("okta"),
        "{out}"
    );
}

/// A listener address in use stops `run` at once with the address named.
/// (pingora alone retried for 30 s and then kept the process running
/// without that listener, `/readyz` still answering 200.)
#[tokio::test]
async fn run_exits_at_once_when_a_listener_address_is_in_use() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let taken = bind_local();
    let busy = taken.local_addr().unwrap();
    // Held too, so nothing here is free for someone else to take; the
    // public listeners are bound first, so the error names `busy`.
    let admin_taken = bind_local();
    let admin = admin_taken.local_addr().unwrap();
    let upstream = refusing();
    let store = format!("sqlite://{}/s.db", dir.path().display());
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        config_text(busy, admin, upstream.addr, &store, &[KEY_A], ""),
    )
    .unwrap();
    let mut child = Child(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = child
        .exit_within(Duration::from_secs(30))
        .await
        .expect("still running 30 s after its listener failed to bind");
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("Address already in use"), "{stderr}");
    assert!(stderr.contains(&format!("listener `{busy}`")), "{stderr}");
}

/// `portcullis users remove` on a running server's store ends the user's
/// sessions there, even one the server has cached; other users' stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_remove_ends_the_users_sessions_on_a_running_server() {
    let s = crate::support::idp::Sso::start(true).await;
    s.assert_next("alice@acme.com", Some(true), &["Engineering"]);
    let (_, alice) = s.login("acme-idp", "%2F").await;
    let alice = alice.expect("alice signed in");
    s.assert_next("carol@acme.com", Some(true), &["Engineering"]);
    let (_, carol) = s.login("acme-idp", "%2F").await;
    let carol = carol.expect("carol signed in");
    let status = |cookie: String| {
        let url = s.env.url("/dashboard");
        async move {
            client()
                .get(url)
                .header("accept", "application/json")
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Both work (and are now in the server's session cache).
    assert_eq!(status(alice.clone()).await, 200);
    assert_eq!(status(carol.clone()).await, 200);

    let out = Command::new(BIN)
        .args(["users", "remove", "--config"])
        .arg(s.env.config_path())
        .args(["--tenant", "acme", "--email", "alice@acme.com"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "removed alice@acme.com from acme; ended 1 session(s)"
    );
    // Gone from the store at once ...
    assert_eq!(s.env.shared.store.sessions().count().await.unwrap(), 1);
    // ... and from the running server's cache within its event-log poll
    // (200 ms; bounded here).
    let mut last = 0;
    for _ in 0..50 {
        last = status(alice.clone()).await;
        if last == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, 401, "the removed user's session still works");
    assert_eq!(status(carol).await, 200, "another user's session ended too");
}

/// A configuration file for `dir`'s SQLite store (or `store_url`).
fn minimal_config(dir: &std::path::Path, store_url: Option<&str>) -> std::path::PathBuf {
    let path = dir.join("p.toml");
    let url = store_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}/s.db", dir.display()));
    std::fs::write(
        &path,
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:1\"\n[session]\nkeys = [\"{KEY_A}\"]\n\
             [store]\nurl = \"{url}\"\nencryption_key = \"{STORE_KEY}\"\n\
             [[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n"
        ),
    )
    .unwrap();
    path
}

fn run_bin(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

/// The documented exit statuses: 64 for a wrong command line (clap's own
/// errors included), 78 for a configuration that can't be used, 1 when the
/// work fails, 0 for `--help`.
#[test]
fn exit_codes_tell_usage_configuration_and_runtime_errors_apart() {
    let dir = private_tempdir().unwrap();
    let good = minimal_config(dir.path(), None);
    let good = good.as_os_str();

    // Usage: 64.
    let (code, _, err) = run_bin(args!["users", "list", "--config", good, "--bogus"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--bogus"), "{err}");
    let (code, _, err) = run_bin(args!["frobnicate"]);
    assert_eq!(code, Some(64), "{err}");
    let (code, _, err) = run_bin(args!["users", "list"]);
    assert_eq!(code, Some(64), "neither --config nor --demo: {err}");
    let demo = format!("--demo={}", dir.path().join("demo").display());
    let (code, _, err) = run_bin(args!["users", "list", "--config", good, &demo]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(
        !dir.path().join("demo").exists(),
        "refused before anything was created"
    );
    let (code, _, err) = run_bin(args![
        "users",
        "invite",
        "--config",
        good,
        "--tenant",
        "nope",
        "--email",
        "a@acme.com"
    ]);
    assert_eq!(code, Some(64), "{err}");
    assert_eq!(
        err.trim(),
        "error: no tenant with id `nope` in the configuration"
    );
    let (code, out, _) = run_bin(args!["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Usage: portcullis"), "{out}");

    // Configuration: 78, errors printed as FILE:LINE: key: message.
    let (code, _, err) = run_bin(args!["users", "list", "--config", "/nonexistent/p.toml"]);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.starts_with("/nonexistent/p.toml:1: (file): cannot read file"),
        "{err}"
    );
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(good)
            .unwrap()
            .replace("[[tenants]]", "[[tenants]]\nbogus = 1"),
    )
    .unwrap();
    let (code, _, err) = run_bin(args!["users", "list", "--config", broken.as_os_str()]);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains(&format!("{}:", broken.display())) && err.contains("bogus"),
        "{err}"
    );
    let (code, _, err) = run_bin(args!["check", "--config", broken.as_os_str()]);
    assert_eq!(code, Some(78), "{err}");

    // Runtime: 1 (the store is unreachable; the configuration is fine).
    let dead = refusing();
    let unreachable = private_tempdir().unwrap();
    let pg = minimal_config(
        unreachable.path(),
        Some(&format!("postgres://postgres:pw@{}/db", dead.addr)),
    );
    let (code, _, err) = run_bin(args!["check", "--config", pg.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run_bin(args!["users", "list", "--config", pg.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("error: store:"), "{err}");
    // A duplicate is a runtime error too.
    let invite = args![
        "users",
        "invite",
        "--config",
        good,
        "--tenant",
        "acme",
        "--email",
        "a@acme.com"
    ];
    assert_eq!(run_bin(invite).0, Some(0));
    let (code, _, err) = run_bin(invite);
    assert_eq!(code, Some(1), "{err}");
}

/// `--demo=DIR` instead of `--config`: the demo's configuration, data
/// directory and keys, created on first use, so the commands work before
/// (and after) the demo ever ran there.
#[test]
fn demo_flag_works_on_a_fresh_data_dir() {
    let dir = private_tempdir().unwrap();
    let data = dir.path().join("demo");
    let demo = format!("--demo={}", data.display());

    let (code, out, err) = run_bin(args!["scim-token", "create", &demo, "--tenant", "example"]);
    assert_eq!(code, Some(0), "{err}");
    // No demo ran there yet: its default address.
    assert!(
        out.starts_with("SCIM base URL: http://127.0.0.1:8080/scim/v2\nBearer token:  pcs_"),
        "{out}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(data.join("portcullis.db").exists());

    let (code, out, err) = run_bin(args![
        "sessions",
        "mint",
        &demo,
        "--email",
        "alice@example.com"
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("portcullis_session="), "{out}");

    let (code, out, err) = run_bin(args![
        "users",
        "invite",
        &demo,
        "--tenant",
        "example",
        "--email",
        "carol@example.com"
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("invited carol@example.com to example"),
        "{out}"
    );
    let (code, out, err) = run_bin(args!["users", "list", &demo]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("example ")
            && l.contains("carol@example.com")
            && l.ends_with(" never")),
        "{out}"
    );

    let (code, out, err) = run_bin(args!["check", &demo]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "ok\n");
    let (code, out, _) = run_bin(args!["connections", "list", &demo]);
    assert_eq!(code, Some(0));
    assert!(out.contains("example-dev"), "{out}");
}

/// Listings print times as RFC 3339 in UTC, not unix seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_print_rfc3339_times() {
    let s = crate::support::idp::Sso::start(true).await;
    s.assert_next("alice@acme.com", Some(true), &["Engineering"]);
    let (_, alice) = s.login("acme-idp", "%2F").await;
    assert!(alice.is_some(), "alice signed in");
    let config = s.env.config_path();
    let before = chrono::Utc::now() - chrono::Duration::minutes(5);
    let after = chrono::Utc::now() + chrono::Duration::minutes(5);
    let stamp = |text: &str, field: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(field)
            .unwrap_or_else(|e| panic!("`{field}` is not RFC 3339 ({e}):\n{text}"));
        assert!(field.ends_with('Z'), "UTC: {field}");
        assert!(t > before && t < after, "{field}");
    };

    let (code, out, err) = run_bin(args!["users", "list", "--config", config.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    let row = out
        .lines()
        .find(|l| l.contains("alice@acme.com"))
        .unwrap_or_else(|| panic!("{out}"));
    stamp(&out, row.split_whitespace().last().unwrap());

    // The sign-in queued a `user.created` event (no [webhook] here, so it
    // stays pending): the oldest pending event's time.
    let (code, out, err) = run_bin(args!["webhooks", "status", "--config", config.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.lines().next().unwrap().contains("OLDEST PENDING"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("acme "))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    stamp(&out, cols[5]);
}

/// `connections list` names each platform connection's provider and
/// prints the one redirect URI to register at each configured provider.
#[test]
fn connections_list_shows_the_platform_redirect_uri() {
    let dir = private_tempdir().unwrap();
    let path = minimal_config(dir.path(), None);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace(
        "[[listeners]]",
        "[server]\npublic_url = \"https://app.example.com\"\n\
         [platform.providers.github]\nclient_id = \"gh\"\nclient_secret = \"${GH_SECRET}\"\n\
         [[listeners]]",
    );
    text.push_str("[[tenants.connections]]\nid = \"acme-gh\"\nplatform = \"github\"\n");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["connections", "list", "--config"])
        .arg(&path)
        .env("GH_SECRET", "s3cret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("acme") && l.contains("acme-gh") && l.contains("github")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "GitHub redirect URI: https://app.example.com/.portcullis/platform/github/callback"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
    // Providers nobody configured get no line.
    assert!(!stdout.contains("Google"), "{stdout}");
}

/// `portcullis sessions mint --config PATH ARGS...`: its output, trimmed.
fn mint_cli(path: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["sessions", "mint", "--config"])
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// GET /app through `proxy` with `cookie`: what the echo app saw (200).
async fn echo_through(proxy: SocketAddr, cookie: &str) -> serde_json::Value {
    let (status, app) = echo(
        client()
            .get(format!("http://{proxy}/app"))
            .header("cookie", cookie),
    )
    .await;
    assert_eq!(status, 200);
    app
}
