//! OpenAI Embeddings (`POST .../embeddings`): `input` is a string or an
//! array of strings (token arrays carry no text); answered with JSON only.

use bytes::Bytes;
use serde_json::Value;

use crate::errors;
use crate::json::Node;
use crate::shape::{ErrorFamily, NonJsonBody, Shape};
use crate::stream::{EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::{Mode, Walk};

pub(crate) struct OpenAiEmbeddings;

impl Shape for OpenAiEmbeddings {
    fn name(&self) -> &'static str {
        "openai.embeddings"
    }

    fn matches(&self, method: &str, key: &str) -> bool {
        method.eq_ignore_ascii_case("POST") && key.ends_with("/embeddings")
    }

    fn is_llm(&self) -> bool {
        true
    }

    fn error_family(&self) -> ErrorFamily {
        ErrorFamily::OpenAi
    }

    fn non_json_body(&self) -> NonJsonBody {
        NonJsonBody::Reject
    }

    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
        walk.top_level(root, &[], "input", |w, key, v, p| match (key, v) {
            ("input", Node::Str(_)) => w.place(v, Mode::Text, p),
            ("input", Node::Arr(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let pi = w.index(p, i);
                    if let Node::Str(_) = item {
                        w.place(item, Mode::Text, pi);
                    }
                }
            }
            _ => w.generic(v, p),
        });
    }

    fn model_in_path(&self, _: &str) -> Option<String> {
        None
    }

    fn continuation_field(&self) -> Option<&'static str> {
        None
    }

    /// The endpoint does not stream; any event is restored whole.
    fn restore_event(&self, events: &mut EventRestorer, _: Option<&str>, data: &str) -> EventResult {
        EventResult {
            replaced: events.restore_whole(data),
            ..Default::default()
        }
    }

    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value) {
        if Usage::is_error_event(name, event) {
            return usage.record_error(event);
        }
        usage.absorb(event);
    }

    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        usage.absorb(body);
    }

    /// OpenAI's Chat stream error format (the endpoint never streams).
    fn sse_error_event(&self, message: &str) -> Bytes {
        errors::openai_chat_sse_error(message)
    }

    fn ws_error_frame(&self, _: u16, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }

    fn codec(&self) -> Option<&'static dyn crate::translate::Codec> {
        None
    }
}
