//! Machine callers with a client-credentials access token from a tenant's
//! own OIDC connection. The token's unverified `iss` and `aud` only pick
//! the connection (validation makes the pair name at most one); that
//! connection then verifies everything against its provider's keys, and
//! the caller becomes a service principal of the connection's tenant.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::connection::ConnectionError;
use super::discovery::AuthContext;
use super::policy::map_roles;
use crate::config::Config;
use crate::identity::{Principal, PrincipalKind};

/// Most groups a machine token contributes, and their longest name.
const MAX_GROUPS: usize = 64;
const MAX_GROUP_BYTES: usize = 256;

/// Connections that take machine tokens, by issuer.
#[derive(Debug, Clone, Default)]
pub(crate) struct MachineIndex {
    by_issuer: HashMap<String, Vec<MachineConnection>>,
}

#[derive(Debug, Clone)]
struct MachineConnection {
    audience: String,
    connection: String,
    tenant: String,
    role: Option<String>,
    groups_claim: Option<String>,
}

impl MachineIndex {
    pub(crate) fn build(cfg: &Config) -> Self {
        let mut by_issuer: HashMap<String, Vec<MachineConnection>> = HashMap::new();
        for t in &cfg.tenants {
            for c in &t.connections {
                let Some(o) = &c.oidc else { continue };
                let Some(audience) = &o.machine_audience else {
                    continue;
                };
                if c.platform.is_some() {
                    continue;
                }
                by_issuer
                    .entry(o.issuer.clone())
                    .or_default()
                    .push(MachineConnection {
                        audience: audience.clone(),
                        connection: c.id.clone(),
                        tenant: t.id.clone(),
                        role: o.machine_role.clone(),
                        groups_claim: o.machine_groups_claim.clone(),
                    });
            }
        }
        Self { by_issuer }
    }
}

/// Why a machine token did not authenticate; `label` is a value of
/// `portcullis_machine_auth_failures_total{reason}`, `detail` is for the
/// log only.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{label}: {detail}")]
pub struct JwtRejection {
    pub label: &'static str,
    pub detail: String,
}

/// The closed label of a verification failure.
fn label(reason: &str) -> &'static str {
    match reason {
        "malformed" => "jwt_malformed",
        "issuer" => "jwt_issuer",
        "audience" => "jwt_audience",
        "algorithm" => "jwt_algorithm",
        "signature" | "unknown_key" => "jwt_signature",
        "expired" => "jwt_expired",
        "not_yet_valid" => "jwt_not_yet_valid",
        "subject" => "jwt_subject",
        _ => "jwt_invalid",
    }
}

fn reject(e: ConnectionError) -> JwtRejection {
    JwtRejection {
        label: label(e.reason),
        detail: e.detail,
    }
}

impl AuthContext {
    /// Authenticates a bearer JWT as a machine caller. `Err` when the
    /// provider's keys could not be had (the caller answers as for a store
    /// outage); `Ok(Err(..))` when the token is not good.
    pub async fn machine_jwt(
        &self,
        token: &str,
    ) -> Result<Result<Arc<Principal>, JwtRejection>, ConnectionError> {
        let (iss, auds) = match super::oidc::unverified_issuer_and_audiences(token) {
            Ok(v) => v,
            Err(e) => return Ok(Err(reject(e))),
        };
        let Some(candidates) = self.machine.by_issuer.get(&iss) else {
            return Ok(Err(JwtRejection {
                label: "jwt_issuer",
                detail: format!("no connection takes machine tokens of issuer {iss:?}"),
            }));
        };
        let Some(m) = candidates.iter().find(|m| auds.contains(&m.audience)) else {
            return Ok(Err(JwtRejection {
                label: "jwt_audience",
                detail: format!("aud {auds:?} names no machine audience of issuer {iss:?}"),
            }));
        };
        let (Some(registered), Some(tenant)) =
            (self.registry.get(&m.connection), self.tenant(&m.tenant))
        else {
            return Ok(Err(JwtRejection {
                label: "jwt_invalid",
                detail: format!("connection `{}` is not running", m.connection),
            }));
        };
        let claims = match registered.connection.machine_token(token).await {
            Ok(c) => c,
            Err(e) if e.reason == "discovery" => return Err(e),
            Err(e) => return Ok(Err(reject(e))),
        };
        let groups = m
            .groups_claim
            .as_deref()
            .map(|c| groups_of(&claims, c))
            .unwrap_or_default();
        let str_claim = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Ok(Arc::new(Principal {
            user_id: str_claim("sub").unwrap_or_default(),
            email: String::new(),
            name: str_claim("client_id").or_else(|| str_claim("azp")),
            roles: map_roles(m.role.as_deref(), &groups, tenant),
            groups,
            tenant: Some(m.tenant.clone()),
            connection: Some(m.connection.clone()),
            kind: PrincipalKind::Service,
            ..Principal::default()
        })))
    }
}

/// The values of `claim`: a list of strings, or one string of
/// space-separated values (OAuth `scope`); bounded in number and length.
fn groups_of(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let values: Vec<String> = match claims.get(claim) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if out.len() == MAX_GROUPS {
            break;
        }
        if !v.is_empty() && v.len() <= MAX_GROUP_BYTES && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_come_from_lists_or_scope_strings_bounded() {
        let claims = json!({"roles": ["a", "b", "a", ""], "scope": "read  write",
            "many": (0..100).map(|i| i.to_string()).collect::<Vec<_>>(), "n": 3});
        let claims = claims.as_object().unwrap();
        assert_eq!(groups_of(claims, "roles"), ["a", "b"]);
        assert_eq!(groups_of(claims, "scope"), ["read", "write"]);
        assert_eq!(groups_of(claims, "many").len(), MAX_GROUPS);
        assert!(groups_of(claims, "n").is_empty());
        assert!(groups_of(claims, "absent").is_empty());
    }

    #[test]
    fn every_verification_reason_has_a_closed_label() {
        for (reason, l) in [
            ("unknown_key", "jwt_signature"),
            ("audience", "jwt_audience"),
            ("config", "jwt_invalid"),
            ("anything", "jwt_invalid"),
        ] {
            assert_eq!(label(reason), l);
        }
    }
}
