//! Anthropic token counting (`POST /v1/messages/count_tokens`): a Messages
//! request body, answered with `{"input_tokens": N}`.

use bytes::Bytes;
use serde_json::Value;

use crate::errors;
use crate::json::Node;
use crate::shape::{ErrorFamily, NonJsonBody, Shape};
use crate::shapes::anthropic_messages;
use crate::stream::{EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::Walk;

pub(crate) struct AnthropicCountTokens;

impl Shape for AnthropicCountTokens {
    fn name(&self) -> &'static str {
        "anthropic.count_tokens"
    }

    fn matches(&self, method: &str, key: &str) -> bool {
        method.eq_ignore_ascii_case("POST") && key.ends_with("/messages/count_tokens")
    }

    fn is_llm(&self) -> bool {
        true
    }

    fn error_family(&self) -> ErrorFamily {
        ErrorFamily::Anthropic
    }

    fn non_json_body(&self) -> NonJsonBody {
        NonJsonBody::Reject
    }

    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
        anthropic_messages::walk_request(walk, root);
    }

    fn model_in_path(&self, _: &str) -> Option<String> {
        None
    }

    fn continuation_field(&self) -> Option<&'static str> {
        None
    }

    /// The endpoint does not stream; an answer that does is read as Messages'.
    fn restore_event(&self, events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult {
        anthropic_messages::restore_event(events, name, data)
    }

    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value) {
        if Usage::is_error_event(name, event) {
            return usage.record_error(event);
        }
        usage.absorb(event);
    }

    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        usage.absorb(body);
        if let Some(n) = body.get("input_tokens").and_then(Value::as_u64) {
            usage.input_tokens = Some(n);
        }
    }

    fn sse_error_event(&self, message: &str) -> Bytes {
        errors::anthropic_sse_error(message)
    }

    fn ws_error_frame(&self, _: u16, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }

    fn codec(&self) -> Option<&'static dyn crate::translate::Codec> {
        None
    }
}
