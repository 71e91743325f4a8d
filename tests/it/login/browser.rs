//! The login page in a real headless browser: each test starts an `Sso`
//! environment (tenants, DNS-verified domains, the stand-in IdP), sets what
//! the IdP asserts, and runs one scenario of `tests/browser/login.mjs`, which
//! drives Debian's Chromium with playwright-core against the real server.
//! The `demo` scenario runs against the real `portcullis demo` binary and
//! its development IdP instead.
//!
//! Needs `node`, Debian's `chromium` and `tests/browser/node_modules`; `make
//! test` installs all three. A missing one fails the test (never skips it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::idp::*;

/// The script has its own 90 s watchdog (which also closes Chromium); this
/// is the last resort if node itself hangs.
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

/// One browser at a time: on 2 cores, several Chromiums alongside the rest
/// of the suite only make every step slower.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("PORTCULLIS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Everything the script needs, or a panic that says how to get it.
fn check_prerequisites() {
    let mut missing = Vec::new();
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match node {
        Ok(out) if out.status.success() => {
            // playwright-core's engines field says Node.js 20 or newer.
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let major = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok());
            if major.is_none_or(|m| m < 20) {
                missing.push(format!("Node.js 20 or newer (found {version})"));
            }
        }
        Ok(out) => missing.push(format!("`node --version` failed ({})", out.status)),
        Err(e) => missing.push(format!("node is not on PATH ({e})")),
    }
    let chromium = chromium();
    if !chromium.is_file() {
        missing.push(format!(
            "no Chromium at {} (Debian package `chromium`; PORTCULLIS_CHROMIUM overrides the path)",
            chromium.display()
        ));
    }
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    if !playwright.is_file() {
        missing.push(format!(
            "{} is missing (`npm ci --prefix tests/browser`)",
            playwright.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "browser tests cannot run:\n  - {}\nRun `make test`, which installs them \
         (scripts/install-deps.sh, then npm ci in tests/browser).",
        missing.join("\n  - ")
    );
}

/// Runs `login.mjs SCENARIO` against `sso`; panics with the script's output
/// unless it exits 0.
async fn run_scenario(sso: &Sso, scenario: &str) {
    run_scenario_at(&sso.env.url("/"), scenario).await;
}

/// Runs `login.mjs SCENARIO` against the server at `base_url`.
async fn run_scenario_at(base_url: &str, scenario: &str) {
    check_prerequisites();
    let _one = ONE_BROWSER.lock().await;
    let started = Instant::now();
    let child = tokio::process::Command::new("node")
        .arg("login.mjs")
        .arg(scenario)
        .current_dir(browser_dir())
        .env("BASE_URL", base_url)
        .env("CHROMIUM", chromium())
        // Playwright's call logs without terminal colour codes.
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning node");
    let out = match tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.expect("waiting for node"),
        Err(_) => panic!("login.mjs {scenario} did not finish within {RUN_TIMEOUT:?} (killed)"),
    };
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "login.mjs {scenario} failed ({}) after {:.1?}:\n{output}",
        out.status,
        started.elapsed()
    );
    // Shown with --nocapture: what was checked, and how long it took.
    println!("login.mjs {scenario}: {:.1?}\n{output}", started.elapsed());
}

/// Stops the server off the test's runtime. A store query made from the test
/// opens a pool connection on that runtime; dropping `Sso` in place would
/// block the runtime while the server's shutdown waits for that connection,
/// until `TestEnv`'s 15 s join timeout gives up.
async fn shut_down(s: Sso) {
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}

#[tokio::test]
async fn browser_prefill_works_without_javascript() {
    let s = Sso::start_cross_origin(true).await;
    // The prefilled form is submitted, without JavaScript, to the IdP.
    s.assert_next("alice@acme.com", Some(true), &[]);
    run_scenario(&s, "prefill").await;
}

#[tokio::test]
async fn browser_discovery_messages() {
    let s = Sso::start_cross_origin(true).await;
    run_scenario(&s, "discovery").await;
    // No SSO flow was started, and the password link reached the app.
    let saw = s.app_saw.lock().unwrap().clone();
    assert!(saw.contains(&"GET /login".to_string()), "{saw:?}");
}

#[tokio::test]
async fn browser_chooser_then_sso() {
    let s = Sso::start_cross_origin(true).await;
    s.assert_next("bob@globex.com", Some(true), &[]);
    run_scenario(&s, "chooser").await;
    let users = s
        .env
        .shared
        .store
        .users()
        .list(Some("globex"))
        .await
        .unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].email, "bob@globex.com");
    shut_down(s).await;
}

#[tokio::test]
async fn browser_use_sso_bookmark() {
    let s = Sso::start_cross_origin(true).await;
    s.assert_next("alice@acme.com", Some(true), &[]);
    run_scenario(&s, "bookmark").await;
}

#[tokio::test]
async fn browser_session_and_logout() {
    let s = Sso::start_cross_origin(true).await;
    s.assert_next("alice@acme.com", Some(true), &[]);
    run_scenario(&s, "logout").await;
    let m = s.env.metrics().await;
    assert!(
        m.contains("portcullis_sessions_revoked_total{scope=\"logout\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn browser_demo_signs_alice_in_through_the_dev_idp() {
    let demo = crate::login::dev_idp::Demo::start().await;
    run_scenario_at(&demo.url("/"), "demo").await;
}

#[tokio::test]
async fn browser_demo_works_without_javascript() {
    let demo = crate::login::dev_idp::Demo::start().await;
    run_scenario_at(&demo.url("/"), "demo_nojs").await;
}
