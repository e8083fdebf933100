//! Everything that is not an LLM call: settings, telemetry, uploads,
//! sign-in, and LLM APIs newer than this release. Never claimed by a path;
//! the registry's answer when no shape matches. Bodies are still checked
//! (credentials everywhere, every detector under prompt-like keys).

use bytes::Bytes;
use serde_json::Value;

use crate::errors;
use crate::json::Node;
use crate::shape::{ErrorFamily, NonJsonBody, Shape};
use crate::stream::{EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::Walk;

pub(crate) struct Other;

impl Shape for Other {
    fn name(&self) -> &'static str {
        "other"
    }

    fn matches(&self, _: &str, _: &str) -> bool {
        false
    }

    fn is_llm(&self) -> bool {
        false
    }

    /// The pipeline's own errors for these requests use the OpenAI envelope;
    /// the proxy re-renders them for Anthropic's hosts.
    fn error_family(&self) -> ErrorFamily {
        ErrorFamily::OpenAi
    }

    fn non_json_body(&self) -> NonJsonBody {
        NonJsonBody::ScanAsText
    }

    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
        walk.unknown_endpoint(root);
    }

    fn model_in_path(&self, _: &str) -> Option<String> {
        None
    }

    fn continuation_field(&self) -> Option<&'static str> {
        None
    }

    /// No known stream format: events are restored whole.
    fn restore_event(&self, events: &mut EventRestorer, _: Option<&str>, data: &str) -> EventResult {
        EventResult {
            replaced: events.restore_whole(data),
            ..Default::default()
        }
    }

    /// Read like any provider's, should an unknown endpoint report usage.
    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value) {
        if Usage::is_error_event(name, event) {
            return usage.record_error(event);
        }
        usage.absorb(event);
    }

    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        usage.absorb(body);
    }

    /// Not sent for these (the proxy ends only LLM streams); the most widely
    /// parsed format if it ever is.
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
