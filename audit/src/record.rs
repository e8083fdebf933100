//! The audit row: one per proxied request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A salted fingerprint of a detected secret: lets auditors correlate the same
/// leaked credential across requests without ever storing its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub kind: String,
    pub fp: String,
}

/// One request as the proxy saw it. `None` means "not known" (e.g. no
/// attribution in explicit mode, no usage block in the response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AuditRecord {
    /// Row id, unique per machine; assigned by the writer (ignored on input).
    pub id: i64,
    pub machine_id: String,
    /// Request start, RFC3339 UTC with milliseconds (`2025-01-31T12:00:00.123Z`).
    pub ts: String,
    /// "explicit" | "transparent".
    pub listener: String,
    pub provider: Option<String>,
    pub host: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    /// API shape: anthropic_messages, openai_chat, openai_responses, ...
    pub shape: Option<String>,
    pub model: Option<String>,
    /// HTTP status returned to the client; 0 if no response was produced.
    pub status: u16,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub duration_ms: f64,
    pub ttfb_ms: Option<f64>,
    pub pid: Option<u32>,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub login_user: Option<String>,
    /// Coding tool name derived from exe/cmdline (claude-code, cursor, aider, ...).
    pub tool: Option<String>,
    pub container_id: Option<String>,
    pub socket_cookie: Option<u64>,
    /// Original destination of a transparently redirected connection.
    pub original_dst: Option<String>,
    /// "allowed" | "redacted" | "blocked" | "error" | "passthrough".
    pub verdict: String,
    /// Detector kind -> number of findings in this request.
    pub findings: BTreeMap<String, u32>,
    pub fingerprints: Vec<Fingerprint>,
    pub error: Option<String>,
    /// true for LLM API paths, false for other paths on provider hosts.
    pub llm: bool,
    /// Estimated USD cost from the price table (filled by the writer).
    pub cost_usd: Option<f64>,
    /// Bodies as the provider saw them (redacted), only when capture is on.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// SHA-256 of the bodies; the chain covers these, so bodies can be
    /// purged by retention without breaking verification.
    pub request_body_sha256: Option<String>,
    pub response_body_sha256: Option<String>,
    /// Hash chain: hash = SHA-256(prev_hash || canonical JSON of the row).
    pub prev_hash: String,
    pub hash: String,
}

/// Columns in storage order; shared by inserts and selects on both databases.
pub(crate) const COLUMNS: &[&str] = &[
    "id",
    "machine_id",
    "ts",
    "listener",
    "provider",
    "host",
    "method",
    "path",
    "shape",
    "model",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "request_bytes",
    "response_bytes",
    "duration_ms",
    "ttfb_ms",
    "pid",
    "exe",
    "cmdline",
    "uid",
    "\"user\"",
    "login_user",
    "tool",
    "container_id",
    "socket_cookie",
    "original_dst",
    "verdict",
    "findings",
    "fingerprints",
    "error",
    "llm",
    "cost_usd",
    "request_body",
    "response_body",
    "request_body_sha256",
    "response_body_sha256",
    "prev_hash",
    "hash",
];

pub(crate) fn column_list() -> String {
    COLUMNS.join(", ")
}

pub(crate) fn placeholders(first: usize) -> String {
    (first..first + COLUMNS.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
