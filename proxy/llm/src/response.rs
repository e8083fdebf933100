//! The response side: restore placeholders in JSON bodies and SSE streams,
//! read usage, notice mid-stream errors. Streams are processed event by
//! event; nothing beyond the event in progress (plus a placeholder-sized
//! hold-back per content stream) is buffered.

use std::sync::Arc;

use bytes::Bytes;

use crate::restore::{self, RestoreMap};
use crate::shape::ApiShape;
use crate::sse::{self, SseSplitter};
use crate::stream::EventRestorer;
use crate::usage::{Usage, UsageTracker};

/// Largest JSON body buffered for restoration or usage; larger ones pass
/// through as they are (usage unknown).
const MAX_JSON_BODY: usize = 64 << 20;
/// Largest single SSE event parsed for usage in observe-only mode.
const MAX_OBSERVED_EVENT: usize = 16 << 20;

enum Kind {
    /// Not JSON or SSE: bytes pass, nothing is read.
    Opaque,
    Sse {
        splitter: SseSplitter,
        restorer: Option<EventRestorer>,
        overflow: bool,
    },
    Json {
        buf: Vec<u8>,
        map: Option<Arc<RestoreMap>>,
        overflow: bool,
    },
}

pub struct ResponseProcessor {
    shape: ApiShape,
    kind: Kind,
    tracker: UsageTracker,
}

impl ResponseProcessor {
    /// Pass-through that only reads usage and errors: output is always the
    /// input chunk itself.
    pub fn observe_only(shape: ApiShape, content_type: &str) -> Self {
        Self::new(shape, content_type, None)
    }

    pub(crate) fn new(shape: ApiShape, content_type: &str, map: Option<Arc<RestoreMap>>) -> Self {
        let ct = content_type.to_ascii_lowercase();
        let kind = if ct.contains("text/event-stream") {
            Kind::Sse {
                splitter: SseSplitter::default(),
                restorer: map.map(|m| EventRestorer::new(shape, m)),
                overflow: false,
            }
        } else if ct.contains("json") {
            Kind::Json {
                buf: Vec::new(),
                map,
                overflow: false,
            }
        } else {
            Kind::Opaque
        };
        ResponseProcessor {
            shape,
            kind,
            tracker: UsageTracker::default(),
        }
    }

    /// Whether output bytes can differ from input (the caller must then drop
    /// `Content-Length`).
    pub fn may_change_body(&self) -> bool {
        match &self.kind {
            Kind::Opaque => false,
            Kind::Sse { restorer, .. } => restorer.is_some(),
            Kind::Json { map, .. } => map.is_some(),
        }
    }

    /// Feed a chunk of the (decoded) response body; returns what to send now.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        let shape = self.shape;
        match &mut self.kind {
            Kind::Opaque => chunk,
            Kind::Sse {
                splitter,
                restorer: None,
                overflow,
            } => {
                if !*overflow {
                    splitter.push(&chunk);
                    while let Some(event) = splitter.next_event() {
                        observe(&mut self.tracker, shape, &event);
                    }
                    if splitter.pending() > MAX_OBSERVED_EVENT {
                        // An event this large carries no usage we could
                        // afford to parse; resynchronize at the next one.
                        splitter.clear();
                        *overflow = true;
                    }
                } else if let Some(i) = memchr::memmem::find(&chunk, b"\n\n") {
                    *overflow = false;
                    splitter.push(&chunk[i + 2..]);
                }
                chunk
            }
            Kind::Sse {
                splitter,
                restorer: Some(restorer),
                ..
            } => {
                splitter.push(&chunk);
                let mut out = Vec::with_capacity(chunk.len() + 64);
                while let Some(event) = splitter.next_event() {
                    restore_event(&mut self.tracker, shape, restorer, &event, &mut out);
                }
                Bytes::from(out)
            }
            Kind::Json { buf, map, overflow } => {
                if *overflow {
                    return chunk;
                }
                if buf.len() + chunk.len() > MAX_JSON_BODY {
                    *overflow = true;
                    let mut out = std::mem::take(buf);
                    out.extend_from_slice(&chunk);
                    return if map.is_some() { Bytes::from(out) } else { chunk };
                }
                buf.extend_from_slice(&chunk);
                if map.is_some() {
                    Bytes::new()
                } else {
                    chunk
                }
            }
        }
    }

    /// End of the body: whatever was still held.
    pub fn finish(&mut self) -> Bytes {
        let shape = self.shape;
        match &mut self.kind {
            Kind::Opaque => Bytes::new(),
            Kind::Sse {
                splitter,
                restorer: None,
                ..
            } => {
                let rest = splitter.take_rest();
                if !rest.is_empty() {
                    observe(&mut self.tracker, shape, &rest);
                }
                Bytes::new()
            }
            Kind::Sse {
                splitter,
                restorer: Some(restorer),
                ..
            } => {
                let mut out = Vec::new();
                let rest = splitter.take_rest();
                if !rest.is_empty() {
                    restore_event(&mut self.tracker, shape, restorer, &rest, &mut out);
                }
                for s in restorer.finish() {
                    out.extend_from_slice(sse::format_event(s.name.as_deref(), &s.data).as_bytes());
                }
                Bytes::from(out)
            }
            Kind::Json { buf, map, overflow } => {
                if *overflow {
                    return Bytes::new();
                }
                let body = std::mem::take(buf);
                self.tracker.observe_json(&body);
                let Some(map) = map else { return Bytes::new() };
                match std::str::from_utf8(&body)
                    .ok()
                    .and_then(|t| restore::restore_json(t, map))
                {
                    Some(restored) => Bytes::from(restored),
                    None => Bytes::from(body),
                }
            }
        }
    }

    pub fn usage(&self) -> Usage {
        self.tracker.usage.clone()
    }

    /// The error an SSE `error` event (or a Chat error chunk) reported.
    pub fn stream_error(&self) -> Option<&str> {
        self.tracker.stream_error.as_deref()
    }
}

fn observe(tracker: &mut UsageTracker, shape: ApiShape, raw: &[u8]) {
    if let Some(ev) = sse::parse_event(raw) {
        if ev.has_data || ev.name.is_some() {
            tracker.observe_event(shape, ev.name, &ev.data);
        }
    }
}

fn restore_event(
    tracker: &mut UsageTracker,
    shape: ApiShape,
    restorer: &mut EventRestorer,
    raw: &[u8],
    out: &mut Vec<u8>,
) {
    let Some(ev) = sse::parse_event(raw).filter(|e| e.has_data) else {
        out.extend_from_slice(raw); // comments, pings without data, keep-alives
        return;
    };
    tracker.observe_event(shape, ev.name, &ev.data);
    let result = restorer.process(ev.name, &ev.data);
    for s in &result.before {
        out.extend_from_slice(sse::format_event(s.name.as_deref(), &s.data).as_bytes());
    }
    match result.replaced {
        Some(data) => out.extend_from_slice(&sse::rewrite_event(raw, &ev, &data)),
        None => out.extend_from_slice(raw),
    }
}
