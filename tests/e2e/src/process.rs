//! Bounded command runs: every client gets an outer deadline (Codex retries
//! forever, aider for minutes), and on expiry its whole process group dies.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RunOutput {
    /// None when the deadline killed it.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Panics with both streams unless the command succeeded.
    pub fn expect_success(&self, what: &str) -> &Self {
        assert!(
            self.success(),
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            if self.timed_out {
                "timed out".to_string()
            } else {
                format!("{:?}", self.status)
            },
            self.stdout,
            self.stderr
        );
        self
    }

    /// The last non-empty stdout line parsed as JSON.
    pub fn last_json(&self) -> serde_json::Value {
        let line = self.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "expected a JSON line on stdout ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` with stdin from /dev/null (clients block on an open stdin),
/// killing its process group after `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> RunOutput {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                kill_group(child.id());
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {cmd:?} failed: {e}"),
        }
    };
    // A background member of the group may still hold the pipes open. While
    // it lives the group id is still ours, so killing the group is safe.
    let grace = Instant::now() + Duration::from_secs(2);
    while !(out.is_finished() && err.is_finished()) {
        if Instant::now() >= grace {
            kill_group(child.id());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    RunOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
    }
}

/// SIGKILL to the process group led by `pid`.
pub fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

/// Removes proxy and CA-trust variables this machine pre-sets, so a test
/// decides trust and routing explicitly.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "ANTHROPIC_BASE_URL",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
}

/// curl with the environment cleaned, `-sS`, a 60 s transfer limit and a
/// 90 s deadline on the whole run.
pub fn curl(args: &[&str]) -> RunOutput {
    let mut cmd = Command::new("curl");
    clean_env(&mut cmd).args(["-sS", "--max-time", "60"]).args(args);
    run_bounded(&mut cmd, Duration::from_secs(90))
}

/// [`curl`] with `-w '\n%{http_code}'`: (status, body). Panics if curl failed.
pub fn curl_status(args: &[&str]) -> (u16, String) {
    let mut all = vec!["-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = curl(&all);
    out.expect_success("curl");
    let (body, code) = out
        .stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", out.stdout.trim()));
    (
        code.parse()
            .unwrap_or_else(|_| panic!("no status code in {:?}", out.stdout)),
        body.to_string(),
    )
}
