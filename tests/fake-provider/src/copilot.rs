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
    let quota = |id: &str, unlimited: bool, n: u32| {
        json!({"entitlement": n, "overage_count": 0, "overage_permitted": false, "percent_remaining": 100,
            "quota_id": id, "quota_remaining": n, "remaining": n, "unlimited": unlimited})
    };
    Reply::json(
        200,
        &json!({
            "login": "fake",
            "access_type_sku": "free_limited_copilot",
            "analytics_tracking_id": "00000000000000000000000000000000",
            "can_signup_for_limited": false,
            "chat_enabled": true,
            "copilot_plan": "individual",
            "organization_login_list": [],
            "organization_list": [],
            "codex_agent_enabled": false,
            "is_mcp_enabled": true,
            "restricted_telemetry": false,
            "endpoints": {"api": API_BASE, "telemetry": "https://copilot-telemetry.githubusercontent.com"},
            "limited_user_quotas": {"chat": 500, "completions": 4000},
            "limited_user_reset_date": "2099-01-01",
            "monthly_quotas": {"chat": 500, "completions": 4000},
            "copilotignore_enabled": false,
            "enterprise_list": [],
            "quota_reset_date": "2099-01-01",
            "quota_snapshots": {
                "chat": quota("chat", true, 0),
                "completions": quota("completions", true, 0),
                "premium_interactions": quota("premium_interactions", false, 300),
            },
            "quota_reset_date_utc": "2099-01-01T00:00:00Z",
        }),
    )
}

/// `GET /models`: the catalog, one chat model.
pub fn models() -> Reply {
    Reply::json(200, &json!({"object": "list", "data": [model_entry(MODEL)]}))
}

fn model_entry(id: &str) -> Value {
    json!({
        "id": id, "name": id, "object": "model", "vendor": "Azure OpenAI", "version": id,
        "preview": false, "model_picker_enabled": true, "model_picker_category": "versatile",
        "is_chat_default": false, "is_chat_fallback": false,
        "policy": {"state": "enabled", "terms": ""},
        "billing": {"is_premium": false, "multiplier": 0, "restricted_to": ["free", "individual", "business", "enterprise"]},
        "capabilities": {
            "type": "chat", "family": id, "object": "model_capabilities", "tokenizer": "o200k_base",
            "limits": {
                "max_context_window_tokens": 128000, "max_prompt_tokens": 128000, "max_output_tokens": 16384,
                "vision": {"max_prompt_image_size": 3145728, "max_prompt_images": 1, "supported_media_types": ["image/png", "image/jpeg"]},
            },
            "supports": {"streaming": true, "tool_calls": true, "parallel_tool_calls": true, "vision": true, "structured_outputs": true},
        },
        "supported_endpoints": ["/chat/completions"],
    })
}
