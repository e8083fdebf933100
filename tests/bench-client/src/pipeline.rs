//! The inspection pipeline alone (no I/O): detectors from the default
//! `[pipeline]` policy, on the generated transcript. "Cold" is a fresh
//! pipeline (empty scan cache) seeing the whole history; "next turn" is the
//! same pipeline seeing the history plus one new tool call, as a coding
//! agent resends its growing transcript every turn, from the same owner
//! (only the new part is inspected).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use promptwall_llm::detect::{Detector, PipelineConfig};
use promptwall_llm::{
    ApiShape, ConversationOwner, Pipeline, PipelineSettings, RequestContext, RequestOutcome, Scanner,
};
use serde_json::{json, Value};

use crate::transcript::generate;

#[derive(clap::Args, Debug)]
pub struct PipelineArgs {
    #[arg(long, default_value_t = 1 << 20)]
    pub bytes: usize,
    #[arg(long, default_value_t = 5 * 1024)]
    pub next_turn_bytes: usize,
    /// Measured cold/next-turn pairs.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    json!({"min": v[0], "p50": q(0.5), "p90": q(0.9), "max": v[v.len() - 1], "n": v.len()})
}

pub fn run(args: PipelineArgs) -> Result<Value> {
    let t = generate(args.bytes, args.next_turn_bytes);
    let detector = Arc::new(Detector::new(&PipelineConfig::default()).context("default detectors must compile")?);
    // As the proxy sees an agent's requests: one owner (its API key), so
    // the next turn extends the remembered first one.
    let ctx = RequestContext {
        fingerprint_salt: "bench",
        owner: Some(ConversationOwner::new(None, [("x-api-key", &b"bench"[..])])),
        ..Default::default()
    };
    let (mut cold, mut next) = (Vec::new(), Vec::new());
    let mut verdicts = Vec::new();
    // One unmeasured pair warms the allocator and lazy statics.
    for i in 0..args.iters + 1 {
        let d = detector.clone();
        let pipeline = Pipeline::new(move |text: &str| Scanner::scan(&*d, text), PipelineSettings::default());
        let start = Instant::now();
        let a = pipeline.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &t.first, &ctx);
        let cold_t = start.elapsed();
        let start = Instant::now();
        let b = pipeline.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &t.next, &ctx);
        let next_t = start.elapsed();
        for outcome in [&a, &b] {
            if !matches!(outcome, RequestOutcome::Forward { .. }) {
                bail!(
                    "the generated transcript was not forwarded ({:?}); the generator must avoid credentials",
                    outcome.report()
                );
            }
        }
        if i == 0 {
            verdicts.push(json!({"verdict": a.report().verdict.as_str(), "counts": a.report().counts}));
            continue;
        }
        cold.push(ms(cold_t));
        next.push(ms(next_t));
    }
    Ok(json!({
        "first_bytes": t.first.len(),
        "next_bytes": t.next.len(),
        "report": verdicts[0],
        "cold_ms": stats(cold),
        "next_turn_ms": stats(next),
    }))
}
