//! Anthropic Messages (`POST /v1/messages`) in and out of the common model.
//!
//! Mapping decisions (the README's translation table takes its lines from here):
//! - `system` is a string or text blocks; one unmarked text is written back as
//!   a string, anything else as blocks (`cache_control` kept on text and tools).
//! - `tool_choice.disable_parallel_tool_use` is `ir::Request::parallel_tool_calls`
//!   (inverted); with no `tool_choice` a "no parallel calls" is written as
//!   `{"type":"auto","disable_parallel_tool_use":true}`.
//! - `thinking.budget_tokens` is `ir::Reasoning::budget_tokens`; an effort-only
//!   reasoning is written as a budget (minimal 1024, low 2048, medium 8192,
//!   high 24576, xhigh 32768) and noted. `max_tokens` is required: absent, it
//!   becomes 4096 (or the budget + 4096) and is noted.
//! - `tool_use.input` (an object) becomes compact JSON text; arguments text is
//!   parsed back into an object on encode (not an object: `{}` and a note).
//! - Thinking blocks carry `origin: "anthropic"`; `redacted_thinking.data` is
//!   `ir::Thinking::encrypted`. Encoding drops (and notes) thinking of another
//!   origin and Anthropic thinking without a signature (the API rejects it).
//! - Requests from other shapes are made acceptable to the API, each change
//!   noted: no thinking with a forced tool choice or on a tool loop whose last
//!   assistant turn has no thinking block first; with thinking, no temperature
//!   but 1 and no top_p under 0.95; top_p dropped beside temperature (current
//!   models reject both); whitespace-only stop sequences dropped; tool ids
//!   outside `[a-zA-Z0-9_-]` rewritten alike in calls and results; a `data:`
//!   image URL sent as base64; empty text blocks and empty turns left out.
//! - Stop reasons: `refusal` is `ContentFilter`; `pause_turn` and
//!   `model_context_window_exceeded` travel as `Other` and come back as-is.
//!
//! - Freeform tools go as function tools with one string parameter `input`
//!   (their calls' arguments are `{"input": ...}`); `strict` is not sent (the
//!   API takes it only with a beta header) and is noted when true.
//! - Error codes: `insufficient_quota` is written as `billing_error` (and
//!   `billing_error` read as that code); `context_length_exceeded` keeps
//!   `invalid_request_error` with a message starting "prompt is too long"
//!   (what Claude Code looks for to compact its context).
//!
//! Dropped on decode and noted by name: `top_k`, `container`, `mcp_servers`,
//! `context_management`, `output_config`, `citations` of text and documents,
//! server tools (`type` other than `custom`), `document` blocks whose source
//! is not text (PDFs), `file` image sources, and the blocks of server tools
//! in history or answers (`server_tool_use`, `*_tool_result`, `mcp_tool_use`,
//! `search_result`, `container_upload`); in streams the same blocks and
//! `citations_delta`. Decoding fails with `Unsupported` on block kinds it
//! does not know and on non-text system blocks.
//!
//! Dropped on decode without a note (they do not change what is said):
//! `metadata` other than `user_id`, `service_tier`, `cache_control` on
//! blocks other than text (image, tool_use, tool_result, thinking), a
//! document's `title`/`context`, a response's `stop_sequence` (which
//! sequence matched) and `usage.cache_creation` / `server_tool_use` /
//! `service_tier`; in streams `ping`.
//!
//! Streams: thinking parts carry their origin. The encoder drops (and notes)
//! thinking of another origin whole, so it never writes a thinking block
//! whose signature Anthropic did not make; Anthropic thinking streams live
//! (its signature comes last, as upstream sends it; a part that ends without
//! one is noted) and `redacted_thinking` travels as an encrypted delta.

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

use super::ir::{self, ErrorKind, Notes};
use super::{Codec, Event, ResponseContext, StreamDecoder, StreamEncoder, TranslateError};
use crate::shape::ErrorFamily;

pub use stream::{AnthropicStreamDecoder, AnthropicStreamEncoder};

/// The shape's name in errors.
const SHAPE: &str = "anthropic.messages";
/// `ir::Thinking::origin` of thinking this API made.
pub const ORIGIN: &str = "anthropic";

/// The Anthropic Messages codec.
pub struct AnthropicCodec;

impl Codec for AnthropicCodec {
    fn decode_request(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Request, TranslateError> {
        request::decode(body, notes)
    }

    fn encode_request(&self, req: &ir::Request, notes: &mut Notes) -> Vec<u8> {
        to_bytes(&request::encode(req, notes))
    }

    fn decode_response(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Response, TranslateError> {
        response::decode(body, notes)
    }

    fn encode_response(&self, resp: &ir::Response, ctx: &ResponseContext, notes: &mut Notes) -> Vec<u8> {
        to_bytes(&response::encode(resp, ctx, notes))
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(AnthropicStreamDecoder::default())
    }

    fn stream_encoder(&self, ctx: &ResponseContext) -> Box<dyn StreamEncoder> {
        Box::new(AnthropicStreamEncoder::new(ctx.clone()))
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ir::ApiError {
        let value = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        decode_error_value(status, &value)
    }

    fn encode_error(&self, err: &ir::ApiError) -> Vec<u8> {
        let (ty, message) = anthropic_error(err);
        ErrorFamily::Anthropic.body(err.status, ty, None, &message).to_vec()
    }

    fn encode_stream_error(&self, err: &ir::ApiError) -> Event {
        stream_error_event(err)
    }

    fn endpoint(&self) -> &'static str {
        "/v1/messages"
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serializing a Value built from strings, numbers and maps cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn malformed(reason: impl Into<String>) -> TranslateError {
    TranslateError::Malformed {
        shape: SHAPE,
        reason: reason.into(),
    }
}

fn unsupported(what: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported {
        shape: SHAPE,
        what: what.into(),
    }
}

/// The Anthropic error `type` for a kind.
fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Server => "api_error",
    }
}

/// The `type` and message Anthropic would give for an error, its code
/// mapped where Anthropic has a name for it (see the module docs).
fn anthropic_error(err: &ir::ApiError) -> (&'static str, String) {
    match err.code.as_deref() {
        Some("insufficient_quota") => ("billing_error", err.message.clone()),
        Some("context_length_exceeded") if !err.message.to_ascii_lowercase().starts_with("prompt is too long") => {
            ("invalid_request_error", format!("prompt is too long: {}", err.message))
        }
        Some("context_length_exceeded") => ("invalid_request_error", err.message.clone()),
        _ => (error_type(err.kind), err.message.clone()),
    }
}

fn kind_of_type(ty: &str) -> Option<ErrorKind> {
    Some(match ty {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" | "billing_error" => ErrorKind::Permission,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimit,
        "overloaded_error" => ErrorKind::Overloaded,
        "timeout_error" => ErrorKind::Timeout,
        "api_error" => ErrorKind::Server,
        _ => return None,
    })
}

/// The status Anthropic answers a kind with (for errors met inside a
/// stream, where the wire status is 200).
fn status_of_kind(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InvalidRequest => 400,
        ErrorKind::Authentication => 401,
        ErrorKind::Permission => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::RequestTooLarge => 413,
        ErrorKind::RateLimit => 429,
        ErrorKind::Overloaded => 529,
        ErrorKind::Timeout => 504,
        ErrorKind::Server => 500,
    }
}

/// An error envelope (`{"type":"error","error":{"type","message"}}`); any
/// other value gives the status's kind and a generic message. An OpenAI
/// envelope's `error.message` and `error.code` are read too: they sit at
/// the same path.
fn decode_error_value(status: u16, value: &Value) -> ir::ApiError {
    let error = value.get("error");
    let ty = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let kind = ty
        .and_then(kind_of_type)
        .unwrap_or_else(|| ErrorKind::from_status(status));
    let code = match ty {
        Some("billing_error") => Some("insufficient_quota".to_string()),
        _ => error
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the provider answered HTTP {status}"));
    ir::ApiError {
        status,
        kind,
        message,
        code,
    }
}

fn stream_error_event(err: &ir::ApiError) -> Event {
    let (ty, message) = anthropic_error(err);
    let data = json!({"type": "error", "error": {"type": ty, "message": message}});
    Event {
        name: Some("error"),
        data: data.to_string(),
    }
}

fn stop_reason_of(s: &str) -> ir::StopReason {
    match s {
        "end_turn" => ir::StopReason::EndTurn,
        "max_tokens" => ir::StopReason::MaxTokens,
        "stop_sequence" => ir::StopReason::StopSequence,
        "tool_use" => ir::StopReason::ToolUse,
        "refusal" => ir::StopReason::ContentFilter,
        other => ir::StopReason::Other(other.to_string()),
    }
}

/// The `stop_reason` for a stop. A reason Anthropic has no name for is
/// written as `end_turn` and noted.
fn stop_reason_str(stop: &ir::StopReason, notes: &mut Notes) -> String {
    match stop {
        ir::StopReason::EndTurn => "end_turn".into(),
        ir::StopReason::MaxTokens => "max_tokens".into(),
        ir::StopReason::StopSequence => "stop_sequence".into(),
        ir::StopReason::ToolUse => "tool_use".into(),
        ir::StopReason::ContentFilter => "refusal".into(),
        ir::StopReason::Other(s) if is_anthropic_stop(s) => s.clone(),
        ir::StopReason::Other(s) => {
            notes.dropped(format!("stop reason {s} (written as end_turn)"));
            "end_turn".into()
        }
    }
}

fn is_anthropic_stop(s: &str) -> bool {
    matches!(s, "pause_turn" | "model_context_window_exceeded")
}

fn decode_usage(u: &Value) -> ir::TokenUsage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    ir::TokenUsage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_read_tokens: n("cache_read_input_tokens"),
        cache_write_tokens: n("cache_creation_input_tokens"),
        reasoning_tokens: None,
    }
}

fn note_reasoning_tokens(u: &ir::TokenUsage, notes: &mut Notes) {
    // OpenAI reports `reasoning_tokens: 0` on every answer: nothing lost then.
    if u.reasoning_tokens.is_some_and(|n| n > 0) {
        notes.dropped("usage.reasoning_tokens (counted in output_tokens)");
    }
}

/// A whole `usage` object as the API writes it (every field, 0 when unknown).
fn encode_usage(u: &ir::TokenUsage, notes: &mut Notes) -> Value {
    note_reasoning_tokens(u, notes);
    json!({
        "input_tokens": u.input_tokens.unwrap_or(0),
        "cache_creation_input_tokens": u.cache_write_tokens.unwrap_or(0),
        "cache_read_input_tokens": u.cache_read_tokens.unwrap_or(0),
        "output_tokens": u.output_tokens.unwrap_or(0),
    })
}

/// An assistant content block for a part (request history or answer).
/// Thinking of another origin, or unsigned, is dropped and noted: the API
/// rejects a thinking block whose signature it did not make.
fn encode_thinking(t: &ir::Thinking, notes: &mut Notes) -> Option<Value> {
    if t.origin != ORIGIN {
        notes.dropped(foreign_thinking_note(t.origin));
        return None;
    }
    if let Some(data) = &t.encrypted {
        return Some(json!({"type": "redacted_thinking", "data": data}));
    }
    // An empty signature is what a client echoes of a stream that had none.
    match t.signature.as_ref().filter(|s| !s.is_empty()) {
        Some(sig) => Some(json!({"type": "thinking", "thinking": t.text, "signature": sig})),
        None => {
            notes.dropped("thinking without a signature");
            None
        }
    }
}

fn origin_label(origin: &'static str) -> &'static str {
    if origin.is_empty() {
        "an unknown provider"
    } else {
        origin
    }
}

/// The note for thinking of another origin, dropped.
fn foreign_thinking_note(origin: &'static str) -> String {
    format!(
        "thinking from {} (its signature is only valid there)",
        origin_label(origin)
    )
}

/// Arguments JSON text as the `input` object Anthropic requires: empty is
/// `{}`; text that is not a JSON object is `{}` and noted.
fn arguments_to_input(arguments: &str, notes: &mut Notes) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            notes.dropped("tool call arguments that are not a JSON object (sent as {})");
            Value::Object(Map::new())
        }
    }
}

/// A tool `input` value as compact arguments text (`{}` for none).
fn input_to_arguments(input: Option<&Value>) -> String {
    match input {
        None | Some(Value::Null) => "{}".to_string(),
        Some(v) => v.to_string(),
    }
}

/// `cache_control` when present and not null.
fn cache_control(block: &Value) -> Option<Value> {
    block.get("cache_control").filter(|v| !v.is_null()).cloned()
}
