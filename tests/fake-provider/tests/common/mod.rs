//! A minimal real client for the fake: TLS verified against the fake's CA,
//! h1 or h2 by ALPN, plus SSE parsing.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use promptwall_fake_provider::FakeHandle;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// (event name, data) per SSE event; comment-only blocks are skipped.
    pub fn sse(&self) -> Vec<(Option<String>, String)> {
        parse_sse(&self.text())
    }
}

pub fn parse_sse(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_string());
                }
            }
            data.map(|d| (name, d))
        })
        .collect()
}

pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

pub async fn tls_connect(fake: &FakeHandle, sni: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(fake.addr).await.unwrap();
    TlsConnector::from(client_config(&fake.ca_pem, alpn))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .expect("TLS handshake with the fake must verify against its CA")
}

/// Sends one request over a fresh connection (h2 when `h2`, else h1).
pub async fn send(fake: &FakeHandle, sni: &str, h2: bool, req: Request<Full<Bytes>>) -> Answer {
    let resp = if fake.plain {
        let tcp = TcpStream::connect(fake.addr).await.unwrap();
        let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    } else if h2 {
        let tls = tls_connect(fake, sni, &[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    } else {
        let tls = tls_connect(fake, sni, &[b"http/1.1"]).await;
        let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body }
}

pub fn post(host: &str, path: &str) -> http::request::Builder {
    Request::post(format!("https://{host}{path}"))
        .header("host", host)
        .header("content-type", "application/json")
}

/// POST `body` as JSON to `host` + `path` over h1.
pub async fn post_json(fake: &FakeHandle, host: &str, path: &str, body: Value) -> Answer {
    post_with(fake, host, path, body, &[]).await
}

pub async fn post_with(fake: &FakeHandle, host: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
    let mut b = post(host, path);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    send(
        fake,
        host,
        false,
        b.body(Full::new(Bytes::from(body.to_string()))).unwrap(),
    )
    .await
}

/// Concatenated Anthropic text deltas.
pub fn anthropic_text(events: &[(Option<String>, String)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap())
        .filter(|v| v["delta"]["type"] == "text_delta")
        .map(|v| v["delta"]["text"].as_str().unwrap().to_string())
        .collect()
}
