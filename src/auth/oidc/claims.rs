//! Verified claims → `VerifiedLogin`: which claim carries the email, the
//! name and the groups (preset, then overrides), how `email_verified` is
//! read, and the tenant bindings some providers need (Google `hd`, Entra
//! `tid`). Only claims from a verified ID token (and the userinfo of its
//! access token) ever get here.

use serde_json::{Map, Value};

use super::presets::EmailVerified;
use crate::auth::{ConnectionError, VerifiedLogin};

/// Claim names per field, in priority order, and the checks to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMap {
    pub email: Vec<String>,
    pub name: Vec<String>,
    pub groups: Vec<String>,
    pub email_verified: EmailVerified,
    /// Google: the tenant's domains `hd` must be one of.
    pub hd_domains: Option<Vec<String>>,
    /// Entra: the `tid` every token must carry.
    pub tid: Option<String>,
}

/// A mapped login, plus what the caller reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub login: VerifiedLogin,
    /// Entra sent `_claim_names` for groups (or `hasgroups`) instead of
    /// the groups: the user's object id and directory, to fetch them.
    pub groups_overage: Option<crate::auth::Overage>,
    /// The provider's session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((l, d)) => {
            !l.is_empty() && d.contains('.') && !s.contains(char::is_whitespace) && s.len() <= 320
        }
        None => false,
    }
}

/// `true`/`false` as a JSON boolean or (some providers) a string.
pub(crate) fn as_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn first_string(claims: &Map<String, Value>, names: &[String]) -> Option<String> {
    names.iter().find_map(|n| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

fn groups(claims: &Map<String, Value>, names: &[String]) -> Option<Vec<String>> {
    names.iter().find_map(|n| match claims.get(n)? {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Value::String(s) if !s.is_empty() => Some(vec![s.clone()]),
        _ => None,
    })
}

/// Google Workspace: `hd` is present (a consumer account, gmail.com
/// included, has none) and names one of `domains`. The email alone is not
/// enough: `hd` says which Workspace organisation manages the account.
pub(crate) fn check_hd(
    claims: &Map<String, Value>,
    domains: &[String],
) -> Result<(), ConnectionError> {
    let Some(hd) = claims
        .get("hd")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
    else {
        return Err(ConnectionError::new(
            "hd_missing",
            "no Google `hd`: not a Workspace account (e.g. a personal gmail.com one)",
        ));
    };
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(hd)) {
        return Err(ConnectionError::new(
            "hd_mismatch",
            format!("Google `hd` {hd:?} is not one of the tenant's domains {domains:?}"),
        ));
    }
    Ok(())
}

pub fn to_login(
    connection_id: &str,
    claims: &Map<String, Value>,
    map: &ClaimMap,
) -> Result<Mapped, ConnectionError> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectionError::new("malformed", "claims have no `sub`"))?
        .to_owned();
    if let Some(expected) = &map.tid {
        let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
        if !tid.eq_ignore_ascii_case(expected) {
            return Err(ConnectionError::new(
                "tenant_mismatch",
                format!("`tid` {tid:?} is not the connection's Entra tenant {expected}"),
            ));
        }
    }
    if let Some(domains) = &map.hd_domains {
        check_hd(claims, domains)?;
    }
    let email = map
        .email
        .iter()
        .find_map(|n| {
            claims
                .get(n)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| looks_like_email(s))
        })
        .ok_or_else(|| {
            ConnectionError::new(
                "no_email",
                format!("none of the claims {:?} carries an email", map.email),
            )
        })?
        .to_ascii_lowercase();
    let claimed = as_bool(claims.get("email_verified"));
    // Entra's optional "email domain owner verified" claim, when sent.
    let edov = as_bool(claims.get("xms_edov"));
    let email_verified = match (map.email_verified, claimed, edov) {
        (_, Some(false), _) | (_, _, Some(false)) => Some(false),
        (EmailVerified::Required, v, _) => Some(v.unwrap_or(false)),
        (EmailVerified::DirectoryManaged, v, e) => v.or(e),
    };
    let name = first_string(claims, &map.name).or_else(|| {
        let parts: Vec<String> = [
            first_string(claims, &["given_name".into()]),
            first_string(claims, &["family_name".into()]),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let found = groups(claims, &map.groups);
    // `hasgroups` is the implicit flow's (and some v1 tokens') signal.
    let overage = found.is_none()
        && (claims
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|o| map.groups.iter().any(|g| o.contains_key(g)))
            || (!map.groups.is_empty() && as_bool(claims.get("hasgroups")) == Some(true)));
    let groups_overage = overage.then(|| crate::auth::Overage {
        object_id: first_string(claims, &["oid".into()]),
        directory_id: first_string(claims, &["tid".into()]),
    });
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(Mapped {
        login: VerifiedLogin {
            connection_id: connection_id.to_owned(),
            subject,
            email,
            email_verified,
            name,
            groups: found.unwrap_or_default(),
            idp_session: sid.clone(),
            logout_hint: None,
            raw_claims: Value::Object(claims.clone()),
            attributes: crate::auth::claims::flatten(claims),
            ..VerifiedLogin::default()
        },
        groups_overage,
        sid,
    })
}

/// Longest `amr` list kept, and longest method name.
const MAX_AMR: usize = 16;
const MAX_AMR_BYTES: usize = 64;

/// How the provider authenticated the user, from the ID token: `acr` (a
/// string the routes can name: printable, no spaces or quotes — anything
/// else is dropped, so a step-up can't be met by it), `amr` (strings,
/// bounded), `auth_time` (whole seconds; a fraction is cut).
pub(crate) fn auth_facts(claims: &Map<String, Value>) -> crate::identity::AuthFacts {
    let acr = claims
        .get("acr")
        .and_then(Value::as_str)
        .filter(|a| crate::config::is_acr(a))
        .map(str::to_owned);
    let amr = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|m| {
                    !m.is_empty()
                        && m.len() <= MAX_AMR_BYTES
                        && m.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b',')
                })
                .take(MAX_AMR)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let auth_time = claims.get("auth_time").and_then(|v| {
        v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        })
    });
    crate::identity::AuthFacts {
        acr,
        amr,
        auth_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(ev: EmailVerified) -> ClaimMap {
        ClaimMap {
            email: vec!["email".into(), "preferred_username".into()],
            name: vec!["name".into()],
            groups: vec!["groups".into()],
            email_verified: ev,
            hd_domains: None,
            tid: None,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn auth_facts_are_bounded_and_typed() {
        let f = auth_facts(&obj(json!({
            "acr": "urn:mace:incommon:iap:silver",
            "amr": ["pwd", "otp", 3, "", "a,b", "x".repeat(65)],
            "auth_time": 1_700_000_000
        })));
        assert_eq!(f.acr.as_deref(), Some("urn:mace:incommon:iap:silver"));
        assert_eq!(f.amr, ["pwd", "otp"]);
        assert_eq!(f.auth_time, Some(1_700_000_000));
        let f = auth_facts(&obj(
            json!({"acr": "two words", "amr": "pwd", "auth_time": 1.7e9}),
        ));
        assert_eq!(
            (f.acr, f.amr.len(), f.auth_time),
            (None, 0, Some(1_700_000_000))
        );
        let f = auth_facts(&obj(json!({"acr": 2, "auth_time": "1700000000"})));
        assert_eq!((f.acr, f.auth_time), (None, None));
        let many: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        assert_eq!(auth_facts(&obj(json!({"amr": many}))).amr.len(), 16);
        assert_eq!(
            auth_facts(&obj(json!({"auth_time": 1e300}))).auth_time,
            None
        );
    }

    #[test]
    fn maps_standard_claims() {
        let c = obj(
            json!({"sub": "u1", "email": "Alice@Acme.com", "email_verified": "true",
            "given_name": "Alice", "family_name": "Example", "groups": ["Eng", "", 3], "sid": "s1"}),
        );
        let m = to_login("c", &c, &map(EmailVerified::Required)).unwrap();
        assert_eq!(m.login.email, "alice@acme.com");
        assert_eq!(m.login.email_verified, Some(true));
        assert_eq!(m.login.name.as_deref(), Some("Alice Example"));
        assert_eq!(m.login.groups, vec!["Eng"]);
        assert_eq!(m.sid.as_deref(), Some("s1"));
        assert!(m.groups_overage.is_none());
    }

    #[test]
    fn email_verified_per_preset() {
        let absent = obj(json!({"sub": "u", "email": "a@acme.com"}));
        let req = to_login("c", &absent, &map(EmailVerified::Required)).unwrap();
        assert_eq!(req.login.email_verified, Some(false));
        let dir = to_login("c", &absent, &map(EmailVerified::DirectoryManaged)).unwrap();
        assert_eq!(dir.login.email_verified, None);
        let edov = obj(json!({"sub": "u", "email": "a@acme.com", "xms_edov": false}));
        let dir = to_login("c", &edov, &map(EmailVerified::DirectoryManaged)).unwrap();
        assert_eq!(dir.login.email_verified, Some(false));
        let weird = obj(json!({"sub": "u", "email": "a@acme.com", "email_verified": "yes"}));
        let req = to_login("c", &weird, &map(EmailVerified::Required)).unwrap();
        assert_eq!(req.login.email_verified, Some(false));
    }

    /// Where the directory vouches for addresses, only an explicit `false`
    /// (boolean or string) counts; anything else says nothing.
    #[test]
    fn string_booleans_where_the_directory_vouches() {
        let dir = map(EmailVerified::DirectoryManaged);
        for (v, want) in [
            (json!("FALSE"), Some(false)),
            (json!("True"), Some(true)),
            (json!("yes"), None),
            (json!(1), None),
        ] {
            let c = obj(json!({"sub": "u", "email": "a@acme.com", "email_verified": v}));
            assert_eq!(
                to_login("c", &c, &dir).unwrap().login.email_verified,
                want,
                "{v}"
            );
        }
    }

    #[test]
    fn groups_as_one_string() {
        let m = map(EmailVerified::Required);
        let one = obj(json!({"sub": "u", "email": "a@acme.com", "groups": "Admins"}));
        assert_eq!(to_login("c", &one, &m).unwrap().login.groups, ["Admins"]);
        let empty = obj(json!({"sub": "u", "email": "a@acme.com", "groups": ""}));
        assert!(to_login("c", &empty, &m).unwrap().login.groups.is_empty());
    }

    /// Overage is reported only when the groups themselves are missing.
    #[test]
    fn groups_sent_beside_claim_names_are_no_overage() {
        let c = obj(json!({"sub": "u", "email": "a@acme.com", "groups": ["g1"],
            "_claim_names": {"groups": "src1"}}));
        let m = to_login("c", &c, &map(EmailVerified::DirectoryManaged)).unwrap();
        assert!(m.groups_overage.is_none());
        assert_eq!(m.login.groups, ["g1"]);
    }

    #[test]
    fn hostile_and_missing_claims() {
        let m = map(EmailVerified::Required);
        for (claims, reason) in [
            (json!({"email": "a@acme.com"}), "malformed"),
            (json!({"sub": "", "email": "a@acme.com"}), "malformed"),
            (json!({"sub": 5, "email": "a@acme.com"}), "malformed"),
            (json!({"sub": "u"}), "no_email"),
            (json!({"sub": "u", "email": "not an email"}), "no_email"),
            (json!({"sub": "u", "email": ["a@acme.com"]}), "no_email"),
            (json!({"sub": "u", "email": "a b@acme.com"}), "no_email"),
        ] {
            assert_eq!(
                to_login("c", &obj(claims.clone()), &m).unwrap_err().reason,
                reason,
                "{claims}"
            );
        }
        let upn = obj(json!({"sub": "u", "preferred_username": "bob@acme.com"}));
        assert_eq!(to_login("c", &upn, &m).unwrap().login.email, "bob@acme.com");
    }

    #[test]
    fn google_hd_and_entra_tid() {
        let mut m = map(EmailVerified::Required);
        m.hd_domains = Some(vec!["acme.com".into()]);
        let ok = obj(
            json!({"sub": "u", "email": "a@acme.com", "email_verified": true, "hd": "ACME.com"}),
        );
        assert!(to_login("c", &ok, &m).is_ok());
        for (hd, reason) in [
            (json!("evil.com"), "hd_mismatch"),
            (json!(null), "hd_missing"),
            (json!(""), "hd_missing"),
            (json!(["acme.com"]), "hd_missing"),
        ] {
            let c = obj(json!({"sub": "u", "email": "a@acme.com", "hd": hd}));
            assert_eq!(to_login("c", &c, &m).unwrap_err().reason, reason);
        }
        let gmail = obj(json!({"sub": "u", "email": "a@gmail.com", "email_verified": true}));
        assert_eq!(to_login("c", &gmail, &m).unwrap_err().reason, "hd_missing");
        let mut m = map(EmailVerified::DirectoryManaged);
        m.tid = Some("9188040d-6c67-4c5b-b112-36a304b66dad".into());
        let ok = obj(
            json!({"sub": "u", "email": "a@acme.com", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad"}),
        );
        assert!(to_login("c", &ok, &m).is_ok());
        let other = obj(
            json!({"sub": "u", "email": "a@acme.com", "tid": "00000000-0000-0000-0000-000000000000"}),
        );
        assert_eq!(
            to_login("c", &other, &m).unwrap_err().reason,
            "tenant_mismatch"
        );
        let none = obj(json!({"sub": "u", "email": "a@acme.com"}));
        assert_eq!(
            to_login("c", &none, &m).unwrap_err().reason,
            "tenant_mismatch"
        );
    }

    #[test]
    fn entra_groups_overage_is_reported() {
        let c = obj(
            json!({"sub": "u", "email": "a@acme.com", "oid": "o-1", "tid": "t-1",
            "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph"}}}),
        );
        let m = to_login("c", &c, &map(EmailVerified::DirectoryManaged)).unwrap();
        assert_eq!(
            m.groups_overage,
            Some(crate::auth::Overage {
                object_id: Some("o-1".into()),
                directory_id: Some("t-1".into()),
            })
        );
        assert!(m.login.groups.is_empty());
        // The implicit flow's signal, and its absence.
        let c = obj(json!({"sub": "u", "email": "a@acme.com", "hasgroups": true}));
        let m = to_login("c", &c, &map(EmailVerified::DirectoryManaged)).unwrap();
        assert!(m.groups_overage.is_some());
        let c = obj(json!({"sub": "u", "email": "a@acme.com", "hasgroups": false}));
        let m = to_login("c", &c, &map(EmailVerified::DirectoryManaged)).unwrap();
        assert!(m.groups_overage.is_none());
    }
}
