//! The peers, side by side on the same machine: mitmproxy (regular proxy
//! mode, no addons; clients CONNECT through it and it re-encrypts to the
//! fake provider, verifying it against the fake's CA) and the LiteLLM proxy
//! (a generic pass-through endpoint to the fake, headers forwarded). Each is
//! pinned and installed from PyPI into its own venv under target/bench/venv
//! (their dependency pins clash), once; a stamp file records the pin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::procs::{self, Guard};
use super::scenario::Route;

/// mitmproxy 11.0.2 is the newest release for Python 3.11.
pub const MITMPROXY: &str = "mitmproxy==11.0.2";
/// Newer LiteLLM releases need dependencies PyPI mirrors here lack, and
/// v1.107.0 was a compromised release: stay on a known-good pin.
pub const LITELLM: &str = "litellm[proxy]==1.80.0";

pub struct Started {
    pub routes: Vec<(Route, Guard)>,
    pub skipped: Vec<(&'static str, String)>,
}

fn venv(bench: &Path, name: &str, pin: &str) -> Result<PathBuf> {
    let dir = bench.join("venv").join(name);
    let stamp = dir.join("promptwall-bench.stamp");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == pin) {
        return Ok(dir);
    }
    crate::step(&format!("installing {pin} into {}", dir.display()));
    crate::run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
        .context("cannot create a venv; install python3-venv")?;
    crate::run(Command::new(dir.join("bin/pip")).args(["install", "-q", pin]))
        .with_context(|| format!("cannot install {pin} from PyPI"))?;
    std::fs::write(&stamp, pin)?;
    Ok(dir)
}

pub fn start(bench: &Path, work: &Path, fake_addr: &str, fake_ca: &Path) -> Result<Started> {
    let mut started = Started {
        routes: vec![],
        skipped: vec![],
    };
    match mitmproxy(bench, work, fake_addr, fake_ca) {
        Ok(r) => started.routes.push(r),
        Err(e) => started.skipped.push(("mitmproxy", format!("{e:#}"))),
    }
    match litellm(bench, work, fake_addr, fake_ca) {
        Ok(r) => started.routes.push(r),
        Err(e) => started.skipped.push(("litellm", format!("{e:#}"))),
    }
    Ok(started)
}

fn python_env(cmd: &mut Command) {
    // The machine's trust variables point at the system bundle; the peers
    // get exactly the trust set below.
    for var in [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "*");
}

fn mitmproxy(bench: &Path, work: &Path, fake_addr: &str, fake_ca: &Path) -> Result<(Route, Guard)> {
    let venv = venv(bench, "mitmproxy", MITMPROXY)?;
    let port = procs::free_port("127.0.0.1")?;
    let confdir = work.join("mitmproxy");
    std::fs::create_dir_all(&confdir)?;
    let mut cmd = Command::new(venv.join("bin/mitmdump"));
    cmd.args([
        "--mode",
        "regular",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        &port.to_string(),
    ])
    .args(["--set", &format!("confdir={}", confdir.display())])
    .args([
        "--set",
        &format!("ssl_verify_upstream_trusted_ca={}", fake_ca.display()),
    ])
    .args([
        "--set",
        "flow_detail=0",
        "--set",
        "termlog_verbosity=error",
        "--set",
        "connection_strategy=lazy",
    ]);
    python_env(&mut cmd);
    let addr = format!("127.0.0.1:{port}");
    let guard = procs::spawn_listening(
        "mitmproxy",
        cmd,
        &work.join("mitmproxy.log"),
        &addr,
        Duration::from_secs(60),
    )?;
    let ca = confdir.join("mitmproxy-ca-cert.pem");
    let route = Route {
        name: "mitmproxy",
        url: format!("https://{fake_addr}/v1/messages"),
        proxy: Some(format!("http://{addr}")),
        cgroup: None,
        pid: Some(guard.pid()),
        stream_target: vec![
            "--connect".into(),
            addr.clone(),
            "--tunnel-to".into(),
            fake_addr.to_string(),
            "--tls-name".into(),
            "api.anthropic.com".into(),
            "--ca".into(),
            ca.display().to_string(),
        ],
    };
    Ok((route, guard))
}

fn litellm(bench: &Path, work: &Path, fake_addr: &str, fake_ca: &Path) -> Result<(Route, Guard)> {
    let venv = venv(bench, "litellm", LITELLM)?;
    let port = procs::free_port("127.0.0.1")?;
    let config = work.join("litellm.yaml");
    // A generic pass-through (LiteLLM's own /v1/messages would translate).
    std::fs::write(
        &config,
        format!(
            "model_list: []\ngeneral_settings:\n  pass_through_endpoints:\n    - path: \"/passthrough/v1/messages\"\n      target: \"https://{fake_addr}/v1/messages\"\n      forward_headers: true\n"
        ),
    )?;
    let mut cmd = Command::new(venv.join("bin/litellm"));
    cmd.arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--num_workers", "1"]);
    python_env(&mut cmd);
    cmd.env("SSL_CERT_FILE", fake_ca)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False")
        .env("DISABLE_ADMIN_UI", "True");
    let addr = format!("127.0.0.1:{port}");
    let guard = procs::spawn_listening(
        "litellm",
        cmd,
        &work.join("litellm.log"),
        &addr,
        Duration::from_secs(120),
    )?;
    let route = Route {
        name: "litellm",
        url: format!("http://{addr}/passthrough/v1/messages"),
        proxy: None,
        cgroup: None,
        pid: Some(guard.pid()),
        stream_target: vec![
            "--connect".into(),
            addr.clone(),
            "--host".into(),
            addr.clone(),
            "--path".into(),
            "/passthrough/v1/messages".into(),
        ],
    };
    Ok((route, guard))
}
