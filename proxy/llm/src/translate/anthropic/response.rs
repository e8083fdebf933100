//! Whole answers: a `message` object.

use serde_json::{json, Value};

use super::request::decode_block;
use super::{
    arguments_to_input, decode_usage, encode_thinking, encode_usage, malformed, stop_reason_of, stop_reason_str,
    unsupported,
};
use crate::translate::ir::{self, Notes, Part};
use crate::translate::{ResponseContext, TranslateError};

pub(super) fn decode(body: &[u8], notes: &mut Notes) -> Result<ir::Response, TranslateError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    if !root.is_object() {
        return Err(malformed("the body is not a JSON object"));
    }
    let content = root
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("content is missing or not an array"))?;
    let mut parts = Vec::new();
    for b in content {
        match decode_block(b, notes)? {
            Some(p @ (Part::Text(_) | Part::ToolCall(_) | Part::Thinking(_))) => parts.push(p),
            Some(Part::Image(_) | Part::ToolResult(_)) => {
                return Err(unsupported("an image or tool_result block in an answer"))
            }
            None => {}
        }
    }
    let s = |k: &str| root.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(ir::Response {
        id: s("id"),
        model: s("model"),
        parts,
        stop: root.get("stop_reason").and_then(Value::as_str).map(stop_reason_of),
        usage: root.get("usage").map(decode_usage).unwrap_or_default(),
    })
}

pub(super) fn encode(resp: &ir::Response, ctx: &ResponseContext, notes: &mut Notes) -> Value {
    let content: Vec<Value> = resp
        .parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| encode_answer_part(p, i, ctx, notes))
        .collect();
    json!({
        "id": message_id(&resp.id, ctx),
        "type": "message",
        "role": "assistant",
        "model": answer_model(&resp.model, ctx),
        "content": content,
        "stop_reason": resp.stop.as_ref().map(|s| stop_reason_str(s, notes)),
        "stop_sequence": null,
        "usage": encode_usage(&resp.usage, notes),
    })
}

/// An answer's content block (text, tool_use, thinking).
fn encode_answer_part(p: &Part, index: usize, ctx: &ResponseContext, notes: &mut Notes) -> Option<Value> {
    match p {
        Part::Text(t) => Some(json!({"type": "text", "text": t.text})),
        Part::ToolCall(c) => Some(json!({
            "type": "tool_use",
            "id": call_id(&c.id, index, ctx),
            "name": c.name,
            "input": arguments_to_input(&c.arguments, notes),
        })),
        Part::Thinking(t) => encode_thinking(t, notes),
        Part::Image(_) => {
            notes.dropped("an image in an answer");
            None
        }
        Part::ToolResult(_) => {
            notes.dropped("a tool result in an answer");
            None
        }
    }
}

/// The source's id, or `msg_<seed>` when it had none.
pub(super) fn message_id(id: &str, ctx: &ResponseContext) -> String {
    if id.is_empty() {
        format!("msg_{}", ctx.id_seed)
    } else {
        id.to_string()
    }
}

/// The client's own model name when known.
pub(super) fn answer_model(model: &str, ctx: &ResponseContext) -> String {
    if ctx.client_model.is_empty() {
        model.to_string()
    } else {
        ctx.client_model.clone()
    }
}

/// The call's id, or `toolu_<seed>_<index>` when the source had none.
pub(super) fn call_id(id: &str, index: usize, ctx: &ResponseContext) -> String {
    if id.is_empty() {
        format!("toolu_{}_{index}", ctx.id_seed)
    } else {
        id.to_string()
    }
}
