//! Locations of the workspace, the built binaries and the test clients.
//! `env!("CARGO_BIN_EXE_…")` only works inside the binary's own crate, so
//! the agent is found through `PROMPTWALL_BIN` or the target directory.

use std::path::{Path, PathBuf};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the e2e crate lives in <workspace>/tests/e2e")
}

/// `CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn built(env: &str, name: &str, package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env}={} does not exist; build it with `cargo build -p {package}`",
            p.display()
        );
        return p;
    }
    let p = target_dir().join("debug").join(name);
    assert!(
        p.is_file(),
        "{} is missing; run `cargo xtask test` (it builds the agent first) or `cargo build -p {package}`, or set {env}",
        p.display()
    );
    p
}

/// The `promptwall` binary under test: `$PROMPTWALL_BIN` or `target/debug/promptwall`.
pub fn promptwall_bin() -> PathBuf {
    built("PROMPTWALL_BIN", "promptwall", "promptwall-agent")
}

/// The `fake-provider` binary (for scripts run inside a namespace).
pub fn fake_provider_bin() -> PathBuf {
    built(
        "PROMPTWALL_FAKE_PROVIDER_BIN",
        "fake-provider",
        "promptwall-fake-provider",
    )
}

/// Root of the installed test clients: `$PROMPTWALL_TEST_CLIENTS` or `target/test-clients`.
pub fn test_clients_root() -> PathBuf {
    std::env::var_os("PROMPTWALL_TEST_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("test-clients"))
}
