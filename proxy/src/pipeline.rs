//! The inspection pipeline as the HTTP layer sees it: one decision per
//! request, and a response stage that restores placeholders and reads usage.
//! The logic itself is pure and lives in `promptwall-llm`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use promptwall_llm::{
    ApiShape, ConversationOwner, Pipeline, PipelineSettings, Report as LlmReport, RequestContext, RequestOutcome,
    ResponseProcessor, Restorer, Scanner, Vault, WsClientOutcome,
};

use crate::audit_sink::{AuditSink, RequestLog};
use crate::config::Config;
use crate::websocket::{AuditFailed, ClientVerdict, MessageInspector};
use futures_util::future::BoxFuture;

/// What the pipeline found, for the audit row.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub verdict: &'static str,
    pub counts: Vec<(String, u32)>,
    pub fingerprints: Vec<(String, String)>,
    pub model: Option<String>,
    pub message: Option<String>,
}

impl From<&LlmReport> for Report {
    fn from(r: &LlmReport) -> Self {
        Report {
            verdict: r.verdict.as_str(),
            counts: r.counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            fingerprints: r.fingerprints.clone(),
            model: r.model.clone(),
            message: r.message.clone(),
        }
    }
}

pub enum Decision {
    /// Forward `body` (None: the original bytes, unchanged).
    Forward {
        body: Option<Bytes>,
        stage: ResponseStage,
        report: Report,
    },
    /// Answer locally with `status` and a client-format error `body`.
    Reject { status: u16, body: Bytes, report: Report },
}

#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub stream_error: Option<String>,
}

pub struct Inspector {
    pipeline: Option<Pipeline>,
    /// The same detector, for scrubbing audit metadata (kept even when the
    /// pipeline is off: the audit log must never hold a secret).
    scanner: std::sync::Arc<dyn Scanner>,
    salt: String,
}

impl Inspector {
    pub fn new(config: &Config) -> Result<Self, String> {
        let scanner = crate::detectors::build(&config.pipeline)?;
        Self::with_scanner(config, scanner)
    }

    pub fn with_scanner(config: &Config, scanner: impl Scanner + 'static) -> Result<Self, String> {
        let scanner: std::sync::Arc<dyn Scanner> = std::sync::Arc::new(scanner);
        let shared = scanner.clone();
        let pipeline = config
            .pipeline
            .enabled
            .then(|| Pipeline::new(move |t: &str| shared.scan(t), PipelineSettings::default()));
        let salt = crate::fingerprint_key::salt(config).map_err(|e| e.to_string())?;
        Ok(Inspector {
            pipeline,
            scanner,
            salt,
        })
    }

    /// `text` with every secret and personal datum replaced by a placeholder.
    pub fn scrub(&self, text: &str) -> Option<String> {
        promptwall_llm::scrub(self.scanner.as_ref(), text)
    }

    /// Removes secrets and personal data from what the audit row records
    /// about the client process: `curl -d '…'` or `claude -p "…"` carry the
    /// prompt on the command line, and any user can name an executable (so
    /// its path and task name) as they like. The user name stays: it is who
    /// the row is about.
    pub fn scrub_identity(&self, identity: &mut crate::origin::ClientIdentity) {
        for field in [&mut identity.cmdline, &mut identity.exe, &mut identity.comm] {
            if let Some(clean) = field.as_deref().and_then(|c| self.scrub(c)) {
                *field = Some(clean);
            }
        }
    }

    /// Decides on one request. The client process's user (when known) and
    /// the provider credential in `headers` name whose Responses
    /// conversation a `previous_response_id` may continue.
    pub fn inspect_request(
        &self,
        shape: ApiShape,
        body: &[u8],
        headers: &HeaderMap,
        client: Option<&crate::origin::ClientIdentity>,
    ) -> Decision {
        let Some(pipeline) = &self.pipeline else {
            let model = model_field(body);
            return Decision::Forward {
                body: None,
                stage: ResponseStage::new(shape, None, None),
                report: Report {
                    verdict: "allowed",
                    model,
                    ..Default::default()
                },
            };
        };
        let owner = conversation_owner(client.and_then(|c| c.uid), headers);
        let ctx = RequestContext {
            fingerprint_salt: &self.salt,
            owner,
        };
        match pipeline.inspect_request(shape, body, &ctx) {
            RequestOutcome::Forward { body, restorer, report } => Decision::Forward {
                body,
                stage: ResponseStage::new(shape, restorer, owner),
                report: Report::from(&report),
            },
            RequestOutcome::Block { status, body, report } | RequestOutcome::Reject { status, body, report } => {
                Decision::Reject {
                    status,
                    body,
                    report: Report::from(&report),
                }
            }
        }
    }

    /// After a complete answer: a Responses answer's placeholders are kept
    /// for follow-ups that name it as `previous_response_id`.
    /// They are kept under the request's owner: only the same user with
    /// the same credential can continue them.
    pub fn conclude(&self, stage: &ResponseStage) {
        let (Some(pipeline), Some(restorer), Some(owner)) = (&self.pipeline, &stage.restorer, stage.owner) else {
            return;
        };
        if stage.shape != ApiShape::OPENAI_RESPONSES || restorer.is_empty() {
            return;
        }
        if let Some(id) = stage.processor.as_ref().and_then(|p| p.usage().response_id) {
            pipeline.remember_response(owner, &id, restorer);
        }
    }

    pub fn websocket_session(self: &std::sync::Arc<Self>, base: RequestLog, audit: AuditSink) -> WsSession {
        WsSession {
            inspector: self.clone(),
            vault: Vault::new(),
            base,
            audit,
            pending: VecDeque::new(),
            _admission: None,
        }
    }
}

/// The body's `model`, through the node-capped parser (a serde_json tree of
/// a JSON bomb would be unbounded).
fn model_field(body: &[u8]) -> Option<String> {
    let root = promptwall_llm::json::parse(std::str::from_utf8(body).ok()?).ok()?;
    root.str_field("model").map(|m| m.into_owned())
}

/// Headers that authenticate to a provider; a conversation belongs to
/// whoever holds them (only their digest is kept).
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// None when neither the user nor a credential is known: such requests
/// would all share one owner, so their follow-ups start afresh instead.
fn conversation_owner(uid: Option<u32>, headers: &HeaderMap) -> Option<ConversationOwner> {
    let has_credential = CREDENTIAL_HEADERS.iter().any(|name| headers.contains_key(*name));
    if uid.is_none() && !has_credential {
        return None;
    }
    let credentials = CREDENTIAL_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(*name).iter().map(move |v| (*name, v.as_bytes())));
    Some(ConversationOwner::new(uid, credentials))
}

/// Per-response processing; `for_response` picks the mode once headers arrive.
pub struct ResponseStage {
    shape: ApiShape,
    restorer: Option<Restorer>,
    /// Who sent the request, for remembering a Responses answer.
    owner: Option<ConversationOwner>,
    processor: Option<ResponseProcessor>,
}

impl ResponseStage {
    fn new(shape: ApiShape, restorer: Option<Restorer>, owner: Option<ConversationOwner>) -> Self {
        ResponseStage {
            shape,
            restorer,
            owner,
            processor: None,
        }
    }

    /// Restores only in successful answers: provider errors go back unmodified.
    pub fn for_response(mut self, status: u16, content_type: &str, compressed: bool) -> ResponseStage {
        let processor = match (&self.restorer, (200..300).contains(&status), compressed) {
            (_, _, true) => None,
            (Some(r), true, false) if !r.is_empty() => Some(r.response_processor(content_type, self.shape)),
            _ => Some(ResponseProcessor::observe_only(self.shape, content_type)),
        };
        self.processor = processor;
        self
    }

    pub fn may_change_length(&self) -> bool {
        self.processor.as_ref().is_some_and(|p| p.may_change_body())
    }

    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        match &mut self.processor {
            Some(p) => p.push(chunk),
            None => chunk,
        }
    }

    pub fn finish(&mut self) -> Bytes {
        self.processor.as_mut().map(|p| p.finish()).unwrap_or_default()
    }

    pub fn usage(&self) -> Usage {
        let Some(p) = &self.processor else {
            return Usage::default();
        };
        let u = p.usage();
        Usage {
            model: u.model,
            input_tokens: u.input_tokens.map(|v| v as i64),
            output_tokens: u.output_tokens.map(|v| v as i64),
            cache_read_tokens: u.cache_read_tokens.map(|v| v as i64),
            cache_write_tokens: u.cache_write_tokens.map(|v| v as i64),
            stream_error: p.stream_error().map(str::to_string),
        }
    }
}

/// One inspected WebSocket connection (Codex Responses transport): each
/// `response.create` is inspected like a request body and audited, completed
/// by its terminal event; every other client message that reaches the
/// provider (`response.append` carries input too) gets a row of its own
/// before it is sent; every event frame is restored. A row that cannot be
/// committed stops the exchange (see [`AuditFailed`]).
pub struct WsSession {
    inspector: std::sync::Arc<Inspector>,
    vault: Vault,
    base: RequestLog,
    audit: AuditSink,
    pending: VecDeque<(RequestLog, Instant)>,
    /// The session's admission slot (crate::admission), held until it ends.
    _admission: Option<crate::admission::Ticket>,
}

impl WsSession {
    /// Holds `ticket` for the session's life: an inspected WebSocket counts
    /// as an exchange in flight like any other.
    pub fn holding(mut self, ticket: crate::admission::Ticket) -> Self {
        self._admission = Some(ticket);
        self
    }
}

/// How a forwarded client message is audited.
#[derive(Debug, PartialEq, Eq)]
enum Audited {
    /// `response.create`: one row, completed by the response's terminal event.
    Exchange,
    /// Carries nothing for the model (`response.processed` acknowledging a
    /// response by id, and nothing else): no row.
    Acknowledgement,
    /// Anything else, including unknown types and text that is not a JSON
    /// object: a row of its own, committed before the message is sent.
    Message,
}

/// The top-level facts of a client message the audit needs, read without
/// building a tree (messages can be tens of MiB). serde_json decodes
/// escapes (`"response\u002ecreate"` is `response.create`) and the last of
/// duplicate keys wins, as in the provider's parser.
#[derive(Debug, Default)]
struct Envelope {
    kind: Option<String>,
    model: Option<String>,
    /// Keys other than `type` and `response_id`.
    other_keys: bool,
}

impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Envelope;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
                let mut e = Envelope::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        // A non-string type or model fails the read, and
                        // an unread envelope is audited as a `Message`.
                        "type" => e.kind = Some(map.next_value()?),
                        "model" => {
                            e.model = Some(map.next_value()?);
                            e.other_keys = true;
                        }
                        "response_id" => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            e.other_keys = true;
                        }
                    }
                }
                Ok(e)
            }
        }
        d.deserialize_map(Fields)
    }
}

impl Envelope {
    fn read(text: &str) -> Option<Envelope> {
        serde_json::from_str(text).ok()
    }

    fn audited(envelope: Option<&Envelope>) -> Audited {
        match envelope {
            Some(Envelope { kind: Some(k), .. }) if k == "response.create" => Audited::Exchange,
            Some(Envelope {
                kind: Some(k),
                other_keys: false,
                ..
            }) if k == "response.processed" => Audited::Acknowledgement,
            _ => Audited::Message,
        }
    }
}

impl WsSession {
    /// Writes `log`; resolves once it is committed. (Borrows nothing, so
    /// the session need not be `Sync` to await it.)
    fn commit(&self, log: RequestLog) -> impl std::future::Future<Output = Result<(), AuditFailed>> + Send + 'static {
        let write = (self.audit)(log);
        async move {
            write.await.map_err(|e| {
                tracing::error!("audit row for a WebSocket message could not be written: {e}");
                AuditFailed(e)
            })
        }
    }

    fn start_row(&self, text: &str, envelope: Option<&Envelope>, report: Option<Report>) -> RequestLog {
        let mut log = self.base.clone();
        log.ts = crate::forward::now_rfc3339();
        log.request_bytes = text.len() as u64;
        if let Some(r) = report {
            log.verdict = r.verdict.to_string();
            log.findings = r.counts;
            log.fingerprints = r.fingerprints;
            log.model = r.model;
        }
        if log.model.is_none() {
            log.model = envelope.and_then(|e| e.model.clone());
        }
        log
    }

    async fn on_client_text(&mut self, text: String) -> Result<ClientVerdict, AuditFailed> {
        let envelope = Envelope::read(&text);
        let inspector = self.inspector.clone();
        let (changed, report) = match &inspector.pipeline {
            None => (None, None),
            Some(pipeline) => {
                let ctx = RequestContext {
                    fingerprint_salt: &inspector.salt,
                    ..Default::default()
                };
                match pipeline.inspect_ws_client_message(&text, &mut self.vault, &ctx) {
                    WsClientOutcome::Forward { text: changed, report } => (changed, Some(Report::from(&report))),
                    WsClientOutcome::Block { frame, report } | WsClientOutcome::Reject { frame, report } => {
                        let mut row = self.start_row(&text, envelope.as_ref(), Some(Report::from(&report)));
                        row.status = if report.verdict == promptwall_llm::Verdict::Blocked {
                            422
                        } else {
                            400
                        };
                        row.error = report.message.clone();
                        self.commit(row).await?;
                        return Ok(ClientVerdict::Refuse(vec![frame]));
                    }
                }
            }
        };
        let row = self.start_row(&text, envelope.as_ref(), report);
        match Envelope::audited(envelope.as_ref()) {
            Audited::Exchange => self.pending.push_back((row, Instant::now())),
            Audited::Acknowledgement => {}
            Audited::Message => self.commit(row).await?,
        }
        Ok(ClientVerdict::Forward(changed.unwrap_or(text)))
    }

    async fn on_server_text(&mut self, text: String) -> Result<Vec<String>, AuditFailed> {
        if let Some((log, _)) = self.pending.front_mut() {
            log.response_bytes += text.len() as u64;
        }
        let frames = match &self.inspector.pipeline {
            Some(pipeline) => pipeline.restore_ws_server_message(&text, &mut self.vault),
            None => vec![text.clone()],
        };
        // The provider's own events: a substring test only picks which
        // frames are worth parsing.
        let terminal = [
            "\"response.completed\"",
            "\"response.failed\"",
            "\"response.incomplete\"",
            "\"error\"",
        ];
        if terminal.iter().any(|t| text.contains(t)) {
            if let Some(row) = self.finish_row(&text) {
                // Committed before the terminal event goes to the client.
                self.commit(row).await?;
            }
        }
        Ok(frames)
    }

    async fn on_finished(&mut self, error: Option<String>) {
        while let Some((mut log, started)) = self.pending.pop_front() {
            log.error = Some(
                error
                    .clone()
                    .unwrap_or_else(|| "WebSocket closed before the response completed".into()),
            );
            log.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            // Nothing is left to hold back; the failure is logged by commit.
            let _ = self.commit(log).await;
        }
    }

    /// The completed row of the oldest pending response, if `text` is its
    /// terminal event.
    fn finish_row(&mut self, text: &str) -> Option<RequestLog> {
        let v = serde_json::from_str::<serde_json::Value>(text).ok()?;
        let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if !matches!(
            kind,
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            return None;
        }
        let (mut log, started) = self.pending.pop_front()?;
        let resp = v.get("response");
        if let Some(m) = resp.and_then(|r| r.get("model")).and_then(|m| m.as_str()) {
            log.model = Some(m.to_string());
        }
        if let Some(u) = resp.and_then(|r| r.get("usage")) {
            log.input_tokens = u.get("input_tokens").and_then(|x| x.as_i64());
            log.output_tokens = u.get("output_tokens").and_then(|x| x.as_i64());
            log.cache_read_tokens = u
                .pointer("/input_tokens_details/cached_tokens")
                .and_then(|x| x.as_i64());
        }
        // A WebSocket `error` event carries the HTTP status it stands for (429, 400...).
        let status = v
            .get("status")
            .and_then(|s| s.as_u64())
            .filter(|s| (400..600).contains(s));
        log.status = if kind == "response.completed" {
            200
        } else {
            status.map_or(500, |s| s as u16)
        };
        if kind != "response.completed" {
            log.error = Some(format!("provider ended the response with {kind}"));
        }
        log.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        Some(log)
    }
}

impl MessageInspector for WsSession {
    fn client_text(&mut self, text: String) -> BoxFuture<'_, Result<ClientVerdict, AuditFailed>> {
        Box::pin(self.on_client_text(text))
    }

    fn server_text(&mut self, text: String) -> BoxFuture<'_, Result<Vec<String>, AuditFailed>> {
        Box::pin(self.on_server_text(text))
    }

    fn finished(&mut self, _up: u64, _down: u64, error: Option<String>) -> BoxFuture<'_, ()> {
        Box::pin(self.on_finished(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Rows = Arc<Mutex<Vec<RequestLog>>>;

    fn recording() -> (AuditSink, Rows) {
        let rows: Rows = Default::default();
        let sink_rows = rows.clone();
        let sink: AuditSink = Arc::new(move |row| {
            sink_rows.lock().unwrap().push(row);
            Box::pin(async { Ok(()) })
        });
        (sink, rows)
    }

    fn session(pipeline_on: bool) -> (WsSession, Rows) {
        let mut config = Config {
            machine_id: Some("test-machine".into()),
            ..Default::default()
        };
        config.pipeline.enabled = pipeline_on;
        let inspector = Arc::new(Inspector::new(&config).unwrap());
        let (sink, rows) = recording();
        let base = RequestLog {
            status: 101,
            verdict: "allowed".into(),
            ..Default::default()
        };
        (inspector.websocket_session(base, sink), rows)
    }

    async fn forwarded(s: &mut WsSession, text: &str) -> String {
        match s.client_text(text.to_string()).await {
            Ok(ClientVerdict::Forward(t)) => t,
            Ok(ClientVerdict::Refuse(r)) => panic!("refused {text}: {r:?}"),
            Err(e) => panic!("audit failed: {e:?}"),
        }
    }

    const COMPLETED: &str =
        r#"{"type":"response.completed","response":{"model":"gpt-5","usage":{"input_tokens":3,"output_tokens":2}}}"#;

    /// The exploit: `\u002e` spells the same type for the provider's JSON
    /// parser, but is not the bytes `"response.create"`.
    #[tokio::test]
    async fn a_response_create_spelled_with_escapes_is_audited() {
        for pipeline_on in [true, false] {
            let (mut s, rows) = session(pipeline_on);
            let msg = r#"{"type":"response\u002ecreate","model":"gpt-5","input":"mail ann@example.com"}"#;
            let sent = forwarded(&mut s, msg).await;
            assert_eq!(sent.contains("ann@example.com"), !pipeline_on, "{sent}");
            s.server_text(COMPLETED.into()).await.unwrap();
            let rows = rows.lock().unwrap();
            assert_eq!(rows.len(), 1, "pipeline {pipeline_on}: {rows:#?}");
            assert_eq!(rows[0].status, 200);
            assert_eq!(rows[0].model.as_deref(), Some("gpt-5"));
            assert_eq!(rows[0].input_tokens, Some(3));
            if pipeline_on {
                assert_eq!(rows[0].verdict, "redacted");
                assert_eq!(rows[0].findings, vec![("email".to_string(), 1)]);
            }
        }
    }

    /// Anything the provider may act on is on record before it is sent;
    /// only a bare acknowledgement of a response id is not.
    #[tokio::test]
    async fn every_forwarded_websocket_message_but_an_acknowledgement_gets_a_row() {
        for pipeline_on in [true, false] {
            let (mut s, rows) = session(pipeline_on);
            let audited = [
                r#"{"type":"response.append","input":[{"type":"message","role":"user","content":"also this"}]}"#,
                r#"{"type":"response.processed","response_id":"resp_1","input":"sneaked in"}"#,
                r#"{"type":"something.new","input":"x"}"#,
                r#"{"type":"response.create","type":"response.append","input":"x"}"#,
                r#"{"input":"no type at all"}"#,
            ];
            for (i, msg) in audited.iter().enumerate() {
                forwarded(&mut s, msg).await;
                let rows = rows.lock().unwrap();
                assert_eq!(rows.len(), i + 1, "no row for {msg}");
                assert_eq!(rows[i].request_bytes, msg.len() as u64);
            }
            forwarded(&mut s, r#"{"type":"response.processed","response_id":"resp_1"}"#).await;
            assert_eq!(rows.lock().unwrap().len(), audited.len());
            // Not JSON: refused by the pipeline, forwarded without it; a row either way.
            match s.client_text("not json".into()).await.unwrap() {
                ClientVerdict::Forward(_) => assert!(!pipeline_on),
                ClientVerdict::Refuse(_) => assert!(pipeline_on),
            }
            assert_eq!(rows.lock().unwrap().len(), audited.len() + 1);
            // None of these is waiting for a terminal event.
            s.finished(0, 0, None).await;
            assert_eq!(rows.lock().unwrap().len(), audited.len() + 1);
        }
    }
}
