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
