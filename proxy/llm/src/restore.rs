//! Putting original values back in place of the placeholders this pipeline
//! issued, in plain text, JSON string contents and whole JSON documents.

use std::collections::HashMap;
use std::sync::Arc;

use crate::json::{self, Lit, Node};

/// How a restored value must be written where the placeholder stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeMode {
    /// Decoded text: the value as is.
    Plain,
    /// Text that is itself JSON (tool-call arguments): the placeholder sits
    /// inside a JSON string, so the value is JSON-escaped.
    JsonInner,
}

/// Placeholder -> original value, for one request or connection.
pub(crate) struct RestoreMap {
    map: HashMap<String, String>,
    max_len: usize,
}

impl RestoreMap {
    pub fn new(pairs: impl Iterator<Item = (String, String)>) -> Self {
        let map: HashMap<String, String> = pairs.collect();
        let max_len = map.keys().map(String::len).max().unwrap_or(0);
        RestoreMap { map, max_len }
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `text` with every issued placeholder replaced; `None` if none occurs.
    pub fn restore(&self, text: &str, mode: EscapeMode) -> Option<String> {
        let bytes = text.as_bytes();
        let finder = memchr::memmem::Finder::new(b"[[");
        let mut out: Option<String> = None;
        let (mut copied, mut pos) = (0, 0);
        while let Some(i) = finder.find(&bytes[pos..]) {
            let start = pos + i;
            let window_end = (start + self.max_len).min(bytes.len());
            let found = memchr::memmem::find(&bytes[start + 2..window_end], b"]]")
                .map(|j| &text[start..start + 2 + j + 2])
                .and_then(|candidate| self.map.get(candidate).map(|v| (candidate.len(), v)));
            match found {
                Some((len, value)) => {
                    let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 32));
                    o.push_str(&text[copied..start]);
                    match mode {
                        EscapeMode::Plain => o.push_str(value),
                        EscapeMode::JsonInner => o.push_str(&json::escape_inner(value)),
                    }
                    copied = start + len;
                    pos = copied;
                }
                None => pos = start + 1,
            }
        }
        out.map(|mut o| {
            o.push_str(&text[copied..]);
            o
        })
    }

    /// Where the longest suffix of `text` that could still grow into an
    /// issued placeholder starts (`text.len()` if none): that suffix is held
    /// back until the next delta of the same stream.
    pub fn holdback_start(&self, text: &str) -> usize {
        let bytes = text.as_bytes();
        let from = bytes.len().saturating_sub(self.max_len.saturating_sub(1));
        for p in from..bytes.len() {
            if bytes[p] == b'[' {
                let tail = &text[p..];
                if self.map.keys().any(|k| k.len() > tail.len() && k.starts_with(tail)) {
                    return p;
                }
            }
        }
        bytes.len()
    }
}

/// Restores the originals into a response. Cheap to clone; one per request.
#[derive(Clone)]
pub struct Restorer {
    pub(crate) map: Arc<RestoreMap>,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer")
            .field("placeholders", &self.map.map.len())
            .finish()
    }
}

// `Restorer::response_processor` lives with `ResponseProcessor` (response.rs),
// so this module does not depend on the response side.
impl Restorer {
    /// Restore a whole text (for callers outside HTTP, e.g. tests).
    pub fn restore_text(&self, text: &str) -> String {
        self.map
            .restore(text, EscapeMode::Plain)
            .unwrap_or_else(|| text.to_string())
    }

    /// Number of placeholders this restorer knows.
    pub fn len(&self) -> usize {
        self.map.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.map.is_empty()
    }
}

/// Object types whose content is signed or encrypted model state.
fn is_protected_type(t: &str) -> bool {
    matches!(
        t,
        "thinking" | "redacted_thinking" | "reasoning" | "thinking_delta" | "signature_delta"
    )
}

/// Keys never touched anywhere.
fn is_protected_key(k: &str) -> bool {
    matches!(
        k,
        "signature" | "encrypted_content" | "thoughtSignature" | "thought_signature"
    )
}

/// A Gemini thought part (`{"text": .., "thought": true}`): model thinking,
/// left as the provider wrote it like other providers' thinking. (A tool
/// argument object of that form is left alone too.)
fn is_thought(src: &str, node: &Node<'_>) -> bool {
    matches!(node.get("thought"), Some(Node::Scalar(r)) if src.get(r.clone()) == Some("true"))
}

/// Restore placeholders in every string of a JSON document except signed or
/// encrypted content. Returns `None` when nothing changed (the caller keeps
/// the original bytes).
pub(crate) fn restore_json(src: &str, map: &RestoreMap) -> Option<String> {
    memchr::memmem::find(src.as_bytes(), b"[[")?;
    let root = json::parse(src).ok()?;
    let mut edits = Vec::new();
    collect_restore_edits(src, &root, None, map, &mut edits);
    if edits.is_empty() {
        return None;
    }
    Some(json::splice(src, &mut edits))
}

/// Edits restoring the strings below `node` of document `src`.
pub(crate) fn collect_restore_edits(
    src: &str,
    node: &Node<'_>,
    key: Option<&Lit<'_>>,
    map: &RestoreMap,
    edits: &mut Vec<(std::ops::Range<usize>, String)>,
) {
    match node {
        Node::Obj(fields) => {
            if node.str_field("type").is_some_and(|t| is_protected_type(&t)) || is_thought(src, node) {
                return;
            }
            for (k, v) in fields {
                if !is_protected_key(&k.decode()) {
                    collect_restore_edits(src, v, Some(k), map, edits);
                }
            }
        }
        Node::Arr(items) => items
            .iter()
            .for_each(|v| collect_restore_edits(src, v, key, map, edits)),
        Node::Str(lit) => {
            if memchr::memmem::find(lit.raw.as_bytes(), b"[[").is_none() {
                return;
            }
            let mode = match key.map(|k| k.decode()) {
                Some(k) if k == "arguments" || k == "partial_json" => EscapeMode::JsonInner,
                _ => EscapeMode::Plain,
            };
            if let Some(restored) = map.restore(&lit.decode(), mode) {
                edits.push((lit.range(), json::quote(&restored)));
            }
        }
        Node::Scalar(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> RestoreMap {
        RestoreMap::new(
            [
                ("[[EMAIL_001]]".to_string(), "a\"b@x.io".to_string()),
                ("[[PHONE_001]]".into(), "+1 555".into()),
            ]
            .into_iter(),
        )
    }

    #[test]
    fn restores_only_issued_placeholders() {
        let m = map();
        assert_eq!(
            m.restore("x [[[EMAIL_001]] [[EMAIL_002]]", EscapeMode::Plain).unwrap(),
            "x [a\"b@x.io [[EMAIL_002]]"
        );
        assert_eq!(
            m.restore("{\"to\":\"[[EMAIL_001]]\"}", EscapeMode::JsonInner).unwrap(),
            "{\"to\":\"a\\\"b@x.io\"}"
        );
        assert!(m.restore("nothing [[ here ]]", EscapeMode::Plain).is_none());
    }

    #[test]
    fn holds_back_only_possible_placeholder_prefixes() {
        let m = map();
        assert_eq!(m.holdback_start("abc [[EM"), 4);
        assert_eq!(m.holdback_start("abc ["), 4);
        assert_eq!(m.holdback_start("abc [[X"), 7);
        assert_eq!(m.holdback_start("abc [[EMAIL_001]]"), 17);
    }

    #[test]
    fn json_restore_skips_signed_content() {
        let m = map();
        let src = r#"{"content":[{"type":"thinking","thinking":"[[EMAIL_001]]","signature":"s"},{"type":"text","text":"hi [[EMAIL_001]]"},{"type":"tool_use","input":{"to":"[[PHONE_001]]"}}]}"#;
        let out = restore_json(src, &m).unwrap();
        assert_eq!(
            out,
            r#"{"content":[{"type":"thinking","thinking":"[[EMAIL_001]]","signature":"s"},{"type":"text","text":"hi a\"b@x.io"},{"type":"tool_use","input":{"to":"+1 555"}}]}"#
        );
    }
}
