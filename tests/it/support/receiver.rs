//! A real HTTP webhook receiver on loopback that records every request and
//! can be told to fail, stall or go away — the app behind Portcullis.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    pub json: serde_json::Value,
    /// What the receiver answered; 0 for a request it stalled on.
    pub status: u16,
}

impl Received {
    pub(crate) fn tenant(&self) -> &str {
        self.json["tenant"].as_str().unwrap_or_default()
    }
    pub(crate) fn seq(&self) -> i64 {
        self.json["sequence"].as_i64().unwrap_or(-1)
    }
    pub(crate) fn event_type(&self) -> &str {
        self.json["type"].as_str().unwrap_or_default()
    }
}

/// How to answer a request, decided per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Ok,
    Status(u16),
    /// Sleep this long, then 200.
    Slow(Duration),
}

type Rule = Box<dyn Fn(&serde_json::Value, usize) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Received>>>,
    /// Decides the answer from the body and how often this id was seen.
    rule: Arc<Mutex<Rule>>,
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

pub(crate) struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    task: Option<JoinHandle<()>>,
    /// While stopped: holds the port (bound, not listening, so connections
    /// are refused) so that no one else can take it before the restart.
    held: Option<TcpSocket>,
}

/// A socket on `addr` with `SO_REUSEPORT`: the listener and the socket that
/// holds the port while stopped overlap, so the port is never free.
/// Sockets without the option (everyone else's) can't bind it meanwhile.
fn reusable(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind(addr).unwrap();
    socket
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = reusable("127.0.0.1:0".parse().unwrap())
            .listen(128)
            .unwrap();
        Self::serve(listener, None).await
    }

    /// Listens again on the same port (after [`Receiver::stop`]), keeping
    /// the log.
    pub(crate) async fn restart(&mut self) {
        let listener = reusable(self.addr).listen(128).unwrap();
        self.held = None;
        let shared = self.shared.clone();
        self.task = Some(tokio::spawn(run(listener, shared)));
    }

    async fn serve(listener: TcpListener, shared: Option<Shared>) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let shared = shared.unwrap_or_else(|| Shared {
            log: Arc::default(),
            rule: Arc::new(Mutex::new(Box::new(|_, _| Answer::Ok))),
            seen: Arc::default(),
        });
        let task = tokio::spawn(run(listener, shared.clone()));
        Receiver {
            addr,
            shared,
            task: Some(task),
            held: None,
        }
    }

    /// Stops listening: connections are refused until [`Receiver::restart`].
    pub(crate) async fn stop(&mut self) {
        self.held = Some(reusable(self.addr));
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// `rule(body, attempt)` where attempt counts this id's requests from 1.
    pub(crate) fn answer_with(
        &self,
        rule: impl Fn(&serde_json::Value, usize) -> Answer + Send + Sync + 'static,
    ) {
        *self.shared.rule.lock().unwrap() = Box::new(rule);
    }

    pub(crate) fn log(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The acknowledged (2xx) requests.
    pub(crate) fn acknowledged(&self) -> Vec<Received> {
        self.log()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits (bounded) until `pred` holds for the log.
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            if pred(&self.log()) {
                return;
            }
            if Instant::now() >= deadline {
                let log: Vec<_> = self
                    .log()
                    .iter()
                    .map(|r| {
                        format!(
                            "{}#{} {} -> {}",
                            r.tenant(),
                            r.seq(),
                            r.event_type(),
                            r.status
                        )
                    })
                    .collect();
                panic!("receiver: {what} not reached within {within:?}; log: {log:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn run(listener: TcpListener, shared: Shared) {
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(shared);
    let _ = axum::serve(listener, app).await;
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let id = h("webhook-id");
    let attempt = {
        let mut seen = s.seen.lock().unwrap();
        let n = seen.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    let answer = (s.rule.lock().unwrap())(&json, attempt);
    // Logged on arrival: a stalled request's handler may be dropped when
    // the client gives up. Stalled requests are logged with status 0.
    let (status, stall) = match answer {
        Answer::Ok => (200, None),
        Answer::Status(code) => (code, None),
        Answer::Slow(d) => (0, Some(d)),
    };
    s.log.lock().unwrap().push(Received {
        id,
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        content_type: h("content-type"),
        body: text,
        json,
        status,
    });
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
        return StatusCode::OK;
    }
    StatusCode::from_u16(status).unwrap()
}

/// Verifies a request the way the Standard Webhooks reference libraries do,
/// written here independently of Portcullis' signer: any `v1` signature in
/// the header must match HMAC-SHA256(secret, "id.timestamp.body") and the
/// timestamp must be within five minutes.
pub(crate) fn verify(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let Ok(ts) = r.timestamp.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts).abs() > 300 {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", r.id, r.timestamp, r.body);
    r.signature.split(' ').any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        ring::hmac::verify(&key, signed.as_bytes(), &tag).is_ok()
    })
}
