//! Glue between the HTTP layer and the pure pipeline in `promptwall-llm`.
//! The HTTP code only sees these few calls.

use bytes::Bytes;

/// The API shape of a request, from its method and path (query stripped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    AnthropicMessages,
    AnthropicCountTokens,
    OpenAiChat,
    OpenAiResponses,
    OpenAiEmbeddings,
    /// Not an LLM call (/api/hello, /backend-api/codex/models, ...).
    Other,
}

impl Shape {
    pub fn classify(method: &http::Method, path: &str) -> Shape {
        let path = path.trim_end_matches('/');
        if method != http::Method::POST {
            return Shape::Other;
        }
        if path.ends_with("/v1/messages/count_tokens") {
            Shape::AnthropicCountTokens
        } else if path.ends_with("/v1/messages") {
            Shape::AnthropicMessages
        } else if path.ends_with("/chat/completions") {
            Shape::OpenAiChat
        } else if path.ends_with("/v1/responses") {
            Shape::OpenAiResponses
        } else if path.ends_with("/v1/embeddings") {
            Shape::OpenAiEmbeddings
        } else {
            Shape::Other
        }
    }

    pub fn is_llm(self) -> bool {
        self != Shape::Other
    }

    pub fn is_anthropic(self) -> bool {
        matches!(self, Shape::AnthropicMessages | Shape::AnthropicCountTokens)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::AnthropicMessages => "anthropic.messages",
            Shape::AnthropicCountTokens => "anthropic.count_tokens",
            Shape::OpenAiChat => "openai.chat",
            Shape::OpenAiResponses => "openai.responses",
            Shape::OpenAiEmbeddings => "openai.embeddings",
            Shape::Other => "other",
        }
    }
}

/// An error body in the client's own API format.
pub fn error_body(anthropic: bool, status: u16, message: &str) -> Bytes {
    let kind = match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        _ => "api_error",
    };
    let value = if anthropic {
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
    } else {
        serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": format!("promptwall_{status}")}})
    };
    Bytes::from(serde_json::to_vec(&value).expect("json values serialize"))
}
