//! The floor for `benches/load.sh`: a pingora proxy that does nothing but
//! forward (no routing, no header work, no auth), built with the same pingora
//! settings and the same allocator as Portcullis. The gap between it and
//! nginx is pingora's; the gap between it and Portcullis is ours.
//!
//! `cargo run --release --example bare_pingora -- LISTEN UPSTREAM`

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

// Portcullis' allocator (src/main.rs): with glibc's malloc, which this
// proxy used until 2026-12-08, allocation was ~27 % of its instructions, so
// the gap to Portcullis showed the allocators' difference as if it were
// pingora's cost.
#[global_allocator]
static GLOBAL: portcullis_alloc::Mimalloc = portcullis_alloc::Mimalloc;

struct Bare {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let Ok(upstream) = upstream.parse() else {
        eprintln!("UPSTREAM must be IP:PORT");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        upstream_keepalive_pool_size: 256,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    // Portcullis' plain-TCP listener buffers (src/app.rs): no L4 read
    // buffer, 16 KiB write buffer. BARE_L4_READ_BUFFER=65536 gives the
    // earlier (and pingora's default) 64 KiB read buffer, for comparison.
    let read_buffer = std::env::var("BARE_L4_READ_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    proxy.endpoints().add_listener(
        ListenerConfig::tcp(listen).l4_buffer(L4BufferSettings::new(read_buffer, 16 * 1024)),
    );
    server.add_service(proxy);
    server.run_forever();
}
