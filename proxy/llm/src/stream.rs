//! Restoring placeholders in streamed events (SSE `data:` payloads or
//! WebSocket frames). Deltas of one content stream are restored with a
//! bounded hold-back: only a suffix that could still grow into an issued
//! placeholder waits for the next delta; it is flushed when the stream ends.
//! Full-text events (`*.done`, `response.completed`, `message_start`, ...)
//! are restored whole. Thinking and signature deltas are never touched.

use std::collections::HashMap;
use std::sync::Arc;

use crate::json::{self, Lit, Node};
use crate::restore::{self, EscapeMode, RestoreMap};
use crate::shape::ApiShape;

/// An event to emit before the current one (a flushed hold-back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Synthetic {
    pub name: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub(crate) struct EventResult {
    pub before: Vec<Synthetic>,
    /// New payload, or None to send the original bytes.
    pub replaced: Option<String>,
}

/// One content stream's held-back text and how to re-emit it.
struct Stream {
    held: String,
    mode: EscapeMode,
    /// The last delta event of this stream and the delta literal's range in
    /// it: a flush re-uses it with the held text as the delta.
    template: (Option<String>, String, std::ops::Range<usize>),
    /// Items the stream belongs to (for Responses `output_item.done`).
    owner: String,
}

pub(crate) struct EventRestorer {
    shape: ApiShape,
    map: Arc<RestoreMap>,
    streams: HashMap<String, Stream>,
    /// Order streams were opened, so flushes are deterministic.
    order: Vec<String>,
}

impl EventRestorer {
    pub fn new(shape: ApiShape, map: Arc<RestoreMap>) -> Self {
        EventRestorer {
            shape,
            map,
            streams: HashMap::new(),
            order: Vec::new(),
        }
    }

    pub fn set_map(&mut self, map: Arc<RestoreMap>) {
        self.map = map;
    }

    /// Process one event payload.
    pub fn process(&mut self, name: Option<&str>, data: &str) -> EventResult {
        let mut result = EventResult::default();
        if self.shape == ApiShape::OpenAiChat && data.trim() == "[DONE]" {
            result.before = self.flush_where(|_| true);
            return result;
        }
        let Ok(root) = json::parse(data) else {
            return result;
        };
        let ty = root.str_field("type");
        let ty = ty.as_deref().unwrap_or("");
        match self.shape {
            ApiShape::AnthropicMessages | ApiShape::AnthropicCountTokens => {
                self.anthropic(name, data, &root, ty, &mut result)
            }
            ApiShape::OpenAiChat => self.chat(name, data, &root, &mut result),
            ApiShape::OpenAiResponses => self.responses(name, data, &root, ty, &mut result),
            _ => result.replaced = restore::restore_json(data, &self.map),
        }
        result
    }

    /// Flush every stream (end of the response).
    pub fn finish(&mut self) -> Vec<Synthetic> {
        self.flush_where(|_| true)
    }

    fn anthropic(&mut self, name: Option<&str>, data: &str, root: &Node<'_>, ty: &str, out: &mut EventResult) {
        let index = root.get("index").map(|n| raw_scalar(data, n)).unwrap_or_default();
        match ty {
            "content_block_delta" => {
                let Some(delta) = root.get("delta") else { return };
                let (field, mode) = match delta.str_field("type").as_deref() {
                    Some("text_delta") => ("text", EscapeMode::Plain),
                    Some("input_json_delta") => ("partial_json", EscapeMode::JsonInner),
                    _ => return,
                };
                if let Some(lit) = delta.get(field).and_then(Node::as_lit) {
                    out.replaced = self
                        .feed(format!("a:{index}"), String::new(), mode, name, data, lit, false)
                        .map(|new| json::splice(data, &mut [(lit.range(), new)]));
                }
            }
            "content_block_stop" => {
                let key = format!("a:{index}");
                out.before = self.flush_where(|k| k == key);
            }
            "message_delta" | "message_stop" | "error" => {
                out.before = self.flush_where(|_| true);
                out.replaced = restore::restore_json(data, &self.map);
            }
            _ => out.replaced = restore::restore_json(data, &self.map),
        }
    }

    fn chat(&mut self, name: Option<&str>, data: &str, root: &Node<'_>, out: &mut EventResult) {
        let Some(Node::Arr(choices)) = root.get("choices") else {
            out.replaced = restore::restore_json(data, &self.map);
            return;
        };
        let mut edits = Vec::new();
        for choice in choices {
            let ci = choice.get("index").map(|n| raw_scalar(data, n)).unwrap_or_default();
            let finished = choice
                .get("finish_reason")
                .is_some_and(|f| !matches!(f, Node::Scalar(r) if &data[r.clone()] == "null"));
            let prefix = format!("c:{ci}:");
            let delta = choice.get("delta");
            // Streams of a finishing choice that get no text in this chunk
            // are flushed before it; the others are fed without hold-back.
            if finished {
                let present: Vec<String> = delta.map(|d| chat_stream_keys(d, &prefix, data)).unwrap_or_default();
                out.before
                    .extend(self.flush_where(|k| k.starts_with(&prefix) && !present.iter().any(|p| p == k)));
            }
            let Some(delta) = delta else { continue };
            for (key, lit, mode) in chat_delta_fields(delta, &prefix, data) {
                if let Some(new) = self.feed(key, prefix.clone(), mode, name, data, lit, finished) {
                    edits.push((lit.range(), new));
                }
            }
        }
        if !edits.is_empty() {
            out.replaced = Some(json::splice(data, &mut edits));
        }
    }

    fn responses(&mut self, name: Option<&str>, data: &str, root: &Node<'_>, ty: &str, out: &mut EventResult) {
        let item = root.str_field("item_id").map(|s| s.into_owned()).unwrap_or_default();
        let content = root
            .get("content_index")
            .map(|n| raw_scalar(data, n))
            .unwrap_or_default();
        let delta_stream = match ty {
            "response.output_text.delta" => Some((format!("t:{item}:{content}"), EscapeMode::Plain)),
            "response.refusal.delta" => Some((format!("r:{item}:{content}"), EscapeMode::Plain)),
            "response.function_call_arguments.delta" => Some((format!("f:{item}"), EscapeMode::JsonInner)),
            "response.custom_tool_call_input.delta" => Some((format!("c:{item}"), EscapeMode::Plain)),
            _ => None,
        };
        if let Some((key, mode)) = delta_stream {
            if let Some(lit) = root.get("delta").and_then(Node::as_lit) {
                out.replaced = self
                    .feed(key, item, mode, name, data, lit, false)
                    .map(|new| json::splice(data, &mut [(lit.range(), new)]));
            }
            return;
        }
        let flush_key = match ty {
            "response.output_text.done" => Some(format!("t:{item}:{content}")),
            "response.refusal.done" => Some(format!("r:{item}:{content}")),
            "response.function_call_arguments.done" => Some(format!("f:{item}")),
            "response.custom_tool_call_input.done" => Some(format!("c:{item}")),
            _ => None,
        };
        if let Some(key) = flush_key {
            out.before = self.flush_where(|k| k == key);
        } else if ty == "response.output_item.done" || ty == "response.content_part.done" {
            let owner = root
                .get("item")
                .and_then(|i| i.str_field("id"))
                .map(|s| s.into_owned())
                .unwrap_or(item);
            let owned: Vec<String> = self
                .streams
                .iter()
                .filter(|(_, s)| s.owner == owner)
                .map(|(k, _)| k.clone())
                .collect();
            out.before = self.flush_where(|k| owned.iter().any(|o| o == k));
        } else if matches!(
            ty,
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            out.before = self.flush_where(|_| true);
        }
        out.replaced = restore::restore_json(data, &self.map);
    }

    /// Feed one delta literal into its stream; returns the new literal (or
    /// None when the event can go out unchanged).
    #[allow(clippy::too_many_arguments)]
    fn feed(
        &mut self,
        key: String,
        owner: String,
        mode: EscapeMode,
        name: Option<&str>,
        data: &str,
        lit: &Lit<'_>,
        last: bool,
    ) -> Option<String> {
        let text = lit.decode();
        let template = (name.map(str::to_string), data.to_string(), lit.range());
        let stream = match self.streams.get_mut(&key) {
            Some(s) => {
                s.template = template;
                s
            }
            None => {
                // Fast path: nothing held and nothing that looks like a placeholder.
                if !text.contains('[') {
                    return None;
                }
                self.order.push(key.clone());
                self.streams.entry(key).or_insert(Stream {
                    held: String::new(),
                    mode,
                    template,
                    owner,
                })
            }
        };
        if stream.held.is_empty() && !text.contains('[') {
            return None;
        }
        let mut all = std::mem::take(&mut stream.held);
        all.push_str(&text);
        let cut = if last { all.len() } else { self.map.holdback_start(&all) };
        stream.held = all[cut..].to_string();
        all.truncate(cut);
        let restored = self.map.restore(&all, stream.mode).unwrap_or(all);
        if restored == *text {
            return None;
        }
        Some(json::quote(&restored))
    }

    fn flush_where(&mut self, pred: impl Fn(&str) -> bool) -> Vec<Synthetic> {
        let mut out = Vec::new();
        for key in &self.order {
            if !pred(key) {
                continue;
            }
            let Some(stream) = self.streams.get_mut(key) else {
                continue;
            };
            if stream.held.is_empty() {
                continue;
            }
            let held = std::mem::take(&mut stream.held);
            let text = self.map.restore(&held, stream.mode).unwrap_or(held);
            let (name, data, range) = &stream.template;
            let mut edits = vec![(range.clone(), json::quote(&text))];
            out.push(Synthetic {
                name: name.clone(),
                data: json::splice(data, &mut edits),
            });
        }
        out
    }
}

/// The source text of a scalar node (e.g. an `index` number).
fn raw_scalar(data: &str, node: &Node<'_>) -> String {
    match node {
        Node::Scalar(r) => data[r.clone()].to_string(),
        Node::Str(l) => l.decode().into_owned(),
        _ => String::new(),
    }
}

/// Text-bearing literals of a Chat delta: content, refusal, tool arguments.
fn chat_delta_fields<'t, 'a>(delta: &'t Node<'a>, prefix: &str, data: &str) -> Vec<(String, &'t Lit<'a>, EscapeMode)> {
    let mut out = Vec::new();
    for field in ["content", "refusal"] {
        if let Some(lit) = delta.get(field).and_then(Node::as_lit) {
            out.push((format!("{prefix}{field}"), lit, EscapeMode::Plain));
        }
    }
    if let Some(Node::Arr(calls)) = delta.get("tool_calls") {
        for call in calls {
            let ti = call.get("index").map(|n| raw_scalar(data, n)).unwrap_or_default();
            if let Some(lit) = call
                .get("function")
                .and_then(|f| f.get("arguments"))
                .and_then(Node::as_lit)
            {
                out.push((format!("{prefix}tool:{ti}"), lit, EscapeMode::JsonInner));
            }
        }
    }
    out
}

fn chat_stream_keys(delta: &Node<'_>, prefix: &str, data: &str) -> Vec<String> {
    chat_delta_fields(delta, prefix, data)
        .into_iter()
        .map(|(k, _, _)| k)
        .collect()
}
