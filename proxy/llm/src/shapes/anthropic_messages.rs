//! Anthropic Messages (`POST /v1/messages`): system, tools and messages of
//! content blocks; streamed as `content_block_delta` events.

use bytes::Bytes;
use serde_json::Value;

use crate::errors;
use crate::json::{self, Node};
use crate::restore::EscapeMode;
use crate::shape::{ErrorFamily, NonJsonBody, Shape};
use crate::stream::{raw_scalar, EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::{fields, Mode, PathId, Walk};

pub(crate) struct AnthropicMessages;

impl Shape for AnthropicMessages {
    fn name(&self) -> &'static str {
        "anthropic.messages"
    }

    fn matches(&self, method: &str, key: &str) -> bool {
        method.eq_ignore_ascii_case("POST") && (key.ends_with("/v1/messages") || key == "/messages")
    }

    fn is_llm(&self) -> bool {
        true
    }

    fn error_family(&self) -> ErrorFamily {
        ErrorFamily::Anthropic
    }

    fn non_json_body(&self) -> NonJsonBody {
        NonJsonBody::Reject
    }

    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
        walk_request(walk, root);
    }

    fn model_in_path(&self, _: &str) -> Option<String> {
        None
    }

    fn continuation_field(&self) -> Option<&'static str> {
        None
    }

    fn restore_event(&self, events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult {
        restore_event(events, name, data)
    }

    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value) {
        if Usage::is_error_event(name, event) {
            return usage.record_error(event);
        }
        if event.get("type").and_then(Value::as_str) == Some("message_start") {
            if let Some(m) = event.get("message") {
                usage.absorb(m);
            }
            return;
        }
        // `message_delta` carries the final usage at the top level.
        usage.absorb(event);
    }

    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        usage.absorb(body);
    }

    fn sse_error_event(&self, message: &str) -> Bytes {
        errors::anthropic_sse_error(message)
    }

    fn ws_error_frame(&self, _: u16, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }

    fn codec(&self) -> Option<&'static dyn crate::translate::Codec> {
        Some(&crate::translate::anthropic::AnthropicCodec)
    }
}

/// A Messages request body (also count_tokens').
pub(crate) fn walk_request<'t, 'a>(walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
    walk.top_level(root, &["system", "tools"], "messages", |w, key, v, p| match key {
        "system" => content(w, v, p),
        "messages" => w.each(v, p, |w, m, pm| {
            if let Some((k, c)) = fields(m).iter().find(|(k, _)| k.raw == "content") {
                let pc = w.key(pm, k);
                content(w, c, pc);
            }
            for (k, v) in fields(m).iter().filter(|(k, _)| k.raw != "content") {
                let pk = w.key(pm, k);
                w.generic(v, pk);
            }
        }),
        _ => w.generic(v, p),
    });
}

/// A string or an array of content blocks.
fn content<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    match node {
        Node::Str(_) => w.place(node, Mode::Text, path),
        Node::Arr(_) => w.each(node, path, block),
        _ => w.generic(node, path),
    }
}

fn block<'t, 'a>(w: &mut Walk<'t, 'a>, block: &'t Node<'a>, path: PathId) {
    let ty = block.str_field("type");
    let ty = ty.as_deref().unwrap_or("");
    if matches!(ty, "thinking" | "redacted_thinking") {
        return w.protected(block, path);
    }
    let source_is_text = block.get("source").is_some_and(|s| s.field_is("type", "text"));
    for (k, v) in fields(block) {
        let p = w.key(path, k);
        match (ty, k.raw) {
            ("text", "text") => w.place(v, Mode::Text, p),
            ("tool_use" | "server_tool_use" | "mcp_tool_use", "input") => w.all_strings(v, Mode::Text, p),
            (_, "content") if ty.ends_with("tool_result") || ty == "search_result" => content(w, v, p),
            ("document", "source") if source_is_text => {
                for (sk, sv) in fields(v) {
                    let ps = w.key(p, sk);
                    if sk.raw == "data" {
                        w.place(sv, Mode::Text, ps);
                    } else {
                        w.generic(sv, ps);
                    }
                }
            }
            ("document", "source") => match v.get("content") {
                Some(c @ Node::Arr(_)) => {
                    let pc = w.named(p, "content");
                    content(w, c, pc);
                }
                _ => w.generic(v, p),
            },
            _ => w.generic(v, p),
        }
    }
}

/// Deltas of each content block are one stream; thinking and signature
/// deltas are never touched; everything else is restored whole.
pub(crate) fn restore_event(events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult {
    let mut out = EventResult::default();
    let Ok(root) = json::parse(data) else {
        return out;
    };
    let ty = root.str_field("type");
    let ty = ty.as_deref().unwrap_or("");
    let index = root.get("index").map(|n| raw_scalar(data, n)).unwrap_or_default();
    match ty {
        "content_block_delta" => {
            let Some(delta) = root.get("delta") else { return out };
            let (field, mode) = match delta.str_field("type").as_deref() {
                Some("text_delta") => ("text", EscapeMode::Plain),
                Some("input_json_delta") => ("partial_json", EscapeMode::JsonInner),
                _ => return out,
            };
            if let Some(lit) = delta.get(field).and_then(Node::as_lit) {
                out.replaced = events
                    .feed(format!("a:{index}"), String::new(), mode, name, data, lit, false)
                    .map(|new| json::splice(data, &mut [(lit.range(), new)]));
            }
        }
        "content_block_stop" => {
            let key = format!("a:{index}");
            out.before = events.flush_where(|k| k == key);
        }
        "message_delta" | "message_stop" | "error" => {
            out.before = events.flush_where(|_| true);
            out.replaced = events.restore_whole(data);
        }
        _ => out.replaced = events.restore_whole(data),
    }
    out
}

/// Typed Anthropic Messages bodies for translation between APIs. Unknown
/// fields are kept in `extra`, so parse → serialize gives the same JSON
/// value. Redaction does not use these: it splices the client's bytes.
pub mod wire {
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    use crate::field::Field;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Request {
        pub model: String,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub max_tokens: Field<u64>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub system: Field<Content>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub tools: Field<Vec<Tool>>,
        pub messages: Vec<Message>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub stream: Field<bool>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Message {
        pub role: String,
        pub content: Content,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    /// A string or content blocks (`system`, message and tool-result content).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Content {
        Text(String),
        Blocks(Vec<Block>),
    }

    /// One content block: `text`, `tool_use`, `tool_result`, `thinking`, ...;
    /// the fields of the other kinds stay in `extra`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Block {
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub text: Field<String>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Tool {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub name: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub description: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub input_schema: Field<Value>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Response {
        pub id: String,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub model: Field<String>,
        pub content: Vec<Block>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub stop_reason: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub usage: Field<WireUsage>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// The provider's own usage object (the counts promptwall reads go to
    /// [`crate::Usage`]).
    pub struct WireUsage {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub input_tokens: Field<u64>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub output_tokens: Field<u64>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub cache_creation_input_tokens: Field<u64>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub cache_read_input_tokens: Field<u64>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }
}
