//! The changes only the operator's command line makes, beside the API's
//! (`ops`): they reach file tenants too (claiming a domain the file lists,
//! releasing any claim, removing a user) or no single tenant (ending a
//! user's sessions, or everyone's). Each runs in one store transaction with
//! its audit event and is counted after the commit, exactly like `ops`;
//! the CLI runs them with the actor `cli`.

use serde_json::json;

use super::audit::{Actor, AuditAction, row};
use super::ops::{
    self, AdminCtx, Current, DomainView, OpError, audit_claim, committed, domain_view, domains,
    finish, insert_claim, tenant,
};
use crate::config::{FieldError, Origin};
use crate::domains::{DomainError, normalize_domain};
use crate::store::SessionSelector;

/// Claims `domain` for tenant `id`, which must list it (the file or the
/// tenant's document stays the one description of who may own what).
/// Claiming it again returns the same record (same token) and audits
/// nothing.
pub async fn claim_listed_domain(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    domain: &str,
) -> Result<DomainView, OpError> {
    let ctx = cur.ctx();
    let t = tenant(&ctx, id)?;
    let d = domains(&ctx)?;
    let claim = d.new_claim(id, domain, crate::clock::now())?;
    if !t
        .domains
        .iter()
        .any(|x| x.eq_ignore_ascii_case(&claim.domain))
    {
        let refusal = DomainError::NotInConfig {
            tenant: id.to_owned(),
            domain: claim.domain,
        };
        return Err(OpError::Invalid(vec![FieldError::new(
            "domain",
            refusal.to_string(),
        )]));
    }
    let mut tx = ctx.store.begin_write(id).await?;
    let token = claim.token.clone();
    let entry = insert_claim(&mut tx, claim).await?;
    if entry.token == token {
        audit_claim(actor, &mut tx, id, &entry.domain).await?;
        finish(cur, &ctx, tx, &[AuditAction::DomainAdded]).await?;
    }
    Ok(domain_view(&d, &entry))
}

/// The tenant holding a claim of `domain`.
async fn claimant(ctx: &AdminCtx, domain: &str) -> Result<(String, String), OpError> {
    let domain = normalize_domain(domain)?;
    let entry = domains(ctx)?
        .get(&domain)
        .await?
        .ok_or_else(|| OpError::from(DomainError::NotFound(domain.clone())))?;
    Ok((entry.tenant, domain))
}

/// Checks the TXT record of a claimed domain now, whoever holds it.
pub async fn verify_claim(
    cur: &dyn Current,
    actor: &Actor,
    domain: &str,
) -> Result<DomainView, OpError> {
    let (owner, domain) = claimant(&cur.ctx(), domain).await?;
    ops::verify_domain(cur, actor, &owner, &domain).await
}

/// Releases a claim, whoever holds it: a store tenant also stops listing
/// the domain (`ops::remove_domain`); a file tenant's list is the file's.
pub async fn release_claim(cur: &dyn Current, actor: &Actor, domain: &str) -> Result<(), OpError> {
    let ctx = cur.ctx();
    let (owner, domain) = claimant(&ctx, domain).await?;
    if tenant(&ctx, &owner).is_ok_and(|t| t.origin == Origin::Store) {
        return ops::remove_domain(cur, actor, &owner, &domain).await;
    }
    let mut tx = ctx.store.begin_write(&owner).await?;
    if !tx.domains().delete(&owner, &domain).await? {
        return Err(DomainError::NotFound(domain).into());
    }
    tx.audit()
        .record(&row(
            actor,
            AuditAction::DomainRemoved,
            Some(&owner),
            &domain,
            None,
            None,
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::DomainRemoved]).await
}

/// Removes the user with `email` from tenant `id` and ends their sessions;
/// how many ended.
pub async fn remove_user(
    cur: &dyn Current,
    actor: &Actor,
    id: &str,
    email: &str,
) -> Result<u64, OpError> {
    let ctx = cur.ctx();
    let mut tx = ctx.store.begin_write(id).await?;
    let Some(user) = tx.users().delete_email(email).await? else {
        return Err(OpError::NotFound(format!("{email} is not a user of {id}")));
    };
    let n = tx
        .sessions()
        .revoke(&SessionSelector::User(user.id.clone()))
        .await?;
    let before =
        json!({"id": user.id, "email": user.email, "role": user.role, "source": user.source});
    let after = json!({"sessions_revoked": n});
    tx.audit()
        .record(&row(
            actor,
            AuditAction::UserRemoved,
            Some(id),
            &user.email,
            Some(&before),
            Some(&after),
        ))
        .await?;
    finish(cur, &ctx, tx, &[AuditAction::UserRemoved]).await?;
    Ok(n)
}

/// Ends the sessions `selector` names (a tenant's, a connection's, a
/// user's, or all); how many ended. The event names the tenant when the
/// selector has one.
pub async fn revoke_sessions(
    cur: &dyn Current,
    actor: &Actor,
    selector: &SessionSelector,
) -> Result<u64, OpError> {
    let ctx = cur.ctx();
    let owner = |cid: &str| {
        ctx.config
            .tenants
            .iter()
            .find(|t| t.connections.iter().any(|c| c.id == cid))
            .map(|t| t.id.clone())
    };
    let (tenant, target) = match selector {
        SessionSelector::Tenant(t) => (Some(t.clone()), "all".to_owned()),
        SessionSelector::Connection(c) => (owner(c), format!("connection:{c}")),
        SessionSelector::User(u) => (None, format!("user:{u}")),
        SessionSelector::All => (None, "everyone".to_owned()),
        _ => return Err(OpError::Internal("not a selector of the CLI".into())),
    };
    let action = AuditAction::SessionsRevoked;
    let n = ctx
        .store
        .sessions()
        .revoke_audited(selector, |n| {
            let after = json!({"revoked": n});
            row(
                actor,
                action,
                tenant.as_deref(),
                &target,
                None,
                Some(&after),
            )
        })
        .await?;
    committed(&ctx, std::slice::from_ref(selector), &[action]).await;
    Ok(n)
}
