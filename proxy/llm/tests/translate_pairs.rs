//! Every shape's golden inputs translated into every other shape.
//!
//! For each ordered pair A → B of the shapes that have a codec (a new shape
//! with a codec joins by itself; it only needs its case directory named in
//! [`case_root`]), each case under `tests/translate/<A's dir>/<case>/`
//! (`request.json`, `response.json`, `stream.sse`, an error body) goes
//! through `translate::{request, response, error}` and, for streams,
//! [`ResponseTranslator`] (SSE bytes in, SSE bytes out). The outputs are
//! compared byte-exact with `tests/translate/pairs/<A>__to__<B>/<case>/`
//! (`request.json`, `response.json` pretty-printed, `stream.sse`,
//! `error.json`, and `notes.txt` when the translation noted losses or was
//! refused). `UPDATE_GOLDEN=1 cargo test -p promptwall-llm --test translate_pairs`
//! regenerates them.
//!
//! Beyond bytes, each output is checked as its client would read it (the
//! wire rules of B: tool calls paired with results, a well-formed event
//! sequence, required fields), and decoded again with B's codec to say the
//! same as A's input: text, tool calls, tool results, images, usage and
//! stop, modulo the losses the codecs document (thinking only goes back to
//! the provider that made it, OpenAI has no `is_error`, Responses no stop
//! sequences nor cache-write counts, Anthropic no reasoning-token count).

#[path = "common/translate_kit.rs"]
mod kit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kit::{args_value, assemble, seen_parts, sse_events, usage_counts, Assembled, Seen};
use promptwall_llm::translate::ir::{self, Part, Role};
use promptwall_llm::translate::{self, Notes, ResponseContext, ResponseTranslator};
use promptwall_llm::{ApiShape, Shapes};
use serde_json::Value;

#[path = "common/golden_files.rs"]
mod golden_files;
use golden_files::update;

const ANTHROPIC: &str = "anthropic.messages";
const CHAT: &str = "openai.chat";
const RESPONSES: &str = "openai.responses";

/// The shapes that can be translated, in the registry's order.
fn shapes() -> Vec<ApiShape> {
    Shapes::builtin().iter().filter(|s| s.codec().is_some()).collect()
}

fn pairs() -> Vec<(ApiShape, ApiShape)> {
    let all = shapes();
    let mut out = Vec::new();
    for &a in &all {
        for &b in &all {
            if a != b {
                out.push((a, b));
            }
        }
    }
    out
}

/// The directory of a shape's own golden cases.
fn case_root(shape: ApiShape) -> PathBuf {
    let dir = match shape.as_str() {
        ANTHROPIC => "anthropic",
        CHAT => "chat",
        RESPONSES => "responses",
        other => panic!("{other} has a codec: name its golden case directory in case_root"),
    };
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate").join(dir)
}

fn cases(shape: ApiShape) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(case_root(shape))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "{} has no golden cases", shape.as_str());
    dirs
}

fn case_name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn pair_dir(a: ApiShape, b: ApiShape, case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/translate/pairs")
        .join(format!("{}__to__{}", a.as_str(), b.as_str()))
        .join(case)
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: "client-model-alias".into(),
        created: 1_767_225_600,
        id_seed: "pair01".into(),
        stream_usage: true,
        freeform_tools: vec![],
    }
}

fn pretty(bytes: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(bytes).expect("the encoder wrote JSON");
    (serde_json::to_string_pretty(&v).unwrap() + "\n").into_bytes()
}

/// A case's error body and status, whichever file names the shape's
/// harness uses.
fn error_input(dir: &Path) -> Option<(u16, Vec<u8>)> {
    let body = ["error.body", "error.json"]
        .iter()
        .find_map(|f| std::fs::read(dir.join(f)).ok())?;
    let status = ["error.status", "status.txt"]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .expect("an error body has its status next to it");
    Some((status.trim().parse().expect("a status number"), body))
}

/// The B stream for an A stream, through the proxy's byte-level translator.
fn translate_stream(a: ApiShape, b: ApiShape, sse: &[u8]) -> Vec<u8> {
    let mut t = ResponseTranslator::new(a, b, 200, "text/event-stream", &ctx()).expect("both shapes have codecs");
    let mut out = t.push(sse);
    out.extend(t.finish());
    out
}

/// The IR events a shape's stream decodes to.
fn decode_stream(shape: ApiShape, sse: &str) -> Vec<ir::StreamEvent> {
    let mut d = shape.codec().unwrap().stream_decoder();
    let mut events = Vec::new();
    for (name, data) in sse_events(sse) {
        d.event(name.as_deref(), &data, &mut events);
    }
    d.end(&mut events);
    events
}

// --------------------------------------------------------------- goldens

/// Writes (or compares) one pair's outputs for one case; returns the
/// number of inputs the case had.
fn run_case(a: ApiShape, b: ApiShape, src: &Path) -> usize {
    let out_dir = pair_dir(a, b, &case_name(src));
    if update() {
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).unwrap();
    }
    let mut produced: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut notes_text = String::new();
    let mut note = |what: &str, notes: &Notes| {
        for n in &notes.0 {
            notes_text.push_str(&format!("{what}: {n}\n"));
        }
    };
    let mut inputs = 0;
    if let Ok(body) = std::fs::read(src.join("request.json")) {
        inputs += 1;
        let mut notes = Notes::default();
        match translate::request(a, b, &body, &mut notes) {
            Ok(out) => {
                produced.insert("request.json", pretty(&out));
            }
            Err(e) => notes.dropped(format!("refused: {e}")),
        }
        note("request", &notes);
    }
    if let Ok(body) = std::fs::read(src.join("response.json")) {
        inputs += 1;
        let mut notes = Notes::default();
        match translate::response(a, b, &body, &ctx(), &mut notes) {
            Ok(out) => {
                produced.insert("response.json", pretty(&out));
            }
            Err(e) => notes.dropped(format!("refused: {e}")),
        }
        note("response", &notes);
    }
    if let Ok(body) = std::fs::read(src.join("stream.sse")) {
        inputs += 1;
        produced.insert("stream.sse", translate_stream(a, b, &body));
    }
    if let Some((status, body)) = error_input(src) {
        inputs += 1;
        produced.insert("error.json", pretty(&translate::error(a, b, status, &body).unwrap()));
    }
    if !notes_text.is_empty() {
        produced.insert("notes.txt", notes_text.into_bytes());
    }

    for (file, bytes) in &produced {
        let path = out_dir.join(file);
        if update() {
            std::fs::write(&path, bytes).unwrap();
            continue;
        }
        let expected =
            std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
        assert!(
            &expected == bytes,
            "{} differs from the golden file.\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(bytes)
        );
    }
    // A golden file the translation no longer produces is stale.
    if let Ok(entries) = std::fs::read_dir(&out_dir) {
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                produced.contains_key(name.as_str()),
                "{} is stale",
                out_dir.join(name).display()
            );
        }
    }
    inputs
}

#[test]
fn every_case_of_every_shape_translates_into_every_other_shape_as_recorded() {
    let mut total = 0;
    for (a, b) in pairs() {
        for src in cases(a) {
            total += run_case(a, b, &src);
        }
    }
    assert!(pairs().len() >= 6, "the three builtin shapes have codecs");
    assert!(total > 0);
}

#[test]
fn no_golden_pair_directory_is_left_over_from_a_case_or_shape_that_is_gone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/pairs");
    let mut expected: Vec<PathBuf> = Vec::new();
    for (a, b) in pairs() {
        for src in cases(a) {
            expected.push(pair_dir(a, b, &case_name(&src)));
        }
    }
    let Ok(pair_dirs) = std::fs::read_dir(&root) else {
        return;
    };
    for pair in pair_dirs {
        for case in std::fs::read_dir(pair.unwrap().path()).unwrap() {
            let path = case.unwrap().path();
            assert!(expected.contains(&path), "{} is stale", path.display());
        }
    }
}

// ------------------------------------------------- what a client would read

/// Problems a real client of `shape` would have with a request body.
fn request_problems(shape: &str, v: &Value) -> Vec<String> {
    let mut p = Vec::new();
    match shape {
        CHAT => chat_request_problems(v, &mut p),
        ANTHROPIC => anthropic_request_problems(v, &mut p),
        RESPONSES => responses_request_problems(v, &mut p),
        _ => {}
    }
    p
}

fn chat_request_problems(v: &Value, p: &mut Vec<String>) {
    let empty = Vec::new();
    let msgs = v["messages"].as_array().unwrap_or(&empty);
    // Ids a tool message may still answer: the calls of the assistant
    // message right before the run of tool messages.
    let mut open: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "tool" && !open.is_empty() {
            p.push(format!("messages[{i}] ({role}) comes before tool results for {open:?}"));
            open.clear();
        }
        match role {
            "assistant" => {
                for c in m["tool_calls"].as_array().unwrap_or(&empty) {
                    let id = c["id"].as_str().unwrap_or("");
                    if id.is_empty() || c["type"] != "function" || c["function"]["name"].as_str().is_none() {
                        p.push(format!("messages[{i}] has a tool call without id, type or name: {c}"));
                    }
                    match c["function"]["arguments"].as_str() {
                        Some(a) if serde_json::from_str::<Value>(a).is_ok() => {}
                        _ => p.push(format!("messages[{i}] has tool call arguments that are not JSON text")),
                    }
                    open.push(id.to_string());
                }
                if m["content"].is_null() && m.get("tool_calls").is_none() {
                    p.push(format!("messages[{i}] is an assistant message with nothing in it"));
                }
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or("");
                match open.iter().position(|o| o == id) {
                    Some(k) => {
                        open.remove(k);
                    }
                    None => p.push(format!("messages[{i}] answers {id:?}, no call of the message before")),
                }
                if !m["content"].is_string() && !m["content"].is_array() {
                    p.push(format!("messages[{i}] is a tool message without content"));
                }
            }
            "user" | "system" | "developer" => {
                if m["content"].is_null() {
                    p.push(format!("messages[{i}] has null content"));
                }
            }
            other => p.push(format!("messages[{i}] has role {other:?}")),
        }
    }
    if !open.is_empty() {
        p.push(format!("tool calls {open:?} are never answered"));
    }
    if v.get("tools").is_none() && (v.get("tool_choice").is_some() || v.get("parallel_tool_calls").is_some()) {
        p.push("tool_choice or parallel_tool_calls without tools".into());
    }
}

fn anthropic_request_problems(v: &Value, p: &mut Vec<String>) {
    if !v["max_tokens"].is_u64() {
        p.push("no max_tokens".into());
    }
    let empty = Vec::new();
    let msgs = v["messages"].as_array().unwrap_or(&empty);
    let id_ok = |id: &str| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let mut calls: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => {
                if s.is_empty() {
                    p.push(format!("messages[{i}] has empty content"));
                }
                Vec::new()
            }
            Value::Array(b) => b.clone(),
            _ => {
                p.push(format!("messages[{i}] has no content"));
                Vec::new()
            }
        };
        if blocks.is_empty() && m["content"].is_array() {
            p.push(format!("messages[{i}] has an empty content array"));
        }
        let results: Vec<&str> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .map(|b| b["tool_use_id"].as_str().unwrap_or(""))
            .collect();
        if m["role"] == "user" {
            for id in &results {
                if !calls.iter().any(|c| c == id) {
                    p.push(format!("messages[{i}] answers {id:?}, no tool_use of the turn before"));
                }
            }
            for c in &calls {
                if !results.contains(&c.as_str()) {
                    p.push(format!("messages[{i}] does not answer tool_use {c:?}"));
                }
            }
            // The API wants the tool results first in the turn.
            let first_other = blocks.iter().position(|b| b["type"] != "tool_result");
            if let Some(k) = first_other {
                if blocks[k..].iter().any(|b| b["type"] == "tool_result") {
                    p.push(format!("messages[{i}] has content before its tool results"));
                }
            }
        } else if !results.is_empty() {
            p.push(format!("messages[{i}] is an assistant turn with tool results"));
        } else if !calls.is_empty() {
            p.push(format!(
                "messages[{i}] follows tool calls {calls:?} without answering them"
            ));
        }
        calls.clear();
        for b in &blocks {
            match b["type"].as_str().unwrap_or("") {
                "text" if b["text"].as_str().is_none_or(str::is_empty) => {
                    p.push(format!("messages[{i}] has an empty text block"))
                }
                "tool_use" => {
                    let id = b["id"].as_str().unwrap_or("");
                    if !id_ok(id) || !b["input"].is_object() || b["name"].as_str().is_none() {
                        p.push(format!("messages[{i}] has a bad tool_use block: {b}"));
                    }
                    if m["role"] == "assistant" {
                        calls.push(id.to_string());
                    }
                }
                "tool_result" if !id_ok(b["tool_use_id"].as_str().unwrap_or("")) => {
                    p.push(format!("messages[{i}] has a bad tool_use_id"))
                }
                "thinking" if b["signature"].as_str().is_none_or(str::is_empty) => {
                    p.push(format!("messages[{i}] has unsigned thinking"))
                }
                _ => {}
            }
        }
    }
    if !calls.is_empty() {
        p.push(format!("tool calls {calls:?} are never answered"));
    }
}

fn responses_request_problems(v: &Value, p: &mut Vec<String>) {
    let empty = Vec::new();
    let items = v["input"].as_array().unwrap_or(&empty);
    let mut calls: Vec<&str> = Vec::new();
    let mut answered: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item["type"].as_str().unwrap_or("") {
            "message" => {
                let role = item["role"].as_str().unwrap_or("");
                let allowed: &[&str] = match role {
                    "user" | "system" | "developer" => &["input_text", "input_image", "input_file"],
                    "assistant" => &["output_text", "refusal"],
                    _ => {
                        p.push(format!("input[{i}] has role {role:?}"));
                        &[]
                    }
                };
                for c in item["content"].as_array().unwrap_or(&empty) {
                    let ty = c["type"].as_str().unwrap_or("");
                    if !allowed.contains(&ty) {
                        p.push(format!("input[{i}] ({role}) has a {ty} part"));
                    }
                }
            }
            "function_call" => {
                let args = item["arguments"].as_str().unwrap_or("");
                if serde_json::from_str::<Value>(args).is_err() {
                    p.push(format!("input[{i}] has arguments that are not JSON text"));
                }
                calls.push(item["call_id"].as_str().unwrap_or(""));
            }
            "function_call_output" => {
                let id = item["call_id"].as_str().unwrap_or("");
                if !calls.contains(&id) {
                    p.push(format!("input[{i}] answers {id:?}, no earlier function_call"));
                }
                answered.push(id);
            }
            "reasoning" => {
                if !item["id"].as_str().is_some_and(|id| id.starts_with("rs_")) {
                    p.push(format!("input[{i}] is a reasoning item without its rs_ id"));
                }
            }
            other => p.push(format!("input[{i}] has type {other:?}")),
        }
    }
    for c in calls {
        if !answered.contains(&c) {
            p.push(format!("function_call {c:?} is never answered"));
        }
    }
    for t in v["tools"].as_array().unwrap_or(&empty) {
        if t["type"] != "function" || t["name"].as_str().is_none() {
            p.push(format!("a tool without type or name: {t}"));
        }
    }
}

/// Problems a real client of `shape` would have with a whole answer.
fn response_problems(shape: &str, v: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let empty = Vec::new();
    match shape {
        ANTHROPIC => {
            if v["type"] != "message" || v["role"] != "assistant" || !v["id"].is_string() || !v["model"].is_string() {
                p.push("not a message with id, model and role".into());
            }
            for b in v["content"].as_array().unwrap_or(&empty) {
                if b["type"] == "tool_use" && (!b["input"].is_object() || !b["id"].is_string()) {
                    p.push(format!("a bad tool_use block: {b}"));
                }
            }
            for k in ["input_tokens", "output_tokens"] {
                if !v["usage"][k].is_u64() {
                    p.push(format!("usage.{k} is missing"));
                }
            }
        }
        CHAT => {
            if v["object"] != "chat.completion" || !v["created"].is_u64() || !v["id"].is_string() {
                p.push("not a chat.completion with id and created".into());
            }
            let c = &v["choices"][0];
            if c["index"] != 0 || c["message"]["role"] != "assistant" || !c["finish_reason"].is_string() {
                p.push("choices[0] lacks index, role or finish_reason".into());
            }
            for call in c["message"]["tool_calls"].as_array().unwrap_or(&empty) {
                let args = call["function"]["arguments"].as_str().unwrap_or("");
                if call["type"] != "function" || !call["id"].is_string() || serde_json::from_str::<Value>(args).is_err()
                {
                    p.push(format!("a bad tool call: {call}"));
                }
            }
        }
        RESPONSES => {
            if v["object"] != "response" || !v["id"].as_str().is_some_and(|i| i.starts_with("resp_")) {
                p.push("not a response with a resp_ id".into());
            }
            if !v["usage"]["input_tokens"].is_u64() || !v["usage"]["output_tokens"].is_u64() {
                p.push("usage is missing".into());
            }
            for item in v["output"].as_array().unwrap_or(&empty) {
                if !item["id"].is_string() {
                    p.push(format!("an output item without id: {item}"));
                }
            }
        }
        _ => {}
    }
    p
}

/// Problems a real client of `shape` would have with a stream.
fn stream_problems(shape: &str, events: &[(Option<String>, String)]) -> Vec<String> {
    let mut p = Vec::new();
    match shape {
        ANTHROPIC => anthropic_stream_problems(events, &mut p),
        CHAT => chat_stream_problems(events, &mut p),
        RESPONSES => responses_stream_problems(events, &mut p),
        _ => {}
    }
    p
}

fn json(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or(Value::Null)
}

fn anthropic_stream_problems(events: &[(Option<String>, String)], p: &mut Vec<String>) {
    let mut open: Option<(u64, String)> = None;
    let mut partial_json = String::new();
    let mut next = 0;
    let mut ended = false;
    for (i, (name, data)) in events.iter().enumerate() {
        let v = json(data);
        let ty = v["type"].as_str().unwrap_or("");
        if name.as_deref() != Some(ty) {
            p.push(format!("event {i}: name {name:?} and type {ty} differ"));
        }
        if ended {
            p.push(format!("event {i} ({ty}) after the end"));
        }
        if i == 0 && ty != "message_start" && ty != "error" {
            p.push(format!("the stream starts with {ty}"));
        }
        match ty {
            "message_start" => {
                let m = &v["message"];
                if !m["id"].is_string() || !m["model"].is_string() || !m["usage"]["input_tokens"].is_u64() {
                    p.push("message_start lacks id, model or usage.input_tokens".into());
                }
            }
            "content_block_start" => {
                if open.is_some() {
                    p.push(format!("event {i}: a block starts while {open:?} is open"));
                }
                if v["index"] != next {
                    p.push(format!("event {i}: block index {} (expected {next})", v["index"]));
                }
                let b = &v["content_block"];
                let kind = b["type"].as_str().unwrap_or("").to_string();
                if kind == "tool_use" && (b["id"].as_str().is_none_or(str::is_empty) || !b["name"].is_string()) {
                    p.push(format!("event {i}: tool_use without id or name"));
                }
                open = Some((next, kind));
                next += 1;
            }
            "content_block_delta" => {
                let want = match v["delta"]["type"].as_str().unwrap_or("") {
                    "text_delta" => "text",
                    "thinking_delta" | "signature_delta" => "thinking",
                    "input_json_delta" => "tool_use",
                    _ => "?",
                };
                match &open {
                    Some((idx, kind)) if v["index"] == *idx && kind == want => {}
                    _ => p.push(format!("event {i}: a {want} delta outside its block ({open:?})")),
                }
                partial_json.push_str(v["delta"]["partial_json"].as_str().unwrap_or(""));
            }
            "content_block_stop" => match open.take() {
                Some((idx, kind)) if v["index"] == idx => {
                    // The SDKs parse a tool's input when its block stops.
                    let json = std::mem::take(&mut partial_json);
                    if kind == "tool_use" && !json.is_empty() && serde_json::from_str::<Value>(&json).is_err() {
                        p.push(format!("event {i}: a tool_use input that is not JSON: {json}"));
                    }
                }
                o => p.push(format!("event {i}: stop of {} while {o:?} is open", v["index"])),
            },
            "message_delta" => {
                if open.is_some() {
                    p.push(format!("event {i}: message_delta with block {open:?} open"));
                }
                if !v["usage"]["output_tokens"].is_u64() {
                    p.push("message_delta lacks usage.output_tokens".into());
                }
            }
            "message_stop" | "error" => ended = true,
            "ping" => {}
            other => p.push(format!("event {i}: unknown type {other}")),
        }
    }
    if !ended {
        p.push("no message_stop or error at the end".into());
    }
}

fn chat_stream_problems(events: &[(Option<String>, String)], p: &mut Vec<String>) {
    let mut ended = false;
    let mut started_calls: Vec<u64> = Vec::new();
    let mut arguments: BTreeMap<u64, String> = BTreeMap::new();
    let mut finish: Option<String> = None;
    let mut usage_seen = false;
    for (i, (_, data)) in events.iter().enumerate() {
        if ended {
            p.push(format!("event {i} after the end"));
        }
        if data == "[DONE]" {
            ended = true;
            continue;
        }
        let v = json(data);
        if v.get("error").is_some() {
            ended = true;
            continue;
        }
        if v["object"] != "chat.completion.chunk"
            || !v["id"].is_string()
            || !v["created"].is_u64()
            || !v["model"].is_string()
        {
            p.push(format!("event {i}: a chunk without object, id, created or model"));
        }
        let choices = v["choices"].as_array().cloned().unwrap_or_default();
        if choices.is_empty() {
            if v["usage"].is_object() {
                usage_seen = true;
            } else {
                p.push(format!("event {i}: a chunk with no choice and no usage"));
            }
        }
        for c in &choices {
            if !c["index"].is_u64() {
                p.push(format!("event {i}: a choice without index"));
            }
            if i == 0 && c["delta"]["role"] != "assistant" {
                p.push("the first chunk does not name the assistant role".into());
            }
            for call in c["delta"]["tool_calls"].as_array().cloned().unwrap_or_default() {
                let Some(ti) = call["index"].as_u64() else {
                    p.push(format!("event {i}: a tool call fragment without index"));
                    continue;
                };
                if !started_calls.contains(&ti) {
                    if call["id"].as_str().is_none_or(str::is_empty)
                        || call["type"] != "function"
                        || !call["function"]["name"].is_string()
                    {
                        p.push(format!(
                            "event {i}: a tool call's first fragment lacks id, type or name"
                        ));
                    }
                    started_calls.push(ti);
                }
                let a = call["function"]["arguments"].as_str().unwrap_or("");
                arguments.entry(ti).or_default().push_str(a);
            }
            if let Some(f) = c["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    if !ended {
        p.push("no [DONE] or error at the end".into());
    }
    let errored = events.last().is_some_and(|(_, d)| json(d).get("error").is_some());
    if !errored {
        match finish.as_deref() {
            None => p.push("no finish_reason".into()),
            Some("tool_calls") if started_calls.is_empty() => p.push("finish_reason tool_calls without calls".into()),
            _ => {}
        }
        if !usage_seen {
            p.push("no usage chunk though the client asked for one".into());
        }
        for (ti, a) in &arguments {
            if serde_json::from_str::<Value>(a).is_err() {
                p.push(format!("tool call {ti} has arguments that are not JSON: {a}"));
            }
        }
    }
}

fn responses_stream_problems(events: &[(Option<String>, String)], p: &mut Vec<String>) {
    // Items added and not yet done, by output_index: (type, accumulated text).
    let mut items: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut done_items: Vec<Value> = Vec::new();
    let mut ended = false;
    for (i, (name, data)) in events.iter().enumerate() {
        let v = json(data);
        let ty = v["type"].as_str().unwrap_or("");
        if name.as_deref() != Some(ty) {
            p.push(format!("event {i}: name {name:?} and type {ty} differ"));
        }
        if v["sequence_number"] != i {
            p.push(format!("event {i}: sequence_number {}", v["sequence_number"]));
        }
        if ended {
            p.push(format!("event {i} ({ty}) after the end"));
        }
        let first = ["response.created", "response.in_progress"];
        if i < 2 && ty != first[i] && ty != "error" {
            p.push(format!("event {i} is {ty}, expected {}", first[i]));
        }
        let oi = v["output_index"].as_u64().unwrap_or(u64::MAX);
        match ty {
            "response.output_item.added" => {
                if !items.is_empty() {
                    p.push(format!("event {i}: an item is added while {items:?} is open"));
                }
                if oi != done_items.len() as u64 {
                    p.push(format!("event {i}: output_index {oi}, expected {}", done_items.len()));
                }
                let t = v["item"]["type"].as_str().unwrap_or("").to_string();
                items.insert(oi, (t, String::new()));
            }
            "response.output_text.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_summary_text.delta" => match items.get_mut(&oi) {
                Some((_, text)) => text.push_str(v["delta"].as_str().unwrap_or("")),
                None => p.push(format!("event {i}: {ty} of an item not open")),
            },
            "response.output_text.done" | "response.reasoning_summary_text.done"
                if items.get(&oi).map(|(_, t)| t.as_str()) != v["text"].as_str() =>
            {
                p.push(format!("event {i}: {ty} text is not the deltas' sum"));
            }
            "response.function_call_arguments.done" => {
                if items.get(&oi).map(|(_, t)| t.as_str()) != v["arguments"].as_str() {
                    p.push(format!("event {i}: arguments.done is not the deltas' sum"));
                }
                let a = v["arguments"].as_str().unwrap_or("");
                if serde_json::from_str::<Value>(a).is_err() {
                    p.push(format!("event {i}: arguments that are not JSON: {a}"));
                }
            }
            "response.output_item.done" => match items.remove(&oi) {
                Some((t, _)) if v["item"]["type"] == t.as_str() => done_items.push(v["item"].clone()),
                o => p.push(format!("event {i}: output_item.done of {o:?}")),
            },
            "response.completed" | "response.incomplete" | "response.failed" => {
                ended = true;
                let r = &v["response"];
                if !r["id"].is_string() || !r["model"].is_string() {
                    p.push(format!("{ty} lacks id or model"));
                }
                if ty != "response.failed" {
                    if r["output"].as_array() != Some(&done_items) {
                        p.push(format!("{ty}'s output is not the items streamed"));
                    }
                    if !r["usage"]["input_tokens"].is_u64() {
                        p.push(format!("{ty} lacks usage"));
                    }
                }
                // A failed response may leave its item unfinished.
                if !items.is_empty() && ty != "response.failed" {
                    p.push(format!("{ty} with items open: {items:?}"));
                }
            }
            _ => {}
        }
    }
    if !ended {
        p.push("no response.completed, .incomplete or .failed at the end".into());
    }
}

fn error_problems(shape: &str, v: &Value) -> Vec<String> {
    let ok = match shape {
        ANTHROPIC => v["type"] == "error" && v["error"]["type"].is_string() && v["error"]["message"].is_string(),
        _ => v["error"]["message"].is_string() && v["error"]["type"].is_string() && v["error"].get("code").is_some(),
    };
    if ok {
        Vec::new()
    } else {
        vec![format!("not a {shape} error envelope: {v}")]
    }
}

#[test]
fn every_translated_body_and_stream_is_one_the_target_shapes_clients_accept() {
    let mut problems = Vec::new();
    for (a, b) in pairs() {
        for src in cases(a) {
            let at = format!("{} → {} {}", a.as_str(), b.as_str(), case_name(&src));
            if let Ok(body) = std::fs::read(src.join("request.json")) {
                if let Ok(out) = translate::request(a, b, &body, &mut Notes::default()) {
                    let v: Value = serde_json::from_slice(&out).unwrap();
                    problems.extend(
                        request_problems(b.as_str(), &v)
                            .into_iter()
                            .map(|p| format!("{at} request: {p}")),
                    );
                }
            }
            if let Ok(body) = std::fs::read(src.join("response.json")) {
                if let Ok(out) = translate::response(a, b, &body, &ctx(), &mut Notes::default()) {
                    let v: Value = serde_json::from_slice(&out).unwrap();
                    problems.extend(
                        response_problems(b.as_str(), &v)
                            .into_iter()
                            .map(|p| format!("{at} response: {p}")),
                    );
                }
            }
            if let Ok(body) = std::fs::read(src.join("stream.sse")) {
                let out = String::from_utf8(translate_stream(a, b, &body)).unwrap();
                let events = sse_events(&out);
                problems.extend(
                    stream_problems(b.as_str(), &events)
                        .into_iter()
                        .map(|p| format!("{at} stream: {p}")),
                );
            }
            if let Some((status, body)) = error_input(&src) {
                let v: Value = serde_json::from_slice(&translate::error(a, b, status, &body).unwrap()).unwrap();
                problems.extend(
                    error_problems(b.as_str(), &v)
                        .into_iter()
                        .map(|p| format!("{at} error: {p}")),
                );
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ------------------------------------------------------- same meaning

/// What a request says, reduced to what must survive any translation.
#[derive(Debug, PartialEq)]
struct RequestMeaning {
    model: String,
    system: Vec<String>,
    user_texts: Vec<String>,
    assistant_text: String,
    calls: Vec<(String, Value)>,
    /// Per result: the position of the call it answers, its text, its images.
    results: Vec<(Option<usize>, String, Vec<String>)>,
    /// Images of user turns (tool results' ones may move there: Chat).
    images: Vec<String>,
    tools: Vec<(String, Value)>,
    tool_choice: Option<ir::ToolChoice>,
    stream: bool,
}

fn image_key(img: &ir::Image) -> String {
    match img {
        ir::Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ir::Image::Url(u) => u.clone(),
    }
}

fn request_meaning(req: &ir::Request) -> RequestMeaning {
    let mut m = RequestMeaning {
        model: req.model.clone(),
        system: req
            .system
            .iter()
            .map(|t| t.text.clone())
            .filter(|t| !t.is_empty())
            .collect(),
        user_texts: Vec::new(),
        assistant_text: String::new(),
        calls: Vec::new(),
        results: Vec::new(),
        images: Vec::new(),
        tools: req
            .tools
            .iter()
            .map(|t| (t.name.clone(), t.parameters.clone()))
            .collect(),
        tool_choice: if req.tools.is_empty() {
            None
        } else {
            req.tool_choice.clone()
        },
        stream: req.stream,
    };
    let mut call_ids = Vec::new();
    for msg in &req.messages {
        for part in &msg.parts {
            match (msg.role, part) {
                (Role::User, Part::Text(t)) if !t.text.is_empty() => m.user_texts.push(t.text.clone()),
                (Role::Assistant, Part::Text(t)) => m.assistant_text.push_str(&t.text),
                (_, Part::Image(img)) => m.images.push(image_key(img)),
                (_, Part::ToolCall(c)) => {
                    call_ids.push(c.id.clone());
                    m.calls.push((c.name.clone(), args_value(&c.arguments)));
                }
                (_, Part::ToolResult(r)) => {
                    let mut text = String::new();
                    let mut imgs = Vec::new();
                    for p in &r.content {
                        match p {
                            Part::Text(t) => text.push_str(&t.text),
                            Part::Image(img) => imgs.push(image_key(img)),
                            _ => {}
                        }
                    }
                    let answers = call_ids.iter().position(|id| *id == r.call_id);
                    m.results.push((answers, text, imgs));
                }
                _ => {}
            }
        }
    }
    m
}

#[test]
fn a_translated_request_says_what_the_original_said() {
    let mut failures = Vec::new();
    for (a, b) in pairs() {
        for src in cases(a) {
            let Ok(body) = std::fs::read(src.join("request.json")) else {
                continue;
            };
            let Ok(before) = a.codec().unwrap().decode_request(&body, &mut Notes::default()) else {
                continue; // refused, and recorded as such in notes.txt
            };
            let out = translate::request(a, b, &body, &mut Notes::default()).unwrap();
            let after = b
                .codec()
                .unwrap()
                .decode_request(&out, &mut Notes::default())
                .expect("the target decodes its own request");
            let mut want = request_meaning(&before);
            let got = request_meaning(&after);
            if b.as_str() == CHAT {
                // Chat has no image in a tool message: they move to the
                // user message after the tool messages (noted).
                for r in &mut want.results {
                    want.images.append(&mut r.2);
                }
                want.images.sort();
            }
            let mut got_sorted = got;
            if b.as_str() == CHAT {
                got_sorted.images.sort();
            }
            if want != got_sorted {
                failures.push(format!(
                    "{} → {} {}:\n  before {want:?}\n  after  {got_sorted:?}",
                    a.as_str(),
                    b.as_str(),
                    case_name(&src)
                ));
            }
            // Settings that cross every pair.
            if before.max_output_tokens.is_some() && before.max_output_tokens != after.max_output_tokens {
                failures.push(format!(
                    "{} → {} {}: max tokens",
                    a.as_str(),
                    b.as_str(),
                    case_name(&src)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An answer's stop as a client of `target` can tell it apart: OpenAI
/// shapes have no stop-sequence reason, and must name some reason (a cut
/// stream's unknown one is written as tool use or end of turn).
fn stop_seen(stop: &Option<ir::StopReason>, target: &str, parts: &[Part]) -> Option<ir::StopReason> {
    let called = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    match (stop, target) {
        (Some(ir::StopReason::StopSequence), CHAT | RESPONSES) => Some(ir::StopReason::EndTurn),
        (None, CHAT | RESPONSES) if called => Some(ir::StopReason::ToolUse),
        (None, CHAT | RESPONSES) => Some(ir::StopReason::EndTurn),
        (s, _) => s.clone(),
    }
}

/// An error's kind as a client of `target` can tell it apart: Chat's
/// in-stream error has one type for every server-side failure.
fn kind_seen(kind: ir::ErrorKind, target: &str) -> ir::ErrorKind {
    use ir::ErrorKind as K;
    match (kind, target) {
        (K::Overloaded | K::Timeout, CHAT) => K::Server,
        (k, _) => k,
    }
}

/// What of an answer's usage `target` carries: all input (cached or not)
/// and output always; cache reads, cache writes and reasoning where the
/// shape has a field for them.
fn usage_seen(u: &ir::TokenUsage, target: &str) -> Vec<u64> {
    let [input, output, read, write, reasoning] = usage_counts(u);
    let mut v = vec![input + read + write, output, read];
    if target != RESPONSES {
        v.push(write);
    }
    if target != ANTHROPIC {
        v.push(reasoning);
    }
    v
}

/// Which provider's thinking a shape carries (`ir::Thinking::origin`).
fn origin(shape: &str) -> &'static str {
    if shape == ANTHROPIC {
        "anthropic"
    } else {
        "openai"
    }
}

/// The parts of a whole answer a client of `target` sees when it came
/// from `source`: thinking of another provider is dropped (noted) by the
/// Anthropic and Chat encoders; Responses keeps its text as a summary.
fn answer_seen(parts: &[Part], source: &str, target: &str) -> Vec<Seen> {
    let drop_thinking = origin(source) != origin(target) && target != RESPONSES;
    seen_parts(parts)
        .into_iter()
        .filter(|s| !(drop_thinking && matches!(s, Seen::Thinking(_))))
        .collect()
}

/// Chat keeps thinking first, then text, then tool calls.
fn chat_order(seen: Vec<Seen>) -> Vec<Seen> {
    let rank = |s: &Seen| match s {
        Seen::Thinking(_) => 0,
        Seen::Text(_) => 1,
        Seen::Call { .. } => 2,
    };
    let mut v = seen;
    v.sort_by_key(rank);
    seen_parts(&v.into_iter().map(unseen).collect::<Vec<_>>())
}

fn unseen(s: Seen) -> Part {
    match s {
        Seen::Text(t) => Part::Text(ir::Text {
            text: t,
            cache_control: None,
        }),
        Seen::Thinking(t) => Part::Thinking(ir::Thinking {
            text: t,
            ..Default::default()
        }),
        Seen::Call { id, name, arguments } => Part::ToolCall(ir::ToolCall {
            id,
            name,
            arguments: arguments.to_string(),
        }),
    }
}

#[test]
fn a_translated_answer_says_what_the_original_said() {
    let mut failures = Vec::new();
    for (a, b) in pairs() {
        for src in cases(a) {
            let Ok(body) = std::fs::read(src.join("response.json")) else {
                continue;
            };
            let before = a
                .codec()
                .unwrap()
                .decode_response(&body, &mut Notes::default())
                .unwrap();
            let out = translate::response(a, b, &body, &ctx(), &mut Notes::default()).unwrap();
            let after = b.codec().unwrap().decode_response(&out, &mut Notes::default()).unwrap();
            let mut want = answer_seen(&before.parts, a.as_str(), b.as_str());
            if b.as_str() == CHAT {
                want = chat_order(want);
            }
            let got = seen_parts(&after.parts);
            let at = format!("{} → {} {}", a.as_str(), b.as_str(), case_name(&src));
            if want != got {
                failures.push(format!("{at} parts:\n  before {want:?}\n  after  {got:?}"));
            }
            if stop_seen(&before.stop, b.as_str(), &before.parts) != after.stop {
                failures.push(format!("{at} stop: {:?} → {:?}", before.stop, after.stop));
            }
            if usage_seen(&before.usage, b.as_str()) != usage_seen(&after.usage, b.as_str()) {
                failures.push(format!("{at} usage: {:?} → {:?}", before.usage, after.usage));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn assembled(shape: ApiShape, sse: &str) -> Assembled {
    assemble(&decode_stream(shape, sse)).unwrap_or_else(|e| panic!("{} decoder: {e}", shape.as_str()))
}

#[test]
fn a_translated_stream_says_what_the_original_stream_said() {
    let mut failures = Vec::new();
    for (a, b) in pairs() {
        for src in cases(a) {
            let Ok(body) = std::fs::read_to_string(src.join("stream.sse")) else {
                continue;
            };
            let before = assembled(a, &body);
            let out = String::from_utf8(translate_stream(a, b, body.as_bytes())).unwrap();
            let after = assembled(b, &out);
            let at = format!("{} → {} {}", a.as_str(), b.as_str(), case_name(&src));
            // Streams drop another provider's thinking as whole answers do.
            let want = answer_seen(&before.response.parts, a.as_str(), b.as_str());
            let got = seen_parts(&after.response.parts);
            if want != got {
                failures.push(format!("{at} parts:\n  before {want:?}\n  after  {got:?}"));
            }
            match (&before.error, &after.error) {
                (None, None) => {
                    if stop_seen(&before.response.stop, b.as_str(), &before.response.parts) != after.response.stop {
                        failures.push(format!(
                            "{at} stop: {:?} → {:?}",
                            before.response.stop, after.response.stop
                        ));
                    }
                    let (u0, u1) = (&before.response.usage, &after.response.usage);
                    if usage_seen(u0, b.as_str()) != usage_seen(u1, b.as_str()) {
                        failures.push(format!("{at} usage: {u0:?} → {u1:?}"));
                    }
                }
                (Some(e0), Some(e1)) => {
                    if kind_seen(e0.kind, b.as_str()) != e1.kind || e0.message != e1.message {
                        failures.push(format!("{at} error: {e0:?} → {e1:?}"));
                    }
                }
                (e0, e1) => failures.push(format!("{at} error: {e0:?} → {e1:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_translated_error_keeps_its_status_kind_and_message() {
    let mut failures = Vec::new();
    for (a, b) in pairs() {
        for src in cases(a) {
            let Some((status, body)) = error_input(&src) else {
                continue;
            };
            let before = a.codec().unwrap().decode_error(status, &body);
            let out = translate::error(a, b, status, &body).unwrap();
            let after = b.codec().unwrap().decode_error(status, &out);
            // Codes are each family's own (Anthropic has none; OpenAI's
            // encoders name one per kind), and Claude Code needs its
            // "prompt is too long" wording for a context overflow.
            let message = after
                .message
                .strip_prefix("prompt is too long: ")
                .unwrap_or(&after.message);
            if (before.status, before.kind, before.message.as_str()) != (after.status, after.kind, message) {
                failures.push(format!(
                    "{} → {} {}: {before:?} → {after:?}",
                    a.as_str(),
                    b.as_str(),
                    case_name(&src)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
