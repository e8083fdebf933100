//! The inspection pipeline as the HTTP layer sees it: one decision per
//! request, and a response stage that restores placeholders and reads usage.

use bytes::Bytes;
use http::HeaderMap;

use crate::config::Config;
use crate::inspect::{self, Shape};

/// What the pipeline found, for the audit row.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub counts: Vec<(String, u32)>,
    pub fingerprints: Vec<(String, String)>,
    pub model: Option<String>,
    pub message: Option<String>,
}

pub enum Decision {
    /// Forward `body` (None: the original bytes, unchanged).
    Forward { body: Option<Bytes>, stage: ResponseStage, report: Report },
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
    enabled: bool,
}

impl Inspector {
    pub fn new(config: &Config) -> Result<Self, String> {
        Ok(Inspector { enabled: config.pipeline.enabled })
    }

    pub fn inspect_request(&self, shape: Shape, body: &[u8], _headers: &HeaderMap) -> Decision {
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(body);
        let value = match parsed {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("promptwall: the request body is not valid JSON ({e}); fix the client payload");
                return Decision::Reject {
                    status: 400,
                    body: inspect::error_body(shape.is_anthropic(), 400, &msg),
                    report: Report { message: Some(msg), ..Default::default() },
                };
            }
        };
        let model = value.get("model").and_then(|m| m.as_str()).map(str::to_string);
        let _ = self.enabled;
        Decision::Forward { body: None, stage: ResponseStage { shape, inner: None }, report: Report { model, ..Default::default() } }
    }
}

/// Per-response processing; `for_response` picks the mode once headers arrive.
pub struct ResponseStage {
    #[allow(dead_code)]
    shape: Shape,
    inner: Option<()>,
}

impl ResponseStage {
    pub fn for_response(self, _status: u16, _content_type: &str) -> ResponseStage {
        self
    }
    pub fn may_change_length(&self) -> bool {
        self.inner.is_some()
    }
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        chunk
    }
    pub fn finish(&mut self) -> Bytes {
        Bytes::new()
    }
    pub fn usage(&self) -> Usage {
        Usage::default()
    }
}

/// One inspected WebSocket connection (Codex Responses transport): each
/// `response.create` is audited like a request, completed by the matching
/// terminal event.
pub struct WsSession {
    base: crate::audit_sink::RequestLog,
    audit: crate::audit_sink::AuditSink,
    pending: std::collections::VecDeque<(crate::audit_sink::RequestLog, std::time::Instant)>,
}

impl WsSession {
    pub fn new(base: crate::audit_sink::RequestLog, audit: crate::audit_sink::AuditSink) -> Self {
        WsSession { base, audit, pending: Default::default() }
    }

    fn write(&self, log: crate::audit_sink::RequestLog) {
        let audit = self.audit.clone();
        tokio::spawn(async move {
            if let Err(e) = audit(log).await {
                tracing::error!("audit row for a WebSocket response could not be written: {e}");
            }
        });
    }
}

impl crate::websocket::MessageInspector for WsSession {
    fn client_text(&mut self, text: String) -> crate::websocket::ClientVerdict {
        let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if let Some(v) = value.as_ref().filter(|v| v.get("type").and_then(|t| t.as_str()) == Some("response.create")) {
            let mut log = self.base.clone();
            log.ts = crate::forward::now_rfc3339();
            log.request_bytes = text.len() as u64;
            log.model = v.get("model").and_then(|m| m.as_str()).map(str::to_string);
            self.pending.push_back((log, std::time::Instant::now()));
        }
        crate::websocket::ClientVerdict::Forward(text)
    }

    fn server_text(&mut self, text: String) -> String {
        if let Some((log, _)) = self.pending.front_mut() {
            log.response_bytes += text.len() as u64;
        }
        let terminal = ["\"response.completed\"", "\"response.failed\"", "\"response.incomplete\"", "\"error\""];
        if terminal.iter().any(|t| text.contains(t)) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
                if kind == "response.completed" || kind == "response.failed" || kind == "response.incomplete" || kind == "error" {
                    if let Some((mut log, started)) = self.pending.pop_front() {
                        let resp = v.get("response");
                        if let Some(m) = resp.and_then(|r| r.get("model")).and_then(|m| m.as_str()) {
                            log.model = Some(m.to_string());
                        }
                        if let Some(u) = resp.and_then(|r| r.get("usage")) {
                            log.input_tokens = u.get("input_tokens").and_then(|x| x.as_i64());
                            log.output_tokens = u.get("output_tokens").and_then(|x| x.as_i64());
                            log.cache_read_tokens =
                                u.pointer("/input_tokens_details/cached_tokens").and_then(|x| x.as_i64());
                        }
                        log.status = if kind == "response.completed" { 200 } else { 500 };
                        if kind != "response.completed" {
                            log.error = Some(format!("provider ended the response with {kind}"));
                        }
                        log.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                        self.write(log);
                    }
                }
            }
        }
        text
    }

    fn finished(&mut self, _up: u64, _down: u64, error: Option<String>) {
        while let Some((mut log, started)) = self.pending.pop_front() {
            log.error = Some(error.clone().unwrap_or_else(|| "WebSocket closed before the response completed".into()));
            log.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            self.write(log);
        }
    }
}
