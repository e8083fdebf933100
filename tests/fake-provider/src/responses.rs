//! OpenAI Responses: `POST /v1/responses` (full SSE lifecycle with
//! `sequence_number`, or JSON) and the events the WebSocket transport sends.

use serde_json::{json, Value};

use crate::openai_chat::content_text;
use crate::record::ReplyUsage;
use crate::reply::{error_reply, injected_message, next_id, unix_now, Event, Flavor, Reply};
use crate::scenario::{self, echo, split_n, tool_said, Scenario};
use crate::Incoming;

#[derive(Debug, Default)]
pub struct Turn {
    pub user_text: String,
    /// Output of a tool call that came after the last user message.
    pub tool_output: Option<String>,
}

pub fn turn(body: &Value) -> Turn {
    let mut t = Turn::default();
    match &body["input"] {
        Value::String(s) => t.user_text = s.clone(),
        Value::Array(items) => {
            for item in items {
                let kind = item["type"].as_str().unwrap_or("message");
                match kind {
                    "message" if item["role"] == "user" => {
                        t.user_text = content_text(&item["content"]);
                        t.tool_output = None;
                    }
                    "function_call_output" | "custom_tool_call_output" => {
                        t.tool_output = Some(match &item["output"] {
                            Value::String(s) => s.clone(),
                            other => content_text(other),
                        });
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    t
}

enum Output {
    Text(Vec<String>),
    Custom { name: String, input: String },
    Function { name: String, arguments: String },
}

/// Picks the tool call shape: a custom tool (Codex's `exec`) unless the
/// request offers only function tools.
fn tool_output(body: &Value, sc: &Scenario, user_text: &str) -> Output {
    let text = if sc.echo_args { user_text } else { "hello-from-tool" };
    let tools: Vec<&Value> = body["tools"].as_array().into_iter().flatten().collect();
    let custom = tools
        .iter()
        .find(|t| t["type"] == "custom")
        .and_then(|t| t["name"].as_str());
    let function = tools
        .iter()
        .find(|t| t["type"] == "function")
        .and_then(|t| t["name"].as_str());
    match (custom, function) {
        (None, Some(name)) => Output::Function {
            name: name.to_string(),
            arguments: json!({"text": text, "command": format!("echo {}", scenario::shell_quote(text))}).to_string(),
        },
        (custom, _) => Output::Custom {
            name: custom.unwrap_or("exec").to_string(),
            input: format!("text({})", Value::String(text.to_string())),
        },
    }
}

/// The whole answer to one `response.create` / `POST /v1/responses`.
pub struct Answer {
    pub events: Vec<Event>,
    pub response: Value,
    pub usage: ReplyUsage,
    pub scenario: Scenario,
}

/// Builds the answer, or the error reply to send instead.
pub fn answer(body: &Value, headers: &http::HeaderMap, body_len: usize) -> Result<Answer, Reply> {
    let t = turn(body);
    let sc = Scenario::from(headers, &t.user_text);
    if let Some(status) = sc.status {
        return Err(error_reply(Flavor::OpenAi, status, &injected_message(status)));
    }
    let prewarm = body["generate"] == false;
    let output = if prewarm {
        None
    } else if let Some(out) = &t.tool_output {
        Some(Output::Text(sc.text_chunks(&tool_said(out))))
    } else if sc.wants_tool() {
        Some(tool_output(body, &sc, &t.user_text))
    } else {
        Some(Output::Text(sc.text_chunks(&echo(&t.user_text))))
    };
    let usage = ReplyUsage {
        input_tokens: if prewarm { 0 } else { scenario::input_tokens(body_len) },
        output_tokens: match &output {
            None => 0,
            Some(Output::Text(c)) => c.len() as u64,
            Some(_) => 3,
        },
        ..Default::default()
    };
    let model = body["model"].as_str().unwrap_or("gpt-fake");
    let mut response = json!({
        "id": next_id("resp"), "object": "response", "created_at": unix_now(), "status": "in_progress",
        "model": model, "output": [], "usage": null, "error": null, "incomplete_details": null,
        "instructions": body.get("instructions").cloned().unwrap_or(Value::Null),
        "previous_response_id": body.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "store": body.get("store").cloned().unwrap_or(json!(true)),
        "parallel_tool_calls": true, "text": {"format": {"type": "text"}}, "metadata": {},
    });

    let mut seq = 0u64;
    let mut ev = Vec::new();
    let mut push = |ev: &mut Vec<Event>, kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        ev.push(Event::named(kind, data));
    };
    push(&mut ev, "response.created", json!({"response": response}));
    push(&mut ev, "response.in_progress", json!({"response": response}));

    let mut items = Vec::new();
    match &output {
        None => {}
        Some(Output::Text(chunks)) => {
            let item_id = next_id("msg");
            push(
                &mut ev,
                "response.output_item.added",
                json!({"output_index": 0, "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
            );
            push(
                &mut ev,
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            );
            for (i, chunk) in chunks.iter().enumerate() {
                if sc.midstream_error && i == 2 {
                    push(
                        &mut ev,
                        "error",
                        json!({"code": "server_error", "message": "The server had an error while processing your request (injected mid-stream).", "param": null}),
                    );
                    // The API ends a failed response with `response.failed`; over
                    // the WebSocket it is the only end Codex waits for.
                    response["status"] = json!("failed");
                    response["error"] = json!({"code": "server_error", "message": "The server had an error while processing your request (injected mid-stream)."});
                    push(&mut ev, "response.failed", json!({"response": response}));
                    return Ok(Answer {
                        events: ev,
                        response,
                        usage,
                        scenario: sc,
                    });
                }
                push(
                    &mut ev,
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": chunk, "logprobs": []}),
                );
            }
            let text = chunks.concat();
            push(
                &mut ev,
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            );
            let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
            push(
                &mut ev,
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part}),
            );
            let item = json!({"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]});
            push(
                &mut ev,
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
            items.push(item);
        }
        Some(Output::Custom { name, input }) => {
            let item_id = next_id("ctc");
            let call_id = next_id("call");
            push(
                &mut ev,
                "response.output_item.added",
                json!({"output_index": 0, "item": {"id": item_id, "type": "custom_tool_call", "status": "in_progress", "call_id": call_id, "name": name, "input": ""}}),
            );
            for part in split_n(input, 3) {
                push(
                    &mut ev,
                    "response.custom_tool_call_input.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": part}),
                );
            }
            push(
                &mut ev,
                "response.custom_tool_call_input.done",
                json!({"item_id": item_id, "output_index": 0, "input": input}),
            );
            let item = json!({"id": item_id, "type": "custom_tool_call", "status": "completed", "call_id": call_id, "name": name, "input": input});
            push(
                &mut ev,
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
            items.push(item);
        }
        Some(Output::Function { name, arguments }) => {
            let item_id = next_id("fc");
            let call_id = next_id("call");
            push(
                &mut ev,
                "response.output_item.added",
                json!({"output_index": 0, "item": {"id": item_id, "type": "function_call", "status": "in_progress", "call_id": call_id, "name": name, "arguments": ""}}),
            );
            for part in split_n(arguments, 3) {
                push(
                    &mut ev,
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": part}),
                );
            }
            push(
                &mut ev,
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": 0, "name": name, "arguments": arguments}),
            );
            let item = json!({"id": item_id, "type": "function_call", "status": "completed", "call_id": call_id, "name": name, "arguments": arguments});
            push(
                &mut ev,
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
            items.push(item);
        }
    }
    response["status"] = json!("completed");
    response["output"] = json!(items);
    response["usage"] = json!({
        "input_tokens": usage.input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    });
    push(&mut ev, "response.completed", json!({"response": response}));
    Ok(Answer {
        events: ev,
        response,
        usage,
        scenario: sc,
    })
}

pub fn create(inc: &Incoming) -> Reply {
    let Some(body) = inc.json else {
        return error_reply(Flavor::OpenAi, 400, "We could not parse the JSON body of your request.");
    };
    let a = match answer(body, inc.headers, inc.body.len()) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let reply = if body["stream"].as_bool() == Some(true) {
        Reply::sse(a.events, inc.pacing(&a.scenario), a.scenario.pad_bytes)
    } else {
        Reply::json_padded(200, a.response, a.scenario.pad_bytes)
    };
    reply.with_usage(a.usage).header("x-request-id", next_id("req"))
}
