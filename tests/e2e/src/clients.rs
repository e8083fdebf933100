//! The pinned clients `cargo xtask setup` installs (xtask/src/clients.rs):
//! `<root>/venv` (Python `anthropic`, `openai`, `requests`, `httpx`),
//! `<root>/npm` (`@anthropic-ai/sdk`, `openai`, Claude Code, Codex) and, for
//! the full suite, `<root>/venv-aider`.
//!
//! When they are missing a test skips with a message, unless
//! `PROMPTWALL_REQUIRE_CLIENTS=1` (set by `cargo xtask test`): then it fails,
//! so CI can never pass by skipping.

use std::path::PathBuf;
use std::process::Command;

use crate::paths::test_clients_root;

#[derive(Clone, Debug)]
pub struct TestClients {
    pub root: PathBuf,
}

impl TestClients {
    /// The installed clients, or None (after printing why) when they are
    /// absent and not required.
    pub fn find() -> Option<TestClients> {
        let root = test_clients_root();
        let c = TestClients { root };
        let missing: Vec<PathBuf> = [
            c.python(),
            c.node_modules().join("@anthropic-ai/sdk"),
            c.node_modules().join("openai"),
        ]
        .into_iter()
        .filter(|p| !p.exists())
        .collect();
        if missing.is_empty() {
            return Some(c);
        }
        let msg = format!("test clients missing ({missing:?}); run `cargo xtask setup` to install them");
        if std::env::var("PROMPTWALL_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        None
    }

    /// The SDK venv's python.
    pub fn python(&self) -> PathBuf {
        self.root.join("venv/bin/python")
    }

    pub fn node_modules(&self) -> PathBuf {
        self.root.join("npm/node_modules")
    }

    /// An installed npm executable (`claude`, `codex`).
    pub fn npm_bin(&self, name: &str) -> PathBuf {
        self.node_modules().join(".bin").join(name)
    }

    /// aider from the full-suite venv, if installed.
    pub fn aider(&self) -> Option<PathBuf> {
        Some(self.root.join("venv-aider/bin/aider")).filter(|p| p.exists())
    }

    /// `python -c <script> args…` with the SDK venv.
    pub fn python_cmd(&self, script: &str) -> Command {
        let mut cmd = Command::new(self.python());
        cmd.arg("-c").arg(script);
        crate::process::clean_env(&mut cmd);
        cmd
    }

    /// `node -e <script>` (CommonJS) resolving packages from the npm prefix.
    pub fn node_cmd(&self, script: &str) -> Command {
        let mut cmd = Command::new("node");
        cmd.arg("-e").arg(script);
        crate::process::clean_env(&mut cmd);
        cmd.env("NODE_PATH", self.node_modules());
        cmd
    }
}
