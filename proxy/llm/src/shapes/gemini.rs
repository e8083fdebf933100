//! Google Gemini's native API (Gemini CLI, the google-genai SDKs):
//! `POST .../models/{model}:generateContent` and `:streamGenerateContent`,
//! `:countTokens`, `:embedContent` and `:batchEmbedContents`. The model is
//! named in the path, not the body. Prompts are `systemInstruction` and
//! `contents` of parts (text, function calls and responses, inline data,
//! thoughts with their signatures). A stream is whole
//! `GenerateContentResponse` objects, one per SSE `data:` (`?alt=sse`) or
//! all in one JSON array (without it).
//!
//! Google's JSON parser takes the proto's snake_case field names as well as
//! lowerCamelCase ones, so both spellings are read as prompt fields.

use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;

use crate::errors;
use crate::json::{self, Lit, Node};
use crate::restore::EscapeMode;
use crate::shape::{ErrorFamily, NonJsonBody, Shape};
use crate::stream::{raw_scalar, EventRestorer, EventResult};
use crate::usage::Usage;
use crate::walk::{fields, Mode, PathId, Walk};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `:generateContent`, `:streamGenerateContent`.
    Generate,
    /// `:countTokens`: a `contents` list or a whole `generateContentRequest`.
    CountTokens,
    /// `:embedContent` (one `content`) and `:batchEmbedContents` (`requests`).
    Embed,
}

/// One endpoint family of the Gemini API; the three share the body format.
pub(crate) struct Gemini(Endpoint);

impl Gemini {
    pub(crate) const GENERATE: Gemini = Gemini(Endpoint::Generate);
    pub(crate) const COUNT_TOKENS: Gemini = Gemini(Endpoint::CountTokens);
    pub(crate) const EMBED: Gemini = Gemini(Endpoint::Embed);

    /// The path verbs of this endpoint, lower case (the classification key is).
    fn verbs(&self) -> &'static [&'static str] {
        match self.0 {
            Endpoint::Generate => &["generatecontent", "streamgeneratecontent"],
            Endpoint::CountTokens => &["counttokens"],
            Endpoint::Embed => &["embedcontent", "batchembedcontents"],
        }
    }
}

impl Shape for Gemini {
    fn name(&self) -> &'static str {
        match self.0 {
            Endpoint::Generate => "gemini.generate_content",
            Endpoint::CountTokens => "gemini.count_tokens",
            Endpoint::Embed => "gemini.embed_content",
        }
    }

    fn matches(&self, method: &str, key: &str) -> bool {
        method.eq_ignore_ascii_case("POST") && model_and_verb(key).is_some_and(|(_, verb)| self.verbs().contains(&verb))
    }

    fn is_llm(&self) -> bool {
        true
    }

    fn error_family(&self) -> ErrorFamily {
        ErrorFamily::Google
    }

    fn non_json_body(&self) -> NonJsonBody {
        NonJsonBody::Reject
    }

    fn walk<'t, 'a>(&self, walk: &mut Walk<'t, 'a>, root: &'t Node<'a>) {
        match self.0 {
            Endpoint::Generate => generate_request(walk, root, 0),
            Endpoint::CountTokens => walk.top_level(root, &[], "contents", |w, key, v, p| {
                if key_is(key, "generateContentRequest") {
                    generate_request(w, v, p)
                } else if key_is(key, "contents") {
                    contents(w, v, p)
                } else {
                    w.generic(v, p)
                }
            }),
            Endpoint::Embed => embed_request(walk, root, 0),
        }
    }

    fn model_in_path(&self, path: &str) -> Option<String> {
        let decoded = crate::path::percent_decode_lossy(path);
        model_and_verb(&decoded).map(|(model, _)| model.to_string())
    }

    fn continuation_field(&self) -> Option<&'static str> {
        None
    }

    fn restore_event(&self, events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult {
        restore_event(events, name, data)
    }

    fn observe_event(&self, usage: &mut Usage, name: Option<&str>, event: &Value) {
        // A stream reports an error as a chunk `{"error": {...}}`.
        if Usage::is_error_event(name, event) || event.get("error").is_some() {
            return usage.record_error(event);
        }
        absorb(usage, event);
    }

    /// A whole answer, or a stream without `alt=sse`: a JSON array of
    /// answers, whose usage is cumulative (the last one counts).
    fn observe_json(&self, usage: &mut Usage, body: &Value) {
        let answers = match body {
            Value::Array(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        for answer in answers {
            if body.is_array() && answer.get("error").is_some() {
                usage.record_error(answer);
            } else {
                absorb(usage, answer);
            }
        }
        if self.0 == Endpoint::CountTokens {
            if let Some(n) = body.get("totalTokens").and_then(Value::as_u64) {
                usage.input_tokens = Some(n);
            }
        }
    }

    fn sse_error_event(&self, message: &str) -> Bytes {
        errors::google_sse_error(message)
    }

    fn ws_error_frame(&self, _: u16, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }

    fn codec(&self) -> Option<&'static dyn crate::translate::Codec> {
        None
    }
}

/// The `{model}` and verb of a path ending `models/{model}:{verb}` (or
/// `tunedModels/`), whatever comes before (`/v1beta/`, `/v1/`, a Vertex
/// `projects/.../publishers/google/`); `;parameters` and empty segments
/// ignored. `path` must already be percent-decoded.
fn model_and_verb(path: &str) -> Option<(&str, &str)> {
    let mut segs = path
        .split('/')
        .map(|s| s.split(';').next().unwrap_or(""))
        .filter(|s| !s.is_empty());
    let last = segs.next_back()?;
    let parent = segs.next_back()?;
    if !(parent.eq_ignore_ascii_case("models") || parent.eq_ignore_ascii_case("tunedModels")) {
        return None;
    }
    let (model, verb) = last.rsplit_once(':')?;
    (!model.is_empty() && !verb.is_empty()).then_some((model, verb))
}

/// Whether field `key` is `camel` as Google's parser reads it: the
/// lowerCamelCase name or its snake_case spelling. Used only to choose the
/// stricter walk (prompt text), never to skip a field.
fn key_is(key: &str, camel: &str) -> bool {
    let mut a = key.bytes().filter(|&b| b != b'_');
    let mut b = camel.bytes();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

/// A `GenerateContentRequest`: instructions and tools first, the growing
/// conversation last (placeholder numbers follow this order).
fn generate_request<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    const FIRST: &[&str] = &[
        "systemInstruction",
        "system_instruction",
        "tools",
        "toolConfig",
        "tool_config",
    ];
    w.fields_in_order(node, path, FIRST, "contents", |w, key, v, p| {
        if key_is(key, "systemInstruction") {
            content(w, v, p)
        } else if key_is(key, "contents") {
            contents(w, v, p)
        } else {
            // tools (function declarations), generationConfig, safetySettings,
            // cachedContent, the model name: secrets only.
            w.generic(v, p)
        }
    });
}

/// An `EmbedContentRequest`, or a `batchEmbedContents` body of them.
fn embed_request<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    w.fields_in_order(node, path, &["title"], "content", |w, key, v, p| {
        if key_is(key, "content") {
            content(w, v, p)
        } else if key_is(key, "title") {
            w.place(v, Mode::Text, p)
        } else if key_is(key, "requests") {
            w.each(v, p, embed_request)
        } else {
            w.generic(v, p)
        }
    });
}

/// A list of `Content` (one object is read as a list of one).
fn contents<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    match node {
        Node::Arr(_) => w.each(node, path, content),
        _ => content(w, node, path),
    }
}

/// A `Content`: a role and parts. A bare string is read as text.
fn content<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    match node {
        Node::Str(_) => w.place(node, Mode::Text, path),
        Node::Obj(fs) => {
            for (k, v) in fs {
                let p = w.key(path, k);
                if key_is(k.raw, "parts") {
                    parts(w, v, p);
                } else {
                    w.generic(v, p);
                }
            }
        }
        _ => w.generic(node, path),
    }
}

fn parts<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    match node {
        Node::Arr(_) => w.each(node, path, part),
        Node::Obj(_) => part(w, node, path),
        Node::Str(_) => w.place(node, Mode::Text, path),
        _ => w.generic(node, path),
    }
}

/// Whether a field is a thought's signature: opaque model state the client
/// echoes back, which the provider refuses if it changed.
fn is_signature(key: &str) -> bool {
    matches!(key, "thoughtSignature" | "thought_signature")
}

/// One `Part`: text (a thought's is model thinking, never rewritten), a
/// function call's `args` and a function response's `response` (JSON
/// objects: their strings are text), inline data (skipped like other
/// binary), code and its output.
fn part<'t, 'a>(w: &mut Walk<'t, 'a>, node: &'t Node<'a>, path: PathId) {
    let Node::Obj(fs) = node else {
        return w.generic(node, path);
    };
    let thought = fs.iter().any(|(k, v)| k.raw == "thought" && w.is_true(v));
    for (k, v) in fs {
        if is_signature(k.raw) {
            continue;
        }
        let p = w.key(path, k);
        let key = k.raw;
        if key_is(key, "text") {
            w.place(v, if thought { Mode::Protected } else { Mode::Text }, p);
        } else if key_is(key, "functionCall") {
            members(w, v, p, "args", |w, v, p| w.all_strings(v, Mode::Text, p));
        } else if key_is(key, "functionResponse") {
            members(w, v, p, "response", |w, v, p| w.all_strings(v, Mode::Text, p));
        } else if key_is(key, "inlineData") {
            // Base64 bytes; the MIME type and display name are still checked.
            members(w, v, p, "data", |_, _, _| {});
        } else if key_is(key, "executableCode") {
            members(w, v, p, "code", |w, v, p| w.place(v, Mode::Text, p));
        } else if key_is(key, "codeExecutionResult") {
            members(w, v, p, "output", |w, v, p| w.place(v, Mode::Text, p));
        } else {
            // fileData (its URI scanned for credentials), videoMetadata, thought.
            w.generic(v, p);
        }
    }
}

/// The fields of object `node`: `special` through `f`, a function
/// response's `parts` as parts, the rest secrets only.
fn members<'t, 'a>(
    w: &mut Walk<'t, 'a>,
    node: &'t Node<'a>,
    path: PathId,
    special: &str,
    f: fn(&mut Walk<'t, 'a>, &'t Node<'a>, PathId),
) {
    let Node::Obj(fs) = node else {
        return w.generic(node, path);
    };
    for (k, v) in fs {
        let p = w.key(path, k);
        if key_is(k.raw, special) {
            f(w, v, p);
        } else if key_is(k.raw, "parts") {
            parts(w, v, p);
        } else {
            w.generic(v, p);
        }
    }
}

/// One streamed `GenerateContentResponse`. The text of each candidate is
/// one stream (restored with hold-back, so a placeholder split across
/// events comes back whole); thoughts are left as they are; every other
/// part (a function call) arrives whole and is restored whole. A candidate
/// that finishes, or moves on to a part that is not text, has its held text
/// flushed first.
fn restore_event(events: &mut EventRestorer, name: Option<&str>, data: &str) -> EventResult {
    let mut out = EventResult::default();
    let Ok(root) = json::parse(data) else {
        return out;
    };
    let Some(Node::Arr(candidates)) = root.get("candidates") else {
        // An error chunk, or usage alone.
        out.replaced = events.restore_whole(data);
        return out;
    };
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for candidate in candidates {
        let index = candidate
            .get("index")
            .map(|n| raw_scalar(data, n))
            .unwrap_or_else(|| "0".into());
        let owner = format!("g:{index}:");
        let key = format!("{owner}text");
        let finished = candidate
            .get("finishReason")
            .is_some_and(|f| !matches!(f, Node::Scalar(r) if &data[r.clone()] == "null"));
        let parts: &[Node<'_>] = match candidate.get("content").and_then(|c| c.get("parts")) {
            Some(Node::Arr(items)) => items,
            Some(one @ Node::Obj(_)) => std::slice::from_ref(one),
            _ => &[],
        };
        let mut texts: Vec<&Lit<'_>> = Vec::new();
        let mut other = false;
        for part in parts.iter().filter(|p| !is_thought(data, p)) {
            match part.get("text").and_then(Node::as_lit) {
                Some(lit) => texts.push(lit),
                None => other = true,
            }
            for (k, v) in fields(part) {
                if !matches!(k.raw, "text" | "thought") && !is_signature(k.raw) {
                    events.restore_node(data, v, &mut edits);
                }
            }
        }
        let ends = finished || other;
        if ends && texts.is_empty() {
            out.before.extend(events.flush_where(|k| k == key));
        }
        let n = texts.len();
        for (i, lit) in texts.into_iter().enumerate() {
            let last = ends && i + 1 == n;
            let template = || flush_template(name, &index);
            if let Some(new) = events.feed_with(key.clone(), owner.clone(), EscapeMode::Plain, lit, last, template) {
                edits.push((lit.range(), new));
            }
        }
    }
    if !edits.is_empty() {
        out.replaced = Some(json::splice(data, &mut edits));
    }
    out
}

fn is_thought(data: &str, part: &Node<'_>) -> bool {
    matches!(part.get("thought"), Some(Node::Scalar(r)) if &data[r.clone()] == "true")
}

/// The event held-back text of candidate `index` is flushed as: that text
/// alone, so nothing else of the event it came in (a function call, usage)
/// is sent twice.
fn flush_template(name: Option<&str>, index: &str) -> (Option<String>, String, Range<usize>) {
    const HEAD: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"#;
    let index = index
        .parse::<u64>()
        .map(|i| format!(r#","index":{i}"#))
        .unwrap_or_default();
    let data = format!(r#"{HEAD}""}}]}}{index}}}]}}"#);
    (name.map(str::to_string), data, HEAD.len()..HEAD.len() + 2)
}

/// Model and usage of one answer (or stream chunk: its `usageMetadata` is
/// the total so far).
fn absorb(usage: &mut Usage, answer: &Value) {
    if let Some(m) = answer.get("modelVersion").and_then(Value::as_str) {
        usage.model = Some(m.to_string());
    }
    let Some(u) = answer.get("usageMetadata").filter(|u| u.is_object()) else {
        return;
    };
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    if let Some(prompt) = n("promptTokenCount") {
        // Tool-use prompts (code execution results) are billed as input.
        usage.input_tokens = Some(prompt + n("toolUsePromptTokenCount").unwrap_or(0));
    }
    let (candidates, thoughts) = (n("candidatesTokenCount"), n("thoughtsTokenCount"));
    if candidates.is_some() || thoughts.is_some() {
        usage.output_tokens = Some(candidates.unwrap_or(0) + thoughts.unwrap_or(0));
    }
    if let Some(cached) = n("cachedContentTokenCount") {
        usage.cache_read_tokens = Some(cached);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::restore::RestoreMap;
    use crate::shape::ApiShape;

    #[test]
    fn real_client_paths_are_classified_by_verb_whatever_the_prefix() {
        let cases = [
            (
                "/v1beta/models/gemini-2.5-pro:generateContent",
                ApiShape::GEMINI_GENERATE,
            ),
            (
                "/v1beta/models/gemini-3.8-flash:streamGenerateContent",
                ApiShape::GEMINI_GENERATE,
            ),
            ("/v1/models/gemini-2.5-flash:generateContent", ApiShape::GEMINI_GENERATE),
            (
                "/v1beta/tunedModels/my-tune-42:generateContent",
                ApiShape::GEMINI_GENERATE,
            ),
            ("/gemini/v1beta/models/x:GENERATECONTENT", ApiShape::GEMINI_GENERATE),
            (
                "/v1beta/models/gemini-2.5-pro%3AgenerateContent",
                ApiShape::GEMINI_GENERATE,
            ),
            (
                "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
                ApiShape::GEMINI_GENERATE,
            ),
            (
                "/v1beta/models/gemini-2.5-pro:countTokens",
                ApiShape::GEMINI_COUNT_TOKENS,
            ),
            ("/v1beta/models/text-embedding-004:embedContent", ApiShape::GEMINI_EMBED),
            (
                "/v1beta/models/gemini-embedding-001:batchEmbedContents",
                ApiShape::GEMINI_EMBED,
            ),
            ("/v1beta/models/gemini-2.5-pro", ApiShape::OTHER),
            ("/v1beta/models", ApiShape::OTHER),
            ("/v1beta/models/:generateContent", ApiShape::OTHER),
            ("/v1beta/models/gemini-2.5-pro:predict", ApiShape::OTHER),
            ("/v1beta/files/abc:generateContent", ApiShape::OTHER),
            ("/v1beta/cachedContents", ApiShape::OTHER),
        ];
        for (path, want) in cases {
            assert_eq!(ApiShape::classify("POST", path), want, "{path}");
        }
        assert_eq!(
            ApiShape::classify("GET", "/v1beta/models/gemini-2.5-pro:generateContent"),
            ApiShape::OTHER
        );
    }

    #[test]
    fn the_model_is_read_from_the_path_in_its_own_case() {
        let g = ApiShape::GEMINI_GENERATE;
        let cases = [
            (
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                Some("gemini-2.5-pro"),
            ),
            ("/v1beta/tunedModels/My-Tune:generateContent", Some("My-Tune")),
            (
                "/v1beta/models/gemini-2.5-pro%3AgenerateContent",
                Some("gemini-2.5-pro"),
            ),
            ("/v1beta/models/gemini-2.5-pro:generateContent/", Some("gemini-2.5-pro")),
            ("/v1beta/models/gemini%2E5:generateContent", Some("gemini.5")),
            ("/v1beta/models/:generateContent", None),
            ("/v1beta/models/gemini-2.5-pro", None),
            ("/v1beta/models/gemini-2.5-pro:", None),
            ("/v1beta/other/gemini-2.5-pro:generateContent", None),
        ];
        for (path, want) in cases {
            assert_eq!(g.model_in_path(path).as_deref(), want, "{path}");
        }
        assert_eq!(
            ApiShape::GEMINI_EMBED.model_in_path("/v1beta/models/text-embedding-004:embedContent"),
            Some("text-embedding-004".into())
        );
        assert_eq!(
            ApiShape::OPENAI_CHAT.model_in_path("/v1/models/x:generateContent"),
            None
        );
    }

    #[test]
    fn errors_come_in_googles_envelope_with_the_canonical_status() {
        let cases = [
            (400, "INVALID_ARGUMENT"),
            (413, "INVALID_ARGUMENT"),
            (422, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (429, "RESOURCE_EXHAUSTED"),
            (499, "CANCELLED"),
            (500, "INTERNAL"),
            (501, "NOT_IMPLEMENTED"),
            (502, "UNKNOWN"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
        ];
        for (status, want) in cases {
            let body = errors::error_body(ApiShape::GEMINI_GENERATE, status, "ignored", "m");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"error": {"code": status, "message": "m", "status": want}}),
                "{status}"
            );
            assert_eq!(ErrorFamily::Google.error_type(status), want);
        }
        let with_code = errors::error_body_with_code(ApiShape::GEMINI_GENERATE, 422, "t", Some("secret_detected"), "m");
        let v: Value = serde_json::from_slice(&with_code).unwrap();
        assert_eq!(v["error"]["details"][0]["reason"], "SECRET_DETECTED");
        assert_eq!(
            v["error"]["details"][0]["@type"],
            "type.googleapis.com/google.rpc.ErrorInfo"
        );
        assert_eq!(
            String::from_utf8(ApiShape::GEMINI_GENERATE.sse_error_event("m").to_vec()).unwrap(),
            "\n\ndata: {\"error\":{\"code\":500,\"message\":\"m\",\"status\":\"INTERNAL\"}}\n\n"
        );
    }

    /// `(location, mode)` of every value a walk of `body` yields, in order
    /// (object keys, also checked for secrets, left out).
    fn places(shape: ApiShape, body: &str) -> Vec<(String, Mode)> {
        let root = json::parse(body).unwrap();
        let mut w = Walk::new(body);
        shape.walk(&mut w, &root);
        w.places
            .iter()
            .map(|p| (w.location(p.path), p.lit.raw, p.mode))
            .filter(|(l, raw, _)| !l.ends_with(&format!(".{raw}")) && l != raw)
            .map(|(l, _, m)| (l, m))
            .collect()
    }

    #[test]
    fn prompt_parts_are_text_thoughts_protected_and_signatures_and_inline_bytes_untouched() {
        let body = r#"{
          "contents": [
            {"role": "user", "parts": [
              {"text": "hello there"},
              {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg"}},
              {"fileData": {"mimeType": "application/pdf", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}}
            ]},
            {"role": "model", "parts": [
              {"text": "weighing options", "thought": true},
              {"text": "not a thought", "thought": false},
              {"function_call": {"name": "run", "args": {"cmd": "ls -la", "opts": ["all files"]}}, "thought_signature": "CiQBjz1rX3u4Yk8x"},
              {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
              {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}}
            ]},
            {"role": "user", "parts": {"functionResponse": {"name": "run", "response": {"output": "a.txt b.txt"}}}}
          ],
          "generationConfig": {"responseMimeType": "application/json"},
          "system_instruction": {"parts": [{"text": "Be terse."}]},
          "tools": [{"functionDeclarations": [{"name": "run", "description": "Runs a command line"}]}]
        }"#;
        let want = [
            ("system_instruction.parts[0].text", Mode::Text),
            ("tools[0].functionDeclarations[0].description", Mode::SecretsOnly),
            ("generationConfig.responseMimeType", Mode::SecretsOnly),
            ("contents[0].parts[0].text", Mode::Text),
            ("contents[0].parts[1].inline_data.mime_type", Mode::SecretsOnly),
            ("contents[0].parts[2].fileData.mimeType", Mode::SecretsOnly),
            ("contents[0].parts[2].fileData.fileUri", Mode::SecretsOnly),
            ("contents[1].parts[0].text", Mode::Protected),
            ("contents[1].parts[1].text", Mode::Text),
            ("contents[1].parts[2].function_call.args.cmd", Mode::Text),
            ("contents[1].parts[2].function_call.args.opts[0]", Mode::Text),
            ("contents[1].parts[3].executableCode.code", Mode::Text),
            ("contents[1].parts[4].codeExecutionResult.outcome", Mode::SecretsOnly),
            ("contents[1].parts[4].codeExecutionResult.output", Mode::Text),
            ("contents[2].parts.functionResponse.response.output", Mode::Text),
        ];
        let want: Vec<(String, Mode)> = want.iter().map(|(l, m)| (l.to_string(), *m)).collect();
        assert_eq!(places(ApiShape::GEMINI_GENERATE, body), want);
    }

    #[test]
    fn count_tokens_and_embedding_bodies_walk_their_nested_requests() {
        let count = r#"{"generateContentRequest": {"model": "models/x", "contents": [{"parts": [{"text": "count me"}]}], "systemInstruction": {"parts": [{"text": "system text"}]}}}"#;
        assert_eq!(
            places(ApiShape::GEMINI_COUNT_TOKENS, count)
                .into_iter()
                .filter(|(_, m)| *m == Mode::Text)
                .map(|(l, _)| l)
                .collect::<Vec<_>>(),
            [
                "generateContentRequest.systemInstruction.parts[0].text",
                "generateContentRequest.contents[0].parts[0].text"
            ]
        );
        let plain = r#"{"contents": [{"parts": [{"text": "count me"}]}]}"#;
        assert_eq!(
            places(ApiShape::GEMINI_COUNT_TOKENS, plain),
            [("contents[0].parts[0].text".to_string(), Mode::Text)]
        );
        let batch = r#"{"requests": [{"model": "models/e", "content": {"parts": [{"text": "embed me"}]}, "title": "a title"}]}"#;
        assert_eq!(
            places(ApiShape::GEMINI_EMBED, batch)
                .into_iter()
                .filter(|(_, m)| *m == Mode::Text)
                .map(|(l, _)| l)
                .collect::<Vec<_>>(),
            ["requests[0].title", "requests[0].content.parts[0].text"]
        );
    }

    fn events() -> EventRestorer {
        let map = RestoreMap::new(
            [
                ("[[EMAIL_001]]".to_string(), "ann@example.com".to_string()),
                ("[[EMAIL_002]]".to_string(), "bob@example.com".to_string()),
            ]
            .into_iter(),
        );
        EventRestorer::new(Arc::new(map))
    }

    fn chunk(parts: &str, extra: &str) -> String {
        format!(
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[{parts}]}},"index":0{extra}}}],"modelVersion":"gemini-x"}}"#
        )
    }

    /// What the client reads: events before, then the event itself.
    fn run(events: &mut EventRestorer, data: &str) -> Vec<String> {
        let r = ApiShape::GEMINI_GENERATE.restore_event(events, None, data);
        let mut out: Vec<String> = r.before.into_iter().map(|s| s.data).collect();
        out.push(r.replaced.unwrap_or_else(|| data.to_string()));
        out
    }

    #[test]
    fn text_held_back_before_a_function_call_is_flushed_alone_first() {
        let mut ev = events();
        let first = run(&mut ev, &chunk(r#"{"text":"mail [[EMA"}"#, ""));
        assert_eq!(first, [chunk(r#"{"text":"mail "}"#, "")]);
        let call = chunk(
            r#"{"functionCall":{"name":"send","args":{"to":"[[EMAIL_002]]","n":[1,"[[EMAIL_001]]"]}},"thoughtSignature":"c2ln"}"#,
            "",
        );
        let out = run(&mut ev, &call);
        assert_eq!(out.len(), 2, "{out:?}");
        // The held text goes out alone (the function call is not repeated)
        // and is not restored: it never became a whole placeholder.
        assert_eq!(
            out[0],
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"[[EMA"}]},"index":0}]}"#
        );
        assert_eq!(
            out[1],
            chunk(
                r#"{"functionCall":{"name":"send","args":{"to":"bob@example.com","n":[1,"ann@example.com"]}},"thoughtSignature":"c2ln"}"#,
                ""
            )
        );
    }

    #[test]
    fn thoughts_are_left_as_the_model_wrote_them_and_text_finishes_with_the_candidate() {
        let mut ev = events();
        let data = chunk(
            r#"{"text":"thinking of [[EMAIL_001]]","thought":true},{"text":"to [[EMAIL_001]] [[EM"}"#,
            r#","finishReason":"STOP""#,
        );
        let out = run(&mut ev, &data);
        assert_eq!(
            out,
            [chunk(
                r#"{"text":"thinking of [[EMAIL_001]]","thought":true},{"text":"to ann@example.com [[EM"}"#,
                r#","finishReason":"STOP""#
            )]
        );
        assert!(ev.finish().is_empty(), "nothing held after the candidate finished");
    }

    #[test]
    fn a_finish_without_text_flushes_only_that_candidates_stream() {
        let mut ev = events();
        let two = r#"{"candidates":[{"content":{"parts":[{"text":"a [[EMAIL_0"}]},"index":0},{"content":{"parts":[{"text":"b [[EMAIL_0"}]},"index":1}]}"#;
        run(&mut ev, two);
        let done = r#"{"candidates":[{"content":{"parts":[]},"finishReason":"STOP","index":1}],"usageMetadata":{"promptTokenCount":3}}"#;
        let out = run(&mut ev, done);
        assert_eq!(
            out,
            [
                r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"[[EMAIL_0"}]},"index":1}]}"#.to_string(),
                done.to_string()
            ]
        );
        let rest: Vec<String> = ev.finish().into_iter().map(|s| s.data).collect();
        assert_eq!(
            rest,
            [r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"[[EMAIL_0"}]},"index":0}]}"#]
        );
    }

    #[test]
    fn usage_is_read_from_usage_metadata_and_the_model_from_model_version() {
        let mut usage = Usage::default();
        let event: Value = serde_json::from_str(
            r#"{"candidates":[],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":7,"thoughtsTokenCount":5,"cachedContentTokenCount":64,"toolUsePromptTokenCount":2,"totalTokenCount":114},"modelVersion":"gemini-2.5-pro-002"}"#,
        )
        .unwrap();
        ApiShape::GEMINI_GENERATE.observe_event(&mut usage, None, &event);
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens),
            (Some(102), Some(12), Some(64))
        );
        assert_eq!(usage.model.as_deref(), Some("gemini-2.5-pro-002"));
        let error: Value =
            serde_json::from_str(r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#).unwrap();
        ApiShape::GEMINI_GENERATE.observe_event(&mut usage, None, &error);
        assert_eq!(usage.stream_error.as_deref(), Some("RESOURCE_EXHAUSTED: quota"));
    }

    #[test]
    fn a_json_array_stream_counts_its_last_usage_and_notes_an_error_in_it() {
        let body: Value = serde_json::from_str(
            r#"[{"candidates":[],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1}},
                {"candidates":[],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":9},"modelVersion":"gemini-y"}]"#,
        )
        .unwrap();
        let mut usage = Usage::default();
        ApiShape::GEMINI_GENERATE.observe_json(&mut usage, &body);
        assert_eq!((usage.input_tokens, usage.output_tokens), (Some(10), Some(9)));
        assert_eq!(usage.model.as_deref(), Some("gemini-y"));
        assert!(usage.stream_error.is_none());
        let broken: Value =
            serde_json::from_str(r#"[{"candidates":[]},{"error":{"code":500,"message":"x"}}]"#).unwrap();
        ApiShape::GEMINI_GENERATE.observe_json(&mut usage, &broken);
        assert_eq!(usage.stream_error.as_deref(), Some("error: x"));

        let mut counted = Usage::default();
        let count: Value = serde_json::from_str(r#"{"totalTokens":31,"cachedContentTokenCount":0}"#).unwrap();
        ApiShape::GEMINI_COUNT_TOKENS.observe_json(&mut counted, &count);
        assert_eq!(counted.input_tokens, Some(31));
    }
}
