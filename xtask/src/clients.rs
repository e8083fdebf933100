//! Installs the real clients the end-to-end tests drive: the official Python
//! and Node SDKs, Claude Code, Codex, Gemini CLI, opencode, Copilot CLI and
//! (with `--full`) aider, pinned to
//! exact versions under one root (default `target/test-clients/`).
//!
//! Idempotent: each part writes a stamp naming its pinned versions and is
//! skipped while the stamp matches, so reruns cost nothing. Installs use the
//! registries' ordinary clients (pip, npm) with whatever trust and mirror
//! settings the environment already carries.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// PyPI pins for the SDK venv (`root/venv`). anthropic 2.x and openai 3.x are
/// the versions the client research ran against.
pub const PYTHON_SDKS: &[&str] = &[
    "anthropic==2.12.0",
    "openai==3.54.0",
    "httpx==0.28.1",
    "requests==2.34.2",
];

/// npm pins for `root/npm`. A bare `@anthropic-ai/claude-code` resolved an
/// older release here, hence exact versions everywhere.
pub const NODE_CLIENTS: &[&str] = &[
    "@anthropic-ai/sdk@1.12.0",
    "openai@6.49.0",
    "@anthropic-ai/claude-code@2.1.330",
    "@openai/codex@0.169.0",
    "@google/gemini-cli@0.61.0",
    "opencode-ai@1.18.33",
    "@github/copilot@1.0.102",
];

/// aider pins its own openai/httpx versions, so it gets a venv of its own
/// (`root/venv-aider`, ~700 MB): only for the full suite.
pub const AIDER: &[&str] = &["aider-chat==0.86.2"];

/// Where the clients live: `$PROMPTWALL_TEST_CLIENTS` or `<workspace>/target/test-clients`.
pub fn default_root(workspace: &Path) -> PathBuf {
    std::env::var_os("PROMPTWALL_TEST_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/test-clients"))
}

/// Installs (or confirms) every pinned client under `root`.
pub fn install_test_clients(root: &Path, full: bool) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}; check permissions", root.display()))?;
    python_venv(&root.join("venv"), PYTHON_SDKS, "python SDKs")?;
    node_prefix(&root.join("npm"))?;
    if full {
        python_venv(&root.join("venv-aider"), AIDER, "aider")?;
    } else {
        progress("aider: skipped (only with --full)");
    }
    Ok(())
}

fn progress(msg: &str) {
    eprintln!("==> test clients: {msg}");
}

fn stamp_text(pins: &[&str]) -> String {
    let mut s = pins.join("\n");
    s.push('\n');
    s
}

fn stamp_matches(stamp: &Path, pins: &[&str]) -> bool {
    std::fs::read_to_string(stamp).is_ok_and(|s| s == stamp_text(pins))
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}; is the program installed?"))?;
    if !status.success() {
        bail!("{shown} failed with {status}; see its output above, fix the cause (network, registry, disk) and rerun");
    }
    Ok(())
}

fn python_venv(venv: &Path, pins: &[&str], what: &str) -> Result<()> {
    let stamp = venv.join(".promptwall-pins");
    if stamp_matches(&stamp, pins) {
        progress(&format!("{what}: up to date in {}", venv.display()));
        return Ok(());
    }
    let python = venv.join("bin/python");
    if !python.exists() {
        progress(&format!("{what}: creating venv {}", venv.display()));
        run(Command::new("python3").arg("-m").arg("venv").arg(venv))
            .context("python3 -m venv failed; on Debian install python3-venv (cargo xtask setup does)")?;
    }
    progress(&format!("{what}: pip install {}", pins.join(" ")));
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(pins))?;
    std::fs::write(&stamp, stamp_text(pins)).with_context(|| format!("cannot write {}", stamp.display()))?;
    progress(&format!("{what}: installed"));
    Ok(())
}

fn node_prefix(prefix: &Path) -> Result<()> {
    let stamp = prefix.join(".promptwall-pins");
    if stamp_matches(&stamp, NODE_CLIENTS) {
        progress(&format!("node clients: up to date in {}", prefix.display()));
        return Ok(());
    }
    std::fs::create_dir_all(prefix).with_context(|| format!("cannot create {}", prefix.display()))?;
    progress(&format!(
        "node clients: npm install {} (about 1 GB, the first time)",
        NODE_CLIENTS.join(" ")
    ));
    // Scripts must run: Claude Code's postinstall links its native binary.
    run(Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(prefix)
        .args(["--no-fund", "--no-audit", "--no-save", "--loglevel=error"])
        .args(NODE_CLIENTS))
    .context("npm install failed; is node/npm installed (apt-get install nodejs npm)?")?;
    for bin in ["claude", "codex", "gemini", "opencode", "copilot"] {
        let path = prefix.join("node_modules/.bin").join(bin);
        if !path.exists() {
            bail!(
                "npm finished but {} is missing; remove {} and rerun `cargo xtask setup`",
                path.display(),
                prefix.display()
            );
        }
    }
    std::fs::write(&stamp, stamp_text(NODE_CLIENTS)).with_context(|| format!("cannot write {}", stamp.display()))?;
    progress("node clients: installed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_matches_only_the_same_pins() {
        let dir = std::env::temp_dir().join(format!("pw-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stamp = dir.join("s");
        assert!(!stamp_matches(&stamp, PYTHON_SDKS));
        std::fs::write(&stamp, stamp_text(PYTHON_SDKS)).unwrap();
        assert!(stamp_matches(&stamp, PYTHON_SDKS));
        assert!(!stamp_matches(&stamp, AIDER));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
