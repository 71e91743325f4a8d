//! The route table: host + path prefix → what a request must satisfy.
//!
//! Rule: a request must satisfy every route that any plausible reading of it
//! selects — every reading of its path ([`super::canon`]), read both with and
//! without case folding, under every host the app might take it for. The
//! operator writes one table; Portcullis applies it the way the most
//! permissive server behind it would be attacked, and takes the conjunction.
//!
//! Prefixes match whole segments (`/api` matches `/api` and `/api/…`, never
//! `/apix`). By default segments compare case-insensitively (Express,
//! ASP.NET and IIS route that way), with Unicode folding and compatibility
//! normalisation so `/ADMİN`, `/admın` or full-width letters can't step
//! around `/admin`; a route may opt into `case_sensitive = true`.
//!
//! A request whose host is none of the host-specific routes' hosts (or
//! carries none) gets the conjunction over every configured host: an app
//! that serves several names from one process may well take it for any of
//! them.
//!
//! Each route also names the upstream its requests go to
//! ([`RouteTable::upstream_for`]). A request goes to an upstream only when
//! every route its readings select names that same upstream, so the app
//! that gets it is the app of every route whose policy was applied.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

use crate::config::{Config, Policy, RouteConfig};
use crate::identity::{AuthFacts, Principal};

use super::canon::Readings;

/// A group or role name in a route condition. `acme:admins` names the
/// `admins` group *of tenant `acme`*; an unqualified name matches that name
/// from any tenant's IdP (and `check` warns when there is more than one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    tenant: Option<String>,
    name: String,
}

impl Member {
    /// `tenant:name` is qualified only when `tenant` is a configured tenant
    /// id, so group names that contain colons (URNs) keep working.
    pub fn parse(s: &str, tenant_ids: &[&str]) -> Self {
        match s.split_once(':') {
            Some((t, n)) if tenant_ids.contains(&t) => Member {
                tenant: Some(t.to_owned()),
                name: n.to_owned(),
            },
            _ => Member {
                tenant: None,
                name: s.to_owned(),
            },
        }
    }

    pub fn is_qualified(&self) -> bool {
        self.tenant.is_some()
    }

    fn admits(&self, tenant: Option<&str>, names: &[String]) -> bool {
        self.tenant
            .as_deref()
            .is_none_or(|t| tenant.is_some_and(|pt| pt == t))
            && names.contains(&self.name)
    }
}

/// What one route demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub policy: Policy,
    /// The principal needs one of these groups...
    pub allowed_groups: Vec<Member>,
    /// ...or one of these roles (either list non-empty restricts)...
    pub allowed_roles: Vec<Member>,
    /// ...and, when non-empty, to belong to one of these tenants.
    pub allowed_tenants: Vec<String>,
    /// What the authentication itself must have been (step-up).
    pub step_up: StepUp,
}

/// A route's demands on how and when the user authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUp {
    /// The session's acr must be one of these (empty: any).
    pub acr: Vec<String>,
    /// The IdP authenticated the user at most this many seconds ago.
    pub max_age: Option<u64>,
}

impl StepUp {
    pub fn is_empty(&self) -> bool {
        self.acr.is_empty() && self.max_age.is_none()
    }

    /// Does an authentication with `auth` meet this at `now` (unix
    /// seconds)? A missing acr or time never does when one is asked for.
    pub fn satisfied_by(&self, auth: &AuthFacts, now: i64) -> bool {
        let acr_ok = self.acr.is_empty()
            || auth
                .acr
                .as_ref()
                .is_some_and(|a| self.acr.iter().any(|x| x == a));
        let age_ok = self.max_age.is_none_or(|max| {
            auth.auth_time
                .is_some_and(|t| now.saturating_sub(t) <= i64::try_from(max).unwrap_or(i64::MAX))
        });
        acr_ok && age_ok
    }
}

/// The step-up demand of several routes at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUpDemand {
    None,
    Demand(StepUp),
    /// The routes' acr lists have no name in common: nothing satisfies.
    Impossible,
}

impl RouteMatch {
    fn open(policy: Policy) -> Self {
        Self {
            policy,
            allowed_groups: Vec::new(),
            allowed_roles: Vec::new(),
            allowed_tenants: Vec::new(),
            step_up: StepUp::default(),
        }
    }

    /// Does `p` meet this route's conditions (policy aside)?
    pub fn admits(&self, p: &Principal) -> bool {
        let tenant = p.tenant.as_deref();
        let tenant_ok = self.allowed_tenants.is_empty()
            || tenant.is_some_and(|t| self.allowed_tenants.iter().any(|a| a == t));
        let member = (self.allowed_groups.is_empty() && self.allowed_roles.is_empty())
            || self
                .allowed_groups
                .iter()
                .any(|g| g.admits(tenant, &p.groups))
            || self
                .allowed_roles
                .iter()
                .any(|r| r.admits(tenant, &p.roles));
        tenant_ok && member
    }
}

/// Everything a request must satisfy: the conjunction of the routes its
/// readings selected (usually one).
#[derive(Debug, Clone)]
pub struct Requirement<'a> {
    first: &'a RouteMatch,
    more: Vec<&'a RouteMatch>,
}

impl<'a> Requirement<'a> {
    /// One route's demands.
    pub fn of(m: &'a RouteMatch) -> Self {
        Self {
            first: m,
            more: Vec::new(),
        }
    }

    /// Several routes' demands at once (tests of the conjunction).
    #[cfg(test)]
    pub fn of_all(ms: &[&'a RouteMatch]) -> Self {
        let mut r = Self::of(ms[0]);
        for m in &ms[1..] {
            r.add(m);
        }
        r
    }

    fn add(&mut self, m: &'a RouteMatch) {
        if !std::ptr::eq(self.first, m) && !self.more.iter().any(|x| std::ptr::eq(*x, m)) {
            self.more.push(m);
        }
    }

    /// The routes, without duplicates.
    pub fn routes(&self) -> impl Iterator<Item = &'a RouteMatch> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }

    /// The strictest policy among the routes.
    pub fn policy(&self) -> Policy {
        self.routes()
            .map(|r| r.policy)
            .max()
            .unwrap_or(self.first.policy)
    }

    /// `p` meets every route's conditions.
    pub fn admits(&self, p: &Principal) -> bool {
        self.routes().all(|r| r.admits(p))
    }

    /// The conjunction of the routes' step-up demands: an acr in every
    /// route's list (the first route's order), the shortest `max_age`.
    pub fn step_up(&self) -> StepUpDemand {
        let mut need = StepUp::default();
        let mut acr_listed = false;
        for r in self.routes() {
            if !r.step_up.acr.is_empty() {
                if acr_listed {
                    need.acr.retain(|a| r.step_up.acr.contains(a));
                } else {
                    need.acr = r.step_up.acr.clone();
                    acr_listed = true;
                }
            }
            need.max_age = match (need.max_age, r.step_up.max_age) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if acr_listed && need.acr.is_empty() {
            StepUpDemand::Impossible
        } else if need.is_empty() {
            StepUpDemand::None
        } else {
            StepUpDemand::Demand(need)
        }
    }

    /// More than one route applied: the readings disagreed.
    pub fn is_ambiguous(&self) -> bool {
        !self.more.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Route {
    host: Option<String>,
    /// Index into the configuration's upstreams; `None` only for a route
    /// without `upstream` when there is no default (validation refuses
    /// that).
    upstream: Option<usize>,
    /// Prefix segments as configured, and folded for case-insensitive
    /// comparison.
    segments: Vec<String>,
    folded: Vec<String>,
    case_sensitive: bool,
    target: RouteMatch,
}

impl Route {
    fn applies_to(&self, host: Option<&str>) -> bool {
        self.host.as_deref().is_none_or(|h| host == Some(h))
    }

    /// Does `path` start with this route's segments? `fold` is the
    /// case-insensitive reading (ignored for `case_sensitive` routes).
    fn matches(&self, path: &str, fold: bool) -> bool {
        let mut segs = path.split('/').skip(1);
        if fold && !self.case_sensitive {
            self.folded
                .iter()
                .all(|t| segs.next().is_some_and(|s| fold_eq(s, t)))
        } else {
            self.segments
                .iter()
                .all(|t| segs.next().is_some_and(|s| s == t))
        }
    }
}

/// Compiled routes, most specific first.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    default: RouteMatch,
    /// Distinct hosts of host-specific routes.
    hosts: Vec<String>,
    /// Some case-insensitive route's prefix is not in folded form (`/Static`):
    /// a case-sensitive server reads even a lower-case path differently.
    cased: bool,
    /// The upstream of requests no route matches.
    default_upstream: Option<usize>,
    /// Only one upstream: nothing to choose.
    single_upstream: bool,
}

/// The readings of a request select routes of different upstreams (or an
/// upstream is missing, which validation prevents): no app is the one
/// every applied policy was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the readings of the request select different upstreams")]
pub struct UpstreamConflict;

impl RouteTable {
    pub fn compile(cfg: &Config) -> Self {
        let tenant_ids: Vec<&str> = cfg.tenants.iter().map(|t| t.id.as_str()).collect();
        let default_upstream = cfg.default_upstream();
        let mut routes: Vec<Route> = cfg
            .routes
            .iter()
            .map(|r| {
                let upstream = match &r.upstream {
                    Some(name) => cfg.upstream_index(name),
                    None => default_upstream,
                };
                compile_route(r, &tenant_ids, upstream)
            })
            .collect();
        // Host-specific before host-agnostic, then the most segments, then
        // the longest prefix.
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.segments.len().cmp(&a.segments.len()))
                .then(
                    b.segments
                        .iter()
                        .map(String::len)
                        .sum::<usize>()
                        .cmp(&a.segments.iter().map(String::len).sum::<usize>()),
                )
        });
        let mut hosts: Vec<String> = routes.iter().filter_map(|r| r.host.clone()).collect();
        hosts.sort();
        hosts.dedup();
        let cased = routes
            .iter()
            .any(|r| !r.case_sensitive && r.segments != r.folded);
        Self {
            routes,
            default: RouteMatch::open(cfg.server.default_policy),
            hosts,
            cased,
            default_upstream,
            single_upstream: cfg.upstreams().len() == 1,
        }
    }

    /// What a request for `hosts` (normalised: lower-case, no port, no
    /// trailing dot; empty when the request named none) and `path` must
    /// satisfy.
    pub fn requirement<'a>(&'a self, hosts: &[&str], path: &Readings<'_>) -> Requirement<'a> {
        let views = self.host_views(hosts);
        let mut req: Option<Requirement<'a>> = None;
        self.select(&views, path, |route| {
            let m = route.map_or(&self.default, |r| &r.target);
            match &mut req {
                None => req = Some(Requirement::of(m)),
                Some(r) => r.add(m),
            }
        });
        req.unwrap_or(Requirement::of(&self.default))
    }

    /// The upstream (index into the configuration's upstreams) a request
    /// for `hosts` and `path` goes to: the one every route selected by
    /// every reading names, under the same readings as
    /// [`requirement`](Self::requirement).
    ///
    /// A request whose hosts are all route hosts is read under those
    /// hosts; any other request only under the host-less routes, so an
    /// unknown or absent `Host` (or an extra one) never reaches a host's
    /// app. Either way the routes consulted are among those whose
    /// conditions `requirement` conjoins.
    pub fn upstream_for(
        &self,
        hosts: &[&str],
        path: &Readings<'_>,
    ) -> Result<usize, UpstreamConflict> {
        if self.single_upstream {
            return Ok(0);
        }
        let known = !hosts.is_empty() && hosts.iter().all(|h| self.hosts.iter().any(|k| k == h));
        let views: Cow<'_, [Option<&str>]> = if known {
            Cow::Owned(hosts.iter().map(|h| Some(*h)).collect())
        } else {
            Cow::Borrowed(&[None])
        };
        let mut chosen: Option<Option<usize>> = None;
        let mut agree = true;
        self.select(&views, path, |route| {
            let u = route.map_or(self.default_upstream, |r| r.upstream);
            agree &= *chosen.get_or_insert(u) == u;
        });
        // `chosen` is set: a path has at least one reading, a request at
        // least one view.
        match chosen {
            Some(Some(u)) if agree => Ok(u),
            _ => Err(UpstreamConflict),
        }
    }

    /// Calls `f` with the best route (`None`: no route, the default) for
    /// every host view, every reading of `path`, and each way of comparing
    /// case that the reading calls for.
    fn select<'s>(
        &'s self,
        views: &[Option<&str>],
        path: &Readings<'_>,
        mut f: impl FnMut(Option<&'s Route>),
    ) {
        for host in views {
            for reading in path.iter() {
                let folds: &[bool] = if self.cased || needs_exact_reading(reading) {
                    &[true, false]
                } else {
                    &[true]
                };
                for &fold in folds {
                    f(self.best(*host, reading, fold));
                }
            }
        }
    }

    /// The hosts whose routes apply. A request naming a configured host gets
    /// that host's routes; one naming no configured host gets every host's.
    fn host_views<'h>(&'h self, hosts: &[&'h str]) -> Cow<'h, [Option<&'h str>]> {
        if self.hosts.is_empty() {
            return Cow::Borrowed(&[None]);
        }
        let known = !hosts.is_empty() && hosts.iter().all(|h| self.hosts.iter().any(|k| k == h));
        if known {
            Cow::Owned(hosts.iter().map(|h| Some(*h)).collect())
        } else {
            let mut v: Vec<Option<&str>> = self.hosts.iter().map(|h| Some(h.as_str())).collect();
            v.push(None);
            Cow::Owned(v)
        }
    }

    fn best(&self, host: Option<&str>, path: &str, fold: bool) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.applies_to(host) && r.matches(path, fold))
    }
}

/// A case-sensitive server reads this path differently from a folding one:
/// then both readings count. Plain lower-case ASCII needs only one (when
/// every prefix is in folded form, see `RouteTable::cased`).
fn needs_exact_reading(path: &str) -> bool {
    path.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80)
}

fn compile_route(r: &RouteConfig, tenant_ids: &[&str], upstream: Option<usize>) -> Route {
    let segments: Vec<String> = prefix_segments(&r.prefix)
        .into_iter()
        .map(str::to_owned)
        .collect();
    Route {
        host: r.host.as_deref().map(normalize_host),
        upstream,
        folded: segments.iter().map(|s| fold(s).into_owned()).collect(),
        segments,
        case_sensitive: r.case_sensitive,
        target: RouteMatch {
            policy: r.policy,
            allowed_groups: r
                .allowed_groups
                .iter()
                .map(|g| Member::parse(g, tenant_ids))
                .collect(),
            allowed_roles: r
                .allowed_roles
                .iter()
                .map(|g| Member::parse(g, tenant_ids))
                .collect(),
            allowed_tenants: r.allowed_tenants.clone(),
            step_up: StepUp {
                acr: r.acr.clone(),
                // validated: parses, at most a year
                max_age: r.max_age.as_ref().and_then(|d| d.seconds().ok()),
            },
        },
    }
}

/// `/api/` and `/api` are both the one segment `api`; `/` is none.
pub fn prefix_segments(prefix: &str) -> Vec<&str> {
    prefix
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// Case-insensitive form of a segment: compatibility-normalised (full-width
/// letters, ligatures, the Kelvin sign), then upper- and lower-cased so
/// every character that any runtime's case-insensitive compare equates
/// (`ı`/`I`/`i`, `ſ`/`S`/`s`) lands on one form. The combining dot that
/// full lower-casing leaves after `İ` is dropped: Java's per-character
/// `toLowerCase` maps `İ` to a plain `i`.
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Owned(s.to_ascii_lowercase());
        }
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.nfkc()
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .filter(|&c| c != '\u{307}')
            .collect(),
    )
}

fn fold_eq(s: &str, folded: &str) -> bool {
    if s.is_ascii() && folded.is_ascii() {
        s.eq_ignore_ascii_case(folded)
    } else {
        fold(s) == folded
    }
}

/// Host as routes compare it: lower-case, no trailing dot.
pub fn normalize_host(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod readers;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstreams;
