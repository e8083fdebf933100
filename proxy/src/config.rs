//! The proxy's settings. It owns the `[listen]`, `[upstream]`, `[pipeline]`,
//! `[limits]` and `[[providers]]` sections of the config file; the agent
//! composes the file (`promptwall_agent::config::AgentConfig`) and hands the
//! proxy these sections plus small typed values for what it reads from
//! sections other crates own: [`AuditSettings`] from `[audit]`,
//! [`TransparentConfig`] from `[intercept]`, and the org CA directory from `[ca]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use promptwall_llm::policy::{Action, CustomDetector, PipelineConfig};

/// The response header carrying the exchange's request id, by default. Not
/// `x-request-id`: providers send their own id there and clients read it.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-promptwall-request-id";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config is inconsistent: {0}")]
    Invalid(String),
}

/// Everything the proxy runs with. Not a file format: the agent builds it
/// from its composed config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: ListenConfig,
    pub upstream: UpstreamConfig,
    pub pipeline: PipelineConfig,
    pub limits: LimitsConfig,
    /// Providers are data: hosts, API paths and upstream scheme.
    pub providers: Vec<ProviderConfig>,
    /// Stable id of this machine in the fleet store; default: /etc/machine-id.
    pub machine_id: Option<String>,
    /// What the proxy reads from `[audit]` for the rows it writes.
    pub audit: AuditSettings,
    /// What the transparent listener reads from `[intercept]`.
    pub transparent: TransparentConfig,
    /// `[ca] dir`: the org CA, refused as an issuer on the upstream leg.
    pub ca_dir: PathBuf,
    /// `[routing]`: upstreams, accounts and rules (empty: no routing).
    pub routing: crate::routing::RoutingConfig,
    /// `[quota]`: limits by identity (empty: nothing is counted or refused).
    pub quota: crate::quota::QuotaConfig,
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
    /// HTTP admin listener: Prometheus `/metrics`. None: not served.
    /// Unauthenticated, so keep it on loopback or a scrape-only network.
    pub admin_http: Option<SocketAddr>,
    /// Response header, on every listener, carrying promptwall's id of the
    /// exchange (the audit row's request id). Empty: no header is added.
    pub request_id_header: String,
}

/// The `[audit]` settings the proxy reads (the section itself belongs to
/// `promptwall_audit::AuditConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    /// The store's URL: where free space is checked (SQLite only).
    pub url: String,
    pub capture_bodies: bool,
    pub capture_max_bytes: usize,
    /// The HMAC key file of blocked-secret fingerprints.
    pub fingerprint_key: PathBuf,
    /// Refuse new exchanges while the store has less free space (0: off).
    pub min_free_bytes: u64,
    /// Prices added to the built-in table (cost limits use them too).
    pub price_table: Option<PathBuf>,
}

// The same defaults as `promptwall_audit::AuditConfig`; the agent's tests
// check that its composed defaults give exactly `Config::default()`.
impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            url: "sqlite:///var/lib/promptwall/audit.db".into(),
            capture_bodies: false,
            capture_max_bytes: 256 * 1024,
            fingerprint_key: "/var/lib/promptwall/fingerprint.key".into(),
            min_free_bytes: 64 * 1024 * 1024,
            price_table: None,
        }
    }
}

/// What the transparent listener decides per connection; written in the
/// `[intercept]` section (see the agent's `InterceptConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct TransparentConfig {
    /// `fail = "closed"`: a learned passthrough is recorded but the
    /// connection keeps being intercepted (blocked).
    pub fail_closed: bool,
    /// Splice (user, exe, server name) triples undecrypted after this many
    /// rejections of our certificate (pinning); 0 never does.
    pub learn_passthrough_after: u32,
    /// A learned passthrough is forgotten after this long (then counted afresh).
    pub learned_passthrough_ttl_secs: u64,
    /// Server names (exact, or `*.example.com`) that may be spliced
    /// undecrypted when they reach a provider address.
    pub splice_server_names: Vec<String>,
    /// Any other non-provider name at a provider address.
    pub foreign_sni: ForeignSni,
}

impl Default for TransparentConfig {
    fn default() -> Self {
        Self {
            fail_closed: false,
            learn_passthrough_after: 3,
            learned_passthrough_ttl_secs: 3600,
            splice_server_names: Vec::new(),
            foreign_sni: ForeignSni::Resolving,
        }
    }
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
/// `[intercept] foreign_sni`: "resolving" splices a non-provider name at a
/// provider address when its own DNS answer holds that address; "refuse"
/// refuses it.
pub enum ForeignSni {
    #[default]
    Resolving,
    Refuse,
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
            admin_http: None,
            request_id_header: DEFAULT_REQUEST_ID_HEADER.into(),
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
            upstream: UpstreamConfig::default(),
            pipeline: PipelineConfig::default(),
            limits: LimitsConfig::default(),
            providers: default_providers(),
            machine_id: None,
            audit: AuditSettings::default(),
            transparent: TransparentConfig::default(),
            ca_dir: "/var/lib/promptwall/ca".into(),
            routing: crate::routing::RoutingConfig::default(),
            quota: crate::quota::QuotaConfig::default(),
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
        // Gemini's native API (Gemini CLI, the google-genai SDKs): its
        // `models/{model}:generateContent` and friends are inspected as the
        // Gemini shapes, its OpenAI-compatible paths as Chat Completions.
        provider("gemini", &["generativelanguage.googleapis.com"], &["/v1beta/"]),
        // GitHub Copilot's Chat-Completions-like API, per plan; its token
        // exchange (api.github.com) is not a provider host and is left alone.
        provider(
            "copilot",
            &[
                "api.githubcopilot.com",
                "api.individual.githubcopilot.com",
                "api.business.githubcopilot.com",
                "api.enterprise.githubcopilot.com",
            ],
            &[],
        ),
        // OpenAI-compatible APIs (Chat Completions under their own prefixes).
        provider("mistral", &["api.mistral.ai"], &[]),
        provider("deepseek", &["api.deepseek.com"], &[]),
        provider("openrouter", &["openrouter.ai"], &[]),
        provider("groq", &["api.groq.com"], &[]),
        provider("xai", &["api.x.ai"], &[]),
    ]
}

/// A catalog entry whose upstream is its first host over HTTPS. Explicit
/// mode reaches one without `paths` by its `/<name>/` prefix.
fn provider(name: &str, hosts: &[&str], paths: &[&str]) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        upstream: format!("https://{}", hosts[0]),
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

impl Config {
    /// Checks the proxy's sections; the error says what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::routing::Router::check(&self.routing)
            .map_err(|why| ConfigError::Invalid(format!("[routing]: {why}")))?;
        self.quota
            .check()
            .map_err(|why| ConfigError::Invalid(format!("[quota]: {why}")))?;
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
        let header = &self.listen.request_id_header;
        // Replacing a header that frames or routes the answer would break it.
        const RESERVED: [&str; 10] = [
            "connection",
            "content-length",
            "content-type",
            "content-encoding",
            "transfer-encoding",
            "upgrade",
            "keep-alive",
            "trailer",
            "te",
            "host",
        ];
        if RESERVED.iter().any(|r| header.eq_ignore_ascii_case(r)) {
            return Err(ConfigError::Invalid(format!(
                "[listen] request_id_header = {header:?} would replace a header that frames the answer; pick your own name (default \"x-promptwall-request-id\")"
            )));
        }
        if !header.is_empty() && http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(ConfigError::Invalid(format!(
                "[listen] request_id_header = {header:?} is not a valid HTTP header name; use letters, digits and '-' (default \"x-promptwall-request-id\"), or \"\" to add no header"
            )));
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
        self.transparent
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
        machine_id(self.machine_id.as_deref())
    }
}

/// `configured`, else /etc/machine-id, else the hostname, else "unknown".
pub fn machine_id(configured: Option<&str>) -> String {
    if let Some(id) = configured {
        return id.to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_lookup_ignores_case_and_trailing_dot() {
        let c = Config::default();
        assert_eq!(c.provider_for_host("API.Anthropic.com.").unwrap().name, "anthropic");
        assert!(c.provider_for_host("example.com").is_none());
    }

    #[test]
    fn splice_names_match_exactly_or_by_subdomain_wildcard() {
        let mut c = Config::default();
        c.transparent.splice_server_names = vec!["cdn.example.com".into(), "*.shared.test".into()];
        assert!(c.may_splice("cdn.example.com"));
        assert!(c.may_splice("CDN.example.com."));
        assert!(c.may_splice("a.shared.test"));
        assert!(!c.may_splice("shared.test"));
        assert!(!c.may_splice("evilshared.test"));
        assert!(!c.may_splice("example.com"));
        assert!(!Config::default().may_splice("example.test"));
    }

    #[test]
    fn partial_upstream_table_keeps_mark_and_connect_timeout() {
        let u: UpstreamConfig = toml::from_str("extra_roots = [\"/tmp/x.pem\"]\n").unwrap();
        assert_eq!(u.mark, 0x1fa1);
        assert_eq!(u.connect_timeout_ms, 10_000);
    }

    #[test]
    fn the_request_id_header_defaults_to_promptwalls_own_name_and_may_be_empty() {
        let mut c = Config::default();
        assert_eq!(c.listen.request_id_header, "x-promptwall-request-id");
        c.validate().unwrap();
        c.listen.request_id_header = String::new();
        c.validate().unwrap();
    }

    #[test]
    fn a_request_id_header_that_would_replace_a_framing_header_is_rejected() {
        let mut c = Config::default();
        c.listen.request_id_header = "Content-Length".into();
        assert!(c.validate().unwrap_err().to_string().contains("request_id_header"));
    }

    #[test]
    fn a_request_id_header_that_is_not_a_header_name_is_rejected_naming_the_key() {
        let mut c = Config::default();
        c.listen.request_id_header = "x request id".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("request_id_header") && err.contains("x request id"),
            "{err}"
        );
    }
}
