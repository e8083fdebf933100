//! Golden tests of the OpenAI Responses codec. Each directory under
//! tests/translate/responses/<case>/ holds inputs in the Responses shape
//! (`request.json`, `response.json`, `stream.sse`, `error.json` with its
//! HTTP status in `error.status`); the test writes/compares, byte-exact:
//! `*.ir.txt` (the decoded IR, `{:#?}`), `*.reencoded.json` /
//! `stream.reencoded.sse` (decoded then encoded again in the Responses
//! shape) and `*.notes.txt` (what encoding could not carry, when anything).
//! `UPDATE_GOLDEN=1 cargo test -p promptwall-llm --test translate_responses`
//! regenerates them.

use std::path::{Path, PathBuf};

use promptwall_llm::translate::ir::{self, Part, Role, StreamEvent};
use promptwall_llm::translate::responses::ResponsesCodec;
use promptwall_llm::translate::{Codec, Notes, ResponseContext};
use serde_json::Value;

#[path = "common/golden_files.rs"]
mod golden_files;
use golden_files::{check, check_notes};

fn pretty(json: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(json).expect("the encoder wrote JSON");
    (serde_json::to_string_pretty(&v).unwrap() + "\n").into_bytes()
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: String::new(),
        created: 1_767_225_600,
        id_seed: "golden".into(),
        stream_usage: true,
        freeform_tools: Vec::new(),
    }
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/responses");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "golden cases missing");
    dirs
}

/// SSE text as (event name, data) pairs.
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let mut name = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim_start().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            out.push((name, data.join("\n")));
        }
    }
    out
}

/// The IR stream invariant every decoder promises (see `ir::StreamEvent`).
fn assert_well_formed(events: &[StreamEvent], case: &str) {
    assert!(
        matches!(events.first(), Some(StreamEvent::Start { .. })),
        "{case}: no Start first"
    );
    let mut open = None;
    let mut next = 0;
    for (i, ev) in events.iter().enumerate().skip(1) {
        let last = i + 1 == events.len();
        match ev {
            StreamEvent::Start { .. } => panic!("{case}: second Start"),
            StreamEvent::PartStart { index, .. } => {
                assert!(open.is_none() && *index == next, "{case}: part {index} out of order");
                open = Some(*index);
                next += 1;
            }
            StreamEvent::Delta { index, .. } => assert_eq!(open, Some(*index), "{case}: delta outside its part"),
            StreamEvent::PartStop { index } => assert_eq!(open.take(), Some(*index), "{case}: stray stop"),
            StreamEvent::Finish { .. } => assert!(last && open.is_none(), "{case}: Finish not last"),
            StreamEvent::Error(_) => assert!(last, "{case}: Error not last"),
        }
    }
    assert!(
        matches!(events.last(), Some(StreamEvent::Finish { .. } | StreamEvent::Error(_))),
        "{case}: no Finish or Error last"
    );
}

#[test]
fn golden_cases() {
    let codec = ResponsesCodec;
    for dir in cases() {
        let case = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut seen = false;

        if let Ok(body) = std::fs::read(dir.join("request.json")) {
            seen = true;
            // Notes of decoding and encoding together: all the round trip lost.
            let mut notes = Notes::default();
            let decoded = codec.decode_request(&body, &mut notes);
            check(&dir.join("request.ir.txt"), format!("{decoded:#?}\n").as_bytes());
            if let Ok(req) = decoded {
                let out = codec.encode_request(&req, &mut notes);
                check(&dir.join("request.reencoded.json"), &pretty(&out));
                check_notes(&dir.join("request.notes.txt"), &notes);
                // Encoding then decoding again gives the same IR where the
                // shape can say it (tool results, turns, tools, choices).
                let again = codec.decode_request(&out, &mut Notes::default()).unwrap();
                assert_eq!(again.messages.len(), req.messages.len(), "{case}: turns");
                assert_eq!(again.tools.len(), req.tools.len(), "{case}: tools");
                assert_eq!(again.tool_choice, req.tool_choice, "{case}: tool_choice");
            }
        }

        if let Ok(body) = std::fs::read(dir.join("response.json")) {
            seen = true;
            let mut notes = Notes::default();
            let resp = codec
                .decode_response(&body, &mut notes)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            check(&dir.join("response.ir.txt"), format!("{resp:#?}\n").as_bytes());
            let out = codec.encode_response(&resp, &ctx(), &mut notes);
            check(&dir.join("response.reencoded.json"), &pretty(&out));
            check_notes(&dir.join("response.notes.txt"), &notes);
            let again = codec.decode_response(&out, &mut Notes::default()).unwrap();
            assert_eq!(again.parts, resp.parts, "{case}: parts survive a round trip");
            assert_eq!(again.stop, resp.stop, "{case}: stop survives a round trip");
            assert_eq!(again.usage, resp.usage, "{case}: usage survives a round trip");
        }

        if let Ok(text) = std::fs::read_to_string(dir.join("stream.sse")) {
            seen = true;
            let mut decoder = codec.stream_decoder();
            let mut events = Vec::new();
            for (name, data) in sse_events(&text) {
                decoder.event(name.as_deref(), &data, &mut events);
            }
            decoder.end(&mut events);
            assert_well_formed(&events, &case);
            check(&dir.join("stream.ir.txt"), format!("{events:#?}\n").as_bytes());
            let mut encoder = codec.stream_encoder(&ctx());
            let mut out = Vec::new();
            for ev in &events {
                encoder.event(ev, &mut out);
            }
            let sse: String = out.iter().map(|e| e.to_sse()).collect();
            check(&dir.join("stream.reencoded.sse"), sse.as_bytes());
            let mut notes = decoder.notes().clone();
            notes.extend(encoder.notes());
            check_notes(&dir.join("stream.notes.txt"), &notes);
            // Our own stream decodes to the same events (ids aside).
            let mut decoder = codec.stream_decoder();
            let mut again = Vec::new();
            for (name, data) in sse_events(&sse) {
                decoder.event(name.as_deref(), &data, &mut again);
            }
            decoder.end(&mut again);
            assert_eq!(again.len(), events.len(), "{case}: re-decoded stream length");
            let n = events.len();
            assert_eq!(again[1..n - 1], events[1..n - 1], "{case}: re-decoded stream");
            match (&again[n - 1], &events[n - 1]) {
                // An in-stream error event carries no status: kind and words survive.
                (StreamEvent::Error(x), StreamEvent::Error(y)) => {
                    assert_eq!((x.kind, &x.message), (y.kind, &y.message), "{case}: re-decoded end")
                }
                (x, y) => assert_eq!(x, y, "{case}: re-decoded end"),
            }
        }

        if let Ok(body) = std::fs::read(dir.join("error.json")) {
            seen = true;
            let status: u16 = std::fs::read_to_string(dir.join("error.status"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let err = codec.decode_error(status, &body);
            check(&dir.join("error.ir.txt"), format!("{err:#?}\n").as_bytes());
            check(&dir.join("error.reencoded.json"), &pretty(&codec.encode_error(&err)));
            check(
                &dir.join("error.stream.sse"),
                codec.encode_stream_error(&err).to_sse().as_bytes(),
            );
        }

        assert!(seen, "{case}: no input file");
    }
}

fn thinking(origin: &'static str, signature: Option<&str>) -> Part {
    Part::Thinking(ir::Thinking {
        text: "Weighing the two options.".into(),
        origin,
        signature: signature.map(str::to_string),
        encrypted: None,
        id: None,
    })
}

#[test]
fn foreign_thinking_is_dropped_from_requests_and_noted() {
    let req = ir::Request {
        model: "gpt-5".into(),
        messages: vec![
            ir::Message {
                role: Role::User,
                parts: vec![Part::Text(ir::Text {
                    text: "pick one".into(),
                    cache_control: None,
                })],
            },
            ir::Message {
                role: Role::Assistant,
                parts: vec![
                    thinking("anthropic", Some("EqQBCkYIBxgCKkDsig==")),
                    Part::Text(ir::Text {
                        text: "The first.".into(),
                        cache_control: None,
                    }),
                ],
            },
        ],
        ..Default::default()
    };
    let mut notes = Notes::default();
    let out: Value = serde_json::from_slice(&ResponsesCodec.encode_request(&req, &mut notes)).unwrap();
    let input = out["input"].as_array().unwrap();
    assert_eq!(input.len(), 2);
    assert!(input.iter().all(|i| i["type"] == "message"), "{input:#?}");
    assert!(!out.to_string().contains("EqQBCkYIBxgCKkDsig=="));
    assert!(out.get("include").is_none(), "no reasoning to ask for");
    assert_eq!(notes.0, vec!["thinking of origin anthropic".to_string()]);
}

#[test]
fn foreign_thinking_in_an_answer_keeps_its_text_as_a_summary_and_drops_the_signature() {
    let resp = ir::Response {
        id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
        model: "claude-opus-4-8".into(),
        parts: vec![thinking("anthropic", Some("EqQBCkYIBxgCKkDsig=="))],
        stop: Some(ir::StopReason::EndTurn),
        usage: ir::TokenUsage::default(),
    };
    let mut notes = Notes::default();
    let out: Value = serde_json::from_slice(&ResponsesCodec.encode_response(&resp, &ctx(), &mut notes)).unwrap();
    assert_eq!(out["id"], "resp_golden");
    assert_eq!(out["output"][0]["type"], "reasoning");
    assert_eq!(out["output"][0]["summary"][0]["text"], "Weighing the two options.");
    assert!(!out.to_string().contains("EqQBCkYIBxgCKkDsig=="));
    assert_eq!(notes.0, vec!["thinking signature of origin anthropic".to_string()]);
}

#[test]
fn every_ir_part_and_stop_reason_encodes_without_panicking() {
    let parts = vec![
        Part::Text(ir::Text::default()),
        Part::Image(ir::Image::Url("https://example.com/a.png".into())),
        Part::Image(ir::Image::Base64 {
            media_type: "image/png".into(),
            data: "AAAA".into(),
        }),
        Part::ToolCall(ir::ToolCall {
            id: String::new(),
            name: String::new(),
            arguments: String::new(),
        }),
        Part::ToolResult(ir::ToolResult {
            call_id: "c".into(),
            content: vec![Part::ToolCall(ir::ToolCall {
                id: "x".into(),
                name: "y".into(),
                arguments: "{}".into(),
            })],
            is_error: true,
        }),
        thinking("", None),
        thinking("openai", None),
    ];
    let stops = [
        None,
        Some(ir::StopReason::EndTurn),
        Some(ir::StopReason::MaxTokens),
        Some(ir::StopReason::StopSequence),
        Some(ir::StopReason::ToolUse),
        Some(ir::StopReason::ContentFilter),
        Some(ir::StopReason::Other("pause_turn".into())),
    ];
    for role in [Role::User, Role::Assistant] {
        let req = ir::Request {
            system: vec![ir::Text::default(), ir::Text::default()],
            messages: vec![ir::Message {
                role,
                parts: parts.clone(),
            }],
            reasoning: Some(ir::Reasoning::default()),
            ..Default::default()
        };
        let out = ResponsesCodec.encode_request(&req, &mut Notes::default());
        ResponsesCodec.decode_request(&out, &mut Notes::default()).unwrap();
    }
    for stop in stops {
        let resp = ir::Response {
            parts: parts.clone(),
            stop,
            ..Default::default()
        };
        let out = ResponsesCodec.encode_response(&resp, &ResponseContext::default(), &mut Notes::default());
        ResponsesCodec.decode_response(&out, &mut Notes::default()).unwrap();
    }
}
