//! The provider catalog: which hosts are LLM providers, where explicit-mode
//! requests for them go, and which paths select them. Shipped defaults
//! (`promptwall_proxy::config::default_providers`) plus `[providers.NAME]`
//! tables, so adding or changing a provider is a config change (a drop-in
//! in `config.d/` works: tables merge key by key):
//!
//! ```toml
//! [providers.acme]              # a new provider
//! hosts = ["api.acme.example"]
//! upstream = "https://api.acme.example"
//! [providers.gemini]            # a shipped one, changed field by field
//! hosts = ["generativelanguage.googleapis.com", "gemini.corp.example"]
//! [providers.xai]
//! enabled = false               # a shipped one, not intercepted
//! ```
//!
//! The earlier `[[providers]]` list still replaces the whole catalog.
//!
//! A host is intercepted only where the org CA may sign for it: a CA
//! made by `promptwall ca init` is name-constrained to the catalog's
//! registrable domains when it is made, so a provider added later needs a
//! re-issued CA (`promptwall ca init --force`, then `ca install`); until
//! then its hosts are left alone (not redirected) and `doctor` names them.

use std::collections::BTreeMap;

use promptwall_proxy::config::{default_providers, ProviderConfig};
use serde::{Deserialize, Serialize};

/// What `providers` holds in the config.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ProviderCatalog {
    /// `[providers.NAME]` tables: changes to the shipped catalog.
    Changes(BTreeMap<String, ProviderChange>),
    /// `[[providers]]`: the whole catalog, defaults dropped.
    Replaced(Vec<ProviderConfig>),
}

impl Default for ProviderCatalog {
    fn default() -> Self {
        ProviderCatalog::Changes(BTreeMap::new())
    }
}

/// One `[providers.NAME]` table; a field left out keeps the shipped value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderChange {
    /// false: drop a shipped provider.
    pub enabled: Option<bool>,
    pub hosts: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub paths: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for ProviderCatalog {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ProviderCatalog;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[providers.NAME] tables (or the older [[providers]] list)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ProviderCatalog::Changes)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(ProviderCatalog::Replaced)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl ProviderCatalog {
    /// The providers in effect: the shipped ones in their order with the
    /// changes applied, then new ones by name.
    pub fn providers(&self) -> Vec<ProviderConfig> {
        let changes = match self {
            ProviderCatalog::Replaced(list) => return list.clone(),
            ProviderCatalog::Changes(changes) => changes,
        };
        let mut list = default_providers();
        for (name, change) in changes {
            let at = match list.iter().position(|p| &p.name == name) {
                Some(i) => i,
                None => {
                    list.push(ProviderConfig {
                        name: name.clone(),
                        hosts: Vec::new(),
                        upstream: String::new(),
                        paths: Vec::new(),
                    });
                    list.len() - 1
                }
            };
            if change.enabled == Some(false) {
                list.remove(at);
                continue;
            }
            let p = &mut list[at];
            if let Some(hosts) = &change.hosts {
                p.hosts = hosts.clone();
            }
            if let Some(upstream) = &change.upstream {
                p.upstream = upstream.clone();
            }
            if let Some(paths) = &change.paths {
                p.paths = paths.clone();
            }
        }
        list
    }

    /// A provider with no host or no upstream (a new `[providers.NAME]`
    /// missing one): what to add.
    pub fn check(&self) -> Result<(), String> {
        for p in self.providers() {
            if p.hosts.is_empty() || p.upstream.is_empty() {
                return Err(format!(
                    "[providers.{0}] needs hosts and upstream, e.g. hosts = [\"api.{0}.example\"] and \
                     upstream = \"https://api.{0}.example\" (or enabled = false to drop it)",
                    p.name
                ));
            }
            if !p.upstream.starts_with("https://") && !p.upstream.starts_with("http://") {
                return Err(format!(
                    "[providers.{}] upstream = {:?} is not a URL; give \"https://host\"",
                    p.name, p.upstream
                ));
            }
        }
        Ok(())
    }
}

/// The catalog's hosts split by whether the org CA in `ca_dir` may sign
/// for them: `(servable, [(host, why not)])`. Without a CA every host is
/// servable here (nothing can be intercepted yet, and `doctor` says so).
pub fn servable_hosts(hosts: &[String], ca_dir: &std::path::Path) -> (Vec<String>, Vec<(String, String)>) {
    let minter = promptwall_ca::OrgCa::load(ca_dir)
        .ok()
        .and_then(|ca| promptwall_ca::LeafMinter::new(&ca, std::time::Duration::from_secs(3600)).ok());
    let Some(minter) = minter else {
        return (hosts.to_vec(), Vec::new());
    };
    let mut servable = Vec::new();
    let mut refused = Vec::new();
    for host in hosts {
        match minter.check_name(host) {
            Ok(_) => servable.push(host.clone()),
            Err(e) => refused.push((host.clone(), e.to_string())),
        }
    }
    (servable, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> ProviderCatalog {
        #[derive(Deserialize)]
        struct Doc {
            providers: ProviderCatalog,
        }
        toml::from_str::<Doc>(toml_text).unwrap().providers
    }

    fn names(c: &ProviderCatalog) -> Vec<String> {
        c.providers().into_iter().map(|p| p.name).collect()
    }

    #[test]
    fn a_new_table_adds_a_provider_after_the_shipped_ones() {
        let c = parse("[providers.acme]\nhosts = [\"api.acme.example\"]\nupstream = \"https://api.acme.example\"\n");
        let all = c.providers();
        assert_eq!(all.len(), default_providers().len() + 1);
        let acme = all.last().unwrap();
        assert_eq!(
            (acme.name.as_str(), acme.hosts.as_slice()),
            ("acme", &["api.acme.example".to_string()][..])
        );
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_table_for_a_shipped_provider_changes_only_its_fields() {
        let c = parse("[providers.anthropic]\nhosts = [\"api.anthropic.com\", \"claude.corp.example\"]\n");
        let a = c.providers().into_iter().find(|p| p.name == "anthropic").unwrap();
        assert_eq!(a.hosts, vec!["api.anthropic.com", "claude.corp.example"]);
        assert_eq!(a.upstream, "https://api.anthropic.com", "the upstream is kept");
        assert!(!a.paths.is_empty(), "the paths are kept");
    }

    #[test]
    fn enabled_false_drops_a_shipped_provider() {
        let c = parse("[providers.xai]\nenabled = false\n");
        assert!(!names(&c).contains(&"xai".to_string()));
        assert_eq!(names(&c).len(), default_providers().len() - 1);
    }

    #[test]
    fn the_older_list_replaces_the_catalog() {
        let c = parse("[[providers]]\nname = \"anthropic\"\nhosts = [\"api.anthropic.com\"]\nupstream = \"https://api.anthropic.com\"\n");
        assert_eq!(names(&c), vec!["anthropic"]);
    }

    #[test]
    fn a_new_provider_without_hosts_or_upstream_says_what_to_add() {
        let err = parse("[providers.acme]\nhosts = [\"api.acme.example\"]\n")
            .check()
            .unwrap_err();
        assert!(err.contains("[providers.acme] needs hosts and upstream"), "{err}");
        let err = parse("[providers.acme]\nhosts = [\"a.example\"]\nupstream = \"a.example\"\n")
            .check()
            .unwrap_err();
        assert!(err.contains("is not a URL"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            providers: ProviderCatalog,
        }
        let err = toml::from_str::<Doc>("[providers.acme]\nhost = [\"x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `host`"), "{err}");
    }
}
