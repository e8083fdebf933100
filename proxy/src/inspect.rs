//! Errors the proxy itself answers with, in the client's own API format.

use bytes::Bytes;
use promptwall_llm::{error_body_with_code, error_type_for_status, ApiShape};

/// The shape whose error envelope a client expects: Anthropic clients get
/// `{"type":"error",...}`, everyone else OpenAI's `{"error":{...}}`.
pub fn error_shape(shape: ApiShape, provider: Option<&str>) -> ApiShape {
    if shape.is_anthropic() || provider == Some("anthropic") {
        ApiShape::AnthropicMessages
    } else if shape == ApiShape::Other {
        ApiShape::OpenAiChat
    } else {
        shape
    }
}

pub fn error_body(shape: ApiShape, status: u16, message: &str) -> Bytes {
    let code = format!("promptwall_{status}");
    error_body_with_code(shape, status, error_type_for_status(status), Some(&code), message)
}

/// The API shape of a request: LLM shapes are POSTs; everything else is `Other`.
pub fn classify(method: &http::Method, path: &str) -> ApiShape {
    if method != http::Method::POST {
        return ApiShape::Other;
    }
    ApiShape::classify(method.as_str(), path)
}
