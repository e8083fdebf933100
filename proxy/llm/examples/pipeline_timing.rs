//! Rough timing of the request pipeline's own work on a 1 MB Claude-Code-style
//! transcript (scanner: a no-op, so detector cost is excluded), first turn
//! vs. the next turn (+5 KB). Run: cargo run --release -p promptwall-llm --example pipeline_timing
use std::time::Instant;

use promptwall_llm::{ApiShape, Hit, Pipeline, RequestContext};

fn transcript(turns: usize) -> String {
    let block = "fn main() { println!(\"hello\"); } // some code and prose, user@example.com ".repeat(70);
    let mut messages = Vec::new();
    for i in 0..turns {
        messages.push(serde_json::json!({"role":"user","content":[{"type":"tool_result","tool_use_id":format!("t{i}"),"content":[{"type":"text","text":format!("{block}{i}")}]}]}));
        messages.push(serde_json::json!({"role":"assistant","content":[{"type":"text","text":format!("ok {i}")},{"type":"tool_use","id":format!("t{}", i+1),"name":"Bash","input":{"command":format!("cat file{i}.rs")}}]}));
    }
    serde_json::json!({"model":"claude","system":[{"type":"text","text":"system prompt ".repeat(1000)}],"messages":messages}).to_string()
}

fn main() {
    let pipeline = Pipeline::new(|_: &str| Vec::<Hit>::new(), Default::default());
    let ctx = RequestContext { fingerprint_salt: "s" };
    let turns = 190;
    let first = transcript(turns);
    let next = transcript(turns + 1);
    println!("first {} bytes, next {} bytes", first.len(), next.len());
    for round in 0..3 {
        let t = Instant::now();
        pipeline.inspect_request(ApiShape::AnthropicMessages, first.as_bytes(), &ctx);
        let a = t.elapsed();
        let t = Instant::now();
        pipeline.inspect_request(ApiShape::AnthropicMessages, next.as_bytes(), &ctx);
        let b = t.elapsed();
        println!("round {round}: first turn {a:?}, next turn {b:?}");
    }
}
