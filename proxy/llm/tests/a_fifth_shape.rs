//! A shape defined outside the crate: one `impl Shape` plus one registry
//! call, and the pipeline inspects, blocks, redacts, restores and reads
//! usage for it without any other code naming it.

mod common;

use bytes::Bytes;
use promptwall_llm::{ApiShape, RequestContext, RequestOutcome, Shapes, Verdict};
use serde_json::{json, Value};

#[path = "common/fake_shape.rs"]
mod fake_shape;
use fake_shape::FAKE;

const CTX: RequestContext<'static> = RequestContext {
    fingerprint_salt: "s",
    owner: None,
    content_type: None,
};

fn shapes() -> Shapes {
    Shapes::builtin().with(&FAKE)
}

#[test]
fn a_registered_shape_is_classified_and_the_builtin_registry_does_not_know_it() {
    let fake = shapes().classify("POST", "/v1/fake/generate");
    assert_eq!(fake, ApiShape::new(&FAKE));
    assert_eq!(fake.as_str(), "fake.generate");
    assert!(fake.is_llm() && fake.is_anthropic());
    assert_eq!(shapes().classify("POST", "/v1/messages"), ApiShape::ANTHROPIC_MESSAGES);
    assert_eq!(shapes().classify("GET", "/v1/fake/generate"), ApiShape::OTHER);
    assert_eq!(ApiShape::classify("POST", "/v1/fake/generate"), ApiShape::OTHER);
}

#[test]
fn a_secret_in_the_new_shapes_text_is_blocked_in_its_own_error_envelope() {
    let shape = shapes().classify("POST", "/v1/fake/generate");
    let body = json!({"model": "fake-1", "prompt": "deploy with AKIAIOSFODNN7ABCDEFG"});
    match common::pipeline().inspect_request(shape, body.to_string().as_bytes(), &CTX) {
        RequestOutcome::Block { status, body, report } => {
            assert_eq!(status, 422);
            assert_eq!(report.verdict, Verdict::Blocked);
            assert_eq!(report.findings[0].location, "prompt");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["type"], "error", "Anthropic envelope: {v}");
            assert_eq!(v["error"]["type"], "invalid_request_error");
        }
        other => panic!("expected a block, got {other:?}"),
    }
}

#[test]
fn an_email_in_the_new_shapes_text_is_redacted_then_restored_and_usage_is_read() {
    let shape = shapes().classify("POST", "/v1/fake/generate");
    let body = json!({"model": "fake-1", "prompt": "write to ann@example.com"});
    let (sent, restorer) = match common::pipeline().inspect_request(shape, body.to_string().as_bytes(), &CTX) {
        RequestOutcome::Forward {
            body: Some(sent),
            restorer: Some(restorer),
            report,
        } => {
            assert_eq!(report.verdict, Verdict::Redacted);
            assert_eq!(report.model.as_deref(), Some("fake-1"));
            (sent, restorer)
        }
        other => panic!("expected a redacted forward, got {other:?}"),
    };
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["prompt"], "write to [[EMAIL_001]]");

    let mut p = restorer.response_processor("application/json", shape);
    let answer = br#"{"text": "Sent to [[EMAIL_001]].", "usage": {"in": 12, "out": 4}}"#;
    let mut out = p.push(Bytes::from_static(answer)).to_vec();
    out.extend_from_slice(&p.finish());
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["text"], "Sent to ann@example.com.");
    let usage = p.usage();
    assert_eq!((usage.input_tokens, usage.output_tokens), (Some(12), Some(4)));
}

#[test]
fn the_new_shapes_stream_events_are_restored_and_read_by_its_own_impl() {
    let shape = shapes().classify("POST", "/v1/fake/generate");
    let body = json!({"prompt": "ann@example.com"});
    let RequestOutcome::Forward {
        restorer: Some(restorer),
        ..
    } = common::pipeline().inspect_request(shape, body.to_string().as_bytes(), &CTX)
    else {
        panic!("expected a redacted forward");
    };
    let mut p = restorer.response_processor("text/event-stream", shape);
    let mut out = p
        .push(Bytes::from_static(
            b"data: {\"text\": \"hi [[EMAIL_001]]\", \"usage\": {\"in\": 2, \"out\": 1}}\n\n",
        ))
        .to_vec();
    out.extend_from_slice(&p.finish());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "data: {\"text\": \"hi ann@example.com\", \"usage\": {\"in\": 2, \"out\": 1}}\n\n"
    );
    assert_eq!(p.usage().input_tokens, Some(2));
    assert_eq!(
        &shape.sse_error_event("gone")[..],
        b"\n\ndata: {\"error\":\"gone\"}\n\n"
    );
}
