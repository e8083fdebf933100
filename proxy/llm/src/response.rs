//! The response side: restore placeholders in JSON bodies and SSE streams,
//! read usage, notice mid-stream errors. Streams are processed event by
//! event; nothing beyond the event in progress (plus a placeholder-sized
//! hold-back per content stream) is buffered.

use std::sync::Arc;

use bytes::Bytes;

use crate::restore::{self, RestoreMap, Restorer};
use crate::shape::ApiShape;
use crate::sse::{self, SseSplitter};
use crate::stream::EventRestorer;
use crate::usage::Usage;

/// Largest JSON body buffered for restoration or usage; larger ones pass
/// through as they are (usage unknown).
const MAX_JSON_BODY: usize = 64 << 20;
/// Largest single SSE event held: parsed for usage (observe-only) or
/// restored. A longer one passes through as it is, unrestored (its
/// placeholders stay placeholders), and parsing resumes at the next event,
/// so a stream that never ends an event cannot grow the agent.
const MAX_EVENT: usize = 16 << 20;

enum Kind {
    /// Not JSON or SSE: bytes pass, nothing is read.
    Opaque,
    Sse {
        splitter: SseSplitter,
        restorer: Option<EventRestorer>,
        overflow: Overflow,
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
    usage: Usage,
}

impl Restorer {
    /// The processor for a response with this `Content-Type` (JSON bodies
    /// and SSE streams are restored; other types pass through).
    pub fn response_processor(&self, content_type: &str, shape: ApiShape) -> ResponseProcessor {
        ResponseProcessor::new(shape, content_type, Some(self.map.clone()))
    }
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
                restorer: map.map(EventRestorer::new),
                overflow: Overflow::default(),
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
            usage: Usage::default(),
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
                let rest = match overflow.skip(&chunk) {
                    Some(at) => &chunk[at..],
                    None => return chunk,
                };
                splitter.push(rest);
                while let Some(event) = splitter.next_event() {
                    observe(&mut self.usage, shape, &event);
                }
                if splitter.pending() > MAX_EVENT {
                    // An event this large carries no usage we could
                    // afford to parse; resynchronize at the next one.
                    overflow.start(&splitter.take_rest());
                }
                chunk
            }
            Kind::Sse {
                splitter,
                restorer: Some(restorer),
                overflow,
            } => {
                let mut out = Vec::with_capacity(chunk.len() + 64);
                let rest = match overflow.skip(&chunk) {
                    Some(at) => {
                        out.extend_from_slice(&chunk[..at]);
                        &chunk[at..]
                    }
                    None => return chunk,
                };
                splitter.push(rest);
                while let Some(event) = splitter.next_event() {
                    restore_event(&mut self.usage, shape, restorer, &event, &mut out);
                }
                if splitter.pending() > MAX_EVENT {
                    // Held-back text goes first so the client's text stays
                    // in order, then the oversized event as it came.
                    for s in restorer.finish() {
                        out.extend_from_slice(sse::format_event(s.name.as_deref(), &s.data).as_bytes());
                    }
                    let raw = splitter.take_rest();
                    overflow.start(&raw);
                    out.extend_from_slice(&raw);
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
                    observe(&mut self.usage, shape, &rest);
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
                    restore_event(&mut self.usage, shape, restorer, &rest, &mut out);
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
                if let Ok(v) = serde_json::from_slice(&body) {
                    shape.observe_json(&mut self.usage, &v);
                }
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

    /// What the response said so far, including an error it reported
    /// mid-stream ([`Usage::stream_error`]).
    pub fn usage(&self) -> Usage {
        self.usage.clone()
    }

    /// The error an SSE `error` event (or a Chat error chunk) reported.
    pub fn stream_error(&self) -> Option<&str> {
        self.usage.stream_error.as_deref()
    }
}

/// Passing an oversized SSE event through until its end: the blank line
/// that ends it may be split across chunks, so the last line break seen is
/// remembered.
#[derive(Default)]
struct Overflow {
    active: bool,
    /// The bytes passed through so far end with a line break (`\n`, `\r`
    /// or `\r\n`).
    at_line_start: bool,
    /// ... and that break was a `\r` (a `\n` right after belongs to it).
    after_cr: bool,
}

impl Overflow {
    /// Enters overflow after `passed` (the start of the oversized event).
    fn start(&mut self, passed: &[u8]) {
        self.active = true;
        self.at_line_start = false;
        self.after_cr = false;
        self.track(passed);
    }

    fn track(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.at_line_start = matches!(last, b'\n' | b'\r');
            self.after_cr = last == b'\r';
        }
    }

    /// Where the next event starts in `chunk`: 0 when not in overflow,
    /// just past the oversized event's end, or None if it does not end here.
    fn skip(&mut self, chunk: &[u8]) -> Option<usize> {
        if !self.active {
            return Some(0);
        }
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            if b == b'\n' && self.after_cr {
                // The \n of a \r\n line break.
                self.after_cr = false;
                i += 1;
                continue;
            }
            if matches!(b, b'\n' | b'\r') {
                if self.at_line_start {
                    // A blank line: the event ends after its break.
                    let mut end = i + 1;
                    if b == b'\r' && chunk.get(end) == Some(&b'\n') {
                        end += 1;
                    }
                    *self = Overflow::default();
                    return Some(end);
                }
                self.at_line_start = true;
                self.after_cr = b == b'\r';
            } else {
                self.at_line_start = false;
                self.after_cr = false;
            }
            i += 1;
        }
        None
    }
}

fn observe(usage: &mut Usage, shape: ApiShape, raw: &[u8]) {
    if let Some(ev) = sse::parse_event(raw) {
        if ev.has_data || ev.name.is_some() {
            observe_event(usage, shape, ev.name, &ev.data);
        }
    }
}

/// Usage from one event payload (SSE data or WebSocket frame); parsed only
/// when it may carry some.
pub(crate) fn observe_event(usage: &mut Usage, shape: ApiShape, name: Option<&str>, data: &str) {
    if let Some(v) = usage.worth_parsing(name, data) {
        shape.observe_event(usage, name, &v);
    }
}

fn restore_event(usage: &mut Usage, shape: ApiShape, restorer: &mut EventRestorer, raw: &[u8], out: &mut Vec<u8>) {
    let Some(ev) = sse::parse_event(raw).filter(|e| e.has_data) else {
        out.extend_from_slice(raw); // comments, pings without data, keep-alives
        return;
    };
    observe_event(usage, shape, ev.name, &ev.data);
    let result = shape.restore_event(restorer, ev.name, &ev.data);
    for s in &result.before {
        out.extend_from_slice(sse::format_event(s.name.as_deref(), &s.data).as_bytes());
    }
    match result.replaced {
        Some(data) => out.extend_from_slice(&sse::rewrite_event(raw, &ev, &data)),
        None => out.extend_from_slice(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::RestoreMap;

    fn restoring() -> ResponseProcessor {
        let map = RestoreMap::new([("[[EMAIL_001]]".to_string(), "ann@example.com".to_string())].into_iter());
        ResponseProcessor::new(ApiShape::ANTHROPIC_MESSAGES, "text/event-stream", Some(Arc::new(map)))
    }

    const DELTA_START: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"";

    /// Feeds an event that never ends (64 MiB and counting); returns what came out.
    fn flood(p: &mut ResponseProcessor) -> Vec<u8> {
        let chunk = Bytes::from(vec![b'x'; 1 << 20]);
        let mut pushed = DELTA_START.len();
        let mut out = p.push(Bytes::from_static(DELTA_START)).to_vec();
        for _ in 0..64 {
            pushed += chunk.len();
            out.extend_from_slice(&p.push(chunk.clone()));
            let held = pushed.saturating_sub(out.len());
            assert!(held <= MAX_EVENT + chunk.len(), "{held} bytes held for one event");
        }
        out
    }

    #[test]
    fn an_event_that_never_ends_is_passed_on_not_held() {
        let mut p = restoring();
        // A placeholder restored before the flood, held-back text flushed in order.
        let mut out = p
            .push(Bytes::from_static(
                b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"to [[EMAIL_001]] [\"}}\n\n",
            ))
            .to_vec();
        out.extend(flood(&mut p));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("\"text\":\"to ann@example.com \""), "{}", &text[..300]);
        let flushed = text.find("\"text\":\"[\"").expect("the held-back '[' is flushed");
        assert!(
            flushed < text.find("xxxx").unwrap(),
            "flushed before the oversized event"
        );
        // The event ends (its blank line split across chunks); restoring resumes.
        out.extend_from_slice(&p.push(Bytes::from_static(b"\"}}\r\n\r")));
        out.extend_from_slice(&p.push(Bytes::from_static(b"\n")));
        let next = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"bye [[EMAIL_001]]\"}}\n\n";
        out.extend_from_slice(&p.push(Bytes::from_static(next)));
        out.extend_from_slice(&p.finish());
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.ends_with("\"text\":\"bye ann@example.com\"}}\n\n"),
            "{}",
            &text[text.len() - 200..]
        );
    }

    #[test]
    fn observe_only_also_passes_an_endless_event_through() {
        let mut p = ResponseProcessor::observe_only(ApiShape::ANTHROPIC_MESSAGES, "text/event-stream");
        flood(&mut p);
        p.push(Bytes::from_static(
            b"\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n",
        ));
        assert_eq!(
            p.usage().output_tokens,
            Some(7),
            "parsing resumed after the oversized event"
        );
    }

    #[test]
    fn overflow_finds_the_blank_line_however_it_is_split() {
        for (parts, rest) in [
            (vec![&b"abc\n\nnext"[..]], "next"),
            (vec![b"abc\n", b"\nnext"], "next"),
            (vec![b"abc\r\n", b"\r\nnext"], "next"),
            (vec![b"abc\r\n\r", b"\nnext"], "\nnext"), // a lone \n line the splitter skips
            (vec![b"abc\r", b"\n\r\n", b"next"], "next"),
            (vec![b"abc\r\rnext"], "next"),
            (vec![b"a\nb\nc\n", b"\nnext"], "next"),
        ] {
            let mut o = Overflow::default();
            o.start(b"data: x");
            let mut got: Option<Vec<u8>> = None;
            for part in &parts {
                match &mut got {
                    Some(g) => g.extend_from_slice(part),
                    None => got = o.skip(part).map(|at| part[at..].to_vec()),
                }
            }
            assert_eq!(got.as_deref(), Some(rest.as_bytes()), "{parts:?}");
        }
    }
}
