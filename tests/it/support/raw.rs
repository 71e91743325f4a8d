//! Raw HTTP/1 upstreams in tests: what they share is reading one request
//! head at a time off a kept-alive connection.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads from `sock` until `buf` holds a whole request head, takes the
/// head off `buf` (what followed it stays, e.g. a body or the next
/// request) and returns it; `None` once the peer closed or failed first.
pub(crate) async fn next_head<S: AsyncRead + Unpin>(
    sock: &mut S,
    buf: &mut Vec<u8>,
) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at + 4]).into_owned();
            buf.drain(..at + 4);
            return Some(head);
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The request target of a head (`GET /x HTTP/1.1` → `/x`).
pub(crate) fn target(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or_default()
}

/// A raw upstream on 127.0.0.1: each accepted connection is handed to
/// `serve` in a task of its own. Ends when the returned task is dropped
/// with the test's runtime.
pub(crate) async fn upstream<F, Fut>(
    serve: F,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock));
        }
    });
    (addr, task)
}
