//! Memory bounds (issue 18, item 13): a flood of large bodies is held to the
//! in-flight byte budget and answered 503 in the client's own format, the
//! number of inspected exchanges is capped, and a TLS client that never
//! finishes its handshake is dropped, on both TLS listeners.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use promptwall_proxy::app::{self, Deps};
use promptwall_proxy::audit_sink::AuditSink;
use promptwall_proxy::config::{Config, ProviderConfig};
use promptwall_proxy::origin::{ConnectionOrigin, OriginLookup};
use promptwall_proxy::transparent::OriginSource;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const MIB: usize = 1 << 20;
/// Bound on how long a test waits for something that must happen (not a
/// timing assertion: the configured timeouts are far shorter).
const PATIENCE: Duration = Duration::from_secs(30);

/// Upstream: a streaming request (`"stream":true`) gets an SSE answer whose
/// end waits for `gate`; anything else a small JSON message.
async fn start_upstream(gate: watch::Receiver<bool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let gate = gate.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let gate = gate.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let hold = memchr_stream(&body);
                        let resp = if hold {
                            let events = futures_util::stream::unfold(0, move |step| {
                                let mut gate = gate.clone();
                                async move {
                                    let event: &'static [u8] = match step {
                                        0 => b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
                                        1 => {
                                            let _ = gate.wait_for(|open| *open).await;
                                            b"data: [DONE]\n\n"
                                        }
                                        _ => return None,
                                    };
                                    Some((Ok::<_, Infallible>(Frame::data(Bytes::from_static(event))), step + 1))
                                }
                            });
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(StreamBody::new(events).boxed())
                        } else {
                            Response::builder().header("content-type", "application/json").body(
                                Full::new(Bytes::from_static(
                                    br#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":1,"output_tokens":1}}"#,
                                ))
                                .map_err(|n| match n {})
                                .boxed(),
                            )
                        };
                        Ok::<_, Infallible>(resp.unwrap())
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

fn memchr_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
}

fn base_config(upstream: SocketAddr) -> Config {
    let mut config = Config::default();
    config.listen.explicit = Some("127.0.0.1:0".parse().unwrap());
    config.listen.transparent = None;
    config.upstream.mark = 0;
    let base = format!("http://{upstream}");
    config.providers = vec![
        ProviderConfig {
            name: "anthropic".into(),
            hosts: vec!["api.anthropic.com".into()],
            upstream: base.clone(),
            paths: vec!["/v1/messages".into()],
        },
        ProviderConfig {
            name: "openai".into(),
            hosts: vec!["api.openai.com".into()],
            upstream: base,
            paths: vec!["/v1/".into()],
        },
    ];
    config
}

fn audit() -> AuditSink {
    Arc::new(|_row| Box::pin(async { Ok(()) }))
}

async fn start(config: Config, tls: Option<Arc<rustls::ServerConfig>>, origins: Option<OriginSource>) -> app::Running {
    app::start(
        config,
        Deps {
            audit: audit(),
            tls,
            origins,
            shapes: promptwall_llm::Shapes::builtin(),
        },
    )
    .await
    .unwrap()
}

/// Sends `head` (and `body`), then reads the response head and whatever
/// body arrives until the server closes.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // The answer may come before the body is sent: write and read at once.
    let (mut rd, mut wr) = s.into_split();
    let body = body.to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&body).await;
        wr
    });
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, rd.read_to_end(&mut out))
        .await
        .expect("the agent answered")
        .ok();
    drop(writer);
    String::from_utf8_lossy(&out).into_owned()
}

/// A request whose body stops one byte short: it stays in flight.
async fn stalled(addr: SocketAddr, path: &str, len: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b' '; len - 1]).await.unwrap();
    s
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn json_of(resp: &str) -> serde_json::Value {
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {resp}"))
}

#[tokio::test]
async fn a_body_flood_is_held_to_the_byte_budget_and_answered_503_in_the_client_format() {
    let (_open, gate) = watch::channel(true);
    let upstream = start_upstream(gate).await;
    let mut config = base_config(upstream);
    config.limits.max_request_bytes = 4 * MIB;
    config.limits.max_inflight_request_bytes = 8 * MIB;
    let running = start(config, None, None).await;
    let proxy = running.explicit.unwrap();
    let admission = &running.proxy.admission;

    // Two 3 MiB bodies in flight (stalled one byte short) hold 6 MiB.
    let first = stalled(proxy, "/v1/messages", 3 * MIB).await;
    let second = stalled(proxy, "/v1/chat/completions", 3 * MIB).await;
    wait_until("two bodies charged", || admission.in_flight_bytes() == 6 * MIB).await;

    // A third declared 3 MiB body does not fit: 503 before it is read, in
    // the Anthropic envelope, with Retry-After.
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        3 * MIB
    );
    let resp = exchange(proxy, &head, &[]).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("retry-after: 1\r\n"), "{resp}");
    let v = json_of(&resp);
    assert_eq!(v["type"], "error", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("max_inflight_request_bytes") && msg.contains("retry"),
        "{msg}"
    );

    // A chunked body is refused at the chunk that crosses the budget, in the
    // OpenAI envelope this time.
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut chunk = format!("{:x}\r\n", 3 * MIB).into_bytes();
    chunk.extend(vec![b' '; 3 * MIB]);
    let resp = exchange(proxy, head, &chunk).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    let v = json_of(&resp);
    assert!(v.get("type").is_none() && v["error"]["message"].is_string(), "{v}");
    assert!(admission.in_flight_bytes() <= 8 * MIB);

    // The stalled clients go away: their charge is given back, and the
    // agent serves the next request.
    drop((first, second));
    wait_until("charges given back", || admission.in_flight_bytes() == 0).await;
    let body = r#"{"model":"claude-x","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}"#;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let resp = exchange(proxy, &head, body.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    wait_until("the exchange is over", || admission.in_flight_exchanges() == 0).await;
    assert_eq!(admission.in_flight_bytes(), 0);
}

#[tokio::test]
async fn inspected_exchanges_past_the_cap_get_503_until_one_ends() {
    let (open, gate) = watch::channel(false);
    let upstream = start_upstream(gate).await;
    let mut config = base_config(upstream);
    config.limits.max_inspected_exchanges = 2;
    let running = start(config, None, None).await;
    let proxy = running.explicit.unwrap();

    let head = |stream: bool| {
        let body = format!(r#"{{"model":"gpt-x","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#);
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // A client stalled mid-body holds no slot, only its (declared) bytes.
    let _staller = stalled(proxy, "/v1/chat/completions", 1000).await;
    wait_until("the staller's bytes charged", || {
        running.proxy.admission.in_flight_bytes() == 1000
    })
    .await;
    // Two streams in progress (the upstream holds their end).
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy).await.unwrap();
        s.write_all(head(true).as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("event: ping") {
            let n = tokio::time::timeout(PATIENCE, s.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        streams.push(s);
    }
    // A third has no slot.
    let resp = exchange(proxy, &head(false), &[]).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("retry-after: 1\r\n"), "{resp}");
    let msg = json_of(&resp)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("max_inspected_exchanges"), "{msg}");

    // The streams end; a slot is free again.
    open.send(true).unwrap();
    for mut s in streams {
        let mut rest = Vec::new();
        tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
    }
    wait_until("slots given back", || {
        running.proxy.admission.in_flight_exchanges() == 0
    })
    .await;
    let resp = exchange(proxy, &head(false), &[]).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config() -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["api.anthropic.com".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    (Arc::new(config), der)
}

/// The first flight of a real TLS client for `api.anthropic.com`.
fn client_hello(trusted: CertificateDer<'static>) -> Vec<u8> {
    client_hello_for(trusted, "api.anthropic.com")
}

fn client_hello_for(trusted: CertificateDer<'static>, server_name: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(server_name.to_string()).unwrap())
            .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// Reads until the agent closes the connection; panics if it never does.
async fn closed_by_agent(mut s: TcpStream) {
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, s.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "the agent kept a stalled TLS handshake open");
}

#[tokio::test]
async fn a_client_that_never_finishes_the_tls_handshake_is_dropped_by_the_explicit_tls_listener() {
    let (_open, gate) = watch::channel(true);
    let upstream = start_upstream(gate).await;
    let mut config = base_config(upstream);
    config.listen.explicit_tls = Some("127.0.0.1:0".parse().unwrap());
    config.limits.tls_handshake_timeout_secs = 1;
    let (tls, cert) = tls_config();
    let running = start(config, Some(tls), None).await;
    let addr = running.explicit_tls.unwrap();

    // Says nothing at all.
    closed_by_agent(TcpStream::connect(addr).await.unwrap()).await;
    // Sends its ClientHello, then nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&client_hello(cert)).await.unwrap();
    closed_by_agent(s).await;
    wait_until("both failures are counted", || {
        running
            .stats
            .tls_handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            == 2
    })
    .await;
}

struct To(SocketAddr);

impl OriginLookup for To {
    fn lookup(&self, _peer: SocketAddr, _local: SocketAddr) -> Option<ConnectionOrigin> {
        Some(ConnectionOrigin {
            original_dst: self.0,
            identity: Default::default(),
            socket_cookie: None,
        })
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_the_tls_handshake_is_dropped_by_the_transparent_listener() {
    let (_open, gate) = watch::channel(true);
    let upstream = start_upstream(gate).await;
    let mut config = base_config(upstream);
    config.listen.transparent = Some("127.0.0.1:0".parse().unwrap());
    config.limits.tls_handshake_timeout_secs = 1;
    let (tls, cert) = tls_config();
    let origins = OriginSource::Lookup(Arc::new(To(upstream)));
    let running = start(config, Some(tls), Some(origins)).await;
    let addr = running.transparent.unwrap();

    // A provider SNI, so the agent terminates TLS; then the client stalls.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&client_hello(cert)).await.unwrap();
    closed_by_agent(s).await;
    wait_until("the failure is counted", || {
        running
            .stats
            .tls_handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
}

#[tokio::test]
async fn a_body_with_more_findings_than_the_cap_is_refused_not_forwarded() {
    let (_open, gate) = watch::channel(true);
    let upstream = start_upstream(gate).await;
    let running = start(base_config(upstream), None, None).await;
    let proxy = running.explicit.unwrap();

    // Cheap to send (2 MB), costly to inspect: every address is a finding
    // with a record, a placeholder and a restore entry.
    let max = promptwall_llm::MAX_FINDINGS;
    let addresses: String = (0..=max).map(|i| format!("u{i}@ex{i}.com ")).collect();
    let body = serde_json::json!({
        "model": "claude-x", "max_tokens": 1,
        "messages": [{"role": "user", "content": addresses}]
    })
    .to_string();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let resp = exchange(proxy, &head, body.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{}", &resp[..resp.len().min(500)]);
    let v = json_of(&resp);
    assert_eq!(v["type"], "error", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("more than {max} findings")) && msg.contains("not sent"),
        "{msg}"
    );
}

/// The splice path's half of "no exchange without its row": a connection
/// relayed undecrypted is on record before its first byte, so while the
/// audit store refuses rows not one byte reaches the destination.
#[tokio::test]
async fn a_spliced_connection_whose_audit_row_fails_is_never_relayed() {
    for store_works in [true, false] {
        // The destination: a neighbour at the provider's address.
        let neighbour = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dst = neighbour.local_addr().unwrap();
        let mut config = base_config(dst);
        config.listen.transparent = Some("127.0.0.1:0".parse().unwrap());
        config.transparent.splice_server_names = vec!["status.example.test".into()];
        let (tls, cert) = tls_config();
        let sink: AuditSink = if store_works {
            audit()
        } else {
            Arc::new(|_row| Box::pin(async { Err("disk full".to_string()) }))
        };
        let running = app::start(
            config,
            Deps {
                audit: sink,
                tls: Some(tls),
                origins: Some(OriginSource::Lookup(Arc::new(To(dst)))),
                shapes: promptwall_llm::Shapes::builtin(),
            },
        )
        .await
        .unwrap();
        let hello = client_hello_for(cert, "status.example.test");
        let mut client = TcpStream::connect(running.transparent.unwrap()).await.unwrap();
        client.write_all(&hello).await.unwrap();

        let (mut relayed, _) = tokio::time::timeout(PATIENCE, neighbour.accept())
            .await
            .expect("the agent dials the destination")
            .unwrap();
        if store_works {
            let mut got = vec![0; hello.len()];
            tokio::time::timeout(PATIENCE, relayed.read_exact(&mut got))
                .await
                .expect("the hello is relayed")
                .unwrap();
            assert_eq!(got, hello);
        } else {
            closed_by_agent(client).await;
            let mut got = Vec::new();
            tokio::time::timeout(PATIENCE, relayed.read_to_end(&mut got))
                .await
                .expect("the agent drops the destination")
                .unwrap();
            assert!(got.is_empty(), "{} bytes relayed without a row", got.len());
            assert_eq!(running.stats.audit_errors.load(std::sync::atomic::Ordering::Relaxed), 1);
        }
    }
}
