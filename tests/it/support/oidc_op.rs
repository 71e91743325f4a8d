//! A small OpenID provider under the tests' control: real HTTP on
//! 127.0.0.1 (discovery, JWKS, authorize, token, userinfo, end_session),
//! RS256 ID tokens signed with a key generated per run, and knobs that make
//! it misbehave the way an attacker or a broken provider would (alg none,
//! HS256 keyed with the public key, wrong issuer/audience/nonce, expired,
//! unknown key…). The login is scripted: `/authorize` answers at once for
//! the configured user, so tests need no browser.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use serde_json::{Map, Value, json};

pub(crate) const CLIENT_ID: &str = "portcullis-rp";
pub(crate) const CLIENT_SECRET: &str = "op-test-secret";

/// How the ID token is signed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Alg {
    Rs256,
    /// `alg: none`, empty signature.
    None,
    /// HS256 keyed with the PEM of the provider's public key (the
    /// algorithm-confusion attack).
    Hs256WithPublicKey,
    /// RS256 with a key that is not in the JWKS (kid `rogue`).
    RogueKey,
}

/// What the next ID token looks like.
#[derive(Clone, Debug)]
pub(crate) struct Knobs {
    pub alg: Alg,
    /// Claims set (or replaced) in the ID token; `null` removes a claim.
    pub claims: Map<String, Value>,
    /// Claims the userinfo endpoint adds.
    pub userinfo: Map<String, Value>,
    pub exp_offset: i64,
    pub iat_offset: i64,
    pub bad_at_hash: bool,
    /// Add `iss` to the authorization response (RFC 9207).
    pub iss_in_callback: Option<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            alg: Alg::Rs256,
            claims: Map::new(),
            userinfo: Map::new(),
            exp_offset: 300,
            iat_offset: 0,
            bad_at_hash: false,
            iss_in_callback: None,
        }
    }
}

struct Grant {
    nonce: Option<String>,
    challenge: Option<String>,
    redirect_uri: String,
    used: bool,
}

/// Sign in with Apple's client authentication: `client_secret_post` with
/// an ES256 JWT from the team for the client, verified with this key.
#[derive(Clone)]
pub(crate) struct AppleClient {
    /// The operator's public key: P-256 `x` and `y`, base64url.
    pub x: String,
    pub y: String,
    pub team_id: String,
    pub key_id: String,
}

impl AppleClient {
    /// Expects secrets signed with (the private half of) `key`.
    pub(crate) fn for_key(key: &PKey<Private>, team_id: &str, key_id: &str) -> AppleClient {
        let ec = key.ec_key().unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let (mut x, mut y) = (
            openssl::bn::BigNum::new().unwrap(),
            openssl::bn::BigNum::new().unwrap(),
        );
        ec.public_key()
            .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
            .unwrap();
        AppleClient {
            x: B64.encode(x.to_vec_padded(32).unwrap()),
            y: B64.encode(y.to_vec_padded(32).unwrap()),
            team_id: team_id.into(),
            key_id: key_id.into(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Recorded {
    pub authorize: Vec<HashMap<String, String>>,
    pub token: Vec<HashMap<String, String>>,
    /// Authorization header of each token request.
    pub token_auth: Vec<Option<String>>,
    pub end_session: Vec<HashMap<String, String>>,
    pub jwks_fetches: usize,
    pub userinfo_calls: usize,
    /// Header and claims of each verified Apple client secret.
    pub apple_secrets: Vec<(Value, Value)>,
}

struct Inner {
    issuer: String,
    key: PKey<Private>,
    rogue: PKey<Private>,
    /// Keys published in the JWKS: (kid, key).
    published: Vec<(String, PKey<Private>)>,
    /// kid the ID token names.
    kid: String,
    knobs: Knobs,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, Map<String, Value>>,
    recorded: Recorded,
    /// Subject and claims of the user `/authorize` logs in.
    user: Map<String, Value>,
    /// What discovery calls the issuer (Microsoft's `{tenantid}`
    /// template), when not the issuer itself.
    discovery_issuer: Option<String>,
    /// The ID tokens' `iss`, when not the issuer itself.
    token_issuer: Option<String>,
    /// `/authorize` answers with an auto-submitting form (`form_post`).
    form_post: bool,
    /// Apple's first-time `user` form field, sent with the next form.
    first_time_user: Option<String>,
    /// Refuse an authorization request that carries PKCE (Apple documents
    /// none).
    pkce_forbidden: bool,
    apple: Option<AppleClient>,
}

#[derive(Clone)]
pub(crate) struct TestOp {
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
    _task: Arc<tokio::task::JoinHandle<()>>,
}

fn rsa() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn jwk(kid: &str, key: &PKey<Private>) -> Value {
    let rsa = key.rsa().unwrap();
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": B64.encode(rsa.n().to_vec()), "e": B64.encode(rsa.e().to_vec()),
    })
}

fn sign_rs256(key: &PKey<Private>, input: &str) -> Vec<u8> {
    let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
    s.update(input.as_bytes()).unwrap();
    s.sign_to_vec().unwrap()
}

fn sign_hs256(secret: &[u8], input: &str) -> Vec<u8> {
    let k = PKey::hmac(secret).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), &k).unwrap();
    s.update(input.as_bytes()).unwrap();
    s.sign_to_vec().unwrap()
}

fn now() -> i64 {
    portcullis::clock::now()
}

/// Alice of acme.com, verified, in two groups.
pub(crate) fn alice() -> Map<String, Value> {
    json!({
        "sub": "alice-sub",
        "email": "alice@acme.com",
        "email_verified": true,
        "name": "Alice Example",
        "groups": ["Engineering", "Everyone"],
    })
    .as_object()
    .unwrap()
    .clone()
}

impl TestOp {
    pub(crate) async fn start() -> TestOp {
        Self::start_at("").await
    }

    /// `path`: issuer path after the origin (e.g. `/tenant-guid/v2.0`).
    pub(crate) async fn start_at(path: &str) -> TestOp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}{path}");
        let key = rsa();
        let inner = Arc::new(Mutex::new(Inner {
            issuer: issuer.clone(),
            published: vec![("k1".into(), key.clone())],
            key,
            rogue: rsa(),
            kid: "k1".into(),
            knobs: Knobs::default(),
            grants: HashMap::new(),
            tokens: HashMap::new(),
            recorded: Recorded::default(),
            user: alice(),
            discovery_issuer: None,
            token_issuer: None,
            form_post: false,
            first_time_user: None,
            pkce_forbidden: false,
            apple: None,
        }));
        let p = |s: &str| format!("{path}{s}");
        let app = Router::new()
            .route(&p("/.well-known/openid-configuration"), get(discovery))
            .route(&p("/jwks"), get(jwks))
            .route(&p("/authorize"), get(authorize))
            .route(&p("/token"), post(token))
            .route(&p("/userinfo"), get(userinfo))
            .route(&p("/end_session"), get(end_session))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestOp {
            issuer,
            inner,
            _task: Arc::new(task),
        }
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.inner.lock().unwrap().knobs);
    }

    pub(crate) fn reset(&self) {
        self.inner.lock().unwrap().knobs = Knobs::default();
    }

    pub(crate) fn set_user(&self, user: Map<String, Value>) {
        self.inner.lock().unwrap().user = user;
    }

    /// Microsoft's multi-tenant shape: discovery names `template`, each ID
    /// token `token_issuer` (the template with its tenant).
    pub(crate) fn set_issuers(&self, discovery: Option<String>, token: Option<String>) {
        let mut g = self.inner.lock().unwrap();
        g.discovery_issuer = discovery;
        g.token_issuer = token;
    }

    /// Sign in with Apple's shape: `form_post` answers, no PKCE, and the
    /// client authenticated by an ES256 client secret.
    pub(crate) fn set_apple(&self, apple: AppleClient) {
        let mut g = self.inner.lock().unwrap();
        g.form_post = true;
        g.pkce_forbidden = true;
        g.apple = Some(apple);
    }

    /// The `user` form field of the next authorization only.
    pub(crate) fn set_first_time_user(&self, user: Value) {
        self.inner.lock().unwrap().first_time_user = Some(user.to_string());
    }

    /// Rotates to a new signing key with kid `kid`, published next to the
    /// old one.
    pub(crate) fn rotate(&self, kid: &str) {
        let mut g = self.inner.lock().unwrap();
        let k = rsa();
        g.published.push((kid.into(), k.clone()));
        g.key = k;
        g.kid = kid.into();
    }

    pub(crate) fn recorded<T>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        f(&self.inner.lock().unwrap().recorded)
    }

    /// A signed JWT over `claims` with the current key (RS256).
    pub(crate) fn sign(&self, claims: &Value, typ: &str) -> String {
        let g = self.inner.lock().unwrap();
        let header = json!({"alg": "RS256", "kid": g.kid, "typ": typ});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = sign_rs256(&g.key, &input);
        format!("{input}.{}", B64.encode(sig))
    }

    /// A JWT as `Alg` would sign it.
    pub(crate) fn sign_with(&self, claims: &Value, alg: &Alg) -> String {
        let g = self.inner.lock().unwrap();
        encode(&g, claims, alg)
    }

    /// A back-channel logout token for `sub`/`sid`; `tweak` edits the claims.
    pub(crate) fn logout_token(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
        tweak: impl FnOnce(&mut Map<String, Value>),
    ) -> String {
        let mut c = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "iat": now(), "exp": now() + 120,
            "jti": uuid::Uuid::new_v4().to_string(),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        })
        .as_object()
        .unwrap()
        .clone();
        if let Some(s) = sub {
            c.insert("sub".into(), json!(s));
        }
        if let Some(s) = sid {
            c.insert("sid".into(), json!(s));
        }
        tweak(&mut c);
        self.sign(&Value::Object(c), "logout+jwt")
    }
}

fn encode(g: &Inner, claims: &Value, alg: &Alg) -> String {
    let (header, key): (Value, Option<&PKey<Private>>) = match alg {
        Alg::Rs256 => (
            json!({"alg": "RS256", "kid": g.kid, "typ": "JWT"}),
            Some(&g.key),
        ),
        Alg::RogueKey => (
            json!({"alg": "RS256", "kid": "rogue", "typ": "JWT"}),
            Some(&g.rogue),
        ),
        Alg::None => (json!({"alg": "none", "typ": "JWT"}), None),
        Alg::Hs256WithPublicKey => (json!({"alg": "HS256", "kid": g.kid, "typ": "JWT"}), None),
    };
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = match (alg, key) {
        (Alg::None, _) => Vec::new(),
        (Alg::Hs256WithPublicKey, _) => {
            let public = g.key.public_key_to_pem().unwrap();
            sign_hs256(&public, &input)
        }
        (_, Some(k)) => sign_rs256(k, &input),
        (_, None) => unreachable!(),
    };
    format!("{input}.{}", B64.encode(sig))
}

type Op = State<Arc<Mutex<Inner>>>;

async fn discovery(State(s): Op) -> Json<Value> {
    let g = s.lock().unwrap();
    let iss = g.issuer.clone();
    Json(json!({
        "issuer": g.discovery_issuer.clone().unwrap_or_else(|| iss.clone()),
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks"),
        "end_session_endpoint": format!("{iss}/end_session"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    }))
}

async fn jwks(State(s): Op) -> Json<Value> {
    let mut g = s.lock().unwrap();
    g.recorded.jwks_fetches += 1;
    let keys: Vec<Value> = g.published.iter().map(|(k, key)| jwk(k, key)).collect();
    Json(json!({ "keys": keys }))
}

async fn authorize(State(s): Op, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut g = s.lock().unwrap();
    g.recorded.authorize.push(q.clone());
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    if g.pkce_forbidden && q.contains_key("code_challenge") {
        return (StatusCode::BAD_REQUEST, "this provider takes no PKCE").into_response();
    }
    if g.form_post && q.get("response_mode").map(String::as_str) != Some("form_post") {
        return (StatusCode::BAD_REQUEST, "response_mode=form_post required").into_response();
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    g.grants.insert(
        code.clone(),
        Grant {
            nonce: q.get("nonce").cloned(),
            challenge: q.get("code_challenge").cloned(),
            redirect_uri: redirect_uri.clone(),
            used: false,
        },
    );
    if g.form_post {
        // The form a browser would auto-submit to the redirect URI.
        let mut fields = vec![("code", code.clone())];
        if let Some(st) = q.get("state") {
            fields.push(("state", st.clone()));
        }
        if let Some(user) = g.first_time_user.take() {
            fields.push(("user", user));
        }
        let inputs: String = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    v.replace('&', "&amp;").replace('"', "&quot;")
                )
            })
            .collect();
        return axum::response::Html(format!(
            "<form method=\"post\" action=\"{redirect_uri}\">{inputs}</form>"
        ))
        .into_response();
    }
    let mut url = openidconnect::url::Url::parse(&redirect_uri).unwrap();
    {
        let mut qp = url.query_pairs_mut();
        qp.append_pair("code", &code);
        if let Some(st) = q.get("state") {
            qp.append_pair("state", st);
        }
        if let Some(iss) = &g.knobs.iss_in_callback {
            qp.append_pair("iss", iss);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

async fn token(
    State(s): Op,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut g = s.lock().unwrap();
    g.recorded.token.push(f.clone());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    g.recorded.token_auth.push(auth.clone());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let post_ok = f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && match g.apple.clone() {
            None => f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET),
            Some(apple) => match apple_secret(&apple, &g.issuer, f.get("client_secret")) {
                Some(verified) => {
                    g.recorded.apple_secrets.push(verified);
                    true
                }
                None => false,
            },
        };
    let basic_ok = g.apple.is_none() && auth.as_deref() == Some(basic.as_str());
    if !basic_ok && !post_ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let code = f.get("code").cloned().unwrap_or_default();
    let Some(grant) = g.grants.get_mut(&code) else {
        return oauth_error("invalid_grant");
    };
    if grant.used {
        return oauth_error("invalid_grant");
    }
    grant.used = true;
    if f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error("invalid_grant");
    }
    // PKCE (RFC 7636): S256 of the verifier must be the challenge.
    match (&grant.challenge, f.get("code_verifier")) {
        (Some(ch), Some(v)) => {
            let d = openssl::sha::sha256(v.as_bytes());
            if B64.encode(d) != *ch {
                return oauth_error("invalid_grant");
            }
        }
        (None, None) => {}
        _ => return oauth_error("invalid_grant"),
    }
    let nonce = grant.nonce.clone();
    let access_token = uuid::Uuid::new_v4().simple().to_string();
    let k = g.knobs.clone();
    let mut claims = g.user.clone();
    let iss = g.token_issuer.clone().unwrap_or_else(|| g.issuer.clone());
    claims.insert("iss".into(), json!(iss));
    claims.insert("aud".into(), json!(CLIENT_ID));
    claims.insert("iat".into(), json!(now() + k.iat_offset));
    claims.insert("exp".into(), json!(now() + k.exp_offset));
    claims.insert("sid".into(), json!(format!("sid-{code}")));
    if let Some(n) = nonce {
        claims.insert("nonce".into(), json!(n));
    }
    let half = &openssl::sha::sha256(access_token.as_bytes())[..16];
    let at_hash = if k.bad_at_hash {
        B64.encode([0u8; 16])
    } else {
        B64.encode(half)
    };
    claims.insert("at_hash".into(), json!(at_hash));
    for (name, v) in &k.claims {
        if v.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.clone(), v.clone());
        }
    }
    let mut info = g.user.clone();
    for (name, v) in &k.userinfo {
        info.insert(name.clone(), v.clone());
    }
    g.tokens.insert(access_token.clone(), info);
    let id_token = encode(&g, &Value::Object(claims), &k.alg);
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

async fn userinfo(State(s): Op, headers: HeaderMap) -> Response {
    let mut g = s.lock().unwrap();
    g.recorded.userinfo_calls += 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match g.tokens.get(token) {
        Some(c) => Json(Value::Object(c.clone())).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn end_session(State(s): Op, Query(q): Query<HashMap<String, String>>) -> &'static str {
    s.lock().unwrap().recorded.end_session.push(q);
    "signed out"
}

/// The header and claims of an Apple client secret, if it is an ES256 JWT
/// signed by the operator's key (`kid`) from the team (`iss`) for this
/// client (`sub`) to this provider (`aud`), not expired.
fn apple_secret(
    apple: &AppleClient,
    issuer: &str,
    secret: Option<&String>,
) -> Option<(Value, Value)> {
    let secret = secret?;
    let header = jsonwebtoken::decode_header(secret).ok()?;
    if header.alg != jsonwebtoken::Algorithm::ES256
        || header.kid.as_deref() != Some(apple.key_id.as_str())
    {
        return None;
    }
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[issuer]);
    v.set_issuer(&[apple.team_id.as_str()]);
    v.sub = Some(CLIENT_ID.into());
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    let key = jsonwebtoken::DecodingKey::from_ec_components(&apple.x, &apple.y).ok()?;
    let data = jsonwebtoken::decode::<Value>(secret, &key, &v).ok()?;
    Some((serde_json::to_value(&data.header).ok()?, data.claims))
}
