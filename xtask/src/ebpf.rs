//! `cargo xtask setup` / `build-ebpf`: the toolchain the eBPF programs need.
//!
//! The programs build with nightly (`-Z build-std=core`, rust-src) and
//! bpf-linker. bpf-linker is built against the nightly's own LLVM dylib
//! (no-llvm-linking) so both always agree on the LLVM version.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

pub const BPF_LINKER_VERSION: &str = "0.13.0";
const NIGHTLY: &str = "nightly";

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Idempotent: installs only what is missing or at the wrong version.
pub fn setup_toolchain() -> anyhow::Result<()> {
    if output(Command::new("rustc").arg(format!("+{NIGHTLY}")).arg("--version")).is_none() {
        run(Command::new("rustup").args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]))?;
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))?;

    let installed = output(Command::new("bpf-linker").arg("--version"));
    if installed.as_deref().map(|v| v.contains(BPF_LINKER_VERSION)) == Some(true) {
        eprintln!("bpf-linker {BPF_LINKER_VERSION} already installed");
    } else {
        install_bpf_linker()?;
    }

    let missing: Vec<&str> = [("nft", "nftables"), ("bpftool", "bpftool")]
        .into_iter()
        .filter(|(bin, _)| !have(bin))
        .map(|(_, pkg)| pkg)
        .collect();
    if !missing.is_empty() {
        if !have("apt-get") {
            bail!("missing {missing:?} and no apt-get here; install them with your package manager");
        }
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get")
            .args(["install", "-y"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    Ok(())
}

/// The nightly sysroot's lib dir and the name of its LLVM dylib (libLLVM-*-rust-*.so).
fn nightly_llvm() -> anyhow::Result<(PathBuf, String)> {
    let sysroot = output(
        Command::new("rustc")
            .arg(format!("+{NIGHTLY}"))
            .args(["--print", "sysroot"]),
    )
    .context("cannot find the nightly sysroot; run `rustup toolchain install nightly`")?;
    let lib = Path::new(&sysroot).join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_prefix("lib").and_then(|n| n.strip_suffix(".so")) {
            if stem.starts_with("LLVM-") && stem.contains("-rust-") {
                return Ok((lib, stem.to_string()));
            }
        }
    }
    bail!(
        "no libLLVM-*-rust-*.so in {}; add it with `rustup component add llvm-tools --toolchain nightly`",
        lib.display()
    )
}

fn install_bpf_linker() -> anyhow::Result<()> {
    let (lib, dylib) = nightly_llvm()?;
    // llvm-NN feature must match the nightly's LLVM major (LLVM-22-rust-... -> llvm-22).
    let major = dylib
        .trim_start_matches("LLVM-")
        .split(['-', '.'])
        .next()
        .unwrap_or("")
        .to_string();
    let rustflags = format!("-L {l} -l dylib={dylib} -C link-arg=-Wl,-rpath,{l}", l = lib.display());
    run(Command::new("cargo")
        .arg(format!("+{NIGHTLY}"))
        .args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major},no-llvm-linking"))
        .env("RUSTFLAGS", rustflags))
}

/// Builds the eBPF object standalone (the agent's build.rs does the same via aya-build).
pub fn build_ebpf() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crate_dir = root.join("ebpf/promptwall-ebpf");
    let target_dir = root.join("target/ebpf");
    let rustflags = ["--cfg=bpf_target_arch=\"x86_64\"", "-Cdebuginfo=2", "-Clink-arg=--btf"].join("\x1f");
    run(Command::new("cargo")
        .arg(format!("+{NIGHTLY}"))
        .args([
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(&crate_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER"))?;
    let object = target_dir.join("bpfel-unknown-none/release/promptwall");
    if !object.exists() {
        bail!("eBPF build finished but {} is missing", object.display());
    }
    eprintln!("eBPF object: {}", object.display());
    Ok(())
}
