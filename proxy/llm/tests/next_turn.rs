//! The incremental next turn: a request that extends the previous one of
//! the same owner and shape is inspected only where it is new, and the
//! outcome is the full inspection's, byte for byte (forwarded body,
//! placeholder numbering, report, verdict, restorer).

mod common;

use std::sync::atomic::Ordering;

use promptwall_llm::{ApiShape, ConversationOwner, Pipeline, PipelineSettings, RequestContext, RequestOutcome};
use proptest::prelude::*;
use serde_json::{json, Value};

fn owner(uid: u32) -> ConversationOwner {
    ConversationOwner::new(Some(uid), [("x-api-key", &b"sk-test"[..])])
}

fn ctx(uid: u32) -> RequestContext<'static> {
    RequestContext {
        fingerprint_salt: "salt",
        owner: Some(owner(uid)),
        content_type: None,
    }
}

/// The reference: a pipeline that remembers nothing, so every request is
/// inspected whole.
fn full_scan(shape: ApiShape, body: &str) -> RequestOutcome {
    let pipeline = Pipeline::new(
        common::TestScanner::new(),
        PipelineSettings {
            turn_memory_bytes: 0,
            ..Default::default()
        },
    );
    pipeline.inspect_request(shape, body.as_bytes(), &ctx(1000))
}

/// A pipeline without a scan cache, so what it scans shows what it reused,
/// and its counter of scanned bytes.
fn uncached() -> (Pipeline, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let scanner = common::TestScanner::new();
    let bytes = scanner.bytes.clone();
    let settings = PipelineSettings {
        cache_entries: 0,
        ..Default::default()
    };
    (Pipeline::new(scanner, settings), bytes)
}

/// Panics unless the two outcomes are the same in every observable way.
fn assert_same(got: &RequestOutcome, want: &RequestOutcome, body: &str) {
    assert_eq!(got.report(), want.report(), "report of {body}");
    match (got, want) {
        (
            RequestOutcome::Forward {
                body: b1, restorer: r1, ..
            },
            RequestOutcome::Forward {
                body: b2, restorer: r2, ..
            },
        ) => {
            assert_eq!(b1, b2, "forwarded body of {body}");
            match (r1, r2) {
                (None, None) => {}
                (Some(r1), Some(r2)) => {
                    assert_eq!(r1.len(), r2.len(), "restorer size of {body}");
                    // Every issued placeholder is in the forwarded body.
                    let sent = String::from_utf8(b2.as_ref().unwrap().to_vec()).unwrap();
                    for token in placeholders_in(&sent) {
                        assert_eq!(r1.restore_text(&token), r2.restore_text(&token), "{token}");
                    }
                }
                _ => panic!("one restorer missing for {body}"),
            }
        }
        (
            RequestOutcome::Block {
                status: s1, body: b1, ..
            },
            RequestOutcome::Block {
                status: s2, body: b2, ..
            },
        )
        | (
            RequestOutcome::Reject {
                status: s1, body: b1, ..
            },
            RequestOutcome::Reject {
                status: s2, body: b2, ..
            },
        ) => {
            assert_eq!((s1, b1), (s2, b2), "answer to {body}");
        }
        _ => panic!("different outcomes for {body}: {got:?} vs {want:?}"),
    }
}

fn placeholders_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("[[") {
        rest = &rest[i..];
        match rest.find("]]") {
            Some(j) if j < 40 => {
                out.push(rest[..j + 2].to_string());
                rest = &rest[2..];
            }
            _ => rest = &rest[2..],
        }
    }
    out
}

// ---- generated transcripts ----

const EMAILS: &[&str] = &["ann@example.com", "bob.k@corp.io", "c.d@mail.org", "dev@team.net"];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z]{1,9}( [a-z]{1,6}){0,3}",
        1 => "[ -~]{0,6}",
        1 => Just("caf\u{e9} \"quoted\" back\\slash\nline\ttab".to_string()),
        3 => prop::sample::select(EMAILS).prop_map(str::to_string),
        1 => "[0-9]{3}".prop_map(|d| format!("+1 555 {d} 0100")),
        1 => "[A-Za-z0-9]{36}".prop_map(|t| format!("ghp_{t}")),
        1 => prop::sample::select(vec!["[[EMAIL_001]]", "[[EMAIL_002]]", "[[PHONE_001]]"]).prop_map(str::to_string),
    ]
}

/// Text of a block; rarely with an AWS key (which blocks).
fn text() -> impl Strategy<Value = String> {
    (prop::collection::vec(piece(), 0..6), prop::bool::weighted(0.02)).prop_map(|(pieces, key)| {
        let mut t = pieces.join(" ");
        if key {
            t.push_str(" AKIAIOSFODNN7EXAMPLE");
        }
        t
    })
}

/// One message: its kind and two texts, rendered per shape.
#[derive(Debug, Clone)]
struct Msg {
    kind: u8,
    a: String,
    b: String,
}

fn msg() -> impl Strategy<Value = Msg> {
    (0u8..6, text(), text()).prop_map(|(kind, a, b)| Msg { kind, a, b })
}

#[derive(Debug, Clone)]
struct Transcript {
    system: String,
    messages: Vec<Msg>,
    /// Where the conversation sits among the top-level fields.
    order: u8,
    model: String,
}

fn anthropic_message(m: &Msg) -> Value {
    match m.kind {
        0 => json!({"role": "user", "content": m.a}),
        1 => json!({"role": "user", "content": [{"type": "text", "text": m.a}, {"type": "text", "text": m.b}]}),
        2 => json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": m.a}]}),
        3 => json!({"role": "assistant", "content": [{"type": "text", "text": m.a},
            {"type": "tool_use", "id": "tu_1", "name": "bash", "input": {"command": m.b}}]}),
        4 => json!({"role": "assistant", "content": [{"type": "thinking", "thinking": m.a, "signature": "sig"},
            {"type": "text", "text": m.b}]}),
        _ => {
            json!({"role": "user", "content": [{"type": "text", "text": m.a, "cache_control": {"type": "ephemeral"}}]})
        }
    }
}

fn chat_message(m: &Msg) -> Value {
    match m.kind {
        0 | 1 => json!({"role": "user", "content": m.a}),
        2 => json!({"role": "tool", "tool_call_id": "c1", "content": m.a}),
        3 => json!({"role": "assistant", "content": m.a, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "search", "arguments": json!({"query": m.b}).to_string()}}]}),
        4 => json!({"role": "system", "content": m.a}),
        _ => json!({"role": "user", "content": [{"type": "text", "text": m.a}]}),
    }
}

fn responses_item(m: &Msg) -> Value {
    match m.kind {
        0 | 1 => json!({"role": "user", "content": [{"type": "input_text", "text": m.a}]}),
        2 => json!({"type": "function_call_output", "call_id": "c1", "output": m.a}),
        3 => json!({"type": "function_call", "call_id": "c1", "name": "search",
            "arguments": json!({"query": m.b}).to_string()}),
        4 => json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": m.a}], "encrypted_content": "x"}),
        _ => json!({"role": "assistant", "content": [{"type": "output_text", "text": m.a}]}),
    }
}

fn gemini_content(m: &Msg) -> Value {
    match m.kind {
        0 | 1 => json!({"role": "user", "parts": [{"text": m.a}, {"text": m.b}]}),
        2 => json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"out": m.a}}}]}),
        3 => json!({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"q": m.b}}}]}),
        4 => json!({"role": "model", "parts": [{"text": m.a, "thought": true, "thoughtSignature": "c2ln"}]}),
        _ => json!({"role": "model", "parts": [{"text": m.a}]}),
    }
}

fn render(shape: ApiShape, t: &Transcript) -> String {
    let s = |v: &Value| v.to_string();
    let (conv_key, messages, system) = if shape == ApiShape::OPENAI_CHAT {
        let m: Vec<Value> = t.messages.iter().map(chat_message).collect();
        ("messages", m, None)
    } else if shape == ApiShape::OPENAI_RESPONSES {
        let m: Vec<Value> = t.messages.iter().map(responses_item).collect();
        ("input", m, Some(("instructions", json!(t.system))))
    } else if shape == ApiShape::GEMINI_GENERATE {
        let m: Vec<Value> = t.messages.iter().map(gemini_content).collect();
        let system = json!({"parts": [{"text": t.system}]});
        ("contents", m, Some(("systemInstruction", system)))
    } else {
        let m: Vec<Value> = t.messages.iter().map(anthropic_message).collect();
        ("messages", m, Some(("system", json!(t.system))))
    };
    let mut fields = vec![
        format!("\"model\":{}", s(&json!(t.model))),
        format!("\"{conv_key}\":{}", s(&Value::Array(messages))),
        format!(
            "\"tools\":{}",
            s(&json!([{"name": "bash", "description": t.system, "input_schema": {"type": "object"}}]))
        ),
        "\"metadata\":{\"user_id\":\"user_0001\"}".to_string(),
    ];
    if let Some((key, system)) = system {
        fields.push(format!("\"{key}\":{}", s(&system)));
    }
    // Conversation first, last, or in the middle.
    let conv = fields.remove(1);
    let at = (t.order as usize) % (fields.len() + 1);
    fields.insert(at, conv);
    format!("{{{}}}", fields.join(","))
}

fn transcript() -> impl Strategy<Value = Transcript> {
    (
        text(),
        prop::collection::vec(msg(), 0..8),
        0u8..6,
        prop::sample::select(vec!["m1", "m2"]),
    )
        .prop_map(|(system, messages, order, model)| Transcript {
            system,
            messages,
            order,
            model: model.to_string(),
        })
}

/// What changes between two requests.
#[derive(Debug, Clone)]
enum Edit {
    Append(Vec<Msg>),
    /// The last message changes (a moved cache marker) and more follow.
    TouchLastAndAppend(Vec<Msg>),
    Rewrite(usize, String),
    Swap(usize, usize),
    Truncate(usize),
    System(String),
    Model,
    /// The same request from another owner.
    OtherOwner,
    /// The same request again.
    Same,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => prop::collection::vec(msg(), 1..4).prop_map(Edit::Append),
        3 => prop::collection::vec(msg(), 0..3).prop_map(Edit::TouchLastAndAppend),
        2 => (any::<usize>(), text()).prop_map(|(i, t)| Edit::Rewrite(i, t)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::Swap(i, j)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => text().prop_map(Edit::System),
        1 => Just(Edit::Model),
        1 => Just(Edit::OtherOwner),
        1 => Just(Edit::Same),
    ]
}

fn apply(t: &mut Transcript, e: &Edit) -> u32 {
    let n = t.messages.len();
    match e {
        Edit::Append(m) => t.messages.extend(m.iter().cloned()),
        Edit::TouchLastAndAppend(m) => {
            if let Some(last) = t.messages.last_mut() {
                last.kind = if last.kind == 5 { 1 } else { 5 };
            }
            t.messages.extend(m.iter().cloned());
        }
        Edit::Rewrite(i, text) if n > 0 => t.messages[i % n].a = text.clone(),
        Edit::Swap(i, j) if n > 0 => t.messages.swap(i % n, j % n),
        Edit::Truncate(i) if n > 0 => t.messages.truncate(i % n),
        Edit::System(s) => t.system = s.clone(),
        Edit::Model => t.model = if t.model == "m1" { "m2".into() } else { "m1".into() },
        Edit::OtherOwner => return 1001,
        _ => {}
    }
    1000
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_turn_equals_a_fresh_full_inspection(
        start in transcript(),
        edits in prop::collection::vec(edit(), 1..6),
        shape in prop::sample::select(vec![
            ApiShape::ANTHROPIC_MESSAGES,
            ApiShape::OPENAI_CHAT,
            ApiShape::OPENAI_RESPONSES,
            ApiShape::GEMINI_GENERATE,
        ]),
        cached in any::<bool>(),
    ) {
        let settings = PipelineSettings { cache_entries: if cached { 100_000 } else { 0 }, ..Default::default() };
        let pipeline = Pipeline::new(common::TestScanner::new(), settings);
        let mut t = start;
        let first = render(shape, &t);
        assert_same(&pipeline.inspect_request(shape, first.as_bytes(), &ctx(1000)), &full_scan(shape, &first), &first);
        for e in &edits {
            let uid = apply(&mut t, e);
            let body = render(shape, &t);
            let got = pipeline.inspect_request(shape, body.as_bytes(), &ctx(uid));
            assert_same(&got, &full_scan(shape, &body), &body);
        }
    }
}

// ---- each invalidation rule ----

fn conversation(messages: &[&str], system: &str) -> String {
    let m: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": [{"type": "text", "text": t}]}))
        .collect();
    // As Claude Code sends it: the conversation before system and tools.
    format!(
        "{{\"model\":\"claude\",\"messages\":{},\"system\":{},\"tools\":[]}}",
        Value::Array(m),
        json!(system)
    )
}

const LONG: &str = "a long tool result that is well past the cache threshold, with ann@example.com in it";

/// Inspects `first` then `next` as `owner`'s turns, checks `next` against a
/// full inspection and returns the bytes scanned for `next`.
fn next_turn_scanned(first: &str, next: &str, next_uid: u32) -> usize {
    let (pipeline, bytes) = uncached();
    let shape = ApiShape::ANTHROPIC_MESSAGES;
    pipeline.inspect_request(shape, first.as_bytes(), &ctx(1000));
    let before = bytes.load(Ordering::Relaxed);
    let got = pipeline.inspect_request(shape, next.as_bytes(), &ctx(next_uid));
    assert_same(&got, &full_scan(shape, next), next);
    bytes.load(Ordering::Relaxed) - before
}

/// Bytes a fresh pipeline scans for `body`.
fn whole_scan(body: &str) -> usize {
    let (pipeline, bytes) = uncached();
    pipeline.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.as_bytes(), &ctx(1000));
    bytes.load(Ordering::Relaxed)
}

fn history(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{LONG} (turn {i}), bob.k@corp.io")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn an_appended_turn_scans_only_the_new_message_and_keeps_the_numbering() {
    let h = history(6);
    let first = conversation(&refs(&h), "be brief");
    let mut more = h.clone();
    more.push("new: dev@team.net and ann@example.com".into());
    let next = conversation(&refs(&more), "be brief");
    let scanned = next_turn_scanned(&first, &next, 1000);
    assert!(scanned < 120, "scanned {scanned} bytes of a {} byte body", next.len());
    // The new message's known address keeps its number; the new one is next.
    let (pipeline, _) = uncached();
    let shape = ApiShape::ANTHROPIC_MESSAGES;
    pipeline.inspect_request(shape, first.as_bytes(), &ctx(1000));
    let RequestOutcome::Forward { body: Some(sent), .. } = pipeline.inspect_request(shape, next.as_bytes(), &ctx(1000))
    else {
        panic!("not redacted")
    };
    let sent = String::from_utf8(sent.to_vec()).unwrap();
    assert!(sent.contains("new: [[EMAIL_003]] and [[EMAIL_001]]"), "{sent}");
}

#[test]
fn an_edited_old_message_is_inspected_again_from_the_edit_on() {
    let h = history(6);
    let first = conversation(&refs(&h), "be brief");
    let mut edited = h.clone();
    edited[3] = "edited: c.d@mail.org".into();
    let next = conversation(&refs(&edited), "be brief");
    let scanned = next_turn_scanned(&first, &next, 1000);
    let from_edit: usize = edited[3..].iter().map(String::len).sum();
    assert!(scanned >= from_edit, "{scanned} < {from_edit}");
    assert!(scanned < whole_scan(&next), "messages before the edit were reused");
}

#[test]
fn reordered_messages_are_inspected_again_from_the_first_moved_one() {
    let h = history(6);
    let first = conversation(&refs(&h), "be brief");
    let mut moved = h.clone();
    moved.swap(2, 4);
    let next = conversation(&refs(&moved), "be brief");
    let scanned = next_turn_scanned(&first, &next, 1000);
    let from_swap: usize = moved[2..].iter().map(String::len).sum();
    assert!(scanned >= from_swap, "{scanned} < {from_swap}");
    assert!(scanned < whole_scan(&next));
}

#[test]
fn a_request_from_another_owner_never_reuses_a_turn() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief");
    let mut more = h.clone();
    more.push("more".into());
    let next = conversation(&refs(&more), "be brief");
    assert_eq!(next_turn_scanned(&first, &next, 1001), whole_scan(&next));
}

#[test]
fn a_request_without_an_owner_is_inspected_whole() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief");
    let (pipeline, bytes) = uncached();
    let shape = ApiShape::ANTHROPIC_MESSAGES;
    let anonymous = RequestContext {
        owner: None,
        ..ctx(1000)
    };
    pipeline.inspect_request(shape, first.as_bytes(), &anonymous);
    let before = bytes.load(Ordering::Relaxed);
    pipeline.inspect_request(shape, first.as_bytes(), &anonymous);
    assert_eq!(bytes.load(Ordering::Relaxed) - before, whole_scan(&first));
}

#[test]
fn another_shape_never_reuses_a_turn() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief");
    let (pipeline, bytes) = uncached();
    pipeline.inspect_request(ApiShape::ANTHROPIC_MESSAGES, first.as_bytes(), &ctx(1000));
    let before = bytes.load(Ordering::Relaxed);
    let got = pipeline.inspect_request(ApiShape::ANTHROPIC_COUNT_TOKENS, first.as_bytes(), &ctx(1000));
    assert_same(&got, &full_scan(ApiShape::ANTHROPIC_COUNT_TOKENS, &first), &first);
    assert_eq!(bytes.load(Ordering::Relaxed) - before, whole_scan(&first));
}

#[test]
fn a_changed_system_prompt_after_the_conversation_means_a_full_inspection() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief, write to ann@example.com");
    let mut more = h.clone();
    more.push("more".into());
    // System is walked before the conversation: its placeholders come first.
    let next = conversation(&refs(&more), "be brief, write to dev@team.net");
    assert_eq!(next_turn_scanned(&first, &next, 1000), whole_scan(&next));
}

#[test]
fn a_changed_field_before_the_conversation_means_a_full_inspection() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief");
    let mut more = h.clone();
    more.push("more".into());
    let next = conversation(&refs(&more), "be brief").replace("\"model\":\"claude\"", "\"model\":\"claude-2\"");
    assert_eq!(next_turn_scanned(&first, &next, 1000), whole_scan(&next));
}

#[test]
fn a_placeholder_typed_in_the_new_message_means_a_full_inspection() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief");
    let mut more = h.clone();
    // EMAIL_001 was issued in the history; typed now, the history's numbering moves.
    more.push("I typed [[EMAIL_001]] myself".into());
    let next = conversation(&refs(&more), "be brief");
    // The new message is scanned before the set is known, then everything.
    assert!(next_turn_scanned(&first, &next, 1000) >= whole_scan(&next));
}

#[test]
fn a_next_turn_with_a_credential_is_blocked_like_a_full_inspection() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief");
    let mut more = h.clone();
    more.push("key AKIAIOSFODNN7EXAMPLE".into());
    let next = conversation(&refs(&more), "be brief");
    let scanned = next_turn_scanned(&first, &next, 1000);
    assert!(scanned < 200, "{scanned}");
}

#[test]
fn a_next_turn_that_does_not_parse_is_refused_like_a_full_inspection() {
    let h = history(4);
    let first = conversation(&refs(&h), "be brief");
    let cut = first.rfind(']').unwrap();
    let next = format!(
        "{},{{\"role\":\"user\",\"content\":\"x\"]{}",
        &first[..cut],
        &first[cut + 1..]
    );
    let (pipeline, _) = uncached();
    let shape = ApiShape::ANTHROPIC_MESSAGES;
    pipeline.inspect_request(shape, first.as_bytes(), &ctx(1000));
    let got = pipeline.inspect_request(shape, next.as_bytes(), &ctx(1000));
    assert_same(&got, &full_scan(shape, &next), &next);
}

#[test]
fn a_responses_follow_up_continuing_an_answer_is_inspected_whole() {
    // Its numbering continues the remembered answer's, not a request's.
    let shape = ApiShape::OPENAI_RESPONSES;
    let (pipeline, bytes) = uncached();
    let first = json!({"model": "gpt", "input": [{"role": "user", "content": [{"type": "input_text", "text": "mail ann@example.com"}]}]});
    let RequestOutcome::Forward {
        restorer: Some(restorer),
        ..
    } = pipeline.inspect_request(shape, first.to_string().as_bytes(), &ctx(1000))
    else {
        panic!("not redacted")
    };
    pipeline.remember_response(owner(1000), "resp_1", &restorer);
    let body = |n: usize| {
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"role": "user", "content": [{"type": "input_text", "text": format!("{LONG} {i}")}]}))
            .collect();
        json!({"model": "gpt", "previous_response_id": "resp_1", "input": items}).to_string()
    };
    pipeline.inspect_request(shape, body(3).as_bytes(), &ctx(1000));
    let before = bytes.load(Ordering::Relaxed);
    let next = body(4);
    pipeline.inspect_request(shape, next.as_bytes(), &ctx(1000));
    let (fresh, fresh_bytes) = uncached();
    fresh.inspect_request(shape, next.as_bytes(), &ctx(1000));
    assert_eq!(
        bytes.load(Ordering::Relaxed) - before,
        fresh_bytes.load(Ordering::Relaxed)
    );
}

#[test]
fn turn_memory_stays_within_its_byte_bound() {
    // 64 KiB of memory: a turn larger than a shard's share is not kept.
    let settings = PipelineSettings {
        cache_entries: 0,
        turn_memory_bytes: 64 << 10,
        ..Default::default()
    };
    let scanner = common::TestScanner::new();
    let bytes = scanner.bytes.clone();
    let pipeline = Pipeline::new(scanner, settings);
    let h = history(400);
    let first = conversation(&refs(&h), "be brief");
    assert!(first.len() > 16 << 10);
    let shape = ApiShape::ANTHROPIC_MESSAGES;
    pipeline.inspect_request(shape, first.as_bytes(), &ctx(1000));
    let before = bytes.load(Ordering::Relaxed);
    pipeline.inspect_request(shape, first.as_bytes(), &ctx(1000));
    assert_eq!(bytes.load(Ordering::Relaxed) - before, whole_scan(&first));
}

#[test]
fn every_conversation_shape_reuses_the_turn_it_extends() {
    for shape in [
        ApiShape::ANTHROPIC_MESSAGES,
        ApiShape::OPENAI_CHAT,
        ApiShape::OPENAI_RESPONSES,
        ApiShape::GEMINI_GENERATE,
    ] {
        let msg = |i: usize| Msg {
            kind: (i % 6) as u8,
            a: format!("{LONG} (turn {i})"),
            b: format!("query {i} for dev@team.net and more words to scan"),
        };
        let mut t = Transcript {
            system: "be brief".into(),
            messages: (0..6).map(msg).collect(),
            order: 2,
            model: "m1".into(),
        };
        let first = render(shape, &t);
        t.messages.push(msg(6));
        let next = render(shape, &t);
        let (pipeline, bytes) = uncached();
        pipeline.inspect_request(shape, first.as_bytes(), &ctx(1000));
        let before = bytes.load(Ordering::Relaxed);
        let got = pipeline.inspect_request(shape, next.as_bytes(), &ctx(1000));
        assert_same(&got, &full_scan(shape, &next), &next);
        let scanned = bytes.load(Ordering::Relaxed) - before;
        let (fresh, whole) = uncached();
        fresh.inspect_request(shape, next.as_bytes(), &ctx(1000));
        assert!(
            scanned * 3 < whole.load(Ordering::Relaxed),
            "{shape}: {scanned} of {whole:?}"
        );
    }
}
