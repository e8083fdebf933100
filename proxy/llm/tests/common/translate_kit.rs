//! Shared by the cross-shape translation tests: reading SSE text, putting a
//! stream of IR events back together into a whole answer, and reducing
//! answers to what a client sees (so two routes to one answer compare).
#![allow(dead_code)]

use promptwall_llm::translate::ir::{self, Delta, Part, PartStart, StreamEvent};
use serde_json::Value;

/// (event name, data) of each SSE event; comments skipped, data lines joined.
pub fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut name, mut data) = (None, Vec::new());
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if !data.is_empty() {
            out.push((name, data.join("\n")));
        }
    }
    out
}

/// A stream read back: the answer its events add up to, and the error it
/// ended with, if any.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Assembled {
    pub response: ir::Response,
    pub start_usage: ir::TokenUsage,
    pub error: Option<ir::ApiError>,
    pub finished: bool,
}

/// The events of a stream accumulated into one answer, checking on the way
/// that the sequence is well-formed (the contract of `ir::StreamEvent`).
/// The error names what is wrong.
pub fn assemble(events: &[StreamEvent]) -> Result<Assembled, String> {
    let mut out = Assembled::default();
    let mut open: Option<usize> = None;
    let mut started = false;
    for (i, ev) in events.iter().enumerate() {
        if out.finished || out.error.is_some() {
            return Err(format!("event {i} after the end: {ev:?}"));
        }
        if !started && !matches!(ev, StreamEvent::Start { .. } | StreamEvent::Error(_)) {
            return Err(format!("event {i} before Start: {ev:?}"));
        }
        match ev {
            StreamEvent::Start { id, model, usage } => {
                if started {
                    return Err(format!("a second Start at {i}"));
                }
                started = true;
                out.response.id = id.clone();
                out.response.model = model.clone();
                out.start_usage = *usage;
            }
            StreamEvent::PartStart { index, part } => {
                if open.is_some() {
                    return Err(format!("PartStart {index} while part {open:?} is open"));
                }
                if *index != out.response.parts.len() {
                    return Err(format!("PartStart {index}, expected {}", out.response.parts.len()));
                }
                open = Some(*index);
                out.response.parts.push(match part {
                    PartStart::Text => Part::Text(ir::Text::default()),
                    PartStart::Thinking { .. } => Part::Thinking(ir::Thinking::default()),
                    PartStart::ToolCall { id, name } => Part::ToolCall(ir::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    }),
                });
            }
            StreamEvent::Delta { index, delta } => {
                if open != Some(*index) {
                    return Err(format!("a delta of part {index} while {open:?} is open"));
                }
                let Some(part) = out.response.parts.get_mut(*index) else {
                    return Err(format!("a delta of unknown part {index}"));
                };
                match (part, delta) {
                    (Part::Text(t), Delta::Text(d)) => t.text.push_str(d),
                    (Part::Thinking(t), Delta::Thinking(d)) => t.text.push_str(d),
                    (Part::Thinking(t), Delta::Signature(s)) => t.signature.get_or_insert_with(String::new).push_str(s),
                    (Part::Thinking(t), Delta::Encrypted(e)) => t.encrypted.get_or_insert_with(String::new).push_str(e),
                    (Part::ToolCall(c), Delta::ToolArguments(a)) => c.arguments.push_str(a),
                    (p, d) => return Err(format!("delta {d:?} in part {p:?}")),
                }
            }
            StreamEvent::PartStop { index } => {
                if open != Some(*index) {
                    return Err(format!("PartStop {index} while {open:?} is open"));
                }
                open = None;
            }
            StreamEvent::Finish { stop, usage } => {
                if open.is_some() {
                    return Err(format!("Finish while part {open:?} is open"));
                }
                out.response.stop = stop.clone();
                out.response.usage = *usage;
                out.finished = true;
            }
            StreamEvent::Error(e) => out.error = Some(e.clone()),
        }
    }
    Ok(out)
}

/// What a client sees of one part, for comparing answers that took
/// different routes. Adjacent texts (and adjacent thinking) are one, empty
/// ones nothing: shapes split and join them differently without changing
/// what is said. Arguments compare as JSON values (key order and spacing
/// are the encoder's).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Text(String),
    Thinking(String),
    Call { id: String, name: String, arguments: Value },
}

pub fn seen_parts(parts: &[Part]) -> Vec<Seen> {
    let mut out: Vec<Seen> = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) if t.text.is_empty() => {}
            Part::Text(t) => match out.last_mut() {
                Some(Seen::Text(prev)) => prev.push_str(&t.text),
                _ => out.push(Seen::Text(t.text.clone())),
            },
            Part::Thinking(t) if t.text.is_empty() => {}
            Part::Thinking(t) => match out.last_mut() {
                Some(Seen::Thinking(prev)) => prev.push_str(&t.text),
                _ => out.push(Seen::Thinking(t.text.clone())),
            },
            Part::ToolCall(c) => out.push(Seen::Call {
                id: c.id.clone(),
                name: c.name.clone(),
                arguments: args_value(&c.arguments),
            }),
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    out
}

/// Arguments text as a value (`{}` for none; text that is not JSON as a string).
pub fn args_value(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

/// Usage with unknown counts as 0 (encoders write 0 where they must
/// write something).
pub fn usage_counts(u: &ir::TokenUsage) -> [u64; 5] {
    [
        u.input_tokens.unwrap_or(0),
        u.output_tokens.unwrap_or(0),
        u.cache_read_tokens.unwrap_or(0),
        u.cache_write_tokens.unwrap_or(0),
        u.reasoning_tokens.unwrap_or(0),
    ]
}
