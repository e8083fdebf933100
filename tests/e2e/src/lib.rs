//! End-to-end test support: run the real `promptwall` binary against the
//! fake provider and drive it with real clients (curl, the official Python
//! and Node SDKs, later Claude Code/Codex/aider).
//!
//! The tests need the agent binary built first: `cargo xtask test` builds
//! `promptwall-agent` and the fake provider, installs the pinned clients and
//! sets `PROMPTWALL_BIN`. By hand:
//! `cargo build -p promptwall-agent -p promptwall-fake-provider && cargo test -p promptwall-e2e`.
//!
//! Modules:
//! - [`paths`]: where the binaries and installed clients are.
//! - [`agent`]: a per-test config in a tempdir, `promptwall up` under a kill guard, audit queries.
//! - [`process`]: bounded command runs.
//! - [`cgroup`]: test cgroups, removed with what runs in them even when a test fails.
//! - [`clients`]: the pinned Python venv / npm prefix from `cargo xtask setup`.
//! - [`netns`]: scripts in a private mount+network namespace (transparent tests).
//! - [`transparent`]: [`TransparentEnv`], a live namespace with fake provider, agent + eBPF on a client cgroup.
//! - [`container`]: [`container::Container`], a network namespace wired like Docker's default bridge, in that cgroup.

pub mod agent;
pub mod cgroup;
pub mod clients;
pub mod container;
pub mod netns;
pub mod paths;
pub mod process;
pub mod prometheus;
pub mod transparent;

pub use agent::{Agent, AgentConfig, AuditRow, Sent};
pub use clients::TestClients;
pub use netns::Namespace;
pub use process::{run_bounded, RunOutput};
pub use prometheus::Prometheus;
pub use promptwall_fake_provider::{FakeHandle, FakeOptions, FakeProvider, RecordedRequest};
pub use transparent::{TransparentEnv, TransparentOptions};

/// Provider hosts every test maps to the fake.
pub const PROVIDER_HOSTS: &[&str] = &[
    "api.anthropic.com",
    "api.openai.com",
    "chatgpt.com",
    "ab.chatgpt.com",
    "generativelanguage.googleapis.com",
];

/// Starts a TLS fake provider on its own runtime (for synchronous tests).
pub fn start_fake(ws: bool) -> FakeHandle {
    FakeProvider::start_background(FakeOptions {
        ws,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("cannot start the fake provider: {e}"))
}
