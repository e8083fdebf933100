//! Streams: `message_start`, content blocks (`content_block_start`, deltas,
//! `content_block_stop`), `message_delta`, `message_stop`; `ping` and `error`.

use serde_json::{json, Map, Value};

use super::response::{answer_model, call_id, message_id};
use super::{
    decode_error_value, decode_usage, foreign_thinking_note, note_reasoning_tokens, status_of_kind, stop_reason_of,
    stop_reason_str, stream_error_event, ORIGIN,
};
use crate::translate::ir::{self, Delta, Notes, PartStart, StreamEvent, TokenUsage};
use crate::translate::{Event, ResponseContext, StreamDecoder, StreamEncoder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    ToolCall,
}

impl Kind {
    fn of(part: &PartStart) -> Kind {
        match part {
            PartStart::Text => Kind::Text,
            PartStart::Thinking { .. } => Kind::Thinking,
            PartStart::ToolCall { .. } => Kind::ToolCall,
        }
    }

    fn takes(self, delta: &Delta) -> bool {
        matches!(
            (self, delta),
            (Kind::Text, Delta::Text(_))
                | (
                    Kind::Thinking,
                    Delta::Thinking(_) | Delta::Signature(_) | Delta::Encrypted(_)
                )
                | (Kind::ToolCall, Delta::ToolArguments(_))
        )
    }
}

/// The block being read: its upstream index, its index in the model's
/// sequence, and (for a tool call) whether any arguments came.
struct OpenBlock {
    upstream: Option<u64>,
    index: usize,
    kind: Kind,
    arguments_seen: bool,
}

/// Reads an Anthropic stream. Blocks the model has no part for (server
/// tools) are skipped with their deltas and noted; parts are renumbered so
/// the model's indices stay 0, 1, 2, ...
#[derive(Default)]
pub struct AnthropicStreamDecoder {
    started: bool,
    done: bool,
    open: Option<OpenBlock>,
    next_index: usize,
    usage: TokenUsage,
    stop: Option<ir::StopReason>,
    notes: Notes,
}

impl AnthropicStreamDecoder {
    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
                usage: TokenUsage::default(),
            });
        }
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            if open.kind == Kind::ToolCall && !open.arguments_seen {
                // The model's convention: a call without arguments has "{}".
                out.push(StreamEvent::Delta {
                    index: open.index,
                    delta: Delta::ToolArguments("{}".into()),
                });
            }
            out.push(StreamEvent::PartStop { index: open.index });
        }
    }

    fn open(&mut self, upstream: Option<u64>, part: PartStart, out: &mut Vec<StreamEvent>) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(OpenBlock {
            upstream,
            index,
            kind: Kind::of(&part),
            arguments_seen: false,
        });
        out.push(StreamEvent::PartStart { index, part });
        index
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        self.ensure_started(out);
        self.close(out);
        let upstream = v.get("index").and_then(Value::as_u64);
        let Some(block) = v.get("content_block") else { return };
        let s = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let delta = |index, delta| StreamEvent::Delta { index, delta };
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let index = self.open(upstream, PartStart::Text, out);
                let text = s("text");
                if !text.is_empty() {
                    out.push(delta(index, Delta::Text(text)));
                }
            }
            Some("thinking") => {
                let part = PartStart::Thinking {
                    origin: ORIGIN,
                    id: None,
                };
                let index = self.open(upstream, part, out);
                let (text, sig) = (s("thinking"), s("signature"));
                if !text.is_empty() {
                    out.push(delta(index, Delta::Thinking(text)));
                }
                if !sig.is_empty() {
                    out.push(delta(index, Delta::Signature(sig)));
                }
            }
            Some("tool_use") => {
                let part = PartStart::ToolCall {
                    id: s("id"),
                    name: s("name"),
                };
                let index = self.open(upstream, part, out);
                // Normally `{}` with the arguments in input_json_delta events;
                // a start that already holds them gives them as one fragment.
                if let Some(input) = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    out.push(delta(index, Delta::ToolArguments(input.to_string())));
                    if let Some(open) = &mut self.open {
                        open.arguments_seen = true;
                    }
                }
            }
            Some("redacted_thinking") => {
                let part = PartStart::Thinking {
                    origin: ORIGIN,
                    id: None,
                };
                let index = self.open(upstream, part, out);
                let data = s("data");
                if !data.is_empty() {
                    out.push(delta(index, Delta::Encrypted(data)));
                }
            }
            Some(other) => self.notes.dropped(format!("{other} blocks")),
            None => {}
        }
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let upstream = v.get("index").and_then(Value::as_u64);
        let Some(open) = &mut self.open else { return };
        if upstream.is_some() && open.upstream.is_some() && upstream != open.upstream {
            return;
        }
        let Some(d) = v.get("delta") else { return };
        let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let delta = match d.get("type").and_then(Value::as_str) {
            Some("text_delta") => Delta::Text(field("text")),
            Some("thinking_delta") => Delta::Thinking(field("thinking")),
            Some("signature_delta") => Delta::Signature(field("signature")),
            Some("input_json_delta") => Delta::ToolArguments(field("partial_json")),
            Some("citations_delta") => {
                self.notes.dropped("citations");
                return;
            }
            _ => return,
        };
        if delta.text().is_empty() || !open.kind.takes(&delta) {
            return;
        }
        if matches!(delta, Delta::ToolArguments(_)) {
            open.arguments_seen = true;
        }
        out.push(StreamEvent::Delta {
            index: open.index,
            delta,
        });
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.ensure_started(out);
        self.close(out);
        out.push(StreamEvent::Finish {
            stop: self.stop.clone(),
            usage: self.usage,
        });
        self.done = true;
    }
}

/// Fields the later report gives replace the earlier ones.
fn merge_usage(into: &mut TokenUsage, from: &TokenUsage) {
    let pairs = [
        (&mut into.input_tokens, from.input_tokens),
        (&mut into.output_tokens, from.output_tokens),
        (&mut into.cache_read_tokens, from.cache_read_tokens),
        (&mut into.cache_write_tokens, from.cache_write_tokens),
        (&mut into.reasoning_tokens, from.reasoning_tokens),
    ];
    for (slot, value) in pairs {
        if value.is_some() {
            *slot = value;
        }
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn event(&mut self, name: Option<&str>, data: &str, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        // An event that is not JSON carries nothing this reader can use,
        // unless it is named an error: then the stream failed all the same.
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            if name == Some("error") {
                out.push(StreamEvent::Error(ir::ApiError {
                    status: 500,
                    kind: ir::ErrorKind::Server,
                    message: "the provider reported an error in the stream".into(),
                    code: None,
                }));
                self.done = true;
            }
            return;
        };
        let ty = v.get("type").and_then(Value::as_str).or(name).unwrap_or_default();
        match ty {
            "message_start" if !self.started => {
                self.started = true;
                let m = v.get("message").unwrap_or(&Value::Null);
                let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                self.usage = m.get("usage").map(decode_usage).unwrap_or_default();
                out.push(StreamEvent::Start {
                    id: s("id"),
                    model: s("model"),
                    usage: self.usage,
                });
            }
            // After a made-up Start: its usage still counts.
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    merge_usage(&mut self.usage, &decode_usage(u));
                }
            }
            "content_block_start" => self.block_start(&v, out),
            "content_block_delta" => self.block_delta(&v, out),
            "content_block_stop" => {
                let upstream = v.get("index").and_then(Value::as_u64);
                if self
                    .open
                    .as_ref()
                    .is_some_and(|o| upstream.is_none() || o.upstream.is_none() || upstream == o.upstream)
                {
                    self.close(out);
                }
            }
            "message_delta" => {
                if let Some(stop) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop = Some(stop_reason_of(stop));
                }
                if let Some(u) = v.get("usage") {
                    merge_usage(&mut self.usage, &decode_usage(u));
                }
            }
            "message_stop" => self.finish(out),
            "error" => {
                let mut err = decode_error_value(200, &v);
                err.status = status_of_kind(err.kind);
                out.push(StreamEvent::Error(err));
                self.done = true;
            }
            _ => {} // ping, and events of later API versions
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        if !self.started {
            self.done = true;
            out.push(StreamEvent::Error(ir::ApiError {
                status: 502,
                kind: ir::ErrorKind::Server,
                message: "the upstream stream ended before its first event".into(),
                code: None,
            }));
            return;
        }
        // message_delta said why it stopped: only message_stop is missing.
        if self.stop.is_some() {
            return self.finish(out);
        }
        self.done = true;
        out.push(StreamEvent::Error(ir::ApiError::stream_cut()));
    }

    fn notes(&self) -> &Notes {
        &self.notes
    }
}

/// The part being written.
#[derive(Debug, Clone, Copy)]
struct EncOpen {
    /// The model's index.
    index: usize,
    /// The wire index, once a block is written (a thinking block waits for
    /// its first delta: thinking or redacted).
    wire: Option<usize>,
    kind: Kind,
    /// Thinking of another origin: nothing of it is written.
    dropped: bool,
    /// A `redacted_thinking` block: complete at its start.
    redacted: bool,
    signed: bool,
}

/// Writes the model's stream as Anthropic's. Tolerates a sequence that is
/// not well-formed (no panic, and its own output stays well-formed): a
/// missing `Start` is made up, an open block is closed before the next,
/// deltas of a part that is not open are dropped. Thinking of another
/// origin is dropped whole (see the module docs).
pub struct AnthropicStreamEncoder {
    ctx: ResponseContext,
    started: bool,
    done: bool,
    open: Option<EncOpen>,
    next_index: usize,
    notes: Notes,
}

impl AnthropicStreamEncoder {
    pub fn new(ctx: ResponseContext) -> Self {
        AnthropicStreamEncoder {
            ctx,
            started: false,
            done: false,
            open: None,
            next_index: 0,
            notes: Notes::default(),
        }
    }

    fn start(&mut self, id: &str, model: &str, usage: &TokenUsage, out: &mut Vec<Event>) {
        self.started = true;
        // Claude Code reads input usage here (C7): the real counts when known.
        let usage = json!({
            "input_tokens": usage.input_tokens.unwrap_or(0),
            "cache_creation_input_tokens": usage.cache_write_tokens.unwrap_or(0),
            "cache_read_input_tokens": usage.cache_read_tokens.unwrap_or(0),
            "output_tokens": usage.output_tokens.unwrap_or(0),
        });
        let data = json!({
            "type": "message_start",
            "message": {
                "id": message_id(id, &self.ctx),
                "type": "message",
                "role": "assistant",
                "model": answer_model(model, &self.ctx),
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage,
            }
        });
        out.push(event("message_start", data));
    }

    fn ensure_started(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            self.start("", "", &TokenUsage::default(), out);
        }
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        let Some(open) = self.open.take() else { return };
        let Some(wire) = open.wire else { return };
        if open.kind == Kind::Thinking && !open.redacted && !open.signed {
            // Already streamed: the client has a block it cannot send back.
            self.notes.dropped("thinking without a signature");
        }
        out.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": wire}),
        ));
    }

    fn block_start(&mut self, block: Value, out: &mut Vec<Event>) -> usize {
        let wire = self.next_index;
        self.next_index += 1;
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": wire, "content_block": block}),
        ));
        wire
    }

    fn part_start(&mut self, index: usize, part: &PartStart, out: &mut Vec<Event>) {
        self.ensure_started(out);
        self.close(out);
        let mut open = EncOpen {
            index,
            wire: None,
            kind: Kind::of(part),
            dropped: false,
            redacted: false,
            signed: false,
        };
        match part {
            PartStart::Text => open.wire = Some(self.block_start(json!({"type": "text", "text": ""}), out)),
            PartStart::Thinking { origin, .. } if *origin != ORIGIN => {
                self.notes.dropped(foreign_thinking_note(origin));
                open.dropped = true;
            }
            PartStart::Thinking { .. } => {}
            // Arguments follow as input_json_delta fragments.
            PartStart::ToolCall { id, name } => {
                let block = json!({
                    "type": "tool_use",
                    "id": call_id(id, self.next_index, &self.ctx),
                    "name": name,
                    "input": {},
                });
                open.wire = Some(self.block_start(block, out));
            }
        }
        self.open = Some(open);
    }

    fn delta(&mut self, index: usize, delta: &Delta, out: &mut Vec<Event>) {
        let Some(mut open) = self.open else { return };
        if open.index != index || !open.kind.takes(delta) || open.dropped || open.redacted || delta.text().is_empty() {
            return;
        }
        let wire = match (open.wire, delta) {
            (Some(_), Delta::Encrypted(_)) => {
                // Redacted data inside a thinking block has no place.
                self.notes.dropped("encrypted thinking inside a thinking block");
                return;
            }
            (Some(wire), _) => wire,
            (None, Delta::Encrypted(data)) => {
                open.redacted = true;
                open.wire = Some(self.block_start(json!({"type": "redacted_thinking", "data": data}), out));
                self.open = Some(open);
                return;
            }
            (None, _) => {
                let wire = self.block_start(json!({"type": "thinking", "thinking": "", "signature": ""}), out);
                open.wire = Some(wire);
                wire
            }
        };
        let d = match delta {
            Delta::Text(t) => json!({"type": "text_delta", "text": t}),
            Delta::Thinking(t) => json!({"type": "thinking_delta", "thinking": t}),
            Delta::Signature(s) => {
                open.signed = true;
                json!({"type": "signature_delta", "signature": s})
            }
            Delta::ToolArguments(a) => json!({"type": "input_json_delta", "partial_json": a}),
            Delta::Encrypted(_) => return,
        };
        self.open = Some(open);
        out.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": wire, "delta": d}),
        ));
    }

    fn finish(&mut self, stop: &Option<ir::StopReason>, usage: &TokenUsage, out: &mut Vec<Event>) {
        self.ensure_started(out);
        self.close(out);
        note_reasoning_tokens(usage, &mut self.notes);
        let mut u = Map::new();
        let counts = [
            ("input_tokens", usage.input_tokens),
            ("cache_creation_input_tokens", usage.cache_write_tokens),
            ("cache_read_input_tokens", usage.cache_read_tokens),
        ];
        for (k, n) in counts {
            if let Some(n) = n {
                u.insert(k.into(), json!(n));
            }
        }
        u.insert("output_tokens".into(), json!(usage.output_tokens.unwrap_or(0)));
        let data = json!({
            "type": "message_delta",
            "delta": {
                "stop_reason": stop.as_ref().map(|s| stop_reason_str(s, &mut self.notes)),
                "stop_sequence": null,
            },
            "usage": u,
        });
        out.push(event("message_delta", data));
        out.push(event("message_stop", json!({"type": "message_stop"})));
        self.done = true;
    }
}

impl StreamEncoder for AnthropicStreamEncoder {
    fn event(&mut self, ev: &StreamEvent, out: &mut Vec<Event>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model, usage } => {
                if !self.started {
                    self.start(id, model, usage, out);
                }
            }
            StreamEvent::PartStart { index, part } => self.part_start(*index, part, out),
            StreamEvent::Delta { index, delta } => self.delta(*index, delta, out),
            StreamEvent::PartStop { index } => {
                if self.open.is_some_and(|o| o.index == *index) {
                    self.close(out);
                }
            }
            StreamEvent::Finish { stop, usage } => self.finish(stop, usage, out),
            StreamEvent::Error(err) => {
                out.push(stream_error_event(err));
                self.done = true;
            }
        }
    }

    fn notes(&self) -> &Notes {
        &self.notes
    }
}

fn event(name: &'static str, data: Value) -> Event {
    Event {
        name: Some(name),
        data: data.to_string(),
    }
}
