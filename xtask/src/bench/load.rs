//! Non-streaming load through `oha` (a maintained HTTP load generator with
//! JSON output and HTTP-proxy support, which mitmproxy's regular mode
//! needs). Installed once with `cargo install --locked` into
//! target/bench/tools unless `oha` is already on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

pub const OHA_VERSION: &str = "1.16.0";

pub fn ensure_oha(root: &Path) -> Result<PathBuf> {
    if let Ok(path) = std::env::var("PROMPTWALL_BENCH_OHA") {
        return Ok(PathBuf::from(path));
    }
    let local = root.join("target/bench/tools/bin/oha");
    if local.exists() {
        return Ok(local);
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v oha"]).output() {
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !found.is_empty() {
            return Ok(PathBuf::from(found));
        }
    }
    crate::step(&format!("installing oha {OHA_VERSION} into target/bench/tools (once)"));
    crate::run(
        Command::new("cargo")
            .args([
                "install",
                "--locked",
                "--quiet",
                "oha",
                "--version",
                OHA_VERSION,
                "--root",
            ])
            .arg(root.join("target/bench/tools")),
    )
    .context("cannot install oha; install it yourself (cargo install oha) or set PROMPTWALL_BENCH_OHA")?;
    Ok(local)
}

/// One oha run.
#[derive(Clone, Debug)]
pub struct Load<'a> {
    pub url: String,
    pub body: &'a Path,
    pub concurrency: usize,
    /// Fixed request count (used for big bodies, to bound the fake's memory),
    /// else a duration.
    pub requests: Option<usize>,
    pub seconds: f64,
    /// Open loop: send at this many requests per second (oha -q) instead of
    /// as fast as the connections allow.
    pub rate: Option<u32>,
    /// HTTP proxy (mitmproxy regular mode).
    pub proxy: Option<String>,
    /// Run inside this cgroup (transparent interception).
    pub cgroup: Option<&'a Path>,
}

#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    pub requests: u64,
    pub ok: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

pub fn run(oha: &Path, load: &Load) -> Result<LoadResult> {
    let mut args: Vec<String> = vec![
        "--no-tui".into(),
        "--output-format".into(),
        "json".into(),
        "--insecure".into(),
        "-c".into(),
        load.concurrency.to_string(),
        "-m".into(),
        "POST".into(),
        "-D".into(),
        load.body.display().to_string(),
        "-H".into(),
        "content-type: application/json".into(),
        "-H".into(),
        "anthropic-version: 2023-06-01".into(),
        "-H".into(),
        "x-api-key: bench-key-not-a-secret".into(),
    ];
    match load.requests {
        Some(n) => args.extend(["-n".into(), n.to_string()]),
        None => args.extend(["-z".into(), format!("{}ms", (load.seconds * 1000.0) as u64)]),
    }
    if let Some(q) = load.rate {
        args.extend(["-q".into(), q.to_string()]);
    }
    if let Some(p) = &load.proxy {
        args.extend(["-x".into(), p.clone()]);
    }
    args.push(load.url.clone());
    let mut cmd = match load.cgroup {
        // The shell joins the cgroup, then becomes oha.
        Some(cg) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"", cg.display()))
                .arg(oha)
                .args(&args);
            c
        }
        None => {
            let mut c = Command::new(oha);
            c.args(&args);
            c
        }
    };
    cmd.stdin(Stdio::null());
    let out = cmd.output().with_context(|| format!("cannot run {}", oha.display()))?;
    if !out.status.success() {
        bail!("oha failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("oha printed no JSON: {}", String::from_utf8_lossy(&out.stdout)))?;
    parse(&v)
}

fn parse(v: &Value) -> Result<LoadResult> {
    let f = |p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let codes = v
        .get("statusCodeDistribution")
        .and_then(Value::as_object)
        .context("oha JSON lacks statusCodeDistribution")?;
    let ok = codes.get("200").and_then(Value::as_u64).unwrap_or(0);
    let errors: u64 = v
        .get("errorDistribution")
        .and_then(Value::as_object)
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let requests = codes.values().filter_map(Value::as_u64).sum::<u64>() + errors;
    Ok(LoadResult {
        requests,
        ok,
        rps: f("/summary/requestsPerSec"),
        p50_ms: f("/latencyPercentiles/p50") * 1000.0,
        p99_ms: f("/latencyPercentiles/p99") * 1000.0,
        mean_ms: f("/summary/average") * 1000.0,
    })
}
