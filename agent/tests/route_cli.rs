//! `promptwall route explain` as an operator runs it on a config: the rule
//! a request matches and the order of its upstreams, as a table and as
//! JSON, and a broken `[routing]` rejected with the rule and the fix.

use std::process::Output;

const CONFIG: &str = r#"
[routing.upstreams.cheap]
kind = "openai-compatible"
base_url = "https://llm.internal.example/v1"
accounts = [{ name = "main", key_env = "CHEAP_KEY" }, { name = "backup", key_env = "CHEAP_KEY_2" }]

[[routing.routes]]
name = "small-prompts-to-haiku"
models = ["claude-*"]
max_input_tokens = 4000
targets = ["client:claude-haiku-4-5"]

[[routing.routes]]
name = "codex-to-cheap"
tools = ["codex"]
targets = ["cheap:qwen-coder", "client"]
"#;

fn explain(config: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_promptwall"))
        .arg("--config")
        .arg(&path)
        .args(["route", "explain"])
        .args(args)
        .env_remove("CHEAP_KEY")
        .output()
        .unwrap()
}

#[test]
fn a_small_claude_prompt_is_explained_as_going_to_haiku_with_the_clients_key() {
    let out = explain(CONFIG, &["--model", "claude-sonnet-4-5", "--input-tokens", "1200"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rule: small-prompts-to-haiku"), "{text}");
    assert!(
        text.contains("claude-haiku-4-5") && text.contains("the client's own"),
        "{text}"
    );
}

#[test]
fn a_large_prompt_matches_no_rule_and_goes_where_it_was_addressed() {
    let out = explain(CONFIG, &["--model", "claude-sonnet-4-5", "--input-tokens", "9000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no rule matches"), "{text}");
}

#[test]
fn json_lists_each_account_in_the_order_tried_with_the_api_it_is_spoken_to_in() {
    let out = explain(
        CONFIG,
        &[
            "--model",
            "gpt-5-codex",
            "--shape",
            "openai.responses",
            "--tool",
            "codex",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["route"], "codex-to-cheap");
    let order: Vec<(&str, &str, bool)> = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["upstream"].as_str().unwrap(),
                c["api"].as_str().unwrap(),
                c["translated"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("cheap/main", "openai.chat", true),
            ("cheap/backup", "openai.chat", true),
            ("client", "openai.responses", false)
        ]
    );
    assert_eq!(
        v["candidates"][0]["url"],
        "https://llm.internal.example/v1/chat/completions"
    );
}

#[test]
fn a_route_naming_an_unknown_upstream_is_rejected_with_the_rule_and_the_fix() {
    let broken = CONFIG.replace("cheap:qwen-coder", "nowhere:qwen-coder");
    let out = explain(&broken, &["--model", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("codex-to-cheap") && err.contains("nowhere") && err.contains("known: cheap"),
        "{err}"
    );
}

#[test]
fn a_chat_request_file_is_read_as_chat_and_a_messages_one_as_messages() {
    let config = r#"
[[routing.routes]]
name = "chat-only"
shapes = ["openai.chat"]
targets = ["client:gpt-4o-mini"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    std::fs::write(
        &chat,
        r#"{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    let messages = dir.path().join("messages.json");
    std::fs::write(
        &messages,
        r#"{"model":"claude-sonnet-4-5","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    let out = explain(config, &["--request", chat.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["request"]["shape"].as_str(), v["route"].as_str()),
        (Some("openai.chat"), Some("chat-only"))
    );
    let out = explain(config, &["--request", messages.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["request"]["shape"], "anthropic.messages");
    assert!(v["route"].is_null());
}
