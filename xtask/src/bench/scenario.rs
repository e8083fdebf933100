//! Measuring one path under load: oha for whole responses, bench-client for
//! streams; CPU time and peak RSS of the process under test read from /proc
//! around the measured window (warm-up excluded).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::load::{self, Load};
use super::procs;

/// A path requests can take to the fake provider.
#[derive(Clone, Debug)]
pub struct Route {
    /// "direct", "explicit", "transparent", "mitmproxy", "litellm".
    pub name: &'static str,
    /// oha URL (non-streaming).
    pub url: String,
    pub proxy: Option<String>,
    pub cgroup: Option<PathBuf>,
    /// The process whose CPU and RSS are charged to this path (None: direct).
    pub pid: Option<u32>,
    /// bench-client target arguments (streaming).
    pub stream_target: Vec<String>,
}

/// Body sizes and how long to run them.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub label: &'static str,
    pub bytes: usize,
    /// Fixed request count (bounds the fake's in-memory request log), or None: `seconds`.
    pub requests: Option<usize>,
}

pub struct Plan {
    pub seconds: f64,
    pub sizes: Vec<Size>,
    pub concurrency: Vec<usize>,
    /// (connections, requests/s) for the first body size at a fixed rate:
    /// latency added at a given load (how agentgateway reports it), rather
    /// than at saturation, where a 2-core box measures only queueing.
    pub rated: Vec<(usize, u32)>,
    pub stream_sets: Vec<(usize, usize)>,
    pub hold_streams: usize,
    pub pipeline_iters: usize,
    pub connect_batches: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                seconds: 1.0,
                sizes: vec![
                    Size {
                        label: "1 KB",
                        bytes: 1024,
                        requests: None,
                    },
                    Size {
                        label: "256 KB",
                        bytes: 256 * 1024,
                        requests: Some(40),
                    },
                ],
                concurrency: vec![1, 32],
                rated: vec![(32, 500)],
                stream_sets: vec![(1, 3), (8, 8)],
                hold_streams: 100,
                pipeline_iters: 2,
                connect_batches: 3,
            }
        } else {
            Plan {
                seconds: 10.0,
                sizes: vec![
                    Size {
                        label: "1 KB",
                        bytes: 1024,
                        requests: None,
                    },
                    Size {
                        label: "256 KB",
                        bytes: 256 * 1024,
                        requests: Some(2000),
                    },
                ],
                concurrency: vec![1, 32],
                rated: vec![(32, 1000), (32, 3000)],
                stream_sets: vec![(1, 40), (8, 80)],
                hold_streams: 1000,
                pipeline_iters: 20,
                connect_batches: 9,
            }
        }
    }
}

/// An Anthropic Messages request of exactly `bytes` bytes: code-like text,
/// nothing the detectors act on (the full pipeline still scans it).
pub fn body_file(dir: &Path, bytes: usize) -> Result<PathBuf> {
    let path = dir.join(format!("body-{bytes}.json"));
    let head = r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":""#;
    let tail = r#""}]}"#;
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < bytes.saturating_sub(head.len() + tail.len()) {
        text += &format!(
            "fn handler_{i}(req: Request) -> Result<Response> {{ let n = req.len() * {}; Ok(n) }} ",
            i % 97
        );
        i += 1;
    }
    text.truncate(bytes.saturating_sub(head.len() + tail.len()));
    std::fs::write(&path, format!("{head}{text}{tail}"))?;
    Ok(path)
}

/// Runs `load` on `path` after a short unmeasured warm-up.
pub fn measure(
    oha: &Path,
    path: &Route,
    body: &Path,
    size: Size,
    concurrency: usize,
    rate: Option<u32>,
    seconds: f64,
) -> Result<Value> {
    let mut l = Load {
        url: path.url.clone(),
        body,
        concurrency,
        requests: Some((concurrency * 4).max(20)),
        seconds,
        rate: None,
        proxy: path.proxy.clone(),
        cgroup: path.cgroup.as_deref(),
    };
    load::run(oha, &l).with_context(|| format!("warm-up through {} failed", path.name))?;
    l.requests = if rate.is_some() { None } else { size.requests };
    l.rate = rate;
    if let Some(pid) = path.pid {
        procs::reset_peak(pid);
    }
    let cpu0 = path.pid.map(procs::cpu_secs).transpose()?;
    let r = load::run(oha, &l).with_context(|| format!("load through {} failed", path.name))?;
    let cpu1 = path.pid.map(procs::cpu_secs).transpose()?;
    let cpu_us = match (cpu0, cpu1) {
        (Some(a), Some(b)) if r.ok > 0 => Some((b - a) * 1e6 / r.ok as f64),
        _ => None,
    };
    let peak = path.pid.map(|p| procs::status_mib(p, "VmHWM")).transpose()?;
    if r.ok == 0 {
        bail!("no request through {} succeeded ({} sent)", path.name, r.requests);
    }
    Ok(json!({
        "path": path.name, "body": size.label, "body_bytes": size.bytes, "concurrency": concurrency, "rate": rate,
        "requests": r.requests, "ok": r.ok, "rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "mean_ms": r.mean_ms,
        "cpu_us_per_req": cpu_us, "peak_rss_mib": peak,
    }))
}

/// Adds `added_*` and ratios against the group's first (baseline) row.
pub fn relate(rows: &mut [Value]) {
    let Some(base) = rows.first().cloned() else { return };
    let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    for row in rows.iter_mut().skip(1) {
        let o = row.as_object_mut().unwrap();
        let r = Value::Object(o.clone());
        o.insert("added_p50_ms".into(), json!(get(&r, "p50_ms") - get(&base, "p50_ms")));
        o.insert("added_p99_ms".into(), json!(get(&r, "p99_ms") - get(&base, "p99_ms")));
        o.insert("rps_ratio".into(), json!(get(&r, "rps") / get(&base, "rps")));
    }
}

/// Every oha group: for each body size and concurrency, the baseline then each path.
pub fn nonstreaming(
    oha: &Path,
    plan: &Plan,
    bodies: &[(Size, PathBuf)],
    baseline: &Route,
    paths: &[Route],
    mut between_groups: impl FnMut() -> Result<()>,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, (size, body)) in bodies.iter().enumerate() {
        let closed = plan.concurrency.iter().map(|&c| (c, None));
        let open = plan.rated.iter().filter(|_| i == 0).map(|&(c, q)| (c, Some(q)));
        for (c, rate) in closed.chain(open) {
            between_groups()?;
            let at = rate.map(|q| format!(" at {q} req/s")).unwrap_or_default();
            crate::step(&format!("non-streaming {} at concurrency {c}{at}", size.label));
            let mut rows = vec![measure(oha, baseline, body, *size, c, rate, plan.seconds)?];
            for p in paths {
                match measure(oha, p, body, *size, c, rate, plan.seconds) {
                    Ok(v) => rows.push(v),
                    Err(e) => rows.push(json!({"path": p.name, "body": size.label, "concurrency": c, "rate": rate, "error": format!("{e:#}")})),
                }
            }
            relate(&mut rows);
            out.extend(rows);
        }
    }
    Ok(out)
}

/// Streams through `path` with bench-client; CPU charged per stream.
pub fn stream(client: &Path, path: &Route, concurrency: usize, streams: usize) -> Result<Value> {
    let cpu0 = path.pid.map(procs::cpu_secs).transpose()?;
    let out = Command::new(client)
        .arg("stream")
        .args(&path.stream_target)
        .args([
            "--concurrency",
            &concurrency.to_string(),
            "--streams",
            &streams.to_string(),
            "--events",
            "200",
            "--paced",
        ])
        .stdin(Stdio::null())
        .output()
        .context("cannot run bench-client")?;
    let cpu1 = path.pid.map(procs::cpu_secs).transpose()?;
    if !out.status.success() {
        bail!(
            "bench-client stream through {} failed: {}",
            path.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut v: Value = serde_json::from_slice(&out.stdout).context("bench-client printed no JSON")?;
    let n = v.get("streams").and_then(Value::as_u64).unwrap_or(0);
    if n == 0 {
        bail!(
            "no stream through {} completed: {}",
            path.name,
            v.get("first_error").unwrap_or(&Value::Null)
        );
    }
    let o = v.as_object_mut().unwrap();
    o.insert("path".into(), json!(path.name));
    o.insert("concurrency".into(), json!(concurrency));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        // Includes warm-up streams; an upper bound.
        o.insert("cpu_us_per_stream".into(), json!((b - a) * 1e6 / n as f64));
    }
    Ok(v)
}

pub fn streaming(client: &Path, plan: &Plan, baseline: &Route, paths: &[Route]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for &(c, n) in &plan.stream_sets {
        crate::step(&format!("streaming 200 events at concurrency {c}"));
        let base = stream(client, baseline, c, n)?;
        let f = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let mut rows = vec![base.clone()];
        for p in paths {
            match stream(client, p, c, n) {
                Ok(mut v) => {
                    let o = v.as_object_mut().unwrap();
                    let r = Value::Object(o.clone());
                    o.insert(
                        "added_ttft_p50_us".into(),
                        json!(f(&r, "/ttft_us/p50") - f(&base, "/ttft_us/p50")),
                    );
                    o.insert(
                        "added_ttft_p99_us".into(),
                        json!(f(&r, "/ttft_us/p99") - f(&base, "/ttft_us/p99")),
                    );
                    o.insert(
                        "added_inter_event_p99_us".into(),
                        json!(f(&r, "/inter_event_us/p99") - f(&base, "/inter_event_us/p99")),
                    );
                    rows.push(v);
                }
                Err(e) => rows.push(json!({"path": p.name, "concurrency": c, "error": format!("{e:#}")})),
            }
        }
        out.extend(rows);
    }
    Ok(out)
}
