//! `Content-Length` as a framing field, both ways through the proxy. A
//! message whose length two readers could read differently is the root of
//! request smuggling, so the rule is RFC 9110 §8.6 read strictly: every
//! value on every `Content-Length` line, split at commas and stripped of
//! spaces and tabs, must be a plain decimal number and all must be equal;
//! anything else (a sign, hex, an empty part, a conflicting duplicate, a
//! byte outside ASCII, a number past 64 bits) refuses the message. The
//! table is pinned end to end, so a faster parser
//! (`PORTCULLIS PATCH (pingora-core 12)`) must read every row alike.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::env::*;
use crate::support::raw::{next_head, target, upstream};

/// Sends `raw` on a fresh connection to `addr` and reads until the peer
/// closes (at most 5 s): the status and what followed the head.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, Vec<u8>) {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    s.write_all(raw).await.unwrap();
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all));
    let _ = read
        .await
        .expect("the proxy answered and closed within 5 s");
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&all)));
    let status = std::str::from_utf8(&all[9..12]).unwrap().parse().unwrap();
    (status, all[head_end + 4..].to_vec())
}

/// The `Content-Length` lines of each row, and whether the message is read
/// as five bytes long (`Some(5)` on requests; the response rows use 3).
fn rows(n: &str) -> Vec<(Vec<Vec<u8>>, bool)> {
    let one = |v: &str| vec![v.as_bytes().to_vec()];
    let two = |a: &str, b: &str| vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()];
    let other = if n == "5" { "6" } else { "4" };
    vec![
        (one(n), true),
        (one(&format!("{n}, {n}")), true),
        (one(&format!("{n},{n}")), true),
        (one(&format!("{n} ,\t{n}")), true),
        (two(n, n), true),
        (two(&format!("{n}, {n}"), n), true),
        (one(&format!("0{n}")), true),
        (one(&format!("{n}, {other}")), false),
        (two(n, other), false),
        (one(&format!("+{n}")), false),
        (one(&format!("-{n}")), false),
        (one(&format!("0x{n}")), false),
        (one(&format!("{n}a")), false),
        (one(&format!("{n},")), false),
        (one(&format!(",{n}")), false),
        (one(&format!("{n}, ,{n}")), false),
        (one(&format!("{n} {n}")), false),
        (one(&format!("{n}.0")), false),
        (one("99999999999999999999999"), false),
        (vec![[n.as_bytes(), b"\xc2\xa0"].concat()], false),
        (vec![[b"\xef\xbc\x95".as_slice()].concat()], false),
    ]
}

fn lines(values: &[Vec<u8>]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| [b"Content-Length: ".as_slice(), v, b"\r\n"].concat())
        .collect()
}

#[tokio::test]
async fn request_lengths_are_read_strictly() {
    let (env, _task) = behind_lengths_upstream().await;
    for (values, valid) in rows("5") {
        let raw = [
            b"POST /public/framing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".as_slice(),
            &lines(&values),
            b"\r\nhello",
        ]
        .concat();
        let (status, body) = exchange(env.proxy, &raw).await;
        let shown = String::from_utf8_lossy(&lines(&values)).into_owned();
        if valid {
            // The app got the five bytes (and the lines as sent).
            assert_eq!((status, body.as_slice()), (200, b"5".as_slice()), "{shown}");
        } else {
            // Refused by the proxy: the app answers every request 200.
            assert_eq!(status, 400, "{shown}");
        }
    }
}

/// `Transfer-Encoding` on requests, end to end: the body is chunked when
/// the last coding is `chunked` (any case, any list spelling, a
/// `Content-Length` beside it dropped whatever it says); anything else, or
/// any coding on an HTTP/1.0 request, is refused before the app. The
/// framing is read once per head (`PORTCULLIS PATCH (pingora-core 17)`),
/// so validation and body reader must agree on every row.
#[tokio::test]
async fn request_transfer_codings_are_read_strictly() {
    let (env, _task) = behind_lengths_upstream().await;
    const BODY: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
    for (version, lines, valid) in [
        ("1.1", "Transfer-Encoding: chunked\r\n", true),
        ("1.1", "Transfer-Encoding: CHUNKED\r\n", true),
        ("1.1", "Transfer-Encoding: gzip, chunked\r\n", true),
        (
            "1.1",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            true,
        ),
        (
            "1.1",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            true,
        ),
        (
            "1.1",
            "Content-Length: abc\r\nTransfer-Encoding: chunked\r\n",
            true,
        ),
        ("1.1", "Transfer-Encoding: chunked, gzip\r\n", false),
        (
            "1.1",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            false,
        ),
        ("1.1", "Transfer-Encoding: gzip\r\n", false),
        ("1.1", "Transfer-Encoding: chunkedx\r\n", false),
        ("1.0", "Transfer-Encoding: chunked\r\n", false),
    ] {
        let raw = [
            format!(
                "POST /public/framing HTTP/{version}\r\nHost: a\r\nConnection: close\r\n{lines}\r\n"
            )
            .as_bytes(),
            BODY,
        ]
        .concat();
        let (status, body) = exchange(env.proxy, &raw).await;
        let shown = format!("HTTP/{version} {lines:?}");
        if valid {
            // The app got the body (pingora sends it on chunked again),
            // never beside a `Content-Length` a server preferring it (IIS,
            // older Tomcat and Node) would frame by.
            assert_eq!(status, 200, "{shown}");
            let got: usize = String::from_utf8_lossy(&body)
                .parse()
                .unwrap_or_else(|_| panic!("{shown}: the app got {body:?}"));
            assert!(got >= 5, "{shown}: {got}");
        } else {
            assert_eq!(status, 400, "{shown}");
        }
    }
}

/// A proxy in front of [`lengths_upstream`] (kept running by the handle).
async fn behind_lengths_upstream() -> (TestEnv, tokio::task::JoinHandle<()>) {
    let (addr, task) = lengths_upstream().await;
    let env = TestEnv::with(Options {
        upstream: Some(addr),
        ..Options::default()
    })
    .await;
    (env, task)
}

/// A raw upstream. A `POST` is answered with the number of body bytes that
/// followed its head (waiting up to 1 s for five), or `both` if the head
/// carried `Content-Length` and `Transfer-Encoding` together; a `GET /public/row/N`
/// with the `Content-Length` lines of response row `N` and the body `abc`.
async fn lengths_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    upstream(|mut sock| async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let Some(head) = next_head(&mut sock, &mut buf).await else {
            return;
        };
        let answer = if head.starts_with("POST") {
            let mut body = buf.len();
            while body < 5 {
                let read = tokio::time::timeout(Duration::from_secs(1), sock.read(&mut chunk));
                match read.await {
                    Ok(Ok(n)) if n > 0 => body += n,
                    _ => break,
                }
            }
            // A head that frames its body twice is what a smuggler wants
            // an app to get: it says so instead of a count.
            let lower = head.to_ascii_lowercase();
            let both =
                lower.contains("\r\ncontent-length:") && lower.contains("\r\ntransfer-encoding:");
            let text = if both {
                "both".to_owned()
            } else {
                body.to_string()
            };
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
            .into_bytes()
        } else {
            let row: usize = target(&head)
                .strip_prefix("/public/row/")
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            let (values, _) = rows("3").swap_remove(row);
            [
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n".as_slice(),
                &lines(&values),
                b"\r\nabc",
            ]
            .concat()
        };
        let _ = sock.write_all(&answer).await;
    })
    .await
}

#[tokio::test]
async fn response_lengths_are_read_strictly() {
    let (env, _task) = behind_lengths_upstream().await;
    for (i, (values, valid)) in rows("3").into_iter().enumerate() {
        let raw = format!("GET /public/row/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let (status, body) = exchange(env.proxy, raw.as_bytes()).await;
        let shown = String::from_utf8_lossy(&lines(&values)).into_owned();
        if valid {
            assert_eq!(
                (status, body.as_slice()),
                (200, b"abc".as_slice()),
                "{shown}"
            );
        } else {
            assert_eq!(status, 502, "{shown}");
        }
    }
}
