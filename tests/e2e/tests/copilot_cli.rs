//! GitHub Copilot CLI (pinned by `cargo xtask setup`), unmodified, through
//! the transparent listener against the fake provider: a plain turn, PII
//! redacted upstream and restored in the answer, a secret blocked before it
//! leaves, and a tool round running its `bash` tool.
//!
//! Copilot signs in with a GitHub token from the environment (no exchange):
//! it asks `api.github.com/copilot_internal/user` for the account, then
//! `api.githubcopilot.com/models`, then sends the model call (Chat
//! Completions, as the fake's catalog says). api.github.com and the
//! telemetry host are not providers: the test config splices them to the
//! fake undecrypted, as a deployment leaves Copilot's sign-in alone, and
//! the client trusts the fake's CA besides the org CA, as it trusts the real
//! GitHub's public certificate.
//!
//! Needs root, unshare, nsenter, the built agent + fake provider and the
//! test clients; skips otherwise, unless PROMPTWALL_REQUIRE_CLIENTS=1.

use std::path::PathBuf;
use std::time::Duration;

use promptwall_e2e::{AuditRow, RunOutput, TestClients, TransparentEnv, TransparentOptions};
use serde_json::Value;

const EMAIL: &str = "jane.doe@example.org";
/// A fake GitHub OAuth token (Copilot accepts `gho_` tokens; no exchange).
const TOKEN: &str = "gho_promptwallE2eFakeToken0000000000000";
/// A run, including the first run's unpacking of the CLI into HOME.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn aws_key() -> String {
    // Built at run time so the source holds no credential-shaped literal.
    format!("AKIA{}", "Q3EGUX7MZPW5KD4N")
}

struct Copilot {
    env: TransparentEnv,
    bin: PathBuf,
}

fn copilot() -> Option<Copilot> {
    let clients = TestClients::find()?;
    let bin = clients.npm_bin("copilot");
    if !bin.exists() {
        let msg = format!("Copilot CLI missing ({}); run `cargo xtask setup`", bin.display());
        assert!(
            std::env::var("PROMPTWALL_REQUIRE_CLIENTS").map_or(true, |v| v != "1"),
            "{msg}"
        );
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    let env = TransparentEnv::start_or_skip(TransparentOptions {
        toml_extra: "splice_server_names = [\"api.github.com\", \"copilot-telemetry.githubusercontent.com\"]\n".into(),
        ..Default::default()
    })?;
    // The org CA (intercepted provider) plus the fake's own CA (the spliced
    // GitHub hosts, publicly trusted in reality), as extra roots and in the
    // bundle, whichever of them the CLI reads.
    let fake_ca = std::fs::read_to_string(env.fake_ca_pem()).expect("the fake's CA");
    let anchor = std::fs::read_to_string(env.org_ca_pem()).expect("the org CA");
    let bundle = std::fs::read_to_string(env.path("ssl-certs/ca-certificates.crt")).expect("the namespace's bundle");
    assert!(
        bundle.contains(anchor.trim()),
        "the org CA is installed in the namespace's bundle"
    );
    std::fs::write(env.path("copilot-extra-cas.pem"), format!("{anchor}\n{fake_ca}\n")).unwrap();
    std::fs::write(env.path("copilot-bundle.pem"), format!("{bundle}\n{fake_ca}\n")).unwrap();
    Some(Copilot { env, bin })
}

impl Copilot {
    /// `copilot -p <prompt>` in the client cgroup, bounded.
    fn run(&self, prompt: &str, extra: &[&str]) -> RunOutput {
        let mut args = vec![
            "-p",
            prompt,
            "--no-auto-update",
            "--disable-client-telemetry",
            "--log-level",
            "all",
        ];
        args.extend_from_slice(extra);
        let mut cmd = self.env.command(&self.bin, &args);
        let logs = self.env.path("copilot-logs");
        for var in [
            "GH_TOKEN",
            "GITHUB_TOKEN",
            "COPILOT_API_URL",
            "COPILOT_MODEL",
            "COPILOT_OFFLINE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("COPILOT_GITHUB_TOKEN", TOKEN)
            .env("NODE_EXTRA_CA_CERTS", self.env.path("copilot-extra-cas.pem"))
            .env("SSL_CERT_FILE", self.env.path("copilot-bundle.pem"))
            .arg("--log-dir")
            .arg(&logs);
        self.env.run_in_cgroup(&cmd, RUN_TIMEOUT)
    }

    fn explain(&self, out: &RunOutput) -> String {
        let logs = std::fs::read_dir(self.env.path("copilot-logs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let tail: String = logs
            .chars()
            .rev()
            .take(6000)
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        format!(
            "{out:?}\nfake requests: {:#?}\nagent log:\n{}\ncopilot log tail:\n{tail}",
            self.env
                .fake_requests()
                .iter()
                .map(|r| format!("{} {} {} -> {}", r["sni"], r["method"], r["path"], r["status"]))
                .collect::<Vec<_>>(),
            self.env.agent_log()
        )
    }

    /// The model calls the fake received.
    fn model_calls(&self) -> Vec<Value> {
        self.env
            .fake_requests()
            .into_iter()
            .filter(|r| r["path"] == "/chat/completions")
            .collect()
    }

    /// The audit rows of model calls, once `n` exist.
    fn llm_rows(&self, n: usize) -> Vec<AuditRow> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let rows: Vec<AuditRow> = self
                .env
                .audit_rows()
                .into_iter()
                .filter(|r| r.path.as_deref() == Some("/chat/completions"))
                .collect();
            if rows.len() >= n || std::time::Instant::now() > deadline {
                for r in &rows {
                    assert_eq!(r.tool.as_deref(), Some("copilot-cli"), "{r:#?}");
                    assert_eq!(r.shape.as_deref(), Some("openai.chat"), "{r:#?}");
                    assert_eq!(r.listener, "transparent", "{r:#?}");
                    assert_eq!(r.provider.as_deref(), Some("copilot"), "{r:#?}");
                    assert_eq!(r.host.as_deref(), Some("api.githubcopilot.com"), "{r:#?}");
                }
                eprintln!(
                    "audit rows: {:?}",
                    self.env
                        .audit_rows()
                        .iter()
                        .map(|r| format!(
                            "{} {} tool={:?} shape={:?} verdict={} status={}",
                            r.method.as_deref().unwrap_or("-"),
                            r.path.as_deref().unwrap_or("-"),
                            r.tool,
                            r.shape,
                            r.verdict,
                            r.status
                        ))
                        .collect::<Vec<_>>()
                );
                return rows;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn body(r: &Value) -> &str {
    r["body"].as_str().unwrap_or("")
}

#[test]
fn copilot_cli_plain_turn_is_answered_and_audited() {
    let Some(c) = copilot() else { return };
    let out = c.run("say hi", &[]);
    assert!(out.success(), "{}", c.explain(&out));
    assert!(
        out.stdout.contains("You said:") && out.stdout.contains("say hi"),
        "{}",
        c.explain(&out)
    );
    let calls = c.model_calls();
    assert_eq!(calls.len(), 1, "{}", c.explain(&out));
    assert_eq!(calls[0]["sni"], "api.githubcopilot.com");
    let rows = c.llm_rows(1);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    // Copilot's own prompt passes untouched: the noreply address of its
    // Co-authored-by trailer is not personal data.
    assert_eq!(rows[0].verdict, "allowed", "{rows:#?}");
    assert_eq!(rows[0].model.as_deref(), Some("gpt-5-mini"), "{rows:#?}");
    assert!(
        rows[0].exe.as_deref().is_some_and(|e| e.ends_with("/copilot")),
        "{rows:#?}"
    );
}

#[test]
fn copilot_cli_pii_is_redacted_upstream_and_restored() {
    let Some(c) = copilot() else { return };
    let out = c.run(&format!("ECHO: write to {EMAIL}"), &[]);
    assert!(out.success(), "{}", c.explain(&out));
    let calls = c.model_calls();
    assert_eq!(calls.len(), 1, "{}", c.explain(&out));
    // Copilot's system prompt carries an address of its own (its
    // Co-authored-by trailer), so the prompt's may not be the first placeholder.
    let user = calls[0]["json"]["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| m["content"].to_string())
        .unwrap_or_default();
    assert!(user.contains("ECHO: write to [[EMAIL_001]]"), "{user}");
    for r in c.env.fake_requests() {
        assert!(!r.to_string().contains(EMAIL), "the raw address reached the fake: {r}");
    }
    assert!(
        out.stdout.contains(&format!("ECHO: write to {EMAIL}")),
        "the answer shows the address restored: {}",
        c.explain(&out)
    );
    assert!(!out.stdout.contains("[[EMAIL_001]]"), "{}", c.explain(&out));
    let rows = c.llm_rows(1);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].verdict, "redacted", "{rows:#?}");
}

#[test]
fn copilot_cli_secret_is_blocked() {
    let Some(c) = copilot() else { return };
    let key = aws_key();
    let out = c.run(&format!("deploy with {key}"), &[]);
    assert!(!out.timed_out, "{}", c.explain(&out));
    let text = format!("{}\n{}", out.stdout, out.stderr);
    eprintln!("copilot's answer to the block: {text}");
    assert!(!out.success(), "{}", c.explain(&out));
    // Copilot shows the 422's message: "Execution failed: 422 promptwall blocked this request: ..."
    assert!(
        text.contains("422 promptwall blocked this request") && text.contains("aws_access_key_id"),
        "the CLI reports the refusal: {}",
        c.explain(&out)
    );
    assert!(!text.contains("You said:"), "{}", c.explain(&out));
    for r in c.env.fake_requests() {
        assert!(!r.to_string().contains(&key), "the key reached the fake: {r}");
    }
    assert!(c.model_calls().is_empty(), "{}", c.explain(&out));
    let rows = c.llm_rows(1);
    assert!(!rows.is_empty(), "{rows:#?}");
    for r in &rows {
        assert_eq!(r.verdict, "blocked", "{rows:#?}");
        assert_eq!(r.status, 422, "{rows:#?}");
    }
}

#[test]
fn copilot_cli_tool_round_runs_bash() {
    let Some(c) = copilot() else { return };
    let out = c.run("TOOLTEST run echo", &["--allow-all-tools"]);
    assert!(out.success(), "{}", c.explain(&out));
    assert!(
        out.stdout.contains("Tool said:") && out.stdout.contains("hello-from-tool"),
        "{}",
        c.explain(&out)
    );
    let calls = c.model_calls();
    assert_eq!(calls.len(), 2, "{}", c.explain(&out));
    let last = calls[1]["json"]["messages"].as_array().and_then(|m| m.last()).cloned();
    let last = last.unwrap_or_default();
    assert_eq!(last["role"], "tool", "{}", body(&calls[1]));
    assert!(last["content"].to_string().contains("hello-from-tool"), "{last}");
    let rows = c.llm_rows(2);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| r.verdict == "allowed"), "{rows:#?}");
}
