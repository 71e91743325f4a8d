//! A test SAML IdP made of real tools: keys and certificates from the
//! `openssl` CLI, responses signed by the `xmlsec1` CLI at test time, and
//! `SamlSso`: a test environment whose tenant `acme` (acme.com, verified
//! through the DNS server) has a `saml` connection trusting that IdP.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use chrono::{Duration, SecondsFormat, Utc};

use super::dns::DnsServer;
use super::env::*;

pub(crate) const IDP_ENTITY: &str = "https://idp.test/metadata";
pub(crate) const IDP_SSO: &str = "https://idp.test/sso";
pub(crate) const CONNECTION: &str = "acme-saml";

/// An IdP key pair on disk.
pub(crate) struct IdpKey {
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl IdpKey {
    pub(crate) fn generate(dir: &Path, name: &str) -> IdpKey {
        let key = dir.join(format!("{name}.key.pem"));
        let cert = dir.join(format!("{name}.cert.pem"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args(["-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl CLI is needed for SAML tests");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        IdpKey { key, cert }
    }

    pub(crate) fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }

    /// The certificate's SHA-256 fingerprint as `openssl x509 -fingerprint
    /// -sha256` prints it (`AB:CD:…`).
    pub(crate) fn fingerprint(&self) -> String {
        let cert = openssl::x509::X509::from_pem(self.cert_pem().as_bytes()).unwrap();
        cert.digest(openssl::hash::MessageDigest::sha256())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// How the signed part is signed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Sign {
    Assertion,
    Response,
    /// The assertion, then the response around it (two signatures).
    Both,
    Nothing,
}

/// Everything a response says; defaults describe a good one.
#[derive(Clone, Debug)]
pub(crate) struct Resp {
    pub name_id: String,
    pub issuer: String,
    pub audience: String,
    pub destination: String,
    pub recipient: String,
    pub in_response_to: String,
    pub not_before: chrono::DateTime<Utc>,
    pub not_on_or_after: chrono::DateTime<Utc>,
    pub assertion_id: String,
    pub groups: Vec<String>,
    pub sha1: bool,
    pub sign: Sign,
}

impl Resp {
    pub(crate) fn new(acs: &str, sp_entity: &str, request_id: &str) -> Resp {
        let now = Utc::now();
        Resp {
            name_id: "alice@acme.com".into(),
            issuer: IDP_ENTITY.into(),
            audience: sp_entity.into(),
            destination: acs.into(),
            recipient: acs.into(),
            in_response_to: request_id.into(),
            not_before: now - Duration::seconds(30),
            not_on_or_after: now + Duration::seconds(300),
            assertion_id: format!("_a{}", uuid::Uuid::new_v4().simple()),
            groups: vec!["Engineering".into(), "Everyone".into()],
            sha1: false,
            sign: Sign::Assertion,
        }
    }

    /// The XML before signing; `<ds:Signature>` templates where signed.
    pub(crate) fn template(&self) -> String {
        let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        let now = t(Utc::now());
        let groups: String = self
            .groups
            .iter()
            .map(|g| format!("<saml:AttributeValue>{g}</saml:AttributeValue>"))
            .collect();
        let assertion_sig = if matches!(self.sign, Sign::Assertion | Sign::Both) {
            signature_template(&self.assertion_id, self.sha1)
        } else {
            String::new()
        };
        let response_sig = if self.sign == Sign::Response {
            signature_template("_r1", self.sha1)
        } else {
            String::new()
        };
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="{now}" Destination="{dest}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer>{response_sig}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="{aid}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{issuer}</saml:Issuer>{assertion_sig}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{nooa}" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{nooa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="displayName"><saml:AttributeValue>Alice Example</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups">{groups}</saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>"#,
            dest = self.destination,
            irt = self.in_response_to,
            issuer = self.issuer,
            aid = self.assertion_id,
            name_id = self.name_id,
            nooa = t(self.not_on_or_after),
            nb = t(self.not_before),
            recipient = self.recipient,
            aud = self.audience,
        )
    }

    /// The signed XML (signed with `key` through `xmlsec1`).
    pub(crate) fn signed(&self, key: &IdpKey, dir: &Path) -> String {
        self.sign_template(&self.template(), key, dir)
    }

    /// Signs `xml`, a (possibly edited) `template()`, as `self.sign` says.
    pub(crate) fn sign_template(&self, xml: &str, key: &IdpKey, dir: &Path) -> String {
        if self.sign == Sign::Nothing {
            return xml.to_owned();
        }
        if self.sign == Sign::Both {
            let inner = Resp {
                sign: Sign::Assertion,
                ..self.clone()
            };
            let signed = inner.sign_template(xml, key, dir);
            // xmlsec1 signs the first Signature template: the response's
            let issuer = format!("<saml:Issuer>{}</saml:Issuer>", self.issuer);
            let outer = signed.replacen(
                &issuer,
                &format!("{issuer}{}", signature_template("_r1", self.sha1)),
                1,
            );
            let resp = Resp {
                sign: Sign::Response,
                assertion_id: format!("{}-outer", self.assertion_id),
                ..self.clone()
            };
            return resp.sign_template(&outer, key, dir);
        }
        let tpl = dir.join(format!("{}.tpl.xml", self.assertion_id));
        let out_path = dir.join(format!("{}.signed.xml", self.assertion_id));
        std::fs::write(&tpl, xml).unwrap();
        let id_attr = match self.sign {
            Sign::Assertion => "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            _ => "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        };
        let out = Command::new("xmlsec1")
            .arg("--sign")
            .arg("--privkey-pem")
            .arg(format!("{},{}", key.key.display(), key.cert.display()))
            .args(["--id-attr:ID", id_attr])
            .arg("--output")
            .arg(&out_path)
            .arg(&tpl)
            .output()
            .expect("the xmlsec1 CLI is needed for SAML tests");
        assert!(
            out.status.success(),
            "xmlsec1: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&out_path).unwrap()
    }
}

pub(crate) fn signature_template(reference: &str, sha1: bool) -> String {
    let (sig, digest) = if sha1 {
        (
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        )
    } else {
        (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        )
    };
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{sig}"/><ds:Reference URI="#{reference}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>"##
    )
}

pub(crate) fn b64(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// The `saml` table of the test connection.
pub(crate) fn saml_toml(cert_pems: &[String], extra: &str) -> String {
    let certs = cert_pems
        .iter()
        .map(|c| format!("\"\"\"\n{c}\"\"\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[tenants.connections.saml]\nidp_entity_id = \"{IDP_ENTITY}\"\nidp_sso_url = \"{IDP_SSO}\"\nidp_certificates = [{certs}]\n{extra}\n"
    )
}

/// The AuthnRequest inside a Redirect-binding URL, and its RelayState.
pub(crate) fn parse_redirect(location: &str) -> (String, String) {
    let q = location.split_once('?').expect("query").1;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let raw = base64::engine::general_purpose::STANDARD
        .decode(get("SAMLRequest").expect("SAMLRequest"))
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .expect("raw DEFLATE");
    (xml, get("RelayState").expect("RelayState"))
}

/// An XML attribute's value in the first element that has it.
pub(crate) fn attr(xml: &str, name: &str) -> String {
    let needle = format!(" {name}=\"");
    let rest = xml.split_once(&needle).expect(name).1;
    rest.split('"').next().unwrap().to_owned()
}

pub(crate) struct SamlSso {
    pub env: TestEnv,
    /// The config's extra text, for replicas.
    extra: String,
    pub dns: DnsServer,
    pub key: IdpKey,
    pub dir: tempfile::TempDir,
}

/// A started login: what the SP sent and the cookie binding it.
pub(crate) struct Started {
    pub request_id: String,
    pub relay: String,
    pub flow_cookie: String,
    pub request_xml: String,
}

impl SamlSso {
    /// `saml_extra`: more keys of the connection's `saml` table.
    pub(crate) async fn start(saml_extra: &str) -> SamlSso {
        Self::start_trusting(saml_extra, &[]).await
    }

    /// Also trusting `more_certs` (PEM), listed before the IdP's own
    /// (a rotation: the old certificate first).
    pub(crate) async fn start_trusting(saml_extra: &str, more_certs: &[String]) -> SamlSso {
        let dir = tempfile::tempdir().unwrap();
        let key = IdpKey::generate(dir.path(), "idp");
        let mut certs = more_certs.to_vec();
        certs.push(key.cert_pem());
        let connections = format!(
            "[[tenants.connections]]\nid = \"{CONNECTION}\"\nprotocol = \"saml\"\npreset = \"okta\"\n{}",
            saml_toml(&certs, saml_extra)
        );
        Self::start_with(dir, key, &connections).await
    }

    /// Tenant `acme` with the given `[[tenants.connections]]` blocks; `key`
    /// (in `dir`) is the IdP key the tests sign with.
    pub(crate) async fn start_with(
        dir: tempfile::TempDir,
        key: IdpKey,
        connections: &str,
    ) -> SamlSso {
        Self::start_mapped(
            dir,
            key,
            connections,
            "{ \"Engineering\" = [\"developer\"] }",
        )
        .await
    }

    /// [`SamlSso::start_with`] with the tenant's `group_roles` (an inline
    /// TOML table).
    pub(crate) async fn start_mapped(
        dir: tempfile::TempDir,
        key: IdpKey,
        connections: &str,
        group_roles: &str,
    ) -> SamlSso {
        let dns = DnsServer::start().await;
        let extra = format!(
            "[dns]\nnameservers = [\"{}\"]\n\n[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\nenforce_sso = true\ngroup_roles = {group_roles}\n{connections}",
            dns.addr(),
        );
        let env = Self::env(&extra, None).await;
        let s = SamlSso {
            env,
            extra,
            dns,
            key,
            dir,
        };
        let cfg = s.env.shared.config();
        let domains =
            portcullis::domains::Domains::new(s.env.shared.store.clone(), &cfg.dns).unwrap();
        let now = portcullis::clock::now();
        let entry = domains.add("acme", "acme.com", now).await.unwrap();
        let (name, value) = domains.txt_record(&entry);
        s.dns.set_txt(&name, &value);
        domains.verify("acme.com", now).await.unwrap();
        s
    }

    async fn env(extra: &str, store_url: Option<String>) -> TestEnv {
        TestEnv::with(Options {
            extra: extra.to_owned(),
            store_url,
            factories: portcullis::auth::Factories::builtin(),
            // room for the oversized-response case to reach the SAML check
            server_extra: "max_internal_body_bytes = 1048576".into(),
            ..Default::default()
        })
        .await
    }

    /// A second proxy with the same configuration and store.
    pub(crate) async fn replica(&self) -> TestEnv {
        Self::env(
            &self.extra,
            Some(self.env.shared.config().store.url.clone()),
        )
        .await
    }

    pub(crate) fn acs(&self) -> String {
        self.env.url(&format!("/.portcullis/saml/{CONNECTION}/acs"))
    }

    pub(crate) fn sp_entity(&self) -> String {
        self.env
            .url(&format!("/.portcullis/saml/{CONNECTION}/metadata"))
    }

    /// SP-initiated start: the redirect to the IdP, decoded.
    pub(crate) async fn begin(&self) -> Started {
        let r = client()
            .get(self.env.url(&format!(
                "/.portcullis/sso/{CONNECTION}/start?return_to=%2Fdashboard"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{IDP_SSO}?SAMLRequest=")),
            "{location}"
        );
        let flow_cookie = super::idp::cookie_pair(&r, "portcullis_flow_").expect("flow cookie");
        let (request_xml, relay) = parse_redirect(&location);
        Started {
            request_id: attr(&request_xml, "ID"),
            relay,
            flow_cookie,
            request_xml,
        }
    }

    /// A good response to `started`, to adjust before signing.
    pub(crate) fn resp(&self, started: &Started) -> Resp {
        Resp::new(&self.acs(), &self.sp_entity(), &started.request_id)
    }

    /// POSTs a `SAMLResponse` form value to the ACS with the flow cookie.
    pub(crate) async fn post(&self, started: &Started, saml_response: &str) -> reqwest::Response {
        client()
            .post(self.acs())
            .header("cookie", &started.flow_cookie)
            .form(&[
                ("SAMLResponse", saml_response),
                ("RelayState", &started.relay),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the failure count for `reason` is `n`: login
    /// metrics are recorded just after the response went out.
    pub(crate) async fn expect_failures(&self, reason: &str, n: u64) {
        let mut last = 0;
        for _ in 0..100 {
            last = self.failures(reason).await;
            if last == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("portcullis_login_failures_total{{reason=\"{reason}\"}} is {last}, expected {n}");
    }

    /// The count of `portcullis_login_failures_total` for `reason`.
    pub(crate) async fn failures(&self, reason: &str) -> u64 {
        let m = self.env.metrics().await;
        m.lines()
            .find(|l| {
                l.starts_with("portcullis_login_failures_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Replaces the (signed) `saml:Assertion` of `response_xml` with an
/// `EncryptedAssertion` made by `xmlsec1 --encrypt` for `sp_cert`
/// (content `data_alg`, key transport `key_alg`, both XML Encryption URIs).
pub(crate) fn encrypt_assertion(
    response_xml: &str,
    sp_cert: &Path,
    dir: &Path,
    data_alg: &str,
    key_alg: &str,
) -> String {
    let n = uuid::Uuid::new_v4().simple().to_string();
    let data = dir.join(format!("{n}.data.xml"));
    let tpl = dir.join(format!("{n}.enc-tpl.xml"));
    let out_path = dir.join(format!("{n}.enc.xml"));
    std::fs::write(&data, response_xml).unwrap();
    std::fs::write(
        &tpl,
        format!(
            r#"<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{data_alg}"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="{key_alg}"/><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"#
        ),
    )
    .unwrap();
    let session = if data_alg.contains("aes256") {
        "aes-256"
    } else if data_alg.contains("tripledes") {
        "des-192"
    } else {
        "aes-128"
    };
    let out = Command::new("xmlsec1")
        .arg("--encrypt")
        .arg("--pubkey-cert-pem")
        .arg(sp_cert)
        .args(["--session-key", session])
        .arg("--xml-data")
        .arg(&data)
        .args(["--node-xpath", "//*[local-name()='Assertion']"])
        .arg("--output")
        .arg(&out_path)
        .arg(&tpl)
        .output()
        .expect("the xmlsec1 CLI is needed for SAML tests");
    assert!(
        out.status.success(),
        "xmlsec1 --encrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(&out_path).unwrap();
    let start = xml.find("<xenc:EncryptedData").expect("EncryptedData");
    let end = xml.find("</xenc:EncryptedData>").unwrap() + "</xenc:EncryptedData>".len();
    format!(
        "{}<saml:EncryptedAssertion>{}</saml:EncryptedAssertion>{}",
        &xml[..start],
        &xml[start..end],
        &xml[end..]
    )
}
