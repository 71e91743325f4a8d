//! A SCIM client for the tests: a real token in the store, real HTTP to the
//! proxy's `/scim/v2`.

use reqwest::Method;
use serde_json::Value;

use super::env::*;
use super::postgres::PgCluster;

pub(crate) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub(crate) const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub(crate) const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// Two tenants, so isolation can be checked.
pub(crate) const TENANTS: &str = r#"
[[tenants]]
id = "acme"
domains = ["acme.com"]
jit = { enabled = true, default_role = "member" }

[[tenants]]
id = "globex"
domains = ["globex.com"]
"#;

/// Runs each scenario `async fn name(db: Db)` of the calling module on
/// both stores, as `sqlite::name` and `postgres::name`.
macro_rules! scim_conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Db::Sqlite).await; }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Db::Postgres).await; }
            )*
        }
    };
}
pub(crate) use scim_conformance;

/// Which store a SCIM test runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Db {
    Sqlite,
    Postgres,
}

/// A proxy with the SCIM server on the given backend; both tenants'
/// domains are verified (SCIM accepts only users in verified domains).
pub(crate) async fn env_on(db: Db, extra: &str) -> TestEnv {
    let env = env_unverified_on(db, extra).await;
    verify_domain(&env.shared.store, "acme", "acme.com").await;
    verify_domain(&env.shared.store, "globex", "globex.com").await;
    env
}

/// [`env_on`] with no domain verified yet.
pub(crate) async fn env_unverified_on(db: Db, extra: &str) -> TestEnv {
    let store_url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgCluster::shared().await.fresh_database().await),
    };
    TestEnv::with(Options {
        store_url,
        extra: format!("{TENANTS}\n{extra}"),
        ..Default::default()
    })
    .await
}

/// Records `domain` as verified for `tenant`, as `portcullis domains
/// verify` does once it finds the TXT record (no DNS needed).
pub(crate) async fn verify_domain(store: &portcullis::store::Store, tenant: &str, domain: &str) {
    set_domain_status(
        store,
        tenant,
        domain,
        portcullis::store::DomainStatus::Verified,
    )
    .await;
}

/// Claims `domain` for `tenant` (if not yet) and sets its state.
pub(crate) async fn set_domain_status(
    store: &portcullis::store::Store,
    tenant: &str,
    domain: &str,
    status: portcullis::store::DomainStatus,
) {
    use portcullis::store::{DomainCheck, DomainRecord, DomainStatus};
    let now = portcullis::clock::now();
    let verified = status == DomainStatus::Verified;
    let check = DomainCheck {
        status,
        last_checked_at: now,
        verified_at: verified.then_some(now),
        last_seen_at: verified.then_some(now),
        detail: None,
    };
    // Inserted in its final state, checked just now: a row that passed
    // through `pending` would be due for the server's background check,
    // whose DNS lookup (no TXT record here) could overwrite this status.
    let entry = store
        .domains()
        .insert(&DomainRecord {
            domain: domain.into(),
            tenant: tenant.into(),
            token: "0".repeat(64),
            status,
            created_at: now,
            last_checked_at: Some(check.last_checked_at),
            verified_at: check.verified_at,
            last_seen_at: check.last_seen_at,
            detail: None,
        })
        .await
        .unwrap();
    assert_eq!(
        entry.tenant, tenant,
        "{domain} is claimed by another tenant"
    );
    if entry.status != status {
        // an existing claim changes state
        assert!(
            store
                .domains()
                .update_check(domain, &entry.token, &check)
                .await
                .unwrap()
        );
    }
}

pub(crate) struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a SCIM error body with this status (and scimType).
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["schemas"][0], ERROR, "{}", self.body);
        assert_eq!(self.body["status"], status.to_string(), "{}", self.body);
        assert_eq!(self.body["scimType"].as_str(), scim_type, "{}", self.body);
        assert!(self.body["detail"].is_string(), "{}", self.body);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/scim+json")),
            "{:?}",
            self.headers
        );
    }
}

#[derive(Clone)]
pub(crate) struct ScimClient {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl ScimClient {
    /// Creates a token for `tenant` exactly as the CLI does.
    pub(crate) async fn new(env: &TestEnv, tenant: &str) -> Self {
        let t = portcullis::scim::token::generate().unwrap();
        env.shared
            .store
            .scim()
            .token_set(tenant, &t.key_id, &t.hash, portcullis::clock::now())
            .await
            .unwrap();
        Self {
            base: env.url("/scim/v2"),
            token: t.token,
            http: client(),
        }
    }

    pub(crate) fn with_token(&self, token: &str) -> Self {
        Self {
            token: token.into(),
            ..self.clone()
        }
    }

    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        self.raw(
            method,
            path,
            &[("content-type", "application/scim+json")],
            bytes,
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates a user; returns its id.
    pub(crate) async fn create_user(&self, user_name: &str) -> String {
        let r = self
            .post(
                "/Users",
                &serde_json::json!({"schemas": [USER], "userName": user_name,
                    "emails": [{"value": user_name, "type": "work", "primary": true}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a group; returns its id.
    pub(crate) async fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| serde_json::json!({"value": m}))
            .collect();
        let r = self
            .post(
                "/Groups",
                &serde_json::json!({"schemas": [GROUP], "displayName": name, "members": members}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }
}

/// `members[].value` of a group response, sorted.
pub(crate) fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Percent-encodes a query value.
pub(crate) fn q(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The status a SCIM client gets from `GET /scim/v2/Users` with `token`:
/// whether the token authenticates right now.
pub(crate) async fn token_status(env: &TestEnv, token: &str) -> u16 {
    client()
        .get(env.url("/scim/v2/Users"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
