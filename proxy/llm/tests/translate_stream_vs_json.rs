//! A streamed answer, translated, adds up to what the same answer says
//! translated whole.
//!
//! For a random answer (text with unicode and placeholder tokens, tool
//! calls with random JSON arguments, signed thinking, usage, any stop
//! reason) and every source shape A that has a codec: the answer is written
//! as A's JSON body and as A's stream (the IR events fed to A's stream
//! encoder). For every target shape B, the JSON goes through
//! `translate::response` and the stream, cut into arbitrary byte chunks,
//! through `ResponseTranslator`; the B stream is decoded and accumulated
//! and must equal the decoded B JSON: the same text, thinking, tool calls
//! (ids, names, arguments as JSON), stop reason and usage. Response ids,
//! models and timestamps are not compared.

#[path = "common/translate_kit.rs"]
mod kit;

use kit::{assemble, seen_parts, sse_events, usage_counts, Seen};
use promptwall_llm::translate::ir::{self, Delta, Part, PartStart, StopReason, StreamEvent, TokenUsage};
use promptwall_llm::translate::{self, Notes, ResponseContext, ResponseTranslator};
use promptwall_llm::{ApiShape, Shapes};
use proptest::prelude::*;
use serde_json::Value;

const ANTHROPIC: &str = "anthropic.messages";
const RESPONSES: &str = "openai.responses";

fn shapes() -> Vec<ApiShape> {
    Shapes::builtin().iter().filter(|s| s.codec().is_some()).collect()
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: "client-model".into(),
        created: 1_767_225_600,
        id_seed: "prop".into(),
        stream_usage: true,
        freeform_tools: vec![],
    }
}

/// The `ir::Thinking::origin` of thinking a shape's provider makes.
fn origin(shape: ApiShape) -> &'static str {
    if shape.as_str() == ANTHROPIC {
        "anthropic"
    } else {
        "openai"
    }
}

// ------------------------------------------------------------ strategies

fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 ,.!?\n]{0,24}",
        "\\PC{0,8}",
        Just("[[EMAIL_001]]".to_string()),
        Just("[[PHONE_042]] ".to_string()),
        Just("héllo 世界 🎉 \"quoted\" back\\slash\t".to_string()),
        Just("data: [DONE]\n\nevent: x".to_string()),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|v| v.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arguments() -> impl Strategy<Value = String> {
    prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()).to_string())
}

fn tool_call() -> impl Strategy<Value = ir::ToolCall> {
    ("call_[a-zA-Z0-9]{8}", "[a-zA-Z_][a-zA-Z0-9_]{0,12}", arguments()).prop_map(|(id, name, arguments)| ir::ToolCall {
        id,
        name,
        arguments,
    })
}

fn usage() -> impl Strategy<Value = TokenUsage> {
    let n = || prop::option::of(0u64..200_000);
    (n(), n(), n(), n(), n()).prop_map(|(i, o, r, w, reasoning)| TokenUsage {
        input_tokens: i,
        output_tokens: o,
        cache_read_tokens: r,
        cache_write_tokens: w,
        reasoning_tokens: reasoning,
    })
}

fn stop() -> impl Strategy<Value = Option<StopReason>> {
    prop::option::of(prop_oneof![
        Just(StopReason::EndTurn),
        Just(StopReason::MaxTokens),
        Just(StopReason::StopSequence),
        Just(StopReason::ToolUse),
        Just(StopReason::ContentFilter),
        Just(StopReason::Other("pause_turn".into())),
    ])
}

/// An answer in the order providers give them: thinking, text, calls
/// (Chat cannot say any other order). Thinking gets its origin (and an
/// Anthropic signature) per source shape, see [`for_source`].
#[derive(Debug, Clone)]
struct Answer {
    thinking: Vec<(String, String)>,
    texts: Vec<String>,
    calls: Vec<ir::ToolCall>,
    stop: Option<StopReason>,
    usage: TokenUsage,
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        prop::collection::vec((text(), "[A-Za-z0-9+/]{16,48}={0,2}"), 0..3),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(tool_call(), 0..4),
        stop(),
        usage(),
    )
        .prop_map(|(thinking, texts, calls, stop, usage)| Answer {
            thinking,
            texts,
            calls,
            stop,
            usage,
        })
}

/// The answer as made by `source`'s provider: its thinking is its own
/// (Anthropic signs it; an OpenAI reasoning item's id is the encoder's).
fn for_source(a: &Answer, source: ApiShape) -> ir::Response {
    let mut parts = Vec::new();
    for (text, sig) in &a.thinking {
        parts.push(Part::Thinking(ir::Thinking {
            text: text.clone(),
            origin: origin(source),
            signature: (origin(source) == "anthropic").then(|| sig.clone()),
            encrypted: None,
            id: None,
        }));
    }
    for t in &a.texts {
        parts.push(Part::Text(ir::Text {
            text: t.clone(),
            cache_control: None,
        }));
    }
    parts.extend(a.calls.iter().cloned().map(Part::ToolCall));
    ir::Response {
        id: "src_1".into(),
        model: "upstream-model".into(),
        parts,
        stop: a.stop.clone(),
        usage: a.usage,
    }
}

/// Cuts a string into pieces at char boundaries picked by `cuts`.
fn pieces(s: &str, cuts: &[usize]) -> Vec<String> {
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(1).collect();
    let mut at: Vec<usize> = cuts
        .iter()
        .filter(|_| !bounds.is_empty())
        .map(|c| bounds[c % bounds.len()])
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in at {
        out.push(s[start..cut].to_string());
        start = cut;
    }
    out.push(s[start..].to_string());
    out
}

/// The IR events a provider streaming this answer would give: input
/// usage up front, each part's text in pieces, the rest at the end.
fn stream_events(resp: &ir::Response, cuts: &[usize]) -> Vec<StreamEvent> {
    let mut out = vec![StreamEvent::Start {
        id: resp.id.clone(),
        model: resp.model.clone(),
        usage: TokenUsage {
            input_tokens: resp.usage.input_tokens,
            cache_read_tokens: resp.usage.cache_read_tokens,
            cache_write_tokens: resp.usage.cache_write_tokens,
            ..Default::default()
        },
    }];
    for (index, part) in resp.parts.iter().enumerate() {
        let (start, deltas): (PartStart, Vec<Delta>) = match part {
            Part::Text(t) => (
                PartStart::Text,
                pieces(&t.text, cuts).into_iter().map(Delta::Text).collect(),
            ),
            Part::Thinking(t) => {
                let mut d: Vec<Delta> = pieces(&t.text, cuts).into_iter().map(Delta::Thinking).collect();
                d.extend(t.signature.clone().map(Delta::Signature));
                (
                    PartStart::Thinking {
                        origin: t.origin,
                        id: t.id.clone(),
                    },
                    d,
                )
            }
            Part::ToolCall(c) => (
                PartStart::ToolCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                },
                pieces(&c.arguments, cuts)
                    .into_iter()
                    .map(Delta::ToolArguments)
                    .collect(),
            ),
            Part::Image(_) | Part::ToolResult(_) => continue,
        };
        out.push(StreamEvent::PartStart { index, part: start });
        out.extend(
            deltas
                .into_iter()
                .filter(|d| !matches!(d, Delta::Text(s) | Delta::Thinking(s) | Delta::ToolArguments(s) if s.is_empty()))
                .map(|delta| StreamEvent::Delta { index, delta }),
        );
        out.push(StreamEvent::PartStop { index });
    }
    out.push(StreamEvent::Finish {
        stop: resp.stop.clone(),
        usage: resp.usage,
    });
    out
}

/// `source`'s stream for the events, as SSE bytes.
fn encode_stream(source: ApiShape, events: &[StreamEvent]) -> Vec<u8> {
    let mut enc = source.codec().unwrap().stream_encoder(&ctx());
    let mut wire = Vec::new();
    for ev in events {
        enc.event(ev, &mut wire);
    }
    wire.iter().map(|e| e.to_sse()).collect::<String>().into_bytes()
}

/// The bytes through the proxy's translator, pushed in chunks cut at
/// arbitrary byte positions (inside UTF-8 sequences and CRLFs too).
fn translate_chunked(a: ApiShape, b: ApiShape, bytes: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut t = ResponseTranslator::new(a, b, 200, "text/event-stream", &ctx()).unwrap();
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in at {
        out.extend(t.push(&bytes[start..cut]));
        start = cut;
    }
    out.extend(t.push(&bytes[start..]));
    out.extend(t.finish());
    out
}

/// A whole answer's thinking of another provider does not reach an
/// Anthropic or Chat client (their encoders drop it, noted; Responses keeps
/// its text as a summary), while a stream's parts carry no origin and reach
/// every client: that difference is the codecs' documented choice, so it is
/// left out of the comparison.
fn comparable(seen: Vec<Seen>, a: ApiShape, b: ApiShape) -> Vec<Seen> {
    let drop_thinking = origin(a) != origin(b) && b.as_str() != RESPONSES;
    seen.into_iter()
        .filter(|s| !(drop_thinking && matches!(s, Seen::Thinking(_))))
        .collect()
}

fn check(answer: &Answer, text_cuts: &[usize], byte_cuts: &[usize]) -> Result<(), TestCaseError> {
    for a in shapes() {
        let resp = for_source(answer, a);
        let json_a = a.codec().unwrap().encode_response(&resp, &ctx(), &mut Notes::default());
        let sse_a = encode_stream(a, &stream_events(&resp, text_cuts));
        for b in shapes() {
            let at = format!("{} → {}", a.as_str(), b.as_str());
            let json_b = translate::response(a, b, &json_a, &ctx(), &mut Notes::default())
                .map_err(|e| TestCaseError::fail(format!("{at}: the JSON does not translate: {e}")))?;
            let whole = b
                .codec()
                .unwrap()
                .decode_response(&json_b, &mut Notes::default())
                .map_err(|e| TestCaseError::fail(format!("{at}: {e}")))?;
            let sse_b = String::from_utf8(translate_chunked(a, b, &sse_a, byte_cuts))
                .map_err(|_| TestCaseError::fail(format!("{at}: the stream is not UTF-8")))?;
            let mut dec = b.codec().unwrap().stream_decoder();
            let mut events = Vec::new();
            for (name, data) in sse_events(&sse_b) {
                dec.event(name.as_deref(), &data, &mut events);
            }
            dec.end(&mut events);
            let streamed = assemble(&events).map_err(|e| TestCaseError::fail(format!("{at}: {e}")))?;
            prop_assert!(
                streamed.error.is_none(),
                "{}: the stream failed: {:?}",
                at,
                streamed.error
            );
            prop_assert_eq!(
                comparable(seen_parts(&streamed.response.parts), a, b),
                comparable(seen_parts(&whole.parts), a, b),
                "{}: parts\n{}",
                at,
                sse_b
            );
            // Not vacuous: the text and the calls are the answer's own.
            let said: String = answer.texts.concat();
            let text_of = |seen: &[Seen]| -> String {
                seen.iter()
                    .filter_map(|s| match s {
                        Seen::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect()
            };
            let whole_seen = seen_parts(&whole.parts);
            prop_assert_eq!(text_of(&whole_seen), said, "{}: text", at);
            let calls = whole_seen.iter().filter(|s| matches!(s, Seen::Call { .. })).count();
            prop_assert_eq!(calls, answer.calls.len(), "{}: calls", at);
            prop_assert_eq!(&streamed.response.stop, &whole.stop, "{}: stop", at);
            prop_assert_eq!(
                usage_counts(&streamed.response.usage),
                usage_counts(&whole.usage),
                "{}: usage",
                at
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_streamed_answer_translated_assembles_to_the_same_answer_as_its_json_translated(
        answer in answer(),
        text_cuts in prop::collection::vec(any::<usize>(), 0..6),
        byte_cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        check(&answer, &text_cuts, &byte_cuts)?;
    }
}

#[test]
fn a_plain_answer_with_a_placeholder_survives_every_route() {
    let answer = Answer {
        thinking: vec![("Let me think.".into(), "c2lnbmF0dXJl".into())],
        texts: vec!["Mail [[EMAIL_001]] now.".into()],
        calls: vec![ir::ToolCall {
            id: "call_abc12345".into(),
            name: "send".into(),
            arguments: r#"{"to":"[[EMAIL_001]]","n":2}"#.into(),
        }],
        stop: Some(StopReason::ToolUse),
        usage: TokenUsage {
            input_tokens: Some(10),
            output_tokens: Some(5),
            cache_read_tokens: Some(3),
            cache_write_tokens: None,
            reasoning_tokens: None,
        },
    };
    let cuts = [5, 17, 40];
    if let Err(e) = check(&answer, &cuts, &cuts) {
        panic!("{e}");
    }
}
