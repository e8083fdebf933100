use serde_json::{json, Value};

use super::*;
use crate::translate::ir::{Delta, PartStart, StopReason, StreamEvent, TokenUsage};

fn req(v: Value) -> ir::Request {
    ChatCodec
        .decode_request(v.to_string().as_bytes(), &mut Notes::default())
        .expect("decodes")
}

fn enc_req(r: &ir::Request) -> (Value, Notes) {
    let mut notes = Notes::default();
    let body = ChatCodec.encode_request(r, &mut notes);
    (serde_json::from_slice(&body).expect("json"), notes)
}

fn decode_stream(chunks: &[&str], end: bool) -> Vec<StreamEvent> {
    let mut d = ChatCodec.stream_decoder();
    let mut out = Vec::new();
    for c in chunks {
        d.event(None, c, &mut out);
    }
    if end {
        d.end(&mut out);
    }
    assert_well_formed(&out);
    out
}

/// Start first, parts one at a time with increasing indices, Finish last.
fn assert_well_formed(events: &[StreamEvent]) {
    let mut open: Option<usize> = None;
    let mut next = 0;
    for (i, e) in events.iter().enumerate() {
        match e {
            StreamEvent::Start { .. } => assert_eq!(i, 0, "Start is first: {events:?}"),
            StreamEvent::PartStart { index, .. } => {
                assert!(open.is_none(), "one part open at a time: {events:?}");
                assert_eq!(*index, next, "indices increase: {events:?}");
                open = Some(*index);
            }
            StreamEvent::Delta { index, .. } => assert_eq!(open, Some(*index), "delta of the open part"),
            StreamEvent::PartStop { index } => {
                assert_eq!(open, Some(*index), "stop of the open part");
                open = None;
                next += 1;
            }
            StreamEvent::Finish { .. } | StreamEvent::Error(_) => {
                assert_eq!(i, events.len() - 1, "Finish/Error is last: {events:?}");
                if matches!(e, StreamEvent::Finish { .. }) {
                    assert!(open.is_none(), "all parts closed before Finish");
                }
            }
        }
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

#[test]
fn cached_tokens_leave_input_tokens_and_come_back_on_encode() {
    let u = decode_usage(&json!({
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 256}
    }));
    assert_eq!(u.input_tokens, Some(86));
    assert_eq!(u.cache_read_tokens, Some(1920));
    assert_eq!(u.reasoning_tokens, Some(256));
    let back = encode_usage(&u);
    assert_eq!(back["prompt_tokens"], 2006);
    assert_eq!(back["total_tokens"], 2306);
    assert_eq!(back["prompt_tokens_details"]["cached_tokens"], 1920);
}

#[test]
fn cache_writes_count_into_prompt_tokens() {
    let u = TokenUsage {
        input_tokens: Some(10),
        output_tokens: Some(5),
        cache_read_tokens: Some(100),
        cache_write_tokens: Some(1000),
        reasoning_tokens: None,
    };
    let v = encode_usage(&u);
    assert_eq!(v["prompt_tokens"], 1110);
    assert_eq!(v["prompt_tokens_details"]["cache_write_tokens"], 1000);
    assert_eq!(
        decode_usage(&v),
        TokenUsage {
            reasoning_tokens: Some(0),
            ..u
        }
    );
}

#[test]
fn deepseek_cache_hits_are_cache_reads() {
    let u = decode_usage(&json!({"prompt_tokens": 100, "completion_tokens": 1, "prompt_cache_hit_tokens": 64}));
    assert_eq!((u.input_tokens, u.cache_read_tokens), (Some(36), Some(64)));
}

#[test]
fn usage_with_more_cached_than_prompt_does_not_underflow() {
    let u = decode_usage(&json!({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}));
    assert_eq!(u.input_tokens, Some(0));
}

#[test]
fn finish_reasons_map_both_ways() {
    assert_eq!(decode_finish("stop"), StopReason::EndTurn);
    assert_eq!(decode_finish("length"), StopReason::MaxTokens);
    assert_eq!(decode_finish("tool_calls"), StopReason::ToolUse);
    assert_eq!(decode_finish("function_call"), StopReason::ToolUse);
    assert_eq!(decode_finish("content_filter"), StopReason::ContentFilter);
    assert_eq!(decode_finish("eos"), StopReason::Other("eos".into()));
    let mut notes = Notes::default();
    assert_eq!(
        encode_finish(Some(&StopReason::StopSequence), false, &mut notes),
        "stop"
    );
    assert_eq!(encode_finish(Some(&StopReason::MaxTokens), false, &mut notes), "length");
    assert_eq!(encode_finish(None, true, &mut notes), "tool_calls");
    assert!(notes.is_empty());
    assert_eq!(
        encode_finish(Some(&StopReason::Other("pause_turn".into())), false, &mut notes),
        "stop"
    );
    assert_eq!(notes.0, vec!["stop reason pause_turn".to_string()]);
}

#[test]
fn consecutive_tool_messages_and_the_next_user_message_are_one_user_turn() {
    let r = req(json!({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
        {"role": "user", "content": "and now?"}
    ]}));
    assert_eq!(r.messages.len(), 3);
    let turn = &r.messages[2];
    assert_eq!(turn.role, Role::User);
    assert!(
        matches!(&turn.parts[..], [Part::ToolResult(a), Part::ToolResult(b), Part::Text(t)]
        if a.call_id == "a" && b.call_id == "b" && t.text == "and now?")
    );
    let (v, notes) = enc_req(&r);
    let roles: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool", "user"]);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn tool_results_go_out_before_the_turns_other_text_and_images_follow_them() {
    let r = ir::Request {
        model: "m".into(),
        messages: vec![ir::Message {
            role: Role::User,
            parts: vec![
                text_part("see the chart"),
                Part::ToolResult(ir::ToolResult {
                    call_id: "c1".into(),
                    content: vec![
                        text_part("done"),
                        Part::Image(ir::Image::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBO".into(),
                        }),
                    ],
                    is_error: true,
                }),
            ],
        }],
        ..Default::default()
    };
    let (v, notes) = enc_req(&r);
    assert_eq!(
        v["messages"],
        json!([
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "see the chart"}]}
        ])
    );
    assert!(notes.0.iter().any(|n| n.starts_with("tool_result image")));
    assert!(notes.0.contains(&"tool_result.is_error".to_string()));
}

#[test]
fn a_thinking_budget_becomes_an_effort_tier_and_is_noted() {
    assert_eq!(effort_for_budget(1024), "low");
    assert_eq!(effort_for_budget(4000), "low");
    assert_eq!(effort_for_budget(8192), "medium");
    assert_eq!(effort_for_budget(10_000), "medium");
    assert_eq!(effort_for_budget(24_576), "high");
    assert_eq!(effort_for_budget(31_999), "high");
    let r = ir::Request {
        model: "m".into(),
        reasoning: Some(ir::Reasoning {
            effort: None,
            budget_tokens: Some(10_000),
        }),
        ..Default::default()
    };
    let (v, notes) = enc_req(&r);
    assert_eq!(v["reasoning_effort"], "medium");
    assert_eq!(
        notes.0,
        vec!["reasoning.budget_tokens (sent as reasoning_effort)".to_string()]
    );
}

#[test]
fn both_output_limits_decode_and_max_completion_tokens_is_written() {
    assert_eq!(
        req(json!({"model": "m", "messages": [], "max_tokens": 7})).max_output_tokens,
        Some(7)
    );
    let r = req(json!({"model": "m", "messages": [], "max_tokens": 7, "max_completion_tokens": 9}));
    assert_eq!(r.max_output_tokens, Some(9));
    let (v, _) = enc_req(&r);
    assert_eq!(v["max_completion_tokens"], 9);
    assert!(v.get("max_tokens").is_none());
}

#[test]
fn a_streamed_request_asks_for_usage() {
    let (v, _) = enc_req(&ir::Request {
        model: "m".into(),
        stream: true,
        ..Default::default()
    });
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
}

#[test]
fn tool_choice_and_parallel_calls_only_go_with_tools() {
    let mut r = ir::Request {
        model: "m".into(),
        tool_choice: Some(ir::ToolChoice::Required),
        parallel_tool_calls: Some(false),
        ..Default::default()
    };
    let (v, _) = enc_req(&r);
    assert!(v.get("tool_choice").is_none() && v.get("parallel_tool_calls").is_none());
    r.tools.push(ir::Tool {
        name: "f".into(),
        description: None,
        parameters: json!({"type": "object"}),
        cache_control: None,
        kind: Default::default(),
        strict: None,
    });
    let (v, _) = enc_req(&r);
    assert_eq!(v["tool_choice"], "required");
    assert_eq!(v["parallel_tool_calls"], false);
}

#[test]
fn malformed_requests_are_errors_not_panics() {
    for body in [
        &b"not json"[..],
        b"[]",
        br#"{"model":"m"}"#,
        br#"{"model":"m","messages":[{"content":"x"}]}"#,
        br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
    ] {
        assert!(
            matches!(
                ChatCodec.decode_request(body, &mut Notes::default()),
                Err(TranslateError::Malformed { .. })
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn several_choices_are_refused_because_one_answer_cannot_stand_for_them() {
    let n = json!({"model": "m", "messages": [], "n": 2});
    assert!(matches!(
        ChatCodec.decode_request(n.to_string().as_bytes(), &mut Notes::default()),
        Err(TranslateError::Unsupported { .. })
    ));
}

#[test]
fn audio_and_file_parts_are_dropped_with_a_note_and_the_rest_of_the_turn_stands() {
    let v = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is said here?"},
        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}}]}]});
    let mut notes = Notes::default();
    let req = ChatCodec.decode_request(v.to_string().as_bytes(), &mut notes).unwrap();
    assert_eq!(req.messages[0].parts.len(), 1);
    assert_eq!(notes.0, vec!["input_audio content parts", "file content parts"]);
}

#[test]
fn semantic_fields_the_model_cannot_carry_are_noted_by_name_and_defaults_are_not() {
    let v = json!({"model": "m", "messages": [{"role": "user", "content": "hi", "name": "bob"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "seed": 7, "logprobs": false, "frequency_penalty": 0, "presence_penalty": 0.5,
        "logit_bias": {"50256": -100}, "store": true, "metadata": {"k": "v"}});
    let mut notes = Notes::default();
    ChatCodec.decode_request(v.to_string().as_bytes(), &mut notes).unwrap();
    assert_eq!(
        notes.0,
        vec![
            "seed",
            "presence_penalty",
            "logit_bias",
            "response_format",
            "message name"
        ]
    );
    let text = json!({"model": "m", "messages": [], "response_format": {"type": "text"}});
    let mut notes = Notes::default();
    ChatCodec
        .decode_request(text.to_string().as_bytes(), &mut notes)
        .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn a_chat_custom_tool_is_a_freeform_tool_and_its_calls_carry_the_raw_input() {
    let v = json!({"model": "m", "messages": [
        {"role": "user", "content": "patch it"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"}],
        "tools": [{"type": "custom", "custom": {"name": "apply_patch", "description": "Patch files",
            "format": {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: /.+/"}}}}],
        "tool_choice": {"type": "custom", "custom": {"name": "apply_patch"}}});
    let mut notes = Notes::default();
    let req = ChatCodec.decode_request(v.to_string().as_bytes(), &mut notes).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        req.tools[0].kind,
        ir::ToolKind::Freeform {
            format: Some(json!({"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}))
        }
    );
    assert_eq!(crate::translate::freeform_tools(&req), vec!["apply_patch".to_string()]);
    assert_eq!(req.tool_choice, Some(ir::ToolChoice::Tool("apply_patch".into())));
    let Part::ToolCall(call) = &req.messages[1].parts[0] else {
        panic!("{:?}", req.messages[1]);
    };
    assert_eq!(ir::freeform_input(&call.arguments).as_deref(), Some("*** Begin Patch"));
    // Written back as a function with one string parameter.
    let mut notes = Notes::default();
    let out: Value = serde_json::from_slice(&ChatCodec.encode_request(&req, &mut notes)).unwrap();
    assert_eq!(out["tools"][0]["type"], "function");
    assert_eq!(out["tools"][0]["function"]["parameters"]["required"], json!(["input"]));
}

#[test]
fn own_reasoning_round_trips_and_foreign_thinking_is_dropped_and_noted() {
    let thinking = |origin, text: &str| {
        Part::Thinking(ir::Thinking {
            text: text.into(),
            origin,
            signature: (origin == "anthropic").then(|| "sig".to_string()),
            encrypted: None,
            id: None,
        })
    };
    let r = ir::Request {
        model: "m".into(),
        messages: vec![
            ir::Message {
                role: Role::Assistant,
                parts: vec![thinking("anthropic", "hmm"), text_part("a")],
            },
            ir::Message {
                role: Role::Assistant,
                parts: vec![thinking(ORIGIN, "mine"), text_part("b")],
            },
        ],
        ..Default::default()
    };
    let (v, notes) = enc_req(&r);
    assert_eq!(v["messages"][0], json!({"role": "assistant", "content": "a"}));
    assert_eq!(
        v["messages"][1],
        json!({"role": "assistant", "content": "b", "reasoning_content": "mine"})
    );
    assert_eq!(notes.0, vec!["thinking from anthropic".to_string()]);
}

#[test]
fn usage_after_finish_reason_reaches_finish_at_done() {
    let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 2, "total_tokens": 52,
        "prompt_tokens_details": {"cached_tokens": 40}}})
    .to_string();
    let ev = decode_stream(
        &[
            &chunk(json!({"role": "assistant", "content": ""}), None),
            &chunk(json!({"content": "Hi"}), None),
            &chunk(json!({}), Some("stop")),
            &usage,
            "[DONE]",
        ],
        false,
    );
    assert_eq!(
        ev.last(),
        Some(&StreamEvent::Finish {
            stop: Some(StopReason::EndTurn),
            usage: TokenUsage {
                input_tokens: Some(10),
                output_tokens: Some(2),
                cache_read_tokens: Some(40),
                cache_write_tokens: None,
                reasoning_tokens: None,
            }
        })
    );
    // The empty role chunk opens no part: one text part with one delta.
    assert_eq!(ev.len(), 5);
}

#[test]
fn sequential_tool_calls_stream_live_without_waiting_for_the_finish() {
    let mut d = ChatCodec.stream_decoder();
    let mut out = Vec::new();
    for c in [
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":1}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"y\""}}]}),
            None,
        ),
    ] {
        d.event(None, &c, &mut out);
    }
    assert_eq!(
        &out[1..],
        &[
            StreamEvent::PartStart {
                index: 0,
                part: PartStart::ToolCall {
                    id: "a".into(),
                    name: "f".into()
                }
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::ToolArguments("{\"x\":1}".into())
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::PartStart {
                index: 1,
                part: PartStart::ToolCall {
                    id: "b".into(),
                    name: "g".into()
                }
            },
            StreamEvent::Delta {
                index: 1,
                delta: Delta::ToolArguments("{\"y\"".into())
            },
        ]
    );
}

#[test]
fn interleaved_tool_call_fragments_come_out_one_call_after_the_other() {
    let ev = decode_stream(
        &[
            &chunk(
                json!({"tool_calls": [
                {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"p\":"}},
                {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"q\":"}}]}),
                None,
            ),
            &chunk(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "2}"}}]}),
                None,
            ),
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                None,
            ),
            &chunk(json!({}), Some("tool_calls")),
            "[DONE]",
        ],
        false,
    );
    let args: Vec<(usize, &str)> = ev
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta {
                index,
                delta: Delta::ToolArguments(a),
            } => Some((*index, a.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(args, [(0, "{\"p\":"), (0, "1}"), (1, "{\"q\":2}")]);
    assert!(matches!(&ev[5], StreamEvent::PartStart { index: 1, part: PartStart::ToolCall { id, .. } } if id == "b"));
}

#[test]
fn reasoning_then_text_are_two_parts() {
    let ev = decode_stream(
        &[
            &chunk(json!({"reasoning_content": "think"}), None),
            &chunk(json!({"content": "say"}), None),
            "[DONE]",
        ],
        false,
    );
    assert!(matches!(
        ev[1],
        StreamEvent::PartStart {
            index: 0,
            part: PartStart::Thinking { origin: "openai", .. }
        }
    ));
    assert!(matches!(
        ev[4],
        StreamEvent::PartStart {
            index: 1,
            part: PartStart::Text
        }
    ));
}

#[test]
fn a_stream_cut_inside_a_tool_call_ends_in_an_error_never_a_finish() {
    let ev = decode_stream(
        &[&chunk(
            json!({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\""}}]}),
            None,
        )],
        true,
    );
    assert_eq!(
        ev.last(),
        Some(&StreamEvent::Error(crate::translate::ir::ApiError::stream_cut()))
    );
    assert!(!ev.iter().any(|e| matches!(e, StreamEvent::Finish { .. })), "{ev:?}");
}

#[test]
fn an_empty_stream_ends_in_an_error() {
    let ev = decode_stream(&[], true);
    assert!(matches!(&ev[..], [StreamEvent::Error(e)] if e.status == 502));
}

#[test]
fn an_error_chunk_ends_the_stream() {
    let err =
        r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let ev = decode_stream(
        &[
            &chunk(json!({"content": "x"}), None),
            err,
            &chunk(json!({"content": "y"}), None),
        ],
        true,
    );
    assert!(matches!(ev.last(), Some(StreamEvent::Error(e)) if e.kind == ir::ErrorKind::RateLimit && e.status == 429));
    assert_eq!(ev.iter().filter(|e| matches!(e, StreamEvent::Delta { .. })).count(), 1);
}

#[test]
fn the_stream_encoder_frames_chunks_like_openai() {
    let ctx = ResponseContext {
        client_model: "gpt-x".into(),
        created: 7,
        id_seed: "seed".into(),
        stream_usage: true,
        freeform_tools: Vec::new(),
    };
    let mut e = ChatCodec.stream_encoder(&ctx);
    let mut out = Vec::new();
    for ev in [
        StreamEvent::Start {
            id: String::new(),
            model: "up".into(),
            usage: TokenUsage::default(),
        },
        StreamEvent::PartStart {
            index: 0,
            part: PartStart::ToolCall {
                id: "call_1".into(),
                name: "f".into(),
            },
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::ToolArguments("{}".into()),
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::Finish {
            stop: Some(StopReason::ToolUse),
            usage: TokenUsage {
                input_tokens: Some(3),
                output_tokens: Some(4),
                ..Default::default()
            },
        },
    ] {
        e.event(&ev, &mut out);
    }
    let data: Vec<Value> = out[..out.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert!(out.iter().all(|e| e.name.is_none()));
    assert_eq!(data[0]["id"], "chatcmpl-seed");
    assert_eq!(data[0]["model"], "gpt-x");
    assert_eq!(data[0]["object"], "chat.completion.chunk");
    assert_eq!(data[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        data[1]["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}})
    );
    assert_eq!(
        data[2]["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "function": {"arguments": "{}"}})
    );
    assert_eq!(data[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(data[4]["choices"], json!([]));
    assert_eq!(data[4]["usage"]["total_tokens"], 7);
    assert_eq!(out.last().unwrap().data, "[DONE]");
}

#[test]
fn error_bodies_of_any_form_decode() {
    let e = ChatCodec.decode_error(
        429,
        br#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
    );
    assert_eq!(
        (e.status, e.kind, e.message.as_str()),
        (429, ir::ErrorKind::RateLimit, "slow down")
    );
    let e = ChatCodec.decode_error(
        400,
        br#"{"object":"error","message":"bad","type":"BadRequestError","code":400}"#,
    );
    assert_eq!(e.message, "bad");
    let e = ChatCodec.decode_error(502, b"<html>bad gateway</html>");
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ir::ErrorKind::Server, "upstream error (HTTP 502)")
    );
}
