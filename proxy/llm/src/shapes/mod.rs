//! The builtin API shapes, one module each, and the [`Shapes`] registry
//! that classifies requests among them. See [`crate::Shape`] for how to add
//! one.

mod anthropic_count_tokens;
pub(crate) mod anthropic_messages;
mod gemini;
pub(crate) mod openai_chat;
mod openai_embeddings;
pub(crate) mod openai_responses;
mod other;

use crate::shape::{ApiShape, Shape};

impl ApiShape {
    pub const ANTHROPIC_MESSAGES: ApiShape = ApiShape::new(&anthropic_messages::AnthropicMessages);
    pub const ANTHROPIC_COUNT_TOKENS: ApiShape = ApiShape::new(&anthropic_count_tokens::AnthropicCountTokens);
    pub const OPENAI_CHAT: ApiShape = ApiShape::new(&openai_chat::OpenAiChat);
    /// Includes the Codex WebSocket transport (`GET .../responses`).
    pub const OPENAI_RESPONSES: ApiShape = ApiShape::new(&openai_responses::OpenAiResponses);
    pub const OPENAI_EMBEDDINGS: ApiShape = ApiShape::new(&openai_embeddings::OpenAiEmbeddings);
    /// Gemini's `:generateContent` and `:streamGenerateContent`.
    pub const GEMINI_GENERATE: ApiShape = ApiShape::new(&gemini::Gemini::GENERATE);
    pub const GEMINI_COUNT_TOKENS: ApiShape = ApiShape::new(&gemini::Gemini::COUNT_TOKENS);
    /// Gemini's `:embedContent` and `:batchEmbedContents`.
    pub const GEMINI_EMBED: ApiShape = ApiShape::new(&gemini::Gemini::EMBED);
    /// Not an LLM call (`/api/claude_code/settings`, telemetry, uploads):
    /// what a request is when no shape claims it.
    pub const OTHER: ApiShape = ApiShape::new(&other::Other);

    /// Classify among the builtin shapes; see [`Shapes::classify`].
    pub fn classify(method: &str, path_without_query: &str) -> ApiShape {
        classify_in(BUILTIN, method, path_without_query)
    }
}

/// The builtin shapes in classification order: the first whose
/// [`Shape::matches`] accepts a request names it. Their paths do not
/// overlap today; the order only has to hold if two ever do (a more
/// specific suffix before a shorter one, as count_tokens before messages).
/// Adding a shape is one line here.
const BUILTIN: &[ApiShape] = &[
    ApiShape::OPENAI_RESPONSES,
    ApiShape::ANTHROPIC_COUNT_TOKENS,
    ApiShape::ANTHROPIC_MESSAGES,
    ApiShape::OPENAI_CHAT,
    ApiShape::OPENAI_EMBEDDINGS,
    ApiShape::GEMINI_GENERATE,
    ApiShape::GEMINI_COUNT_TOKENS,
    ApiShape::GEMINI_EMBED,
];

/// The shapes requests are classified among.
#[derive(Debug, Clone)]
pub struct Shapes {
    list: Vec<ApiShape>,
}

impl Shapes {
    /// The builtin shapes, in the order of `BUILTIN` (responses,
    /// count_tokens, messages, chat, embeddings, then Gemini's generate,
    /// count_tokens and embed).
    pub fn builtin() -> Shapes {
        Shapes { list: BUILTIN.to_vec() }
    }

    /// These shapes plus `shape`, tried after them.
    pub fn with(mut self, shape: &'static dyn Shape) -> Shapes {
        self.list.push(ApiShape::new(shape));
        self
    }

    /// The shape of a request, by method and path (the caller strips the
    /// query: `/v1/messages?beta=true`). The path is matched by its
    /// [`crate::path::classification_key`] (case-folded, `;parameters`
    /// dropped), so spellings a server might still route to an LLM endpoint
    /// are inspected as one. [`ApiShape::OTHER`] when no shape matches.
    pub fn classify(&self, method: &str, path_without_query: &str) -> ApiShape {
        classify_in(&self.list, method, path_without_query)
    }

    pub fn iter(&self) -> impl Iterator<Item = ApiShape> + '_ {
        self.list.iter().copied()
    }
}

fn classify_in(list: &[ApiShape], method: &str, path_without_query: &str) -> ApiShape {
    let key = crate::path::classification_key(path_without_query);
    list.iter()
        .copied()
        .find(|s| s.matches(method, &key))
        .unwrap_or(ApiShape::OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_real_client_paths() {
        let cases = [
            ("POST", "/v1/messages", ApiShape::ANTHROPIC_MESSAGES),
            ("POST", "/v1/messages/count_tokens", ApiShape::ANTHROPIC_COUNT_TOKENS),
            ("POST", "/v1/chat/completions", ApiShape::OPENAI_CHAT),
            ("POST", "/openai/v1/chat/completions", ApiShape::OPENAI_CHAT),
            // The catalog's OpenAI-compatible providers: Copilot (no version
            // prefix), OpenRouter, Gemini's compatibility layer.
            ("POST", "/chat/completions", ApiShape::OPENAI_CHAT),
            ("POST", "/api/v1/chat/completions", ApiShape::OPENAI_CHAT),
            ("POST", "/v1beta/openai/chat/completions", ApiShape::OPENAI_CHAT),
            // Gemini's native API, by the verb after the model.
            (
                "POST",
                "/v1beta/models/gemini-2.5-pro:generateContent",
                ApiShape::GEMINI_GENERATE,
            ),
            (
                "POST",
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                ApiShape::GEMINI_GENERATE,
            ),
            (
                "POST",
                "/v1beta/models/gemini-2.5-pro:countTokens",
                ApiShape::GEMINI_COUNT_TOKENS,
            ),
            (
                "POST",
                "/v1beta/models/text-embedding-004:embedContent",
                ApiShape::GEMINI_EMBED,
            ),
            ("GET", "/v1beta/models/gemini-2.5-pro", ApiShape::OTHER),
            ("POST", "/v1/responses", ApiShape::OPENAI_RESPONSES),
            ("GET", "/v1/responses", ApiShape::OPENAI_RESPONSES),
            ("POST", "/backend-api/codex/responses", ApiShape::OPENAI_RESPONSES),
            ("POST", "/v1/responses/compact", ApiShape::OPENAI_RESPONSES),
            (
                "POST",
                "/backend-api/codex/responses/compact",
                ApiShape::OPENAI_RESPONSES,
            ),
            ("GET", "/v1/responses/compact", ApiShape::OTHER),
            ("POST", "/v1/embeddings", ApiShape::OPENAI_EMBEDDINGS),
            ("GET", "/backend-api/codex/models", ApiShape::OTHER),
            ("HEAD", "/api/hello", ApiShape::OTHER),
            ("GET", "/v1/messages", ApiShape::OTHER),
            ("GET", "/v1/chat/completions", ApiShape::OTHER),
            ("POST", "/api/event_logging/v2/batch", ApiShape::OTHER),
            ("GET", "/api/claude_code/settings", ApiShape::OTHER),
            ("POST", "/V1/Messages", ApiShape::ANTHROPIC_MESSAGES),
            ("POST", "/v1/messages;x=1", ApiShape::ANTHROPIC_MESSAGES),
            ("POST", "/v1/messages/", ApiShape::ANTHROPIC_MESSAGES),
            ("POST", "/messages", ApiShape::ANTHROPIC_MESSAGES),
        ];
        for (method, path, want) in cases {
            assert_eq!(ApiShape::classify(method, path), want, "{method} {path}");
            assert_eq!(Shapes::builtin().classify(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn every_builtin_shape_has_its_own_name_and_other_claims_no_path() {
        let all: Vec<ApiShape> = Shapes::builtin().iter().chain([ApiShape::OTHER]).collect();
        let names: std::collections::HashSet<&str> = all.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert_eq!(
            all.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            [
                "openai.responses",
                "anthropic.count_tokens",
                "anthropic.messages",
                "openai.chat",
                "openai.embeddings",
                "gemini.generate_content",
                "gemini.count_tokens",
                "gemini.embed_content",
                "other"
            ]
        );
        assert!(!ApiShape::OTHER.matches("POST", "/v1/anything"));
        assert!(!ApiShape::OTHER.is_llm() && Shapes::builtin().iter().all(|s| s.is_llm()));
        assert_eq!(format!("{:?}", ApiShape::OPENAI_CHAT), "openai.chat");
    }

    #[test]
    fn each_shape_ends_a_broken_stream_in_its_sdks_format() {
        let event = |s: ApiShape| String::from_utf8(s.sse_error_event("m").to_vec()).unwrap();
        let anthropic =
            "\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"m\"}}\n\n";
        assert_eq!(event(ApiShape::ANTHROPIC_MESSAGES), anthropic);
        assert_eq!(event(ApiShape::ANTHROPIC_COUNT_TOKENS), anthropic);
        assert_eq!(
            event(ApiShape::OPENAI_RESPONSES),
            "\n\nevent: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"m\",\"param\":null}\n\n"
        );
        let chat = "\n\ndata: {\"error\":{\"message\":\"m\",\"type\":\"server_error\",\"param\":null,\"code\":\"promptwall_stream_broken\"}}\n\n";
        for s in [ApiShape::OPENAI_CHAT, ApiShape::OPENAI_EMBEDDINGS, ApiShape::OTHER] {
            assert_eq!(event(s), chat, "{s}");
        }
        let google = "\n\ndata: {\"error\":{\"code\":500,\"message\":\"m\",\"status\":\"INTERNAL\"}}\n\n";
        for s in [
            ApiShape::GEMINI_GENERATE,
            ApiShape::GEMINI_COUNT_TOKENS,
            ApiShape::GEMINI_EMBED,
        ] {
            assert_eq!(event(s), google, "{s}");
        }
        let ws: Vec<ApiShape> = Shapes::builtin()
            .iter()
            .chain([ApiShape::OTHER])
            .filter(|s| s.ws_error_frame(500, "t", "c", "m").is_some())
            .collect();
        assert_eq!(ws, [ApiShape::OPENAI_RESPONSES]);
    }
}
