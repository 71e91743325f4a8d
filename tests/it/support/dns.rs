//! A tiny authoritative DNS server on 127.0.0.1 for domain-verification
//! and egress tests (TXT, A and AAAA): real packets over real UDP and TCP sockets, so the production
//! resolver (hickory) is exercised exactly as in deployment, just pointed
//! at an ephemeral port.
//!
//! Each name (case-insensitive, no trailing dot) has a [`Behaviour`] that
//! the test can change while the server runs. Unknown names get NXDOMAIN.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, TXT};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// How the server answers queries for one name.
#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// NOERROR with these TXT records; each record is a list of
    /// character-strings (the wire splits long values into several). An
    /// empty list is NODATA (the name exists, no TXT).
    Txt(Vec<Vec<String>>),
    /// The name does not exist.
    NxDomain,
    /// The server fails (SERVFAIL).
    ServFail,
    /// No answer at all: the client times out.
    Silence,
    /// NOERROR with these addresses: the IPv4 ones for A queries, the IPv6
    /// ones for AAAA (an empty answer, NODATA, for the other types).
    Addresses(Vec<IpAddr>),
}

#[derive(Default)]
struct State {
    names: Mutex<HashMap<String, Behaviour>>,
    udp_queries: AtomicUsize,
    tcp_queries: AtomicUsize,
    /// Answer UDP with an empty truncated (TC) response, forcing TCP.
    truncate_udp: AtomicBool,
}

/// The running server; its tasks stop when it is dropped.
pub(crate) struct DnsServer {
    addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on the same ephemeral 127.0.0.1 port.
    pub(crate) async fn start() -> DnsServer {
        // The UDP port may already be taken for TCP by someone else; retry.
        for _ in 0..20 {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind UDP");
            let addr = udp.local_addr().expect("UDP address");
            let Ok(tcp) = TcpListener::bind(addr).await else {
                continue;
            };
            let state = Arc::new(State::default());
            let tasks = vec![
                tokio::spawn(serve_udp(udp, Arc::clone(&state))),
                tokio::spawn(serve_tcp(tcp, Arc::clone(&state))),
            ];
            return DnsServer { addr, state, tasks };
        }
        panic!("no free port for UDP and TCP together");
    }

    /// `IP:PORT`, as `[dns] nameservers` takes it.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets how `name` is answered.
    pub(crate) fn set(&self, name: &str, behaviour: Behaviour) {
        self.state
            .names
            .lock()
            .expect("zone lock")
            .insert(key(name), behaviour);
    }

    /// Publishes one TXT record with one character-string.
    pub(crate) fn set_txt(&self, name: &str, value: &str) {
        self.set(name, Behaviour::Txt(vec![vec![value.to_owned()]]));
    }

    /// Forgets `name` (NXDOMAIN from now on).
    pub(crate) fn remove(&self, name: &str) {
        self.state
            .names
            .lock()
            .expect("zone lock")
            .remove(&key(name));
    }

    /// Makes every UDP answer truncated so clients must retry over TCP.
    pub(crate) fn truncate_udp(&self, on: bool) {
        self.state.truncate_udp.store(on, Ordering::SeqCst);
    }

    pub(crate) fn udp_queries(&self) -> usize {
        self.state.udp_queries.load(Ordering::SeqCst)
    }

    pub(crate) fn tcp_queries(&self) -> usize {
        self.state.tcp_queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve_udp(socket: UdpSocket, state: Arc<State>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        state.udp_queries.fetch_add(1, Ordering::SeqCst);
        let truncate = state.truncate_udp.load(Ordering::SeqCst);
        if let Some(reply) = answer(&buf[..n], &state, truncate) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_connection(stream, Arc::clone(&state)));
    }
}

/// RFC 1035 4.2.2: each message is prefixed with its 16-bit length.
async fn serve_tcp_connection(mut stream: TcpStream, state: Arc<State>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut buf = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        state.tcp_queries.fetch_add(1, Ordering::SeqCst);
        let Some(reply) = answer(&buf, &state, false) else {
            continue;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Builds the reply bytes, or `None` to stay silent (or on garbage).
fn answer(packet: &[u8], state: &State, truncate: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(packet).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let query = request.queries.first()?.clone();
    let behaviour = state
        .names
        .lock()
        .expect("zone lock")
        .get(&key(&query.name().to_ascii()))
        .cloned()
        .unwrap_or(Behaviour::NxDomain);

    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.add_query(query.clone());
    match behaviour {
        Behaviour::Silence => return None,
        Behaviour::NxDomain => reply.metadata.response_code = ResponseCode::NXDomain,
        Behaviour::ServFail => reply.metadata.response_code = ResponseCode::ServFail,
        Behaviour::Addresses(addrs) => {
            for ip in addrs {
                let rdata = match (ip, query.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                    _ => continue,
                };
                reply.add_answer(Record::from_rdata(query.name().clone(), 0, rdata));
            }
        }
        Behaviour::Txt(records) => {
            if truncate {
                reply.metadata.truncation = true;
            } else if query.query_type() == RecordType::TXT {
                for strings in records {
                    reply.add_answer(Record::from_rdata(
                        query.name().clone(),
                        0,
                        RData::TXT(TXT::new(strings)),
                    ));
                }
            }
        }
    }
    reply.to_vec().ok()
}
