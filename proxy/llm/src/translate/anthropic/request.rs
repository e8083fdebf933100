//! Requests: `POST /v1/messages` bodies.

use serde_json::{json, Map, Value};

use super::{arguments_to_input, cache_control, encode_thinking, input_to_arguments, malformed, unsupported, ORIGIN};
use crate::translate::ir::{self, Notes, Part};
use crate::translate::TranslateError;

/// `max_tokens` when the source had none (the API requires it).
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The smallest `thinking.budget_tokens` the API accepts.
const MIN_BUDGET: u64 = 1024;

type Obj = Map<String, Value>;

/// Top-level fields that change what the model does and have no place in
/// the model (noted by name when present).
const DROPPED_FIELDS: [&str; 5] = [
    "top_k",
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
];

pub(super) fn decode(body: &[u8], notes: &mut Notes) -> Result<ir::Request, TranslateError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let obj = root
        .as_object()
        .ok_or_else(|| malformed("the body is not a JSON object"))?;
    let model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => return Err(malformed("model is missing or not a string")),
    };
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("messages is missing or not an array"))?;
    let (tool_choice, parallel_tool_calls) = decode_tool_choice(obj.get("tool_choice"))?;
    for key in DROPPED_FIELDS {
        if obj.get(key).is_some_and(|v| !v.is_null()) {
            notes.dropped(key);
        }
    }
    let mut system = decode_system(obj.get("system"))?;
    let mut turns = Vec::with_capacity(messages.len());
    for m in messages {
        // Claude Code sends `role: "system"` messages among the turns (the
        // API takes them); the common model keeps system text in one place.
        if m.get("role").and_then(Value::as_str) == Some("system") {
            system.extend(decode_system(m.get("content"))?);
            notes.dropped("the position of system messages among the turns (moved to the system prompt)");
            continue;
        }
        turns.push(decode_message(m, notes)?);
    }
    Ok(ir::Request {
        model,
        system,
        messages: turns,
        tools: match obj.get("tools") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(tools)) => {
                let mut out = Vec::new();
                for t in tools {
                    out.extend(decode_tool(t, notes)?);
                }
                out
            }
            Some(_) => return Err(malformed("tools is not an array")),
        },
        tool_choice,
        parallel_tool_calls,
        max_output_tokens: opt_u64(obj, "max_tokens")?,
        temperature: opt_f64(obj, "temperature")?,
        top_p: opt_f64(obj, "top_p")?,
        stop: match obj.get("stop_sequences") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| malformed("stop_sequences holds a non-string"))?,
            Some(_) => return Err(malformed("stop_sequences is not an array")),
        },
        stream: match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(malformed("stream is not a boolean")),
        },
        reasoning: decode_thinking_config(obj.get("thinking"))?,
        user: obj
            .get("metadata")
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn opt_u64(obj: &Obj, key: &str) -> Result<Option<u64>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| malformed(format!("{key} is not a non-negative integer"))),
    }
}

fn opt_f64(obj: &Obj, key: &str) -> Result<Option<f64>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| malformed(format!("{key} is not a number"))),
    }
}

fn str_of<'v>(block: &'v Value, key: &str, what: &str) -> Result<&'v str, TranslateError> {
    block
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("{what}.{key} is missing or not a string")))
}

fn decode_system(system: Option<&Value>) -> Result<Vec<ir::Text>, TranslateError> {
    match system {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![ir::Text {
            text: s.clone(),
            cache_control: None,
        }]),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => Ok(ir::Text {
                    text: str_of(b, "text", "system block")?.to_string(),
                    cache_control: cache_control(b),
                }),
                Some(other) => Err(unsupported(format!("a {other} block in system"))),
                None => Err(malformed("a system block has no type")),
            })
            .collect(),
        Some(_) => Err(malformed("system is neither a string nor an array")),
    }
}

fn decode_message(m: &Value, notes: &mut Notes) -> Result<ir::Message, TranslateError> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some("user") => ir::Role::User,
        Some("assistant") => ir::Role::Assistant,
        // The role's value names no data; it tells a reader what came instead.
        other => {
            let shown: String = other.unwrap_or("(none)").chars().take(24).collect();
            return Err(malformed(format!(
                "a message's role is {shown:?}, neither user nor assistant"
            )));
        }
    };
    let parts = match m.get("content") {
        Some(Value::String(s)) => vec![Part::Text(ir::Text {
            text: s.clone(),
            cache_control: None,
        })],
        Some(Value::Array(blocks)) => decode_blocks(blocks, notes)?,
        _ => return Err(malformed("a message's content is neither a string nor an array")),
    };
    Ok(ir::Message { role, parts })
}

fn decode_blocks(blocks: &[Value], notes: &mut Notes) -> Result<Vec<Part>, TranslateError> {
    let mut parts = Vec::new();
    for b in blocks {
        parts.extend(decode_block(b, notes)?);
    }
    Ok(parts)
}

/// Blocks of Anthropic's server tools (and their inputs): the model has no
/// part for them, and a turn makes sense without them.
fn is_server_block(ty: &str) -> bool {
    ty == "server_tool_use"
        || ty.ends_with("_tool_result")
        || matches!(ty, "mcp_tool_use" | "search_result" | "container_upload")
}

/// One content block of a message (or of a tool result); None when it is
/// dropped (and noted).
pub(super) fn decode_block(b: &Value, notes: &mut Notes) -> Result<Option<Part>, TranslateError> {
    let ty = b
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("a content block has no type"))?;
    if ty != "tool_result" && is_server_block(ty) {
        notes.dropped(format!("{ty} blocks"));
        return Ok(None);
    }
    if b.get("citations")
        .is_some_and(|c| !c.is_null() && c != &Value::Array(Vec::new()))
    {
        notes.dropped("citations");
    }
    Ok(Some(match ty {
        "text" => Part::Text(ir::Text {
            text: str_of(b, "text", "text block")?.to_string(),
            cache_control: cache_control(b),
        }),
        "image" => match decode_image(b)? {
            Some(img) => Part::Image(img),
            None => {
                notes.dropped("images with a file source");
                return Ok(None);
            }
        },
        "tool_use" => Part::ToolCall(ir::ToolCall {
            id: str_of(b, "id", "tool_use")?.to_string(),
            name: str_of(b, "name", "tool_use")?.to_string(),
            arguments: input_to_arguments(b.get("input")),
        }),
        "tool_result" => Part::ToolResult(ir::ToolResult {
            call_id: str_of(b, "tool_use_id", "tool_result")?.to_string(),
            content: match b.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(s)) => vec![Part::Text(ir::Text {
                    text: s.clone(),
                    cache_control: None,
                })],
                Some(Value::Array(blocks)) => decode_blocks(blocks, notes)?,
                Some(_) => return Err(malformed("tool_result.content is neither a string nor an array")),
            },
            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        }),
        "thinking" => Part::Thinking(ir::Thinking {
            text: b
                .get("thinking")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            origin: ORIGIN,
            signature: b.get("signature").and_then(Value::as_str).map(str::to_string),
            encrypted: None,
            id: None,
        }),
        "redacted_thinking" => Part::Thinking(ir::Thinking {
            text: String::new(),
            origin: ORIGIN,
            signature: None,
            encrypted: Some(str_of(b, "data", "redacted_thinking")?.to_string()),
            id: None,
        }),
        "document" => {
            let source = b.get("source");
            match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
                Some("text") => Part::Text(ir::Text {
                    text: source
                        .and_then(|s| s.get("data"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| malformed("document.source.data is missing or not a string"))?
                        .to_string(),
                    cache_control: cache_control(b),
                }),
                // PDFs and other files: a turn still makes sense without them.
                Some(other) => {
                    notes.dropped(format!("document blocks with a {other} source"));
                    return Ok(None);
                }
                None => return Err(malformed("document.source has no type")),
            }
        }
        other => return Err(unsupported(format!("{other} content blocks"))),
    }))
}

/// None for a `file` source (an upload at Anthropic).
fn decode_image(b: &Value) -> Result<Option<ir::Image>, TranslateError> {
    let source = b.get("source").ok_or_else(|| malformed("image.source is missing"))?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(Some(ir::Image::Base64 {
            media_type: str_of(source, "media_type", "image.source")?.to_string(),
            data: str_of(source, "data", "image.source")?.to_string(),
        })),
        Some("url") => Ok(Some(ir::Image::Url(str_of(source, "url", "image.source")?.to_string()))),
        Some("file") => Ok(None),
        Some(other) => Err(unsupported(format!("an image with a {other} source"))),
        None => Err(malformed("image.source has no type")),
    }
}

/// A tool; None for a server tool (dropped and noted: the model has no
/// way to run it).
fn decode_tool(t: &Value, notes: &mut Notes) -> Result<Option<ir::Tool>, TranslateError> {
    match t.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(server) => {
            notes.dropped(format!("the server tool {server}"));
            return Ok(None);
        }
    }
    Ok(Some(ir::Tool {
        name: str_of(t, "name", "tool")?.to_string(),
        description: t.get("description").and_then(Value::as_str).map(str::to_string),
        parameters: match t.get("input_schema") {
            None | Some(Value::Null) => json!({"type": "object"}),
            Some(s) => s.clone(),
        },
        cache_control: cache_control(t),
        kind: ir::ToolKind::Function,
        strict: t.get("strict").and_then(Value::as_bool),
    }))
}

type ToolChoiceAndParallel = (Option<ir::ToolChoice>, Option<bool>);

fn decode_tool_choice(tc: Option<&Value>) -> Result<ToolChoiceAndParallel, TranslateError> {
    let Some(tc) = tc.filter(|v| !v.is_null()) else {
        return Ok((None, None));
    };
    let choice = match tc.get("type").and_then(Value::as_str) {
        Some("auto") => ir::ToolChoice::Auto,
        Some("any") => ir::ToolChoice::Required,
        Some("none") => ir::ToolChoice::None,
        Some("tool") => ir::ToolChoice::Tool(str_of(tc, "name", "tool_choice")?.to_string()),
        _ => return Err(malformed("tool_choice.type is not auto, any, tool or none")),
    };
    let parallel = tc.get("disable_parallel_tool_use").and_then(Value::as_bool).map(|d| !d);
    Ok((Some(choice), parallel))
}

fn decode_thinking_config(t: Option<&Value>) -> Result<Option<ir::Reasoning>, TranslateError> {
    let Some(t) = t.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match t.get("type").and_then(Value::as_str) {
        Some("enabled") => Ok(Some(ir::Reasoning {
            effort: None,
            budget_tokens: t.get("budget_tokens").and_then(Value::as_u64),
        })),
        Some("disabled") => Ok(None),
        // Adaptive thinking: the model picks its budget.
        Some("adaptive") => Ok(Some(ir::Reasoning::default())),
        _ => Err(malformed("thinking.type is not enabled, disabled or adaptive")),
    }
}

/// The thinking budget an effort stands for (None: no thinking).
fn effort_budget(effort: &str, notes: &mut Notes) -> Option<u64> {
    Some(match effort {
        "none" => return None,
        "minimal" => MIN_BUDGET,
        "low" => 2048,
        "medium" => 8192,
        "high" => 24576,
        "xhigh" => 32768,
        other => {
            notes.dropped(format!("reasoning effort {other} (written as the medium budget)"));
            8192
        }
    })
}

pub(super) fn encode(req: &ir::Request, notes: &mut Notes) -> Value {
    // The thinking budget first: the default max_tokens must leave room for it.
    let explicit_budget = req.reasoning.as_ref().and_then(|r| r.budget_tokens);
    let effort_budget = match (&req.reasoning, explicit_budget) {
        (Some(r), None) => {
            if r.effort.is_some() {
                notes.dropped("reasoning.effort (written as thinking.budget_tokens)");
            } else {
                notes.dropped("reasoning without a budget (written as the medium budget)");
            }
            effort_budget(r.effort.as_deref().unwrap_or("medium"), notes)
        }
        _ => None,
    };
    let max_tokens = req.max_output_tokens.unwrap_or_else(|| {
        let d = explicit_budget
            .or(effort_budget)
            .map_or(DEFAULT_MAX_TOKENS, |b| b.saturating_add(DEFAULT_MAX_TOKENS));
        notes.dropped(format!("max_tokens (absent: written as {d})"));
        d
    });
    let budget = match (explicit_budget, effort_budget) {
        (Some(b), _) => Some(b),
        // The API wants budget_tokens < max_tokens: an effort gets at most half.
        (None, Some(b)) if b >= max_tokens => {
            let half = max_tokens / 2;
            if half < MIN_BUDGET {
                notes.dropped("reasoning (max_tokens leaves no room for a thinking budget)");
                None
            } else {
                Some(half)
            }
        }
        (None, b) => b,
    };

    let messages: Vec<Value> = req.messages.iter().filter_map(|m| encode_message(m, notes)).collect();
    let budget = budget.filter(|_| thinking_fits(req, &messages, notes));

    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(system) = encode_system(&req.system) {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        out.insert(
            "tools".into(),
            Value::Array(req.tools.iter().map(|t| encode_tool(t, notes)).collect()),
        );
    }
    if let Some(tc) = encode_tool_choice(req, notes) {
        out.insert("tool_choice".into(), tc);
    }
    if let Some(b) = budget {
        out.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": b}));
    }
    // With thinking on, the API takes no temperature but 1 and no top_p under 0.95.
    let temperature = req.temperature.filter(|t| {
        let ok = budget.is_none() || *t == 1.0;
        if !ok {
            notes.dropped("temperature (thinking requires the default)");
        }
        ok
    });
    if let Some(t) = temperature {
        out.insert("temperature".into(), json!(t));
    }
    // Current models reject temperature and top_p together: temperature wins.
    let top_p = req.top_p.filter(|p| {
        let ok = temperature.is_none() && (budget.is_none() || *p >= 0.95);
        if !ok {
            notes.dropped("top_p (not accepted together with temperature or thinking)");
        }
        ok
    });
    if let Some(p) = top_p {
        out.insert("top_p".into(), json!(p));
    }
    // The API rejects stop sequences of whitespace only.
    let stop: Vec<&String> = req
        .stop
        .iter()
        .filter(|s| {
            let ok = !s.trim().is_empty();
            if !ok {
                notes.dropped("stop sequences of whitespace only");
            }
            ok
        })
        .collect();
    if !stop.is_empty() {
        out.insert("stop_sequences".into(), json!(stop));
    }
    if let Some(user) = &req.user {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if req.stream {
        // Anthropic streams always carry usage: nothing to ask for.
        out.insert("stream".into(), json!(true));
    }
    Value::Object(out)
}

/// Whether thinking can be turned on for these messages: the API rejects
/// it with a forced tool choice, and when the last assistant turn made tool
/// calls without starting with a thinking block (a tool loop begun without
/// Anthropic thinking, e.g. by another provider).
fn thinking_fits(req: &ir::Request, messages: &[Value], notes: &mut Notes) -> bool {
    if matches!(
        req.tool_choice,
        Some(ir::ToolChoice::Required | ir::ToolChoice::Tool(_))
    ) && !req.tools.is_empty()
    {
        notes.dropped("reasoning (thinking cannot be combined with a forced tool choice)");
        return false;
    }
    let last_assistant = messages.iter().rev().find(|m| m["role"] == "assistant");
    let Some(Value::Array(blocks)) = last_assistant.map(|m| &m["content"]) else {
        return true;
    };
    let calls = blocks.iter().any(|b| b["type"] == "tool_use");
    let starts_thinking = blocks
        .first()
        .is_some_and(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking");
    if calls && !starts_thinking {
        notes.dropped("reasoning (the last assistant turn's tool calls have no Anthropic thinking before them)");
        return false;
    }
    true
}

/// One unmarked text as a string, anything else as text blocks.
fn encode_system(system: &[ir::Text]) -> Option<Value> {
    // The API rejects empty text blocks; they say nothing.
    let system: Vec<&ir::Text> = system.iter().filter(|t| !t.text.is_empty()).collect();
    match system.as_slice() {
        [] => None,
        [t] if t.cache_control.is_none() => Some(json!(t.text)),
        texts => Some(Value::Array(texts.iter().map(|t| text_block(t)).collect())),
    }
}

fn text_block(t: &ir::Text) -> Value {
    let mut b = json!({"type": "text", "text": t.text});
    if let (Some(cc), Some(obj)) = (&t.cache_control, b.as_object_mut()) {
        obj.insert("cache_control".into(), cc.clone());
    }
    b
}

/// A turn; None when nothing of it can be sent (the API rejects empty
/// content, and accepts two turns of one role in a row).
fn encode_message(m: &ir::Message, notes: &mut Notes) -> Option<Value> {
    let role = match m.role {
        ir::Role::User => "user",
        ir::Role::Assistant => "assistant",
    };
    if let [Part::Text(t)] = m.parts.as_slice() {
        if t.cache_control.is_none() && !t.text.is_empty() {
            return Some(json!({"role": role, "content": t.text}));
        }
    }
    let blocks: Vec<Value> = m.parts.iter().filter_map(|p| encode_part(p, notes)).collect();
    if blocks.is_empty() {
        notes.dropped(format!("an empty {role} turn"));
        return None;
    }
    Some(json!({"role": role, "content": blocks}))
}

/// A content block for a part. Empty text is skipped (the API rejects
/// empty text blocks and it says nothing).
fn encode_part(p: &Part, notes: &mut Notes) -> Option<Value> {
    match p {
        Part::Text(t) if t.text.is_empty() => None,
        Part::Text(t) => Some(text_block(t)),
        Part::Image(img) => Some(encode_image(img)),
        Part::ToolCall(c) => Some(json!({
            "type": "tool_use",
            "id": tool_id(&c.id, notes),
            "name": c.name,
            "input": arguments_to_input(&c.arguments, notes),
        })),
        Part::ToolResult(r) => {
            let mut b = json!({"type": "tool_result", "tool_use_id": tool_id(&r.call_id, notes)});
            let obj = b.as_object_mut()?;
            match r.content.as_slice() {
                [] => {}
                [Part::Text(t)] if t.cache_control.is_none() => {
                    obj.insert("content".into(), json!(t.text));
                }
                parts => {
                    let blocks: Vec<Value> = parts.iter().filter_map(|p| encode_result_part(p, notes)).collect();
                    obj.insert("content".into(), Value::Array(blocks));
                }
            }
            if r.is_error {
                obj.insert("is_error".into(), json!(true));
            }
            Some(b)
        }
        Part::Thinking(t) => encode_thinking(t, notes),
    }
}

/// Tool results hold text and images only.
fn encode_result_part(p: &Part, notes: &mut Notes) -> Option<Value> {
    match p {
        Part::Text(t) if t.text.is_empty() => None,
        Part::Text(t) => Some(text_block(t)),
        Part::Image(img) => Some(encode_image(img)),
        Part::ToolCall(_) | Part::ToolResult(_) | Part::Thinking(_) => {
            notes.dropped("a tool result's content other than text and images");
            None
        }
    }
}

pub(super) fn encode_image(img: &ir::Image) -> Value {
    match img {
        ir::Image::Base64 { media_type, data } => {
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
        // The API fetches http(s) URLs only: a data URL goes as base64.
        ir::Image::Url(url) => match data_url(url) {
            Some((media_type, data)) => {
                json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
            }
            None => json!({"type": "image", "source": {"type": "url", "url": url}}),
        },
    }
}

/// `data:<media type>;base64,<data>` taken apart.
fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (media_type, data) = rest.split_once(";base64,")?;
    Some((media_type, data))
}

/// The API wants tool ids of `[a-zA-Z0-9_-]+`; other providers' ids are
/// rewritten the same way in calls and results, so they still pair up.
fn tool_id(id: &str, notes: &mut Notes) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(ok) {
        return id.to_string();
    }
    notes.dropped("characters of tool call ids Anthropic rejects (replaced by _)");
    if id.is_empty() {
        return "toolu_".to_string();
    }
    id.chars().map(|c| if ok(c) { c } else { '_' }).collect()
}

/// A function tool (a freeform tool's `parameters` are already its
/// function form).
fn encode_tool(t: &ir::Tool, notes: &mut Notes) -> Value {
    if t.strict == Some(true) {
        notes.dropped("tool strict");
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(t.name));
    if let Some(d) = &t.description {
        out.insert("description".into(), json!(d));
    }
    let schema = if t.parameters.is_object() {
        t.parameters.clone()
    } else {
        json!({"type": "object"})
    };
    out.insert("input_schema".into(), schema);
    if let Some(cc) = &t.cache_control {
        out.insert("cache_control".into(), cc.clone());
    }
    Value::Object(out)
}

fn encode_tool_choice(req: &ir::Request, notes: &mut Notes) -> Option<Value> {
    if req.tools.is_empty() {
        // The API rejects tool_choice without tools.
        if matches!(
            req.tool_choice,
            Some(ir::ToolChoice::Required | ir::ToolChoice::Tool(_))
        ) {
            notes.dropped("tool_choice without tools");
        }
        return None;
    }
    let disable = req.parallel_tool_calls.map(|p| !p);
    let mut tc = match &req.tool_choice {
        // No parallel calls needs a tool_choice to say so.
        None if disable == Some(true) => json!({"type": "auto"}),
        None => return None,
        Some(ir::ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ir::ToolChoice::Required) => json!({"type": "any"}),
        Some(ir::ToolChoice::Tool(name)) => json!({"type": "tool", "name": name}),
        // `none` takes no disable_parallel_tool_use: no call is made anyway.
        Some(ir::ToolChoice::None) => return Some(json!({"type": "none"})),
    };
    if let (Some(d), Some(obj)) = (disable, tc.as_object_mut()) {
        obj.insert("disable_parallel_tool_use".into(), json!(d));
    }
    Some(tc)
}
