//! Single logout for a SAML connection: the LogoutRequest we send, the
//! IdP's LogoutRequest we verify and answer, its LogoutResponse to ours.

use chrono::{SecondsFormat, Utc};

use super::SamlConnection;
use crate::auth::ConnectionError;
use crate::auth::saml::logout::{
    Freshness, IdpLogoutRequest, RedirectQuery, inflate, logout_request_xml, logout_response_xml,
    read_logout_request, read_logout_response,
};
use crate::auth::saml::request::{new_request_id, redirect_message};
use crate::store::IdpBinding;

impl SamlConnection {
    /// SP-initiated single logout: the IdP's SLO URL carrying a
    /// LogoutRequest for the session's NameID and SessionIndex (signed
    /// when `sign_requests`), with `relay` as RelayState (where the IdP's
    /// LogoutResponse lands when it is a safe relative path). `None` when
    /// the IdP has no HTTP-Redirect SLO endpoint.
    pub fn slo_redirect(
        &self,
        idp: &IdpBinding,
        relay: Option<&str>,
    ) -> Result<Option<String>, ConnectionError> {
        let trust = self.trust()?;
        let Some(slo) = &trust.idp.slo_url else {
            return Ok(None);
        };
        let hint: serde_json::Value = idp
            .logout_hint
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default();
        let xml = logout_request_xml(
            &new_request_id(),
            &Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            slo,
            &self.sp_entity_id,
            hint["name_id"].as_str().unwrap_or(&idp.subject),
            hint["format"].as_str(),
            idp.session.as_deref(),
        );
        let key = self.sp_key.as_deref().filter(|_| self.sign_requests);
        redirect_message(slo, "SAMLRequest", &xml, relay, key)
            .map(Some)
            .map_err(|e| ConnectionError::new("internal", format!("deflate: {e}")))
    }

    /// An IdP-initiated LogoutRequest at the SLO endpoint (raw query):
    /// signature required and verified; issuer, destination (required) and
    /// IssueInstant checked; each request id used once for this connection,
    /// remembered as long as the request could be accepted. Returns whom to
    /// log out and, when the IdP has an SLO endpoint, where to send our
    /// LogoutResponse.
    pub async fn idp_logout(
        &self,
        raw_query: &str,
    ) -> Result<(IdpLogoutRequest, Option<String>), ConnectionError> {
        let q = RedirectQuery::parse(raw_query);
        let trust = self.trust()?;
        let msg = q
            .get("SAMLRequest")
            .ok_or_else(|| ConnectionError::new("slo_malformed", "no SAMLRequest in the query"))?;
        if !q.verify("SAMLRequest", &trust.idp, self.allow_sha1)? {
            return Err(ConnectionError::new(
                "slo_signature",
                "an IdP LogoutRequest must be signed",
            ));
        }
        let xml = inflate(&msg)?;
        let req = read_logout_request(&xml, &trust.idp.entity_id, &self.slo_url, self.freshness())?;
        let first = self
            .store
            .one_time()
            .consume(&self.logout_replay_kind, &req.id, req.valid_until)
            .await
            .map_err(|e| ConnectionError::new("internal", format!("replay cache: {e}")))?;
        if !first {
            return Err(ConnectionError::new(
                "slo_replay",
                format!("LogoutRequest {} was already used", req.id),
            ));
        }
        let Some(slo) = &trust.idp.slo_url else {
            return Ok((req, None));
        };
        let xml = logout_response_xml(
            &new_request_id(),
            &Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            slo,
            &req.id,
            &self.sp_entity_id,
        );
        let key = self.sp_key.as_deref().filter(|_| self.sign_requests);
        let relay = q.get("RelayState");
        let url = redirect_message(slo, "SAMLResponse", &xml, relay.as_deref(), key)
            .map_err(|e| ConnectionError::new("internal", format!("deflate: {e}")))?;
        Ok((req, Some(url)))
    }

    /// The IdP's LogoutResponse to our LogoutRequest: checked (signature
    /// when signed, issuer, destination — required when signed —,
    /// IssueInstant, status); returns its RelayState.
    pub fn idp_logout_response(&self, raw_query: &str) -> Result<Option<String>, ConnectionError> {
        let q = RedirectQuery::parse(raw_query);
        let trust = self.trust()?;
        let msg = q
            .get("SAMLResponse")
            .ok_or_else(|| ConnectionError::new("slo_malformed", "no SAMLResponse in the query"))?;
        // Unsigned is accepted: the local session already ended, and all a
        // response can do is pick a safe relative landing path.
        let signed = q.verify("SAMLResponse", &trust.idp, self.allow_sha1)?;
        read_logout_response(
            &inflate(&msg)?,
            &trust.idp.entity_id,
            &self.slo_url,
            signed,
            self.freshness(),
        )?;
        Ok(q.get("RelayState"))
    }

    fn freshness(&self) -> Freshness {
        Freshness {
            now: crate::clock::now(),
            skew: self.skew_seconds,
        }
    }
}
