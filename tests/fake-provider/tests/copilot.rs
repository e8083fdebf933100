//! The fake as GitHub Copilot, as Copilot CLI calls it: the account on
//! api.github.com, the model catalog, Chat Completions without `/v1`, the
//! shell tool `bash` for `TOOLTEST`, and 404 for the rest.

mod common;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use promptwall_fake_provider::{FakeOptions, FakeProvider};
use serde_json::json;

const CAPI: &str = "api.githubcopilot.com";

fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://{host}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn copilot_account_catalog_and_model_calls() {
    let fake = FakeProvider::start(FakeOptions::default()).await.unwrap();

    let user = send(
        &fake,
        "api.github.com",
        false,
        get("api.github.com", "/copilot_internal/user"),
    )
    .await;
    assert_eq!(user.status, 200);
    assert_eq!(user.json()["endpoints"]["api"], "https://api.githubcopilot.com");
    assert_eq!(user.json()["is_mcp_enabled"], true);

    let models = send(&fake, CAPI, false, get(CAPI, "/models")).await.json();
    let entry = &models["data"][0];
    assert_eq!(entry["id"], "gpt-5-mini");
    assert_eq!(entry["supported_endpoints"], json!(["/chat/completions"]));

    for path in [
        "/copilot_internal/managed_settings",
        "/copilot_internal/team_customizations",
        "/agents/swe/internal/memory/v0/enabled",
    ] {
        assert_eq!(send(&fake, CAPI, false, get(CAPI, path)).await.status, 404, "{path}");
    }
    let mcp = post_json(
        &fake,
        CAPI,
        "/mcp/readonly",
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"}),
    )
    .await;
    assert_eq!(mcp.status, 404);

    // A plain turn, as Copilot sends it (no /v1, the date before the prompt).
    let prompt = "<current_datetime>2026-12-07T19:31:19.631+00:00</current_datetime>\n\nsay hi";
    let a = post_json(
        &fake,
        CAPI,
        "/chat/completions",
        json!({"model": "gpt-5-mini", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": prompt}]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        format!("You said: {prompt}")
    );

    // TOOLTEST calls Copilot's shell tool with the arguments it requires.
    let bash = json!({"type": "function", "function": {"name": "bash", "parameters": {"type": "object",
        "properties": {"command": {"type": "string"}, "description": {"type": "string"}, "shellId": {"type": "string"},
            "mode": {"type": "string", "enum": ["sync", "async"]}, "initial_wait": {"type": "number"}},
        "required": ["command", "description"]}}});
    let view = json!({"type": "function", "function": {"name": "view", "parameters": {"type": "object",
        "properties": {"path": {"type": "string"}}}}});
    let a = post_json(
        &fake,
        CAPI,
        "/chat/completions",
        json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "TOOLTEST run echo"}], "tools": [view, bash]}),
    )
    .await;
    let call = &a.json()["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "bash");
    let args: serde_json::Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({"command": "echo 'hello-from-tool'", "description": "Print the text", "mode": "sync", "initial_wait": 30})
    );
}
