//! Model and token usage read from responses (JSON bodies, SSE events,
//! WebSocket frames), for the audit row. Works whether or not anything was
//! redacted. Which event carries what is each shape's business
//! ([`crate::Shape::observe_event`]); the readers here are shared.

use serde_json::Value;

/// What a response said about itself: the one usage type of the workspace.
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
    /// `type: message` of an error the provider reported inside a stream
    /// (an SSE `error` event, a Chat `{"error":...}` chunk, `response.failed`).
    pub stream_error: Option<String>,
}

impl Usage {
    /// The event as JSON if it may carry usage, a model or an error; cheap
    /// (no parse) for the many events that carry none.
    pub(crate) fn worth_parsing(&self, name: Option<&str>, data: &str) -> Option<Value> {
        let bytes = data.as_bytes();
        let has = |needle: &str| memchr::memmem::find(bytes, needle.as_bytes()).is_some();
        // Open-ended needles so one search also finds Gemini's
        // `"usageMetadata"` and `"modelVersion"`.
        let interesting =
            has("\"usage") || has("\"error\"") || (self.model.is_none() && has("\"model")) || name == Some("error");
        if !interesting {
            return None;
        }
        serde_json::from_str::<Value>(data).ok()
    }

    /// Whether an event is an error event by its `type` or SSE name.
    pub fn is_error_event(name: Option<&str>, event: &Value) -> bool {
        name == Some("error") || event.get("type").and_then(Value::as_str) == Some("error")
    }

    /// Records `event` (an object with an `error` member, or an error itself)
    /// as the stream's error.
    pub fn record_error(&mut self, event: &Value) {
        self.stream_error = Some(describe_error(event));
    }

    /// Take `model` and `usage` from an object that may carry them, under
    /// any of the providers' token field names.
    pub fn absorb(&mut self, obj: &Value) {
        if let Some(m) = obj.get("model").and_then(Value::as_str) {
            self.model = Some(m.to_string());
        }
        let Some(u) = obj.get("usage").filter(|u| u.is_object()) else {
            return;
        };
        let num = |keys: &[&str]| keys.iter().find_map(|k| u.pointer(k).and_then(Value::as_u64));
        if let Some(n) = num(&["/input_tokens", "/prompt_tokens"]) {
            self.input_tokens = Some(n);
        }
        if let Some(n) = num(&["/output_tokens", "/completion_tokens"]) {
            self.output_tokens = Some(n);
        }
        if let Some(n) = num(&[
            "/cache_read_input_tokens",
            "/input_tokens_details/cached_tokens",
            "/prompt_tokens_details/cached_tokens",
        ]) {
            self.cache_read_tokens = Some(n);
        }
        if let Some(n) = num(&["/cache_creation_input_tokens"]) {
            self.cache_write_tokens = Some(n);
        }
    }
}

fn describe_error(v: &Value) -> String {
    let e = v.get("error").unwrap_or(v);
    // Google's `code` is the HTTP status (a number); its `status` names it.
    let ty = ["type", "code", "status"]
        .iter()
        .find_map(|k| e.get(*k).and_then(Value::as_str))
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
