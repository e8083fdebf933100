//! Inspected WebSocket relay (the Codex Responses WebSocket transport).
//!
//! promptwall terminates the WebSocket on both sides so every text message
//! can go through the pipeline: `response.create` messages from the client
//! are inspected like request bodies, and every event frame from the
//! provider is restored like an SSE event. permessage-deflate is not
//! negotiated on either side (the client's offer is dropped), which every
//! client must accept per RFC 7692.

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::body::{self, ProxyBody};
use crate::upstream::Upstream;

/// What to do with one client text message.
pub enum ClientVerdict {
    Forward(String),
    /// Don't forward; send these text frames back to the client instead.
    Refuse(Vec<String>),
}

// An audit row the exchange depends on could not be committed: the relay
// tells the client with an `error` event and closes, rather than carry on
// (or complete a response) with nothing on record.
pub use crate::audit_sink::AuditFailed;

/// Per-connection message hooks (the pipeline, with its per-connection vault).
/// They resolve once the audit rows they write are committed, so the relay
/// sends nothing on whose row is not yet durable.
pub trait MessageInspector: Send + 'static {
    fn client_text(&mut self, text: String) -> BoxFuture<'_, Result<ClientVerdict, AuditFailed>>;
    /// Restored frames to send on (a held-back tail can add one).
    fn server_text(&mut self, text: String) -> BoxFuture<'_, Result<Vec<String>, AuditFailed>>;
    /// Called once when the relay ends, with byte counts (up, down).
    fn finished(&mut self, up: u64, down: u64, error: Option<String>) -> BoxFuture<'_, ()>;
}

/// What the client is told when an audit row cannot be written.
const AUDIT_FAILED: &str =
    "promptwall could not write the audit row for this exchange, so it was stopped; see the agent's log (disk full? audit store unreachable?) and retry";

/// Ends the client side after an audit failure: an `error` event the SDK
/// surfaces, then a close with 1011 (internal error).
async fn fail_closed<C>(c_tx: &mut C)
where
    C: futures_util::Sink<Message> + Unpin,
{
    let frame = promptwall_llm::ws_error_frame(500, "server_error", "audit_unavailable", AUDIT_FAILED);
    let _ = c_tx.send(Message::Text(frame)).await;
    let close = CloseFrame {
        code: CloseCode::Error,
        reason: "promptwall: audit row not written".into(),
    };
    let _ = c_tx.send(Message::Close(Some(close))).await;
}

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("the client's WebSocket request lacks Sec-WebSocket-Key")]
    NoKey,
    #[error("cannot connect to the provider for the WebSocket: {0}")]
    Connect(String),
    /// The provider answered the upgrade with a plain HTTP response.
    #[error("provider refused the WebSocket with HTTP {}", .0.status())]
    Refused(Response<Option<Vec<u8>>>),
}

/// Headers that belong to the WebSocket handshake itself, regenerated per side.
const HANDSHAKE_HEADERS: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "upgrade",
    "connection",
    "host",
];

/// Opens the upstream WebSocket, answers the client's upgrade, and relays.
/// Returns the 101 response to send to the client, or the provider's refusal.
pub async fn relay(
    upstream: &Upstream,
    mut req: Request<Incoming>,
    upstream_uri: http::Uri,
    host: &str,
    mut inspector: Box<dyn MessageInspector>,
    max_message_bytes: usize,
) -> Result<Response<ProxyBody>, WsError> {
    let key = req.headers().get("sec-websocket-key").cloned().ok_or(WsError::NoKey)?;
    let client_upgrade = hyper::upgrade::on(&mut req);

    // Build the upstream handshake from the client's headers (auth, betas,
    // originator...), minus the per-hop handshake fields.
    let ws_uri = format!(
        "wss://{}{}",
        upstream_uri.authority().map(|a| a.as_str()).unwrap_or(host),
        upstream_uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut up_req = tungstenite::client::IntoClientRequest::into_client_request(ws_uri.as_str())
        .map_err(|e| WsError::Connect(e.to_string()))?;
    copy_end_to_end(req.headers(), up_req.headers_mut());

    let port = upstream_uri.port_u16().unwrap_or(443);
    let tcp = upstream
        .dialer
        .connect_host(host, port)
        .await
        .map_err(|e| WsError::Connect(e.to_string()))?;
    let server_name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| WsError::Connect(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(upstream.tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| WsError::Connect(format!("TLS to {host}: {e}")))?;
    // A message is inspected whole, like a request body: the same bound
    // (tungstenite's default is 64 MiB per message).
    let config = WebSocketConfig {
        max_message_size: Some(max_message_bytes),
        max_frame_size: Some(max_message_bytes),
        ..Default::default()
    };
    let (server_ws, server_resp) = match tokio_tungstenite::client_async_with_config(up_req, tls, Some(config)).await {
        Ok(r) => r,
        Err(tungstenite::Error::Http(resp)) => return Err(WsError::Refused(resp)),
        Err(e) => return Err(WsError::Connect(e.to_string())),
    };

    let mut out = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()));
    if let Some(proto) = server_resp.headers().get("sec-websocket-protocol") {
        out = out.header("sec-websocket-protocol", proto.clone());
    }
    let response = out.body(body::empty()).expect("static response parts are valid");

    // The session's log lines keep the upgrade's request id.
    let span = tracing::Span::current();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let upgraded = match client_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    inspector
                        .finished(0, 0, Some(format!("client upgrade failed: {e}")))
                        .await;
                    return;
                }
            };
            let client_ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
            pump(client_ws, server_ws, inspector).await;
        },
        span,
    ));
    Ok(response)
}

async fn pump<C, S>(client: WebSocketStream<C>, server: WebSocketStream<S>, mut inspector: Box<dyn MessageInspector>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut c_tx, mut c_rx) = client.split();
    let (mut s_tx, mut s_rx) = server.split();
    let (mut up, mut down) = (0u64, 0u64);
    let mut error = None;
    loop {
        tokio::select! {
            msg = c_rx.next() => match decode_binary(msg) {
                Some(Ok(Message::Binary(_))) => {
                    // Not UTF-8, so not JSON the pipeline can read: never
                    // forwarded uninspected. 1008 = policy violation.
                    let reason = "promptwall: binary WebSocket messages cannot be inspected; send JSON text";
                    let frame = CloseFrame { code: CloseCode::Policy, reason: reason.into() };
                    let _ = c_tx.send(Message::Close(Some(frame))).await;
                    error = Some("client sent a binary WebSocket message that cannot be inspected; closed".into());
                    break;
                }
                Some(Ok(Message::Text(text))) => {
                    up += text.len() as u64;
                    match inspector.client_text(text).await {
                        Ok(ClientVerdict::Forward(t)) => if let Err(e) = s_tx.send(Message::Text(t)).await { error = Some(e.to_string()); break },
                        Ok(ClientVerdict::Refuse(replies)) => {
                            for r in replies {
                                if c_tx.send(Message::Text(r)).await.is_err() { break }
                            }
                        }
                        Err(AuditFailed(e)) => {
                            fail_closed(&mut c_tx).await;
                            error = Some(format!("audit row not written, WebSocket closed: {e}"));
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => { let _ = s_tx.send(Message::Close(frame)).await; break }
                Some(Ok(other)) => { up += other.len() as u64; if s_tx.send(other).await.is_err() { break } }
                Some(Err(e)) => { error = Some(format!("client side: {e}")); break }
                None => break,
            },
            msg = s_rx.next() => match decode_binary(msg) {
                Some(Ok(Message::Text(text))) => {
                    down += text.len() as u64;
                    let frames = match inspector.server_text(text).await {
                        Ok(frames) => frames,
                        Err(AuditFailed(e)) => {
                            // The terminal event is held back: the client never
                            // sees a clean completion of an unrecorded response.
                            fail_closed(&mut c_tx).await;
                            error = Some(format!("audit row not written, WebSocket closed: {e}"));
                            break;
                        }
                    };
                    let mut gone = false;
                    for frame in frames {
                        if c_tx.send(Message::Text(frame)).await.is_err() { gone = true; break }
                    }
                    if gone { break }
                }
                Some(Ok(Message::Close(frame))) => { let _ = c_tx.send(Message::Close(frame)).await; break }
                Some(Ok(other)) => { down += other.len() as u64; if c_tx.send(other).await.is_err() { break } }
                Some(Err(e)) => { error = Some(format!("provider side: {e}")); break }
                None => break,
            },
        }
    }
    let _ = c_tx.close().await;
    let _ = s_tx.close().await;
    inspector.finished(up, down, error).await;
}

/// A UTF-8 binary message is inspected (and sent on) as text: the JSON in it
/// is what the pipeline reads, whichever frame type carried it.
fn decode_binary<E>(msg: Option<Result<Message, E>>) -> Option<Result<Message, E>> {
    match msg {
        Some(Ok(Message::Binary(data))) => Some(Ok(match String::from_utf8(data) {
            Ok(text) => Message::Text(text),
            Err(e) => Message::Binary(e.into_bytes()),
        })),
        other => other,
    }
}

fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    let mut hop = from.clone();
    crate::headers::strip_hop_by_hop(&mut hop);
    for (name, value) in hop.iter() {
        if HANDSHAKE_HEADERS.contains(&name.as_str()) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
    to.remove("sec-websocket-extensions");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Refuses any message containing "SECRET"; records what it saw.
    struct Refuser(Arc<Mutex<Vec<String>>>);

    impl MessageInspector for Refuser {
        fn client_text(&mut self, text: String) -> BoxFuture<'_, Result<ClientVerdict, AuditFailed>> {
            self.0.lock().unwrap().push(text.clone());
            let verdict = if text.contains("SECRET") {
                ClientVerdict::Refuse(vec![r#"{"type":"error","status":422}"#.into()])
            } else {
                ClientVerdict::Forward(text)
            };
            Box::pin(async { Ok(verdict) })
        }
        fn server_text(&mut self, text: String) -> BoxFuture<'_, Result<Vec<String>, AuditFailed>> {
            Box::pin(async move { Ok(vec![text.replace("[[X]]", "restored")]) })
        }
        fn finished(&mut self, _: u64, _: u64, _: Option<String>) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    async fn pair() -> (
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let a = WebSocketStream::from_raw_socket(a, Role::Client, None);
        let b = WebSocketStream::from_raw_socket(b, Role::Server, None);
        tokio::join!(a, b)
    }

    /// Binary frames are inspected like text, and bytes that are not UTF-8
    /// close the socket instead of reaching the provider.
    #[tokio::test]
    async fn binary_messages_are_inspected_or_refused_never_relayed_raw() {
        // Bounded: a regression shows up as a missing reply, not a hang.
        tokio::time::timeout(std::time::Duration::from_secs(20), binary_scenario())
            .await
            .expect("the relay stopped answering");
    }

    async fn binary_scenario() {
        let (mut client, proxy_client_side) = pair().await;
        let (proxy_server_side, mut server) = pair().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let relay = tokio::spawn(pump(
            proxy_client_side,
            proxy_server_side,
            Box::new(Refuser(seen.clone())),
        ));

        client
            .send(Message::Binary(
                br#"{"type":"response.create","input":"SECRET"}"#.to_vec(),
            ))
            .await
            .unwrap();
        let reply = client.next().await.unwrap().unwrap();
        assert_eq!(reply, Message::Text(r#"{"type":"error","status":422}"#.into()));

        client
            .send(Message::Binary(br#"{"input":"fine"}"#.to_vec()))
            .await
            .unwrap();
        assert_eq!(
            server.next().await.unwrap().unwrap(),
            Message::Text(r#"{"input":"fine"}"#.into())
        );
        server.send(Message::Binary(b"answer [[X]]".to_vec())).await.unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::Text("answer restored".into())
        );

        client.send(Message::Binary(vec![0xff, 0xfe, 0x00])).await.unwrap();
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Policy),
            other => panic!("expected a policy close, got {other:?}"),
        }
        relay.await.unwrap();
        // The provider got only the inspected text message, then the close.
        while let Some(Ok(msg)) = server.next().await {
            assert!(
                matches!(msg, Message::Close(_)),
                "uninspected message reached the provider: {msg:?}"
            );
        }
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    /// An inspector whose audit store refuses every write (disk full).
    fn failing_session() -> Box<dyn MessageInspector> {
        let config = crate::config::Config {
            machine_id: Some("test-machine".into()),
            ..Default::default()
        };
        let inspector = Arc::new(crate::pipeline::Inspector::new(&config).unwrap());
        let sink: crate::audit_sink::AuditSink = Arc::new(|_| Box::pin(async { Err("disk full".to_string()) }));
        let recorder = crate::audit_sink::Recorder::new(
            sink,
            Arc::new(|_| {}),
            crate::stats::Stats::default(),
            crate::audit_space::AuditSpace::new("", 0),
        );
        let base = crate::exchange::Exchange::new(crate::exchange::Listener::Transparent, Default::default());
        Box::new(crate::ws_session::WsSession::new(inspector, base, recorder))
    }

    /// The client gets an `error` event and a 1011 close, never the
    /// provider's `response.completed`, when the row cannot be committed.
    #[tokio::test]
    async fn a_response_whose_audit_row_fails_ends_in_an_error_not_a_completion() {
        tokio::time::timeout(std::time::Duration::from_secs(20), failing_completion())
            .await
            .expect("the relay stopped answering");
    }

    async fn failing_completion() {
        let (mut client, proxy_client_side) = pair().await;
        let (proxy_server_side, mut server) = pair().await;
        let relay = tokio::spawn(pump(proxy_client_side, proxy_server_side, failing_session()));

        let create = r#"{"type":"response.create","model":"gpt-5","input":"hi"}"#;
        client.send(Message::Text(create.into())).await.unwrap();
        assert_eq!(server.next().await.unwrap().unwrap(), Message::Text(create.into()));
        let delta = r#"{"type":"response.output_text.delta","item_id":"m","content_index":0,"delta":"hello"}"#;
        let done = r#"{"type":"response.completed","response":{"id":"resp_1","model":"gpt-5"}}"#;
        server.send(Message::Text(delta.into())).await.unwrap();
        server.send(Message::Text(done.into())).await.unwrap();

        assert_eq!(client.next().await.unwrap().unwrap(), Message::Text(delta.into()));
        let Message::Text(error) = client.next().await.unwrap().unwrap() else {
            panic!("expected an error event")
        };
        let error: serde_json::Value = serde_json::from_str(&error).unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["code"], "audit_unavailable");
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Error),
            other => panic!("expected a 1011 close, got {other:?}"),
        }
        while let Some(Ok(msg)) = client.next().await {
            assert!(
                !matches!(&msg, Message::Text(t) if t.contains("response.completed")),
                "{msg:?}"
            );
        }
        relay.await.unwrap();
    }

    /// A message audited on its own (here `response.append`) is not sent
    /// when its row cannot be committed.
    #[tokio::test]
    async fn a_message_whose_audit_row_fails_is_not_sent() {
        tokio::time::timeout(std::time::Duration::from_secs(20), failing_message())
            .await
            .expect("the relay stopped answering");
    }

    async fn failing_message() {
        let (mut client, proxy_client_side) = pair().await;
        let (proxy_server_side, mut server) = pair().await;
        let relay = tokio::spawn(pump(proxy_client_side, proxy_server_side, failing_session()));
        let append = r#"{"type":"response.append","input":"more"}"#;
        client.send(Message::Text(append.into())).await.unwrap();
        let Message::Text(error) = client.next().await.unwrap().unwrap() else {
            panic!("expected an error event")
        };
        assert!(error.contains("audit_unavailable"), "{error}");
        relay.await.unwrap();
        while let Some(Ok(msg)) = server.next().await {
            assert!(
                matches!(msg, Message::Close(_)),
                "unrecorded message reached the provider: {msg:?}"
            );
        }
    }
}
