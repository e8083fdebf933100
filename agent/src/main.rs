//! `promptwall`: the host agent daemon and its CLI.

mod access;
mod admin;
mod admin_http;
mod alerts;
mod cli;
mod config;
mod fleet;
mod intercept;
mod metrics;
mod providers;
mod traces;
mod ui;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "promptwall",
    version,
    about = "Inspect and audit every request coding agents send to LLM providers"
)]
struct Cli {
    /// Config file (default /etc/promptwall/config.toml; missing means all defaults),
    /// then `config.d/*.toml` beside it, then PROMPTWALL_<SECTION>__<KEY> variables.
    #[arg(long, global = true, env = "PROMPTWALL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: redirect, proxy, pipeline and audit.
    Up(cli::up::UpArgs),
    /// Show what the running daemon is doing.
    Status(cli::status::StatusArgs),
    /// Manage the org CA that signs the intercepted providers' leaves.
    #[command(subcommand)]
    Ca(cli::ca::CaCommand),
    /// Query the audit log.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Scan a file or stdin for secrets and personal data.
    Scan(cli::scan::ScanArgs),
    /// Show each limit of [quota], its usage and when it resets, per identity.
    Limits(cli::limits::LimitsArgs),
    /// Check the alert webhooks.
    #[command(subcommand)]
    Alerts(cli::alerts::AlertsCommand),
    /// Tokens for the explicit listener (shared or remote use).
    #[command(subcommand)]
    Token(cli::token::TokenCommand),
    /// Explain routing decisions.
    #[command(subcommand)]
    Route(cli::route::RouteCommand),
    /// Remove anything a crashed agent left behind (eBPF links, maps, nftables table).
    Cleanup(intercept::CleanupArgs),
    /// Check this machine's setup: kernel, eBPF, nftables, service, CA, trust per client.
    Doctor(cli::doctor::DoctorArgs),
    /// Serve the web UI (live requests, spend, protection) from an audit store.
    Ui(ui::UiArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let config = config::AgentConfig::load(cli.config.as_deref())?;
        match cli.command {
            Command::Up(args) => cli::up::run(args, config).await,
            Command::Status(args) => cli::status::run(args, &config).await,
            Command::Ca(cmd) => cli::ca::run(cmd, &config).await,
            Command::Audit(cmd) => cli::audit::run(cmd, &config).await,
            Command::Scan(args) => cli::scan::run(args, &config).await,
            Command::Alerts(cmd) => cli::alerts::run(cmd, &config).await,
            Command::Token(cmd) => cli::token::run(cmd, &config).await,
            Command::Limits(args) => cli::limits::run(args, &config).await,
            Command::Route(cmd) => cli::route::run(cmd, &config).await,
            Command::Cleanup(args) => intercept::cleanup(args, &config).await,
            Command::Doctor(args) => cli::doctor::run(args, &config).await,
            Command::Ui(args) => ui::run(args, &config).await,
        }
    })
}
