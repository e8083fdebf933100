//! `bench-client`: the measuring side of `cargo xtask bench` where no
//! off-the-shelf load generator fits. Non-streaming throughput/latency is
//! measured with `oha`; this binary covers what oha cannot see:
//!
//! - `stream`: per-event arrival times of SSE answers (time to first token,
//!   inter-event gaps) recorded into HDR histograms. oha only times whole
//!   responses.
//! - `hold`: keeps N streams open at once so the harness can read the
//!   proxy's RSS under that load.
//! - `connect`: the cost of `connect()` (what an eBPF cgroup/connect hook adds).
//! - `pipeline`: the inspection pipeline alone on a generated ~1 MB
//!   Claude-Code-style transcript, cold and on the next turn.
//! - `budget`: the budget stage alone, with no limits and with ten.
//!
//! Every subcommand prints one JSON object on stdout.

mod budget;
mod conn;
mod connect;
mod hold;
mod pipeline;
mod stats;
mod store;
mod stream;
mod transcript;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench-client", about = "Measurement client for `cargo xtask bench`")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Time streamed (SSE) answers event by event.
    Stream(stream::StreamArgs),
    /// Open N streams, report when all are flowing, hold until stdin closes.
    Hold(hold::HoldArgs),
    /// Time connect() to a TCP address.
    Connect(connect::ConnectArgs),
    /// Time the inspection pipeline on a generated transcript.
    Pipeline(pipeline::PipelineArgs),
    /// Time the budget stage (limits checked and settled) per request.
    Budget(budget::BudgetArgs),
    /// Time the dashboard's store queries on a large audit store.
    Store(store::StoreArgs),
    /// Write the generated transcript (and its next turn) to files.
    Transcript(transcript::TranscriptArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Stream(a) => runtime()?.block_on(stream::run(a))?,
        Cmd::Hold(a) => runtime()?.block_on(hold::run(a))?,
        Cmd::Connect(a) => connect::run(a)?,
        Cmd::Pipeline(a) => pipeline::run(a)?,
        Cmd::Budget(a) => budget::run(a)?,
        Cmd::Store(a) => runtime()?.block_on(store::run(a))?,
        Cmd::Transcript(a) => transcript::write(a)?,
    };
    println!("{out}");
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One worker: the client must not compete with the measured processes
    // for the machine's cores more than needed.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}
