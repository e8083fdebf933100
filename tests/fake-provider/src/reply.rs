//! Response plumbing shared by every API shape: bodies, SSE framing with
//! pacing, error envelopes in each provider's own format, ids.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};

use crate::record::ReplyUsage;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `prefix_fake0001`-style ids, unique per process.
pub fn next_id(prefix: &str) -> String {
    format!("{prefix}_fake{:04}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One server-sent event (or WebSocket text frame: `data` only).
#[derive(Clone, Debug)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub fn named(name: &str, data: Value) -> Event {
        Event {
            name: Some(name.to_string()),
            data: data.to_string(),
        }
    }

    pub fn data(data: impl Into<String>) -> Event {
        Event {
            name: None,
            data: data.into(),
        }
    }

    pub fn to_sse(&self) -> Bytes {
        let mut out = String::new();
        if let Some(name) = &self.name {
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&self.data);
        out.push_str("\n\n");
        Bytes::from(out)
    }
}

/// What a handler decided: status, headers, body, and the usage it reported.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    pub usage: Option<ReplyUsage>,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: full(value.to_string()),
            usage: None,
        }
    }

    /// JSON with a `x_fake_padding` member of about `pad` bytes (clients ignore unknown members).
    pub fn json_padded(status: u16, mut value: Value, pad: usize) -> Reply {
        if pad > 0 {
            if let Some(obj) = value.as_object_mut() {
                obj.insert("x_fake_padding".into(), Value::String("x".repeat(pad)));
            }
        }
        Reply::json(status, &value)
    }

    /// An SSE stream of `events`, paced by `delay`, padded by a leading
    /// comment of about `pad` bytes (SSE parsers skip comments).
    pub fn sse(events: Vec<Event>, delay: Duration, pad: usize) -> Reply {
        let lead = (pad > 0).then(|| Bytes::from(format!(": {}\n\n", "x".repeat(pad))));
        let pieces = events.iter().map(Event::to_sse).collect();
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "text/event-stream; charset=utf-8".into()),
                ("cache-control", "no-cache".into()),
            ],
            body: paced_body(lead, pieces, delay),
            usage: None,
        }
    }

    /// A body written as `pieces`, one write each, `delay` apart, with
    /// status 200 and `content_type` (framings other than `\n\n` SSE).
    pub fn stream(pieces: Vec<Bytes>, delay: Duration, content_type: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", content_type.to_string())],
            body: paced_body(None, pieces, delay),
            usage: None,
        }
    }

    pub fn with_usage(mut self, usage: ReplyUsage) -> Reply {
        self.usage = Some(usage);
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp.headers_mut()
            .insert("x-fake-provider", HeaderValue::from_static("1"));
        resp
    }
}

/// Sends `lead` at once, then `pieces` with `delay` between them; stops
/// when the client goes away.
fn paced_body(lead: Option<Bytes>, pieces: Vec<Bytes>, delay: Duration) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        if let Some(lead) = lead {
            if tx.send(lead).await.is_err() {
                return;
            }
        }
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(piece).await.is_err() {
                return; // client went away
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed()
}

/// Re-frames `body` into pieces of at most `n` bytes, yielding between them
/// so each goes out in its own write (`x-fake-split-bytes`): SSE events and
/// JSON answers then arrive split across the reader's chunks.
pub fn split_frames(body: Body, n: usize) -> Body {
    use futures_util::StreamExt;
    let pieces = http_body_util::BodyStream::new(body).flat_map(move |frame| {
        let out: Vec<Bytes> = match frame {
            Ok(f) => match f.into_data() {
                Ok(data) => data.chunks(n).map(Bytes::copy_from_slice).collect(),
                Err(_) => Vec::new(), // trailers: the fake sends none
            },
            Err(never) => match never {},
        };
        futures_util::stream::iter(out)
    });
    let paced = pieces.then(|b| async move {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(Frame::data(b))
    });
    BodyExt::boxed(StreamBody::new(paced))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Anthropic,
    OpenAi,
    /// Google APIs (Gemini): `{"error": {"code", "message", "status"}}`.
    Google,
}

/// The provider's own error body and headers for `status`.
pub fn error_reply(flavor: Flavor, status: u16, message: &str) -> Reply {
    let retry = matches!(status, 429 | 503 | 529);
    let reply = match flavor {
        Flavor::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            let id = next_id("req");
            Reply::json(
                status,
                &json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": id}),
            )
            .header("request-id", id)
            .header("x-should-retry", if retry || status >= 500 { "true" } else { "false" })
        }
        Flavor::OpenAi => {
            let (kind, code) = match status {
                400 => ("invalid_request_error", Value::Null),
                401 => ("invalid_request_error", json!("invalid_api_key")),
                404 => ("invalid_request_error", json!("not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                _ => ("server_error", Value::Null),
            };
            Reply::json(
                status,
                &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
            )
            .header("x-request-id", next_id("req"))
        }
        Flavor::Google => {
            let mut error = json!({"code": status, "message": message, "status": google_status(status)});
            if status == 429 {
                error["details"] = json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]);
            }
            Reply::json(status, &json!({ "error": error }))
        }
    };
    if retry {
        reply.header("retry-after", "1")
    } else {
        reply
    }
}

/// The `google.rpc.Code` name Google APIs give with an HTTP status.
pub fn google_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// The message the fake uses for an injected status.
pub fn injected_message(status: u16) -> String {
    match status {
        429 => "Rate limited by the fake provider (injected).".into(),
        529 => "Overloaded (injected by the fake provider).".into(),
        _ => format!("Injected status {status} from the fake provider."),
    }
}
