//! The inspection pipeline as the HTTP layer sees it: one decision per
//! request, and a response stage that restores placeholders and reads usage.
//! The logic itself is pure and lives in `promptwall-llm`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use promptwall_llm::{
    ApiShape, Pipeline, PipelineSettings, Report as LlmReport, RequestContext, RequestOutcome, ResponseProcessor,
    Restorer, Scanner, Vault, WsClientOutcome,
};

use crate::audit_sink::{AuditSink, RequestLog};
use crate::config::Config;
use crate::websocket::{ClientVerdict, MessageInspector};

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
        let salt = config
            .pipeline
            .fingerprint_salt
            .clone()
            .unwrap_or_else(|| default_salt(config));
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
    /// prompt on the command line.
    pub fn scrub_identity(&self, identity: &mut crate::origin::ClientIdentity) {
        if let Some(clean) = identity.cmdline.as_deref().and_then(|c| self.scrub(c)) {
            identity.cmdline = Some(clean);
        }
    }

    pub fn inspect_request(&self, shape: ApiShape, body: &[u8], _headers: &HeaderMap) -> Decision {
        let Some(pipeline) = &self.pipeline else {
            let model = model_field(body);
            return Decision::Forward {
                body: None,
                stage: ResponseStage::new(shape, None),
                report: Report {
                    verdict: "allowed",
                    model,
                    ..Default::default()
                },
            };
        };
        let ctx = RequestContext {
            fingerprint_salt: &self.salt,
        };
        match pipeline.inspect_request(shape, body, &ctx) {
            RequestOutcome::Forward { body, restorer, report } => Decision::Forward {
                body,
                stage: ResponseStage::new(shape, restorer),
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
    pub fn conclude(&self, stage: &ResponseStage) {
        let (Some(pipeline), Some(restorer)) = (&self.pipeline, &stage.restorer) else {
            return;
        };
        if stage.shape != ApiShape::OpenAiResponses || restorer.is_empty() {
            return;
        }
        if let Some(id) = stage.processor.as_ref().and_then(|p| p.usage().response_id) {
            pipeline.remember_response(&id, restorer);
        }
    }

    pub fn websocket_session(self: &std::sync::Arc<Self>, base: RequestLog, audit: AuditSink) -> WsSession {
        WsSession {
            inspector: self.clone(),
            vault: Vault::new(),
            base,
            audit,
            pending: VecDeque::new(),
        }
    }
}

/// Fingerprints must be stable per machine but useless off it: derive the
/// salt from the machine id unless one is configured (fleet-wide salts let
/// the security team correlate one secret across machines).
fn default_salt(config: &Config) -> String {
    format!("promptwall:{}", config.machine_id())
}

/// Per-response processing; `for_response` picks the mode once headers arrive.
pub struct ResponseStage {
    shape: ApiShape,
    restorer: Option<Restorer>,
    processor: Option<ResponseProcessor>,
}

impl ResponseStage {
    fn new(shape: ApiShape, restorer: Option<Restorer>) -> Self {
        ResponseStage {
            shape,
            restorer,
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
/// by its terminal event; every event frame is restored.
pub struct WsSession {
    inspector: std::sync::Arc<Inspector>,
    vault: Vault,
    base: RequestLog,
    audit: AuditSink,
    pending: VecDeque<(RequestLog, Instant)>,
}

impl WsSession {
    fn write(&self, log: RequestLog) {
        let audit = self.audit.clone();
        tokio::spawn(async move {
            if let Err(e) = audit(log).await {
                tracing::error!("audit row for a WebSocket response could not be written: {e}");
            }
        });
    }

    fn start_row(&self, text: &str, report: Option<Report>) -> RequestLog {
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
            log.model = model_field(text.as_bytes());
        }
        log
    }
}

/// The body's `model`, through the node-capped parser (a serde_json tree of
/// a JSON bomb would be unbounded).
fn model_field(body: &[u8]) -> Option<String> {
    let root = promptwall_llm::json::parse(std::str::from_utf8(body).ok()?).ok()?;
    root.str_field("model").map(|m| m.into_owned())
}

fn is_response_create(text: &str) -> bool {
    text.contains("\"response.create\"")
}

impl MessageInspector for WsSession {
    fn client_text(&mut self, text: String) -> ClientVerdict {
        let Some(pipeline) = &self.inspector.pipeline else {
            if is_response_create(&text) {
                let row = self.start_row(&text, None);
                self.pending.push_back((row, Instant::now()));
            }
            return ClientVerdict::Forward(text);
        };
        let ctx = RequestContext {
            fingerprint_salt: &self.inspector.salt,
        };
        match pipeline.inspect_ws_client_message(&text, &mut self.vault, &ctx) {
            WsClientOutcome::Forward { text: changed, report } => {
                if is_response_create(&text) {
                    let row = self.start_row(&text, Some(Report::from(&report)));
                    self.pending.push_back((row, Instant::now()));
                }
                ClientVerdict::Forward(changed.unwrap_or(text))
            }
            WsClientOutcome::Block { frame, report } | WsClientOutcome::Reject { frame, report } => {
                let mut row = self.start_row(&text, Some(Report::from(&report)));
                row.status = if report.verdict == promptwall_llm::Verdict::Blocked {
                    422
                } else {
                    400
                };
                row.error = report.message.clone();
                self.write(row);
                ClientVerdict::Refuse(vec![frame])
            }
        }
    }

    fn server_text(&mut self, text: String) -> Vec<String> {
        if let Some((log, _)) = self.pending.front_mut() {
            log.response_bytes += text.len() as u64;
        }
        let terminal = [
            "\"response.completed\"",
            "\"response.failed\"",
            "\"response.incomplete\"",
            "\"error\"",
        ];
        if terminal.iter().any(|t| text.contains(t)) {
            self.finish_row(&text);
        }
        match &self.inspector.pipeline {
            Some(pipeline) => pipeline.restore_ws_server_message(&text, &mut self.vault),
            None => vec![text],
        }
    }

    fn finished(&mut self, _up: u64, _down: u64, error: Option<String>) {
        while let Some((mut log, started)) = self.pending.pop_front() {
            log.error = Some(
                error
                    .clone()
                    .unwrap_or_else(|| "WebSocket closed before the response completed".into()),
            );
            log.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            self.write(log);
        }
    }
}

impl WsSession {
    fn finish_row(&mut self, text: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if !matches!(
            kind,
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            return;
        }
        let Some((mut log, started)) = self.pending.pop_front() else {
            return;
        };
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
        self.write(log);
    }
}
