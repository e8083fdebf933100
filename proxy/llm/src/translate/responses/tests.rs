use super::*;

fn codec() -> ResponsesCodec {
    ResponsesCodec
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: "gpt-5".into(),
        created: 1_700_000_000,
        id_seed: "seed".into(),
        stream_usage: true,
        freeform_tools: Vec::new(),
    }
}

fn decode_stream(events: &[(&str, Value)], end: bool) -> Vec<StreamEvent> {
    let mut d = codec().stream_decoder();
    let mut out = Vec::new();
    for (name, data) in events {
        d.event(Some(name), &data.to_string(), &mut out);
    }
    if end {
        d.end(&mut out);
    }
    out
}

fn encode_stream(events: &[StreamEvent]) -> Vec<(String, Value)> {
    let mut e = codec().stream_encoder(&ctx());
    let mut out = Vec::new();
    for ev in events {
        e.event(ev, &mut out);
    }
    out.into_iter()
        .map(|ev| {
            (
                ev.name.unwrap_or("").to_string(),
                serde_json::from_str(&ev.data).unwrap(),
            )
        })
        .collect()
}

/// Asserts the IR stream invariant: Start, sequential parts, then Finish or Error.
fn assert_well_formed(events: &[StreamEvent]) {
    assert!(matches!(events.first(), Some(StreamEvent::Start { .. })), "{events:#?}");
    let mut open: Option<usize> = None;
    let mut next = 0;
    for (i, ev) in events.iter().enumerate().skip(1) {
        let last = i == events.len() - 1;
        match ev {
            StreamEvent::Start { .. } => panic!("second Start: {events:#?}"),
            StreamEvent::PartStart { index, .. } => {
                assert!(open.is_none() && *index == next, "{events:#?}");
                open = Some(*index);
                next += 1;
            }
            StreamEvent::Delta { index, .. } => assert_eq!(open, Some(*index), "{events:#?}"),
            StreamEvent::PartStop { index } => {
                assert_eq!(open.take(), Some(*index), "{events:#?}");
            }
            StreamEvent::Finish { .. } => assert!(last && open.is_none(), "{events:#?}"),
            StreamEvent::Error(_) => assert!(last, "{events:#?}"),
        }
    }
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Finish { .. } | StreamEvent::Error(_))
    ));
}

#[test]
fn input_tokens_include_cached_tokens_so_decoding_subtracts_and_encoding_adds_them_back() {
    let u = usage_of(&json!({
        "input_tokens": 1000, "input_tokens_details": {"cached_tokens": 800},
        "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 1050
    }));
    assert_eq!(u.input_tokens, Some(200));
    assert_eq!(u.cache_read_tokens, Some(800));
    assert_eq!(u.reasoning_tokens, Some(20));
    let mut notes = Notes::default();
    let back = encode_usage(&u, &mut notes);
    assert_eq!(back["input_tokens"], 1000);
    assert_eq!(back["input_tokens_details"]["cached_tokens"], 800);
    assert_eq!(back["total_tokens"], 1050);
    assert!(notes.is_empty());
}

#[test]
fn cache_write_tokens_are_counted_as_input_and_noted() {
    let u = TokenUsage {
        input_tokens: Some(10),
        cache_read_tokens: Some(5),
        cache_write_tokens: Some(100),
        output_tokens: Some(1),
        reasoning_tokens: None,
    };
    let mut notes = Notes::default();
    let v = encode_usage(&u, &mut notes);
    assert_eq!(v["input_tokens"], 115);
    assert_eq!(v["output_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(notes.0.len(), 1);
}

#[test]
fn completed_with_a_function_call_is_tool_use_and_incomplete_names_its_reason() {
    let obj = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(
        stop_of(&obj(json!({"status": "completed"})), true),
        Some(StopReason::ToolUse)
    );
    assert_eq!(
        stop_of(&obj(json!({"status": "completed"})), false),
        Some(StopReason::EndTurn)
    );
    assert_eq!(
        stop_of(
            &obj(json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}})),
            false
        ),
        Some(StopReason::MaxTokens)
    );
    assert_eq!(
        stop_of(
            &obj(json!({"status": "incomplete", "incomplete_details": {"reason": "content_filter"}})),
            false
        ),
        Some(StopReason::ContentFilter)
    );
    let mut notes = Notes::default();
    assert_eq!(
        status_for(Some(&StopReason::MaxTokens), &mut notes),
        ("incomplete", json!({"reason": "max_output_tokens"}))
    );
    assert_eq!(status_for(Some(&StopReason::StopSequence), &mut notes).0, "completed");
    assert!(notes.is_empty());
}

#[test]
fn a_request_continuing_a_stored_response_is_unsupported() {
    let err = codec()
        .decode_request(
            br#"{"model":"m","previous_response_id":"resp_1","input":"hi"}"#,
            &mut Notes::default(),
        )
        .unwrap_err();
    assert!(matches!(err, TranslateError::Unsupported { .. }), "{err}");
    // Codex sends an explicit null: that is a stateless request.
    assert!(codec()
        .decode_request(
            br#"{"model":"m","previous_response_id":null,"input":"hi"}"#,
            &mut Notes::default()
        )
        .is_ok());
}

#[test]
fn malformed_requests_are_errors_that_do_not_quote_the_body() {
    for body in [
        &b"not json secret-token"[..],
        br#"["secret-token"]"#,
        br#"{"input": 5}"#,
        br#"{"input": [{"type":"function_call","name":"x"}]}"#,
        br#"{"input": [{"role":"wizard","content":"secret-token"}]}"#,
        br#"{"tools": [{"type":"function"}]}"#,
        br#"{"max_output_tokens": "secret-token"}"#,
    ] {
        let err = codec().decode_request(body, &mut Notes::default()).unwrap_err();
        assert!(matches!(err, TranslateError::Malformed { .. }), "{err}");
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }
}

#[test]
fn assistant_items_form_one_turn_and_tool_outputs_one_user_turn_that_the_next_user_message_joins() {
    let req = codec()
        .decode_request(
            br#"{"model":"m","input":[
            {"role":"user","content":"go"},
            {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"enc"},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"calling"}]},
            {"type":"function_call","call_id":"c1","name":"a","arguments":""},
            {"type":"function_call","call_id":"c2","name":"b","arguments":"{\"x\":1}"},
            {"type":"function_call_output","call_id":"c1","output":"one"},
            {"type":"function_call_output","call_id":"c2","output":"two"},
            {"role":"user","content":"thanks"},
            {"role":"user","content":"again"}
        ]}"#,
            &mut Notes::default(),
        )
        .unwrap();
    let shape: Vec<(Role, usize)> = req.messages.iter().map(|m| (m.role, m.parts.len())).collect();
    assert_eq!(
        shape,
        vec![(Role::User, 1), (Role::Assistant, 4), (Role::User, 3), (Role::User, 1)]
    );
    assert!(matches!(&req.messages[1].parts[2], Part::ToolCall(c) if c.arguments == "{}"));
}

#[test]
fn function_tools_are_encoded_non_strict_because_responses_defaults_to_strict() {
    let req = ir::Request {
        tools: vec![Tool {
            name: "t".into(),
            description: None,
            parameters: json!({"type": "object"}),
            cache_control: None,
            kind: Default::default(),
            strict: None,
        }],
        ..Default::default()
    };
    let v = encode_request(&req, &mut Notes::default());
    assert_eq!(v["tools"][0]["strict"], false);
    assert_eq!(v["store"], false);
}

#[test]
fn a_reasoning_budget_becomes_an_effort_by_thresholds_and_asks_for_encrypted_reasoning() {
    let mut notes = Notes::default();
    let req = ir::Request {
        reasoning: Some(ir::Reasoning {
            effort: None,
            budget_tokens: Some(10_000),
        }),
        stop: vec!["END".into()],
        ..Default::default()
    };
    let v = encode_request(&req, &mut notes);
    assert_eq!(v["reasoning"], json!({"effort": "medium"}));
    assert_eq!(v["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(effort_for_budget(1024), "low");
    assert_eq!(effort_for_budget(32_000), "high");
    assert_eq!(notes.0.len(), 2, "{notes:?}");
}

#[test]
fn own_reasoning_is_replayed_with_its_id_and_encrypted_content_and_foreign_thinking_is_dropped() {
    let mut notes = Notes::default();
    let req = ir::Request {
        messages: vec![Message {
            role: Role::Assistant,
            parts: vec![
                Part::Thinking(Thinking {
                    text: "sum".into(),
                    origin: "openai",
                    signature: None,
                    encrypted: Some("gAAA==".into()),
                    id: Some("rs_9".into()),
                }),
                Part::Thinking(Thinking {
                    text: "claude thought".into(),
                    origin: "anthropic",
                    signature: Some("sig".into()),
                    encrypted: None,
                    id: None,
                }),
            ],
        }],
        ..Default::default()
    };
    let v = encode_request(&req, &mut notes);
    assert_eq!(
        v["input"],
        json!([{"type": "reasoning", "id": "rs_9", "summary": [{"type": "summary_text", "text": "sum"}], "encrypted_content": "gAAA=="}])
    );
    assert_eq!(v["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(notes.0, vec!["thinking of origin anthropic".to_string()]);
}

#[test]
fn freeform_tool_calls_stream_as_json_arguments_with_the_input_escaped() {
    let events = decode_stream(
        &[
            (
                "response.created",
                json!({"type":"response.created","response":{"id":"resp_1","model":"m"}}),
            ),
            (
                "response.output_item.added",
                json!({"type":"response.output_item.added","output_index":0,
                "item":{"id":"ctc_1","type":"custom_tool_call","call_id":"call_c","name":"exec","input":""}}),
            ),
            (
                "response.custom_tool_call_input.delta",
                json!({"type":"response.custom_tool_call_input.delta","item_id":"ctc_1","delta":"say(\"hi"}),
            ),
            (
                "response.custom_tool_call_input.done",
                json!({"type":"response.custom_tool_call_input.done","item_id":"ctc_1","input":"say(\"hi\")\n"}),
            ),
            (
                "response.output_item.done",
                json!({"type":"response.output_item.done","item":{"id":"ctc_1","type":"custom_tool_call","call_id":"call_c","name":"exec","input":"say(\"hi\")\n"}}),
            ),
            (
                "response.completed",
                json!({"type":"response.completed","response":{"id":"resp_1","status":"completed","output":[]}}),
            ),
        ],
        false,
    );
    assert_well_formed(&events);
    let args: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta {
                delta: Delta::ToolArguments(a),
                ..
            } => Some(a.as_str()),
            _ => None,
        })
        .collect();
    let parsed: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(parsed, json!({"input": "say(\"hi\")\n"}));
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Finish {
            stop: Some(StopReason::ToolUse),
            ..
        })
    ));
}

#[test]
fn done_events_fill_in_text_the_deltas_missed() {
    let events = decode_stream(
        &[
            (
                "response.output_text.delta",
                json!({"type":"response.output_text.delta","item_id":"m1","content_index":0,"delta":"Hel"}),
            ),
            (
                "response.output_text.done",
                json!({"type":"response.output_text.done","item_id":"m1","content_index":0,"text":"Hello"}),
            ),
        ],
        true,
    );
    assert_well_formed(&events);
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta {
                delta: Delta::Text(t), ..
            } => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Hello");
}

#[test]
fn items_only_in_response_completed_still_become_parts() {
    let events = decode_stream(
        &[(
            "response.completed",
            json!({"type":"response.completed","response":{"id":"r","model":"m","status":"completed","output":[
                {"id":"msg_1","type":"message","role":"assistant","content":[{"type":"output_text","text":"hi"}]},
                {"id":"fc_1","type":"function_call","call_id":"c","name":"f","arguments":"{}"}
            ],"usage":{"input_tokens":3,"output_tokens":2}}}),
        )],
        false,
    );
    assert_well_formed(&events);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::PartStart { .. }))
            .count(),
        2
    );
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Finish {
            stop: Some(StopReason::ToolUse),
            ..
        })
    ));
}

#[test]
fn a_stream_cut_off_mid_part_ends_in_an_error_never_a_finish() {
    let events = decode_stream(
        &[
            (
                "response.created",
                json!({"type":"response.created","response":{"id":"resp_1","model":"m"}}),
            ),
            (
                "response.output_item.added",
                json!({"type":"response.output_item.added","item":{"id":"fc_1","type":"function_call","call_id":"c","name":"f","arguments":""}}),
            ),
            (
                "response.function_call_arguments.delta",
                json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":"{\"a\""}),
            ),
        ],
        true,
    );
    assert_eq!(events.last(), Some(&StreamEvent::Error(ir::ApiError::stream_cut())));
    assert!(
        !events.iter().any(|e| matches!(e, StreamEvent::Finish { .. })),
        "{events:?}"
    );
}

#[test]
fn events_after_the_terminal_event_and_garbage_are_ignored() {
    let mut d = codec().stream_decoder();
    let mut out = Vec::new();
    d.event(Some("x"), "not json", &mut out);
    d.event(
        None,
        r#"{"type":"error","code":"rate_limit_exceeded","message":"slow"}"#,
        &mut out,
    );
    d.event(None, r#"{"type":"response.completed","response":{}}"#, &mut out);
    d.end(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0],
        StreamEvent::Error(ApiError {
            status: 429,
            kind: ErrorKind::RateLimit,
            message: "slow".into(),
            code: Some("rate_limit_exceeded".into()),
        })
    );
}

#[test]
fn the_encoder_numbers_every_event_and_done_events_carry_the_full_text() {
    let events = encode_stream(&[
        StreamEvent::Start {
            id: "msg_01".into(),
            model: "claude".into(),
            usage: TokenUsage::default(),
        },
        StreamEvent::PartStart {
            index: 0,
            part: PartStart::Thinking {
                origin: "anthropic",
                id: None,
            },
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Thinking("hm".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Signature("sig".into()),
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::PartStart {
            index: 1,
            part: PartStart::Text,
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::Text("Hel".into()),
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::Text("lo".into()),
        },
        StreamEvent::PartStop { index: 1 },
        StreamEvent::PartStart {
            index: 2,
            part: PartStart::ToolCall {
                id: "toolu_1".into(),
                name: "f".into(),
            },
        },
        StreamEvent::Delta {
            index: 2,
            delta: Delta::ToolArguments("{\"a\":".into()),
        },
        StreamEvent::Delta {
            index: 2,
            delta: Delta::ToolArguments("1}".into()),
        },
        StreamEvent::PartStop { index: 2 },
        StreamEvent::Finish {
            stop: Some(StopReason::ToolUse),
            usage: TokenUsage {
                input_tokens: Some(7),
                output_tokens: Some(3),
                ..Default::default()
            },
        },
    ]);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "{name}");
        assert_eq!(data["type"], name.as_str());
    }
    let find = |ty: &str| events.iter().find(|(n, _)| n == ty).map(|(_, d)| d.clone()).unwrap();
    assert_eq!(find("response.output_text.done")["text"], "Hello");
    assert_eq!(find("response.function_call_arguments.done")["arguments"], "{\"a\":1}");
    assert_eq!(find("response.reasoning_summary_text.done")["text"], "hm");
    let done = find("response.completed");
    assert_eq!(done["response"]["id"], "resp_seed");
    assert_eq!(done["response"]["model"], "gpt-5");
    assert_eq!(done["response"]["output"].as_array().unwrap().len(), 3);
    assert_eq!(done["response"]["output"][2]["call_id"], "toolu_1");
    assert_eq!(done["response"]["usage"]["total_tokens"], 10);
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events[1].0, "response.in_progress");
}

#[test]
fn the_encoder_is_total_on_out_of_order_events() {
    let events = encode_stream(&[
        StreamEvent::Delta {
            index: 3,
            delta: Delta::Text("x".into()),
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::PartStart {
            index: 0,
            part: PartStart::Text,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::ToolArguments("{".into()),
        },
        StreamEvent::Finish {
            stop: Some(StopReason::MaxTokens),
            usage: TokenUsage::default(),
        },
        StreamEvent::Finish {
            stop: None,
            usage: TokenUsage::default(),
        },
    ]);
    let last = &events.last().unwrap().1;
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(
        events
            .iter()
            .filter(|(n, _)| n.starts_with("response.incomplete"))
            .count(),
        1
    );
}

#[test]
fn a_stream_error_is_an_error_event_then_response_failed() {
    let events = encode_stream(&[StreamEvent::Error(ApiError {
        status: 529,
        kind: ErrorKind::Overloaded,
        message: "busy".into(),
        code: None,
    })]);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["response.created", "response.in_progress", "error", "response.failed"]
    );
    assert_eq!(events[2].1["code"], "server_is_overloaded");
    assert_eq!(events[3].1["response"]["error"]["message"], "busy");
}

#[test]
fn error_bodies_are_read_by_code_and_status_and_any_body_survives() {
    let c = codec();
    let e = c.decode_error(
        429,
        br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    );
    assert_eq!((e.kind, e.status), (ErrorKind::RateLimit, 429));
    let e = c.decode_error(
        400,
        br#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
    );
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    let e = c.decode_error(502, b"<html>bad gateway secret</html>");
    assert_eq!(e.kind, ErrorKind::Server);
    assert!(!e.message.contains("secret"));
    let e = c.decode_error(
        200,
        br#"{"type":"error","code":"server_is_overloaded","message":"busy"}"#,
    );
    assert_eq!((e.kind, e.status), (ErrorKind::Overloaded, 503));
    let body: Value = serde_json::from_slice(&c.encode_error(&e)).unwrap();
    assert_eq!(body["error"]["code"], "server_is_overloaded");
    assert_eq!(body["error"]["message"], "busy");
    assert!(body["error"]["param"].is_null());
}

#[test]
fn a_reasoning_item_with_only_encrypted_content_streams_as_a_thinking_part_holding_it() {
    let rs = json!({"id":"rs_1","type":"reasoning","summary":[],"encrypted_content":"gAAA"});
    let events = decode_stream(
        &[
            (
                "response.output_item.added",
                json!({"type":"response.output_item.added","output_index":0,"item":rs}),
            ),
            (
                "response.output_item.done",
                json!({"type":"response.output_item.done","output_index":0,"item":rs}),
            ),
            (
                "response.completed",
                json!({"type":"response.completed","response":{"status":"completed","output":[rs]}}),
            ),
        ],
        false,
    );
    assert_well_formed(&events);
    assert_eq!(
        events[1..4],
        [
            StreamEvent::PartStart {
                index: 0,
                part: PartStart::Thinking {
                    origin: "openai",
                    id: Some("rs_1".into()),
                },
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Encrypted("gAAA".into()),
            },
            StreamEvent::PartStop { index: 0 },
        ],
        "{events:#?}"
    );
    assert_eq!(events.len(), 5, "{events:#?}");
}

#[test]
fn reasoning_summary_parts_join_with_a_blank_line_into_one_thinking_part() {
    let ev = |ty: &str, extra: Value| {
        let mut v = json!({"type": ty, "item_id": "rs_1", "output_index": 0});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        (ty.to_string(), v)
    };
    let events: Vec<(String, Value)> = vec![
        (
            "response.output_item.added".into(),
            json!({"type":"response.output_item.added","item":{"id":"rs_1","type":"reasoning","summary":[]}}),
        ),
        ev("response.reasoning_summary_part.added", json!({"summary_index": 0})),
        ev(
            "response.reasoning_summary_text.done",
            json!({"summary_index": 0, "text": ""}),
        ),
        ev("response.reasoning_summary_part.added", json!({"summary_index": 1})),
        ev(
            "response.reasoning_summary_text.delta",
            json!({"summary_index": 1, "delta": "A"}),
        ),
        ev("response.reasoning_summary_part.added", json!({"summary_index": 2})),
        ev(
            "response.reasoning_summary_text.done",
            json!({"summary_index": 2, "text": "B"}),
        ),
    ];
    let refs: Vec<(&str, Value)> = events.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let out = decode_stream(&refs, true);
    assert_well_formed(&out);
    let text: String = out
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta {
                delta: Delta::Thinking(t),
                ..
            } => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "A\n\nB");
}

#[test]
fn a_user_id_longer_than_openai_accepts_is_sent_as_its_stable_hash() {
    let long = format!("user_{}_account__session_{}", "a".repeat(64), "b".repeat(36));
    let req = ir::Request {
        user: Some(long),
        ..Default::default()
    };
    let mut notes = Notes::default();
    let first = encode_request(&req, &mut notes)["user"].clone();
    let second = encode_request(&req, &mut Notes::default())["user"].clone();
    assert_eq!(first.as_str().unwrap().len(), 64);
    assert_eq!(first, second);
    assert_eq!(notes.0.len(), 1);
    let short = ir::Request {
        user: Some("user-1234".into()),
        ..Default::default()
    };
    assert_eq!(encode_request(&short, &mut Notes::default())["user"], "user-1234");
}

#[test]
fn a_reasoning_item_id_is_the_thinking_id_not_its_signature() {
    let req = codec()
        .decode_request(
            br#"{"model":"m","input":[{"type":"reasoning","id":"rs_7","summary":[],"encrypted_content":"enc"}]}"#,
            &mut Notes::default(),
        )
        .unwrap();
    let Part::Thinking(t) = &req.messages[0].parts[0] else {
        panic!("{req:?}")
    };
    assert_eq!((t.id.as_deref(), t.signature.as_deref()), (Some("rs_7"), None));
}

#[test]
fn hosted_tools_their_items_and_structured_output_are_noted_by_name() {
    let mut notes = Notes::default();
    codec()
        .decode_request(
            br#"{"model":"m","text":{"format":{"type":"json_schema","name":"x","schema":{}}},
                "tools":[{"type":"web_search"}],
                "input":[{"type":"web_search_call","id":"ws_1","status":"completed"},
                         {"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}"#,
            &mut notes,
        )
        .unwrap();
    assert_eq!(
        notes.0,
        vec![
            "web_search_call items",
            "input_file parts",
            "web_search tools",
            "text.format"
        ]
    );
}
