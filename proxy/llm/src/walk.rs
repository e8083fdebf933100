//! The walker machinery shapes use to say where their text is: a walk turns
//! a request tree into an ordered list of string places, each with a
//! scanning mode and a location like `messages[2].content[0].text`. Which
//! field is which is each shape's business ([`crate::Shape::walk`]).
//!
//! Order matters: placeholders are numbered by first appearance, so a
//! shape walks the static parts (system, instructions, tools) first and the
//! growing conversation last; appending a turn never renumbers earlier values.

use crate::json::{Lit, Node};

/// How a string place is scanned and whether it may be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Prompt text: every detector applies.
    Text,
    /// A string holding JSON (function-call arguments): its inner strings are
    /// scanned as text.
    JsonText,
    /// Anything else (tool definitions, metadata, unknown fields): secrets only.
    SecretsOnly,
    /// Signed model output (thinking): never modified, a secret in it blocks.
    Protected,
}

pub(crate) struct Place<'t, 'a> {
    pub lit: &'t Lit<'a>,
    pub mode: Mode,
    pub path: PathId,
}

/// A node in the tree of locations; `0` is the body itself.
pub type PathId = u32;

#[derive(Clone, Copy)]
enum Seg<'t> {
    Root,
    Key(&'t str),
    Idx(usize),
}

/// Strings shorter than this cannot hold a credential; skipped in
/// secrets-only places (field names, enum values, ids).
const MIN_SECRET_LEN: usize = 8;

/// The places of one request, filled by a shape's [`crate::Shape::walk`].
pub struct Walk<'t, 'a> {
    pub(crate) places: Vec<Place<'t, 'a>>,
    arena: Vec<(PathId, Seg<'t>)>,
    /// Set for endpoints without a walker of their own.
    prompt_keys_are_text: bool,
    /// The body, for reading scalars (`"thought": true`).
    src: &'a str,
    /// The growing conversation as this walk met it.
    conversation: Conversation<'t, 'a>,
}

/// The array under the root's last-walked key (`messages`, `input`,
/// `contents`) walked item by item with [`Walk::each`]: what the next turn
/// of a conversation extends. Recorded so a request whose prefix was seen
/// can reuse the results of the items it shares (see `turns.rs`).
struct Conversation<'t, 'a> {
    /// The root key's literal, its path and the array.
    key: Option<(&'t Lit<'a>, PathId, &'t Node<'a>)>,
    /// Places when the visit of that key began.
    visit_start: usize,
    /// Where each walked item's places start.
    item_starts: Vec<usize>,
    /// Places when the items' walk ended.
    end: Option<usize>,
    /// The root was ordered twice, or the array walked twice.
    spoiled: bool,
    /// Items not walked (their results are reused).
    skip: usize,
    /// The root's fields were ordered.
    ordered: bool,
}

/// What [`Walk::conversation`] reports of a walk whose places end with the
/// conversation's items, walked one by one.
pub(crate) struct ConversationPlaces<'t, 'a> {
    pub key: &'t Lit<'a>,
    /// Where each walked item's places start (those of the items after the
    /// skipped ones); the last item's run ends with the places.
    pub item_starts: Vec<usize>,
    /// Places before the first walked item.
    pub before: usize,
}

/// Keys whose values are prompt text in every LLM API seen so far.
const PROMPT_KEYS: &[&str] = &[
    "prompt",
    "messages",
    "input",
    "content",
    "text",
    "system",
    "instructions",
];

impl<'t, 'a> Walk<'t, 'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Walk {
            places: Vec::new(),
            arena: vec![(0, Seg::Root)],
            prompt_keys_are_text: false,
            src,
            conversation: Conversation {
                key: None,
                visit_start: 0,
                item_starts: Vec::new(),
                end: None,
                spoiled: false,
                skip: 0,
                ordered: false,
            },
        }
    }

    /// A walk that leaves out the first `n` items of the conversation.
    pub(crate) fn skipping_items(src: &'a str, n: usize) -> Self {
        let mut walk = Walk::new(src);
        walk.conversation.skip = n;
        walk
    }

    /// The conversation, when the places end with its items and each was
    /// walked on its own; None for any other walk (an unknown endpoint's,
    /// a conversation that is a string, fields walked after it).
    pub(crate) fn conversation(&self) -> Option<ConversationPlaces<'t, 'a>> {
        let c = &self.conversation;
        let (key, _, _) = c.key?;
        if c.spoiled || c.end != Some(self.places.len()) {
            return None;
        }
        Some(ConversationPlaces {
            key,
            item_starts: c.item_starts.clone(),
            before: c.visit_start,
        })
    }

    /// Whether `node` is the literal `true`.
    pub fn is_true(&self, node: &Node<'a>) -> bool {
        matches!(node, Node::Scalar(r) if self.src.get(r.clone()) == Some("true"))
    }

    /// Human-readable location of a place, e.g. `messages[2].content[0].text`.
    pub(crate) fn location(&self, path: PathId) -> String {
        let mut segs = Vec::new();
        let mut at = path;
        while at != 0 {
            let (parent, seg) = self.arena[at as usize];
            segs.push(seg);
            at = parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Idx(i) => out.push_str(&format!("[{i}]")),
                Seg::Root => {}
            }
        }
        if out.is_empty() {
            out.push_str("body");
        }
        out
    }

    fn child(&mut self, parent: PathId, seg: Seg<'t>) -> PathId {
        self.arena.push((parent, seg));
        (self.arena.len() - 1) as PathId
    }

    /// The path of item `i` of an array at `parent`.
    pub fn index(&mut self, parent: PathId, i: usize) -> PathId {
        self.child(parent, Seg::Idx(i))
    }

    /// The path of a field named `key` below `parent`, for a node reached
    /// without its key literal (`source.content` via [`Node::get`]).
    pub fn named(&mut self, parent: PathId, key: &'t str) -> PathId {
        self.child(parent, Seg::Key(key))
    }

    /// The path of `key` below `parent`; every key a walker descends
    /// through is itself checked for secrets here.
    pub fn key(&mut self, parent: PathId, key: &'t Lit<'a>) -> PathId {
        let path = self.child(parent, Seg::Key(key.raw));
        self.key_place(key, path);
        path
    }

    /// A string place in `mode`; a non-string node is walked generically.
    pub fn place(&mut self, node: &'t Node<'a>, mode: Mode, path: PathId) {
        if let Node::Str(lit) = node {
            if mode == Mode::SecretsOnly && lit.raw.len() < MIN_SECRET_LEN {
                return;
            }
            self.places.push(Place { lit, mode, path });
        } else {
            self.generic(node, path);
        }
    }

    /// Every string below `node` in `mode` (tool-call input objects).
    pub fn all_strings(&mut self, node: &'t Node<'a>, mode: Mode, path: PathId) {
        match node {
            Node::Obj(fields) => {
                for (k, v) in fields {
                    let p = self.key(path, k);
                    self.all_strings(v, mode, p);
                }
            }
            Node::Arr(items) => {
                for (i, v) in items.iter().enumerate() {
                    let p = self.child(path, Seg::Idx(i));
                    self.all_strings(v, mode, p);
                }
            }
            Node::Str(_) => self.place(node, mode, path),
            Node::Scalar(_) => {}
        }
    }

    /// An object key, checked for secrets like a value (a tool can put a
    /// credential in a key: `{"AKIA…": "x"}`).
    /// Field names (`tool_use_id`, `cache_control`: lower case and `_`
    /// only) cannot be credentials and are skipped, which keeps this off the
    /// hot path of large transcripts.
    fn key_place(&mut self, key: &'t Lit<'a>, path: PathId) {
        let field_name = key.raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if key.raw.len() >= MIN_SECRET_LEN && !field_name {
            self.places.push(Place {
                lit: key,
                mode: Mode::SecretsOnly,
                path,
            });
        }
    }

    /// Fields not known to carry prompt text: scanned for secrets only, with
    /// signatures, encrypted state and binary data skipped.
    pub fn generic(&mut self, node: &'t Node<'a>, path: PathId) {
        self.generic_as(node, path, Mode::SecretsOnly);
    }

    /// A body of an endpoint without its own walker (Message Batches, legacy
    /// completions, APIs newer than this release): values under the keys
    /// that carry prompts anywhere get every detector, the rest secrets only.
    pub fn unknown_endpoint(&mut self, root: &'t Node<'a>) {
        self.prompt_keys_are_text = true;
        self.generic(root, 0);
    }

    fn generic_as(&mut self, node: &'t Node<'a>, path: PathId, mode: Mode) {
        // An endpoint without a walker has no known-safe fields to skip: a
        // `type` of "reasoning" or a `signature` key must not hide the rest.
        let unknown = self.prompt_keys_are_text;
        match node {
            Node::Obj(fields) => {
                let ty = node.str_field("type");
                let ty = ty.as_deref().unwrap_or("");
                let signed = matches!(ty, "thinking" | "redacted_thinking" | "reasoning");
                if signed {
                    self.protected(node, path);
                    if !unknown {
                        return;
                    }
                }
                let binary = matches!(ty, "base64" | "image" | "input_image" | "input_audio")
                    || node.get("media_type").is_some();
                for (k, v) in fields {
                    let key = k.raw;
                    if signed && matches!(key, "thinking" | "text" | "summary") {
                        continue; // walked by `protected`
                    }
                    let opaque = matches!(key, "signature" | "encrypted_content") || (binary && key == "data");
                    if opaque && !unknown {
                        continue;
                    }
                    let p = self.key(path, k);
                    let child_mode = if mode == Mode::Protected || opaque || signed {
                        // Checked for secrets, never rewritten (a signature
                        // that changed would be refused).
                        Mode::Protected
                    } else if unknown && PROMPT_KEYS.contains(&key) {
                        Mode::Text
                    } else {
                        mode
                    };
                    self.generic_as(v, p, child_mode);
                }
            }
            Node::Arr(items) => {
                for (i, v) in items.iter().enumerate() {
                    let p = self.child(path, Seg::Idx(i));
                    self.generic_as(v, p, mode);
                }
            }
            Node::Str(lit) => {
                // Inline binary (a base64 data: URL of an image, audio, a
                // file) is skipped; a text data: URL is text.
                let binary_url =
                    lit.raw.starts_with("data:") && !lit.raw.starts_with("data:text/") && lit.raw.contains(";base64,");
                if !binary_url {
                    self.place(node, mode, path);
                }
            }
            Node::Scalar(_) => {}
        }
    }

    /// Signed thinking: the text is checked for secrets, nothing is changed.
    pub fn protected(&mut self, node: &'t Node<'a>, path: PathId) {
        for key in ["thinking", "text"] {
            if let Some((k, v)) = fields(node).iter().find(|(k, _)| k.raw == key) {
                let p = self.key(path, k);
                if let Node::Str(_) = v {
                    self.place(v, Mode::Protected, p);
                }
            }
        }
        if let Some((k, Node::Arr(items))) = fields(node).iter().find(|(k, _)| k.raw == "summary") {
            let p = self.key(path, k);
            for (i, item) in items.iter().enumerate() {
                let pi = self.child(p, Seg::Idx(i));
                if let Some((tk, tv @ Node::Str(_))) = fields(item).iter().find(|(k, _)| k.raw == "text") {
                    let pt = self.key(pi, tk);
                    self.place(tv, Mode::Protected, pt);
                }
            }
        }
    }

    /// Top-level fields in a fixed order: `first` ones, then the rest except
    /// `last`, then `last` (the growing conversation), each via `visit`.
    pub fn top_level(
        &mut self,
        root: &'t Node<'a>,
        first: &[&str],
        last: &str,
        visit: fn(&mut Self, &'t str, &'t Node<'a>, PathId),
    ) {
        self.fields_in_order(root, 0, first, last, visit);
    }

    /// [`Walk::top_level`] for an object anywhere (`node` at `path`): a
    /// request nested in another (Gemini's `countTokens`).
    pub fn fields_in_order(
        &mut self,
        node: &'t Node<'a>,
        path: PathId,
        first: &[&str],
        last: &str,
        visit: fn(&mut Self, &'t str, &'t Node<'a>, PathId),
    ) {
        let Node::Obj(fs) = node else {
            return self.generic(node, path);
        };
        let rank = |k: &str| {
            first
                .iter()
                .position(|f| *f == k)
                .unwrap_or(if k == last { first.len() + 1 } else { first.len() })
        };
        let mut order: Vec<&'t (Lit<'a>, Node<'a>)> = fs.iter().collect();
        order.sort_by_key(|(k, _)| rank(k.raw));
        // The root's last field is the conversation, if it is the only one
        // of that name.
        let root = path == 0;
        if root {
            self.conversation.spoiled |= self.conversation.ordered;
            self.conversation.ordered = true;
        }
        let last_count = fs.iter().filter(|(k, _)| k.raw == last).count();
        for (k, v) in order {
            let p = self.key(path, k);
            if root && last_count == 1 && k.raw == last {
                self.conversation.key = Some((k, p, v));
                self.conversation.visit_start = self.places.len();
            }
            visit(self, k.raw, v, p);
        }
    }

    /// Each item of an array via `f` (anything else: [`Walk::generic`]).
    pub fn each(&mut self, node: &'t Node<'a>, path: PathId, f: fn(&mut Self, &'t Node<'a>, PathId)) {
        let conversation = matches!(self.conversation.key, Some((_, p, n)) if p == path && std::ptr::eq(n, node));
        match node {
            Node::Arr(items) if conversation => {
                let c = &mut self.conversation;
                // Walked once, and nothing of it before its items.
                c.spoiled |= c.end.is_some() || c.visit_start != self.places.len();
                let skip = c.skip;
                for (i, item) in items.iter().enumerate().skip(skip) {
                    self.conversation.item_starts.push(self.places.len());
                    let p = self.child(path, Seg::Idx(i));
                    f(self, item, p);
                }
                self.conversation.end = Some(self.places.len());
            }
            Node::Arr(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = self.child(path, Seg::Idx(i));
                    f(self, item, p);
                }
            }
            _ => self.generic(node, path),
        }
    }
}

/// The fields of an object node (none for anything else).
pub fn fields<'t, 'a>(node: &'t Node<'a>) -> &'t [(Lit<'a>, Node<'a>)] {
    match node {
        Node::Obj(f) => f,
        _ => &[],
    }
}
