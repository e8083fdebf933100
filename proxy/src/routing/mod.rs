//! Routing: where each request goes, decided as a typed value apart from
//! sending it. The route stage asks [`Router::decide`] for a [`Decision`];
//! dispatch walks the [`Plan`]'s candidates in order, marking failures in
//! the [`Cooldowns`]. `promptwall route explain` prints the same decision
//! without sending anything.
//!
//! - `config`: the `[routing]` section and its validation (one place).
//! - `credential`: accounts' keys, read once, never printed.
//! - `cooldown`: per-account cooldowns and providers' retry headers.
//!
//! With no rule configured every request is [`Decision::Direct`]: where the
//! client addressed it, in its shape, with its credential.

pub mod config;
pub mod cooldown;
pub mod credential;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use promptwall_llm::ApiShape;
use serde_json::Value;

pub use config::{Api, RoutingConfig, Strategy, UpstreamKind};
pub use cooldown::{Clock, Cooldowns, SystemClock};
pub use credential::Credential;

/// What the router knows about a request when it decides.
#[derive(Debug, Clone, Default)]
pub struct RouteQuery<'a> {
    pub listener: &'a str,
    pub shape: Option<ApiShape>,
    pub model: Option<&'a str>,
    pub tool: &'a str,
    pub user: Option<&'a str>,
    pub executable: Option<&'a str>,
    pub features: Features,
}

/// Facts read from the request body for rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// The text of the request / 4: the usual rule of thumb, cheap enough
    /// for every request; close to tokenizers' counts on English and code.
    pub input_tokens: u64,
    pub has_tools: bool,
    pub has_images: bool,
    pub stream: bool,
}

impl Features {
    /// Read from a request body in any LLM shape.
    pub fn of(body: &Value) -> Features {
        let mut f = Features {
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            has_tools: body
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty()),
            ..Features::default()
        };
        let mut text_bytes = 0u64;
        // Gemini's native bodies: `systemInstruction` and `contents`.
        for key in [
            "system",
            "messages",
            "instructions",
            "input",
            "tools",
            "systemInstruction",
            "contents",
        ] {
            if let Some(v) = body.get(key) {
                walk(v, &mut text_bytes, &mut f.has_images);
            }
        }
        f.input_tokens = text_bytes.div_ceil(4);
        f
    }
}

/// Sums the text of `v`, leaving out images (their base64 is not tokens),
/// and notes whether there were any.
fn walk(v: &Value, text: &mut u64, images: &mut bool) {
    match v {
        Value::String(s) => *text += s.len() as u64,
        Value::Array(a) => a.iter().for_each(|x| walk(x, text, images)),
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
            // Gemini's inline bytes are a part's `inlineData`.
            let gemini_inline = o.contains_key("inlineData") || o.contains_key("inline_data");
            if matches!(ty, "image" | "image_url" | "input_image") || gemini_inline {
                *images = true;
                return;
            }
            for (k, x) in o {
                if k != "type" {
                    walk(x, text, images);
                }
            }
        }
        _ => {}
    }
}

/// A configured upstream, its credentials loaded.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub kind: UpstreamKind,
    pub base_url: String,
    pub api: Option<Api>,
    pub accounts: Vec<Account>,
}

#[derive(Debug)]
pub struct Account {
    pub name: String,
    pub credential: Option<Credential>,
}

impl Upstream {
    /// The shape this upstream is spoken to in, for a client speaking `client`.
    pub fn shape_for(&self, client: ApiShape) -> ApiShape {
        let api = self.api.unwrap_or(match self.kind {
            UpstreamKind::Anthropic => Api::Messages,
            UpstreamKind::Openai if client == ApiShape::OPENAI_RESPONSES => Api::Responses,
            UpstreamKind::Openai | UpstreamKind::OpenaiCompatible => Api::Chat,
        });
        match api {
            // count_tokens stays count_tokens on an Anthropic upstream.
            Api::Messages if client == ApiShape::ANTHROPIC_COUNT_TOKENS => client,
            Api::Messages => ApiShape::ANTHROPIC_MESSAGES,
            Api::Chat => ApiShape::OPENAI_CHAT,
            Api::Responses => ApiShape::OPENAI_RESPONSES,
        }
    }

    /// The URL of `shape`'s endpoint on this upstream. OpenAI base URLs end
    /// in `/v1` (as their SDKs take them); Anthropic's do not.
    pub fn url(&self, shape: ApiShape) -> String {
        let base = self.base_url.trim_end_matches('/');
        let path = if shape == ApiShape::ANTHROPIC_COUNT_TOKENS {
            "/v1/messages/count_tokens"
        } else if shape == ApiShape::OPENAI_CHAT {
            "/v1/chat/completions"
        } else if shape == ApiShape::OPENAI_RESPONSES {
            "/v1/responses"
        } else {
            "/v1/messages"
        };
        match self.kind {
            UpstreamKind::Anthropic => format!("{base}{path}"),
            UpstreamKind::Openai | UpstreamKind::OpenaiCompatible => {
                format!("{base}{}", path.strip_prefix("/v1").unwrap_or(path))
            }
        }
    }

    /// Replaces whatever credential the client sent with `account`'s, and
    /// keeps only headers that carry no credential and no other provider's
    /// options (an allow-list: an unknown header could be a credential).
    pub fn outbound_headers(&self, client: &HeaderMap, account: usize) -> HeaderMap {
        const KEPT: [&str; 3] = ["accept", "content-type", "user-agent"];
        let mut out = HeaderMap::new();
        for name in KEPT {
            if let Some(v) = client.get(name) {
                out.insert(HeaderName::from_static(name), v.clone());
            }
        }
        out.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.kind == UpstreamKind::Anthropic {
            out.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
            // Betas the client relies on (1M context, context management)
            // still apply on the org's account; sign-in betas do not.
            let betas: Vec<&str> = client
                .get_all("anthropic-beta")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|b| !b.is_empty() && !b.starts_with("oauth-"))
                .collect();
            if let Ok(v) = HeaderValue::from_str(&betas.join(",")) {
                if !betas.is_empty() {
                    out.insert("anthropic-beta", v);
                }
            }
        }
        let key = self.accounts.get(account).and_then(|a| a.credential.as_ref());
        if let Some(key) = key {
            let (name, value) = match self.kind {
                UpstreamKind::Anthropic => ("x-api-key", key.expose().to_string()),
                UpstreamKind::Openai | UpstreamKind::OpenaiCompatible => {
                    ("authorization", format!("Bearer {}", key.expose()))
                }
            };
            if let Ok(mut v) = HeaderValue::from_str(&value) {
                v.set_sensitive(true);
                out.insert(HeaderName::from_static(name), v);
            }
        }
        out
    }
}

/// Where one attempt goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Where the client addressed it, with its own credential and headers.
    Client,
    Upstream {
        upstream: Arc<Upstream>,
        account: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub destination: Destination,
    /// The model to ask for; None keeps the client's.
    pub model: Option<String>,
}

impl Candidate {
    /// `upstream/account`, `upstream`, or `client`: the cooldown key and
    /// the audit's name for it.
    pub fn label(&self) -> String {
        match &self.destination {
            Destination::Client => "client".into(),
            Destination::Upstream { upstream, account } => match upstream.accounts.get(*account) {
                Some(a) => format!("{}/{}", upstream.name, a.name),
                None => upstream.name.clone(),
            },
        }
    }

    /// The shape this attempt speaks upstream.
    pub fn shape_for(&self, client: ApiShape) -> ApiShape {
        match &self.destination {
            Destination::Client => client,
            Destination::Upstream { upstream, .. } => upstream.shape_for(client),
        }
    }
}

/// The router's answer for one request.
#[derive(Debug, Clone)]
pub enum Decision {
    /// No rule matched: exactly as if there were no routing.
    Direct,
    Routed(Plan),
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// The matching rule's name.
    pub route: String,
    /// Candidates to try, in order; those cooling down are left out.
    pub candidates: Vec<Candidate>,
    /// Candidates left out because they cool down, and for how long.
    pub cooling: Vec<(Candidate, Duration)>,
}

impl Plan {
    /// When every candidate cools down: the shortest wait, for the
    /// client's `Retry-After`.
    pub fn all_cooling(&self) -> Option<Duration> {
        if !self.candidates.is_empty() {
            return None;
        }
        self.cooling.iter().map(|(_, d)| *d).min()
    }
}

enum TargetSpec {
    Client {
        model: Option<String>,
    },
    Upstream {
        upstream: Arc<Upstream>,
        model: Option<String>,
    },
}

struct Rule {
    name: String,
    models: Option<GlobSet>,
    executables: Option<GlobSet>,
    tools: Vec<String>,
    users: Vec<String>,
    listeners: Vec<String>,
    shapes: Vec<String>,
    min_input_tokens: Option<u64>,
    max_input_tokens: Option<u64>,
    has_tools: Option<bool>,
    has_images: Option<bool>,
    stream: Option<bool>,
    targets: Vec<TargetSpec>,
    strategy: Strategy,
    weights: Vec<i64>,
    /// Round robin's next start.
    turn: AtomicUsize,
    /// Smooth weighted round robin's current weights.
    current: Mutex<Vec<i64>>,
    /// Requests in flight per target, for least-used.
    in_flight: Vec<Arc<AtomicUsize>>,
}

impl Rule {
    fn matches(&self, q: &RouteQuery<'_>) -> bool {
        let any = |list: &[String], v: Option<&str>| list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v));
        let glob =
            |set: &Option<GlobSet>, v: Option<&str>| set.as_ref().is_none_or(|s| v.is_some_and(|v| s.is_match(v)));
        let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
        let f = q.features;
        glob(&self.models, q.model)
            && glob(&self.executables, q.executable)
            && any(&self.tools, Some(q.tool))
            && any(&self.users, q.user)
            && any(&self.listeners, Some(q.listener))
            && any(&self.shapes, q.shape.map(|s| s.as_str()))
            && self.min_input_tokens.is_none_or(|m| f.input_tokens >= m)
            && self.max_input_tokens.is_none_or(|m| f.input_tokens < m)
            && flag(self.has_tools, f.has_tools)
            && flag(self.has_images, f.has_images)
            && flag(self.stream, f.stream)
    }

    /// Target indices in the order this request tries them. `advance`
    /// moves round robin and weighted state (false for `route explain`).
    fn order(&self, advance: bool) -> Vec<usize> {
        let n = self.targets.len();
        let mut idx: Vec<usize> = (0..n).collect();
        match self.strategy {
            Strategy::Failover => {}
            Strategy::RoundRobin => {
                let start = if advance {
                    self.turn.fetch_add(1, Ordering::Relaxed)
                } else {
                    self.turn.load(Ordering::Relaxed)
                };
                idx.rotate_left(start % n);
            }
            Strategy::Weighted => {
                // nginx's smooth weighted round robin: add each weight, pick
                // the largest, subtract the total from it.
                let mut cur = self.current.lock().expect("weights lock");
                let mut next = cur.clone();
                let total: i64 = self.weights.iter().sum();
                for (c, w) in next.iter_mut().zip(&self.weights) {
                    *c += w;
                }
                let best = (0..n).max_by_key(|&i| (next[i], std::cmp::Reverse(i))).unwrap_or(0);
                next[best] -= total;
                if advance {
                    *cur = next;
                }
                idx.remove(best);
                idx.insert(0, best);
            }
            Strategy::LeastUsed => {
                idx.sort_by_key(|&i| self.in_flight[i].load(Ordering::Relaxed));
            }
        }
        idx
    }
}

/// The compiled `[routing]` section.
pub struct Router {
    rules: Vec<Rule>,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub cooldowns: Cooldowns,
    pub max_attempts: u32,
    pub attempt_budget: Duration,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("rules", &self.rules.iter().map(|r| &r.name).collect::<Vec<_>>())
            .field("upstreams", &self.upstreams.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Keeps a least-used target's in-flight count up while an attempt runs.
pub struct InFlight(Option<Arc<AtomicUsize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Router {
    /// Validates `config` (every error says where and how to fix it) and
    /// loads the accounts' keys.
    pub fn compile(config: &RoutingConfig, clock: Arc<dyn Clock>) -> Result<Router, String> {
        Self::build(config, clock, true)
    }

    /// A router for `route explain`: every check, no keys read, no live
    /// cooldowns (those are the running agent's).
    pub fn for_explain(config: &RoutingConfig) -> Result<Router, String> {
        Self::build(config, Arc::new(SystemClock), false)
    }

    /// Every check of [`Router::compile`] but reading keys (commands that
    /// load the config without serving need not read the agent's secrets).
    pub fn check(config: &RoutingConfig) -> Result<(), String> {
        Self::build(config, Arc::new(SystemClock), false).map(|_| ())
    }

    fn build(config: &RoutingConfig, clock: Arc<dyn Clock>, load_keys: bool) -> Result<Router, String> {
        let mut upstreams = BTreeMap::new();
        for (name, u) in &config.upstreams {
            if name == "client" {
                return Err("[routing.upstreams.client]: `client` names where the client addressed a request; pick another name".into());
            }
            let base_url = match (&u.base_url, u.kind) {
                (Some(b), _) => b.clone(),
                (None, UpstreamKind::Anthropic) => "https://api.anthropic.com".into(),
                (None, UpstreamKind::Openai) => "https://api.openai.com/v1".into(),
                (None, UpstreamKind::OpenaiCompatible) => {
                    return Err(format!(
                        "[routing.upstreams.{name}]: kind openai-compatible needs base_url (e.g. \"http://127.0.0.1:11434/v1\")"
                    ))
                }
            };
            let parsed: http::Uri = base_url
                .parse()
                .map_err(|e| format!("[routing.upstreams.{name}] base_url {base_url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
                return Err(format!(
                    "[routing.upstreams.{name}] base_url {base_url:?} must be an http:// or https:// URL with a host"
                ));
            }
            if let (Some(api), UpstreamKind::Anthropic) = (u.api, u.kind) {
                if api != Api::Messages {
                    return Err(format!(
                        "[routing.upstreams.{name}]: kind anthropic speaks only api = \"messages\""
                    ));
                }
            }
            if u.kind != UpstreamKind::Anthropic && u.api == Some(Api::Messages) {
                return Err(format!(
                    "[routing.upstreams.{name}]: kind {} does not speak the Messages API; use chat or responses",
                    u.kind.as_str()
                ));
            }
            let mut accounts = Vec::new();
            for a in &u.accounts {
                if accounts.iter().any(|x: &Account| x.name == a.name) {
                    return Err(format!(
                        "[routing.upstreams.{name}]: two accounts are named {:?}",
                        a.name
                    ));
                }
                accounts.push(Account {
                    name: a.name.clone(),
                    credential: if load_keys { Credential::load(name, a)? } else { None },
                });
            }
            upstreams.insert(
                name.clone(),
                Arc::new(Upstream {
                    name: name.clone(),
                    kind: u.kind,
                    base_url,
                    api: u.api,
                    accounts,
                }),
            );
        }
        let mut rules: Vec<Rule> = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            let at = format!("[[routing.routes]] #{} ({:?})", i + 1, r.name);
            if r.name.trim().is_empty() {
                return Err(format!("{at}: give the route a name (the audit records it)"));
            }
            if rules.iter().any(|x| x.name == r.name) {
                return Err(format!("{at}: another route has this name; names must be unique"));
            }
            if let Some(prev) = rules.iter().find(|x| x.catches_all()) {
                return Err(format!(
                    "{at} can never match: route {:?} before it has no conditions and takes every request; move it last or give it conditions",
                    prev.name
                ));
            }
            if r.targets.is_empty() {
                return Err(format!(
                    "{at}: targets is empty; name at least one (`client`, `upstream` or `upstream:model`)"
                ));
            }
            let mut targets = Vec::new();
            for t in &r.targets {
                let (who, model) = match t.split_once(':') {
                    Some((w, m)) if !m.is_empty() => (w, Some(m.to_string())),
                    Some((w, _)) => (w, None),
                    None => (t.as_str(), None),
                };
                if who == "client" {
                    targets.push(TargetSpec::Client { model });
                    continue;
                }
                let upstream = upstreams.get(who).cloned().ok_or_else(|| {
                    let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                    format!(
                        "{at}: target {t:?} names upstream {who:?}, which is not in [routing.upstreams] (known: {}); add it or use `client`",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )
                })?;
                targets.push(TargetSpec::Upstream { upstream, model });
            }
            let weights: Vec<i64> = match r.strategy {
                Strategy::Weighted if r.weights.len() != r.targets.len() => {
                    return Err(format!(
                        "{at}: strategy weighted needs one weight per target ({} targets, {} weights)",
                        r.targets.len(),
                        r.weights.len()
                    ))
                }
                Strategy::Weighted if r.weights.iter().all(|w| *w == 0) => {
                    return Err(format!("{at}: every weight is 0; give at least one target a weight"))
                }
                _ if !r.weights.is_empty() && r.strategy != Strategy::Weighted => {
                    return Err(format!("{at}: weights only apply to strategy = \"weighted\""))
                }
                _ => r.weights.iter().map(|w| i64::from(*w)).collect(),
            };
            if let (Some(lo), Some(hi)) = (r.min_input_tokens, r.max_input_tokens) {
                if lo >= hi {
                    return Err(format!(
                        "{at}: min_input_tokens {lo} ≥ max_input_tokens {hi} matches nothing"
                    ));
                }
            }
            for l in &r.listeners {
                if !matches!(l.as_str(), "explicit" | "transparent") {
                    return Err(format!(
                        "{at}: listener {l:?} is neither \"explicit\" nor \"transparent\""
                    ));
                }
            }
            let n = targets.len();
            rules.push(Rule {
                name: r.name.clone(),
                models: globs(&r.models, &at, "models")?,
                executables: globs(&r.executables, &at, "executables")?,
                tools: r.tools.clone(),
                users: r.users.clone(),
                listeners: r.listeners.clone(),
                shapes: r.shapes.clone(),
                min_input_tokens: r.min_input_tokens,
                max_input_tokens: r.max_input_tokens,
                has_tools: r.has_tools,
                has_images: r.has_images,
                stream: r.stream,
                targets,
                strategy: r.strategy,
                weights,
                turn: AtomicUsize::new(0),
                current: Mutex::new(vec![0; n]),
                in_flight: (0..n).map(|_| Arc::new(AtomicUsize::new(0))).collect(),
            });
        }
        const DAY: u64 = 86_400;
        for (key, value) in [
            ("min_cooldown_secs", config.min_cooldown_secs),
            ("max_cooldown_secs", config.max_cooldown_secs),
            ("attempt_budget_secs", config.attempt_budget_secs),
        ] {
            if value > DAY {
                return Err(format!("[routing] {key} = {value} is over a day; lower it"));
            }
        }
        if config.max_attempts == 0 {
            return Err("[routing] max_attempts = 0 would send nothing; set at least 1 (default 3)".into());
        }
        Ok(Router {
            rules,
            upstreams,
            cooldowns: Cooldowns::new(
                clock,
                Duration::from_secs(config.min_cooldown_secs),
                Duration::from_secs(config.max_cooldown_secs),
            ),
            max_attempts: config.max_attempts,
            attempt_budget: Duration::from_secs(config.attempt_budget_secs.max(1)),
        })
    }

    /// Whether any rule exists (none: no body features need reading).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule that may match a request whose body is not known yet
    /// (a WebSocket upgrade: its model and size come per message), judged
    /// by who sends it and its shape alone.
    pub fn may_route(&self, q: &RouteQuery<'_>) -> Option<&str> {
        self.rules.iter().find(|r| r.may_match(q)).map(|r| r.name.as_str())
    }

    /// The decision for one request; moves round-robin and weighted turns.
    pub fn decide(&self, q: &RouteQuery<'_>) -> Decision {
        self.decide_inner(q, true)
    }

    /// The decision `decide` would make now, without taking a turn.
    pub fn explain(&self, q: &RouteQuery<'_>) -> Decision {
        self.decide_inner(q, false)
    }

    fn decide_inner(&self, q: &RouteQuery<'_>, advance: bool) -> Decision {
        let Some(rule) = self.rules.iter().find(|r| r.matches(q)) else {
            return Decision::Direct;
        };
        let mut candidates = Vec::new();
        let mut cooling = Vec::new();
        for i in rule.order(advance) {
            let expanded: Vec<Candidate> = match &rule.targets[i] {
                TargetSpec::Client { model } => vec![Candidate {
                    destination: Destination::Client,
                    model: model.clone(),
                }],
                TargetSpec::Upstream { upstream, model } => {
                    let accounts = upstream.accounts.len().max(1);
                    (0..accounts)
                        .map(|account| Candidate {
                            destination: Destination::Upstream {
                                upstream: upstream.clone(),
                                account,
                            },
                            model: model.clone(),
                        })
                        .collect()
                }
            };
            for c in expanded {
                match self.cooldowns.remaining(&c.label()) {
                    Some(wait) => cooling.push((c, wait)),
                    None => candidates.push(c),
                }
            }
        }
        // Only as many as dispatch will try: translating the rest would be
        // work (and memory) for nothing.
        candidates.truncate(self.max_attempts as usize);
        Decision::Routed(Plan {
            route: rule.name.clone(),
            candidates,
            cooling,
        })
    }

    /// Counts an attempt on `candidate` in flight for least-used until the
    /// guard drops.
    pub fn in_flight(&self, route: &str, candidate: &Candidate) -> InFlight {
        let Some(rule) = self.rules.iter().find(|r| r.name == route) else {
            return InFlight(None);
        };
        let index = rule.targets.iter().position(|t| match (t, &candidate.destination) {
            (TargetSpec::Client { .. }, Destination::Client) => true,
            (TargetSpec::Upstream { upstream, .. }, Destination::Upstream { upstream: u, .. }) => {
                Arc::ptr_eq(upstream, u)
            }
            _ => false,
        });
        InFlight(index.map(|i| {
            let c = rule.in_flight[i].clone();
            c.fetch_add(1, Ordering::Relaxed);
            c
        }))
    }
}

impl Rule {
    /// `matches` on the conditions known before the body.
    fn may_match(&self, q: &RouteQuery<'_>) -> bool {
        let any = |list: &[String], v: Option<&str>| list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v));
        let glob =
            |set: &Option<GlobSet>, v: Option<&str>| set.as_ref().is_none_or(|s| v.is_some_and(|v| s.is_match(v)));
        glob(&self.executables, q.executable)
            && any(&self.tools, Some(q.tool))
            && any(&self.users, q.user)
            && any(&self.listeners, Some(q.listener))
            && any(&self.shapes, q.shape.map(|s| s.as_str()))
    }

    fn catches_all(&self) -> bool {
        self.models.is_none()
            && self.executables.is_none()
            && self.tools.is_empty()
            && self.users.is_empty()
            && self.listeners.is_empty()
            && self.shapes.is_empty()
            && self.min_input_tokens.is_none()
            && self.max_input_tokens.is_none()
            && self.has_tools.is_none()
            && self.has_images.is_none()
            && self.stream.is_none()
    }
}

fn globs(patterns: &[String], at: &str, field: &str) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("{at}: {field} pattern {p:?} is not a glob: {e}"))?);
    }
    b.build().map(Some).map_err(|e| format!("{at}: {field}: {e}"))
}

#[cfg(test)]
mod tests;
