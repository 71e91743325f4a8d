//! Self-serve onboarding end to end, in headless Chromium
//! (`tests/browser/onboard.mjs`): the operator creates only the tenant
//! shell and a setup link; the customer's IT admin does everything else in
//! the portal's pages — adds and verifies `acme.com` against the test DNS
//! server, connects panva's `oidc-provider` and then the pysaml2 IdP with
//! the values the pages show, runs Test sign-in for each, enforces SSO —
//! and a user of the domain then signs in through the proxy with either
//! IdP and reaches the app.
//!
//! This test plays the admin's hands outside the portal: the script asks
//! (one JSON line on its stdout) and the test answers (one line on its
//! stdin) — it publishes the TXT record the page showed, starts each IdP
//! registered with the redirect URI / SP metadata URL the page showed
//! (when a real admin would create the application there), and checks
//! what only the outside sees: the app's password login before and after
//! enforcement, and what the app received from each sign-in.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::oidc::interop::{self, CLIENT_ID, CLIENT_SECRET, Client, NodeOp, ONE_OP};
use crate::support::admin::AdminApi;
use crate::support::dns::DnsServer;
use crate::support::env::*;
use crate::support::pysaml2::PySaml2Idp;
use crate::support::saml::IdpKey;

/// The one account both IdPs sign in (oidc-provider's `op.mjs`, pysaml2's
/// `alice`).
const EMAIL: &str = "alice@acme.com";
const TENANT: &str = "acme";
/// The app's own password login, which enforcement must close.
const PASSWORD_LOGIN: &str = "/login";
/// The whole run, whatever happens (the script's own watchdog is shorter).
const RUN_TIMEOUT: Duration = Duration::from_secs(360);

/// The app's password login and its public route; the DNS server.
fn config(dns: &DnsServer) -> String {
    format!(
        "[dns]\nnameservers = [\"{}\"]\n\n[login]\n[[login.password_endpoints]]\npath = \"{PASSWORD_LOGIN}\"\n\n\
         [[routes]]\nprefix = \"{PASSWORD_LOGIN}\"\npolicy = \"public\"\n",
        dns.addr()
    )
}

/// What the admin set up outside the portal, kept alive for the run.
struct Outside {
    dns: DnsServer,
    dir: tempfile::TempDir,
    op: Option<NodeOp>,
    saml: Option<PySaml2Idp>,
    /// The sign-ins the app saw, by IdP (`oidc`, `saml`).
    signed_in: BTreeMap<String, Value>,
    checkpoints: Vec<String>,
}

/// Signs in at the app's password login as `EMAIL`, the way its HTML form
/// posts and the way an API client does: (status, Location or body) each.
async fn password_logins(env: &TestEnv) -> [(u16, String); 2] {
    let form = client()
        .post(env.url(PASSWORD_LOGIN))
        .form(&[("email", EMAIL), ("password", "hunter2")]);
    let api = client()
        .post(env.url(PASSWORD_LOGIN))
        .header("accept", "application/json")
        .json(&json!({"email": EMAIL, "password": "hunter2"}));
    let mut out = Vec::new();
    for req in [form, api] {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = match r.headers().get("location") {
            Some(l) => l.to_str().unwrap().to_owned(),
            None => r.text().await.unwrap(),
        };
        out.push((status, text));
    }
    out.try_into().unwrap()
}

fn app_saw(env: &TestEnv, request: &str) -> usize {
    env.app
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .iter()
        .filter(|r| *r == request)
        .count()
}

/// Does what the script asks; returns the answer's values.
async fn answer(env: &TestEnv, out: &mut Outside, ask: &Value) -> Value {
    let s = |k: &str| {
        ask[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} missing in {ask}"))
            .to_owned()
    };
    match ask["ask"].as_str().unwrap_or_default() {
        "publish_txt" => {
            let (name, value) = (s("name"), s("value"));
            assert!(name.ends_with(".acme.com"), "{ask}");
            out.dns.set_txt(&name, &value);
            json!({})
        }
        "checkpoint" => {
            let stage = s("stage");
            let [(form, to), (api, body)] = password_logins(env).await;
            let reached = app_saw(env, &format!("POST {PASSWORD_LOGIN}"));
            match stage.as_str() {
                // Verified but not enforced: the password logins still
                // reach the app.
                "verified" => {
                    assert_eq!((form, api), (200, 200), "{to}\n{body}");
                    assert_eq!(reached, 2, "the app got both password logins");
                }
                // Enforced: answered by Portcullis (the form sent to SSO,
                // the API client told), never reaching the app.
                "enforced" => {
                    assert_eq!(form, 303, "{to}");
                    assert!(to.contains("/.portcullis/login"), "{to}");
                    assert_eq!(api, 403, "{body}");
                    let v: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(v["error"], "sso_required", "{body}");
                    assert_eq!(reached, 2, "the app got no more password logins");
                }
                other => panic!("unknown checkpoint {other}"),
            }
            out.checkpoints.push(stage);
            json!({})
        }
        "oidc_app" => {
            // The admin registers a web application at the provider with
            // the portal's URLs, and gets its client id and secret.
            let op = interop::start_op_for(&Client {
                redirect_uri: s("redirect_uri"),
                backchannel_logout_uri: s("backchannel_logout_uri"),
                jwks: None,
            })
            .await;
            let reply = json!({"issuer": op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET});
            out.op = Some(op);
            reply
        }
        "saml_app" => {
            // The admin creates the SAML application: the IdP's metadata
            // URL is what the portal needs first.
            let key = IdpKey::generate(out.dir.path(), "pysaml2");
            let idp = tokio::task::spawn_blocking(move || PySaml2Idp::start(&key, &[], &[]))
                .await
                .unwrap();
            let reply = json!({"metadata_url": idp.url("/metadata")});
            out.saml = Some(idp);
            reply
        }
        "saml_sp" => {
            // … and gives it the SP metadata URL the portal showed.
            let idp = out.saml.as_ref().expect("saml_app first");
            let r = client()
                .post(idp.url("/sp"))
                .form(&[("metadata_url", s("metadata_url"))])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert_eq!(status, 200, "{}", r.text().await.unwrap());
            json!({})
        }
        "signed_in" => {
            let via = s("via");
            let echo = ask["echo"].clone();
            assert_eq!(seen(&echo, "x-forwarded-email"), Some(EMAIL), "{echo}");
            assert_eq!(seen(&echo, "x-forwarded-tenant"), Some(TENANT), "{echo}");
            // Both IdPs send alice's groups (oidc-provider because the
            // admin asked for the `groups` scope on the portal), which the
            // portal's mapping makes roles.
            let (groups, roles) = ("Engineering,Everyone", "member,developer");
            assert_eq!(seen(&echo, "x-forwarded-groups"), Some(groups), "{echo}");
            assert_eq!(seen(&echo, "x-forwarded-roles"), Some(roles), "{echo}");
            out.signed_in.insert(via, echo);
            json!({})
        }
        other => panic!("the script asked for something unknown: {other} ({ask})"),
    }
}

/// Runs the script to its end, answering its asks; panics with its output
/// on failure or timeout.
async fn run_script(env: &TestEnv, link: &str, out: &mut Outside) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut child = tokio::process::Command::new("node")
        .arg("onboard.mjs")
        .current_dir(&dir)
        .env("BASE_URL", env.url("/"))
        .env("SETUP_LINK", link)
        .env("EMAIL", EMAIL)
        .env(
            "CHROMIUM",
            std::env::var("PORTCULLIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        )
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running node (tests/browser: npm ci, and Debian's chromium)");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });
    let mut transcript = String::new();
    let talk = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // Shown with the failure of an assertion made while answering.
            println!("{line}");
            transcript.push_str(&line);
            transcript.push('\n');
            let Some(ask) = line.strip_prefix("ASK ") else {
                continue;
            };
            let ask: Value = serde_json::from_str(ask).unwrap();
            let mut reply = answer(env, out, &ask).await;
            reply["ok"] = json!(true);
            stdin
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .unwrap();
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(RUN_TIMEOUT, talk).await;
    let errors = match &status {
        Ok(_) => errors.await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    match status {
        Ok(s) if s.success() => assert!(transcript.contains("ok onboard"), "{transcript}"),
        Ok(s) => panic!("onboard.mjs failed ({s}):\n{transcript}{errors}"),
        Err(_) => panic!("onboard.mjs did not finish within {RUN_TIMEOUT:?}:\n{transcript}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_admin_onboards_through_a_setup_link_in_chromium() {
    // One node provider at a time (see `ONE_OP`).
    let _one = ONE_OP.lock().await;
    let dns = DnsServer::start().await;
    let env = TestEnv::with(Options {
        extra: config(&dns),
        factories: portcullis::auth::Factories::builtin(),
        ..Default::default()
    })
    .await;

    // The operator's part: the tenant shell and a setup link, nothing more.
    let api = AdminApi::new(&env, "ops").await;
    api.create_tenant(&json!({"id": TENANT, "name": "Acme Corp"}))
        .await;
    let link = api
        .setup_link(TENANT, &["domain", "sso", "scim", "enforce", "roles"])
        .await;

    let mut out = Outside {
        dns,
        dir: tempfile::tempdir().unwrap(),
        op: None,
        saml: None,
        signed_in: BTreeMap::new(),
        checkpoints: Vec::new(),
    };
    run_script(&env, &link, &mut out).await;

    // Everything the script was to do happened, in order.
    assert_eq!(out.checkpoints, ["verified", "enforced"]);
    assert_eq!(
        out.signed_in.keys().collect::<Vec<_>>(),
        ["oidc", "saml"],
        "a sign-in through each IdP reached the app"
    );
    assert_eq!(
        app_saw(&env, "GET /dashboard"),
        4,
        "two page loads per sign-in"
    );
    let log = out.saml.as_ref().unwrap().log().await;
    let kinds: Vec<&str> = log.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "sp_registered",
            "authn_request",
            "sp_initiated",
            "authn_request",
            "sp_initiated"
        ],
        "test sign-in, then the user's sign-in, at the SAML IdP"
    );

    // The tenant as the operator now sees it: all of it made in the portal,
    // by the setup link.
    let (_, t) = api.get(&format!("/admin/v1/tenants/{TENANT}")).await;
    assert_eq!(t["enforce_sso"], true, "{t}");
    assert_eq!(t["connections"].as_array().unwrap().len(), 2, "{t}");
    let (_, d) = api
        .get(&format!("/admin/v1/tenants/{TENANT}/domains"))
        .await;
    assert_eq!(d[0]["domain"], "acme.com", "{d}");
    assert_eq!(d[0]["status"], "verified", "{d}");
    let (_, audit) = api.get(&format!("/admin/v1/audit?tenant={TENANT}")).await;
    let by_link: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_kind"] == "setup_link")
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        by_link,
        [
            "enforcement.changed",
            "roles.changed",
            "connection.created",
            "connection.created",
            "domain.verified_checked",
            "domain.verified_checked",
            "domain.added",
            "setup_link.used",
        ],
        "every change by the setup link, newest first"
    );
}
