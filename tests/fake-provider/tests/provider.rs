//! The fake provider over real TLS (h1 and h2), each API shape, SSE framing,
//! tool rounds, fault injection, the Responses WebSocket and the binary.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Full;
use promptwall_fake_provider::{FakeOptions, FakeProvider};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const ANTHROPIC: &str = "api.anthropic.com";
const OPENAI: &str = "api.openai.com";

async fn fake() -> promptwall_fake_provider::FakeHandle {
    FakeProvider::start(FakeOptions::default()).await.unwrap()
}

fn names(events: &[(Option<String>, String)]) -> Vec<String> {
    events.iter().map(|(n, _)| n.clone().unwrap_or_default()).collect()
}

fn msg_body(text: &str, stream: bool) -> Value {
    json!({"model": "claude-test-1", "max_tokens": 100, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn anthropic_stream_over_h2_has_the_full_event_order_and_echoes() {
    let fake = fake().await;
    let req = post(ANTHROPIC, "/v1/messages?beta=true")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219,context-1m-2025-08-07")
        .body(Full::new(Bytes::from(msg_body("hello there", true).to_string())))
        .unwrap();
    let a = send(&fake, ANTHROPIC, true, req).await;
    assert_eq!(a.status, 200);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let ev = a.sse();
    let n = names(&ev);
    assert_eq!(&n[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        &n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(n[3..n.len() - 3].iter().all(|e| e == "content_block_delta"));
    assert_eq!(anthropic_text(&ev), "You said: hello there");
    let start: Value = serde_json::from_str(&ev[0].1).unwrap();
    assert_eq!(start["message"]["model"], "claude-test-1");
    for k in [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    ] {
        assert!(start["message"]["usage"][k].is_u64(), "message_start usage lacks {k}");
    }
    let delta: Value = serde_json::from_str(&ev[ev.len() - 2].1).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");

    let rec = fake.recorded();
    assert_eq!(rec.len(), 1);
    let r = &rec[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("POST", "/v1/messages", Some("beta=true"))
    );
    assert_eq!(r.conn.sni.as_deref(), Some(ANTHROPIC));
    assert_eq!(r.conn.alpn.as_deref(), Some("h2"));
    assert_eq!(r.conn.alpn_offered, ["h2"]);
    assert_eq!(r.version, "HTTP/2.0");
    assert_eq!(
        r.header("anthropic-beta"),
        Some("claude-code-20250219,context-1m-2025-08-07")
    );
    assert_eq!(r.json.as_ref().unwrap()["messages"][0]["content"], "hello there");
    let usage = r.reply_usage.unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], usage.input_tokens);
    assert_eq!(delta["usage"]["output_tokens"], usage.output_tokens);
}

#[tokio::test]
async fn anthropic_json_over_h1_with_content_blocks_and_cache_usage() {
    let fake = fake().await;
    let body = json!({"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>ignore me</system-reminder>"},
        {"type": "text", "text": "real prompt", "cache_control": {"type": "ephemeral"}}]}]});
    let a = post_json(&fake, ANTHROPIC, "/v1/messages", body).await;
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "You said: real prompt");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 7);
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 5);
    let r = &fake.recorded()[0];
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.conn.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(r.reply_usage.unwrap().cache_read_tokens, 7);
}

#[tokio::test]
async fn anthropic_thinking_blocks_are_signed_and_checked_on_the_way_back() {
    let fake = fake().await;
    let mut body = msg_body("think please", true);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let a = post_json(&fake, ANTHROPIC, "/v1/messages", body).await;
    let ev = a.sse();
    let deltas: Vec<Value> = ev
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let thinking: String = deltas
        .iter()
        .filter(|d| d["delta"]["type"] == "thinking_delta")
        .map(|d| d["delta"]["thinking"].as_str().unwrap())
        .collect();
    let sig = deltas
        .iter()
        .find(|d| d["delta"]["type"] == "signature_delta")
        .expect("signature_delta")["delta"]["signature"]
        .clone();
    assert_eq!(
        deltas.iter().find(|d| d["delta"]["type"] == "text_delta").unwrap()["index"],
        1
    );
    assert_eq!(anthropic_text(&ev), "You said: think please");

    let follow = |thinking: &str| {
        json!({"model": "claude-x", "max_tokens": 10, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [
            {"role": "user", "content": "think please"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": thinking, "signature": sig}, {"type": "text", "text": "x"}]},
            {"role": "user", "content": "again"}]})
    };
    let ok = post_json(&fake, ANTHROPIC, "/v1/messages", follow(&thinking)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["content"][0]["signature"], sig);
    let bad = post_json(&fake, ANTHROPIC, "/v1/messages", follow(&format!("{thinking} altered"))).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn anthropic_tool_round_streams_input_json_and_answers_the_result() {
    let fake = fake().await;
    let mut body = msg_body("TOOLTEST run echo", true);
    body["tools"] = json!([{"name": "Read", "input_schema": {}}, {"name": "Bash", "input_schema": {}}]);
    let ev = post_json(&fake, ANTHROPIC, "/v1/messages", body).await.sse();
    let parsed: Vec<Value> = ev.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let tool_start = parsed
        .iter()
        .find(|v| v["content_block"]["type"] == "tool_use")
        .expect("tool_use block");
    assert_eq!(tool_start["content_block"]["name"], "Bash");
    assert_eq!(tool_start["content_block"]["input"], json!({}));
    let json_parts: Vec<&str> = parsed
        .iter()
        .filter(|v| v["delta"]["type"] == "input_json_delta")
        .map(|v| v["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert!(json_parts.len() >= 3);
    let input: Value = serde_json::from_str(&json_parts.concat()).unwrap();
    assert_eq!(input["command"], "echo 'hello-from-tool'");
    assert!(parsed.iter().any(|v| v["delta"]["stop_reason"] == "tool_use"));

    let id = tool_start["content_block"]["id"].as_str().unwrap();
    let follow = json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [
        {"role": "user", "content": "TOOLTEST run echo"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "Bash", "input": input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": "hello-from-tool"}]}]}]});
    let ev = post_json(&fake, ANTHROPIC, "/v1/messages", follow).await.sse();
    assert_eq!(anthropic_text(&ev), "Tool said: hello-from-tool");
}

#[tokio::test]
async fn echoargs_puts_the_user_text_into_tool_arguments() {
    let fake = fake().await;
    let text = "ECHOARGS mail [[EMAIL_001]] it's";
    let a = post_json(&fake, ANTHROPIC, "/v1/messages", msg_body(text, false))
        .await
        .json();
    assert_eq!(a["stop_reason"], "tool_use");
    assert_eq!(a["content"][1]["input"]["text"], text);

    let chat = json!({"model": "gpt-x", "messages": [{"role": "user", "content": text}], "tools": [{"type": "function", "function": {"name": "shell"}}]});
    let v = post_json(&fake, OPENAI, "/v1/chat/completions", chat).await.json();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "shell");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["text"], text);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn count_tokens_with_beta_query() {
    let fake = fake().await;
    let a = post_json(
        &fake,
        ANTHROPIC,
        "/v1/messages/count_tokens?beta=true",
        msg_body("count me", false),
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.json()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(fake.recorded()[0].query.as_deref(), Some("beta=true"));
}

#[tokio::test]
async fn chat_completions_stream_with_usage_and_done() {
    let fake = fake().await;
    let body = json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi chat"}]});
    let ev = post_json(&fake, OPENAI, "/v1/chat/completions", body).await.sse();
    assert_eq!(ev.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = ev[..ev.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "You said: hi chat");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));

    // Without include_usage: no usage chunk.
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let ev = post_json(&fake, OPENAI, "/v1/chat/completions", body).await.sse();
    assert!(ev.iter().all(|(_, d)| !d.contains("\"usage\"")));
}

#[tokio::test]
async fn chat_completions_json_and_tool_round() {
    let fake = fake().await;
    let v = post_json(
        &fake,
        OPENAI,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}]}),
    )
    .await
    .json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "You said: parts");
    assert_eq!(
        v["usage"]["total_tokens"],
        v["usage"]["prompt_tokens"].as_u64().unwrap() + v["usage"]["completion_tokens"].as_u64().unwrap()
    );

    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "TOOLTEST"}], "tools": [{"type": "function", "function": {"name": "run"}}]});
    let ev = post_json(&fake, OPENAI, "/v1/chat/completions", body).await.sse();
    let chunks: Vec<Value> = ev[..ev.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap()["text"], "hello-from-tool");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    let follow = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "TOOLTEST"}, {"role": "assistant", "tool_calls": []}, {"role": "tool", "tool_call_id": "c", "content": "out-1"}]});
    let v = post_json(&fake, OPENAI, "/v1/chat/completions", follow).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "Tool said: out-1");
}

const RESPONSES_LIFECYCLE: &[&str] = &[
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
];

#[tokio::test]
async fn responses_sse_lifecycle_with_sequence_numbers() {
    let fake = fake().await;
    let body = json!({"model": "gpt-5", "stream": true, "store": false, "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi resp"}]}]});
    let ev = post_json(&fake, OPENAI, "/v1/responses", body).await.sse();
    let mut n = names(&ev);
    n.dedup();
    assert_eq!(n, RESPONSES_LIFECYCLE);
    let parsed: Vec<Value> = ev.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    for (i, (v, (name, _))) in parsed.iter().zip(&ev).enumerate() {
        assert_eq!(v["sequence_number"], i as u64);
        assert_eq!(v["type"].as_str(), name.as_deref());
    }
    let text: String = parsed
        .iter()
        .filter(|v| v["type"] == "response.output_text.delta")
        .map(|v| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "You said: hi resp");
    let done = parsed
        .iter()
        .find(|v| v["type"] == "response.output_text.done")
        .unwrap();
    assert_eq!(done["text"], "You said: hi resp");
    let completed = parsed.last().unwrap();
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(completed["response"]["store"], false);
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        "You said: hi resp"
    );
    assert!(completed["response"]["usage"]["input_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn responses_json_custom_and_function_tool_calls() {
    let fake = fake().await;
    let v = post_json(
        &fake,
        OPENAI,
        "/v1/responses",
        json!({"model": "gpt-5", "input": "plain string"}),
    )
    .await
    .json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: plain string");

    // Codex: tools hidden in an additional_tools item -> custom exec call.
    let codex = json!({"model": "gpt-5", "stream": true, "input": [
        {"type": "additional_tools", "role": "developer", "tools": []},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "TOOLTEST run"}]}]});
    let ev = post_json(&fake, OPENAI, "/v1/responses", codex).await.sse();
    let parsed: Vec<Value> = ev.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let item = &parsed
        .iter()
        .find(|v| v["type"] == "response.output_item.done")
        .unwrap()["item"];
    assert_eq!(item["type"], "custom_tool_call");
    assert_eq!(item["name"], "exec");
    assert_eq!(item["input"], "text(\"hello-from-tool\")");
    let streamed: String = parsed
        .iter()
        .filter(|v| v["type"] == "response.custom_tool_call_input.delta")
        .map(|v| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, item["input"].as_str().unwrap());

    let func = json!({"model": "gpt-5", "input": "ECHOARGS hi", "tools": [{"type": "function", "name": "shell"}]});
    let v = post_json(&fake, OPENAI, "/v1/responses", func).await.json();
    assert_eq!(v["output"][0]["type"], "function_call");
    assert_eq!(
        serde_json::from_str::<Value>(v["output"][0]["arguments"].as_str().unwrap()).unwrap()["text"],
        "ECHOARGS hi"
    );

    let follow = json!({"model": "gpt-5", "previous_response_id": "resp_1", "input": [{"type": "custom_tool_call_output", "call_id": "c", "output": "hello-from-tool"}]});
    let v = post_json(&fake, OPENAI, "/v1/responses", follow).await.json();
    assert_eq!(v["output"][0]["content"][0]["text"], "Tool said: hello-from-tool");
    assert_eq!(v["previous_response_id"], "resp_1");
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let fake = fake().await;
    let v = post_json(
        &fake,
        OPENAI,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
    )
    .await
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    let v = post_json(
        &fake,
        OPENAI,
        "/v1/embeddings",
        json!({"model": "m", "input": "a", "encoding_format": "base64"}),
    )
    .await
    .json();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw.len(), 8 * 4);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn injected_statuses_use_each_providers_error_format() {
    let fake = fake().await;
    let a = post_with(
        &fake,
        ANTHROPIC,
        "/v1/messages",
        msg_body("x", true),
        &[("x-fake-status", "529")],
    )
    .await;
    assert_eq!(a.status, 529);
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "overloaded_error");
    assert_eq!(a.headers["retry-after"], "1");
    assert!(a.headers.contains_key("request-id"));

    let a = post_json(
        &fake,
        ANTHROPIC,
        "/v1/messages",
        msg_body("please FAKESTATUS429", false),
    )
    .await;
    assert_eq!(a.status, 429);
    assert_eq!(a.json()["error"]["type"], "rate_limit_error");

    let chat = json!({"model": "gpt", "messages": [{"role": "user", "content": "FAKESTATUS429"}]});
    let a = post_json(&fake, OPENAI, "/v1/chat/completions", chat).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.json()["error"]["code"], "rate_limit_exceeded");
    let a = post_with(
        &fake,
        OPENAI,
        "/v1/responses",
        json!({"model": "m", "input": "x"}),
        &[("x-fake-status", "500")],
    )
    .await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["error"]["type"], "server_error");
    assert_eq!(
        fake.recorded().iter().map(|r| r.status).collect::<Vec<_>>(),
        [529, 429, 429, 500]
    );
}

#[tokio::test]
async fn midstream_error_cuts_each_stream_after_two_deltas() {
    let fake = fake().await;
    let ev = post_json(
        &fake,
        ANTHROPIC,
        "/v1/messages",
        msg_body("MIDSTREAMERROR please", true),
    )
    .await
    .sse();
    let n = names(&ev);
    assert_eq!(n.last().unwrap(), "error");
    assert_eq!(n.iter().filter(|e| *e == "content_block_delta").count(), 2);
    assert!(!n.contains(&"message_stop".to_string()));
    assert_eq!(
        serde_json::from_str::<Value>(&ev.last().unwrap().1).unwrap()["error"]["type"],
        "overloaded_error"
    );

    let ev = post_json(
        &fake,
        OPENAI,
        "/v1/responses",
        json!({"model": "m", "stream": true, "input": "MIDSTREAMERROR x"}),
    )
    .await
    .sse();
    let n = names(&ev);
    assert_eq!(n.last().unwrap(), "response.failed");
    assert_eq!(n[n.len() - 2], "error");
    assert!(!n.contains(&"response.completed".to_string()));

    let ev = post_json(
        &fake,
        OPENAI,
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "MIDSTREAMERROR x"}]}),
    )
    .await
    .sse();
    assert!(ev.last().unwrap().1.contains("\"error\""));
    assert!(ev.iter().all(|(_, d)| d != "[DONE]"));
}

#[tokio::test]
async fn event_count_big_answer_and_padding() {
    let fake = fake().await;
    let count = |ev: &[(Option<String>, String)]| ev.iter().filter(|(_, d)| d.contains("\"text_delta\"")).count();
    let ev = post_with(
        &fake,
        ANTHROPIC,
        "/v1/messages",
        msg_body("hi", true),
        &[("x-fake-events", "50")],
    )
    .await
    .sse();
    assert_eq!(count(&ev), 50);
    let ev = post_json(&fake, ANTHROPIC, "/v1/messages", msg_body("BIGANSWER now", true))
        .await
        .sse();
    assert_eq!(count(&ev), 200);
    assert!(anthropic_text(&ev).starts_with("You said: BIGANSWER now"));

    let plain = post_json(&fake, ANTHROPIC, "/v1/messages", msg_body("hi", true)).await;
    let padded = post_with(
        &fake,
        ANTHROPIC,
        "/v1/messages",
        msg_body("hi", true),
        &[("x-fake-body-bytes", "100000")],
    )
    .await;
    assert!(padded.body.len() >= plain.body.len() + 100_000);
    assert_eq!(anthropic_text(&padded.sse()), "You said: hi");
    let padded = post_with(
        &fake,
        OPENAI,
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        &[("x-fake-body-bytes", "5000")],
    )
    .await;
    assert!(padded.body.len() > 5000);
    assert_eq!(padded.json()["choices"][0]["message"]["content"], "You said: hi");
}

#[tokio::test]
async fn non_llm_routes_and_unknown_paths() {
    let fake = fake().await;
    let head = send(
        &fake,
        ANTHROPIC,
        false,
        Request::head("https://api.anthropic.com/api/hello")
            .header("host", ANTHROPIC)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    let models = send(
        &fake,
        "chatgpt.com",
        false,
        Request::get("https://chatgpt.com/backend-api/codex/models?client_version=0.169.0")
            .header("host", "chatgpt.com")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(models.json(), json!({"models": []}));
    let unknown = send(
        &fake,
        ANTHROPIC,
        false,
        Request::get("https://api.anthropic.com/api/claude_code/settings")
            .header("host", ANTHROPIC)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");
    let no_ws = send(
        &fake,
        OPENAI,
        false,
        Request::get("https://api.openai.com/v1/responses")
            .header("host", OPENAI)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(no_ws.status, 426);
    let rec = fake.recorded();
    assert_eq!(rec[1].conn.sni.as_deref(), Some("chatgpt.com"));
    assert_eq!(rec.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 404, 426]);
}

#[tokio::test]
async fn responses_websocket_prewarm_then_turns() {
    let fake = FakeProvider::start(FakeOptions {
        ws: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let tls = tls_connect(&fake, OPENAI, &[]).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        "wss://api.openai.com/v1/responses",
    )
    .unwrap();
    req.headers_mut()
        .insert("openai-beta", "responses_websockets=2026-02-06".parse().unwrap());
    req.headers_mut()
        .insert("authorization", "Bearer sk-fake".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("websocket handshake");
    assert_eq!(resp.status(), 101);

    async fn frames_until_done<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Vec<Value>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut out = Vec::new();
        while let Some(msg) = ws.next().await {
            let Message::Text(t) = msg.unwrap() else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            let done = matches!(v["type"].as_str(), Some("response.completed" | "error"));
            out.push(v);
            if done {
                break;
            }
        }
        out
    }

    ws.send(Message::Text(
        json!({"type": "response.create", "model": "gpt-5", "generate": false, "input": []}).to_string(),
    ))
    .await
    .unwrap();
    let pre = frames_until_done(&mut ws).await;
    assert_eq!(pre.first().unwrap()["type"], "response.created");
    assert_eq!(pre.last().unwrap()["response"]["output"], json!([]));
    let prev = pre.last().unwrap()["response"]["id"].clone();

    let create = json!({"type": "response.create", "model": "gpt-5", "previous_response_id": prev, "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "over ws"}]}]});
    ws.send(Message::Text(create.to_string())).await.unwrap();
    let turn = frames_until_done(&mut ws).await;
    let mut kinds: Vec<&str> = turn.iter().map(|v| v["type"].as_str().unwrap()).collect();
    kinds.dedup();
    assert_eq!(kinds, RESPONSES_LIFECYCLE);
    assert_eq!(
        turn.last().unwrap()["response"]["output"][0]["content"][0]["text"],
        "You said: over ws"
    );
    assert_eq!(turn.last().unwrap()["response"]["previous_response_id"], prev);
    ws.close(None).await.unwrap();

    let rec = fake.recorded();
    assert_eq!(rec[0].method, "GET");
    assert_eq!(rec[0].status, 101);
    assert_eq!(rec[0].header("openai-beta"), Some("responses_websockets=2026-02-06"));
    let msgs: Vec<_> = rec.iter().filter(|r| r.transport == "ws").collect();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].json.as_ref().unwrap()["previous_response_id"], prev);
    assert_eq!(msgs[1].conn.sni.as_deref(), Some(OPENAI));
}

/// Codex signed in with ChatGPT uses the same API on chatgpt.com's backend path.
#[tokio::test]
async fn responses_websocket_on_the_chatgpt_backend_path() {
    let fake = FakeProvider::start(FakeOptions {
        ws: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let tls = tls_connect(&fake, "chatgpt.com", &[]).await;
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        "wss://chatgpt.com/backend-api/codex/responses",
    )
    .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    let create = json!({"type": "response.create", "model": "gpt-5", "input": "backend ws"});
    ws.send(Message::Text(create.to_string())).await.unwrap();
    let mut last = Value::Null;
    while let Some(msg) = ws.next().await {
        let Message::Text(t) = msg.unwrap() else { continue };
        last = serde_json::from_str(&t).unwrap();
        if last["type"] == "response.completed" {
            break;
        }
    }
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        "You said: backend ws"
    );
    let msgs: Vec<_> = fake.recorded().into_iter().filter(|r| r.transport == "ws").collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].path, "/backend-api/codex/responses");
}

#[tokio::test]
async fn plain_mode_and_ca_dir_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FakeOptions {
        plain: true,
        ca_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let fake = FakeProvider::start(opts.clone()).await.unwrap();
    assert!(fake.base_url().starts_with("http://"));
    let a = post_json(&fake, ANTHROPIC, "/v1/messages", msg_body("plain", false)).await;
    assert_eq!(a.json()["content"][0]["text"], "You said: plain");
    assert!(!fake.recorded()[0].conn.tls);
    let again = FakeProvider::start(opts).await.unwrap();
    assert_eq!(
        fake.ca_pem, again.ca_pem,
        "a CA in ca_dir must be reused, not regenerated"
    );
    assert_eq!(fake.ca_pem_path, dir.path().join("ca.pem"));
}

#[tokio::test]
async fn recording_appends_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let fake = FakeProvider::start(FakeOptions {
        log: Some(log.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    post_with(
        &fake,
        ANTHROPIC,
        "/v1/messages",
        msg_body("logged", false),
        &[("x-api-key", "sk-ant-fake")],
    )
    .await;
    post_json(
        &fake,
        OPENAI,
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    )
    .await;
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sni"], ANTHROPIC);
    assert_eq!(lines[0]["json"]["messages"][0]["content"], "logged");
    assert!(lines[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "x-api-key"));
    assert_eq!(lines[1]["seq"], 1);
    assert_eq!(lines[1]["path"], "/v1/chat/completions");
}
