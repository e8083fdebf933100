//! Anthropic Messages: `POST /v1/messages` (JSON and SSE, thinking blocks
//! with signatures, tool rounds) and `POST /v1/messages/count_tokens`.

use serde_json::{json, Value};

use crate::record::ReplyUsage;
use crate::reply::{error_reply, injected_message, next_id, Event, Flavor, Reply};
use crate::scenario::{self, echo, split_n, split_words, tool_said, Scenario};
use crate::Incoming;

/// Fixed on purpose: thinking must not echo user text, so a signed block can
/// round-trip byte-exact whatever the redaction does to the prompt.
pub const THINKING_TEXT: &str = "Let me think about this request.";

/// What the last user turn holds.
#[derive(Debug, Default)]
pub struct LastUser {
    pub text: String,
    pub tool_result: Option<String>,
}

pub fn last_user(body: &Value) -> LastUser {
    let Some(msg) = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
    else {
        return LastUser::default();
    };
    match &msg["content"] {
        Value::String(s) => LastUser {
            text: s.clone(),
            tool_result: None,
        },
        Value::Array(blocks) => {
            let tool_result = blocks
                .iter()
                .find(|b| b["type"] == "tool_result")
                .map(|b| content_text(&b["content"]));
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect();
            // Claude Code puts <system-reminder> blocks next to the prompt.
            let text = texts
                .iter()
                .rev()
                .find(|t| !t.trim_start().starts_with("<system-reminder>"))
                .or(texts.last())
                .map(|t| t.to_string())
                .unwrap_or_default();
            LastUser { text, tool_result }
        }
        _ => LastUser::default(),
    }
}

/// Text of a tool_result `content`: a string or an array of text blocks.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The real API rejects thinking blocks that come back altered; so does the fake.
fn check_thinking_signatures(body: &Value) -> Result<(), String> {
    for (i, msg) in body["messages"].as_array().into_iter().flatten().enumerate() {
        if msg["role"] != "assistant" {
            continue;
        }
        for (j, block) in msg["content"].as_array().into_iter().flatten().enumerate() {
            if block["type"] == "thinking" {
                let thinking = block["thinking"].as_str().unwrap_or_default();
                if block["signature"].as_str() != Some(scenario::thinking_signature(thinking).as_str()) {
                    return Err(format!(
                        "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                    ));
                }
            }
        }
    }
    Ok(())
}

enum Block {
    Thinking(String),
    Text(Vec<String>),
    ToolUse { id: String, name: String, input: Value },
}

fn tool_call(body: &Value, sc: &Scenario, user_text: &str) -> (String, Value) {
    let tools: Vec<(&str, &Value)> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["name"].as_str()?, &t["input_schema"])))
        .collect();
    let text = if sc.echo_args { user_text } else { "hello-from-tool" };
    match scenario::pick_tool(&tools) {
        Some((name, schema)) => {
            let mut input = scenario::tool_arguments(name, schema, text);
            // Anthropic tools other than Bash and freeform ones get the text alone.
            if input.get("text").is_some() {
                input = json!({"text": text});
            }
            (name.to_string(), input)
        }
        None => ("echo_text".to_string(), json!({"text": text})),
    }
}

pub fn messages(inc: &Incoming) -> Reply {
    let Some(body) = inc.json else {
        return error_reply(
            Flavor::Anthropic,
            400,
            "The request body is not valid JSON; send a Messages API object.",
        );
    };
    if let Err(msg) = check_thinking_signatures(body) {
        return error_reply(Flavor::Anthropic, 400, &msg);
    }
    let user = last_user(body);
    let sc = Scenario::from(inc.headers, &user.text);
    if let Some(status) = sc.status {
        return error_reply(Flavor::Anthropic, status, &injected_message(status));
    }
    let model = body["model"].as_str().unwrap_or("claude-fake").to_string();
    let thinking = matches!(body["thinking"]["type"].as_str(), Some("enabled" | "adaptive"));

    let mut blocks = Vec::new();
    if thinking {
        blocks.push(Block::Thinking(THINKING_TEXT.into()));
    }
    let stop_reason = if let Some(result) = &user.tool_result {
        blocks.push(Block::Text(sc.text_chunks(&tool_said(result))));
        "end_turn"
    } else if sc.wants_tool() {
        blocks.push(Block::Text(split_words("I'll run a tool.")));
        let (name, input) = tool_call(body, &sc, &user.text);
        blocks.push(Block::ToolUse {
            id: next_id("toolu"),
            name,
            input,
        });
        "tool_use"
    } else {
        blocks.push(Block::Text(sc.text_chunks(&echo(&user.text))));
        "end_turn"
    };

    let cached = memchr_contains(inc.body, b"cache_control");
    let usage = ReplyUsage {
        input_tokens: scenario::input_tokens(inc.body.len()),
        output_tokens: blocks
            .iter()
            .map(|b| match b {
                Block::Thinking(_) => 2,
                Block::Text(c) => c.len() as u64,
                Block::ToolUse { .. } => 3,
            })
            .sum(),
        cache_read_tokens: if cached { 7 } else { 0 },
        cache_write_tokens: if cached { 5 } else { 0 },
    };
    let id = next_id("msg");
    if body["stream"].as_bool() == Some(true) {
        let events = stream_events(&id, &model, &blocks, stop_reason, &usage, sc.midstream_error);
        Reply::sse(events, inc.pacing(&sc), sc.pad_bytes)
            .with_usage(usage)
            .header("request-id", next_id("req"))
    } else {
        let content: Vec<Value> = blocks
            .iter()
            .map(|b| match b {
                Block::Thinking(t) => {
                    json!({"type": "thinking", "thinking": t, "signature": scenario::thinking_signature(t)})
                }
                Block::Text(c) => json!({"type": "text", "text": c.concat()}),
                Block::ToolUse { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        let value = json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": null, "usage": usage_json(&usage, usage.output_tokens),
        });
        Reply::json_padded(200, value, sc.pad_bytes)
            .with_usage(usage)
            .header("request-id", next_id("req"))
    }
}

fn usage_json(u: &ReplyUsage, output_tokens: u64) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": output_tokens,
    })
}

fn stream_events(
    id: &str,
    model: &str,
    blocks: &[Block],
    stop_reason: &str,
    usage: &ReplyUsage,
    midstream_error: bool,
) -> Vec<Event> {
    let mut ev = vec![Event::named(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage_json(usage, 1),
        }}),
    )];
    let mut deltas = 0usize;
    for (index, block) in blocks.iter().enumerate() {
        let delta = |d: Value| {
            Event::named(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": d}),
            )
        };
        let start = match block {
            Block::Thinking(_) => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::Text(_) => json!({"type": "text", "text": ""}),
            Block::ToolUse { id, name, .. } => json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
        };
        ev.push(Event::named(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        if index == 0 {
            ev.push(Event::named("ping", json!({"type": "ping"})));
        }
        match block {
            Block::Thinking(t) => {
                for chunk in split_words(t) {
                    ev.push(delta(json!({"type": "thinking_delta", "thinking": chunk})));
                }
                ev.push(delta(
                    json!({"type": "signature_delta", "signature": scenario::thinking_signature(t)}),
                ));
            }
            Block::Text(chunks) => {
                for chunk in chunks {
                    if midstream_error && deltas == 2 {
                        ev.push(Event::named(
                            "error",
                            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (injected mid-stream by the fake provider)."}}),
                        ));
                        return ev;
                    }
                    ev.push(delta(json!({"type": "text_delta", "text": chunk})));
                    deltas += 1;
                }
            }
            Block::ToolUse { input, .. } => {
                ev.push(delta(json!({"type": "input_json_delta", "partial_json": ""})));
                for part in split_n(&input.to_string(), 3) {
                    ev.push(delta(json!({"type": "input_json_delta", "partial_json": part})));
                }
            }
        }
        ev.push(Event::named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    ev.push(Event::named(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": usage.output_tokens}}),
    ));
    ev.push(Event::named("message_stop", json!({"type": "message_stop"})));
    ev
}

pub fn count_tokens(inc: &Incoming) -> Reply {
    if inc.json.is_none() {
        return error_reply(
            Flavor::Anthropic,
            400,
            "The request body is not valid JSON; send a count_tokens object.",
        );
    }
    Reply::json(200, &json!({"input_tokens": scenario::input_tokens(inc.body.len())}))
}

fn memchr_contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
