//! Behaviour across codecs: what one shape's decoder reads, another's
//! encoder writes, and what the notes say was lost on the way.

use promptwall_llm::translate::{self, ir, Notes, ResponseContext, ResponseTranslator, StreamTranslator};
use promptwall_llm::ApiShape;
use serde_json::{json, Value};

const ANTHROPIC: ApiShape = ApiShape::ANTHROPIC_MESSAGES;
const CHAT: ApiShape = ApiShape::OPENAI_CHAT;
const RESPONSES: ApiShape = ApiShape::OPENAI_RESPONSES;

const PATCH: &str = "*** Begin Patch\n*** Add File: hello.txt\n+Hello \"world\"\n*** End Patch\n";

/// A Codex request offering the freeform `apply_patch` tool and a function.
fn codex_request() -> Value {
    json!({
        "model": "gpt-5-codex",
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "add hello.txt"}]}],
        "tools": [
            {"type": "custom", "name": "apply_patch", "description": "Edit files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
            {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}, "strict": false}
        ],
        "tool_choice": "auto",
        "stream": true
    })
}

fn ctx_for(client_request: &ir::Request) -> ResponseContext {
    ResponseContext {
        client_model: "gpt-5-codex".into(),
        created: 1_700_000_000,
        id_seed: "x1".into(),
        stream_usage: false,
        freeform_tools: translate::freeform_tools(client_request),
    }
}

fn decode_client(body: &Value) -> ir::Request {
    let codec = RESPONSES.codec().unwrap();
    codec
        .decode_request(body.to_string().as_bytes(), &mut Notes::default())
        .unwrap()
}

fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// (name, data) of each SSE event of a body.
fn events_of(body: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|block| {
            let mut name = String::new();
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            data.map(|d| (name, d))
        })
        .collect()
}

fn anthropic_tool_use_stream() -> String {
    let input = serde_json::to_string(&json!({ "input": PATCH })).unwrap();
    let (a, b) = input.split_at(15);
    sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 50, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": a}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": b}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ])
}

#[test]
fn a_codex_freeform_tool_call_survives_a_round_trip_through_anthropic() {
    let client = codex_request();
    let req = decode_client(&client);
    assert_eq!(translate::freeform_tools(&req), vec!["apply_patch".to_string()]);

    // To Anthropic: a function tool taking one string `input`.
    let mut notes = Notes::default();
    let body = translate::request(RESPONSES, ANTHROPIC, client.to_string().as_bytes(), &mut notes).unwrap();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["tools"][0]["name"], "apply_patch");
    assert_eq!(sent["tools"][0]["input_schema"]["required"], json!(["input"]));

    // The whole answer comes back as a custom_tool_call with the raw patch.
    let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {"input": PATCH}},
                    {"type": "tool_use", "id": "toolu_2", "name": "shell", "input": {"command": ["ls"]}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 50, "output_tokens": 30}});
    let ctx = ctx_for(&req);
    let mut notes = Notes::default();
    let out = translate::response(ANTHROPIC, RESPONSES, answer.to_string().as_bytes(), &ctx, &mut notes).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["output"][0]["type"], "custom_tool_call");
    assert_eq!(out["output"][0]["call_id"], "toolu_1");
    assert_eq!(out["output"][0]["input"], PATCH);
    assert_eq!(out["output"][1]["type"], "function_call");
    assert!(notes.is_empty(), "{notes:?}");

    // The next Codex request carries the call and its output back: to
    // Anthropic they are a tool_use with `{"input": ...}` and its result.
    let mut next = client.clone();
    next["input"].as_array_mut().unwrap().extend([
        json!({"type": "custom_tool_call", "call_id": "toolu_1", "name": "apply_patch", "input": PATCH}),
        json!({"type": "custom_tool_call_output", "call_id": "toolu_1", "output": "Done!"}),
    ]);
    let body = translate::request(RESPONSES, ANTHROPIC, next.to_string().as_bytes(), &mut Notes::default()).unwrap();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["messages"][1]["content"][0]["input"], json!({ "input": PATCH }));
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], "toolu_1");
}

#[test]
fn a_streamed_freeform_call_reaches_codex_as_custom_tool_call_input_events() {
    let req = decode_client(&codex_request());
    let mut t = ResponseTranslator::new(ANTHROPIC, RESPONSES, 200, "text/event-stream", &ctx_for(&req)).unwrap();
    let mut body = t.push(anthropic_tool_use_stream().as_bytes());
    body.extend(t.finish());
    let events = events_of(&body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"response.function_call_arguments.delta"), "{names:?}");
    let added = &events
        .iter()
        .find(|(n, _)| n == "response.output_item.added")
        .unwrap()
        .1;
    assert_eq!(added["item"]["type"], "custom_tool_call");
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.custom_tool_call_input.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, PATCH);
    let done = &events
        .iter()
        .find(|(n, _)| n == "response.custom_tool_call_input.done")
        .unwrap()
        .1;
    assert_eq!(done["input"], PATCH);
    let completed = &events.iter().find(|(n, _)| n == "response.completed").unwrap().1;
    assert_eq!(completed["response"]["output"][0]["type"], "custom_tool_call");
    assert_eq!(completed["response"]["output"][0]["input"], PATCH);
    assert!(t.notes().is_empty(), "{:?}", t.notes());
}

#[test]
fn a_freeform_call_whose_arguments_are_not_an_input_object_goes_as_raw_text_with_a_note() {
    let req = decode_client(&codex_request());
    let answer = json!({"id": "msg_1", "content": [{"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {"patch": "x"}}],
        "stop_reason": "tool_use", "usage": {}});
    let mut notes = Notes::default();
    let out = translate::response(
        ANTHROPIC,
        RESPONSES,
        answer.to_string().as_bytes(),
        &ctx_for(&req),
        &mut notes,
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["output"][0]["input"], r#"{"patch":"x"}"#);
    assert_eq!(notes.0.len(), 1, "{notes:?}");
}

/// A Responses stream: a reasoning item (summary and encrypted content),
/// then text.
fn openai_reasoning_stream() -> String {
    let rs = json!({"id": "rs_1", "type": "reasoning", "summary": []});
    let rs_done = json!({"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking."}], "encrypted_content": "gAAAA-enc"});
    sse(&[
        (
            "response.created",
            json!({"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5", "status": "in_progress"}}),
        ),
        (
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 0, "item": rs}),
        ),
        (
            "response.reasoning_summary_text.delta",
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Thinking."}),
        ),
        (
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": 0, "item": rs_done}),
        ),
        (
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "Hi."}),
        ),
        (
            "response.completed",
            json!({"type": "response.completed", "response": {"id": "resp_1", "model": "gpt-5", "status": "completed", "output": [rs_done], "usage": {"input_tokens": 5, "output_tokens": 9}}}),
        ),
    ])
}

fn translate_stream(upstream: ApiShape, client: ApiShape, sse_text: &str) -> (Vec<(String, Value)>, Notes) {
    let mut t = StreamTranslator::new(upstream, client, &ResponseContext::default()).unwrap();
    let mut out = Vec::new();
    for (name, data) in events_of(sse_text.as_bytes()) {
        t.event(Some(&name), &data.to_string(), &mut out);
    }
    t.end(&mut out);
    let events = out
        .iter()
        .map(|e| {
            (
                e.name.unwrap_or_default().to_string(),
                serde_json::from_str(&e.data).unwrap_or(Value::Null),
            )
        })
        .collect();
    (events, t.notes())
}

#[test]
fn openai_thinking_streamed_to_an_anthropic_client_is_dropped_with_a_note_never_sent_unsigned() {
    let (events, notes) = translate_stream(RESPONSES, ANTHROPIC, &openai_reasoning_stream());
    let blocks: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| &d["content_block"])
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0]["type"], "text");
    assert!(!events.iter().any(|(_, d)| d.to_string().contains("thinking")));
    assert_eq!(
        notes.0,
        vec!["thinking from openai (its signature is only valid there)".to_string()]
    );
}

#[test]
fn openai_encrypted_reasoning_streamed_to_a_responses_client_keeps_its_id_and_encrypted_content() {
    let (events, notes) = translate_stream(RESPONSES, RESPONSES, &openai_reasoning_stream());
    let done = &events
        .iter()
        .find(|(n, d)| n == "response.output_item.done" && d["item"]["type"] == "reasoning")
        .unwrap()
        .1;
    assert_eq!(done["item"]["id"], "rs_1");
    assert_eq!(done["item"]["encrypted_content"], "gAAAA-enc");
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn anthropic_signatures_streamed_to_openai_clients_are_dropped_and_noted() {
    let stream = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 3}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hm."}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "pause_turn"}, "usage": {"output_tokens": 4}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    let (events, notes) = translate_stream(ANTHROPIC, RESPONSES, &stream);
    assert!(!events.iter().any(|(_, d)| d.to_string().contains("EqQB")));
    assert_eq!(
        notes.0,
        vec![
            "thinking signature of origin anthropic".to_string(),
            "stop reason pause_turn".to_string()
        ]
    );
    let (events, notes) = translate_stream(ANTHROPIC, CHAT, &stream);
    assert!(!events.iter().any(|(_, d)| d.to_string().contains("Hm.")));
    assert_eq!(
        notes.0,
        vec![
            "thinking from anthropic".to_string(),
            "stop reason pause_turn".to_string()
        ]
    );
}

#[test]
fn an_openai_context_length_error_reaches_claude_code_as_prompt_too_long() {
    let body = br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    let out: Value = serde_json::from_slice(&translate::error(CHAT, ANTHROPIC, 400, body).unwrap()).unwrap();
    assert_eq!(out["error"]["type"], "invalid_request_error");
    assert_eq!(
        out["error"]["message"],
        "prompt is too long: This model's maximum context length is 128000 tokens."
    );
    // And to a Responses client the code itself.
    let out: Value = serde_json::from_slice(&translate::error(CHAT, RESPONSES, 400, body).unwrap()).unwrap();
    assert_eq!(out["error"]["code"], "context_length_exceeded");
}

#[test]
fn insufficient_quota_is_a_billing_error_to_anthropic_clients_and_back() {
    let body = br#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let anthropic = translate::error(RESPONSES, ANTHROPIC, 429, body).unwrap();
    let out: Value = serde_json::from_slice(&anthropic).unwrap();
    assert_eq!(out["error"]["type"], "billing_error");
    let back: Value = serde_json::from_slice(&translate::error(ANTHROPIC, CHAT, 429, &anthropic).unwrap()).unwrap();
    assert_eq!(back["error"]["code"], "insufficient_quota");
}

#[test]
fn a_whole_answer_translator_reports_what_it_dropped() {
    let answer = json!({"id": "msg_1", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "text", "text": "Done."}], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}});
    let mut t = ResponseTranslator::new(ANTHROPIC, CHAT, 200, "application/json", &ResponseContext::default()).unwrap();
    t.push(answer.to_string().as_bytes());
    let out: Value = serde_json::from_slice(&t.finish()).unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "Done.");
    assert_eq!(t.notes().0, vec!["server_tool_use blocks".to_string()]);
}

#[test]
fn a_request_translation_notes_what_the_source_decoder_dropped() {
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "seed": 1,
        "response_format": {"type": "json_object"}});
    let mut notes = Notes::default();
    translate::request(CHAT, ANTHROPIC, body.to_string().as_bytes(), &mut notes).unwrap();
    assert!(notes.0.contains(&"seed".to_string()), "{notes:?}");
    assert!(notes.0.contains(&"response_format".to_string()), "{notes:?}");
}
