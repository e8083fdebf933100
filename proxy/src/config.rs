//! The one TOML config file. Every key has a default so `promptwall up` runs
//! without a file; `deploy/config.example.toml` documents each key in place.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use promptwall_llm::policy::{Action, CustomDetector, PipelineConfig};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/promptwall/config.toml";
/// Response header carrying the per-exchange request id (helper C makes it
/// configurable).
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-promptwall-request-id";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass --config PATH or create the file (see deploy/config.example.toml)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}; fix the key named above (see deploy/config.example.toml)")]
    Parse { path: PathBuf, message: String },
    #[error("config is inconsistent: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: ListenConfig,
    pub ca: CaConfig,
    pub audit: AuditConfig,
    pub upstream: UpstreamConfig,
    pub intercept: InterceptConfig,
    pub pipeline: PipelineConfig,
    pub limits: LimitsConfig,
    /// Providers are data: hosts, API paths and upstream scheme.
    pub providers: Vec<ProviderConfig>,
    /// Stable id of this machine in the fleet store; default: /etc/machine-id.
    pub machine_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Base-URL mode (plain HTTP): ANTHROPIC_BASE_URL=http://127.0.0.1:8787.
    pub explicit: Option<SocketAddr>,
    /// Optional HTTPS variant of the explicit listener, with a minted leaf.
    pub explicit_tls: Option<SocketAddr>,
    /// Where eBPF/nftables redirect provider connections to.
    pub transparent: Option<SocketAddr>,
    /// Unix admin socket used by `promptwall status`.
    pub admin_socket: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CaConfig {
    pub dir: PathBuf,
    /// Name-constrain the generated root to the provider domains.
    pub name_constraints: bool,
    /// Leaf lifetime; leaves are re-minted well before they expire.
    pub leaf_validity_hours: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// sqlx URL: sqlite:///var/lib/promptwall/audit.db or postgres://...
    pub url: String,
    /// SQLite durability of each row: "full" fsyncs every commit (survives
    /// power loss); "normal" fsyncs at checkpoints (survives agent crashes).
    pub sync: AuditSync,
    /// Store request/response bodies as the provider saw them (redacted).
    pub capture_bodies: bool,
    pub capture_max_bytes: usize,
    /// Delete rows older than this many days (chain kept verifiable by a
    /// checkpoint; rows not yet shipped to the central store are kept).
    pub retention_days: Option<u32>,
    /// Drop captured bodies older than this many days (rows stay).
    pub body_retention_days: Option<u32>,
    /// TOML price table overriding/extending the built-in one (cost estimates).
    pub price_table: Option<PathBuf>,
    /// Secret key (0600, root) of the fingerprints of blocked secrets; created
    /// with 32 random bytes on first start if absent. Give every machine the
    /// same file to correlate one secret across the fleet.
    pub fingerprint_key: PathBuf,
    /// New exchanges are refused (503) before reaching a provider while the
    /// SQLite store's filesystem has less than this free: their rows could
    /// not be written. 0 turns the check off.
    pub min_free_bytes: u64,
    pub central: Option<CentralAuditConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CentralAuditConfig {
    pub url: String,
    pub batch_size: usize,
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// PEM files whose certificates are trusted in addition to the native roots.
    pub extra_roots: Vec<PathBuf>,
    /// Like curl --resolve: host -> address to dial instead of DNS.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// SO_MARK set on every upstream socket so the redirect never loops.
    pub mark: u32,
    pub connect_timeout_ms: u64,
}

// By hand, not derived: an `[upstream]` table that names only some keys must
// still get the mark and a real connect timeout (derived zeros meant no
// SO_MARK and a 1 ms connect deadline).
impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            extra_roots: vec![],
            resolve: BTreeMap::new(),
            mark: 0x1fa1,
            connect_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditSync {
    #[default]
    Full,
    Normal,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    Open,
    Closed,
}

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
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForeignSni {
    #[default]
    Resolving,
    Refuse,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum InterceptMode {
    #[default]
    Ebpf,
    Nftables,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted; larger gets 413 in the client's format.
    pub max_request_bytes: usize,
    /// Request-body bytes all inspected exchanges together may hold in
    /// memory; past it new requests get 503 with Retry-After (SDKs retry).
    pub max_inflight_request_bytes: usize,
    /// Inspected exchanges (LLM calls and checked bodies) in flight at once,
    /// streaming answers included; past it new requests get 503.
    pub max_inspected_exchanges: usize,
    /// Time a client has to complete its TLS handshake with a listener.
    pub tls_handshake_timeout_secs: u64,
    /// Time allowed for a client to send its request head and body.
    pub client_read_timeout_secs: u64,
    pub upstream_response_timeout_secs: u64,
    /// Path prefixes on provider hosts whose WebSocket upgrades are relayed
    /// uninspected. Default: none, so any WebSocket the pipeline cannot read
    /// (Realtime, unknown APIs) is refused with 426 and clients fall back to HTTP.
    pub websocket_passthrough_paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Audit name, e.g. "anthropic".
    pub name: String,
    /// TLS server names intercepted and the Host of forwarded requests.
    pub hosts: Vec<String>,
    /// Upstream for explicit-mode requests; "https://api.anthropic.com".
    pub upstream: String,
    /// Explicit-mode path prefixes that select this provider.
    #[serde(default)]
    pub paths: Vec<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            explicit: Some("127.0.0.1:8787".parse().unwrap()),
            explicit_tls: None,
            transparent: Some("127.0.0.1:15443".parse().unwrap()),
            admin_socket: "/run/promptwall/admin.sock".into(),
        }
    }
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            dir: "/var/lib/promptwall/ca".into(),
            name_constraints: true,
            leaf_validity_hours: 24,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            url: "sqlite:///var/lib/promptwall/audit.db".into(),
            sync: AuditSync::Full,
            capture_bodies: false,
            capture_max_bytes: 256 * 1024,
            retention_days: None,
            body_retention_days: None,
            price_table: None,
            fingerprint_key: "/var/lib/promptwall/fingerprint.key".into(),
            min_free_bytes: 64 * 1024 * 1024,
            central: None,
        }
    }
}

impl Default for CentralAuditConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            batch_size: 500,
            interval_ms: 2000,
        }
    }
}

impl Default for InterceptConfig {
    fn default() -> Self {
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
            learn_passthrough_after: 3,
            learned_passthrough_ttl_secs: 3600,
            splice_server_names: Vec::new(),
            foreign_sni: ForeignSni::Resolving,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 32 * 1024 * 1024,
            max_inflight_request_bytes: 256 * 1024 * 1024,
            max_inspected_exchanges: 512,
            tls_handshake_timeout_secs: 10,
            client_read_timeout_secs: 60,
            upstream_response_timeout_secs: 600,
            websocket_passthrough_paths: Vec::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ListenConfig::default(),
            ca: CaConfig::default(),
            audit: AuditConfig::default(),
            upstream: UpstreamConfig::default(),
            intercept: InterceptConfig::default(),
            pipeline: PipelineConfig::default(),
            limits: LimitsConfig::default(),
            providers: default_providers(),
            machine_id: None,
        }
    }
}

pub fn default_providers() -> Vec<ProviderConfig> {
    vec![
        ProviderConfig {
            name: "anthropic".into(),
            hosts: vec!["api.anthropic.com".into()],
            upstream: "https://api.anthropic.com".into(),
            paths: vec![
                "/v1/messages".into(),
                "/v1/complete".into(),
                "/v1/models".into(),
                "/api/".into(),
            ],
        },
        ProviderConfig {
            name: "openai".into(),
            hosts: vec!["api.openai.com".into()],
            upstream: "https://api.openai.com".into(),
            paths: vec!["/v1/".into()],
        },
        ProviderConfig {
            name: "chatgpt".into(),
            hosts: vec!["chatgpt.com".into(), "ab.chatgpt.com".into()],
            upstream: "https://chatgpt.com".into(),
            paths: vec!["/backend-api/".into()],
        },
    ]
}

impl Config {
    /// Loads `path`; a missing file at the default path means "all defaults".
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.clone(),
            message,
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.providers.is_empty() {
            return Err(ConfigError::Invalid(
                "no [[providers]] configured; remove the key to use the defaults".into(),
            ));
        }
        let l = &self.limits;
        if l.max_request_bytes > u32::MAX as usize {
            return Err(ConfigError::Invalid(format!(
                "[limits] max_request_bytes = {} is above 4 GiB; lower it",
                l.max_request_bytes
            )));
        }
        if l.max_inflight_request_bytes < l.max_request_bytes {
            return Err(ConfigError::Invalid(format!(
                "[limits] max_inflight_request_bytes = {} is below max_request_bytes = {}, so the largest allowed body could never be admitted; raise max_inflight_request_bytes or lower max_request_bytes",
                l.max_inflight_request_bytes, l.max_request_bytes
            )));
        }
        if l.max_inspected_exchanges == 0 {
            return Err(ConfigError::Invalid(
                "[limits] max_inspected_exchanges = 0 would refuse every LLM request; set at least 1 (default 512)"
                    .into(),
            ));
        }
        for p in &self.providers {
            if !(p.upstream.starts_with("https://") || p.upstream.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "provider {:?} upstream {:?} must start with https:// or http://",
                    p.name, p.upstream
                )));
            }
        }
        Ok(())
    }

    /// Every host name that belongs to a provider (TLS interception list).
    pub fn provider_hosts(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().flat_map(|p| p.hosts.iter().map(String::as_str))
    }

    /// Whether a non-provider server name may be spliced at a provider address.
    pub fn may_splice(&self, server_name: &str) -> bool {
        let name = server_name.trim_end_matches('.');
        self.intercept
            .splice_server_names
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    name.len() > suffix.len() + 1
                        && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
                }
                None => name.eq_ignore_ascii_case(pattern),
            })
    }

    pub fn provider_for_host(&self, host: &str) -> Option<&ProviderConfig> {
        let host = host.trim_end_matches('.');
        self.providers
            .iter()
            .find(|p| p.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
    }

    /// Machine id for the fleet store: config, else /etc/machine-id, else hostname.
    pub fn machine_id(&self) -> String {
        if let Some(id) = &self.machine_id {
            return id.clone();
        }
        std::fs::read_to_string("/etc/machine-id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn issue_interface_keys_parse() {
        let c = Config::parse(
            r#"
[listen]
explicit = "127.0.0.1:8787"
transparent = "127.0.0.1:15443"
[ca]
dir = "/var/lib/promptwall/ca"
[audit]
url = "sqlite:///var/lib/promptwall/audit.db"
[upstream]
extra_roots = ["/path/to/extra-ca.pem"]
[upstream.resolve]
"api.anthropic.com" = "127.0.0.1:8443"
[intercept]
enabled = true
cgroup = "/sys/fs/cgroup/unified"
addresses = ["160.79.104.0/23"]
fail = "open"
"#,
        )
        .unwrap();
        assert_eq!(
            c.upstream.resolve["api.anthropic.com"],
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(c.intercept.fail, FailMode::Open);
        assert_eq!(c.intercept.cgroup.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Config::parse("[listen]\nexplicitt = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.contains("explicitt"), "{err}");
    }

    #[test]
    fn provider_lookup_ignores_case_and_trailing_dot() {
        let c = Config::default();
        assert_eq!(c.provider_for_host("API.Anthropic.com.").unwrap().name, "anthropic");
        assert!(c.provider_for_host("example.com").is_none());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The documented example must stay loadable and equal to the defaults.
    #[test]
    fn splice_names_match_exactly_or_by_subdomain_wildcard() {
        let c = Config::parse("[intercept]\nsplice_server_names = [\"cdn.example.com\", \"*.shared.test\"]").unwrap();
        assert!(c.may_splice("cdn.example.com"));
        assert!(c.may_splice("CDN.example.com."));
        assert!(c.may_splice("a.shared.test"));
        assert!(!c.may_splice("shared.test"));
        assert!(!c.may_splice("evilshared.test"));
        assert!(!c.may_splice("example.com"));
        assert!(!Config::default().may_splice("example.test"));
    }

    #[test]
    fn example_config_parses_to_defaults() {
        let text = include_str!("../../deploy/config.example.toml");
        let parsed = Config::parse(text).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn partial_upstream_table_keeps_mark_and_connect_timeout() {
        let c = Config::parse("[upstream]\nextra_roots = [\"/tmp/x.pem\"]\n").unwrap();
        assert_eq!(c.upstream.mark, 0x1fa1);
        assert_eq!(c.upstream.connect_timeout_ms, 10_000);
    }
}
