//! Gemini CLI and opencode (issue 16), unmodified from npm, through the
//! transparent listener: no base-URL or proxy variable, the real host
//! names reached only through the eBPF redirect, trust as the installer
//! leaves it. Each scenario asserts the client's own output, what the fake
//! provider received and the audit row (tool name, shape, verdict).
//!
//! Needs root, unshare, nsenter, the built agent + fake provider and the
//! clients from `cargo xtask setup`; skips otherwise unless
//! PROMPTWALL_REQUIRE_CLIENTS=1.

use std::process::Command;
use std::time::Duration;

use promptwall_e2e::{AuditRow, RunOutput, TestClients, TransparentEnv, TransparentOptions};
use serde_json::Value;

const EMAIL: &str = "jane.doe@example.org";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn aws_key() -> String {
    // Built at run time so the source holds no credential-shaped literal.
    format!("AKIA{}", "Q3EGUX7MZPW5KD4N")
}

fn setup() -> Option<(TransparentEnv, TestClients)> {
    let Some(clients) = TestClients::find() else {
        assert_ne!(
            std::env::var("PROMPTWALL_REQUIRE_CLIENTS").as_deref(),
            Ok("1"),
            "the npm clients are missing; run `cargo xtask setup`"
        );
        eprintln!("SKIPPED: no test clients (cargo xtask setup)");
        return None;
    };
    let env = TransparentEnv::start_or_skip(TransparentOptions::default())?;
    std::fs::create_dir_all(env.path("tmp")).unwrap();
    Some((env, clients))
}

/// Audit rows added since `before` rows existed (bounded wait for `n`).
fn new_rows(env: &TransparentEnv, before: usize, n: usize) -> Vec<AuditRow> {
    env.wait_audit_rows(before + n).into_iter().skip(before).collect()
}

fn llm(rows: &[AuditRow]) -> Vec<&AuditRow> {
    rows.iter()
        .filter(|r| r.rest.get("llm").and_then(Value::as_bool) == Some(true))
        .collect()
}

fn bodies(env: &TransparentEnv) -> Vec<String> {
    env.fake_requests()
        .iter()
        .filter_map(|r| r["body"].as_str().map(str::to_string))
        .collect()
}

fn all(out: &RunOutput) -> String {
    format!("{}\n{}", out.stdout, out.stderr)
}

fn gemini(env: &TransparentEnv, clients: &TestClients, args: &[&str]) -> RunOutput {
    let mut cmd: Command = env.command(clients.npm_bin("gemini"), args);
    cmd.env("GEMINI_API_KEY", "fake-gemini-key")
        .env("TMPDIR", env.path("tmp"));
    env.run_in_cgroup(&cmd, secs(120))
}

#[test]
fn gemini_cli_turns_are_inspected_redacted_restored_blocked_and_audited_as_gemini_cli() {
    let Some((env, clients)) = setup() else { return };

    // A plain turn: the model router's call and the streamed turn.
    let before = env.audit_rows().len();
    let out = gemini(&env, &clients, &["--skip-trust", "-p", "say hi"]);
    assert!(out.success(), "{}\nagent log:\n{}", all(&out), env.agent_log());
    assert!(out.stdout.contains("You said: say hi"), "{}", all(&out));
    let rows = new_rows(&env, before, 2);
    let calls = llm(&rows);
    assert!(calls.len() >= 2, "router and turn: {rows:#?}");
    for row in &calls {
        assert_eq!(row.tool.as_deref(), Some("gemini-cli"), "{row:#?}");
        assert_eq!(row.provider.as_deref(), Some("gemini"), "{row:#?}");
        assert!(
            row.shape.as_deref().is_some_and(|s| s.starts_with("gemini.")),
            "{row:#?}"
        );
        assert!(
            row.model.as_deref().is_some_and(|m| m.starts_with("gemini-")),
            "{row:#?}"
        );
        assert!(row.input_tokens.is_some_and(|n| n > 0), "usage read: {row:#?}");
        assert!(
            row.rest
                .get("cost_usd")
                .and_then(Value::as_f64)
                .is_some_and(|c| c > 0.0),
            "priced from the shipped table: {row:#?}"
        );
    }

    // PII: the provider sees a placeholder; the user sees the address.
    let out = gemini(
        &env,
        &clients,
        &["--skip-trust", "-p", &format!("ECHO: write to {EMAIL}")],
    );
    assert!(out.success(), "{}", all(&out));
    assert!(out.stdout.contains(EMAIL), "restored in the stream: {}", all(&out));
    let sent = bodies(&env);
    assert!(sent.iter().any(|b| b.contains("[[EMAIL_001]]")), "{sent:?}");
    assert!(!sent.iter().any(|b| b.contains(EMAIL)), "the raw address never left");

    // A secret: refused in Google's envelope, shown to the user, never sent.
    let before = env.audit_rows().len();
    let key = aws_key();
    let out = gemini(
        &env,
        &clients,
        &[
            "--skip-trust",
            "-m",
            "gemini-2.5-flash",
            "-p",
            &format!("deploy with {key}"),
        ],
    );
    assert!(!out.success(), "{}", all(&out));
    assert!(all(&out).contains("promptwall blocked this request"), "{}", all(&out));
    assert!(!all(&out).contains(&key), "never echoed");
    assert!(!env.fake_requests().iter().any(|r| r.to_string().contains(&key)));
    let rows = new_rows(&env, before, 1);
    assert!(
        rows.iter().all(|r| r.verdict == "blocked" && r.status == 422),
        "{rows:#?}"
    );

    // A tool round (yolo: the shell tool is offered and run).
    let out = gemini(&env, &clients, &["--skip-trust", "--yolo", "-p", "TOOLTEST run echo"]);
    assert!(out.success(), "{}", all(&out));
    assert!(
        out.stdout.contains("Tool said:") && out.stdout.contains("hello-from-tool"),
        "{}",
        all(&out)
    );
}

fn opencode(env: &TransparentEnv, clients: &TestClients, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
    let mut cmd: Command = env.command(clients.npm_bin("opencode"), args);
    cmd.env("OPENCODE_DISABLE_MODELS_FETCH", "1")
        .env("TMPDIR", env.path("tmp"));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    env.run_in_cgroup(&cmd, secs(120))
}

#[test]
fn opencode_with_anthropic_and_an_openai_compatible_provider_is_inspected_and_audited_as_opencode() {
    let Some((env, clients)) = setup() else { return };

    // Its built-in Anthropic provider.
    let before = env.audit_rows().len();
    let out = opencode(
        &env,
        &clients,
        &[
            "run",
            "-m",
            "anthropic/claude-sonnet-4-5",
            &format!("ECHO: write to {EMAIL}"),
        ],
        &[("ANTHROPIC_API_KEY", "sk-ant-api03-e2e-opencode")],
    );
    assert!(out.success(), "{}\nagent log:\n{}", all(&out), env.agent_log());
    assert!(out.stdout.contains(EMAIL), "restored: {}", all(&out));
    let sent = bodies(&env);
    assert!(
        !sent.iter().any(|b| b.contains(EMAIL)),
        "the raw address never left: {sent:?}"
    );
    let rows = new_rows(&env, before, 1);
    let calls = llm(&rows);
    assert!(!calls.is_empty(), "{rows:#?}");
    for row in &calls {
        assert_eq!(row.tool.as_deref(), Some("opencode"), "{row:#?}");
        assert_eq!(row.shape.as_deref(), Some("anthropic.messages"), "{row:#?}");
        assert_eq!(row.verdict, "redacted", "{row:#?}");
    }

    // A custom OpenAI-compatible provider (Chat Completions), with a tool round.
    let config = serde_json::json!({
        "provider": {"fakeoai": {"npm": "@ai-sdk/openai-compatible", "name": "Fake OpenAI-compatible",
            "options": {"baseURL": "https://api.openai.com/v1", "apiKey": "{env:OPENAI_API_KEY}"},
            "models": {"gpt-4o": {"name": "gpt-4o", "tool_call": true}}}},
        "model": "fakeoai/gpt-4o"
    });
    let config_path = env.path("opencode.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let config_path = config_path.to_string_lossy().into_owned();
    let vars = [
        ("OPENAI_API_KEY", "sk-e2e-opencode"),
        ("OPENCODE_CONFIG", config_path.as_str()),
    ];
    let before = env.audit_rows().len();
    let out = opencode(&env, &clients, &["run", "TOOLTEST run echo"], &vars);
    assert!(out.success(), "{}", all(&out));
    assert!(
        all(&out).contains("hello-from-tool"),
        "the tool ran and its result came back: {}",
        all(&out)
    );
    let rows = new_rows(&env, before, 2);
    let calls = llm(&rows);
    assert!(calls.len() >= 2, "tool call and follow-up: {rows:#?}");
    for row in &calls {
        assert_eq!(row.tool.as_deref(), Some("opencode"), "{row:#?}");
        assert_eq!(row.shape.as_deref(), Some("openai.chat"), "{row:#?}");
    }

    // A secret through the compatible provider: refused in OpenAI's envelope.
    let key = aws_key();
    let out = opencode(&env, &clients, &["run", &format!("deploy with {key}")], &vars);
    assert!(all(&out).contains("promptwall blocked this request"), "{}", all(&out));
    assert!(!env.fake_requests().iter().any(|r| r.to_string().contains(&key)));
}
