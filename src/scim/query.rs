//! SCIM reads: a resource by id, lists with `filter`, `sortBy` and paging,
//! the root `/.search`, and rendering with the requested projection.
//!
//! The rule: a read goes to the store directly, never through a
//! [`WriteTx`](crate::store::WriteTx), and a filter is always evaluated in
//! full in Rust on the rendered resource, even when an index narrowed the
//! candidates. The reasons: reads take no tenant write lock, so a `GET`
//! never waits behind a Bulk import; and the SQL part is only a narrowing,
//! so the database and the evaluator cannot disagree about what matches.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::ScimError;
use super::filter::{self, AttrPath, Filter};
use super::resource::{self, Projection};
use super::schema::{Kind, Schemas};
use super::service::{Scim, not_found};
use super::wire::{get_ci, list_response};
use crate::store::{ScimMember, ScimRow};

/// Rows fetched per round trip when a filter must look at every resource.
const SCAN_BATCH: i64 = 1000;

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

/// A row with the JSON its filter was evaluated on (sorting reads it again
/// rather than rendering twice).
type Matched = (ScimRow, Value);

/// The page a query asks for: `startIndex` is 1-based and at least 1,
/// `count` at most `[scim] max_results` (RFC 7644 §3.4.2.4 lets the server
/// cap it), so one request never renders an unbounded list.
#[derive(Debug, Clone, Copy)]
struct Page {
    start: i64,
    count: i64,
}

impl Page {
    fn of(q: &ListQuery, max: i64) -> Self {
        Self {
            start: q.start_index.unwrap_or(1).max(1),
            count: q.count.unwrap_or(max).clamp(0, max),
        }
    }

    /// This page's items of an in-memory result, in order.
    fn cut<T>(self, items: Vec<T>) -> impl Iterator<Item = T> {
        items
            .into_iter()
            .skip(usize::try_from(self.start - 1).unwrap_or(usize::MAX))
            .take(usize::try_from(self.count).unwrap_or(0))
    }
}

impl Scim {
    /// Renders a row with what the projection wants. Members and groups
    /// are loaded only when they will be shown: a group can have tens of
    /// thousands of members.
    pub async fn render(
        &self,
        kind: Kind,
        row: &ScimRow,
        projection: &Projection,
    ) -> Result<Value, ScimError> {
        let members = match kind {
            Kind::Group if projection.wants("members") => {
                Some(self.store.scim().members(&row.id).await?)
            }
            _ => None,
        };
        let groups = match kind {
            Kind::User if projection.wants("groups") => {
                Some(self.store.scim().groups_of(&row.id).await?)
            }
            _ => None,
        };
        let full = resource::render(kind, row, &self.base, members.as_deref(), groups.as_deref());
        Ok(projection.apply(kind, full))
    }

    /// GET by id: the resource and its version (for the `ETag`). Another
    /// tenant's id is simply not found, never forbidden, so ids don't leak.
    pub async fn get(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        projection: &Projection,
    ) -> Result<(Value, i64), ScimError> {
        let row = self
            .store
            .scim()
            .get(kind.store(), tenant, id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        Ok((self.render(kind, &row, projection).await?, row.version))
    }

    /// GET with `filter`, or POST `.search`. A plain page is answered by the
    /// database alone; a filter or `sortBy` needs every match in memory
    /// (bounded by `max_matches`).
    pub async fn list(&self, tenant: &str, kind: Kind, q: &ListQuery) -> Result<Value, ScimError> {
        let filter = q.filter.as_deref().map(filter::parse).transpose()?;
        let page = Page::of(q, self.config.scim.max_results as i64);
        let sort = q
            .sort_by
            .as_deref()
            .map(|s| {
                filter::parse_attr_path(s).map_err(|_| ScimError::invalid_value("invalid sortBy"))
            })
            .transpose()?;

        let (total, rows): (i64, Vec<ScimRow>) = match (&filter, &sort) {
            (None, None) => {
                let total = self.store.scim().count(kind.store(), tenant).await?;
                let rows = if page.count == 0 {
                    Vec::new()
                } else {
                    self.store
                        .scim()
                        .page(kind.store(), tenant, page.start - 1, page.count)
                        .await?
                };
                (total, rows)
            }
            _ => {
                let mut matched = self.matching(tenant, kind, filter.as_ref()).await?;
                if let Some(path) = &sort {
                    sort_matched(&mut matched, &self.schemas, kind, path, q.descending);
                }
                let total = matched.len() as i64;
                (total, page.cut(matched).map(|(r, _)| r).collect())
            }
        };
        let mut resources = Vec::with_capacity(rows.len());
        for row in &rows {
            resources.push(self.render(kind, row, &q.projection).await?);
        }
        Ok(list_response(
            usize::try_from(total).unwrap_or_default(),
            page.start,
            resources,
        ))
    }

    /// POST `/.search` at the root: Users then Groups, one list.
    pub async fn search_all(&self, tenant: &str, q: &ListQuery) -> Result<Value, ScimError> {
        let filter = q.filter.as_deref().map(filter::parse).transpose()?;
        let page = Page::of(q, self.config.scim.max_results as i64);
        let mut all = Vec::new();
        for kind in [Kind::User, Kind::Group] {
            for (row, _) in self.matching(tenant, kind, filter.as_ref()).await? {
                all.push((kind, row));
            }
        }
        let total = all.len();
        let mut resources = Vec::new();
        for (kind, row) in page.cut(all) {
            resources.push(self.render(kind, &row, &q.projection).await?);
        }
        Ok(list_response(total, page.start, resources))
    }

    /// Every resource matching `filter` (all when `None`), with the JSON
    /// it was evaluated on. Indexed conjuncts narrow the candidates in SQL;
    /// the whole filter is then evaluated exactly. More than `max_matches`
    /// is `tooMany`: they are all held in memory to sort and page.
    async fn matching(
        &self,
        tenant: &str,
        kind: Kind,
        filter: Option<&Filter>,
    ) -> Result<Vec<Matched>, ScimError> {
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
            if filter.is_none_or(|f| filter::eval(f, &res, &self.schemas, kind)) {
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
                .scim()
                .find(kind.store(), tenant, index, &value)
                .await?
            {
                let (m, g) = self.relations(&row, needs_members, needs_groups).await?;
                check(row, m, g)?;
            }
            return Ok(out);
        }
        let mut after: Option<(i64, String)> = None;
        loop {
            let batch = self
                .store
                .scim()
                .scan(
                    kind.store(),
                    tenant,
                    after.as_ref().map(|(t, id)| (*t, id.as_str())),
                    SCAN_BATCH,
                )
                .await?;
            let last = batch.last().map(|r| (r.seq, r.id.clone()));
            let n = batch.len();
            for row in batch {
                let (m, g) = self.relations(&row, needs_members, needs_groups).await?;
                check(row, m, g)?;
            }
            if (n as i64) < SCAN_BATCH {
                break;
            }
            after = last;
        }
        Ok(out)
    }

    /// A row's members and groups, each loaded only when the filter
    /// mentions it (they are separate tables, one query each).
    async fn relations(
        &self,
        row: &ScimRow,
        members: bool,
        groups: bool,
    ) -> Result<(Option<Vec<ScimMember>>, Option<Vec<(String, String)>>), ScimError> {
        let m = if members {
            Some(self.store.scim().members(&row.id).await?)
        } else {
            None
        };
        let g = if groups {
            Some(self.store.scim().groups_of(&row.id).await?)
        } else {
            None
        };
        Ok((m, g))
    }
}

/// Orders matches by `sortBy`. Resources without the attribute go last in
/// either direction, so a first page starts with resources that have it.
fn sort_matched(
    matched: &mut [Matched],
    schemas: &Schemas,
    kind: Kind,
    path: &AttrPath,
    descending: bool,
) {
    let key = |r: &Matched| sort_key(&r.1, schemas, kind, path);
    matched.sort_by(|a, b| match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if descending => y.cmp(&x),
        (Some(x), Some(y)) => x.cmp(&y),
    });
}

/// The value resources are ordered by: the first value `path` selects,
/// case-folded unless the attribute is case-exact.
fn sort_key(res: &Value, schemas: &Schemas, kind: Kind, path: &AttrPath) -> Option<String> {
    let container = match path
        .urn
        .as_deref()
        .filter(|u| !u.eq_ignore_ascii_case(kind.core_urn()))
    {
        Some(u) => get_ci(res, schemas.extension(kind, u)?.urn)?,
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
    let exact = schemas
        .attr(kind, path.urn.as_deref(), &path.name)
        .is_some_and(|d| d.case_exact);
    match v {
        Value::String(s) if exact => Some(s.clone()),
        Value::String(s) => Some(s.to_lowercase()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}
