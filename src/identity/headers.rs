//! The header plan: which client headers to strip and which verified ones to
//! inject, compiled once per configuration.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::principal::Principal;
use crate::config::HeadersConfig;
use crate::names::normalize_header_name;

#[derive(Debug, Clone, Copy)]
enum Field {
    User,
    Email,
    Name,
    Groups,
    Roles,
    Tenant,
    PrincipalType,
    Acr,
    Amr,
    AuthTime,
}

/// Request-rewriting headers (IIS, Symfony, Laravel, Zend let them override
/// the path the app routes on): never from a client, not even behind a
/// trusted balancer, since they would route the app around the gate.
pub(super) const REWRITE_HEADERS: &[&str] = &["x-original-url", "x-rewrite-url", "x-original-uri"];

/// Portcullis' own headers on every request it forwards: a client's copy
/// (any spelling) goes, so the app never reads one beside Portcullis'.
pub(super) const OWN_HEADERS: &[&str] = &["x-request-id"];

/// Headers that tell the app who the client is and how it connected.
/// Stripped from clients unless `server.trust_forwarded_headers`; the ones
/// Portcullis knows (`X-Forwarded-For`, `-Proto`, `-Host`, `-Port`,
/// `X-Real-IP`, `Forwarded`) are then set from the connection.
pub(super) const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-ssl",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
];

/// What a normalised header name is to the plan, looked up once for every
/// header of every request: one map (each probe hashes the name, ~60
/// instructions), built from configuration and probed with names a client
/// chose, so there is nothing to flood and no need for SipHash's keyed
/// resistance (foldhash: ~5x fewer instructions for a short name).
type NameClasses = foldhash::HashMap<String, NameClass>;

#[derive(Debug, Clone, Copy, Default)]
struct NameClass {
    /// Stripped on every request.
    strip: bool,
    /// One of [`FORWARDING_HEADERS`].
    forwarding: bool,
}

/// Compiled identity-header configuration.
#[derive(Debug, Clone)]
pub struct HeaderPlan {
    /// Normalised names stripped on every request, and those of
    /// [`FORWARDING_HEADERS`].
    classes: NameClasses,
    inject: Vec<(HeaderName, Field)>,
    /// `[[headers.extra]]`: name, the claim (as the session keeps it),
    /// the join string (`None`: the first value only).
    extra: Vec<(HeaderName, String, Option<String>)>,
    assertion: Option<HeaderName>,
}

impl HeaderPlan {
    /// Config validation has already checked the names; an invalid one here
    /// is reported rather than panicking.
    pub fn compile(cfg: &HeadersConfig) -> Result<Self, http::header::InvalidHeaderName> {
        let fields = [
            (&cfg.user, Field::User),
            (&cfg.email, Field::Email),
            (&cfg.name, Field::Name),
            (&cfg.groups, Field::Groups),
            (&cfg.roles, Field::Roles),
            (&cfg.tenant, Field::Tenant),
            (&cfg.principal_type, Field::PrincipalType),
        ];
        let mut inject = Vec::new();
        let mut classes = NameClasses::default();
        let mut strip = |name: &str| {
            classes
                .entry(normalize_header_name(name))
                .or_default()
                .strip = true;
        };
        // Step-up headers only when named.
        let facts = cfg.auth_fact_headers().map(|(k, name)| {
            let field = match k {
                "acr" => Field::Acr,
                "amr" => Field::Amr,
                _ => Field::AuthTime,
            };
            (name, field)
        });
        for (name, field) in fields.into_iter().chain(facts) {
            inject.push((HeaderName::from_bytes(name.as_bytes())?, field));
            strip(name);
        }
        // The assertion header is always stripped, even when signing is off,
        // so an app that verifies it can't be fed a forged one.
        strip(&cfg.assertion);
        for extra in cfg
            .strip
            .iter()
            .map(String::as_str)
            .chain(REWRITE_HEADERS.iter().copied())
            .chain(OWN_HEADERS.iter().copied())
        {
            strip(extra);
        }
        let mut extra = Vec::new();
        for e in &cfg.extra {
            extra.push((
                HeaderName::from_bytes(e.name.as_bytes())?,
                e.claim.clone(),
                e.join.clone(),
            ));
            strip(&e.name);
        }
        let assertion = if cfg.assertion_enabled {
            Some(HeaderName::from_bytes(cfg.assertion.as_bytes())?)
        } else {
            None
        };
        for name in FORWARDING_HEADERS {
            classes.entry((*name).to_owned()).or_default().forwarding = true;
        }
        Ok(Self {
            classes,
            inject,
            extra,
            assertion,
        })
    }

    /// Every header in `headers` to remove before the request goes upstream:
    /// identity, assertion and rewrite headers in any spelling
    /// (`x-forwarded-user`, `X_Forwarded_User`, `X.FORWARDED.USER`), and the
    /// forwarding headers — all of them from an untrusted client, and
    /// behind a trusted balancer the spellings it would not have produced
    /// (`X_Forwarded_For` beside its `X-Forwarded-For`).
    pub fn headers_to_strip(&self, headers: &HeaderMap, trust_forwarded: bool) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for name in headers.keys() {
            // `HeaderName`s are already lower-case; names made of letters,
            // digits and `-` are their own normal form, so the common case
            // compares without allocating.
            let s = name.as_str();
            let canonical = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let normal: std::borrow::Cow<'_, str> = if canonical {
                s.into()
            } else {
                normalize_header_name(s).into()
            };
            let class = self
                .classes
                .get(normal.as_ref())
                .copied()
                .unwrap_or_default();
            let hit = class.strip || (class.forwarding && (!trust_forwarded || !canonical));
            if hit && !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// Verified values to inject. Values are made header-safe: control
    /// characters (which could split headers) are dropped, and list items
    /// have `%` and `,` percent-encoded so a group named `a,b` can't pose as
    /// two groups.
    pub fn values(&self, p: &Principal) -> Vec<(HeaderName, HeaderValue)> {
        self.slotted_values(p)
            .into_iter()
            .filter_map(|(slot, v)| Some((self.names().nth(slot)?.clone(), v)))
            .collect()
    }

    /// The names of every injected header (identity fields, then
    /// `[[headers.extra]]`), in the order `slotted_values` numbers them: a
    /// proxy prepares what it writes per name once, not per request.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        let extra = self.extra.iter().map(|(name, _, _)| name);
        self.inject.iter().map(|(name, _)| name).chain(extra)
    }

    /// [`Self::values`], each under its position in [`Self::names`].
    pub fn slotted_values(&self, p: &Principal) -> Vec<(usize, HeaderValue)> {
        let mut out = Vec::with_capacity(self.inject.len() + self.extra.len());
        let _ = self.each_value(p, |slot, v| {
            if let Ok(v) = HeaderValue::try_from(v) {
                out.push((slot, v));
            }
            Ok::<_, std::convert::Infallible>(())
        });
        out
    }

    /// Hands `emit` each verified value for `p` (visible ASCII: see
    /// [`Self::values`]) with its position in [`Self::names`], borrowed
    /// from the principal where it needs no escaping: the proxy writes
    /// them straight into the request it sends, with no value made per
    /// header. Stops at `emit`'s first error.
    pub fn each_value<E>(
        &self,
        p: &Principal,
        mut emit: impl FnMut(usize, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        for (slot, (_, field)) in self.inject.iter().enumerate() {
            let value = match field {
                Field::User => Some(sanitize(&p.user_id)),
                Field::Email => Some(sanitize(&p.email)),
                Field::Name => p.name.as_deref().map(sanitize),
                Field::Groups => Some(join_list(&p.groups)),
                Field::Roles => Some(join_list(&p.roles)),
                Field::Tenant => p.tenant.as_deref().map(sanitize),
                Field::PrincipalType => Some(Cow::Borrowed(p.kind.as_str())),
                Field::Acr => p.auth.acr.as_deref().map(sanitize),
                Field::Amr => (!p.auth.amr.is_empty()).then(|| join_list(&p.auth.amr)),
                Field::AuthTime => p.auth.auth_time.map(|t| Cow::Owned(t.to_string())),
            };
            if let Some(v) = value {
                emit(slot, &v)?;
            }
        }
        for (i, (_, claim, join)) in self.extra.iter().enumerate() {
            let Some(values) = p.claims.get(claim) else {
                continue;
            };
            let value = match (join, values.first()) {
                (_, None) => continue,
                (None, Some(first)) => sanitize(first),
                (Some(j), Some(_)) => Cow::Owned(join_with(values, j)),
            };
            emit(self.inject.len() + i, &value)?;
        }
        Ok(())
    }

    /// Every injected header, with its verified value or empty (no
    /// principal, or a field it lacks): the answer of a forward-auth
    /// endpoint. Host proxies copy a header from the answer only when it is
    /// there, and some (Caddy 2.6) send the app an unexpanded placeholder
    /// for one that is missing, so each name is always present.
    pub fn response_values(&self, p: Option<&Principal>) -> Vec<(HeaderName, HeaderValue)> {
        let mut known = p.map(|p| self.slotted_values(p)).unwrap_or_default();
        // Extra headers too: a host proxy overwrites the client's copy only
        // with a value it was given, so every name is answered, empty or not.
        self.names()
            .enumerate()
            .map(|(slot, name)| {
                let value = known
                    .iter()
                    .position(|(s, _)| *s == slot)
                    .map(|i| known.swap_remove(i).1)
                    .unwrap_or_else(|| HeaderValue::from_static(""));
                (name.clone(), value)
            })
            .collect()
    }

    pub fn assertion_header(&self) -> Option<&HeaderName> {
        self.assertion.as_ref()
    }
}

/// Keeps printable characters; non-ASCII is percent-encoded as UTF-8 so the
/// value is valid in every HTTP stack (some reject obs-text).
fn sanitize(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_control() {
            continue;
        }
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Cow::Owned(out)
}

/// Items joined with `sep`; in each item, `%` and every character of
/// `sep` are percent-encoded first, so no item poses as two.
fn join_with(items: &[String], sep: &str) -> String {
    items
        .iter()
        .map(|i| {
            let mut escaped = String::with_capacity(i.len());
            for c in i.chars() {
                if c == '%' || sep.contains(c) {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        escaped.push_str(&format!("%{b:02X}"));
                    }
                } else {
                    escaped.push(c);
                }
            }
            sanitize(&escaped).into_owned()
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn join_list(items: &[String]) -> Cow<'_, str> {
    let plain = |i: &String| {
        i.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b',' && b != b'%')
    };
    if let [one] = items
        && plain(one)
    {
        return Cow::Borrowed(one);
    }
    if items.iter().all(plain) {
        return Cow::Owned(items.join(","));
    }
    Cow::Owned(
        items
            .iter()
            .map(|i| sanitize(&i.replace('%', "%25").replace(',', "%2C")).into_owned())
            .collect::<Vec<_>>()
            .join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_values_name_every_header_empty_when_unknown() {
        let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        let names = |v: &[(HeaderName, HeaderValue)]| {
            v.iter()
                .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&plan.response_values(None)),
            [
                "x-forwarded-user=",
                "x-forwarded-email=",
                "x-forwarded-name=",
                "x-forwarded-groups=",
                "x-forwarded-roles=",
                "x-forwarded-tenant=",
                "x-forwarded-principal-type=",
            ]
        );
        let mut p = principal();
        p.name = None;
        p.tenant = None;
        assert_eq!(
            names(&plan.response_values(Some(&p))),
            [
                "x-forwarded-user=u1".to_owned(),
                format!("x-forwarded-email={}", p.email),
                "x-forwarded-name=".into(),
                format!("x-forwarded-groups={}", join_list(&p.groups)),
                format!("x-forwarded-roles={}", join_list(&p.roles)),
                "x-forwarded-tenant=".into(),
                "x-forwarded-principal-type=user".into(),
            ]
        );
    }

    fn principal() -> Principal {
        Principal {
            user_id: "u1".into(),
            email: "alice@example.com".into(),
            name: Some("Alice\r\nX-Evil: 1 Zoë".into()),
            groups: vec!["eng".into(), "a,b".into(), "100%".into()],
            roles: vec![],
            tenant: None,
            connection: None,
            ..Principal::default()
        }
    }

    #[test]
    fn step_up_headers_only_when_named_and_always_stripped() {
        let names = |v: &[(HeaderName, HeaderValue)]| {
            v.iter()
                .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                .collect::<Vec<_>>()
        };
        let mut p = principal();
        p.auth = crate::identity::AuthFacts {
            acr: Some("urn:x:mfa".into()),
            amr: vec!["pwd".into(), "otp".into()],
            auth_time: Some(1_700_000_000),
        };
        let plain = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        assert!(
            !names(&plain.values(&p))
                .iter()
                .any(|h| h.contains("acr") || h.contains("auth"))
        );
        let cfg = HeadersConfig {
            acr: Some("X-Forwarded-Acr".into()),
            amr: Some("X-Forwarded-Amr".into()),
            auth_time: Some("X-Forwarded-Auth-Time".into()),
            ..HeadersConfig::default()
        };
        let plan = HeaderPlan::compile(&cfg).unwrap();
        let got = names(&plan.values(&p));
        for want in [
            "x-forwarded-acr=urn:x:mfa",
            "x-forwarded-amr=pwd,otp",
            "x-forwarded-auth-time=1700000000",
        ] {
            assert!(got.iter().any(|h| h == want), "{want}: {got:?}");
        }
        // unknown facts: the header is absent, and empty in forward-auth answers
        let bare = principal();
        assert!(!names(&plan.values(&bare)).iter().any(|h| h.contains("acr")));
        assert!(names(&plan.response_values(Some(&bare))).contains(&"x-forwarded-acr=".to_owned()));
        // a client's copy goes, in any spelling
        let mut h = HeaderMap::new();
        h.insert("x_forwarded_acr", HeaderValue::from_static("mfa"));
        h.insert(
            "X-Forwarded-Auth-Time",
            HeaderValue::from_static("9999999999"),
        );
        h.insert("x-forwarded-amr", HeaderValue::from_static("hwk"));
        assert_eq!(plan.headers_to_strip(&h, false).len(), 3);
        assert!(plain.headers_to_strip(&h, false).is_empty());
    }

    /// The extra headers of the tests: one value, and a joined list.
    fn with_extras() -> HeadersConfig {
        HeadersConfig {
            extra: vec![
                crate::config::ExtraHeader {
                    name: "X-Forwarded-Department".into(),
                    claim: "department".into(),
                    join: None,
                },
                crate::config::ExtraHeader {
                    name: "X-Forwarded-Badges".into(),
                    claim: "badges".into(),
                    join: Some("; ".into()),
                },
            ],
            ..HeadersConfig::default()
        }
    }

    #[test]
    fn extra_values_are_sanitised_and_joined() {
        let plan = HeaderPlan::compile(&with_extras()).unwrap();
        let p = Principal {
            claims: [
                (
                    "department".to_owned(),
                    vec!["R&D\r\nX-Evil: 1 Zoë".to_owned(), "second".to_owned()],
                ),
                (
                    "badges".to_owned(),
                    vec![
                        "a; b".to_owned(),
                        "100%".to_owned(),
                        "c;d".to_owned(),
                        "é".to_owned(),
                    ],
                ),
                ("unmapped".to_owned(), vec!["never sent".to_owned()]),
            ]
            .into(),
            ..principal()
        };
        let values = plan.values(&p);
        let get = |n: &str| {
            values
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        // no join: the first value only, control characters dropped
        assert_eq!(
            get("x-forwarded-department").as_deref(),
            Some("R&DX-Evil: 1 Zo%C3%AB")
        );
        // joined: each item's `%` and separator characters encoded first
        assert_eq!(
            get("x-forwarded-badges").as_deref(),
            Some("a%3B%20b; 100%25; c%3Bd; %C3%A9")
        );
        assert_eq!(values.len(), 8, "{values:?}");
        // a claim the principal lacks: no header at all
        let bare = plan.values(&principal());
        assert!(bare.iter().all(|(k, _)| !k.as_str().contains("department")));
    }

    #[test]
    fn response_values_name_the_extra_headers_too() {
        let plan = HeaderPlan::compile(&with_extras()).unwrap();
        let names: Vec<String> = plan
            .response_values(None)
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        for e in &with_extras().extra {
            assert!(
                names.contains(&e.name.to_ascii_lowercase()),
                "{} missing from {names:?}",
                e.name
            );
        }
    }

    #[test]
    fn extra_headers_are_stripped_in_every_spelling() {
        let plan = HeaderPlan::compile(&with_extras()).unwrap();
        let mut h = HeaderMap::new();
        for n in [
            "x_forwarded_department",
            "X.Forwarded.Badges",
            "x-forwarded-dept",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("forged"),
            );
        }
        let stripped = plan.headers_to_strip(&h, true);
        let names: Vec<&str> = stripped.iter().map(HeaderName::as_str).collect();
        // a name that only resembles one is the client's own
        assert_eq!(names, ["x_forwarded_department", "x.forwarded.badges"]);
    }

    /// Configuration refuses an extra header named like one of these, so
    /// none can be overwritten by a claim.
    #[test]
    fn forwarding_and_rewrite_headers_are_reserved_names() {
        for n in FORWARDING_HEADERS.iter().chain(REWRITE_HEADERS) {
            assert!(crate::names::is_reserved_header(n), "{n}");
            assert!(
                crate::names::is_reserved_header(&n.to_uppercase().replace('-', "_")),
                "{n}"
            );
        }
        assert!(!crate::names::is_reserved_header("X-Forwarded-Department"));
    }

    #[test]
    fn strips_every_spelling_of_identity_headers() {
        let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        let mut h = HeaderMap::new();
        for n in [
            "x-forwarded-user",
            "X_FORWARDED_EMAIL",
            "x_forwarded-groups",
            "x-portcullis-assertion",
            "accept",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        h.append("x-forwarded-user", HeaderValue::from_static("again"));
        let mut got: Vec<String> = plan
            .headers_to_strip(&h, false)
            .iter()
            .map(|n| n.to_string())
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "x-forwarded-user",
                "x-portcullis-assertion",
                "x_forwarded-groups",
                "x_forwarded_email"
            ]
        );
    }

    #[test]
    fn strips_punctuation_spellings_rewrite_and_forwarding_headers() {
        let cfg = HeadersConfig {
            strip: vec!["X-Legacy-User".into()],
            ..HeadersConfig::default()
        };
        let plan = HeaderPlan::compile(&cfg).unwrap();
        let mut h = HeaderMap::new();
        for n in [
            "x.forwarded.email",
            "x~forwarded!user",
            "x_legacy.user",
            "x-original-url",
            "x-rewrite-url",
            "x-forwarded-for",
            "x_forwarded_for",
            "x-real-ip",
            "true-client-ip",
            "forwarded",
            "x-forwarded-prefix",
            "x-forwarded-port",
            "x-forwarded-ssl",
            "x-client-ip",
            "accept",
            "x-forwarded-usera",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        let names = |trust| {
            let mut v: Vec<String> = plan
                .headers_to_strip(&h, trust)
                .iter()
                .map(|n| n.to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(false),
            [
                "forwarded",
                "true-client-ip",
                "x-client-ip",
                "x-forwarded-for",
                "x-forwarded-port",
                "x-forwarded-prefix",
                "x-forwarded-ssl",
                "x-original-url",
                "x-real-ip",
                "x-rewrite-url",
                "x.forwarded.email",
                "x_forwarded_for",
                "x_legacy.user",
                "x~forwarded!user",
            ]
        );
        // Behind a trusted balancer its forwarding headers stay; rewrite
        // headers and odd spellings still go.
        assert_eq!(
            names(true),
            [
                "x-original-url",
                "x-rewrite-url",
                "x.forwarded.email",
                "x_forwarded_for",
                "x_legacy.user",
                "x~forwarded!user",
            ]
        );
    }

    #[test]
    fn the_assertion_header_only_when_signing_is_on() {
        let on = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        assert_eq!(
            on.assertion_header().map(HeaderName::as_str),
            Some("x-portcullis-assertion")
        );
        let off = HeaderPlan::compile(&HeadersConfig {
            assertion_enabled: false,
            ..HeadersConfig::default()
        })
        .unwrap();
        assert_eq!(off.assertion_header(), None);
    }

    #[test]
    fn list_items_made_only_of_separators_stay_one_item() {
        let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        let p = Principal {
            groups: vec![",".into()],
            roles: vec!["%".into()],
            ..principal()
        };
        let v: Vec<(String, String)> = plan
            .values(&p)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert!(
            v.contains(&("x-forwarded-groups".into(), "%2C".into())),
            "{v:?}"
        );
        assert!(
            v.contains(&("x-forwarded-roles".into(), "%25".into())),
            "{v:?}"
        );
    }

    #[test]
    fn values_are_header_safe() {
        let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        let v: Vec<(String, String)> = plan
            .values(&principal())
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert!(
            v.contains(&("x-forwarded-name".into(), "AliceX-Evil: 1 Zo%C3%AB".into())),
            "{v:?}"
        );
        assert!(
            v.contains(&("x-forwarded-groups".into(), "eng,a%2Cb,100%25".into())),
            "{v:?}"
        );
        assert!(v.contains(&("x-forwarded-roles".into(), "".into())));
        assert!(!v.iter().any(|(n, _)| n == "x-forwarded-tenant"));
    }
}
