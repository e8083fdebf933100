//! Model and token usage read from responses (JSON bodies, SSE events,
//! WebSocket frames), for the audit row. Works whether or not anything was
//! redacted.

use serde_json::Value;

use crate::shape::ApiShape;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub model: Option<String>,
    /// The Responses API object id (`resp_…`), which a follow-up names as
    /// `previous_response_id`.
    pub response_id: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct UsageTracker {
    pub usage: Usage,
    /// `type: message` of an SSE `error` event (or a Chat `{"error":...}` chunk).
    pub stream_error: Option<String>,
}

impl UsageTracker {
    /// Look at one streamed event; cheap for events that carry neither usage,
    /// model nor an error.
    pub fn observe_event(&mut self, shape: ApiShape, name: Option<&str>, data: &str) {
        let bytes = data.as_bytes();
        let has = |needle: &str| memchr::memmem::find(bytes, needle.as_bytes()).is_some();
        let interesting = has("\"usage\"")
            || has("\"error\"")
            || (self.usage.model.is_none() && has("\"model\""))
            || name == Some("error");
        if !interesting {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if ty == "error" || name == Some("error") || (shape == ApiShape::OpenAiChat && v.get("error").is_some()) {
            self.stream_error = Some(describe_error(&v));
            return;
        }
        match ty {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    self.absorb(m);
                }
            }
            "response.failed" => {
                if let Some(r) = v.get("response") {
                    self.absorb(r);
                    if let Some(e) = r.get("error").filter(|e| !e.is_null()) {
                        self.stream_error = Some(describe_error(&serde_json::json!({"error": e})));
                    }
                }
            }
            t if t.starts_with("response.") => {
                if let Some(r) = v.get("response") {
                    self.absorb(r);
                }
            }
            _ => self.absorb(&v),
        }
    }

    /// A whole JSON response body.
    pub fn observe_json(&mut self, body: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            self.absorb(&v);
            // count_tokens answers `{"input_tokens": N}`.
            if let Some(n) = v.get("input_tokens").and_then(Value::as_u64) {
                self.usage.input_tokens = Some(n);
            }
        }
    }

    /// Take `model` and `usage` from an object that may carry them.
    fn absorb(&mut self, obj: &Value) {
        if let Some(m) = obj.get("model").and_then(Value::as_str) {
            self.usage.model = Some(m.to_string());
        }
        if obj.get("object").and_then(Value::as_str) == Some("response") {
            if let Some(id) = obj.get("id").and_then(Value::as_str) {
                self.usage.response_id = Some(id.to_string());
            }
        }
        let Some(u) = obj.get("usage").filter(|u| u.is_object()) else {
            return;
        };
        let num = |keys: &[&str]| keys.iter().find_map(|k| u.pointer(k).and_then(Value::as_u64));
        let u_ = &mut self.usage;
        if let Some(n) = num(&["/input_tokens", "/prompt_tokens"]) {
            u_.input_tokens = Some(n);
        }
        if let Some(n) = num(&["/output_tokens", "/completion_tokens"]) {
            u_.output_tokens = Some(n);
        }
        if let Some(n) = num(&[
            "/cache_read_input_tokens",
            "/input_tokens_details/cached_tokens",
            "/prompt_tokens_details/cached_tokens",
        ]) {
            u_.cache_read_tokens = Some(n);
        }
        if let Some(n) = num(&["/cache_creation_input_tokens"]) {
            u_.cache_write_tokens = Some(n);
        }
    }
}

fn describe_error(v: &Value) -> String {
    let e = v.get("error").unwrap_or(v);
    let ty = e
        .get("type")
        .or_else(|| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("error");
    let msg = e
        .get("message")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if msg.is_empty() {
        ty.to_string()
    } else {
        format!("{ty}: {msg}")
    }
}
