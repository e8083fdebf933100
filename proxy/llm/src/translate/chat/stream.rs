//! Chat Completions streams: `data: {chunk}` events without names, ending
//! with `data: [DONE]`; usage (when asked for) in a last chunk with empty
//! `choices`, after the chunk that carries `finish_reason`.
//!
//! Decoding synthesizes part boundaries: reasoning, text and each tool call
//! are parts, one open at a time. Tool calls stream live; a fragment for
//! another call while one is open and its arguments are not yet a complete
//! JSON value (servers that interleave parallel calls) is buffered until
//! the open call completes or the choice finishes. A fragment for a call
//! already closed (only possible after a text delta came between) is
//! dropped. A data line that is not JSON is skipped.
//!
//! Encoding: thinking text of origin `openai` goes out as
//! `reasoning_content` deltas (clients that do not know the field ignore
//! it); thinking of another origin is dropped, as in whole answers, and
//! signatures and encrypted reasoning are dropped; each noted.

use serde_json::{json, Map, Value};

use super::{
    answer_id, answer_model, api_error, decode_finish, decode_usage, encode_finish, encode_usage, str_of, ORIGIN,
};
use crate::translate::ir::{self, Delta, PartStart, StreamEvent};
use crate::translate::{Event, Notes, ResponseContext, StreamDecoder, StreamEncoder};

// ----------------------------------------------------------------- decoder

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Open {
    #[default]
    None,
    Text,
    Thinking,
    /// A tool call, by its Chat `tool_calls[].index`.
    Tool(u64),
}

/// A tool call seen while another one was open.
#[derive(Debug, Default)]
struct Pending {
    chat_index: u64,
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

#[derive(Default)]
pub(crate) struct ChatStreamDecoder {
    started: bool,
    done: bool,
    open: Open,
    /// Index of the open part, or of the next one.
    index: usize,
    /// Whether the open tool call's arguments so far form a complete value.
    open_args: JsonEnd,
    pending: Vec<Pending>,
    closed_tools: Vec<u64>,
    stop: Option<ir::StopReason>,
    usage: ir::TokenUsage,
    notes: Notes,
}

impl ChatStreamDecoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        match std::mem::take(&mut self.open) {
            Open::None => return,
            Open::Tool(ci) => self.closed_tools.push(ci),
            Open::Text | Open::Thinking => {}
        }
        out.push(StreamEvent::PartStop { index: self.index });
        self.index += 1;
    }

    /// Opens a text or thinking part unless it is the open one.
    fn ensure(&mut self, kind: Open, out: &mut Vec<StreamEvent>) {
        if self.open == kind {
            return;
        }
        self.close_all(out);
        let part = if kind == Open::Text {
            PartStart::Text
        } else {
            PartStart::Thinking {
                origin: ORIGIN,
                id: None,
            }
        };
        out.push(StreamEvent::PartStart {
            index: self.index,
            part,
        });
        self.open = kind;
    }

    /// Closes the open part and emits every buffered tool call whole.
    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        self.close(out);
        for p in std::mem::take(&mut self.pending) {
            self.start_tool(p, out);
            self.close(out);
        }
    }

    fn start_tool(&mut self, p: Pending, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::PartStart {
            index: self.index,
            part: PartStart::ToolCall {
                id: p.id.unwrap_or_else(|| format!("call_{}", p.chat_index)),
                name: p.name.unwrap_or_default(),
            },
        });
        self.open = Open::Tool(p.chat_index);
        self.open_args = JsonEnd::default();
        self.tool_args(p.arguments, out);
    }

    fn tool_args(&mut self, args: String, out: &mut Vec<StreamEvent>) {
        if args.is_empty() {
            return;
        }
        self.open_args.feed(&args);
        out.push(StreamEvent::Delta {
            index: self.index,
            delta: Delta::ToolArguments(args),
        });
    }

    /// Once the open call's arguments are complete, buffered calls go out,
    /// the last one left open for its further fragments.
    fn promote(&mut self, out: &mut Vec<StreamEvent>) {
        while self.open_args.complete() && !self.pending.is_empty() {
            self.close(out);
            let next = self.pending.remove(0);
            self.start_tool(next, out);
        }
    }

    fn tool_fragment(&mut self, call: &Value, out: &mut Vec<StreamEvent>) {
        let ci = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = call.get("function");
        let id = str_of(call, "id").filter(|s| !s.is_empty()).map(str::to_string);
        let name = f
            .and_then(|f| str_of(f, "name"))
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let args = f.and_then(|f| str_of(f, "arguments")).unwrap_or_default().to_string();
        if self.open == Open::Tool(ci) {
            self.tool_args(args, out);
            self.promote(out);
        } else if self.closed_tools.contains(&ci) {
            // Too late: the call's part is closed (see the module docs).
            self.notes.dropped("tool call fragments after the call's part closed");
        } else if let Some(p) = self.pending.iter_mut().find(|p| p.chat_index == ci) {
            p.id = p.id.take().or(id);
            p.name = p.name.take().or(name);
            p.arguments.push_str(&args);
        } else {
            let p = Pending {
                chat_index: ci,
                id,
                name,
                arguments: args,
            };
            match self.open {
                Open::Tool(_) if !self.open_args.complete() => self.pending.push(p),
                _ => {
                    self.close_all(out);
                    self.start_tool(p, out);
                }
            }
        }
    }

    fn chunk(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        // Usage is usually in the last chunk only; servers that report it
        // in every chunk give the input tokens at Start too.
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = decode_usage(u);
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: str_of(v, "id").unwrap_or_default().to_string(),
                model: str_of(v, "model").unwrap_or_default().to_string(),
                usage: ir::TokenUsage {
                    input_tokens: self.usage.input_tokens,
                    cache_read_tokens: self.usage.cache_read_tokens,
                    cache_write_tokens: self.usage.cache_write_tokens,
                    ..Default::default()
                },
            });
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            return;
        };
        let Some(choice) = choices
            .iter()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            let reasoning = str_of(delta, "reasoning_content").or_else(|| str_of(delta, "reasoning"));
            if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
                self.ensure(Open::Thinking, out);
                out.push(StreamEvent::Delta {
                    index: self.index,
                    delta: Delta::Thinking(r.to_string()),
                });
            }
            for key in ["content", "refusal"] {
                if let Some(t) = str_of(delta, key).filter(|t| !t.is_empty()) {
                    self.ensure(Open::Text, out);
                    out.push(StreamEvent::Delta {
                        index: self.index,
                        delta: Delta::Text(t.to_string()),
                    });
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.tool_fragment(call, out);
                }
            }
            // Legacy streamed `function_call`: one call, id = its name.
            if let Some(f) = delta.get("function_call").filter(|f| f.is_object()) {
                let mut call = json!({"index": 0, "function": f});
                if let Some(n) = str_of(f, "name") {
                    call["id"] = json!(n);
                }
                self.tool_fragment(&call, out);
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.close_all(out);
            self.stop = Some(decode_finish(reason));
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.close_all(out);
        self.done = true;
        out.push(StreamEvent::Finish {
            stop: self.stop.take(),
            usage: self.usage,
        });
    }
}

impl StreamDecoder for ChatStreamDecoder {
    fn event(&mut self, _name: Option<&str>, data: &str, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let data = data.trim();
        if data == "[DONE]" {
            if !self.started {
                self.started = true;
                out.push(StreamEvent::Start {
                    id: String::new(),
                    model: String::new(),
                    usage: ir::TokenUsage::default(),
                });
            }
            return self.finish(out);
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            self.done = true;
            let message = str_of(err, "message")
                .or_else(|| err.as_str())
                .unwrap_or("upstream stream error")
                .to_string();
            out.push(StreamEvent::Error(api_error(
                0,
                str_of(err, "type"),
                str_of(err, "code"),
                message,
            )));
            return;
        }
        self.chunk(&v, out);
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
                message: "the upstream stream ended before its first chunk".into(),
                code: None,
            }));
            return;
        }
        // A finish_reason came: only the usage chunk or [DONE] is missing.
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

/// Tracks whether JSON text so far is one complete object or array (depth
/// back to zero outside strings), without parsing it.
#[derive(Debug, Default, Clone, Copy)]
struct JsonEnd {
    depth: u32,
    in_string: bool,
    escaped: bool,
    ended: bool,
}

impl JsonEnd {
    fn feed(&mut self, text: &str) {
        for b in text.bytes() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.ended = true;
                    }
                }
                _ => {}
            }
        }
    }

    fn complete(&self) -> bool {
        self.ended && self.depth == 0 && !self.in_string
    }
}

// ----------------------------------------------------------------- encoder

pub(crate) struct ChatStreamEncoder {
    ctx: ResponseContext,
    id: String,
    model: String,
    started: bool,
    done: bool,
    /// The Chat tool index of each IR part that is a tool call.
    tools: Vec<(usize, u64)>,
    /// The open thinking part, when it is of another origin (dropped).
    foreign_thinking: Option<usize>,
    notes: Notes,
}

impl ChatStreamEncoder {
    pub(crate) fn new(ctx: &ResponseContext) -> Self {
        ChatStreamEncoder {
            ctx: ctx.clone(),
            id: answer_id("", ctx),
            model: ctx.client_model.clone(),
            started: false,
            done: false,
            tools: Vec::new(),
            foreign_thinking: None,
            notes: Notes::default(),
        }
    }

    /// A chunk; `usage` only in the last one (when asked for).
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Event {
        let mut c = Map::new();
        c.insert("id".into(), json!(self.id));
        c.insert("object".into(), json!("chat.completion.chunk"));
        c.insert("created".into(), json!(self.ctx.created));
        c.insert("model".into(), json!(self.model));
        c.insert("choices".into(), choices);
        // With `include_usage`, OpenAI puts `"usage": null` in every chunk
        // but the last.
        if self.ctx.stream_usage {
            c.insert("usage".into(), usage.unwrap_or(Value::Null));
        }
        Event {
            name: None,
            data: Value::Object(c).to_string(),
        }
    }

    fn delta(&self, delta: Value, finish: Option<&str>) -> Event {
        self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            None,
        )
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<Event>) {
        self.started = true;
        self.id = answer_id(id, &self.ctx);
        self.model = answer_model(model, &self.ctx).to_string();
        out.push(self.delta(json!({"role": "assistant", "content": ""}), None));
    }

    fn tool_index(&self, index: usize) -> Option<u64> {
        self.tools.iter().find(|(i, _)| *i == index).map(|(_, t)| *t)
    }
}

impl StreamEncoder for ChatStreamEncoder {
    fn event(&mut self, event: &StreamEvent, out: &mut Vec<Event>) {
        if self.done {
            return;
        }
        if !self.started && !matches!(event, StreamEvent::Start { .. } | StreamEvent::Error(_)) {
            // A sequence without Start still gets a role chunk first.
            self.start("", "", out);
        }
        match event {
            StreamEvent::Start { id, model, .. } => {
                if !self.started {
                    self.start(id, model, out);
                }
            }
            StreamEvent::PartStart {
                index,
                part: PartStart::ToolCall { id, name },
            } => {
                let ti = self.tools.len() as u64;
                self.tools.push((*index, ti));
                out.push(self.delta(
                    json!({"tool_calls": [{
                        "index": ti,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }]}),
                    None,
                ));
            }
            StreamEvent::PartStart {
                index,
                part: PartStart::Thinking { origin, .. },
            } => {
                self.foreign_thinking = None;
                if *origin != ORIGIN {
                    self.notes.dropped(format!("thinking from {origin}"));
                    self.foreign_thinking = Some(*index);
                }
            }
            StreamEvent::PartStart { .. } | StreamEvent::PartStop { .. } => {}
            StreamEvent::Delta { index, delta } => match delta {
                Delta::Text(t) if !t.is_empty() => out.push(self.delta(json!({"content": t}), None)),
                Delta::Thinking(t) if !t.is_empty() && self.foreign_thinking != Some(*index) => {
                    out.push(self.delta(json!({"reasoning_content": t}), None));
                }
                Delta::Signature(s) if !s.is_empty() && self.foreign_thinking != Some(*index) => {
                    self.notes.dropped("thinking.signature");
                }
                Delta::Encrypted(e) if !e.is_empty() && self.foreign_thinking != Some(*index) => {
                    self.notes.dropped("thinking.encrypted");
                }
                Delta::ToolArguments(a) if !a.is_empty() => {
                    // Arguments of a call whose start was never seen have
                    // no tool index to go to.
                    if let Some(ti) = self.tool_index(*index) {
                        out.push(self.delta(
                            json!({"tool_calls": [{"index": ti, "function": {"arguments": a}}]}),
                            None,
                        ));
                    }
                }
                _ => {}
            },
            StreamEvent::Finish { stop, usage } => {
                self.done = true;
                let reason = encode_finish(stop.as_ref(), !self.tools.is_empty(), &mut self.notes);
                out.push(self.delta(json!({}), Some(reason)));
                if self.ctx.stream_usage {
                    out.push(self.chunk(json!([]), Some(encode_usage(usage))));
                }
                out.push(Event {
                    name: None,
                    data: "[DONE]".into(),
                });
            }
            StreamEvent::Error(err) => {
                self.done = true;
                out.push(Event {
                    name: None,
                    data: super::error_value(err).to_string(),
                });
            }
        }
    }

    fn notes(&self) -> &Notes {
        &self.notes
    }
}
