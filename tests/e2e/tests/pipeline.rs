//! The inspection pipeline end to end through the explicit listener, driven
//! by the official SDKs: a pasted credential is refused with 422 in the
//! client's own error envelope and never leaves the machine (nor lands in the
//! log or the audit store); personal data reaches the provider as
//! placeholders and comes back restored in streamed text and in streamed
//! tool-call arguments for all three API shapes.

use std::path::Path;
use std::time::Duration;

use promptwall_e2e::process::curl;
use promptwall_e2e::{run_bounded, start_fake, Agent, AgentConfig, AuditRow, FakeHandle, RunOutput, TestClients};
use serde_json::{json, Value};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// Shaped like an AWS access key id, not the documented example (which is allowlisted).
const AWS_KEY: &str = "AKIAQ3EGVP7XWJ4LN2TZ";
const EMAIL: &str = "alice.smith@example.org";
const PHONE: &str = "+44 20 7946 0958";

fn run_python(clients: &TestClients, agent: &Agent, script: &str) -> RunOutput {
    let mut cmd = clients.python_cmd(script);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e-test-key")
        .env("OPENAI_BASE_URL", agent.openai_base_url())
        .env("OPENAI_API_KEY", "sk-e2e-openai-test")
        .env("AWS_KEY", AWS_KEY)
        .env("EMAIL", EMAIL)
        .env("PHONE", PHONE);
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("python SDK script");
    out
}

/// Every file the agent wrote (log, audit database and its WAL, config, CA)
/// must be free of `value`: a secret is never logged or stored.
fn assert_nowhere_on_disk(agent: &Agent, value: &str) {
    fn walk(dir: &Path, value: &[u8], hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, value, hits);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(value.len()).any(|w| w == value) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    let mut hits = Vec::new();
    walk(agent.dir.path(), value.as_bytes(), &mut hits);
    assert!(hits.is_empty(), "the value leaked into {hits:?}");
    let db = agent.dir.path().join("audit.db");
    assert!(db.exists(), "the audit database should exist at {}", db.display());
}

fn findings(row: &AuditRow) -> Value {
    row.rest.get("findings").cloned().unwrap_or(Value::Null)
}

fn finding_count(row: &AuditRow, kind: &str) -> u64 {
    let f = findings(row);
    // Stored as {"kind": n}; tolerate a JSON string holding that object.
    let f = match f {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
        other => other,
    };
    f[kind].as_u64().unwrap_or(0)
}

fn assert_fake_saw_nothing(fake: &FakeHandle) {
    assert!(
        fake.recorded().is_empty(),
        "a blocked request must not reach the provider: {:#?}",
        fake.recorded()
    );
}

const PY_ANTHROPIC_SECRET: &str = r#"
import json, os, anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
prompt = "deploy with these credentials: aws_access_key_id = " + os.environ["AWS_KEY"]
out = {}
try:
    c.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": prompt}])
    out["create"] = "no error"
except anthropic.APIStatusError as e:
    out["create"] = {"cls": type(e).__name__, "status": e.status_code, "body": e.response.text}
try:
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, system="be brief",
                           messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                     {"role": "user", "content": [{"type": "text", "text": prompt}]}]) as s:
        "".join(s.text_stream)
    out["stream"] = "no error"
except anthropic.APIStatusError as e:
    out["stream"] = {"cls": type(e).__name__, "status": e.status_code, "body": e.response.text}
print(json.dumps(out))
"#;

#[test]
fn python_anthropic_secret_is_blocked_with_422_and_never_leaves() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    // Debug logging: even the most verbose log must not carry the value.
    cfg.env.push(("PROMPTWALL_LOG".into(), "debug".into()));
    let agent = Agent::start(&cfg);
    let out = run_python(&clients, &agent, PY_ANTHROPIC_SECRET);
    assert!(
        !out.stdout.contains(AWS_KEY) && !out.stderr.contains(AWS_KEY),
        "the client was told the secret: {out:?}"
    );
    let r = out.last_json();
    for (call, location) in [
        ("create", "messages[0].content"),
        ("stream", "messages[2].content[0].text"),
    ] {
        let res = &r[call];
        assert_eq!(res["status"], 422, "{call}: {res}");
        assert_eq!(res["cls"], "UnprocessableEntityError", "{call}: {res}");
        let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).expect("JSON error body");
        assert_eq!(body["type"], "error", "Anthropic error envelope expected: {body}");
        assert!(body["error"]["type"].is_string(), "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("aws_access_key_id"), "the message names the kind: {msg}");
        assert!(
            msg.contains(location),
            "the message names the location {location}: {msg}"
        );
    }
    // curl carries the prompt on its command line, which the audit row
    // records for attribution: that copy must be scrubbed too.
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": format!("key {AWS_KEY}")}]});
    let (text, code) = curl_anthropic(&agent, "/v1/messages", &body);
    assert_eq!(code, "422", "{text}");
    assert!(!text.contains(AWS_KEY));
    assert_fake_saw_nothing(&fake);

    let rows = agent.wait_audit_rows(3);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let cmdline = rows[2].rest["cmdline"]
        .as_str()
        .expect("the explicit listener attributes curl");
    assert!(cmdline.contains("[[REDACTED_AWS_ACCESS_KEY_ID]]"), "{cmdline}");
    for row in &rows {
        assert_eq!(row.verdict, "blocked", "{row:#?}");
        assert_eq!(row.status, 422);
        assert_eq!(row.provider.as_deref(), Some("anthropic"));
        assert_eq!(row.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(finding_count(row, "aws_access_key_id"), 1, "{row:#?}");
    }
    // The same key blocked three times has one salted fingerprint, so auditors
    // can count the leaks; the value itself is in no row.
    let fps: Vec<&Value> = rows.iter().map(|r| &r.rest["fingerprints"]).collect();
    assert_eq!(fps[0].as_array().map(Vec::len), Some(1), "{:?}", fps[0]);
    assert_eq!(fps[0][0]["kind"], "aws_access_key_id");
    let fp = fps[0][0]["fp"].as_str().expect("fingerprint string");
    assert!(fp.len() >= 16 && fp.chars().all(|c| c.is_ascii_hexdigit()), "{fp}");
    assert!(
        fps.iter().all(|f| f[0]["fp"] == fp),
        "one key, one fingerprint: {fps:?}"
    );
    let log = agent.log();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "debug logging was on: {log}"
    );
    assert_nowhere_on_disk(&agent, AWS_KEY);
}

const PY_OPENAI_SECRET: &str = r#"
import json, os, openai
c = openai.OpenAI(max_retries=0, timeout=60)
prompt = "my key is " + os.environ["AWS_KEY"] + " please use it"
out = {}
def err(e):
    return {"cls": type(e).__name__, "status": e.status_code, "body": e.response.text}
try:
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
    out["chat"] = "no error"
except openai.APIStatusError as e:
    out["chat"] = err(e)
try:
    for _ in c.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": prompt}]):
        pass
    out["chat_stream"] = "no error"
except openai.APIStatusError as e:
    out["chat_stream"] = err(e)
try:
    c.responses.create(model="gpt-5", input=[{"role": "user", "content": [{"type": "input_text", "text": prompt}]}])
    out["responses"] = "no error"
except openai.APIStatusError as e:
    out["responses"] = err(e)
print(json.dumps(out))
"#;

#[test]
fn python_openai_secret_is_blocked_with_422_in_openai_envelope() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let out = run_python(&clients, &agent, PY_OPENAI_SECRET);
    assert!(
        !out.stdout.contains(AWS_KEY),
        "the client was told the secret: {}",
        out.stdout
    );
    let r = out.last_json();
    for call in ["chat", "chat_stream", "responses"] {
        let res = &r[call];
        assert_eq!(res["status"], 422, "{call}: {res}");
        assert_eq!(res["cls"], "UnprocessableEntityError", "{call}: {res}");
        let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).expect("JSON error body");
        assert!(
            body.get("type").is_none(),
            "OpenAI envelope has no top-level type: {body}"
        );
        let msg = body["error"]["message"].as_str().expect("error.message");
        assert!(msg.contains("aws_access_key_id"), "{msg}");
        assert!(
            msg.contains(if call == "responses" {
                "input"
            } else {
                "messages[0].content"
            }),
            "{msg}"
        );
        assert!(body["error"]["type"].is_string(), "{body}");
        assert_eq!(body["error"]["code"], "secret_detected", "{body}");
    }
    assert_fake_saw_nothing(&fake);
    let rows = agent.wait_audit_rows(3);
    assert!(
        rows.iter().all(|r| r.verdict == "blocked" && r.status == 422),
        "{rows:#?}"
    );
    assert!(
        rows.iter().all(|r| finding_count(r, "aws_access_key_id") == 1),
        "{rows:#?}"
    );
    assert_nowhere_on_disk(&agent, AWS_KEY);
}

const PY_ANTHROPIC_PII: &str = r#"
import json, os, anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
email, phone = os.environ["EMAIL"], os.environ["PHONE"]
prompt = f"Write to {email} or call {phone} about it"
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": prompt}]) as s:
    text = "".join(s.text_stream)
tools = [{"name": "echo_text", "description": "echo", "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}]
partial, final = "", None
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, tools=tools,
                       messages=[{"role": "user", "content": "ECHOARGS " + prompt}]) as s:
    for ev in s:
        if ev.type == "content_block_delta" and ev.delta.type == "input_json_delta":
            partial += ev.delta.partial_json
    final = s.get_final_message()
tool = [b for b in final.content if b.type == "tool_use"][0]
print(json.dumps({"text": text, "partial": partial, "input": tool.input, "stop": final.stop_reason}))
"#;

#[test]
fn python_anthropic_pii_is_placeholdered_upstream_and_restored_in_text_and_tool_use() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let out = run_python(&clients, &agent, PY_ANTHROPIC_PII);
    let r = out.last_json();
    let prompt = format!("Write to {EMAIL} or call {PHONE} about it");
    assert_eq!(
        r["text"],
        format!("You said: {prompt}"),
        "streamed text must come back restored"
    );
    assert_eq!(r["stop"], "tool_use");
    let args: Value =
        serde_json::from_str(r["partial"].as_str().unwrap()).expect("input_json_delta concatenates to JSON");
    assert_eq!(
        args["text"],
        format!("ECHOARGS {prompt}"),
        "tool arguments restored across input_json_delta chunks"
    );
    assert_eq!(r["input"]["text"], format!("ECHOARGS {prompt}"));

    let seen = fake.recorded_for("/v1/messages");
    assert_eq!(seen.len(), 2);
    for req in &seen {
        let body = req.body_text();
        assert!(
            !body.contains(EMAIL) && !body.contains(PHONE),
            "PII reached the provider: {body}"
        );
        assert!(
            body.contains("[[EMAIL_001]]") && body.contains("[[PHONE_001]]"),
            "placeholders expected: {body}"
        );
    }
    let rows = agent.wait_audit_rows(2);
    for row in &rows {
        assert_eq!(row.verdict, "redacted", "{row:#?}");
        assert_eq!(row.status, 200);
        assert_eq!(finding_count(row, "email"), 1, "{row:#?}");
        assert_eq!(finding_count(row, "phone"), 1, "{row:#?}");
    }
    assert_nowhere_on_disk(&agent, EMAIL);
}

const PY_OPENAI_PII: &str = r#"
import json, os, openai
c = openai.OpenAI(max_retries=0, timeout=60)
email, phone = os.environ["EMAIL"], os.environ["PHONE"]
prompt = f"ECHOARGS mail {email} or ring {phone} today"
tools = [{"type": "function", "function": {"name": "echo_text", "description": "echo",
          "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "command": {"type": "string"}}}}}]
args, text = "", ""
for ch in c.chat.completions.create(model="gpt-4o", stream=True, tools=tools, messages=[{"role": "user", "content": prompt}]):
    for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
        if tc.function and tc.function.arguments:
            args += tc.function.arguments
for ch in c.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": prompt[9:]}]):
    if ch.choices and ch.choices[0].delta.content:
        text += ch.choices[0].delta.content
rtools = [{"type": "function", "name": "echo_text", "description": "echo",
           "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}]
r_delta, r_done, r_item, r_final = "", None, None, None
for ev in c.responses.create(model="gpt-5", input=prompt, tools=rtools, stream=True):
    if ev.type == "response.function_call_arguments.delta":
        r_delta += ev.delta
    elif ev.type == "response.function_call_arguments.done":
        r_done = ev.arguments
    elif ev.type == "response.output_item.done":
        r_item = ev.item.arguments
    elif ev.type == "response.completed":
        r_final = ev.response.output[0].arguments
resp_text = c.responses.create(model="gpt-5", input=prompt[9:]).output_text
print(json.dumps({"chat_args": args, "chat_text": text, "r_delta": r_delta, "r_done": r_done,
                  "r_item": r_item, "r_final": r_final, "resp_text": resp_text}))
"#;

#[test]
fn python_openai_pii_restored_in_chat_and_responses_tool_arguments() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let out = run_python(&clients, &agent, PY_OPENAI_PII);
    let r = out.last_json();
    let prompt = format!("ECHOARGS mail {EMAIL} or ring {PHONE} today");
    let plain = &prompt["ECHOARGS ".len()..];
    let chat_args: Value = serde_json::from_str(r["chat_args"].as_str().unwrap()).expect("chat arguments are JSON");
    assert_eq!(chat_args["text"], prompt, "chat tool_calls arguments restored");
    assert_eq!(r["chat_text"], format!("You said: {plain}"));
    for key in ["r_delta", "r_done", "r_item", "r_final"] {
        let args: Value = serde_json::from_str(r[key].as_str().unwrap_or_else(|| panic!("{key} missing: {r}")))
            .unwrap_or_else(|e| panic!("{key} is not JSON ({e}): {r}"));
        assert_eq!(args["text"], prompt, "Responses {key} restored: {r}");
    }
    assert_eq!(r["resp_text"], format!("You said: {plain}"));

    for req in fake.recorded() {
        let body = req.body_text();
        assert!(
            !body.contains(EMAIL) && !body.contains(PHONE),
            "PII reached the provider: {body}"
        );
        assert!(body.contains("[[EMAIL_001]]"), "{body}");
    }
    assert_eq!(fake.recorded().len(), 4);
    let rows = agent.wait_audit_rows(4);
    assert!(
        rows.iter().all(|r| r.verdict == "redacted" && r.status == 200),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .all(|r| finding_count(r, "email") == 1 && finding_count(r, "phone") == 1),
        "{rows:#?}"
    );
}

const NODE_PII: &str = r#"
const Anthropic = require("@anthropic-ai/sdk");
(async () => {
  const a = new (Anthropic.default || Anthropic)({ maxRetries: 0 });
  const prompt = `ECHOARGS reach ${process.env.EMAIL} please`;
  const stream = a.messages.stream({ model: "claude-sonnet-4-5", max_tokens: 64,
    tools: [{ name: "Bash", description: "run", input_schema: { type: "object", properties: { command: { type: "string" } } } }],
    messages: [{ role: "user", content: prompt }] });
  const final = await stream.finalMessage();
  const tool = final.content.find((b) => b.type === "tool_use");
  console.log(JSON.stringify({ input: tool.input }));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn node_anthropic_tool_use_arguments_restored() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let mut cmd = clients.node_cmd(NODE_PII);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e-test-key")
        .env("EMAIL", EMAIL);
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("node anthropic SDK");
    let r = out.last_json();
    assert_eq!(
        r["input"]["command"],
        format!("echo 'ECHOARGS reach {EMAIL} please'"),
        "{r}"
    );
    let seen = fake.recorded_for("/v1/messages");
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].body_text().contains(EMAIL));
}

/// curl POSTs `body` as JSON to the agent's Anthropic `path`; (body, status).
fn curl_anthropic(agent: &Agent, path: &str, body: &Value) -> (String, String) {
    let out = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "-d",
        &body.to_string(),
        &format!("{}{path}", agent.anthropic_base_url()),
    ]);
    let (text, code) = out.stdout.trim_end().rsplit_once('\n').expect("body then status code");
    (text.to_string(), code.to_string())
}

#[test]
fn custom_detector_from_config_is_reversible() {
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    cfg.toml_extra =
        "[pipeline]\n[[pipeline.custom]]\nkind = \"customer_id\"\npattern = 'CUST-\\d{6}'\naction = \"reversible\"\n"
            .to_string();
    let agent = Agent::start(&cfg);
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "refund CUST-123456 and CUST-654321"}]});
    let out = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        &body.to_string(),
        &format!("{}/chat/completions", agent.openai_base_url()),
    ]);
    out.expect_success("curl chat completions");
    let answer = out.last_json();
    assert_eq!(
        answer["choices"][0]["message"]["content"], "You said: refund CUST-123456 and CUST-654321",
        "{answer}"
    );
    let seen = fake.recorded_for("/v1/chat/completions");
    assert_eq!(seen.len(), 1);
    let upstream = seen[0].json.as_ref().unwrap()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !upstream.contains("CUST-"),
        "custom detector must redact upstream: {upstream}"
    );
    assert!(
        upstream.contains("[[CUSTOMER_ID_001]]") && upstream.contains("[[CUSTOMER_ID_002]]"),
        "{upstream}"
    );
    let rows = agent.wait_audit_rows(1);
    assert_eq!(rows[0].verdict, "redacted");
    assert_eq!(finding_count(&rows[0], "customer_id"), 2, "{:#?}", rows[0]);
    // The values were on curl's command line; the audit row keeps it scrubbed.
    assert_nowhere_on_disk(&agent, "CUST-123456");
}

const PY_FRAGMENTED: &str = r#"
import json, os, anthropic, openai
email, phone = os.environ["EMAIL"], os.environ["PHONE"]
prompt = f"note {email} and {phone} twice: {email}"
# 3-character deltas cut the placeholders apart; 7-byte writes cut the SSE events apart.
h = {"x-fake-chunk-chars": "3", "x-fake-split-bytes": "7"}
a = anthropic.Anthropic(max_retries=0, timeout=60)
with a.messages.stream(model="claude-sonnet-4-5", max_tokens=64, extra_headers=h,
                       messages=[{"role": "user", "content": prompt}]) as s:
    a_text = "".join(s.text_stream)
a_json = a.messages.create(model="claude-sonnet-4-5", max_tokens=64, extra_headers=h,
                           messages=[{"role": "user", "content": prompt}]).content[0].text
o = openai.OpenAI(max_retries=0, timeout=60)
c_text = ""
for ch in o.chat.completions.create(model="gpt-4o", stream=True, extra_headers=h, messages=[{"role": "user", "content": prompt}]):
    if ch.choices and ch.choices[0].delta.content:
        c_text += ch.choices[0].delta.content
r_text, r_done = "", None
for ev in o.responses.create(model="gpt-5", input=prompt, stream=True, extra_headers=h):
    if ev.type == "response.output_text.delta":
        r_text += ev.delta
    elif ev.type == "response.output_text.done":
        r_done = ev.text
print(json.dumps({"anthropic": a_text, "anthropic_json": a_json, "chat": c_text, "responses": r_text, "responses_done": r_done}))
"#;

#[test]
fn placeholders_split_across_deltas_and_reads_are_restored_in_every_shape() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let out = run_python(&clients, &agent, PY_FRAGMENTED);
    let r = out.last_json();
    let want = format!("You said: note {EMAIL} and {PHONE} twice: {EMAIL}");
    for key in ["anthropic", "anthropic_json", "chat", "responses", "responses_done"] {
        assert_eq!(r[key], want, "{key} must come back restored: {r}");
    }
    let seen = fake.recorded();
    assert_eq!(seen.len(), 4);
    for req in &seen {
        let body = req.body_text();
        assert!(!body.contains(EMAIL) && !body.contains(PHONE), "{body}");
        // The same value maps to the same placeholder within a request.
        assert_eq!(body.matches("[[EMAIL_001]]").count(), 2, "{body}");
    }
}

const PY_LEGACY: &str = r#"
import json, os, openai
c = openai.OpenAI(max_retries=0, timeout=60)
out = {}
for name, prompt in [("secret", "key " + os.environ["AWS_KEY"]), ("clean", "just words")]:
    try:
        c.completions.create(model="gpt-3.5-turbo-instruct", prompt=prompt)
        out[name] = "no error"
    except openai.APIStatusError as e:
        out[name] = {"status": e.status_code, "body": e.response.text}
print(json.dumps(out))
"#;

#[test]
fn endpoints_outside_the_known_shapes_are_still_checked_for_credentials() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    // OpenAI's legacy completions API, through the SDK.
    let r = run_python(&clients, &agent, PY_LEGACY).last_json();
    assert_eq!(r["secret"]["status"], 422, "{r}");
    let body: Value = serde_json::from_str(r["secret"]["body"].as_str().unwrap()).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aws_access_key_id at prompt"),
        "{body}"
    );
    // A clean one goes through (the fake does not serve the path: its own 404 comes back).
    assert_eq!(r["clean"]["status"], 404, "{r}");
    assert_eq!(fake.recorded_for("/v1/completions").len(), 1);
    assert!(fake.recorded_for("/v1/completions")[0]
        .body_text()
        .contains("just words"));

    // Anthropic's legacy text completions, in Anthropic's envelope.
    let body = json!({"model": "claude-2.1", "max_tokens_to_sample": 5, "prompt": format!("\n\nHuman: {AWS_KEY}\n\nAssistant:")});
    let (text, code) = curl_anthropic(&agent, "/v1/complete", &body);
    assert_eq!(code, "422", "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["type"], "error", "{text}");
    assert!(fake.recorded_for("/v1/complete").is_empty());

    // Codex's history compaction is a Responses request: PII is placeholdered too.
    let body = json!({"model": "gpt-5", "instructions": "compact", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": format!("mail {EMAIL}")}]}]});
    let out = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        &body.to_string(),
        &format!("{}/responses/compact", agent.openai_base_url()),
    ]);
    out.expect_success("curl compact");
    let seen = fake.recorded_for("/v1/responses/compact");
    assert_eq!(seen.len(), 1);
    assert!(
        !seen[0].body_text().contains(EMAIL) && seen[0].body_text().contains("[[EMAIL_001]]"),
        "{}",
        seen[0].body_text()
    );

    // A body that is not JSON at all (a form post to an API promptwall does
    // not know): checked as text, blocked in the provider's envelope.
    let out = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/x-www-form-urlencoded",
        "--data-raw",
        &format!("purpose=batch&note={AWS_KEY}"),
        &format!("{}/vector_stores/form", agent.openai_base_url()),
    ]);
    let (text, code) = out.stdout.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(code, "422", "{text}");
    assert!(
        text.contains("aws_access_key_id at body") && !text.contains(AWS_KEY),
        "{text}"
    );
    assert!(fake.recorded_for("/v1/vector_stores/form").is_empty());

    let rows = agent.wait_audit_rows(5);
    let blocked: Vec<&AuditRow> = rows.iter().filter(|r| r.verdict == "blocked").collect();
    assert_eq!(blocked.len(), 3, "{rows:#?}");
    assert!(blocked
        .iter()
        .all(|r| r.status == 422 && finding_count(r, "aws_access_key_id") == 1));
    assert_nowhere_on_disk(&agent, AWS_KEY);
}

const NODE_BLOCKED: &str = r#"
const Anthropic = require("@anthropic-ai/sdk");
const OpenAI = require("openai");
(async () => {
  const key = process.env.AWS_KEY;
  const out = {};
  try {
    const a = new (Anthropic.default || Anthropic)({ maxRetries: 0 });
    await a.messages.create({ model: "claude-sonnet-4-5", max_tokens: 64, stream: true,
      messages: [{ role: "user", content: `key=${key}` }] });
    out.anthropic = "no error";
  } catch (e) { out.anthropic = { status: e.status, type: e.error && e.error.type, error: e.error }; }
  try {
    const o = new (OpenAI.default || OpenAI)({ maxRetries: 0 });
    await o.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: `key=${key}` }] });
    out.openai = "no error";
  } catch (e) { out.openai = { status: e.status, code: e.code, message: e.message }; }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn node_sdks_surface_the_422_as_api_errors() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let mut cmd = clients.node_cmd(NODE_BLOCKED);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e-test-key")
        .env("OPENAI_BASE_URL", agent.openai_base_url())
        .env("OPENAI_API_KEY", "sk-e2e-openai-test")
        .env("AWS_KEY", AWS_KEY);
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("node SDKs");
    assert!(!out.stdout.contains(AWS_KEY), "{}", out.stdout);
    let r = out.last_json();
    assert_eq!(r["anthropic"]["status"], 422, "{r}");
    assert_eq!(
        r["anthropic"]["type"], "error",
        "the SDK parsed Anthropic's envelope: {r}"
    );
    assert!(
        r["anthropic"]["error"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aws_access_key_id"),
        "{r}"
    );
    assert_eq!(r["openai"]["status"], 422, "{r}");
    assert_eq!(
        r["openai"]["code"], "secret_detected",
        "the SDK parsed OpenAI's envelope: {r}"
    );
    assert!(
        r["openai"]["message"].as_str().unwrap().contains("aws_access_key_id"),
        "{r}"
    );
    assert_fake_saw_nothing(&fake);
}

const PY_MULTI_TURN: &str = r#"
import json, os, anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
email = os.environ["EMAIL"]
tools = [{"name": "echo_text", "description": "echo", "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}]
msgs = [{"role": "user", "content": f"ECHOARGS write to {email}"}]
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, tools=tools, messages=msgs) as s:
    first = s.get_final_message()
tool = [b for b in first.content if b.type == "tool_use"][0]
msgs.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": f"sent to {email}"}]})
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, tools=tools, messages=msgs) as s:
    second = "".join(s.text_stream)
print(json.dumps({"tool_input": tool.input, "second": second}))
"#;

#[test]
fn multi_turn_tool_round_keeps_placeholders_stable_and_restores_the_result() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let r = run_python(&clients, &agent, PY_MULTI_TURN).last_json();
    assert_eq!(r["tool_input"]["text"], format!("ECHOARGS write to {EMAIL}"), "{r}");
    assert_eq!(r["second"], format!("Tool said: sent to {EMAIL}"), "{r}");
    let seen = fake.recorded_for("/v1/messages");
    assert_eq!(seen.len(), 2);
    let (one, two) = (seen[0].json.as_ref().unwrap(), seen[1].json.as_ref().unwrap());
    // The history the model saw in turn 1 is byte-identical in turn 2
    // (prompt caching depends on a stable prefix).
    assert_eq!(one["messages"][0], two["messages"][0], "turn-2 prefix differs");
    assert_eq!(
        two["messages"][1]["content"][1]["input"]["text"], "ECHOARGS write to [[EMAIL_001]]",
        "{two}"
    );
    assert_eq!(
        two["messages"][2]["content"][0]["content"], "sent to [[EMAIL_001]]",
        "{two}"
    );
    assert!(!seen[1].body_text().contains(EMAIL));
}

const PY_RESPONSES_CHAIN: &str = r#"
import json, os, openai
c = openai.OpenAI(max_retries=0, timeout=60)
a, b, d = os.environ["EMAIL"], "bo@example.org", "dee@example.net"
r1 = c.responses.create(model="gpt-5", input=f"mail {a}")
r2 = c.responses.create(model="gpt-5", previous_response_id=r1.id, input=f"also {b} and {a}")
t3 = ""
for ev in c.responses.create(model="gpt-5", previous_response_id=r2.id, input=f"and {d}", stream=True):
    if ev.type == "response.output_text.delta":
        t3 += ev.delta
print(json.dumps({"t1": r1.output_text, "t2": r2.output_text, "t3": t3}))
"#;

/// The provider keeps earlier turns when a request names
/// `previous_response_id`; the follow-up must continue that numbering, or
/// `[[EMAIL_001]]` would mean two people in one conversation.
#[test]
fn responses_follow_ups_by_previous_response_id_keep_one_numbering() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let r = run_python(&clients, &agent, PY_RESPONSES_CHAIN).last_json();
    assert_eq!(r["t1"], format!("You said: mail {EMAIL}"), "{r}");
    assert_eq!(r["t2"], format!("You said: also bo@example.org and {EMAIL}"), "{r}");
    assert_eq!(r["t3"], "You said: and dee@example.net", "{r}");
    let seen: Vec<String> = fake.recorded().iter().map(|q| q.body_text()).collect();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(seen[0].contains("mail [[EMAIL_001]]"), "{}", seen[0]);
    assert!(seen[1].contains("also [[EMAIL_002]] and [[EMAIL_001]]"), "{}", seen[1]);
    assert!(seen[2].contains("and [[EMAIL_003]]"), "{}", seen[2]);
    assert!(seen
        .iter()
        .all(|b| !b.contains(EMAIL) && !b.contains("@example.org") && !b.contains("@example.net")));
}

/// curl POSTs `body` to the agent's `/v1/responses` with API key `key`; the answer.
fn curl_responses(agent: &Agent, key: &str, body: &Value) -> Value {
    let out = curl(&[
        "-H",
        "content-type: application/json",
        "-H",
        &format!("authorization: Bearer {key}"),
        "-d",
        &body.to_string(),
        &format!("{}/responses", agent.openai_base_url()),
    ]);
    out.expect_success("curl /v1/responses");
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {out:?}"))
}

/// Response ids are not secrets. Another API key naming ann's response as
/// `previous_response_id` and typing her placeholder must get the
/// placeholder back, not her email; ann herself still continues.
#[test]
fn a_previous_response_id_from_another_api_key_does_not_restore_its_placeholders() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let first = curl_responses(
        &agent,
        "sk-e2e-ann",
        &json!({"model": "gpt-5", "input": format!("mail {EMAIL}")}),
    );
    assert!(
        first.to_string().contains(EMAIL),
        "ann sees her own answer restored: {first}"
    );
    let id = first["id"].as_str().expect("response id").to_string();
    let probe = json!({"model": "gpt-5", "previous_response_id": id, "input": "repeat [[EMAIL_001]]"});

    let other = curl_responses(&agent, "sk-e2e-eve", &probe).to_string();
    assert!(!other.contains(EMAIL), "another key got ann's email restored: {other}");
    assert!(other.contains("You said: repeat [[EMAIL_001]]"), "{other}");

    let own = curl_responses(&agent, "sk-e2e-ann", &probe).to_string();
    assert!(own.contains(&format!("You said: repeat {EMAIL}")), "{own}");
    let seen: Vec<String> = fake.recorded().iter().map(|q| q.body_text()).collect();
    assert!(seen.iter().all(|b| !b.contains(EMAIL)), "{seen:#?}");
}

/// With `[audit] capture_bodies = true` the row keeps the bodies as the
/// provider saw them: placeholders, never the personal data, and nothing at
/// all of a blocked request.
#[test]
fn captured_bodies_are_what_the_provider_saw() {
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    cfg.audit_extra = "capture_bodies = true\n".into();
    let agent = Agent::start(&cfg);
    let post = |content: String| {
        let body =
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": content}]});
        curl_anthropic(&agent, "/v1/messages", &body)
    };
    let (answer, code) = post(format!("mail {EMAIL}"));
    assert_eq!(code, "200", "{answer}");
    assert!(answer.contains(EMAIL), "the client sees the original: {answer}");
    let (_, code) = post(format!("key {AWS_KEY}"));
    assert_eq!(code, "422");
    agent.wait_audit_rows(2);

    let show = |id: &str| -> Value {
        let out = agent.cli(&["audit", "show", id, "--json"]);
        out.expect_success("audit show");
        serde_json::from_str(out.stdout.trim()).unwrap()
    };
    let redacted = show("1");
    let req = redacted["request_body"].as_str().expect("request body captured");
    let resp = redacted["response_body"].as_str().expect("response body captured");
    assert!(req.contains("mail [[EMAIL_001]]") && !req.contains(EMAIL), "{req}");
    assert!(
        resp.contains("[[EMAIL_001]]") && !resp.contains(EMAIL),
        "the provider's answer, before restoring: {resp}"
    );
    assert_eq!(redacted["request_body_sha256"].as_str().map(str::len), Some(64));
    let blocked = show("2");
    assert_eq!(blocked["verdict"], "blocked");
    assert!(
        blocked["request_body"].is_null() && blocked["response_body"].is_null(),
        "{blocked}"
    );
    assert_nowhere_on_disk(&agent, AWS_KEY);
    assert_nowhere_on_disk(&agent, EMAIL);
}
