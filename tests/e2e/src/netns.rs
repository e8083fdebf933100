//! Scripts inside a private mount + network namespace, the isolation the
//! transparent tests need: only loopback exists (any other traffic fails
//! fast), and `/etc/hosts` is a bind-mounted private file mapping provider
//! names to loopback, so the host's own network and files stay untouched.
//! Everything the script starts dies with it (process-group kill on
//! timeout); the namespaces vanish with their last process.
//!
//! Needs root (`unshare -m -n`). Services the script needs (fake provider,
//! agent) must be started inside it: the host's loopback is not reachable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::{clean_env, run_bounded, RunOutput};

pub struct Namespace {
    dir: tempfile::TempDir,
    hosts: Vec<(IpAddr, Vec<String>)>,
    env: Vec<(String, String)>,
}

impl Namespace {
    /// A namespace whose `/etc/hosts` maps every provider host to 127.0.0.1.
    pub fn new() -> Namespace {
        let mut ns = Namespace {
            dir: tempfile::Builder::new()
                .prefix("promptwall-ns")
                .tempdir()
                .expect("cannot create a tempdir for the namespace"),
            hosts: vec![],
            env: vec![],
        };
        ns.map("127.0.0.1".parse().unwrap(), crate::PROVIDER_HOSTS);
        ns
    }

    /// Whether namespaces can be created here (root and `unshare` present).
    pub fn available() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        root && Command::new("unshare")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Adds an `/etc/hosts` line.
    pub fn map(&mut self, ip: IpAddr, names: &[&str]) -> &mut Self {
        self.hosts.push((ip, names.iter().map(|n| n.to_string()).collect()));
        self
    }

    pub fn env(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// A scratch directory shared with the script (`$NS_DIR` inside).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Runs `script` with bash (`set -euo pipefail`) inside fresh namespaces.
    pub fn run(&self, script: &str, timeout: Duration) -> RunOutput {
        let hosts = self.dir.path().join("hosts");
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (ip, names) in &self.hosts {
            text += &format!("{ip} {}\n", names.join(" "));
        }
        std::fs::write(&hosts, text).expect("cannot write the namespace hosts file");
        let script_path = self.dir.path().join("script.sh");
        std::fs::write(&script_path, format!("set -euo pipefail\n{script}\n"))
            .expect("cannot write the namespace script");
        let wrapper = r#"set -eu
ip link set lo up
mount --bind "$NS_DIR/hosts" /etc/hosts
exec bash "$NS_DIR/script.sh""#;
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "-n", "--propagation", "private", "bash", "-c", wrapper]);
        clean_env(&mut cmd);
        cmd.env("NS_DIR", self.dir.path());
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        run_bounded(&mut cmd, timeout)
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}
