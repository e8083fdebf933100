//! What the pipeline needs to know about one provider API: the [`Shape`]
//! trait, and [`ApiShape`], the copyable handle requests carry.
//!
//! # Adding a shape
//!
//! Write one module under `src/shapes/` with a unit struct implementing
//! [`Shape`] (every method is required: there is no default behaviour a new
//! API could silently inherit), and add one line to the builtin list in
//! `shapes/mod.rs` (`BUILTIN`). Nothing else names shapes: the pipeline, the
//! response processor and the proxy only call the trait. An associated
//! const on [`ApiShape`] is optional, for callers that name the shape.
//! A shape from outside the crate (a test's) is registered with
//! [`crate::Shapes::with`].

use bytes::Bytes;
use serde_json::Value;

use crate::json::Node;
use crate::stream::{EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::Walk;

/// Which error envelope a shape's clients parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorFamily {
    /// `{"type":"error","error":{"type":..,"message":..}}`
    Anthropic,
    /// `{"error":{"message":..,"type":..,"param":null,"code":..}}`
    OpenAi,
    /// Google APIs' `{"error":{"code":<status>,"message":..,"status":"INVALID_ARGUMENT"}}`
    Google,
}

/// What happens to a body of this shape that is not JSON (or not UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonJsonBody {
    /// Refused with a 400: an API that speaks JSON cannot be inspected
    /// field by field otherwise.
    Reject,
    /// Scanned as text for credentials and forwarded (form posts, uploads,
    /// telemetry of endpoints that are not LLM calls).
    ScanAsText,
}

/// One provider API. Implementations are stateless unit structs; per
/// request state lives in the [`Walk`], [`EventRestorer`] and [`Usage`]
/// they are handed.
pub trait Shape: Send + Sync + 'static {
    /// Stable name for audit rows and logs (`anthropic.messages`); also the
    /// shape's identity ([`ApiShape`] equality).
    fn name(&self) -> &'static str;

    /// Whether a request with `method` to a path whose
    /// [`crate::path::classification_key`] is `key` speaks this shape.
    /// Match by suffix so provider prefixes (`/openai/v1/...`) still match.
    fn matches(&self, method: &str, key: &str) -> bool;

    /// Whether requests are LLM calls (inspected as prompts, usage read,
    /// a broken stream ended with [`Shape::sse_error_event`]).
    fn is_llm(&self) -> bool;

    /// The error envelope this shape's clients expect.
    fn error_family(&self) -> ErrorFamily;

    /// What to do with a body that is not JSON.
    fn non_json_body(&self) -> NonJsonBody;

    /// Walk the text-bearing places of a request body into `walk`: static
    /// parts first, the growing conversation last (placeholder numbering
    /// follows this order).
    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>);

    /// The model a request to `path` asks for when the API names it in the
    /// path rather than the body (Gemini's `.../models/{model}:generateContent`),
    /// in the path's own case; None for APIs whose model is the body's
    /// `model`. `path` is the normalised request path (no query).
    fn model_in_path(&self, path: &str) -> Option<String>;

    /// The top-level string field by which a request continues an earlier
    /// answer, whose placeholders it then keeps (Responses'
    /// `previous_response_id`); None when the API has no such field.
    fn continuation_field(&self) -> Option<&'static str>;

    /// Restore placeholders in one streamed event payload (SSE `data:` or a
    /// WebSocket frame; `name` is the SSE event name).
    fn restore_event(&self, events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult;

    /// Read usage, model and a reported error from one streamed event that
    /// may carry them (already parsed).
    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value);

    /// Read usage and model from a whole JSON response body.
    fn observe_json(&self, usage: &mut Usage, body: &Value);

    /// The SSE event that ends a stream promptwall has to break off, in the
    /// format this shape's SDKs parse. Starts with a blank line so it is
    /// never glued to a preceding event.
    fn sse_error_event(&self, message: &str) -> Bytes;

    /// The error frame a WebSocket client of this shape receives instead of
    /// a response; None for shapes without a WebSocket transport.
    fn ws_error_frame(&self, status: u16, error_type: &str, code: &str, message: &str) -> Option<String>;

    /// How this shape's bodies are translated to and from other shapes
    /// (see [`crate::translate`]); None for shapes that are never translated.
    fn codec(&self) -> Option<&'static dyn crate::translate::Codec>;
}

/// A request's shape: a copyable handle on a `'static` [`Shape`], equal
/// (and hashed) by name. The builtin shapes are associated consts
/// (`ApiShape::OPENAI_CHAT`); [`crate::Shapes`] classifies requests.
#[derive(Clone, Copy)]
pub struct ApiShape(&'static dyn Shape);

impl ApiShape {
    pub const fn new(shape: &'static dyn Shape) -> ApiShape {
        ApiShape(shape)
    }

    /// Stable name for audit rows and logs.
    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    pub fn is_llm(self) -> bool {
        self.0.is_llm()
    }

    /// Its translation codec, if it can be translated.
    pub fn codec(self) -> Option<&'static dyn crate::translate::Codec> {
        self.0.codec()
    }

    /// Anthropic clients get Anthropic error envelopes; everything else OpenAI's.
    pub fn is_anthropic(self) -> bool {
        self.0.error_family() == ErrorFamily::Anthropic
    }
}

impl std::ops::Deref for ApiShape {
    type Target = dyn Shape;

    fn deref(&self) -> &(dyn Shape + 'static) {
        self.0
    }
}

impl PartialEq for ApiShape {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for ApiShape {}

impl std::hash::Hash for ApiShape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
    }
}

impl std::fmt::Debug for ApiShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl std::fmt::Display for ApiShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}
