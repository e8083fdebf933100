//! Where the text is in each API shape: the walker turns a request tree into
//! an ordered list of string places, each with a scanning mode and a
//! location like `messages[2].content[0].text`.
//!
//! Order matters: placeholders are numbered by first appearance, so the
//! static parts (system, instructions, tools) come first and the growing
//! conversation last; appending a turn never renumbers earlier values.

use crate::json::{Lit, Node};
use crate::shape::ApiShape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
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
    pub path: u32,
}

#[derive(Clone, Copy)]
enum Seg<'t> {
    Root,
    Key(&'t str),
    Idx(usize),
}

/// Strings shorter than this cannot hold a credential; skipped in
/// secrets-only places (field names, enum values, ids).
const MIN_SECRET_LEN: usize = 8;

pub(crate) struct Walk<'t, 'a> {
    pub places: Vec<Place<'t, 'a>>,
    arena: Vec<(u32, Seg<'t>)>,
    /// Set for endpoints without a walker of their own.
    prompt_keys_are_text: bool,
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
    pub fn new(shape: ApiShape, root: &'t Node<'a>) -> Self {
        let mut w = Walk {
            places: Vec::new(),
            arena: vec![(0, Seg::Root)],
            prompt_keys_are_text: false,
        };
        match shape {
            ApiShape::AnthropicMessages | ApiShape::AnthropicCountTokens => w.anthropic(root),
            ApiShape::OpenAiChat => w.chat(root),
            ApiShape::OpenAiResponses => w.responses(root),
            ApiShape::OpenAiEmbeddings => w.embeddings(root),
            ApiShape::Other => w.unknown_endpoint(root),
        }
        w
    }

    /// Human-readable location of a place, e.g. `messages[2].content[0].text`.
    pub fn location(&self, path: u32) -> String {
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

    fn child(&mut self, parent: u32, seg: Seg<'t>) -> u32 {
        self.arena.push((parent, seg));
        (self.arena.len() - 1) as u32
    }

    /// The path of `key` below `parent`; every key a walker descends
    /// through is itself checked for secrets here.
    fn key(&mut self, parent: u32, key: &'t Lit<'a>) -> u32 {
        let path = self.child(parent, Seg::Key(key.raw));
        self.key_place(key, path);
        path
    }

    fn place(&mut self, node: &'t Node<'a>, mode: Mode, path: u32) {
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
    fn all_strings(&mut self, node: &'t Node<'a>, mode: Mode, path: u32) {
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
    fn key_place(&mut self, key: &'t Lit<'a>, path: u32) {
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
    fn generic(&mut self, node: &'t Node<'a>, path: u32) {
        self.generic_as(node, path, Mode::SecretsOnly);
    }

    /// A body of an endpoint without its own walker (Message Batches, legacy
    /// completions, APIs newer than this release): values under the keys
    /// that carry prompts anywhere get every detector, the rest secrets only.
    fn unknown_endpoint(&mut self, root: &'t Node<'a>) {
        self.prompt_keys_are_text = true;
        self.generic(root, 0);
    }

    fn generic_as(&mut self, node: &'t Node<'a>, path: u32, mode: Mode) {
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
    fn protected(&mut self, node: &'t Node<'a>, path: u32) {
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
    fn top_level(
        &mut self,
        root: &'t Node<'a>,
        first: &[&str],
        last: &str,
        visit: fn(&mut Self, &'t str, &'t Node<'a>, u32),
    ) {
        let Node::Obj(fs) = root else {
            return self.generic(root, 0);
        };
        let rank = |k: &str| {
            first
                .iter()
                .position(|f| *f == k)
                .unwrap_or(if k == last { first.len() + 1 } else { first.len() })
        };
        let mut order: Vec<&'t (Lit<'a>, Node<'a>)> = fs.iter().collect();
        order.sort_by_key(|(k, _)| rank(k.raw));
        for (k, v) in order {
            let p = self.key(0, k);
            visit(self, k.raw, v, p);
        }
    }

    fn anthropic(&mut self, root: &'t Node<'a>) {
        self.top_level(root, &["system", "tools"], "messages", |w, key, v, p| match key {
            "system" => w.anthropic_content(v, p),
            "messages" => w.each(v, p, |w, m, pm| {
                if let Some((k, c)) = fields(m).iter().find(|(k, _)| k.raw == "content") {
                    let pc = w.key(pm, k);
                    w.anthropic_content(c, pc);
                }
                for (k, v) in fields(m).iter().filter(|(k, _)| k.raw != "content") {
                    let pk = w.key(pm, k);
                    w.generic(v, pk);
                }
            }),
            _ => w.generic(v, p),
        });
    }

    /// A string or an array of content blocks.
    fn anthropic_content(&mut self, node: &'t Node<'a>, path: u32) {
        match node {
            Node::Str(_) => self.place(node, Mode::Text, path),
            Node::Arr(_) => self.each(node, path, |w, block, pb| w.anthropic_block(block, pb)),
            _ => self.generic(node, path),
        }
    }

    fn anthropic_block(&mut self, block: &'t Node<'a>, path: u32) {
        let ty = block.str_field("type");
        let ty = ty.as_deref().unwrap_or("");
        if matches!(ty, "thinking" | "redacted_thinking") {
            return self.protected(block, path);
        }
        let source_is_text = block.get("source").is_some_and(|s| s.field_is("type", "text"));
        for (k, v) in fields(block) {
            let p = self.key(path, k);
            match (ty, k.raw) {
                ("text", "text") => self.place(v, Mode::Text, p),
                ("tool_use" | "server_tool_use" | "mcp_tool_use", "input") => self.all_strings(v, Mode::Text, p),
                (_, "content") if ty.ends_with("tool_result") || ty == "search_result" => self.anthropic_content(v, p),
                ("document", "source") if source_is_text => {
                    for (sk, sv) in fields(v) {
                        let ps = self.key(p, sk);
                        if sk.raw == "data" {
                            self.place(sv, Mode::Text, ps);
                        } else {
                            self.generic(sv, ps);
                        }
                    }
                }
                ("document", "source") => match v.get("content") {
                    Some(c @ Node::Arr(_)) => {
                        let pc = self.child(p, Seg::Key("content"));
                        self.anthropic_content(c, pc);
                    }
                    _ => self.generic(v, p),
                },
                _ => self.generic(v, p),
            }
        }
    }

    fn chat(&mut self, root: &'t Node<'a>) {
        self.top_level(root, &["tools", "functions"], "messages", |w, key, v, p| match key {
            "messages" => w.each(v, p, |w, m, pm| {
                for (k, v) in fields(m) {
                    let pk = w.key(pm, k);
                    match k.raw {
                        "content" => w.openai_content(v, pk),
                        "refusal" => w.place(v, Mode::Text, pk),
                        "tool_calls" => w.each(v, pk, |w, call, pc| w.chat_tool_call(call, pc)),
                        "function_call" => w.chat_tool_call_function(v, pk),
                        "reasoning_content" | "reasoning" => w.place(v, Mode::Protected, pk),
                        _ => w.generic(v, pk),
                    }
                }
            }),
            _ => w.generic(v, p),
        });
    }

    fn chat_tool_call(&mut self, call: &'t Node<'a>, path: u32) {
        for (k, v) in fields(call) {
            let p = self.key(path, k);
            if k.raw == "function" {
                self.chat_tool_call_function(v, p);
            } else if k.raw == "custom" {
                // Custom tool calls carry free text in `input`.
                for (ck, cv) in fields(v) {
                    let pc = self.key(p, ck);
                    let mode = if ck.raw == "input" {
                        Mode::Text
                    } else {
                        Mode::SecretsOnly
                    };
                    self.place(cv, mode, pc);
                }
            } else {
                self.generic(v, p);
            }
        }
    }

    fn chat_tool_call_function(&mut self, f: &'t Node<'a>, path: u32) {
        for (k, v) in fields(f) {
            let p = self.key(path, k);
            if k.raw == "arguments" {
                self.place(v, Mode::JsonText, p);
            } else {
                self.generic(v, p);
            }
        }
    }

    /// Chat / Responses message content: a string or typed parts.
    fn openai_content(&mut self, node: &'t Node<'a>, path: u32) {
        match node {
            Node::Str(_) => self.place(node, Mode::Text, path),
            Node::Arr(_) => self.each(node, path, |w, part, pp| {
                for (k, v) in fields(part) {
                    let pk = w.key(pp, k);
                    match k.raw {
                        "text" | "refusal" => w.place(v, Mode::Text, pk),
                        "image_url" | "file_data" | "input_audio" | "file" => w.skip_binary(v, pk),
                        _ => w.generic(v, pk),
                    }
                }
            }),
            _ => self.generic(node, path),
        }
    }

    fn skip_binary(&mut self, node: &'t Node<'a>, path: u32) {
        match node {
            Node::Obj(fs) => {
                for (k, v) in fs {
                    if !matches!(k.raw, "data" | "file_data" | "url") {
                        let p = self.key(path, k);
                        self.generic(v, p);
                    }
                }
            }
            // A URL or inline data: only scan URLs (credentials in them).
            Node::Str(lit) if !lit.raw.starts_with("data:") => self.place(node, Mode::SecretsOnly, path),
            _ => {}
        }
    }

    fn responses(&mut self, root: &'t Node<'a>) {
        self.top_level(root, &["instructions", "tools"], "input", |w, key, v, p| match key {
            "instructions" | "input" => match v {
                Node::Str(_) => w.place(v, Mode::Text, p),
                Node::Arr(_) => w.each(v, p, |w, item, pi| w.responses_item(item, pi)),
                _ => w.generic(v, p),
            },
            _ => w.generic(v, p),
        });
    }

    fn responses_item(&mut self, item: &'t Node<'a>, path: u32) {
        let ty = item.str_field("type");
        let ty = ty
            .as_deref()
            .unwrap_or(if item.get("role").is_some() { "message" } else { "" });
        if matches!(ty, "reasoning" | "compaction" | "compaction_summary") {
            return self.protected(item, path);
        }
        for (k, v) in fields(item) {
            let p = self.key(path, k);
            match (ty, k.raw) {
                ("message", "content") => self.openai_content(v, p),
                (_, "arguments") if ty.ends_with("_call") => self.place(v, Mode::JsonText, p),
                ("custom_tool_call", "input") => self.place(v, Mode::Text, p),
                (_, "action" | "input") if ty.ends_with("_call") => self.all_strings(v, Mode::Text, p),
                (_, "output") if ty.ends_with("_call_output") || ty.ends_with("_call") => self.openai_content(v, p),
                _ => self.generic(v, p),
            }
        }
    }

    fn embeddings(&mut self, root: &'t Node<'a>) {
        self.top_level(root, &[], "input", |w, key, v, p| match (key, v) {
            ("input", Node::Str(_)) => w.place(v, Mode::Text, p),
            ("input", Node::Arr(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let pi = w.child(p, Seg::Idx(i));
                    if let Node::Str(_) = item {
                        w.place(item, Mode::Text, pi);
                    }
                }
            }
            _ => w.generic(v, p),
        });
    }

    fn each(&mut self, node: &'t Node<'a>, path: u32, f: fn(&mut Self, &'t Node<'a>, u32)) {
        match node {
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

fn fields<'t, 'a>(node: &'t Node<'a>) -> &'t [(Lit<'a>, Node<'a>)] {
    match node {
        Node::Obj(f) => f,
        _ => &[],
    }
}
