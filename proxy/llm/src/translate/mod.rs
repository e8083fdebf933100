//! Translation between API shapes, in pure code: requests, whole answers,
//! streamed answers event by event, and errors.
//!
//! Each shape that can be translated has one [`Codec`] (returned by
//! [`crate::Shape::codec`]) that decodes its bodies into the common model of
//! [`ir`] and encodes them back out. A pair is translated by decoding in one
//! shape and encoding in the other, so adding a shape is one codec module
//! here and one line in its `Shape` impl; no pair is written by hand.
//!
//! What crosses badly is in [`ir::Notes`] and the README's translation
//! table: signed thinking and encrypted reasoning only go back to the
//! provider that made them; prompt-cache markers only to Anthropic.
//!
//! The proxy runs the request side in its translate stage (after
//! redaction, so placeholders are translated like any text) and the
//! response side before restoration (so the restorer sees the client's
//! shape).

pub mod anthropic;
pub mod chat;
mod count;
pub mod ir;
pub mod responses;

use crate::shape::ApiShape;

pub use count::estimate_input_tokens;
pub use ir::Notes;

/// Why a body could not be translated. The message names fields and
/// shapes, never the body's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("the request is not valid {shape} JSON: {reason}")]
    Malformed { shape: &'static str, reason: String },
    #[error("{shape} cannot express {what}")]
    Unsupported { shape: &'static str, what: String },
    #[error("no translation from {from} to {to}: one of them has no codec")]
    NoCodec { from: &'static str, to: &'static str },
}

/// Facts about the exchange an encoder of answers needs and cannot make up
/// in pure code (ids and clocks come from the caller).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseContext {
    /// The model the client asked for: answers name it, so a client that
    /// checks the model it gets back sees its own alias.
    pub client_model: String,
    /// Unix seconds for `created` fields.
    pub created: u64,
    /// A unique id seed for ids the target shape needs and the source did
    /// not give (`msg_…`, `chatcmpl-…`, `resp_…`, item ids).
    pub id_seed: String,
    /// The client asked for usage in its stream (Chat
    /// `stream_options.include_usage`); other shapes always get it.
    pub stream_usage: bool,
    /// Names of the client's freeform tools ([`freeform_tools`] of its
    /// decoded request): the Responses encoder answers their calls as
    /// `custom_tool_call`s with the raw input.
    pub freeform_tools: Vec<String>,
}

/// One streamed event as a shape frames it: an SSE event name (None for
/// shapes whose streams have none) and its JSON data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<&'static str>,
    pub data: String,
}

impl Event {
    /// As SSE bytes (`event: …\ndata: …\n\n`).
    pub fn to_sse(&self) -> String {
        crate::sse::format_event(self.name, &self.data)
    }
}

/// One API's bodies in and out of the common model.
pub trait Codec: Send + Sync + 'static {
    /// The request in the common model; what the model cannot carry and
    /// matters is noted by field name.
    fn decode_request(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Request, TranslateError>;
    /// The request in this shape. For a streamed request, encoders ask the
    /// provider for usage in the stream (Chat `stream_options`).
    fn encode_request(&self, req: &ir::Request, notes: &mut Notes) -> Vec<u8>;

    fn decode_response(&self, body: &[u8], notes: &mut Notes) -> Result<ir::Response, TranslateError>;
    fn encode_response(&self, resp: &ir::Response, ctx: &ResponseContext, notes: &mut Notes) -> Vec<u8>;

    /// Reads this shape's stream (one event at a time) into the common events.
    fn stream_decoder(&self) -> Box<dyn StreamDecoder>;
    /// Writes the common events as this shape's stream.
    fn stream_encoder(&self, ctx: &ResponseContext) -> Box<dyn StreamEncoder>;

    /// A provider error body of this shape (any status, any body: a body
    /// that is not this shape's envelope gives the status's kind and a
    /// generic message).
    fn decode_error(&self, status: u16, body: &[u8]) -> ir::ApiError;
    /// The error in this shape's envelope, as a JSON body.
    fn encode_error(&self, err: &ir::ApiError) -> Vec<u8>;
    /// The error as this shape's in-stream error event.
    fn encode_stream_error(&self, err: &ir::ApiError) -> Event;

    /// The endpoint path of this shape under a provider's base URL
    /// (`/v1/messages`, `/v1/chat/completions`, `/v1/responses`).
    fn endpoint(&self) -> &'static str;
}

pub trait StreamDecoder: Send {
    /// One event of the upstream's stream (SSE name and data).
    fn event(&mut self, name: Option<&str>, data: &str, out: &mut Vec<ir::StreamEvent>);
    /// The upstream's stream ended: close what is open (a stream that ends
    /// without its terminal event is finished with what is known).
    fn end(&mut self, out: &mut Vec<ir::StreamEvent>);
    /// What the stream so far held that the events cannot carry.
    fn notes(&self) -> &Notes;
}

pub trait StreamEncoder: Send {
    fn event(&mut self, event: &ir::StreamEvent, out: &mut Vec<Event>);
    /// What this shape could not carry of the events so far (foreign
    /// signatures, stop reasons it has no name for, ...).
    fn notes(&self) -> &Notes;
}

/// A request from `from`'s shape to `to`'s; `notes` gets what decoding
/// and encoding dropped.
pub fn request(from: ApiShape, to: ApiShape, body: &[u8], notes: &mut Notes) -> Result<Vec<u8>, TranslateError> {
    let (src, dst) = codecs(from, to)?;
    let req = src.decode_request(body, notes)?;
    Ok(dst.encode_request(&req, notes))
}

/// Names of the request's freeform tools, for
/// [`ResponseContext::freeform_tools`] (call it on the client's request,
/// decoded in the client's shape).
pub fn freeform_tools(req: &ir::Request) -> Vec<String> {
    req.tools
        .iter()
        .filter(|t| matches!(t.kind, ir::ToolKind::Freeform { .. }))
        .map(|t| t.name.clone())
        .collect()
}

/// A whole answer from the upstream's shape to the client's.
pub fn response(
    upstream: ApiShape,
    client: ApiShape,
    body: &[u8],
    ctx: &ResponseContext,
    notes: &mut Notes,
) -> Result<Vec<u8>, TranslateError> {
    let (src, dst) = codecs(upstream, client)?;
    let resp = src.decode_response(body, notes)?;
    Ok(dst.encode_response(&resp, ctx, notes))
}

/// An upstream error body in the client's envelope; the status is kept.
pub fn error(upstream: ApiShape, client: ApiShape, status: u16, body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let (src, dst) = codecs(upstream, client)?;
    Ok(dst.encode_error(&src.decode_error(status, body)))
}

/// A streamed answer from the upstream's shape to the client's, one
/// upstream event at a time, nothing buffered beyond the event.
pub struct StreamTranslator {
    decoder: Box<dyn StreamDecoder>,
    encoder: Box<dyn StreamEncoder>,
    scratch: Vec<ir::StreamEvent>,
    /// The upstream's usage as its stream reported it, whatever the
    /// client's stream can carry (a Chat client that did not ask for usage
    /// gets none, but the audit row still needs it).
    usage: Option<ir::TokenUsage>,
}

impl StreamTranslator {
    pub fn new(upstream: ApiShape, client: ApiShape, ctx: &ResponseContext) -> Result<Self, TranslateError> {
        let (src, dst) = codecs(upstream, client)?;
        Ok(StreamTranslator {
            decoder: src.stream_decoder(),
            encoder: dst.stream_encoder(ctx),
            scratch: Vec::new(),
            usage: None,
        })
    }

    /// The upstream's usage, once its stream reported it.
    pub fn usage(&self) -> Option<ir::TokenUsage> {
        self.usage
    }

    /// The client's events for one upstream event.
    pub fn event(&mut self, name: Option<&str>, data: &str, out: &mut Vec<Event>) {
        self.decoder.event(name, data, &mut self.scratch);
        self.drain(out);
    }

    /// The client's closing events once the upstream's stream ended.
    pub fn end(&mut self, out: &mut Vec<Event>) {
        self.decoder.end(&mut self.scratch);
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<Event>) {
        for ev in self.scratch.drain(..) {
            match &ev {
                ir::StreamEvent::Start { usage, .. } if *usage != ir::TokenUsage::default() => {
                    self.usage = Some(*usage)
                }
                ir::StreamEvent::Finish { usage, .. } => self.usage = Some(*usage),
                _ => {}
            }
            self.encoder.event(&ev, out);
        }
    }

    /// What the translation dropped so far, reading then writing.
    pub fn notes(&self) -> Notes {
        let mut notes = self.decoder.notes().clone();
        notes.extend(self.encoder.notes());
        notes
    }
}

fn codecs(from: ApiShape, to: ApiShape) -> Result<(&'static dyn Codec, &'static dyn Codec), TranslateError> {
    match (from.codec(), to.codec()) {
        (Some(src), Some(dst)) => Ok((src, dst)),
        _ => Err(TranslateError::NoCodec {
            from: from.as_str(),
            to: to.as_str(),
        }),
    }
}

/// Most a whole (non-streamed) answer or error body may grow to while it
/// is buffered for translation; past it the client gets an error in its
/// envelope instead (no provider sends answers this large).
pub const MAX_WHOLE_BODY: usize = 64 * 1024 * 1024;

/// Most one upstream SSE event may grow to while it is incomplete (as the
/// response processor's bound): past it the stream is ended with an error.
pub const MAX_STREAM_EVENT: usize = 16 << 20;

/// An upstream answer, as bytes arrive, turned into the client's shape:
/// a stream event by event, a whole body (answer or error) at its end.
pub struct ResponseTranslator {
    mode: Mode,
    client: ApiShape,
    /// A whole answer's usage, once decoded.
    whole_usage: Option<ir::TokenUsage>,
    /// What a whole answer's translation dropped (a stream's are its
    /// translator's).
    notes: Notes,
}

enum Mode {
    Stream {
        splitter: crate::sse::SseSplitter,
        translator: Box<StreamTranslator>,
        events: Vec<Event>,
    },
    Whole {
        upstream: ApiShape,
        status: u16,
        ctx: ResponseContext,
        buf: Vec<u8>,
        overflow: bool,
    },
}

impl ResponseTranslator {
    /// `status` and `content_type` are the upstream's; a successful
    /// `text/event-stream` is translated as a stream, anything else whole.
    pub fn new(
        upstream: ApiShape,
        client: ApiShape,
        status: u16,
        content_type: &str,
        ctx: &ResponseContext,
    ) -> Result<ResponseTranslator, TranslateError> {
        codecs(upstream, client)?;
        let streamed = (200..300).contains(&status) && content_type.to_ascii_lowercase().contains("text/event-stream");
        let mode = if streamed {
            Mode::Stream {
                splitter: Default::default(),
                translator: Box::new(StreamTranslator::new(upstream, client, ctx)?),
                events: Vec::new(),
            }
        } else {
            Mode::Whole {
                upstream,
                status,
                ctx: ctx.clone(),
                buf: Vec::new(),
                overflow: false,
            }
        };
        Ok(ResponseTranslator {
            mode,
            client,
            whole_usage: None,
            notes: Notes::default(),
        })
    }

    /// The client's bytes for one chunk of the upstream's.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        match &mut self.mode {
            Mode::Stream {
                splitter,
                translator,
                events,
            } => {
                splitter.push(chunk);
                while let Some(raw) = splitter.next_event() {
                    if let Some(ev) = crate::sse::parse_event(&raw) {
                        if ev.has_data {
                            translator.event(ev.name, &ev.data, events);
                        }
                    }
                }
                if splitter.pending() > MAX_STREAM_EVENT {
                    // An upstream that never ends its event: end the stream
                    // instead of holding it whole.
                    let _ = splitter.take_rest();
                    let err = ir::ApiError {
                        status: 502,
                        kind: ir::ErrorKind::Server,
                        message: format!("promptwall: the provider sent an event over {MAX_STREAM_EVENT} bytes"),
                        code: None,
                    };
                    if let Some(dst) = self.client.codec() {
                        events.push(dst.encode_stream_error(&err));
                    }
                }
                drain_sse(events)
            }
            Mode::Whole { buf, overflow, .. } => {
                if buf.len() + chunk.len() > MAX_WHOLE_BODY {
                    *overflow = true;
                } else {
                    buf.extend_from_slice(chunk);
                }
                Vec::new()
            }
        }
    }

    /// The client's last bytes once the upstream's answer ended.
    pub fn finish(&mut self) -> Vec<u8> {
        let client = self.client;
        let notes = &mut self.notes;
        let whole_usage = &mut self.whole_usage;
        match &mut self.mode {
            Mode::Stream {
                splitter,
                translator,
                events,
            } => {
                let rest = splitter.take_rest();
                if let Some(ev) = crate::sse::parse_event(&rest) {
                    if ev.has_data {
                        translator.event(ev.name, &ev.data, events);
                    }
                }
                translator.end(events);
                drain_sse(events)
            }
            Mode::Whole {
                upstream,
                status,
                ctx,
                buf,
                overflow,
            } => {
                let Some(dst) = client.codec() else {
                    return std::mem::take(buf);
                };
                if *overflow {
                    return dst.encode_error(&ir::ApiError {
                        status: 502,
                        kind: ir::ErrorKind::Server,
                        message: format!(
                            "promptwall: the provider's answer is over {MAX_WHOLE_BODY} bytes and cannot be translated"
                        ),
                        code: None,
                    });
                }
                if !(200..300).contains(status) {
                    return error(*upstream, client, *status, buf).unwrap_or_else(|_| std::mem::take(buf));
                }
                let decoded = upstream
                    .codec()
                    .ok_or(TranslateError::NoCodec {
                        from: upstream.as_str(),
                        to: client.as_str(),
                    })
                    .and_then(|src| src.decode_response(buf, notes));
                decoded
                    .map(|resp| {
                        *whole_usage = Some(resp.usage);
                        dst.encode_response(&resp, ctx, notes)
                    })
                    .unwrap_or_else(|e| {
                        dst.encode_error(&ir::ApiError {
                            status: 502,
                            kind: ir::ErrorKind::Server,
                            message: format!(
                                "promptwall could not translate the provider's answer ({e}); retry, or report it"
                            ),
                            code: None,
                        })
                    })
            }
        }
    }

    /// Whether the answer changes length (always: its head's
    /// Content-Length must go).
    pub fn is_streamed(&self) -> bool {
        matches!(self.mode, Mode::Stream { .. })
    }

    /// The upstream's own usage (complete after [`Self::finish`]).
    pub fn usage(&self) -> Option<ir::TokenUsage> {
        match &self.mode {
            Mode::Stream { translator, .. } => translator.usage(),
            Mode::Whole { .. } => self.whole_usage,
        }
    }

    /// What the translation dropped so far (complete after [`Self::finish`]).
    pub fn notes(&self) -> Notes {
        match &self.mode {
            Mode::Stream { translator, .. } => translator.notes(),
            Mode::Whole { .. } => self.notes.clone(),
        }
    }
}

fn drain_sse(events: &mut Vec<Event>) -> Vec<u8> {
    let mut out = String::new();
    for ev in events.drain(..) {
        out.push_str(&ev.to_sse());
    }
    out.into_bytes()
}
