//! Unit tests of the Anthropic codec's tricky decisions.

use serde_json::{json, Value};

use super::*;
use crate::translate::ir::{Delta, Part, PartStart, Role, StopReason, StreamEvent, TokenUsage};

fn encode_req(req: &ir::Request) -> (Value, Notes) {
    let mut notes = Notes::default();
    let body = AnthropicCodec.encode_request(req, &mut notes);
    (serde_json::from_slice(&body).expect("json"), notes)
}

fn user(text: &str) -> ir::Message {
    ir::Message {
        role: Role::User,
        parts: vec![Part::Text(ir::Text {
            text: text.into(),
            cache_control: None,
        })],
    }
}

fn decode_stream(events: &[(&str, Value)]) -> Vec<StreamEvent> {
    let mut d = AnthropicCodec.stream_decoder();
    let mut out = Vec::new();
    for (name, data) in events {
        d.event(Some(name), &data.to_string(), &mut out);
    }
    d.end(&mut out);
    out
}

fn encode_stream(events: &[StreamEvent]) -> Vec<(String, Value)> {
    let mut e = AnthropicCodec.stream_encoder(&ResponseContext {
        id_seed: "seed".into(),
        ..Default::default()
    });
    let mut out = Vec::new();
    for ev in events {
        e.event(ev, &mut out);
    }
    out.into_iter()
        .map(|e| {
            (
                e.name.unwrap_or_default().to_string(),
                serde_json::from_str(&e.data).expect("json"),
            )
        })
        .collect()
}

#[test]
fn usage_keeps_anthropic_split_and_always_writes_the_cache_fields() {
    let body = json!({"id": "msg_1", "content": [], "usage": {"input_tokens": 21, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 5000, "output_tokens": 7}});
    let resp = AnthropicCodec
        .decode_response(body.to_string().as_bytes(), &mut Notes::default())
        .unwrap();
    assert_eq!(
        resp.usage,
        TokenUsage {
            input_tokens: Some(21),
            output_tokens: Some(7),
            cache_read_tokens: Some(5000),
            cache_write_tokens: Some(100),
            reasoning_tokens: None,
        }
    );
    let mut notes = Notes::default();
    let usage = TokenUsage {
        input_tokens: Some(3),
        output_tokens: Some(40),
        reasoning_tokens: Some(32),
        ..Default::default()
    };
    let v = encode_usage(&usage, &mut notes);
    assert_eq!(
        v,
        json!({"input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 40})
    );
    assert_eq!(notes.0, vec!["usage.reasoning_tokens (counted in output_tokens)"]);
}

#[test]
fn stop_reasons_map_both_ways_and_an_unnamed_one_becomes_end_turn_with_a_note() {
    let mut notes = Notes::default();
    for s in [
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "refusal",
        "pause_turn",
    ] {
        assert_eq!(stop_reason_str(&stop_reason_of(s), &mut notes), s);
    }
    assert_eq!(stop_reason_of("refusal"), StopReason::ContentFilter);
    assert!(notes.is_empty());
    assert_eq!(
        stop_reason_str(&StopReason::Other("function_call".into()), &mut notes),
        "end_turn"
    );
    assert_eq!(notes.0, vec!["stop reason function_call (written as end_turn)"]);
}

#[test]
fn an_effort_becomes_a_budget_that_fits_under_max_tokens() {
    let reasoning = |effort: &str| ir::Reasoning {
        effort: Some(effort.into()),
        budget_tokens: None,
    };
    let mut req = ir::Request {
        model: "m".into(),
        messages: vec![user("hi")],
        reasoning: Some(reasoning("high")),
        ..Default::default()
    };
    // No max_tokens: the default leaves room for the whole budget.
    let (v, notes) = encode_req(&req);
    assert_eq!(v["thinking"], json!({"type": "enabled", "budget_tokens": 24576}));
    assert_eq!(v["max_tokens"], 24576 + 4096);
    assert!(notes.0.iter().any(|n| n.contains("reasoning.effort")));
    assert!(notes.0.iter().any(|n| n.starts_with("max_tokens")));

    req.max_output_tokens = Some(4000);
    let (v, _) = encode_req(&req);
    assert_eq!(v["thinking"]["budget_tokens"], 2000);
    assert_eq!(v["max_tokens"], 4000);

    req.max_output_tokens = Some(1500);
    let (v, notes) = encode_req(&req);
    assert!(v.get("thinking").is_none());
    assert!(notes.0.iter().any(|n| n.contains("no room")));

    req.reasoning = Some(reasoning("low"));
    req.max_output_tokens = Some(8000);
    assert_eq!(encode_req(&req).0["thinking"]["budget_tokens"], 2048);
    req.reasoning = Some(reasoning("none"));
    assert!(encode_req(&req).0.get("thinking").is_none());
}

#[test]
fn an_absent_max_tokens_is_4096_and_noted() {
    let (v, notes) = encode_req(&ir::Request {
        model: "m".into(),
        messages: vec![user("hi")],
        ..Default::default()
    });
    assert_eq!(v["max_tokens"], 4096);
    assert_eq!(notes.0, vec!["max_tokens (absent: written as 4096)"]);
    assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[test]
fn no_parallel_calls_without_a_tool_choice_is_written_as_auto_with_disable() {
    let tool = ir::Tool {
        name: "t".into(),
        description: None,
        parameters: json!({"type": "object"}),
        cache_control: None,
        kind: Default::default(),
        strict: None,
    };
    let mut req = ir::Request {
        model: "m".into(),
        max_output_tokens: Some(10),
        messages: vec![user("hi")],
        tools: vec![tool],
        parallel_tool_calls: Some(false),
        ..Default::default()
    };
    let (v, _) = encode_req(&req);
    assert_eq!(
        v["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let back = AnthropicCodec
        .decode_request(v.to_string().as_bytes(), &mut Notes::default())
        .unwrap();
    assert_eq!(back.parallel_tool_calls, Some(false));

    req.tool_choice = Some(ir::ToolChoice::Tool("t".into()));
    req.parallel_tool_calls = None;
    assert_eq!(encode_req(&req).0["tool_choice"], json!({"type": "tool", "name": "t"}));

    // The API rejects tool_choice without tools.
    req.tools.clear();
    let (v, notes) = encode_req(&req);
    assert!(v.get("tool_choice").is_none());
    assert_eq!(notes.0, vec!["tool_choice without tools"]);
}

#[test]
fn tool_input_becomes_compact_arguments_text_in_its_key_order() {
    let body = json!({"model": "m", "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"z": 1, "a": {"k": [1, 2]}}},
        {"type": "tool_use", "id": "toolu_2", "name": "g"}
    ]}]});
    let req = AnthropicCodec
        .decode_request(body.to_string().as_bytes(), &mut Notes::default())
        .unwrap();
    let args: Vec<&str> = req.messages[0]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(c.arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(args, vec![r#"{"z":1,"a":{"k":[1,2]}}"#, "{}"]);
}

#[test]
fn arguments_that_are_not_an_object_are_sent_as_empty_input_and_noted() {
    let mut notes = Notes::default();
    assert_eq!(arguments_to_input("", &mut notes), json!({}));
    assert!(notes.is_empty());
    assert_eq!(arguments_to_input("{\"a\": tru", &mut notes), json!({}));
    assert_eq!(arguments_to_input("[1]", &mut notes), json!({}));
    assert_eq!(notes.0.len(), 1);
}

#[test]
fn tool_ids_anthropic_rejects_are_rewritten_alike_in_calls_and_results() {
    let (v, notes) = encode_req(&ir::Request {
        model: "m".into(),
        max_output_tokens: Some(10),
        messages: vec![
            ir::Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ir::ToolCall {
                    id: "functions.get:0".into(),
                    name: "get".into(),
                    arguments: "{}".into(),
                })],
            },
            ir::Message {
                role: Role::User,
                parts: vec![Part::ToolResult(ir::ToolResult {
                    call_id: "functions.get:0".into(),
                    content: vec![],
                    is_error: false,
                })],
            },
        ],
        ..Default::default()
    });
    assert_eq!(v["messages"][0]["content"][0]["id"], "functions_get_0");
    assert_eq!(v["messages"][1]["content"][0]["tool_use_id"], "functions_get_0");
    assert_eq!(notes.0.len(), 1);
}

#[test]
fn unsigned_thinking_is_dropped_and_noted_and_redacted_thinking_goes_back_as_it_came() {
    let mut notes = Notes::default();
    let unsigned = ir::Thinking {
        text: "t".into(),
        origin: ORIGIN,
        ..Default::default()
    };
    assert_eq!(encode_thinking(&unsigned, &mut notes), None);
    assert_eq!(notes.0, vec!["thinking without a signature"]);
    let redacted = ir::Thinking {
        origin: ORIGIN,
        encrypted: Some("EmwKAhgB".into()),
        ..Default::default()
    };
    assert_eq!(
        encode_thinking(&redacted, &mut notes),
        Some(json!({"type": "redacted_thinking", "data": "EmwKAhgB"}))
    );
}

#[test]
fn bodies_that_are_not_messages_requests_are_malformed_not_panics() {
    for body in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_use"}]}]}"#,
        br#"{"model":"m","messages":[],"max_tokens":-1}"#,
        br#"{"model":"m","messages":[],"tool_choice":{"type":"maybe"}}"#,
    ] {
        assert!(
            matches!(
                AnthropicCodec.decode_request(body, &mut Notes::default()),
                Err(TranslateError::Malformed { .. })
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(AnthropicCodec
        .decode_response(b"{\"id\":1}", &mut Notes::default())
        .is_err());
}

#[test]
fn server_tools_pdfs_and_server_blocks_are_dropped_with_a_note_and_the_rest_stands() {
    let body = json!({"model": "m", "max_tokens": 100, "top_k": 5,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}, {"name": "f", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                {"type": "search_result", "source": "https://x", "title": "t", "content": [{"type": "text", "text": "r"}]},
                {"type": "text", "text": "summarize"}]},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                {"type": "text", "text": "Found it.", "citations": [{"type": "web_search_result_location", "url": "https://x"}]}]}]});
    let mut notes = Notes::default();
    let req = AnthropicCodec
        .decode_request(body.to_string().as_bytes(), &mut notes)
        .unwrap();
    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.messages[0].parts.len(), 1);
    assert_eq!(req.messages[1].parts.len(), 1);
    assert_eq!(
        notes.0,
        vec![
            "top_k",
            "document blocks with a base64 source",
            "search_result blocks",
            "server_tool_use blocks",
            "web_search_tool_result blocks",
            "citations",
            "the server tool web_search_20250305",
        ]
    );
}

#[test]
fn block_kinds_it_does_not_know_still_fail_as_unsupported() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "hologram"}]}]});
    assert!(matches!(
        AnthropicCodec.decode_request(body.to_string().as_bytes(), &mut Notes::default()),
        Err(TranslateError::Unsupported { .. })
    ));
}

#[test]
fn error_bodies_of_any_kind_give_a_kind_and_a_message() {
    let e = AnthropicCodec.decode_error(
        429,
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
    );
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::RateLimit, "slow down"));
    let e = AnthropicCodec.decode_error(
        400,
        br#"{"error":{"message":"bad","type":"invalid_request_error","param":null}}"#,
    );
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidRequest, "bad"));
    let e = AnthropicCodec.decode_error(503, b"\xff\xfe upstream connect error");
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert_eq!(e.status, 503);
    let body: Value = serde_json::from_slice(&AnthropicCodec.encode_error(&ir::ApiError {
        status: 413,
        kind: ErrorKind::RequestTooLarge,
        message: "too big".into(),
        code: None,
    }))
    .unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "request_too_large", "message": "too big"}})
    );
}

#[test]
fn a_stream_without_message_start_still_begins_with_start() {
    let out = decode_stream(&[
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    assert!(matches!(out[0], StreamEvent::Start { .. }));
    assert_eq!(
        out[1..],
        [
            StreamEvent::PartStart {
                index: 0,
                part: PartStart::Text
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Text("Hi".into())
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::Finish {
                stop: None,
                usage: TokenUsage::default()
            },
        ]
    );
}

#[test]
fn a_block_started_while_another_is_open_closes_the_first_and_indices_stay_sequential() {
    let start = |i: u64, ty: &str| {
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": {"type": ty, "id": "toolu_1", "name": "f", "input": {}, "text": ""}}),
        )
    };
    let out = decode_stream(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1"}}),
        ),
        start(0, "text"),
        // A server tool's block is skipped with its deltas; numbering stays dense.
        start(1, "server_tool_use"),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":1}"}}),
        ),
        start(2, "tool_use"),
        ("ping", json!({"type": "ping"})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    let shape: Vec<String> = out.iter().map(|e| format!("{e:?}")).collect();
    assert_eq!(
        out[1..],
        [
            StreamEvent::PartStart {
                index: 0,
                part: PartStart::Text
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::PartStart {
                index: 1,
                part: PartStart::ToolCall {
                    id: "toolu_1".into(),
                    name: "f".into()
                }
            },
            // A call without arguments has "{}".
            StreamEvent::Delta {
                index: 1,
                delta: Delta::ToolArguments("{}".into())
            },
            StreamEvent::PartStop { index: 1 },
            StreamEvent::Finish {
                stop: None,
                usage: TokenUsage::default()
            },
        ],
        "{shape:#?}"
    );
}

#[test]
fn an_error_event_ends_the_stream_and_later_events_are_ignored() {
    let out = decode_stream(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1"}}),
        ),
        (
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1],
        StreamEvent::Error(ir::ApiError {
            status: 529,
            kind: ErrorKind::Overloaded,
            message: "Overloaded".into(),
            code: None,
        })
    );
}

#[test]
fn an_empty_upstream_stream_is_an_error_not_an_empty_answer() {
    let out = decode_stream(&[]);
    assert!(matches!(out.as_slice(), [StreamEvent::Error(e)] if e.status == 502));
}

#[test]
fn the_final_usage_merges_message_start_and_message_delta() {
    let out = decode_stream(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5, "cache_read_input_tokens": 90, "output_tokens": 1}}}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 30}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    assert_eq!(
        out.last(),
        Some(&StreamEvent::Finish {
            stop: Some(StopReason::MaxTokens),
            usage: TokenUsage {
                input_tokens: Some(5),
                output_tokens: Some(30),
                cache_read_tokens: Some(90),
                ..Default::default()
            }
        })
    );
}

#[test]
fn the_encoder_puts_known_input_usage_in_message_start() {
    let out = encode_stream(&[StreamEvent::Start {
        id: "".into(),
        model: "gpt-5".into(),
        usage: TokenUsage {
            input_tokens: Some(12),
            cache_read_tokens: Some(1024),
            ..Default::default()
        },
    }]);
    assert_eq!(out[0].0, "message_start");
    assert_eq!(out[0].1["message"]["id"], "msg_seed");
    assert_eq!(
        out[0].1["message"]["usage"],
        json!({"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 0})
    );
}

#[test]
fn the_encoder_keeps_its_output_well_formed_whatever_it_is_given() {
    let out = encode_stream(&[
        // No Start, a delta of no open part, a part never stopped.
        StreamEvent::Delta {
            index: 3,
            delta: Delta::Text("lost".into()),
        },
        StreamEvent::PartStart {
            index: 5,
            part: PartStart::ToolCall {
                id: String::new(),
                name: "f".into(),
            },
        },
        StreamEvent::Delta {
            index: 5,
            delta: Delta::Text("wrong kind".into()),
        },
        StreamEvent::Delta {
            index: 5,
            delta: Delta::ToolArguments("{\"a\":1}".into()),
        },
        StreamEvent::PartStart {
            index: 6,
            part: PartStart::Text,
        },
        StreamEvent::Finish {
            stop: Some(StopReason::ToolUse),
            usage: TokenUsage::default(),
        },
        StreamEvent::Finish {
            stop: None,
            usage: TokenUsage::default(),
        },
    ]);
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(out[1].1["index"], 0);
    assert_eq!(out[1].1["content_block"]["id"], "toolu_seed_0");
    assert_eq!(out[1].1["content_block"]["input"], json!({}));
    assert_eq!(out[4].1["index"], 1);
    assert_eq!(out[6].1["delta"]["stop_reason"], "tool_use");
}

fn assistant_call(thinking: Option<&str>) -> ir::Message {
    let mut parts = Vec::new();
    if let Some(sig) = thinking {
        parts.push(Part::Thinking(ir::Thinking {
            text: "plan".into(),
            origin: ORIGIN,
            signature: Some(sig.into()),
            encrypted: None,
            id: None,
        }));
    }
    parts.push(Part::ToolCall(ir::ToolCall {
        id: "call_1".into(),
        name: "f".into(),
        arguments: "{}".into(),
    }));
    ir::Message {
        role: Role::Assistant,
        parts,
    }
}

#[test]
fn thinking_is_left_off_a_tool_loop_that_began_without_anthropic_thinking() {
    let result = ir::Message {
        role: Role::User,
        parts: vec![Part::ToolResult(ir::ToolResult {
            call_id: "call_1".into(),
            content: vec![],
            is_error: false,
        })],
    };
    let mut req = ir::Request {
        model: "m".into(),
        max_output_tokens: Some(20000),
        messages: vec![user("go"), assistant_call(None), result],
        reasoning: Some(ir::Reasoning {
            effort: Some("medium".into()),
            budget_tokens: None,
        }),
        ..Default::default()
    };
    let (v, notes) = encode_req(&req);
    assert!(v.get("thinking").is_none());
    assert!(notes.0.iter().any(|n| n.contains("no Anthropic thinking")));

    req.messages[1] = assistant_call(Some("sig"));
    let (v, _) = encode_req(&req);
    assert_eq!(v["thinking"]["budget_tokens"], 8192);
}

#[test]
fn sampling_settings_the_api_rejects_together_are_dropped_and_noted() {
    let mut req = ir::Request {
        model: "m".into(),
        max_output_tokens: Some(100),
        messages: vec![user("hi")],
        temperature: Some(0.2),
        top_p: Some(0.9),
        stop: vec!["\n".into(), "END".into()],
        ..Default::default()
    };
    let (v, notes) = encode_req(&req);
    assert_eq!(v["temperature"], 0.2);
    assert!(v.get("top_p").is_none());
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(notes.0.len(), 2);

    // With thinking on, temperature goes too.
    req.max_output_tokens = Some(20000);
    req.reasoning = Some(ir::Reasoning {
        effort: Some("low".into()),
        budget_tokens: None,
    });
    let (v, notes) = encode_req(&req);
    assert!(v.get("temperature").is_none());
    assert!(notes.0.iter().any(|n| n.starts_with("temperature")));
}

#[test]
fn a_data_url_image_is_sent_as_base64() {
    assert_eq!(
        request::encode_image(&ir::Image::Url("data:image/jpeg;base64,/9j/4AAQ".into())),
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}})
    );
}

#[test]
fn an_error_event_that_is_not_json_still_ends_the_stream_as_an_error() {
    let mut d = AnthropicCodec.stream_decoder();
    let mut out = Vec::new();
    d.event(
        Some("message_start"),
        r#"{"type":"message_start","message":{"id":"msg_1"}}"#,
        &mut out,
    );
    d.event(Some("ping"), "not json", &mut out);
    d.event(Some("error"), "upstream connect error", &mut out);
    d.end(&mut out);
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[1], StreamEvent::Error(e) if e.kind == ErrorKind::Server));
}

#[test]
fn redacted_thinking_streams_through_as_an_encrypted_delta_and_comes_back_as_a_redacted_block() {
    let events = decode_stream(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgB"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    assert_eq!(
        events[1..4],
        [
            StreamEvent::PartStart {
                index: 0,
                part: PartStart::Thinking {
                    origin: ORIGIN,
                    id: None
                },
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Encrypted("EmwKAhgB".into()),
            },
            StreamEvent::PartStop { index: 0 },
        ]
    );
    let wire = encode_stream(&events);
    assert_eq!(
        wire[1].1["content_block"],
        json!({"type": "redacted_thinking", "data": "EmwKAhgB"})
    );
    assert_eq!(wire[2].0, "content_block_stop");
}

#[test]
fn anthropic_thinking_that_ends_without_a_signature_is_noted_and_foreign_thinking_is_never_written() {
    let thinking = |origin| StreamEvent::PartStart {
        index: 0,
        part: PartStart::Thinking { origin, id: None },
    };
    let run = |origin| {
        let mut e = AnthropicCodec.stream_encoder(&ResponseContext::default());
        let mut out = Vec::new();
        for ev in [
            thinking(origin),
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Thinking("hm".into()),
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::Finish {
                stop: None,
                usage: TokenUsage::default(),
            },
        ] {
            e.event(&ev, &mut out);
        }
        (out, e.notes().clone())
    };
    let (out, notes) = run(ORIGIN);
    assert!(out.iter().any(|e| e.data.contains("thinking_delta")));
    assert_eq!(notes.0, vec!["thinking without a signature".to_string()]);
    let (out, notes) = run("openai");
    assert!(!out.iter().any(|e| e.data.contains("thinking")));
    assert_eq!(
        notes.0,
        vec!["thinking from openai (its signature is only valid there)".to_string()]
    );
}

#[test]
fn a_system_message_among_the_turns_joins_the_system_prompt_with_a_note() {
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64,
        "system": "You are Claude Code.",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "Reminder: be brief."}]},
            {"role": "user", "content": "again"}
        ]
    });
    let mut notes = Notes::default();
    let req = AnthropicCodec
        .decode_request(body.to_string().as_bytes(), &mut notes)
        .unwrap();
    let system: Vec<&str> = req.system.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(system, ["You are Claude Code.", "Reminder: be brief."]);
    assert_eq!(req.messages.len(), 2);
    assert!(notes.0.iter().any(|n| n.contains("system messages")), "{notes:?}");
}
