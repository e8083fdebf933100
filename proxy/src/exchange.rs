//! One request as it travels the request path: the only value the stages
//! read and write, and exactly one audit row when it ends.
//!
//! An [`Exchange`] is created when a request (or a refused or spliced
//! connection, or one WebSocket message) starts, filled in by the request
//! path's stages, and turned into a [`promptwall_audit::AuditRecord`] by
//! [`Exchange::into_record`] when it is committed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{StatusCode, Uri};
use promptwall_audit::{AuditRecord, Fingerprint};
use promptwall_llm::{ApiShape, Usage};

use crate::origin::{ClientIdentity, ConnectionOrigin};

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Explicit,
    Transparent,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Explicit => "explicit",
            Listener::Transparent => "transparent",
        }
    }
}

/// Per-connection facts the request handler needs.
#[derive(Debug, Clone)]
pub struct ConnContext {
    pub listener: Listener,
    pub peer: SocketAddr,
    /// TLS server name the client asked for (transparent and explicit-TLS).
    pub server_name: Option<String>,
    pub origin: Option<ConnectionOrigin>,
    /// The local client process, when known without a redirect record
    /// (explicit listener: found through /proc/net/tcp).
    pub identity: Option<ClientIdentity>,
}

/// What became of the request, as the audit row names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Forwarded unchanged.
    #[default]
    Allowed,
    /// Forwarded with placeholders in place of personal data.
    Redacted,
    /// Refused by policy (a secret, a connection around inspection).
    Blocked,
    /// Ended by an error (bad request, provider unreachable, audit down).
    Error,
    /// Refused by a limit (`[quota]`): a 429.
    Limited,
    /// Relayed undecrypted (a name promptwall does not inspect).
    Passthrough,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Redacted => "redacted",
            Verdict::Blocked => "blocked",
            Verdict::Error => "error",
            Verdict::Limited => "limited",
            Verdict::Passthrough => "passthrough",
        }
    }
}

impl From<promptwall_llm::Verdict> for Verdict {
    fn from(v: promptwall_llm::Verdict) -> Self {
        match v {
            promptwall_llm::Verdict::Allowed => Verdict::Allowed,
            promptwall_llm::Verdict::Redacted => Verdict::Redacted,
            promptwall_llm::Verdict::Blocked => Verdict::Blocked,
        }
    }
}

/// What kind of traffic the row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// An HTTP request (or WebSocket message) in this API shape
    /// (`ApiShape::OTHER` for non-LLM paths on provider hosts).
    Api(ApiShape),
    /// A connection closed because relaying it would bypass inspection.
    Refused,
    /// A TLS connection relayed undecrypted.
    Spliced,
}

impl Traffic {
    pub fn as_str(self) -> &'static str {
        match self {
            Traffic::Api(shape) => shape.as_str(),
            Traffic::Refused => "refused",
            Traffic::Spliced => "passthrough",
        }
    }
}

/// A per-exchange id: sent to the client in a response header and stored in
/// the audit row, so a developer's error message is one query away from its
/// row. UUIDv7: time-ordered, so ids of one hour sort together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn new() -> Self {
        RequestId(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the `n`th message of the connection this id names (a
    /// WebSocket): `<id>-<n>`, so the upgrade's id, which its client got in
    /// the response header, finds every message's row by prefix.
    pub fn message(&self, n: u64) -> RequestId {
        RequestId(format!("{}-{n}", self.0))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a request goes: the provider the client addressed, resolved by the
/// admit stage from the TLS server name or the explicit listener's path.
#[derive(Debug, Clone)]
pub struct Target {
    /// Configured provider name (`anthropic`, `openai`, ...).
    pub provider: String,
    /// Absolute upstream URI, path in canonical form.
    pub uri: Uri,
    /// Upstream host, for messages and the audit row.
    pub host: String,
    /// Dial this address, not the name's: the original destination of the
    /// intercepted connection this request came on, while the request goes
    /// to the host that connection named. None for everything else (the
    /// explicit listener, a route to another upstream).
    pub dial: Option<std::net::SocketAddr>,
}

/// The client process, as far as it is known.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub identity: Option<ClientIdentity>,
    /// Coding tool name (claude-code, codex, aider, ...).
    pub tool: String,
    pub socket_cookie: Option<u64>,
    /// The address a transparently redirected connection was headed to.
    pub original_dst: Option<SocketAddr>,
    /// The explicit listener's token that authenticated the request.
    pub token: Option<std::sync::Arc<crate::tokens::Grant>>,
}

impl Client {
    pub fn from_origin(origin: Option<&ConnectionOrigin>, fallback: Option<&ClientIdentity>) -> Self {
        Client {
            identity: origin.map(|o| o.identity.clone()).or_else(|| fallback.cloned()),
            tool: String::new(),
            socket_cookie: origin.and_then(|o| o.socket_cookie),
            original_dst: origin.map(|o| o.original_dst),
            token: None,
        }
    }
}

/// One request, typed end to end.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub id: RequestId,
    pub started: Instant,
    /// Wall-clock start, RFC3339 UTC.
    pub ts: String,
    pub listener: Listener,
    pub client: Client,
    pub method: String,
    pub path: String,
    pub traffic: Traffic,
    /// Set once the admit stage resolved where the request is addressed.
    pub target: Option<Target>,
    pub model: Option<String>,
    /// Findings per detector kind.
    pub findings: BTreeMap<String, u32>,
    /// Salted fingerprints of blocked secrets, never the values.
    pub fingerprints: Vec<(String, String)>,
    pub usage: Usage,
    pub verdict: Verdict,
    /// Status the client got; 0 until one is known.
    pub status: u16,
    pub error: Option<String>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// The request was handed to the upstream client (it may have reached
    /// the provider).
    pub dispatched: bool,
    /// Time to the provider's response head.
    pub ttfb: Option<Duration>,
    /// Time spent waiting on providers for response heads (every attempt),
    /// so what promptwall adds is `ttfb - upstream_wait`.
    pub upstream_wait: Duration,
    /// Time to the first chunk of a streamed answer the client received.
    pub first_chunk: Option<Duration>,
    /// Wall-clock start (the same instant as `ts`), for traces.
    pub started_wall: std::time::SystemTime,
    /// Set when the exchange ends; `None` means "now" at commit time.
    pub duration: Option<Duration>,
    /// Bodies as the provider saw them, when `[audit] capture_bodies` is on.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// Set when a routing rule matched (None: the request went where the
    /// client addressed it).
    pub routing: Option<RouteRecord>,
}

/// What routing did with one request, for the audit row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteRecord {
    /// The matching rule's name.
    pub route: String,
    /// The candidate that answered (`upstream/account` or `client`).
    pub upstream: String,
    /// The model the client asked for, and the one asked of the upstream.
    pub requested_model: Option<String>,
    pub upstream_model: Option<String>,
    /// The client's shape and the upstream's, when they differ.
    pub translation: Option<(ApiShape, ApiShape)>,
    /// What translation could not carry (names, never content).
    pub notes: Vec<String>,
    /// A Chat client asked for usage in its stream
    /// (`stream_options.include_usage`); a translated stream gives it then.
    pub client_stream_usage: bool,
    /// The client's freeform (custom) tools, whose calls go back to it as
    /// such whatever the upstream made of them (Codex's `exec`).
    pub freeform_tools: Vec<String>,
    /// The provider family whose prices and token conventions apply
    /// (`anthropic`, `openai`) when an org account answered; None when the
    /// client's own provider did.
    pub price_provider: Option<String>,
    pub attempts: Vec<AttemptRecord>,
}

/// One try at one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub upstream: String,
    pub model: Option<String>,
    /// The upstream's status; 0 when it never answered.
    pub status: u16,
    pub duration: Duration,
    /// `answered`, or why the next candidate was tried.
    pub outcome: String,
}

impl RouteRecord {
    /// The row's routing detail.
    pub fn detail(&self) -> promptwall_audit::RoutingDetail {
        promptwall_audit::RoutingDetail {
            requested_model: self.requested_model.clone(),
            upstream_model: self.upstream_model.clone(),
            translation: self.translation.map(|(from, to)| promptwall_audit::TranslationRecord {
                from: from.as_str().to_string(),
                to: to.as_str().to_string(),
            }),
            notes: self.notes.clone(),
            attempts: self
                .attempts
                .iter()
                .map(|a| promptwall_audit::Attempt {
                    upstream: a.upstream.clone(),
                    model: a.model.clone().unwrap_or_default(),
                    status: (a.status != 0).then_some(a.status),
                    ms: ms(a.duration),
                    outcome: a.outcome.clone(),
                })
                .collect(),
        }
    }

    /// The upstream's shape when it differs from the client's.
    pub fn upstream_shape(&self) -> Option<ApiShape> {
        self.translation.map(|(_, to)| to)
    }
}

impl Exchange {
    pub fn new(listener: Listener, client: Client) -> Self {
        Exchange {
            id: RequestId::new(),
            started: Instant::now(),
            ts: now_rfc3339(),
            listener,
            client,
            method: String::new(),
            path: String::new(),
            traffic: Traffic::Api(ApiShape::OTHER),
            target: None,
            model: None,
            findings: BTreeMap::new(),
            fingerprints: Vec::new(),
            usage: Usage::default(),
            verdict: Verdict::Allowed,
            status: 0,
            error: None,
            request_bytes: 0,
            response_bytes: 0,
            dispatched: false,
            ttfb: None,
            upstream_wait: Duration::ZERO,
            first_chunk: None,
            started_wall: std::time::SystemTime::now(),
            duration: None,
            request_body: None,
            response_body: None,
            routing: None,
        }
    }

    /// The API shape, or `OTHER` for refused and spliced connections.
    pub fn shape(&self) -> ApiShape {
        match self.traffic {
            Traffic::Api(shape) => shape,
            Traffic::Refused | Traffic::Spliced => ApiShape::OTHER,
        }
    }

    /// The row of message `n` of the same connection (WebSocket): same
    /// client and target, an id derived from this one, a fresh clock and
    /// counters.
    pub fn message(&self, n: u64) -> Exchange {
        let mut next = Exchange::new(self.listener, self.client.clone());
        next.id = self.id.message(n);
        next.method = self.method.clone();
        next.path = self.path.clone();
        next.traffic = self.traffic;
        next.target = self.target.clone();
        next.status = self.status;
        next
    }

    /// Records the inspection pipeline's findings.
    pub fn record_report(&mut self, report: &promptwall_llm::Report) {
        self.verdict = report.verdict.into();
        self.findings = report.counts.clone();
        self.fingerprints = report.fingerprints.clone();
        if let Some(model) = self.requested_model(report.model.as_deref()) {
            self.model = Some(model);
        }
    }

    /// The model the request asks for: the one its path names, for APIs
    /// that name it there (Gemini's `.../models/{model}:generateContent`,
    /// which the provider serves whatever the body says), else its body's
    /// `model`. The one place rows, routes and budgets read it from.
    pub fn requested_model(&self, body_model: Option<&str>) -> Option<String> {
        self.shape()
            .model_in_path(&self.path)
            .or_else(|| body_model.map(str::to_string))
    }

    /// Ends the exchange with an error: the status the client gets and why.
    pub fn fail(&mut self, status: StatusCode, message: &str) {
        self.status = status.as_u16();
        if matches!(self.verdict, Verdict::Allowed | Verdict::Redacted) {
            self.verdict = Verdict::Error;
        }
        self.error.get_or_insert_with(|| message.to_string());
    }

    pub fn elapsed_ms(&self) -> f64 {
        ms(self.duration.unwrap_or_else(|| self.started.elapsed()))
    }

    /// The provider family and model whose prices apply to this exchange,
    /// as its audit row names them: a routed row names the model asked of
    /// the upstream (the answer carries the client's alias) and, for an org
    /// account, the family whose price table applies.
    pub fn priced_as(&self) -> (Option<String>, Option<String>) {
        let provider = self
            .routing
            .as_ref()
            .and_then(|r| r.price_provider.clone())
            .or_else(|| {
                self.target
                    .as_ref()
                    .map(|t| t.provider.clone())
                    .filter(|p| !p.is_empty())
            });
        let model = self
            .routing
            .as_ref()
            .and_then(|r| r.upstream_model.clone())
            .or_else(|| self.usage.model.clone())
            .or_else(|| self.model.clone());
        (provider, model)
    }

    /// The audit row. `machine_id` is the writer's to set.
    pub fn into_record(self) -> AuditRecord {
        let (provider, model) = self.priced_as();
        let duration_ms = self.elapsed_ms();
        let id = self.client.identity.unwrap_or_default();
        let target = self.target;
        let usage = self.usage;
        let tokens = |v: Option<u64>| v.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        let (route, upstream, routing) = match &self.routing {
            Some(r) => (r.route.clone(), r.upstream.clone(), Some(r.detail().to_json())),
            None => Default::default(),
        };
        AuditRecord {
            route,
            upstream,
            routing,
            request_id: self.id.0,
            ts: self.ts,
            listener: self.listener.as_str().to_string(),
            provider,
            host: target.as_ref().map(|t| t.host.clone()).filter(|h| !h.is_empty()),
            method: none_if_empty(self.method),
            path: none_if_empty(self.path),
            shape: Some(self.traffic.as_str().to_string()),
            model,
            status: self.status,
            input_tokens: tokens(usage.input_tokens),
            output_tokens: tokens(usage.output_tokens),
            cache_read_tokens: tokens(usage.cache_read_tokens),
            cache_write_tokens: tokens(usage.cache_write_tokens),
            request_bytes: i64::try_from(self.request_bytes).unwrap_or(i64::MAX),
            response_bytes: i64::try_from(self.response_bytes).unwrap_or(i64::MAX),
            duration_ms,
            ttfb_ms: self.ttfb.map(ms),
            login_user: id.login_uid.and_then(|u| {
                if Some(u) == id.uid {
                    None
                } else {
                    crate::attribution::user_name(u)
                }
            }),
            pid: id.pid,
            exe: id.exe,
            cmdline: id.cmdline,
            uid: id.uid,
            user: id.user,
            tool: none_if_empty(self.client.tool),
            container_id: id.container_id,
            container_name: id.container_name,
            container_image: id.container_image,
            socket_cookie: self.client.socket_cookie,
            original_dst: self.client.original_dst.map(|a| a.to_string()),
            verdict: self.verdict.as_str().to_string(),
            findings: self.findings,
            fingerprints: self
                .fingerprints
                .into_iter()
                .map(|(kind, fp)| Fingerprint { kind, fp })
                .collect(),
            error: self.error,
            llm: matches!(self.traffic, Traffic::Api(shape) if shape.is_llm()),
            request_body: self.request_body,
            response_body: self.response_body,
            ..Default::default()
        }
    }
}

fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Milliseconds with microsecond precision, as audit rows store them.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_exchange_that_fails_upstream_is_audited_as_an_error() {
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        ex.verdict = Verdict::Redacted;
        ex.fail(StatusCode::BAD_GATEWAY, "provider unreachable");
        let row = ex.into_record();
        assert_eq!((row.verdict.as_str(), row.status), ("error", 502));
        assert_eq!(row.error.as_deref(), Some("provider unreachable"));
    }

    #[test]
    fn a_blocked_exchange_stays_blocked_when_it_is_answered_with_an_error() {
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        ex.verdict = Verdict::Blocked;
        ex.fail(StatusCode::UNPROCESSABLE_ENTITY, "secret");
        assert_eq!(ex.into_record().verdict, "blocked");
    }

    #[test]
    fn usage_read_from_the_answer_wins_over_the_requested_model() {
        let mut ex = Exchange::new(Listener::Transparent, Client::default());
        ex.traffic = Traffic::Api(ApiShape::ANTHROPIC_MESSAGES);
        ex.model = Some("claude-x".into());
        ex.usage.model = Some("claude-x-20250101".into());
        ex.usage.input_tokens = Some(12);
        let row = ex.into_record();
        assert_eq!(row.model.as_deref(), Some("claude-x-20250101"));
        assert_eq!(row.input_tokens, Some(12));
        assert!(row.llm);
        assert_eq!(row.shape.as_deref(), Some("anthropic.messages"));
    }

    #[test]
    fn refused_and_spliced_connections_are_not_llm_rows() {
        for (traffic, shape) in [(Traffic::Refused, "refused"), (Traffic::Spliced, "passthrough")] {
            let mut ex = Exchange::new(Listener::Transparent, Client::default());
            ex.traffic = traffic;
            let row = ex.into_record();
            assert!(!row.llm);
            assert_eq!(row.shape.as_deref(), Some(shape));
        }
    }

    #[test]
    fn request_ids_are_unique_and_sort_by_time() {
        let a = RequestId::new();
        let b = RequestId::new();
        assert_ne!(a, b);
        assert!(a.as_str() < b.as_str(), "{a} then {b}");
    }
}
