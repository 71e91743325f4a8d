//! Request paths as the servers behind us might read them.
//!
//! Rule: a request reaches the app only under the policy of *every* route
//! that some plausible reading of its path selects. Portcullis does not pick
//! one "correct" reading — Tomcat, Spring, Express, Rails, Django, PHP,
//! ASP.NET and nginx disagree — so it computes the readings that matter and
//! the route table honours all of them:
//!
//! * **raw**: the bytes as sent (nginx `location` on the unparsed URI, or an
//!   app that routes on `REQUEST_URI`);
//! * **decoded**: percent-decoded (repeatedly, so `%252e` is `.`), `\` read
//!   as `/`, repeated slashes collapsed, `.`/`..` resolved — what most
//!   frameworks route on — and decoded only, as Django's `PATH_INFO` is;
//! * **stripped**: path parameters removed from every segment
//!   (`/admin;x/users` → `/admin/users`, `..;` → `..`), as Tomcat and
//!   Spring do — both before decoding (Tomcat cuts `;…` from the raw URI,
//!   escapes and all, so `/admin;%2F../public` is its `/admin/public`) and
//!   after (a server that decodes first reads `%3B` as a delimiter).
//!
//! and, derived from each of those,
//!
//! * **trimmed**: trailing dots and spaces removed from every segment, as
//!   IIS and Windows file names do (`/admin./users` → `/admin/users`);
//! * **suffixless**: the format suffix removed from the last segment, as
//!   Rails and Spring's suffix matching do (`/admin.json` → `/admin`).
//!
//! Case is the route matcher's concern: it compares segments, folded unless
//! a route opts into `case_sensitive`.
//!
//! A path no reading makes unambiguous is refused before any route applies:
//! NUL and control characters, invalid UTF-8 (which includes overlong
//! encodings such as `%c0%ae`), malformed escapes (including IIS's `%u2215`),
//! and characters whose compatibility form is a separator or a dot
//! (`／`, `．`, `∕`-like look-alikes that best-fit mappings turn into `/`).
//! Encoded separators (`%2F`, `%5C`) are allowed only where every reading is
//! public; that last check needs the route table, so this module only
//! reports them.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// Decoding rounds: enough for `%25252e`; a path still holding escapes after
/// that is refused rather than guessed.
const DECODE_ROUNDS: usize = 4;

/// Why a path was refused before routing. Each is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ambiguity {
    #[error("control character in path")]
    Control,
    #[error("path does not decode to UTF-8")]
    InvalidUtf8,
    #[error("overlong UTF-8 encoding in path")]
    Overlong,
    #[error("malformed percent-escape in path")]
    MalformedEscape,
    #[error("still percent-encoded after repeated decoding")]
    TooDeeplyEncoded,
    #[error("character whose compatibility form is a path separator or dot")]
    LookAlike,
}

impl Ambiguity {
    /// Closed label set for `portcullis_requests_refused_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            Ambiguity::Control => "path_control",
            Ambiguity::InvalidUtf8 => "path_invalid_utf8",
            Ambiguity::Overlong => "path_overlong",
            Ambiguity::MalformedEscape => "path_malformed_escape",
            Ambiguity::TooDeeplyEncoded => "path_encoding_depth",
            Ambiguity::LookAlike => "path_lookalike",
        }
    }
}

/// The readings of one path (no query string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readings<'a> {
    raw: &'a str,
    /// Further distinct readings; empty for the plain paths browsers send.
    others: Vec<String>,
    /// The path held `%2F` or `%5C` (at any decoding depth).
    encoded_separator: bool,
}

impl<'a> Readings<'a> {
    /// Every reading, raw first, without duplicates.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.raw).chain(self.others.iter().map(String::as_str))
    }

    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The path carried an encoded `/` or `\`: servers disagree on whether
    /// it separates segments.
    pub fn encoded_separator(&self) -> bool {
        self.encoded_separator
    }
}

/// Computes the readings of `raw`, or refuses it.
pub fn readings(raw: &str) -> Result<Readings<'_>, Ambiguity> {
    let mut r = if is_plain(raw) {
        Readings {
            raw,
            others: Vec::new(),
            encoded_separator: false,
        }
    } else {
        decoded_readings(raw)?
    };
    // Variants of every reading so far (a suffix on a trimmed path too).
    let mut i = 0;
    while i <= r.others.len() {
        let base = if i == 0 {
            r.raw
        } else {
            r.others[i - 1].as_str()
        };
        // A trimmed segment may end up empty (`/%20/admin`): resolve again.
        let variants = [
            trim_segments(base).map(|t| resolve(&t, false)),
            strip_suffix(base),
        ];
        for v in variants.into_iter().flatten() {
            if v != r.raw && !r.others.contains(&v) {
                r.others.push(v);
            }
        }
        i += 1;
    }
    Ok(r)
}

/// Trailing dots and spaces off every segment (not off `.`/`..`, which are
/// dot segments, resolved in the decoded readings).
fn trim_segments(path: &str) -> Option<String> {
    let needs = path
        .split('/')
        .any(|s| s.trim_end_matches(['.', ' ']) != s && !s.bytes().all(|b| b == b'.'));
    if !needs {
        return None;
    }
    let segs: Vec<&str> = path
        .split('/')
        .map(|s| {
            if s.bytes().all(|b| b == b'.') {
                s
            } else {
                s.trim_end_matches(['.', ' '])
            }
        })
        .collect();
    Some(segs.join("/"))
}

/// `/a/b.json` → `/a/b`: the last segment up to its first dot, when that
/// leaves a name (`/.well-known` and `/.env` keep theirs).
/// A trailing slash is kept (`/admin.json/` → `/admin/`): a server that
/// doesn't split on a backslash sees `admin.json\` as the last segment.
fn strip_suffix(path: &str) -> Option<String> {
    let (body, slash) = match path.strip_suffix('/') {
        Some(b) => (b, "/"),
        None => (path, ""),
    };
    let (head, last) = body.rsplit_once('/')?;
    let dot = last.find('.').filter(|&d| d > 0)?;
    Some(format!("{head}/{}{slash}", &last[..dot]))
}

fn decoded_readings(raw: &str) -> Result<Readings<'_>, Ambiguity> {
    if raw.bytes().any(is_control_byte) {
        return Err(Ambiguity::Control);
    }
    let (decoded, encoded_separator) = checked_decode(raw)?;
    // Tomcat's order: `;params` cut from the raw segments, then decoded.
    // Whatever a parameter hid (`%2F..`, `%2e%2e`) is gone, so this reading
    // can differ from every decoded one.
    let params_first = match raw.contains(';') {
        true => Some(checked_decode(&strip_params(raw))?.0),
        false => None,
    };
    let mut others: Vec<String> = Vec::with_capacity(7);
    // Django's PATH_INFO: decoded, dot segments left as they are, so
    // `/api%2f..` is its `/api/..` (under `/api`), not `/`.
    if decoded != raw {
        others.push(decoded.clone());
    }
    for path in std::iter::once(&decoded).chain(params_first.as_ref()) {
        // `\` separates segments for IIS and Windows, not for Spring or nginx.
        let slashed = path.replace('\\', "/");
        for candidate in [
            resolve(&slashed, false),
            resolve(&slashed, true),
            resolve(path, false),
            resolve(path, true),
        ] {
            if candidate != raw && !others.contains(&candidate) {
                others.push(candidate);
            }
        }
    }
    Ok(Readings {
        raw,
        others,
        encoded_separator,
    })
}

/// Decodes `raw` and refuses what no reading makes unambiguous.
fn checked_decode(raw: &str) -> Result<(String, bool), Ambiguity> {
    let (decoded, encoded_separator) = decode(raw)?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err(Ambiguity::Control);
    }
    if !decoded.is_ascii() && decoded.chars().any(is_lookalike) {
        return Err(Ambiguity::LookAlike);
    }
    Ok((decoded, encoded_separator))
}

/// `/a;x/b;y=1/c` → `/a/b/c`: every segment cut at its first `;`.
fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|seg| seg.split_once(';').map_or(seg, |(s, _)| s))
        .collect::<Vec<_>>()
        .join("/")
}

/// The shape of almost every real request: nothing any server would read
/// differently from its bytes (case and suffixes aside).
fn is_plain(p: &str) -> bool {
    let b = p.as_bytes();
    !b.iter()
        .any(|&c| matches!(c, b'%' | b'\\' | b';') || is_control_byte(c) || c >= 0x80)
        && !p.contains("//")
        && !p.contains("/.")
        && !p.contains("./")
        && !p.contains(" /")
}

fn is_control_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Percent-decodes until nothing changes. Refuses escapes that are not two
/// hex digits, results that are not UTF-8, and paths still encoded after
/// [`DECODE_ROUNDS`].
fn decode(raw: &str) -> Result<(String, bool), Ambiguity> {
    let mut current: Cow<'_, str> = Cow::Borrowed(raw);
    let mut encoded_separator = false;
    for _ in 0..DECODE_ROUNDS {
        if !current.contains('%') {
            return Ok((current.into_owned(), encoded_separator));
        }
        let bytes = current.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = bytes.get(i + 1..i + 3).ok_or(Ambiguity::MalformedEscape)?;
                let v = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))
                    .ok_or(Ambiguity::MalformedEscape)?;
                encoded_separator |= v == b'/' || v == b'\\';
                out.push(v);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        current = Cow::Owned(utf8(out)?);
    }
    if current.contains('%') {
        return Err(Ambiguity::TooDeeplyEncoded);
    }
    Ok((current.into_owned(), encoded_separator))
}

/// Strict UTF-8, naming overlong forms (`C0 AE` for `.`, `E0 80 AF` for `/`)
/// separately: they are the classic way past a decoder that checks first
/// and decodes leniently later.
fn utf8(bytes: Vec<u8>) -> Result<String, Ambiguity> {
    String::from_utf8(bytes).map_err(|e| {
        let b = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let overlong = match (b.get(at), b.get(at + 1)) {
            (Some(0xc0 | 0xc1), _) => true,
            (Some(0xe0), Some(n)) => *n < 0xa0,
            (Some(0xf0), Some(n)) => *n < 0x90,
            _ => false,
        };
        if overlong {
            Ambiguity::Overlong
        } else {
            Ambiguity::InvalidUtf8
        }
    })
}

/// A non-ASCII character that compatibility normalisation (NFKC, or the
/// "best fit" mappings of Windows) turns into something that changes how a
/// path splits: `／` (U+FF0F), `．` (U+FF0E), `﹒`, `‥`, `＼`, `；`, `％`.
fn is_lookalike(c: char) -> bool {
    !c.is_ascii()
        && (matches!(
            c,
            '\u{2215}' | '\u{2044}' | '\u{29f5}' | '\u{29f8}' | '\u{ff3c}'
        ) || std::iter::once(c)
            .nfkc()
            .any(|n| matches!(n, '/' | '\\' | '.' | ';' | '%' | '?' | '#')))
}

/// Collapses empty segments and resolves dot segments, optionally dropping
/// `;params` from each segment first. A trailing slash is kept.
fn resolve(path: &str, strip_params: bool) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        let seg = if strip_params {
            seg.split_once(';').map_or(seg, |(s, _)| s)
        } else {
            seg
        };
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if s.is_empty() || (trailing && !out.is_empty()) {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &str) -> Vec<String> {
        readings(p).unwrap().iter().map(str::to_owned).collect()
    }

    #[test]
    fn plain_paths_have_one_reading() {
        for p in ["/", "/a/b", "/A/B/", "/a-b_c~d", "/.well-known/x"] {
            assert_eq!(all(p), vec![p.to_owned()], "{p}");
        }
    }

    #[test]
    fn suffixes_and_trailing_dots() {
        assert_eq!(all("/admin.json"), ["/admin.json", "/admin"]);
        assert_eq!(all("/a/b.tar.gz"), ["/a/b.tar.gz", "/a/b"]);
        assert_eq!(all("/admin./users"), ["/admin./users", "/admin/users"]);
        assert_eq!(
            all("/admin%20/users"),
            ["/admin%20/users", "/admin /users", "/admin/users"]
        );
        assert_eq!(all("/admin."), ["/admin.", "/admin"]);
        assert_eq!(all("/.env"), ["/.env"]);
    }

    #[test]
    fn decoded_and_stripped_readings() {
        assert_eq!(all("/public/..;/admin"), ["/public/..;/admin", "/admin"]);
        assert_eq!(all("/admin;x/users"), ["/admin;x/users", "/admin/users"]);
        assert_eq!(
            all("/public/%2e%2e/admin"),
            ["/public/%2e%2e/admin", "/public/../admin", "/admin"]
        );
        assert_eq!(
            all("/public/%252e%252e/admin"),
            ["/public/%252e%252e/admin", "/public/../admin", "/admin"]
        );
        // decoded without resolving: Django routes `/api/..` under `/api`
        assert_eq!(all("/api%2f.."), ["/api%2f..", "/api/..", "/", "/api%2f"]);
        assert_eq!(all("/%61dmin/.."), ["/%61dmin/..", "/admin/..", "/"]);
        assert_eq!(all("/public/..\\admin"), ["/public/..\\admin", "/admin"]);
        assert_eq!(all("//admin"), ["//admin", "/admin"]);
        assert_eq!(all("/a//b/../c/"), ["/a//b/../c/", "/a/c/"]);
        assert_eq!(all("/../../"), ["/../../", "/"]);
        assert_eq!(all("/a/b/.."), ["/a/b/..", "/a/"]);
        assert_eq!(all("/a/b/."), ["/a/b/.", "/a/b/"]);
        // A space is no control character (and a segment's trailing space
        // is trimmed, as Windows does).
        assert_eq!(all("/admin /x"), ["/admin /x", "/admin/x"]);
        // Only readings some server has: the raw path is not resolved
        // without decoding it.
        assert_eq!(all("/x/../a%2fb"), ["/x/../a%2fb", "/x/../a/b", "/a/b"]);
        assert_eq!(all("/%61dmin"), ["/%61dmin", "/admin"]);
    }

    /// Tomcat drops `;…` before decoding: what the parameter hid (an
    /// encoded `/..`) never takes part in its dot-segment resolution.
    #[test]
    fn params_are_stripped_before_decoding_too() {
        let r = all("/admin;%2F../public");
        assert!(r.iter().any(|p| p == "/admin/public"), "{r:?}");
        assert!(r.iter().any(|p| p == "/public"), "{r:?}");
        let r = all("/admin;%2e%2e/x");
        assert!(r.iter().any(|p| p == "/admin/x"), "{r:?}");
        // and after decoding, for servers that decode first
        let r = all("/admin%3Bx/users");
        assert!(r.iter().any(|p| p == "/admin/users"), "{r:?}");
        assert!(r.iter().any(|p| p == "/admin;x/users"), "{r:?}");
        assert_eq!(strip_params("/a;x/b;y=1/c;"), "/a/b/c");
        // what hides behind a parameter is still checked
        assert_eq!(readings("/a;%00/b"), Err(Ambiguity::Control));
    }

    #[test]
    fn encoded_separators_are_reported() {
        let r = readings("/public/..%2Fadmin").unwrap();
        assert!(r.encoded_separator());
        assert!(r.iter().any(|p| p == "/admin"));
        assert!(readings("/a%255Cb").unwrap().encoded_separator());
        assert!(!readings("/a%20b").unwrap().encoded_separator());
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (p, why) in [
            ("/a%00b", Ambiguity::Control),
            ("/a%0d%0aX: y", Ambiguity::Control),
            ("/a\u{7f}", Ambiguity::Control),
            ("/a%c2%85", Ambiguity::Control),
            ("/a%ff", Ambiguity::InvalidUtf8),
            ("/a%c0%ae%c0%ae/admin", Ambiguity::Overlong),
            ("/a%e0%80%af", Ambiguity::Overlong),
            ("/a%f0%80%80%af", Ambiguity::Overlong),
            // truncated, but not overlong: the first continuation byte is
            // in range
            ("/a%e0%a0", Ambiguity::InvalidUtf8),
            ("/a%f0%90", Ambiguity::InvalidUtf8),
            ("/a\tb", Ambiguity::Control),
            ("/a\u{1}b", Ambiguity::Control),
            ("/a%", Ambiguity::MalformedEscape),
            ("/a%2", Ambiguity::MalformedEscape),
            ("/a%zz", Ambiguity::MalformedEscape),
            ("/a%u002f", Ambiguity::MalformedEscape),
            ("/a%+1", Ambiguity::MalformedEscape),
            ("/a%252525252e", Ambiguity::TooDeeplyEncoded),
            ("/public/\u{ff0e}\u{ff0e}/admin", Ambiguity::LookAlike),
            ("/public%ef%bc%8fadmin", Ambiguity::LookAlike),
            ("/a\u{2215}b", Ambiguity::LookAlike),
            ("/a\u{2025}/b", Ambiguity::LookAlike),
        ] {
            assert_eq!(readings(p), Err(why), "{p}");
        }
    }

    /// The labels are the `reason` of a refusal metric: dashboards and
    /// alerts name them.
    #[test]
    fn refusal_labels_are_stable() {
        use Ambiguity::*;
        let labels = [
            Control,
            InvalidUtf8,
            Overlong,
            MalformedEscape,
            TooDeeplyEncoded,
            LookAlike,
        ]
        .map(Ambiguity::label);
        assert_eq!(
            labels,
            [
                "path_control",
                "path_invalid_utf8",
                "path_overlong",
                "path_malformed_escape",
                "path_encoding_depth",
                "path_lookalike",
            ]
        );
    }

    #[test]
    fn the_raw_reading_is_the_path_as_sent() {
        for p in ["/a/b", "/public/%2e%2e/admin", "/a;x/b"] {
            let r = readings(p).unwrap();
            assert_eq!(r.raw(), p);
            assert_eq!(r.iter().next(), Some(p));
        }
    }

    #[test]
    fn unicode_letters_are_fine() {
        let r = readings("/caf%C3%A9/ünï").unwrap();
        assert!(r.iter().any(|p| p == "/café/ünï"));
    }
}
