//! A `promptwall up` per test: its own config, CA dir, audit database and
//! admin socket in a tempdir, provider hosts resolved to the fake provider,
//! the fake's CA as an extra upstream root. A guard kills the daemon.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::paths::promptwall_bin;
use crate::process::{run_bounded, RunOutput};
use crate::{FakeHandle, PROVIDER_HOSTS};

/// How long `promptwall up` may take to print its readiness line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What goes into the test config. `toml_extra` is appended verbatim (e.g.
/// a `[pipeline]` table).
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `listen.explicit`; port 0 lets the agent pick, the harness reads the
    /// bound address from the readiness line.
    pub explicit: SocketAddr,
    /// `listen.explicit_tls` (HTTPS with minted leaves); implies `ca_init`.
    pub explicit_tls: Option<SocketAddr>,
    /// Run `promptwall ca init` before `up`.
    pub ca_init: bool,
    /// `upstream.resolve`: host -> address.
    pub resolve: BTreeMap<String, SocketAddr>,
    pub extra_roots: Vec<PathBuf>,
    pub intercept: bool,
    pub toml_extra: String,
    /// Extra keys of the `[audit]` table (e.g. `capture_bodies = true`).
    pub audit_extra: String,
    /// Extra environment for the daemon (e.g. PROMPTWALL_LOG).
    pub env: Vec<(String, String)>,
    /// `listen.admin_http` (Prometheus `/metrics`); port 0 lets the agent
    /// pick, [`Agent::admin_http`] has the bound address.
    pub admin_http: Option<SocketAddr>,
}

impl AgentConfig {
    /// Explicit mode against `fake`: every provider host resolves to it.
    pub fn explicit_to(fake: &FakeHandle) -> AgentConfig {
        AgentConfig {
            explicit: "127.0.0.1:0".parse().unwrap(),
            explicit_tls: None,
            ca_init: false,
            resolve: PROVIDER_HOSTS.iter().map(|h| (h.to_string(), fake.addr)).collect(),
            extra_roots: vec![fake.ca_pem_path.clone()],
            intercept: false,
            toml_extra: String::new(),
            audit_extra: String::new(),
            env: vec![],
            admin_http: None,
        }
    }

    /// The TOML text for `dir` (paths of CA, audit db and admin socket inside it).
    pub fn to_toml(&self, dir: &Path) -> String {
        let q = |p: &Path| toml_str(&p.display().to_string());
        let mut t = String::new();
        t += &format!(
            "[listen]\nexplicit = {}\nadmin_socket = {}\n",
            toml_str(&self.explicit.to_string()),
            q(&dir.join("admin.sock"))
        );
        if let Some(addr) = self.explicit_tls {
            t += &format!("explicit_tls = {}\n", toml_str(&addr.to_string()));
        }
        if let Some(addr) = self.admin_http {
            t += &format!("admin_http = {}\n", toml_str(&addr.to_string()));
        }
        t += "\n";
        t += &format!("[ca]\ndir = {}\n\n", q(&dir.join("ca")));
        t += &format!(
            "[audit]\nurl = {}\n{}\n",
            toml_str(&format!("sqlite://{}", dir.join("audit.db").display())),
            self.audit_extra
        );
        let roots: Vec<String> = self.extra_roots.iter().map(|p| q(p)).collect();
        t += &format!(
            "[upstream]\nextra_roots = [{}]\n\n[upstream.resolve]\n",
            roots.join(", ")
        );
        for (host, addr) in &self.resolve {
            t += &format!("{} = {}\n", toml_str(host), toml_str(&addr.to_string()));
        }
        t += &format!("\n[intercept]\nenabled = {}\n\n", self.intercept);
        t += &self.toml_extra;
        t
    }
}

fn toml_str(s: &str) -> String {
    // A TOML basic string is JSON-compatible for the characters used here.
    serde_json::to_string(s).unwrap()
}

/// One audit row as `promptwall audit query --json` prints it. The fields
/// tests assert on are typed; everything else stays in `rest`.
#[derive(Clone, Debug, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub listener: String,
    pub provider: Option<String>,
    pub host: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub shape: Option<String>,
    pub model: Option<String>,
    pub status: u16,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    #[serde(default)]
    pub cache_read_tokens: Option<i64>,
    #[serde(default)]
    pub cache_write_tokens: Option<i64>,
    pub verdict: String,
    pub tool: Option<String>,
    pub pid: Option<u32>,
    pub exe: Option<String>,
    pub user: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

/// A running `promptwall up`; dropping it stops the daemon (SIGTERM, then SIGKILL).
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// The explicit listener's bound address.
    pub explicit: SocketAddr,
    /// The explicit HTTPS listener's bound address, when configured.
    pub explicit_tls: Option<SocketAddr>,
    /// The admin HTTP listener's bound address (`/metrics`), when configured.
    pub admin_http: Option<SocketAddr>,
    child: Child,
    stderr_path: PathBuf,
}

impl Agent {
    /// Explicit mode against `fake` with the default pipeline.
    pub fn start_explicit(fake: &FakeHandle) -> Agent {
        Agent::start(&AgentConfig::explicit_to(fake))
    }

    pub fn start(config: &AgentConfig) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("promptwall-e2e")
            .tempdir()
            .expect("cannot create a tempdir for the agent");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config.to_toml(dir.path())).expect("cannot write the test config");
        if config.ca_init || config.explicit_tls.is_some() {
            let mut init = Command::new(promptwall_bin());
            init.arg("--config").arg(&config_path).args(["ca", "init"]);
            run_bounded(&mut init, Duration::from_secs(60)).expect_success("promptwall ca init");
        }
        let stderr_path = dir.path().join("agent.log");
        let child = spawn_up(&config_path, &stderr_path, config);
        let mut agent = Agent {
            dir,
            config_path,
            explicit: config.explicit,
            explicit_tls: None,
            admin_http: None,
            child,
            stderr_path,
        };
        agent.await_ready();
        agent
    }

    /// Kills the daemon with SIGKILL (no shutdown of any kind), then starts
    /// it again on the same config, store and CA.
    pub fn kill9_and_restart(&mut self, config: &AgentConfig) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_up(&self.config_path, &self.stderr_path, config);
        self.explicit = config.explicit;
        self.await_ready();
    }

    /// Reads the readiness line (one JSON line with the bound addresses)
    /// and waits for the explicit listener.
    fn await_ready(&mut self) {
        let stdout = self.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {} // keep draining so the daemon never blocks on stdout
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => panic!(
                "promptwall up printed no readiness line within {READY_TIMEOUT:?} (exit: {:?}); its log:\n{}",
                self.child.try_wait().ok().flatten(),
                self.log()
            ),
        };
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("bad readiness line {line:?} ({e}); log:\n{}", self.log()));
        if let Some(addr) = ready["explicit"].as_str().and_then(|a| a.parse().ok()) {
            self.explicit = addr;
        }
        self.explicit_tls = ready["explicit_tls"].as_str().and_then(|a| a.parse().ok());
        self.admin_http = ready["admin_http"].as_str().and_then(|a| a.parse().ok());
        self.wait_port();
    }

    fn wait_port(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect_timeout(&self.explicit, Duration::from_secs(1)).is_err() {
            assert!(
                Instant::now() < deadline,
                "explicit listener {} never accepted; log:\n{}",
                self.explicit,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ANTHROPIC_BASE_URL` for the explicit listener.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.explicit)
    }

    /// `OPENAI_BASE_URL` for the explicit listener.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.explicit)
    }

    /// The daemon's process id (e.g. to read its memory use in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Runs `promptwall --config <ours> <args>`, bounded.
    pub fn cli(&self, args: &[&str]) -> RunOutput {
        let mut cmd = Command::new(promptwall_bin());
        cmd.arg("--config").arg(&self.config_path).args(args);
        run_bounded(&mut cmd, Duration::from_secs(60))
    }

    /// `promptwall audit query --json` (plus `filters`), oldest first.
    pub fn audit_rows(&self, filters: &[&str]) -> Vec<AuditRow> {
        let mut args = vec!["audit", "query", "--json", "--limit", "10000"];
        args.extend_from_slice(filters);
        let out = self.cli(&args);
        out.expect_success("promptwall audit query --json");
        let mut rows: Vec<AuditRow> = out
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("audit row is not the expected JSON ({e}): {l}"))
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// Polls the audit store until at least `n` rows exist (bounded), so a
    /// row written just after the response finished is not missed.
    pub fn wait_audit_rows(&self, n: usize) -> Vec<AuditRow> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let rows = self.audit_rows(&[]);
            if rows.len() >= n {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} audit rows, found {}: {rows:#?}\nlog:\n{}",
                rows.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `promptwall up` on `config_path`, its log appended to `stderr_path`.
fn spawn_up(config_path: &Path, stderr_path: &Path, config: &AgentConfig) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_path)
        .expect("cannot open the agent log");
    let mut cmd = Command::new(promptwall_bin());
    cmd.arg("--config").arg(config_path).arg("up");
    if !config.intercept {
        cmd.arg("--no-intercept");
    }
    cmd.envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signals our own child, which has not been reaped yet.
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One Anthropic Messages call through an agent's explicit listener, by curl.
#[derive(Debug)]
pub struct Sent {
    pub status: u16,
    /// The agent's `x-promptwall-request-id` (the audit row's).
    pub request_id: String,
}

impl Agent {
    /// Sends `text` as one user message to `model` (streamed or not).
    pub fn send_messages(&self, model: &str, text: &str, stream: bool) -> Sent {
        let body = serde_json::json!({"model": model, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": text}]});
        let out = post_messages(&format!("{}/v1/messages", self.anthropic_base_url()), &body);
        out.expect_success("curl /v1/messages");
        let request_id =
            request_id_header(&out.stdout).unwrap_or_else(|| panic!("no request id header in {}", out.stdout));
        let status = out
            .stdout
            .trim_end()
            .rsplit('\n')
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_else(|| panic!("no status in {}", out.stdout));
        Sent { status, request_id }
    }
}

/// POSTs a Messages body to `url` with the test key; the response headers
/// and, on the last line, the status code.
pub fn post_messages(url: &str, body: &serde_json::Value) -> crate::process::RunOutput {
    crate::process::curl(&[
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-H",
        "x-api-key: sk-ant-api03-e2e-test-key",
        "-H",
        "anthropic-version: 2023-06-01",
        "-d",
        &body.to_string(),
        url,
    ])
}

/// The `x-promptwall-request-id` header in curl's `-D -` output.
pub fn request_id_header(headers: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-promptwall-request-id:")
            .map(|v| v.trim().to_string())
    })
}
