//! Builds the eBPF programs (ebpf/promptwall-ebpf) with aya-build, as
//! aya-template does: nightly + `-Z build-std=core` for bpfel-unknown-none,
//! linked by bpf-linker. The object lands in OUT_DIR/promptwall and is embedded
//! by src/intercept/ebpf.rs.
//!
//! `AYA_BUILD_SKIP=1` (clippy, docs, hosts without nightly) builds a stub agent
//! whose eBPF mode reports that it was built without the programs.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    println!("cargo::rustc-check-cfg=cfg(promptwall_ebpf_stub)");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let skip = std::env::var("AYA_BUILD_SKIP")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    if skip {
        println!("cargo:rustc-cfg=promptwall_ebpf_stub");
        println!("cargo:warning=AYA_BUILD_SKIP set: building promptwall without eBPF programs (nftables mode only)");
        return Ok(());
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = Path::new(&manifest_dir).join("../ebpf/promptwall-ebpf");
    let ebpf_dir = ebpf_dir.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "cannot find the eBPF crate at {}: {e}; is the checkout complete?",
            ebpf_dir.display()
        )
    })?;
    let common_dir = Path::new(&manifest_dir).join("../ebpf/promptwall-common");
    println!("cargo:rerun-if-changed={}", common_dir.display());
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("eBPF crate path is not UTF-8"))?;
    // aya-build runs `cargo build --package promptwall-ebpf` in the current
    // directory. From the workspace, cargo panics resolving features for a
    // package that is only a build-dependency, so build it as the standalone
    // (workspace-excluded) package it is, with its own Cargo.lock.
    std::env::set_current_dir(&ebpf_dir)?;
    let package = aya_build::Package {
        name: "promptwall-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default()).map_err(|e| {
        anyhow::anyhow!(
            "building the eBPF programs failed: {e:#}; run `cargo xtask setup` (nightly + rust-src + bpf-linker), \
             or set AYA_BUILD_SKIP=1 to build without them"
        )
    })
}
