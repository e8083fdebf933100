//! Explicit base-URL mode end to end: curl and the official SDKs talk to
//! `promptwall up` on plain HTTP; it forwards over TLS to the fake provider
//! (reached under the real provider names via `upstream.resolve`). Each test
//! asserts the client's answer, what the provider received, and the audit rows.
//!
//! Needs the built agent (`cargo xtask test` does it) and, for the SDK
//! tests, the clients from `cargo xtask setup`.

use std::time::Duration;

use promptwall_e2e::process::curl;
use promptwall_e2e::{run_bounded, start_fake, Agent, AuditRow, FakeHandle, RecordedRequest, TestClients};
use serde_json::{json, Value};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
const API_KEY: &str = "sk-ant-e2e-test-key";

/// The single recorded request to `path` whose body contains `marker`.
fn recorded_with(fake: &FakeHandle, path: &str, marker: &str) -> RecordedRequest {
    let hits: Vec<RecordedRequest> = fake
        .recorded_for(path)
        .into_iter()
        .filter(|r| r.body_text().contains(marker))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one {path} request containing {marker:?}, got {}: {:#?}",
        hits.len(),
        fake.recorded()
    );
    hits.into_iter().next().unwrap()
}

/// Audit row tokens equal what the provider reported.
fn assert_tokens_match(row: &AuditRow, seen: &RecordedRequest) {
    let usage = seen.reply_usage.expect("the fake reports usage for LLM answers");
    assert_eq!(
        row.input_tokens,
        Some(usage.input_tokens as i64),
        "input tokens of {row:#?}"
    );
    assert_eq!(
        row.output_tokens,
        Some(usage.output_tokens as i64),
        "output tokens of {row:#?}"
    );
}

fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_string();
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((
                name,
                serde_json::from_str(data).unwrap_or(Value::String(data.to_string())),
            ))
        })
        .collect()
}

fn messages_body(text: &str, stream: bool) -> String {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": text}]}).to_string()
}

#[test]
fn curl_anthropic_messages_json() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let url = format!("{}/v1/messages", agent.anthropic_base_url());
    let out = curl(&[
        "-H",
        "content-type: application/json",
        "-H",
        &format!("x-api-key: {API_KEY}"),
        "-H",
        "anthropic-version: 2023-06-01",
        "-H",
        "anthropic-beta: prompt-caching-2024-07-31,context-1m-2025-08-07",
        "-H",
        "x-e2e-unknown-header: keep-me",
        "-d",
        &messages_body("hello from curl", false),
        &url,
    ]);
    out.expect_success("curl /v1/messages");
    let answer = out.last_json();
    assert_eq!(answer["content"][0]["text"], "You said: hello from curl", "{answer}");

    let seen = recorded_with(&fake, "/v1/messages", "hello from curl");
    assert_eq!(
        seen.conn.sni.as_deref(),
        Some("api.anthropic.com"),
        "upstream TLS must use the provider name"
    );
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31,context-1m-2025-08-07")
    );
    assert_eq!(seen.header("x-api-key"), Some(API_KEY));
    assert_eq!(seen.header("x-e2e-unknown-header"), Some("keep-me"));
    let body = seen.json.as_ref().expect("JSON body upstream");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["messages"][0]["content"], "hello from curl");

    let rows = agent.wait_audit_rows(1);
    let row = &rows[0];
    assert_eq!(row.listener, "explicit");
    assert_eq!(row.provider.as_deref(), Some("anthropic"));
    assert_eq!(row.path.as_deref(), Some("/v1/messages"));
    assert_eq!(row.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(row.status, 200);
    assert_tokens_match(row, &seen);
}

#[test]
fn curl_anthropic_messages_stream() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let url = format!("{}/v1/messages?beta=true", agent.anthropic_base_url());
    let out = curl(&[
        "-N",
        "-H",
        "content-type: application/json",
        "-H",
        &format!("x-api-key: {API_KEY}"),
        "-H",
        "anthropic-version: 2023-06-01",
        "-d",
        &messages_body("stream from curl", true),
        &url,
    ]);
    out.expect_success("curl streaming /v1/messages");
    let events = sse_events(&out.stdout);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"],
        "{}",
        out.stdout
    );
    assert_eq!(names.last(), Some(&"message_stop"));
    let text: String = events.iter().filter_map(|(_, v)| v["delta"]["text"].as_str()).collect();
    assert_eq!(text, "You said: stream from curl");

    let seen = recorded_with(&fake, "/v1/messages", "stream from curl");
    assert_eq!(seen.query.as_deref(), Some("beta=true"));
    let rows = agent.wait_audit_rows(1);
    assert_eq!(rows[0].status, 200);
    assert_eq!(rows[0].model.as_deref(), Some("claude-sonnet-4-5"));
    assert_tokens_match(&rows[0], &seen);
}

#[test]
fn curl_upstream_errors_come_back_unmodified() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let out = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "-H",
        "x-fake-status: 529",
        "-d",
        &messages_body("overload me", false),
        &format!("{}/v1/messages", agent.anthropic_base_url()),
    ]);
    out.expect_success("curl (529 expected)");
    let (body, code) = out.stdout.trim_end().rsplit_once('\n').expect("body then status code");
    assert_eq!(code, "529");
    let err: Value = serde_json::from_str(body).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "overloaded_error");

    let out = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-d",
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "FAKESTATUS429"}]}).to_string(),
        &format!("{}/chat/completions", agent.openai_base_url()),
    ]);
    let (body, code) = out.stdout.trim_end().rsplit_once('\n').expect("body then status code");
    assert_eq!(code, "429");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap()["error"]["code"],
        "rate_limit_exceeded"
    );

    let rows = agent.wait_audit_rows(2);
    let statuses: Vec<u16> = rows.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [529, 429]);
}

const PY_ANTHROPIC: &str = r#"
import json, anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
m = c.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello python sdk"}])
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "stream python sdk"}]) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
n = c.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "count python sdk"}])
print(json.dumps({
    "create": m.content[0].text, "create_usage": [m.usage.input_tokens, m.usage.output_tokens],
    "stream": streamed, "stream_usage": [final.usage.input_tokens, final.usage.output_tokens],
    "count": n.input_tokens,
}))
"#;

#[test]
fn python_anthropic_sdk_create_stream_and_count_tokens() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let mut cmd = clients.python_cmd(PY_ANTHROPIC);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", API_KEY);
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("python anthropic SDK");
    let r = out.last_json();
    assert_eq!(r["create"], "You said: hello python sdk");
    assert_eq!(r["stream"], "You said: stream python sdk");
    assert!(r["count"].as_u64().unwrap() > 0);

    let created = recorded_with(&fake, "/v1/messages", "hello python sdk");
    let streamed = recorded_with(&fake, "/v1/messages", "stream python sdk");
    let counted = recorded_with(&fake, "/v1/messages/count_tokens", "count python sdk");
    for seen in [&created, &streamed, &counted] {
        assert!(
            seen.header("anthropic-version").is_some(),
            "anthropic-version must reach the provider"
        );
        let auth_ok = seen.header("x-api-key") == Some(API_KEY)
            || seen.header("authorization") == Some(format!("Bearer {API_KEY}").as_str());
        assert!(
            auth_ok,
            "the SDK's credentials must reach the provider unchanged: {:?}",
            seen.headers
        );
        assert!(seen
            .header("user-agent")
            .is_some_and(|ua| ua.contains("Anthropic") || ua.contains("anthropic")));
    }
    assert_eq!(streamed.json.as_ref().unwrap()["stream"], true);
    let usage = created.reply_usage.unwrap();
    assert_eq!(r["create_usage"], json!([usage.input_tokens, usage.output_tokens]));

    let rows = agent.wait_audit_rows(3);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let by_path = |p: &str| rows.iter().filter(|r| r.path.as_deref() == Some(p)).collect::<Vec<_>>();
    let messages = by_path("/v1/messages");
    assert_eq!(messages.len(), 2);
    for row in &messages {
        assert_eq!(row.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(row.status, 200);
        assert_eq!(row.provider.as_deref(), Some("anthropic"));
    }
    // Rows are in arrival order: create, then stream.
    assert_tokens_match(messages[0], &created);
    assert_tokens_match(messages[1], &streamed);
    assert_eq!(by_path("/v1/messages/count_tokens").len(), 1);
    assert_eq!(by_path("/v1/messages/count_tokens")[0].status, 200);
}

const PY_OPENAI: &str = r#"
import json, openai
c = openai.OpenAI(max_retries=0, timeout=60)
text, usage = "", None
for ch in c.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                    messages=[{"role": "user", "content": "hello chat sdk"}]):
    if ch.choices and ch.choices[0].delta.content:
        text += ch.choices[0].delta.content
    if ch.usage:
        usage = [ch.usage.prompt_tokens, ch.usage.completion_tokens]
r = c.responses.create(model="gpt-5", input="hello responses sdk")
s_text, s_final = "", None
for ev in c.responses.create(model="gpt-5", input="stream responses sdk", stream=True):
    if ev.type == "response.output_text.delta":
        s_text += ev.delta
    elif ev.type == "response.completed":
        s_final = ev.response.output_text
e = c.embeddings.create(model="text-embedding-3-small", input="embed sdk")
print(json.dumps({
    "chat": text, "chat_usage": usage,
    "resp": r.output_text, "resp_usage": [r.usage.input_tokens, r.usage.output_tokens],
    "stream": s_text, "stream_final": s_final, "embedding_len": len(e.data[0].embedding),
}))
"#;

#[test]
fn python_openai_sdk_chat_stream_responses_and_embeddings() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let mut cmd = clients.python_cmd(PY_OPENAI);
    cmd.env("OPENAI_BASE_URL", agent.openai_base_url())
        .env("OPENAI_API_KEY", "sk-e2e-openai-test");
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("python openai SDK");
    let r = out.last_json();
    assert_eq!(r["chat"], "You said: hello chat sdk");
    assert_eq!(r["resp"], "You said: hello responses sdk");
    assert_eq!(r["stream"], "You said: stream responses sdk");
    assert_eq!(r["stream_final"], "You said: stream responses sdk");
    assert_eq!(r["embedding_len"], 8);

    let chat = recorded_with(&fake, "/v1/chat/completions", "hello chat sdk");
    assert_eq!(chat.conn.sni.as_deref(), Some("api.openai.com"));
    assert_eq!(chat.header("authorization"), Some("Bearer sk-e2e-openai-test"));
    assert_eq!(chat.json.as_ref().unwrap()["stream_options"]["include_usage"], true);
    let usage = chat.reply_usage.unwrap();
    assert_eq!(r["chat_usage"], json!([usage.input_tokens, usage.output_tokens]));
    let resp = recorded_with(&fake, "/v1/responses", "hello responses sdk");
    let resp_stream = recorded_with(&fake, "/v1/responses", "stream responses sdk");
    recorded_with(&fake, "/v1/embeddings", "embed sdk");

    let rows = agent.wait_audit_rows(4);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| r.status == 200 && r.provider.as_deref() == Some("openai")),
        "{rows:#?}"
    );
    assert_eq!(rows[0].model.as_deref(), Some("gpt-4o"));
    assert_tokens_match(&rows[0], &chat);
    assert_eq!(rows[1].model.as_deref(), Some("gpt-5"));
    assert_tokens_match(&rows[1], &resp);
    assert_eq!(rows[2].model.as_deref(), Some("gpt-5"));
    assert_tokens_match(&rows[2], &resp_stream);
    assert_eq!(rows[3].path.as_deref(), Some("/v1/embeddings"));
    assert_eq!(rows[3].model.as_deref(), Some("text-embedding-3-small"));
}

const NODE_SDKS: &str = r#"
const Anthropic = require("@anthropic-ai/sdk");
const OpenAI = require("openai");
(async () => {
  const a = new (Anthropic.default || Anthropic)({ maxRetries: 0 });
  const stream = await a.messages.create({ model: "claude-sonnet-4-5", max_tokens: 64, stream: true,
    messages: [{ role: "user", content: "hello node anthropic" }] });
  let text = "";
  for await (const ev of stream) {
    if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
  }
  const o = new (OpenAI.default || OpenAI)({ maxRetries: 0 });
  const chat = await o.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hello node openai" }] });
  console.log(JSON.stringify({ anthropic: text, openai: chat.choices[0].message.content }));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn node_sdks_stream_and_json() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let mut cmd = clients.node_cmd(NODE_SDKS);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", API_KEY)
        .env("OPENAI_BASE_URL", agent.openai_base_url())
        .env("OPENAI_API_KEY", "sk-e2e-openai-test");
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("node SDKs");
    let r = out.last_json();
    assert_eq!(r["anthropic"], "You said: hello node anthropic");
    assert_eq!(r["openai"], "You said: hello node openai");
    let a = recorded_with(&fake, "/v1/messages", "hello node anthropic");
    let o = recorded_with(&fake, "/v1/chat/completions", "hello node openai");
    let rows = agent.wait_audit_rows(2);
    assert_eq!(rows[0].model.as_deref(), Some("claude-sonnet-4-5"));
    assert_tokens_match(&rows[0], &a);
    assert_eq!(rows[1].model.as_deref(), Some("gpt-4o"));
    assert_tokens_match(&rows[1], &o);
}
