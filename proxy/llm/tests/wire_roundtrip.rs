//! The typed wire models keep what they do not name: every captured client
//! request (the golden inputs, modelled on real Claude Code, Codex and
//! opencode traffic) parses and serializes back to the same JSON value.

use std::path::Path;

use promptwall_llm::wire::{self, Field};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

fn roundtrip<T: DeserializeOwned + Serialize>(what: &str, v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, v, "{what} changed in a round trip");
    typed
}

fn golden(case: &str, file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The golden requests of a shape prefix (`anthropic`), minus the
/// malformed ones.
fn golden_requests(prefix: &str) -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .filter_map(|n| {
            let body = std::fs::read(root.join(&n).join("request.json")).ok()?;
            Some((n, serde_json::from_slice(&body).ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no golden {prefix} requests");
    out
}

#[test]
fn anthropic_messages_requests_and_answers_survive_a_typed_round_trip() {
    for (name, v) in golden_requests("anthropic") {
        roundtrip::<wire::anthropic_messages::Request>(&name, &v);
    }
    let answer = golden("anthropic__json_response", "response.json");
    let r: wire::anthropic_messages::Response = roundtrip("json_response answer", &answer);
    assert!(r.usage.value().is_some());
    // opencode's tool round (client-requests/opencode.md).
    let tool_round = json!({"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
    "system": [{"type": "text", "text": "You are opencode", "cache_control": {"type": "ephemeral"}}],
    "tools": [{"name": "bash", "description": "run", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "\"say hi\"", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "echo hi", "description": "d"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "hello-from-tool\n"}]}
    ]});
    let t: wire::anthropic_messages::Request = roundtrip("opencode tool round", &tool_round);
    assert_eq!(t.messages.len(), 3);
}

#[test]
fn openai_chat_requests_keep_null_content_and_unknown_fields_in_a_typed_round_trip() {
    for (name, v) in golden_requests("chat") {
        roundtrip::<wire::openai_chat::Request>(&name, &v);
    }
    // opencode's openai-compatible tool round: an assistant turn with
    // `content: null` stays null, not absent.
    let tool_round = json!({"model": "gpt-4o", "max_tokens": 32000, "stream": true,
    "stream_options": {"include_usage": true}, "tool_choice": "auto",
    "tools": [{"type": "function", "function": {"name": "bash", "description": "run", "parameters": {"type": "object"}}}],
    "messages": [
        {"role": "system", "content": "You are opencode"},
        {"role": "user", "content": [{"type": "text", "text": "\"say hi\""}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"echo hi\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "hello-from-tool\n"}
    ]});
    let t: wire::openai_chat::Request = roundtrip("opencode tool round", &tool_round);
    assert_eq!(t.messages[2].content, Field::Null);
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o", "created": 1,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
            "message": {"role": "assistant", "content": "hi", "refusal": null}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}});
    roundtrip::<wire::openai_chat::Response>("chat answer", &answer);
}

#[test]
fn openai_responses_requests_keep_a_null_previous_response_id_in_a_typed_round_trip() {
    for (name, v) in golden_requests("responses") {
        roundtrip::<wire::openai_responses::Request>(&name, &v);
    }
    // opencode's Responses tool round, with Codex's explicit null.
    let tool_round = json!({"model": "gpt-4o", "store": false, "prompt_cache_key": "ses_1", "stream": true,
    "previous_response_id": null, "tool_choice": "auto",
    "tools": [{"type": "function", "name": "bash", "parameters": {"type": "object"}}],
    "input": [
        {"role": "system", "content": "You are opencode"},
        {"role": "user", "content": [{"type": "input_text", "text": "\"say hi\""}]},
        {"type": "function_call", "call_id": "c1", "name": "bash", "arguments": "{\"command\":\"echo hi\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": "hello-from-tool\n"},
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAA"}
    ]});
    let t: wire::openai_responses::Request = roundtrip("opencode tool round", &tool_round);
    assert_eq!(t.previous_response_id, Field::Null);
    let answer = json!({"id": "resp_1", "object": "response", "model": "gpt-5", "status": "completed",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
        "usage": {"input_tokens": 9, "output_tokens": 8, "input_tokens_details": {"cached_tokens": 6}}});
    roundtrip::<wire::openai_responses::Response>("responses answer", &answer);
}
