//! Step-up at sign-in: what a step-up login asked the IdP for, and the
//! check that the IdP's answer meets it (OpenID Connect Core 3.1.2.1 and
//! 5.5.1.1: a provider may ignore `acr_values` and `max_age`, so the
//! relying party checks `acr` and `auth_time` itself; SAML Core 3.3.2.2.1
//! likewise for `RequestedAuthnContext`).
//!
//! Route names are translated to the connection's IdP values when the
//! login starts (`acr_map`), and the IdP's achieved value back to a route
//! name at sign-in, so sessions and the gate speak the routes' vocabulary.

use serde::{Deserialize, Serialize};

use super::connection::{ConnectionError, VerifiedLogin};
use crate::config::{ConnectionConfig, acr_from_idp, acr_to_idp};

/// What a login start asks the IdP for, in the IdP's own values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUpAsk {
    /// OIDC `acr_values` / SAML `AuthnContextClassRef`s, preferred first.
    pub acr_values: Vec<String>,
    /// OIDC `max_age`; SAML asks with `ForceAuthn`.
    pub max_age: Option<u64>,
}

/// A step-up flow, kept in the flow cookie until the callback: what the
/// route demanded (route names) and whose session asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUpFlow {
    pub acr: Vec<String>,
    pub max_age: Option<u64>,
    /// The user of the session that was too weak: the new login must be
    /// the same person.
    pub user_id: String,
    /// That session's IdP subject (NameID, `sub`), checked before the
    /// login is admitted, so another person's step-up creates nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl StepUpFlow {
    /// The IdP's values for this connection.
    pub fn ask(&self, conn: &ConnectionConfig) -> StepUpAsk {
        StepUpAsk {
            acr_values: self
                .acr
                .iter()
                .map(|a| acr_to_idp(&conn.acr_map, a).to_owned())
                .collect(),
            max_age: self.max_age,
        }
    }

    /// Does `login` (its acr already in route names, see [`normalize`])
    /// meet what was asked at `now`, allowing `skew` seconds of clock
    /// difference? `Err` carries the refusal reason.
    pub fn check(&self, login: &VerifiedLogin, now: i64, skew: i64) -> Result<(), ConnectionError> {
        if !self.acr.is_empty() {
            match &login.auth.acr {
                None => {
                    return Err(ConnectionError::new(
                        "step_up_acr",
                        format!("the IdP reported no acr; asked for one of {:?}", self.acr),
                    ));
                }
                Some(a) if !self.acr.contains(a) => {
                    return Err(ConnectionError::new(
                        "step_up_acr",
                        format!(
                            "the IdP reported acr {a:?}; asked for one of {:?}",
                            self.acr
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(max) = self.max_age {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            match login.auth.auth_time {
                None => {
                    return Err(ConnectionError::new(
                        "step_up_auth_time",
                        "the IdP reported no authentication time; max_age was asked",
                    ));
                }
                Some(t) if now.saturating_sub(t) > max.saturating_add(skew) => {
                    return Err(ConnectionError::new(
                        "step_up_auth_time",
                        format!(
                            "the IdP authenticated the user {}s ago; max_age is {max}s",
                            now.saturating_sub(t)
                        ),
                    ));
                }
                Some(t) if t > now.saturating_add(skew) => {
                    return Err(ConnectionError::new(
                        "step_up_auth_time",
                        format!("authentication time {t} is in the future (now {now})"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The login's acr in the routes' vocabulary: the `acr_map` name of the
/// IdP's value, else the value itself.
pub fn normalize(login: &mut VerifiedLogin, conn: Option<&ConnectionConfig>) {
    if let (Some(conn), Some(acr)) = (conn, login.auth.acr.as_mut()) {
        *acr = acr_from_idp(&conn.acr_map, acr);
    }
}

/// The connection's clock tolerance for `auth_time`/`AuthnInstant`.
pub fn skew(conn: &ConnectionConfig) -> i64 {
    let s = conn
        .oidc
        .as_ref()
        .map(|o| o.clock_skew_seconds)
        .or(conn.saml.as_ref().map(|s| s.clock_skew_seconds))
        .unwrap_or(120);
    i64::try_from(s).unwrap_or(120)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthFacts;

    fn login(acr: Option<&str>, auth_time: Option<i64>) -> VerifiedLogin {
        VerifiedLogin {
            auth: AuthFacts {
                acr: acr.map(str::to_owned),
                amr: vec![],
                auth_time,
            },
            ..VerifiedLogin::default()
        }
    }

    fn flow(acr: &[&str], max_age: Option<u64>) -> StepUpFlow {
        StepUpFlow {
            acr: acr.iter().map(|s| s.to_string()).collect(),
            max_age,
            user_id: "u1".into(),
            subject: None,
        }
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn acr_must_be_one_asked_for() {
        let f = flow(&["mfa", "phr"], None);
        assert!(f.check(&login(Some("phr"), None), NOW, 60).is_ok());
        for bad in [Some("pwd"), Some("Mfa"), None] {
            assert_eq!(
                f.check(&login(bad, Some(NOW)), NOW, 60).unwrap_err().reason,
                "step_up_acr",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn auth_time_must_be_present_and_recent() {
        let f = flow(&[], Some(300));
        assert!(f.check(&login(None, Some(NOW - 300)), NOW, 60).is_ok());
        assert!(f.check(&login(None, Some(NOW - 360)), NOW, 60).is_ok());
        for bad in [None, Some(NOW - 361), Some(NOW + 61), Some(i64::MIN)] {
            assert_eq!(
                f.check(&login(Some("x"), bad), NOW, 60).unwrap_err().reason,
                "step_up_auth_time",
                "{bad:?}"
            );
        }
        // without max_age, no time is needed
        assert!(
            flow(&["x"], None)
                .check(&login(Some("x"), None), NOW, 60)
                .is_ok()
        );
    }

    #[test]
    fn names_translate_for_the_idp_and_back() {
        let conn: ConnectionConfig = toml::from_str(
            "id = \"c\"\nprotocol = \"saml\"\n[acr_map]\nmfa = \"urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor\"\n",
        )
        .unwrap();
        let f = flow(&["mfa", "urn:other"], Some(60));
        assert_eq!(
            f.ask(&conn),
            StepUpAsk {
                acr_values: vec![
                    "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor".into(),
                    "urn:other".into()
                ],
                max_age: Some(60)
            }
        );
        let mut l = login(
            Some("urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"),
            None,
        );
        normalize(&mut l, Some(&conn));
        assert_eq!(l.auth.acr.as_deref(), Some("mfa"));
        let mut l = login(Some("urn:x:Password"), None);
        normalize(&mut l, Some(&conn));
        assert_eq!(l.auth.acr.as_deref(), Some("urn:x:Password"));
    }
}
