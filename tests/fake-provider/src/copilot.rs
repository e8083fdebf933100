//! GitHub Copilot's service endpoints, as Copilot CLI calls them before a
//! model call (token in the environment, no exchange):
//! `GET api.github.com/copilot_internal/user` (the account; `endpoints.api`
//! is the base of the rest) and `GET api.githubcopilot.com/models` (the
//! catalog; an entry's `supported_endpoints` picks the wire API). The model
//! calls themselves (`POST /chat/completions`, `/responses`, `/v1/messages`
//! without the `/v1` of the first two) are the usual shapes. Everything else
//! Copilot asks for (`/copilot_internal/managed_settings`,
//! `team_customizations`, `POST /mcp/readonly`, `/agents/swe/...`) is
//! tolerated as a 404.

use serde_json::{json, Value};

use crate::reply::Reply;

/// The Copilot API base the account points at.
pub const API_BASE: &str = "https://api.githubcopilot.com";

/// The model the catalog offers: one Copilot CLI accepts as its default
/// (no `--model` needed), served as Chat Completions.
pub const MODEL: &str = "gpt-5-mini";

/// `GET /copilot_internal/user`: every present field must have the type the
/// CLI validates (`null` for a quota object makes it retry, then exit).
pub fn user() -> Reply {
    Reply::json(
        200,
        &json!({
            "login": "fake",
            "copilot_plan": "individual",
            "chat_enabled": true,
            "is_mcp_enabled": true,
            "restricted_telemetry": false,
            "endpoints": {"api": API_BASE, "telemetry": "https://copilot-telemetry.githubusercontent.com"},
        }),
    )
}

/// `GET /models`: the catalog, one chat model.
pub fn models() -> Reply {
    Reply::json(200, &json!({"object": "list", "data": [model_entry(MODEL)]}))
}

fn model_entry(id: &str) -> Value {
    json!({
        "id": id, "name": id, "object": "model", "vendor": "Fake", "version": id,
        "preview": false, "model_picker_enabled": true, "model_picker_category": "versatile",
        "is_chat_default": true, "is_chat_fallback": true,
        "policy": {"state": "enabled", "terms": ""},
        "billing": {"is_premium": false, "multiplier": 0, "restricted_to": ["free", "individual", "business", "enterprise"]},
        "capabilities": {
            "type": "chat", "family": id, "object": "model_capabilities", "tokenizer": "o200k_base",
            "limits": {"max_context_window_tokens": 128000, "max_prompt_tokens": 128000, "max_output_tokens": 16384},
            "supports": {"streaming": true, "tool_calls": true, "parallel_tool_calls": true, "structured_outputs": true},
        },
        "supported_endpoints": ["/chat/completions"],
    })
}
