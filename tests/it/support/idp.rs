//! A stand-in IdP implementing the connection boundary, and `Sso`: a test
//! environment with tenants, a real DNS server proving their domains, and
//! that IdP behind every `oidc` connection.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portcullis::auth::{
    CallbackRequest, Connection, ConnectionError, ConnectionFactory, Factories, LoginStart,
    StartContext, VerifiedLogin,
};
use portcullis::config::{ConnectionConfig, TenantConfig};

use super::dns::DnsServer;
use super::env::*;

/// What the stand-in IdP asserts next.
#[derive(Clone, Debug)]
pub(crate) struct Assert {
    pub email: String,
    pub email_verified: Option<bool>,
    pub groups: Vec<String>,
}

pub(crate) type Slot = Arc<Mutex<Option<Assert>>>;

pub(crate) struct TestIdp {
    id: String,
    next: Slot,
    /// Another origin the browser passes through on its way to the
    /// callback (see [`Bounce`]), as a real IdP's would be.
    via: Option<String>,
}

#[async_trait]
impl Connection for TestIdp {
    fn id(&self) -> &str {
        &self.id
    }

    async fn start(&self, ctx: &StartContext) -> Result<LoginStart, ConnectionError> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let callback = format!("{}?state={}&code={nonce}", ctx.callback_url, ctx.relay);
        let redirect_to = match &self.via {
            Some(via) => format!(
                "{via}/authorize?to={}",
                percent_encoding::utf8_percent_encode(
                    &callback,
                    percent_encoding::NON_ALPHANUMERIC
                )
            ),
            None => callback,
        };
        Ok(LoginStart {
            redirect_to,
            state: serde_json::json!({ "nonce": nonce, "hint": ctx.login_hint }),
        })
    }

    async fn finish(
        &self,
        req: &CallbackRequest,
        state: &serde_json::Value,
    ) -> Result<VerifiedLogin, ConnectionError> {
        if req.param("code") != state["nonce"].as_str() {
            return Err(ConnectionError::new(
                "code_mismatch",
                "code does not match the flow",
            ));
        }
        let a = self
            .next
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| ConnectionError::new("idp_error", "nothing to assert"))?;
        Ok(VerifiedLogin {
            connection_id: self.id.clone(),
            subject: format!("sub-{}", a.email),
            email: a.email,
            email_verified: a.email_verified,
            name: Some("Test User".into()),
            groups: a.groups,
            idp_session: Some(format!("idp-sid-{}", req.param("code").unwrap_or_default())),
            logout_hint: Some("stand-in hint".into()),
            raw_claims: serde_json::json!({}),
            ..VerifiedLogin::default()
        })
    }
}

/// Builds [`TestIdp`]s asserting what the slot says, optionally through
/// a [`Bounce`] origin.
pub(crate) struct TestFactory(pub Slot, pub Option<String>);

impl ConnectionFactory for TestFactory {
    fn build(
        &self,
        _t: &TenantConfig,
        c: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        Ok(Arc::new(TestIdp {
            id: c.id.clone(),
            next: self.0.clone(),
            via: self.1.clone(),
        }))
    }
}

pub(crate) fn tenants_toml(dns: std::net::SocketAddr, jit: bool) -> String {
    format!(
        r#"
[dns]
nameservers = ["{dns}"]

[login]
app_login_url = "/login"
[[login.password_endpoints]]
path = "/login"
[[login.password_endpoints]]
path = "/api/session"
email_json_pointer = "/user/email"

# the app's own login is public; enforcement still applies to it
[[routes]]
prefix = "/login"
policy = "public"
[[routes]]
prefix = "/api/session"
policy = "public"

[[tenants]]
id = "acme"
domains = ["acme.com", "pending.acme.com"]
enforce_sso = true
group_roles = {{ "Engineering" = ["developer"] }}
jit = {{ enabled = {jit}, default_role = "member" }}
[[tenants.connections]]
id = "acme-idp"
protocol = "oidc"
display_name = "Acme IdP"
[tenants.connections.oidc]
issuer = "https://idp.invalid"
client_id = "stand-in"
client_secret = "unused: the stand-in IdP replaces the OIDC implementation"

[[tenants]]
id = "globex"
domains = ["globex.com"]
[[tenants.connections]]
id = "globex-okta"
protocol = "oidc"
display_name = "Okta"
[tenants.connections.oidc]
issuer = "https://idp.invalid"
client_id = "stand-in"
client_secret = "unused: the stand-in IdP replaces the OIDC implementation"
[[tenants.connections]]
id = "globex-entra"
protocol = "oidc"
display_name = "Entra ID"
[tenants.connections.oidc]
issuer = "https://idp.invalid"
client_id = "stand-in"
client_secret = "unused: the stand-in IdP replaces the OIDC implementation"
"#
    )
}

pub(crate) struct Sso {
    pub env: TestEnv,
    pub dns: DnsServer,
    pub next: Slot,
    /// Every request the app received.
    pub app_saw: Arc<Mutex<Vec<String>>>,
    _app: tokio::task::JoinHandle<()>,
    _bounce: Option<Bounce>,
}

/// The stand-in IdP's own origin, for browsers: `GET /authorize?to=URL`
/// redirects to `URL`. It makes the login leave Portcullis' origin as a
/// real IdP's does, so that what a browser enforces on cross-origin
/// navigations (CSP `form-action` on redirects, `SameSite` cookies) is in
/// the test.
pub(crate) struct Bounce {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Bounce {
    pub(crate) async fn start() -> Bounce {
        #[derive(serde::Deserialize)]
        struct To {
            to: String,
        }
        async fn authorize(
            axum::extract::Query(q): axum::extract::Query<To>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            (
                axum::http::StatusCode::FOUND,
                [(axum::http::header::LOCATION, q.to)],
            )
                .into_response()
        }
        let listener = bind_local();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let app = axum::Router::new().route("/authorize", axum::routing::get(authorize));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Bounce { base, task }
    }
}

impl Drop for Bounce {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sso {
    pub(crate) async fn start(jit: bool) -> Sso {
        Self::start_with(jit, "").await
    }

    /// [`Sso::start`] with more configuration (top-level TOML sections).
    pub(crate) async fn start_with(jit: bool, extra: &str) -> Sso {
        Self::start_on(jit, extra, None).await
    }

    /// [`Sso::start_with`] on the store at `store_url` (default: SQLite).
    pub(crate) async fn start_on(jit: bool, extra: &str, store_url: Option<String>) -> Sso {
        Self::start_edited(jit, extra, store_url, |t| t).await
    }

    /// [`Sso::start`] with the stand-in IdP on an origin of its own
    /// ([`Bounce`]): for browsers.
    pub(crate) async fn start_cross_origin(jit: bool) -> Sso {
        Self::start_full(jit, "", None, |t| t, Some(Bounce::start().await)).await
    }

    /// [`Sso::start_on`] with the tenants' TOML passed through `edit` first
    /// (e.g. to give globex a `group_roles` mapping of its own).
    pub(crate) async fn start_edited(
        jit: bool,
        extra: &str,
        store_url: Option<String>,
        edit: impl FnOnce(String) -> String,
    ) -> Sso {
        Self::start_full(jit, extra, store_url, edit, None).await
    }

    async fn start_full(
        jit: bool,
        extra: &str,
        store_url: Option<String>,
        edit: impl FnOnce(String) -> String,
        bounce: Option<Bounce>,
    ) -> Sso {
        let via = bounce.as_ref().map(|b| b.base.clone());
        let dns = DnsServer::start().await;
        let next: Slot = Arc::new(Mutex::new(None));
        let (upstream, app, app_saw) = start_counting_upstream().await;
        let env = TestEnv::with(Options {
            upstream: Some(upstream),
            extra: format!("{extra}\n{}", edit(tenants_toml(dns.addr(), jit))),
            factories: Factories {
                saml: None,
                oidc: Some(Arc::new(TestFactory(next.clone(), via))),
                ..Default::default()
            },
            store_url,
            ..Default::default()
        })
        .await;
        let sso = Sso {
            env,
            dns,
            next,
            app_saw,
            _app: app,
            _bounce: bounce,
        };
        sso.verify("acme", "acme.com").await;
        sso.verify("globex", "globex.com").await;
        sso
    }

    /// Claims and proves a domain through the real DNS server.
    pub(crate) async fn verify(&self, tenant: &str, domain: &str) {
        let cfg = self.env.shared.config();
        let domains =
            portcullis::domains::Domains::new(self.env.shared.store.clone(), &cfg.dns).unwrap();
        let now = portcullis::clock::now();
        let entry = domains.add(tenant, domain, now).await.unwrap();
        let (name, value) = domains.txt_record(&entry);
        self.dns.set_txt(&name, &value);
        let checked = domains.verify(domain, now).await.unwrap();
        assert_eq!(checked.status.to_string(), "verified", "{checked:?}");
    }

    pub(crate) fn assert_next(&self, email: &str, verified: Option<bool>, groups: &[&str]) {
        *self.next.lock().unwrap() = Some(Assert {
            email: email.into(),
            email_verified: verified,
            groups: groups.iter().map(|s| s.to_string()).collect(),
        });
    }

    /// start → IdP → callback, like a browser; returns the callback's
    /// response and the session cookie, if one was set.
    pub(crate) async fn login(
        &self,
        connection: &str,
        return_to: &str,
    ) -> (reqwest::Response, Option<String>) {
        let c = client();
        let start = c
            .get(self.env.url(&format!(
                "/.portcullis/sso/{connection}/start?return_to={return_to}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 302, "{}", start.text().await.unwrap());
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        let flow = cookie_pair(&start, "portcullis_flow_").expect("flow cookie");
        let cb = c.get(location).header("cookie", flow).send().await.unwrap();
        let session = cookie_pair(&cb, "portcullis_session=");
        (cb, session.filter(|s| s != "portcullis_session="))
    }
}

/// Where the login form's answer for a single connection moves on to: the
/// `<meta http-equiv="refresh">` URL of its page, unescaped.
pub(crate) fn continue_href(html: &str) -> String {
    let (_, rest) = html
        .split_once(r#"<meta http-equiv="refresh" content="0;url="#)
        .unwrap_or_else(|| panic!("no refresh in the answer: {html}"));
    let (url, _) = rest.split_once('"').unwrap();
    url.replace("&amp;", "&").replace("&#38;", "&")
}

pub(crate) fn cookie_pair(r: &reqwest::Response, prefix: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(prefix))
        .map(|v| v.split(';').next().unwrap().to_owned())
}
