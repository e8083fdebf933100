//! Error bodies in the client's own API format, so SDKs and agents parse and
//! show them like any provider error. The envelopes live here; which one a
//! client gets is its shape's choice ([`crate::Shape::error_family`],
//! [`crate::Shape::sse_error_event`], [`crate::Shape::ws_error_frame`]).

use bytes::Bytes;

use crate::shape::{ApiShape, ErrorFamily};

/// The error `type` a provider would use for `status`.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// An error body for `shape`'s clients. `code` is only used by the OpenAI
/// envelope (Anthropic's has no code field).
pub fn error_body(shape: ApiShape, status: u16, error_type: &str, message: &str) -> Bytes {
    error_body_with_code(shape, status, error_type, None, message)
}

pub fn error_body_with_code(
    shape: ApiShape,
    status: u16,
    error_type: &str,
    code: Option<&str>,
    message: &str,
) -> Bytes {
    shape.error_family().body(status, error_type, code, message)
}

impl ErrorFamily {
    /// The error `type` this family uses for `status` (Anthropic names its
    /// 413; OpenAI calls it an invalid request; Google has no type, and its
    /// canonical status stands in).
    pub fn error_type(self, status: u16) -> &'static str {
        match (self, status) {
            (ErrorFamily::Anthropic, 413) => "request_too_large",
            (ErrorFamily::Google, _) => google_status(status),
            _ => error_type_for_status(status),
        }
    }

    /// An error body in this family's envelope. `code` is used by the
    /// OpenAI envelope (defaulting to `promptwall_<status>`) and by
    /// Google's, as the reason of an `ErrorInfo` detail; Anthropic's has no
    /// code field. Google's envelope has no type either: its `status` is
    /// the canonical one of the HTTP status.
    pub fn body(self, status: u16, error_type: &str, code: Option<&str>, message: &str) -> Bytes {
        let value = match self {
            ErrorFamily::Google => {
                let mut error =
                    serde_json::json!({"code": status, "message": message, "status": google_status(status)});
                if let Some(code) = code {
                    // Google's ErrorInfo reasons are UPPER_SNAKE_CASE.
                    error["details"] = serde_json::json!([{
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": code.to_ascii_uppercase(),
                        "domain": "promptwall",
                    }]);
                }
                serde_json::json!({ "error": error })
            }
            ErrorFamily::Anthropic => {
                serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}})
            }
            ErrorFamily::OpenAi => {
                let code = code
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("promptwall_{status}"));
                serde_json::json!({"error": {"message": message, "type": error_type, "param": null, "code": code}})
            }
        };
        Bytes::from(serde_json::to_vec(&value).expect("json values serialize"))
    }
}

/// The canonical status (`google.rpc.Code` name) Google APIs pair with an
/// HTTP status.
pub fn google_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// A Google API's stream error: an unnamed `data:` event holding an error
/// envelope, which the google-genai SDKs raise as an API error.
pub fn google_sse_error(message: &str) -> Bytes {
    sse_error(
        None,
        serde_json::json!({"error": {"code": 500, "message": message, "status": "INTERNAL"}}),
    )
}

/// Anthropic's stream error event (Messages).
pub fn anthropic_sse_error(message: &str) -> Bytes {
    sse_error(
        Some("error"),
        serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}}),
    )
}

/// The Responses API's stream error event.
pub fn responses_sse_error(message: &str) -> Bytes {
    sse_error(
        Some("error"),
        serde_json::json!({"type": "error", "code": "server_error", "message": message, "param": null}),
    )
}

/// An unnamed `data:` event with an OpenAI error object, as Chat
/// Completions streams report errors.
pub fn openai_chat_sse_error(message: &str) -> Bytes {
    sse_error(
        None,
        serde_json::json!({"error": {"message": message, "type": "server_error", "param": null, "code": "promptwall_stream_broken"}}),
    )
}

/// Starts with a blank line so the event is never glued to a preceding one.
fn sse_error(name: Option<&str>, data: serde_json::Value) -> Bytes {
    Bytes::from(match name {
        Some(n) => format!("\n\nevent: {n}\ndata: {data}\n\n"),
        None => format!("\n\ndata: {data}\n\n"),
    })
}

/// The error event a Responses WebSocket client receives instead of a response.
pub fn ws_error_frame(status: u16, error_type: &str, code: &str, message: &str) -> String {
    serde_json::json!({
        "type": "error",
        "status": status,
        "error": {"type": error_type, "code": code, "message": message, "param": null}
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_match_each_provider() {
        let a: serde_json::Value =
            serde_json::from_slice(&error_body(ApiShape::ANTHROPIC_MESSAGES, 502, "api_error", "m")).unwrap();
        assert_eq!(
            a,
            serde_json::json!({"type":"error","error":{"type":"api_error","message":"m"}})
        );
        let o: serde_json::Value =
            serde_json::from_slice(&error_body(ApiShape::OPENAI_CHAT, 413, "invalid_request_error", "m")).unwrap();
        assert_eq!(
            o,
            serde_json::json!({"error":{"message":"m","type":"invalid_request_error","param":null,"code":"promptwall_413"}})
        );
    }
}
