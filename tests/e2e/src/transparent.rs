//! Transparent interception end to end: one private mount + network
//! namespace holding the fake provider, `promptwall up` with its eBPF
//! redirect on a child cgroup, and clients run inside that cgroup with no
//! base-URL or proxy variable (the real host names, reached only through the
//! redirect).
//!
//! API (for test files):
//! ```ignore
//! let Some(env) = TransparentEnv::start_or_skip(TransparentOptions::default()) else { return };
//! // In the client cgroup, trust as the installer leaves it, no proxy/base-URL vars:
//! let out = env.run_in_cgroup(&mut env.command("curl", &["-sS", "https://api.anthropic.com/v1/messages"]), secs(30));
//! let out = env.sh_in_cgroup("curl -sS ... | jq .", secs(30));     // bash -c, in the cgroup
//! let out = env.sh_outside("curl ...", secs(30));                    // same namespace, NOT in the cgroup
//! env.fake_requests();      // Vec<serde_json::Value>: what the fake provider received (its --log JSONL)
//! env.audit_rows();         // Vec<AuditRow>: `promptwall audit query --json`, oldest first
//! env.wait_audit_rows(n);   // polls (bounded) until n rows exist
//! env.kill_agent();         // SIGKILL `promptwall up` (crash); env.cli(&["cleanup"]) runs inside the namespace
//! env.agent_log(); env.cgroup(); env.dir(); env.holder_pid()
//! ```
//! [`TransparentOptions`]: `fail_closed`, `fake_ws` (serve the Responses
//! WebSocket), `second_fake` (another provider address, [`SECOND_FAKE_IP`]), `toml_extra` (appended to the config, e.g. a `[pipeline]`
//! table), `agent_env` (e.g. `PROMPTWALL_LOG`), `start_agent` (false: start
//! it yourself later with [`TransparentEnv::start_agent`]).
//!
//! Layout of the namespace (created by a holder process, `unshare -m -n
//! --propagation private`, that sleeps until dropped; everything else enters
//! it with `nsenter -t <holder> -m -n`):
//! - loopback only; the fake provider listens on 127.0.0.2:443 with its own CA;
//! - a private `/etc/hosts` mapping [`crate::PROVIDER_HOSTS`] and
//!   [`COPILOT_HOSTS`] to 127.0.0.2;
//! - a private bpffs on `/sys/fs/bpf` (pins of fail = "closed" die with it);
//! - private copies of `/etc/ssl/certs` and `/usr/local/share/ca-certificates`,
//!   into which `promptwall ca install --no-env` puts the org CA the way the
//!   installer does (update-ca-certificates); the machine-wide variables the
//!   installer writes to /etc/environment are set on every client command
//!   instead (`NODE_EXTRA_CA_CERTS`, `NODE_USE_SYSTEM_CA=1`, `SSL_CERT_FILE`
//!   and `REQUESTS_CA_BUNDLE` = the FULL system bundle);
//! - `[intercept] enabled = true, cgroup = <child cgroup>, addresses =
//!   ["127.0.0.2/32"]`: only processes in that cgroup are redirected, and
//!   nftables rules live in the namespace's own ruleset.
//!
//! The cgroup is `promptwall-test-<pid>-tp-<n>` under the cgroup2 mount
//! (`promptwall cleanup` leaves it alone while this process runs). Drop stops
//! the agent (SIGTERM, then SIGKILL), the fake and the holder, and removes the
//! cgroup with whatever is left in it ([`crate::cgroup::TestCgroup`]).
//! Those three also get PR_SET_PDEATHSIG: they die with the thread that
//! started them, so keep a `TransparentEnv` on the thread that created it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent::AuditRow;
use crate::cgroup::TestCgroup;
use crate::netns::Namespace;
use crate::paths::{fake_provider_bin, promptwall_bin};
use crate::process::{clean_env, run_bounded, RunOutput};

/// Where the fake provider listens; the provider names resolve here.
pub const FAKE_IP: &str = "127.0.0.2";
/// A provider host in no shipped catalog, resolving to the fake: a test
/// adds it with `[providers.NAME]` in `toml_extra`.
pub const CONFIG_ONLY_PROVIDER: &str = "api.acme-llm.test";
/// Where [`TransparentOptions::second_fake`] listens.
pub const SECOND_FAKE_IP: &str = "127.0.0.3";
/// With [`TransparentOptions::container`]: a routed ("public") provider
/// address of the host namespace (on its loopback: no dummy driver here), where a third fake listens; containers
/// resolve the provider names here and reach it through their bridge.
pub const CONTAINER_FAKE_IP: &str = "198.18.0.2";
/// A non-provider name the namespace resolves to the fake's (provider's)
/// address: a site sharing a CDN address with a provider.
pub const CDN_NEIGHBOUR: &str = "neighbour.cdn.test";
/// GitHub Copilot's hosts, resolving to the fake too: its API (a provider)
/// and its account and telemetry hosts (not providers: a test lists them in
/// `[intercept] splice_server_names`).
pub const COPILOT_HOSTS: &[&str] = &[
    "api.githubcopilot.com",
    "api.github.com",
    "copilot-telemetry.githubusercontent.com",
];
/// The agent's transparent listener (inside the namespace).
pub const TRANSPARENT_LISTENER: &str = "127.0.0.1:15443";
/// The org CA's anchor as `promptwall ca install` writes it (Debian layout).
pub const ANCHOR: &str = "/usr/local/share/ca-certificates/promptwall-org-ca.crt";
/// The system bundle update-ca-certificates writes.
pub const BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct TransparentOptions {
    /// `[intercept] fail = "closed"` (default "open").
    pub fail_closed: bool,
    /// The fake serves the Responses WebSocket (else it answers 426).
    pub fake_ws: bool,
    /// Appended verbatim to the agent's config.
    pub toml_extra: String,
    /// Extra environment for `promptwall up`.
    pub agent_env: Vec<(String, String)>,
    /// Start `promptwall up` in `start` (default true).
    pub start_agent: bool,
    /// A second fake provider at [`SECOND_FAKE_IP`]:443, on the same CA,
    /// logging to its own file: another address of the same providers
    /// (in `[intercept] addresses` too).
    pub second_fake: bool,
    /// Wiring for [`crate::container::Container`]s: a bridge, a routed
    /// provider address ([`CONTAINER_FAKE_IP`]) with a fake of its own
    /// (`fake-ctr.jsonl`), and `[containers] docker_root` in the tempdir.
    pub container: bool,
}

impl Default for TransparentOptions {
    fn default() -> Self {
        TransparentOptions {
            fail_closed: false,
            fake_ws: false,
            toml_extra: String::new(),
            agent_env: vec![],
            start_agent: true,
            second_fake: false,
            container: false,
        }
    }
}

pub struct TransparentEnv {
    dir: tempfile::TempDir,
    holder: Child,
    cgroup: TestCgroup,
    fake: Option<Child>,
    second_fake: Option<Child>,
    container_fake: Option<Child>,
    agent: Option<Child>,
    options: TransparentOptions,
}

/// The holder: sets the namespace up, then sleeps until dropped.
const HOLDER: &str = r#"set -eu
D="$TP_DIR"
ip link set lo up
mount -t bpf bpf /sys/fs/bpf
mount --bind "$D/hosts" /etc/hosts
cp -a /etc/ssl/certs "$D/ssl-certs"
mount --bind "$D/ssl-certs" /etc/ssl/certs
cp -a /usr/local/share/ca-certificates "$D/local-cas"
mount --bind "$D/local-cas" /usr/local/share/ca-certificates
echo ready > "$D/holder.ready"
exec sleep 100000
"#;

impl TransparentEnv {
    /// Whether this machine can run the namespace (root, unshare, nsenter).
    pub fn available() -> bool {
        Namespace::available()
            && Command::new("nsenter")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// `start`, or None (after printing why) when namespaces are unavailable
    /// and PROMPTWALL_REQUIRE_CLIENTS is not 1 (then it panics).
    pub fn start_or_skip(options: TransparentOptions) -> Option<TransparentEnv> {
        if !Self::available() {
            let msg = "transparent tests need root, unshare and nsenter (private namespaces, eBPF on a child cgroup)";
            assert!(
                std::env::var("PROMPTWALL_REQUIRE_CLIENTS").map_or(true, |v| v != "1"),
                "{msg}"
            );
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        Some(Self::start(options))
    }

    pub fn start(options: TransparentOptions) -> TransparentEnv {
        let dir = tempfile::Builder::new()
            .prefix("promptwall-tp")
            .tempdir()
            .expect("cannot create a tempdir");
        let d = dir.path();
        // CDN_NEIGHBOUR: another site that shares the provider's address.
        let hosts = format!(
            "127.0.0.1 localhost\n::1 localhost\n{FAKE_IP} {} {CDN_NEIGHBOUR} {CONFIG_ONLY_PROVIDER} {}\n",
            crate::PROVIDER_HOSTS.join(" "),
            COPILOT_HOSTS.join(" ")
        );
        std::fs::write(d.join("hosts"), hosts).expect("cannot write the hosts file");
        for sub in ["home", "work"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }

        let cgroup = TestCgroup::create("tp");

        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "-n", "--propagation", "private", "sh", "-c", HOLDER])
            .env("TP_DIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("holder.err")).unwrap())
            .process_group(0);
        die_with_parent(&mut cmd);
        let holder = cmd.spawn().expect("cannot start unshare");
        let mut env = TransparentEnv {
            dir,
            holder,
            cgroup,
            fake: None,
            second_fake: None,
            container_fake: None,
            agent: None,
            options,
        };
        env.wait_for("the namespace holder", |e| e.path("holder.ready").exists());

        // The fake provider, on its own CA (the agent trusts it as an extra upstream root).
        env.fake = Some(env.start_fake(FAKE_IP, "fake", env.options.fake_ws));
        if env.options.container {
            crate::container::wire_host(&env);
            env.container_fake = Some(env.start_fake(CONTAINER_FAKE_IP, "fake-ctr", false));
        }
        if env.options.second_fake {
            env.second_fake = Some(env.start_fake(SECOND_FAKE_IP, "fake2", false));
        }

        std::fs::write(env.config_path(), env.config_toml()).expect("cannot write the agent config");
        env.cli(&["ca", "init"]).expect_success("promptwall ca init");
        env.cli(&["ca", "install", "--no-env"])
            .expect_success("promptwall ca install --no-env");
        if env.options.start_agent {
            env.start_agent();
        }
        env
    }

    /// A fake provider on `ip`:443 with the shared CA, logging to
    /// `<name>.jsonl`; waits until it listens.
    fn start_fake(&mut self, ip: &str, name: &str, ws: bool) -> Child {
        let mut fake = self.ns_command(fake_provider_bin());
        fake.args(["--bind", &format!("{ip}:443"), "--ca-dir"])
            .arg(self.path("fakeca"))
            .arg("--log")
            .arg(self.path(&format!("{name}.jsonl")));
        if ws {
            fake.arg("--ws");
        }
        let child = self.spawn_logged(fake, name);
        let out = format!("{name}.out");
        self.wait_for(&format!("the fake provider on {ip}"), |e| e.read(&out).contains("addr"));
        child
    }

    /// Starts `promptwall up` (intercept on) and waits for its readiness line.
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "the agent is already running");
        let _ = std::fs::remove_file(self.path("agent.out"));
        let mut cmd = self.ns_command(promptwall_bin());
        cmd.arg("--config").arg(self.config_path()).arg("up");
        cmd.envs(self.options.agent_env.clone());
        self.agent = Some(self.spawn_logged(cmd, "agent"));
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.read("agent.out").contains('{') {
            if let Some(Ok(Some(status))) = self.agent.as_mut().map(|a| a.try_wait()) {
                panic!(
                    "promptwall up exited ({status}) before it was ready; log:\n{}",
                    self.agent_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "promptwall up not ready in {READY_TIMEOUT:?}; log:\n{}",
                self.agent_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL `promptwall up` (a crash: no shutdown path runs) and reap it.
    pub fn kill_agent(&mut self) {
        let mut agent = self.agent.take().expect("the agent is not running");
        agent.kill().expect("cannot kill promptwall up");
        let _ = agent.wait();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("config.toml")
    }

    /// The client cgroup the redirect is attached to.
    pub fn cgroup(&self) -> &Path {
        self.cgroup.path()
    }

    pub fn holder_pid(&self) -> u32 {
        self.holder.id()
    }

    pub fn agent_log(&self) -> String {
        self.read("agent.log")
    }

    /// The org CA certificate (PEM) the agent signs leaves with.
    pub fn org_ca_pem(&self) -> PathBuf {
        self.path("ca/ca.pem")
    }

    /// The fake provider's own CA (PEM).
    pub fn fake_ca_pem(&self) -> PathBuf {
        self.path("fakeca/ca.pem")
    }

    fn config_toml(&self) -> String {
        let d = self.dir.path().display();
        format!(
            r#"[listen]
explicit = "127.0.0.1:0"
transparent = "{TRANSPARENT_LISTENER}"
admin_socket = "{d}/admin.sock"
[ca]
dir = "{d}/ca"
[audit]
url = "sqlite://{d}/audit.db"
[upstream]
extra_roots = ["{d}/fakeca/ca.pem"]
[intercept]
enabled = true
cgroup = "{cg}"
addresses = [{addresses}]
ports = [443]
resolve_interval_secs = 0
fail = "{fail}"
{extra}
"#,
            cg = self.cgroup.path().display(),
            addresses = [
                Some(FAKE_IP),
                self.options.second_fake.then_some(SECOND_FAKE_IP),
                self.options.container.then_some(CONTAINER_FAKE_IP),
            ]
            .into_iter()
            .flatten()
            .map(|ip| format!("\"{ip}/32\""))
            .collect::<Vec<_>>()
            .join(", "),
            fail = if self.options.fail_closed { "closed" } else { "open" },
            extra = if self.options.container {
                format!(
                    "{}\n[containers]\ndocker_root = \"{d}/docker\"\n",
                    self.options.toml_extra
                )
            } else {
                self.options.toml_extra.clone()
            }
        )
    }

    /// `program` inside the namespace (not in the cgroup), environment cleaned
    /// of proxy/trust variables.
    pub fn ns_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "-n", "--"])
            .arg(program);
        clean_env(&mut cmd);
        cmd.current_dir(self.path("work"));
        cmd
    }

    /// A client command: in the namespace, with the installer's trust
    /// variables, HOME in the tempdir, and no proxy or base-URL variable.
    /// Run it with [`Self::run_in_cgroup`] or [`Self::run_outside`].
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    }

    fn wrap(&self, cmd: &Command, in_cgroup: bool) -> Command {
        let mut w = Command::new("nsenter");
        w.arg("-t").arg(self.holder.id().to_string()).args(["-m", "-n", "--"]);
        if in_cgroup {
            // Join the cgroup before exec, so the client's first connect is already redirected.
            w.args(["sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
                .arg(self.cgroup.path());
        }
        w.arg(cmd.get_program()).args(cmd.get_args());
        clean_env(&mut w);
        w.env("HOME", self.path("home"))
            .env("NODE_EXTRA_CA_CERTS", ANCHOR)
            .env("NODE_USE_SYSTEM_CA", "1")
            .env("SSL_CERT_FILE", BUNDLE)
            .env("REQUESTS_CA_BUNDLE", BUNDLE);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => w.env(k, v),
                None => w.env_remove(k),
            };
        }
        w.current_dir(
            cmd.get_current_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.path("work")),
        );
        w
    }

    /// Runs `cmd` inside the namespace and the client cgroup (redirected).
    pub fn run_in_cgroup(&self, cmd: &Command, timeout: Duration) -> RunOutput {
        run_bounded(&mut self.wrap(cmd, true), timeout)
    }

    /// Runs `cmd` inside the namespace but outside the cgroup (not redirected).
    pub fn run_outside(&self, cmd: &Command, timeout: Duration) -> RunOutput {
        run_bounded(&mut self.wrap(cmd, false), timeout)
    }

    /// `bash -c script` in the cgroup.
    pub fn sh_in_cgroup(&self, script: &str, timeout: Duration) -> RunOutput {
        self.run_in_cgroup(&self.command("bash", &["-c", script]), timeout)
    }

    /// `bash -c script` in the namespace, outside the cgroup.
    pub fn sh_outside(&self, script: &str, timeout: Duration) -> RunOutput {
        self.run_outside(&self.command("bash", &["-c", script]), timeout)
    }

    /// `promptwall --config <ours> <args>` inside the namespace (root, not in the cgroup).
    pub fn cli(&self, args: &[&str]) -> RunOutput {
        let mut cmd = self.ns_command(promptwall_bin());
        cmd.arg("--config").arg(self.config_path()).args(args);
        run_bounded(&mut cmd, Duration::from_secs(60))
    }

    /// Everything the fake provider recorded (HTTP requests and WS messages), in order.
    pub fn fake_requests(&self) -> Vec<Value> {
        self.read("fake.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("fake log line is not JSON ({e}): {l}")))
            .collect()
    }

    /// What the containers' fake provider ([`CONTAINER_FAKE_IP`]) recorded.
    pub fn container_fake_requests(&self) -> Vec<Value> {
        self.read("fake-ctr.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("fake-ctr log line is not JSON ({e}): {l}")))
            .collect()
    }

    /// What the second fake provider recorded.
    pub fn second_fake_requests(&self) -> Vec<Value> {
        self.read("fake2.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("fake2 log line is not JSON ({e}): {l}")))
            .collect()
    }

    /// `promptwall audit query --json`, oldest first.
    pub fn audit_rows(&self) -> Vec<AuditRow> {
        let out = self.cli(&["audit", "query", "--json", "--limit", "10000"]);
        out.expect_success("promptwall audit query --json");
        let mut rows: Vec<AuditRow> = out
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit row ({e}): {l}")))
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// Polls (bounded, 15 s) until at least `n` audit rows exist.
    pub fn wait_audit_rows(&self, n: usize) -> Vec<AuditRow> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let rows = self.audit_rows();
            if rows.len() >= n {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} audit rows, found {}: {rows:#?}\nagent log:\n{}",
                rows.len(),
                self.agent_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn spawn_logged(&self, mut cmd: Command, name: &str) -> Child {
        let out = std::fs::File::create(self.path(&format!("{name}.out"))).unwrap();
        let err = std::fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut cmd);
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
    }

    pub(crate) fn wait_for(&mut self, what: &str, ready: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !ready(self) {
            if let Ok(Some(status)) = self.holder.try_wait() {
                panic!("the namespace holder exited ({status}): {}", self.read("holder.err"));
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready in {READY_TIMEOUT:?}\nholder: {}\nfake: {}",
                self.read("holder.err"),
                self.read("fake.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// SIGKILL the child if the test process dies without running Drop (e.g.
/// killed by a CI timeout), so no namespace or agent is left behind.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: signals our own unreaped child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

impl Drop for TransparentEnv {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            stop(&mut a);
        }
        for mut f in [self.fake.take(), self.second_fake.take(), self.container_fake.take()]
            .into_iter()
            .flatten()
        {
            stop(&mut f);
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        // The cgroup (and any container's under it) goes with the field.
    }
}
