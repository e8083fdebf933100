//! Bad input through the explicit listener: each case gets a clear answer in
//! the client's own API error format (or a clean close), an audit row, and
//! the proxy keeps serving (every test ends with a good follow-up request).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use promptwall_e2e::process::{curl, curl_status};
use promptwall_e2e::{
    run_bounded, start_fake, Agent, AgentConfig, AuditRow, FakeOptions, FakeProvider, RunOutput, TestClients,
};
use serde_json::{json, Value};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn anthropic_post(agent: &Agent, body: &str, extra: &[&str]) -> (u16, String) {
    let url = format!("{}/v1/messages", agent.anthropic_base_url());
    let mut args = vec![
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--data-binary", body, &url]);
    curl_status(&args)
}

fn chat_post(agent: &Agent, body: &str) -> (u16, String) {
    let url = format!("{}/chat/completions", agent.openai_base_url());
    curl_status(&["-H", "content-type: application/json", "--data-binary", body, &url])
}

fn messages_body(text: &str) -> String {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}).to_string()
}

fn chat_body(text: &str) -> String {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}).to_string()
}

/// Anthropic's envelope: `{"type":"error","error":{"type","message"}}`; returns the message.
fn anthropic_error(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    assert_eq!(v["type"], "error", "Anthropic error envelope expected: {v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    v["error"]["message"].as_str().expect("error.message").to_string()
}

/// OpenAI's envelope: `{"error":{"message","type",...}}`; returns the message.
fn openai_error(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    assert!(v.get("type").is_none(), "OpenAI envelope has no top-level type: {v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    v["error"]["message"].as_str().expect("error.message").to_string()
}

/// The proxy still answers a normal Anthropic request after the bad one.
fn assert_follow_up_ok(agent: &Agent, text: &str) {
    let (status, body) = anthropic_post(agent, &messages_body(text), &[]);
    assert_eq!(status, 200, "follow-up request failed: {body}\nlog:\n{}", agent.log());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["content"][0]["text"], format!("You said: {text}"));
}

fn last_row(agent: &Agent, n: usize) -> AuditRow {
    agent.wait_audit_rows(n).into_iter().nth(n - 1).unwrap()
}

/// A loopback port with nothing listening.
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

#[test]
fn malformed_json_gets_400_in_the_client_format() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);

    let (status, body) = anthropic_post(&agent, r#"{"model": "claude-sonnet-4-5", "messages": [ {"#, &[]);
    assert_eq!(status, 400, "{body}");
    let msg = anthropic_error(&body);
    assert!(msg.contains("not valid JSON") && msg.contains("not sent"), "{msg}");

    let (status, body) = chat_post(&agent, "model=gpt-4o&messages=hi");
    assert_eq!(status, 400, "{body}");
    assert!(openai_error(&body).contains("not valid JSON"), "{body}");

    // Not UTF-8 at all.
    let bad = agent.dir.path().join("bad.bin");
    std::fs::write(&bad, b"{\"model\":\"gpt-4o\",\"messages\":\"\xff\xfe\"}").unwrap();
    let at = format!("@{}", bad.display());
    let (status, body) = chat_post(&agent, &at);
    assert_eq!(status, 400, "{body}");
    assert!(openai_error(&body).contains("UTF-8"), "{body}");

    assert!(
        fake.recorded().is_empty(),
        "nothing malformed may reach the provider: {:#?}",
        fake.recorded()
    );
    let rows = agent.wait_audit_rows(3);
    for row in &rows {
        assert_eq!((row.status, row.verdict.as_str()), (400, "error"), "{row:#?}");
        assert!(
            row.rest["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not inspect")),
            "{row:#?}"
        );
    }
    assert_eq!(rows[0].provider.as_deref(), Some("anthropic"));
    assert_eq!(rows[1].provider.as_deref(), Some("openai"));
    assert_follow_up_ok(&agent, "after malformed json");
}

#[test]
fn unknown_paths_get_404() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);

    // No provider serves it: answered locally.
    let (status, body) = curl_status(&[&format!("http://{}/nope/v9/thing", agent.explicit)]);
    assert_eq!(status, 404, "{body}");
    let msg = openai_error(&body);
    assert!(msg.contains("no provider serves path /nope/v9/thing"), "{msg}");
    assert!(fake.recorded().is_empty());
    let row = last_row(&agent, 1);
    assert_eq!(
        (row.status, row.verdict.as_str(), row.provider.as_deref()),
        (404, "error", None),
        "{row:#?}"
    );

    // A provider path the provider does not know: its own 404 comes back unmodified.
    let (status, body) = curl_status(&[
        "-H",
        "content-type: application/json",
        "-d",
        "{}",
        &format!("{}/does-not-exist", agent.openai_base_url()),
    ]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("error"), "{body}");
    assert_eq!(fake.recorded_for("/v1/does-not-exist").len(), 1);
    let rows = agent.wait_audit_rows(2);
    let row = rows
        .iter()
        .find(|r| r.path.as_deref() == Some("/v1/does-not-exist"))
        .expect("row for the unknown path");
    assert_eq!((row.status, row.provider.as_deref()), (404, Some("openai")), "{row:#?}");
    assert_follow_up_ok(&agent, "after unknown path");
}

const PY_UNREACHABLE: &str = r#"
import json, anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
out = {}
try:
    c.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "nobody home"}])
    out["create"] = "no error"
except anthropic.APIStatusError as e:
    out["create"] = {"cls": type(e).__name__, "status": e.status_code, "body": e.response.text}
try:
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "nobody home"}]) as s:
        "".join(s.text_stream)
    out["stream"] = "no error"
except anthropic.APIStatusError as e:
    out["stream"] = {"cls": type(e).__name__, "status": e.status_code, "body": e.response.text}
print(json.dumps(out))
"#;

#[test]
fn unreachable_upstream_gets_502_in_the_client_format() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    let dead = closed_port();
    cfg.resolve.insert("api.anthropic.com".into(), dead);
    let agent = Agent::start(&cfg);

    let mut cmd = clients.python_cmd(PY_UNREACHABLE);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e");
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("python anthropic SDK");
    let r = out.last_json();
    for call in ["create", "stream"] {
        assert_eq!(r[call]["status"], 502, "{call}: {r}");
        let msg = anthropic_error(r[call]["body"].as_str().unwrap());
        assert!(msg.contains("cannot reach the provider at api.anthropic.com"), "{msg}");
    }
    let rows = agent.wait_audit_rows(2);
    for row in &rows {
        assert_eq!((row.status, row.verdict.as_str()), (502, "error"), "{row:#?}");
        assert!(
            row.rest["error"].as_str().is_some_and(|e| e.contains("unreachable")),
            "{row:#?}"
        );
    }
    // OpenAI still resolves to the fake: the proxy keeps serving.
    let (status, body) = chat_post(&agent, &chat_body("still here"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("You said: still here"));
}

#[test]
fn upstream_timeout_gets_504_in_the_client_format() {
    // The Anthropic host answers only after a long pause; OpenAI is prompt.
    let slow = FakeProvider::start_background(FakeOptions {
        think_delay_ms: 30_000,
        ..Default::default()
    })
    .unwrap();
    let fast = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fast);
    cfg.resolve.insert("api.anthropic.com".into(), slow.addr);
    cfg.extra_roots.push(slow.ca_pem_path.clone());
    cfg.toml_extra = "[limits]\nupstream_response_timeout_secs = 2\n".into();
    let agent = Agent::start(&cfg);

    let (status, body) = anthropic_post(&agent, &messages_body("are you there"), &[]);
    assert_eq!(status, 504, "{body}");
    let msg = anthropic_error(&body);
    assert!(msg.contains("did not answer within 2 s"), "{msg}");
    let row = last_row(&agent, 1);
    assert_eq!((row.status, row.verdict.as_str()), (504, "error"), "{row:#?}");

    let (status, body) = chat_post(&agent, &chat_body("fast one"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("You said: fast one"));
    drop(slow);
}

const PY_TOO_BIG: &str = r#"
import json, anthropic, openai
big = "x" * 300000
out = {}
try:
    anthropic.Anthropic(max_retries=0, timeout=60).messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": big}])
    out["anthropic"] = "no error"
except anthropic.APIStatusError as e:
    out["anthropic"] = {"status": e.status_code, "body": e.response.text}
try:
    openai.OpenAI(max_retries=0, timeout=60).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": big}])
    out["openai"] = "no error"
except openai.APIStatusError as e:
    out["openai"] = {"status": e.status_code, "body": e.response.text}
print(json.dumps(out))
"#;

#[test]
fn body_over_the_limit_gets_413_in_the_client_format() {
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    cfg.toml_extra = "[limits]\nmax_request_bytes = 65536\n".into();
    let agent = Agent::start(&cfg);

    let big = messages_body(&"y".repeat(300_000));
    let file = agent.dir.path().join("big.json");
    std::fs::write(&file, &big).unwrap();
    let (status, body) = anthropic_post(&agent, &format!("@{}", file.display()), &[]);
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["type"],
        "request_too_large",
        "Anthropic's 413 type"
    );
    let msg = anthropic_error(&body);
    assert!(
        msg.contains("65536-byte limit") && msg.contains("max_request_bytes"),
        "{msg}"
    );

    if let Some(clients) = TestClients::find() {
        let mut cmd = clients.python_cmd(PY_TOO_BIG);
        cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
            .env("ANTHROPIC_API_KEY", "sk-ant-e2e")
            .env("OPENAI_BASE_URL", agent.openai_base_url())
            .env("OPENAI_API_KEY", "sk-e2e");
        let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
        out.expect_success("python SDKs with a giant body");
        let r = out.last_json();
        assert_eq!(r["anthropic"]["status"], 413, "{r}");
        assert!(anthropic_error(r["anthropic"]["body"].as_str().unwrap()).contains("limit"));
        assert_eq!(r["openai"]["status"], 413, "{r}");
        assert!(openai_error(r["openai"]["body"].as_str().unwrap()).contains("limit"));
    }
    assert!(fake.recorded().is_empty(), "an oversized body must not be forwarded");
    let rows = agent.audit_rows(&[]);
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.status == 413 && r.verdict == "error"),
        "{rows:#?}"
    );
    assert_follow_up_ok(&agent, "after a giant body");
}

const PY_DISCONNECT: &str = r#"
import json, anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
got = ""
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                       extra_headers={"x-fake-events": "60", "x-fake-slow": "1"},
                       messages=[{"role": "user", "content": "long story"}]) as s:
    for text in s.text_stream:
        got += text
        break
print(json.dumps({"first": got}))
"#;

#[test]
fn client_that_disconnects_mid_stream_is_audited_and_the_proxy_goes_on() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let mut cmd = clients.python_cmd(PY_DISCONNECT);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e");
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("python SDK that hangs up");
    assert_eq!(out.last_json()["first"], "You ");

    let row = last_row(&agent, 1);
    assert_eq!(row.status, 200, "{row:#?}");
    let err = row.rest["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("client disconnected"),
        "the row must say the client left: {row:#?}"
    );
    assert_follow_up_ok(&agent, "after a hang-up");
    assert_eq!(agent.wait_audit_rows(2).len(), 2);
}

#[test]
fn a_raw_socket_that_sends_half_a_request_and_leaves() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    // Promises 1000 body bytes, sends 10, hangs up.
    let mut s = TcpStream::connect(agent.explicit).unwrap();
    s.write_all(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
    )
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    drop(s);
    let row = last_row(&agent, 1);
    assert_eq!(
        (row.status, row.verdict.as_str()),
        (400, "error"),
        "{row:#?}\nanswer: {answer}"
    );
    assert!(
        row.rest["error"].as_str().is_some_and(|e| e.contains("client aborted")),
        "{row:#?}"
    );
    assert!(fake.recorded().is_empty());
    assert_follow_up_ok(&agent, "after a half request");
}

fn https_curl(agent: &Agent, sni: &str, ca: &std::path::Path, args: &[&str]) -> RunOutput {
    let tls = agent.explicit_tls.expect("explicit_tls listener");
    let resolve = format!("{sni}:{}:127.0.0.1", tls.port());
    let url = format!("https://{sni}:{}/v1/messages", tls.port());
    let mut all = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    all.extend_from_slice(args);
    all.push(&url);
    curl(&all)
}

#[test]
fn broken_tls_on_the_explicit_https_listener_closes_cleanly() {
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    cfg.explicit_tls = Some("127.0.0.1:0".parse().unwrap());
    let agent = Agent::start(&cfg);
    let tls = agent
        .explicit_tls
        .expect("the readiness line names the explicit_tls address");
    let ca = agent.dir.path().join("exported-ca.pem");
    let export = agent.cli(&["ca", "export"]);
    export.expect_success("promptwall ca export");
    std::fs::write(&ca, &export.stdout).unwrap();

    // Plain HTTP to the TLS port.
    let out = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        &messages_body("x"),
        &format!("http://{tls}/v1/messages"),
    ]);
    assert!(!out.success(), "plain HTTP on the TLS port must fail: {out:?}");
    // Garbage bytes.
    let mut s = TcpStream::connect(tls).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 1, 2, 3]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf); // an alert or EOF, but it returns
    drop(s);
    // A client that trusts another CA aborts the handshake.
    let out = https_curl(
        &agent,
        "api.anthropic.com",
        &fake.ca_pem_path,
        &["-d", &messages_body("x")],
    );
    assert!(
        !out.success() && out.stderr.to_lowercase().contains("certificate"),
        "{out:?}"
    );
    // A server name the CA may not vouch for: the proxy refuses to mint.
    let out = https_curl(&agent, "intranet.example.com", &ca, &["-d", &messages_body("x")]);
    assert!(!out.success(), "{out:?}");

    assert!(fake.recorded().is_empty());
    let status = agent.cli(&["status", "--json"]);
    status.expect_success("promptwall status --json");
    let doc = status.last_json();
    assert!(doc["counts"]["tls_handshake_failures"].as_u64().unwrap() >= 4, "{doc}");
    assert!(agent.audit_rows(&[]).is_empty(), "no request, no row");

    // The listener still serves a good client.
    let out = https_curl(
        &agent,
        "api.anthropic.com",
        &ca,
        &[
            "-H",
            "content-type: application/json",
            "-H",
            "anthropic-version: 2023-06-01",
            "-d",
            &messages_body("over tls"),
        ],
    );
    out.expect_success("curl over the explicit HTTPS listener");
    assert_eq!(out.last_json()["content"][0]["text"], "You said: over tls");
    let row = last_row(&agent, 1);
    assert_eq!((row.status, row.listener.as_str()), (200, "explicit"), "{row:#?}");
}

#[test]
fn client_that_gives_up_before_the_answer_is_still_audited() {
    // The provider thinks for a long time; curl gives up after a second.
    let slow = FakeProvider::start_background(FakeOptions {
        think_delay_ms: 120_000,
        ..Default::default()
    })
    .unwrap();
    let fast = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fast);
    cfg.resolve.insert("api.anthropic.com".into(), slow.addr);
    cfg.extra_roots.push(slow.ca_pem_path.clone());
    let agent = Agent::start(&cfg);
    let out = curl(&[
        "--max-time",
        "1",
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "-d",
        &messages_body("too slow for me"),
        &format!("{}/v1/messages", agent.anthropic_base_url()),
    ]);
    assert!(out.timed_out || !out.success(), "curl should have given up: {out:?}");
    // The request was already on its way to the provider: it must be on record.
    let row = last_row(&agent, 1);
    assert_eq!(row.status, 499, "{row:#?}");
    assert_eq!(row.model.as_deref(), Some("claude-sonnet-4-5"));
    assert!(
        row.rest["error"]
            .as_str()
            .is_some_and(|e| e.contains("client disconnected before")),
        "{row:#?}"
    );

    let (status, body) = chat_post(&agent, &chat_body("fast one"));
    assert_eq!(status, 200, "{body}");
    drop(slow);
}

const PY_HANGUP_IN_PAUSE: &str = r#"
import json, anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
seen = []
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "SLOWSTREAM think hard"}]) as s:
    for ev in s:
        seen.append(ev.type)
        break
print(json.dumps({"seen": seen}))
"#;

#[test]
fn client_that_hangs_up_during_a_pause_is_audited_at_once() {
    let Some(clients) = TestClients::find() else { return };
    // Two minutes between streamed events: a long "thinking" gap.
    let fake = FakeProvider::start_background(FakeOptions {
        slow_delay_ms: 120_000,
        ..Default::default()
    })
    .unwrap();
    let agent = Agent::start_explicit(&fake);
    let mut cmd = clients.python_cmd(PY_HANGUP_IN_PAUSE);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e");
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("python SDK that hangs up in a pause");
    assert_eq!(out.last_json()["seen"], json!(["message_start"]));
    // The row is written when the client leaves, not when the provider
    // speaks again (two minutes later, beyond wait_audit_rows' bound).
    let row = last_row(&agent, 1);
    assert_eq!(row.status, 200, "{row:#?}");
    assert!(
        row.rest["error"]
            .as_str()
            .is_some_and(|e| e.contains("client disconnected")),
        "{row:#?}"
    );
    assert_eq!(
        row.input_tokens,
        fake.recorded()[0].reply_usage.map(|u| u.input_tokens as i64)
    );
}

#[test]
fn a_client_that_stalls_mid_body_gets_408_in_its_format() {
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    cfg.toml_extra = "[limits]\nclient_read_timeout_secs = 2\n".into();
    let agent = Agent::start(&cfg);
    // Promises 1000 body bytes, sends 10, then waits (connection kept open).
    let mut s = TcpStream::connect(agent.explicit).unwrap();
    s.write_all(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the JSON body has arrived (or the proxy closes).
    while !String::from_utf8_lossy(&answer).trim_end().ends_with('}') {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(anthropic_error(body).contains("did not arrive within 2 s"), "{body}");
    drop(s);
    let row = last_row(&agent, 1);
    assert_eq!((row.status, row.verdict.as_str()), (408, "error"), "{row:#?}");
    assert!(fake.recorded().is_empty());
    assert_follow_up_ok(&agent, "after a stalled body");
}

#[test]
fn a_large_body_under_the_limit_is_forwarded_whole() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    // ~2 MB: curl sends `Expect: 100-continue` for bodies this size.
    let text = format!("{} mail bob@example.net", "word ".repeat(420_000));
    let file = agent.dir.path().join("large.json");
    std::fs::write(&file, messages_body(&text)).unwrap();
    let out = curl(&[
        "-v",
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{}/v1/messages", agent.anthropic_base_url()),
    ]);
    out.expect_success("curl with a 2 MB body");
    assert!(
        out.stderr.contains("Expect: 100-continue"),
        "curl should have asked to continue: {}",
        out.stderr
    );
    let answer: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        answer["content"][0]["text"],
        format!("You said: {text}"),
        "restored in a large answer"
    );
    let seen = fake.recorded_for("/v1/messages");
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].header("expect").is_none(),
        "the proxy buffered the body; Expect must not go upstream"
    );
    assert_eq!(
        seen[0].header("content-length").map(|v| v.parse::<usize>().unwrap()),
        Some(seen[0].body.len())
    );
    assert!(seen[0].body_text().contains("mail [[EMAIL_001]]"));
    assert_eq!(last_row(&agent, 1).verdict, "redacted");
}

#[test]
fn a_client_that_closes_after_a_complete_answer_is_not_a_hang_up() {
    // curl closes its connection as soon as it has Content-Length bytes,
    // often before the proxy sees the provider's end of stream.
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    for i in 0..12 {
        let (status, body) = anthropic_post(&agent, &messages_body(&format!("complete {i}")), &[]);
        assert_eq!(status, 200, "{body}");
    }
    let rows = agent.wait_audit_rows(12);
    let flagged: Vec<&AuditRow> = rows.iter().filter(|r| !r.rest["error"].is_null()).collect();
    assert!(
        flagged.is_empty(),
        "complete exchanges recorded as errors: {flagged:#?}"
    );
}

#[test]
fn used_as_an_https_proxy_it_says_to_use_a_base_url() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let out = curl(&[
        "-x",
        &format!("http://{}", agent.explicit),
        "https://api.anthropic.com/v1/messages",
        "-d",
        "{}",
    ]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("405"),
        "CONNECT is refused with 405: {}",
        out.stderr
    );
    let row = last_row(&agent, 1);
    assert_eq!((row.status, row.method.as_deref()), (405, Some("CONNECT")), "{row:#?}");
    assert!(
        row.rest["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an HTTP proxy")),
        "{row:#?}"
    );
    assert!(fake.recorded().is_empty());
    assert_follow_up_ok(&agent, "after CONNECT");
}

const PY_BROKEN_STREAM: &str = r#"
import json, os, pathlib, anthropic, openai
marker = pathlib.Path(os.environ["MARKER"])
h = {"x-fake-events": "60", "x-fake-slow": "1"}
got, err = "", None
try:
    if os.environ["API"] == "anthropic":
        c = anthropic.Anthropic(max_retries=0, timeout=60)
        with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, extra_headers=h,
                               messages=[{"role": "user", "content": "break me"}]) as s:
            for t in s.text_stream:
                got += t
                marker.touch()
    else:
        c = openai.OpenAI(max_retries=0, timeout=60)
        for ch in c.chat.completions.create(model="gpt-4o", stream=True, extra_headers=h,
                                            messages=[{"role": "user", "content": "break me"}]):
            if ch.choices and ch.choices[0].delta.content:
                got += ch.choices[0].delta.content
                marker.touch()
except Exception as e:
    err = {"cls": type(e).__name__, "msg": str(e)}
print(json.dumps({"got": got, "err": err}))
"#;

/// The provider dies mid-stream; the client must get an error it can
/// parse (its own API's error event), not a truncated body.
fn provider_dies_mid_stream(api: &str) -> Option<(Value, Agent)> {
    let clients = TestClients::find()?;
    let fake = FakeProvider::start_background(FakeOptions {
        slow_delay_ms: 200,
        ..Default::default()
    })
    .unwrap();
    let agent = Agent::start_explicit(&fake);
    let marker = agent.dir.path().join(format!("{api}-streaming"));
    let mut cmd = clients.python_cmd(PY_BROKEN_STREAM);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e")
        .env("OPENAI_BASE_URL", agent.openai_base_url())
        .env("OPENAI_API_KEY", "sk-e2e")
        .env("API", api)
        .env("MARKER", &marker);
    let client = std::thread::spawn(move || run_bounded(&mut cmd, CLIENT_TIMEOUT));
    // Kill the provider once the client has seen text arrive.
    for _ in 0..600 {
        if marker.exists() || client.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(marker.exists(), "the client never received streamed text");
    drop(fake);
    let out = client.join().unwrap();
    out.expect_success("python client on a broken stream");
    Some((out.last_json(), agent))
}

fn assert_broken_stream_reported(r: &Value, agent: &Agent, error_class: &str) {
    assert!(r["got"].as_str().is_some_and(|t| t.starts_with("You")), "{r}");
    assert_eq!(
        r["err"]["cls"], error_class,
        "the SDK must see an API error event, not a cut connection: {r}"
    );
    assert!(r["err"]["msg"].as_str().unwrap().contains("stream broke off"), "{r}");
    let row = last_row(agent, 1);
    assert!(
        row.rest["error"].as_str().is_some_and(|e| e.contains("broke off")),
        "{row:#?}"
    );
}

#[test]
fn provider_dying_mid_stream_gives_anthropic_clients_an_error_event() {
    let Some((r, agent)) = provider_dies_mid_stream("anthropic") else {
        return;
    };
    assert_broken_stream_reported(&r, &agent, "APIStatusError");
}

#[test]
fn provider_dying_mid_stream_gives_openai_clients_an_error_chunk() {
    let Some((r, agent)) = provider_dies_mid_stream("openai") else {
        return;
    };
    assert_broken_stream_reported(&r, &agent, "APIError");
}
