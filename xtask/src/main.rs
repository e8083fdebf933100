//! Developer tasks: `cargo xtask setup | build-ebpf | test | up | demo | bench`.
//! Every task does its own set-up, so a fresh clone needs nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

mod bench;
mod clients;
mod ebpf;
mod package;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install everything the build and the tests need (idempotent).
    Setup {
        /// Also install the long-running clients (aider).
        #[arg(long)]
        full: bool,
    },
    /// Build the eBPF object (normally done by agent/build.rs).
    BuildEbpf,
    /// Set up, build, and run the whole test suite.
    Test {
        /// Add the long scenarios and aider.
        #[arg(long)]
        full: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build, and run the daemon (explicit mode unless --transparent).
    Up {
        /// Attach eBPF interception to the cgroup2 root: for real installs only.
        #[arg(long)]
        transparent: bool,
    },
    /// Build the Debian package (target/debian/promptwall_<version>_<arch>.deb).
    Package {
        /// Package this binary instead of building a release one.
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Output directory (default target/debian).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure what promptwall adds (target/bench/report.md and report.json).
    Bench {
        /// Smoke run for CI: debug builds, short runs; fails only if the harness breaks.
        #[arg(long)]
        quick: bool,
        /// Also measure mitmproxy and the LiteLLM proxy (installed into target/bench/venv).
        #[arg(long)]
        peers: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Setup { full } => setup(full),
        Task::BuildEbpf => build_ebpf(),
        Task::Test { full, args } => test(full, &args),
        Task::Up { transparent } => up(transparent),
        Task::Bench { quick, peers } => bench::run(quick, peers),
        Task::Package { bin, out } => package::run_package(bin, out).map(|_| ()),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn step(msg: &str) {
    eprintln!("==> {msg}");
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Debian packages the build and the tests use.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("nft", "nftables"),
    ("bpftool", "bpftool"),
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("curl", "curl"),
    // compressed-request tests encode with the real zstd
    ("zstd", "zstd"),
    // the audit durability test watches the agent's fsyncs and writes
    ("strace", "strace"),
    ("update-ca-certificates", "ca-certificates"),
    // install/package tests: unit verification and the .deb
    ("systemd-analyze", "systemd"),
    ("dpkg-deb", "dpkg"),
    ("/usr/lib/postgresql", "postgresql"),
];

/// Installed without their recommendations (a node exporter would start
/// listening), for the tests only.
const APT_PACKAGES_BARE: &[(&str, &str)] = &[
    // metrics test: a real Prometheus scrapes /metrics
    ("prometheus", "prometheus"),
    // UI tests: a real browser, headless
    ("chromium", "chromium"),
    // container tests: a real OCI runtime starts the containerised client
    ("runc", "runc"),
];

fn missing_packages(list: &[(&'static str, &'static str)]) -> Vec<&'static str> {
    list.iter()
        .filter(|(probe, _)| {
            if probe.starts_with('/') {
                !Path::new(probe).exists()
            } else {
                !have(probe)
            }
        })
        .map(|(_, pkg)| *pkg)
        .collect()
}

fn apt_install() -> Result<()> {
    let missing = missing_packages(APT_PACKAGES);
    let bare = missing_packages(APT_PACKAGES_BARE);
    // python3-venv is needed on Debian's python; pyenv pythons have venv built in.
    let venv_ok = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .status()
        .is_ok_and(|s| s.success());
    let mut missing = missing;
    if !venv_ok {
        missing.push("python3-venv");
    }
    if missing.is_empty() && bare.is_empty() {
        step("apt packages: all present");
        return Ok(());
    }
    if !is_root() {
        let all = [missing, bare].concat();
        bail!("missing packages {all:?}; run `cargo xtask setup` as root (or install them with apt-get)");
    }
    step(&format!(
        "apt-get install {}",
        [missing.clone(), bare.clone()].concat().join(" ")
    ));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    if !missing.is_empty() {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(&missing))?;
    }
    if !bare.is_empty() {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&bare))?;
    }
    Ok(())
}

/// What building and running the agent needs.
fn setup_base() -> Result<()> {
    apt_install()?;
    step("eBPF toolchain (nightly rust-src, bpf-linker)");
    ebpf::setup_toolchain()
}

/// Everything, including the real clients the tests drive.
fn setup(full: bool) -> Result<()> {
    setup_base()?;
    setup_extras(full)
}

fn setup_extras(full: bool) -> Result<()> {
    step("test clients (Python and Node SDKs, Claude Code, Codex, Gemini CLI, opencode, Copilot CLI)");
    clients::install_test_clients(&clients::default_root(&root()), full)
}

fn build_ebpf() -> Result<()> {
    ebpf::build_ebpf()
}

fn test(full: bool, args: &[String]) -> Result<()> {
    setup(full)?;
    let root = root();
    step("building the promptwall binary");
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "-p",
        "promptwall-agent",
        "-p",
        "promptwall-fake-provider",
    ]))?;
    step("running the test suite");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root).args(["test", "--workspace"]);
    if full {
        cmd.env("PROMPTWALL_FULL_TESTS", "1");
    }
    cmd.env("PROMPTWALL_BIN", root.join("target/debug/promptwall"));
    // Set-up just installed them: a missing client is a failure, not a skip.
    cmd.env("PROMPTWALL_REQUIRE_CLIENTS", "1");
    cmd.args(args);
    run(&mut cmd)
}

fn up(transparent: bool) -> Result<()> {
    setup_base()?;
    let root = root();
    step("building promptwall (release)");
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["build", "--release", "-p", "promptwall-agent"]))?;
    let state = root.join("target/promptwall");
    std::fs::create_dir_all(&state)?;
    let config = state.join("config.toml");
    let text = format!(
        "[ca]\ndir = \"{ca}\"\n[audit]\nurl = \"sqlite://{db}\"\n[listen]\nadmin_socket = \"{sock}\"\n[intercept]\nenabled = {transparent}\n",
        ca = state.join("ca").display(),
        db = state.join("audit.db").display(),
        sock = state.join("admin.sock").display(),
    );
    std::fs::write(&config, text)?;
    let bin = root.join("target/release/promptwall");
    if !state.join("ca").join("ca.pem").exists() {
        step("creating the org CA");
        run(Command::new(&bin).arg("--config").arg(&config).args(["ca", "init"]))?;
    }
    step(&format!("promptwall up (config {})", config.display()));
    eprintln!(
        "    explicit listener: ANTHROPIC_BASE_URL=http://127.0.0.1:8787  OPENAI_BASE_URL=http://127.0.0.1:8787/v1"
    );
    eprintln!("    audit: {} --config {} audit query", bin.display(), config.display());
    run(Command::new(&bin).arg("--config").arg(&config).arg("up"))
}
