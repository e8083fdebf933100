//! A shape that exists only in tests: `impl Shape` for a made-up
//! endpoint, registered by the tests that use it (the llm pipeline's and
//! the proxy's, which includes this file by path).

use bytes::Bytes;
use promptwall_llm::json::Node;
use promptwall_llm::walk::{Mode, Walk};
use promptwall_llm::{ErrorFamily, EventRestorer, EventResult, NonJsonBody, Shape, Usage};
use serde_json::{json, Value};

/// `POST /v1/fake/generate` with `{"prompt": "..."}`, answered with
/// `{"text": "...", "usage": {"in": N, "out": M}}`.
pub struct FakeGenerate;

impl Shape for FakeGenerate {
    fn name(&self) -> &'static str {
        "fake.generate"
    }

    fn matches(&self, method: &str, key: &str) -> bool {
        method.eq_ignore_ascii_case("POST") && key.ends_with("/fake/generate")
    }

    fn is_llm(&self) -> bool {
        true
    }

    // Not OpenAI's, so a block shows the envelope is this shape's choice.
    fn error_family(&self) -> ErrorFamily {
        ErrorFamily::Anthropic
    }

    fn non_json_body(&self) -> NonJsonBody {
        NonJsonBody::Reject
    }

    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
        walk.top_level(root, &[], "prompt", |w, key, v, p| match key {
            "prompt" => w.place(v, Mode::Text, p),
            _ => w.generic(v, p),
        });
    }

    fn model_in_path(&self, _: &str) -> Option<String> {
        None
    }

    fn continuation_field(&self) -> Option<&'static str> {
        None
    }

    fn restore_event(&self, events: &mut EventRestorer, _: Option<&str>, data: &str) -> EventResult {
        EventResult {
            replaced: events.restore_whole(data),
            ..Default::default()
        }
    }

    fn observe_event(&self, usage: &mut Usage, _: Option<&str>, event: &Value) {
        self.observe_json(usage, event);
    }

    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        usage.input_tokens = body.pointer("/usage/in").and_then(Value::as_u64);
        usage.output_tokens = body.pointer("/usage/out").and_then(Value::as_u64);
    }

    fn sse_error_event(&self, message: &str) -> Bytes {
        Bytes::from(format!("\n\ndata: {}\n\n", json!({"error": message})))
    }

    fn ws_error_frame(&self, _: u16, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }

    fn codec(&self) -> Option<&'static dyn promptwall_llm::translate::Codec> {
        None
    }
}

pub static FAKE: FakeGenerate = FakeGenerate;
