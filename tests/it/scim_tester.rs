//! scim2-tester (PyPI, pinned in tests/scim2-tester/requirements.txt,
//! installed into tests/scim2-tester/.venv by `make test`) against the real
//! server. Every check passes or is an exception explained in
//! tests/scim2-tester/run.py and the README. A missing venv fails the test.

use std::time::Duration;

use crate::support::scim::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_checks_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scim2-tester");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test` (or `make scim2-tester`) once",
        python.display()
    );
    let env = env_on(Db::Sqlite, "").await;
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
    assert!(
        out.status.success(),
        "scim2-tester failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert!(summary["checks"].as_u64().unwrap() > 20, "{stdout}");
    assert_eq!(summary["unexplained_failures"], 0);
}
