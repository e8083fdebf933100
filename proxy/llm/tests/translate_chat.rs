//! Golden tests of the Chat Completions codec: each directory under
//! tests/translate/chat/<case>/ holds inputs in Chat's shape (any of
//! `request.json`, `response.json`, `stream.sse`, `error.json` with its
//! HTTP status in `status.txt`) and the expected outputs: the decoded IR
//! (`*.ir.txt`), the input decoded then encoded again (`*.reencoded.*`),
//! and what the encoder noted as dropped (`*.notes.txt`, only when it
//! noted something). `UPDATE_GOLDEN=1 cargo test -p promptwall-llm --test
//! translate_chat` regenerates the expected files.

use std::path::{Path, PathBuf};

use promptwall_llm::translate::ir::{self, StreamEvent};
use promptwall_llm::translate::{Codec, Notes, ResponseContext};
use promptwall_llm::ApiShape;

#[path = "common/golden_files.rs"]
mod golden_files;
use golden_files::{check, check_notes};

fn codec() -> &'static dyn Codec {
    ApiShape::OPENAI_CHAT.codec().expect("Chat Completions has a codec")
}

fn ctx() -> ResponseContext {
    ResponseContext {
        // Empty: answers keep the upstream's model, so a round trip shows it.
        client_model: String::new(),
        created: 1_735_689_600,
        id_seed: "golden".into(),
        stream_usage: true,
        freeform_tools: Vec::new(),
    }
}

fn pretty(body: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("the encoder writes JSON");
    (serde_json::to_string_pretty(&v).unwrap() + "\n").into_bytes()
}

/// An SSE text as (event name, joined data) pairs.
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
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

fn decode_stream(text: &str) -> Vec<StreamEvent> {
    let mut d = codec().stream_decoder();
    let mut out = Vec::new();
    for (name, data) in sse_events(text) {
        d.event(name.as_deref(), &data, &mut out);
    }
    d.end(&mut out);
    out
}

/// The IR's stream contract: Start first, parts one at a time with
/// increasing indices, Finish or Error last.
fn assert_well_formed(events: &[StreamEvent], case: &str) {
    let mut open: Option<usize> = None;
    let mut next = 0;
    for (i, e) in events.iter().enumerate() {
        match e {
            StreamEvent::Start { .. } => assert_eq!(i, 0, "{case}: Start is first"),
            StreamEvent::PartStart { index, .. } => {
                assert!(open.is_none(), "{case}: a part starts while another is open");
                assert_eq!(*index, next, "{case}: part indices increase by one");
                open = Some(*index);
            }
            StreamEvent::Delta { index, .. } => assert_eq!(open, Some(*index), "{case}: delta of the open part"),
            StreamEvent::PartStop { index } => {
                assert_eq!(open.take(), Some(*index), "{case}: stop of the open part");
                next += 1;
            }
            StreamEvent::Finish { .. } => {
                assert!(open.is_none(), "{case}: Finish with a part open");
                assert_eq!(i, events.len() - 1, "{case}: Finish is last");
            }
            StreamEvent::Error(_) => assert_eq!(i, events.len() - 1, "{case}: Error is last"),
        }
    }
    assert!(
        matches!(events.last(), Some(StreamEvent::Finish { .. } | StreamEvent::Error(_))),
        "{case}: the stream is closed"
    );
}

fn parts_only(events: &[StreamEvent]) -> Vec<&StreamEvent> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                StreamEvent::PartStart { .. } | StreamEvent::Delta { .. } | StreamEvent::PartStop { .. }
            )
        })
        .collect()
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/chat");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "golden cases missing");
    dirs
}

#[test]
fn every_case_decodes_and_reencodes_as_its_golden_files_say() {
    let c = codec();
    for dir in cases() {
        let case = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut any = false;

        if let Ok(body) = std::fs::read(dir.join("request.json")) {
            any = true;
            // Notes of decoding and encoding together: all the round trip lost.
            let mut notes = Notes::default();
            match c.decode_request(&body, &mut notes) {
                Ok(req) => {
                    check(&dir.join("request.ir.txt"), format!("{req:#?}\n").as_bytes());
                    let out = c.encode_request(&req, &mut notes);
                    check(&dir.join("request.reencoded.json"), &pretty(&out));
                    check_notes(&dir.join("request.notes.txt"), &notes);
                    // What the encoder writes reads back as the same request.
                    let again = c
                        .decode_request(&out, &mut Notes::default())
                        .expect("the encoder's request decodes");
                    assert_eq!(again, req, "{case}: request re-decode differs");
                }
                Err(e) => check(&dir.join("request.ir.txt"), format!("Err({e:?})\n").as_bytes()),
            }
        }

        if let Ok(body) = std::fs::read(dir.join("response.json")) {
            any = true;
            let mut notes = Notes::default();
            let resp = c.decode_response(&body, &mut notes).expect("response decodes");
            check(&dir.join("response.ir.txt"), format!("{resp:#?}\n").as_bytes());
            let out = c.encode_response(&resp, &ctx(), &mut notes);
            check(&dir.join("response.reencoded.json"), &pretty(&out));
            check_notes(&dir.join("response.notes.txt"), &notes);
            let again = c
                .decode_response(&out, &mut Notes::default())
                .expect("the encoder's response decodes");
            assert_eq!(again.parts, resp.parts, "{case}: response re-decode differs");
            assert_eq!(
                again.usage.total_input(),
                resp.usage.total_input(),
                "{case}: usage differs"
            );
        }

        if let Ok(text) = std::fs::read_to_string(dir.join("stream.sse")) {
            any = true;
            let events = decode_stream(&text);
            assert_well_formed(&events, &case);
            let ir_txt: String = events.iter().map(|e| format!("{e:?}\n")).collect();
            check(&dir.join("stream.ir.txt"), ir_txt.as_bytes());
            let mut enc = c.stream_encoder(&ctx());
            let mut out = Vec::new();
            for e in &events {
                enc.event(e, &mut out);
            }
            let sse: String = out.iter().map(|e| e.to_sse()).collect();
            check(&dir.join("stream.reencoded.sse"), sse.as_bytes());
            let again = decode_stream(&sse);
            assert_eq!(
                parts_only(&again),
                parts_only(&events),
                "{case}: stream re-decode differs"
            );
        }

        if let Ok(body) = std::fs::read(dir.join("error.json")) {
            any = true;
            let status: u16 = std::fs::read_to_string(dir.join("status.txt"))
                .expect("status.txt next to error.json")
                .trim()
                .parse()
                .expect("status.txt holds a number");
            let err = c.decode_error(status, &body);
            check(&dir.join("error.ir.txt"), format!("{err:#?}\n").as_bytes());
            check(&dir.join("error.reencoded.json"), &pretty(&c.encode_error(&err)));
            check(
                &dir.join("error.stream.sse"),
                c.encode_stream_error(&err).to_sse().as_bytes(),
            );
        }

        assert!(any, "{case}: no input file");
    }
}

#[test]
fn foreign_thinking_is_dropped_and_noted_while_own_reasoning_is_kept() {
    let req = ir::Request {
        model: "deepseek-reasoner".into(),
        messages: vec![
            ir::Message {
                role: ir::Role::User,
                parts: vec![ir::Part::Text(ir::Text {
                    text: "2+2?".into(),
                    cache_control: None,
                })],
            },
            ir::Message {
                role: ir::Role::Assistant,
                parts: vec![
                    ir::Part::Thinking(ir::Thinking {
                        text: "Simple arithmetic.".into(),
                        origin: "anthropic",
                        signature: Some("EqQBCkYIBxgCKkA".into()),
                        encrypted: None,
                        id: None,
                    }),
                    ir::Part::Thinking(ir::Thinking {
                        text: "Add them.".into(),
                        origin: "openai",
                        signature: None,
                        encrypted: None,
                        id: None,
                    }),
                    ir::Part::Text(ir::Text {
                        text: "4".into(),
                        cache_control: None,
                    }),
                ],
            },
        ],
        ..Default::default()
    };
    let mut notes = Notes::default();
    let body = codec().encode_request(&req, &mut notes);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["messages"][1],
        serde_json::json!({"role": "assistant", "content": "4", "reasoning_content": "Add them."})
    );
    assert_eq!(notes.0, vec!["thinking from anthropic".to_string()]);

    // The same in an answer.
    let resp = ir::Response {
        id: "msg_01".into(),
        model: "claude-sonnet-4-5".into(),
        parts: req.messages[1].parts.clone(),
        stop: Some(ir::StopReason::EndTurn),
        usage: ir::TokenUsage::default(),
    };
    let mut notes = Notes::default();
    let body = codec().encode_response(&resp, &ctx(), &mut notes);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], "Add them.");
    assert_eq!(notes.0, vec!["thinking from anthropic".to_string()]);
}

#[test]
fn every_encoder_is_total_on_odd_ir_values() {
    let odd = ir::Response {
        parts: vec![
            ir::Part::ToolResult(ir::ToolResult {
                call_id: String::new(),
                content: vec![],
                is_error: true,
            }),
            ir::Part::Image(ir::Image::Url(String::new())),
        ],
        stop: Some(ir::StopReason::Other(String::new())),
        ..Default::default()
    };
    let mut notes = Notes::default();
    let body = codec().encode_response(&odd, &ResponseContext::default(), &mut notes);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    assert!(!notes.is_empty());

    // Events out of order: the encoder still writes chunks, never panics.
    let mut enc = codec().stream_encoder(&ResponseContext::default());
    let mut out = Vec::new();
    for e in [
        StreamEvent::Delta {
            index: 3,
            delta: ir::Delta::ToolArguments("{".into()),
        },
        StreamEvent::PartStop { index: 9 },
        StreamEvent::Finish {
            stop: None,
            usage: ir::TokenUsage::default(),
        },
        StreamEvent::Finish {
            stop: None,
            usage: ir::TokenUsage::default(),
        },
    ] {
        enc.event(&e, &mut out);
    }
    assert_eq!(
        out.first().map(|e| e.data.contains("\"role\":\"assistant\"")),
        Some(true)
    );
    assert_eq!(out.last().map(|e| e.data.as_str()), Some("[DONE]"));
    assert_eq!(out.iter().filter(|e| e.data == "[DONE]").count(), 1);
}

#[test]
fn truncated_inputs_give_errors_or_values_never_panics() {
    let c = codec();
    for dir in cases() {
        for file in ["request.json", "response.json", "error.json"] {
            let Ok(body) = std::fs::read(dir.join(file)) else {
                continue;
            };
            for cut in 0..body.len() {
                let part = &body[..cut];
                let _ = c.decode_request(part, &mut Notes::default());
                let _ = c.decode_response(part, &mut Notes::default());
                let _ = c.decode_error(500, part);
            }
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("stream.sse")) {
            // Each event cut short, then the stream ends: still well formed.
            for (_, data) in sse_events(&text) {
                for cut in (0..data.len()).filter(|i| data.is_char_boundary(*i)) {
                    let mut d = c.stream_decoder();
                    let mut out = Vec::new();
                    d.event(None, &data[..cut], &mut out);
                    d.event(None, &data, &mut out);
                    d.end(&mut out);
                    assert_well_formed(&out, &dir.display().to_string());
                }
            }
        }
    }
}
