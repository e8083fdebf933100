//! Errors the proxy itself answers with, in the client's own API format.

use bytes::Bytes;
use promptwall_llm::{error_body_with_code, ApiShape};

/// The shape whose error envelope a client expects: Anthropic clients get
/// `{"type":"error",...}`, Gemini's Google's `{"error":{"code":..,
/// "status":..}}`, everyone else OpenAI's `{"error":{...}}`. Outside the
/// LLM shapes the addressed provider decides.
pub fn error_shape(shape: ApiShape, provider: Option<&str>) -> ApiShape {
    if shape.is_anthropic() || provider == Some("anthropic") {
        ApiShape::ANTHROPIC_MESSAGES
    } else if shape == ApiShape::OTHER && provider == Some("gemini") {
        // Files, cached contents, model lists: the google-genai SDKs read
        // Google's envelope (the host's OpenAI-compatible paths are
        // classified as Chat Completions before this).
        ApiShape::GEMINI_GENERATE
    } else if shape == ApiShape::OTHER {
        ApiShape::OPENAI_CHAT
    } else {
        shape
    }
}

pub fn error_body(shape: ApiShape, status: u16, message: &str) -> Bytes {
    let code = format!("promptwall_{status}");
    let family = shape.error_family();
    family.body(status, family.error_type(status), Some(&code), message)
}

/// The API shape of a request among `shapes`: LLM shapes are POSTs;
/// everything else is `OTHER`.
pub fn classify(shapes: &promptwall_llm::Shapes, method: &http::Method, path: &str) -> ApiShape {
    // `post` is an extension method to the http crate, and POST to a server.
    if !method.as_str().eq_ignore_ascii_case("POST") {
        return ApiShape::OTHER;
    }
    shapes.classify("POST", path)
}

/// Whether the body of a request outside the known LLM shapes is read and
/// checked before it leaves (legacy completions, batches, telemetry, uploads,
/// APIs added after this release). The client's `Content-Type` is not
/// trusted: a "binary" upload is scanned like any other body. Sign-in
/// endpoints are exempt: the credentials in them belong to the provider.
/// `path` is the normalised path ([`promptwall_llm::path::normalize`]).
pub fn checks_other_body(method: &http::Method, path: &str) -> bool {
    // Every method that may carry a body a server acts on (extension and
    // lower-case spellings included); only the read-only ones are exempt.
    let read_only = ["GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"];
    if read_only.iter().any(|m| method.as_str().eq_ignore_ascii_case(m)) {
        return false;
    }
    let key = promptwall_llm::path::classification_key(path);
    let mut segments = key.split('/').filter(|s| !s.is_empty());
    let sign_in = segments.clone().any(|s| s == "oauth") || segments.next_back() == Some("token");
    !sign_in
}

/// Re-renders a pipeline error body (OpenAI envelope, as the pipeline uses
/// for requests outside the known shapes) in the envelope of `shape`.
pub fn reshape_error(shape: ApiShape, status: u16, body: &[u8]) -> Bytes {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let err = &v["error"];
    let (Some(kind), Some(message)) = (err["type"].as_str(), err["message"].as_str()) else {
        return Bytes::copy_from_slice(body);
    };
    error_body_with_code(shape, status, kind, err["code"].as_str(), message)
}

/// An SSE error event in the stream format of `shape`'s clients, for a
/// stream the proxy has to end early. Starts with a blank line so it is
/// never glued to a preceding event.
pub fn sse_error_event(shape: ApiShape, message: &str) -> Bytes {
    shape.sse_error_event(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_bodies_are_checked_except_sign_in_whatever_their_content_type() {
        let post = http::Method::POST;
        assert!(checks_other_body(&post, "/v1/completions"));
        assert!(checks_other_body(&post, "/api/event_logging/v2/batch"));
        assert!(checks_other_body(&post, "/v1/files"), "uploads are scanned too");
        assert!(!checks_other_body(&post, "/v1/oauth/token"));
        assert!(!checks_other_body(&post, "/api/oauth/claude_cli/create_api_key"));
        assert!(!checks_other_body(&http::Method::GET, "/v1/models"));
        let lower = http::Method::from_bytes(b"post").unwrap();
        assert!(!checks_other_body(&lower, "/v1/oauth/x") && checks_other_body(&lower, "/v1/x"));
        assert!(checks_other_body(&http::Method::DELETE, "/v1/x"));
        assert_eq!(
            classify(&promptwall_llm::Shapes::builtin(), &lower, "/v1/messages"),
            ApiShape::ANTHROPIC_MESSAGES
        );
        assert!(
            checks_other_body(&post, "/v1/messages;oauth"),
            "an oauth parameter is not a sign-in path"
        );
    }

    #[test]
    fn gemini_clients_get_googles_envelope_for_every_status() {
        let native = classify(
            &promptwall_llm::Shapes::builtin(),
            &http::Method::POST,
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        );
        assert_eq!(native, ApiShape::GEMINI_GENERATE);
        for (shape, provider) in [(native, Some("gemini")), (ApiShape::OTHER, Some("gemini"))] {
            let envelope = error_shape(shape, provider);
            for (status, want) in [
                (400, "INVALID_ARGUMENT"),
                (413, "INVALID_ARGUMENT"),
                (429, "RESOURCE_EXHAUSTED"),
                (503, "UNAVAILABLE"),
            ] {
                let v: serde_json::Value = serde_json::from_slice(&error_body(envelope, status, "m")).unwrap();
                assert_eq!(v["error"]["code"], status, "{shape} {status}");
                assert_eq!(v["error"]["status"], want, "{shape} {status}");
                assert_eq!(v["error"]["message"], "m");
            }
        }
        // The host's OpenAI-compatible layer keeps OpenAI's envelope.
        assert_eq!(
            error_shape(ApiShape::OPENAI_CHAT, Some("gemini")),
            ApiShape::OPENAI_CHAT
        );
        // A pipeline refusal of another Gemini path is re-rendered.
        let openai = error_body(ApiShape::OPENAI_CHAT, 422, "blocked");
        let v: serde_json::Value = serde_json::from_slice(&reshape_error(
            error_shape(ApiShape::OTHER, Some("gemini")),
            422,
            &openai,
        ))
        .unwrap();
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(v["error"]["message"], "blocked");
    }
}
