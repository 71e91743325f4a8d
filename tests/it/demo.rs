//! `portcullis demo`, the README's first command, as a newcomer meets it.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::env::*;

#[tokio::test]
async fn demo_serves_the_login_first_and_shows_headers_upstream() {
    let dir = crate::support::env::private_tempdir().unwrap();
    /// Kills the demo on drop so a failing test leaves nothing running.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let (child, addrs) = spawn_listening(3, |a| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("demo")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &a[0].to_string(), "--admin", &a[1].to_string()])
            .args(["--upstream", &a[2].to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    let mut child = Kill(child);
    let (listen, upstream): (SocketAddr, SocketAddr) = (addrs[0], addrs[2]);

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
