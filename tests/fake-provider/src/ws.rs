//! The Responses WebSocket transport (`GET /v1/responses` or
//! `/backend-api/codex/responses` + Upgrade), as
//! Codex uses it: each `response.create` message gets the same events as the
//! SSE transport, one JSON text frame each; `generate:false` is a prewarm.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::record::{ConnInfo, RecordedRequest};
use crate::reply::{error_reply, full, Body, Flavor, Reply};
use crate::responses;
use crate::server::Shared;

pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers the handshake (no extensions: permessage-deflate is declined)
/// and serves the socket in the background.
pub fn accept<B: Send + 'static>(mut req: Request<B>, shared: Arc<Shared>, conn: ConnInfo, path: String) -> Reply {
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return error_reply(
            Flavor::OpenAi,
            400,
            "WebSocket upgrade without Sec-WebSocket-Key; send a valid RFC 6455 handshake.",
        );
    };
    let headers = req.headers().clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                serve(ws, shared, headers, conn, path).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    });
    Reply {
        status: 101,
        headers: vec![],
        body: full(""),
        usage: None,
    }
    .header("upgrade", "websocket")
    .header("connection", "Upgrade")
    .header("sec-websocket-accept", key)
}

async fn serve<S>(mut ws: WebSocketStream<S>, shared: Arc<Shared>, headers: HeaderMap, conn: ConnInfo, path: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue, // ping/pong: tungstenite answers pings itself
        };
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let (frames, status, usage) = frames_for(parsed.as_ref(), &headers, text.len());
        shared.recorder.push(RecordedRequest {
            seq: 0,
            transport: "ws",
            method: "WS".into(),
            path: path.clone(),
            query: None,
            version: "websocket".into(),
            headers: crate::server::header_pairs(&headers),
            body: text.into(),
            json: parsed,
            conn: conn.clone(),
            status,
            reply_usage: usage,
        });
        let delay = if frames.1 {
            shared.opts.slow_delay()
        } else {
            std::time::Duration::ZERO
        };
        for (i, frame) in frames.0.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if ws.send(Message::Text(frame)).await.is_err() {
                return;
            }
        }
    }
    let _ = ws.close(None).await;
}

type Frames = (Vec<String>, bool);

/// Frames answering one client message, the status they stand for, and usage.
fn frames_for(
    msg: Option<&Value>,
    headers: &HeaderMap,
    len: usize,
) -> (Frames, u16, Option<crate::record::ReplyUsage>) {
    let error_frame = |status: u16, message: &str| {
        json!({"type": "error", "status": status, "error": {"type": "invalid_request_error", "message": message}})
            .to_string()
    };
    let Some(msg) = msg else {
        return (
            (
                vec![error_frame(
                    400,
                    "The message is not valid JSON; send a response.create object.",
                )],
                false,
            ),
            400,
            None,
        );
    };
    if msg["type"] != "response.create" {
        return (
            (
                vec![error_frame(400, "Unsupported message type; send response.create.")],
                false,
            ),
            400,
            None,
        );
    }
    // Newer clients nest the request under `response`; older ones inline it.
    let body = if msg["response"].is_object() {
        &msg["response"]
    } else {
        msg
    };
    match responses::answer(body, headers, len) {
        Ok(a) => (
            (a.events.into_iter().map(|e| e.data).collect(), a.scenario.slow),
            200,
            Some(a.usage),
        ),
        Err(reply) => {
            let status = reply.status;
            (
                (
                    vec![error_frame(status, &crate::reply::injected_message(status))],
                    false,
                ),
                status,
                None,
            )
        }
    }
}

/// `GET /v1/responses` without WebSocket support: Codex falls back to SSE.
pub fn refuse() -> Response<Body> {
    error_reply(
        Flavor::OpenAi,
        426,
        "WebSockets are disabled on this fake provider; use POST /v1/responses.",
    )
    .into_response()
}
