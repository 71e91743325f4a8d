//! The request and response heads as pingora writes and hands them on
//! (`PORTCULLIS PATCH` pingora-http 2 and 3, pingora-core 10, 11, 14 and 17; see
//! `vendor/README.md`).
//! Portcullis' own headers are appended as field lines instead of
//! inserted into the header maps: they must reach the wire byte for byte
//! as an insert would have written them, reach every consumer of the
//! header as parts (an HTTP/2 upstream), and never carry what a field
//! cannot. (Here, not in the vendored crates, because their
//! own tests need upstream's dev-dependencies; Portcullis' suite runs
//! these.)

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use pingora::http::{
    CasedHeaderName, FRAMING_NAMES, FieldLines, HeaderNameVariant, RequestHeader, ResponseHeader,
};

use crate::support::raw;
use pingora::protocols::http::v1::client::{HttpSession, http_req_header_to_wire};
use pingora::protocols::http::v1::server::HttpSession as ServerSession;
use tokio::io::AsyncWriteExt;

fn request(case: bool) -> RequestHeader {
    let mut req = if case {
        RequestHeader::build("GET", b"/a?b=c", None).unwrap()
    } else {
        RequestHeader::build_no_case("GET", b"/a?b=c", None).unwrap()
    };
    req.append_header("Accept", "*/*").unwrap();
    req.append_header("cookie", "a=1").unwrap();
    req.append_header("Cookie", "b=2").unwrap();
    req
}

fn wire(req: &RequestHeader) -> String {
    let mut buf = vec![];
    req.header_to_h1_wire(&mut buf);
    String::from_utf8(buf).unwrap()
}

/// A head's `map`, for [`visited_by`].
type Visit<'f> = &'f mut dyn FnMut(HeaderNameVariant, &HeaderValue) -> pingora::Result<()>;

/// Everything a head's `map` shows, names lower-cased.
fn visited_by(map: impl FnOnce(Visit) -> pingora::Result<()>) -> Vec<(Vec<u8>, HeaderValue)> {
    let mut seen = vec![];
    map(&mut |name, value| {
        let name = match name {
            HeaderNameVariant::Case(c) => c.as_slice().to_vec(),
            HeaderNameVariant::Titled(t) => t.as_bytes().to_vec(),
        };
        seen.push((name.to_ascii_lowercase(), value.clone()));
        Ok(())
    })
    .unwrap();
    seen
}

fn visited(req: &RequestHeader) -> Vec<(Vec<u8>, HeaderValue)> {
    visited_by(|f| req.map(f))
}

#[test]
fn appended_fields_are_sent_as_inserted_ones() {
    let fields: [(HeaderName, &[u8]); 4] = [
        (HeaderName::from_static("x-forwarded-for"), b"10.0.0.1"),
        (
            HeaderName::from_bytes(b"X-Portcullis-Email").unwrap(),
            b"a@b.example",
        ),
        (http::header::FORWARDED, b"for=10.0.0.1;proto=http"), // titled
        (HeaderName::from_static("x-empty"), b""),
    ];
    for case in [true, false] {
        let (mut inserted, mut appended) = (request(case), request(case));
        // The same lines written once into `FieldLines`, appended whole
        // (the first two) and one by one (the others).
        let (mut in_block, mut block) = (request(case), FieldLines::default());
        appended.reserve_field_lines(64);
        for (i, (name, value)) in fields.iter().enumerate() {
            let name = CasedHeaderName::new(name.clone());
            let value = HeaderValue::from_bytes(value).unwrap();
            inserted.insert_parsed_header(&name, value.clone()).unwrap();
            if i % 2 == 0 {
                appended.append_field_line(&name, value.as_bytes()).unwrap();
                block.push(&name, value.as_bytes()).unwrap();
            } else {
                appended.append_field_value(&name, &value).unwrap();
                block.push_value(&name, &value).unwrap();
            }
            if i == 1 {
                in_block.append_field_lines(&block);
                block.clear();
            }
        }
        in_block.append_field_lines(&block);
        assert_eq!(wire(&in_block), wire(&inserted), "case {case}");
        assert_eq!(
            in_block.appended_field_lines(),
            appended.appended_field_lines()
        );
        assert_eq!(wire(&appended), wire(&inserted), "case {case}");
        assert_eq!(appended.header_h1_wire_len(), wire(&inserted).len());
        assert_eq!(wire(&appended.clone()), wire(&inserted));
        // Not in the map; in everything made from the header for others.
        assert!(appended.headers.get("x-forwarded-for").is_none());
        assert_eq!(appended.as_owned_parts().headers, inserted.headers);
        assert_eq!(
            http::request::Parts::from(appended.clone()).headers,
            inserted.headers
        );
        assert_eq!(visited(&appended), visited(&inserted));
    }
}

/// A response's appended field (the request id Portcullis adds to every
/// answer) is written as an insert would write it, after the map's
/// fields, and reaches every view made of the head for others (parts for
/// an HTTP/2 downstream, `map`) and its clone exactly once; it refuses what
/// a request's refuses.
#[test]
fn appended_response_fields_are_sent_as_inserted_ones() {
    let name = CasedHeaderName::new(HeaderName::from_bytes(b"X-Request-Id").unwrap());
    let id = b"0f6c1c2e-5d1a-4e3b-9a77-1b2c3d4e5f60";
    for case in [true, false] {
        let build = || {
            let mut r = if case {
                ResponseHeader::build(200, None).unwrap()
            } else {
                ResponseHeader::build_no_case(200, None).unwrap()
            };
            r.append_header("Content-Type", "text/plain").unwrap();
            r.append_header("set-cookie", "a=1").unwrap();
            r
        };
        let (mut inserted, mut appended) = (build(), build());
        inserted
            .insert_parsed_header(&name, HeaderValue::from_bytes(id).unwrap())
            .unwrap();
        appended.append_field_line(&name, id).unwrap();
        let wire = |r: &ResponseHeader| {
            let mut buf = vec![];
            r.header_to_h1_wire(&mut buf);
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(wire(&appended), wire(&inserted), "case {case}");
        assert_eq!(wire(&appended.clone()), wire(&inserted), "case {case}");
        assert!(appended.headers.get("x-request-id").is_none());
        assert_eq!(appended.as_owned_parts().headers, inserted.headers);
        assert_eq!(
            http::response::Parts::from(appended.clone()).headers,
            inserted.headers
        );
        let boxed: Box<http::response::Parts> = Box::new(appended.clone()).into();
        assert_eq!(boxed.headers, inserted.headers);
        assert_eq!(
            visited_by(|f| appended.map(f)),
            visited_by(|f| inserted.map(f))
        );
    }
    let mut r = ResponseHeader::build(200, None).unwrap();
    for bad in [&b"a\r\nSet-Cookie: x=1"[..], b"a\n", b"a\0"] {
        assert!(r.append_field_line(&name, bad).is_err());
    }
    let framing = CasedHeaderName::new(http::header::CONTENT_LENGTH);
    assert!(r.append_field_line(&framing, b"0").is_err());
    assert!(r.appended_field_lines().is_empty());
}

#[test]
fn appended_fields_refuse_what_a_field_cannot_carry() {
    let name = CasedHeaderName::new(HeaderName::from_static("x-user"));
    // Every byte alone and inside a value: accepted exactly when
    // `HeaderValue` accepts it, and nothing written when refused.
    // `FieldLines` (lines written once, appended to many requests) the same.
    let (mut req, mut block) = (request(true), FieldLines::default());
    for b in 0..=255u8 {
        for value in [vec![b], vec![b'a', b, b'z']] {
            let before = req.appended_field_lines().len();
            let ok = req.append_field_line(&name, &value).is_ok();
            assert_eq!(ok, HeaderValue::from_bytes(&value).is_ok(), "byte {b:#04x}");
            let in_block = block.as_bytes().len();
            assert_eq!(block.push(&name, &value).is_ok(), ok, "byte {b:#04x}");
            if !ok {
                assert_eq!(req.appended_field_lines().len(), before, "{b:#04x}");
                assert_eq!(block.as_bytes().len(), in_block, "{b:#04x}");
            }
        }
    }
    assert_eq!(block.as_bytes(), req.appended_field_lines());
    // A value that would smuggle a second field is refused whole.
    let mut req = request(true);
    for smuggled in [
        &b"a\r\nX-Admin: 1"[..],
        b"a\nX-Admin: 1",
        b"a\rX-Admin: 1",
        b"a\0",
    ] {
        assert!(req.append_field_line(&name, smuggled).is_err());
    }
    // Names pingora reads from the map, however spelled, either way in.
    for framing in FRAMING_NAMES
        .iter()
        .map(|n| n.as_str().to_ascii_uppercase())
    {
        let name = CasedHeaderName::new(HeaderName::from_bytes(framing.as_bytes()).unwrap());
        assert!(req.append_field_line(&name, b"1").is_err(), "{framing}");
        let one = HeaderValue::from_static("1");
        assert!(req.append_field_value(&name, &one).is_err(), "{framing}");
        let mut block = FieldLines::default();
        assert!(block.push(&name, b"1").is_err(), "{framing}");
        assert!(block.push_value(&name, &one).is_err(), "{framing}");
        assert!(block.as_bytes().is_empty());
    }
    assert!(req.appended_field_lines().is_empty());
    assert_eq!(wire(&req), wire(&request(true)));
}

/// The request line and head are written into one buffer made their size
/// (pingora-core 10): no growth while writing, no slack after.
/// The upstream copy of every proxied request is a clone (pingora-http 3
/// clones the parts whole instead of rebuilding them): method, target
/// (absolute-form and CONNECT bytes included), version, every value of a
/// repeated name in order, the client's spelling, extensions, appended
/// lines; and a response head the same way.
#[test]
fn request_and_response_heads_clone_whole() {
    #[derive(Clone, Debug, PartialEq)]
    struct Mark(u32);
    for (method, target) in [
        ("POST", &b"/a?b=c"[..]),
        ("GET", b"http://app.example:8080/x?y"),
        ("CONNECT", b"app.example:443"),
        ("PATCH", b"/%2e%2e;p/..;/x"),
    ] {
        for case in [false, true] {
            let mut req = if case {
                RequestHeader::build(method, target, None).unwrap()
            } else {
                RequestHeader::build_no_case(method, target, None).unwrap()
            };
            req.set_version(http::Version::HTTP_10);
            req.append_header("X-Thing", "1").unwrap();
            req.append_header("x-thing", "2").unwrap();
            req.append_header("Cookie", "a=1").unwrap();
            req.extensions_mut().insert(Mark(7));
            let name = CasedHeaderName::new(HeaderName::from_static("x-forwarded-email"));
            req.append_field_line(&name, b"a@b.example").unwrap();

            let copy = req.clone();
            assert_eq!(copy.method, req.method);
            assert_eq!(copy.uri, req.uri);
            assert_eq!(copy.raw_path(), req.raw_path());
            assert_eq!(copy.version, http::Version::HTTP_10);
            assert_eq!(copy.headers, req.headers);
            assert_eq!(copy.extensions.get::<Mark>(), Some(&Mark(7)));
            assert_eq!(wire(&copy), wire(&req), "{method} {target:?} case {case}");
            assert!(wire(&copy).contains("x-forwarded-email: a@b.example\r\n"));
            let parts = req.as_owned_parts();
            assert_eq!(parts.method, req.method);
            assert_eq!(parts.uri, req.uri);
            assert_eq!(parts.extensions.get::<Mark>(), Some(&Mark(7)));
            assert_eq!(parts.headers.get_all("x-thing").iter().count(), 2);
        }
    }
    let mut resp = ResponseHeader::build(418, None).unwrap();
    resp.append_header("X-Thing", "1").unwrap();
    resp.append_header("x-thing", "2").unwrap();
    resp.extensions_mut().insert(Mark(9));
    let copy = resp.clone();
    assert_eq!(copy.status, 418);
    assert_eq!(copy.headers, resp.headers);
    assert_eq!(copy.extensions.get::<Mark>(), Some(&Mark(9)));
    let parts = resp.as_owned_parts();
    assert_eq!(parts.status, 418);
    assert_eq!(parts.headers, resp.headers);
    assert_eq!(parts.extensions.get::<Mark>(), Some(&Mark(9)));
}

#[test]
fn the_request_head_is_written_into_a_buffer_its_size() {
    for extra in [0, 1, 40] {
        let mut req = request(true);
        for i in 0..extra {
            let name =
                CasedHeaderName::new(HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap());
            req.append_field_line(&name, "v".repeat(i * 7).as_bytes())
                .unwrap();
        }
        let buf = http_req_header_to_wire(&req).unwrap();
        let text = std::str::from_utf8(&buf).unwrap();
        assert!(text.starts_with("GET /a?b=c HTTP/1.1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        assert_eq!(text.matches("\r\n").count(), 1 + 3 + extra + 1, "{text}");
        assert_eq!(buf.capacity(), buf.len(), "{extra} appended fields");
    }
}

/// One exchange with a raw upstream that answers `response` (and then
/// closes the connection if `close`, else holds it open): the head the
/// session handed over, the session after reading the body to its end,
/// and the body.
async fn exchange_with(
    response: Vec<u8>,
    close: bool,
) -> (Box<ResponseHeader>, HttpSession, Vec<u8>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        assert!(
            raw::next_head(&mut s, &mut buf).await.is_some(),
            "request cut short"
        );
        s.write_all(&response).await.unwrap();
        // Held open unless told: the session, not a closed socket, decides
        // reuse.
        (!close).then_some(s)
    });
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let stream: pingora::protocols::l4::stream::Stream = tcp.into();
    let mut session = HttpSession::new(Box::new(stream));
    let req = RequestHeader::build("GET", b"/", None).unwrap();
    session.write_request_header(Box::new(req)).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), session.read_resp_header_parts())
        .await
        .unwrap()
        .unwrap();
    let mut body = Vec::new();
    for _ in 0..10_000 {
        if session.is_body_done() {
            break;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), session.read_body_bytes())
            .await
            .unwrap()
            .unwrap();
        match chunk {
            Some(b) => body.extend_from_slice(&b),
            None => break,
        }
    }
    let _held = upstream.await.unwrap();
    session.respect_keepalive();
    (resp, session, body)
}

async fn exchange(response: &'static [u8]) -> (Box<ResponseHeader>, HttpSession, Vec<u8>) {
    exchange_with(response.to_vec(), false).await
}

/// The parsed head goes to the caller with room for two more fields, and
/// the session keeps no copy of it (`PORTCULLIS PATCH` pingora-core 11,
/// 14): what it reads again, the status and what decides reuse, it took
/// when it parsed the head.
#[tokio::test]
async fn a_response_head_is_handed_on_with_room_to_add_to() {
    let (mut resp, session, body) = exchange(
        b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers.len(), 3);
    assert_eq!(body, b"ok");
    assert!(session.resp_header().is_none(), "handed over, not copied");
    assert_eq!(session.get_status(), Some(http::StatusCode::OK));
    assert!(session.will_keepalive());
    // Two fields fit without growing the map.
    let capacity = resp.headers.capacity();
    resp.insert_header("Connection", "keep-alive").unwrap();
    resp.insert_header("X-Request-Id", "1").unwrap();
    assert_eq!(resp.headers.capacity(), capacity);
}

/// Reuse is decided from the head the session no longer holds, as it was
/// from the head: HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`, and never with `Transfer-Encoding`
/// (RFC 9112 §6.1).
#[tokio::test]
async fn reuse_is_decided_by_the_head_that_was_handed_over() {
    let cases: [(&'static [u8], bool); 7] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=9\r\nContent-Length: 2\r\n\r\nok", true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false),
    ];
    for (response, reused) in cases {
        let (resp, session, body) = exchange(response).await;
        let shown = String::from_utf8_lossy(response);
        assert_eq!(resp.status, 200, "{shown}");
        assert_eq!(body, b"ok", "{shown}");
        assert!(session.resp_header().is_none(), "{shown}");
        assert_eq!(session.will_keepalive(), reused, "{shown}");
    }
}

/// Every body arrives whole and in order however it is framed, whether the
/// session moves the bytes it read out of its buffer (`Content-Length`,
/// close-delimited) or copies them out from between the chunk framing
/// (`PORTCULLIS PATCH` pingora-core 15): a body that came with the head, one
/// read in many pieces, one that ends with the connection, a chunked one.
#[tokio::test]
async fn bodies_arrive_whole_however_framed() {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut long = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
    long.extend_from_slice(&big);
    let mut until_close = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    until_close.extend_from_slice(&big);
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in big.chunks(70_001) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    // (name, response, closed after it, body, connection reusable)
    type Case<'a> = (&'a str, Vec<u8>, bool, &'a [u8], bool);
    let cases: [Case<'_>; 4] = [
        (
            "with the head",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            false,
            b"ok",
            true,
        ),
        ("Content-Length, many reads", long, false, &big, true),
        ("until close", until_close, true, &big, false),
        ("chunked", chunked, false, &big, true),
    ];
    for (name, response, close, want, reused) in cases {
        let (resp, session, body) = exchange_with(response, close).await;
        assert_eq!(resp.status, 200, "{name}");
        assert_eq!(body.len(), want.len(), "{name}");
        assert!(body == want, "{name}: the bytes differ");
        assert_eq!(session.body_bytes_received(), want.len(), "{name}: counted");
        assert_eq!(session.will_keepalive(), reused, "{name}");
    }
}

/// A server session over a fresh loopback connection on which `raw` was
/// sent, with its request head read (`Ok(false)`: refused).
async fn server_reading(raw: &'static [u8]) -> (ServerSession, Result<bool, String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        // Held open: the session reads what was sent, never a close.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    drop(client);
    let stream: pingora::protocols::l4::stream::Stream = tcp.into();
    let mut session = ServerSession::new(Box::new(stream));
    let read = tokio::time::timeout(Duration::from_secs(5), session.read_request())
        .await
        .unwrap();
    let read = match read {
        Ok(Some(_)) => Ok(true),
        Ok(None) => Ok(false),
        Err(e) => Err(e.to_string()),
    };
    (session, read)
}

/// The request body as the session frames it (at most 1 s of waiting).
async fn server_body(session: &mut ServerSession) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..100 {
        let read = tokio::time::timeout(Duration::from_secs(1), session.read_body_bytes()).await;
        match read {
            Ok(Ok(Some(b))) => body.extend_from_slice(&b),
            _ => break,
        }
    }
    body
}

/// pingora-core 17 reads a request head's framing once, when it is parsed,
/// for both the validation and the body reader. A head handed out for
/// changes (`req_header_mut`) is framed again as changed, as before the
/// patch: whatever a filter did, the body reader and the head agree.
#[tokio::test]
async fn a_request_body_is_framed_by_the_head_as_it_stands() {
    let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    let (mut as_sent, read) = server_reading(raw).await;
    assert_eq!(read, Ok(true));
    assert!(!as_sent.is_body_empty());
    assert_eq!(server_body(&mut as_sent).await, b"hello");

    let (mut changed, read) = server_reading(raw).await;
    assert_eq!(read, Ok(true));
    changed
        .req_header_mut()
        .insert_header("Content-Length", "3")
        .unwrap();
    assert_eq!(server_body(&mut changed).await, b"hel");

    let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (mut te, read) = server_reading(chunked).await;
    assert_eq!(read, Ok(true));
    assert_eq!(server_body(&mut te).await, b"hello");

    let (mut empty, read) = server_reading(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET").await;
    assert_eq!(read, Ok(true));
    assert!(empty.is_body_empty());
    assert_eq!(server_body(&mut empty).await, b"");

    for refused in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let (_, read) = server_reading(refused).await;
        assert!(
            read.is_err(),
            "{}: {read:?}",
            String::from_utf8_lossy(refused)
        );
    }
    // The refusal names its reason as before.
    let (_, read) =
        server_reading(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello").await;
    assert!(
        read.as_ref()
            .is_err_and(|e| e.contains("invalid Content-Length header")),
        "{read:?}"
    );
}
