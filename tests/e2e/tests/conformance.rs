//! The wire rules proxies in this field keep breaking, one test each, through
//! the real `promptwall up` (explicit listener) to the fake provider. Where
//! "unchanged" is the rule, the answer through promptwall is compared with
//! the fake's own answer fetched directly (ids masked).
//!
//! Already covered elsewhere: unbuffered streaming with a gated upstream
//! (proxy/tests/forwarding.rs), hop-by-hop stripping (same file), placeholder
//! restoration split across deltas in every shape (pipeline.rs).

use std::process::Command;
use std::time::Duration;

use promptwall_e2e::process::clean_env;
use promptwall_e2e::{run_bounded, start_fake, Agent, AuditRow, FakeHandle, RecordedRequest};
use promptwall_fake_provider::anthropic::THINKING_TEXT;
use promptwall_fake_provider::scenario::thinking_signature;
use serde_json::{json, Value};

const EMAIL: &str = "jane.doe@example.org";

/// Status, response headers (lower-case names) and body of one curl call.
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn curl(args: &[&str]) -> Http {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let mut cmd = Command::new("curl");
    clean_env(&mut cmd)
        .args(["-sS", "--max-time", "60", "-D"])
        .arg(&head)
        .args(args);
    let out = run_bounded(&mut cmd, Duration::from_secs(90));
    out.expect_success("curl");
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    // The last header block (after any 100 Continue).
    let block = head.trim_end().rsplit("\r\n\r\n").next().unwrap_or("");
    let mut lines = block.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body: out.stdout,
    }
}

/// POST through the explicit listener (`path` may carry a `/<provider>/` prefix).
fn via(agent: &Agent, path: &str, body: &str, headers: &[&str]) -> Http {
    let url = format!("http://{}{path}", agent.explicit);
    let mut args: Vec<&str> = vec!["-H", "content-type: application/json"];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.extend(["--data-binary", body, &url]);
    curl(&args)
}

/// The same POST straight to the fake over TLS, under the provider's name.
fn direct(fake: &FakeHandle, host: &str, path: &str, body: &str, headers: &[&str]) -> Http {
    let port = fake.addr.port();
    let resolve = format!("{host}:{port}:{}", fake.addr.ip());
    let url = format!("https://{host}:{port}{path}");
    let ca = fake.ca_pem_path.display().to_string();
    let mut args: Vec<&str> = vec![
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-H",
        "content-type: application/json",
    ];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.extend(["--data-binary", body, &url]);
    curl(&args)
}

/// Masks the fake's per-request counters (`msg_fake0012`) so two answers compare.
fn mask_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("_fake") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push('N');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    // created_at seconds may tick between the two calls.
    out.split("\"created_at\":")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_string()
            } else {
                format!(
                    "\"created_at\":0{}",
                    part.trim_start_matches(|c: char| c.is_ascii_digit())
                )
            }
        })
        .collect::<Vec<_>>()
        .join("")
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

fn only(fake: &FakeHandle, path: &str, marker: &str) -> RecordedRequest {
    let hits: Vec<_> = fake
        .recorded_for(path)
        .into_iter()
        .filter(|r| r.body_text().contains(marker))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "one {path} request with {marker:?} expected: {:#?}",
        fake.recorded()
    );
    hits.into_iter().next().unwrap()
}

fn row_for(agent: &Agent, n: usize, path: &str) -> AuditRow {
    let rows = agent.wait_audit_rows(n);
    let hits: Vec<_> = rows.into_iter().filter(|r| r.path.as_deref() == Some(path)).collect();
    assert_eq!(hits.len(), 1, "one audit row for {path} expected: {hits:#?}");
    hits.into_iter().next().unwrap()
}

fn llm_flag(row: &AuditRow) -> Option<bool> {
    row.rest.get("llm").and_then(Value::as_bool)
}

const AV: &str = "anthropic-version: 2023-06-01";

#[test]
fn count_tokens_with_beta_query_reaches_the_provider() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "count these tokens"}]})
        .to_string();
    let beta = "anthropic-beta: token-counting-2024-11-01,claude-code-20250219";
    let got = via(
        &agent,
        "/v1/messages/count_tokens?beta=true",
        &body,
        &[AV, beta, "x-api-key: sk-ant-api03-test"],
    );
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = only(&fake, "/v1/messages/count_tokens", "count these tokens");
    assert_eq!(seen.query.as_deref(), Some("beta=true"));
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("token-counting-2024-11-01,claude-code-20250219")
    );
    let want = promptwall_fake_provider::scenario::input_tokens(seen.body.len());
    assert_eq!(got.json(), json!({"input_tokens": want}));
    let row = row_for(&agent, 1, "/v1/messages/count_tokens");
    assert_eq!(row.status, 200);
    assert_eq!(row.provider.as_deref(), Some("anthropic"));
}

#[test]
fn provider_headers_oauth_bearer_and_account_id_are_forwarded_untouched() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let oat = "Bearer sk-ant-oat01-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AA";
    let sent = [
        ("authorization", oat),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14",
        ),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("x-claude-code-session-id", "5b0e1c9e-7e43-4d7a-9d43-1f0b3f7a2b11"),
        ("x-unknown-vendor-header", "Keep Me; exactly=as-is"),
    ];
    let hs: Vec<String> = sent.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    let hs: Vec<&str> = hs.iter().map(String::as_str).collect();
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "oauth header check"}]});
    let got = via(&agent, "/v1/messages?beta=true", &body.to_string(), &hs);
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = only(&fake, "/v1/messages", "oauth header check");
    for (name, value) in sent {
        assert_eq!(seen.header_all(name), [value], "header {name} as the provider saw it");
    }

    let sent = [
        ("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl"),
        ("chatgpt-account-id", "8f0d2c4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f"),
        ("openai-beta", "responses=experimental"),
        ("originator", "codex_exec"),
        ("x-unknown-vendor-header", "two words"),
    ];
    let hs: Vec<String> = sent.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    let hs: Vec<&str> = hs.iter().map(String::as_str).collect();
    let body = json!({"model": "gpt-5", "stream": false, "store": false, "input": "account header check"});
    let got = via(&agent, "/chatgpt/backend-api/codex/responses", &body.to_string(), &hs);
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = only(&fake, "/backend-api/codex/responses", "account header check");
    for (name, value) in sent {
        assert_eq!(seen.header_all(name), [value], "header {name} as the provider saw it");
    }
    assert_eq!(seen.conn.sni.as_deref(), Some("chatgpt.com"));

    let rows = agent.wait_audit_rows(2);
    assert_eq!(
        rows.iter().map(|r| r.tool.as_deref().unwrap_or("")).collect::<Vec<_>>(),
        ["claude-code", "codex"]
    );
    assert!(
        rows.iter().all(|r| r.verdict == "allowed" && r.status == 200),
        "{rows:#?}"
    );
}

#[test]
fn upstream_429_and_529_come_back_byte_for_byte() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let cases = [
        (
            "api.anthropic.com",
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 8, "stream": true, "messages": [{"role": "user", "content": "FAKESTATUS429"}]}),
        ),
        (
            "api.anthropic.com",
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "FAKESTATUS529"}]}),
        ),
        (
            "api.openai.com",
            "/v1/responses",
            json!({"model": "gpt-5", "stream": true, "input": "FAKESTATUS429"}),
        ),
        (
            "api.openai.com",
            "/v1/responses",
            json!({"model": "gpt-5", "input": "FAKESTATUS529"}),
        ),
    ];
    for (host, path, body) in &cases {
        let body = body.to_string();
        let hs = if host.contains("anthropic") { vec![AV] } else { vec![] };
        let ours = via(&agent, path, &body, &hs);
        let theirs = direct(&fake, host, path, &body, &hs);
        assert!(
            matches!(ours.status, 429 | 529),
            "{path}: {} {}",
            ours.status,
            ours.body
        );
        assert_eq!(ours.status, theirs.status, "{path}");
        assert_eq!(
            mask_ids(&ours.body),
            mask_ids(&theirs.body),
            "{path}: error body changed"
        );
        for h in ["retry-after", "x-should-retry", "content-type"] {
            assert_eq!(
                ours.header(h).is_some(),
                theirs.header(h).is_some(),
                "{path}: header {h}"
            );
            if h != "content-type" {
                assert_eq!(ours.header(h), theirs.header(h), "{path}: header {h}");
            }
        }
    }
    let rows = agent.wait_audit_rows(4);
    assert_eq!(rows.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 529, 429, 529]);
}

/// Thinking, text and a tool call streamed with pings: every event, in
/// order, with `input_json_delta` pieces and `message_start` usage as sent.
#[test]
fn anthropic_stream_events_order_ping_tool_json_and_usage_are_intact() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "TOOLTEST conformance", "cache_control": {"type": "ephemeral"}}]}],
    })
    .to_string();
    let ours = via(&agent, "/v1/messages", &body, &[AV]);
    let theirs = direct(&fake, "api.anthropic.com", "/v1/messages", &body, &[AV]);
    assert_eq!(ours.status, 200, "{}", ours.body);
    assert_eq!(
        mask_ids(&ours.body),
        mask_ids(&theirs.body),
        "the stream changed on its way through"
    );

    let ev = sse_events(&ours.body);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"ping"), "{names:?}");
    let starts: Vec<&str> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .filter_map(|(_, v)| v["content_block"]["type"].as_str())
        .collect();
    assert_eq!(starts, ["thinking", "text", "tool_use"]);
    let json_parts: Vec<&str> = ev
        .iter()
        .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
        .collect();
    assert!(json_parts.len() >= 3, "{json_parts:?}");
    let input: Value = serde_json::from_str(&json_parts.concat()).unwrap();
    assert_eq!(input["command"], "echo 'hello-from-tool'");

    // The first of the two identical requests is the one through promptwall.
    let seen = fake.recorded_for("/v1/messages").remove(0);
    let usage = seen.reply_usage.unwrap();
    assert_eq!(ev[0].1["message"]["usage"]["input_tokens"], usage.input_tokens);
    assert_eq!(ev[0].1["message"]["usage"]["cache_read_input_tokens"], 7);
    // cache_control reached the provider everywhere it was set.
    let sent: Value = serde_json::from_str(&body).unwrap();
    let got = seen.json.as_ref().unwrap();
    for ptr in [
        "/system/0/cache_control",
        "/tools/0/cache_control",
        "/messages/0/content/0/cache_control",
    ] {
        assert_eq!(got.pointer(ptr), sent.pointer(ptr), "{ptr}");
    }
    let row = agent.wait_audit_rows(1).remove(0);
    assert_eq!(row.input_tokens, Some(usage.input_tokens as i64));
    assert_eq!(row.output_tokens, Some(usage.output_tokens as i64));
    assert_eq!((row.cache_read_tokens, row.cache_write_tokens), (Some(7), Some(5)));
}

/// A signed thinking block goes to the client and back to the provider
/// byte-exact, even when the same request has PII redacted (the fake, like
/// the API, rejects an altered block with 400).
#[test]
fn signed_thinking_blocks_are_byte_exact_both_ways() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let first = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": format!("thinking turn for {EMAIL}")}],
    });
    let got = via(&agent, "/v1/messages", &first.to_string(), &[AV]);
    assert_eq!(got.status, 200, "{}", got.body);
    let sig = thinking_signature(THINKING_TEXT);
    let block = format!(r#"{{"type":"thinking","thinking":"{THINKING_TEXT}","signature":"{sig}"}}"#);
    assert!(
        got.body.contains(&block),
        "the client did not get the block as signed: {}",
        got.body
    );
    let answer = got.json();
    assert!(
        answer["content"][1]["text"].as_str().unwrap().contains(EMAIL),
        "restored: {answer}"
    );

    // Follow-up sends the block back verbatim (raw text, not re-serialized).
    let text_block = answer["content"][1].to_string();
    let follow = format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":256,"thinking":{{"type":"enabled","budget_tokens":1024}},"messages":[{{"role":"user","content":"thinking turn for {EMAIL}"}},{{"role":"assistant","content":[{block},{text_block}]}},{{"role":"user","content":"second turn for {EMAIL}"}}]}}"#
    );
    let got = via(&agent, "/v1/messages", &follow, &[AV]);
    assert_eq!(
        got.status, 200,
        "the provider rejected the thinking block: {}",
        got.body
    );
    let seen = only(&fake, "/v1/messages", "second turn for");
    let raw = seen.body_text();
    assert!(!raw.contains(EMAIL), "the email reached the provider");
    assert!(
        raw.contains(&format!(r#""thinking":"{THINKING_TEXT}""#)) && raw.contains(&format!(r#""signature":"{sig}""#)),
        "{raw}"
    );
    let rows = agent.wait_audit_rows(2);
    assert!(rows.iter().all(|r| r.verdict == "redacted"), "{rows:#?}");
}

/// Responses SSE: the lifecycle is the provider's, deltas carry placeholders
/// restored, and the full-text `*.done` / `response.completed` payloads show
/// the original; `store:false` reaches the provider.
#[test]
fn responses_lifecycle_restores_done_payloads_and_keeps_store_false() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let body = json!({"model": "gpt-5", "stream": true, "store": false, "include": ["reasoning.encrypted_content"], "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": format!("write to {EMAIL}")}]}]}).to_string();
    let ours = via(&agent, "/v1/responses", &body, &[]);
    assert_eq!(ours.status, 200, "{}", ours.body);
    let seen = only(&fake, "/v1/responses", "write to");
    let sent = seen.json.as_ref().unwrap();
    assert_eq!(sent["store"], false);
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
    assert!(!seen.body_text().contains(EMAIL));

    let ev = sse_events(&ours.body);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    let mut kinds = names.clone();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let seqs: Vec<u64> = ev.iter().filter_map(|(_, v)| v["sequence_number"].as_u64()).collect();
    assert_eq!(seqs, (0..names.len() as u64).collect::<Vec<_>>());
    let want = format!("You said: write to {EMAIL}");
    let deltas: String = ev.iter().filter_map(|(_, v)| v["delta"].as_str()).collect();
    assert_eq!(deltas, want);
    let by = |n: &str| &ev.iter().find(|(k, _)| k == n).unwrap().1;
    assert_eq!(by("response.output_text.done")["text"], want.as_str());
    assert_eq!(by("response.content_part.done")["part"]["text"], want.as_str());
    assert_eq!(
        by("response.output_item.done")["item"]["content"][0]["text"],
        want.as_str()
    );
    let done = &by("response.completed")["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], want.as_str());
    assert_eq!(done["store"], false);
    let row = agent.wait_audit_rows(1).remove(0);
    assert_eq!(row.verdict, "redacted");
    assert_eq!(row.output_tokens, Some(seen.reply_usage.unwrap().output_tokens as i64));
}

/// Clients' non-LLM calls on provider hosts (settings, policy, sign-in,
/// model lists) pass through unchanged, answers included, and are audited
/// as non-LLM.
#[test]
fn non_llm_paths_pass_through_and_are_audited_as_non_llm() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let base = format!("http://{}", agent.explicit);
    let oat = "authorization: Bearer sk-ant-oat01-NonLlmPathToken0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL";
    let settings = curl(&[
        "-H",
        oat,
        "-H",
        AV,
        &format!("{base}/anthropic/api/claude_code/settings"),
    ]);
    let direct_settings = {
        let port = fake.addr.port();
        let resolve = format!("api.anthropic.com:{port}:{}", fake.addr.ip());
        curl(&[
            "--cacert",
            &fake.ca_pem_path.display().to_string(),
            "--resolve",
            &resolve,
            &format!("https://api.anthropic.com:{port}/api/claude_code/settings"),
        ])
    };
    assert_eq!(
        settings.status, 404,
        "the fake does not serve settings: its 404 comes back"
    );
    assert_eq!(mask_ids(&settings.body), mask_ids(&direct_settings.body));
    let oauth = via(
        &agent,
        "/anthropic/api/oauth/claude_cli/create_api_key",
        "{\"name\":\"cli\"}",
        &[oat],
    );
    assert_eq!(oauth.status, 404, "{}", oauth.body);
    let models = curl(&[&format!(
        "{base}/chatgpt/backend-api/codex/models?client_version=0.169.0"
    )]);
    assert_eq!((models.status, models.json()), (200, json!({"models": []})));

    let seen = fake.recorded();
    let settings_seen = seen
        .iter()
        .find(|r| r.path == "/api/claude_code/settings")
        .expect("settings reached the fake");
    assert_eq!(
        settings_seen.header("authorization"),
        Some(&oat["authorization: ".len()..])
    );
    assert!(seen
        .iter()
        .any(|r| r.path == "/api/oauth/claude_cli/create_api_key" && r.body_text() == "{\"name\":\"cli\"}"));
    let models_seen = seen.iter().find(|r| r.path == "/backend-api/codex/models").unwrap();
    assert_eq!(models_seen.query.as_deref(), Some("client_version=0.169.0"));

    let rows = agent.wait_audit_rows(3);
    for row in &rows {
        assert_eq!(row.shape.as_deref(), Some("other"), "{row:#?}");
        assert_eq!(llm_flag(row), Some(false), "{row:#?}");
        assert_eq!(row.verdict, "allowed", "{row:#?}");
        assert_eq!(row.model, None);
    }
}

/// A WebSocket promptwall cannot inspect (Chat/Messages, Realtime, a path it
/// does not know) is refused (426), never relayed: clients then fall back to
/// HTTP, which is inspected.
#[test]
fn websocket_on_an_uninspected_path_is_refused() {
    let fake = start_fake(true);
    let agent = Agent::start_explicit(&fake);
    for path in [
        "/v1/chat/completions",
        "/anthropic/v1/messages",
        "/v1/realtime?model=gpt-realtime",
        "/anthropic/api/ws",
    ] {
        let got = curl(&[
            "-H",
            "connection: Upgrade",
            "-H",
            "upgrade: websocket",
            "-H",
            "sec-websocket-version: 13",
            "-H",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            &format!("http://{}{path}", agent.explicit),
        ]);
        assert_eq!(got.status, 426, "{path}: {}", got.body);
        assert!(got.body.contains("not inspected"), "{path}: {}", got.body);
    }
    assert!(
        fake.recorded().is_empty(),
        "an uninspected WebSocket reached the provider: {:#?}",
        fake.recorded()
    );
}

/// The upstream leg negotiates h2 by ALPN with a provider that offers it and
/// keeps the connection: separate client requests share one pooled provider
/// connection instead of paying a TLS handshake each.
#[test]
fn the_upstream_leg_speaks_h2_and_reuses_its_connection() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"pooled"}]}"#;
    for _ in 0..3 {
        let got = via(
            &agent,
            "/anthropic/v1/messages",
            body,
            &["anthropic-version: 2023-06-01", "x-api-key: sk-ant-test"],
        );
        assert_eq!(got.status, 200, "{}", got.body);
    }
    let seen = fake.recorded();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(
            (r.conn.alpn.as_deref(), r.version.as_str()),
            (Some("h2"), "HTTP/2.0"),
            "{r:?}"
        );
        assert_eq!(r.conn.alpn_offered, vec!["h2", "http/1.1"], "{r:?}");
    }
    assert!(
        seen.iter().all(|r| r.conn.conn_id == seen[0].conn.conn_id),
        "a new provider connection per request: {:?}",
        seen.iter().map(|r| r.conn.conn_id).collect::<Vec<_>>()
    );
}
