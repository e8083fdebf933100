use std::sync::Arc;
use std::time::Duration;

use super::config::{AccountConfig, RouteConfig, UpstreamConfig};
use super::cooldown::tests::ManualClock;
use super::*;

fn route(name: &str, targets: &[&str]) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        targets: targets.iter().map(|s| s.to_string()).collect(),
        ..RouteConfig::default()
    }
}

fn upstream(kind: UpstreamKind, base: Option<&str>, accounts: &[&str]) -> UpstreamConfig {
    UpstreamConfig {
        kind,
        base_url: base.map(str::to_string),
        api: None,
        accounts: accounts
            .iter()
            .map(|a| AccountConfig {
                name: a.to_string(),
                key_env: None,
                key_file: None,
            })
            .collect(),
    }
}

fn config(routes: Vec<RouteConfig>) -> RoutingConfig {
    let mut c = RoutingConfig::with_defaults();
    c.upstreams.insert(
        "cheap".into(),
        upstream(
            UpstreamKind::OpenaiCompatible,
            Some("http://127.0.0.1:9/v1"),
            &["a", "b"],
        ),
    );
    c.upstreams
        .insert("claude".into(), upstream(UpstreamKind::Anthropic, None, &["org"]));
    c.routes = routes;
    c
}

fn router(routes: Vec<RouteConfig>) -> (Router, Arc<ManualClock>) {
    let clock = ManualClock::new();
    (Router::compile(&config(routes), clock.clone()).unwrap(), clock)
}

fn labels(d: &Decision) -> Vec<String> {
    match d {
        Decision::Direct => vec!["direct".into()],
        Decision::Routed(p) => p.candidates.iter().map(Candidate::label).collect(),
    }
}

fn q(model: &str, tokens: u64) -> RouteQuery<'static> {
    RouteQuery {
        listener: "transparent",
        shape: Some(ApiShape::ANTHROPIC_MESSAGES),
        model: Some(Box::leak(model.to_string().into_boxed_str())),
        tool: "claude-code",
        features: Features {
            input_tokens: tokens,
            ..Features::default()
        },
        ..RouteQuery::default()
    }
}

#[test]
fn with_no_rules_every_request_goes_where_its_client_addressed_it() {
    let (r, _) = router(vec![]);
    assert!(matches!(r.decide(&q("claude-sonnet-4-5", 10)), Decision::Direct));
}

#[test]
fn small_prompts_go_to_the_cheap_model_and_large_ones_stay_where_they_were() {
    let mut small = route("small", &["client:claude-haiku-4-5"]);
    small.models = vec!["claude-*".into()];
    small.max_input_tokens = Some(4000);
    let (r, _) = router(vec![small]);
    match r.decide(&q("claude-sonnet-4-5", 3999)) {
        Decision::Routed(p) => {
            assert_eq!(p.route, "small");
            assert_eq!(p.candidates[0].model.as_deref(), Some("claude-haiku-4-5"));
            assert_eq!(labels(&Decision::Routed(p)), ["client"]);
        }
        Decision::Direct => panic!("a small prompt must be routed"),
    }
    assert!(matches!(r.decide(&q("claude-sonnet-4-5", 4000)), Decision::Direct));
    assert!(matches!(r.decide(&q("gpt-5", 10)), Decision::Direct));
}

#[test]
fn an_alias_the_client_asks_for_is_routed_to_the_model_behind_it() {
    let mut alias = route("claude-fast", &["claude:claude-haiku-4-5"]);
    alias.models = vec!["claude-fast".into()];
    let (r, _) = router(vec![alias]);
    let Decision::Routed(p) = r.decide(&q("claude-fast", 10)) else {
        panic!("alias")
    };
    assert_eq!(p.candidates[0].label(), "claude/org");
    assert_eq!(p.candidates[0].model.as_deref(), Some("claude-haiku-4-5"));
}

#[test]
fn the_first_matching_rule_decides() {
    let mut by_tool = route("codex", &["cheap"]);
    by_tool.tools = vec!["codex".into()];
    let mut by_model = route("claude", &["claude"]);
    by_model.models = vec!["claude-*".into()];
    let (r, _) = router(vec![by_tool, by_model]);
    let mut codex = q("claude-x", 1);
    codex.tool = "codex";
    assert_eq!(labels(&r.decide(&codex)), ["cheap/a", "cheap/b"]);
    assert_eq!(labels(&r.decide(&q("claude-x", 1))), ["claude/org"]);
}

#[test]
fn failover_tries_each_account_of_each_target_in_order() {
    let (r, _) = router(vec![route("all", &["cheap", "claude"])]);
    assert_eq!(labels(&r.decide(&q("m", 1))), ["cheap/a", "cheap/b", "claude/org"]);
}

#[test]
fn an_account_in_cooldown_is_left_out_until_its_cooldown_passes() {
    let (r, clock) = router(vec![route("all", &["cheap", "claude"])]);
    r.cooldowns.failed("cheap/a", Some(Duration::from_secs(30)));
    assert_eq!(labels(&r.decide(&q("m", 1))), ["cheap/b", "claude/org"]);
    clock.advance(Duration::from_secs(30));
    assert_eq!(labels(&r.decide(&q("m", 1))), ["cheap/a", "cheap/b", "claude/org"]);
}

#[test]
fn when_every_candidate_cools_down_the_plan_says_how_long_the_shortest_wait_is() {
    let (r, _) = router(vec![route("one", &["claude"])]);
    r.cooldowns.failed("claude/org", Some(Duration::from_secs(42)));
    let Decision::Routed(p) = r.decide(&q("m", 1)) else {
        panic!()
    };
    assert_eq!(p.all_cooling(), Some(Duration::from_secs(42)));
}

#[test]
fn round_robin_starts_each_request_at_the_next_target() {
    let mut rr = route("rr", &["claude", "client"]);
    rr.strategy = Strategy::RoundRobin;
    let (r, _) = router(vec![rr]);
    let firsts: Vec<String> = (0..4).map(|_| labels(&r.decide(&q("m", 1)))[0].clone()).collect();
    assert_eq!(firsts, ["claude/org", "client", "claude/org", "client"]);
}

#[test]
fn weighted_sends_first_attempts_in_proportion_without_bursts() {
    let mut w = route("w", &["claude", "client"]);
    w.strategy = Strategy::Weighted;
    w.weights = vec![3, 1];
    let (r, _) = router(vec![w]);
    let firsts: Vec<String> = (0..8).map(|_| labels(&r.decide(&q("m", 1)))[0].clone()).collect();
    assert_eq!(firsts.iter().filter(|f| *f == "client").count(), 2, "{firsts:?}");
    assert_ne!(
        firsts[0..4],
        ["claude/org"; 4],
        "smooth: the light target is in every window of 4"
    );
}

#[test]
fn least_used_puts_the_target_with_fewer_requests_in_flight_first() {
    let mut lu = route("lu", &["claude", "client"]);
    lu.strategy = Strategy::LeastUsed;
    let (r, _) = router(vec![lu]);
    let Decision::Routed(p) = r.decide(&q("m", 1)) else {
        panic!()
    };
    let _busy = r.in_flight("lu", &p.candidates[0]);
    assert_eq!(labels(&r.decide(&q("m", 1)))[0], "client");
}

#[test]
fn explain_does_not_take_a_round_robin_turn() {
    let mut rr = route("rr", &["claude", "client"]);
    rr.strategy = Strategy::RoundRobin;
    let (r, _) = router(vec![rr]);
    assert_eq!(labels(&r.explain(&q("m", 1)))[0], "claude/org");
    assert_eq!(labels(&r.explain(&q("m", 1)))[0], "claude/org");
    assert_eq!(labels(&r.decide(&q("m", 1)))[0], "claude/org");
    assert_eq!(labels(&r.decide(&q("m", 1)))[0], "client");
}

#[test]
fn config_errors_name_the_route_and_the_fix() {
    let clock = ManualClock::new();
    let err = |routes: Vec<RouteConfig>| Router::compile(&config(routes), clock.clone()).unwrap_err();
    let e = err(vec![route("x", &["nowhere:m"])]);
    assert!(
        e.contains("\"x\"") && e.contains("nowhere") && e.contains("known: cheap, claude"),
        "{e}"
    );
    let e = err(vec![route("all", &["claude"]), route("later", &["cheap"])]);
    assert!(
        e.contains("can never match") && e.contains("\"all\"") && e.contains("move it last"),
        "{e}"
    );
    let mut w = route("w", &["claude", "cheap"]);
    w.strategy = Strategy::Weighted;
    w.weights = vec![1];
    assert!(err(vec![w]).contains("one weight per target"));
    let mut g = route("g", &["claude"]);
    g.models = vec!["[".into()];
    assert!(err(vec![g]).contains("not a glob"));
    let mut c = RoutingConfig::with_defaults();
    c.upstreams
        .insert("x".into(), upstream(UpstreamKind::OpenaiCompatible, None, &[]));
    assert!(Router::compile(&c, clock.clone())
        .unwrap_err()
        .contains("needs base_url"));
}

#[test]
fn upstream_urls_follow_each_sdks_base_url_convention() {
    let (r, _) = router(vec![]);
    let cheap = &r.upstreams["cheap"];
    assert_eq!(
        cheap.url(ApiShape::OPENAI_CHAT),
        "http://127.0.0.1:9/v1/chat/completions"
    );
    let claude = &r.upstreams["claude"];
    assert_eq!(
        claude.url(ApiShape::ANTHROPIC_MESSAGES),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(
        claude.shape_for(ApiShape::OPENAI_RESPONSES),
        ApiShape::ANTHROPIC_MESSAGES
    );
    assert_eq!(cheap.shape_for(ApiShape::OPENAI_RESPONSES), ApiShape::OPENAI_CHAT);
}

#[test]
fn outbound_headers_to_another_provider_carry_the_accounts_key_and_none_of_the_clients_credentials() {
    let up = Upstream {
        name: "claude".into(),
        kind: UpstreamKind::Anthropic,
        base_url: "https://api.anthropic.com".into(),
        api: None,
        accounts: vec![Account {
            name: "org".into(),
            credential: Some(Credential::for_test("sk-ant-org")),
        }],
    };
    let mut client = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer eyJhbGciOi.chatgpt-account-token"),
        ("chatgpt-account-id", "acct-1"),
        ("cookie", "session=1"),
        ("openai-organization", "org-1"),
        ("x-api-key", "sk-client"),
        ("user-agent", "codex_cli_rs/0.50"),
        ("accept", "text/event-stream"),
    ] {
        client.insert(HeaderName::from_static(k), v.parse().unwrap());
    }
    let out = up.outbound_headers(&client, 0);
    let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        ["accept", "user-agent", "content-type", "anthropic-version", "x-api-key"]
    );
    assert_eq!(out["x-api-key"], "sk-ant-org");
    assert!(out["x-api-key"].is_sensitive());
}

#[test]
fn features_count_text_not_image_bytes_and_see_tools_images_and_streaming() {
    let body = serde_json::json!({
        "model": "m", "stream": true,
        "tools": [{"name": "t", "input_schema": {}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "abcdefgh"},
            {"type": "image", "source": {"type": "base64", "data": "A".repeat(10_000)}}
        ]}]
    });
    let f = Features::of(&body);
    assert!(f.stream && f.has_tools && f.has_images);
    assert!(f.input_tokens < 100, "{f:?}");
}

#[test]
fn features_of_a_gemini_body_count_its_instructions_and_contents_but_not_inline_bytes() {
    let body = serde_json::json!({
        "systemInstruction": {"parts": [{"text": "a".repeat(400)}]},
        "contents": [{"role": "user", "parts": [
            {"text": "b".repeat(400)},
            {"inlineData": {"mimeType": "image/png", "data": "A".repeat(10_000)}}
        ]}],
        "tools": [{"functionDeclarations": [{"name": "t"}]}]
    });
    let f = Features::of(&body);
    assert!(f.has_tools && f.has_images);
    assert!((200..300).contains(&f.input_tokens), "{f:?}");
}
