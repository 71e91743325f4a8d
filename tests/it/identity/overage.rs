//! Entra groups overage resolved through Microsoft Graph, against a fake
//! identity platform + Graph on loopback (`support::graph`) that speaks the
//! documented shapes: an ID token (OIDC, `_claim_names` → `_claim_sources`)
//! or a SAML assertion (`groups.link`) without groups makes Portcullis fetch
//! them with the app's credentials, cache them per user, map them through
//! `group_roles` — or refuse the login (`groups_overage`) when Graph fails,
//! unless the connection allows a login without groups.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::oidc::interop::{
    CLIENT_ID as IOP_CLIENT_ID, CLIENT_SECRET as IOP_CLIENT_SECRET, Jar, ONE_OP, login,
    start_pair_with,
};
use crate::support::env::*;
use crate::support::graph::{APP_ID, APP_SECRET, DIRECTORY, Fail, FakeGraph, GRAPH_SCOPE, Group};
use crate::support::idp::cookie_pair;
use crate::support::oidc_op::{CLIENT_ID, CLIENT_SECRET, TestOp, alice};
use crate::support::oidc_rp::Rp;
use crate::support::saml::{CONNECTION as SAML_CONNECTION, IdpKey, SamlSso, saml_toml};

/// Alice's object id in the fake directory.
const OID: &str = "4a3f9c3e-0c1b-4a55-9f07-2b8f8f0a1c11";
/// A security group that `group_roles` maps to `developer`.
const ENG: &str = "0b6d1f7e-3f0a-4c8e-9b1e-5d2f7c9a0e01";
/// A Microsoft 365 group (not security-enabled), mapped to nothing.
const ALL: &str = "0b6d1f7e-3f0a-4c8e-9b1e-5d2f7c9a0e02";

const DEFAULT_ROLES: &str = r#"group_roles = { "Engineering" = ["developer"] }"#;

fn roles_by_guid() -> String {
    format!(r#"group_roles = {{ "{ENG}" = ["developer"] }}"#)
}

fn alice_groups(graph: &FakeGraph) {
    graph.set_groups(
        OID,
        &[
            Group {
                id: ENG.into(),
                security: true,
            },
            Group {
                id: ALL.into(),
                security: false,
            },
        ],
    );
}

/// Alice's ID token as Entra sends it for a user in too many groups: no
/// `groups`, `_claim_names.groups` naming a `_claim_sources` entry whose
/// endpoint (here: a path of the fake no one may call) is never followed.
fn overage_claims(graph: &FakeGraph, oid: &str) -> Map<String, Value> {
    let mut u = alice();
    u.remove("groups");
    u.remove("email_verified");
    u.insert("tid".into(), json!(DIRECTORY));
    u.insert("oid".into(), json!(oid));
    u.insert("_claim_names".into(), json!({"groups": "src1"}));
    u.insert(
        "_claim_sources".into(),
        json!({"src1": {"endpoint": format!("{}/{DIRECTORY}/users/{oid}/getMemberObjects", graph.base)}}),
    );
    u
}

/// An Entra OIDC connection (`/{tid}/v2.0` issuer, preset `entra`) whose
/// provider asserts an overage for alice, with Graph at `graph`.
async fn entra_oidc(
    graph: &FakeGraph,
    graph_extra: &str,
    oidc_extra: &str,
    allow: bool,
) -> (TestOp, Rp) {
    let op = TestOp::start_at(&format!("/{DIRECTORY}/v2.0")).await;
    op.set_user(overage_claims(graph, OID));
    let extra = format!(
        "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n{oidc_extra}\n{}",
        graph.toml(graph_extra)
    );
    let rp = Rp::start_edited(&op.issuer, "entra", &extra, |t| {
        assert!(t.contains(DEFAULT_ROLES) && t.contains("preset = \"entra\"\n"));
        let t = t.replace(DEFAULT_ROLES, &roles_by_guid());
        if allow {
            t.replace(
                "preset = \"entra\"\n",
                "preset = \"entra\"\nallow_login_without_groups = true\n",
            )
        } else {
            t
        }
    })
    .await;
    (op, rp)
}

/// What the app sees on `/dashboard` with `session`: (groups, roles).
async fn identity(env: &TestEnv, session: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let app = alice_dashboard(env, session).await;
    let list = |name: &str| -> BTreeSet<String> {
        seen(&app, name)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    (list("x-forwarded-groups"), list("x-forwarded-roles"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn oidc_login(rp: &Rp) -> String {
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
    session.expect("session cookie")
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_overage_groups_come_from_graph_and_are_cached() {
    let graph = FakeGraph::start().await;
    alice_groups(&graph);
    let (_op, rp) = entra_oidc(&graph, "", "", false).await;

    let session = oidc_login(&rp).await;
    let (groups, roles) = identity(&rp.env, &session).await;
    assert_eq!(groups, set(&[ENG, ALL]));
    assert!(roles.contains("developer"), "{roles:?}");

    // The documented calls: a client-credentials token for Graph in the
    // token's directory, then getMemberGroups for the token's `oid`.
    let rec = graph.recorded();
    assert_eq!(rec.token.len(), 1, "{rec:?}");
    let (directory, form) = &rec.token[0];
    assert_eq!(directory, DIRECTORY);
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], APP_ID);
    assert_eq!(form["client_secret"], APP_SECRET);
    assert_eq!(form["scope"], GRAPH_SCOPE);
    assert_eq!(rec.member_groups.len(), 1, "{rec:?}");
    let call = &rec.member_groups[0];
    assert_eq!(call.user, OID);
    assert_eq!(call.body, json!({"securityEnabledOnly": false}));
    let bearer = call.authorization.as_deref().unwrap_or_default();
    assert!(bearer.starts_with("Bearer eyJ"), "{bearer}");
    // The endpoint named in `_claim_sources` is never called.
    assert!(rec.other.is_empty(), "{:?}", rec.other);

    // A second login within the cache TTL: the same groups, no Graph call.
    let again = oidc_login(&rp).await;
    assert_ne!(again, session);
    assert_eq!(identity(&rp.env, &again).await.0, set(&[ENG, ALL]));
    assert_eq!(graph.counts(), (1, 1));
    let m = rp.env.metrics().await;
    assert!(
        m.contains(r#"portcullis_groups_overage_total{connection="acme-oidc",tenant="acme"} 2"#),
        "{m}"
    );
}

/// `security_enabled_only` reaches Graph; `cache_seconds = 0` asks Graph
/// at every login, with the app token reused.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_security_groups_only_and_no_cache() {
    let graph = FakeGraph::start().await;
    alice_groups(&graph);
    let (_op, rp) = entra_oidc(
        &graph,
        "security_enabled_only = true\ncache_seconds = 0",
        "",
        false,
    )
    .await;
    for n in 1..=2 {
        let session = oidc_login(&rp).await;
        let (groups, roles) = identity(&rp.env, &session).await;
        assert_eq!(groups, set(&[ENG]));
        assert!(roles.contains("developer"), "{roles:?}");
        assert_eq!(graph.counts(), (1, n));
    }
    let rec = graph.recorded();
    assert!(
        rec.member_groups
            .iter()
            .all(|c| c.body == json!({"securityEnabledOnly": true}))
    );
    // the same app token both times
    assert_eq!(
        rec.member_groups[0].authorization,
        rec.member_groups[1].authorization
    );
}

/// One login refused with `groups_overage`: the generic page, no session,
/// the app never reached, the reason counted once; nothing about Graph
/// shown to the user.
async fn refused(rp: &Rp, case: &str) {
    let before = rp.refusal("groups_overage").await.named(case);
    let at = rp.begin().await;
    let started = Instant::now();
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{case}: {:?}",
        started.elapsed()
    );
    let body = before.assert(r, 403).await;
    assert!(
        body.contains("couldn"),
        "{case}: generic page expected: {body}"
    );
    for leak in [
        "Graph",
        "AADSTS",
        "GroupMember",
        "overage",
        "generalException",
        OID,
    ] {
        assert!(
            !body.contains(leak),
            "{case}: {leak} shown to the user: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_graph_failures_refuse_the_login() {
    let graph = FakeGraph::start().await;
    alice_groups(&graph);
    // No cache, so every login asks Graph; the OIDC connection's HTTP
    // timeout bounds the Graph calls too.
    let (op, rp) = entra_oidc(&graph, "cache_seconds = 0", "http_timeout_ms = 500", false).await;

    // The app's secret was rotated at Entra: the token endpoint says 401.
    graph.set_secret("rotated");
    refused(&rp, "rotated secret").await;
    assert_eq!(graph.counts(), (1, 0));
    graph.set_secret(APP_SECRET);

    // Graph answers 500.
    graph.fail(Some(Fail::Status500));
    refused(&rp, "Graph 500").await;
    // Graph doesn't answer within the timeout.
    graph.fail(Some(Fail::Hang));
    refused(&rp, "Graph hangs").await;
    graph.fail(None);

    // A user Graph doesn't know (404).
    op.set_user(overage_claims(
        &graph,
        "11111111-2222-4333-8444-555555555555",
    ));
    refused(&rp, "unknown user").await;
    op.set_user(overage_claims(&graph, OID));

    // Graph works again: signed in, with the groups.
    let session = oidc_login(&rp).await;
    assert_eq!(identity(&rp.env, &session).await.0, set(&[ENG, ALL]));
    let tokens = graph.counts().0;

    // The app token is revoked: one fresh token, once, and the login goes on.
    graph.revoke_tokens();
    let session = oidc_login(&rp).await;
    assert_eq!(identity(&rp.env, &session).await.0, set(&[ENG, ALL]));
    assert_eq!(graph.counts().0, tokens + 1);
    // Revoked and the secret rotated: the retry fails too, refused.
    graph.revoke_tokens();
    graph.set_secret("rotated");
    refused(&rp, "revoked token and rotated secret").await;
    assert_eq!(graph.counts().0, tokens + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_login_without_groups_signs_in_with_none() {
    let graph = FakeGraph::start().await;
    alice_groups(&graph);
    let (_op, rp) = entra_oidc(&graph, "", "", true).await;
    graph.fail(Some(Fail::Status500));
    let before = rp.env.metrics().await;
    let session = oidc_login(&rp).await;
    let (groups, roles) = identity(&rp.env, &session).await;
    assert!(groups.is_empty(), "{groups:?}");
    assert!(!roles.contains("developer"), "{roles:?}");
    assert_eq!(graph.counts(), (1, 1));
    let after = rp.env.metrics().await;
    let failures = |m: &str| {
        crate::support::refusal::sample(
            m,
            &crate::support::refusal::login_failure("groups_overage"),
        )
    };
    assert_eq!(failures(&before), failures(&after));
    assert!(
        after
            .contains(r#"portcullis_groups_overage_total{connection="acme-oidc",tenant="acme"} 1"#),
        "{after}"
    );
    // A failure is not cached: Graph back, the next login has the groups.
    graph.fail(None);
    let session = oidc_login(&rp).await;
    assert_eq!(identity(&rp.env, &session).await.0, set(&[ENG, ALL]));
}

/// panva's oidc-provider (pinned) with an Entra-shaped account in too many
/// groups: its userinfo answers `oid`, `tid` and a distributed `groups`
/// claim (`_claim_names` → `_claim_sources`) as OIDC Core 5.6.2 has it,
/// which Portcullis resolves through the fake Graph instead of following.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_distributed_groups_claim_resolved_through_graph() {
    let _one = ONE_OP.lock().await;
    let graph = FakeGraph::start().await;
    alice_groups(&graph);
    let endpoint = format!("{}/{DIRECTORY}/users/{OID}/getMemberObjects", graph.base);
    let overage = json!({"oid": OID, "tid": DIRECTORY, "endpoint": endpoint}).to_string();
    let (rp, op) = start_pair_with(
        &format!(
            "client_id = \"{IOP_CLIENT_ID}\"\nclient_secret = \"{IOP_CLIENT_SECRET}\"\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n{}",
            graph.toml("")
        ),
        None,
        &[("GROUPS_OVERAGE", overage)],
    )
    .await;
    let session = login(&rp, &op, &mut Jar::default()).await;
    let (groups, _) = identity(&rp.env, &session).await;
    assert_eq!(groups, set(&[ENG, ALL]));
    let rec = graph.recorded();
    assert_eq!(
        (rec.token.len(), rec.member_groups.len()),
        (1, 1),
        "{rec:?}"
    );
    assert_eq!(rec.token[0].0, DIRECTORY);
    assert_eq!(rec.member_groups[0].user, OID);
    assert!(rec.other.is_empty(), "{:?}", rec.other);
    let m = rp.env.metrics().await;
    assert!(
        m.contains(r#"portcullis_groups_overage_total{connection="acme-oidc",tenant="acme"} 1"#),
        "{m}"
    );
}

/// A SAML connection (preset `entra`) and the stand-in IdP.
async fn entra_saml(graph: &FakeGraph) -> SamlSso {
    let dir = tempfile::tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let connections = format!(
        "[[tenants.connections]]\nid = \"{SAML_CONNECTION}\"\nprotocol = \"saml\"\npreset = \"entra\"\n{}{}",
        saml_toml(&[key.cert_pem()], ""),
        graph.toml("")
    );
    SamlSso::start_mapped(
        dir,
        key,
        &connections,
        &format!("{{ \"{ENG}\" = [\"developer\"] }}"),
    )
    .await
}

/// A signed response to a fresh login whose assertion carries Entra's
/// overage attributes instead of groups.
async fn saml_overage_login(s: &SamlSso, graph: &FakeGraph) -> reqwest::Response {
    let started = s.begin().await;
    let mut resp = s.resp(&started);
    resp.groups = Vec::new();
    let attr = |name: &str, value: &str| {
        format!(
            r#"<saml:Attribute Name="{name}"><saml:AttributeValue>{value}</saml:AttributeValue></saml:Attribute>"#
        )
    };
    let entra = [
        attr(
            "http://schemas.microsoft.com/identity/claims/tenantid",
            DIRECTORY,
        ),
        attr(
            "http://schemas.microsoft.com/identity/claims/objectidentifier",
            OID,
        ),
        attr(
            "http://schemas.microsoft.com/claims/groups.link",
            &format!("{}/{DIRECTORY}/users/{OID}/getMemberObjects", graph.base),
        ),
    ]
    .concat();
    let template = resp.template();
    let empty = r#"<saml:Attribute Name="groups"></saml:Attribute>"#;
    assert!(template.contains(empty), "{template}");
    let xml = resp.sign_template(&template.replace(empty, &entra), &s.key, s.dir.path());
    s.post(&started, &crate::support::saml::b64(&xml)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn saml_groups_link_resolved_through_graph() {
    let graph = FakeGraph::start().await;
    alice_groups(&graph);
    let s = entra_saml(&graph).await;

    let r = saml_overage_login(&s, &graph).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let session = cookie_pair(&r, "portcullis_session=").expect("session");
    let (groups, roles) = identity(&s.env, &session).await;
    assert_eq!(groups, set(&[ENG, ALL]));
    assert!(roles.contains("developer"), "{roles:?}");
    let rec = graph.recorded();
    assert_eq!(rec.token.len(), 1);
    assert_eq!(rec.token[0].0, DIRECTORY);
    assert_eq!(rec.member_groups.len(), 1);
    assert_eq!(rec.member_groups[0].user, OID);
    assert!(
        rec.other.is_empty(),
        "the groups.link was followed: {:?}",
        rec.other
    );

    // Within the TTL: no second call.
    let r = saml_overage_login(&s, &graph).await;
    assert_eq!(r.status(), 303);
    assert_eq!(graph.counts(), (1, 1));
    // counted like OIDC's (the metric predates SAML support)
    let m = s.env.metrics().await;
    assert!(
        m.contains(&format!(
            r#"portcullis_groups_overage_total{{connection="{SAML_CONNECTION}",tenant="acme"}} 2"#
        )),
        "{m}"
    );

    // Graph failing on a fresh connection (nothing cached): refused.
    let graph2 = FakeGraph::start().await;
    graph2.fail(Some(Fail::Status500));
    let s2 = entra_saml(&graph2).await;
    let before = s2.failures("groups_overage").await;
    let r = saml_overage_login(&s2, &graph2).await;
    assert_eq!(r.status(), 403);
    assert!(cookie_pair(&r, "portcullis_session=").is_none_or(|c| c == "portcullis_session="));
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("Graph") && !body.contains("overage"),
        "{body}"
    );
    s2.expect_failures("groups_overage", before + 1).await;
    assert_eq!(graph2.counts(), (1, 1));
}
