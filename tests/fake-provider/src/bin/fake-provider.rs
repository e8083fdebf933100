//! `fake-provider`: the fake LLM provider as a process, for shell-based
//! tests and benches. Prints one JSON line `{"addr":..,"ca":..}` on stdout
//! when ready, appends every request to `--log` as JSONL, and runs until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use promptwall_fake_provider::{FakeOptions, FakeProvider};

#[derive(Parser)]
#[command(
    name = "fake-provider",
    about = "Fake Anthropic/OpenAI/Gemini provider over TLS (or plain HTTP) for tests"
)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Directory holding (or receiving) the test CA as ca.pem/ca.key.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Serve the Responses WebSocket on GET /v1/responses.
    #[arg(long)]
    ws: bool,
    /// Plain HTTP instead of TLS.
    #[arg(long)]
    plain: bool,
    /// ALPN protocols offered, comma-separated.
    #[arg(long, default_value = "h2,http/1.1", value_delimiter = ',')]
    alpn: Vec<String>,
    /// Pause before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    think_delay_ms: u64,
    /// Pause between streamed events for SLOWSTREAM, in milliseconds.
    #[arg(long, default_value_t = 100)]
    slow_delay_ms: u64,
    /// Status for unknown paths.
    #[arg(long, default_value_t = 404)]
    unknown_status: u16,
    /// Append each request as one JSON line here.
    #[arg(long)]
    log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let args = Args::parse();
    let opts = FakeOptions {
        bind: args.bind,
        ca_dir: args.ca_dir,
        ws: args.ws,
        plain: args.plain,
        alpn: args.alpn,
        think_delay_ms: args.think_delay_ms,
        slow_delay_ms: args.slow_delay_ms,
        unknown_status: args.unknown_status,
        log: args.log,
    };
    let fake = FakeProvider::start(opts)
        .await
        .context("cannot start the fake provider")?;
    println!(
        "{}",
        serde_json::json!({"addr": fake.addr.to_string(), "ca": fake.ca_pem_path, "plain": fake.plain})
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(fake);
    Ok(())
}
