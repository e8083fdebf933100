//! Transparent interception (issue 3), end to end: real eBPF on a child
//! cgroup, real nftables, real TLS, real clients with no base-URL or proxy
//! variable; the fake provider is the only stand-in. Each test gets its own
//! [`TransparentEnv`] (private namespaces; see tests/e2e/src/transparent.rs).
//!
//! Needs root, unshare, nsenter and the built agent + fake provider; the SDK
//! tests also need `cargo xtask setup`'s clients. Skips otherwise, unless
//! PROMPTWALL_REQUIRE_CLIENTS=1.

use std::time::Duration;

use promptwall_e2e::transparent::{CONFIG_ONLY_PROVIDER, SECOND_FAKE_IP};
use promptwall_e2e::{AuditRow, TestClients, TransparentEnv, TransparentOptions};
use serde_json::Value;

const EMAIL: &str = "jane.doe@example.org";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn env() -> Option<TransparentEnv> {
    TransparentEnv::start_or_skip(TransparentOptions::default())
}

fn aws_key() -> String {
    // Built at run time so the source holds no credential-shaped literal.
    format!("AKIA{}", "Q3EGUX7MZPW5KD4N")
}

/// curl to the Anthropic Messages API; prints the body then `\nHTTP <code>`.
fn curl_messages(prompt: &str, stream: bool) -> String {
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    });
    format!(
        "exec curl -sS --max-time 20 -w '\\nHTTP %{{http_code}}' https://api.anthropic.com/v1/messages \
         -H 'x-api-key: sk-ant-api03-e2e-transparent' -H 'anthropic-version: 2023-06-01' \
         -H 'content-type: application/json' -d '{}'",
        body.to_string().replace('\'', "'\\''")
    )
}

fn fake_with<'a>(reqs: &'a [Value], marker: &str) -> Vec<&'a Value> {
    reqs.iter()
        .filter(|r| r["body"].as_str().is_some_and(|b| b.contains(marker)))
        .collect()
}

/// The row of an LLM call by `tool`, attributed to the client process.
fn assert_row(row: &AuditRow, tool: &str, exe_part: &str) {
    assert_eq!(row.listener, "transparent", "{row:#?}");
    assert_eq!(row.tool.as_deref(), Some(tool), "{row:#?}");
    assert!(row.pid.is_some_and(|p| p > 1), "{row:#?}");
    assert!(row.exe.as_deref().is_some_and(|e| e.contains(exe_part)), "{row:#?}");
    assert_eq!(row.user.as_deref(), Some("root"), "{row:#?}");
    assert_eq!(row.rest.get("uid").and_then(Value::as_u64), Some(0), "{row:#?}");
}

#[test]
fn curl_in_the_cgroup_is_intercepted_and_attributed() {
    let Some(env) = env() else { return };
    let out = env.sh_in_cgroup(
        &format!("echo PID=$$ >&2; {}", curl_messages("tp-curl hello", false)),
        secs(30),
    );
    out.expect_success("curl through the redirect");
    let pid: u32 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("PID=")?.parse().ok())
        .expect("the client's pid");
    assert!(
        out.stdout.ends_with("HTTP 200"),
        "{out:?}\nagent log:\n{}",
        env.agent_log()
    );
    assert!(out.stdout.contains("You said: tp-curl hello"), "{out:?}");
    let reqs = env.fake_requests();
    let seen = fake_with(&reqs, "tp-curl hello");
    assert_eq!(seen.len(), 1, "{reqs:#?}");
    assert_eq!(seen[0]["sni"], "api.anthropic.com");
    let rows = env.wait_audit_rows(1);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_row(&rows[0], "curl", "/curl");
    assert_eq!(
        rows[0].pid,
        Some(pid),
        "the row names the client process (exec'd in place of the shell)"
    );
    assert_eq!(rows[0].verdict, "allowed");
}

fn clients() -> Option<TestClients> {
    TestClients::find()
}

const PY_ANTHROPIC: &str = r#"
import anthropic, json, os
a = anthropic.Anthropic(max_retries=0, timeout=30)
with a.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
        messages=[{"role": "user", "content": "tp-py mail jane.doe@example.org"}]) as s:
    print(json.dumps({"pid": os.getpid(), "text": "".join(s.text_stream)}))
"#;

const NODE_OPENAI: &str = r#"
const OpenAI = require("openai");
(async () => {
  const o = new (OpenAI.default || OpenAI)({ maxRetries: 0, timeout: 30000 });
  const r = await o.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "tp-node hello" }] });
  console.log(JSON.stringify({ pid: process.pid, text: r.choices[0].message.content }));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"#;

/// The Python `anthropic` SDK (streaming) and the Node `openai` SDK, with
/// trust only from the system store and the installer's variables: answered
/// by the fake through the proxy, PII redacted upstream and restored in the
/// stream, and audited under the client's process and tool name.
#[test]
fn python_and_node_sdks_in_the_cgroup_are_intercepted_and_attributed() {
    let Some(clients) = clients() else { return };
    let Some(env) = env() else { return };

    let mut py = env.command(clients.python(), &["-c", PY_ANTHROPIC]);
    py.env("ANTHROPIC_API_KEY", "sk-ant-api03-e2e-transparent");
    let out = env.run_in_cgroup(&py, secs(60));
    out.expect_success("python anthropic SDK");
    let py_out = out.last_json();
    assert_eq!(py_out["text"], format!("You said: tp-py mail {EMAIL}"), "{out:?}");

    let mut node = env.command("node", &["-e", NODE_OPENAI]);
    node.env("OPENAI_API_KEY", "sk-proj-e2e-transparent")
        .env("NODE_PATH", clients.node_modules());
    let out = env.run_in_cgroup(&node, secs(60));
    out.expect_success("node openai SDK");
    let node_out = out.last_json();
    assert_eq!(node_out["text"], "You said: tp-node hello", "{out:?}");

    let reqs = env.fake_requests();
    assert!(
        fake_with(&reqs, EMAIL).is_empty(),
        "the email reached the provider: {reqs:#?}"
    );
    let py_seen = fake_with(&reqs, "tp-py mail [[EMAIL_001]]");
    let node_seen = fake_with(&reqs, "tp-node hello");
    assert_eq!((py_seen.len(), node_seen.len()), (1, 1), "{reqs:#?}");
    assert_eq!(py_seen[0]["sni"], "api.anthropic.com");
    assert_eq!(node_seen[0]["sni"], "api.openai.com");
    assert_eq!(node_seen[0]["path"], "/v1/chat/completions");

    let rows = env.wait_audit_rows(2);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_row(&rows[0], "python-sdk", "python");
    assert_eq!(
        (rows[0].provider.as_deref(), rows[0].verdict.as_str()),
        (Some("anthropic"), "redacted")
    );
    assert_row(&rows[1], "node-sdk", "node");
    assert_eq!(
        (rows[1].provider.as_deref(), rows[1].verdict.as_str()),
        (Some("openai"), "allowed")
    );
    assert_eq!(rows[0].pid.map(u64::from), py_out["pid"].as_u64(), "{rows:#?}");
    assert_eq!(rows[1].pid.map(u64::from), node_out["pid"].as_u64(), "{rows:#?}");
    assert!(
        rows[1].exe.as_deref().is_some_and(|e| e.ends_with("/node")),
        "{rows:#?}"
    );
}

/// Streaming over curl: the provider gets the placeholder, the client's SSE
/// stream carries the original. An AWS key is refused with 422 in
/// Anthropic's error format and nothing reaches the provider.
#[test]
fn email_is_redacted_upstream_and_restored_and_an_aws_key_is_blocked() {
    let Some(env) = env() else { return };
    let out = env.sh_in_cgroup(&curl_messages(&format!("tp-stream mail {EMAIL}"), true), secs(30));
    out.expect_success("curl streaming");
    assert!(out.stdout.ends_with("HTTP 200"), "{out:?}");
    assert!(out.stdout.contains("event: message_stop"), "{out:?}");
    // The deltas concatenated are the original text.
    let text: String = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["type"] == "content_block_delta")
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, format!("You said: tp-stream mail {EMAIL}"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("[[EMAIL_"),
        "a placeholder reached the client: {}",
        out.stdout
    );
    let reqs = env.fake_requests();
    assert_eq!(fake_with(&reqs, "tp-stream mail [[EMAIL_001]]").len(), 1, "{reqs:#?}");
    assert!(fake_with(&reqs, EMAIL).is_empty(), "the email reached the provider");

    let key = aws_key();
    let out = env.sh_in_cgroup(&curl_messages(&format!("tp-secret deploy with {key}"), false), secs(30));
    out.expect_success("curl with a secret");
    let (body, code) = out.stdout.rsplit_once('\n').expect("body and status");
    assert_eq!(code, "HTTP 422", "{out:?}");
    let err: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(err["type"], "error", "{err}");
    assert!(err["error"]["type"].is_string(), "{err}");
    let msg = err["error"]["message"].as_str().expect("an error message");
    assert!(msg.contains("aws_access_key_id"), "{msg}");
    assert!(!body.contains(&key), "the key is echoed: {body}");
    let after = env.fake_requests();
    assert_eq!(
        after.len(),
        reqs.len(),
        "the provider received something: {:#?}",
        &after[reqs.len()..]
    );
    let rows = env.wait_audit_rows(2);
    assert_eq!(
        (rows[1].status, rows[1].verdict.as_str()),
        (422, "blocked"),
        "{rows:#?}"
    );
    assert_row(&rows[1], "curl", "/curl");
}

/// The issuer of the leaf served for `sni` at 127.0.0.2:443 (curl -v, not verified).
fn issuer(env: &TransparentEnv, sni: &str, in_cgroup: bool) -> String {
    let script =
        format!("curl -sSk -v --max-time 10 -o /dev/null --resolve {sni}:443:127.0.0.2 https://{sni}/v1/models");
    let out = if in_cgroup {
        env.sh_in_cgroup(&script, secs(20))
    } else {
        env.sh_outside(&script, secs(20))
    };
    out.expect_success("curl -v for the issuer");
    out.stderr
        .lines()
        .find_map(|l| {
            l.trim_start_matches('*')
                .trim()
                .strip_prefix("issuer:")
                .map(|i| i.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no issuer line in curl -v: {}", out.stderr))
}

/// Common names of the two CAs (ca/ and tests/fake-provider/src/tls.rs).
const ORG_CA_CN: &str = "CN=promptwall org CA";
const FAKE_CA_CN: &str = "CN=promptwall fake provider test CA";

/// Only the cgroup is intercepted; names the operator lists are spliced
/// through undecrypted; provider names inside the cgroup get the org CA's leaf.
#[test]
fn outside_the_cgroup_and_listed_names_are_not_intercepted() {
    let Some(env) = TransparentEnv::start_or_skip(TransparentOptions {
        toml_extra: "splice_server_names = [\"example.test\"]".into(),
        ..Default::default()
    }) else {
        return;
    };
    // Inside the cgroup, a provider name: the org CA's leaf (intercepted).
    let i = issuer(&env, "api.anthropic.com", true);
    assert!(i.contains(ORG_CA_CN), "{i}");

    // Outside the cgroup: the fake's own certificate, and curl trusting only
    // the fake's CA succeeds (so nothing in between re-signed it).
    let i = issuer(&env, "api.anthropic.com", false);
    assert!(i.contains(FAKE_CA_CN), "{i}");
    let out = env.sh_outside(&direct_curl(&env, "tp-outside hi"), secs(20));
    assert!(
        out.stdout.ends_with("HTTP 200") && out.stdout.contains("You said: tp-outside hi"),
        "{out:?}"
    );

    // A non-provider SNI inside the cgroup: spliced to the fake untouched.
    let i = issuer(&env, "example.test", true);
    assert!(i.contains(FAKE_CA_CN), "{i}");

    let reqs = env.fake_requests();
    assert_eq!(fake_with(&reqs, "tp-outside hi").len(), 1);
    // The fake saw the client's own TLS (its SNI), not a proxy connection.
    let spliced: Vec<_> = reqs.iter().filter(|r| r["sni"] == "example.test").collect();
    assert!(
        !spliced.is_empty() && spliced.iter().all(|r| r["path"] == "/v1/models"),
        "{reqs:#?}"
    );
    // The outside call never reached the proxy; the spliced one is audited
    // as metadata only (no path: it was not decrypted), under its process.
    let rows = env.audit_rows();
    assert!(
        rows.iter().all(|r| r.path.as_deref() != Some("/v1/messages")),
        "{rows:#?}"
    );
    let spliced: Vec<_> = rows
        .iter()
        .filter(|r| r.host.as_deref() == Some("example.test"))
        .collect();
    assert_eq!(spliced.len(), 1, "{rows:#?}");
    assert_eq!(
        (spliced[0].verdict.as_str(), spliced[0].path.as_deref()),
        ("passthrough", None),
        "{rows:#?}"
    );
    assert!(
        spliced[0].exe.as_deref().is_some_and(|e| e.ends_with("/curl")),
        "{rows:#?}"
    );
    assert_eq!(
        spliced[0].rest.get("original_dst").and_then(Value::as_str),
        Some("127.0.0.2:443")
    );
}

/// At a provider address, only provider names are served: another name (the
/// `Host` inside could still be the API), no name at all, or plain bytes are
/// refused and audited, never spliced around inspection.
#[test]
fn an_unlisted_name_no_sni_or_plain_bytes_at_a_provider_address_are_refused_and_audited() {
    let Some(env) = env() else { return };
    let key = aws_key();
    let body = format!(r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":"use {key}"}}]}}"#);
    let attempts = [
        // Domain fronting: another name in the handshake, the API's Host inside.
        format!(
            "curl -sSk --max-time 10 --resolve front.example.test:443:127.0.0.2 -H 'Host: api.anthropic.com' \
             -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d '{body}' https://front.example.test/v1/messages"
        ),
        // An IP literal sends no SNI.
        format!(
            "curl -sSk --max-time 10 -H 'Host: api.anthropic.com' -H 'anthropic-version: 2023-06-01' \
             -H 'content-type: application/json' -d '{body}' https://127.0.0.2/v1/messages"
        ),
        // Plain HTTP to the TLS port.
        format!(
            "curl -sS --max-time 10 -H 'Host: api.anthropic.com' -H 'content-type: application/json' -d '{body}' http://127.0.0.2:443/v1/messages"
        ),
    ];
    for script in &attempts {
        let out = env.sh_in_cgroup(script, secs(20));
        assert!(
            !out.status.is_some_and(|s| s.success()),
            "the connection was served: {out:?}"
        );
    }
    let reqs = env.fake_requests();
    assert!(
        fake_with(&reqs, &key).is_empty(),
        "the key reached the provider: {reqs:#?}"
    );
    // A real neighbour on the same address (its own DNS answer holds it) is
    // spliced through untouched, so the rest of the web keeps working.
    let neighbour = promptwall_e2e::transparent::CDN_NEIGHBOUR;
    let i = issuer(&env, neighbour, true);
    assert!(i.contains(FAKE_CA_CN), "{i}");
    let rows = env.wait_audit_rows(4);
    assert!(
        rows.iter()
            .any(|r| r.verdict == "passthrough" && r.host.as_deref() == Some(neighbour)),
        "{rows:#?}"
    );
    let refused: Vec<_> = rows
        .iter()
        .filter(|r| r.verdict == "blocked" && r.shape.as_deref() == Some("refused"))
        .collect();
    assert_eq!(refused.len(), 3, "{rows:#?}");
    assert_eq!(refused[0].host.as_deref(), Some("front.example.test"), "{rows:#?}");
    assert!(
        refused
            .iter()
            .all(|r| r.exe.as_deref().is_some_and(|e| e.ends_with("/curl"))),
        "{rows:#?}"
    );
}

/// A connection made straight to the transparent port (no redirect record)
/// is still attributed to its process, through /proc.
#[test]
fn a_direct_connection_to_the_transparent_port_is_attributed() {
    let Some(env) = env() else { return };
    let script = format!(
        "exec curl -sSk --max-time 20 -w '\\nHTTP %{{http_code}}' --resolve api.anthropic.com:15443:127.0.0.1 \
         https://api.anthropic.com:15443/v1/messages -H 'anthropic-version: 2023-06-01' \
         -H 'content-type: application/json' -d '{}'",
        r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"tp-direct hi"}]}"#
    );
    let out = env.sh_outside(&script, secs(30));
    assert!(out.stdout.ends_with("HTTP 200"), "{out:?}");
    let rows = env.wait_audit_rows(1);
    let row = rows
        .iter()
        .find(|r| r.path.as_deref() == Some("/v1/messages"))
        .expect("a row");
    assert!(row.exe.as_deref().is_some_and(|e| e.ends_with("/curl")), "{row:#?}");
    assert!(row.pid.is_some_and(|p| p > 1), "{row:#?}");
}

/// The `--path-as-is` bypass through the transparent listener: a dot segment
/// no longer hides a Messages call behind a sign-in path.
#[test]
fn a_dot_segment_path_through_the_redirect_is_inspected() {
    let Some(env) = env() else { return };
    let key = aws_key();
    let body = format!(r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":"use {key}"}}]}}"#);
    let script = format!(
        "exec curl -sS --max-time 20 --path-as-is -w '\\nHTTP %{{http_code}}' https://api.anthropic.com/v1/oauth/../messages \
         -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d '{body}'"
    );
    let out = env.sh_in_cgroup(&script, secs(30));
    assert!(out.stdout.ends_with("HTTP 422"), "{out:?}");
    assert!(!out.stdout.contains(&key), "{out:?}");
    assert!(fake_with(&env.fake_requests(), &key).is_empty());
}

/// curl to the provider name in the cgroup trusting ONLY the fake's CA: it
/// succeeds only when the connection goes direct (not through the proxy).
fn direct_curl(env: &TransparentEnv, marker: &str) -> String {
    // --capath too: curl otherwise also reads /etc/ssl/certs, which trusts the org CA.
    let ca = env.fake_ca_pem();
    format!(
        "{} --connect-timeout 2 --cacert '{}' --capath '{}'",
        curl_messages(marker, false),
        ca.display(),
        ca.parent().unwrap().display()
    )
}

fn went_direct(out: &promptwall_e2e::RunOutput, marker: &str) -> bool {
    out.success() && out.stdout.ends_with("HTTP 200") && out.stdout.contains(&format!("You said: {marker}"))
}

/// The programs attached to the test cgroup (`bpftool -j cgroup show`).
fn attached(env: &TransparentEnv) -> Vec<Value> {
    let out = env.sh_outside(
        &format!("bpftool -j cgroup show '{}'", env.cgroup().display()),
        secs(10),
    );
    out.expect_success("bpftool cgroup show");
    let text = out.stdout.trim();
    if text.is_empty() {
        return vec![];
    }
    serde_json::from_str::<Value>(text)
        .unwrap_or_else(|e| panic!("bpftool output is not JSON ({e}): {text}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether the eBPF program with this id still exists anywhere.
fn prog_exists(env: &TransparentEnv, id: u64) -> bool {
    env.sh_outside(&format!("bpftool prog show id {id}"), secs(10))
        .success()
}

/// The ids of the programs attached to the test cgroup (which exist now).
fn attached_prog_ids(env: &TransparentEnv) -> Vec<u64> {
    let ids: Vec<u64> = attached(env)
        .iter()
        .map(|p| {
            p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("bpftool entry without id: {p}"))
        })
        .collect();
    assert!(!ids.is_empty() && ids.iter().all(|id| prog_exists(env, *id)), "{ids:?}");
    ids
}

fn nft_ruleset(env: &TransparentEnv) -> String {
    let out = env.sh_outside("nft list ruleset", secs(10));
    out.expect_success("nft list ruleset");
    out.stdout
}

/// Polls `f` up to `attempts` times, 100 ms apart; true once it holds.
fn eventually(attempts: u32, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..attempts {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The agent intercepts at all (so a later "direct" is a change).
fn assert_intercepted(env: &TransparentEnv, marker: &str) {
    let out = env.sh_in_cgroup(&curl_messages(marker, false), secs(30));
    assert!(
        out.stdout.ends_with("HTTP 200"),
        "{out:?}\nagent log:\n{}",
        env.agent_log()
    );
    // And trusting only the fake's CA fails: the leaf is the org CA's.
    let out = env.sh_in_cgroup(&direct_curl(env, marker), secs(30));
    assert!(!went_direct(&out, marker), "not intercepted: {out:?}");
    assert!(
        !attached(env).is_empty(),
        "nothing attached to the test cgroup while running"
    );
}

/// fail = "open": after kill -9 the kernel drops the unpinned links with the
/// agent's file descriptors, the next connections go direct, and nothing is
/// left attached or in nftables.
#[test]
fn fail_open_crash_goes_direct_and_leaves_nothing() {
    let Some(mut env) = env() else { return };
    assert_intercepted(&env, "tp-open before");
    let ids = attached_prog_ids(&env);
    env.kill_agent();
    let killed = std::time::Instant::now();
    let (mut last, mut tries) = (None, 0);
    let direct = eventually(10, || {
        tries += 1;
        let out = env.sh_in_cgroup(&direct_curl(&env, "tp-open after"), secs(10));
        let ok = went_direct(&out, "tp-open after");
        last = Some(out);
        ok
    });
    assert!(
        direct,
        "provider connections did not go direct after the crash: {last:?}"
    );
    let after = killed.elapsed();
    eprintln!("fail = open: direct on connection attempt {tries}, {after:?} after kill -9");
    // The links die with the process: the very first connection goes direct.
    assert_eq!(tries, 1, "connections after the crash were still redirected: {last:?}");
    assert!(after < Duration::from_secs(1), "direct only {after:?} after the crash");
    assert!(
        eventually(50, || attached(&env).is_empty()),
        "still attached after the crash: {:?}",
        attached(&env)
    );
    // The programs themselves are gone (freed with their last reference).
    assert!(
        eventually(50, || ids.iter().all(|id| !prog_exists(&env, *id))),
        "programs {ids:?} outlive the agent"
    );
    assert!(!nft_ruleset(&env).contains("promptwall"), "{}", nft_ruleset(&env));
    let pins = env.sh_outside("ls -A /sys/fs/bpf/promptwall 2>/dev/null || true", secs(10));
    assert_eq!(pins.stdout.trim(), "", "fail = open pinned something");
}

/// fail = "closed": links are pinned, so after kill -9 provider connections
/// from the cgroup are refused (never go direct) while the rest of the
/// namespace is untouched; `promptwall cleanup` then removes everything.
#[test]
fn fail_closed_crash_refuses_until_cleanup() {
    let Some(mut env) = TransparentEnv::start_or_skip(TransparentOptions {
        fail_closed: true,
        ..Default::default()
    }) else {
        return;
    };
    assert_intercepted(&env, "tp-closed before");
    let ids = attached_prog_ids(&env);
    env.kill_agent();
    // Refused, both while the heartbeat is still fresh (redirect to a dead
    // listener) and once it is stale (EPERM from connect): 40 tries, 4 s+.
    for i in 0..40 {
        let out = env.sh_in_cgroup(&direct_curl(&env, "tp-closed after"), secs(10));
        assert!(
            !went_direct(&out, "tp-closed after"),
            "attempt {i}: went direct with fail = closed: {out:?}"
        );
        // curl exit 7: could not connect.
        assert_eq!(out.status.and_then(|s| s.code()), Some(7), "attempt {i}: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(fake_with(&env.fake_requests(), "tp-closed after").is_empty());
    // Once the heartbeat is stale the hook itself refuses: connect() fails
    // with EPERM (not a refused connection to a dead listener). Bounded poll.
    let connect = "exec 3<>/dev/tcp/127.0.0.2/443";
    let mut last = None;
    let eperm = eventually(100, || {
        let out = env.sh_in_cgroup(connect, secs(10));
        let hit = !out.success() && out.stderr.contains("Operation not permitted");
        last = Some(out);
        hit
    });
    assert!(eperm, "connect from the cgroup never got EPERM: {last:?}");
    // Other destinations from the cgroup are untouched (non-provider 127.0.0.3: refused by the stack, not EPERM).
    let out = env.sh_in_cgroup("exec 3<>/dev/tcp/127.0.0.3/443", secs(10));
    assert!(out.stderr.contains("Connection refused"), "{out:?}");
    // Outside the cgroup nothing changed.
    let out = env.sh_outside(&direct_curl(&env, "tp-closed outside"), secs(20));
    assert!(went_direct(&out, "tp-closed outside"), "{out:?}");
    let fake_before = env.fake_requests().len();
    assert_eq!(
        attached_prog_ids(&env),
        ids,
        "fail = closed must keep the programs attached after a crash"
    );

    let out = env.cli(&["cleanup"]);
    out.expect_success("promptwall cleanup");
    assert!(out.stdout.contains("removed pinned eBPF link"), "{out:?}");
    assert!(
        eventually(50, || attached(&env).is_empty()),
        "still attached after cleanup: {:?}",
        attached(&env)
    );
    assert!(
        eventually(50, || ids.iter().all(|id| !prog_exists(&env, *id))),
        "programs {ids:?} outlive cleanup"
    );
    let pins = env.sh_outside("ls -A /sys/fs/bpf/promptwall 2>/dev/null || true", secs(10));
    assert_eq!(pins.stdout.trim(), "", "pins left after cleanup");
    assert!(!nft_ruleset(&env).contains("promptwall"), "{}", nft_ruleset(&env));
    let out = env.sh_in_cgroup(&direct_curl(&env, "tp-closed cleaned"), secs(20));
    assert!(went_direct(&out, "tp-closed cleaned"), "{out:?}");
    assert_eq!(
        fake_with(&env.fake_requests()[fake_before..], "tp-closed cleaned").len(),
        1
    );
    // A second cleanup finds nothing.
    let out = env.cli(&["cleanup"]);
    out.expect_success("promptwall cleanup (again)");
    assert!(out.stdout.contains("nothing to clean up"), "{out:?}");
}

/// Where eBPF cannot load, `mode = "nftables"` redirects provider addresses
/// with a NAT rule (the proxy's marked upstream sockets excluded), finds the
/// original destination with SO_ORIGINAL_DST and the client through
/// /proc/net/tcp, and runs the same pipeline. Its table outlives a crash (it
/// fails closed) until `promptwall cleanup`.
#[test]
fn nftables_fallback_redirects_attributes_and_is_cleaned_up() {
    let Some(mut env) = TransparentEnv::start_or_skip(TransparentOptions {
        toml_extra: "mode = \"nftables\"\n".into(),
        ..Default::default()
    }) else {
        return;
    };
    assert!(attached(&env).is_empty(), "nftables mode must not attach eBPF programs");
    let ruleset = nft_ruleset(&env);
    assert!(ruleset.contains("table inet promptwall"), "{ruleset}");
    assert!(ruleset.contains("socket cgroupv2 level 1"), "{ruleset}");
    // Scoped to the cgroup, as eBPF is: a process outside it is untouched.
    let out = env.sh_outside(&direct_curl(&env, "tp-nft outside"), secs(30));
    assert!(
        went_direct(&out, "tp-nft outside"),
        "a process outside the intercepted cgroup was redirected: {out:?}"
    );
    let out = env.sh_in_cgroup(
        &format!("echo PID=$$ >&2; {}", curl_messages("tp-nft hello", false)),
        secs(30),
    );
    assert!(
        out.stdout.ends_with("HTTP 200"),
        "{out:?}\nagent log:\n{}",
        env.agent_log()
    );
    let pid: u32 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("PID=")?.parse().ok())
        .expect("the client's pid");
    // The leaf is the org CA's: trusting only the fake's CA fails.
    let out = env.sh_in_cgroup(&direct_curl(&env, "tp-nft direct?"), secs(30));
    assert!(!went_direct(&out, "tp-nft direct?"), "not intercepted: {out:?}");
    let seen = fake_with(&env.fake_requests(), "tp-nft hello").len();
    assert_eq!(seen, 1, "the proxy's own upstream connection looped or never arrived");
    let rows = env.wait_audit_rows(1);
    assert_row(&rows[0], "curl", "/curl");
    assert_eq!(rows[0].pid, Some(pid), "attributed through /proc/net/tcp: {rows:#?}");

    env.kill_agent();
    let out = env.sh_in_cgroup(&direct_curl(&env, "tp-nft crashed"), secs(20));
    assert!(
        !went_direct(&out, "tp-nft crashed"),
        "a crashed nftables agent let traffic go direct: {out:?}"
    );
    let out = env.cli(&["cleanup"]);
    out.expect_success("promptwall cleanup");
    assert!(out.stdout.contains("removed nftables table"), "{out:?}");
    assert!(!nft_ruleset(&env).contains("promptwall"), "{}", nft_ruleset(&env));
    let out = env.sh_in_cgroup(&direct_curl(&env, "tp-nft cleaned"), secs(20));
    assert!(went_direct(&out, "tp-nft cleaned"), "{out:?}");
}

/// Each intercepted connection goes upstream to the address its client
/// dialled, even while another connection to the same name dialled
/// another: pools are kept per destination, not per name.
#[test]
fn concurrent_connections_to_two_addresses_of_one_host_each_reach_their_own() {
    let Some(env) = TransparentEnv::start_or_skip(TransparentOptions {
        second_fake: true,
        ..Default::default()
    }) else {
        return;
    };
    let pinned = format!("--resolve api.anthropic.com:443:{SECOND_FAKE_IP}");
    let mut script = String::new();
    for i in 0..3 {
        // /etc/hosts sends the first to FAKE_IP; --resolve the second to SECOND_FAKE_IP.
        let first = curl_messages(&format!("tp-first-{i}"), false);
        let second =
            curl_messages(&format!("tp-second-{i}"), false).replacen("exec curl", &format!("exec curl {pinned}"), 1);
        script.push_str(&format!("({first}) > a{i}.out & ({second}) > b{i}.out & wait\n"));
    }
    script.push_str("cat a*.out b*.out");
    let out = env.sh_in_cgroup(&script, secs(60));
    assert_eq!(
        out.stdout.matches("HTTP 200").count(),
        6,
        "{out:?}\nagent log:\n{}",
        env.agent_log()
    );
    let (first, second) = (env.fake_requests(), env.second_fake_requests());
    for i in 0..3 {
        assert_eq!(fake_with(&first, &format!("tp-first-{i}")).len(), 1, "{first:#?}");
        assert_eq!(fake_with(&second, &format!("tp-second-{i}")).len(), 1, "{second:#?}");
        assert!(
            fake_with(&first, &format!("tp-second-{i}")).is_empty(),
            "went to the wrong address"
        );
        assert!(
            fake_with(&second, &format!("tp-first-{i}")).is_empty(),
            "went to the wrong address"
        );
    }
    let rows = env.wait_audit_rows(6);
    let to_second = rows
        .iter()
        .filter(|r| {
            r.rest.get("original_dst").and_then(Value::as_str) == Some(format!("{SECOND_FAKE_IP}:443").as_str())
        })
        .count();
    assert_eq!(to_second, 3, "{rows:#?}");
}

/// Adding a provider is a config change: a `[providers.NAME]` table (and
/// its prices in the price table) and its host is redirected, its Chat
/// Completions inspected (an email redacted upstream, restored for the
/// client) and its row priced, with no release.
#[test]
fn a_provider_added_only_in_config_is_intercepted_inspected_and_priced() {
    let prices = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        prices.path(),
        "[[price]]\nprovider = \"acme\"\nmodel = \"acme-1\"\ninput = 2.0\noutput = 8.0\n",
    )
    .unwrap();
    let Some(env) = TransparentEnv::start_or_skip(TransparentOptions {
        toml_extra: format!(
            "[providers.acme]\nhosts = [\"{CONFIG_ONLY_PROVIDER}\"]\nupstream = \"https://{CONFIG_ONLY_PROVIDER}\"\n"
        ),
        agent_env: vec![(
            "PROMPTWALL_AUDIT__PRICE_TABLE".into(),
            prices.path().display().to_string(),
        )],
        ..Default::default()
    }) else {
        return;
    };
    let body = serde_json::json!({
        "model": "acme-1",
        "messages": [{"role": "user", "content": "tp-acme: write to jane.roe@corp-mail.test"}],
    });
    let out = env.sh_in_cgroup(
        &format!(
            "exec curl -sS --max-time 20 -w '\\nHTTP %{{http_code}}' https://{CONFIG_ONLY_PROVIDER}/v1/chat/completions \
             -H 'authorization: Bearer sk-acme-e2e' -H 'content-type: application/json' -d '{body}'"
        ),
        secs(30),
    );
    assert!(
        out.stdout.ends_with("HTTP 200") && out.stdout.contains("jane.roe@corp-mail.test"),
        "{out:?}\nagent log:\n{}",
        env.agent_log()
    );
    let seen = env.fake_requests();
    let upstream = fake_with(&seen, "tp-acme");
    assert_eq!(upstream.len(), 1, "{seen:#?}");
    let sent = upstream[0]["body"].as_str().unwrap();
    assert!(
        !sent.contains("jane.roe@corp-mail.test") && sent.contains("[[EMAIL_"),
        "{sent}"
    );
    let rows = env.wait_audit_rows(1);
    let row = &rows[0];
    assert_eq!(
        (row.provider.as_deref(), row.shape.as_deref(), row.verdict.as_str()),
        (Some("acme"), Some("openai.chat"), "redacted"),
        "{row:#?}"
    );
    let cost = row.rest.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
    assert!(cost > 0.0, "priced from the price table: {row:#?}");
}
