//! The budget stage alone: a 1 KB Messages request metered and settled,
//! once with no `[quota]` limits and once with ten that all apply to it
//! (every scope and measure, calendar and rolling windows).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use promptwall_audit::PriceTable;
use promptwall_proxy::clock::SystemClock;
use promptwall_proxy::exchange::{Client, Exchange, Listener, Target, Traffic};
use promptwall_proxy::quota::{LimitConfig, Measure, Per, Quota, QuotaConfig, WindowUnit};
use promptwall_proxy::stages::budget::Budget;
use promptwall_proxy::stages::route::Routing;
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct BudgetArgs {
    /// Requests metered per configuration.
    #[arg(long, default_value_t = 200_000)]
    pub iters: u32,
}

fn limit(name: &str, per: Per, measure: Measure, window: Option<WindowUnit>, rolling: bool) -> LimitConfig {
    // Never reached: every request is admitted and settled.
    LimitConfig {
        rolling,
        ..LimitConfig::new(name, per, measure, 1e15, window)
    }
}

fn ten() -> Vec<LimitConfig> {
    use Measure::*;
    use WindowUnit::*;
    vec![
        limit("user-rpm", Per::User, Requests, Some(Minute), false),
        limit("user-concurrent", Per::User, Concurrent, None, false),
        limit("user-tokens-day", Per::User, Tokens, Some(Day), false),
        limit("tool-input-hour", Per::Tool, InputTokens, Some(Hour), true),
        limit("exe-output-day", Per::Executable, OutputTokens, Some(Day), false),
        limit("org-cost-month", Per::Org, CostUsd, Some(Month), false),
        limit("machine-rph", Per::Machine, Requests, Some(Hour), false),
        limit("container-tokens-day", Per::Container, Tokens, Some(Day), true),
        limit("user-cost-day", Per::User, CostUsd, Some(Day), true),
        limit("group-rpm", Per::Group, Requests, Some(Minute), false),
    ]
}

fn exchange() -> Exchange {
    let mut ex = Exchange::new(Listener::Explicit, Client::default());
    ex.traffic = Traffic::Api(promptwall_llm::ApiShape::ANTHROPIC_MESSAGES);
    ex.method = "POST".into();
    ex.client.tool = "claude-code".into();
    ex.client.identity = Some(promptwall_proxy::origin::ClientIdentity {
        user: Some("alice".into()),
        uid: Some(1000),
        gid: Some(1000),
        exe: Some("/usr/bin/node".into()),
        ..Default::default()
    });
    ex.usage.input_tokens = Some(300);
    ex.usage.output_tokens = Some(100);
    ex
}

fn ns_per_request(limits: Vec<LimitConfig>, iters: u32) -> Result<f64> {
    let quota = Quota::new(
        &QuotaConfig {
            limits,
            ..QuotaConfig::default()
        },
        Arc::new(SystemClock),
    )
    .map_err(anyhow::Error::msg)?;
    let prices = Arc::new(PriceTable::builtin().clone());
    let budget = Budget {
        quota: &quota,
        prices: &prices,
        machine: "bench",
    };
    let text = "x".repeat(900);
    let body = Bytes::from(
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
               "messages": [{"role": "user", "content": text}]})
        .to_string(),
    );
    let routing = Routing::Direct(Target {
        provider: "anthropic".into(),
        uri: "https://api.anthropic.com/v1/messages".parse()?,
        host: "api.anthropic.com".into(),
        dial: None,
    });
    let mut ex = exchange();
    let mut run = |n: u32| -> Result<()> {
        for _ in 0..n {
            let metered = budget
                .meter(&mut ex, Some((&routing, &body)))
                .map_err(|r| anyhow::anyhow!("refused: {}", r.message))?;
            metered.settle(&ex);
        }
        Ok(())
    };
    run(iters / 10)?;
    let start = Instant::now();
    run(iters)?;
    Ok(start.elapsed().as_nanos() as f64 / f64::from(iters))
}

pub fn run(args: BudgetArgs) -> Result<Value> {
    let none = ns_per_request(Vec::new(), args.iters)?;
    let ten = ns_per_request(ten(), args.iters)?;
    Ok(json!({
        "iters": args.iters,
        "no_limits_ns": none,
        "ten_limits_ns": ten,
        "added_ns": ten - none,
    }))
}
