//! The fake as Google's Gemini API, driven the way Gemini CLI and opencode's
//! google provider call it: JSON and streamed turns (SSE and JSON array),
//! tool rounds, the CLI's model router, faults, countTokens and embeddings.

mod common;

use std::time::{Duration, Instant};

use common::*;
use promptwall_fake_provider::{FakeHandle, FakeOptions, FakeProvider};
use serde_json::{json, Value};

const GOOGLE: &str = "generativelanguage.googleapis.com";
const MODEL: &str = "gemini-2.5-flash";

async fn fake() -> FakeHandle {
    FakeProvider::start(FakeOptions::default()).await.unwrap()
}

fn path(method: &str) -> String {
    format!("/v1beta/models/{MODEL}:{method}")
}

/// A main turn as Gemini CLI sends it: session context, then the prompt.
fn turn_body(prompt: &str) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [
            {"text": "<session_context>\nThis is the Gemini CLI.\n</session_context>"},
            {"text": prompt}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are a non-interactive CLI agent."}]},
        "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64, "thinkingConfig": {"includeThoughts": true}},
    })
}

/// Gemini CLI's tool declarations (`--yolo` adds run_shell_command).
fn cli_tools(shell: bool) -> Value {
    let mut decls = vec![
        json!({"name": "update_topic", "description": "t", "parametersJsonSchema": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}),
        json!({"name": "list_directory", "description": "l", "parametersJsonSchema": {"type": "object", "properties": {
            "dir_path": {"type": "string"}, "ignore": {"type": "array", "items": {"type": "string"}}}, "required": ["dir_path"]}}),
        json!({"name": "read_file", "description": "r", "parametersJsonSchema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}),
    ];
    if shell {
        decls.push(json!({"name": "run_shell_command", "description": "s", "parametersJsonSchema": {"type": "object", "properties": {
            "command": {"type": "string"}, "description": {"type": "string"}, "dir_path": {"type": "string"},
            "is_background": {"type": "boolean"}}, "required": ["command"]}}));
    }
    json!([{ "functionDeclarations": decls }])
}

async fn gemini(fake: &FakeHandle, method_and_query: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("x-goog-api-key", "fake-gemini-key")];
    all.extend_from_slice(headers);
    post_with(fake, GOOGLE, &path(method_and_query), body, &all).await
}

/// The data of each `data: {json}\r\n\r\n` event, checked to be one line
/// (the genai SDK reads an event with `^\s*data: (.*)(\r\n\r\n|\n\n)`).
fn sse_events(a: &Answer) -> Vec<Value> {
    let text = a.text();
    assert!(text.ends_with("\r\n\r\n"), "SSE body must end an event: {text:?}");
    text.split_terminator("\r\n\r\n")
        .map(|ev| {
            let data = ev
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {ev:?}"));
            assert!(
                !data.contains('\n') && !data.contains('\r'),
                "multi-line event {data:?}"
            );
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

fn chunk_text(chunk: &Value) -> String {
    chunk["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_plain_turn_answers_json_echoing_the_prompt_after_the_session_context() {
    let fake = fake().await;
    let a = gemini(&fake, "generateContent", turn_body("say hi"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v = a.json();
    let cand = &v["candidates"][0];
    assert_eq!(cand["content"]["role"], "model");
    assert_eq!(cand["content"]["parts"][0]["text"], "You said: say hi");
    assert_eq!(cand["finishReason"], "STOP");
    assert_eq!(cand["index"], 0);
    assert_eq!(v["modelVersion"], MODEL);
    assert!(v["responseId"].as_str().is_some_and(|s| !s.is_empty()));

    let r = &fake.recorded()[0];
    assert_eq!(r.path, path("generateContent"));
    assert_eq!(r.conn.sni.as_deref(), Some(GOOGLE));
    let usage = r.reply_usage.unwrap();
    let meta = &v["usageMetadata"];
    assert_eq!(meta["promptTokenCount"], usage.input_tokens);
    assert_eq!(meta["candidatesTokenCount"], usage.output_tokens);
    assert_eq!(meta["totalTokenCount"], usage.input_tokens + usage.output_tokens);
}

#[tokio::test]
async fn a_streamed_turn_is_one_line_sse_events_ending_with_stop_and_full_usage() {
    let fake = fake().await;
    let prompt = "mail [[EMAIL_001]] now";
    let a = gemini(
        &fake,
        "streamGenerateContent?alt=sse",
        turn_body(prompt),
        &[("x-fake-chunk-chars", "4")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_events(&a);
    let expected = format!("You said: {prompt}");
    assert_eq!(events.len(), expected.chars().count().div_ceil(4));
    assert!(events.iter().all(|e| chunk_text(e).chars().count() <= 4));
    assert_eq!(events.iter().map(chunk_text).collect::<String>(), expected);
    let (last, rest) = events.split_last().unwrap();
    assert!(rest.iter().all(|e| e["candidates"][0].get("finishReason").is_none()));
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    let counts: Vec<u64> = events
        .iter()
        .map(|e| e["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "cumulative: {counts:?}");
    assert!(events.iter().all(|e| e["modelVersion"] == MODEL));

    let usage = fake.recorded()[0].reply_usage.unwrap();
    let meta = &last["usageMetadata"];
    assert_eq!(meta["promptTokenCount"], usage.input_tokens);
    assert_eq!(meta["candidatesTokenCount"], usage.output_tokens);
    assert_eq!(meta["totalTokenCount"], usage.input_tokens + usage.output_tokens);
    assert!(meta["promptTokensDetails"].is_array());
}

#[tokio::test]
async fn a_stream_without_alt_sse_is_one_json_array_written_in_pieces() {
    let fake = fake().await;
    let a = gemini(&fake, "streamGenerateContent", turn_body("hello there"), &[]).await;
    assert_eq!(a.status, 200);
    let text = a.text();
    assert!(text.starts_with("[{") && text.ends_with("}]"), "{text}");
    assert!(text.contains("},\r\n{"), "elements are separated by ,CRLF: {text}");
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(items.len() > 1);
    assert_eq!(
        items.iter().map(chunk_text).collect::<String>(),
        "You said: hello there"
    );
    assert_eq!(items.last().unwrap()["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn tooltest_calls_the_cli_shell_tool_and_the_function_response_is_answered() {
    let fake = fake().await;
    let mut body = turn_body("TOOLTEST run echo");
    body["tools"] = cli_tools(true);
    let events = sse_events(&gemini(&fake, "streamGenerateContent?alt=sse", body.clone(), &[]).await);
    assert_eq!(events.len(), 1, "a tool call is one chunk");
    let cand = &events[0]["candidates"][0];
    assert_eq!(cand["finishReason"], "STOP");
    let part = &cand["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"], "run_shell_command");
    assert_eq!(
        part["functionCall"]["args"],
        json!({"command": "echo 'hello-from-tool'"})
    );
    let sig = part["thoughtSignature"].as_str().expect("a thoughtSignature");
    use base64::Engine;
    assert!(base64::engine::general_purpose::STANDARD.decode(sig).is_ok());

    // The CLI sends back the call (with its own id and the signature) and the output.
    let contents = body["contents"].as_array_mut().unwrap();
    contents.push(
        json!({"role": "model", "parts": [{"functionCall": {"id": "run_shell_command_1_0", "name": "run_shell_command",
        "args": part["functionCall"]["args"]}, "thoughtSignature": sig}]}),
    );
    contents.push(json!({"role": "user", "parts": [{"functionResponse": {"id": "run_shell_command_1_0", "name": "run_shell_command",
        "response": {"output": "<untrusted_context>\nOutput: hello-from-tool\n</untrusted_context>"}}}]}));
    let events = sse_events(&gemini(&fake, "streamGenerateContent?alt=sse", body, &[]).await);
    assert_eq!(
        events.iter().map(chunk_text).collect::<String>(),
        "Tool said: <untrusted_context>\nOutput: hello-from-tool\n</untrusted_context>"
    );
}

#[tokio::test]
async fn without_a_shell_tool_tooltest_lists_the_current_directory() {
    let fake = fake().await;
    let mut body = turn_body("TOOLTEST list files");
    body["tools"] = cli_tools(false);
    let v = gemini(&fake, "generateContent", body, &[]).await.json();
    let call = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "list_directory");
    assert_eq!(call["args"], json!({"dir_path": "."}));
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test]
async fn echoargs_puts_the_prompt_into_opencodes_bash_call_with_its_required_description() {
    let fake = fake().await;
    let text = "ECHOARGS mail [[EMAIL_001]]";
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "tools": [{"functionDeclarations": [
            {"name": "bash", "description": "b", "parameters": {"type": "object", "properties": {
                "command": {"type": "string"}, "timeout": {"type": "number"}, "description": {"type": "string"}},
                "required": ["command", "description"]}},
            {"name": "read", "description": "r", "parameters": {"type": "object", "properties": {"filePath": {"type": "string"}}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    });
    let v = gemini(&fake, "generateContent", body, &[]).await.json();
    let call = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "bash");
    assert_eq!(call["args"]["command"], format!("echo '{text}'"));
    assert_eq!(call["args"]["description"], "Print the text");

    let follow = json!({"contents": [
        {"role": "user", "parts": [{"text": text}]},
        {"role": "model", "parts": [{"functionCall": call}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "bash", "response": {"name": "bash", "content": "done\n"}}}]}]});
    let v = gemini(&fake, "generateContent", follow, &[]).await.json();
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "Tool said: done\n");
}

#[tokio::test]
async fn the_cli_router_gets_a_json_object_fitting_its_response_schema() {
    let fake = fake().await;
    // The router carries the prompt, so trigger words must not turn it into a tool call.
    let body = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "<session_context>tree</session_context>"}]},
            {"role": "user", "parts": [{"text": "TOOLTEST list files"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are a specialized Task Routing AI."}]},
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {"type": "OBJECT",
            "properties": {"complexity_reasoning": {"type": "STRING"}, "complexity_score": {"type": "INTEGER"}},
            "required": ["complexity_reasoning", "complexity_score"]}},
    });
    let a = post_with(
        &fake,
        GOOGLE,
        "/v1beta/models/gemini-3.5-flash-lite:generateContent",
        body,
        &[("x-goog-api-key", "k"), ("x-fake-events", "9")],
    )
    .await;
    let v = a.json();
    assert_eq!(v["modelVersion"], "gemini-3.5-flash-lite");
    let text = v["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"complexity_reasoning": "fake", "complexity_score": 1})
    );
}

#[tokio::test]
async fn injected_statuses_answer_in_googles_error_envelope() {
    let fake = fake().await;
    let a = gemini(
        &fake,
        "streamGenerateContent?alt=sse",
        turn_body("hi"),
        &[("x-fake-status", "429")],
    )
    .await;
    assert_eq!(a.status, 429);
    let e = &a.json()["error"];
    assert_eq!(e["code"], 429);
    assert_eq!(e["status"], "RESOURCE_EXHAUSTED");
    assert!(e["message"].as_str().unwrap().contains("injected"));
    assert_eq!(a.headers["retry-after"], "1");

    let a = gemini(&fake, "generateContent", turn_body("please FAKESTATUS503"), &[]).await;
    assert_eq!(
        (a.status.as_u16(), a.json()["error"]["status"].clone()),
        (503, json!("UNAVAILABLE"))
    );

    // One failing account of several: the trigger in the key, as a header or as ?key=.
    let a = post_with(
        &fake,
        GOOGLE,
        &path("generateContent"),
        turn_body("hi"),
        &[("x-goog-api-key", "key-FAKESTATUS401")],
    )
    .await;
    assert_eq!(a.json()["error"]["status"], "UNAUTHENTICATED");
    let a = post_with(
        &fake,
        GOOGLE,
        &path("generateContent?key=k-FAKESTATUS429-FAKERETRY7"),
        turn_body("hi"),
        &[],
    )
    .await;
    assert_eq!(a.status, 429);
    assert_eq!(a.headers["retry-after"], "7");
    let a = post_with(&fake, GOOGLE, &path("generateContent?key=ok"), turn_body("hi"), &[]).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn midstreamerror_ends_the_stream_with_an_error_event_after_two_chunks() {
    let fake = fake().await;
    let events = sse_events(
        &gemini(
            &fake,
            "streamGenerateContent?alt=sse",
            turn_body("MIDSTREAMERROR please go on"),
            &[],
        )
        .await,
    );
    assert_eq!(events.len(), 3);
    assert!(events[..2].iter().all(|e| !chunk_text(e).is_empty()));
    assert_eq!(events[2]["error"]["code"], 500, "{}", events[2]);
    assert_eq!(events[2]["error"]["status"], "INTERNAL");
    assert!(events.iter().all(|e| e["candidates"][0].get("finishReason").is_none()));
}

#[tokio::test]
async fn slowstream_paces_bigger_answers_and_padding_keeps_events_parseable() {
    let fake = FakeProvider::start(FakeOptions {
        slow_delay_ms: 40,
        ..Default::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let a = gemini(&fake, "streamGenerateContent?alt=sse", turn_body("SLOWSTREAM a b"), &[]).await;
    let events = sse_events(&a);
    assert_eq!(events.len(), 5);
    assert!(started.elapsed() >= Duration::from_millis(4 * 40));

    let a = gemini(
        &fake,
        "streamGenerateContent?alt=sse",
        turn_body("BIGANSWER"),
        &[("x-fake-body-bytes", "5000")],
    )
    .await;
    let events = sse_events(&a);
    assert_eq!(events.len(), 200);
    assert!(a.body.len() > 5000);
    assert_eq!(fake.recorded().last().unwrap().reply_usage.unwrap().output_tokens, 200);
}

#[tokio::test]
async fn count_tokens_and_embeddings_answer_over_plain_http() {
    let fake = FakeProvider::start(FakeOptions {
        plain: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let v = gemini(
        &fake,
        "countTokens",
        json!({"contents": [{"role": "user", "parts": [{"text": "count me"}]}]}),
        &[],
    )
    .await
    .json();
    assert!(v["totalTokens"].as_u64().unwrap() > 0);

    let v = gemini(
        &fake,
        "embedContent",
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}}),
        &[],
    )
    .await
    .json();
    assert_eq!(v["embedding"]["values"].as_array().unwrap().len(), 8);

    let v = gemini(
        &fake,
        "batchEmbedContents",
        json!({"requests": [{"content": {"parts": [{"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}}]}),
        &[],
    )
    .await
    .json();
    let embeddings = v["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_ne!(embeddings[0], embeddings[1]);
}

#[tokio::test]
async fn unserved_google_paths_and_bad_requests_answer_in_googles_format() {
    let fake = fake().await;
    let a = gemini(&fake, "predict", json!({}), &[]).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["status"], "NOT_FOUND");
    let a = post_json(&fake, GOOGLE, "/v1beta/cachedContents", json!({})).await;
    assert_eq!(a.json()["error"]["code"], 404);
    let a = gemini(&fake, "generateContent", json!({"contents": []}), &[]).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["status"], "INVALID_ARGUMENT");
}
