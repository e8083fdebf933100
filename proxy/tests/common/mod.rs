//! The proxy on the explicit listener against the fake provider (plain
//! HTTP), rows collected in memory: shared by the proxy's integration
//! tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promptwall_audit::AuditRecord;
use promptwall_fake_provider::{FakeHandle, FakeOptions, FakeProvider};
use promptwall_proxy::app::{self, Deps};
use promptwall_proxy::audit_sink::AuditSink;
use promptwall_proxy::config::{Config, ProviderConfig};
use promptwall_proxy::routing::config::{AccountConfig, UpstreamConfig};
use promptwall_proxy::routing::{RoutingConfig, UpstreamKind};
use serde_json::Value;

pub struct Harness {
    pub proxy: SocketAddr,
    pub fake: FakeHandle,
    pub rows: Arc<Mutex<Vec<AuditRecord>>>,
    _keys: tempfile::TempDir,
    pub running: app::Running,
}

/// An account whose key is `key`, written to a file as an operator would.
pub fn account(dir: &std::path::Path, name: &str, key: &str) -> AccountConfig {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    AccountConfig {
        name: name.into(),
        key_env: None,
        key_file: Some(path),
    }
}

/// The proxy with the fake as both providers' upstream, and `routing`
/// built by `build` (given the fake's base URL and a key directory).
pub async fn harness(build: impl FnOnce(&str, &std::path::Path) -> RoutingConfig) -> Harness {
    harness_with(|config, base, keys| config.routing = build(base, keys)).await
}

/// The proxy with the fake as both providers' upstream, the rest of the
/// config set by `configure` (given the fake's base URL and a key
/// directory).
pub async fn harness_with(configure: impl FnOnce(&mut Config, &str, &std::path::Path)) -> Harness {
    let fake = FakeProvider::start(FakeOptions {
        plain: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.listen.explicit = Some("127.0.0.1:0".parse().unwrap());
    config.listen.transparent = None;
    config.upstream.mark = 0;
    let base = fake.base_url();
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
            upstream: base.clone(),
            paths: vec!["/v1/".into()],
        },
    ];
    configure(&mut config, &base, keys.path());
    let rows = Arc::new(Mutex::new(Vec::new()));
    let sink_rows = rows.clone();
    let audit: AuditSink = Arc::new(move |row| {
        let sink_rows = sink_rows.clone();
        Box::pin(async move {
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
            shapes: promptwall_llm::Shapes::builtin(),
        },
    )
    .await
    .unwrap();
    Harness {
        proxy: running.explicit.unwrap(),
        fake,
        rows,
        _keys: keys,
        running,
    }
}

pub fn upstream(kind: UpstreamKind, base_url: String, accounts: Vec<AccountConfig>) -> UpstreamConfig {
    UpstreamConfig {
        kind,
        base_url: Some(base_url),
        api: None,
        accounts,
    }
}

pub async fn post(h: &Harness, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, http::HeaderMap, String) {
    let client = reqwest_like::Client;
    client.post(h.proxy, path, headers, body).await
}

/// A small HTTP/1.1 client on hyper (the workspace has no reqwest).
mod reqwest_like {
    use std::net::SocketAddr;

    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use serde_json::Value;

    pub struct Client;

    impl Client {
        pub async fn post(
            &self,
            addr: SocketAddr,
            path: &str,
            headers: &[(&str, &str)],
            body: &Value,
        ) -> (u16, http::HeaderMap, String) {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut req = http::Request::post(path)
                .header("host", "127.0.0.1")
                .header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req.body(Full::new(bytes::Bytes::from(body.to_string()))).unwrap();
            let resp = tokio::time::timeout(std::time::Duration::from_secs(20), send.send_request(req))
                .await
                .expect("an answer within 20 s")
                .unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, headers, String::from_utf8_lossy(&body).into_owned())
        }
    }
}

pub const ANTHROPIC: &[(&str, &str)] = &[("anthropic-version", "2023-06-01"), ("x-api-key", "sk-ant-client-key")];

/// The text of an Anthropic answer, JSON or SSE.
pub fn anthropic_text(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .collect();
    }
    sse_data(body)
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

pub fn sse_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

pub fn header<'a>(r: &'a promptwall_fake_provider::RecordedRequest, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub async fn rows_settled(h: &Harness, n: usize) -> Vec<AuditRecord> {
    for _ in 0..100 {
        if h.rows.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.rows.lock().unwrap().clone()
}
