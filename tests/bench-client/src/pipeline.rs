//! The inspection pipeline alone (no I/O): detectors from the default
//! `[pipeline]` policy, on the generated transcript. "Cold" is a fresh
//! pipeline (empty scan cache) seeing the whole history; "next turn" is the
//! same pipeline seeing the history plus one new tool call, as a coding
//! agent resends its growing transcript every turn, from the same owner
//! (only the new part is inspected).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use promptwall_llm::detect::{Action, Detector, PipelineConfig};
use promptwall_llm::{
    ApiShape, ConversationOwner, Pipeline, PipelineSettings, RequestContext, RequestOutcome, Scanner,
};
use serde_json::{json, Value};

use crate::transcript::{generate, Transcript};

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

/// The kinds added by issue 17 (names, postal addresses, passports,
/// national ids): the
/// pipeline is timed with and without them, beside each other.
const NEW_PII: [&str; 4] = ["name", "address", "passport", "national_id"];

fn policy_without_new_pii() -> PipelineConfig {
    let mut p = PipelineConfig::default();
    for k in NEW_PII {
        p.actions.insert(k.into(), Action::Off);
    }
    p
}

/// Only `kind` on: its detector's own cost.
fn policy_only(kind: &str) -> PipelineConfig {
    let mut p = PipelineConfig {
        secrets: Action::Off,
        pii: Action::Off,
        ..PipelineConfig::default()
    };
    p.actions.insert(kind.into(), Action::Reversible);
    p
}

/// Cold and next-turn times of the pipeline with `policy`'s detectors.
fn turns(t: &Transcript, policy: &PipelineConfig, iters: usize) -> Result<Value> {
    let detector = Arc::new(Detector::new(policy).context("bench detectors must compile")?);
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
    for i in 0..iters + 1 {
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
        "report": verdicts[0],
        "cold_ms": stats(cold),
        "next_turn_ms": stats(next),
    }))
}

/// Microseconds to scan 10 KB of the transcript's text with `policy`'s
/// detectors (what a turn's new text costs).
fn scan_10kb(text: &str, policy: &PipelineConfig, iters: usize) -> Result<Value> {
    let detector = Detector::new(policy).context("bench detectors must compile")?;
    let mut v = Vec::new();
    let mut findings = 0;
    for i in 0..iters + 1 {
        let start = Instant::now();
        let hits = detector.scan(text);
        let took = start.elapsed();
        findings = hits.len();
        if i > 0 {
            v.push(took.as_secs_f64() * 1e6);
        }
    }
    let mut out = stats(v);
    out["findings"] = json!(findings);
    Ok(out)
}

/// 10 KB from the middle of the transcript's texts, cut at a char boundary.
fn ten_kb_of_text(body: &[u8]) -> Result<String> {
    let v: Value = serde_json::from_slice(body).context("the transcript is JSON")?;
    let mut all = String::new();
    for m in v["messages"].as_array().into_iter().flatten() {
        for block in m["content"].as_array().into_iter().flatten() {
            for key in ["text", "content"] {
                if let Some(s) = block[key].as_str() {
                    all.push_str(s);
                    all.push('\n');
                }
            }
        }
    }
    let from = all.floor_char_boundary(all.len() / 2);
    let to = all.floor_char_boundary((from + 10 * 1024).min(all.len()));
    Ok(all[from..to].to_string())
}

pub fn run(args: PipelineArgs) -> Result<Value> {
    let t = generate(args.bytes, args.next_turn_bytes);
    let with_new = turns(&t, &PipelineConfig::default(), args.iters)?;
    let without_new = turns(&t, &policy_without_new_pii(), args.iters)?;
    let text = ten_kb_of_text(&t.first)?;
    let scan_iters = args.iters * 10;
    let mut per_detector = serde_json::Map::new();
    per_detector.insert("all".into(), scan_10kb(&text, &PipelineConfig::default(), scan_iters)?);
    per_detector.insert(
        "without_name_address_passport".into(),
        scan_10kb(&text, &policy_without_new_pii(), scan_iters)?,
    );
    for k in NEW_PII {
        per_detector.insert(k.into(), scan_10kb(&text, &policy_only(k), scan_iters)?);
    }
    Ok(json!({
        "first_bytes": t.first.len(),
        "next_bytes": t.next.len(),
        "report": with_new["report"],
        "cold_ms": with_new["cold_ms"],
        "next_turn_ms": with_new["next_turn_ms"],
        "without_new_pii": without_new,
        "scan_10kb_bytes": text.len(),
        "scan_10kb_us": per_detector,
    }))
}
