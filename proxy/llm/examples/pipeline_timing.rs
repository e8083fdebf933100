//! Timing (and a profiling target) for the request pipeline with the default
//! detectors on two request bodies: a first turn (cold scan cache) and the
//! next turn (same history plus one more turn). Generate the bodies with
//! `bench-client transcript --out DIR`, then:
//!   cargo run --release -p promptwall-llm --example pipeline_timing -- DIR/first.json DIR/next.json [cold|next|both] [rounds]
//! `cold` / `next` repeat only that phase (for perf / callgrind); `parse`
//! times the JSON parse of the next-turn body alone; `dump` prints the
//! forwarded next-turn body.
use std::time::Instant;

use promptwall_llm::detect::{Detector, PipelineConfig};
use promptwall_llm::{ApiShape, Pipeline, PipelineSettings, RequestContext, Scanner};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: pipeline_timing FIRST.json NEXT.json [cold|next|both] [rounds]");
        std::process::exit(2);
    }
    let first = std::fs::read(&args[1]).expect("read the first-turn body");
    let next = std::fs::read(&args[2]).expect("read the next-turn body");
    let phase = args.get(3).map(String::as_str).unwrap_or("both");
    let rounds: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10);
    let detector = std::sync::Arc::new(Detector::new(&PipelineConfig::default()).expect("default detectors"));
    let ctx = RequestContext {
        fingerprint_salt: "s",
        ..Default::default()
    };
    let make = || {
        let d = detector.clone();
        Pipeline::new(move |t: &str| Scanner::scan(&*d, t), PipelineSettings::default())
    };
    let warm = make();
    warm.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &first, &ctx);
    let (mut cold, mut next_turn) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        match phase {
            "cold" => {
                let p = make();
                let t = Instant::now();
                p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &first, &ctx);
                cold.push(t.elapsed());
            }
            "dump" => {
                // The forwarded next-turn body, for comparing builds.
                use std::io::Write;
                if let promptwall_llm::RequestOutcome::Forward { body: Some(b), .. } =
                    warm.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &next, &ctx)
                {
                    std::io::stdout().write_all(&b).expect("stdout");
                }
                return;
            }
            "parse" => {
                // The JSON parse alone (every turn pays it).
                let text = std::str::from_utf8(&next).expect("UTF-8 body");
                let t = Instant::now();
                let root = promptwall_llm::json::parse(text).expect("valid JSON");
                next_turn.push(t.elapsed());
                drop(root);
            }
            "next" => {
                let t = Instant::now();
                warm.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &next, &ctx);
                next_turn.push(t.elapsed());
            }
            _ => {
                let p = make();
                let t = Instant::now();
                p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &first, &ctx);
                cold.push(t.elapsed());
                let t = Instant::now();
                p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, &next, &ctx);
                next_turn.push(t.elapsed());
            }
        }
    }
    for (name, mut v) in [("cold", cold), ("next turn", next_turn)] {
        if v.is_empty() {
            continue;
        }
        v.sort();
        println!(
            "{name}: min {:?}, median {:?} ({} rounds)",
            v[0],
            v[v.len() / 2],
            v.len()
        );
    }
}
