//! Golden tests of the Anthropic Messages codec. Each directory under
//! tests/translate/anthropic/<case>/ holds inputs in Anthropic's shape, any of
//! `request.json`, `response.json`, `stream.sse`, `error.body` (with its
//! status in `error.status`), and the expected outputs: `<input>.ir.txt`
//! (`{:#?}` of the decoded model), `<input>.reencoded.json|sse` (decoded then
//! encoded again) and `<input>.notes.txt` when the encoder noted a loss.
//! `UPDATE_GOLDEN=1 cargo test -p promptwall-llm --test translate_anthropic`
//! regenerates the expected files.

use std::path::{Path, PathBuf};

use promptwall_llm::translate::anthropic::AnthropicCodec;
use promptwall_llm::translate::ir::{self, Part, Role};
use promptwall_llm::translate::{Codec, Notes, ResponseContext};

#[path = "common/golden_files.rs"]
mod golden_files;
use golden_files::{check, check_notes};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/anthropic");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "golden cases missing");
    dirs
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: String::new(),
        created: 1_700_000_000,
        id_seed: "golden01".into(),
        stream_usage: true,
        freeform_tools: Vec::new(),
    }
}

fn pretty(bytes: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(bytes).expect("the encoder wrote JSON");
    (serde_json::to_string_pretty(&v).unwrap() + "\n").into_bytes()
}

/// (event name, data) of each SSE event; comments skipped, data lines joined.
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut name, mut data) = (None, Vec::new());
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if !data.is_empty() {
            out.push((name, data.join("\n")));
        }
    }
    out
}

fn run_case(dir: &Path) -> usize {
    let codec = AnthropicCodec;
    let mut outputs = 0;
    if let Ok(body) = std::fs::read(dir.join("request.json")) {
        // Notes of decoding and encoding together: all the round trip lost.
        let mut notes = Notes::default();
        let req = codec.decode_request(&body, &mut notes).expect("the request decodes");
        check(&dir.join("request.ir.txt"), format!("{req:#?}\n").as_bytes());
        let out = codec.encode_request(&req, &mut notes);
        check(&dir.join("request.reencoded.json"), &pretty(&out));
        check_notes(&dir.join("request.notes.txt"), &notes);
        outputs += 1;
    }
    if let Ok(body) = std::fs::read(dir.join("response.json")) {
        let mut notes = Notes::default();
        let resp = codec.decode_response(&body, &mut notes).expect("the response decodes");
        check(&dir.join("response.ir.txt"), format!("{resp:#?}\n").as_bytes());
        let out = codec.encode_response(&resp, &ctx(), &mut notes);
        check(&dir.join("response.reencoded.json"), &pretty(&out));
        check_notes(&dir.join("response.notes.txt"), &notes);
        outputs += 1;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("stream.sse")) {
        let mut decoder = codec.stream_decoder();
        let mut events = Vec::new();
        for (name, data) in sse_events(&text) {
            decoder.event(name.as_deref(), &data, &mut events);
        }
        decoder.end(&mut events);
        check(&dir.join("stream.ir.txt"), format!("{events:#?}\n").as_bytes());
        let mut encoder = codec.stream_encoder(&ctx());
        let mut wire = Vec::new();
        for ev in &events {
            encoder.event(ev, &mut wire);
        }
        let sse: String = wire.iter().map(|e| e.to_sse()).collect();
        check(&dir.join("stream.reencoded.sse"), sse.as_bytes());
        let mut notes = decoder.notes().clone();
        notes.extend(encoder.notes());
        check_notes(&dir.join("stream.notes.txt"), &notes);
        outputs += 1;
    }
    if let Ok(body) = std::fs::read(dir.join("error.body")) {
        let status: u16 = std::fs::read_to_string(dir.join("error.status"))
            .expect("error.status next to error.body")
            .trim()
            .parse()
            .expect("a status number");
        let err = codec.decode_error(status, &body);
        check(&dir.join("error.ir.txt"), format!("{err:#?}\n").as_bytes());
        check(&dir.join("error.reencoded.json"), &pretty(&codec.encode_error(&err)));
        check(
            &dir.join("error.stream.sse"),
            codec.encode_stream_error(&err).to_sse().as_bytes(),
        );
        outputs += 1;
    }
    outputs
}

#[test]
fn every_golden_case_decodes_and_reencodes_as_recorded() {
    for dir in cases() {
        assert!(run_case(&dir) > 0, "{} has no input", dir.display());
    }
}

/// A stream translated event by event gives the same sequence whatever
/// the upstream's event boundaries: a re-encoded stream read again gives
/// the events it was written from.
#[test]
fn a_reencoded_stream_decodes_to_the_same_events() {
    let codec = AnthropicCodec;
    for dir in cases() {
        let Ok(text) = std::fs::read_to_string(dir.join("stream.sse")) else {
            continue;
        };
        let decode = |text: &str| {
            let mut d = codec.stream_decoder();
            let mut events = Vec::new();
            for (name, data) in sse_events(text) {
                d.event(name.as_deref(), &data, &mut events);
            }
            d.end(&mut events);
            events
        };
        let first = decode(&text);
        let mut encoder = codec.stream_encoder(&ctx());
        let mut wire = Vec::new();
        for ev in &first {
            encoder.event(ev, &mut wire);
        }
        let sse: String = wire.iter().map(|e| e.to_sse()).collect();
        let second = decode(&sse);
        // Ids and models may have been filled in from the context; the rest is equal.
        assert_eq!(first.len(), second.len(), "{}", dir.display());
        for (a, b) in first.iter().zip(&second) {
            match (a, b) {
                (ir::StreamEvent::Start { usage: ua, .. }, ir::StreamEvent::Start { usage: ub, .. }) => {
                    assert_eq!(
                        ua.input_tokens.unwrap_or(0),
                        ub.input_tokens.unwrap_or(0),
                        "{}",
                        dir.display()
                    )
                }
                (ir::StreamEvent::Finish { stop: sa, .. }, ir::StreamEvent::Finish { stop: sb, .. }) => {
                    assert_eq!(sa, sb, "{}", dir.display())
                }
                // An in-stream error event has no status: its kind and words survive.
                (ir::StreamEvent::Error(ea), ir::StreamEvent::Error(eb)) => {
                    assert_eq!((ea.kind, &ea.message), (eb.kind, &eb.message), "{}", dir.display())
                }
                _ => assert_eq!(a, b, "{}", dir.display()),
            }
        }
    }
}

#[test]
fn thinking_from_another_provider_is_dropped_and_noted_while_anthropic_thinking_is_kept_byte_exact() {
    let signature = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds/+ySbXmuSEwhmqPGAdmrBp4Dv+kWAZSQnxuoa0z/7u=";
    let req = ir::Request {
        model: "claude-sonnet-4-5".into(),
        max_output_tokens: Some(2048),
        messages: vec![
            ir::Message {
                role: Role::User,
                parts: vec![Part::Text(ir::Text {
                    text: "Is 1013 prime?".into(),
                    cache_control: None,
                })],
            },
            ir::Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Thinking(ir::Thinking {
                        text: "**Checking divisors**".into(),
                        origin: "openai",
                        signature: None,
                        encrypted: Some("gAAAAABo-encrypted-reasoning".into()),
                        id: None,
                    }),
                    Part::Thinking(ir::Thinking {
                        text: "Divisors up to 31: none.".into(),
                        origin: "anthropic",
                        signature: Some(signature.into()),
                        encrypted: None,
                        id: None,
                    }),
                    Part::Text(ir::Text {
                        text: "Yes.".into(),
                        cache_control: None,
                    }),
                ],
            },
        ],
        ..Default::default()
    };
    let mut notes = Notes::default();
    let body = AnthropicCodec.encode_request(&req, &mut notes);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["messages"][1]["content"],
        serde_json::json!([
            {"type": "thinking", "thinking": "Divisors up to 31: none.", "signature": signature},
            {"type": "text", "text": "Yes."}
        ])
    );
    assert!(!String::from_utf8_lossy(&body).contains("gAAAAABo"));
    assert_eq!(
        notes.0,
        vec!["thinking from openai (its signature is only valid there)".to_string()]
    );

    // The same in an answer.
    let resp = ir::Response {
        id: "resp_1".into(),
        model: "gpt-5".into(),
        parts: req.messages[1].parts.clone(),
        stop: Some(ir::StopReason::EndTurn),
        usage: Default::default(),
    };
    let mut notes = Notes::default();
    let body = AnthropicCodec.encode_response(&resp, &ctx(), &mut notes);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["content"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["content"][0]["signature"], signature);
    assert_eq!(notes.0.len(), 1);
}
