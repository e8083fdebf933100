//! Transparent interception and connect() cost, measured where they cannot
//! touch the host: the bench re-runs itself under `unshare -m -n` (own
//! network and mount namespace: loopback only, private /etc/hosts and
//! bpffs) and attaches promptwall's eBPF programs only to a child cgroup it
//! creates (`promptwall-test-bench-<pid>`, so `promptwall cleanup` knows it).
//! The fake provider listens on 127.0.0.2:443, which only the test cgroup's
//! connections are redirected from. Everything dies with the namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::procs;
use super::scenario::{self, Plan, Route, Size};
use super::services::{self, Bins};

pub const INNER_ENV: &str = "PROMPTWALL_BENCH_NETNS_OUT";
const BINS_ENV: &str = "PROMPTWALL_BENCH_BINS";
const OHA_ENV: &str = "PROMPTWALL_BENCH_OHA";
const WORK_ENV: &str = "PROMPTWALL_BENCH_WORK";
const FAKE_IP: &str = "127.0.0.2";

/// Runs the namespace part; Err is the reason it was skipped.
pub fn outer(bins: &Bins, oha: &Path, work: &Path, quick: bool) -> Result<Value> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "needs root (a private network namespace and a child cgroup for the eBPF programs); run the bench as root"
        );
    }
    let out = work.join("netns.json");
    let log = work.join("netns.log");
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "-n", "--propagation", "private"]).arg(exe).arg("bench");
    if quick {
        cmd.arg("--quick");
    }
    cmd.env(INNER_ENV, &out)
        .env(BINS_ENV, &bins.dir)
        .env(OHA_ENV, oha)
        .env(WORK_ENV, work.join("netns"));
    cmd.stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.join("netns.err"))?)
        .stdin(Stdio::null());
    procs::detach(&mut cmd);
    let status = cmd.status().context("cannot run unshare (util-linux)")?;
    if !status.success() {
        let err = std::fs::read_to_string(work.join("netns.err")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        bail!(
            "the namespace run failed ({status}): {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&out)?).context("the namespace run wrote no results")?;
    Ok(v)
}

/// A child cgroup; members moved back to the parent and removed on drop.
struct TestCgroup {
    path: PathBuf,
    parent: PathBuf,
}

impl TestCgroup {
    fn create() -> Result<TestCgroup> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mount = mountinfo
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                if right.starts_with("cgroup2 ") {
                    left.split_whitespace().nth(4).map(PathBuf::from)
                } else {
                    None
                }
            })
            .context("no cgroup2 mount; the eBPF redirect needs cgroup v2")?;
        let path = mount.join(format!("promptwall-test-bench-{}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("cannot create cgroup {}", path.display()))?;
        Ok(TestCgroup { path, parent: mount })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if let Ok(procs) = std::fs::read_to_string(self.path.join("cgroup.procs")) {
                for pid in procs.split_whitespace() {
                    let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
                }
            }
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "WARNING: cannot remove {}; `promptwall cleanup` removes it",
            self.path.display()
        );
    }
}

fn sh(cmd: &str) -> Result<()> {
    let status = Command::new("sh").arg("-c").arg(cmd).status()?;
    anyhow::ensure!(status.success(), "`{cmd}` failed");
    Ok(())
}

/// bench-client connect from inside the cgroup.
fn connect_cost(bins: &Bins, cg: &Path, batches: usize) -> Result<Value> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"", cg.display()))
        .arg(bins.client())
        .args(["connect", "--addr", "127.0.0.3:9", "--batches", &batches.to_string()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "bench-client connect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub fn inner(quick: bool, out: &Path) -> Result<()> {
    let bins = Bins {
        dir: PathBuf::from(std::env::var(BINS_ENV)?),
    };
    let oha = PathBuf::from(std::env::var(OHA_ENV)?);
    let work = PathBuf::from(std::env::var(WORK_ENV)?);
    std::fs::create_dir_all(&work)?;
    let plan = Plan::new(quick);
    sh("ip link set lo up")?;
    sh("mount -t bpf bpf /sys/fs/bpf")?;
    let hosts = work.join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n{FAKE_IP} api.anthropic.com\n"))?;
    sh(&format!("mount --bind {} /etc/hosts", hosts.display()))?;
    let cg = TestCgroup::create()?;

    let bind = format!("{FAKE_IP}:443");
    let first = services::fake(&bins, &work, &bind, 1)?;
    eprintln!("connect() cost, detached");
    let detached = connect_cost(&bins, &cg.path, plan.connect_batches)?;
    let intercept = format!(
        "[intercept]\nenabled = true\ncgroup = \"{}\"\naddresses = [\"{FAKE_IP}/32\"]\nports = [443]\nresolve_interval_secs = 0\n",
        cg.path.display()
    );
    let pw = services::promptwall(&bins, &work, &first, false, "full", &intercept, &[])?;
    let mut fake = Some(first);
    std::thread::sleep(Duration::from_millis(300));
    eprintln!("connect() cost, attached");
    let attached = connect_cost(&bins, &cg.path, plan.connect_batches)?;
    let f = |v: &Value| v["per_connect_ns_median"].as_f64().unwrap_or(f64::NAN);
    let connect = json!({
        "detached": detached, "attached": attached,
        "added_ns_median": f(&attached) - f(&detached),
    });

    let url = "https://api.anthropic.com/v1/messages".to_string();
    let direct = Route {
        name: "direct",
        url: url.clone(),
        proxy: None,
        cgroup: None,
        pid: None,
        stream_target: vec![],
    };
    let transparent = Route {
        name: "transparent",
        url,
        proxy: None,
        cgroup: Some(cg.path.clone()),
        pid: Some(pw.guard.pid()),
        stream_target: vec![],
    };
    let bodies: Vec<(Size, PathBuf)> = plan
        .sizes
        .iter()
        .map(|s| Ok((*s, scenario::body_file(&work, s.bytes)?)))
        .collect::<Result<_>>()?;
    let rows = scenario::nonstreaming(&oha, &plan, &bodies, &direct, &[transparent], || {
        // A fresh fake per group keeps its in-memory request log small.
        fake = None;
        fake = Some(services::fake(&bins, &work, &bind, 1)?);
        Ok(())
    })?;
    // Did the redirect really carry the traffic through promptwall?
    let intercepted = std::fs::read_to_string(work.join("promptwall.log")).unwrap_or_default();
    std::fs::write(
        out,
        serde_json::to_string(
            &json!({"connect": connect, "nonstreaming": rows, "log_tail": intercepted.lines().rev().take(3).collect::<Vec<_>>()}),
        )?,
    )?;
    drop(pw);
    drop(fake);
    drop(cg);
    Ok(())
}
