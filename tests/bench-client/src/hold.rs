//! Keeps N long streams open at once: opens them (a bounded number
//! connecting at a time), waits until each has delivered its first delta,
//! prints `{"open":N,...}` and holds them until stdin closes. The harness
//! reads the proxy's RSS in between.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::conn::{Dialer, Target};
use crate::stream::stream_body;

#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    #[command(flatten)]
    pub target: Target,
    /// Streams to hold open.
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    pub opening: usize,
    /// Seconds to wait for all streams to start.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

pub async fn run(args: HoldArgs) -> Result<Value> {
    let dialer = Arc::new(Dialer::new(args.target.clone())?);
    let gate = Arc::new(Semaphore::new(args.opening.max(1)));
    let flowing = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.streams {
        let (dialer, gate, flowing, failed) = (dialer.clone(), gate.clone(), flowing.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let result: Result<()> = async {
                let permit = gate.acquire().await?;
                let mut sender = dialer.connect().await?;
                // Paced by the fake (500 ms per event in the bench): open for minutes.
                let req = dialer.request(
                    stream_body(2000),
                    &[("x-fake-events", "2000".into()), ("x-fake-slow", "1".into())],
                )?;
                let resp = sender.send_request(req).await?;
                anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    let frame = frame?;
                    if frame
                        .data_ref()
                        .is_some_and(|d| crate::stream::find(d, b"content_block_delta").is_some())
                    {
                        flowing.fetch_add(1, Ordering::SeqCst);
                        drop(permit);
                        break;
                    }
                }
                // Keep reading so the proxy never stalls on a full window.
                while let Some(frame) = body.frame().await {
                    frame?;
                }
                drop(sender);
                Ok(())
            }
            .await;
            if result.is_err() {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let deadline = started + std::time::Duration::from_secs(args.timeout_secs);
    while flowing.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) < args.streams
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let report = json!({
        "open": flowing.load(Ordering::SeqCst),
        "failed": failed.load(Ordering::SeqCst),
        "open_secs": started.elapsed().as_secs_f64(),
    });
    println!("{report}");
    // Hold until the harness closes our stdin.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    for t in tasks {
        t.abort();
    }
    Ok(json!({"released": true}))
}
