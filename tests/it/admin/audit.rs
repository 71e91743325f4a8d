//! Every change is audited, whichever door it came through: the CLI's
//! `sessions revoke`, `scim-token create`, `domains add | verify | remove`
//! and `users remove` run the admin operations with the actor `cli`, so
//! `portcullis audit list` and the API's audit log show them.

use std::process::Command;

use super::api::{Db, Setup, setup};
use crate::support::env::*;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

on_both_stores!(cli_changes_are_audited_like_the_api_s);

/// Runs `portcullis GROUP COMMAND --config <the test server's> ARGS…`;
/// its stdout.
fn portcullis(s: &Setup, args: &[&str]) -> String {
    let config = s.env.config_path();
    let out = Command::new(BIN)
        .args(&args[..2])
        .arg("--config")
        .arg(&config)
        .args(&args[2..])
        .env("USER", "ops-alice")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn cli_changes_are_audited_like_the_api_s(db: Db) {
    let s = setup(db).await;
    portcullis(&s, &["scim-token", "create", "--tenant", "acme"]);
    let added = portcullis(&s, &["domains", "add", "--tenant", "acme", "acme.com"]);
    let value = added
        .lines()
        .find_map(|l| l.strip_prefix("Value:   "))
        .unwrap();
    s.dns.set_txt("_portcullis-challenge.acme.com", value);
    let verified = portcullis(&s, &["domains", "verify", "acme.com"]);
    assert!(verified.starts_with("acme.com: verified"), "{verified}");
    portcullis(&s, &["domains", "remove", "acme.com"]);
    portcullis(
        &s,
        &[
            "users",
            "invite",
            "--tenant",
            "acme",
            "--email",
            "lee@acme.com",
        ],
    );
    portcullis(
        &s,
        &[
            "users",
            "remove",
            "--tenant",
            "acme",
            "--email",
            "lee@acme.com",
        ],
    );
    s.env.mint(&principal("kim@acme.com", &[])).await;
    let revoked = portcullis(&s, &["sessions", "revoke", "--tenant", "acme"]);
    assert_eq!(revoked.trim(), "revoked 1 session(s)");
    portcullis(&s, &["sessions", "revoke", "--user", "user-kim"]);
    portcullis(&s, &["sessions", "revoke", "--all"]);

    // `portcullis audit list`: newest first, actor `cli:$USER`.
    let listed = portcullis(&s, &["audit", "list"]);
    let lines: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split(' ').take(5).collect())
        .collect();
    let expected = [
        ("-", "sessions.revoked", "everyone"),
        ("-", "sessions.revoked", "user:user-kim"),
        ("acme", "sessions.revoked", "all"),
        ("acme", "user.removed", "lee@acme.com"),
        ("acme", "domain.removed", "acme.com"),
        ("acme", "domain.verified_checked", "acme.com"),
        ("acme", "domain.added", "acme.com"),
        ("acme", "scim_token.rotated", "acme"),
    ];
    assert!(lines.len() >= expected.len(), "{listed}");
    for (line, (tenant, action, target)) in lines.iter().zip(expected) {
        assert_eq!(
            line[1..],
            [tenant, "cli:ops-alice", action, target],
            "{listed}"
        );
    }
    // The API's log is the same log.
    let (status, page) = s.api.get("/admin/v1/audit?tenant=acme").await;
    assert_eq!(status, 200, "{page}");
    let first = &page["events"][0];
    assert_eq!(
        (&first["actor_kind"], &first["actor"], &first["action"]),
        (
            &serde_json::json!("cli"),
            &serde_json::json!("ops-alice"),
            &serde_json::json!("sessions.revoked")
        )
    );
    assert_eq!(first["after"]["revoked"], 1);
    // Secrets never reach the log.
    assert!(
        !listed.contains("pat_") && !listed.contains("pcs_"),
        "{listed}"
    );
}
