//! scim2-tester (PyPI, pinned in tests/scim2-tester/requirements.txt,
//! installed into tests/scim2-tester/.venv by `make test`) against the real
//! server. Counted honestly: every check passes, or fails or is skipped in
//! a way tests/scim2-tester/run.py lists with its reason (also in the
//! README); the number of checks is pinned, so checks that silently stop
//! running fail the test too. A missing venv fails the test.

use std::time::Duration;

use crate::support::env::*;
use crate::support::scim::*;

/// How many checks scim2-tester 0.5.2 runs against this server. It follows
/// the tester version and what discovery advertises (attributes, PATCH,
/// Bulk, filter, sort...): when it changes, look at which checks appeared
/// or disappeared in the output and update this number (and the README).
const EXPECTED_CHECKS: u64 = 135;

/// The tester fills attributes with random values: emails in random
/// `*.com` domains no tenant can verify, so its tenant lets SCIM accept
/// them (`tests/it/scim/domains.rs` covers the default, refusing them).
const TENANT: &str = r#"
[[tenants]]
id = "acme"
domains = ["acme.com"]
scim = { allow_external_emails = true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_checks_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scim2-tester");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test` (or `make scim2-tester`) once",
        python.display()
    );
    let env = TestEnv::with(Options {
        extra: TENANT.into(),
        ..Default::default()
    })
    .await;
    let c = ScimClient::new(&env, "acme").await;
    let run = tokio::process::Command::new(&python)
        .arg(dir.join("run.py"))
        .arg(&c.base)
        .arg(&c.token)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("scim2-tester timed out")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(summary)
        .unwrap_or_else(|e| panic!("no summary line ({e}):\n{stdout}\n{stderr}"));
    // Reported on every run (visible with --nocapture, and in any failure).
    eprintln!("scim2-tester: {summary}");
    assert_eq!(
        summary["unexplained_failures"], 0,
        "scim2-tester checks failed without a listed exception:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        summary["unexplained_skips"], 0,
        "scim2-tester skipped checks without a listed reason (a skipped check proves \
         nothing; list it in SKIPS in tests/scim2-tester/run.py with why, or make it run):\n{stdout}"
    );
    assert_eq!(
        summary["stale"],
        serde_json::json!([]),
        "exceptions or skips listed in tests/scim2-tester/run.py no longer match any \
         check (they pass now): remove them there and in the README:\n{stdout}"
    );
    let checks = summary["checks"].as_u64().unwrap_or_default();
    assert_eq!(
        checks, EXPECTED_CHECKS,
        "scim2-tester ran {checks} checks, expected {EXPECTED_CHECKS}: checks appeared or \
         disappeared (tester version, or what discovery advertises). Compare the list below \
         with the last good run, then update EXPECTED_CHECKS and the README:\n{stdout}"
    );
    assert_eq!(
        summary["passed"].as_u64().unwrap_or_default()
            + summary["exceptions"]
                .as_array()
                .map_or(0, |a| a.len() as u64)
            + summary["skipped"].as_array().map_or(0, |a| a.len() as u64),
        checks,
        "{summary}"
    );
    assert!(
        out.status.success(),
        "scim2-tester failed:\n{stdout}\n{stderr}"
    );
}
