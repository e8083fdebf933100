//! OpenAI Responses (`POST .../responses`, `.../responses/compact`) and its
//! Codex WebSocket transport (`GET .../responses` upgrade, one Responses
//! request per client message): instructions, tools and input items;
//! streamed as typed `response.*` events.

use bytes::Bytes;
use serde_json::Value;

use crate::errors;
use crate::json::{self, Node};
use crate::restore::EscapeMode;
use crate::shape::{ErrorFamily, NonJsonBody, Shape};
use crate::shapes::openai_chat;
use crate::stream::{raw_scalar, EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::{fields, Mode, PathId, Walk};

pub(crate) struct OpenAiResponses;

impl Shape for OpenAiResponses {
    fn name(&self) -> &'static str {
        "openai.responses"
    }

    fn matches(&self, method: &str, key: &str) -> bool {
        let post = method.eq_ignore_ascii_case("POST");
        // `GET .../responses` is the Codex WebSocket upgrade. Codex's history
        // compaction carries the whole conversation in the request format.
        (key.ends_with("/responses") && (post || method.eq_ignore_ascii_case("GET")))
            || (post && key.ends_with("/responses/compact"))
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
        walk.top_level(root, &["instructions", "tools"], "input", |w, key, v, p| match key {
            "instructions" | "input" => match v {
                Node::Str(_) => w.place(v, Mode::Text, p),
                Node::Arr(_) => w.each(v, p, item),
                _ => w.generic(v, p),
            },
            _ => w.generic(v, p),
        });
    }

    fn model_in_path(&self, _: &str) -> Option<String> {
        None
    }

    fn continuation_field(&self) -> Option<&'static str> {
        Some("previous_response_id")
    }

    fn restore_event(&self, events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult {
        let mut out = EventResult::default();
        let Ok(root) = json::parse(data) else {
            return out;
        };
        let ty = root.str_field("type");
        let ty = ty.as_deref().unwrap_or("");
        let item = root.str_field("item_id").map(|s| s.into_owned()).unwrap_or_default();
        let content = root
            .get("content_index")
            .map(|n| raw_scalar(data, n))
            .unwrap_or_default();
        let delta_stream = match ty {
            "response.output_text.delta" => Some((format!("t:{item}:{content}"), EscapeMode::Plain)),
            "response.refusal.delta" => Some((format!("r:{item}:{content}"), EscapeMode::Plain)),
            "response.function_call_arguments.delta" => Some((format!("f:{item}"), EscapeMode::JsonInner)),
            "response.custom_tool_call_input.delta" => Some((format!("c:{item}"), EscapeMode::Plain)),
            _ => None,
        };
        if let Some((key, mode)) = delta_stream {
            if let Some(lit) = root.get("delta").and_then(Node::as_lit) {
                out.replaced = events
                    .feed(key, item, mode, name, data, lit, false)
                    .map(|new| json::splice(data, &mut [(lit.range(), new)]));
            }
            return out;
        }
        let flush_key = match ty {
            "response.output_text.done" => Some(format!("t:{item}:{content}")),
            "response.refusal.done" => Some(format!("r:{item}:{content}")),
            "response.function_call_arguments.done" => Some(format!("f:{item}")),
            "response.custom_tool_call_input.done" => Some(format!("c:{item}")),
            _ => None,
        };
        if let Some(key) = flush_key {
            out.before = events.flush_where(|k| k == key);
        } else if ty == "response.output_item.done" || ty == "response.content_part.done" {
            let owner = root
                .get("item")
                .and_then(|i| i.str_field("id"))
                .map(|s| s.into_owned())
                .unwrap_or(item);
            let owned = events.owned_by(&owner);
            out.before = events.flush_where(|k| owned.iter().any(|o| o == k));
        } else if matches!(
            ty,
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            out.before = events.flush_where(|_| true);
        }
        out.replaced = events.restore_whole(data);
        out
    }

    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value) {
        if Usage::is_error_event(name, event) {
            return usage.record_error(event);
        }
        let ty = event.get("type").and_then(Value::as_str).unwrap_or("");
        if !ty.starts_with("response.") {
            return absorb_response(usage, event);
        }
        // `response.*` events carry the response object under `response`.
        let Some(r) = event.get("response") else { return };
        absorb_response(usage, r);
        if ty == "response.failed" {
            if let Some(e) = r.get("error").filter(|e| !e.is_null()) {
                usage.record_error(&serde_json::json!({"error": e}));
            }
        }
    }

    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        absorb_response(usage, body);
    }

    fn sse_error_event(&self, message: &str) -> Bytes {
        errors::responses_sse_error(message)
    }

    fn ws_error_frame(&self, status: u16, error_type: &str, code: &str, message: &str) -> Option<String> {
        Some(errors::ws_error_frame(status, error_type, code, message))
    }

    fn codec(&self) -> Option<&'static dyn crate::translate::Codec> {
        Some(&crate::translate::responses::ResponsesCodec)
    }
}

/// Usage and model of a response object, and its id (which a follow-up
/// names as `previous_response_id`).
fn absorb_response(usage: &mut Usage, obj: &Value) {
    usage.absorb(obj);
    if obj.get("object").and_then(Value::as_str) == Some("response") {
        if let Some(id) = obj.get("id").and_then(Value::as_str) {
            usage.response_id = Some(id.to_string());
        }
    }
}

fn item<'t, 'a>(w: &mut Walk<'t, 'a>, item: &'t Node<'a>, path: PathId) {
    let ty = item.str_field("type");
    let ty = ty
        .as_deref()
        .unwrap_or(if item.get("role").is_some() { "message" } else { "" });
    if matches!(ty, "reasoning" | "compaction" | "compaction_summary") {
        return w.protected(item, path);
    }
    for (k, v) in fields(item) {
        let p = w.key(path, k);
        match (ty, k.raw) {
            ("message", "content") => openai_chat::content(w, v, p),
            (_, "arguments") if ty.ends_with("_call") => w.place(v, Mode::JsonText, p),
            ("custom_tool_call", "input") => w.place(v, Mode::Text, p),
            (_, "action" | "input") if ty.ends_with("_call") => w.all_strings(v, Mode::Text, p),
            (_, "output") if ty.ends_with("_call_output") || ty.ends_with("_call") => openai_chat::content(w, v, p),
            _ => w.generic(v, p),
        }
    }
}

/// Typed Responses bodies for translation between APIs. Unknown fields are
/// kept in `extra`, so parse → serialize gives the same JSON value.
/// Redaction does not use these: it splices the client's bytes.
pub mod wire {
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    use crate::field::Field;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Request {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub model: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub instructions: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub input: Field<Input>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub tools: Field<Vec<Value>>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub previous_response_id: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub stream: Field<bool>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Input {
        Text(String),
        Items(Vec<Item>),
    }

    /// An input or output item: `message` (also typeless with a `role`),
    /// `function_call`, `function_call_output`, `reasoning`, ...
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Item {
        #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
        pub kind: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub role: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub content: Field<Content>,
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Content {
        Text(String),
        Parts(Vec<Part>),
    }

    /// `input_text`, `output_text`, `input_image`, ...
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
    pub struct Response {
        pub id: String,
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        pub model: Field<String>,
        #[serde(default)]
        pub output: Vec<Item>,
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
        #[serde(flatten)]
        pub extra: Map<String, Value>,
    }
}
