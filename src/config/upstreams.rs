//! Which upstreams a configuration has, and which of them takes a request
//! that names none. `[upstream]` (one app) and `[[upstreams]]` (several)
//! are two spellings of one list, so everything downstream reads
//! [`Config::upstreams`] and never the two fields.

use super::schema::{Config, UpstreamConfig};

impl Config {
    /// The upstreams, in file order: the `[[upstreams]]` entries, or the
    /// single `[upstream]` table (also when neither was written: its
    /// defaults).
    pub fn upstreams(&self) -> &[UpstreamConfig] {
        if self.upstreams.is_empty() {
            std::slice::from_ref(&self.upstream)
        } else {
            &self.upstreams
        }
    }

    /// The index (in [`Config::upstreams`]) of the upstream for routes
    /// without `upstream` and for requests no route matches: the only one,
    /// or else the one named `default`. `None` when several are configured
    /// and none is named so; validation then requires every route to name
    /// one and a catch-all route, so the proxy never has to guess.
    pub fn default_upstream(&self) -> Option<usize> {
        let all = self.upstreams();
        if all.len() == 1 {
            return Some(0);
        }
        all.iter().position(|u| u.name == DEFAULT_UPSTREAM)
    }

    /// The index of the upstream called `name`.
    pub fn upstream_index(&self, name: &str) -> Option<usize> {
        self.upstreams().iter().position(|u| u.name == name)
    }
}

/// The name that makes one of several `[[upstreams]]` the default, and the
/// name `[upstream]` has unless it sets one.
pub const DEFAULT_UPSTREAM: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Config {
        Config {
            upstreams: names
                .iter()
                .map(|n| UpstreamConfig {
                    name: (*n).to_owned(),
                    ..UpstreamConfig::default()
                })
                .collect(),
            ..Config::default()
        }
    }

    #[test]
    fn the_single_table_is_the_only_and_default_upstream() {
        let cfg = Config::default();
        assert_eq!(cfg.upstreams().len(), 1);
        assert_eq!(cfg.upstreams()[0].name, DEFAULT_UPSTREAM);
        assert_eq!(cfg.default_upstream(), Some(0));
        assert_eq!(cfg.upstream_index("default"), Some(0));
        assert_eq!(cfg.upstream_index("app"), None);
    }

    #[test]
    fn several_upstreams_have_a_default_only_by_name() {
        assert_eq!(named(&["app"]).default_upstream(), Some(0));
        assert_eq!(named(&["a", "b"]).default_upstream(), None);
        assert_eq!(named(&["a", "default"]).default_upstream(), Some(1));
        assert_eq!(named(&["a", "b"]).upstream_index("b"), Some(1));
    }
}
