//! `cargo xtask package`: the Debian package, built with dpkg-deb by
//! deploy/debian/build-deb.sh (cargo-deb was measured at ~50 s to install
//! into a fresh cache, plus metadata in the agent manifest; dpkg-deb is
//! already on every Debian/Ubuntu machine and CI image).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{have, root, run, step};

pub fn run_package(bin: Option<PathBuf>, out: Option<PathBuf>) -> Result<PathBuf> {
    if !have("dpkg-deb") {
        bail!("dpkg-deb not found; packaging needs a Debian-family host (apt-get install dpkg)");
    }
    let root = root();
    let bin = match bin {
        Some(b) => b,
        None => {
            step("building promptwall (release)");
            run(Command::new("cargo")
                .current_dir(&root)
                .args(["build", "--release", "-p", "promptwall-agent"]))?;
            root.join("target/release/promptwall")
        }
    };
    let out = out.unwrap_or_else(|| root.join("target/debian"));
    step(&format!("building the .deb into {}", out.display()));
    let output = Command::new("sh")
        .arg(root.join("deploy/debian/build-deb.sh"))
        .arg("--bin")
        .arg(&bin)
        .args(["--version", env!("CARGO_PKG_VERSION")])
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run deploy/debian/build-deb.sh")?;
    if !output.status.success() {
        bail!("deploy/debian/build-deb.sh failed with {}", output.status);
    }
    let deb = PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    );
    step(&format!("built {}", deb.display()));
    run(Command::new("dpkg-deb").arg("--info").arg(&deb))?;
    Ok(deb)
}
