//! OpenAI Chat Completions (`POST .../chat/completions`): tools and
//! messages; streamed as `choices[].delta` chunks ending with `[DONE]`.

use bytes::Bytes;
use serde_json::Value;

use crate::errors;
use crate::json::{self, Lit, Node};
use crate::restore::EscapeMode;
use crate::shape::{ErrorFamily, NonJsonBody, Shape};
use crate::stream::{raw_scalar, EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::{fields, Mode, PathId, Walk};

pub(crate) struct OpenAiChat;

impl Shape for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai.chat"
    }

    fn matches(&self, method: &str, key: &str) -> bool {
        method.eq_ignore_ascii_case("POST") && key.ends_with("/chat/completions")
    }

    fn is_llm(&self) -> bool {
        true
    }

    fn error_family(&self) -> ErrorFamily {
        ErrorFamily::OpenAi
    }

    fn non_json_body(&self) -> NonJsonBody {
        NonJsonBody::Reject
    }

    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
        walk.top_level(root, &["tools", "functions"], "messages", |w, key, v, p| match key {
            "messages" => w.each(v, p, |w, m, pm| {
                for (k, v) in fields(m) {
                    let pk = w.key(pm, k);
                    match k.raw {
                        "content" => content(w, v, pk),
                        "refusal" => w.place(v, Mode::Text, pk),
                        "tool_calls" => w.each(v, pk, tool_call),
                        "function_call" => tool_call_function(w, v, pk),
                        "reasoning_content" | "reasoning" => w.place(v, Mode::Protected, pk),
                        _ => w.generic(v, pk),
                    }
                }
            }),
            _ => w.generic(v, p),
        });
    }

    fn model_in_path(&self, _: &str) -> Option<String> {
        None
    }

    fn continuation_field(&self) -> Option<&'static str> {
        None
    }

    fn restore_event(&self, events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult {
        let mut out = EventResult::default();
        if data.trim() == "[DONE]" {
            out.before = events.flush_where(|_| true);
            return out;
        }
        let Ok(root) = json::parse(data) else {
            return out;
        };
        let Some(Node::Arr(choices)) = root.get("choices") else {
            out.replaced = events.restore_whole(data);
            return out;
        };
        let mut edits = Vec::new();
        for choice in choices {
            let ci = choice.get("index").map(|n| raw_scalar(data, n)).unwrap_or_default();
            let finished = choice
                .get("finish_reason")
                .is_some_and(|f| !matches!(f, Node::Scalar(r) if &data[r.clone()] == "null"));
            let prefix = format!("c:{ci}:");
            let delta = choice.get("delta");
            // Streams of a finishing choice that get no text in this chunk
            // are flushed before it; the others are fed without hold-back.
            if finished {
                let present: Vec<String> = delta.map(|d| stream_keys(d, &prefix, data)).unwrap_or_default();
                out.before
                    .extend(events.flush_where(|k| k.starts_with(&prefix) && !present.iter().any(|p| p == k)));
            }
            let Some(delta) = delta else { continue };
            for (key, lit, mode) in delta_fields(delta, &prefix, data) {
                if let Some(new) = events.feed(key, prefix.clone(), mode, name, data, lit, finished) {
                    edits.push((lit.range(), new));
                }
            }
        }
        if !edits.is_empty() {
            out.replaced = Some(json::splice(data, &mut edits));
        }
        out
    }

    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value) {
        // Chat reports a stream error as a chunk `{"error": {...}}`.
        if Usage::is_error_event(name, event) || event.get("error").is_some() {
            return usage.record_error(event);
        }
        usage.absorb(event);
    }

    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        usage.absorb(body);
    }

    fn sse_error_event(&self, message: &str) -> Bytes {
        errors::openai_chat_sse_error(message)
    }

    fn ws_error_frame(&self, _: u16, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }

    fn codec(&self) -> Option<&'static dyn crate::translate::Codec> {
        Some(&crate::translate::chat::ChatCodec)
    }
}

fn tool_call<'t, 'a>(w: &mut Walk<'t, 'a>, call: &'t Node<'a>, path: PathId) {
    for (k, v) in fields(call) {
        let p = w.key(path, k);
        if k.raw == "function" {
            tool_call_function(w, v, p);
        } else if k.raw == "custom" {
            // Custom tool calls carry free text in `input`.
            for (ck, cv) in fields(v) {
                let pc = w.key(p, ck);
                let mode = if ck.raw == "input" {
                    Mode::Text
                } else {
                    Mode::SecretsOnly
                };
                w.place(cv, mode, pc);
            }
        } else {
            w.generic(v, p);
        }
    }
}

fn tool_call_function<'t, 'a>(w: &mut Walk<'t, 'a>, f: &'t Node<'a>, path: PathId) {
    for (k, v) in fields(f) {
        let p = w.key(path, k);
        if k.raw == "arguments" {
            w.place(v, Mode::JsonText, p);
        } else {
            w.generic(v, p);
        }
    }
}

/// Chat / Responses message content: a string or typed parts.
pub(crate) fn content<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    match node {
        Node::Str(_) => w.place(node, Mode::Text, path),
        Node::Arr(_) => w.each(node, path, |w, part, pp| {
            for (k, v) in fields(part) {
                let pk = w.key(pp, k);
                match k.raw {
                    "text" | "refusal" => w.place(v, Mode::Text, pk),
                    "image_url" | "file_data" | "input_audio" | "file" => skip_binary(w, v, pk),
                    _ => w.generic(v, pk),
                }
            }
        }),
        _ => w.generic(node, path),
    }
}

fn skip_binary<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    match node {
        Node::Obj(fs) => {
            for (k, v) in fs {
                if !matches!(k.raw, "data" | "file_data" | "url") {
                    let p = w.key(path, k);
                    w.generic(v, p);
                }
            }
        }
        // A URL or inline data: only scan URLs (credentials in them).
        Node::Str(lit) if !lit.raw.starts_with("data:") => w.place(node, Mode::SecretsOnly, path),
        _ => {}
    }
}

/// Text-bearing literals of a Chat delta: content, refusal, tool arguments.
fn delta_fields<'t, 'a>(delta: &'t Node<'a>, prefix: &str, data: &str) -> Vec<(String, &'t Lit<'a>, EscapeMode)> {
    let mut out = Vec::new();
    for field in ["content", "refusal"] {
        if let Some(lit) = delta.get(field).and_then(Node::as_lit) {
            out.push((format!("{prefix}{field}"), lit, EscapeMode::Plain));
        }
    }
    if let Some(Node::Arr(calls)) = delta.get("tool_calls") {
        for call in calls {
            let ti = call.get("index").map(|n| raw_scalar(data, n)).unwrap_or_default();
            if let Some(lit) = call
                .get("function")
                .and_then(|f| f.get("arguments"))
                .and_then(Node::as_lit)
            {
                out.push((format!("{prefix}tool:{ti}"), lit, EscapeMode::JsonInner));
            }
        }
    }
    out
}

fn stream_keys(delta: &Node<'_>, prefix: &str, data: &str) -> Vec<String> {
    delta_fields(delta, prefix, data)
        .into_iter()
        .map(|(k, _, _)| k)
        .collect()
}

/// Typed Chat Completions bodies for translation between APIs. Unknown
/// fields are kept in `extra`, so parse → serialize gives the same JSON
/// value. Redaction does not use these: it splices the client's bytes.
pub mod wire {
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    use crate::field::Field;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Request {
        pub model: String,
        pub messages: Vec<Message>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub tools: Field<Vec<Tool>>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub stream: Field<bool>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Message {
        pub role: String,
        /// `null` for an assistant turn that only calls tools.
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub content: Field<Content>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub tool_calls: Field<Vec<ToolCall>>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub tool_call_id: Field<String>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Content {
        Text(String),
        Parts(Vec<Part>),
    }

    /// `text`, `image_url`, `input_audio`, `file`, ...: the non-text ones
    /// keep their payload in `extra`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Part {
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub text: Field<String>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ToolCall {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub id: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub function: Field<FunctionCall>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct FunctionCall {
        pub name: String,
        /// JSON text, as the model wrote it.
        pub arguments: String,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Tool {
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub function: Field<Value>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Response {
        pub id: String,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub model: Field<String>,
        pub choices: Vec<Choice>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub usage: Field<WireUsage>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Choice {
        pub index: u64,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub message: Field<Message>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub finish_reason: Field<String>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// The provider's own usage object (the counts promptwall reads go to
    /// [`crate::Usage`]).
    pub struct WireUsage {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub prompt_tokens: Field<u64>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub completion_tokens: Field<u64>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }
}
