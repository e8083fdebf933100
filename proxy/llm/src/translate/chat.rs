//! OpenAI Chat Completions (`/v1/chat/completions`) in and out of [`ir`].
//!
//! Decisions (each one a line of the README's translation table):
//! - `system` and `developer` messages go to `ir.system` wherever they
//!   stand; the encoder writes one `system` message first (a string for
//!   one text, text parts for several).
//! - `tool` messages become `ToolResult` parts of one user turn (Anthropic's
//!   model); a `user` message right after them joins that turn. The encoder
//!   writes a turn's tool results as `tool` messages BEFORE its other parts.
//!   A tool message cannot hold images: they go in a user message after the
//!   tool messages (noted). Chat has no `is_error` (noted).
//! - Assistant `reasoning_content` (DeepSeek, vLLM; `reasoning` as a
//!   fallback) is a `Thinking` part of origin `openai`, first in the turn;
//!   the encoder writes `openai` thinking text back as `reasoning_content`
//!   and drops (notes) other origins and any signature or encrypted content.
//! - Assistant text parts are joined into one `content` string (Chat has no
//!   interleaving of text and tool calls; a text after a call is noted).
//! - The encoder writes `max_completion_tokens`, never `max_tokens`:
//!   OpenAI's reasoning models (o-series, gpt-5) reject `max_tokens` with a
//!   400, while compatible servers accept `max_completion_tokens` (vLLM,
//!   Groq, OpenRouter) or ignore it. Both are decoded
//!   (`max_completion_tokens` wins). See [`MAX_TOKENS_FIELD`].
//! - A thinking budget without an effort becomes `reasoning_effort` by
//!   [`effort_for_budget`] (noted).
//! - `tool_choice` and `parallel_tool_calls` are only sent with tools
//!   (OpenAI rejects them alone); they mean nothing without.
//! - Usage: `prompt_tokens` includes cached tokens, so `input_tokens` is
//!   `prompt_tokens - cached_tokens - cache_write_tokens`; cache writes are
//!   read and written as OpenRouter's `prompt_tokens_details.cache_write_tokens`
//!   (OpenAI reports none); DeepSeek's `prompt_cache_hit_tokens` is read
//!   when `cached_tokens` is absent.
//! - Only choice 0 of an answer is read.
//!
//! - `custom` (freeform) tools are read as [`ir::ToolKind::Freeform`] (a
//!   grammar `format` turned into Responses' form) and their calls as
//!   arguments `{"input": ...}`; the encoder writes every tool as a function
//!   (a freeform one with its one-string-`input` schema) and `strict` when
//!   the source said.
//! - Error `code` is read and written as is (OpenAI's vocabulary); with none,
//!   a rate limit gets `rate_limit_exceeded`.
//!
//! Dropped on decode and noted by name: `response_format` (other than text),
//! `seed`, `logprobs`, `top_logprobs`, `frequency_penalty`,
//! `presence_penalty`, `logit_bias`, `prediction`, `web_search_options`,
//! `modalities`, `audio`, message `name`, `input_audio` and `file` content
//! parts. Dropped without a note (they do not change what is said): image
//! `detail`, `stream_options` (the caller's
//! [`ResponseContext::stream_usage`] says it), `metadata`, `store`,
//! `service_tier`, `prompt_cache_key`, the position of a mid-conversation
//! system message, the difference between `system` and `developer`,
//! answers' `logprobs`, `annotations`, `system_fingerprint`.
//! Refused with [`TranslateError::Unsupported`] as it changes what the
//! exchange means: `n` > 1, and tool calls of a type other than function
//! or custom.

mod stream;

use serde_json::{json, Map, Value};

use super::ir::{self, Part, Role};
use super::{Codec, Event, Notes, ResponseContext, StreamDecoder, StreamEncoder, TranslateError};

const SHAPE: &str = "openai.chat";

/// The origin this codec gives the thinking it reads and re-emits.
pub const ORIGIN: &str = "openai";

/// The field the encoder writes the output limit to (see the module docs).
pub const MAX_TOKENS_FIELD: &str = "max_completion_tokens";

/// OpenAI Chat Completions.
pub struct ChatCodec;

impl Codec for ChatCodec {
    fn decode_request(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Request, TranslateError> {
        decode_request(&parse(body)?, notes)
    }

    fn encode_request(&self, req: &ir::Request, notes: &mut Notes) -> Vec<u8> {
        to_bytes(&encode_request(req, notes))
    }

    fn decode_response(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Response, TranslateError> {
        decode_response(&parse(body)?, notes)
    }

    fn encode_response(&self, resp: &ir::Response, ctx: &ResponseContext, notes: &mut Notes) -> Vec<u8> {
        to_bytes(&encode_response(resp, ctx, notes))
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(stream::ChatStreamDecoder::default())
    }

    fn stream_encoder(&self, ctx: &ResponseContext) -> Box<dyn StreamEncoder> {
        Box::new(stream::ChatStreamEncoder::new(ctx))
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ir::ApiError {
        decode_error(status, body)
    }

    fn encode_error(&self, err: &ir::ApiError) -> Vec<u8> {
        to_bytes(&error_value(err))
    }

    fn encode_stream_error(&self, err: &ir::ApiError) -> Event {
        Event {
            name: None,
            data: error_value(err).to_string(),
        }
    }

    fn endpoint(&self) -> &'static str {
        "/v1/chat/completions"
    }
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

/// The body as a JSON object. The error names the position, never content.
fn parse(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed("the body is not a JSON object")),
        Err(e) => Err(malformed(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))),
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serializing a Value with string keys cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

// ---------------------------------------------------------------- requests

/// Request fields that change the answer and have no place in the model.
const DROPPED_FIELDS: [&str; 10] = [
    "seed",
    "logprobs",
    "top_logprobs",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "prediction",
    "web_search_options",
    "modalities",
    "audio",
];

fn decode_request(root: &Map<String, Value>, notes: &mut Notes) -> Result<ir::Request, TranslateError> {
    let model = root
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("model is missing or not a string"))?
        .to_string();
    let msgs = root
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("messages is missing or not an array"))?;
    if root.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(unsupported("n > 1 (several choices)"));
    }
    for key in DROPPED_FIELDS {
        // `logprobs: false` and zero penalties are the defaults: nothing lost.
        match root.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) && key.ends_with("penalty") => {}
            Some(_) => notes.dropped(key),
        }
    }
    if root
        .get("response_format")
        .is_some_and(|f| !f.is_null() && str_of(f, "type") != Some("text"))
    {
        notes.dropped("response_format");
    }

    let mut req = ir::Request {
        model,
        ..Default::default()
    };
    // True while the last turn is made of tool messages only, so the next
    // tool or user message joins it.
    let mut tool_turn = false;
    for (i, m) in msgs.iter().enumerate() {
        let role = str_of(m, "role").ok_or_else(|| malformed(format!("messages[{i}].role is missing")))?;
        if role != "function" && str_of(m, "name").is_some() {
            notes.dropped("message name");
        }
        match role {
            "system" | "developer" => {
                for text in text_content(m.get("content"), i, notes)? {
                    req.system.push(ir::Text {
                        text,
                        cache_control: None,
                    });
                }
            }
            "user" => {
                let parts = user_content(m.get("content"), i, notes)?;
                match req.messages.last_mut() {
                    Some(last) if tool_turn => last.parts.extend(parts),
                    _ => req.messages.push(ir::Message {
                        role: Role::User,
                        parts,
                    }),
                }
                tool_turn = false;
            }
            "tool" | "function" => {
                // Legacy `function` messages name the function; its call
                // was given that name as id (see `assistant_parts`).
                let id_key = if role == "tool" { "tool_call_id" } else { "name" };
                let call_id = str_of(m, id_key)
                    .ok_or_else(|| malformed(format!("messages[{i}].{id_key} is missing")))?
                    .to_string();
                let part = Part::ToolResult(ir::ToolResult {
                    call_id,
                    content: tool_content(m.get("content"), i, notes)?,
                    is_error: false,
                });
                match req.messages.last_mut() {
                    Some(last) if tool_turn => last.parts.push(part),
                    _ => req.messages.push(ir::Message {
                        role: Role::User,
                        parts: vec![part],
                    }),
                }
                tool_turn = true;
            }
            "assistant" => {
                req.messages.push(ir::Message {
                    role: Role::Assistant,
                    parts: assistant_parts(m, i, notes)?,
                });
                tool_turn = false;
            }
            other => return Err(malformed(format!("messages[{i}].role {other:?} is unknown"))),
        }
    }

    let mut tools = Vec::new();
    if let Some(list) = root.get("tools").and_then(Value::as_array) {
        for (i, t) in list.iter().enumerate() {
            match str_of(t, "type") {
                Some("function") => {
                    let f = t
                        .get("function")
                        .ok_or_else(|| malformed(format!("tools[{i}].function is missing")))?;
                    tools.push(decode_function(f, &format!("tools[{i}].function"))?);
                }
                Some("custom") => {
                    let c = t
                        .get("custom")
                        .ok_or_else(|| malformed(format!("tools[{i}].custom is missing")))?;
                    tools.push(decode_custom(c, &format!("tools[{i}].custom"))?);
                }
                // A tool the model cannot be offered; the rest still stands.
                Some(other) => notes.dropped(format!("{other} tools")),
                None => return Err(malformed(format!("tools[{i}].type is missing"))),
            }
        }
    }
    // Legacy `functions`.
    if let Some(list) = root.get("functions").and_then(Value::as_array) {
        for (i, f) in list.iter().enumerate() {
            tools.push(decode_function(f, &format!("functions[{i}]"))?);
        }
    }
    req.tools = tools;
    req.tool_choice = root
        .get("tool_choice")
        .or_else(|| root.get("function_call"))
        .and_then(decode_tool_choice);
    req.parallel_tool_calls = root.get("parallel_tool_calls").and_then(Value::as_bool);
    req.max_output_tokens = root
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| root.get("max_tokens").and_then(Value::as_u64));
    req.temperature = root.get("temperature").and_then(Value::as_f64);
    req.top_p = root.get("top_p").and_then(Value::as_f64);
    req.stop = match root.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    req.stream = root.get("stream").and_then(Value::as_bool).unwrap_or(false);
    req.reasoning = root
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .map(|e| ir::Reasoning {
            effort: Some(e.to_string()),
            budget_tokens: None,
        });
    req.user = root
        .get("user")
        .or_else(|| root.get("safety_identifier"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(req)
}

fn decode_function(f: &Value, at: &str) -> Result<ir::Tool, TranslateError> {
    let name = str_of(f, "name").ok_or_else(|| malformed(format!("{at}.name is missing")))?;
    Ok(ir::Tool {
        name: name.to_string(),
        description: str_of(f, "description").map(str::to_string),
        parameters: f
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"})),
        cache_control: None,
        kind: ir::ToolKind::Function,
        strict: f.get("strict").and_then(Value::as_bool),
    })
}

/// A `custom` tool. Chat nests a grammar (`{"type":"grammar","grammar":
/// {"syntax","definition"}}`); the model keeps Responses' flat form.
fn decode_custom(c: &Value, at: &str) -> Result<ir::Tool, TranslateError> {
    let name = str_of(c, "name").ok_or_else(|| malformed(format!("{at}.name is missing")))?;
    let format = c
        .get("format")
        .filter(|f| !f.is_null())
        .map(|f| match f.get("grammar") {
            Some(g) if str_of(f, "type") == Some("grammar") => {
                let mut flat = Map::new();
                flat.insert("type".into(), json!("grammar"));
                for key in ["syntax", "definition"] {
                    if let Some(v) = g.get(key) {
                        flat.insert(key.into(), v.clone());
                    }
                }
                Value::Object(flat)
            }
            _ => f.clone(),
        });
    Ok(ir::Tool {
        name: name.to_string(),
        description: str_of(c, "description").map(str::to_string),
        parameters: ir::freeform_parameters(format.as_ref()),
        cache_control: None,
        kind: ir::ToolKind::Freeform { format },
        strict: None,
    })
}

fn decode_tool_choice(v: &Value) -> Option<ir::ToolChoice> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Some(ir::ToolChoice::Auto),
            "none" => Some(ir::ToolChoice::None),
            "required" => Some(ir::ToolChoice::Required),
            _ => None,
        },
        // `{"type":"function","function":{"name":…}}`, `{"type":"custom",
        // "custom":{"name":…}}`, or legacy `{"name":…}`.
        Value::Object(_) => v
            .get("function")
            .or_else(|| v.get("custom"))
            .and_then(|f| str_of(f, "name"))
            .or_else(|| str_of(v, "name"))
            .map(|n| ir::ToolChoice::Tool(n.to_string())),
        _ => None,
    }
}

/// Text of a system, developer or assistant `content`: a string, text
/// (or refusal) parts, or null.
fn text_content(content: Option<&Value>, i: usize, notes: &mut Notes) -> Result<Vec<String>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for p in parts {
                match str_of(p, "type") {
                    Some("text") => out.push(str_of(p, "text").unwrap_or_default().to_string()),
                    Some("refusal") => out.push(str_of(p, "refusal").unwrap_or_default().to_string()),
                    Some(other) => notes.dropped(format!("{other} content parts")),
                    None => return Err(malformed(format!("messages[{i}].content part without a type"))),
                }
            }
            Ok(out)
        }
        Some(_) => Err(malformed(format!("messages[{i}].content is not a string or an array"))),
    }
}

/// A user (or tool) `content`: text and images; audio and file parts are
/// dropped and noted (the rest of the turn still stands).
fn user_content(content: Option<&Value>, i: usize, notes: &mut Notes) -> Result<Vec<Part>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text_part(s)]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for p in parts {
                match str_of(p, "type") {
                    Some("text") => out.push(text_part(str_of(p, "text").unwrap_or_default())),
                    Some("image_url") => {
                        let url = match p.get("image_url") {
                            Some(Value::String(u)) => Some(u.as_str()),
                            Some(obj) => str_of(obj, "url"),
                            None => None,
                        }
                        .ok_or_else(|| malformed(format!("messages[{i}] image_url part without a url")))?;
                        out.push(Part::Image(image_from_url(url)));
                    }
                    Some(other) => notes.dropped(format!("{other} content parts")),
                    None => return Err(malformed(format!("messages[{i}].content part without a type"))),
                }
            }
            Ok(out)
        }
        Some(_) => Err(malformed(format!("messages[{i}].content is not a string or an array"))),
    }
}

fn tool_content(content: Option<&Value>, i: usize, notes: &mut Notes) -> Result<Vec<Part>, TranslateError> {
    match content {
        // A tool message's content is required; absent reads as empty text.
        None | Some(Value::Null) => Ok(vec![text_part("")]),
        other => user_content(other, i, notes),
    }
}

fn text_part(s: &str) -> Part {
    Part::Text(ir::Text {
        text: s.to_string(),
        cache_control: None,
    })
}

/// `data:<media type>;base64,<data>` is inline; anything else a URL.
fn image_from_url(url: &str) -> ir::Image {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((media_type, data)) = rest.split_once(";base64,") {
            return ir::Image::Base64 {
                media_type: media_type.to_string(),
                data: data.to_string(),
            };
        }
    }
    ir::Image::Url(url.to_string())
}

fn image_url(img: &ir::Image) -> String {
    match img {
        ir::Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ir::Image::Url(u) => u.clone(),
    }
}

/// Parts of an assistant message (request history or answer): reasoning
/// first, then text, then tool calls.
fn assistant_parts(m: &Value, i: usize, notes: &mut Notes) -> Result<Vec<Part>, TranslateError> {
    let mut parts = Vec::new();
    let reasoning = str_of(m, "reasoning_content").or_else(|| str_of(m, "reasoning"));
    if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
        parts.push(Part::Thinking(ir::Thinking {
            text: text.to_string(),
            origin: ORIGIN,
            signature: None,
            encrypted: None,
            id: None,
        }));
    }
    for text in text_content(m.get("content"), i, notes)? {
        parts.push(text_part(&text));
    }
    if let Some(refusal) = str_of(m, "refusal") {
        parts.push(text_part(refusal));
    }
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for (j, c) in calls.iter().enumerate() {
            let id = || str_of(c, "id").map_or_else(|| format!("call_{i}_{j}"), str::to_string);
            if let Some(custom) = c.get("custom").filter(|_| str_of(c, "type") == Some("custom")) {
                parts.push(Part::ToolCall(ir::ToolCall {
                    id: id(),
                    name: str_of(custom, "name").unwrap_or_default().to_string(),
                    arguments: ir::freeform_arguments(str_of(custom, "input").unwrap_or_default()),
                }));
                continue;
            }
            let f = c.get("function");
            if f.is_none() {
                return Err(unsupported(format!(
                    "{} tool calls",
                    str_of(c, "type").unwrap_or("untyped")
                )));
            }
            parts.push(Part::ToolCall(ir::ToolCall {
                id: id(),
                name: f.and_then(|f| str_of(f, "name")).unwrap_or_default().to_string(),
                arguments: arguments_text(f.and_then(|f| f.get("arguments"))),
            }));
        }
    }
    if let Some(f) = m.get("function_call").filter(|f| f.is_object()) {
        let name = str_of(f, "name").unwrap_or_default().to_string();
        parts.push(Part::ToolCall(ir::ToolCall {
            id: name.clone(),
            name,
            arguments: arguments_text(f.get("arguments")),
        }));
    }
    Ok(parts)
}

/// Arguments are JSON text; some servers send an object instead.
fn arguments_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => "{}".to_string(),
        Some(other) => other.to_string(),
    }
}

fn encode_request(req: &ir::Request, notes: &mut Notes) -> Value {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        if req.system.iter().any(|t| t.cache_control.is_some()) {
            notes.dropped("cache_control");
        }
        let texts: Vec<&str> = req.system.iter().map(|t| t.text.as_str()).collect();
        messages.push(json!({"role": "system", "content": texts_content(&texts)}));
    }
    for m in &req.messages {
        match m.role {
            Role::User => encode_user_turn(&m.parts, &mut messages, notes),
            Role::Assistant => messages.push(assistant_message(&m.parts, notes, false)),
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    out.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                if t.cache_control.is_some() {
                    notes.dropped("cache_control");
                }
                let mut f = Map::new();
                f.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), t.parameters.clone());
                if let Some(strict) = t.strict {
                    f.insert("strict".into(), json!(strict));
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            let v = match choice {
                ir::ToolChoice::Auto => json!("auto"),
                ir::ToolChoice::None => json!("none"),
                ir::ToolChoice::Required => json!("required"),
                ir::ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
            };
            out.insert("tool_choice".into(), v);
        }
        if let Some(p) = req.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(r) = &req.reasoning {
        let effort = match (&r.effort, r.budget_tokens) {
            (Some(e), budget) => {
                if budget.is_some() {
                    notes.dropped("reasoning.budget_tokens");
                }
                Some(e.clone())
            }
            (None, Some(b)) => {
                notes.dropped("reasoning.budget_tokens (sent as reasoning_effort)");
                Some(effort_for_budget(b).to_string())
            }
            (None, None) => None,
        };
        if let Some(e) = effort {
            out.insert("reasoning_effort".into(), json!(e));
        }
    }
    if let Some(n) = req.max_output_tokens {
        out.insert(MAX_TOKENS_FIELD.into(), json!(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        out.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        out.insert("stop".into(), json!(req.stop));
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), json!(u));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
        // Chat only reports usage in a stream when asked.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(out)
}

pub use super::ir::effort_for_budget;

/// A string for one text, text parts for several.
fn texts_content(texts: &[&str]) -> Value {
    match texts {
        [one] => json!(one),
        many => Value::Array(many.iter().map(|t| json!({"type": "text", "text": t})).collect()),
    }
}

/// A user turn: its tool results as `tool` messages first (Chat needs them
/// right after the assistant's calls), then one user message with the
/// results' images and the turn's other parts.
fn encode_user_turn(parts: &[Part], messages: &mut Vec<Value>, notes: &mut Notes) {
    let mut moved_images = Vec::new();
    let mut rest = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => {
                if t.cache_control.is_some() {
                    notes.dropped("cache_control");
                }
                rest.push(json!({"type": "text", "text": t.text}));
            }
            Part::Image(img) => rest.push(image_part(img)),
            Part::ToolResult(r) => {
                if r.is_error {
                    notes.dropped("tool_result.is_error");
                }
                let mut texts = Vec::new();
                for p in &r.content {
                    match p {
                        Part::Text(t) => {
                            if t.cache_control.is_some() {
                                notes.dropped("cache_control");
                            }
                            texts.push(t.text.as_str());
                        }
                        Part::Image(img) => {
                            notes.dropped("tool_result image (sent in a user message after the tool messages)");
                            moved_images.push(image_part(img));
                        }
                        _ => notes.dropped("tool_result part that is not text or image"),
                    }
                }
                let content = if texts.is_empty() {
                    json!("")
                } else {
                    texts_content(&texts)
                };
                messages.push(json!({"role": "tool", "tool_call_id": r.call_id, "content": content}));
            }
            Part::ToolCall(_) => notes.dropped("tool call in a user turn"),
            Part::Thinking(_) => notes.dropped("thinking in a user turn"),
        }
    }
    let had_results = parts.iter().any(|p| matches!(p, Part::ToolResult(_)));
    moved_images.extend(rest);
    let content = match moved_images.as_slice() {
        [] if had_results => return,
        [] => json!(""),
        [one] if one.get("type").and_then(Value::as_str) == Some("text") => one["text"].clone(),
        _ => Value::Array(moved_images),
    };
    messages.push(json!({"role": "user", "content": content}));
}

fn image_part(img: &ir::Image) -> Value {
    json!({"type": "image_url", "image_url": {"url": image_url(img)}})
}

/// An assistant message (history or answer). Text parts are joined: Chat
/// keeps text and tool calls apart, so their interleaving is lost (noted).
fn assistant_message(parts: &[Part], notes: &mut Notes, answer: bool) -> Value {
    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => {
                if !calls.is_empty() {
                    notes.dropped("order of text after a tool call");
                }
                if t.cache_control.is_some() {
                    notes.dropped("cache_control");
                }
                text.push_str(&t.text);
                has_text = true;
            }
            Part::Thinking(t) if t.origin == ORIGIN => {
                if t.signature.is_some() {
                    notes.dropped("thinking.signature");
                }
                if t.encrypted.is_some() {
                    notes.dropped("thinking.encrypted");
                }
                if !t.text.is_empty() {
                    reasoning.get_or_insert_with(String::new).push_str(&t.text);
                }
            }
            Part::Thinking(t) => notes.dropped(format!("thinking from {}", t.origin)),
            Part::ToolCall(c) => calls.push(json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })),
            Part::Image(_) => notes.dropped("image in an assistant turn"),
            Part::ToolResult(_) => notes.dropped("tool result in an assistant turn"),
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    let content = if has_text {
        json!(text)
    } else if !calls.is_empty() || answer {
        Value::Null
    } else {
        json!("")
    };
    msg.insert("content".into(), content);
    if answer {
        msg.insert("refusal".into(), Value::Null);
    }
    if let Some(r) = reasoning {
        msg.insert("reasoning_content".into(), json!(r));
    }
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(msg)
}

// --------------------------------------------------------------- responses

fn decode_response(root: &Map<String, Value>, notes: &mut Notes) -> Result<ir::Response, TranslateError> {
    let choices = root
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("choices is missing or not an array"))?;
    let choice = choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
        .or_else(|| choices.first());
    let (parts, stop) = match choice {
        Some(c) => (
            match c.get("message") {
                Some(m) if m.is_object() => assistant_parts(m, 0, notes)?,
                _ => Vec::new(),
            },
            c.get("finish_reason").and_then(Value::as_str).map(decode_finish),
        ),
        None => (Vec::new(), None),
    };
    Ok(ir::Response {
        id: root.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
        model: root
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        parts,
        stop,
        usage: root.get("usage").map(decode_usage).unwrap_or_default(),
    })
}

pub(crate) fn decode_finish(reason: &str) -> ir::StopReason {
    match reason {
        "stop" => ir::StopReason::EndTurn,
        "length" => ir::StopReason::MaxTokens,
        "tool_calls" | "function_call" => ir::StopReason::ToolUse,
        "content_filter" => ir::StopReason::ContentFilter,
        other => ir::StopReason::Other(other.to_string()),
    }
}

/// Chat's `finish_reason` for a stop; a missing one is `tool_calls` when the
/// answer called tools, else `stop`.
pub(crate) fn encode_finish(stop: Option<&ir::StopReason>, called_tools: bool, notes: &mut Notes) -> &'static str {
    match stop {
        Some(ir::StopReason::EndTurn | ir::StopReason::StopSequence) => "stop",
        Some(ir::StopReason::MaxTokens) => "length",
        Some(ir::StopReason::ToolUse) => "tool_calls",
        Some(ir::StopReason::ContentFilter) => "content_filter",
        Some(ir::StopReason::Other(reason)) => match reason.as_str() {
            "function_call" => "function_call",
            _ => {
                notes.dropped(format!("stop reason {reason}"));
                if called_tools {
                    "tool_calls"
                } else {
                    "stop"
                }
            }
        },
        None if called_tools => "tool_calls",
        None => "stop",
    }
}

/// Chat usage in Anthropic's split: cached tokens leave `input_tokens`.
pub(crate) fn decode_usage(u: &Value) -> ir::TokenUsage {
    let num = |v: Option<&Value>| v.and_then(Value::as_u64);
    let details = u.get("prompt_tokens_details");
    let cache_read =
        num(details.and_then(|d| d.get("cached_tokens"))).or_else(|| num(u.get("prompt_cache_hit_tokens")));
    let cache_write = num(details.and_then(|d| d.get("cache_write_tokens")));
    let prompt = num(u.get("prompt_tokens"));
    ir::TokenUsage {
        input_tokens: prompt.map(|p| p.saturating_sub(cache_read.unwrap_or(0) + cache_write.unwrap_or(0))),
        output_tokens: num(u.get("completion_tokens")),
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: num(u
            .get("completion_tokens_details")
            .and_then(|d| d.get("reasoning_tokens"))),
    }
}

pub(crate) fn encode_usage(u: &ir::TokenUsage) -> Value {
    let prompt = u.total_input().unwrap_or(0);
    let completion = u.output_tokens.unwrap_or(0);
    let mut details = Map::new();
    details.insert("cached_tokens".into(), json!(u.cache_read_tokens.unwrap_or(0)));
    if let Some(w) = u.cache_write_tokens {
        details.insert("cache_write_tokens".into(), json!(w));
    }
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
    })
}

/// The answer's id, or one made from the seed when the source had none.
pub(crate) fn answer_id(id: &str, ctx: &ResponseContext) -> String {
    if id.is_empty() {
        format!("chatcmpl-{}", ctx.id_seed)
    } else {
        id.to_string()
    }
}

/// The model the client asked for, else the one the answer names.
pub(crate) fn answer_model<'a>(model: &'a str, ctx: &'a ResponseContext) -> &'a str {
    if ctx.client_model.is_empty() {
        model
    } else {
        &ctx.client_model
    }
}

fn encode_response(resp: &ir::Response, ctx: &ResponseContext, notes: &mut Notes) -> Value {
    let called_tools = resp.parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    json!({
        "id": answer_id(&resp.id, ctx),
        "object": "chat.completion",
        "created": ctx.created,
        "model": answer_model(&resp.model, ctx),
        "choices": [{
            "index": 0,
            "message": assistant_message(&resp.parts, notes, true),
            "logprobs": null,
            "finish_reason": encode_finish(resp.stop.as_ref(), called_tools, notes),
        }],
        "usage": encode_usage(&resp.usage),
    })
}

// ------------------------------------------------------------------ errors

fn decode_error(status: u16, body: &[u8]) -> ir::ApiError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = v.get("error");
    // `{"error":{…}}`, `{"error":"…"}` or vLLM's flat `{"object":"error","message":…}`.
    let obj = err.filter(|e| e.is_object()).unwrap_or(&v);
    let message = err
        .and_then(Value::as_str)
        .or_else(|| str_of(obj, "message"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("upstream error (HTTP {status})"));
    api_error(status, str_of(obj, "type"), str_of(obj, "code"), message)
}

/// An error from its HTTP status, or from its `type`/`code` when the
/// status says nothing (an in-stream error arrives with 200).
pub(crate) fn api_error(status: u16, kind: Option<&str>, code: Option<&str>, message: String) -> ir::ApiError {
    let kind = if status >= 400 {
        ir::ErrorKind::from_status(status)
    } else {
        kind_from_names(kind, code)
    };
    ir::ApiError {
        status: if status >= 400 { status } else { status_for(kind) },
        kind,
        message,
        code: code.map(str::to_string),
    }
}

fn kind_from_names(kind: Option<&str>, code: Option<&str>) -> ir::ErrorKind {
    use ir::ErrorKind as K;
    match (kind.unwrap_or_default(), code.unwrap_or_default()) {
        (_, "rate_limit_exceeded" | "insufficient_quota") => K::RateLimit,
        (_, "context_length_exceeded") => K::InvalidRequest,
        ("invalid_request_error", _) => K::InvalidRequest,
        ("authentication_error", _) => K::Authentication,
        ("permission_error", _) => K::Permission,
        ("not_found_error", _) => K::NotFound,
        ("rate_limit_error" | "requests" | "tokens" | "insufficient_quota", _) => K::RateLimit,
        ("overloaded_error", _) => K::Overloaded,
        ("timeout_error", _) => K::Timeout,
        _ => K::Server,
    }
}

fn status_for(kind: ir::ErrorKind) -> u16 {
    use ir::ErrorKind as K;
    match kind {
        K::InvalidRequest => 400,
        K::Authentication => 401,
        K::Permission => 403,
        K::NotFound => 404,
        K::RequestTooLarge => 413,
        K::RateLimit => 429,
        K::Overloaded => 503,
        K::Timeout => 504,
        K::Server => 500,
    }
}

/// OpenAI's error envelope. `code` is the source's; without one it is null
/// but for rate limits (OpenAI's constant `rate_limit_exceeded`): a made-up
/// one would mislead a client that matches on it.
fn error_value(err: &ir::ApiError) -> Value {
    use ir::ErrorKind as K;
    let kind = match err.kind {
        K::InvalidRequest | K::RequestTooLarge => "invalid_request_error",
        K::Authentication => "authentication_error",
        K::Permission => "permission_error",
        K::NotFound => "not_found_error",
        K::RateLimit => "rate_limit_error",
        K::Overloaded | K::Timeout | K::Server => "server_error",
    };
    let code = err
        .code
        .as_deref()
        .or((err.kind == K::RateLimit).then_some("rate_limit_exceeded"));
    json!({"error": {"message": err.message, "type": kind, "param": null, "code": code}})
}

#[cfg(test)]
mod tests;
