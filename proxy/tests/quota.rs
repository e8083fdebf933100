//! Limits by identity through the explicit listener against the fake
//! provider: refusals in each client's envelope before anything is sent,
//! the headers SDKs read, and reservations settled with real usage.

mod common;

use common::*;
use promptwall_proxy::quota::{LimitConfig, Measure, Per, QuotaConfig, WindowUnit};
use serde_json::{json, Value};

fn limit(name: &str, measure: Measure, max: f64, window: Option<WindowUnit>) -> LimitConfig {
    LimitConfig::new(name, Per::Org, measure, max, window)
}

async fn with_limits(limits: Vec<LimitConfig>) -> Harness {
    harness_with(|config, _, _| {
        config.quota = QuotaConfig {
            limits,
            ..QuotaConfig::default()
        }
    })
    .await
}

fn messages(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}]
    })
}

#[tokio::test]
async fn over_a_daily_request_limit_an_anthropic_client_gets_a_429_it_will_not_retry_and_the_provider_sees_nothing() {
    let h = with_limits(vec![limit("org-daily", Measure::Requests, 1.0, Some(WindowUnit::Day))]).await;
    let (status, headers, body) = post(&h, "/v1/messages", ANTHROPIC, &messages(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-ratelimit-limit-requests"], "1");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");

    let (status, headers, body) = post(&h, "/v1/messages", ANTHROPIC, &messages(false)).await;
    assert_eq!(status, 429, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"org-daily\"") && message.contains("retry in"),
        "{message}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(headers["x-should-retry"], "false");
    assert_eq!(headers["x-promptwall-limit"], "org-daily");
    assert_eq!(
        h.fake.recorded_for("/v1/messages").len(),
        1,
        "the refused request never left"
    );

    let rows = rows_settled(&h, 2).await;
    assert_eq!(rows[1].status, 429);
    assert_eq!(rows[1].verdict, "limited");
    assert!(rows[1].error.as_deref().unwrap().contains("org-daily"));
}

#[tokio::test]
async fn an_openai_client_over_a_minute_limit_gets_its_own_envelope_and_a_retry_after_its_sdk_honours() {
    let h = with_limits(vec![limit("rpm", Measure::Requests, 1.0, Some(WindowUnit::Minute))]).await;
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let auth = &[("authorization", "Bearer sk-client")];
    assert_eq!(post(&h, "/v1/chat/completions", auth, &chat).await.0, 200);
    let (status, headers, body) = post(&h, "/v1/chat/completions", auth, &chat).await;
    assert_eq!(status, 429, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("\"rpm\""));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        !headers.contains_key("x-should-retry"),
        "within a minute the SDK waits and retries"
    );
}

#[tokio::test]
async fn a_streamed_answer_settles_its_reservation_with_the_tokens_the_provider_reported() {
    let h = with_limits(vec![limit(
        "tokens",
        Measure::Tokens,
        1_000_000.0,
        Some(WindowUnit::Day),
    )])
    .await;
    let (status, headers, body) = post(&h, "/v1/messages", ANTHROPIC, &messages(true)).await;
    assert_eq!(status, 200, "{body}");
    let remaining_while_reserved: f64 = headers["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        remaining_while_reserved <= 1_000_000.0 - 256.0,
        "max_tokens is reserved"
    );
    let rows = rows_settled(&h, 1).await;
    let reported = rows[0].input_tokens.unwrap()
        + rows[0].output_tokens.unwrap()
        + rows[0].cache_read_tokens.unwrap_or(0)
        + rows[0].cache_write_tokens.unwrap_or(0);
    assert!(reported > 0);
    let standing = h.running.proxy.quota.standings().remove(0);
    assert_eq!(standing.used, reported as f64);
    assert_eq!(standing.reserved, 0.0, "the reservation is gone once the answer ended");
}

#[tokio::test]
async fn a_limit_on_another_tool_leaves_this_client_alone() {
    let mut l = limit("aider-off", Measure::Requests, 0.0, Some(WindowUnit::Day));
    l.tools = vec!["aider".into()];
    let h = with_limits(vec![l]).await;
    let (status, headers, _) = post(&h, "/v1/messages", ANTHROPIC, &messages(false)).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("x-ratelimit-limit-requests"));
}
