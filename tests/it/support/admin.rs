//! A client of the admin API with an operator token.

use reqwest::Method;
use serde_json::Value;

use super::env::TestEnv;

pub(crate) struct AdminApi {
    pub base: String,
    pub token: String,
}

impl AdminApi {
    /// A fresh token (named `name`) for `env`'s admin API.
    pub(crate) async fn new(env: &TestEnv, name: &str) -> AdminApi {
        let token = portcullis::admin::tokens::create(
            &env.shared.store,
            name,
            &portcullis::admin::Actor::Cli {
                user: "test".into(),
            },
        )
        .await
        .unwrap()
        .token;
        AdminApi {
            base: format!("http://{}", env.admin),
            token,
        }
    }

    /// `(status, JSON body or null)`.
    pub(crate) async fn call_with(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        self.call_with(Some(&auth), method, path, body).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a store tenant (`doc` as `POST /admin/v1/tenants` takes
    /// it); panics unless it was created.
    pub(crate) async fn create_tenant(&self, doc: &Value) {
        let (status, body) = self.post("/admin/v1/tenants", doc).await;
        assert_eq!(status, 201, "{body}");
    }

    /// A setup link's URL for `tenant`, granting `intents`, valid an hour.
    pub(crate) async fn setup_link(&self, tenant: &str, intents: &[&str]) -> String {
        let (status, body) = self
            .post(
                &format!("/admin/v1/tenants/{tenant}/setup-links"),
                &serde_json::json!({"intents": intents, "ttl_seconds": 3600}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["url"].as_str().unwrap().to_owned()
    }
}

/// `(field, message)` of an error answer.
pub(crate) fn errors(v: &Value) -> Vec<(String, String)> {
    v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {v}"))
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
