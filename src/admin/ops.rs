//! The admin operations, shared by the API (and later the setup portal and
//! the CLI). Every change runs in one store transaction with its audit
//! event; only after the commit is it counted and the configuration
//! rebuilt, so a refused change leaves no trace and the answer already
//! reflects the change on this replica.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::audit::{Actor, AuditAction, REDACTED, row};
use crate::config::{
    Config, ConnectionConfig, FieldError, JitConfig, Origin, Protocol, TenantConfig,
    TenantScimConfig, UrlRefusal, connection_from_json, merge_store_tenants, no_probe,
    tenant_from_json,
};
use crate::domains::{DomainEntry, DomainError, Domains, normalize_domain};
use crate::metrics::Metrics;
use crate::session::Sessions;
use crate::store::{SessionSelector, SetupLinkRow, Store, StoreError, WriteTx};

/// What the operations need of the running server, taken once per request.
#[derive(Clone)]
pub struct AdminCtx {
    /// The running configuration: the file's tenants and the store's.
    pub config: Arc<Config>,
    /// The configuration file alone (what store tenants are checked against).
    pub file_config: Arc<Config>,
    /// The file named in a `409` about a file tenant.
    pub config_file: String,
    pub store: Store,
    pub sessions: Sessions,
    pub metrics: Arc<Metrics>,
    /// Store tenants left out of the configuration, with why.
    pub invalid: Arc<Vec<(String, Vec<FieldError>)>>,
}

/// The running server as the admin module sees it (implemented by `app`,
/// so this module never sees the wiring or pingora).
#[async_trait]
pub trait Current: Send + Sync {
    fn ctx(&self) -> AdminCtx;
    /// Applies committed store changes to this replica now.
    async fn rebuild(&self);
}

/// Why an operation did nothing.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The document does not validate; what `check` would print, by field.
    #[error("invalid")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    /// Taken by someone else, or defined in the configuration file.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { owner } => {
                OpError::Conflict(format!("already owned by tenant `{owner}`"))
            }
            StoreError::Duplicate(what) => OpError::Conflict(format!("already exists: {what}")),
            other => {
                tracing::error!(error = %other, "admin operation failed in the store");
                OpError::Internal("the store failed; see the server log".into())
            }
        }
    }
}

impl From<DomainError> for OpError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { .. } | DomainError::PublicMail(_) => {
                OpError::Invalid(vec![FieldError::new("domain", e.to_string())])
            }
            DomainError::Conflict { domain, owner } => OpError::Conflict(format!(
                "`{domain}` is already claimed by tenant `{owner}`; a domain belongs to one tenant"
            )),
            DomainError::NotFound(d) => OpError::NotFound(format!("no domain `{d}`")),
            DomainError::Store(s) => s.into(),
            other => OpError::Internal(other.to_string()),
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> OpError {
    OpError::Invalid(vec![FieldError::new(field, message)])
}

/// A tenant as the API shows it: the configuration keys, its connection
/// ids, where it is defined and whether it is served.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: Option<String>,
    pub domains: Vec<String>,
    pub enforce_sso: bool,
    pub jit: JitConfig,
    pub group_roles: BTreeMap<String, Vec<String>>,
    pub admin_roles: Vec<String>,
    pub scim: TenantScimConfig,
    /// Connection ids, in order.
    pub connections: Vec<String>,
    /// `file` (read-only here) or `store`.
    pub source: String,
    /// `active`, or `invalid` for a store tenant that no longer validates.
    pub status: String,
    /// Why an `invalid` tenant is not served.
    pub errors: Vec<FieldError>,
}

impl TenantView {
    fn of(t: &TenantConfig) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            domains: t.domains.clone(),
            enforce_sso: t.enforce_sso,
            jit: t.jit.clone(),
            group_roles: t.group_roles.clone(),
            admin_roles: t.admin_roles.clone(),
            scim: t.scim.clone(),
            connections: t.connections.iter().map(|c| c.id.clone()).collect(),
            source: match t.origin {
                Origin::File => "file",
                Origin::Store => "store",
            }
            .into(),
            status: "active".into(),
            errors: Vec::new(),
        }
    }

    fn invalid(id: &str, errors: &[FieldError]) -> Self {
        Self {
            id: id.to_owned(),
            name: None,
            domains: Vec::new(),
            enforce_sso: false,
            jit: JitConfig::default(),
            group_roles: BTreeMap::new(),
            admin_roles: Vec::new(),
            scim: TenantScimConfig::default(),
            connections: Vec::new(),
            source: "store".into(),
            status: "invalid".into(),
            errors: errors.to_vec(),
        }
    }
}

/// A connection with its secrets redacted and the values to give the IdP.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub tenant: String,
    pub connection: ConnectionConfig,
    /// SAML: this SP's entity id, ACS and metadata URLs.
    pub sp_entity_id: Option<String>,
    pub acs_url: Option<String>,
    pub metadata_url: Option<String>,
    /// OIDC: the redirect and back-channel logout URIs to register.
    pub redirect_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
}

/// A claimed domain and the TXT record that proves it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    /// `pending`, `verified`, `failed` or `lapsed`.
    pub status: String,
    pub record_name: String,
    pub record_value: String,
    /// The last check's result in words.
    pub detail: Option<String>,
    pub last_checked_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    pub domain: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    pub url: String,
    pub expires_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScimCredentials {
    pub base_url: String,
    /// Shown once; the previous token stops working.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub source: String,
    pub active: bool,
    pub last_login_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session's id hash (what revocation takes).
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub connection: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupLinkInput {
    /// Any of `domain`, `sso`, `scim`, `enforce`, `roles`.
    pub intents: Vec<String>,
    /// 300 to 604800; default 86400.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: i64,
}

fn default_ttl() -> i64 {
    86_400
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    pub at_ms: i64,
    pub tenant: Option<String>,
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// `before` for the next page, or null at the end.
    pub next: Option<i64>,
}

pub(super) fn tenant<'a>(ctx: &'a AdminCtx, id: &str) -> Result<&'a TenantConfig, OpError> {
    ctx.config
        .tenants
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| OpError::NotFound(format!("no tenant `{id}`")))
}

/// The tenant, if the API may change it.
fn writable<'a>(ctx: &'a AdminCtx, id: &str) -> Result<&'a TenantConfig, OpError> {
    let t = tenant(ctx, id)?;
    if t.origin == Origin::File {
        return Err(file_tenant(ctx, id));
    }
    Ok(t)
}

/// The `409` about tenant `id` of the configuration file.
fn file_tenant(ctx: &AdminCtx, id: &str) -> OpError {
    OpError::Conflict(format!(
        "tenant `{id}` is defined in the configuration file {}; change it there",
        ctx.config_file
    ))
}

/// The file's tenants and the store's as this transaction sees them.
async fn within(ctx: &AdminCtx, tx: &mut WriteTx) -> Result<Config, OpError> {
    let docs = tx.tenants().documents().await?;
    Ok(merge_store_tenants(&ctx.file_config, &docs, &no_probe).0)
}

/// Store tenant `id` as this transaction sees it.
async fn stored_tenant(
    ctx: &AdminCtx,
    tx: &mut WriteTx,
    id: &str,
) -> Result<TenantConfig, OpError> {
    within(ctx, tx)
        .await?
        .tenants
        .into_iter()
        .find(|t| t.id == id && t.origin == Origin::Store)
        .ok_or_else(|| OpError::NotFound(format!("no tenant `{id}`")))
}

/// The stored document of a tenant: its keys without the connections.
fn tenant_doc(t: &TenantConfig) -> Result<Value, OpError> {
    let mut v = to_value(t)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("connections");
    }
    Ok(v)
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, OpError> {
    crate::config::to_document(v).map_err(OpError::Internal)
}

/// A document that did not validate. Findings about an IdP URL the server
/// would not fetch (`config::UrlRefusal`) reach the API client (and a
/// customer's portal) as one generic sentence; the precise finding goes to
/// the log and its reason to `portcullis_idp_egress_refused_total`.
fn refused_document(ctx: &AdminCtx, tenant: &str, errors: Vec<FieldError>) -> OpError {
    OpError::Invalid(
        errors
            .into_iter()
            .map(|e| match UrlRefusal::label_of_finding(&e.message) {
                Some(reason) => {
                    tracing::warn!(
                        tenant,
                        field = %e.field,
                        reason,
                        finding = %e.message,
                        "admin API: IdP URL refused"
                    );
                    ctx.metrics
                        .idp_egress_refused
                        .with_label_values(&[reason])
                        .inc();
                    FieldError::new(e.field, IDP_URL_REFUSED)
                }
                None => e,
            })
            .collect(),
    )
}

/// What the API says about a refused IdP URL, whatever the reason.
pub const IDP_URL_REFUSED: &str =
    "the IdP URL is not reachable from this server: it must be an https:// URL of a public host";

fn probe(t: &TenantConfig, push: &mut dyn FnMut(String, String)) {
    crate::auth::check::check_tenant(t, push)
}

/// Commits, drops this process' cached sessions of what was revoked,
/// counts the actions and applies the change here before answering.
pub(super) async fn finish(
    cur: &dyn Current,
    ctx: &AdminCtx,
    tx: WriteTx,
    actions: &[AuditAction],
) -> Result<(), OpError> {
    let revoked = tx.commit().await?;
    committed(ctx, &revoked, actions).await;
    cur.rebuild().await;
    Ok(())
}

/// After a commit: drops this process' cached sessions of what was
/// revoked and counts the actions.
pub(super) async fn committed(
    ctx: &AdminCtx,
    revoked: &[SessionSelector],
    actions: &[AuditAction],
) {
    for selector in revoked {
        ctx.sessions.invalidate(selector).await;
    }
    for a in actions {
        ctx.metrics
            .admin
            .changes
            .with_label_values(&[a.label()])
            .inc();
    }
}

/// Every tenant, file's first; invalid store tenants at the end.
pub fn list_tenants(ctx: &AdminCtx) -> Vec<TenantView> {
    ctx.config
        .tenants
        .iter()
        .map(TenantView::of)
        .chain(ctx.invalid.iter().map(|(id, e)| TenantView::invalid(id, e)))
        .collect()
}

pub fn get_tenant(ctx: &AdminCtx, id: &str) -> Result<TenantView, OpError> {
    if let Some((id, errors)) = ctx.invalid.iter().find(|(i, _)| i == id) {
        return Ok(TenantView::invalid(id, errors));
    }
    Ok(TenantView::of(tenant(ctx, id)?))
}

pub async fn create_tenant(
    cur: &dyn Current,
    actor: &Actor,
    body: &Value,
) -> Result<TenantView, OpError> {
    let ctx = cur.ctx();
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("id", "missing field `id`"))?
        .to_owned();
    if ctx.file_config.tenants.iter().any(|t| t.id == id) {
        return Err(file_tenant(&ctx, &id));
    }
    let mut tx = ctx.store.begin_config(&id).await?;
    let within = within(&ctx, &mut tx).await?;
    let t = tenant_from_json(body, &within, None, &probe)
        .map_err(|e| refused_document(&ctx, &id, e))?;
    tx.tenants().put_tenant(&t.id, &tenant_doc(&t)?).await?;
    for (i, c) in t.connections.iter().enumerate() {
        tx.tenants()
            .put_connection(&t.id, i as i64, &c.id, &to_value(c)?)
            .await?;
    }
    let after = to_value(&t)?;
    tx.audit()
        .record(&row(
            actor,
            AuditAction::TenantCreated,
            Some(&t.id),
            &t.id,
            None,
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::TenantCreated]).await?;
    Ok(TenantView::of(&t))
}

/// A JSON merge patch (RFC 7396) of the tenant's keys; `connections` are
/// changed through their own resource, `id` never.
pub async fn update_tenant(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    patch: &Value,
) -> Result<TenantView, OpError> {
    let ctx = cur.ctx();
    writable(&ctx, id)?;
    let Some(fields) = patch.as_object() else {
        return Err(invalid("", "expected a JSON object"));
    };
    if fields.contains_key("connections") {
        return Err(invalid(
            "connections",
            "change connections under /admin/v1/tenants/{id}/connections",
        ));
    }
    if fields.get("id").is_some_and(|v| v.as_str() != Some(id)) {
        return Err(invalid("id", "a tenant's id can't change"));
    }
    let mut tx = ctx.store.begin_config(id).await?;
    let within = within(&ctx, &mut tx).await?;
    let old = within
        .tenants
        .iter()
        .find(|t| t.id == id && t.origin == Origin::Store)
        .cloned()
        .ok_or_else(|| OpError::NotFound(format!("no tenant `{id}`")))?;
    let mut doc = to_value(&old)?;
    merge_patch(&mut doc, patch);
    let new = tenant_from_json(&doc, &within, Some(id), &probe)
        .map_err(|e| refused_document(&ctx, id, e))?;
    tx.tenants().put_tenant(id, &tenant_doc(&new)?).await?;
    // Domains no longer listed are released.
    for d in old
        .domains
        .iter()
        .filter(|d| !new.domains.iter().any(|n| n.eq_ignore_ascii_case(d)))
    {
        if let Ok(d) = normalize_domain(d) {
            tx.domains().delete(id, &d).await?;
        }
    }
    let mut actions = Vec::new();
    if old.enforce_sso != new.enforce_sso {
        actions.push(AuditAction::EnforcementChanged);
    }
    if old.group_roles != new.group_roles || old.admin_roles != new.admin_roles {
        actions.push(AuditAction::RolesChanged);
    }
    if old.jit != new.jit || old.scim != new.scim {
        actions.push(AuditAction::ProvisioningChanged);
    }
    if old.name != new.name || old.domains != new.domains || actions.is_empty() {
        actions.push(AuditAction::TenantUpdated);
    }
    let (before, after) = (tenant_doc(&old)?, tenant_doc(&new)?);
    for a in &actions {
        tx.audit()
            .record(&row(actor, *a, Some(id), id, Some(&before), Some(&after)))
            .await?;
    }
    finish(cur, &ctx, tx, &actions).await?;
    Ok(TenantView::of(&new))
}

/// Deletes a store tenant and everything kept under its id, in one
/// transaction: connections, domain claims, the SCIM token, SCIM users and
/// groups, login users and service accounts go, unused setup links are
/// revoked and every session ends — a tenant made again with this id
/// starts empty, and no credential of the old one works for it.
///
/// A store tenant that is invalid because the file now defines its id is
/// only a stored document: deleting it removes that document and its
/// connections, nothing else — every other row under the id (domain
/// claims, sessions, tokens, users) is the file tenant's, which stays.
pub async fn delete_tenant(cur: &dyn Current, actor: &Actor, id: &str) -> Result<(), OpError> {
    let ctx = cur.ctx();
    let stored_only = ctx.invalid.iter().any(|(i, _)| i == id);
    if !stored_only {
        writable(&ctx, id)?;
    }
    let shadowed = ctx.file_config.tenants.iter().any(|t| t.id == id);
    let mut tx = ctx.store.begin_config(id).await?;
    let before = tx
        .tenants()
        .load_all()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| t.document());
    if !tx.tenants().delete_tenant(id).await? {
        // Not in the store (any more): a file tenant is read-only.
        writable(&ctx, id)?;
        return Err(OpError::NotFound(format!("no tenant `{id}`")));
    }
    if !shadowed {
        tx.domains().delete_tenant(id).await?;
        tx.setup_links()
            .revoke_tenant(id, crate::clock::now())
            .await?;
        tx.sessions()
            .revoke(&SessionSelector::Tenant(id.to_owned()))
            .await?;
        let _had_token = tx.credentials().delete_scim_token(id).await?;
        tx.scim().delete_all().await?;
        tx.users().delete_all().await?;
        tx.service_accounts().delete_all().await?;
    }
    tx.audit()
        .record(&row(
            actor,
            AuditAction::TenantDeleted,
            Some(id),
            id,
            before.as_ref(),
            None,
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::TenantDeleted]).await
}

pub(super) fn domains(ctx: &AdminCtx) -> Result<Domains, OpError> {
    Ok(Domains::new(ctx.store.clone(), &ctx.config.dns)?)
}

pub(super) fn domain_view(d: &Domains, e: &DomainEntry) -> DomainView {
    let (record_name, record_value) = d.txt_record(e);
    DomainView {
        domain: e.domain.clone(),
        status: e.status.as_str().into(),
        record_name,
        record_value,
        detail: e.detail.clone(),
        last_checked_at: e.last_checked_at,
    }
}

pub async fn list_domains(ctx: &AdminCtx, id: &str) -> Result<Vec<DomainView>, OpError> {
    tenant(ctx, id)?;
    let d = domains(ctx)?;
    Ok(d.list(Some(id))
        .await?
        .iter()
        .map(|e| domain_view(&d, e))
        .collect())
}

/// Claims a domain for a store tenant and lists it there: the answer is
/// the TXT record to publish.
pub async fn add_domain(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    input: &DomainInput,
) -> Result<DomainView, OpError> {
    let ctx = cur.ctx();
    writable(&ctx, id)?;
    let d = domains(&ctx)?;
    let claim = d.new_claim(id, &input.domain, crate::clock::now())?;
    let mut tx = ctx.store.begin_config(id).await?;
    let within = within(&ctx, &mut tx).await?;
    let old = within
        .tenants
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or_else(|| OpError::NotFound(format!("no tenant `{id}`")))?;
    let mut doc = to_value(&old)?;
    if !old
        .domains
        .iter()
        .any(|x| x.eq_ignore_ascii_case(&claim.domain))
        && let Some(list) = doc.get_mut("domains").and_then(Value::as_array_mut)
    {
        list.push(Value::String(claim.domain.clone()));
    }
    let new = tenant_from_json(&doc, &within, Some(id), &probe).map_err(|errors| {
        // `domains[N]` is the one just added: name it as the input field.
        OpError::Invalid(
            errors
                .into_iter()
                .map(|e| match e.field.starts_with("domains[") {
                    true => FieldError::new("domain", e.message),
                    false => e,
                })
                .collect(),
        )
    })?;
    let entry = insert_claim(&mut tx, claim).await?;
    tx.tenants().put_tenant(id, &tenant_doc(&new)?).await?;
    audit_claim(actor, &mut tx, id, &entry.domain).await?;
    finish(cur, &ctx, tx, &[AuditAction::DomainAdded]).await?;
    Ok(domain_view(&d, &entry))
}

/// Stores `claim`: the existing claim of the same tenant, or the conflict
/// naming the domain's owner.
pub(super) async fn insert_claim(
    tx: &mut WriteTx,
    claim: DomainEntry,
) -> Result<DomainEntry, OpError> {
    match tx.domains().insert(&claim).await {
        Err(StoreError::Conflict { owner }) => Err(DomainError::Conflict {
            domain: claim.domain,
            owner,
        }
        .into()),
        other => Ok(other?),
    }
}

/// The audit event of a new claim of `domain` for tenant `id`.
pub(super) async fn audit_claim(
    actor: &Actor,
    tx: &mut WriteTx,
    id: &str,
    domain: &str,
) -> Result<(), OpError> {
    let after = json!({ "domain": domain });
    let event = row(
        actor,
        AuditAction::DomainAdded,
        Some(id),
        domain,
        None,
        Some(&after),
    );
    Ok(tx.audit().record(&event).await?)
}

/// Looks the record up now (outside the transaction) and writes the
/// outcome with its audit event. Allowed for file tenants too.
pub async fn verify_domain(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    domain: &str,
) -> Result<DomainView, OpError> {
    let ctx = cur.ctx();
    tenant(&ctx, id)?;
    let d = domains(&ctx)?;
    let domain = normalize_domain(domain)?;
    let entry = d
        .get(&domain)
        .await?
        .filter(|e| e.tenant == id)
        .ok_or_else(|| OpError::NotFound(format!("no domain `{domain}` for tenant `{id}`")))?;
    let check = d.next_check(&entry, crate::clock::now()).await;
    let mut tx = ctx.store.begin_write(id).await?;
    if !tx
        .domains()
        .update_check(&entry.domain, &entry.token, &check)
        .await?
    {
        return Err(OpError::Conflict(format!(
            "`{domain}` changed while it was checked; try again"
        )));
    }
    let after = json!({"status": check.status.as_str(), "detail": check.detail});
    tx.audit()
        .record(&row(
            actor,
            AuditAction::DomainChecked,
            Some(id),
            &domain,
            None,
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::DomainChecked]).await?;
    let entry = DomainEntry {
        status: check.status,
        last_checked_at: Some(check.last_checked_at),
        verified_at: check.verified_at,
        last_seen_at: check.last_seen_at,
        detail: check.detail,
        ..entry
    };
    Ok(domain_view(&d, &entry))
}

/// Releases a domain of a store tenant and unlists it.
pub async fn remove_domain(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    domain: &str,
) -> Result<(), OpError> {
    let ctx = cur.ctx();
    writable(&ctx, id)?;
    let domain = normalize_domain(domain)?;
    let mut tx = ctx.store.begin_config(id).await?;
    // The tenant as the transaction sees it, under the writers' lock: a
    // change committed since `ctx` was taken is kept, not overwritten.
    let old = stored_tenant(&ctx, &mut tx, id).await?;
    let claimed = tx.domains().delete(id, &domain).await?;
    let listed = old.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain));
    if !claimed && !listed {
        return Err(OpError::NotFound(format!(
            "no domain `{domain}` for tenant `{id}`"
        )));
    }
    let mut new = old;
    new.domains.retain(|d| !d.eq_ignore_ascii_case(&domain));
    tx.tenants().put_tenant(id, &tenant_doc(&new)?).await?;
    tx.audit()
        .record(&row(
            actor,
            AuditAction::DomainRemoved,
            Some(id),
            &domain,
            None,
            None,
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::DomainRemoved]).await
}

fn connection_view(ctx: &AdminCtx, tenant: &str, c: &ConnectionConfig) -> ConnectionView {
    let urls = ctx.config.public_urls();
    let mut shown = c.clone();
    for secret in secrets_mut(&mut shown) {
        if secret.is_some() {
            *secret = Some(REDACTED.into());
        }
    }
    if let Some(s) = shown.saml.as_mut()
        && let Some(xml) = s.idp_metadata_xml.as_mut()
    {
        *xml = format!(
            "sha256:{} ({} bytes)",
            &crate::secret::sha256_hex(xml.as_bytes())[..12],
            xml.len()
        );
    }
    let (saml, oidc) = (
        c.protocol == Some(Protocol::Saml),
        c.protocol == Some(Protocol::Oidc),
    );
    let saml_cfg = c.saml.as_ref();
    ConnectionView {
        tenant: tenant.to_owned(),
        sp_entity_id: saml.then(|| {
            saml_cfg
                .and_then(|s| s.sp_entity_id.clone())
                .unwrap_or_else(|| urls.saml_metadata(&c.id))
        }),
        acs_url: saml.then(|| {
            saml_cfg
                .and_then(|s| s.acs_url.clone())
                .unwrap_or_else(|| urls.saml_acs(&c.id))
        }),
        metadata_url: saml.then(|| urls.saml_metadata(&c.id)),
        redirect_uri: oidc.then(|| urls.oidc_callback(&c.id)),
        backchannel_logout_uri: oidc.then(|| urls.oidc_backchannel_logout(&c.id)),
        connection: shown,
    }
}

pub fn get_connection(ctx: &AdminCtx, id: &str, cid: &str) -> Result<ConnectionView, OpError> {
    let t = tenant(ctx, id)?;
    let c = t
        .connections
        .iter()
        .find(|c| c.id == cid)
        .ok_or_else(|| OpError::NotFound(format!("no connection `{cid}` in tenant `{id}`")))?;
    Ok(connection_view(ctx, id, c))
}

pub fn list_connections(ctx: &AdminCtx, id: &str) -> Result<Vec<ConnectionView>, OpError> {
    let t = tenant(ctx, id)?;
    Ok(t.connections
        .iter()
        .map(|c| connection_view(ctx, id, c))
        .collect())
}

/// Adds (or, with `replacing`, changes) a connection of a store tenant;
/// a change ends the connection's sessions in the same transaction.
pub async fn put_connection(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    replacing: Option<&str>,
    body: &Value,
) -> Result<ConnectionView, OpError> {
    let ctx = cur.ctx();
    writable(&ctx, id)?;
    let mut tx = ctx.store.begin_config(id).await?;
    let within = within(&ctx, &mut tx).await?;
    let t = within
        .tenants
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or_else(|| OpError::NotFound(format!("no tenant `{id}`")))?;
    let (body, before) = match replacing {
        Some(cid) => {
            let old = t.connections.iter().find(|c| c.id == cid).ok_or_else(|| {
                OpError::NotFound(format!("no connection `{cid}` in tenant `{id}`"))
            })?;
            let mut doc = to_value(old)?;
            let mut patch = body.clone();
            keep_redacted_secrets(&mut patch);
            merge_patch(&mut doc, &patch);
            if doc.get("id").and_then(Value::as_str) != Some(cid) {
                return Err(invalid("id", "a connection's id can't change"));
            }
            (doc, Some(to_value(old)?))
        }
        None => (body.clone(), None),
    };
    let (new_tenant, conn) = connection_from_json(&body, &t, &within, replacing, &probe)
        .map_err(|e| refused_document(&ctx, id, e))?;
    let position = new_tenant
        .connections
        .iter()
        .position(|c| c.id == conn.id)
        .unwrap_or(0);
    tx.tenants()
        .put_connection(id, position as i64, &conn.id, &to_value(&conn)?)
        .await?;
    let action = match replacing {
        Some(cid) => {
            tx.sessions()
                .revoke(&SessionSelector::Connection(cid.to_owned()))
                .await?;
            AuditAction::ConnectionUpdated
        }
        None => AuditAction::ConnectionCreated,
    };
    let after = to_value(&conn)?;
    tx.audit()
        .record(&row(
            actor,
            action,
            Some(id),
            &conn.id,
            before.as_ref(),
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[action]).await?;
    Ok(connection_view(&ctx, id, &conn))
}

/// Deletes a connection of a store tenant and ends its sessions.
pub async fn delete_connection(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    cid: &str,
) -> Result<(), OpError> {
    let ctx = cur.ctx();
    writable(&ctx, id)?;
    let mut tx = ctx.store.begin_config(id).await?;
    let before = stored_tenant(&ctx, &mut tx, id)
        .await?
        .connections
        .iter()
        .find(|c| c.id == cid)
        .map(to_value)
        .transpose()?;
    if !tx.tenants().delete_connection(id, cid).await? {
        return Err(OpError::NotFound(format!(
            "no connection `{cid}` in tenant `{id}`"
        )));
    }
    tx.sessions()
        .revoke(&SessionSelector::Connection(cid.to_owned()))
        .await?;
    tx.audit()
        .record(&row(
            actor,
            AuditAction::ConnectionDeleted,
            Some(id),
            cid,
            before.as_ref(),
            None,
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::ConnectionDeleted]).await
}

/// A one-time test sign-in URL for a connection (file tenants too).
pub fn test_link(ctx: &AdminCtx, id: &str, cid: &str) -> Result<Link, OpError> {
    get_connection(ctx, id, cid)?;
    let (url, expires_at) = crate::auth::TestLinks::new(&ctx.config.session)
        .url(&ctx.config.public_urls(), cid, crate::clock::now())
        .ok_or_else(|| OpError::Internal("could not create a test link".into()))?;
    Ok(Link { url, expires_at })
}

/// Replaces the tenant's SCIM token (file tenants too); shown once.
pub async fn rotate_scim_token(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
) -> Result<ScimCredentials, OpError> {
    let ctx = cur.ctx();
    tenant(&ctx, id)?;
    let new = crate::scim::token::generate()
        .map_err(|_| OpError::Internal("no randomness available".into()))?;
    let mut tx = ctx.store.begin_write(id).await?;
    tx.credentials()
        .scim_token(id, &new.key_id, &new.hash, crate::clock::now())
        .await?;
    let after = json!({"key_id": new.key_id});
    tx.audit()
        .record(&row(
            actor,
            AuditAction::ScimTokenRotated,
            Some(id),
            id,
            None,
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::ScimTokenRotated]).await?;
    Ok(ScimCredentials {
        base_url: ctx.config.public_urls().scim_base(&ctx.config.scim),
        token: new.token,
    })
}

/// Deletes the tenant's SCIM token: the IdP's provisioning stops at once
/// (its next call is a 401). Users and groups SCIM made stay. Whether
/// there was a token; nothing is audited when there was none.
pub async fn revoke_scim_token(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
) -> Result<bool, OpError> {
    let ctx = cur.ctx();
    tenant(&ctx, id)?;
    let mut tx = ctx.store.begin_write(id).await?;
    if !tx.credentials().delete_scim_token(id).await? {
        return Ok(false);
    }
    tx.audit()
        .record(&row(
            actor,
            AuditAction::ScimTokenRevoked,
            Some(id),
            id,
            None,
            None,
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::ScimTokenRevoked]).await?;
    Ok(true)
}

pub async fn list_users(ctx: &AdminCtx, id: &str) -> Result<Vec<UserView>, OpError> {
    tenant(ctx, id)?;
    Ok(ctx
        .store
        .users()
        .list(Some(id))
        .await?
        .into_iter()
        .map(|u| UserView {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            source: u.source,
            active: u.active,
            last_login_at: u.last_login_at,
        })
        .collect())
}

/// The newest 1000 sessions of a tenant.
pub async fn list_sessions(ctx: &AdminCtx, id: &str) -> Result<Vec<SessionView>, OpError> {
    tenant(ctx, id)?;
    Ok(ctx
        .store
        .sessions()
        .list_tenant(id, 1000)
        .await?
        .into_iter()
        .map(|s| SessionView {
            id: s.id_hash,
            user_id: s.user_id,
            email: s.email,
            connection: s.connection,
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_seen_at: s.last_seen_at,
        })
        .collect())
}

/// Ends one session of the tenant (by id hash) or all of them; returns how
/// many ended. A session of another tenant is "not found".
pub async fn revoke_sessions(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    session: Option<&str>,
) -> Result<u64, OpError> {
    let ctx = cur.ctx();
    tenant(&ctx, id)?;
    let selector = match session {
        Some(sid) => {
            let found = ctx.store.sessions().get(sid).await?;
            if found.is_none_or(|s| s.tenant.as_deref() != Some(id)) {
                return Err(OpError::NotFound(format!(
                    "no session `{sid}` in tenant `{id}`"
                )));
            }
            SessionSelector::Id(sid.to_owned())
        }
        None => SessionSelector::Tenant(id.to_owned()),
    };
    let mut tx = ctx.store.begin_write(id).await?;
    let n = tx.sessions().revoke(&selector).await?;
    let target = session.unwrap_or("all");
    let after = json!({"revoked": n});
    tx.audit()
        .record(&row(
            actor,
            AuditAction::SessionsRevoked,
            Some(id),
            target,
            None,
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::SessionsRevoked]).await?;
    Ok(n)
}

pub const INTENTS: &[&str] = &["domain", "sso", "scim", "enforce", "roles"];

/// A setup link for a store tenant's IT admin: the portal
/// (`admin::portal`) redeems it once.
pub async fn create_setup_link(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    input: &SetupLinkInput,
) -> Result<Link, OpError> {
    let ctx = cur.ctx();
    writable(&ctx, id)?;
    let mut errors = Vec::new();
    if input.intents.is_empty() {
        errors.push(FieldError::new("intents", "list at least one intent"));
    }
    for (i, intent) in input.intents.iter().enumerate() {
        if !INTENTS.contains(&intent.as_str()) {
            errors.push(FieldError::new(
                format!("intents[{i}]"),
                format!(
                    "unknown intent `{intent}`, expected one of {}",
                    INTENTS.join(", ")
                ),
            ));
        }
    }
    if !(300..=604_800).contains(&input.ttl_seconds) {
        errors.push(FieldError::new(
            "ttl_seconds",
            "must be between 300 and 604800",
        ));
    }
    if !errors.is_empty() {
        return Err(OpError::Invalid(errors));
    }
    let rand = |n| -> Result<String, OpError> {
        let bytes = crate::secret::random_bytes::<32>()
            .map_err(|_| OpError::Internal("no randomness available".into()))?;
        Ok(hex::encode(&bytes[..n]))
    };
    let link_id = rand(8)?;
    let token = format!("psl_{link_id}_{}", rand(32)?);
    let now = crate::clock::now();
    let link = SetupLinkRow {
        id: link_id.clone(),
        tenant: id.to_owned(),
        token_hash: crate::secret::sha256_hex(token.as_bytes()),
        intents: serde_json::to_string(&input.intents)
            .map_err(|e| OpError::Internal(e.to_string()))?,
        created_by: format!("{}:{}", actor.kind(), actor.name()),
        created_at: now,
        expires_at: now + input.ttl_seconds,
        used_at: None,
        revoked_at: None,
    };
    let mut tx = ctx.store.begin_write(id).await?;
    tx.setup_links().insert(&link).await?;
    let after = json!({"id": link_id, "intents": input.intents, "expires_at": link.expires_at});
    tx.audit()
        .record(&row(
            actor,
            AuditAction::SetupLinkCreated,
            Some(id),
            &link_id,
            None,
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::SetupLinkCreated]).await?;
    let urls = ctx.config.public_urls();
    Ok(Link {
        url: format!("{}{}setup/{token}", urls.origin(), urls.prefix()),
        expires_at: link.expires_at,
    })
}

/// What a setup link grants once redeemed: one tenant, some intents, until
/// the link's own expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupGrant {
    pub link: String,
    pub tenant: String,
    pub intents: Vec<String>,
    pub expires_at: i64,
}

/// Why a setup link did not open the portal; each says so on its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupLinkRefusal {
    /// Malformed, never issued, or not this token (a wrong secret part).
    Unknown,
    Expired,
    Used,
    /// Revoked (its tenant was deleted).
    Revoked,
}

/// The link id inside a well-formed token (`psl_{16 hex}_{64 hex}`).
fn setup_link_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("psl_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some(id)
}

/// Redeems a setup link: checks the token against its stored hash (in
/// constant time), then marks it used with its audit event in one
/// transaction, so of two browsers racing with one link exactly one gets
/// in.
pub async fn redeem_setup_link(
    cur: &dyn Current,
    token: &str,
) -> Result<Result<SetupGrant, SetupLinkRefusal>, OpError> {
    let ctx = cur.ctx();
    let Some(id) = setup_link_id(token) else {
        return Ok(Err(SetupLinkRefusal::Unknown));
    };
    let Some(link) = ctx.store.setup_links().get(id).await? else {
        return Ok(Err(SetupLinkRefusal::Unknown));
    };
    let hash = crate::secret::sha256_hex(token.as_bytes());
    if !crate::secret::constant_time_eq(hash.as_bytes(), link.token_hash.as_bytes()) {
        return Ok(Err(SetupLinkRefusal::Unknown));
    }
    let now = crate::clock::now();
    if link.revoked_at.is_some() {
        return Ok(Err(SetupLinkRefusal::Revoked));
    }
    if link.used_at.is_some() {
        return Ok(Err(SetupLinkRefusal::Used));
    }
    if link.expires_at <= now {
        return Ok(Err(SetupLinkRefusal::Expired));
    }
    let intents: Vec<String> = serde_json::from_str(&link.intents)
        .map_err(|e| OpError::Internal(format!("setup link intents: {e}")))?;
    let mut tx = ctx.store.begin_write(&link.tenant).await?;
    if !tx.setup_links().redeem(id, now).await? {
        // Used (or revoked) between the read and the write.
        return Ok(Err(SetupLinkRefusal::Used));
    }
    let actor = Actor::SetupLink { id: id.to_owned() };
    let after = json!({"id": id, "intents": intents});
    tx.audit()
        .record(&row(
            &actor,
            AuditAction::SetupLinkUsed,
            Some(&link.tenant),
            id,
            None,
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::SetupLinkUsed]).await?;
    Ok(Ok(SetupGrant {
        link: id.to_owned(),
        tenant: link.tenant,
        intents,
        expires_at: link.expires_at,
    }))
}

/// Whether a redeemed link still carries its portal session: not revoked,
/// not expired, its tenant still there.
pub async fn setup_grant_active(ctx: &AdminCtx, grant: &SetupGrant) -> Result<bool, OpError> {
    let Some(link) = ctx.store.setup_links().get(&grant.link).await? else {
        return Ok(false);
    };
    Ok(link.revoked_at.is_none()
        && link.tenant == grant.tenant
        && link.expires_at > crate::clock::now()
        && ctx.config.tenants.iter().any(|t| t.id == grant.tenant))
}

/// Resets a store tenant's SSO: every connection is deleted and every
/// session of the tenant ends, in one transaction.
pub async fn reset_sso(cur: &dyn Current, actor: &Actor, id: &str) -> Result<u64, OpError> {
    let ctx = cur.ctx();
    writable(&ctx, id)?;
    let mut tx = ctx.store.begin_config(id).await?;
    let t = stored_tenant(&ctx, &mut tx, id).await?;
    let mut actions = Vec::new();
    for c in &t.connections {
        if tx.tenants().delete_connection(id, &c.id).await? {
            let before = to_value(c)?;
            tx.audit()
                .record(&row(
                    actor,
                    AuditAction::ConnectionDeleted,
                    Some(id),
                    &c.id,
                    Some(&before),
                    None,
                ))
                .await?;
            actions.push(AuditAction::ConnectionDeleted);
        }
    }
    let n = tx
        .sessions()
        .revoke(&SessionSelector::Tenant(id.to_owned()))
        .await?;
    let after = json!({"revoked": n, "reason": "sso reset"});
    tx.audit()
        .record(&row(
            actor,
            AuditAction::SessionsRevoked,
            Some(id),
            "all",
            None,
            Some(&after),
        ))
        .await?;
    actions.push(AuditAction::SessionsRevoked);
    finish(cur, &ctx, tx, &actions).await?;
    Ok(n)
}

pub async fn audit_page(
    ctx: &AdminCtx,
    tenant: Option<&str>,
    before: Option<i64>,
    limit: Option<i64>,
) -> Result<AuditPage, OpError> {
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let rows = ctx.store.audit().list(tenant, before, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(AuditPage {
        events: rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.id,
                at_ms: r.at_ms,
                tenant: r.tenant,
                actor_kind: r.actor_kind,
                actor: r.actor,
                action: r.action,
                target: r.target,
                before: parse(r.before_json),
                after: parse(r.after_json),
            })
            .collect(),
        next,
    })
}

/// RFC 7396: objects merge key by key, `null` removes, anything else
/// replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// A secret sent back as [`REDACTED`] (read, edited, written) means
/// "unchanged": drop it from the patch.
fn keep_redacted_secrets(patch: &mut Value) {
    for (table, key) in CONNECTION_SECRETS {
        if let Some(o) = patch.get_mut(*table).and_then(Value::as_object_mut)
            && o.get(*key).is_some_and(|v| v == REDACTED)
        {
            o.remove(*key);
        }
    }
}

/// Every secret a connection carries, `(table, key)`: the API answers
/// them as [`REDACTED`] and reads [`REDACTED`] sent back as "unchanged".
/// (Audit documents redact these keys wherever they are: `audit::redact`.)
const CONNECTION_SECRETS: &[(&str, &str)] = &[
    ("oidc", "client_secret"),
    ("oidc", "private_key"),
    ("graph", "client_secret"),
];

/// The fields of [`CONNECTION_SECRETS`] in `c`.
fn secrets_mut(c: &mut ConnectionConfig) -> Vec<&mut Option<String>> {
    let mut all = Vec::new();
    if let Some(o) = c.oidc.as_mut() {
        all.extend([&mut o.client_secret, &mut o.private_key]);
    }
    if let Some(g) = c.graph.as_mut() {
        all.push(&mut g.client_secret);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_link_tokens_have_one_shape() {
        let id = "0123456789abcdef";
        let good = format!("psl_{id}_{}", "a".repeat(64));
        assert_eq!(setup_link_id(&good), Some(id));
        for bad in [
            String::new(),
            "psl_".into(),
            format!("psl_{id}"),
            format!("psl_{id}_{}", "a".repeat(63)),
            format!("psl_{id}_{}", "g".repeat(64)),
            format!("pat_{id}_{}", "a".repeat(64)),
            format!("psl_{id}_{}_x", "a".repeat(64)),
            format!("psl_../../etc_{}", "a".repeat(64)),
        ] {
            assert_eq!(setup_link_id(&bad), None, "{bad}");
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut doc,
            &json!({"a": null, "b": {"c": 5}, "e": [2], "f": "x"}),
        );
        assert_eq!(doc, json!({"b": {"c": 5, "d": 3}, "e": [2], "f": "x"}));
        let mut p = json!({"oidc": {"client_secret": REDACTED, "client_id": "n"}});
        keep_redacted_secrets(&mut p);
        assert_eq!(p, json!({"oidc": {"client_id": "n"}}));
    }

    /// `secrets_mut` and `CONNECTION_SECRETS` name the same fields, and
    /// the audit's `redact` hides each of them too.
    #[test]
    fn every_connection_secret_is_redacted_everywhere() {
        let mut c: ConnectionConfig = serde_json::from_value(json!({"id": "c",
            "protocol": "oidc", "oidc": {"issuer": "https://i.example", "client_id": "id",
                "client_secret": "s1", "private_key": "s2"},
            "graph": {"client_secret": "s3"}}))
        .unwrap();
        let secrets: Vec<String> = secrets_mut(&mut c)
            .into_iter()
            .filter_map(|s| s.clone())
            .collect();
        assert_eq!(secrets, ["s1", "s2", "s3"]);
        let doc = to_value(&c).unwrap();
        for (table, key) in CONNECTION_SECRETS {
            assert!(doc[table][key].is_string(), "{table}.{key}");
        }
        assert_eq!(CONNECTION_SECRETS.len(), secrets.len());
        let audited = super::super::audit::redact(&doc).to_string();
        for s in &secrets {
            assert!(!audited.contains(&format!("\"{s}\"")), "{s} in {audited}");
        }
        let mut patch = doc.clone();
        for (table, key) in CONNECTION_SECRETS {
            patch[table][key] = json!(REDACTED);
        }
        keep_redacted_secrets(&mut patch);
        for (table, key) in CONNECTION_SECRETS {
            assert!(patch[table].get(key).is_none(), "{table}.{key}");
        }
    }
}
