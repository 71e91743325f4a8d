//! The setup portal on the public listener: setup links redeemed once for
//! a portal cookie, every page's change through the admin operations (same
//! validation as the API, errors next to the field), CSRF, intents,
//! read-only file tenants, `/.portcullis/admin` for a tenant's own admins,
//! the audit trail, and hostile input.

use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::admin::AdminApi;
use crate::support::dns::DnsServer;
use crate::support::env::*;
use crate::support::postgres::PgCluster;
use crate::support::scim::token_status;

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn setup_links_open_once_and_say_why_not() {
        super::setup_links_open_once_and_say_why_not(super::Db::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn setup_links_open_once_and_say_why_not() {
        super::setup_links_open_once_and_say_why_not(super::Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_page_changes_the_tenant_through_the_operations() {
        super::every_page_changes_the_tenant(super::Db::Postgres).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_changes_the_tenant_through_the_operations() {
    every_page_changes_the_tenant(Db::Sqlite).await;
}

/// A file tenant `acme` (acme.com, admins: role `admin`), a DNS server
/// for domain proofs, the operator's API, and a store tenant `globex`
/// (admins: role `it-admin`).
struct Setup {
    env: TestEnv,
    dns: DnsServer,
    api: AdminApi,
}

async fn setup_with(db: Db, session_extra: &str, extra: &str) -> Setup {
    setup_at(db, session_extra, extra, None).await
}

/// `public_url`: the origin the pages name (default: the listener's).
async fn setup_at(db: Db, session_extra: &str, extra: &str, public_url: Option<&str>) -> Setup {
    let dns = DnsServer::start().await;
    let store_url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgCluster::shared().await.fresh_database().await),
    };
    let env = TestEnv::with(Options {
        store_url,
        extra: format!(
            "[dns]\nnameservers = [\"{}\"]\n\n[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\nadmin_roles = [\"admin\"]\n{extra}",
            dns.addr()
        ),
        session_extra: session_extra.into(),
        admin_extra: "allow_loopback_idp_urls = true".into(),
        factories: portcullis::auth::Factories::builtin(),
        public_url: public_url.map(str::to_owned),
        ..Default::default()
    })
    .await;
    let api = AdminApi::new(&env, "ops").await;
    api.create_tenant(
        &json!({"id": "globex", "name": "Globex <Corp>", "admin_roles": ["it-admin"]}),
    )
    .await;
    Setup { env, dns, api }
}

async fn setup(db: Db) -> Setup {
    setup_with(db, "", "").await
}

/// A setup link's URL for `globex`.
async fn link(s: &Setup, intents: &[&str]) -> String {
    s.api.setup_link("globex", intents).await
}

/// A browser at the portal: its cookie, and the CSRF token of the last
/// page it loaded.
struct Browser {
    cookie: String,
    csrf: String,
    base: String,
    env_url: String,
}

impl Browser {
    /// Opens a setup link the way a browser does; panics unless it lands.
    async fn open(s: &Setup, url: &str) -> Browser {
        let resp = client().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
        assert_eq!(resp.headers()[LOCATION], "/.portcullis/setup");
        let set = resp.headers()[SET_COOKIE].to_str().unwrap();
        let mut b = Browser {
            cookie: set.split(';').next().unwrap().to_owned(),
            csrf: String::new(),
            base: "/.portcullis/setup".into(),
            env_url: s.env.url(""),
        };
        let (status, _) = b.get("").await;
        assert_eq!(status, 200);
        b
    }

    /// A signed-in user at `/.portcullis/admin`.
    fn signed_in(s: &Setup, cookie: String) -> Browser {
        Browser {
            cookie,
            csrf: String::new(),
            base: "/.portcullis/admin".into(),
            env_url: s.env.url(""),
        }
    }

    fn url(&self, page: &str) -> String {
        match page {
            "" => format!("{}{}", self.env_url, self.base),
            p => format!("{}{}/{p}", self.env_url, self.base),
        }
    }

    async fn get(&mut self, page: &str) -> (u16, String) {
        let resp = client()
            .get(self.url(page))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let html = resp.text().await.unwrap();
        if let Some(t) = hidden_field(&html, "csrf") {
            self.csrf = t;
        }
        (status, html)
    }

    /// Posts a form with this session's CSRF token: (status, Location or
    /// page).
    async fn post(&mut self, page: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut all: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        all.extend_from_slice(fields);
        let resp = client()
            .post(self.url(page))
            .header("cookie", &self.cookie)
            .form(&all)
            .send()
            .await
            .unwrap();
        answer(resp).await
    }

    /// Posts `multipart/form-data` (a file upload), with the CSRF token.
    async fn post_multipart(&mut self, page: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let boundary = "----portcullis-test-boundary";
        let mut body = String::new();
        let csrf = self.csrf.clone();
        for (name, value) in std::iter::once(&("csrf", csrf.as_str())).chain(fields) {
            let filename = if *name == "metadata_file" {
                "; filename=\"metadata.xml\"\r\nContent-Type: text/xml"
            } else {
                ""
            };
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let resp = client()
            .post(self.url(page))
            .header("cookie", &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        answer(resp).await
    }
}

async fn answer(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    match resp.headers().get(LOCATION) {
        Some(l) => (status, l.to_str().unwrap().to_owned()),
        None => (status, resp.text().await.unwrap()),
    }
}

async fn audit(s: &Setup) -> Vec<Value> {
    let (status, page) = s.api.get("/admin/v1/audit?tenant=globex").await;
    assert_eq!(status, 200);
    page["events"].as_array().unwrap().clone()
}

/// The audit events of `action`, as (actor_kind, actor, target).
async fn audited(s: &Setup, action: &str) -> Vec<(String, String, String)> {
    audit(s)
        .await
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            (
                e["actor_kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn link_id(url: &str) -> String {
    url.rsplit('/').next().unwrap()[4..20].to_owned()
}

async fn setup_links_open_once_and_say_why_not(db: Db) {
    let s = setup_with(db, "secure = true", "").await;
    let url = link(&s, &["domain", "sso"]).await;
    let id = link_id(&url);
    let token = url.rsplit('/').next().unwrap().to_owned();

    // Unknown: malformed, never issued, or the right id with a wrong secret.
    let wrong_secret = format!("psl_{id}_{}", "0".repeat(64));
    let never = format!("psl_{}_{}", "f".repeat(16), "0".repeat(64));
    for bad in [
        "nothing".to_owned(),
        wrong_secret,
        never,
        "psl_%2e%2e%2f%2e%2e_x".to_owned(),
        format!("{token}x"),
        "A".repeat(4000),
    ] {
        let resp = client()
            .get(s.env.url(&format!("/.portcullis/setup/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{bad}");
        assert!(resp.headers().get(SET_COOKIE).is_none());
        let html = resp.text().await.unwrap();
        assert!(html.contains("Setup link not recognised"), "{html}");
    }
    // Nothing above used the link up.
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], "/.portcullis/setup");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("__Secure-portcullis_setup="),
        "secure cookie name: {set}"
    );
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/.portcullis/setup",
    ] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
    }
    let max_age: i64 = set
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&max_age), "{set}");
    assert!(
        !set.contains(&token[20..]),
        "the token is not in the cookie"
    );
    let cookie = set.split(';').next().unwrap().to_owned();

    // Redeemed once, audited with the link as actor.
    assert_eq!(
        audited(&s, "setup_link.used").await,
        [("setup_link".into(), id.clone(), id.clone())]
    );
    // Used: a second browser is told so; the first one just goes on.
    let again = client().get(&url).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.headers().get(SET_COOKIE).is_none());
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("This setup link was already used")
    );
    let back = client()
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 303);
    assert_eq!(audited(&s, "setup_link.used").await.len(), 1);

    // The portal session works; its pages carry the portal's CSP.
    let page = client()
        .get(s.env.url("/.portcullis/setup"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("Globex &#60;Corp&#62;") || html.contains("Globex &lt;Corp&gt;"));
    assert!(!html.contains("Globex <Corp>"), "names are escaped");
    // Without the cookie, or with a forged one: no portal.
    for c in [
        String::new(),
        "__Secure-portcullis_setup=forged".into(),
        cookie.replace("__Secure-portcullis_setup=", "__Secure-portcullis_setup=x"),
    ] {
        let r = client()
            .get(s.env.url("/.portcullis/setup/domains"))
            .header("cookie", c)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }

    // Expired: a link whose time is up says so.
    let expired_token = format!("psl_{}_{}", "e".repeat(16), "1".repeat(64));
    let now = portcullis::clock::now();
    let mut tx = s.env.shared.store.begin_write("globex").await.unwrap();
    tx.setup_links()
        .insert(&portcullis::store::SetupLinkRow {
            id: "e".repeat(16),
            tenant: "globex".into(),
            token_hash: portcullis::secret::sha256_hex(expired_token.as_bytes()),
            intents: "[\"domain\"]".into(),
            created_by: "test".into(),
            created_at: now - 7200,
            expires_at: now - 60,
            used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = client()
        .get(s.env.url(&format!("/.portcullis/setup/{expired_token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("This setup link has expired")
    );

    // Withdrawn with its tenant: the link says so, the portal session ends.
    let unused = link(&s, &["domain"]).await;
    let (status, _) = s.api.delete("/admin/v1/tenants/globex").await;
    assert_eq!(status, 204);
    let r = client().get(&unused).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("This setup link was withdrawn")
    );
    let r = client()
        .get(s.env.url("/.portcullis/setup"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let m = s.env.metrics_with("portcullis_portal_refusals_total").await;
    for reason in [
        "link_unknown",
        "link_used",
        "link_expired",
        "link_revoked",
        "session_ended",
    ] {
        assert!(
            m.contains(&format!(
                "portcullis_portal_refusals_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {m}"
        );
    }
}

async fn every_page_changes_the_tenant(db: Db) {
    let s = setup(db).await;
    let url = link(&s, &["domain", "sso", "scim", "enforce", "roles"]).await;
    let id = link_id(&url);
    let mut b = Browser::open(&s, &url).await;
    let (_, overview) = b.get("").await;
    for section in [
        "Domains",
        "Single sign-on",
        "Provisioning",
        "Enforce SSO",
        "Group → role mapping",
    ] {
        assert!(overview.contains(section), "{section}");
    }

    // Domains: validation next to the field, the TXT record, Verify.
    b.get("domains").await;
    let (status, html) = b.post("domains", &[("domain", "gmail.com")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"domain-error\""), "{html}");
    assert!(html.contains("value=\"gmail.com\""), "input kept");
    let (status, html) = b
        .post("domains", &[("domain", "<script>alert(1)</script>.com")])
        .await;
    assert_eq!(status, 400);
    assert!(!html.contains("<script>alert(1)"), "escaped: {html}");
    let (status, loc) = b.post("domains", &[("domain", "Globex.com")]).await;
    assert_eq!((status, loc.as_str()), (303, "/.portcullis/setup/domains"));
    let (_, html) = b.get("domains").await;
    assert!(html.contains("_portcullis-challenge.globex.com"), "{html}");
    assert!(html.contains("class=\"badge pending\""));
    let (_, d) = s.api.get("/admin/v1/tenants/globex/domains").await;
    let record = d[0]["record_value"].as_str().unwrap().to_owned();
    assert!(html.contains(&record), "the TXT value is shown");
    s.dns.set_txt("_portcullis-challenge.globex.com", &record);
    let (status, _) = b.post("domains/verify", &[("domain", "globex.com")]).await;
    assert_eq!(status, 303);
    let (_, html) = b.get("domains").await;
    assert!(html.contains("class=\"badge verified\""), "{html}");

    // SSO: the list of IdPs, a refused then a good OIDC connection.
    let (_, html) = b.get("sso").await;
    for idp in [
        "Microsoft Entra ID",
        "Okta",
        "Google Workspace",
        "OneLogin",
        "JumpCloud",
        "Duo",
        "Other SAML 2.0 IdP",
        "Other OpenID Connect provider",
    ] {
        assert!(html.contains(idp), "{idp}");
    }
    let (_, html) = b.get("sso/new/okta").await;
    assert!(
        html.contains(&format!(
            "http://{}/.portcullis/oidc/globex-okta/callback",
            s.env.proxy
        )),
        "redirect URI to register: {html}"
    );
    assert!(html.contains("data-copy"), "copy buttons");
    let (status, html) = b
        .post_multipart(
            "sso/new/okta",
            &[
                ("id", "globex-okta"),
                ("issuer", "https://globex.okta.example"),
                ("client_secret", "s3cret-okta"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("client_id"), "{html}");
    assert!(!html.contains("s3cret-okta"), "a secret is never echoed");
    let (status, loc) = b
        .post_multipart(
            "sso/new/okta",
            &[
                ("id", "globex-okta"),
                ("display_name", "Okta <b>SSO</b>"),
                ("issuer", "https://globex.okta.example"),
                ("client_id", "rp"),
                ("client_secret", "s3cret-okta"),
            ],
        )
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (303, "/.portcullis/setup/sso/c/globex-okta")
    );
    let (_, html) = b.get("sso/c/globex-okta").await;
    assert!(
        !html.contains("<b>SSO</b>") && html.contains("Okta &#60;b&#62;SSO")
            || html.contains("Okta &lt;b&gt;SSO")
    );
    assert!(!html.contains("s3cret-okta"));
    // Test sign-in is a plain link that moves on to a one-time test link.
    assert!(html.contains("href=\"/.portcullis/setup/sso/c/globex-okta/test\""));
    let resp = client()
        .get(b.url("sso/c/globex-okta/test"))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let test = resp.headers()[LOCATION].to_str().unwrap();
    assert!(
        test.starts_with(&format!(
            "http://{}/.portcullis/sso/globex%2Dokta/test?token=",
            s.env.proxy
        )),
        "{test}"
    );

    // SAML: metadata uploaded as a file; the values to paste; update cert.
    let dir = tempfile::tempdir().unwrap();
    let xml = metadata_xml(dir.path(), "one");
    let (_, html) = b.get("sso/new/onelogin").await;
    assert!(html.contains(&format!(
        "http://{}/.portcullis/saml/globex-onelogin/acs",
        s.env.proxy
    )));
    assert!(html.contains("User.email"), "the preset's attribute names");
    let (status, loc) = b
        .post_multipart(
            "sso/new/onelogin",
            &[("id", "globex-onelogin"), ("metadata_file", &xml)],
        )
        .await;
    assert_eq!(status, 303, "{loc}");
    let (_, html) = b.get("sso/c/globex-onelogin").await;
    assert!(html.contains(&format!(
        "http://{}/.portcullis/saml/globex-onelogin/metadata",
        s.env.proxy
    )));
    let (status, html) = b
        .post_multipart(
            "sso/c/globex-onelogin/update",
            &[("idp_metadata_xml", "<md:EntityDescriptor/>")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("idp_metadata_xml"), "{html}");
    let newer = metadata_xml(dir.path(), "two");
    let (status, loc) = b
        .post_multipart(
            "sso/c/globex-onelogin/update",
            &[("idp_metadata_xml", &newer)],
        )
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (303, "/.portcullis/setup/sso/c/globex-onelogin?saved=1")
    );
    let (_, c) = s
        .api
        .get("/admin/v1/tenants/globex/connections/globex-onelogin")
        .await;
    let stored = c["connection"]["saml"]["idp_metadata_xml"]
        .as_str()
        .unwrap();
    assert!(
        stored.contains(&format!("({} bytes)", newer.len())),
        "{stored}"
    );

    // Provisioning: JIT with a role; SCIM token shown once.
    b.get("provisioning").await;
    let (status, _) = b.post("provisioning", &[("mode", "bogus")]).await;
    assert_eq!(status, 400);
    let (status, _) = b
        .post(
            "provisioning",
            &[("mode", "jit"), ("default_role", "viewer")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["jit"], json!({"enabled": true, "default_role": "viewer"}));
    // SCIM is chosen, not inferred: the token comes with the choice, the
    // page says SCIM before anyone is provisioned, and leaving SCIM
    // deletes the token.
    let (status, html) = b.post("provisioning/scim-token", &[]).await;
    assert_eq!(status, 400, "no rotation before SCIM is chosen");
    assert!(html.contains("Choose SCIM and save first."));
    let shown = |html: &str| {
        let needle = "id=\"scim-token\" data-copy>";
        let start = html.find(needle).expect("token shown") + needle.len();
        html[start..start + html[start..].find('<').unwrap()].to_owned()
    };
    let (status, html) = b.post("provisioning", &[("mode", "scim")]).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("http://{}/scim/v2", s.env.proxy)));
    let first = shown(&html);
    assert!(first.starts_with("pcs_"), "{first}");
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["jit"]["enabled"], false);
    let env = &s.env;
    let scim = |token: String| async move { token_status(env, &token).await };
    assert_eq!(scim(first.clone()).await, 200);
    let checked =
        |html: &str, mode: &str| html.contains(&format!("name=\"mode\" value=\"{mode}\" checked"));
    let (_, html) = b.get("provisioning").await;
    assert!(!html.contains(&first), "shown once");
    assert!(
        checked(&html, "scim"),
        "SCIM shown with nobody provisioned yet"
    );
    // Saving SCIM again keeps the live token; rotating replaces it.
    let (status, _) = b.post("provisioning", &[("mode", "scim")]).await;
    assert_eq!(status, 303);
    assert_eq!(scim(first.clone()).await, 200);
    let (status, html) = b.post("provisioning/scim-token", &[]).await;
    assert_eq!(status, 200);
    let token = shown(&html);
    assert_eq!(scim(first.clone()).await, 401);
    assert_eq!(scim(token.clone()).await, 200);
    // Manual: the IdP's token stops working at once.
    let (status, _) = b.post("provisioning", &[("mode", "manual")]).await;
    assert_eq!(status, 303);
    assert_eq!(scim(token.clone()).await, 401);
    let (_, html) = b.get("provisioning").await;
    assert!(checked(&html, "manual"), "manual after SCIM");
    let token = token.as_str();

    // Enforce: needs the confirmation, then is on.
    b.get("enforce").await;
    let (status, html) = b.post("enforce", &[("enforce", "on")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("Tick the box"));
    let (status, _) = b
        .post("enforce", &[("enforce", "on"), ("confirm", "yes")])
        .await;
    assert_eq!(status, 303);
    let (_, html) = b.get("enforce").await;
    assert!(html.contains("<strong id=\"enforce-state\">enforced</strong>"));

    // Roles: add two groups, then remove one; a duplicate is refused.
    b.get("roles").await;
    let (status, _) = b
        .post(
            "roles",
            &[
                ("group", "Engineering"),
                ("roles", "developer, viewer"),
                ("group", "<img src=x>"),
                ("roles", "admin"),
                ("group", ""),
                ("roles", ""),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(
        t["group_roles"],
        json!({"Engineering": ["developer", "viewer"], "<img src=x>": ["admin"]})
    );
    let (_, html) = b.get("roles").await;
    assert!(!html.contains("<img src=x>"), "escaped");
    let (status, html) = b
        .post(
            "roles",
            &[
                ("group", "Engineering"),
                ("roles", "a"),
                ("group", "Engineering"),
                ("roles", "b"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("listed twice"));
    let (status, _) = b
        .post("roles", &[("group", "Engineering"), ("roles", "developer")])
        .await;
    assert_eq!(status, 303);
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["group_roles"], json!({"Engineering": ["developer"]}));

    // Reset: confirmation required; then every connection and session goes.
    let mut p = principal("alice@globex.com", &[]);
    p.tenant = Some("globex".into());
    p.connection = Some("globex-okta".into());
    let session = s.env.mint(&p).await;
    b.get("sso").await;
    let (status, _) = b.post("sso/reset", &[]).await;
    assert_eq!(status, 400);
    let (status, _) = b.post("sso/reset", &[("confirm", "yes")]).await;
    assert_eq!(status, 303);
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["connections"], json!([]));
    let r = client()
        .get(s.env.url("/anything"))
        .header("cookie", &session)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the tenant's sessions ended");

    // Every change is audited with the setup link as actor.
    let events = audit(&s).await;
    let by_link: Vec<&str> = events
        .iter()
        .filter(|e| e["actor_kind"] == "setup_link" && e["actor"] == id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "setup_link.used",
        "domain.added",
        "domain.verified_checked",
        "connection.created",
        "connection.updated",
        "provisioning.changed",
        "scim_token.rotated",
        "scim_token.revoked",
        "enforcement.changed",
        "roles.changed",
        "connection.deleted",
        "sessions.revoked",
    ] {
        assert!(by_link.contains(&action), "{action} in {by_link:?}");
    }
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("s3cret-okta") && !text.contains(token));
}

/// SAML metadata of a throwaway IdP key.
fn metadata_xml(dir: &std::path::Path, name: &str) -> String {
    let key = crate::support::saml::IdpKey::generate(dir, name);
    let pem = key.cert_pem();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.globex.example/"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.globex.example/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_intents_and_hostile_forms_are_refused() {
    let s = setup(Db::Sqlite).await;
    let mut b = Browser::open(&s, &link(&s, &["domain"]).await).await;
    let mut other = Browser::open(&s, &link(&s, &["domain"]).await).await;
    other.get("domains").await;
    let (_, html) = b.get("domains").await;
    assert!(
        !html.contains("/.portcullis/setup/sso"),
        "nav shows granted pages only"
    );

    // CSRF: missing, wrong, another session's, a different length.
    let foreign = other.csrf.clone();
    for token in ["", "x", foreign.as_str(), &"A".repeat(400)] {
        let r = client()
            .post(b.url("domains"))
            .header("cookie", &b.cookie)
            .form(&[("csrf", token), ("domain", "globex.com")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{token}");
    }
    let (_, d) = s.api.get("/admin/v1/tenants/globex/domains").await;
    assert_eq!(d, json!([]), "nothing changed");
    assert!(
        s.env
            .metrics_with("portcullis_portal_refusals_total{reason=\"csrf\"} 4")
            .await
            .contains("csrf")
    );

    // Intents: pages of other intents are refused, GET and POST.
    for page in ["sso", "sso/new/okta", "provisioning", "enforce", "roles"] {
        let (status, html) = b.get(page).await;
        assert_eq!(status, 403, "{page}");
        assert!(html.contains("does not include"), "{html}");
    }
    b.get("domains").await;
    for (page, fields) in [
        ("enforce", vec![("enforce", "on"), ("confirm", "yes")]),
        ("roles", vec![("group", "g"), ("roles", "admin")]),
        ("provisioning/scim-token", vec![]),
        ("sso/reset", vec![("confirm", "yes")]),
    ] {
        let (status, _) = b.post(page, &fields).await;
        assert_eq!(status, 403, "{page}");
    }
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["enforce_sso"], false);
    assert_eq!(t["group_roles"], json!({}));
    assert!(audited(&s, "scim_token.rotated").await.is_empty());

    // Oversized, malformed and odd bodies.
    let big = "a".repeat(70 * 1024);
    let r = client()
        .post(b.url("domains"))
        .header("cookie", &b.cookie)
        .form(&[("csrf", b.csrf.as_str()), ("domain", big.as_str())])
        .send()
        .await
        .unwrap();
    assert!([400, 413].contains(&r.status().as_u16()), "{}", r.status());
    for (ct, body) in [
        ("multipart/form-data; boundary=zz", "--zz\r\nbroken"),
        ("multipart/form-data", "--zz--"),
        ("application/json", "{\"domain\":\"globex.com\"}"),
        ("text/plain", "domain=globex.com"),
    ] {
        let r = client()
            .post(b.url("domains"))
            .header("cookie", &b.cookie)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{ct}");
    }
    let (_, d) = s.api.get("/admin/v1/tenants/globex/domains").await;
    assert_eq!(d, json!([]));
    // An unknown IdP key and connection are plain 404 pages.
    let mut sso = Browser::open(&s, &link(&s, &["sso"]).await).await;
    assert_eq!(sso.get("sso/new/../../etc").await.0, 404);
    assert_eq!(sso.get("sso/new/nope").await.0, 404);
    assert_eq!(sso.get("sso/c/nope").await.0, 404);
    assert_eq!(sso.get("sso/c/nope/test").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_use_the_same_pages_at_admin() {
    let s = setup(Db::Sqlite).await;

    // Not signed in: to the login page, coming back here.
    let r = client()
        .get(s.env.url("/.portcullis/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[LOCATION],
        "/.portcullis/login?return_to=%2F%2Eportcullis%2Fadmin"
    );

    // A member of globex, and an admin of another tenant: refused.
    let mut member = principal("bob@globex.com", &[]);
    member.tenant = Some("globex".into());
    let mut acme_admin_in_globex = principal("eve@globex.com", &[]);
    acme_admin_in_globex.tenant = Some("globex".into());
    acme_admin_in_globex.roles = vec!["admin".into()];
    let mut stranger = principal("mallory@initech.com", &[]);
    stranger.tenant = Some("initech".into());
    stranger.roles = vec!["it-admin".into()];
    for p in [member, acme_admin_in_globex, stranger] {
        let mut b = Browser::signed_in(&s, s.env.mint(&p).await);
        for page in ["", "domains", "sso"] {
            let (status, html) = b.get(page).await;
            assert_eq!(status, 403, "{} {page}", p.email);
            assert!(html.contains("not an administrator"), "{html}");
        }
    }

    // globex's admin: its own tenant, changes audited with their email.
    let mut admin = principal("ada@globex.com", &[]);
    admin.tenant = Some("globex".into());
    admin.roles = vec!["member".into(), "it-admin".into()];
    let mut b = Browser::signed_in(&s, s.env.mint(&admin).await);
    let (status, html) = b.get("").await;
    assert_eq!(status, 200);
    assert!(html.contains("Signed in as ada@globex.com"));
    for page in ["domains", "sso", "provisioning", "enforce", "roles"] {
        assert_eq!(b.get(page).await.0, 200, "{page}");
    }
    b.get("domains").await;
    let (status, loc) = b.post("domains", &[("domain", "globex.com")]).await;
    assert_eq!((status, loc.as_str()), (303, "/.portcullis/admin/domains"));
    assert_eq!(
        audited(&s, "domain.added").await,
        [(
            "tenant_admin".into(),
            "ada@globex.com".into(),
            "globex.com".into()
        )]
    );
    // The admin session's CSRF token is no portal link's, and vice versa.
    let mut link_browser = Browser::open(&s, &link(&s, &["domain"]).await).await;
    link_browser.get("domains").await;
    let r = client()
        .post(b.url("domains"))
        .header("cookie", &b.cookie)
        .form(&[
            ("csrf", link_browser.csrf.as_str()),
            ("domain", "globex.net"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // acme (the configuration file's): readable, read-only, says why.
    let mut acme = principal("root@acme.com", &[]);
    acme.roles = vec!["admin".into()];
    let mut b = Browser::signed_in(&s, s.env.mint(&acme).await);
    let (status, html) = b.get("domains").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"read-only\""), "{html}");
    assert!(html.contains(&s.env.config_path().display().to_string()));
    assert!(!html.contains("<form"), "no forms: {html}");
    assert!(!html.contains("globex"), "scoped to its own tenant");
    let (status, html) = b.post("domains", &[("domain", "acme.net")]).await;
    assert_eq!(status, 409);
    assert!(html.contains("read-only"));
    let (status, _) = b
        .post("enforce", &[("enforce", "on"), ("confirm", "yes")])
        .await;
    assert_eq!(status, 409);
    let (_, t) = s.api.get("/admin/v1/tenants/acme").await;
    assert_eq!(t["enforce_sso"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_platform_providers_are_offered() {
    let s = setup_with(
        Db::Sqlite,
        "",
        "\n[platform.providers.github]\nclient_id = \"gh\"\nclient_secret = \"gh-secret\"\n",
    )
    .await;
    // A provider account signs in only with an address in one of the
    // tenant's domains: without one, the connection is refused (as
    // `check` refuses it in the file).
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains",
            &json!({"domain": "globex.com"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut b = Browser::open(&s, &link(&s, &["sso"]).await).await;
    let (_, html) = b.get("sso").await;
    assert!(html.contains("Sign in with GitHub"), "{html}");
    assert!(!html.contains("Sign in with Apple"), "only configured ones");
    let (status, html) = b.get("sso/new/platform-github").await;
    assert_eq!(status, 200);
    assert!(html.contains("registered by the service operator"));
    let (status, loc) = b
        .post_multipart(
            "sso/new/platform-github",
            &[
                ("id", "globex-github"),
                ("github_org", "globex-corp"),
                ("teams_as_groups", "yes"),
            ],
        )
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (303, "/.portcullis/setup/sso/c/globex-github"),
        "{loc}"
    );
    let (_, c) = s
        .api
        .get("/admin/v1/tenants/globex/connections/globex-github")
        .await;
    assert_eq!(c["connection"]["platform"], "github");
    assert_eq!(
        c["connection"]["github"],
        json!({"org": "globex-corp", "teams_as_groups": true})
    );
    let (status, html) = b.get("sso/c/globex-github").await;
    assert_eq!(status, 200);
    assert!(html.contains("Sign in with GitHub"));
    assert!(!html.contains("gh-secret"));
}

/// The public origin of the Chromium portal test: stable, so screenshots
/// name no ephemeral port; Chromium maps it to the listener.
const SHOTS_ORIGIN: &str = "http://portcullis.test";

/// The portal in headless Chromium (`tests/browser/portal.mjs`): the link
/// lands, the copy-button script runs under the CSP, a form posts and
/// returns. `PORTCULLIS_PORTAL_SHOTS=DIR` also saves screenshots there
/// (how `docs/portal/` was made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_portal_pages_work_in_chromium() {
    let s = setup_at(Db::Sqlite, "", "", Some(SHOTS_ORIGIN)).await;
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/globex/connections",
            &json!({"id": "globex-saml", "protocol": "saml", "preset": "onelogin",
                "display_name": "OneLogin",
                "saml": {"idp_metadata_xml": metadata_xml(dir.path(), "shots")}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains",
            &json!({"domain": "globex.com"}),
        )
        .await;
    assert_eq!(status, 201);
    let url = link(&s, &["domain", "sso", "scim", "enforce", "roles"]).await;
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("portal.mjs")
        .current_dir(&browser_dir)
        .env("BASE_URL", format!("{SHOTS_ORIGIN}/"))
        .env("LISTENER", s.env.proxy.to_string())
        .env("SETUP_LINK", &url)
        .env("CONNECTION", "globex-saml")
        .env(
            "CHROMIUM",
            std::env::var("PORTCULLIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        )
        .env("FORCE_COLOR", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Ok(shots) = std::env::var("PORTCULLIS_PORTAL_SHOTS") {
        cmd.env("SHOTS", shots);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("portal.mjs did not finish within 120 s")
        .expect("running node (tests/browser: npm ci, and Debian's chromium)");
    assert!(
        out.status.success(),
        "portal.mjs failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, d) = s.api.get("/admin/v1/tenants/globex/domains").await;
    assert!(
        d.as_array()
            .unwrap()
            .iter()
            .any(|d| d["domain"] == "globex.net"),
        "the browser's form reached the store: {d}"
    );
    assert!(
        audited(&s, "domain.added")
            .await
            .iter()
            .any(|(kind, _, target)| kind == "setup_link" && target == "globex.net")
    );
}
