//! `PlatformEnv`: the real proxy with pre-configured providers pointed at
//! fakes on loopback (Google, Microsoft and Apple as `TestOp`s speaking
//! each one's shapes, GitHub as `FakeGithub`), two tenants with verified
//! domains — acme (acme.com) and globex (globex.com) — each with one
//! connection per started provider (`acme-google`, `globex-github`, …),
//! and a browser walked by hand: start → provider → (form POST) →
//! `/platform/{provider}/callback`.

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use portcullis::auth::Factories;
use serde_json::{Map, Value, json};

use super::dns::DnsServer;
use super::env::*;
use super::github::FakeGithub;
use super::idp::{continue_href, cookie_pair};
use super::oidc_op::{AppleClient, CLIENT_ID, CLIENT_SECRET, TestOp};
use super::refusal::{Refusal, login_failure};

pub(crate) const TEAM_ID: &str = "ABCDE12345";
pub(crate) const KEY_ID: &str = "KEY123ABCD";
/// Entra tenants of the Microsoft tests.
pub(crate) const ACME_TID: &str = "6f1e0d2c-1234-4abc-9def-0123456789ab";
pub(crate) const GLOBEX_TID: &str = "22222222-3333-4444-8555-666666666666";

/// Which providers to start, and more lines for some connections.
#[derive(Default)]
pub(crate) struct Setup {
    pub google: bool,
    pub microsoft: bool,
    pub github: bool,
    pub apple: bool,
    /// `(connection id, TOML lines)` added to that connection.
    pub connection_extra: Vec<(&'static str, String)>,
}

pub(crate) struct PlatformEnv {
    pub env: TestEnv,
    pub dns: DnsServer,
    pub google: Option<TestOp>,
    pub microsoft: Option<TestOp>,
    pub github: Option<FakeGithub>,
    pub apple: Option<TestOp>,
}

/// A flow stopped at the platform callback: how the provider sends the
/// browser back (GET with a query, or Apple's POSTed form) and the
/// browser's flow cookie.
pub(crate) struct AtCallback {
    pub url: String,
    /// `Some`: a `form_post` answer, POSTed to `url`.
    pub form: Option<Vec<(String, String)>>,
    pub flow_cookie: String,
}

impl AtCallback {
    /// The `state` the provider sent back.
    pub(crate) fn state(&self) -> String {
        self.fields()
            .into_iter()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    fn fields(&self) -> Vec<(String, String)> {
        match &self.form {
            Some(f) => f.clone(),
            None => {
                let q = self.url.split_once('?').map(|(_, q)| q).unwrap_or("");
                form_urlencoded::parse(q.as_bytes()).into_owned().collect()
            }
        }
    }

    /// The same answer with another `state` (a forgery).
    pub(crate) fn clone_with_state(&self, state: &str) -> AtCallback {
        let fields: Vec<(String, String)> = self
            .fields()
            .into_iter()
            .map(|(k, v)| {
                if k == "state" {
                    (k, state.to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        match &self.form {
            Some(_) => AtCallback {
                url: self.url.clone(),
                form: Some(fields),
                flow_cookie: self.flow_cookie.clone(),
            },
            None => {
                let base = self
                    .url
                    .split_once('?')
                    .map_or(self.url.as_str(), |(b, _)| b);
                let q: String = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
                AtCallback {
                    url: format!("{base}?{q}"),
                    form: None,
                    flow_cookie: self.flow_cookie.clone(),
                }
            }
        }
    }
}

/// A user of a provider's ID tokens.
pub(crate) fn user(claims: Value) -> Map<String, Value> {
    claims.as_object().unwrap().clone()
}

fn oidc_provider(name: &str, discovery: &str) -> String {
    format!(
        "[platform.providers.{name}]\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nissuer = \"{discovery}\"\n"
    )
}

/// The user-visible value of `name` in an HTML form (escaped by the fake).
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&amp;", "&")
}

/// `(action, fields)` of the one form in `html`.
fn parse_form(html: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(unescape(&tag[start..start + tag[start..].find('"')?]))
    };
    let action = attr(html, "action").expect("form action");
    let fields = html
        .split("<input")
        .skip(1)
        .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value")?)))
        .collect();
    (action, fields)
}

impl PlatformEnv {
    pub(crate) async fn start(setup: Setup) -> PlatformEnv {
        let dns = DnsServer::start().await;
        let mut providers = String::new();
        let mut kinds = Vec::new();
        let google = if setup.google {
            let op = TestOp::start().await;
            op.set_user(user(json!({"sub": "g-alice", "email": "alice@acme.com",
                "email_verified": true, "name": "Alice Example", "hd": "acme.com"})));
            providers += &oidc_provider("google", &op.issuer);
            kinds.push("google");
            Some(op)
        } else {
            None
        };
        let microsoft = if setup.microsoft {
            let op = TestOp::start_at("/organizations/v2.0").await;
            let origin = op.issuer.trim_end_matches("/organizations/v2.0").to_owned();
            op.set_issuers(
                Some(format!("{origin}/{{tenantid}}/v2.0")),
                Some(format!("{origin}/{ACME_TID}/v2.0")),
            );
            op.set_user(user(
                json!({"sub": "ms-alice", "oid": "o-1", "tid": ACME_TID,
                "email": "alice@acme.com", "xms_edov": true, "name": "Alice Example",
                "preferred_username": "alice@acme.com"}),
            ));
            providers += &oidc_provider("microsoft", &op.issuer);
            kinds.push("microsoft");
            Some(op)
        } else {
            None
        };
        let github = if setup.github {
            let gh = FakeGithub::start().await;
            providers += &gh.provider_toml();
            kinds.push("github");
            Some(gh)
        } else {
            None
        };
        let apple = if setup.apple {
            let op = TestOp::start().await;
            let key = PKey::from_ec_key(
                EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
            )
            .unwrap();
            let private = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
            op.set_apple(AppleClient::for_key(&key, TEAM_ID, KEY_ID));
            op.set_user(user(
                json!({"sub": "001234.apple-alice", "email": "alice@acme.com",
                "email_verified": "true", "is_private_email": "false"}),
            ));
            providers += &format!(
                "[platform.providers.apple]\nclient_id = \"{CLIENT_ID}\"\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nissuer = \"{}\"\nprivate_key = \"\"\"\n{private}\"\"\"\n",
                op.issuer
            );
            kinds.push("apple");
            Some(op)
        } else {
            None
        };
        let connections = |tenant: &str| -> String {
            kinds
                .iter()
                .map(|k| {
                    let id = format!("{tenant}-{k}");
                    let extra: String = setup
                        .connection_extra
                        .iter()
                        .filter(|(c, _)| *c == id)
                        .map(|(_, lines)| format!("{lines}\n"))
                        .collect();
                    format!("[[tenants.connections]]\nid = \"{id}\"\nplatform = \"{k}\"\n{extra}")
                })
                .collect()
        };
        let extra = format!(
            r#"
[dns]
nameservers = ["{dns}"]

{providers}
[[tenants]]
id = "acme"
domains = ["acme.com"]
group_roles = {{ "acme-corp/eng" = ["developer"] }}
{acme}
[[tenants]]
id = "globex"
domains = ["globex.com"]
{globex}
"#,
            dns = dns.addr(),
            acme = connections("acme"),
            globex = connections("globex"),
        );
        let env = TestEnv::with(Options {
            extra,
            factories: Factories {
                builtin_platform: true,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
        let p = PlatformEnv {
            env,
            dns,
            google,
            microsoft,
            github,
            apple,
        };
        p.verify("acme", "acme.com").await;
        p.verify("globex", "globex.com").await;
        p
    }

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

    /// The start endpoint of `connection`: where the browser goes next and
    /// its flow cookie.
    pub(crate) async fn start_flow(&self, connection: &str) -> (String, String) {
        let start = client()
            .get(self.env.url(&format!(
                "/.portcullis/sso/{connection}/start?return_to=/dashboard"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 302, "{}", start.text().await.unwrap());
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        let flow = cookie_pair(&start, "portcullis_flow_").expect("flow cookie");
        (location, flow)
    }

    /// From the provider's authorization URL to the callback, not yet sent.
    pub(crate) async fn at_provider(&self, authorize_url: &str, flow_cookie: String) -> AtCallback {
        let at = client().get(authorize_url).send().await.unwrap();
        if at.status().is_redirection() {
            let url = at.headers()["location"].to_str().unwrap().to_owned();
            return AtCallback {
                url,
                form: None,
                flow_cookie,
            };
        }
        let status = at.status();
        let html = at.text().await.unwrap();
        assert_eq!(status, 200, "{html}");
        let (url, fields) = parse_form(&html);
        AtCallback {
            url,
            form: Some(fields),
            flow_cookie,
        }
    }

    /// start → provider: the callback the provider sends the browser to.
    pub(crate) async fn begin(&self, connection: &str) -> AtCallback {
        let (authorize_url, flow_cookie) = self.start_flow(connection).await;
        let at = self.at_provider(&authorize_url, flow_cookie).await;
        let provider = connection.split_once('-').unwrap().1;
        assert!(
            at.url.starts_with(
                &self
                    .env
                    .url(&format!("/.portcullis/platform/{provider}/callback"))
            ),
            "{}",
            at.url
        );
        at
    }

    /// Sends the callback as the provider told the browser to, with
    /// `cookie` (the flow cookie, or anything else).
    pub(crate) async fn send(&self, at: &AtCallback, cookie: Option<&str>) -> reqwest::Response {
        let mut req = match &at.form {
            None => client().get(&at.url),
            Some(fields) => client().post(&at.url).form(fields),
        };
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    /// A whole login at `connection`: the callback's answer and the
    /// session cookie it set.
    pub(crate) async fn login(&self, connection: &str) -> (reqwest::Response, Option<String>) {
        let at = self.begin(connection).await;
        let cb = self.send(&at, Some(&at.flow_cookie)).await;
        let session =
            cookie_pair(&cb, "portcullis_session=").filter(|s| s != "portcullis_session=");
        (cb, session)
    }

    /// Through the login page as a user would: type `email`, follow
    /// discovery to the provider and back.
    pub(crate) async fn login_by_email(&self, email: &str) -> (reqwest::Response, Option<String>) {
        let page = client()
            .post(self.env.url("/.portcullis/login"))
            .form(&[("email", email), ("return_to", "/dashboard")])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let start = continue_href(&page.text().await.unwrap());
        let start = client().get(self.env.url(&start)).send().await.unwrap();
        assert_eq!(start.status(), 302);
        let authorize_url = start.headers()["location"].to_str().unwrap().to_owned();
        let flow = cookie_pair(&start, "portcullis_flow_").expect("flow cookie");
        let at = self.at_provider(&authorize_url, flow).await;
        let cb = self.send(&at, Some(&at.flow_cookie)).await;
        let session =
            cookie_pair(&cb, "portcullis_session=").filter(|s| s != "portcullis_session=");
        (cb, session)
    }

    /// The state before a callback that must be refused with `reason`.
    pub(crate) async fn refusal(&self, reason: &str) -> Refusal {
        self.env.refusal(&login_failure(reason)).await
    }

    /// One login at `connection` that must be refused with `reason`: the
    /// generic page, no session cookie or row, the app not reached, the
    /// reason counted once.
    pub(crate) async fn refused(&self, connection: &str, reason: &str) {
        let at = self.begin(connection).await;
        let before = self
            .refusal(reason)
            .await
            .named(format!("{connection}: {reason}"));
        let cb = self.send(&at, Some(&at.flow_cookie)).await;
        let body = before.assert(cb, 403).await;
        assert!(
            body.contains("couldn"),
            "{reason}: generic page expected: {body}"
        );
    }

    /// What the app sees for `session` on `/dashboard`.
    pub(crate) async fn app_sees(&self, session: &str) -> Value {
        let (status, app) = echo(
            client()
                .get(self.env.url("/dashboard"))
                .header("cookie", session),
        )
        .await;
        assert_eq!(status, 200, "{app}");
        app
    }
}
