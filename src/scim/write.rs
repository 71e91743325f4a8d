//! SCIM writes: create, replace (PUT), patch, delete, and the batch of
//! user creates Bulk uses. Each keeps the login identity (`users` row) in
//! step with the SCIM document, ends the sessions of users it deactivates
//! or deletes, and emits the webhook events of what it changed.
//!
//! The rule: a write happens inside one [`WriteTx`], its events emitted
//! into that same transaction; each operation has an `*_in` form that takes
//! the caller's transaction, and the plain form only opens, commits and
//! answers. The reasons: a change and its events commit or vanish together
//! (the app never hears of a write that rolled back, nor misses one that
//! committed); the tenant's writers are serialised from the transaction's
//! first statement, so checks made inside it still hold at commit; and Bulk
//! runs the very same operations, many to a transaction.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::directory;
use super::emails::TenantEmails;
use super::error::ScimError;
use super::events;
use super::patch::{self, MemberChange};
use super::resource::{self, Mode, Normalized, Projection};
use super::schema::Kind;
use super::service::{Scim, not_found};
use super::wire::{check_if_match, clip};
use crate::events::EventType;
use crate::store::{ScimKind, ScimMember, ScimRow, SessionSelector, StoreError, WriteTx};

impl Scim {
    /// The tenant's domains for a write of `kind` (users only: groups have
    /// no addresses, so their writes skip the store read).
    pub async fn tenant_emails(&self, tenant: &str, kind: Kind) -> Result<TenantEmails, ScimError> {
        if kind == Kind::Group {
            return Ok(TenantEmails::default());
        }
        let cfg = self.config.tenants.iter().find(|t| t.id == tenant);
        Ok(TenantEmails::load(&self.store, tenant, cfg).await?)
    }

    /// The role a login created here gets: the tenant's JIT default, so a
    /// provisioned person starts with the role of one admitted at first
    /// sign-in.
    fn default_role(&self, tenant: &str) -> Option<String> {
        self.config
            .tenants
            .iter()
            .find(|t| t.id == tenant)
            .and_then(|t| t.jit.default_role.clone())
    }

    /// Drops this process' cached sessions of deprovisioned users at once
    /// (other replicas learn through the store's events).
    pub async fn after_commit(&self, revoked: Vec<SessionSelector>) {
        for selector in revoked {
            self.sessions.invalidate(&selector).await;
            self.metrics
                .sessions_revoked
                .with_label_values(&["user"])
                .inc();
        }
    }

    /// One write request around `op`: the tenant's domains are read before
    /// the transaction (not under the tenant's write lock), the address
    /// verdicts are counted whether or not `op` succeeded (refusals are what
    /// the metric is for), and after the commit this process' cached
    /// sessions of deprovisioned users are dropped before the caller
    /// answers, so the next request of such a user is refused here too.
    async fn in_write<T>(
        &self,
        tenant: &str,
        kind: Kind,
        op: impl AsyncFnOnce(&mut WriteTx, &TenantEmails) -> Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        let emails = self.tenant_emails(tenant, kind).await?;
        let mut tx = self.store.begin_write(tenant).await?;
        let done = op(&mut tx, &emails).await;
        emails.report(&self.metrics);
        let out = done?;
        self.commit(tx).await?;
        Ok(out)
    }

    /// The answer to a create or replace: the whole resource as stored
    /// and its version for the `ETag` (the HTTP layer applies the request's
    /// projection).
    async fn written(&self, kind: Kind, row: &ScimRow) -> Result<(Value, i64), ScimError> {
        Ok((
            self.render(kind, row, &Projection::default()).await?,
            row.version,
        ))
    }

    /// POST. Returns the rendered resource and its version.
    pub async fn create(
        &self,
        tenant: &str,
        kind: Kind,
        body: &Value,
    ) -> Result<(Value, i64), ScimError> {
        let n = resource::normalize(&self.schemas, kind, body, Mode::Full)?;
        let row = self
            .in_write(tenant, kind, async |tx, emails| {
                self.create_in(tx, kind, n, emails).await
            })
            .await?;
        self.written(kind, &row).await
    }

    /// The create, inside a caller's transaction (bulk uses it too).
    pub async fn create_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        mut n: Normalized,
        emails: &TenantEmails,
    ) -> Result<ScimRow, ScimError> {
        resource::one_primary(&mut n.doc, None);
        let now = crate::clock::now_ms();
        let fresh_id = uuid::Uuid::new_v4().to_string();
        let mut id = fresh_id.clone();
        let tenant = tx.tenant().to_owned();
        if kind == Kind::User {
            emails.check(&n.doc, None)?;
            let login = resource::login_of(&n.doc, self.default_role(&tenant));
            id = tx.logins().link(&id, &login, now / 1000).await?;
            // An adopted JIT or invited user may be signed in: from now on
            // the directory shapes their principal.
            directory::touched(tx, kind, &id).await?;
            if !login.active {
                // An adopted JIT user arriving deactivated.
                tx.sessions()
                    .revoke(&SessionSelector::User(id.clone()))
                    .await?;
            }
        }
        let row = new_row(tx, kind, id.clone(), &n, now)?;
        // The unique index decides (one round trip less than asking first,
        // and race-free); the caller's transaction or savepoint undoes the
        // login row on a clash.
        match tx.scim().insert(kind.store(), &row).await {
            Err(StoreError::Duplicate(_)) => {
                return Err(name_taken(kind));
            }
            other => other?,
        }
        let event = match kind {
            Kind::Group => EventType::GroupCreated,
            Kind::User if id == fresh_id => EventType::UserCreated,
            // The app already knows this person (a JIT or invited user, or
            // one SCIM deleted earlier): now SCIM manages them, and the
            // event's full state says whether they are active.
            Kind::User => EventType::UserUpdated,
        };
        events::resource(tx, kind, event, &row, &self.base, emails).await?;
        if let Some(members) = n.members {
            let mut change = MemberChange::default();
            for m in members {
                change.set.insert(m.id, true);
            }
            let (added, removed) = self.apply_members(tx, &id, &change).await?;
            events::memberships(tx, &row, &added, &removed, &self.base).await?;
        }
        Ok(row)
    }

    /// New users in one go (a Bulk request's consecutive creates), each
    /// with the fresh id the caller chose, in a few multi-row statements.
    /// `None` when the batch cannot be done this way: an email that already
    /// has a login (adoption, or a clash) or a userName taken or repeated.
    /// The caller must then drop the transaction and create the users one
    /// by one through [`Scim::create_in`], which decides those cases.
    pub async fn create_users_in(
        &self,
        tx: &mut WriteTx,
        items: Vec<(String, Normalized)>,
        emails: &TenantEmails,
    ) -> Result<Option<Vec<ScimRow>>, ScimError> {
        let now = crate::clock::now_ms();
        let tenant = tx.tenant().to_owned();
        let role = self.default_role(&tenant);
        let mut logins = Vec::with_capacity(items.len());
        let mut rows = Vec::with_capacity(items.len());
        for (id, mut n) in items {
            resource::one_primary(&mut n.doc, None);
            emails.check(&n.doc, None)?;
            // A fresh login has no sessions, so an inactive one needs no
            // revocation (unlike an adopted one in `create_in`).
            logins.push(resource::login_of(&n.doc, role.clone()));
            rows.push(new_row(tx, Kind::User, id, &n, now)?);
        }
        let pairs: Vec<_> = rows.iter().map(|r| r.id.as_str()).zip(&logins).collect();
        if !tx.logins().insert_new(&pairs, now / 1000).await? {
            return Ok(None);
        }
        match tx.scim().insert_many(Kind::User.store(), &rows).await {
            Err(StoreError::Duplicate(_)) => return Ok(None),
            other => other?,
        }
        for row in &rows {
            events::resource(
                tx,
                Kind::User,
                EventType::UserCreated,
                row,
                &self.base,
                emails,
            )
            .await?;
        }
        Ok(Some(rows))
    }

    /// Applies membership edits; returns the members actually added and
    /// removed (for the webhook events), both empty if nothing changed.
    async fn apply_members(
        &self,
        tx: &mut WriteTx,
        group_id: &str,
        change: &MemberChange,
    ) -> Result<(Vec<ScimMember>, Vec<ScimMember>), ScimError> {
        let mut added = Vec::new();
        let mut removed = Vec::new();
        // A replacement: what was there before decides what really changed.
        let before: Option<Vec<ScimMember>> = if change.clear {
            let before = tx.scim().members(group_id).await?;
            tx.scim().clear_members(group_id).await?;
            Some(before)
        } else {
            None
        };
        for (id, _) in change.set.iter().filter(|(_, present)| !**present) {
            if before.is_some() {
                continue; // already gone with the clear
            }
            if tx
                .scim()
                .remove_members(group_id, std::slice::from_ref(id))
                .await?
                > 0
            {
                let kind = tx.scim().member_kind(id).await?.unwrap_or("User");
                removed.push(ScimMember {
                    id: id.clone(),
                    kind: kind.to_owned(),
                });
            }
        }
        for (id, _) in change.set.iter().filter(|(_, p)| **p) {
            if id == group_id {
                return Err(ScimError::invalid_value("a group cannot be its own member"));
            }
            let Some(kind) = tx.scim().member_kind(id).await? else {
                return Err(ScimError::invalid_value(format!(
                    "member `{}` is not a user or group of this tenant",
                    clip(id)
                )));
            };
            if kind == "Group" {
                directory::refuse_cycle(tx, group_id, id).await?;
            }
            let m = ScimMember {
                id: id.clone(),
                kind: kind.to_owned(),
            };
            if tx
                .scim()
                .add_members(group_id, std::slice::from_ref(&m))
                .await?
                > 0
            {
                added.push(m);
            }
        }
        if let Some(before) = before {
            let now: HashSet<&str> = added.iter().map(|m| m.id.as_str()).collect();
            let was: HashSet<&str> = before.iter().map(|m| m.id.as_str()).collect();
            removed = before
                .iter()
                .filter(|m| !now.contains(m.id.as_str()))
                .cloned()
                .collect();
            added.retain(|m| !was.contains(m.id.as_str()));
        }
        directory::touched_members(tx, &added).await?;
        directory::touched_members(tx, &removed).await?;
        Ok((added, removed))
    }

    /// Writes a new document for an existing row (PUT and PATCH). Nothing is
    /// written, and the version stays, when nothing changed.
    async fn update_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        mut row: ScimRow,
        mut doc: Map<String, Value>,
        members: Option<&MemberChange>,
        emails: &TenantEmails,
    ) -> Result<ScimRow, ScimError> {
        let before = stored_doc(&row)?;
        resource::one_primary(&mut doc, Some(&before));
        if kind == Kind::User {
            emails.check(&doc, Some(&before))?;
        }
        let name = name_of(kind, &doc);
        if name.to_lowercase() != row.name.to_lowercase()
            && tx
                .scim()
                .name_taken(kind.store(), &name, Some(&row.id))
                .await?
        {
            return Err(name_taken(kind));
        }
        let new_doc = doc_string(&doc)?;
        let (added, removed) = match members {
            Some(m) if !m.is_empty() => self.apply_members(tx, &row.id, m).await?,
            _ => (Vec::new(), Vec::new()),
        };
        let members_changed = !added.is_empty() || !removed.is_empty();
        let doc_changed = new_doc != row.doc || name != row.name;
        if !doc_changed && !members_changed {
            return Ok(row);
        }
        let was_active = kind == Kind::User && events::is_active(&row);
        let now = crate::clock::now_ms();
        row.version += 1;
        row.updated_at = now;
        if doc_changed {
            row.name = name;
            row.external_id = ext_id(&doc);
            row.doc = new_doc;
            if kind == Kind::User {
                let login = resource::login_of(&doc, None);
                tx.logins().update(&row.id, &login, now / 1000).await?;
                if !login.active {
                    tx.sessions()
                        .revoke(&SessionSelector::User(row.id.clone()))
                        .await?;
                    tracing::info!(tenant = %row.tenant, user = %row.id, "SCIM: user inactive, sessions ended");
                }
            }
        }
        tx.scim().update(kind.store(), &row).await?;
        if doc_changed {
            // A user's name or email, a group's name or externalId.
            directory::touched(tx, kind, &row.id).await?;
            let event = match kind {
                Kind::User => events::user_change(was_active, &row),
                Kind::Group => EventType::GroupUpdated,
            };
            events::resource(tx, kind, event, &row, &self.base, emails).await?;
        }
        if members_changed {
            events::memberships(tx, &row, &added, &removed, &self.base).await?;
        }
        Ok(row)
    }

    /// PUT: replaces every writable attribute.
    pub async fn replace(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<(Value, i64), ScimError> {
        let row = self
            .in_write(tenant, kind, async |tx, emails| {
                self.replace_in(tx, kind, id, body, if_match, emails).await
            })
            .await?;
        self.written(kind, &row).await
    }

    /// The replace, inside a caller's transaction (Bulk `PUT`). Members
    /// given replace the group's members; absent, they stay.
    pub async fn replace_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        emails: &TenantEmails,
    ) -> Result<ScimRow, ScimError> {
        let n = resource::normalize(&self.schemas, kind, body, Mode::Full)?;
        let row = tx
            .scim()
            .get(kind.store(), id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, row.version)?;
        let members = n.members.map(|list| MemberChange {
            clear: true,
            set: list.into_iter().map(|m| (m.id, true)).collect(),
        });
        self.update_in(tx, kind, row, n.doc, members.as_ref(), emails)
            .await
    }

    /// PATCH: atomic; any failing operation leaves the resource unchanged.
    /// Returns the row: the caller renders it with the request's
    /// projection.
    pub async fn patch(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<ScimRow, ScimError> {
        let ops = patch::parse_request(body)?;
        self.in_write(tenant, kind, async |tx, emails| {
            self.patch_in(tx, kind, id, &ops, if_match, emails).await
        })
        .await
    }

    /// The patch, inside a caller's transaction (Bulk `PATCH`): the
    /// operations run on a copy of the stored document, which is then
    /// validated as a whole like a PUT body.
    pub async fn patch_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        id: &str,
        ops: &[patch::Operation],
        if_match: Option<&str>,
        emails: &TenantEmails,
    ) -> Result<ScimRow, ScimError> {
        let row = tx
            .scim()
            .get(kind.store(), id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, row.version)?;
        let mut doc = stored_doc(&row)?;
        let mut members = MemberChange::default();
        patch::apply(&self.schemas, kind, &row.id, &mut doc, ops, &mut members)?;
        // Re-validate the result as a whole (types, required attributes).
        let n = resource::normalize(&self.schemas, kind, &Value::Object(doc), Mode::Patched)?;
        self.update_in(tx, kind, row, n.doc, Some(&members), emails)
            .await
    }

    /// DELETE. A user's login identity stays as a deactivated tombstone, so
    /// JIT can't let them back in, and their sessions end.
    pub async fn delete(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ScimError> {
        self.in_write(tenant, kind, async |tx, emails| {
            self.delete_in(tx, kind, id, if_match, emails).await
        })
        .await
    }

    /// The delete, inside a caller's transaction (Bulk `DELETE`).
    pub async fn delete_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        emails: &TenantEmails,
    ) -> Result<(), ScimError> {
        let row = tx
            .scim()
            .get(kind.store(), id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, row.version)?;
        let now = crate::clock::now_ms();
        // Who is under a group is known only while it still exists.
        directory::touched(tx, kind, id).await?;
        // The groups it leaves hear of it first, then the resource is gone.
        // A deleted group's own memberships end with it (`group.deleted`).
        let containing = tx.scim().groups_containing(id).await?;
        tx.scim().remove_member_everywhere(id, now).await?;
        let member = ScimMember {
            id: id.to_owned(),
            kind: kind.name().to_owned(),
        };
        for group_id in containing {
            if let Some(group) = tx.scim().get(ScimKind::Group, &group_id).await? {
                events::memberships(tx, &group, &[], std::slice::from_ref(&member), &self.base)
                    .await?;
            }
        }
        let event = match kind {
            Kind::User => EventType::UserDeleted,
            Kind::Group => EventType::GroupDeleted,
        };
        events::resource(tx, kind, event, &row, &self.base, emails).await?;
        tx.scim().delete(kind.store(), id).await?;
        if kind == Kind::User {
            tx.logins().tombstone(id, now / 1000).await?;
            tx.sessions()
                .revoke(&SessionSelector::User(id.to_owned()))
                .await?;
            tracing::info!(tenant = %tx.tenant(), user = %id, "SCIM: user deleted, sessions ended");
        }
        Ok(())
    }
}

/// A document as stored: JSON text.
fn doc_string(doc: &Map<String, Value>) -> Result<String, ScimError> {
    serde_json::to_string(doc).map_err(|_| ScimError::internal())
}

/// The `externalId` column: IdPs look users up by it.
fn ext_id(doc: &Map<String, Value>) -> Option<String> {
    doc.get("externalId")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The unique name of a resource (`userName`, `displayName`), its
/// indexed column.
fn name_of(kind: Kind, doc: &Map<String, Value>) -> String {
    let key = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    doc.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A resource as first stored: version 1, the next position in the
/// tenant's creation order.
fn new_row(
    tx: &mut WriteTx,
    kind: Kind,
    id: String,
    n: &Normalized,
    now: i64,
) -> Result<ScimRow, ScimError> {
    Ok(ScimRow {
        id,
        tenant: tx.tenant().to_owned(),
        name: name_of(kind, &n.doc),
        external_id: ext_id(&n.doc),
        doc: doc_string(&n.doc)?,
        version: 1,
        seq: tx.next_position(),
        created_at: now,
        updated_at: now,
    })
}

/// The refusal of a second resource with the same unique name.
fn name_taken(kind: Kind) -> ScimError {
    ScimError::uniqueness(match kind {
        Kind::User => "userName is already in use",
        Kind::Group => "displayName is already in use",
    })
}

/// A row's stored document as a JSON object.
fn stored_doc(row: &ScimRow) -> Result<Map<String, Value>, ScimError> {
    serde_json::from_str(&row.doc).map_err(|_| {
        tracing::error!(id = %row.id, "stored SCIM document is not a JSON object");
        ScimError::internal()
    })
}
