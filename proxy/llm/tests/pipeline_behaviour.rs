//! Behaviour of the request pipeline, restorer, WebSocket helpers and usage
//! reading that golden files do not show well.

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use promptwall_llm::{
    ApiShape, ConversationOwner, RequestContext, RequestOutcome, ResponseProcessor, Vault, Verdict, WsClientOutcome,
};
use serde_json::json;

const CTX: RequestContext<'static> = RequestContext {
    fingerprint_salt: "s",
    owner: None,
    content_type: None,
};

/// The context of a request sent by local user `uid` with API key `key`.
fn ctx_of(uid: u32, key: &str) -> RequestContext<'static> {
    RequestContext {
        owner: Some(owner(uid, key)),
        ..CTX
    }
}

fn owner(uid: u32, key: &str) -> ConversationOwner {
    ConversationOwner::new(Some(uid), [("x-api-key", key.as_bytes())])
}

/// Turn 1 of a Responses conversation by `ctx`, answered as `resp_abc`: the
/// answer's placeholders are remembered under that request's owner.
fn first_responses_turn(p: &promptwall_llm::Pipeline, ctx: &RequestContext) -> String {
    let first = json!({"model":"gpt-5","input":[{"role":"user","content":[{"type":"input_text","text":"mail ann@example.com"}]}]});
    let (sent, restorer) = forward(p.inspect_request(ApiShape::OPENAI_RESPONSES, first.to_string().as_bytes(), ctx));
    // The answer's id, read from its stream, is what the proxy remembers.
    let restorer = restorer.unwrap();
    let mut processor = restorer.response_processor("text/event-stream", ApiShape::OPENAI_RESPONSES);
    processor.push(Bytes::from_static(
        b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_abc\",\"object\":\"response\",\"model\":\"gpt-5\"}}\n\n",
    ));
    let id = processor
        .usage()
        .response_id
        .expect("response id read from response.created");
    assert_eq!(id, "resp_abc");
    p.remember_response(ctx.owner.unwrap(), &id, &restorer);
    sent
}

fn forward(outcome: RequestOutcome) -> (String, Option<promptwall_llm::Restorer>) {
    match outcome {
        RequestOutcome::Forward { body, restorer, .. } => {
            (String::from_utf8(body.expect("changed").to_vec()).unwrap(), restorer)
        }
        other => panic!("expected forward, got {other:?}"),
    }
}

fn restore_sse(r: &promptwall_llm::Restorer, shape: ApiShape, sse: &str) -> String {
    let mut p = r.response_processor("text/event-stream; charset=utf-8", shape);
    let mut out = p.push(Bytes::from(sse.to_string())).to_vec();
    out.extend_from_slice(&p.finish());
    String::from_utf8(out).unwrap()
}

#[test]
fn typed_placeholder_is_never_restored_into_another_value() {
    let p = common::pipeline();
    let body =
        json!({"model":"m","messages":[{"role":"user","content":"I typed [[EMAIL_001]] and mean zed@example.com"}]});
    let (provider, restorer) =
        forward(p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.to_string().as_bytes(), &CTX));
    assert!(
        provider.contains("I typed [[EMAIL_001]] and mean [[EMAIL_002]]"),
        "{provider}"
    );
    let r = restorer.unwrap();
    assert_eq!(
        r.restore_text("[[EMAIL_001]] vs [[EMAIL_002]] vs [[EMAIL_003]]"),
        "[[EMAIL_001]] vs zed@example.com vs [[EMAIL_003]]"
    );
}

#[test]
fn numbering_is_stable_across_turns_and_restarts() {
    let turn1 = json!({"model":"m","system":"owner a@example.com","messages":[
        {"role":"user","content":"mail b@example.com and c@example.com"}]});
    let turn2 = json!({"model":"m","system":"owner a@example.com","messages":[
        {"role":"user","content":"mail b@example.com and c@example.com"},
        {"role":"assistant","content":"done, c@example.com notified"},
        {"role":"user","content":"now d@example.com and b@example.com"}]});
    let (p1, _) =
        forward(common::pipeline().inspect_request(ApiShape::ANTHROPIC_MESSAGES, turn1.to_string().as_bytes(), &CTX));
    // A fresh pipeline (agent restart) numbers the resent prefix the same way.
    let (p2, r2) =
        forward(common::pipeline().inspect_request(ApiShape::ANTHROPIC_MESSAGES, turn2.to_string().as_bytes(), &CTX));
    let prefix_end = p1.find("}]").unwrap();
    assert_eq!(&p2[..prefix_end], &p1[..prefix_end]);
    assert!(p2.contains("done, [[EMAIL_003]] notified"), "{p2}");
    assert!(p2.contains("now [[EMAIL_004]] and [[EMAIL_002]]"), "{p2}");
    assert_eq!(r2.unwrap().restore_text("[[EMAIL_004]]"), "d@example.com");
}

#[test]
fn a_placeholder_the_model_quoted_in_signed_thinking_keeps_its_number_next_turn() {
    // Turn 1 sent a@example.com as [[EMAIL_001]]; the model's signed thinking
    // quoted the placeholder and comes back verbatim in turn 2's transcript.
    let turn2 = json!({"model":"m","messages":[
        {"role":"user","content":"mail a@example.com"},
        {"role":"assistant","content":[
            {"type":"thinking","thinking":"The user wants [[EMAIL_001]] mailed.","signature":"c2lnbmVk"},
            {"type":"text","text":"Mailing a@example.com now."}]},
        {"role":"user","content":"thanks"}]});
    let (provider, restorer) =
        forward(common::pipeline().inspect_request(ApiShape::ANTHROPIC_MESSAGES, turn2.to_string().as_bytes(), &CTX));
    assert!(
        provider.contains(r#""content":"mail [[EMAIL_001]]""#),
        "renumbered: {provider}"
    );
    assert!(provider.contains("Mailing [[EMAIL_001]] now."), "{provider}");
    assert!(
        provider.contains(r#""thinking":"The user wants [[EMAIL_001]] mailed.","signature":"c2lnbmVk""#),
        "{provider}"
    );
    assert_eq!(
        restorer.unwrap().restore_text("sent to [[EMAIL_001]]"),
        "sent to a@example.com"
    );
}

#[test]
fn non_json_bodies_on_unknown_endpoints_are_checked_for_credentials() {
    let p = common::pipeline();
    let form = b"grant=x&note=use+AKIAZ7QK3MPLW2XQ4R5T+for+s3&owner=ann@example.com";
    match p.inspect_request(ApiShape::OTHER, form, &CTX) {
        RequestOutcome::Block { status, body, report } => {
            assert_eq!(status, 422);
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(
                text.contains("aws_access_key_id at body") && !text.contains("AKIAZ7QK3MPLW2XQ4R5T"),
                "{text}"
            );
            assert_eq!(report.verdict, Verdict::Blocked);
            assert_eq!(report.fingerprints.len(), 1);
        }
        other => panic!("expected a block, got {other:?}"),
    }
    // Personal data in an opaque body is not rewritten (no structure to put a
    // placeholder into safely): it is forwarded byte for byte.
    match p.inspect_request(ApiShape::OTHER, b"plain text from ann@example.com", &CTX) {
        RequestOutcome::Forward { body, restorer, report } => {
            assert!(body.is_none() && restorer.is_none());
            assert_eq!(report.verdict, Verdict::Allowed);
        }
        other => panic!("expected forward, got {other:?}"),
    }
}

#[test]
fn unchanged_requests_are_forwarded_as_the_original_bytes() {
    let p = common::pipeline();
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#;
    match p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body, &CTX) {
        RequestOutcome::Forward {
            body: None,
            restorer: None,
            report,
        } => assert_eq!(report.verdict, Verdict::Allowed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn block_names_kind_and_location_never_the_value() {
    let p = common::pipeline();
    let key = "AKIAZ7QK3MPLW2XQ4R5T";
    let body = json!({"model":"gpt-4o","messages":[{"role":"user","content":format!("key {key}")}]});
    match p.inspect_request(ApiShape::OPENAI_CHAT, body.to_string().as_bytes(), &CTX) {
        RequestOutcome::Block { status, body, report } => {
            assert_eq!(status, 422);
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(!text.contains(key));
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], "secret_detected");
            assert!(v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("aws_access_key_id at messages[0].content"));
            assert_eq!(report.verdict, Verdict::Blocked);
            assert_eq!(report.counts["aws_access_key_id"], 1);
            assert_eq!(report.fingerprints.len(), 1);
            assert!(!report.fingerprints[0].1.contains(key));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn secret_inside_signed_thinking_blocks_instead_of_editing_it() {
    let p = common::pipeline();
    let body = json!({"model":"m","messages":[{"role":"assistant","content":[
        {"type":"thinking","thinking":"saw AKIAZ7QK3MPLW2XQ4R5T","signature":"sig"}]}]});
    match p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.to_string().as_bytes(), &CTX) {
        RequestOutcome::Block { body, .. } => assert!(String::from_utf8_lossy(&body).contains("signed thinking block")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pii_in_tool_definitions_and_signatures_is_left_alone() {
    let p = common::pipeline();
    let body = json!({"model":"m","tools":[{"name":"t","description":"owner x@example.com","input_schema":{}}],
        "messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"x@example.com","signature":"x@example.com"}]}]});
    match p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.to_string().as_bytes(), &CTX) {
        RequestOutcome::Forward { body: None, .. } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn cache_scans_only_new_blocks_on_the_next_turn() {
    let (p, calls, bytes) = common::counting_pipeline();
    let big = "lorem ipsum dolor sit amet ".repeat(400);
    let mut messages = vec![json!({"role":"user","content":big.clone()})];
    for i in 0..20 {
        messages.push(json!({"role": if i % 2 == 0 {"assistant"} else {"user"}, "content": format!("{big} turn {i}")}));
    }
    let body = json!({"model":"m","system":big,"messages":messages});
    p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.to_string().as_bytes(), &CTX);
    let first_bytes = bytes.load(Ordering::Relaxed);
    messages.push(json!({"role":"user","content":"the new turn with z@example.com, long enough to be cached"}));
    let body2 = json!({"model":"m","system":big,"messages":messages});
    calls.store(0, Ordering::Relaxed);
    bytes.store(0, Ordering::Relaxed);
    let out = p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body2.to_string().as_bytes(), &CTX);
    assert_eq!(out.report().verdict, Verdict::Redacted);
    assert!(first_bytes > 200_000);
    assert!(
        bytes.load(Ordering::Relaxed) < 200,
        "rescanned {} bytes",
        bytes.load(Ordering::Relaxed)
    );
    // Cached findings still apply: same request again redacts identically.
    let again = p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body2.to_string().as_bytes(), &CTX);
    assert_eq!(again.report().findings, out.report().findings);
}

#[test]
fn an_http_responses_follow_up_continues_the_numbering_of_the_answer_it_names() {
    let p = common::pipeline();
    let ctx = ctx_of(1000, "sk-ann");
    let sent = first_responses_turn(&p, &ctx);
    assert!(sent.contains("mail [[EMAIL_001]]"), "{sent}");

    // The provider holds turn 1; the follow-up sends only new input.
    let follow = json!({"model":"gpt-5","previous_response_id":"resp_abc","input":[
        {"type":"function_call_output","call_id":"c","output":"bo@example.com replied; ann@example.com cc"}]});
    let (sent, restorer) = forward(p.inspect_request(ApiShape::OPENAI_RESPONSES, follow.to_string().as_bytes(), &ctx));
    assert!(
        sent.contains("[[EMAIL_002]] replied; [[EMAIL_001]] cc"),
        "numbers reused across the conversation: {sent}"
    );
    let r = restorer.unwrap();
    assert_eq!(
        r.restore_text("[[EMAIL_001]] / [[EMAIL_002]]"),
        "ann@example.com / bo@example.com"
    );

    // An id this pipeline never saw (another agent, a restart) starts afresh.
    let unknown = json!({"model":"gpt-5","previous_response_id":"resp_zzz","input":"to bo@example.com"});
    let (sent, _) = forward(p.inspect_request(ApiShape::OPENAI_RESPONSES, unknown.to_string().as_bytes(), &ctx));
    assert!(sent.contains("to [[EMAIL_001]]"), "{sent}");
    assert_eq!(p.remembered_responses(), 1);
}

/// The exploit: another local user, or the same user with another API key,
/// names ann's response id and types her placeholder, hoping the answer
/// ("You said: [[EMAIL_001]]") comes back restored to her address.
#[test]
fn a_previous_response_id_named_by_another_user_or_key_does_not_load_its_placeholders() {
    let p = common::pipeline();
    let ann = ctx_of(1000, "sk-ann");
    first_responses_turn(&p, &ann);
    let probe = json!({"model":"gpt-5","previous_response_id":"resp_abc","input":"repeat [[EMAIL_001]] and mail me at eve@example.net"});
    for (who, ctx) in [
        ("another uid, same key", ctx_of(1001, "sk-ann")),
        ("same uid, another key", ctx_of(1000, "sk-eve")),
        ("no owner known", CTX),
    ] {
        let (sent, restorer) =
            forward(p.inspect_request(ApiShape::OPENAI_RESPONSES, probe.to_string().as_bytes(), &ctx));
        // A fresh numbering that skips the typed placeholder, as for any new request.
        assert!(sent.contains("mail me at [[EMAIL_002]]"), "{who}: {sent}");
        let restored = restorer
            .unwrap()
            .restore_text("You said: [[EMAIL_001]] / [[EMAIL_002]]");
        assert_eq!(
            restored, "You said: [[EMAIL_001]] / eve@example.net",
            "{who}: another conversation's value was restored"
        );
    }
    // Ann herself still continues her conversation.
    let (_, restorer) = forward(p.inspect_request(ApiShape::OPENAI_RESPONSES, probe.to_string().as_bytes(), &ann));
    assert_eq!(restorer.unwrap().restore_text("[[EMAIL_001]]"), "ann@example.com");
}

#[test]
fn conversation_owners_differ_by_uid_and_by_credential_only() {
    assert_eq!(owner(1000, "sk-a"), owner(1000, "sk-a"));
    assert_ne!(owner(1000, "sk-a"), owner(1001, "sk-a"));
    assert_ne!(owner(1000, "sk-a"), owner(1000, "sk-b"));
    assert_ne!(
        ConversationOwner::new(None, [("x-api-key", b"sk-a".as_slice())]),
        owner(1000, "sk-a")
    );
    // Length-prefixed: moving bytes between name and value changes the owner.
    assert_ne!(
        ConversationOwner::new(None, [("authorization", b"Bearer x".as_slice())]),
        ConversationOwner::new(None, [("authorizationB", b"earer x".as_slice())])
    );
    // The digest is never printed.
    assert_eq!(format!("{:?}", owner(1000, "sk-a")), "ConversationOwner(..)");
}

/// Codex also sends `response.append` (more input for the open response);
/// other client events may follow. Whatever the `type` says, and however it
/// is spelled, the input is inspected as prompt text, not secrets only.
#[test]
fn websocket_messages_of_any_type_have_their_input_inspected() {
    let p = common::pipeline();
    let mut vault = Vault::new();
    for msg in [
        r#"{"type":"response.append","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"mail ann@example.com"}]}]}"#,
        r#"{"type":"response\u002ecreate","input":"mail ann@example.com"}"#,
        r#"{"type":"something.new","input":"mail ann@example.com"}"#,
    ] {
        match p.inspect_ws_client_message(msg, &mut vault, &CTX) {
            WsClientOutcome::Forward { text: Some(t), report } => {
                assert!(t.contains("mail [[EMAIL_001]]") && !t.contains("ann@"), "{msg}: {t}");
                assert_eq!(report.verdict, Verdict::Redacted);
            }
            other => panic!("{msg}: {other:?}"),
        }
    }
}

#[test]
fn websocket_follow_ups_reuse_the_connection_vault() {
    let p = common::pipeline();
    let mut vault = Vault::new();
    let first = json!({"type":"response.create","model":"gpt-5","input":[{"role":"user","content":[{"type":"input_text","text":"mail ann@example.com"}]}]});
    let WsClientOutcome::Forward { text: Some(t1), .. } =
        p.inspect_ws_client_message(&first.to_string(), &mut vault, &CTX)
    else {
        panic!()
    };
    assert!(t1.contains("mail [[EMAIL_001]]"));
    let follow = json!({"type":"response.create","previous_response_id":"resp_1","input":[
        {"type":"custom_tool_call_output","call_id":"c","output":"sent to ann@example.com and bo@example.com"}]});
    let WsClientOutcome::Forward { text: Some(t2), .. } =
        p.inspect_ws_client_message(&follow.to_string(), &mut vault, &CTX)
    else {
        panic!()
    };
    assert!(t2.contains("sent to [[EMAIL_001]] and [[EMAIL_002]]"), "{t2}");

    // Server frames: a placeholder split across two delta frames.
    let d1 =
        json!({"type":"response.output_text.delta","item_id":"m","content_index":0,"delta":"hi [[EMAIL_0"}).to_string();
    let d2 = json!({"type":"response.output_text.delta","item_id":"m","content_index":0,"delta":"02]]!"}).to_string();
    let done = json!({"type":"response.output_text.done","item_id":"m","content_index":0,"text":"hi [[EMAIL_002]]!"})
        .to_string();
    let out: Vec<String> = [d1, d2, done]
        .iter()
        .flat_map(|f| p.restore_ws_server_message(f, &mut vault))
        .collect();
    let deltas: String = out
        .iter()
        .take(2)
        .map(|f| {
            serde_json::from_str::<serde_json::Value>(f).unwrap()["delta"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(deltas, "hi bo@example.com!");
    assert!(out[2].contains("\"text\":\"hi bo@example.com!\""));

    let secret = json!({"type":"response.create","input":"AKIAZ7QK3MPLW2XQ4R5T"});
    match p.inspect_ws_client_message(&secret.to_string(), &mut vault, &CTX) {
        WsClientOutcome::Block { frame, .. } => {
            let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["code"], "secret_detected");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn observe_only_passes_bytes_through_and_reads_usage() {
    let cases = [
        (ApiShape::ANTHROPIC_MESSAGES, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":7,\"cache_creation_input_tokens\":3,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n", (10, 42, 7, Some(3)), "claude-x"),
        (ApiShape::OPENAI_CHAT, "data: {\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: {\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\ndata: [DONE]\n\n", (5, 2, 4, None), "gpt-4o"),
        (ApiShape::OPENAI_RESPONSES, "event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"usage\":{\"input_tokens\":9,\"output_tokens\":8,\"input_tokens_details\":{\"cached_tokens\":6}}}}\r\n\r\n", (9, 8, 6, None), "gpt-5"),
    ];
    for (shape, sse, (i, o, cr, cw), model) in cases {
        for split in 0..sse.len() {
            let mut p = ResponseProcessor::observe_only(shape, "text/event-stream");
            let a = Bytes::copy_from_slice(&sse.as_bytes()[..split]);
            let b = Bytes::copy_from_slice(&sse.as_bytes()[split..]);
            let out_a = p.push(a.clone());
            let out_b = p.push(b.clone());
            assert_eq!(out_a.as_ptr(), a.as_ptr(), "zero-copy");
            assert_eq!((out_a, out_b), (a, b));
            assert!(p.finish().is_empty());
            let u = p.usage();
            assert_eq!(
                (
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_read_tokens,
                    u.cache_write_tokens
                ),
                (Some(i), Some(o), Some(cr), cw),
                "{shape:?} split {split}"
            );
            assert_eq!(u.model.as_deref(), Some(model));
            assert!(p.stream_error().is_none());
        }
    }
    let mut p = ResponseProcessor::observe_only(ApiShape::ANTHROPIC_COUNT_TOKENS, "application/json");
    assert_eq!(
        p.push(Bytes::from_static(b"{\"input_tokens\":")),
        Bytes::from_static(b"{\"input_tokens\":")
    );
    p.push(Bytes::from_static(b"77}"));
    p.finish();
    assert_eq!(p.usage().input_tokens, Some(77));
}

#[test]
fn mid_stream_error_event_is_reported_and_passed_unmodified() {
    let sse = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let mut p = ResponseProcessor::observe_only(ApiShape::ANTHROPIC_MESSAGES, "text/event-stream");
    assert_eq!(
        p.push(Bytes::from_static(sse.as_bytes())),
        Bytes::from_static(sse.as_bytes())
    );
    assert_eq!(p.stream_error(), Some("overloaded_error: Overloaded"));

    // Also through a restoring processor.
    let body = json!({"model":"m","messages":[{"role":"user","content":"x@example.com"}]});
    let (_, r) =
        forward(common::pipeline().inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.to_string().as_bytes(), &CTX));
    let out = restore_sse(r.as_ref().unwrap(), ApiShape::ANTHROPIC_MESSAGES, sse);
    assert_eq!(out, sse);
}

#[test]
fn restored_values_are_json_escaped_inside_tool_arguments() {
    // A custom-looking value with a quote and a backslash.
    let p = promptwall_llm::Pipeline::new(
        |text: &str| {
            text.find("q\"b\\s")
                .map(|i| {
                    vec![promptwall_llm::Hit {
                        kind: "odd".into(),
                        category: promptwall_llm::Category::Pii,
                        start: i,
                        end: i + 5,
                        action: promptwall_llm::Action::Reversible,
                    }]
                })
                .unwrap_or_default()
        },
        Default::default(),
    );
    let body = json!({"model":"m","messages":[{"role":"user","content":"value q\"b\\s here"}]});
    let (provider, r) = forward(p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.to_string().as_bytes(), &CTX));
    assert!(provider.contains("value [[ODD_001]] here"));
    let sse = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"v\\\": \\\"[[ODD_001]]\\\"}\"}}\n\n";
    let out = restore_sse(r.as_ref().unwrap(), ApiShape::ANTHROPIC_MESSAGES, sse);
    let data = out.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    let args: serde_json::Value = serde_json::from_str(event["delta"]["partial_json"].as_str().unwrap()).unwrap();
    assert_eq!(args["v"], "q\"b\\s");
}

/// `secrets = "redact"` on a body that is not JSON (a form post, plain
/// text): the value is rewritten, never forwarded as it was; a body that is
/// not UTF-8 cannot be rewritten safely, so it is blocked instead.
#[test]
fn a_redact_action_rewrites_a_plain_text_body_and_blocks_a_binary_one() {
    use promptwall_llm::{Action, Category, Hit, Pipeline, PipelineSettings};
    let key = "AKIAZ7QK3MPLW2XQ4R5T";
    let scanner = move |t: &str| -> Vec<Hit> {
        t.match_indices(key)
            .map(|(at, _)| Hit {
                kind: "aws_access_key_id".into(),
                category: Category::Secret,
                start: at,
                end: at + key.len(),
                action: Action::Redact,
            })
            .collect()
    };
    let pipeline = Pipeline::new(scanner, PipelineSettings::default());
    let form = format!("note=use+{key}+for+s3&x=1");
    match pipeline.inspect_request(ApiShape::OTHER, form.as_bytes(), &CTX) {
        RequestOutcome::Forward { body: Some(body), .. } => {
            assert_eq!(&body[..], b"note=use+[[REDACTED_AWS_ACCESS_KEY_ID]]+for+s3&x=1");
        }
        other => panic!("expected a rewritten body, got {other:?}"),
    }
    let mut binary = b"\xff\xfe".to_vec();
    binary.extend_from_slice(key.as_bytes());
    assert!(matches!(
        pipeline.inspect_request(ApiShape::OTHER, &binary, &CTX),
        RequestOutcome::Block { .. }
    ));
}

/// A body that looks like JSON but does not parse (NDJSON, too deep) is
/// scanned with its escapes undone: an escaped key id is still blocked.
#[test]
fn an_escaped_secret_in_unparseable_json_is_still_blocked() {
    let p = common::pipeline();
    let ndjson = "{\"a\":\"\\u0041KIAZ7QK3MPLW2XQ4R5T\"}\n{\"b\":1}\n";
    assert!(matches!(
        p.inspect_request(ApiShape::OTHER, ndjson.as_bytes(), &CTX),
        RequestOutcome::Block { .. }
    ));
}

/// On an endpoint without its own walker, a `type` of "reasoning" or a
/// `signature` field does not hide the rest of the object from the scan.
#[test]
fn signed_looking_fields_of_an_unknown_endpoint_do_not_hide_secrets() {
    let p = common::pipeline();
    let key = "AKIAZ7QK3MPLW2XQ4R5T";
    for body in [
        json!({"type": "reasoning", "prompt": format!("use {key}")}),
        json!({"items": [{"signature": format!("{key}"), "x": 1}]}),
        json!({"requests": [{"params": {"messages": [{"role": "user", "content": format!("data: {{\"k\":\"{key}\"}}")}]}}]}),
    ] {
        assert!(
            matches!(
                p.inspect_request(ApiShape::OTHER, body.to_string().as_bytes(), &CTX),
                RequestOutcome::Block { .. }
            ),
            "{body}"
        );
    }
}

const FORM: &str = "multipart/form-data; boundary=pwBoundary7";

fn multipart(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (headers, content) in parts {
        b.extend_from_slice(b"--pwBoundary7\r\n");
        b.extend_from_slice(headers.as_bytes());
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--pwBoundary7--\r\n");
    b
}

const PNG: &[u8] = &[
    0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 0x0d, 0xff, 0xfe,
];

fn upload_ctx() -> RequestContext<'static> {
    RequestContext {
        content_type: Some(FORM),
        ..CTX
    }
}

#[test]
fn a_credential_in_a_text_part_of_an_upload_is_blocked_beside_a_binary_part() {
    let p = common::pipeline();
    let body = multipart(&[
        (
            "Content-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png",
            PNG,
        ),
        (
            "Content-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain",
            b"deploy with AKIAZ7QK3MPLW2XQ4R5T today",
        ),
    ]);
    match p.inspect_request(ApiShape::OTHER, &body, &upload_ctx()) {
        RequestOutcome::Block { status, body, report } => {
            assert_eq!(status, 422);
            assert!(!String::from_utf8_lossy(&body).contains("AKIAZ7QK3MPLW2XQ4R5T"));
            assert_eq!(report.counts.get("binary_part_unscanned"), Some(&1));
            assert_eq!(report.counts.get("aws_access_key_id"), Some(&1));
        }
        other => panic!("expected a block, got {other:?}"),
    }
}

#[test]
fn a_credential_hidden_in_a_base64_part_is_found_declared_or_not() {
    use base64::Engine as _;
    let p = common::pipeline();
    let hidden = base64::engine::general_purpose::STANDARD.encode("aws_key = AKIAZ7QK3MPLW2XQ4R5T\n");
    for headers in [
        "Content-Disposition: form-data; name=\"file\"; filename=\"k.txt\"\r\nContent-Transfer-Encoding: base64",
        "Content-Disposition: form-data; name=\"file\"; filename=\"k.b64\"",
    ] {
        let body = multipart(&[(headers, hidden.as_bytes())]);
        match p.inspect_request(ApiShape::OTHER, &body, &upload_ctx()) {
            RequestOutcome::Block { report, .. } => {
                assert_eq!(report.counts.get("aws_access_key_id"), Some(&1), "{headers}")
            }
            other => panic!("{headers}: expected a block, got {other:?}"),
        }
    }
}

#[test]
fn a_clean_upload_is_forwarded_byte_for_byte_and_its_binary_parts_are_counted_as_unscanned() {
    let p = common::pipeline();
    let body = multipart(&[
        ("Content-Disposition: form-data; name=\"purpose\"", b"assistants"),
        (
            "Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png",
            PNG,
        ),
    ]);
    match p.inspect_request(ApiShape::OTHER, &body, &upload_ctx()) {
        RequestOutcome::Forward { body, report, .. } => {
            assert!(body.is_none(), "unchanged");
            assert_eq!(report.verdict, Verdict::Allowed);
            assert_eq!(report.counts.get("binary_part_unscanned"), Some(&1));
        }
        other => panic!("expected forward, got {other:?}"),
    }
}

#[test]
fn a_multipart_body_that_does_not_parse_is_still_scanned_whole() {
    let p = common::pipeline();
    let broken = b"--pwBoundary7\r\nContent-Disposition: form-data; name=a\r\n\r\nkey AKIAZ7QK3MPLW2XQ4R5T and no end";
    assert!(matches!(
        p.inspect_request(ApiShape::OTHER, broken, &upload_ctx()),
        RequestOutcome::Block { .. }
    ));
}
