//! The processes under test: the fake provider and promptwall.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use super::procs::{self, Guard};

/// Where the built binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    pub dir: PathBuf,
}

impl Bins {
    pub fn promptwall(&self) -> PathBuf {
        self.dir.join("promptwall")
    }
    pub fn fake(&self) -> PathBuf {
        self.dir.join("fake-provider")
    }
    pub fn client(&self) -> PathBuf {
        self.dir.join("bench-client")
    }
}

pub struct Fake {
    /// Kept for its Drop: the fake lives as long as this value.
    pub _process: Guard,
    pub addr: String,
    pub ca: PathBuf,
}

/// Starts the fake provider (zero think time) on `bind`; `slow_ms` paces
/// streams that ask for it.
pub fn fake(bins: &Bins, work: &Path, bind: &str, slow_ms: u64) -> Result<Fake> {
    let mut cmd = Command::new(bins.fake());
    cmd.args([
        "--bind",
        bind,
        "--slow-delay-ms",
        &slow_ms.to_string(),
        "--think-delay-ms",
        "0",
        "--alpn",
        "http/1.1",
    ])
    .arg("--ca-dir")
    .arg(work.join("fake-ca"));
    let (guard, line) = procs::spawn_ready(
        "fake-provider",
        cmd,
        &work.join("fake-provider.log"),
        Duration::from_secs(20),
    )?;
    let v: Value =
        serde_json::from_str(&line).with_context(|| format!("fake-provider readiness line is not JSON: {line}"))?;
    let addr = v["addr"]
        .as_str()
        .context("fake-provider did not report addr")?
        .to_string();
    let ca = PathBuf::from(v["ca"].as_str().context("fake-provider did not report its CA")?);
    Ok(Fake {
        _process: guard,
        addr,
        ca,
    })
}

pub struct Promptwall {
    pub guard: Guard,
    pub explicit: String,
    /// `/metrics` listener, when started with `PROMPTWALL_LISTEN__ADMIN_HTTP`.
    pub admin_http: Option<String>,
    pub config: std::path::PathBuf,
}

/// Extra config for promptwall (e.g. the [intercept] table); `audit_sync`
/// is `[audit] sync`.
pub fn promptwall(
    bins: &Bins,
    work: &Path,
    fake: &Fake,
    resolve: bool,
    audit_sync: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Result<Promptwall> {
    std::fs::create_dir_all(work)?;
    let explicit = format!("127.0.0.1:{}", procs::free_port("127.0.0.1")?);
    let transparent = format!("127.0.0.1:{}", procs::free_port("127.0.0.1")?);
    let resolve = if resolve {
        format!(
            "\"api.anthropic.com\" = \"{0}\"\n\"api.openai.com\" = \"{0}\"\n",
            fake.addr
        )
    } else {
        String::new()
    };
    // The memory scenario holds 1,000 streams open: above the default cap
    // of inspected exchanges in flight (512), which would refuse half.
    let config = format!(
        "[listen]\nexplicit = \"{explicit}\"\ntransparent = \"{transparent}\"\nadmin_socket = \"{sock}\"\n\
         [ca]\ndir = \"{ca}\"\n[audit]\nurl = \"sqlite://{db}\"\nsync = \"{audit_sync}\"\n\
         [limits]\nmax_inspected_exchanges = 2048\n\
         [upstream]\nextra_roots = [\"{root}\"]\n[upstream.resolve]\n{resolve}\n{extra}\n",
        sock = work.join("promptwall.sock").display(),
        ca = work.join("promptwall-ca").display(),
        db = work.join("audit.db").display(),
        root = fake.ca.display(),
    );
    let path = work.join("promptwall.toml");
    std::fs::write(&path, config)?;
    if !work.join("promptwall-ca/ca.pem").exists() {
        let out = Command::new(bins.promptwall())
            .arg("--config")
            .arg(&path)
            .args(["ca", "init"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "promptwall ca init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut cmd = Command::new(bins.promptwall());
    cmd.arg("--config").arg(&path).arg("up").env("PROMPTWALL_LOG", "warn");
    cmd.envs(env.iter().copied());
    let (guard, line) = procs::spawn_ready("promptwall", cmd, &work.join("promptwall.log"), Duration::from_secs(30))?;
    let v: Value =
        serde_json::from_str(&line).with_context(|| format!("promptwall readiness line is not JSON: {line}"))?;
    let explicit = v["explicit"].as_str().map(str::to_string).unwrap_or(explicit);
    Ok(Promptwall {
        guard,
        explicit,
        admin_http: v["admin_http"].as_str().map(str::to_string),
        config: path,
    })
}
