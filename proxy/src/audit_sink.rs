//! What the proxy knows about one request when it ends, and where it goes.
//! The agent plugs the durable audit writer in; tests can plug a closure.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::origin::ClientIdentity;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestLog {
    pub ts: String,
    pub listener: &'static str,
    pub provider: String,
    pub host: String,
    pub method: String,
    pub path: String,
    pub shape: String,
    /// false for non-LLM paths on provider hosts (/api/hello, /backend-api/...).
    pub llm: bool,
    pub model: Option<String>,
    pub status: u16,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub duration_ms: f64,
    pub ttfb_ms: Option<f64>,
    pub identity: Option<ClientIdentity>,
    pub tool: String,
    pub socket_cookie: Option<u64>,
    pub original_dst: Option<String>,
    /// allowed | redacted | blocked | error | passthrough
    pub verdict: String,
    /// Per-kind finding counts.
    pub findings: Vec<(String, u32)>,
    /// Salted fingerprints of blocked secrets, never the values.
    pub fingerprints: Vec<(String, String)>,
    pub error: Option<String>,
    /// Bodies as the provider saw them, when capture is on.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
}

/// Writes a row durably; resolves only once it is committed.
pub type AuditSink = Arc<dyn Fn(RequestLog) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// `sink` behind a scrubber: every row, whatever wrote it (inspected,
/// refused, spliced undecrypted, WebSocket), has the free text about its
/// client process cleared of secrets and personal data before it is stored.
/// Coding CLIs take the prompt on their command line (`gemini -p "…"`), and
/// a spliced row's process was never inspected at all.
pub fn scrubbing(sink: AuditSink, inspector: Arc<crate::pipeline::Inspector>) -> AuditSink {
    Arc::new(move |mut log: RequestLog| {
        if let Some(identity) = log.identity.as_mut() {
            inspector.scrub_identity(identity);
        }
        sink(log)
    })
}

/// A sink that drops rows (for `--no-audit` runs and unit tests).
pub fn discard() -> AuditSink {
    Arc::new(|_| Box::pin(async { Ok(()) }))
}
