//! `portcullis demo`, the README's first command, as a newcomer meets it.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::env::*;

/// Kills the demo on drop so a failing test leaves nothing running.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `portcullis demo` on loopback ports it binds itself, data in `dir`;
/// returns once the proxy, admin and demo-app listeners accept connections
/// and the demo printed its banner (returned; the rest of its output is
/// drained so its logs never block it).
async fn start_demo(dir: &std::path::Path) -> (Kill, SocketAddr, SocketAddr, SocketAddr, String) {
    let (mut child, addrs) = spawn_listening(3, |a| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("demo")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", &a[0].to_string(), "--admin", &a[1].to_string()])
            .args(["--upstream", &a[2].to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    // The banner ends with the directory line of the next steps.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut banner = String::new();
    while !banner.contains("Directory:") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
            }
            Err(e) => panic!("no banner ({e}); got:\n{banner}"),
        }
    }
    (child, addrs[0], addrs[1], addrs[2], banner)
}

#[tokio::test]
async fn demo_serves_the_login_first_and_shows_headers_upstream() {
    let dir = private_tempdir().unwrap();
    let (mut child, listen, _admin, upstream, _) = start_demo(dir.path()).await;

    // `/` is required: a browser meets the login page first
    let r = client()
        .get(format!("http://{listen}/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/.portcullis/login?return_to=%2F");
    let r = client()
        .get(format!("http://{listen}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<h1>Sign in</h1>"));

    // the demo app itself renders the identity headers it receives
    let r = client()
        .get(format!("http://{upstream}/"))
        .header("x-forwarded-email", "alice@example.com")
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Signed in as <strong>alice@example.com</strong>"),
        "{html}"
    );

    // the session key is generated once, owner-only
    let key = dir.path().join("session.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(dir.path().join("portcullis.db").exists());

    // SIGINT stops it promptly
    assert!(
        Command::new("kill")
            .args(["-INT", &child.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut done = false;
    for _ in 0..100 {
        if child.0.try_wait().unwrap().is_some() {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "demo did not stop on SIGINT");
}

/// `make demo` shows SCIM → outbox → signed webhook → app: the demo app
/// receives the events, checks their signature, and its `/directory` lists
/// the tenant's users, groups and memberships as they arrive. A forged
/// event (wrong secret) is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_app_builds_the_directory_from_signed_webhooks() {
    use crate::support::scim::{GROUP, PATCH, USER};
    use serde_json::{Value, json};

    let dir = private_tempdir().unwrap();
    let (_child, listen, _admin, upstream, _) = start_demo(dir.path()).await;
    // A SCIM token for the demo tenant, as `portcullis scim-token create`
    // makes one, written to the demo's own store.
    let store =
        portcullis::store::Store::open(&format!("sqlite://{}/portcullis.db", dir.path().display()))
            .await
            .unwrap();
    let token = portcullis::scim::token::generate().unwrap();
    store
        .scim()
        .token_set("example", &token.key_id, &token.hash, 1)
        .await
        .unwrap();
    store.close().await;

    let scim = |method: reqwest::Method, path: &str, body: Value| {
        client()
            .request(method, format!("http://{listen}/scim/v2{path}"))
            .bearer_auth(&token.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
    };
    let r = scim(
        reqwest::Method::POST,
        "/Users",
        json!({"schemas": [USER], "userName": "carol@example.com",
               "name": {"givenName": "Carol", "familyName": "Example"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let carol = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = scim(
        reqwest::Method::POST,
        "/Groups",
        json!({"schemas": [GROUP], "displayName": "Design", "members": [{"value": carol}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);

    let directory = || async {
        client()
            .get(format!("http://{upstream}/directory"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let wait_for = |what: &'static str, pred: fn(&Value, &str) -> bool| {
        let carol = carol.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let d = directory().await;
                if pred(&d["tenants"][0], &carol) {
                    return d;
                }
                assert!(std::time::Instant::now() < deadline, "{what}: {d}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let d = wait_for("carol in Design", |t, _| {
        t["groups"][0]["members"] == json!(["carol@example.com"])
    })
    .await;
    let t = &d["tenants"][0];
    assert_eq!(t["id"], "example");
    assert_eq!(t["users"][0]["id"], carol.as_str());
    assert_eq!(t["users"][0]["name"], "Carol Example");
    assert_eq!(t["users"][0]["active"], true);
    assert_eq!(t["users"][0]["source"], "scim");
    assert_eq!(t["users"][0]["groups"], json!(["Design"]));
    assert_eq!(t["groups"][0]["display_name"], "Design");
    let types: Vec<&str> = d["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["group.member_added", "group.created", "user.created"],
        "newest first"
    );

    // A deactivation reaches the app too.
    let r = scim(
        reqwest::Method::PATCH,
        &format!("/Users/{carol}"),
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("carol deactivated", |t, _| t["users"][0]["active"] == false).await;

    // The HTML page, the one a signed-in user sees at the proxy's /directory.
    let html = client()
        .get(format!("http://{upstream}/directory"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("carol@example.com"), "{html}");
    assert!(html.contains("Design"), "{html}");

    // An event signed with another secret is refused and not applied.
    let body = json!({"id": "msg_forged", "type": "user.created", "tenant": "example",
                      "sequence": 1000, "timestamp": "2030-01-01T00:00:00.000Z",
                      "data": {"id": "mallory", "email": "mallory@example.com", "active": true}})
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let forged =
        portcullis::webhook::Signer::new(&[vec![7u8; 32]]).sign("msg_forged", now, body.as_bytes());
    let r = client()
        .post(format!("http://{upstream}/webhooks/portcullis"))
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", forged)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let d = directory().await;
    assert!(!d.to_string().contains("mallory"), "{d}");
    assert_eq!(d["tenants"][0]["users"].as_array().unwrap().len(), 1);
}

/// The next steps `portcullis demo` prints name its real addresses, and its
/// commands work against it as pasted: `--demo=DIR` reaches the running
/// demo's store with its keys, and its SCIM URL is where the demo listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_next_steps_that_work_as_pasted() {
    let dir = private_tempdir().unwrap();
    let data = dir.path().join("demo");
    let (_child, listen, admin, upstream, banner) = start_demo(&data).await;
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let demo = format!("--demo={}", data.display());
    for line in [
        format!("SCIM base URL:  http://{listen}/scim/v2"),
        format!("SCIM token:     {bin} scim-token create {demo} --tenant example"),
        format!(
            "A session:      {bin} sessions mint {demo} --email alice@example.com \
             --tenant example --groups Engineering,Everyone"
        ),
        format!("Metrics:        http://{admin}/metrics"),
        format!("Directory:      http://{upstream}/directory"),
    ] {
        assert!(banner.contains(&line), "{line}\n{banner}");
    }
    // Runs the command the banner shows after `label`.
    let paste = |label: &str| {
        let line = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("{label}\n{banner}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let out = Command::new(words[0]).args(&words[1..]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{line}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };

    let out = paste("SCIM token:");
    assert!(
        out.starts_with(&format!("SCIM base URL: http://{listen}/scim/v2\n")),
        "the demo recorded its address: {out}"
    );
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("Bearer token:"))
        .unwrap()
        .trim()
        .to_owned();
    let r = client()
        .get(format!("http://{listen}/scim/v2/Users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let cookie = paste("A session:").trim().to_owned();
    let (status, app) = echo(
        client()
            .get(format!("http://{listen}/"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, 200, "the session works on the running demo");
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("example"));

    let out = Command::new(bin)
        .args(["users", "list", &demo])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tenant "));

    let r = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("portcullis_"));
    let r = client()
        .get(format!("http://{upstream}/directory"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// `portcullis upstream --fixed`, the load benchmark's app: its answer,
/// and so its work, must not depend on what a proxy adds, or the proxy
/// that adds most is charged for the app's work too.
#[tokio::test]
async fn the_benchmark_upstream_answers_the_same_whatever_is_asked() {
    let (child, addrs) = spawn_listening(1, |a| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["upstream", "--listen", &a[0].to_string(), "--fixed", "1500"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    let _child = Kill(child);
    let base = format!("http://{}", addrs[0]);
    // One client: the later requests reuse the connection.
    let client = reqwest::Client::new();
    let assertion = "e".repeat(700);
    let mut bodies = Vec::new();
    for request in [
        client.get(format!("{base}/")),
        client
            .get(format!("{base}/deep/path?q=1"))
            .header("x-forwarded-email", "alice@acme.com")
            .header("x-portcullis-assertion", &assertion)
            .header("accept", "application/json"),
        client
            .post(format!("{base}/upload"))
            .body(vec![b'x'; 100_000]),
    ] {
        let res = request
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        bodies.push(res.bytes().await.unwrap());
    }
    assert_eq!(bodies[0].len(), 1500);
    assert!(bodies.iter().all(|b| *b == bodies[0]), "answers differ");
}

#[test]
fn the_benchmark_upstream_refuses_an_oversized_answer() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["upstream", "--listen", "127.0.0.1:0", "--fixed", "16777217"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fixed"), "{err}");
}
