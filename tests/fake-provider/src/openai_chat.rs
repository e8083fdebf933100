//! OpenAI Chat Completions (`POST /v1/chat/completions`, JSON and SSE with
//! `stream_options.include_usage`, tool_calls deltas).

use serde_json::{json, Value};

use crate::record::ReplyUsage;
use crate::reply::{error_reply, injected_message, next_id, unix_now, Event, Flavor, Reply};
use crate::scenario::{self, echo, split_n, tool_said, Scenario};
use crate::Incoming;

/// Text of a `content` that is a string or an array of `{type:"text"}` parts.
pub fn content_text(content: &Value) -> String {
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

/// The prompt of a user message: its text, or of several text parts the
/// last that is not a `<system-reminder>` (Claude Code's, as the Anthropic
/// fake reads them, also when a request was translated to Chat).
fn prompt_text(content: &Value) -> String {
    let Value::Array(parts) = content else {
        return content_text(content);
    };
    let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
    texts
        .iter()
        .rev()
        .find(|t| !t.trim_start().starts_with("<system-reminder>"))
        .or(texts.last())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

struct Turn {
    user_text: String,
    /// Set when the conversation ends with tool results.
    tool_result: Option<String>,
}

fn turn(body: &Value) -> Turn {
    let messages = body["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| prompt_text(&m["content"]))
        .unwrap_or_default();
    let tool_result = messages
        .last()
        .filter(|m| m["role"] == "tool")
        .map(|m| content_text(&m["content"]));
    Turn { user_text, tool_result }
}

pub fn completions(inc: &Incoming) -> Reply {
    let Some(body) = inc.json else {
        return error_reply(Flavor::OpenAi, 400, "We could not parse the JSON body of your request.");
    };
    let t = turn(body);
    let sc = Scenario::from(inc.headers, &t.user_text);
    if let Some(status) = sc.status {
        return error_reply(Flavor::OpenAi, status, &injected_message(status));
    }
    let model = body["model"].as_str().unwrap_or("gpt-fake").to_string();
    let (chunks, tool) = if let Some(result) = &t.tool_result {
        (sc.text_chunks(&tool_said(result)), None)
    } else if sc.wants_tool() {
        let text = if sc.echo_args {
            t.user_text.as_str()
        } else {
            "hello-from-tool"
        };
        let tools: Vec<(&str, &Value)> = body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["function"]["name"].as_str()?, &t["function"]["parameters"])))
            .collect();
        let (name, args) = match scenario::pick_tool(&tools) {
            Some((name, schema)) => (name.to_string(), scenario::tool_arguments(name, schema, text)),
            None => (
                "echo_text".to_string(),
                json!({"text": text, "command": format!("echo {}", scenario::shell_quote(text))}),
            ),
        };
        (vec![], Some((next_id("call"), name, args.to_string())))
    } else {
        (sc.text_chunks(&echo(&t.user_text)), None)
    };
    let usage = ReplyUsage {
        input_tokens: scenario::input_tokens(inc.body.len()),
        output_tokens: chunks.len() as u64 + if tool.is_some() { 3 } else { 0 },
        ..Default::default()
    };
    let usage_json = json!({
        "prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0},
    });
    let finish = if tool.is_some() { "tool_calls" } else { "stop" };
    let id = next_id("chatcmpl");
    let created = unix_now();

    if body["stream"].as_bool() != Some(true) {
        let mut message = json!({"role": "assistant", "content": if tool.is_some() { Value::Null } else { json!(chunks.concat()) }, "refusal": null});
        if let Some((call_id, name, args)) = &tool {
            message["tool_calls"] =
                json!([{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]);
        }
        let value = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage_json, "system_fingerprint": "fp_fake",
        });
        return Reply::json_padded(200, value, sc.pad_bytes)
            .with_usage(usage)
            .header("x-request-id", next_id("req"));
    }

    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        Event::data(c.to_string())
    };
    let mut ev = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for (i, text) in chunks.iter().enumerate() {
        if sc.midstream_error && i == 2 {
            ev.push(Event::data(
                json!({"error": {"message": "The server had an error while processing your request (injected mid-stream).", "type": "server_error", "param": null, "code": null}})
                    .to_string(),
            ));
            return Reply::sse(ev, inc.pacing(&sc), sc.pad_bytes).with_usage(usage);
        }
        ev.push(chunk(json!({"content": text}), Value::Null));
    }
    if let Some((call_id, name, args)) = &tool {
        ev.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for part in split_n(args, 3) {
            ev.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
    }
    ev.push(chunk(json!({}), json!(finish)));
    if include_usage {
        ev.push(Event::data(
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_fake", "choices": [], "usage": usage_json})
                .to_string(),
        ));
    }
    ev.push(Event::data("[DONE]"));
    Reply::sse(ev, inc.pacing(&sc), sc.pad_bytes)
        .with_usage(usage)
        .header("x-request-id", next_id("req"))
}
