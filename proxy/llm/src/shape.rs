//! Which provider API a request speaks, decided from method and path alone.

/// The API shapes the pipeline understands. `Other` is passed through
/// uninspected (e.g. `/api/claude_code/settings`, `/backend-api/codex/models`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiShape {
    AnthropicMessages,
    AnthropicCountTokens,
    OpenAiChat,
    OpenAiResponses,
    OpenAiEmbeddings,
    Other,
}

// Interim names for the shape registry's constants (replaced when the
// Shape trait lands).
#[allow(missing_docs)]
impl ApiShape {
    pub const ANTHROPIC_MESSAGES: ApiShape = ApiShape::AnthropicMessages;
    pub const ANTHROPIC_COUNT_TOKENS: ApiShape = ApiShape::AnthropicCountTokens;
    pub const OPENAI_CHAT: ApiShape = ApiShape::OpenAiChat;
    pub const OPENAI_RESPONSES: ApiShape = ApiShape::OpenAiResponses;
    pub const OPENAI_EMBEDDINGS: ApiShape = ApiShape::OpenAiEmbeddings;
    pub const OTHER: ApiShape = ApiShape::Other;
}

impl ApiShape {
    /// Classify by path suffix, so provider prefixes (`/openai/v1/...`,
    /// `/backend-api/codex/responses`) still match. The caller strips the
    /// query (`/v1/messages?beta=true`). `GET .../responses` is the Codex
    /// WebSocket upgrade and counts as Responses.
    /// The path is matched by its [`crate::path::classification_key`]
    /// (case-folded, `;parameters` dropped), so spellings a server might
    /// still route to an LLM endpoint are inspected as one.
    pub fn classify(method: &str, path_without_query: &str) -> ApiShape {
        let key = crate::path::classification_key(path_without_query);
        let path = key.as_str();
        let post = method.eq_ignore_ascii_case("POST");
        if path.ends_with("/responses") && (post || method.eq_ignore_ascii_case("GET")) {
            return ApiShape::OpenAiResponses;
        }
        // Codex's history compaction carries the whole conversation in the
        // Responses request format.
        if post && path.ends_with("/responses/compact") {
            return ApiShape::OpenAiResponses;
        }
        if !post {
            return ApiShape::Other;
        }
        if path.ends_with("/messages/count_tokens") {
            ApiShape::AnthropicCountTokens
        } else if path.ends_with("/v1/messages") || path == "/messages" {
            ApiShape::AnthropicMessages
        } else if path.ends_with("/chat/completions") {
            ApiShape::OpenAiChat
        } else if path.ends_with("/embeddings") {
            ApiShape::OpenAiEmbeddings
        } else {
            ApiShape::Other
        }
    }

    pub fn is_llm(self) -> bool {
        self != ApiShape::Other
    }

    /// Anthropic clients get Anthropic error envelopes; everything else OpenAI's.
    pub fn is_anthropic(self) -> bool {
        matches!(self, ApiShape::AnthropicMessages | ApiShape::AnthropicCountTokens)
    }

    /// Stable name for audit rows and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiShape::AnthropicMessages => "anthropic.messages",
            ApiShape::AnthropicCountTokens => "anthropic.count_tokens",
            ApiShape::OpenAiChat => "openai.chat",
            ApiShape::OpenAiResponses => "openai.responses",
            ApiShape::OpenAiEmbeddings => "openai.embeddings",
            ApiShape::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApiShape::{self, *};

    #[test]
    fn classifies_real_client_paths() {
        let cases = [
            ("POST", "/v1/messages", AnthropicMessages),
            ("POST", "/v1/messages/count_tokens", AnthropicCountTokens),
            ("POST", "/v1/chat/completions", OpenAiChat),
            ("POST", "/openai/v1/chat/completions", OpenAiChat),
            ("POST", "/v1/responses", OpenAiResponses),
            ("GET", "/v1/responses", OpenAiResponses),
            ("POST", "/backend-api/codex/responses", OpenAiResponses),
            ("POST", "/v1/responses/compact", OpenAiResponses),
            ("POST", "/backend-api/codex/responses/compact", OpenAiResponses),
            ("POST", "/v1/embeddings", OpenAiEmbeddings),
            ("GET", "/backend-api/codex/models", Other),
            ("HEAD", "/api/hello", Other),
            ("GET", "/v1/messages", Other),
            ("POST", "/api/event_logging/v2/batch", Other),
            ("GET", "/api/claude_code/settings", Other),
            ("POST", "/V1/Messages", AnthropicMessages),
            ("POST", "/v1/messages;x=1", AnthropicMessages),
            ("POST", "/v1/messages/", AnthropicMessages),
        ];
        for (method, path, want) in cases {
            assert_eq!(ApiShape::classify(method, path), want, "{method} {path}");
        }
    }
}
