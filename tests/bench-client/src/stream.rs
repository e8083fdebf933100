//! Streamed answers, timed event by event: time to first token (request
//! sent → first `content_block_delta` complete) and the gaps between
//! consecutive deltas. Each worker keeps one connection and runs its
//! requests back to back; the first `warmup` requests per worker are not
//! recorded (TLS handshakes, pool fill).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::conn::{Dialer, Target};
use crate::stats::{histogram, summary_us};

/// Personal data the prompt carries, so reversible redaction is active.
pub const PROMPT_EMAIL: &str = "dana.whitfield@northwind-traders.com";

#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    #[command(flatten)]
    pub target: Target,
    /// Recorded streams in total.
    #[arg(long, default_value_t = 50)]
    pub streams: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Text deltas per answer (`x-fake-events`).
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Ask the fake to pace events (`x-fake-slow: 1`).
    #[arg(long)]
    pub paced: bool,
    /// Unrecorded requests per worker first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// The model asked for (a routing rule may translate it elsewhere).
    #[arg(long, default_value = "claude-sonnet-4-5")]
    pub model: String,
    /// Also steer the fake from the prompt text (`BIGANSWER`, `SLOWSTREAM`):
    /// headers do not cross to another provider, the prompt does.
    #[arg(long)]
    pub text_triggers: bool,
    /// Speak OpenAI Chat instead of Anthropic Messages (give `--path
    /// /v1/chat/completions`); deltas are then Chat's content chunks.
    #[arg(long)]
    pub chat: bool,
}

/// What a streamed request asks for.
#[derive(Clone, Debug)]
pub struct Ask {
    pub model: String,
    pub events: usize,
    pub paced: bool,
    pub text_triggers: bool,
    pub chat: bool,
}

pub fn stream_body(events: usize) -> Bytes {
    stream_body_for("claude-sonnet-4-5", events, "", false)
}

fn stream_body_for(model: &str, events: usize, triggers: &str, chat: bool) -> Bytes {
    let text = format!(
        "Summarise the ticket and draft a reply to the reporter {PROMPT_EMAIL}. The build fails on main since the \
         last dependency bump; logs are attached below. Answer in about {events} words.{triggers}"
    );
    if chat {
        return Bytes::from(
            json!({
                "model": model,
                "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": text}],
            })
            .to_string(),
        );
    }
    Bytes::from(
        json!({
            "model": model,
            "max_tokens": 4096,
            "stream": true,
            "messages": [{"role": "user", "content": text}],
        })
        .to_string(),
    )
}

#[derive(Default)]
struct Recorded {
    ttft: Vec<u64>,
    gaps: Vec<u64>,
    total: Vec<u64>,
    deltas_per_stream: Vec<usize>,
    email_back: usize,
    errors: Vec<String>,
}

/// One streamed answer: per-delta arrival times in ns since the request was sent.
pub struct Timed {
    pub delta_arrivals: Vec<u64>,
    pub total_ns: u64,
    pub body: Vec<u8>,
}

pub async fn one_stream(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    dialer: &Dialer,
    ask: &Ask,
) -> Result<Timed> {
    let mut extra = vec![("x-fake-events", ask.events.to_string())];
    if ask.paced {
        extra.push(("x-fake-slow", "1".to_string()));
    }
    // BIGANSWER is the fake's 200 deltas, as `x-fake-events: 200`.
    let triggers = match (ask.text_triggers, ask.paced) {
        (false, _) => "",
        (true, true) => " BIGANSWER SLOWSTREAM",
        (true, false) => " BIGANSWER",
    };
    let req = dialer.request(stream_body_for(&ask.model, ask.events, triggers, ask.chat), &extra)?;
    // A text delta: Anthropic's event, or a Chat chunk whose delta is content.
    let delta_marker: &[u8] = if ask.chat {
        b"\"delta\":{\"content\":\""
    } else {
        b"content_block_delta"
    };
    sender.ready().await.context("connection closed before the request")?;
    let start = Instant::now();
    let resp = sender.send_request(req).await.context("request failed")?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        bail!(
            "status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut scanned = 0usize;
    let mut arrivals = Vec::with_capacity(ask.events + 8);
    while let Some(frame) = body.frame().await {
        let frame = frame.context("stream broke")?;
        let Ok(data) = frame.into_data() else { continue };
        let now = start.elapsed().as_nanos() as u64;
        buf.extend_from_slice(&data);
        // Every complete event in this chunk arrived now.
        while let Some(end) = find(&buf[scanned..], b"\n\n") {
            let event = &buf[scanned..scanned + end];
            if find(event, delta_marker).is_some() {
                arrivals.push(now);
            }
            scanned += end + 2;
        }
    }
    Ok(Timed {
        delta_arrivals: arrivals,
        total_ns: start.elapsed().as_nanos() as u64,
        body: buf,
    })
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub async fn run(args: StreamArgs) -> Result<Value> {
    let dialer = Arc::new(Dialer::new(args.target.clone())?);
    let rec = Arc::new(Mutex::new(Recorded::default()));
    let per_worker = args.streams.div_ceil(args.concurrency.max(1));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let dialer = dialer.clone();
        let rec = rec.clone();
        let warmup = args.warmup;
        let ask = Ask {
            model: args.model.clone(),
            events: args.events,
            paced: args.paced,
            text_triggers: args.text_triggers,
            chat: args.chat,
        };
        tasks.push(tokio::spawn(async move {
            let mut sender = match dialer.connect().await {
                Ok(s) => s,
                Err(e) => {
                    rec.lock().unwrap().errors.push(format!("{e:#}"));
                    return;
                }
            };
            for i in 0..warmup + per_worker {
                match one_stream(&mut sender, &dialer, &ask).await {
                    Ok(t) if i >= warmup => {
                        let mut r = rec.lock().unwrap();
                        if let Some(first) = t.delta_arrivals.first() {
                            r.ttft.push(*first);
                        }
                        r.gaps.extend(t.delta_arrivals.windows(2).map(|w| w[1] - w[0]));
                        r.total.push(t.total_ns);
                        r.deltas_per_stream.push(t.delta_arrivals.len());
                        if find(&t.body, PROMPT_EMAIL.as_bytes()).is_some() {
                            r.email_back += 1;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        rec.lock().unwrap().errors.push(format!("{e:#}"));
                        // The connection may be unusable; start a new one.
                        match dialer.connect().await {
                            Ok(s) => sender = s,
                            Err(_) => return,
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let r = std::mem::take(&mut *rec.lock().unwrap());
    let (mut ttft, mut gaps, mut total) = (histogram(), histogram(), histogram());
    for v in &r.ttft {
        ttft.record(*v.max(&1))?;
    }
    for v in &r.gaps {
        gaps.record(*v.max(&1))?;
    }
    for v in &r.total {
        total.record(*v.max(&1))?;
    }
    let min_deltas = r.deltas_per_stream.iter().min().copied().unwrap_or(0);
    Ok(json!({
        "streams": r.total.len(),
        "errors": r.errors.len(),
        "first_error": r.errors.first(),
        "deltas_min": min_deltas,
        "email_restored": r.email_back,
        "ttft_us": summary_us(&ttft),
        "inter_event_us": summary_us(&gaps),
        "stream_total_us": summary_us(&total),
    }))
}
