//! promptwall-llm: the pure inspection pipeline (no I/O).
//!
//! - [`Shapes::classify`] (or [`ApiShape::classify`] over the builtin
//!   shapes) names the API a request speaks; each API is one module under
//!   `shapes/` implementing [`Shape`].
//! - [`Pipeline::inspect_request`] scans a request body and decides: forward
//!   unchanged, forward with placeholders (plus a [`Restorer`]), or block
//!   with an error in the client's own format.
//! - [`ResponseProcessor`] restores placeholders in JSON and SSE responses
//!   and reads usage; [`ResponseProcessor::observe_only`] only reads.
//! - [`Vault`] carries placeholders across the messages of one WebSocket.

pub mod detect;
pub use detect::policy;
mod detect_api;
pub mod errors;
mod field;
pub mod json;
pub mod multipart;
pub mod path;
mod pipeline;
mod response;
mod restore;
mod scan;
mod shape;
mod shapes;
mod sse;
mod stream;
pub mod translate;
mod usage;
mod vault;
pub mod walk;

pub use errors::{error_body, error_body_with_code, error_type_for_status, ws_error_frame};
pub use pipeline::{
    FindingRecord, Pipeline, PipelineSettings, Report, RequestContext, RequestOutcome, Verdict, WsClientOutcome,
    MAX_FINDINGS,
};
pub use response::ResponseProcessor;
pub use restore::{EscapeMode, Restorer};
pub use scan::{scrub, Action, Category, Hit, Scanner};
pub use shape::{ApiShape, ErrorFamily, NonJsonBody, Shape};
pub use shapes::Shapes;
pub use stream::{EventRestorer, EventResult, Synthetic};
pub use usage::Usage;
pub use vault::{label as placeholder_label, redacted_placeholder, ConversationOwner, Vault};

/// Typed wire models of the builtin shapes, for translating between APIs
/// (not for redaction, which splices the client's own bytes). Each keeps
/// unknown fields, so parse → serialize yields the same JSON value.
pub mod wire {
    pub use crate::field::Field;
    pub use crate::shapes::anthropic_messages::wire as anthropic_messages;
    pub use crate::shapes::openai_chat::wire as openai_chat;
    pub use crate::shapes::openai_responses::wire as openai_responses;
}
