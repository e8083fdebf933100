//! The explicit listener against a local plain-HTTP upstream: header
//! forwarding, hop-by-hop handling, unbuffered streaming, errors and audit rows.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use promptwall_audit::AuditRecord;
use promptwall_proxy::app::{self, Deps};
use promptwall_proxy::audit_sink::AuditSink;
use promptwall_proxy::config::{Config, ProviderConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

#[path = "../llm/tests/common/fake_shape.rs"]
mod fake_shape;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(http::request::Parts, Bytes)>>>);

/// Upstream: `/v1/messages` echoes JSON; `/v1/stream` sends one SSE event,
/// then waits for the test's go-ahead before sending the rest.
async fn start_upstream(seen: Seen, release: Arc<Mutex<Option<oneshot::Receiver<()>>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let release = release.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    let release = release.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let path = parts.uri.path().to_string();
                        seen.0.lock().unwrap().push((parts, body));
                        if path == "/v1/stream" {
                            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
                            let gate = release.lock().unwrap().take();
                            tokio::spawn(async move {
                                tx.send(Ok(Frame::data(Bytes::from_static(
                                    b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
                                ))))
                                .await
                                .unwrap();
                                if let Some(gate) = gate {
                                    let _ = gate.await;
                                }
                                let _ = tx
                                    .send(Ok(Frame::data(Bytes::from_static(
                                        b"event: message_stop\ndata: {}\n\n",
                                    ))))
                                    .await;
                            });
                            let stream = tokio_stream(rx);
                            let resp = Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(StreamBody::new(stream).boxed())
                                .unwrap();
                            return Ok::<_, Infallible>(resp);
                        }
                        if path == "/v1/fake/generate" {
                            let resp = Response::builder()
                                .header("content-type", "application/json")
                                .body(
                                    Full::new(Bytes::from_static(
                                        br#"{"text":"Sent to [[EMAIL_001]].","usage":{"in":12,"out":4}}"#,
                                    ))
                                    .map_err(|n| match n {})
                                    .boxed(),
                                )
                                .unwrap();
                            return Ok(resp);
                        }
                        if path == "/v1/ratelimited" {
                            let resp = Response::builder()
                                .status(429)
                                .header("retry-after", "7")
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#)).map_err(|n| match n {}).boxed())
                                .unwrap();
                            return Ok(resp);
                        }
                        let resp = Response::builder()
                            .header("content-type", "application/json")
                            .header("x-upstream", "yes")
                            .body(
                                Full::new(Bytes::from_static(
                                    br#"{"id":"msg_1","type":"message","usage":{"input_tokens":3,"output_tokens":5}}"#,
                                ))
                                .map_err(|n| match n {})
                                .boxed(),
                            )
                            .unwrap();
                        Ok(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn tokio_stream(
    mut rx: mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

struct Harness {
    proxy: SocketAddr,
    seen: Seen,
    rows: Arc<Mutex<Vec<AuditRecord>>>,
    release: Option<oneshot::Sender<()>>,
    _running: app::Running,
}

/// How the test's audit store answers a commit.
#[derive(Clone)]
enum Store {
    Commits,
    /// Commits once the test adds a permit.
    WaitsFor(Arc<tokio::sync::Semaphore>),
    Fails,
    /// Fails while the flag is set.
    FailsWhile(Arc<std::sync::atomic::AtomicBool>),
}

async fn harness(upstream_override: Option<&str>) -> Harness {
    harness_with_store(upstream_override, Store::Commits).await
}

async fn harness_with_store(upstream_override: Option<&str>, store: Store) -> Harness {
    harness_with(upstream_override, store, |_| {}).await
}

async fn harness_with(upstream_override: Option<&str>, store: Store, tweak: impl FnOnce(&mut Config)) -> Harness {
    harness_full(upstream_override, store, promptwall_llm::Shapes::builtin(), tweak).await
}

async fn harness_full(
    upstream_override: Option<&str>,
    store: Store,
    shapes: promptwall_llm::Shapes,
    tweak: impl FnOnce(&mut Config),
) -> Harness {
    let seen = Seen::default();
    let (release_tx, release_rx) = oneshot::channel();
    let upstream = start_upstream(seen.clone(), Arc::new(Mutex::new(Some(release_rx)))).await;
    let mut config = Config::default();
    config.listen.explicit = Some("127.0.0.1:0".parse().unwrap());
    config.listen.transparent = None;
    config.upstream.mark = 0;
    let base = upstream_override
        .map(str::to_string)
        .unwrap_or_else(|| format!("http://{upstream}"));
    config.providers = vec![
        ProviderConfig {
            name: "anthropic".into(),
            hosts: vec!["api.anthropic.com".into()],
            upstream: base.clone(),
            paths: vec!["/v1/messages".into(), "/v1/stream".into(), "/v1/ratelimited".into()],
        },
        ProviderConfig {
            name: "openai".into(),
            hosts: vec!["api.openai.com".into()],
            upstream: base,
            paths: vec!["/v1/".into()],
        },
    ];
    tweak(&mut config);
    let rows = Arc::new(Mutex::new(Vec::new()));
    let sink_rows = rows.clone();
    let audit: AuditSink = Arc::new(move |row| {
        let sink_rows = sink_rows.clone();
        let store = store.clone();
        Box::pin(async move {
            match store {
                Store::Commits => {}
                Store::WaitsFor(permits) => permits.acquire().await.unwrap().forget(),
                Store::Fails => return Err("disk full".to_string()),
                Store::FailsWhile(flag) if flag.load(std::sync::atomic::Ordering::SeqCst) => {
                    return Err("disk full".to_string())
                }
                Store::FailsWhile(_) => {}
            }
            sink_rows.lock().unwrap().push(row);
            Ok(())
        })
    });
    let running = app::start(
        config,
        Deps {
            audit,
            tls: None,
            origins: None,
            shapes,
        },
    )
    .await
    .unwrap();
    Harness {
        proxy: running.explicit.unwrap(),
        seen,
        rows,
        release: Some(release_tx),
        _running: running,
    }
}

/// Sends a raw HTTP/1.1 request and returns the raw response text.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn forwards_provider_headers_unchanged_and_strips_hop_by_hop() {
    let h = harness(None).await;
    let body = r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/messages?beta=true HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: sk-ant-oat01-abc\r\nanthropic-version: 2023-06-01\r\nanthropic-beta: claude-code-20250219,context-1m-2025-08-07\r\nx-custom-unknown: kept\r\nConnection: close, x-drop-me\r\nx-drop-me: 1\r\nKeep-Alive: timeout=5\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(h.proxy, &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("x-upstream: yes"));
    let seen = h.seen.0.lock().unwrap();
    let (parts, got_body) = &seen[0];
    assert_eq!(parts.uri.path_and_query().unwrap().as_str(), "/v1/messages?beta=true");
    assert_eq!(
        parts.headers["anthropic-beta"],
        "claude-code-20250219,context-1m-2025-08-07"
    );
    assert_eq!(parts.headers["anthropic-version"], "2023-06-01");
    assert_eq!(parts.headers["x-api-key"], "sk-ant-oat01-abc");
    assert_eq!(parts.headers["x-custom-unknown"], "kept");
    assert!(
        !parts.headers.contains_key("x-drop-me"),
        "Connection-listed header must not be forwarded"
    );
    assert!(!parts.headers.contains_key("keep-alive"));
    assert_eq!(
        got_body.as_ref(),
        body.as_bytes(),
        "unchanged body must be forwarded byte-exact"
    );
    drop(seen);
    let rows = h.rows.lock().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].provider.as_deref(), Some("anthropic"));
    assert_eq!(rows[0].shape.as_deref(), Some("anthropic.messages"));
    assert_eq!(rows[0].status, 200);
    assert_eq!(rows[0].model.as_deref(), Some("claude-x"));
    assert_eq!(
        (rows[0].input_tokens, rows[0].output_tokens),
        (Some(3), Some(5)),
        "usage read from the JSON answer"
    );
    assert_eq!(rows[0].listener, "explicit");
    // The explicit listener finds the local client process through /proc.
    assert_eq!(rows[0].pid, Some(std::process::id()), "local client is attributed");
    assert!(
        rows[0].exe.as_deref().unwrap_or("").contains("forwarding"),
        "{:?}",
        rows[0].exe
    );
}

#[tokio::test]
async fn streams_events_as_they_arrive() {
    let mut h = harness(None).await;
    let mut s = TcpStream::connect(h.proxy).await.unwrap();
    let body = r#"{"model":"m","stream":true}"#;
    // /v1/stream is not an LLM shape, so this also covers pass-through streaming.
    let req = format!(
        "POST /v1/stream HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    // The first event must arrive while the upstream is still holding the rest.
    while !got.contains("event: ping") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("first event was buffered")
            .unwrap();
        assert!(n > 0, "connection closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(!got.contains("message_stop"));
    h.release.take().unwrap().send(()).unwrap();
    while !got.contains("message_stop") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn upstream_errors_are_returned_unmodified() {
    let h = harness(None).await;
    let resp = raw(h.proxy, "POST /v1/ratelimited HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}").await;
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(resp.contains("retry-after: 7"));
    assert!(resp.ends_with(r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#));
}

#[tokio::test]
async fn malformed_json_gets_a_client_format_error_and_an_audit_row() {
    let h = harness(None).await;
    let resp = raw(h.proxy, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nConnection: close\r\nContent-Length: 9\r\n\r\n{\"model\":").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let json: serde_json::Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert!(h.seen.0.lock().unwrap().is_empty(), "nothing reaches the provider");
    let rows = h.rows.lock().unwrap();
    assert_eq!(rows[0].status, 400);
    assert_eq!(rows[0].verdict, "error");
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_in_openai_format() {
    // Port 9 on loopback: nothing listens there.
    let h = harness(Some("http://127.0.0.1:9")).await;
    let body = r#"{"model":"gpt-x","messages":[]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(h.proxy, &req).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    let json: serde_json::Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot reach the provider"));
    let rows = h.rows.lock().unwrap();
    assert_eq!(rows[0].status, 502);
    assert_eq!(rows[0].provider.as_deref(), Some("openai"));
    assert!(rows[0].error.as_deref().unwrap().contains("unreachable"));
}

#[tokio::test]
async fn oversized_body_is_refused_with_413() {
    let h = harness(None).await;
    let big = "x".repeat(40 * 1024 * 1024);
    let req = format!("POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", big.len());
    let mut s = TcpStream::connect(h.proxy).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    // The proxy may answer before the whole body is sent; ignore write errors.
    let _ = s.write_all(big.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let resp = String::from_utf8_lossy(&out);
    assert!(resp.starts_with("HTTP/1.1 413"), "{}", &resp[..resp.len().min(200)]);
    assert!(h.seen.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_audited() {
    let h = harness(None).await;
    let s = open_stream(h.proxy).await;
    drop(s);
    // Let the upstream continue; the relay then notices the client is gone.
    let mut h = h;
    h.release.take().unwrap().send(()).unwrap();
    for _ in 0..100 {
        if !h.rows.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = h.rows.lock().unwrap();
    assert_eq!(rows.len(), 1, "the request must still get its audit row");
    assert_eq!(rows[0].status, 200);
}

const RATE_LIMIT_BODY: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;

/// A `/v1/stream` request whose first event has arrived; the upstream holds
/// the rest until the test releases it.
async fn open_stream(proxy: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let body = r#"{"model":"m"}"#;
    let req = format!(
        "POST /v1/stream HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("event: ping") {
        let n = s.read(&mut buf).await.unwrap();
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    s
}

/// Reads what arrives within `wait`; stops at EOF.
async fn read_for(s: &mut TcpStream, got: &mut Vec<u8>, wait: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_content_length_answer_completes_only_after_its_audit_row_commits() {
    let permits = Arc::new(tokio::sync::Semaphore::new(0));
    let h = harness_with_store(None, Store::WaitsFor(permits.clone())).await;
    let mut s = TcpStream::connect(h.proxy).await.unwrap();
    // A non-LLM path: no inspection stage buffers it, so only the commit holds it back.
    s.write_all(b"POST /v1/ratelimited HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}").await.unwrap();
    let mut got = Vec::new();
    let closed = read_for(&mut s, &mut got, Duration::from_millis(700)).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        !closed && !text.ends_with(RATE_LIMIT_BODY),
        "the last byte went out before the row was committed: {text}"
    );
    assert!(h.rows.lock().unwrap().is_empty());
    permits.add_permits(1);
    assert!(
        read_for(&mut s, &mut got, Duration::from_secs(10)).await,
        "the answer never completed after the commit"
    );
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 429") && text.ends_with(RATE_LIMIT_BODY),
        "{text}"
    );
    assert_eq!(h.rows.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_answer_whose_audit_row_cannot_be_written_does_not_complete() {
    let h = harness_with_store(None, Store::Fails).await;
    let body = r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!("POST /v1/ratelimited HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let resp = raw(h.proxy, &req).await;
    let (head, got_body) = resp.split_once("\r\n\r\n").expect("headers arrive");
    let declared: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length kept");
    assert!(
        got_body.len() < declared,
        "a complete answer went out without its audit row: {resp}"
    );
}

/// The full-disk case: once a row fails, nothing more reaches the provider
/// (it would leave unaudited) until a row commits again.
#[tokio::test]
async fn while_the_audit_store_fails_new_requests_are_refused_before_forwarding() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = harness_with_store(None, Store::FailsWhile(failing.clone())).await;
    let post = |path: &str| {
        let body = r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    };
    // The first failure is only known after the exchange.
    raw(h.proxy, &post("/v1/ratelimited")).await;
    assert_eq!(h.seen.0.lock().unwrap().len(), 1);
    let resp = raw(h.proxy, &post("/v1/messages")).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(
        resp.contains("\"type\":\"error\"") && resp.contains("audit"),
        "Anthropic envelope naming the cause: {resp}"
    );
    assert_eq!(
        h.seen.0.lock().unwrap().len(),
        1,
        "the refused request never reached the provider"
    );

    // The store recovers: the next refusal's row commits, and requests flow again.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let resp = raw(h.proxy, &post("/v1/messages")).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    let resp = raw(h.proxy, &post("/v1/messages")).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(h.seen.0.lock().unwrap().len(), 2);
}

/// A full disk is seen before the first prompt leaves: while the audit
/// store's filesystem is below `[audit] min_free_bytes`, requests are
/// refused before forwarding (here the threshold is above any disk).
#[tokio::test]
async fn a_nearly_full_audit_disk_refuses_before_the_first_request_is_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/audit.db", dir.path().display());
    let h = harness_with(None, Store::Commits, |c| {
        c.audit.url = url;
        c.audit.min_free_bytes = u64::MAX;
    })
    .await;
    let body = r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!("POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let resp = raw(h.proxy, &req).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("min_free_bytes"), "{resp}");
    assert!(h.seen.0.lock().unwrap().is_empty(), "nothing reached the provider");
    assert_eq!(h.rows.lock().unwrap().len(), 1, "the refusal itself is audited");
}

/// An inspected WebSocket is an exchange in flight like any other: past
/// `[limits] max_inspected_exchanges` its upgrade gets a 503, not a session
/// outside the memory budget.
#[tokio::test]
async fn a_websocket_upgrade_past_the_exchange_cap_is_refused() {
    let h = harness_with(None, Store::Commits, |c| c.limits.max_inspected_exchanges = 1).await;
    // One streaming exchange holds the only slot.
    let s = open_stream(h.proxy).await;
    let upgrade = "GET /v1/responses HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut ws = TcpStream::connect(h.proxy).await.unwrap();
    ws.write_all(upgrade.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    read_for(&mut ws, &mut answer, Duration::from_secs(2)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after"), "{text}");
    drop(s);
}

/// A shape the proxy has never heard of, registered by the embedder (here
/// the test): the request path classifies, inspects, restores and audits it
/// with no other code naming it.
#[tokio::test]
async fn a_shape_registered_by_the_embedder_is_routed_inspected_restored_and_audited() {
    let shapes = promptwall_llm::Shapes::builtin().with(&fake_shape::FAKE);
    let h = harness_full(None, Store::Commits, shapes, |_| {}).await;
    let body = r#"{"model":"fake-1","prompt":"write to ann@example.com"}"#;
    let req = format!(
        "POST /v1/fake/generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(h.proxy, &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("Sent to ann@example.com."), "restored: {resp}");
    let request_id = resp
        .lines()
        .find_map(|l| l.strip_prefix("x-promptwall-request-id: "))
        .expect("the answer names its request id")
        .to_string();
    let seen = h.seen.0.lock().unwrap();
    assert_eq!(
        std::str::from_utf8(&seen[0].1).unwrap(),
        r#"{"model":"fake-1","prompt":"write to [[EMAIL_001]]"}"#
    );
    let rows = h.rows.lock().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].shape.as_deref(), Some("fake.generate"));
    assert!(rows[0].llm);
    assert_eq!(rows[0].verdict, "redacted");
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (Some(12), Some(4)));
    assert_eq!(rows[0].findings.get("email"), Some(&1));
    assert_eq!(rows[0].request_id, request_id, "the header finds the row");
}
