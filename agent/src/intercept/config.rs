//! The `[intercept]` section: how connections to providers are redirected
//! to the transparent listener. The keys the listener itself decides with
//! (`fail`, `learn_passthrough_after`, `learned_passthrough_ttl_secs`,
//! `splice_server_names`, `foreign_sni`) are written here too and handed to
//! the proxy as [`TransparentConfig`].

use std::path::PathBuf;

use promptwall_proxy::config::{ForeignSni, TransparentConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InterceptConfig {
    /// false: explicit mode only; runs without root.
    pub enabled: bool,
    /// "ebpf" (default) or "nftables" (fallback where eBPF can't load).
    pub mode: InterceptMode,
    /// cgroup2 path to attach to; default: the cgroup2 mount root.
    pub cgroup: Option<PathBuf>,
    /// Static provider ranges, in addition to resolved hosts.
    pub addresses: Vec<String>,
    /// Destination ports captured (TLS).
    pub ports: Vec<u16>,
    pub fail: FailMode,
    /// Re-resolve provider hosts at most this often (TTL permitting).
    pub resolve_interval_secs: u64,
    /// Keep an address this long after it was last seen in DNS (CDN churn).
    pub address_keep_secs: u64,
    /// Block UDP/443 (QUIC) to provider addresses so clients use TCP.
    pub block_quic: bool,
    /// Splice (user, exe, server name) triples undecrypted after this many
    /// rejections of our certificate (pinning); 0 never does. fail = "closed" keeps blocking.
    pub learn_passthrough_after: u32,
    /// A learned passthrough is forgotten after this long (then counted afresh).
    pub learned_passthrough_ttl_secs: u64,
    /// Server names (exact, or `*.example.com` for subdomains) that may be
    /// spliced undecrypted when they reach a provider address (CDN addresses
    /// shared with other sites). Any other non-provider name, or no name at
    /// all, is refused there: it could carry a provider's API inside.
    pub splice_server_names: Vec<String>,
    /// Any other non-provider name at a provider address: "resolving"
    /// splices it when its own DNS answer holds the address it connected to
    /// (a site sharing a CDN address); "refuse" refuses it.
    pub foreign_sni: ForeignSni,
    /// Look for processes of the cgroup in other network namespaces
    /// (containers) this often, and serve each with a listener inside it;
    /// 0 leaves containers alone (eBPF mode only).
    pub container_scan_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum InterceptMode {
    #[default]
    Ebpf,
    Nftables,
}

impl Default for InterceptConfig {
    fn default() -> Self {
        let listener = TransparentConfig::default();
        Self {
            enabled: true,
            mode: InterceptMode::Ebpf,
            cgroup: None,
            addresses: vec!["160.79.104.0/23".into(), "2607:6bc0::/48".into()],
            ports: vec![443],
            fail: FailMode::Open,
            resolve_interval_secs: 60,
            address_keep_secs: 24 * 3600,
            block_quic: true,
            learn_passthrough_after: listener.learn_passthrough_after,
            learned_passthrough_ttl_secs: listener.learned_passthrough_ttl_secs,
            splice_server_names: listener.splice_server_names,
            foreign_sni: listener.foreign_sni,
            container_scan_secs: 1,
        }
    }
}

impl InterceptConfig {
    /// What the proxy's transparent listener reads from this section.
    pub fn transparent(&self) -> TransparentConfig {
        TransparentConfig {
            fail_closed: self.fail == FailMode::Closed,
            learn_passthrough_after: self.learn_passthrough_after,
            learned_passthrough_ttl_secs: self.learned_passthrough_ttl_secs,
            splice_server_names: self.splice_server_names.clone(),
            foreign_sni: self.foreign_sni,
        }
    }
}
