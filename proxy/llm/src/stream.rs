//! The machinery for restoring placeholders in streamed events (SSE `data:`
//! payloads or WebSocket frames); which event is which is each shape's
//! business ([`crate::Shape::restore_event`]). Deltas of one content stream
//! are restored with a bounded hold-back: only a suffix that could still
//! grow into an issued placeholder waits for the next delta; it is flushed
//! when the stream ends. Full-text events are restored whole.

use std::collections::HashMap;
use std::sync::Arc;

use crate::json::{self, Lit, Node};
use crate::restore::{self, EscapeMode, RestoreMap};

/// An event to emit before the current one (a flushed hold-back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthetic {
    /// SSE event name (None for WebSocket frames and unnamed events).
    pub name: Option<String>,
    pub data: String,
}

/// What to send for one event.
#[derive(Debug, Default)]
pub struct EventResult {
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

/// Held-back text of the content streams of one response (or WebSocket
/// connection).
pub struct EventRestorer {
    map: Arc<RestoreMap>,
    streams: HashMap<String, Stream>,
    /// Order streams were opened, so flushes are deterministic.
    order: Vec<String>,
}

impl EventRestorer {
    pub(crate) fn new(map: Arc<RestoreMap>) -> Self {
        EventRestorer {
            map,
            streams: HashMap::new(),
            order: Vec::new(),
        }
    }

    pub(crate) fn set_map(&mut self, map: Arc<RestoreMap>) {
        self.map = map;
    }

    /// `data` with placeholders restored in every string but signed or
    /// encrypted content (None: unchanged), for events that carry whole
    /// texts.
    pub fn restore_whole(&self, data: &str) -> Option<String> {
        restore::restore_json(data, &self.map)
    }

    /// Keys of the streams that belong to `owner` (an output item).
    pub fn owned_by(&self, owner: &str) -> Vec<String> {
        self.streams
            .iter()
            .filter(|(_, s)| s.owner == owner)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Flush every stream (end of the response).
    pub fn finish(&mut self) -> Vec<Synthetic> {
        self.flush_where(|_| true)
    }

    /// Feed one delta literal `lit` of event `data` into stream `key` (of
    /// item `owner`); returns the new literal (or None when the event can go
    /// out unchanged). `last`: nothing more comes, hold nothing back.
    #[allow(clippy::too_many_arguments)]
    pub fn feed(
        &mut self,
        key: String,
        owner: String,
        mode: EscapeMode,
        name: Option<&str>,
        data: &str,
        lit: &Lit<'_>,
        last: bool,
    ) -> Option<String> {
        self.feed_with(key, owner, mode, lit, last, || {
            (name.map(str::to_string), data.to_string(), lit.range())
        })
    }

    /// [`EventRestorer::feed`] for events that carry more than the delta
    /// (other parts, usage) and so must not be sent twice: a flush of this
    /// stream is the event `template` makes (SSE name, payload, range of the
    /// delta literal in it) with the held text as its delta. `template` is
    /// only called when the stream holds or may hold text.
    pub fn feed_with(
        &mut self,
        key: String,
        owner: String,
        mode: EscapeMode,
        lit: &Lit<'_>,
        last: bool,
        template: impl FnOnce() -> (Option<String>, String, std::ops::Range<usize>),
    ) -> Option<String> {
        let text = lit.decode();
        let stream = match self.streams.get_mut(&key) {
            Some(s) => {
                s.template = template();
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
                    template: template(),
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

    /// Edits of `data` restoring placeholders in every string below `node`
    /// (a part that arrives whole, as a Gemini function call), signed or
    /// encrypted content excepted.
    pub fn restore_node(&self, data: &str, node: &Node<'_>, edits: &mut Vec<(std::ops::Range<usize>, String)>) {
        restore::collect_restore_edits(data, node, None, &self.map, edits);
    }

    /// Held-back text of the streams whose key matches, as events built
    /// from each stream's last delta.
    pub fn flush_where(&mut self, pred: impl Fn(&str) -> bool) -> Vec<Synthetic> {
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
pub fn raw_scalar(data: &str, node: &Node<'_>) -> String {
    match node {
        Node::Scalar(r) => data[r.clone()].to_string(),
        Node::Str(l) => l.decode().into_owned(),
        _ => String::new(),
    }
}
