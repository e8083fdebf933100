//! Google Gemini (Generative Language API), as Gemini CLI and opencode's
//! google provider call it: `POST /{v1beta|v1}/models/{model}:generateContent`
//! (JSON), `:streamGenerateContent` (SSE with `alt=sse`, else a streamed JSON
//! array), `:countTokens`, `:embedContent` and `:batchEmbedContents`.
//!
//! The answer follows the other shapes: `You said: <text>` for the last user
//! text, a `functionCall` for `TOOLTEST`/`ECHOARGS`, `Tool said: <output>`
//! after a `functionResponse`. A request for `application/json` output (Gemini
//! CLI's model router) gets a minimal object fitting its response schema.

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::embeddings::embed;
use crate::record::ReplyUsage;
use crate::reply::{error_reply, injected_message, next_id, Flavor, Reply};
use crate::scenario::{self, echo, tool_said, Scenario};
use crate::Incoming;

/// Path prefixes of model methods (`/v1beta/models/{model}:{method}`).
const MODEL_PREFIXES: [&str; 3] = ["/v1beta/models/", "/v1/models/", "/v1alpha/models/"];

/// `(model, method)` when `path` names a model method.
pub fn model_method(path: &str) -> Option<(&str, &str)> {
    let rest = MODEL_PREFIXES.iter().find_map(|p| path.strip_prefix(p))?;
    rest.rsplit_once(':')
}

/// Whether an unserved path belongs to the Google API (errors in its format).
pub fn is_google_path(path: &str) -> bool {
    path.starts_with("/v1beta/") || path.starts_with("/v1alpha/") || model_method(path).is_some()
}

/// Answers a model method (see [`model_method`]).
pub fn route(method: &str, path: &str, inc: &Incoming) -> Reply {
    let Some((model, call)) = model_method(path) else {
        return not_served(method, path, inc);
    };
    match (method, call) {
        ("POST", "generateContent") => generate(inc, model, None),
        ("POST", "streamGenerateContent") => {
            let framing = if query_param(inc.query, "alt") == Some("sse") {
                Framing::Sse
            } else {
                Framing::JsonArray
            };
            generate(inc, model, Some(framing))
        }
        ("POST", "countTokens") => count_tokens(inc),
        ("POST", "embedContent") => embed_content(inc, false),
        ("POST", "batchEmbedContents") => embed_content(inc, true),
        _ => not_served(method, path, inc),
    }
}

fn not_served(method: &str, path: &str, inc: &Incoming) -> Reply {
    error_reply(
        Flavor::Google,
        inc.opts.unknown_status,
        &format!("{method} {path} is not served by the fake provider."),
    )
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// The API key: the `x-goog-api-key` header (or another key header), else `?key=`.
fn api_key(inc: &Incoming) -> String {
    let key = scenario::api_key(inc.headers);
    if key.is_empty() {
        query_param(inc.query, "key").unwrap_or("").to_string()
    } else {
        key
    }
}

/// The injected status as a Google error, with `retry-after` from a
/// `FAKERETRY<n>` in a `?key=` (the server handles header keys).
fn injected(status: u16, key: &str) -> Reply {
    let mut reply = error_reply(Flavor::Google, status, &injected_message(status));
    if let Some(secs) = scenario::retry_in_key(key) {
        for (name, value) in reply.headers.iter_mut() {
            if name.eq_ignore_ascii_case("retry-after") {
                *value = secs.to_string();
            }
        }
    }
    reply
}

/// What the conversation asks of the model.
#[derive(Debug, Default)]
pub struct Turn {
    /// The last user text part that is not Gemini CLI's `<session_context>`.
    pub user_text: String,
    /// Set when the conversation ends with `functionResponse` parts.
    pub tool_result: Option<String>,
}

pub fn turn(body: &Value) -> Turn {
    let contents = body["contents"].as_array().map(Vec::as_slice).unwrap_or_default();
    // A content without a role is the user's (single-turn requests).
    let from_user = |c: &&Value| c["role"] != "model";
    let user_text = contents
        .iter()
        .rev()
        .filter(from_user)
        .find_map(|c| prompt_text(&c["parts"]))
        .unwrap_or_default();
    let tool_result = contents.last().filter(from_user).and_then(|c| {
        c["parts"]
            .as_array()?
            .iter()
            .find_map(|p| p.get("functionResponse"))
            .map(|f| response_text(&f["response"]))
    });
    Turn { user_text, tool_result }
}

/// The prompt among a content's parts: of its text parts (thoughts aside),
/// the last that is not session context.
fn prompt_text(parts: &Value) -> Option<String> {
    let texts: Vec<&str> = parts
        .as_array()?
        .iter()
        .filter(|p| p["thought"] != true)
        .filter_map(|p| p["text"].as_str())
        .collect();
    texts
        .iter()
        .rev()
        .find(|t| !t.trim_start().starts_with("<session_context>"))
        .or(texts.last())
        .map(|t| t.to_string())
}

/// The output a `functionResponse.response` carries: Gemini CLI sends
/// `{"output": ..}` (or `{"error": ..}`), opencode `{"name", "content"}`.
fn response_text(response: &Value) -> String {
    for key in ["output", "content", "result", "error"] {
        match &response[key] {
            Value::String(s) => return s.clone(),
            Value::Array(parts) if parts.iter().any(|p| p["text"].is_string()) => {
                return parts.iter().filter_map(|p| p["text"].as_str()).collect();
            }
            _ => {}
        }
    }
    response.to_string()
}

/// A minimal value fitting `schema` (JSON Schema or Gemini's OpenAPI subset,
/// types in either case): strings "fake", numbers 1, booleans false, arrays
/// empty, objects with every property.
pub fn schema_example(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = schema[key].as_array().and_then(|a| a.first()) {
            return schema_example(first);
        }
    }
    let ty = match &schema["type"] {
        Value::String(t) => t.to_ascii_lowercase(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .unwrap_or("null")
            .to_ascii_lowercase(),
        _ if schema["properties"].is_object() => "object".into(),
        _ => "string".into(),
    };
    match ty.as_str() {
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        "array" => json!([]),
        "null" => Value::Null,
        "object" => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), schema_example(v)))
                .collect(),
        ),
        _ => json!("fake"),
    }
}

/// Fits the shared tool arguments to a declaration's schema, so the client's
/// validation passes: only declared properties, and every required one
/// (`description` a phrase, paths and directories ".", other strings the text).
pub fn fit_arguments(args: Value, schema: &Value, text: &str) -> Value {
    let Some(props) = schema["properties"].as_object().filter(|p| !p.is_empty()) else {
        return args;
    };
    let mut out: Map<String, Value> = args
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| props.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for name in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if out.contains_key(name) {
            continue;
        }
        let value = match schema_example(&props[name]) {
            Value::String(_) if name == "description" => json!("Print the text"),
            Value::String(_) if name.contains("path") || name.contains("dir") => json!("."),
            Value::String(_) => json!(text),
            other => other,
        };
        out.insert(name.to_string(), value);
    }
    Value::Object(out)
}

/// The `functionCall` the fake makes: a declared tool (see
/// [`scenario::pick_tool`]) with arguments fitting its schema.
fn function_call(body: &Value, sc: &Scenario, user_text: &str) -> (String, Value) {
    let text = if sc.echo_args { user_text } else { "hello-from-tool" };
    let tools: Vec<(&str, &Value)> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["functionDeclarations"].as_array().into_iter().flatten())
        .filter_map(|d| {
            let schema = d
                .get("parametersJsonSchema")
                .or_else(|| d.get("parameters"))
                .unwrap_or(&Value::Null);
            Some((d["name"].as_str()?, schema))
        })
        .collect();
    match scenario::pick_tool(&tools) {
        Some((name, schema)) => {
            let args = scenario::tool_arguments(name, schema, text);
            (name.to_string(), fit_arguments(args, schema, text))
        }
        None => (
            "echo_text".to_string(),
            json!({"text": text, "command": format!("echo {}", scenario::shell_quote(text))}),
        ),
    }
}

/// A `thoughtSignature` (base64, as the real ones) over the call.
fn thought_signature(name: &str, args: &Value) -> String {
    let sig = scenario::thinking_signature(&format!("{name}{args}"));
    base64::engine::general_purpose::STANDARD.encode(format!("fake-thought:{sig}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `data: {json}\r\n\r\n` per chunk (`alt=sse`).
    Sse,
    /// One JSON array, its elements written as they come.
    JsonArray,
}

enum Answer {
    Text(Vec<String>),
    Call { name: String, args: Value },
}

fn usage_json(prompt: u64, candidates: u64, full: bool) -> Value {
    let mut u = json!({
        "promptTokenCount": prompt, "candidatesTokenCount": candidates, "totalTokenCount": prompt + candidates,
    });
    if full {
        u["promptTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": prompt}]);
    }
    u
}

fn generate(inc: &Incoming, model: &str, stream: Option<Framing>) -> Reply {
    let Some(body) = inc.json else {
        return error_reply(
            Flavor::Google,
            400,
            "Invalid JSON payload received. Send a GenerateContentRequest object.",
        );
    };
    if body["contents"].as_array().is_none_or(Vec::is_empty) {
        return error_reply(
            Flavor::Google,
            400,
            "* GenerateContentRequest.contents: contents is not specified\n",
        );
    }
    let t = turn(body);
    let key = api_key(inc);
    let sc = Scenario::from_key(inc.headers, &key, &t.user_text);
    if let Some(status) = sc.status {
        return injected(status, &key);
    }
    let config = &body["generationConfig"];
    let json_out = config["responseMimeType"] == "application/json";
    let answer = if json_out {
        let schema = config
            .get("responseJsonSchema")
            .or_else(|| config.get("responseSchema"))
            .unwrap_or(&Value::Null);
        let value = if schema.is_null() {
            json!({})
        } else {
            schema_example(schema)
        };
        // No filler deltas: they would break the JSON.
        let chunker = Scenario {
            events: None,
            ..sc.clone()
        };
        Answer::Text(chunker.text_chunks(&value.to_string()))
    } else if let Some(result) = &t.tool_result {
        Answer::Text(sc.text_chunks(&tool_said(result)))
    } else if sc.wants_tool() {
        let (name, args) = function_call(body, &sc, &t.user_text);
        Answer::Call { name, args }
    } else {
        Answer::Text(sc.text_chunks(&echo(&t.user_text)))
    };
    let usage = ReplyUsage {
        input_tokens: scenario::input_tokens(inc.body.len()),
        output_tokens: match &answer {
            Answer::Text(chunks) => chunks.len() as u64,
            Answer::Call { .. } => 3,
        },
        ..Default::default()
    };
    let response_id = next_id("resp");
    let chunk = |parts: Value, candidates: u64, last: bool| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if last {
            candidate["finishReason"] = json!("STOP");
        }
        json!({
            "candidates": [candidate], "usageMetadata": usage_json(usage.input_tokens, candidates, last),
            "modelVersion": model, "responseId": response_id,
        })
    };
    let call_part = |name: &String, args: &Value| json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": thought_signature(name, args)});

    let Some(framing) = stream else {
        let parts = match &answer {
            Answer::Text(chunks) => json!([{"text": chunks.concat()}]),
            Answer::Call { name, args } => json!([call_part(name, args)]),
        };
        return Reply::json_padded(200, chunk(parts, usage.output_tokens, true), sc.pad_bytes).with_usage(usage);
    };

    let mut objects = Vec::new();
    match &answer {
        Answer::Text(chunks) => {
            for (i, text) in chunks.iter().enumerate() {
                if sc.midstream_error && i == 2 {
                    objects.push(json!({"error": {"code": 500, "message": "An internal error has occurred (injected mid-stream by the fake provider).", "status": "INTERNAL"}}));
                    break;
                }
                let last = i + 1 == chunks.len();
                objects.push(chunk(json!([{ "text": text }]), i as u64 + 1, last));
            }
        }
        Answer::Call { name, args } => objects.push(chunk(json!([call_part(name, args)]), usage.output_tokens, true)),
    }
    if sc.pad_bytes > 0 {
        // Clients skip unknown members; an SSE comment would stall the genai SDK's parser.
        objects[0]["x_fake_padding"] = json!("x".repeat(sc.pad_bytes));
    }
    let delay = inc.pacing(&sc);
    let reply = match framing {
        Framing::Sse => {
            let pieces = objects
                .iter()
                .map(|o| Bytes::from(format!("data: {o}\r\n\r\n")))
                .collect();
            Reply::stream(pieces, delay, "text/event-stream").header("cache-control", "no-cache")
        }
        Framing::JsonArray => {
            let mut pieces = vec![Bytes::from_static(b"[")];
            for (i, o) in objects.iter().enumerate() {
                let sep = if i == 0 { "" } else { ",\r\n" };
                pieces.push(Bytes::from(format!("{sep}{o}")));
            }
            pieces.push(Bytes::from_static(b"]"));
            Reply::stream(pieces, delay, "application/json; charset=UTF-8")
        }
    };
    reply.with_usage(usage)
}

fn count_tokens(inc: &Incoming) -> Reply {
    if inc.json.is_none() {
        return error_reply(
            Flavor::Google,
            400,
            "Invalid JSON payload received. Send a CountTokensRequest object.",
        );
    }
    let key = api_key(inc);
    let sc = Scenario::from_key(inc.headers, &key, "");
    if let Some(status) = sc.status {
        return injected(status, &key);
    }
    let n = scenario::input_tokens(inc.body.len());
    Reply::json(
        200,
        &json!({"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}),
    )
}

/// Text of an embed request's `content.parts`.
fn content_text(content: &Value) -> String {
    content["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn embed_content(inc: &Incoming, batch: bool) -> Reply {
    let Some(body) = inc.json else {
        return error_reply(
            Flavor::Google,
            400,
            "Invalid JSON payload received. Send an EmbedContentRequest object.",
        );
    };
    let texts: Vec<String> = if batch {
        match body["requests"].as_array() {
            Some(reqs) => reqs.iter().map(|r| content_text(&r["content"])).collect(),
            None => {
                return error_reply(
                    Flavor::Google,
                    400,
                    "* BatchEmbedContentsRequest.requests: requests is not specified\n",
                )
            }
        }
    } else {
        if !body["content"].is_object() {
            return error_reply(
                Flavor::Google,
                400,
                "* EmbedContentRequest.content: content is not specified\n",
            );
        }
        vec![content_text(&body["content"])]
    };
    let key = api_key(inc);
    let sc = Scenario::from_key(inc.headers, &key, &texts.join(" "));
    if let Some(status) = sc.status {
        return injected(status, &key);
    }
    let vectors: Vec<Value> = texts.iter().map(|t| json!({"values": embed(t)})).collect();
    let value = if batch {
        json!({ "embeddings": vectors })
    } else {
        json!({"embedding": vectors[0]})
    };
    let usage = ReplyUsage {
        input_tokens: scenario::input_tokens(inc.body.len()),
        ..Default::default()
    };
    Reply::json_padded(200, value, sc.pad_bytes).with_usage(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_split_into_model_and_method() {
        assert_eq!(
            model_method("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some(("gemini-2.5-flash", "streamGenerateContent"))
        );
        assert_eq!(model_method("/v1/models/m:countTokens"), Some(("m", "countTokens")));
        assert_eq!(model_method("/v1/models"), None);
        assert!(is_google_path("/v1beta/files"));
        assert!(!is_google_path("/v1/chat/completions"));
    }

    #[test]
    fn the_prompt_is_the_last_user_text_after_the_session_context() {
        let body = json!({"contents": [
            {"role": "user", "parts": [{"text": "<session_context>tree</session_context>"}, {"text": "say hi"}]},
        ]});
        assert_eq!(turn(&body).user_text, "say hi");
        let router = json!({"contents": [
            {"role": "user", "parts": [{"text": "<session_context>tree</session_context>"}]},
            {"role": "user", "parts": [{"text": "route me"}]},
        ]});
        assert_eq!(turn(&router).user_text, "route me");
        let only_context = json!({"contents": [{"parts": [{"text": "<session_context>x</session_context>"}]}]});
        assert_eq!(turn(&only_context).user_text, "<session_context>x</session_context>");
    }

    #[test]
    fn a_function_response_last_is_the_tool_result_of_either_client() {
        let cli = json!({"contents": [
            {"role": "user", "parts": [{"text": "TOOLTEST run echo"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "run_shell_command", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": "hello-from-tool"}}}]},
        ]});
        let t = turn(&cli);
        assert_eq!(t.user_text, "TOOLTEST run echo");
        assert_eq!(t.tool_result.as_deref(), Some("hello-from-tool"));
        let opencode = json!({"contents": [
            {"role": "user", "parts": [{"functionResponse": {"name": "bash", "response": {"name": "bash", "content": "hi\n"}}}]},
        ]});
        assert_eq!(turn(&opencode).tool_result.as_deref(), Some("hi\n"));
    }

    #[test]
    fn schema_examples_fit_the_router_schema() {
        let schema = json!({"type": "OBJECT", "properties": {
            "complexity_reasoning": {"type": "STRING"}, "complexity_score": {"type": "INTEGER"}}, "required": ["complexity_reasoning", "complexity_score"]});
        assert_eq!(
            schema_example(&schema),
            json!({"complexity_reasoning": "fake", "complexity_score": 1})
        );
        let nested = json!({"type": "object", "properties": {"a": {"type": ["boolean", "null"]}, "b": {"type": "array"},
            "c": {"properties": {"d": {"type": "number"}}}, "e": {"enum": ["x", "y"]}}});
        assert_eq!(
            schema_example(&nested),
            json!({"a": false, "b": [], "c": {"d": 1}, "e": "x"})
        );
    }

    #[test]
    fn tool_arguments_are_fitted_to_each_declaration() {
        let shell = json!({"type": "object", "properties": {"command": {"type": "string"}, "description": {"type": "string"},
            "dir_path": {"type": "string"}}, "required": ["command"]});
        let args = scenario::tool_arguments("run_shell_command", &shell, "hi");
        assert_eq!(fit_arguments(args, &shell, "hi"), json!({"command": "echo 'hi'"}));
        let list = json!({"type": "object", "properties": {"dir_path": {"type": "string"}, "ignore": {"type": "array"}}, "required": ["dir_path"]});
        let args = scenario::tool_arguments("list_directory", &list, "hi");
        assert_eq!(fit_arguments(args, &list, "hi"), json!({"dir_path": "."}));
        let bash = json!({"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"},
            "description": {"type": "string"}}, "required": ["command", "description"]});
        let args = scenario::tool_arguments("bash", &bash, "hi");
        assert_eq!(
            fit_arguments(args, &bash, "hi"),
            json!({"command": "echo 'hi'", "description": "Print the text"})
        );
        let free = scenario::tool_arguments("x", &Value::Null, "hi");
        assert_eq!(fit_arguments(free.clone(), &Value::Null, "hi"), free);
    }
}
