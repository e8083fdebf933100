//! Routing through the explicit listener against the fake provider (plain
//! HTTP): rules, translation both ways with redaction and restoration,
//! credentials across providers, failover and cooldowns, audit rows.

mod common;

use std::time::Duration;

use common::*;
use promptwall_proxy::routing::config::RouteConfig;
use promptwall_proxy::routing::{RoutingConfig, UpstreamKind};
use serde_json::{json, Value};

/// An org Anthropic account on the fake (`claude/org`) and one rule to it.
fn org_claude(base: &str, keys: &std::path::Path, route: RouteConfig) -> RoutingConfig {
    let mut r = RoutingConfig::with_defaults();
    r.upstreams.insert(
        "claude".into(),
        upstream(
            UpstreamKind::Anthropic,
            base.to_string(),
            vec![account(keys, "org", "sk-ant-org")],
        ),
    );
    r.routes.push(route);
    r
}

/// Claude models go to the fake spoken to as an OpenAI-compatible (Chat) server.
fn claude_to_chat(base: &str, keys: &std::path::Path) -> RoutingConfig {
    let mut r = RoutingConfig::with_defaults();
    r.upstreams.insert(
        "cheap".into(),
        upstream(
            UpstreamKind::OpenaiCompatible,
            format!("{base}/v1"),
            vec![account(keys, "main", "sk-org-cheap")],
        ),
    );
    r.routes.push(RouteConfig {
        name: "claude-to-cheap".into(),
        models: vec!["claude-*".into()],
        targets: vec!["cheap:gpt-4o-mini".into()],
        ..RouteConfig::default()
    });
    r
}

#[tokio::test]
async fn a_messages_request_routed_to_a_chat_upstream_is_answered_in_anthropic_format_with_the_email_restored() {
    let h = harness(claude_to_chat).await;
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Mail ann.lee@example.org about the invoice"}]
    });
    let (status, headers, answer) = post(&h, "/v1/messages", ANTHROPIC, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(headers["content-type"].to_str().unwrap().contains("json"));
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["model"], "claude-sonnet-4-5",
        "the client sees the model it asked for"
    );
    assert!(anthropic_text(&answer).contains("ann.lee@example.org"), "{answer}");
    let seen = h.fake.recorded_for("/v1/chat/completions");
    assert_eq!(seen.len(), 1, "the Chat upstream got the request");
    let sent = seen[0].json.clone().unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"][0]["role"], "system");
    let wire = String::from_utf8_lossy(&seen[0].body);
    assert!(
        !wire.contains("ann.lee@example.org") && wire.contains("[[EMAIL_"),
        "{wire}"
    );
    assert_eq!(header(&seen[0], "authorization"), Some("Bearer sk-org-cheap"));
    assert_eq!(header(&seen[0], "x-api-key"), None, "the client's key stays home");
    assert_eq!(header(&seen[0], "anthropic-version"), None);
    let rows = rows_settled(&h, 1).await;
    assert_eq!(rows[0].status, 200);
    assert_eq!(rows[0].verdict, "redacted");
    // The price family and model of what was asked upstream, for cost.
    assert_eq!(rows[0].provider.as_deref(), Some("openai"));
    assert_eq!(rows[0].model.as_deref(), Some("gpt-4o-mini"));
    assert!(rows[0].input_tokens.is_some(), "usage crossed the translation");
    assert_eq!(
        (rows[0].route.as_str(), rows[0].upstream.as_str()),
        ("claude-to-cheap", "cheap/main")
    );
    let detail = rows[0].routing_detail().unwrap().unwrap();
    assert_eq!(detail.requested_model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(detail.upstream_model.as_deref(), Some("gpt-4o-mini"));
    let t = detail.translation.unwrap();
    assert_eq!((t.from.as_str(), t.to.as_str()), ("anthropic.messages", "openai.chat"));
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.attempts[0].status, Some(200));
}

#[tokio::test]
async fn a_streamed_messages_request_routed_to_a_chat_upstream_streams_well_formed_anthropic_events() {
    let h = harness(claude_to_chat).await;
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
        "messages": [{"role": "user", "content": "Call bob@corp.example now"}]
    });
    let (status, headers, answer) = post(&h, "/v1/messages", ANTHROPIC, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(headers["content-type"].to_str().unwrap().contains("event-stream"));
    let types: Vec<String> = sse_data(&answer)
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("message_start"), "{answer}");
    assert_eq!(types.last().map(String::as_str), Some("message_stop"), "{answer}");
    assert!(types.iter().any(|t| t == "content_block_start") && types.iter().any(|t| t == "content_block_stop"));
    assert!(anthropic_text(&answer).contains("bob@corp.example"), "{answer}");
    let seen = h.fake.recorded_for("/v1/chat/completions");
    let sent = seen[0].json.clone().unwrap();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_tool_round_crosses_the_translation_both_ways() {
    let h = harness(claude_to_chat).await;
    let first = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256,
        "tools": [{"name": "bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "TOOLTEST please"}]
    });
    let (status, _, answer) = post(&h, "/v1/messages", ANTHROPIC, &first).await;
    assert_eq!(status, 200, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["stop_reason"], "tool_use", "{answer}");
    let call = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("a tool_use block")
        .clone();
    assert!(call["input"].is_object());
    let second = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256,
        "tools": first["tools"],
        "messages": [
            {"role": "user", "content": "TOOLTEST please"},
            {"role": "assistant", "content": [call.clone()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "hello-from-tool"}]}
        ]
    });
    let (status, _, answer) = post(&h, "/v1/messages", ANTHROPIC, &second).await;
    assert_eq!(status, 200, "{answer}");
    assert!(anthropic_text(&answer).contains("hello-from-tool"), "{answer}");
    let seen = h.fake.recorded_for("/v1/chat/completions");
    let sent = seen[1].json.clone().unwrap();
    let msgs = sent["messages"].as_array().unwrap();
    let assistant = msgs.iter().find(|m| m["role"] == "assistant").unwrap();
    let tool = msgs.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], assistant["tool_calls"][0]["id"], "{sent}");
}

#[tokio::test]
async fn a_responses_request_routed_to_an_anthropic_upstream_streams_the_full_responses_lifecycle() {
    let h = harness(|base, keys| {
        org_claude(
            base,
            keys,
            RouteConfig {
                name: "codex-to-claude".into(),
                shapes: vec!["openai.responses".into()],
                targets: vec!["claude:claude-sonnet-4-5".into()],
                ..RouteConfig::default()
            },
        )
    })
    .await;
    let body = json!({
        "model": "gpt-5-codex", "stream": true, "store": false,
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "write to eve@example.net"}]}]
    });
    let (status, _, answer) = post(
        &h,
        "/v1/responses",
        &[("authorization", "Bearer sk-proj-client")],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let events = sse_data(&answer);
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"response.created"), "{answer}");
    assert_eq!(types.last(), Some(&"response.completed"), "{answer}");
    let done = events.last().unwrap();
    assert_eq!(done["response"]["model"], "gpt-5-codex");
    assert!(done["response"]["output"].as_array().is_some_and(|o| !o.is_empty()));
    assert!(
        answer.contains("eve@example.net"),
        "restored in the client's stream: {answer}"
    );
    let seen = h.fake.recorded_for("/v1/messages");
    assert_eq!(seen.len(), 1);
    assert_eq!(header(&seen[0], "x-api-key"), Some("sk-ant-org"));
    assert_eq!(header(&seen[0], "authorization"), None);
    let sent = seen[0].json.clone().unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert!(!String::from_utf8_lossy(&seen[0].body).contains("eve@example.net"));
}

#[tokio::test]
async fn a_subscription_oauth_token_never_reaches_another_providers_upstream() {
    let h = harness(claude_to_chat).await;
    let body = json!({
        "model": "claude-opus-4-1", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]
    });
    let oauth = [
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "oauth-2025-04-20"),
        ("authorization", "Bearer sk-ant-oat01-SUBSCRIPTIONTOKEN"),
        ("cookie", "sessionKey=sk-ant-sid01-COOKIE"),
        ("x-claude-code-session-id", "s-1"),
    ];
    let (status, _, answer) = post(&h, "/v1/messages", &oauth, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(h.fake.recorded_for("/v1/chat/completions").len(), 1);
    for r in h.fake.recorded() {
        let all = format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body));
        assert!(!all.contains("sk-ant-oat01") && !all.contains("sk-ant-sid01"), "{all}");
        assert!(!all.contains("oauth-2025"), "no Anthropic option leaks either: {all}");
    }
}

#[tokio::test]
async fn small_prompts_go_to_the_cheaper_model_and_large_ones_keep_theirs() {
    let h = harness(|_, _| {
        let mut r = RoutingConfig::with_defaults();
        r.routes.push(RouteConfig {
            name: "small-to-haiku".into(),
            models: vec!["claude-*".into()],
            max_input_tokens: Some(4000),
            targets: vec!["client:claude-haiku-4-5".into()],
            ..RouteConfig::default()
        });
        r
    })
    .await;
    let small = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "short question"}]});
    let large_text = "lorem ipsum dolor ".repeat(1200);
    let large =
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": large_text}]});
    assert_eq!(post(&h, "/v1/messages", ANTHROPIC, &small).await.0, 200);
    assert_eq!(post(&h, "/v1/messages", ANTHROPIC, &large).await.0, 200);
    let seen = h.fake.recorded_for("/v1/messages");
    let models: Vec<String> = seen
        .iter()
        .map(|r| r.json.as_ref().unwrap()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models, ["claude-haiku-4-5", "claude-sonnet-4-5"]);
    assert_eq!(
        header(&seen[0], "x-api-key"),
        Some("sk-ant-client-key"),
        "same provider: the client's key"
    );
    let rows = rows_settled(&h, 2).await;
    assert_eq!(rows[0].provider.as_deref(), Some("anthropic"));
    let routes: Vec<&str> = rows.iter().map(|r| r.route.as_str()).collect();
    assert_eq!(routes, ["small-to-haiku", ""], "the large one matched no rule");
    let models: Vec<Option<&str>> = rows.iter().map(|r| r.model.as_deref()).collect();
    assert_eq!(models, [Some("claude-haiku-4-5"), Some("claude-sonnet-4-5")]);
}

/// Two accounts of one upstream; the first is rate limited for 30 s.
fn failover(base: &str, keys: &std::path::Path) -> RoutingConfig {
    let mut r = RoutingConfig::with_defaults();
    r.upstreams.insert(
        "pool".into(),
        upstream(
            UpstreamKind::OpenaiCompatible,
            format!("{base}/v1"),
            vec![
                account(keys, "first", "sk-FAKESTATUS429-FAKERETRY30"),
                account(keys, "second", "sk-good"),
            ],
        ),
    );
    r.routes.push(RouteConfig {
        name: "pooled".into(),
        models: vec!["gpt-*".into()],
        targets: vec!["pool".into()],
        ..RouteConfig::default()
    });
    r
}

#[tokio::test]
async fn a_rate_limited_account_is_skipped_within_the_same_call_and_not_tried_again_during_its_cooldown() {
    let h = harness(failover).await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]});
    let auth = [("authorization", "Bearer sk-client")];
    let (status, _, answer) = post(&h, "/v1/chat/completions", &auth, &body).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _, _) = post(&h, "/v1/chat/completions", &auth, &body).await;
    assert_eq!(status, 200);
    let keys: Vec<String> = h
        .fake
        .recorded_for("/v1/chat/completions")
        .iter()
        .map(|r| header(r, "authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "Bearer sk-FAKESTATUS429-FAKERETRY30",
            "Bearer sk-good",
            "Bearer sk-good"
        ]
    );
    let rows = rows_settled(&h, 2).await;
    let first = rows[0].routing_detail().unwrap().unwrap();
    let statuses: Vec<Option<u16>> = first.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
    assert!(
        first.attempts[0].outcome.contains("cooling 30 s"),
        "{:?}",
        first.attempts[0]
    );
    assert_eq!(rows[0].upstream, "pool/second");
    let second = rows[1].routing_detail().unwrap().unwrap();
    assert_eq!(second.attempts.len(), 1, "the cooling account was left out");
}

#[tokio::test]
async fn with_every_account_down_the_client_gets_a_429_in_its_format_with_a_retry_after() {
    let h = harness(|base, keys| {
        let mut r = failover(base, keys);
        let pool = r.upstreams.get_mut("pool").unwrap();
        pool.accounts.truncate(1);
        r
    })
    .await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]});
    let auth = [("authorization", "Bearer sk-client")];
    let (status, headers, answer) = post(&h, "/v1/chat/completions", &auth, &body).await;
    assert_eq!(status, 429, "the provider's own 429 on the last candidate: {answer}");
    assert_eq!(headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("30"));
    let (status, headers, answer) = post(&h, "/v1/chat/completions", &auth, &body).await;
    assert_eq!(status, 429, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("pooled"), "{answer}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((28..=30).contains(&wait), "{wait}");
    assert_eq!(h.fake.recorded().len(), 1, "the cooling account is not asked again");
    let rows = rows_settled(&h, 2).await;
    assert_eq!(rows[1].status, 429);
}

#[tokio::test]
async fn count_tokens_routed_away_from_anthropic_is_answered_locally_and_nothing_is_sent() {
    let h = harness(claude_to_chat).await;
    let body = json!({
        "model": "claude-sonnet-4-5",
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "How many tokens is this sentence, roughly?"}]
    });
    let (status, _, answer) = post(&h, "/v1/messages/count_tokens?beta=true", ANTHROPIC, &body).await;
    assert_eq!(status, 200, "{answer}");
    let n = serde_json::from_str::<Value>(&answer).unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!((10..40).contains(&n), "{n}");
    assert!(h.fake.recorded().is_empty(), "a completion was not run to count");
}

#[tokio::test]
async fn a_websocket_upgrade_a_route_may_apply_to_is_declined_so_codex_falls_back_to_routed_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness(|base, keys| {
        org_claude(
            base,
            keys,
            RouteConfig {
                name: "codex-to-claude".into(),
                shapes: vec!["openai.responses".into()],
                targets: vec!["claude:claude-sonnet-4-5".into()],
                ..RouteConfig::default()
            },
        )
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(h.proxy).await.unwrap();
    s.write_all(
        b"GET /v1/responses HTTP/1.1\r\nhost: api.openai.com\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
          sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer sk-proj-x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&out[..n]);
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(head.contains("codex-to-claude"), "{head}");
    assert!(h.fake.recorded().is_empty(), "nothing reached a provider");
    let rows = rows_settled(&h, 1).await;
    assert_eq!(rows[0].status, 426);
}

#[tokio::test]
async fn the_org_key_refused_upstream_is_a_502_that_never_quotes_the_key_or_asks_the_client_to_sign_in() {
    let h = harness(|base, keys| {
        let mut r = RoutingConfig::with_defaults();
        r.upstreams.insert(
            "cheap".into(),
            upstream(
                UpstreamKind::OpenaiCompatible,
                format!("{base}/v1"),
                vec![account(keys, "main", "sk-FAKESTATUS401-orgsecret")],
            ),
        );
        r.routes.push(RouteConfig {
            name: "claude-to-cheap".into(),
            models: vec!["claude-*".into()],
            targets: vec!["cheap:gpt-4o-mini".into()],
            ..RouteConfig::default()
        });
        r
    })
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, answer) = post(&h, "/v1/messages", ANTHROPIC, &body).await;
    assert_eq!(status, 502, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["type"], "error", "the client's own envelope: {answer}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("administrator"),
        "{answer}"
    );
    assert!(!answer.contains("orgsecret") && !format!("{headers:?}").contains("orgsecret"));
    let rows = rows_settled(&h, 1).await;
    assert!(!format!("{:?}", rows[0]).contains("orgsecret"), "{:?}", rows[0]);
}

#[tokio::test]
async fn a_chat_stream_without_usage_requested_still_audits_the_upstreams_tokens() {
    let h = harness(|base, keys| {
        org_claude(
            base,
            keys,
            RouteConfig {
                name: "gpt-to-claude".into(),
                models: vec!["gpt-*".into()],
                targets: vec!["claude:claude-sonnet-4-5".into()],
                ..RouteConfig::default()
            },
        )
    })
    .await;
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hello there"}]});
    let (status, _, answer) = post(
        &h,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-client")],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("[DONE]"), "{answer}");
    assert!(
        !answer.contains("\"usage\":{"),
        "the client did not ask for usage: {answer}"
    );
    let seen = h.fake.recorded_for("/v1/messages");
    let reported = seen[0].reply_usage.expect("the fake reported usage");
    let rows = rows_settled(&h, 1).await;
    assert_eq!(
        rows[0].input_tokens,
        Some(reported.input_tokens as i64),
        "{:?}",
        rows[0]
    );
    assert_eq!(rows[0].output_tokens, Some(reported.output_tokens as i64));
    assert_eq!(rows[0].provider.as_deref(), Some("anthropic"));
}

#[tokio::test]
async fn betas_the_client_relies_on_reach_an_org_anthropic_account_but_sign_in_betas_do_not() {
    let h = harness(|base, keys| {
        org_claude(
            base,
            keys,
            RouteConfig {
                name: "subscription-to-org".into(),
                models: vec!["claude-*".into()],
                targets: vec!["claude".into()],
                ..RouteConfig::default()
            },
        )
    })
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let headers = [
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "oauth-2025-04-20,context-1m-2025-08-07"),
        ("authorization", "Bearer sk-ant-oat01-SUBSCRIPTION"),
    ];
    let (status, _, answer) = post(&h, "/v1/messages", &headers, &body).await;
    assert_eq!(status, 200, "{answer}");
    let seen = h.fake.recorded_for("/v1/messages");
    assert_eq!(header(&seen[0], "anthropic-beta"), Some("context-1m-2025-08-07"));
    assert_eq!(header(&seen[0], "x-api-key"), Some("sk-ant-org"));
    assert_eq!(header(&seen[0], "authorization"), None);
}
