//! Real coding agents, unmodified (Claude Code and Codex CLI from npm, the
//! official Python/Node SDKs, and aider in the full suite; pinned in
//! xtask/src/clients.rs), through transparent interception: no base-URL
//! or proxy variable anywhere. Each test runs in a private mount + network
//! namespace: the fake provider on 127.0.0.2:443 under the real host names
//! (private /etc/hosts), `promptwall up` with its eBPF redirect attached to a
//! child cgroup holding only the client, and trust set the way the installer
//! sets it (org CA in the system bundle and anchor path, machine-wide
//! variables). Every scenario asserts the client's own output, what the
//! fake provider received, and the audit row.
//!
//! Needs root, `unshare`, the built agent + fake provider, and the clients
//! from `cargo xtask setup`; skips otherwise unless PROMPTWALL_REQUIRE_CLIENTS=1.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use promptwall_e2e::cgroup::TestCgroup;
use promptwall_e2e::paths::{fake_provider_bin, promptwall_bin};
use promptwall_e2e::{run_bounded, AuditRow, Namespace, TestClients};
use serde_json::Value;

const EMAIL: &str = "jane.doe@example.org";
const PHONE: &str = "+1 415 555 0134";

fn aws_key() -> String {
    // Built at run time so the source holds no credential-shaped literal.
    format!("AKIA{}", "Q3EGUX7MZPW5KD4N")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Claude,
    Codex,
    /// `python -c <prompt>` with the SDK venv.
    PythonSdk,
    /// `node -e <prompt>` with the npm prefix on NODE_PATH.
    NodeSdk,
    /// aider (full suite) with the model in `args[0]`.
    Aider,
}

struct Step {
    client: Client,
    prompt: String,
    args: Vec<String>,
    /// Outer bound: Codex retries forever on some failures.
    timeout_secs: u64,
    /// Run the client as `nobody` (audit rows must name the client's user).
    as_nobody: bool,
    /// Environment set last (overrides the harness's own, e.g. retries).
    env: Vec<(String, String)>,
}

impl Step {
    fn run_as_nobody(mut self) -> Step {
        self.as_nobody = true;
        self
    }

    fn with_env(mut self, key: &str, value: &str) -> Step {
        self.env.push((key.into(), value.into()));
        self
    }
}

fn claude(prompt: &str, args: &[&str]) -> Step {
    Step {
        client: Client::Claude,
        prompt: prompt.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        timeout_secs: 60,
        as_nobody: false,
        env: vec![],
    }
}

/// An SDK script run with no base-URL variable: the real host names, reached
/// only through the redirect.
fn sdk(client: Client, script: &str) -> Step {
    Step {
        client,
        prompt: script.into(),
        args: vec![],
        timeout_secs: 60,
        as_nobody: false,
        env: vec![],
    }
}

fn codex(prompt: &str) -> Step {
    Step {
        client: Client::Codex,
        prompt: prompt.into(),
        args: vec![],
        timeout_secs: 60,
        as_nobody: false,
        env: vec![],
    }
}

#[derive(Debug)]
struct StepResult {
    stdout: String,
    stderr: String,
    rc: Option<i32>,
    /// Audit rows written while this step ran.
    rows: Vec<AuditRow>,
}

impl StepResult {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    fn show(&self) -> String {
        format!(
            "rc {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.rc, self.stdout, self.stderr
        )
    }
    /// The rows for LLM calls (not the clients' settings/telemetry calls).
    fn llm_rows(&self) -> Vec<&AuditRow> {
        self.rows
            .iter()
            .filter(|r| r.rest.get("llm").and_then(Value::as_bool) == Some(true))
            .collect()
    }
}

struct Outcome {
    steps: Vec<StepResult>,
    /// Everything the fake provider received (HTTP requests and WS messages).
    fake: Vec<Value>,
    all_rows: Vec<AuditRow>,
}

impl Outcome {
    /// Fake-provider records whose body contains `marker`.
    fn fake_with(&self, marker: &str) -> Vec<&Value> {
        self.fake
            .iter()
            .filter(|r| r["body"].as_str().is_some_and(|b| b.contains(marker)))
            .collect()
    }
    fn fake_contains(&self, needle: &str) -> bool {
        self.fake.iter().any(|r| {
            r["body"].as_str().is_some_and(|b| b.contains(needle))
                || r["headers"].to_string().contains(needle)
                || r["query"].as_str().is_some_and(|q| q.contains(needle))
        })
    }
}

/// The clients and the namespace, or None (skip) when unavailable and not required.
fn prerequisites() -> Option<TestClients> {
    let required = std::env::var("PROMPTWALL_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
    if !Namespace::available() {
        let msg = "agents tests need root and unshare (private namespaces, eBPF on a child cgroup)";
        assert!(!required, "{msg}");
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    let clients = TestClients::find()?;
    for bin in ["claude", "codex"] {
        if !clients.npm_bin(bin).exists() {
            let msg = format!("{} missing; run `cargo xtask setup`", clients.npm_bin(bin).display());
            assert!(!required, "{msg}");
            eprintln!("SKIPPED: {msg}");
            return None;
        }
    }
    Some(clients)
}

/// Inside the namespace: fake provider, agent with eBPF on $CG, installer-style
/// trust, then each step as `$D/step-N.sh` run from inside the cgroup.
const SETUP: &str = r#"
D="$NS_DIR"
mount -t bpf bpf /sys/fs/bpf
printf '127.0.0.1 localhost\n127.0.0.2 api.anthropic.com api.openai.com chatgpt.com ab.chatgpt.com\n' > "$D/hosts.fake"
mount --bind "$D/hosts.fake" /etc/hosts
"$FAKE_BIN" --bind 127.0.0.2:443 $FAKE_WS --ca-dir "$D/fakeca" --log "$D/fake.jsonl" > "$D/fake.out" 2> "$D/fake.err" &
FP=$!
AP=
# Whatever fails below, nothing started here outlives the script.
trap 'if [ -n "$AP" ]; then kill $AP 2>/dev/null; wait $AP 2>/dev/null; fi; kill $FP 2>/dev/null; wait $FP 2>/dev/null' EXIT
cat > "$D/config.toml" <<EOF
[listen]
explicit = "127.0.0.1:0"
transparent = "127.0.0.1:15443"
admin_socket = "$D/admin.sock"
[ca]
dir = "$D/ca"
[audit]
url = "sqlite://$D/audit.db"
[upstream]
extra_roots = ["$D/fakeca/ca.pem"]
[intercept]
enabled = true
cgroup = "$CG"
addresses = ["127.0.0.2/32"]
ports = [443]
resolve_interval_secs = 0
EOF
# A scenario's own sections ([routing], ...), written by the test.
if [ -s "$D/extra.toml" ]; then cat "$D/extra.toml" >> "$D/config.toml"; fi
for _ in $(seq 100); do [ -s "$D/fake.out" ] && break; sleep 0.1; done
"$PW_BIN" --config "$D/config.toml" ca init > "$D/ca-init.log" 2>&1
"$PW_BIN" --config "$D/config.toml" up > "$D/agent.out" 2> "$D/agent.log" &
AP=$!
for _ in $(seq 300); do [ -s "$D/agent.out" ] && break; kill -0 $AP || break; sleep 0.1; done
[ -s "$D/agent.out" ] || { echo "promptwall up did not become ready" >&2; cat "$D/agent.log" >&2; exit 3; }
# Trust as `promptwall ca install` leaves it: the org CA in the system
# bundle and at the anchor path, plus the machine-wide variables.
cat /etc/ssl/certs/ca-certificates.crt "$D/ca/ca.pem" > "$D/bundle.pem"
mount --bind "$D/bundle.pem" /etc/ssl/certs/ca-certificates.crt
mkdir -p "$D/anchors" && cp "$D/ca/ca.pem" "$D/anchors/promptwall-org-ca.crt"
mount --bind "$D/anchors" /usr/local/share/ca-certificates
export NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/promptwall-org-ca.crt NODE_USE_SYSTEM_CA=1
export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$D/work" "$D/home" "$D/codex-home"
for step in "$D"/step-*.sh; do
  n="${step%.sh}"
  date -u +%Y-%m-%dT%H:%M:%S.%NZ > "$n.start"
  rc=0
  (cd "$D/work" && sh -c 'echo $$ > "$CG/cgroup.procs" && exec bash "$0"' "$step") > "$n.out" 2> "$n.err" < /dev/null || rc=$?
  echo $rc > "$n.rc"
  sleep 0.3 # the audit row of the last answer is written just after it ends
  date -u +%Y-%m-%dT%H:%M:%S.%NZ > "$n.end"
done
"#;

fn step_script(step: &Step, clients: &TestClients, dir: &Path, i: usize) -> String {
    let prompt_file = dir.join(format!("step-{i:02}.prompt"));
    std::fs::write(&prompt_file, &step.prompt).unwrap();
    let args: Vec<String> = step
        .args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let t = step.timeout_secs;
    let env: String = step
        .env
        .iter()
        .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', "'\\''")))
        .collect();
    // As nobody: own HOME and cwd, and a traversable (not readable) $NS_DIR.
    let (user_setup, home, drop) = if step.as_nobody {
        (
            "mkdir -p \"$NS_DIR/home-nobody\" \"$NS_DIR/work-nobody\"\n\
             chown 65534:65534 \"$NS_DIR/home-nobody\" \"$NS_DIR/work-nobody\"\n\
             chmod 711 \"$NS_DIR\"\ncd \"$NS_DIR/work-nobody\"\n",
            "home-nobody",
            "setpriv --reuid=65534 --regid=65534 --clear-groups --",
        )
    } else {
        ("", "home", "")
    };
    match step.client {
        Client::Claude => format!(
            "{user_setup}export HOME=\"$NS_DIR/{home}\" ANTHROPIC_API_KEY=sk-ant-api03-e2e-agents-test-key CLAUDE_CODE_MAX_RETRIES=0 \
             API_TIMEOUT_MS=30000 DISABLE_AUTOUPDATER=1\n{env}exec timeout -k 2 {t} {drop} '{}' -p \"$(cat '{}')\" {}\n",
            clients.npm_bin("claude").display(),
            prompt_file.display(),
            args.join(" ")
        ),
        Client::PythonSdk => format!(
            "export ANTHROPIC_API_KEY=sk-ant-api03-e2e-agents-test-key OPENAI_API_KEY=sk-proj-e2e-agents-test-key\n\
             exec timeout -k 2 {t} '{}' -c \"$(cat '{}')\"\n",
            clients.python().display(),
            prompt_file.display()
        ),
        Client::NodeSdk => format!(
            "export ANTHROPIC_API_KEY=sk-ant-api03-e2e-agents-test-key OPENAI_API_KEY=sk-proj-e2e-agents-test-key \
             NODE_PATH='{}'\nexec timeout -k 2 {t} node -e \"$(cat '{}')\"\n",
            clients.node_modules().display(),
            prompt_file.display()
        ),
        Client::Aider => format!(
            "export HOME=\"$NS_DIR/home-aider\" ANTHROPIC_API_KEY=sk-ant-api03-e2e-agents-test-key \
             OPENAI_API_KEY=sk-proj-e2e-agents-test-key LITELLM_LOCAL_MODEL_COST_MAP=True\n\
             mkdir -p \"$HOME\"\nexec timeout -k 2 {t} '{}' --model {} --message \"$(cat '{}')\" --no-git --yes-always \
             --no-check-update --analytics-disable --no-show-model-warnings --no-pretty --no-fancy-input --map-tokens 0\n",
            clients.aider().expect("aider installed").display(),
            args.join(" "),
            prompt_file.display()
        ),
        Client::Codex => format!(
            "export CODEX_HOME=\"$NS_DIR/codex-home\" CODEX_API_KEY=sk-proj-e2e-agents-test-key\n\
             {env}exec timeout -k 2 {t} '{}' exec --skip-git-repo-check {} \"$(cat '{}')\"\n",
            clients.npm_bin("codex").display(),
            args.join(" "),
            prompt_file.display()
        ),
    }
}

/// RFC 3339 UTC with the fraction padded to 9 digits, so strings compare in time order.
fn norm_ts(ts: &str) -> String {
    let ts = ts.trim().trim_end_matches('Z');
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    format!("{secs}.{frac:0<9}")
}

/// Runs `steps` in order in one namespace with one agent; `fake_ws` serves
/// the Responses WebSocket (else the fake answers 426 and Codex uses SSE).
fn run(clients: &TestClients, fake_ws: bool, steps: &[Step]) -> Outcome {
    run_with(clients, fake_ws, |_| String::new(), steps)
}

/// [`run`] with config sections appended to the agent's config; `extra`
/// gets the namespace directory (for key files it writes there).
fn run_with(clients: &TestClients, fake_ws: bool, extra: impl FnOnce(&Path) -> String, steps: &[Step]) -> Outcome {
    let cg = TestCgroup::create("agents");
    let mut ns = Namespace::new();
    let dir = ns.dir();
    std::fs::write(dir.join("extra.toml"), extra(&dir)).unwrap();
    for (i, step) in steps.iter().enumerate() {
        std::fs::write(dir.join(format!("step-{i:02}.sh")), step_script(step, clients, &dir, i)).unwrap();
    }
    ns.env("PW_BIN", promptwall_bin().display().to_string())
        .env("FAKE_BIN", fake_provider_bin().display().to_string())
        .env("CG", cg.path().display().to_string())
        .env("FAKE_WS", if fake_ws { "--ws" } else { "" });
    let budget: u64 = 60 + steps.iter().map(|s| s.timeout_secs + 5).sum::<u64>();
    let out = ns.run(SETUP, Duration::from_secs(budget));
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(
        out.success(),
        "namespace run failed:\n{}\n{}\nagent log:\n{log}",
        out.stdout,
        out.stderr
    );

    let mut q = Command::new(promptwall_bin());
    q.arg("--config")
        .arg(dir.join("config.toml"))
        .args(["audit", "query", "--json", "--limit", "10000"]);
    let aq = run_bounded(&mut q, Duration::from_secs(60));
    aq.expect_success("promptwall audit query");
    let mut all_rows: Vec<AuditRow> = aq
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit row ({e}): {l}")))
        .collect();
    all_rows.sort_by_key(|r| r.id);

    let read = |name: String| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let steps = (0..steps.len())
        .map(|i| {
            let (start, end) = (
                norm_ts(&read(format!("step-{i:02}.start"))),
                norm_ts(&read(format!("step-{i:02}.end"))),
            );
            let rows = all_rows
                .iter()
                .filter(|r| {
                    let ts = norm_ts(r.rest.get("ts").and_then(Value::as_str).unwrap_or(""));
                    ts >= start && ts <= end
                })
                .cloned()
                .collect();
            StepResult {
                stdout: read(format!("step-{i:02}.out")),
                stderr: read(format!("step-{i:02}.err")),
                rc: read(format!("step-{i:02}.rc")).trim().parse().ok(),
                rows,
            }
        })
        .collect();
    let fake = read("fake.jsonl".into())
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fake log line is JSON"))
        .collect();
    Outcome { steps, fake, all_rows }
}

/// The audit row of an LLM call by this client: identified tool, the
/// client process (pid, exe, user), model and token counts.
fn assert_llm_row(row: &AuditRow, client: Client) {
    assert_llm_row_as(row, client, "root");
}

fn assert_llm_row_as(row: &AuditRow, client: Client, user: &str) {
    let (tool, exe_part) = match client {
        Client::Claude => ("claude-code", "@anthropic-ai/claude-code"),
        Client::Codex => ("codex", "codex"),
        Client::PythonSdk => ("python-sdk", "python"),
        Client::NodeSdk => ("node-sdk", "node"),
        Client::Aider => ("aider", "python"),
    };
    assert_eq!(row.listener, "transparent", "{row:#?}");
    assert_eq!(row.tool.as_deref(), Some(tool), "{row:#?}");
    assert!(row.pid.is_some_and(|p| p > 1), "{row:#?}");
    assert!(row.exe.as_deref().is_some_and(|e| e.contains(exe_part)), "{row:#?}");
    assert_eq!(row.user.as_deref(), Some(user), "{row:#?}");
    assert!(row.model.as_deref().is_some_and(|m| !m.is_empty()), "{row:#?}");
}

/// The fake's reported usage for a record equals the row's tokens.
fn assert_tokens(row: &AuditRow, rec: &Value) {
    assert_eq!(
        row.input_tokens,
        rec["reply_usage"]["input_tokens"].as_i64(),
        "input tokens {row:#?}"
    );
    assert_eq!(
        row.output_tokens,
        rec["reply_usage"]["output_tokens"].as_i64(),
        "output tokens {row:#?}"
    );
    assert_eq!(
        row.model.as_deref(),
        rec["json"]["model"]
            .as_str()
            .or(rec["json"]["response"]["model"].as_str())
    );
}

fn findings(row: &AuditRow) -> Value {
    match row.rest.get("findings").cloned().unwrap_or(Value::Null) {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
        v => v,
    }
}

#[test]
fn claude_code_plain_pii_and_tool_round() {
    let Some(clients) = prerequisites() else {
        return;
    };
    let pii = format!("agents-pii write to {EMAIL} or call {PHONE}");
    let tool = format!("agents-tool ECHOARGS {EMAIL} {PHONE}");
    let o = run(
        &clients,
        false,
        &[
            claude("agents-plain say hi", &[]).run_as_nobody(),
            claude(&pii, &[]),
            claude(&tool, &["--allowedTools", "Bash(echo:*)"]),
        ],
    );

    // Plain turn.
    let s = &o.steps[0];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), "You said: agents-plain say hi", "{}", s.show());
    let seen = o.fake_with("agents-plain say hi");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["path"], "/v1/messages");
    assert_eq!(seen[0]["query"], "beta=true");
    assert_eq!(seen[0]["sni"], "api.anthropic.com");
    // Claude Code's own headers reach the provider as it sent them.
    let headers: Vec<(String, String)> = serde_json::from_value(seen[0]["headers"].clone()).unwrap();
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(header("x-api-key"), Some("sk-ant-api03-e2e-agents-test-key"));
    assert_eq!(header("anthropic-version"), Some("2023-06-01"));
    assert!(
        header("anthropic-beta").is_some_and(|b| b.contains("claude-code-")),
        "{headers:?}"
    );
    assert!(header("x-claude-code-session-id").is_some(), "{headers:?}");
    let rows = s.llm_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    // Run as nobody: the row names the client's user, not the agent's (root).
    assert_llm_row_as(rows[0], Client::Claude, "nobody");
    assert_eq!(
        rows[0].rest.get("uid").and_then(Value::as_u64),
        Some(65534),
        "{:#?}",
        rows[0]
    );
    assert_tokens(rows[0], seen[0]);
    assert_eq!(
        rows[0].verdict, "allowed",
        "Claude Code's own prompt must pass untouched: {:#?}",
        rows[0]
    );
    // Its non-LLM calls went through and are audited as such, under its name.
    let settings: Vec<_> = s
        .rows
        .iter()
        .filter(|r| r.path.as_deref() == Some("/api/claude_code/settings"))
        .collect();
    assert!(
        !settings.is_empty() && settings.iter().all(|r| r.tool.as_deref() == Some("claude-code")),
        "{:#?}",
        s.rows
    );
    assert!(
        s.rows.iter().all(|r| r.tool.as_deref() == Some("claude-code")),
        "every call is Claude Code's: {:#?}",
        s.rows
    );

    // PII: the provider sees placeholders, the user the originals.
    let s = &o.steps[1];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), format!("You said: {pii}"), "{}", s.show());
    assert!(
        !o.fake_contains(EMAIL) && !o.fake_contains("555 0134"),
        "PII reached the provider"
    );
    let seen = o.fake_with("agents-pii write to [[EMAIL_");
    assert_eq!(seen.len(), 1);
    let rows = s.llm_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_llm_row(rows[0], Client::Claude);
    assert_tokens(rows[0], seen[0]);
    assert_eq!(rows[0].verdict, "redacted");
    assert_eq!(
        (findings(rows[0])["email"].as_u64(), findings(rows[0])["phone"].as_u64()),
        (Some(1), Some(1))
    );

    // Tool round: tool_use arguments streamed as input_json_delta carry
    // placeholders; Bash ran with the originals (its output echoes them).
    let s = &o.steps[2];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), format!("Tool said: {tool}"), "{}", s.show());
    let seen = o.fake_with("agents-tool ECHOARGS");
    assert_eq!(seen.len(), 2, "tool_use turn, then tool_result turn: {seen:#?}");
    let result_turn = seen[1]["body"].as_str().unwrap();
    assert!(
        result_turn.contains("tool_result") && result_turn.contains("[[EMAIL_"),
        "{result_turn}"
    );
    // The signed thinking block came back intact (the fake, like the API,
    // answers 400 to an altered one).
    let thinking: Vec<&Value> = seen[1]["json"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "thinking")
        .collect();
    assert_eq!(thinking.len(), 1, "{result_turn}");
    assert_eq!(
        thinking[0]["thinking"],
        promptwall_fake_provider::anthropic::THINKING_TEXT
    );
    assert_eq!(
        thinking[0]["signature"],
        promptwall_fake_provider::scenario::thinking_signature(promptwall_fake_provider::anthropic::THINKING_TEXT)
    );
    assert_eq!(seen[1]["status"], 200);
    let rows = s.llm_rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (row, rec) in rows.iter().zip(&seen) {
        assert_llm_row(row, Client::Claude);
        assert_tokens(row, rec);
        assert_eq!(row.verdict, "redacted");
    }
}

#[test]
fn claude_code_blocked_secret_and_upstream_errors() {
    let Some(clients) = prerequisites() else {
        return;
    };
    let key = aws_key();
    let o = run(
        &clients,
        false,
        &[
            claude(&format!("agents-secret deploy with {key} now"), &[]),
            claude("agents-429 FAKESTATUS429", &[]),
            claude("agents-529 FAKESTATUS529", &[]),
            claude("agents-mid MIDSTREAMERROR please", &[]),
        ],
    );

    // Secret: blocked before it leaves; the error names the kind, not the value.
    let s = &o.steps[0];
    assert_eq!(s.rc, Some(1), "{}", s.show());
    assert!(
        s.all().contains("422") && s.all().contains("aws_access_key_id"),
        "{}",
        s.show()
    );
    assert!(!s.all().contains(&key), "the key value is echoed: {}", s.show());
    assert!(
        !o.fake_contains(&key) && o.fake_with("agents-secret").is_empty(),
        "the secret reached the provider"
    );
    let rows = s.llm_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_llm_row(rows[0], Client::Claude);
    assert_eq!((rows[0].status, rows[0].verdict.as_str()), (422, "blocked"));
    assert_eq!(
        findings(rows[0])["aws_access_key_id"].as_u64(),
        Some(1),
        "{:#?}",
        rows[0]
    );

    // 429 / 529 come back as the provider sent them.
    for (i, status, text) in [(1, 429, "Rate limited by the fake provider"), (2, 529, "Overloaded")] {
        let s = &o.steps[i];
        assert_eq!(s.rc, Some(1), "{}", s.show());
        assert!(
            s.all().contains(&status.to_string()) && s.all().contains(text),
            "{}",
            s.show()
        );
        let rows = s.llm_rows();
        assert_eq!(rows.len(), 1, "CLAUDE_CODE_MAX_RETRIES=0: one attempt: {rows:#?}");
        assert_llm_row(rows[0], Client::Claude);
        assert_eq!(rows[0].status, status);
        assert_eq!(o.fake_with(&format!("agents-{status}")).len(), 1);
    }

    // Mid-stream `error` event: Claude Code got the two deltas before it and
    // the error (it asks to resume, sending the partial answer back).
    let s = &o.steps[3];
    let seen = o.fake_with("agents-mid MIDSTREAMERROR");
    assert!(
        seen.len() >= 2,
        "Claude Code resumes after a mid-stream error: {seen:#?}\n{}",
        s.show()
    );
    // (It drops the partial answer and asks the model to resume.)
    let resumed = seen[1]["json"]["messages"].to_string();
    assert!(
        resumed.contains("cut off mid-stream"),
        "Claude Code did not see the error: {resumed}"
    );
    assert_eq!(s.rc, Some(0), "{}", s.show());
    let rows = s.llm_rows();
    assert_eq!(rows.len(), seen.len(), "{rows:#?}");
    rows.iter().for_each(|r| assert_llm_row(r, Client::Claude));
}

#[test]
fn codex_websocket_plain_pii_and_tool_round() {
    let Some(clients) = prerequisites() else {
        return;
    };
    let pii = format!("agents-pii write to {EMAIL} or call {PHONE}");
    let tool = format!("agents-tool ECHOARGS {EMAIL} {PHONE}");
    let o = run(
        &clients,
        true,
        &[codex("agents-plain say hi"), codex(&pii), codex(&tool)],
    );

    // Plain turn over the Responses WebSocket: prewarm + response.create.
    let s = &o.steps[0];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), "You said: agents-plain say hi", "{}", s.show());
    let seen = o.fake_with("agents-plain say hi");
    assert!(
        !seen.is_empty() && seen.iter().all(|r| r["transport"] == "ws"),
        "{seen:#?}"
    );
    assert!(
        o.fake
            .iter()
            .all(|r| !(r["method"] == "POST" && r["path"] == "/v1/responses")),
        "no SSE fallback expected"
    );
    // The handshake the provider got: Codex's own headers, but no
    // permessage-deflate (compressed frames could not be inspected).
    let upgrade = o
        .fake
        .iter()
        .find(|r| r["method"] == "GET" && r["path"] == "/v1/responses")
        .expect("an upgrade");
    assert_eq!(upgrade["status"], 101);
    let headers: Vec<(String, String)> = serde_json::from_value(upgrade["headers"].clone()).unwrap();
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert!(
        header("openai-beta").is_some_and(|v| v.contains("responses_websockets")),
        "{headers:?}"
    );
    assert_eq!(header("authorization"), Some("Bearer sk-proj-e2e-agents-test-key"));
    assert_eq!(header("originator"), Some("codex_exec"));
    assert_eq!(header("sec-websocket-extensions"), None, "{headers:?}");
    let answered = seen.last().unwrap();
    let rows: Vec<_> = s
        .llm_rows()
        .into_iter()
        .filter(|r| r.output_tokens.unwrap_or(0) > 0)
        .collect();
    assert_eq!(rows.len(), 1, "{:#?}", s.rows);
    assert_llm_row(rows[0], Client::Codex);
    assert_eq!(rows[0].path.as_deref(), Some("/v1/responses"));
    assert_tokens(rows[0], answered);
    assert!(
        s.rows
            .iter()
            .any(|r| r.path.as_deref() == Some("/backend-api/codex/models")
                && r.rest.get("llm").and_then(Value::as_bool) == Some(false)
                && r.status == 200),
        "{:#?}",
        s.rows
    );

    // PII inside response.create: placeholders upstream, originals for the user.
    let s = &o.steps[1];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), format!("You said: {pii}"), "{}", s.show());
    assert!(
        !o.fake_contains(EMAIL) && !o.fake_contains("555 0134"),
        "PII reached the provider"
    );
    let seen = o.fake_with("agents-pii write to [[EMAIL_");
    assert!(!seen.is_empty() && seen.iter().all(|r| r["transport"] == "ws"));
    let rows: Vec<_> = s.llm_rows().into_iter().filter(|r| r.verdict == "redacted").collect();
    assert_eq!(rows.len(), 1, "{:#?}", s.rows);
    assert_llm_row(rows[0], Client::Codex);
    assert_eq!(findings(rows[0])["email"].as_u64(), Some(1), "{:#?}", rows[0]);

    // Tool round: the custom tool call's input carries placeholders; Codex ran
    // it with the originals (its output echoes them), and the output sent
    // back (only the new input, over the same socket) is redacted again.
    let s = &o.steps[2];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert!(
        s.stdout.contains("Tool said:") && s.stdout.contains(&tool),
        "{}",
        s.show()
    );
    assert!(!o.fake_contains(EMAIL), "PII reached the provider");
    let outputs: Vec<_> = o
        .fake
        .iter()
        .filter(|r| r["transport"] == "ws")
        .filter_map(|r| {
            let req = if r["json"]["response"].is_object() {
                &r["json"]["response"]
            } else {
                &r["json"]
            };
            let items = req["input"].as_array()?;
            items
                .iter()
                .any(|i| i["type"] == "custom_tool_call_output")
                .then_some((req, items))
        })
        .collect();
    assert_eq!(outputs.len(), 1, "one tool output message expected");
    let (req, items) = outputs[0];
    assert_eq!(
        items.len(),
        1,
        "over the socket a follow-up carries only the new input: {items:#?}"
    );
    assert!(items[0].to_string().contains("[[EMAIL_"), "{items:#?}");
    assert!(
        req["previous_response_id"].is_string(),
        "a follow-up on the same socket"
    );
    assert!(s.llm_rows().iter().all(|r| r.tool.as_deref() == Some("codex")));
}

#[test]
fn codex_blocked_secret_and_upstream_errors() {
    let Some(clients) = prerequisites() else {
        return;
    };
    let key = aws_key();
    let o = run(
        &clients,
        true,
        &[
            codex(&format!("agents-secret deploy with {key} now")),
            codex("agents-429 FAKESTATUS429"),
            codex("agents-mid MIDSTREAMERROR please"),
        ],
    );

    // Secret in response.create: refused on the WebSocket (error frame with
    // 422), then again on the SSE fallback; the value never leaves.
    let s = &o.steps[0];
    assert_eq!(s.rc, Some(1), "{}", s.show());
    let errors: Vec<&str> = s.stderr.lines().filter(|l| l.contains("promptwall blocked")).collect();
    assert!(
        !errors.is_empty()
            && errors
                .iter()
                .all(|l| l.contains("aws_access_key_id") && l.contains("422")),
        "{}",
        s.show()
    );
    assert!(
        errors.iter().all(|l| !l.contains(&key)),
        "the error echoes the key: {errors:#?}"
    );
    assert!(
        !o.fake_contains(&key) && o.fake_with("agents-secret").is_empty(),
        "the secret reached the provider"
    );
    assert!(
        s.stderr.contains("Falling back from WebSockets to HTTPS"),
        "{}",
        s.show()
    );
    let blocked: Vec<_> = s.rows.iter().filter(|r| r.verdict == "blocked").collect();
    assert!(!blocked.is_empty(), "{:#?}", s.rows);
    for row in &blocked {
        assert_llm_row(row, Client::Codex);
        assert_eq!(findings(row)["aws_access_key_id"].as_u64(), Some(1), "{row:#?}");
    }

    // 429: Codex retries, then reports the provider's status.
    let s = &o.steps[1];
    assert_eq!(s.rc, Some(1), "{}", s.show());
    assert!(s.all().contains("429"), "{}", s.show());
    assert!(!o.fake_with("agents-429").is_empty());
    let limited: Vec<_> = s.llm_rows().into_iter().filter(|r| r.status == 429).collect();
    assert!(!limited.is_empty(), "the 429s are audited: {:#?}", s.rows);
    limited.iter().for_each(|r| assert_llm_row(r, Client::Codex));

    // Mid-stream error event (then response.failed) reaches Codex.
    let s = &o.steps[2];
    assert_eq!(s.rc, Some(1), "{}", s.show());
    assert!(s.all().contains("injected mid-stream"), "{}", s.show());
    let partial = o.fake_with("agents-mid MIDSTREAMERROR");
    assert!(!partial.is_empty());
    assert!(!s.llm_rows().is_empty(), "{:#?}", s.rows);
    s.llm_rows().iter().for_each(|r| assert_llm_row(r, Client::Codex));
    assert!(o.all_rows.iter().all(|r| r.tool.as_deref() == Some("codex")));
}

/// When the WebSocket is refused (here by the provider, 426), Codex falls
/// back to POST + SSE, which is inspected the same way.
#[test]
fn codex_falls_back_to_sse_when_the_websocket_is_refused() {
    let Some(clients) = prerequisites() else {
        return;
    };
    let pii = format!("agents-sse write to {EMAIL}");
    let o = run(&clients, false, &[codex(&pii)]);
    let s = &o.steps[0];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), format!("You said: {pii}"), "{}", s.show());
    assert!(o
        .fake
        .iter()
        .any(|r| r["method"] == "GET" && r["path"] == "/v1/responses" && r["status"] == 426));
    let seen: Vec<_> = o.fake_with("agents-sse write to [[EMAIL_");
    assert!(
        !seen.is_empty() && seen.iter().all(|r| r["method"] == "POST" && r["transport"] == "http"),
        "{seen:#?}"
    );
    assert!(!o.fake_contains(EMAIL));
    let refused: Vec<_> = s.rows.iter().filter(|r| r.status == 426).collect();
    assert!(!refused.is_empty(), "the refused upgrade is audited: {:#?}", s.rows);
    let rows: Vec<_> = s
        .llm_rows()
        .into_iter()
        .filter(|r| r.method.as_deref() == Some("POST"))
        .collect();
    assert_eq!(rows.len(), 1, "{:#?}", s.rows);
    assert_llm_row(rows[0], Client::Codex);
    assert_eq!(rows[0].verdict, "redacted");
    assert_tokens(rows[0], seen.last().unwrap());
}

const PY_SDKS: &str = r#"
import json, anthropic, openai
a = anthropic.Anthropic(max_retries=0, timeout=60)
with a.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "agents-py-a mail jane.doe@example.org"}]) as s:
    text = "".join(s.text_stream)
o = openai.OpenAI(max_retries=0, timeout=60)
r = o.responses.create(model="gpt-5", input="agents-py-o hello")
print(json.dumps({"anthropic": text, "openai": r.output_text}))
"#;

const NODE_SDKS: &str = r#"
const Anthropic = require("@anthropic-ai/sdk");
const OpenAI = require("openai");
(async () => {
  const a = new (Anthropic.default || Anthropic)({ maxRetries: 0 });
  const m = await a.messages.create({ model: "claude-sonnet-4-5", max_tokens: 64,
    messages: [{ role: "user", content: "agents-node-a hello" }] });
  const o = new (OpenAI.default || OpenAI)({ maxRetries: 0 });
  const stream = await o.chat.completions.create({ model: "gpt-4o", stream: true, stream_options: { include_usage: true },
    messages: [{ role: "user", content: "agents-node-o call +1 415 555 0134" }] });
  let text = "";
  for await (const c of stream) text += (c.choices[0] && c.choices[0].delta.content) || "";
  console.log(JSON.stringify({ anthropic: m.content[0].text, openai: text }));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"#;

/// The official SDKs, with no base-URL variable, go through the redirect too
/// (trust only from the machine-wide variables) and are named in the audit.
#[test]
fn official_sdks_without_base_url() {
    let Some(clients) = prerequisites() else { return };
    let o = run(
        &clients,
        false,
        &[sdk(Client::PythonSdk, PY_SDKS), sdk(Client::NodeSdk, NODE_SDKS)],
    );

    let s = &o.steps[0];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    let got: Value = serde_json::from_str(s.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", s.show()));
    assert_eq!(got["anthropic"], format!("You said: agents-py-a mail {EMAIL}"));
    assert_eq!(got["openai"], "You said: agents-py-o hello");
    assert!(!o.fake_contains(EMAIL));
    let a = o.fake_with("agents-py-a mail [[EMAIL_");
    let b = o.fake_with("agents-py-o hello");
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(
        (a[0]["sni"].as_str(), b[0]["sni"].as_str()),
        (Some("api.anthropic.com"), Some("api.openai.com"))
    );
    let rows = s.llm_rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (row, rec) in rows.iter().zip([a[0], b[0]]) {
        assert_llm_row(row, Client::PythonSdk);
        assert_tokens(row, rec);
    }
    assert_eq!(
        (rows[0].verdict.as_str(), rows[1].verdict.as_str()),
        ("redacted", "allowed")
    );

    let s = &o.steps[1];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    let got: Value = serde_json::from_str(s.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", s.show()));
    assert_eq!(got["anthropic"], "You said: agents-node-a hello");
    assert_eq!(got["openai"], format!("You said: agents-node-o call {PHONE}"));
    assert!(!o.fake_contains("555 0134"));
    let a = o.fake_with("agents-node-a hello");
    let b = o.fake_with("agents-node-o call [[PHONE_");
    assert_eq!((a.len(), b.len()), (1, 1));
    let rows = s.llm_rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (row, rec) in rows.iter().zip([a[0], b[0]]) {
        assert_llm_row(row, Client::NodeSdk);
        assert_tokens(row, rec);
    }
}

/// aider (full suite: `cargo xtask test --full` installs it): OpenAI and
/// Anthropic models, PII restored in its answer. aider exits 0 even when a
/// call fails, so the answer text is what is asserted.
#[test]
fn aider_openai_and_anthropic_models() {
    let Some(clients) = prerequisites() else { return };
    if clients.aider().is_none() {
        let msg = "aider not installed; `cargo xtask setup --full` installs it";
        assert!(
            std::env::var("PROMPTWALL_FULL_TESTS").map_or(true, |v| v != "1"),
            "{msg}"
        );
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let step = |model: &str, prompt: &str| Step {
        client: Client::Aider,
        prompt: prompt.into(),
        args: vec![model.into()],
        timeout_secs: 120,
        as_nobody: false,
        env: vec![],
    };
    let o = run(
        &clients,
        false,
        &[
            step("gpt-4o", &format!("agents-aider-o mail {EMAIL}")),
            step("anthropic/claude-sonnet-4-5", &format!("agents-aider-a call {PHONE}")),
        ],
    );
    for (i, (marker, original, placeholder, provider)) in [
        ("agents-aider-o mail", EMAIL, "[[EMAIL_", "openai"),
        ("agents-aider-a call", PHONE, "[[PHONE_", "anthropic"),
    ]
    .into_iter()
    .enumerate()
    {
        let s = &o.steps[i];
        assert!(
            s.stdout.contains(&format!("You said: {marker} {original}")),
            "{}",
            s.show()
        );
        let seen = o.fake_with(&format!("{marker} {placeholder}"));
        assert_eq!(seen.len(), 1, "{}", s.show());
        let rows = s.llm_rows();
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_llm_row(rows[0], Client::Aider);
        assert_tokens(rows[0], seen[0]);
        assert_eq!(rows[0].provider.as_deref(), Some(provider));
        assert_eq!(rows[0].verdict, "redacted");
    }
    assert!(!o.fake_contains(EMAIL) && !o.fake_contains("555 0134"));
}

/// Key files for routing scenarios, in the namespace directory.
fn routing_key(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, format!("sk-org-{name}-key\n")).unwrap();
    path.display().to_string()
}

/// Three upstreams on the fake, one per API, chosen by the model the
/// client asks for: `to-msg`, `to-chat`, `to-resp`.
fn matrix_routes(dir: &Path) -> String {
    format!(
        r#"
[routing.upstreams.msg]
kind = "anthropic"
accounts = [{{ name = "org", key_file = "{}" }}]
[routing.upstreams.chat]
kind = "openai"
api = "chat"
accounts = [{{ name = "org", key_file = "{}" }}]
[routing.upstreams.resp]
kind = "openai"
api = "responses"
accounts = [{{ name = "org", key_file = "{}" }}]
[[routing.routes]]
name = "to-msg"
models = ["to-msg"]
targets = ["msg:claude-sonnet-4-5"]
[[routing.routes]]
name = "to-chat"
models = ["to-chat"]
targets = ["chat:gpt-4o-mini"]
[[routing.routes]]
name = "to-resp"
models = ["to-resp"]
targets = ["resp:gpt-5"]
"#,
        routing_key(dir, "msg"),
        routing_key(dir, "chat"),
        routing_key(dir, "resp")
    )
}

const PY_MATRIX: &str = r#"
import json, anthropic, openai
a = anthropic.Anthropic(max_retries=0, timeout=60)
o = openai.OpenAI(max_retries=0, timeout=60)
out = {}
for up in ["msg", "chat", "resp"]:
    m, t = f"to-{up}", f"mx-py-{up}"
    r = a.messages.create(model=m, max_tokens=64, messages=[{"role": "user", "content": f"{t}-a mail jane.doe@example.org"}])
    out[f"a-{up}"] = "".join(b.text for b in r.content if b.type == "text")
    with a.messages.stream(model=m, max_tokens=64, messages=[{"role": "user", "content": f"{t}-as hi"}]) as s:
        out[f"as-{up}"] = "".join(s.text_stream)
    r = o.chat.completions.create(model=m, messages=[{"role": "user", "content": f"{t}-c hi"}])
    out[f"c-{up}"] = r.choices[0].message.content
    s = o.chat.completions.create(model=m, stream=True, stream_options={"include_usage": True}, messages=[{"role": "user", "content": f"{t}-cs hi"}])
    out[f"cs-{up}"] = "".join((c.choices[0].delta.content or "") for c in s if c.choices)
    r = o.responses.create(model=m, input=f"{t}-r hi")
    out[f"r-{up}"] = r.output_text
    s = o.responses.create(model=m, input=f"{t}-rs hi", stream=True)
    out[f"rs-{up}"] = "".join(e.delta for e in s if e.type == "response.output_text.delta")
print(json.dumps(out))
"#;

const NODE_MATRIX: &str = r#"
const Anthropic = require("@anthropic-ai/sdk");
const OpenAI = require("openai");
(async () => {
  const a = new (Anthropic.default || Anthropic)({ maxRetries: 0 });
  const o = new (OpenAI.default || OpenAI)({ maxRetries: 0 });
  const out = {};
  for (const up of ["msg", "chat", "resp"]) {
    const m = `to-${up}`, t = `mx-node-${up}`;
    const r1 = await a.messages.create({ model: m, max_tokens: 64, messages: [{ role: "user", content: `${t}-a hi` }] });
    out[`a-${up}`] = r1.content.filter((b) => b.type === "text").map((b) => b.text).join("");
    const s1 = a.messages.stream({ model: m, max_tokens: 64, messages: [{ role: "user", content: `${t}-as hi` }] });
    out[`as-${up}`] = (await s1.finalMessage()).content.filter((b) => b.type === "text").map((b) => b.text).join("");
    const r2 = await o.chat.completions.create({ model: m, messages: [{ role: "user", content: `${t}-c hi` }] });
    out[`c-${up}`] = r2.choices[0].message.content;
    const s2 = await o.chat.completions.create({ model: m, stream: true, messages: [{ role: "user", content: `${t}-cs hi` }] });
    let cs = "";
    for await (const c of s2) cs += (c.choices[0] && c.choices[0].delta.content) || "";
    out[`cs-${up}`] = cs;
    const r3 = await o.responses.create({ model: m, input: `${t}-r hi` });
    out[`r-${up}`] = r3.output_text;
    const s3 = await o.responses.create({ model: m, input: `${t}-rs hi`, stream: true });
    let rs = "";
    for await (const e of s3) if (e.type === "response.output_text.delta") rs += e.delta;
    out[`rs-${up}`] = rs;
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"#;

/// The official SDKs, unmodified and without a base URL, across the whole
/// translation matrix: each of the three client APIs, streamed and not, to
/// an upstream speaking each of the three APIs, chosen by a rule.
#[test]
fn official_sdks_cover_the_whole_translation_matrix_through_routes() {
    let Some(clients) = prerequisites() else { return };
    let o = run_with(
        &clients,
        false,
        matrix_routes,
        &[sdk(Client::PythonSdk, PY_MATRIX), sdk(Client::NodeSdk, NODE_MATRIX)],
    );
    for (i, lang) in [(0, "py"), (1, "node")] {
        let s = &o.steps[i];
        assert_eq!(s.rc, Some(0), "{}", s.show());
        let got: Value = serde_json::from_str(s.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", s.show()));
        for up in ["msg", "chat", "resp"] {
            for api in ["a", "as", "c", "cs", "r", "rs"] {
                let asked = if lang == "py" && api == "a" {
                    format!("mx-{lang}-{up}-a mail {EMAIL}")
                } else {
                    format!("mx-{lang}-{up}-{api} hi")
                };
                assert_eq!(
                    got[format!("{api}-{up}")],
                    format!("You said: {asked}"),
                    "{api} → {up}: {}",
                    s.show()
                );
            }
        }
        // Each upstream got its own API, with the org's key, never the client's.
        for (up, path, auth) in [
            ("msg", "/v1/messages", ("x-api-key", "sk-org-msg-key")),
            (
                "chat",
                "/v1/chat/completions",
                ("authorization", "Bearer sk-org-chat-key"),
            ),
            ("resp", "/v1/responses", ("authorization", "Bearer sk-org-resp-key")),
        ] {
            let seen = o.fake_with(&format!("mx-{lang}-{up}-"));
            assert_eq!(seen.len(), 6, "{up}: {seen:#?}");
            for r in &seen {
                assert_eq!(r["path"], path, "{r:#?}");
                let headers: Vec<(String, String)> = serde_json::from_value(r["headers"].clone()).unwrap();
                assert!(headers.iter().any(|(k, v)| k == auth.0 && v == auth.1), "{headers:?}");
                assert!(!format!("{headers:?}").contains("e2e-agents-test-key"), "{headers:?}");
            }
        }
        let rows = s.llm_rows();
        assert_eq!(rows.len(), 18, "{rows:#?}");
        for r in &rows {
            let route = r.rest.get("route").and_then(Value::as_str).unwrap_or("");
            assert!(route.starts_with("to-"), "{r:#?}");
        }
    }
    assert!(!o.fake_contains(EMAIL), "redacted before translation");
}

/// Claude Code, unmodified, routed by a rule to an OpenAI Chat upstream:
/// its answers (streamed) come back as Anthropic events, PII restored, and
/// a tool round runs Bash with the original values.
#[test]
fn claude_code_routed_to_a_chat_upstream_completes_a_tool_round_with_pii_restored() {
    let Some(clients) = prerequisites() else { return };
    let pii = format!("route-pii write to {EMAIL}");
    let tool = format!("route-tool ECHOARGS {EMAIL}");
    let o = run_with(
        &clients,
        false,
        |dir| {
            format!(
                r#"
[routing.upstreams.gpt]
kind = "openai"
api = "chat"
accounts = [{{ name = "org", key_file = "{}" }}]
[[routing.routes]]
name = "claude-to-gpt"
models = ["claude-*"]
targets = ["gpt:gpt-4o-mini"]
"#,
                routing_key(dir, "gpt")
            )
        },
        &[claude(&pii, &[]), claude(&tool, &["--allowedTools", "Bash(echo:*)"])],
    );
    let s = &o.steps[0];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), format!("You said: {pii}"), "{}", s.show());
    let seen = o.fake_with("route-pii write to [[EMAIL_");
    assert!(
        !seen.is_empty() && seen.iter().all(|r| r["path"] == "/v1/chat/completions"),
        "{seen:#?}"
    );
    assert!(!o.fake_contains(EMAIL));
    assert!(
        o.fake.iter().all(|r| r["path"] != "/v1/messages"),
        "no Claude model call went to Anthropic"
    );
    let rows = s.llm_rows();
    assert!(!rows.is_empty(), "{:#?}", s.rows);
    for r in &rows {
        assert_llm_row(r, Client::Claude);
        assert_eq!(
            r.rest.get("route").and_then(Value::as_str),
            Some("claude-to-gpt"),
            "{r:#?}"
        );
    }
    let s = &o.steps[1];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), format!("Tool said: {tool}"), "{}", s.show());
    let seen = o.fake_with("route-tool ECHOARGS");
    let result_turn = seen.last().expect("a tool_result turn");
    let msgs = result_turn["json"]["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["role"] == "tool"), "{result_turn:#?}");
}

/// Codex, unmodified, routed by a rule to an Anthropic Messages upstream:
/// its WebSocket is declined (a route applies per request), it falls back
/// to HTTP streaming, each request is translated to Messages and the
/// answer back to Responses events; its freeform `exec` tool call comes
/// back as a custom tool call and runs with the original values.
#[test]
fn codex_routed_to_a_messages_upstream_completes_a_tool_round_with_pii_restored() {
    let Some(clients) = prerequisites() else { return };
    let pii = format!("route-codex write to {EMAIL}");
    let tool = format!("route-codex-tool ECHOARGS {EMAIL}");
    let o = run_with(
        &clients,
        true,
        |dir| {
            format!(
                r#"
[routing.upstreams.claude]
kind = "anthropic"
accounts = [{{ name = "org", key_file = "{}" }}]
[[routing.routes]]
name = "codex-to-claude"
shapes = ["openai.responses"]
targets = ["claude:claude-sonnet-4-5"]
"#,
                routing_key(dir, "claude")
            )
        },
        &[codex(&pii), codex(&tool)],
    );
    let s = &o.steps[0];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert_eq!(s.stdout.trim(), format!("You said: {pii}"), "{}", s.show());
    assert!(!o.fake_contains(EMAIL), "PII reached the provider");
    let seen = o.fake_with("route-codex write to [[EMAIL_");
    assert!(
        !seen.is_empty() && seen.iter().all(|r| r["path"] == "/v1/messages"),
        "{seen:#?}"
    );
    let headers: Vec<(String, String)> = serde_json::from_value(seen[0]["headers"].clone()).unwrap();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == "sk-org-claude-key"),
        "{headers:?}"
    );
    assert!(
        o.fake.iter().all(|r| r["transport"] != "ws"),
        "the WebSocket never reached a provider"
    );
    let declined: Vec<_> = s.rows.iter().filter(|r| r.status == 426).collect();
    assert!(!declined.is_empty(), "the declined upgrade is audited: {:#?}", s.rows);
    let rows: Vec<_> = s.llm_rows().into_iter().filter(|r| r.status == 200).collect();
    assert!(!rows.is_empty(), "{:#?}", s.rows);
    for r in &rows {
        assert_llm_row(r, Client::Codex);
        assert_eq!(
            r.rest.get("route").and_then(Value::as_str),
            Some("codex-to-claude"),
            "{r:#?}"
        );
    }

    let s = &o.steps[1];
    assert_eq!(s.rc, Some(0), "{}", s.show());
    assert!(
        s.stdout.contains("Tool said:") && s.stdout.contains(&tool),
        "{}",
        s.show()
    );
    assert!(!o.fake_contains(EMAIL), "PII reached the provider");
    let seen = o.fake_with("route-codex-tool ECHOARGS");
    let result_turn = seen.last().expect("a tool result turn");
    assert!(
        result_turn["body"].as_str().unwrap().contains("tool_result"),
        "{result_turn:#?}"
    );
}

/// Uses up a small token budget in one call (a request larger than the
/// whole limit passes alone in an empty window).
const PY_BIG_CALL: &str = r#"
import anthropic
c = anthropic.Anthropic(max_retries=0, timeout=60)
r = c.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                      messages=[{"role": "user", "content": "budget-filler " + "lorem ipsum " * 2000}])
print(r.usage.input_tokens)
"#;

/// Claude Code and Codex (over its WebSocket, each `response.create`
/// metered), unmodified, over a user's daily token budget: each gets a 429,
/// shows it (Claude Code with the limit's reason) and gives up after its
/// own few retries instead of waiting out the day; nothing of theirs
/// reaches the provider.
#[test]
fn claude_code_and_codex_over_a_token_budget_show_the_reason_and_stop() {
    let Some(clients) = prerequisites() else { return };
    let o = run_with(
        &clients,
        true,
        |_| {
            r#"
[[quota.limits]]
name = "team-daily-tokens"
per = "user"
measure = "tokens"
max = 1000
window = "day"
"#
            .into()
        },
        &[
            sdk(Client::PythonSdk, PY_BIG_CALL),
            // Claude Code retries a first-party 429 whatever the headers
            // say (observed: x-should-retry: false is honoured only with a
            // base URL), so its retries are bounded here to keep the test
            // short; the count below shows they are its own, not a loop.
            claude("agents-budget-claude say hi", &[]).with_env("CLAUDE_CODE_MAX_RETRIES", "3"),
            codex("agents-budget-codex say hi"),
        ],
    );
    let filler = &o.steps[0];
    assert_eq!(filler.rc, Some(0), "{}", filler.show());
    for (i, who) in [(1, "claude"), (2, "codex")] {
        let s = &o.steps[i];
        assert_ne!(s.rc, Some(0), "{who} cannot succeed over budget: {}", s.show());
        let summary: Vec<String> = s
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {:?} {}",
                    r.status,
                    r.path,
                    r.model,
                    r.rest.get("ts").and_then(Value::as_str).unwrap_or("")
                )
            })
            .collect();
        // Codex prints no server text for an HTTP 429, only its own line
        // with the status; the reason is in the row and `promptwall limits`.
        let shown = if who == "claude" {
            "team-daily-tokens"
        } else {
            "429 Too Many Requests"
        };
        assert!(
            s.all().contains(shown),
            "{who} shows the refusal: {}\nrows: {summary:#?}",
            s.show()
        );
        let limited: Vec<_> = s.rows.iter().filter(|r| r.verdict == "limited").collect();
        assert!(!limited.is_empty(), "{who}: {:#?}", s.rows);
        // Its own bounded retries (Claude Code's setting, Codex's 5
        // reconnects), never a loop waiting out the day.
        let most = if who == "claude" { 4 } else { 6 };
        assert!(
            limited.len() <= most,
            "{who} stops instead of retrying into a day's limit: {} refusals\nrows: {summary:#?}",
            limited.len()
        );
        assert!(
            o.fake_with(&format!("agents-budget-{who}")).is_empty(),
            "nothing of {who}'s reached the provider"
        );
    }
}
