//! Interop with panva's `oidc-provider` (OpenID Certified), pinned in
//! `tests/oidc-provider/package-lock.json` and started here on 127.0.0.1:
//! a full login through its real authorization, token and userinfo
//! endpoints reaches the app with the right identity; RP-initiated logout
//! through its `end_session_endpoint` (with `id_token_hint` and
//! `post_logout_redirect_uri`); and its back-channel logout token ends the
//! session at Portcullis.
//!
//! Needs `node` (20+) and `tests/oidc-provider/node_modules` (`make test`
//! runs `npm ci` there). A missing one fails the test (never skips it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::oidc_rp::{CONNECTION, Rp};

pub(crate) const CLIENT_ID: &str = "portcullis-interop";
pub(crate) const CLIENT_SECRET: &str = "interop-secret-not-a-secret";
/// The provider's machine client (client_credentials grant) and the API
/// its access tokens are for (the connection's `machine_audience`).
const MACHINE_CLIENT_ID: &str = "reports-sync";
const MACHINE_CLIENT_SECRET: &str = "machine-secret-not-a-secret";
const MACHINE_AUDIENCE: &str = "https://api.acme.test";
/// Registered at the provider and configured at Portcullis; never visited.
const POST_LOGOUT: &str = "http://127.0.0.1:1/signed-out";

/// One provider process at a time: on 2 busy cores, node's start-up is
/// what suffers first.
pub(crate) static ONE_OP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Generous per attempt: seconds normally, but the whole suite shares 2
/// cores. A node that stays silent longer is killed and another started
/// on a fresh port (twice in about a dozen full runs one never answered within
/// 120 s while the same test passed alone in under a second).
const START_TIMEOUT: Duration = Duration::from_secs(45);

fn op_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

pub(crate) struct NodeOp {
    pub(crate) issuer: String,
    _child: tokio::process::Child,
}

/// Starts `op.mjs` on `port`, registered for `rp`'s URLs; with
/// `client_jwks` the client authenticates with `private_key_jwt`.
/// The relying party (on `issuer`'s port) and the provider. node binds the
/// port itself, so another process may take it first; node then exits
/// before its ready line and both start again on another port (at most 5
/// times). The ready line comes only once node listens, so the provider
/// that answers is ours.
pub(crate) async fn start_pair(oidc_extra: &str, client_jwks: Option<String>) -> (Rp, NodeOp) {
    start_pair_with(oidc_extra, client_jwks, &[]).await
}

/// [`start_pair`] with more environment for `op.mjs` (e.g. `GROUPS_OVERAGE`).
pub(crate) async fn start_pair_with(
    oidc_extra: &str,
    client_jwks: Option<String>,
    op_env: &[(&str, String)],
) -> (Rp, NodeOp) {
    for _ in 0..5 {
        let port = bind_local().local_addr().unwrap().port();
        let issuer = format!("http://127.0.0.1:{port}");
        let rp = Rp::start(&issuer, "generic", oidc_extra).await;
        let proxy = rp.env.url("");
        let client = Client {
            redirect_uri: format!("{proxy}/.portcullis/oidc/{CONNECTION}/callback"),
            backchannel_logout_uri: format!(
                "{proxy}/.portcullis/oidc/{CONNECTION}/backchannel-logout"
            ),
            jwks: client_jwks.clone(),
        };
        if let Some(op) = start_node_op(port, &client, op_env).await {
            assert_eq!(op.issuer, issuer);
            return (rp, op);
        }
    }
    panic!("oidc-provider exited or stayed silent before listening, 5 times");
}

/// The client (relying party) registered at the provider: what an admin
/// types into its console.
pub(crate) struct Client {
    pub(crate) redirect_uri: String,
    pub(crate) backchannel_logout_uri: String,
    /// The client's public keys (JSON): it then authenticates with
    /// `private_key_jwt` instead of [`CLIENT_SECRET`].
    pub(crate) jwks: Option<String>,
}

/// The provider alone, for a relying party that already runs (its URLs in
/// `client`), on a port of its own choosing (at most 5 tries).
pub(crate) async fn start_op_for(client: &Client) -> NodeOp {
    for _ in 0..5 {
        let port = bind_local().local_addr().unwrap().port();
        if let Some(op) = start_node_op(port, client, &[]).await {
            return op;
        }
    }
    panic!("oidc-provider exited or stayed silent before listening, 5 times");
}

/// `None` if node exited before listening (the port was taken) or stayed
/// silent for [`START_TIMEOUT`].
/// `op_env`: more environment for `op.mjs`.
async fn start_node_op(port: u16, client: &Client, op_env: &[(&str, String)]) -> Option<NodeOp> {
    let module = op_dir().join("node_modules/oidc-provider/package.json");
    assert!(
        module.is_file(),
        "{} is missing: run `npm ci --prefix tests/oidc-provider` (make test does)",
        module.display()
    );
    let mut cmd = tokio::process::Command::new("node");
    if let Some(jwks) = &client.jwks {
        cmd.env("CLIENT_JWKS", jwks);
    }
    cmd.envs(op_env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd
        .arg("op.mjs")
        .current_dir(op_dir())
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", &client.redirect_uri)
        .env("POST_LOGOUT_URI", POST_LOGOUT)
        .env("BACKCHANNEL_URI", &client.backchannel_logout_uri)
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("MACHINE_CLIENT_ID", MACHINE_CLIENT_ID)
        .env("MACHINE_CLIENT_SECRET", MACHINE_CLIENT_SECRET)
        .env("MACHINE_AUDIENCE", MACHINE_AUDIENCE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is not on PATH");
    // oidc-provider's start-up advice (in-memory adapter, TTL defaults,
    // Node.js version) is expected here; anything else is worth seeing.
    let stderr = child.stderr.take().unwrap();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if !l.starts_with("oidc-provider WARNING") && !l.starts_with("oidc-provider NOTICE") {
                eprintln!("oidc-provider: {l}");
            }
        }
    });
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let Ok(line) = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await else {
        // Its stderr (if any) was printed by the task above.
        eprintln!(
            "oidc-provider (pid {:?}, port {port}) silent for {START_TIMEOUT:?}: killed, trying another",
            child.id()
        );
        let _ = child.kill().await;
        return None;
    };
    let line = line.unwrap()?;
    // Keep reading: a closed pipe would kill node at its next write.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    Some(NodeOp {
        issuer: v["issuer"].as_str().unwrap().to_owned(),
        _child: child,
    })
}

/// A browser's cookies at the provider (one origin, so names suffice).
#[derive(Default)]
pub(crate) struct Jar(HashMap<String, String>);

impl Jar {
    fn take(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            let gone =
                val.is_empty() || v.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if gone {
                self.0.remove(k);
            } else {
                self.0.insert(k.to_owned(), val.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

/// Follows the provider's redirects (at most 10) with its cookies until it
/// sends the browser away from itself; returns that URL.
pub(crate) async fn through_op(op: &NodeOp, jar: &mut Jar, mut url: String) -> String {
    for _ in 0..10 {
        if !url.starts_with(&op.issuer) {
            return url;
        }
        let r = client()
            .get(&url)
            .header("cookie", jar.header())
            .send()
            .await
            .unwrap();
        jar.take(&r);
        let status = r.status();
        assert!(
            status.is_redirection(),
            "{url}: {status} {}",
            r.text().await.unwrap()
        );
        url = absolute(&op.issuer, r.headers()["location"].to_str().unwrap());
    }
    panic!("too many redirects at the provider");
}

/// Logs in like a browser with its own provider cookies; returns the
/// Portcullis session cookie.
pub(crate) async fn login(rp: &Rp, op: &NodeOp, jar: &mut Jar) -> String {
    let (authorize, flow) = rp.start_flow("/dashboard").await;
    assert!(
        authorize.starts_with(&format!("{}/auth?", op.issuer)),
        "{authorize}"
    );
    let callback = through_op(op, jar, authorize).await;
    assert!(
        callback.starts_with(
            &rp.env
                .url(&format!("/.portcullis/oidc/{CONNECTION}/callback?"))
        ),
        "{callback}"
    );
    // RFC 9207: oidc-provider names itself in the response; we check it.
    assert!(callback.contains("iss="), "{callback}");
    let cb = rp.callback(&callback, Some(&flow)).await;
    let status = cb.status();
    let session = cookie_pair(&cb, "portcullis_session=");
    if status != 303 {
        let m = rp.env.metrics().await;
        let refusals: Vec<&str> = m
            .lines()
            .filter(|l| l.starts_with("portcullis_login_failures_total"))
            .collect();
        panic!("login refused ({status}): {refusals:?}");
    }
    session.unwrap()
}

/// Signs out at the provider: GETs `url` (its end_session endpoint), posts
/// its confirmation form with "yes, sign out of the provider too", and
/// returns where it sends the browser afterwards.
async fn logout_at_op(op: &NodeOp, jar: &mut Jar, url: &str) -> String {
    let r = client()
        .get(url)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.take(&r);
    assert_eq!(r.status(), 200, "{url}");
    let page = r.text().await.unwrap();
    let action = attr(&page, "action=\"").expect("logout form");
    let xsrf = page
        .split("name=\"xsrf\"")
        .nth(1)
        .and_then(|rest| attr(rest, "value=\""))
        .expect("xsrf field");
    let r = client()
        .post(absolute(&op.issuer, &action))
        .header("cookie", jar.header())
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    jar.take(&r);
    assert!(r.status().is_redirection(), "{}", r.status());
    absolute(&op.issuer, r.headers()["location"].to_str().unwrap())
}

fn attr(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].replace("&amp;", "&"))
}

async fn whoami(rp: &Rp, session: &str) -> u16 {
    client()
        .get(rp.env.url("/.portcullis/session"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_login_and_both_logouts() {
    let _one = ONE_OP.lock().await;
    // The provider knows our URLs; we know its issuer (discovery is lazy).
    let (rp, op) = start_pair(
        &format!(
            "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n\
             post_logout_redirect_uri = \"{POST_LOGOUT}\"\n"
        ),
        None,
    )
    .await;
    let issuer = op.issuer.clone();

    // 1. Login: oidc-provider keeps scope claims out of the ID token in
    // the code flow, so email, name and groups come from userinfo.
    let mut browser1 = Jar::default();
    let s1 = login(&rp, &op, &mut browser1).await;
    assert_alice_engineer(&rp.env, &s1).await;

    // 2. Back-channel logout: the user signs out at the provider directly;
    // the provider POSTs a logout token for its session and Portcullis
    // ends s1.
    let mut browser2 = Jar::default();
    let s2 = login(&rp, &op, &mut browser2).await;
    let back = logout_at_op(&op, &mut browser1, &format!("{issuer}/session/end")).await;
    assert_eq!(
        back,
        format!("{issuer}/session/end/success"),
        "no post-logout redirect asked"
    );
    let mut ended = false;
    for _ in 0..50 {
        if whoami(&rp, &s1).await == 401 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ended,
        "back-channel logout did not end the session: {:?}",
        rp.env
            .metrics()
            .await
            .lines()
            .filter(|l| l.contains("backchannel"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    );
    assert_eq!(whoami(&rp, &s2).await, 200, "only the named session ends");
    let m = rp.env.metrics().await;
    assert!(
        m.contains(r#"portcullis_oidc_backchannel_logouts_total{connection="acme-oidc",result="ok",tenant="acme"} 1"#),
        "{m}"
    );

    // 3. RP-initiated logout: /.portcullis/logout (confirmed by POST with
    // its CSRF token) ends s2 and sends the browser to the provider's
    // end_session_endpoint with id_token_hint; the provider accepts the
    // hint and signs the user out there too.
    let r = logout(&rp.env, &s2, "/").await;
    assert_eq!(r.status(), 303);
    let end = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(end.starts_with(&format!("{issuer}/session/end?")), "{end}");
    assert!(end.contains("id_token_hint=") && end.contains(&format!("client_id={CLIENT_ID}")));
    assert_eq!(whoami(&rp, &s2).await, 401);
    let after = logout_at_op(&op, &mut browser2, &end).await;
    // ...and returns the browser to our registered post_logout_redirect_uri.
    assert_eq!(after, POST_LOGOUT);
    // The provider's session is gone: a new login must authenticate again
    // (the scripted interaction runs once more) and still works.
    let s3 = login(&rp, &op, &mut browser2).await;
    assert_alice_engineer(&rp.env, &s3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_accepts_private_key_jwt() {
    let _one = ONE_OP.lock().await;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use ring::signature::KeyPair;
    // The relying party's own P-256 key: private half in the config,
    // public half registered at the provider.
    let der = portcullis::identity::generate_signing_key().unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let point = pair.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "rp-1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]});
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&der)
    );
    let (rp, op) = start_pair(
        &format!(
            "client_id = \"{CLIENT_ID}\"\ntoken_auth_method = \"private_key_jwt\"\n\
             private_key = \"\"\"\n{pem}\"\"\"\nprivate_key_id = \"rp-1\"\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n"
        ),
        Some(jwks.to_string()),
    )
    .await;
    let mut browser = Jar::default();
    let session = login(&rp, &op, &mut browser).await;
    assert_alice_engineer(&rp.env, &session).await;
}

/// Machine access against a certified provider: a real `client_credentials`
/// grant with a resource indicator yields an RFC 9068 JWT access token,
/// which authenticates an API call as a service principal of the
/// connection's tenant; people still sign in through the browser flow, and
/// a session cookie beside a token is refused.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_client_credentials_token_authenticates_a_machine() {
    let _one = ONE_OP.lock().await;
    let (rp, op) = start_pair(
        &format!(
            "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n\
             machine_audience = \"{MACHINE_AUDIENCE}\"\nmachine_groups_claim = \"roles\"\n"
        ),
        None,
    )
    .await;
    let discovery: serde_json::Value = client()
        .get(format!("{}/.well-known/openid-configuration", op.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = |resource: &str| {
        client()
            .post(discovery["token_endpoint"].as_str().unwrap())
            .basic_auth(MACHINE_CLIENT_ID, Some(MACHINE_CLIENT_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", "reports:read"),
            ])
            .send()
    };
    let resp = grant(MACHINE_AUDIENCE).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");

    let (status, app) = echo(
        client()
            .get(rp.env.url("/dashboard"))
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-user"), Some(MACHINE_CLIENT_ID));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
    assert_eq!(seen(&app, "x-forwarded-principal-type"), Some("service"));
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("Engineering"));
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("developer"));
    assert_eq!(seen(&app, "authorization"), None);

    // people still sign in through the browser flow (the provider keeps
    // their access token bound to userinfo)
    let mut jar = Jar::default();
    let session = login(&rp, &op, &mut jar).await;
    assert_alice_engineer(&rp.env, &session).await;
    let (status, _) = echo(
        client()
            .get(rp.env.url("/dashboard"))
            .header("cookie", &session)
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, 400, "a cookie and a token on one request");
    let m = rp.env.metrics().await;
    assert!(
        m.contains(r#"portcullis_machine_auth_total{kind="jwt"} 1"#),
        "{m}"
    );
}
