//! Service accounts of a tenant (machine callers): create, list, rotate,
//! revoke. Shared by the admin API and the CLI, which both pass an
//! [`AdminCtx`] and an [`Actor`]; each change runs in one store transaction
//! with its audit event, and a rotation or revocation is announced to every
//! process and replica in that transaction (their token caches drop the
//! account) and applied to this process' cache before the answer.
//!
//! No configuration is rebuilt: accounts are credentials, not settings.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::audit::{Actor, AuditAction, row};
use super::ops::{AdminCtx, OpError};
use crate::config::FieldError;
use crate::session::{generate_token, new_account_id};
use crate::store::{ServiceAccountKeyRow, ServiceAccountRow, WriteTx};

/// How long a rotated-out token keeps working by default.
pub const DEFAULT_OVERLAP_SECONDS: i64 = 86_400;
/// The longest overlap a rotation may ask for (30 days).
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 86_400;
/// The longest lifetime an account may be given (10 years).
pub const MAX_EXPIRES_DAYS: i64 = 3650;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountInput {
    /// Unique among the tenant's active accounts; 1 to 64 characters.
    pub name: String,
    /// The role its requests carry (routes' `allowed_roles` apply).
    #[serde(default)]
    pub role: Option<String>,
    /// Days until the account (every token of it) stops working; none by
    /// default. 1 to 3650.
    #[serde(default)]
    pub expires_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// Seconds the previous token keeps working beside the new one;
    /// default 86400, 0 ends it at once, at most 2592000.
    #[serde(default)]
    pub overlap_seconds: Option<i64>,
}

/// One token of an account, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub key_id: String,
    pub created_at: i64,
    /// Set by a rotation: when this token stops working.
    pub retires_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountView {
    /// The subject requests of this account carry (`X-Forwarded-User`).
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub role: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// Tokens that work or worked, oldest first.
    pub keys: Vec<KeyView>,
}

/// A new token: shown once; the store keeps only its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountToken {
    pub account: ServiceAccountView,
    /// `Authorization: Bearer <token>`. Shown once.
    pub token: String,
}

impl ServiceAccountView {
    fn of(a: &ServiceAccountRow, keys: &[ServiceAccountKeyRow], now: i64) -> Self {
        let status = if a.revoked_at.is_some() {
            "revoked"
        } else if a.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: a.id.clone(),
            tenant: a.tenant.clone(),
            name: a.name.clone(),
            role: a.role.clone(),
            status: status.into(),
            created_by: a.created_by.clone(),
            created_at: a.created_at,
            expires_at: a.expires_at,
            revoked_at: a.revoked_at,
            last_used_at: a.last_used_at,
            keys: keys
                .iter()
                .filter(|k| k.retires_at.is_none_or(|r| r > now) || a.revoked_at.is_some())
                .map(|k| KeyView {
                    key_id: k.key_id.clone(),
                    created_at: k.created_at,
                    retires_at: k.retires_at,
                })
                .collect(),
        }
    }
}

fn known_tenant(ctx: &AdminCtx, id: &str) -> Result<(), OpError> {
    if ctx.config.tenants.iter().any(|t| t.id == id) {
        Ok(())
    } else {
        Err(OpError::NotFound(format!("no tenant `{id}`")))
    }
}

fn text_error(field: &str, v: &str) -> Option<FieldError> {
    (v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control)).then(|| {
        FieldError::new(
            field,
            "must be 1 to 64 characters without control characters",
        )
    })
}

fn no_randomness<E>(_: E) -> OpError {
    OpError::Internal("no randomness available".into())
}

/// Commits, applies the change to this process' token cache, counts it.
async fn finish(
    ctx: &AdminCtx,
    tx: WriteTx,
    account: &str,
    action: AuditAction,
) -> Result<(), OpError> {
    tx.commit().await?;
    ctx.sessions.service_accounts().invalidate_account(account);
    ctx.metrics
        .admin
        .changes
        .with_label_values(&[action.label()])
        .inc();
    Ok(())
}

/// The audit document of an account (never a token).
fn audit_doc(a: &ServiceAccountRow, key_id: &str) -> serde_json::Value {
    json!({"id": a.id, "name": a.name, "role": a.role, "expires_at": a.expires_at,
        "key_id": key_id})
}

/// Creates an account and its first token (shown once).
pub async fn create(
    ctx: &AdminCtx,
    actor: &Actor,
    tenant: &str,
    input: &ServiceAccountInput,
) -> Result<ServiceAccountToken, OpError> {
    known_tenant(ctx, tenant)?;
    let mut errors: Vec<FieldError> = text_error("name", &input.name).into_iter().collect();
    if let Some(r) = &input.role {
        errors.extend(text_error("role", r));
    }
    if input
        .expires_days
        .is_some_and(|d| !(1..=MAX_EXPIRES_DAYS).contains(&d))
    {
        errors.push(FieldError::new(
            "expires_days",
            format!("must be between 1 and {MAX_EXPIRES_DAYS}"),
        ));
    }
    if !errors.is_empty() {
        return Err(OpError::Invalid(errors));
    }
    let now = crate::clock::now();
    let new = generate_token().map_err(no_randomness)?;
    let account = ServiceAccountRow {
        id: new_account_id().map_err(no_randomness)?,
        tenant: tenant.to_owned(),
        name: input.name.clone(),
        role: input.role.clone(),
        created_by: format!("{}:{}", actor.kind(), actor.name()),
        created_at: now,
        expires_at: input.expires_days.map(|d| now + d * 86_400),
        revoked_at: None,
        last_used_at: None,
    };
    let key = ServiceAccountKeyRow {
        key_id: new.key_id.clone(),
        account_id: account.id.clone(),
        secret_hash: new.hash,
        created_at: now,
        retires_at: None,
    };
    let mut tx = ctx.store.begin_write(tenant).await?;
    tx.service_accounts().create(&account, &key).await?;
    let action = AuditAction::ServiceAccountCreated;
    let after = audit_doc(&account, &key.key_id);
    tx.audit()
        .record(&row(
            actor,
            action,
            Some(tenant),
            &account.name,
            None,
            Some(&after),
        ))
        .await?;
    finish(ctx, tx, &account.id, action).await?;
    Ok(ServiceAccountToken {
        account: ServiceAccountView::of(&account, &[key], now),
        token: new.token,
    })
}

/// The tenant's accounts, revoked ones included, oldest first.
pub async fn list(ctx: &AdminCtx, tenant: &str) -> Result<Vec<ServiceAccountView>, OpError> {
    known_tenant(ctx, tenant)?;
    let now = crate::clock::now();
    Ok(ctx
        .store
        .service_accounts()
        .list(tenant)
        .await?
        .iter()
        .map(|(a, keys)| ServiceAccountView::of(a, keys, now))
        .collect())
}

/// A new token for the active account `name`; the previous ones keep
/// working for the overlap (default a day), then stop.
pub async fn rotate(
    ctx: &AdminCtx,
    actor: &Actor,
    tenant: &str,
    name: &str,
    input: &RotateInput,
) -> Result<ServiceAccountToken, OpError> {
    known_tenant(ctx, tenant)?;
    let overlap = input.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        return Err(OpError::Invalid(vec![FieldError::new(
            "overlap_seconds",
            format!("must be between 0 and {MAX_OVERLAP_SECONDS}"),
        )]));
    }
    let now = crate::clock::now();
    let mut tx = ctx.store.begin_write(tenant).await?;
    let account = active(&mut tx, tenant, name).await?;
    if account.expires_at.is_some_and(|e| e <= now) {
        return Err(OpError::Conflict(format!(
            "service account `{name}` has expired; create a new one"
        )));
    }
    let new = generate_token().map_err(no_randomness)?;
    let key = ServiceAccountKeyRow {
        key_id: new.key_id.clone(),
        account_id: account.id.clone(),
        secret_hash: new.hash,
        created_at: now,
        retires_at: None,
    };
    tx.service_accounts()
        .rotate(&key, now + overlap, now)
        .await?;
    let action = AuditAction::ServiceAccountRotated;
    let mut after = audit_doc(&account, &key.key_id);
    after["overlap_seconds"] = json!(overlap);
    tx.audit()
        .record(&row(actor, action, Some(tenant), name, None, Some(&after)))
        .await?;
    finish(ctx, tx, &account.id, action).await?;
    let (account, keys) = ctx
        .store
        .service_accounts()
        .list(tenant)
        .await?
        .into_iter()
        .find(|(a, _)| a.id == account.id)
        .ok_or_else(|| OpError::Internal("the rotated account vanished".into()))?;
    Ok(ServiceAccountToken {
        account: ServiceAccountView::of(&account, &keys, now),
        token: new.token,
    })
}

/// Revokes the active account `name`: every token stops at once, on every
/// replica.
pub async fn revoke(
    ctx: &AdminCtx,
    actor: &Actor,
    tenant: &str,
    name: &str,
) -> Result<(), OpError> {
    known_tenant(ctx, tenant)?;
    let now = crate::clock::now();
    let mut tx = ctx.store.begin_write(tenant).await?;
    let account = active(&mut tx, tenant, name).await?;
    if !tx.service_accounts().revoke(&account.id, now).await? {
        return Err(not_found(tenant, name));
    }
    let action = AuditAction::ServiceAccountRevoked;
    let before = json!({"id": account.id, "name": account.name, "role": account.role});
    tx.audit()
        .record(&row(actor, action, Some(tenant), name, Some(&before), None))
        .await?;
    finish(ctx, tx, &account.id, action).await
}

async fn active(tx: &mut WriteTx, tenant: &str, name: &str) -> Result<ServiceAccountRow, OpError> {
    tx.service_accounts()
        .active(tenant, name)
        .await?
        .ok_or_else(|| not_found(tenant, name))
}

fn not_found(tenant: &str, name: &str) -> OpError {
    OpError::NotFound(format!(
        "no active service account `{name}` in tenant `{tenant}`"
    ))
}
