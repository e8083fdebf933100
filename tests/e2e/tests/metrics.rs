//! Prometheus metrics end to end: `promptwall up` with `[listen]
//! admin_http`, requests through the explicit listener to the fake
//! provider, and a real Prometheus (Debian's package) scraping `/metrics`
//! every second. PromQL answers must equal what the audit rows say.

use std::time::Duration;

use promptwall_e2e::process::{curl, curl_status};
use promptwall_e2e::{start_fake, Agent, AgentConfig, Prometheus};
use serde_json::json;

fn aws_key() -> String {
    format!("AKIA{}", "Q3EGUX7MZPW5KD4N")
}

fn send_messages(agent: &Agent, text: &str, stream: bool) -> u16 {
    agent.send_messages("claude-sonnet-4-5", text, stream).status
}

fn send_chat(agent: &Agent, text: &str) -> u16 {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    curl_status(&[
        "-H",
        "content-type: application/json",
        "-H",
        "authorization: Bearer sk-proj-e2e-metrics-test-key",
        "-d",
        &body.to_string(),
        &format!("{}/chat/completions", agent.openai_base_url()),
    ])
    .0
}

#[test]
fn prometheus_scrapes_token_counts_equal_to_the_audit_and_genai_names() {
    let Some(prometheus) = Prometheus::binary() else { return };
    let fake = start_fake(false);
    let mut config = AgentConfig::explicit_to(&fake);
    config.admin_http = Some("127.0.0.1:0".parse().unwrap());
    let agent = Agent::start(&config);
    let admin = agent.admin_http.expect("the readiness line names the admin listener");

    // A known set: three Messages (one streamed, one with an email that is
    // redacted), two Chat Completions, one secret refused.
    assert_eq!(send_messages(&agent, "hello one", false), 200);
    assert_eq!(send_messages(&agent, "hello two, streamed", true), 200);
    assert_eq!(send_messages(&agent, "mail jane.roe@acme-corp.io about it", false), 200);
    assert_eq!(send_chat(&agent, "hello chat one"), 200);
    assert_eq!(send_chat(&agent, "hello chat two"), 200);
    assert_eq!(send_messages(&agent, &format!("my key is {}", aws_key()), false), 422);
    let rows = agent.wait_audit_rows(6);
    let input: i64 = rows.iter().filter_map(|r| r.input_tokens).sum();
    let output: i64 = rows.iter().filter_map(|r| r.output_tokens).sum();
    let anthropic_input: i64 = rows
        .iter()
        .filter(|r| r.provider.as_deref() == Some("anthropic"))
        .filter_map(|r| r.input_tokens)
        .sum();
    assert!(input > 0 && output > 0 && anthropic_input < input, "{rows:#?}");
    let blocked_findings: u64 = rows
        .iter()
        .filter(|r| r.verdict == "blocked")
        .filter_map(|r| r.rest.get("findings")?.as_object().cloned())
        .flat_map(|f| f.into_iter().filter_map(|(_, n)| n.as_u64()))
        .sum();
    assert!(blocked_findings > 0, "{rows:#?}");

    // The exposition itself: GenAI names, never the deprecated attribute,
    // never the refused secret.
    let text = curl(&[&format!("http://{admin}/metrics")]);
    text.expect_success("GET /metrics");
    let text = text.stdout;
    assert!(text.contains("gen_ai_client_token_usage_bucket{"), "{text}");
    assert!(text.contains("gen_ai_provider_name=\"anthropic\""), "{text}");
    assert!(
        text.contains("gen_ai_client_operation_time_to_first_chunk_seconds_count{"),
        "{text}"
    );
    assert!(!text.contains("gen_ai_system"), "{text}");
    assert!(!text.contains(&aws_key()) && !text.contains("jane.roe"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");

    let prom = Prometheus::scrape(&prometheus, admin);
    let within = Duration::from_secs(30);
    let expect = |promql: &str, want: f64| {
        let got = prom.wait_for_value(promql, want, within);
        assert_eq!(got, Some(want), "{promql}\nprometheus log:\n{}", prom.log());
    };
    expect("up{job=\"promptwall\"}", 1.0);
    expect("sum(promptwall_tokens_total{type=\"input\"})", input as f64);
    expect("sum(promptwall_tokens_total{type=\"output\"})", output as f64);
    expect(
        "sum(gen_ai_client_token_usage_sum{gen_ai_token_type=\"input\",gen_ai_provider_name=\"anthropic\"})",
        anthropic_input as f64,
    );
    expect("sum(promptwall_requests_total)", 6.0);
    expect("sum(promptwall_requests_total{verdict=\"blocked\"})", 1.0);
    expect("sum(promptwall_requests_total{verdict=\"redacted\"})", 1.0);
    expect(
        "sum(promptwall_findings_total{action=\"blocked\"})",
        blocked_findings as f64,
    );
    expect(
        "sum(gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"chat\"})",
        6.0,
    );
    expect("sum(gen_ai_client_operation_time_to_first_chunk_seconds_count)", 1.0);
    expect("sum(promptwall_audit_write_seconds_count)", 6.0);
    expect("promptwall_audit_healthy", 1.0);

    // Only /metrics is served, and only to GET.
    let (status, _) = curl_status(&[&format!("http://{admin}/")]);
    assert_eq!(status, 404);
    let (status, _) = curl_status(&["-X", "POST", &format!("http://{admin}/metrics")]);
    assert_eq!(status, 405);
}
