//! The OpenAI Responses codec (`POST /v1/responses`): requests, response
//! objects, the typed `response.*` event stream and the error envelope, in
//! and out of [`ir`]. Codex CLI is the main client, so the encoders follow
//! what it parses: the full stream lifecycle with `sequence_number` on every
//! event, `*.done` events with the full text, and `response.completed` with
//! id, model, the populated `output` and usage.
//!
//! Decisions (each also a line of the README's translation table):
//! - `instructions` and `system`/`developer` input messages go to
//!   [`ir::Request::system`] in order; encoding writes the first system text
//!   as `instructions` and the others as `developer` messages at the start of
//!   `input` (a developer message from mid-history moves to the front).
//! - Consecutive assistant items (messages, `function_call`s, `reasoning`)
//!   make one assistant turn; `function_call_output`s make one user turn,
//!   and a user message right after them joins that turn (Anthropic's
//!   model). Other user messages stay separate turns.
//! - Codex's freeform tools (`custom` tools, `custom_tool_call`,
//!   `custom_tool_call_output`) become [`ir::ToolKind::Freeform`] tools whose
//!   `parameters` are one string `input` (the grammar goes into its
//!   description), calls with arguments `{"input": <raw text>}`: another
//!   provider's model can call them as functions. Requests encode them back
//!   as `custom` tools, calls and outputs; answers and streams write the
//!   calls of [`ResponseContext::freeform_tools`] as `custom_tool_call`s
//!   (the raw input unwrapped; a stream's input goes out as one delta when
//!   the call is complete, as arguments must be whole JSON to unwrap).
//! - Tools inside Codex's `namespace` tools and `additional_tools` input
//!   items are flattened into [`ir::Request::tools`].
//! - A `reasoning` item is one [`ir::Thinking`] of origin `openai`: its
//!   summary texts joined by a blank line, `encrypted_content` in
//!   `encrypted`, and the item's `id` (`rs_…`, required when the item is
//!   sent back) in `id`. It is re-emitted with the same id and encrypted
//!   content (in streams too); a summary of several parts comes back as one
//!   part.
//! - `previous_response_id`, `conversation` and `prompt` name state kept by
//!   OpenAI: the rest of the conversation is not in the body, so no
//!   stateless API can be given it. Decoding such a request is
//!   [`TranslateError::Unsupported`].
//! - Function tools are encoded with the source's `strict`, else `false`:
//!   Responses defaults to strict schemas, which most schemas from other
//!   APIs fail.
//! - Encoded requests carry `"store": false` and, when reasoning is asked
//!   for or replayed, `include: ["reasoning.encrypted_content"]` (stateless
//!   reasoning needs the encrypted content back). `reasoning.summary` is not
//!   asked for (unverified organizations get a 400 for it).
//! - A `user` over 64 characters (OpenAI's limit; Claude Code's ids are
//!   longer) is sent as its SHA-256 hex, noted. Decoding prefers
//!   `safety_identifier` to the older `user`.
//! - Answers always carry usage ([`ResponseContext::stream_usage`] is for
//!   Chat); unknown counts are written as 0 because Codex requires them.
//! - A reasoning budget without an effort is encoded as an effort
//!   ([`super::ir::effort_for_budget`]), noted.
//! - Usage: `input_tokens` includes cached tokens; decoding subtracts
//!   `input_tokens_details.cached_tokens`, encoding adds cache reads and
//!   writes back (OpenAI reports no cache writes).
//! - Stop reasons: `completed` with a function call is tool use, without
//!   one end of turn; `incomplete` maps `max_output_tokens` and
//!   `content_filter`. Responses has no stop sequences: a stop sequence
//!   stop is encoded as `completed`, and request `stop` is noted as dropped.
//! - Thinking of another origin is dropped from encoded requests (its
//!   signature means nothing to OpenAI) and noted. In answers and streams
//!   its text is kept as a reasoning summary (the client shows it) and its
//!   signature or encrypted content is dropped and noted.
//! - Error `code` is read as is and written as is; without one, the kind's
//!   usual code.
//!
//! Dropped on decode and noted by name: `text.format` other than text,
//! `text.verbosity`, `truncation` other than disabled, `top_logprobs`,
//! `max_tool_calls`, `background`, `input_file` and `input_audio` parts,
//! images by `file_id`, hosted tools (`web_search`, `file_search`,
//! `code_interpreter`, `mcp`, `local_shell`, ...) and their items
//! (`web_search_call`, `local_shell_call`, `computer_call`, `mcp_call`,
//! `item_reference`, `compaction`, ...), in answers and streams too, the
//! `tool_choice` of `allowed_tools` (its mode is kept) or of a hosted tool.
//! Dropped without a note (they do not change what is said): `include`,
//! `store`, `metadata`, `prompt_cache_key`, `client_metadata`,
//! `service_tier`, `stream_options`, `reasoning.summary`, an image's
//! `detail` (encoded as `auto`), a reasoning item's raw `content`, a
//! refusal's kind (kept as text), item `id`s of messages and function
//! calls, `annotations` and `logprobs`. In streams, Anthropic signature
//! deltas (noted).

use serde_json::{json, Map, Value};

use super::ir::{
    self, ApiError, Delta, ErrorKind, Image, Message, Part, PartStart, Role, StopReason, StreamEvent, Text, Thinking,
    TokenUsage, Tool, ToolCall, ToolChoice, ToolResult,
};
use super::{Codec, Event, Notes, ResponseContext, StreamDecoder, StreamEncoder, TranslateError};
use crate::shape::ErrorFamily;

const SHAPE: &str = "openai.responses";
/// [`ir::Thinking::origin`] of reasoning items.
const ORIGIN: &str = "openai";

/// The Responses codec.
pub struct ResponsesCodec;

impl Codec for ResponsesCodec {
    fn decode_request(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Request, TranslateError> {
        decode_request(body, notes)
    }

    fn encode_request(&self, req: &ir::Request, notes: &mut Notes) -> Vec<u8> {
        to_json(&encode_request(req, notes))
    }

    fn decode_response(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Response, TranslateError> {
        let root = parse(body)?;
        let obj = root
            .as_object()
            .ok_or_else(|| malformed("the response is not a JSON object"))?;
        decode_response(obj, notes)
    }

    fn encode_response(&self, resp: &ir::Response, ctx: &ResponseContext, notes: &mut Notes) -> Vec<u8> {
        to_json(&encode_response(resp, ctx, notes))
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::<ResponsesStreamDecoder>::default()
    }

    fn stream_encoder(&self, ctx: &ResponseContext) -> Box<dyn StreamEncoder> {
        Box::new(ResponsesStreamEncoder::new(ctx))
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ApiError {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        error_from_value(&value, status)
    }

    fn encode_error(&self, err: &ApiError) -> Vec<u8> {
        let ty = crate::errors::error_type_for_status(kind_status(err.kind));
        ErrorFamily::OpenAi
            .body(err.status, ty, Some(error_code(err)), &err.message)
            .to_vec()
    }

    fn encode_stream_error(&self, err: &ApiError) -> Event {
        let data = json!({"type": "error", "code": error_code(err), "message": err.message, "param": null});
        Event {
            name: Some("error"),
            data: data.to_string(),
        }
    }

    fn endpoint(&self) -> &'static str {
        "/v1/responses"
    }
}

// ---------------------------------------------------------------------------
// Small JSON helpers

fn malformed(reason: impl Into<String>) -> TranslateError {
    TranslateError::Malformed {
        shape: SHAPE,
        reason: reason.into(),
    }
}

/// Parses without letting serde's message quote the body.
fn parse(body: &[u8]) -> Result<Value, TranslateError> {
    serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn to_json(v: &Value) -> Vec<u8> {
    // A Value always serializes; the fallback keeps the encoder total.
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// A string field: absent and null are None, another type is malformed.
fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(format!("`{key}` is not a string"))),
    }
}

fn req_str<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str, TranslateError> {
    opt_str(obj, key)?.ok_or_else(|| malformed(format!("{what} has no `{key}`")))
}

fn opt_u64(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| malformed(format!("`{key}` is not a non-negative integer"))),
    }
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| malformed(format!("`{key}` is not a number"))),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(malformed(format!("`{key}` is not a boolean"))),
    }
}

fn as_obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, TranslateError> {
    v.as_object()
        .ok_or_else(|| malformed(format!("{what} is not an object")))
}

/// A string found at `key` of a value, leniently (answers and streams).
fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------
// Requests

fn decode_request(body: &[u8], notes: &mut Notes) -> Result<ir::Request, TranslateError> {
    let root = parse(body)?;
    let obj = as_obj(&root, "the request")?;
    for (key, why) in [
        (
            "previous_response_id",
            "previous_response_id (the earlier turns are stored at OpenAI, not in the body)",
        ),
        (
            "conversation",
            "conversation (the history is stored at OpenAI, not in the body)",
        ),
        ("prompt", "prompt (a prompt template stored at OpenAI)"),
    ] {
        if obj.get(key).is_some_and(|v| !v.is_null()) {
            return Err(TranslateError::Unsupported {
                shape: "a stateless request",
                what: why.to_string(),
            });
        }
    }

    let mut req = ir::Request {
        model: opt_str(obj, "model")?.unwrap_or_default().to_string(),
        ..Default::default()
    };
    if let Some(text) = opt_str(obj, "instructions")? {
        req.system.push(plain(text));
    }
    match obj.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => req.messages.push(Message {
            role: Role::User,
            parts: vec![Part::Text(plain(text))],
        }),
        Some(Value::Array(items)) => {
            for item in items {
                decode_item(item, &mut req, notes)?;
            }
        }
        Some(_) => return Err(malformed("`input` is neither a string nor an array")),
    }
    match obj.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => decode_tools(tools, &mut req.tools, notes)?,
        Some(_) => return Err(malformed("`tools` is not an array")),
    }
    req.tool_choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(v) => decode_tool_choice(v, notes)?,
    };
    note_dropped_fields(obj, notes);
    req.parallel_tool_calls = opt_bool(obj, "parallel_tool_calls")?;
    req.max_output_tokens = opt_u64(obj, "max_output_tokens")?;
    req.temperature = opt_f64(obj, "temperature")?;
    req.top_p = opt_f64(obj, "top_p")?;
    req.stream = opt_bool(obj, "stream")?.unwrap_or(false);
    if let Some(r) = obj.get("reasoning").filter(|r| !r.is_null()) {
        let r = as_obj(r, "`reasoning`")?;
        req.reasoning = opt_str(r, "effort")?.map(|e| ir::Reasoning {
            effort: Some(e.to_string()),
            budget_tokens: None,
        });
    }
    req.user = opt_str(obj, "safety_identifier")?
        .or(opt_str(obj, "user")?)
        .map(str::to_string);
    Ok(req)
}

/// Request fields that change the answer and have no place in the model.
fn note_dropped_fields(obj: &Map<String, Value>, notes: &mut Notes) {
    if let Some(text) = obj.get("text").filter(|t| t.is_object()) {
        let format = text.get("format").filter(|f| !f.is_null());
        if format.is_some_and(|f| s(f, "type") != Some("text")) {
            notes.dropped("text.format");
        }
        if text.get("verbosity").is_some_and(|v| !v.is_null()) {
            notes.dropped("text.verbosity");
        }
    }
    if obj
        .get("truncation")
        .is_some_and(|t| !t.is_null() && t.as_str() != Some("disabled"))
    {
        notes.dropped("truncation");
    }
    if obj.get("background").and_then(Value::as_bool) == Some(true) {
        notes.dropped("background");
    }
    for key in ["top_logprobs", "max_tool_calls"] {
        if obj.get(key).is_some_and(|v| !v.is_null()) {
            notes.dropped(key);
        }
    }
}

fn plain(text: &str) -> Text {
    Text {
        text: text.to_string(),
        cache_control: None,
    }
}

/// Which side of the conversation an item adds to, for grouping turns.
#[derive(PartialEq)]
enum Side {
    Assistant,
    ToolResults,
    User,
}

fn push(req: &mut ir::Request, side: Side, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    let role = if side == Side::Assistant {
        Role::Assistant
    } else {
        Role::User
    };
    // Only tool-result turns and assistant turns absorb the next item.
    let joins = req.messages.last().is_some_and(|last| match side {
        Side::Assistant => last.role == Role::Assistant,
        Side::ToolResults | Side::User => {
            last.role == Role::User && last.parts.iter().all(|p| matches!(p, Part::ToolResult(_)))
        }
    });
    match req.messages.last_mut() {
        Some(last) if joins => last.parts.extend(parts),
        _ => req.messages.push(Message { role, parts }),
    }
}

fn decode_item(item: &Value, req: &mut ir::Request, notes: &mut Notes) -> Result<(), TranslateError> {
    let obj = as_obj(item, "an input item")?;
    let ty = match opt_str(obj, "type")? {
        Some(t) => t,
        None if obj.contains_key("role") => "message",
        None => return Err(malformed("an input item has neither `type` nor `role`")),
    };
    match ty {
        "message" => {
            let role = req_str(obj, "role", "a message")?;
            let parts = decode_content(obj.get("content"), notes)?;
            match role {
                "user" => push(req, Side::User, parts),
                "assistant" => push(req, Side::Assistant, parts),
                // The IR keeps instructions apart; images there are dropped.
                "system" | "developer" => req.system.extend(parts.into_iter().filter_map(|p| match p {
                    Part::Text(t) => Some(t),
                    _ => None,
                })),
                _ => return Err(malformed("a message has an unknown `role`")),
            }
        }
        "function_call" => {
            let call = ToolCall {
                id: req_str(obj, "call_id", "a function_call")?.to_string(),
                name: req_str(obj, "name", "a function_call")?.to_string(),
                arguments: arguments_text(opt_str(obj, "arguments")?),
            };
            push(req, Side::Assistant, vec![Part::ToolCall(call)]);
        }
        "custom_tool_call" => {
            let call = ToolCall {
                id: req_str(obj, "call_id", "a custom_tool_call")?.to_string(),
                name: req_str(obj, "name", "a custom_tool_call")?.to_string(),
                arguments: ir::freeform_arguments(opt_str(obj, "input")?.unwrap_or_default()),
            };
            push(req, Side::Assistant, vec![Part::ToolCall(call)]);
        }
        "function_call_output" | "custom_tool_call_output" => {
            let result = ToolResult {
                call_id: req_str(obj, "call_id", "a tool output")?.to_string(),
                content: decode_content(obj.get("output"), notes)?,
                is_error: false,
            };
            push(req, Side::ToolResults, vec![Part::ToolResult(result)]);
        }
        "reasoning" => {
            let thinking = decode_reasoning(obj)?;
            push(req, Side::Assistant, vec![Part::Thinking(thinking)]);
        }
        "additional_tools" => {
            if let Some(Value::Array(tools)) = obj.get("tools") {
                decode_tools(tools, &mut req.tools, notes)?;
            }
        }
        // Hosted tool calls, item references, compaction: see the module docs.
        other => notes.dropped(format!("{other} items")),
    }
    Ok(())
}

/// The JSON text of a call's arguments (`{}` when there are none).
fn arguments_text(args: Option<&str>) -> String {
    match args {
        Some(a) if !a.trim().is_empty() => a.to_string(),
        _ => "{}".to_string(),
    }
}

fn decode_reasoning(obj: &Map<String, Value>) -> Result<Thinking, TranslateError> {
    let mut texts = Vec::new();
    if let Some(summary) = obj.get("summary").and_then(Value::as_array) {
        for part in summary {
            if let Some(t) = s(part, "text") {
                texts.push(t);
            }
        }
    }
    Ok(Thinking {
        text: texts.join("\n\n"),
        origin: ORIGIN,
        signature: None,
        encrypted: opt_str(obj, "encrypted_content")?.map(str::to_string),
        id: opt_str(obj, "id")?.map(str::to_string),
    })
}

/// Message content or a tool output: a string or typed parts.
fn decode_content(content: Option<&Value>, notes: &mut Notes) -> Result<Vec<Part>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(vec![Part::Text(plain(text))]),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(malformed("content is neither a string nor an array")),
    };
    let mut out = Vec::new();
    for part in parts {
        let p = as_obj(part, "a content part")?;
        match opt_str(p, "type")?.unwrap_or("") {
            "input_text" | "output_text" | "text" | "summary_text" => {
                out.push(Part::Text(plain(opt_str(p, "text")?.unwrap_or_default())))
            }
            "refusal" => out.push(Part::Text(plain(opt_str(p, "refusal")?.unwrap_or_default()))),
            "input_image" => {
                // `file_id` images name an upload at OpenAI: dropped.
                match image_url(p)? {
                    Some(url) => out.push(Part::Image(decode_image_url(url))),
                    None => notes.dropped("images by file_id"),
                }
            }
            "" => {}
            other => notes.dropped(format!("{other} parts")),
        }
    }
    Ok(out)
}

/// `image_url` as Responses writes it (a string), or Chat's object form.
fn image_url(p: &Map<String, Value>) -> Result<Option<&str>, TranslateError> {
    match p.get("image_url") {
        Some(Value::Object(o)) => opt_str(o, "url"),
        _ => opt_str(p, "image_url"),
    }
}

/// A `data:<type>;base64,<data>` URL is an inline image; anything else a link.
fn decode_image_url(url: &str) -> Image {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            if let Some(media_type) = meta.strip_suffix(";base64") {
                return Image::Base64 {
                    media_type: media_type.to_string(),
                    data: data.to_string(),
                };
            }
        }
    }
    Image::Url(url.to_string())
}

fn decode_tools(tools: &[Value], out: &mut Vec<Tool>, notes: &mut Notes) -> Result<(), TranslateError> {
    for tool in tools {
        let t = as_obj(tool, "a tool")?;
        match opt_str(t, "type")?.unwrap_or("") {
            "function" => out.push(Tool {
                name: req_str(t, "name", "a function tool")?.to_string(),
                description: opt_str(t, "description")?.map(str::to_string),
                parameters: match t.get("parameters") {
                    None | Some(Value::Null) => json!({"type": "object"}),
                    Some(p) => p.clone(),
                },
                cache_control: None,
                kind: ir::ToolKind::Function,
                strict: opt_bool(t, "strict")?,
            }),
            "custom" => {
                let format = t.get("format").filter(|f| !f.is_null()).cloned();
                out.push(Tool {
                    name: req_str(t, "name", "a custom tool")?.to_string(),
                    description: opt_str(t, "description")?.map(str::to_string),
                    parameters: ir::freeform_parameters(format.as_ref()),
                    cache_control: None,
                    kind: ir::ToolKind::Freeform { format },
                    strict: None,
                })
            }
            "namespace" => {
                if let Some(Value::Array(inner)) = t.get("tools") {
                    decode_tools(inner, out, notes)?;
                }
            }
            // Hosted tools: see the module docs.
            other => notes.dropped(format!("{other} tools")),
        }
    }
    Ok(())
}

fn decode_tool_choice(v: &Value, notes: &mut Notes) -> Result<Option<ToolChoice>, TranslateError> {
    Ok(match v {
        Value::String(c) => match c.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => return Err(malformed("`tool_choice` is not auto, none or required")),
        },
        Value::Object(o) => match opt_str(o, "type")?.unwrap_or("") {
            "function" | "custom" => Some(ToolChoice::Tool(req_str(o, "name", "`tool_choice`")?.to_string())),
            "allowed_tools" => {
                notes.dropped("tool_choice.allowed_tools (its mode is kept)");
                match opt_str(o, "mode")? {
                    Some("required") => Some(ToolChoice::Required),
                    _ => Some(ToolChoice::Auto),
                }
            }
            // A hosted tool: the API's default stands.
            _ => {
                notes.dropped("tool_choice of a hosted tool");
                None
            }
        },
        _ => return Err(malformed("`tool_choice` is neither a string nor an object")),
    })
}

fn encode_request(req: &ir::Request, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    let mut input = Vec::new();
    for (i, t) in req.system.iter().enumerate() {
        if t.cache_control.is_some() {
            notes.dropped("system cache_control");
        }
        if i == 0 {
            out.insert("instructions".into(), json!(t.text));
        } else {
            input.push(
                json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": t.text}]}),
            );
        }
    }
    let freeform = Freeform::of(req);
    let mut replays_reasoning = false;
    for msg in &req.messages {
        encode_message(msg, &freeform, &mut input, &mut replays_reasoning, notes);
    }
    out.insert("input".into(), Value::Array(input));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                if t.cache_control.is_some() {
                    notes.dropped("tool cache_control");
                }
                let mut tool = Map::new();
                let custom = match &t.kind {
                    ir::ToolKind::Function => None,
                    ir::ToolKind::Freeform { format } => Some(format),
                };
                tool.insert(
                    "type".into(),
                    json!(if custom.is_some() { "custom" } else { "function" }),
                );
                tool.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    tool.insert("description".into(), json!(d));
                }
                match custom {
                    Some(format) => {
                        if let Some(f) = format {
                            tool.insert("format".into(), f.clone());
                        }
                    }
                    None => {
                        tool.insert("parameters".into(), t.parameters.clone());
                        tool.insert("strict".into(), json!(t.strict.unwrap_or(false)));
                    }
                }
                Value::Object(tool)
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) if freeform.names.contains(name) => json!({"type": "custom", "name": name}),
            ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
        };
        out.insert("tool_choice".into(), v);
    }
    if let Some(p) = req.parallel_tool_calls {
        out.insert("parallel_tool_calls".into(), json!(p));
    }
    if let Some(r) = &req.reasoning {
        let effort = match (&r.effort, r.budget_tokens) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(budget)) => {
                notes.dropped("reasoning budget_tokens (sent as an effort)");
                Some(effort_for_budget(budget).to_string())
            }
            (None, None) => None,
        };
        let mut reasoning = Map::new();
        if let Some(e) = effort {
            reasoning.insert("effort".into(), json!(e));
        }
        out.insert("reasoning".into(), Value::Object(reasoning));
    }
    if let Some(n) = req.max_output_tokens {
        out.insert("max_output_tokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        out.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        notes.dropped("stop sequences");
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), json!(user_id(u, notes)));
    }
    // Stateless: nothing is kept at OpenAI, reasoning travels encrypted.
    out.insert("store".into(), json!(false));
    if req.reasoning.is_some() || replays_reasoning {
        out.insert("include".into(), json!(["reasoning.encrypted_content"]));
    }
    if req.stream {
        // Responses streams always end with usage: nothing to ask for.
        out.insert("stream".into(), json!(true));
    }
    Value::Object(out)
}

/// OpenAI refuses a `user` over 64 characters (Claude Code's user ids are
/// longer): such an id is sent as its SHA-256, still stable per user.
fn user_id(user: &str, notes: &mut Notes) -> String {
    if user.chars().count() <= 64 {
        return user.to_string();
    }
    notes.dropped("user id over 64 characters (sent hashed)");
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(user.as_bytes()))
}

use super::ir::effort_for_budget;

/// The request's freeform tools and the ids of calls made to them, so
/// calls and outputs are written as `custom_tool_call(_output)`.
struct Freeform {
    names: Vec<String>,
    call_ids: Vec<String>,
}

impl Freeform {
    fn of(req: &ir::Request) -> Freeform {
        let names = super::freeform_tools(req);
        let call_ids = req
            .messages
            .iter()
            .flat_map(|m| &m.parts)
            .filter_map(|p| match p {
                Part::ToolCall(c) if names.contains(&c.name) => Some(c.id.clone()),
                _ => None,
            })
            .collect();
        Freeform { names, call_ids }
    }
}

/// A freeform call's raw input from its function-form arguments; other
/// arguments go as they are (noted).
fn custom_input(arguments: &str, notes: &mut Notes) -> String {
    ir::freeform_input(arguments).unwrap_or_else(|| {
        notes.dropped("freeform tool call arguments that are not {\"input\": text} (sent as the raw text)");
        arguments.to_string()
    })
}

/// One IR turn as input items: runs of text and images become a message
/// item, every other part its own item, in order.
fn encode_message(
    msg: &Message,
    freeform: &Freeform,
    input: &mut Vec<Value>,
    replays_reasoning: &mut bool,
    notes: &mut Notes,
) {
    let (role, text_type) = match msg.role {
        Role::User => ("user", "input_text"),
        Role::Assistant => ("assistant", "output_text"),
    };
    let mut content: Vec<Value> = Vec::new();
    let flush = |content: &mut Vec<Value>, input: &mut Vec<Value>| {
        if !content.is_empty() {
            input.push(json!({"type": "message", "role": role, "content": std::mem::take(content)}));
        }
    };
    for part in &msg.parts {
        match part {
            Part::Text(t) => {
                if t.cache_control.is_some() {
                    notes.dropped("message cache_control");
                }
                if msg.role == Role::Assistant {
                    content.push(json!({"type": text_type, "text": t.text, "annotations": []}));
                } else {
                    content.push(json!({"type": text_type, "text": t.text}));
                }
            }
            Part::Image(img) if msg.role == Role::User => content.push(encode_image(img)),
            Part::Image(_) => notes.dropped("image in an assistant turn"),
            Part::ToolCall(call) if freeform.names.contains(&call.name) => {
                flush(&mut content, input);
                input.push(json!({
                    "type": "custom_tool_call",
                    "call_id": call.id,
                    "name": call.name,
                    "input": custom_input(&call.arguments, notes),
                }));
            }
            Part::ToolCall(call) => {
                flush(&mut content, input);
                input.push(json!({
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": arguments_text(Some(&call.arguments)),
                }));
            }
            Part::ToolResult(result) => {
                flush(&mut content, input);
                if result.is_error {
                    notes.dropped("tool result is_error");
                }
                let ty = if freeform.call_ids.contains(&result.call_id) {
                    "custom_tool_call_output"
                } else {
                    "function_call_output"
                };
                input.push(json!({
                    "type": ty,
                    "call_id": result.call_id,
                    "output": encode_tool_output(&result.content, notes),
                }));
            }
            Part::Thinking(t) if t.origin == ORIGIN => {
                // The item id is required to send a reasoning item back.
                let Some(id) = &t.id else {
                    notes.dropped("reasoning item without an id");
                    continue;
                };
                flush(&mut content, input);
                *replays_reasoning = true;
                input.push(reasoning_item(id, &t.text, t.encrypted.as_deref()));
            }
            Part::Thinking(t) => notes.dropped(format!("thinking of origin {}", origin_name(t.origin))),
        }
    }
    flush(&mut content, input);
}

fn origin_name(origin: &str) -> &str {
    if origin.is_empty() {
        "unknown"
    } else {
        origin
    }
}

fn foreign_signature_note(origin: &str) -> String {
    format!("thinking signature of origin {}", origin_name(origin))
}

fn reasoning_item(id: &str, text: &str, encrypted: Option<&str>) -> Value {
    let mut item = Map::new();
    item.insert("type".into(), json!("reasoning"));
    item.insert("id".into(), json!(id));
    item.insert("summary".into(), summary(text));
    if let Some(e) = encrypted {
        item.insert("encrypted_content".into(), json!(e));
    }
    Value::Object(item)
}

fn summary(text: &str) -> Value {
    if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    }
}

fn encode_image(img: &Image) -> Value {
    let url = match img {
        Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Image::Url(u) => u.clone(),
    };
    json!({"type": "input_image", "image_url": url, "detail": "auto"})
}

/// A tool output: a string when it is one text (the common case), typed
/// parts when there are images or several texts.
fn encode_tool_output(content: &[Part], notes: &mut Notes) -> Value {
    match content {
        [] => json!(""),
        [Part::Text(t)] => json!(t.text),
        parts => {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Part::Text(t) => out.push(json!({"type": "input_text", "text": t.text})),
                    Part::Image(img) => out.push(encode_image(img)),
                    _ => notes.dropped("a tool result part other than text or image"),
                }
            }
            Value::Array(out)
        }
    }
}

// ---------------------------------------------------------------------------
// Whole answers

fn decode_response(obj: &Map<String, Value>, notes: &mut Notes) -> Result<ir::Response, TranslateError> {
    let mut parts = Vec::new();
    match obj.get("output") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                parts.extend(output_item_parts(as_obj(item, "an output item")?, notes)?);
            }
        }
        Some(_) => return Err(malformed("`output` is not an array")),
    }
    let has_call = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    Ok(ir::Response {
        id: opt_str(obj, "id")?.unwrap_or_default().to_string(),
        model: opt_str(obj, "model")?.unwrap_or_default().to_string(),
        stop: stop_of(obj, has_call),
        usage: obj.get("usage").map(usage_of).unwrap_or_default(),
        parts,
    })
}

/// The parts of one output item (messages may hold several).
fn output_item_parts(item: &Map<String, Value>, notes: &mut Notes) -> Result<Vec<Part>, TranslateError> {
    Ok(match opt_str(item, "type")?.unwrap_or("") {
        "message" => decode_content(item.get("content"), notes)?,
        "function_call" => vec![Part::ToolCall(ToolCall {
            id: opt_str(item, "call_id")?.unwrap_or_default().to_string(),
            name: opt_str(item, "name")?.unwrap_or_default().to_string(),
            arguments: arguments_text(opt_str(item, "arguments")?),
        })],
        "custom_tool_call" => vec![Part::ToolCall(ToolCall {
            id: opt_str(item, "call_id")?.unwrap_or_default().to_string(),
            name: opt_str(item, "name")?.unwrap_or_default().to_string(),
            arguments: ir::freeform_arguments(opt_str(item, "input")?.unwrap_or_default()),
        })],
        "reasoning" => vec![Part::Thinking(decode_reasoning(item)?)],
        other => {
            notes.dropped(format!("{other} items"));
            Vec::new()
        }
    })
}

/// Why a response object stopped.
fn stop_of(resp: &Map<String, Value>, has_call: bool) -> Option<StopReason> {
    let status = resp.get("status").and_then(Value::as_str);
    match status {
        None | Some("completed") if has_call => Some(StopReason::ToolUse),
        None | Some("completed") => Some(StopReason::EndTurn),
        Some("incomplete") => {
            let reason = resp
                .get("incomplete_details")
                .and_then(|d| s(d, "reason"))
                .unwrap_or("incomplete");
            Some(match reason {
                "max_output_tokens" => StopReason::MaxTokens,
                "content_filter" => StopReason::ContentFilter,
                other => StopReason::Other(other.to_string()),
            })
        }
        Some(other) => Some(StopReason::Other(other.to_string())),
    }
}

/// OpenAI's usage in the IR's split (input without cached tokens).
fn usage_of(u: &Value) -> TokenUsage {
    let n = |ptr: &str| u.pointer(ptr).and_then(Value::as_u64);
    let cached = n("/input_tokens_details/cached_tokens");
    TokenUsage {
        input_tokens: n("/input_tokens").map(|t| t.saturating_sub(cached.unwrap_or(0))),
        output_tokens: n("/output_tokens"),
        cache_read_tokens: cached,
        cache_write_tokens: None,
        reasoning_tokens: n("/output_tokens_details/reasoning_tokens"),
    }
}

fn encode_usage(u: &TokenUsage, notes: &mut Notes) -> Value {
    if u.cache_write_tokens.is_some_and(|n| n > 0) {
        notes.dropped("cache write tokens (counted in input_tokens)");
    }
    let input = u.total_input().unwrap_or(0);
    let output = u.output_tokens.unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens.unwrap_or(0)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
        "total_tokens": input + output,
    })
}

/// `status` and `incomplete_details` for a stop reason.
fn status_for(stop: Option<&StopReason>, notes: &mut Notes) -> (&'static str, Value) {
    match stop {
        Some(StopReason::MaxTokens) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(StopReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        Some(StopReason::Other(reason)) => {
            notes.dropped(format!("stop reason {reason}"));
            ("completed", Value::Null)
        }
        _ => ("completed", Value::Null),
    }
}

/// `resp_…`: the source's id when it is one, else one from the seed.
fn response_id(src: &str, seed: &str) -> String {
    if src.starts_with("resp_") {
        src.to_string()
    } else if !seed.is_empty() {
        format!("resp_{seed}")
    } else {
        format!("resp_{src}")
    }
}

fn item_id(prefix: &str, seed: &str, index: usize) -> String {
    if seed.is_empty() {
        format!("{prefix}_{index}")
    } else {
        format!("{prefix}_{seed}_{index}")
    }
}

fn model_for(ctx: &ResponseContext, model: &str) -> String {
    if ctx.client_model.is_empty() {
        model.to_string()
    } else {
        ctx.client_model.clone()
    }
}

/// A response object; the stream's lifecycle events carry the same one.
fn response_object(
    id: &str,
    created: u64,
    status: &str,
    incomplete: Value,
    model: &str,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "usage": usage,
    })
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

fn function_call_item(id: &str, status: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments})
}

fn custom_tool_call_item(id: &str, status: &str, call_id: &str, name: &str, input: &str) -> Value {
    json!({"id": id, "type": "custom_tool_call", "status": status, "call_id": call_id, "name": name, "input": input})
}

/// A reasoning output item; `encrypted_content` only when there is some.
fn reasoning_output_item(id: &str, text: &str, encrypted: Option<&str>) -> Value {
    let mut item = Map::new();
    item.insert("id".into(), json!(id));
    item.insert("type".into(), json!("reasoning"));
    item.insert("summary".into(), summary(text));
    if let Some(e) = encrypted {
        item.insert("encrypted_content".into(), json!(e));
    }
    Value::Object(item)
}

fn encode_response(resp: &ir::Response, ctx: &ResponseContext, notes: &mut Notes) -> Value {
    let seed = &ctx.id_seed;
    let mut output: Vec<Value> = Vec::new();
    // Consecutive texts share one message item.
    let mut texts: Vec<Value> = Vec::new();
    let flush = |texts: &mut Vec<Value>, output: &mut Vec<Value>| {
        if !texts.is_empty() {
            let id = item_id("msg", seed, output.len());
            output.push(message_item(&id, "completed", std::mem::take(texts)));
        }
    };
    for part in &resp.parts {
        match part {
            Part::Text(t) => texts.push(text_part(&t.text)),
            Part::ToolCall(call) if ctx.freeform_tools.contains(&call.name) => {
                flush(&mut texts, &mut output);
                let id = item_id("ctc", seed, output.len());
                let input = custom_input(&call.arguments, notes);
                output.push(custom_tool_call_item(&id, "completed", &call.id, &call.name, &input));
            }
            Part::ToolCall(call) => {
                flush(&mut texts, &mut output);
                let id = item_id("fc", seed, output.len());
                let args = arguments_text(Some(&call.arguments));
                output.push(function_call_item(&id, "completed", &call.id, &call.name, &args));
            }
            Part::Thinking(t) => {
                flush(&mut texts, &mut output);
                let own = t.origin == ORIGIN;
                if !own && (t.signature.is_some() || t.encrypted.is_some()) {
                    notes.dropped(foreign_signature_note(t.origin));
                }
                let id = match (&t.id, own) {
                    (Some(id), true) => id.clone(),
                    _ => item_id("rs", seed, output.len()),
                };
                let encrypted = if own { t.encrypted.as_deref() } else { None };
                output.push(reasoning_output_item(&id, &t.text, encrypted));
            }
            Part::Image(_) => notes.dropped("image in an answer"),
            Part::ToolResult(_) => notes.dropped("tool result in an answer"),
        }
    }
    flush(&mut texts, &mut output);
    let (status, incomplete) = status_for(resp.stop.as_ref(), notes);
    response_object(
        &response_id(&resp.id, seed),
        ctx.created,
        status,
        incomplete,
        &model_for(ctx, &resp.model),
        output,
        encode_usage(&resp.usage, notes),
    )
}

// ---------------------------------------------------------------------------
// Errors

fn kind_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InvalidRequest => 400,
        ErrorKind::Authentication => 401,
        ErrorKind::Permission => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::RequestTooLarge => 413,
        ErrorKind::RateLimit => 429,
        ErrorKind::Overloaded => 503,
        ErrorKind::Timeout => 504,
        ErrorKind::Server => 500,
    }
}

/// The `code` OpenAI uses for a kind.
fn kind_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "invalid_api_key",
        ErrorKind::Permission => "permission_denied",
        ErrorKind::NotFound => "not_found",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_exceeded",
        ErrorKind::Overloaded => "server_is_overloaded",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Server => "server_error",
    }
}

/// The `code` to write: the source's, else the kind's usual one.
fn error_code(err: &ApiError) -> &str {
    err.code.as_deref().unwrap_or(kind_code(err.kind))
}

/// A kind from an OpenAI (or Anthropic) error `code` or `type`.
fn kind_of(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "invalid_request_error" | "context_length_exceeded" | "invalid_prompt" | "invalid_value" => {
            ErrorKind::InvalidRequest
        }
        "invalid_api_key" | "authentication_error" | "invalid_authentication" => ErrorKind::Authentication,
        "permission_denied" | "permission_error" | "unsupported_country_region_territory" => ErrorKind::Permission,
        "not_found" | "not_found_error" | "model_not_found" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_exceeded" | "rate_limit_error" | "insufficient_quota" | "tokens" | "requests" => {
            ErrorKind::RateLimit
        }
        "server_is_overloaded" | "overloaded_error" | "slow_down" => ErrorKind::Overloaded,
        "timeout" | "timeout_error" => ErrorKind::Timeout,
        "server_error" | "api_error" | "internal_error" => ErrorKind::Server,
        _ => return None,
    })
}

/// An error from any of the Responses error forms: the HTTP envelope
/// `{"error":{...}}`, the stream's `{"type":"error","code",...}`, a
/// WebSocket frame, or a failed response's `error`. `status` below 400 (a
/// stream's 200) takes the kind's status.
fn error_from_value(v: &Value, status: u16) -> ApiError {
    let e = match v.get("error") {
        Some(inner) if inner.is_object() => inner,
        _ => v,
    };
    let named = [s(e, "code"), s(e, "type")].into_iter().flatten().find_map(kind_of);
    let kind = match named {
        Some(k) if status < 400 || ErrorKind::from_status(status) == ErrorKind::InvalidRequest => k,
        _ if status >= 400 => ErrorKind::from_status(status),
        Some(k) => k,
        None => ErrorKind::Server,
    };
    let status = if status >= 400 { status } else { kind_status(kind) };
    let message = match s(e, "message") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!("the upstream answered with an error (status {status})"),
    };
    ApiError {
        status,
        kind,
        message,
        code: s(e, "code").filter(|c| !c.is_empty()).map(str::to_string),
    }
}

// ---------------------------------------------------------------------------
// Stream decoding

#[derive(Debug, PartialEq)]
enum OpenKind {
    /// A message's content part (`content_index`).
    Text(u64),
    ToolCall,
    /// A freeform call: its raw input is streamed inside `{"input":"…"}`.
    CustomToolCall,
    Thinking,
}

#[derive(Debug)]
struct OpenPart {
    index: usize,
    item_id: String,
    kind: OpenKind,
    /// Bytes streamed so far (of the current summary part for thinking), so
    /// a `*.done` event's full text can fill in what deltas missed.
    len: usize,
    summary_index: u64,
}

/// Reads a Responses SSE stream into [`StreamEvent`]s.
#[derive(Debug, Default)]
pub struct ResponsesStreamDecoder {
    started: bool,
    done: bool,
    next_index: usize,
    open: Option<OpenPart>,
    /// Items (and `item#content` text parts) already turned into parts, so a
    /// `*.done` or `response.completed` repeating them adds nothing.
    seen: Vec<String>,
    /// A reasoning item announced but without text yet: its part opens
    /// with the first summary text, or at the item's end when it is only
    /// encrypted content (an item with neither adds no empty part).
    reasoning: Option<String>,
    tool_calls: bool,
    notes: Notes,
}

impl StreamDecoder for ResponsesStreamDecoder {
    fn event(&mut self, name: Option<&str>, data: &str, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        // Keep-alives and anything that is not an event object carry nothing.
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let ty = s(&v, "type").or(name).unwrap_or("");
        match ty {
            "response.created" | "response.in_progress" | "response.queued" => self.start(v.get("response"), out),
            "response.output_item.added" => {
                self.start(None, out);
                if let Some(item) = v.get("item") {
                    self.item_added(item, out);
                }
            }
            "response.content_part.added" => {
                self.start(None, out);
                let ty = v.get("part").and_then(|p| s(p, "type"));
                if matches!(ty, Some("output_text" | "refusal")) {
                    self.open_text(&v, out);
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.start(None, out);
                self.open_text(&v, out);
                if let Some(d) = s(&v, "delta").filter(|_| self.is_open(&v, true)) {
                    self.delta(Delta::Text(d.to_string()), d.len(), out);
                }
            }
            "response.output_text.done" | "response.refusal.done" => {
                self.start(None, out);
                self.open_text(&v, out);
                if self.is_open(&v, true) {
                    self.fill(s(&v, "text").or(s(&v, "refusal")).unwrap_or(""), out);
                }
            }
            "response.content_part.done" if self.is_open(&v, true) => self.close(out),
            "response.function_call_arguments.delta" if self.is_open(&v, false) => {
                if let Some(d) = s(&v, "delta") {
                    self.delta(Delta::ToolArguments(d.to_string()), d.len(), out);
                }
            }
            "response.function_call_arguments.done" if self.is_open(&v, false) => {
                self.fill(s(&v, "arguments").unwrap_or(""), out);
            }
            "response.custom_tool_call_input.delta" if self.is_open(&v, false) => {
                if let Some(d) = s(&v, "delta") {
                    self.delta(Delta::ToolArguments(json_inner(d)), d.len(), out);
                }
            }
            "response.custom_tool_call_input.done" if self.is_open(&v, false) => {
                self.fill(s(&v, "input").unwrap_or(""), out);
            }
            "response.reasoning_summary_part.added"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning_summary_text.done" => {
                let index = v.get("summary_index").and_then(Value::as_u64).unwrap_or(0);
                let text = s(&v, "delta").or(s(&v, "text")).unwrap_or("");
                if !text.is_empty() {
                    self.open_reasoning(&v, index, out);
                }
                if self.is_open(&v, false) {
                    self.summary_part(index, out);
                    if ty.ends_with(".done") {
                        self.fill(text, out);
                    } else if !text.is_empty() {
                        self.delta(Delta::Thinking(text.to_string()), text.len(), out);
                    }
                }
            }
            "response.output_item.done" => {
                if let Some(item) = v.get("item") {
                    self.start(None, out);
                    self.item_done(item, out);
                }
            }
            "response.completed" | "response.incomplete" => {
                self.start(v.get("response"), out);
                let resp = v.get("response").and_then(Value::as_object);
                // Items the stream never showed are still part of the answer.
                if let Some(items) = resp.and_then(|r| r.get("output")).and_then(Value::as_array) {
                    for item in items {
                        self.item_done(item, out);
                    }
                }
                self.close(out);
                let empty = Map::new();
                let resp = resp.unwrap_or(&empty);
                out.push(StreamEvent::Finish {
                    stop: stop_of(resp, self.tool_calls),
                    usage: resp.get("usage").map(usage_of).unwrap_or_default(),
                });
                self.done = true;
            }
            "response.failed" => {
                let err = v.get("response").and_then(|r| r.get("error")).unwrap_or(&Value::Null);
                out.push(StreamEvent::Error(error_from_value(err, 200)));
                self.done = true;
            }
            "error" => {
                out.push(StreamEvent::Error(error_from_value(&v, 200)));
                self.done = true;
            }
            _ => {}
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        // No response.completed / incomplete / failed: cut off.
        self.start(None, out);
        out.push(StreamEvent::Error(ir::ApiError::stream_cut()));
        self.done = true;
    }

    fn notes(&self) -> &Notes {
        &self.notes
    }
}

/// A string's JSON escaping without the quotes, so raw text can be streamed
/// inside a JSON string literal piece by piece.
fn json_inner(text: &str) -> String {
    let quoted = Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

impl ResponsesStreamDecoder {
    fn start(&mut self, resp: Option<&Value>, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let resp = resp.unwrap_or(&Value::Null);
        out.push(StreamEvent::Start {
            id: s(resp, "id").unwrap_or_default().to_string(),
            model: s(resp, "model").unwrap_or_default().to_string(),
            usage: resp.get("usage").map(usage_of).unwrap_or_default(),
        });
    }

    fn open(&mut self, item_id: &str, kind: OpenKind, part: PartStart, out: &mut Vec<StreamEvent>) {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(StreamEvent::PartStart { index, part });
        self.open = Some(OpenPart {
            index,
            item_id: item_id.to_string(),
            kind,
            len: 0,
            summary_index: 0,
        });
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        let Some(open) = self.open.take() else { return };
        match open.kind {
            OpenKind::CustomToolCall => out.push(StreamEvent::Delta {
                index: open.index,
                delta: Delta::ToolArguments("\"}".to_string()),
            }),
            // The IR's arguments are `{}` when the model sent none.
            OpenKind::ToolCall if open.len == 0 => out.push(StreamEvent::Delta {
                index: open.index,
                delta: Delta::ToolArguments("{}".to_string()),
            }),
            _ => {}
        }
        out.push(StreamEvent::PartStop { index: open.index });
    }

    /// Whether the open part is the event's (by `item_id`; for text also
    /// by `content_index`).
    fn is_open(&self, v: &Value, text: bool) -> bool {
        let Some(open) = &self.open else { return false };
        let same_item = s(v, "item_id") == Some(open.item_id.as_str());
        match (&open.kind, text) {
            (OpenKind::Text(ci), true) => same_item && v.get("content_index").and_then(Value::as_u64) == Some(*ci),
            (OpenKind::Text(_), false) => false,
            (_, true) => false,
            (_, false) => same_item,
        }
    }

    /// Opens the event's text part unless it is open or was already seen.
    fn open_text(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        if self.is_open(v, true) {
            return;
        }
        let item = s(v, "item_id").unwrap_or_default();
        let ci = v.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        let key = format!("{item}#{ci}");
        if self.seen.contains(&key) {
            return;
        }
        self.seen.push(key);
        if !self.seen.iter().any(|k| k == item) {
            self.seen.push(item.to_string());
        }
        self.open(item, OpenKind::Text(ci), PartStart::Text, out);
    }

    fn delta(&mut self, delta: Delta, raw_len: usize, out: &mut Vec<StreamEvent>) {
        let Some(open) = &mut self.open else { return };
        open.len += raw_len;
        if !delta.text().is_empty() {
            out.push(StreamEvent::Delta {
                index: open.index,
                delta,
            });
        }
    }

    /// A `*.done` event's full text: streams what the deltas did not.
    fn fill(&mut self, full: &str, out: &mut Vec<StreamEvent>) {
        let Some(open) = &self.open else { return };
        let Some(rest) = full.get(open.len..).filter(|r| !r.is_empty()) else {
            return;
        };
        let delta = match open.kind {
            OpenKind::Text(_) => Delta::Text(rest.to_string()),
            OpenKind::ToolCall => Delta::ToolArguments(rest.to_string()),
            OpenKind::CustomToolCall => Delta::ToolArguments(json_inner(rest)),
            OpenKind::Thinking => Delta::Thinking(rest.to_string()),
        };
        self.delta(delta, rest.len(), out);
    }

    /// A reasoning summary part begins: a blank line separates it from the
    /// previous one (the summary's parts are one thinking part).
    fn summary_part(&mut self, index: u64, out: &mut Vec<StreamEvent>) {
        let Some(open) = &mut self.open else { return };
        if open.kind != OpenKind::Thinking || index == open.summary_index {
            return;
        }
        let had_text = open.len > 0 || index > open.summary_index + 1;
        open.summary_index = index;
        open.len = 0;
        if had_text {
            out.push(StreamEvent::Delta {
                index: open.index,
                delta: Delta::Thinking("\n\n".to_string()),
            });
        }
    }

    fn item_added(&mut self, item: &Value, out: &mut Vec<StreamEvent>) {
        let id = s(item, "id").unwrap_or_default();
        if self.seen.iter().any(|k| k == id) {
            return;
        }
        let (kind, part) = match s(item, "type") {
            Some("function_call") => (OpenKind::ToolCall, tool_start(item)),
            Some("custom_tool_call") => (OpenKind::CustomToolCall, tool_start(item)),
            Some("reasoning") => {
                self.close(out);
                self.reasoning = Some(id.to_string());
                return;
            }
            // Messages open parts per content part.
            Some("message") | None => return,
            Some(other) => {
                self.notes.dropped(format!("{other} items"));
                return;
            }
        };
        self.seen.push(id.to_string());
        self.tool_calls = true;
        let custom = kind == OpenKind::CustomToolCall;
        self.open(id, kind, part, out);
        if custom {
            self.delta(Delta::ToolArguments("{\"input\":\"".to_string()), 0, out);
        }
    }

    /// Opens the pending reasoning item's part when the event is its.
    fn open_reasoning(&mut self, v: &Value, summary_index: u64, out: &mut Vec<StreamEvent>) {
        let Some(id) = self.reasoning.take_if(|r| s(v, "item_id") == Some(r.as_str())) else {
            return;
        };
        let part = PartStart::Thinking {
            origin: ORIGIN,
            id: Some(id.clone()),
        };
        self.open(&id, OpenKind::Thinking, part, out);
        self.seen.push(id);
        if let Some(open) = &mut self.open {
            open.summary_index = summary_index;
        }
    }

    /// A finished item: closes its open part, or, for an item the stream
    /// never announced (or a reasoning item that streamed no text), emits
    /// all of it.
    fn item_done(&mut self, item: &Value, out: &mut Vec<StreamEvent>) {
        let id = s(item, "id").unwrap_or_default();
        if self.reasoning.as_deref() == Some(id) {
            self.reasoning = None;
        }
        if self.open.as_ref().is_some_and(|o| o.item_id == id) {
            match s(item, "type") {
                Some("function_call") => self.fill(s(item, "arguments").unwrap_or(""), out),
                Some("custom_tool_call") => self.fill(s(item, "input").unwrap_or(""), out),
                Some("reasoning") => {
                    if let Some(e) = s(item, "encrypted_content") {
                        self.delta(Delta::Encrypted(e.to_string()), 0, out);
                    }
                }
                _ => {}
            }
            return self.close(out);
        }
        if self.seen.iter().any(|k| k == id) {
            return;
        }
        let Some(obj) = item.as_object() else { return };
        let Ok(parts) = output_item_parts(obj, &mut self.notes) else {
            return;
        };
        self.seen.push(id.to_string());
        for part in parts {
            let (start, deltas) = match part {
                Part::Text(t) => (PartStart::Text, vec![Delta::Text(t.text)]),
                Part::ToolCall(c) => {
                    self.tool_calls = true;
                    (
                        PartStart::ToolCall { id: c.id, name: c.name },
                        vec![Delta::ToolArguments(c.arguments)],
                    )
                }
                Part::Thinking(t) if !t.text.is_empty() || t.encrypted.is_some() => {
                    let start = PartStart::Thinking {
                        origin: t.origin,
                        id: t.id,
                    };
                    let mut deltas = vec![Delta::Thinking(t.text)];
                    deltas.extend(t.encrypted.map(Delta::Encrypted));
                    (start, deltas)
                }
                _ => continue,
            };
            self.open(id, OpenKind::Text(u64::MAX), start, out);
            for delta in deltas {
                let len = delta.text().len();
                self.delta(delta, len, out);
            }
            // Plain close: the arguments above are complete JSON already.
            if let Some(open) = self.open.take() {
                out.push(StreamEvent::PartStop { index: open.index });
            }
        }
    }
}

fn tool_start(item: &Value) -> PartStart {
    PartStart::ToolCall {
        id: s(item, "call_id").unwrap_or_default().to_string(),
        name: s(item, "name").unwrap_or_default().to_string(),
    }
}

// ---------------------------------------------------------------------------
// Stream encoding

#[derive(Debug, PartialEq)]
enum EncKind {
    Text,
    ToolCall {
        call_id: String,
        name: String,
    },
    /// A call of a client's freeform tool: arguments are gathered and its
    /// raw input written when the call is complete (see the module docs).
    CustomToolCall {
        call_id: String,
        name: String,
    },
    Thinking {
        summary_open: bool,
        /// OpenAI's own reasoning: its encrypted content is kept.
        own: bool,
        origin: &'static str,
        encrypted: Option<String>,
    },
}

#[derive(Debug)]
struct EncOpen {
    output_index: usize,
    item_id: String,
    kind: EncKind,
    /// The full text or arguments so far, for the `*.done` events.
    text: String,
}

/// Writes [`StreamEvent`]s as the Responses event stream.
#[derive(Debug)]
pub struct ResponsesStreamEncoder {
    ctx: ResponseContext,
    seq: u64,
    id: String,
    model: String,
    started: bool,
    finished: bool,
    /// Finished items, for `response.completed`'s `output`.
    output: Vec<Value>,
    open: Option<EncOpen>,
    notes: Notes,
}

impl ResponsesStreamEncoder {
    pub fn new(ctx: &ResponseContext) -> Self {
        ResponsesStreamEncoder {
            ctx: ctx.clone(),
            seq: 0,
            id: response_id("", &ctx.id_seed),
            model: ctx.client_model.clone(),
            started: false,
            finished: false,
            output: Vec::new(),
            open: None,
            notes: Notes::default(),
        }
    }

    /// One event: `type` and `sequence_number` first, then `fields`.
    fn emit(&mut self, ty: &'static str, fields: Value, out: &mut Vec<Event>) {
        let mut data = Map::new();
        data.insert("type".into(), json!(ty));
        data.insert("sequence_number".into(), json!(self.seq));
        if let Value::Object(f) = fields {
            data.extend(f);
        }
        self.seq += 1;
        out.push(Event {
            name: Some(ty),
            data: Value::Object(data).to_string(),
        });
    }

    fn snapshot(&self, status: &str, incomplete: Value, usage: Value) -> Value {
        response_object(
            &self.id,
            self.ctx.created,
            status,
            incomplete,
            &self.model,
            self.output.clone(),
            usage,
        )
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = response_id(id, &self.ctx.id_seed);
        self.model = model_for(&self.ctx, model);
        for ty in ["response.created", "response.in_progress"] {
            let resp = self.snapshot("in_progress", Value::Null, Value::Null);
            self.emit(ty, json!({ "response": resp }), out);
        }
    }

    fn part_start(&mut self, part: &PartStart, out: &mut Vec<Event>) {
        self.close(out);
        let output_index = self.output.len();
        let seed = self.ctx.id_seed.clone();
        let (item_id, kind, item) = match part {
            PartStart::Text => {
                let id = item_id("msg", &seed, output_index);
                let item = message_item(&id, "in_progress", Vec::new());
                (id, EncKind::Text, item)
            }
            PartStart::ToolCall { id: call_id, name } if self.ctx.freeform_tools.contains(name) => {
                let id = item_id("ctc", &seed, output_index);
                let item = custom_tool_call_item(&id, "in_progress", call_id, name, "");
                let kind = EncKind::CustomToolCall {
                    call_id: call_id.clone(),
                    name: name.clone(),
                };
                (id, kind, item)
            }
            PartStart::ToolCall { id: call_id, name } => {
                let id = item_id("fc", &seed, output_index);
                let item = function_call_item(&id, "in_progress", call_id, name, "");
                let kind = EncKind::ToolCall {
                    call_id: call_id.clone(),
                    name: name.clone(),
                };
                (id, kind, item)
            }
            PartStart::Thinking { origin, id } => {
                let own = *origin == ORIGIN;
                let id = match id {
                    Some(id) if own && !id.is_empty() => id.clone(),
                    _ => item_id("rs", &seed, output_index),
                };
                let item = json!({"id": id, "type": "reasoning", "summary": []});
                let kind = EncKind::Thinking {
                    summary_open: false,
                    own,
                    origin,
                    encrypted: None,
                };
                (id, kind, item)
            }
        };
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
            out,
        );
        if kind == EncKind::Text {
            self.emit(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": output_index, "content_index": 0, "part": text_part("")}),
                out,
            );
        }
        self.open = Some(EncOpen {
            output_index,
            item_id,
            kind,
            text: String::new(),
        });
    }

    fn delta(&mut self, delta: &Delta, out: &mut Vec<Event>) {
        let Some(mut open) = self.open.take() else { return };
        let (item_id, output_index) = (open.item_id.clone(), open.output_index);
        match (&mut open.kind, delta) {
            (EncKind::Text, Delta::Text(d)) => {
                open.text.push_str(d);
                self.emit(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": output_index, "content_index": 0, "delta": d, "logprobs": []}),
                    out,
                );
            }
            (EncKind::ToolCall { .. }, Delta::ToolArguments(d)) => {
                open.text.push_str(d);
                self.emit(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": output_index, "delta": d}),
                    out,
                );
            }
            (EncKind::CustomToolCall { .. }, Delta::ToolArguments(d)) => open.text.push_str(d),
            (EncKind::Thinking { summary_open, .. }, Delta::Thinking(d)) if !d.is_empty() => {
                if !*summary_open {
                    *summary_open = true;
                    self.emit(
                        "response.reasoning_summary_part.added",
                        json!({"item_id": item_id, "output_index": output_index, "summary_index": 0,
                               "part": {"type": "summary_text", "text": ""}}),
                        out,
                    );
                }
                open.text.push_str(d);
                self.emit(
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": item_id, "output_index": output_index, "summary_index": 0, "delta": d}),
                    out,
                );
            }
            (
                EncKind::Thinking {
                    own: true, encrypted, ..
                },
                Delta::Encrypted(e),
            ) if !e.is_empty() => {
                encrypted.get_or_insert_with(String::new).push_str(e);
            }
            (EncKind::Thinking { origin, .. }, Delta::Encrypted(e) | Delta::Signature(e)) if !e.is_empty() => {
                self.notes.dropped(foreign_signature_note(origin));
            }
            // Deltas of another part's kind.
            _ => {}
        }
        self.open = Some(open);
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        let Some(open) = self.open.take() else { return };
        let (id, idx) = (open.item_id.as_str(), open.output_index);
        let item = match &open.kind {
            EncKind::Text => {
                let part = text_part(&open.text);
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": idx, "content_index": 0, "text": open.text, "logprobs": []}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": idx, "content_index": 0, "part": part.clone()}),
                    out,
                );
                message_item(id, "completed", vec![part])
            }
            EncKind::ToolCall { call_id, name } => {
                let args = arguments_text(Some(&open.text));
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": idx, "name": name, "arguments": args}),
                    out,
                );
                function_call_item(id, "completed", call_id, name, &args)
            }
            EncKind::CustomToolCall { call_id, name } => {
                let input = custom_input(&open.text, &mut self.notes);
                if !input.is_empty() {
                    self.emit(
                        "response.custom_tool_call_input.delta",
                        json!({"item_id": id, "output_index": idx, "delta": input}),
                        out,
                    );
                }
                self.emit(
                    "response.custom_tool_call_input.done",
                    json!({"item_id": id, "output_index": idx, "input": input}),
                    out,
                );
                custom_tool_call_item(id, "completed", call_id, name, &input)
            }
            EncKind::Thinking {
                summary_open,
                encrypted,
                ..
            } => {
                if *summary_open {
                    self.emit(
                        "response.reasoning_summary_text.done",
                        json!({"item_id": id, "output_index": idx, "summary_index": 0, "text": open.text}),
                        out,
                    );
                    self.emit(
                        "response.reasoning_summary_part.done",
                        json!({"item_id": id, "output_index": idx, "summary_index": 0,
                               "part": {"type": "summary_text", "text": open.text}}),
                        out,
                    );
                }
                reasoning_output_item(id, &open.text, encrypted.as_deref())
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": idx, "item": item.clone()}),
            out,
        );
        self.output.push(item);
    }
}

impl StreamEncoder for ResponsesStreamEncoder {
    fn event(&mut self, event: &StreamEvent, out: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        match event {
            StreamEvent::Start { id, model, .. } => self.start(id, model, out),
            StreamEvent::PartStart { part, .. } => {
                self.start("", "", out);
                self.part_start(part, out);
            }
            StreamEvent::Delta { delta, .. } => self.delta(delta, out),
            StreamEvent::PartStop { .. } => self.close(out),
            StreamEvent::Finish { stop, usage } => {
                self.start("", "", out);
                self.close(out);
                let (status, incomplete) = status_for(stop.as_ref(), &mut self.notes);
                let usage = encode_usage(usage, &mut self.notes);
                let resp = self.snapshot(status, incomplete, usage);
                let ty = if status == "incomplete" {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                self.emit(ty, json!({ "response": resp }), out);
                self.finished = true;
            }
            StreamEvent::Error(err) => {
                self.start("", "", out);
                let code = error_code(err).to_string();
                self.emit(
                    "error",
                    json!({"code": code, "message": err.message, "param": null}),
                    out,
                );
                // Codex ends a turn on `response.failed`; SDKs read `error`.
                let mut resp = self.snapshot("failed", Value::Null, Value::Null);
                resp["error"] = json!({"code": code, "message": err.message});
                self.emit("response.failed", json!({ "response": resp }), out);
                self.finished = true;
            }
        }
    }

    fn notes(&self) -> &Notes {
        &self.notes
    }
}

#[cfg(test)]
mod tests;
