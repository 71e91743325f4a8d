//! SCIM operations, independent of HTTP: authenticate a token, create,
//! read, replace, patch, delete and query resources. Each write is one
//! store transaction ([`WriteTx`]) that also updates the login identity and
//! ends sessions when a user is deactivated or deleted.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::emails::TenantEmails;
use super::error::ScimError;
use super::events;
use super::filter::{self, Filter};
use super::patch::{self, MemberChange};
use super::resource::{self, Mode, Normalized, Projection};
use super::schema::Kind;
use super::token;
use super::wire::{check_if_match, clip, get_ci, list_response};
use crate::config::Config;
use crate::events::EventType;
use crate::metrics::Metrics;
use crate::session::Sessions;
use crate::store::{ScimKind, ScimMember, ScimRow, SessionSelector, Store, StoreError, WriteTx};

/// Rows fetched per round trip when a filter must look at every resource.
const SCAN_BATCH: i64 = 1000;

/// The SCIM service of one configuration generation.
pub struct Scim {
    pub store: Store,
    pub sessions: Sessions,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// `{public_url}{path}`, no trailing slash: the base of `location`s.
    pub base: String,
    /// Most resources a filtered or sorted query may match before it is
    /// refused with `tooMany` (they are held in memory to sort and page).
    pub max_matches: usize,
}

/// The default of [`Scim::max_matches`].
pub const MAX_MATCHES: usize = 250_000;

/// The query of a list or search request.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub sort_by: Option<String>,
    pub descending: bool,
    pub projection: Projection,
}

fn doc_string(doc: &Map<String, Value>) -> Result<String, ScimError> {
    serde_json::to_string(doc).map_err(|_| ScimError::internal())
}

fn ext_id(doc: &Map<String, Value>) -> Option<String> {
    doc.get("externalId")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

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

impl Scim {
    /// The tenant a bearer token belongs to, or 401. The tenant must still
    /// be configured.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<String, ScimError> {
        let Some((tok, key_id)) = authorization.and_then(token::parse) else {
            return Err(ScimError::unauthorized());
        };
        let row = self.store.scim_token_lookup(key_id).await?;
        // Hash and compare even when the key id is unknown, so timing
        // does not tell a valid key id from an invalid one.
        let (tenant, hash) = row.unwrap_or_else(|| (String::new(), "0".repeat(64)));
        if !token::matches(tok, &hash) || tenant.is_empty() {
            return Err(ScimError::unauthorized());
        }
        if !self.config.tenants.iter().any(|t| t.id == tenant) {
            tracing::warn!(tenant = %tenant, "SCIM token of a tenant that is no longer configured");
            return Err(ScimError::unauthorized());
        }
        Ok(tenant)
    }

    /// The tenant's domains for a write of `kind` (users only: groups have
    /// no addresses, so their writes skip the store read).
    pub async fn tenant_emails(&self, tenant: &str, kind: Kind) -> Result<TenantEmails, ScimError> {
        if kind == Kind::Group {
            return Ok(TenantEmails::default());
        }
        let cfg = self.config.tenants.iter().find(|t| t.id == tenant);
        Ok(TenantEmails::load(&self.store, tenant, cfg).await?)
    }

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

    /// Renders a row with what the projection wants.
    pub async fn render(
        &self,
        kind: Kind,
        row: &ScimRow,
        projection: &Projection,
    ) -> Result<Value, ScimError> {
        let members = match kind {
            Kind::Group if projection.wants("members") => {
                Some(self.store.scim_members(&row.id).await?)
            }
            _ => None,
        };
        let groups = match kind {
            Kind::User if projection.wants("groups") => {
                Some(self.store.scim_groups_of(&row.id).await?)
            }
            _ => None,
        };
        let full = resource::render(kind, row, &self.base, members.as_deref(), groups.as_deref());
        Ok(projection.apply(kind, full))
    }

    pub async fn get(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        projection: &Projection,
    ) -> Result<(Value, i64), ScimError> {
        let row = self
            .store
            .scim_get(kind.store(), tenant, id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        Ok((self.render(kind, &row, projection).await?, row.version))
    }

    /// POST. Returns the rendered resource and its version.
    pub async fn create(
        &self,
        tenant: &str,
        kind: Kind,
        body: &Value,
    ) -> Result<(Value, i64), ScimError> {
        let n = resource::normalize(kind, body, Mode::Full)?;
        let emails = self.tenant_emails(tenant, kind).await?;
        let mut tx = self.store.begin_write(tenant).await?;
        let created = self.create_in(&mut tx, kind, n, &emails).await;
        emails.report(&self.metrics);
        let row = created?;
        let revoked = tx.commit().await?;
        self.after_commit(revoked).await;
        Ok((
            self.render(kind, &row, &Projection::default()).await?,
            row.version,
        ))
    }

    /// The create, inside a caller's transaction (bulk uses it too).
    pub async fn create_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        n: Normalized,
        emails: &TenantEmails,
    ) -> Result<ScimRow, ScimError> {
        let now = crate::clock::now_ms();
        let fresh_id = uuid::Uuid::new_v4().to_string();
        let mut id = fresh_id.clone();
        let tenant = tx.tenant().to_owned();
        if kind == Kind::User {
            emails.check(&n.doc, None)?;
            let login = resource::login_of(&n.doc, self.default_role(&tenant));
            id = tx.scim_link_login(&id, &login, now / 1000).await?;
            if !login.active {
                // An adopted JIT user arriving deactivated.
                tx.revoke_sessions(&SessionSelector::User(id.clone()))
                    .await?;
            }
        }
        let row = new_row(tx, kind, id.clone(), &n, now)?;
        // The unique index decides (one round trip less than asking first,
        // and race-free); the caller's transaction or savepoint undoes the
        // login row on a clash.
        match tx.scim_insert(kind.store(), &row).await {
            Err(StoreError::Duplicate(_)) => {
                return Err(ScimError::uniqueness(match kind {
                    Kind::User => "userName is already in use",
                    Kind::Group => "displayName is already in use",
                }));
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
        for (id, n) in items {
            emails.check(&n.doc, None)?;
            // A fresh login has no sessions, so an inactive one needs no
            // revocation (unlike an adopted one in `create_in`).
            logins.push(resource::login_of(&n.doc, role.clone()));
            rows.push(new_row(tx, Kind::User, id, &n, now)?);
        }
        let pairs: Vec<_> = rows.iter().map(|r| r.id.as_str()).zip(&logins).collect();
        if !tx.scim_insert_new_logins(&pairs, now / 1000).await? {
            return Ok(None);
        }
        match tx.scim_insert_many(Kind::User.store(), &rows).await {
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
            let before = tx.scim_members_in(group_id).await?;
            tx.scim_clear_members(group_id).await?;
            Some(before)
        } else {
            None
        };
        for (id, _) in change.set.iter().filter(|(_, present)| !**present) {
            if before.is_some() {
                continue; // already gone with the clear
            }
            if tx
                .scim_remove_members(group_id, std::slice::from_ref(id))
                .await?
                > 0
            {
                let kind = tx.scim_member_kind(id).await?.unwrap_or("User");
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
            let Some(kind) = tx.scim_member_kind(id).await? else {
                return Err(ScimError::invalid_value(format!(
                    "member `{}` is not a user or group of this tenant",
                    clip(id)
                )));
            };
            let m = ScimMember {
                id: id.clone(),
                kind: kind.to_owned(),
            };
            if tx
                .scim_add_members(group_id, std::slice::from_ref(&m))
                .await?
                > 0
            {
                added.push(m);
            }
        }
        if let Some(before) = before {
            let now: std::collections::HashSet<&str> =
                added.iter().map(|m| m.id.as_str()).collect();
            let was: std::collections::HashSet<&str> =
                before.iter().map(|m| m.id.as_str()).collect();
            removed = before
                .iter()
                .filter(|m| !now.contains(m.id.as_str()))
                .cloned()
                .collect();
            added.retain(|m| !was.contains(m.id.as_str()));
        }
        Ok((added, removed))
    }

    /// Writes a new document for an existing row (PUT and PATCH). Nothing is
    /// written, and the version stays, when nothing changed.
    async fn update_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        mut row: ScimRow,
        doc: Map<String, Value>,
        members: Option<&MemberChange>,
        emails: &TenantEmails,
    ) -> Result<ScimRow, ScimError> {
        if kind == Kind::User {
            emails.check(&doc, Some(&stored_doc(&row)?))?;
        }
        let name = name_of(kind, &doc);
        if name.to_lowercase() != row.name.to_lowercase()
            && tx
                .scim_name_taken(kind.store(), &name, Some(&row.id))
                .await?
        {
            return Err(ScimError::uniqueness(match kind {
                Kind::User => "userName is already in use",
                Kind::Group => "displayName is already in use",
            }));
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
                tx.scim_update_login(&row.id, &login, now / 1000).await?;
                if !login.active {
                    tx.revoke_sessions(&SessionSelector::User(row.id.clone()))
                        .await?;
                    tracing::info!(tenant = %row.tenant, user = %row.id, "SCIM: user inactive, sessions ended");
                }
            }
        }
        tx.scim_update(kind.store(), &row).await?;
        if doc_changed {
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
        let emails = self.tenant_emails(tenant, kind).await?;
        let mut tx = self.store.begin_write(tenant).await?;
        let replaced = self
            .replace_in(&mut tx, kind, id, body, if_match, &emails)
            .await;
        emails.report(&self.metrics);
        let row = replaced?;
        let revoked = tx.commit().await?;
        self.after_commit(revoked).await;
        Ok((
            self.render(kind, &row, &Projection::default()).await?,
            row.version,
        ))
    }

    pub async fn replace_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        emails: &TenantEmails,
    ) -> Result<ScimRow, ScimError> {
        let n = resource::normalize(kind, body, Mode::Full)?;
        let row = tx
            .scim_get(kind.store(), id)
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
    pub async fn patch(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<ScimRow, ScimError> {
        let ops = patch::parse_request(body)?;
        let emails = self.tenant_emails(tenant, kind).await?;
        let mut tx = self.store.begin_write(tenant).await?;
        let patched = self
            .patch_in(&mut tx, kind, id, &ops, if_match, &emails)
            .await;
        emails.report(&self.metrics);
        let row = patched?;
        let revoked = tx.commit().await?;
        self.after_commit(revoked).await;
        Ok(row)
    }

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
            .scim_get(kind.store(), id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, row.version)?;
        let mut doc = stored_doc(&row)?;
        let mut members = MemberChange::default();
        patch::apply(kind, &row.id, &mut doc, ops, &mut members)?;
        // Re-validate the result as a whole (types, required attributes).
        let n = resource::normalize(kind, &Value::Object(doc), Mode::Patched)?;
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
        let emails = self.tenant_emails(tenant, kind).await?;
        let mut tx = self.store.begin_write(tenant).await?;
        self.delete_in(&mut tx, kind, id, if_match, &emails).await?;
        let revoked = tx.commit().await?;
        self.after_commit(revoked).await;
        Ok(())
    }

    pub async fn delete_in(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        emails: &TenantEmails,
    ) -> Result<(), ScimError> {
        let row = tx
            .scim_get(kind.store(), id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, row.version)?;
        let now = crate::clock::now_ms();
        // The groups it leaves hear of it first, then the resource is gone.
        // A deleted group's own memberships end with it (`group.deleted`).
        let containing = tx.scim_groups_containing(id).await?;
        tx.scim_remove_member_everywhere(id, now).await?;
        let member = ScimMember {
            id: id.to_owned(),
            kind: kind.name().to_owned(),
        };
        for group_id in containing {
            if let Some(group) = tx.scim_get(ScimKind::Group, &group_id).await? {
                events::memberships(tx, &group, &[], std::slice::from_ref(&member), &self.base)
                    .await?;
            }
        }
        let event = match kind {
            Kind::User => EventType::UserDeleted,
            Kind::Group => EventType::GroupDeleted,
        };
        events::resource(tx, kind, event, &row, &self.base, emails).await?;
        tx.scim_delete(kind.store(), id).await?;
        if kind == Kind::User {
            tx.scim_tombstone_login(id, now / 1000).await?;
            tx.revoke_sessions(&SessionSelector::User(id.to_owned()))
                .await?;
            tracing::info!(tenant = %tx.tenant(), user = %id, "SCIM: user deleted, sessions ended");
        }
        Ok(())
    }

    /// GET with `filter`, or POST `.search`.
    pub async fn list(&self, tenant: &str, kind: Kind, q: &ListQuery) -> Result<Value, ScimError> {
        let filter = q.filter.as_deref().map(filter::parse).transpose()?;
        let max = self.config.scim.max_results as i64;
        let start = q.start_index.unwrap_or(1).max(1);
        let count = q.count.unwrap_or(max).clamp(0, max);
        let sort = q
            .sort_by
            .as_deref()
            .map(|s| {
                filter::parse_attr_path(s).map_err(|_| ScimError::invalid_value("invalid sortBy"))
            })
            .transpose()?;

        let (total, page): (i64, Vec<ScimRow>) = match (&filter, &sort) {
            (None, None) => {
                let total = self.store.scim_count(kind.store(), tenant).await?;
                let page = if count == 0 {
                    Vec::new()
                } else {
                    self.store
                        .scim_page(kind.store(), tenant, start - 1, count)
                        .await?
                };
                (total, page)
            }
            _ => {
                let mut matched = self.matching(tenant, kind, filter.as_ref()).await?;
                if let Some(path) = &sort {
                    let key = |r: &(ScimRow, Value)| sort_key(&r.1, kind, path);
                    matched.sort_by(|a, b| {
                        let (ka, kb) = (key(a), key(b));
                        // Resources without the attribute go last either way.
                        match (ka, kb) {
                            (None, None) => std::cmp::Ordering::Equal,
                            (None, Some(_)) => std::cmp::Ordering::Greater,
                            (Some(_), None) => std::cmp::Ordering::Less,
                            (Some(x), Some(y)) if q.descending => y.cmp(&x),
                            (Some(x), Some(y)) => x.cmp(&y),
                        }
                    });
                }
                let total = matched.len() as i64;
                let page = matched
                    .into_iter()
                    .skip(usize::try_from(start - 1).unwrap_or(usize::MAX))
                    .take(usize::try_from(count).unwrap_or(0))
                    .map(|(r, _)| r)
                    .collect();
                (total, page)
            }
        };
        let mut resources = Vec::with_capacity(page.len());
        for row in &page {
            resources.push(self.render(kind, row, &q.projection).await?);
        }
        Ok(list_response(
            usize::try_from(total).unwrap_or_default(),
            start,
            resources,
        ))
    }

    /// POST `/.search` at the root: Users then Groups, one list.
    pub async fn search_all(&self, tenant: &str, q: &ListQuery) -> Result<Value, ScimError> {
        let filter = q.filter.as_deref().map(filter::parse).transpose()?;
        let max = self.config.scim.max_results as i64;
        let start = q.start_index.unwrap_or(1).max(1);
        let count = q.count.unwrap_or(max).clamp(0, max);
        let mut all = Vec::new();
        for kind in [Kind::User, Kind::Group] {
            for (row, _) in self.matching(tenant, kind, filter.as_ref()).await? {
                all.push((kind, row));
            }
        }
        let total = all.len();
        let mut resources = Vec::new();
        for (kind, row) in all
            .into_iter()
            .skip(usize::try_from(start - 1).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(0))
        {
            resources.push(self.render(kind, &row, &q.projection).await?);
        }
        Ok(list_response(total, start, resources))
    }

    /// Every resource matching `filter` (all when `None`), with the JSON
    /// it was evaluated on. Indexed conjuncts narrow the candidates in SQL;
    /// the whole filter is then evaluated exactly.
    async fn matching(
        &self,
        tenant: &str,
        kind: Kind,
        filter: Option<&Filter>,
    ) -> Result<Vec<(ScimRow, Value)>, ScimError> {
        let needs_members =
            kind == Kind::Group && filter.is_some_and(|f| filter::mentions(f, "members"));
        let needs_groups =
            kind == Kind::User && filter.is_some_and(|f| filter::mentions(f, "groups"));
        let mut out = Vec::new();
        let limit = self.max_matches;
        let mut check = |row: ScimRow,
                         members: Option<Vec<ScimMember>>,
                         groups: Option<Vec<(String, String)>>| {
            let res = resource::render(
                kind,
                &row,
                &self.base,
                members.as_deref(),
                groups.as_deref(),
            );
            if filter.is_none_or(|f| filter::eval(f, &res, kind)) {
                if out.len() >= limit {
                    return Err(ScimError::bad(
                        "tooMany",
                        format!("the query matches more than {limit} resources; narrow the filter"),
                    ));
                }
                out.push((row, res));
            }
            Ok(())
        };
        let indexed = filter.and_then(|f| filter::indexed(f, kind));
        if let Some((index, value)) = indexed {
            for row in self
                .store
                .scim_find(kind.store(), tenant, index, &value)
                .await?
            {
                let m = if needs_members {
                    Some(self.store.scim_members(&row.id).await?)
                } else {
                    None
                };
                let g = if needs_groups {
                    Some(self.store.scim_groups_of(&row.id).await?)
                } else {
                    None
                };
                check(row, m, g)?;
            }
            return Ok(out);
        }
        let mut after: Option<(i64, String)> = None;
        loop {
            let batch = self
                .store
                .scim_scan(
                    kind.store(),
                    tenant,
                    after.as_ref().map(|(t, id)| (*t, id.as_str())),
                    SCAN_BATCH,
                )
                .await?;
            let last = batch.last().map(|r| (r.seq, r.id.clone()));
            let n = batch.len();
            for row in batch {
                let m = if needs_members {
                    Some(self.store.scim_members(&row.id).await?)
                } else {
                    None
                };
                let g = if needs_groups {
                    Some(self.store.scim_groups_of(&row.id).await?)
                } else {
                    None
                };
                check(row, m, g)?;
            }
            if (n as i64) < SCAN_BATCH {
                break;
            }
            after = last;
        }
        Ok(out)
    }
}

/// The value resources are ordered by: the first value `path` selects,
/// case-folded unless the attribute is case-exact.
fn sort_key(res: &Value, kind: Kind, path: &filter::AttrPath) -> Option<String> {
    let container = match path
        .urn
        .as_deref()
        .filter(|u| !u.eq_ignore_ascii_case(kind.core_urn()))
    {
        Some(u) => get_ci(res, kind.extension(u)?.0)?,
        None => res,
    };
    let mut v = get_ci(container, &path.name)?;
    if let Value::Array(a) = v {
        v = a
            .iter()
            .find(|i| i.get("primary") == Some(&Value::Bool(true)))
            .or_else(|| a.first())?;
    }
    if let Some(sub) = &path.sub {
        v = get_ci(v, sub)?;
    } else if v.is_object() {
        v = get_ci(v, "value")?;
    }
    let exact = kind
        .attr(path.urn.as_deref(), &path.name)
        .is_some_and(|d| d.case_exact);
    match v {
        Value::String(s) if exact => Some(s.clone()),
        Value::String(s) => Some(s.to_lowercase()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A row's stored document as a JSON object.
fn stored_doc(row: &ScimRow) -> Result<Map<String, Value>, ScimError> {
    serde_json::from_str(&row.doc).map_err(|_| {
        tracing::error!(id = %row.id, "stored SCIM document is not a JSON object");
        ScimError::internal()
    })
}

fn not_found(kind: Kind, id: &str) -> ScimError {
    ScimError::not_found(format!("{} {} not found", kind.name(), clip(id)))
}

impl From<ring::error::Unspecified> for ScimError {
    fn from(_: ring::error::Unspecified) -> Self {
        ScimError::internal()
    }
}

/// Keeps `StoreError` conversions in one place for the callers of
/// `begin_write` in other modules.
pub fn store_error(e: StoreError) -> ScimError {
    e.into()
}
