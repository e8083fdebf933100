//! The `[routing]` section: upstreams with their accounts, and ordered
//! rules. Parsed here and validated in one place ([`RoutingConfig::compile`]),
//! which turns it into the [`super::Router`] the route stage consults.
//!
//! ```toml
//! [routing.upstreams.cheap]
//! kind = "openai-compatible"          # anthropic | openai | openai-compatible
//! base_url = "https://api.deepseek.com/v1"
//! accounts = [{ name = "main", key_env = "DEEPSEEK_KEY" },
//!             { name = "backup", key_file = "/etc/promptwall/keys/deepseek2" }]
//!
//! [[routing.routes]]
//! name = "small-prompts-to-haiku"
//! models = ["claude-*"]
//! max_input_tokens = 4000
//! targets = ["client:claude-haiku-4-5"]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[routing]`. Empty (the default): every request goes where its client
/// addressed it, in its own shape, with its own credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Tried in order; the first whose conditions all hold decides.
    pub routes: Vec<RouteConfig>,
    /// Attempts per request across a route's targets (connect failures,
    /// 5xx, 429 and 529 before the first byte reaches the client).
    pub max_attempts: u32,
    /// The whole of a request's attempts, waiting for response heads
    /// included, stops after this many seconds.
    pub attempt_budget_secs: u64,
    /// Cooldown of an account after a failure without `Retry-After`: the
    /// first is this long, each next doubles, up to `max_cooldown_secs`.
    pub min_cooldown_secs: u64,
    pub max_cooldown_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self::with_defaults()
    }
}

impl RoutingConfig {
    pub fn with_defaults() -> Self {
        RoutingConfig {
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            max_attempts: 3,
            attempt_budget_secs: 120,
            min_cooldown_secs: 15,
            max_cooldown_secs: 300,
        }
    }
}

/// Which API family an upstream speaks, and so its default base URL, the
/// shapes it accepts and how it is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamKind {
    /// Messages, `x-api-key`, `anthropic-version`.
    Anthropic,
    /// Chat and Responses, `Authorization: Bearer`.
    Openai,
    /// Chat only unless `api` says otherwise (DeepSeek, OpenRouter,
    /// Mistral, vLLM, Ollama): `base_url` is required.
    OpenaiCompatible,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Anthropic => "anthropic",
            UpstreamKind::Openai => "openai",
            UpstreamKind::OpenaiCompatible => "openai-compatible",
        }
    }

    /// The provider family whose prices and token conventions apply.
    pub fn price_family(self) -> &'static str {
        match self {
            UpstreamKind::Anthropic => "anthropic",
            UpstreamKind::Openai | UpstreamKind::OpenaiCompatible => "openai",
        }
    }
}

/// The API an upstream is spoken to in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    Messages,
    Chat,
    Responses,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub kind: UpstreamKind,
    /// As the provider's SDK takes it: `https://api.anthropic.com`,
    /// `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`. Defaults
    /// for `anthropic` and `openai`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API to speak; default: the client's own when the upstream
    /// speaks it, else the kind's first (`messages`, `chat`).
    #[serde(default)]
    pub api: Option<Api>,
    /// Tried in order by the failover strategy. None: requests carry no
    /// credential (a local server).
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub name: String,
    /// Environment variable holding the API key (read once at start).
    #[serde(default)]
    pub key_env: Option<String>,
    /// File holding the API key (read once at start; trailing newline ignored).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// How a route orders its targets for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// In the order written; the next on failure.
    #[default]
    Failover,
    /// A different first target each request, in turn.
    RoundRobin,
    /// First targets in proportion to `weights` (smooth weighted round
    /// robin: deterministic, no burst on one target).
    Weighted,
    /// The target with the fewest requests in flight first.
    LeastUsed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// Globs on the model the client asked for (`claude-*`, an alias such
    /// as `claude-fast`). Empty: any model.
    #[serde(default)]
    pub models: Vec<String>,
    /// Coding tools as the audit names them (`claude-code`, `codex`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Local user names.
    #[serde(default)]
    pub users: Vec<String>,
    /// Globs on the client's executable path.
    #[serde(default)]
    pub executables: Vec<String>,
    /// `explicit` or `transparent`.
    #[serde(default)]
    pub listeners: Vec<String>,
    /// API shapes of the client's request (`anthropic.messages`, ...).
    #[serde(default)]
    pub shapes: Vec<String>,
    /// Estimated input tokens (the request's text / 4).
    #[serde(default)]
    pub min_input_tokens: Option<u64>,
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    #[serde(default)]
    pub has_tools: Option<bool>,
    #[serde(default)]
    pub has_images: Option<bool>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// `upstream`, `upstream:model` (an upstream of `[routing.upstreams]`,
    /// with the org's credential), `client` or `client:model` (where the
    /// client addressed it, with the client's own credential).
    pub targets: Vec<String>,
    #[serde(default)]
    pub strategy: Strategy,
    /// One per target, for `strategy = "weighted"`.
    #[serde(default)]
    pub weights: Vec<u32>,
}
