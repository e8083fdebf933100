//! A fake LLM provider for promptwall's tests and benches.
//!
//! It serves Anthropic Messages (+ count_tokens), OpenAI Chat Completions,
//! Responses (SSE, JSON and the WebSocket transport) and Embeddings, and
//! Google Gemini (`generateContent`, `streamGenerateContent` as SSE or a JSON
//! array, `countTokens`, `embedContent`, `batchEmbedContents`) and GitHub
//! Copilot's account and model catalog ([`copilot`]) over
//! real TLS with its own test CA (a leaf minted per SNI; h2 and http/1.1 by
//! ALPN), or over plain HTTP. Answers echo the last user text
//! (`You said: <text>`), so a test sees what reached the provider and what
//! came back; trigger words steer tool rounds and faults (see [`scenario`]).
//! Every request is recorded with its headers, body and the ClientHello's
//! SNI/ALPN.
//!
//! ```no_run
//! # async fn demo() -> Result<(), promptwall_fake_provider::FakeError> {
//! use promptwall_fake_provider::{FakeOptions, FakeProvider};
//! let fake = FakeProvider::start(FakeOptions::default()).await?;
//! // point the code under test at fake.addr, trusting fake.ca_pem_path
//! let seen = fake.recorded();
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

pub mod anthropic;
pub mod copilot;
pub mod embeddings;
pub mod gemini;
pub mod openai_chat;
pub mod record;
pub mod reply;
pub mod responses;
pub mod scenario;
mod server;
pub mod tls;
mod ws;

pub use record::{ConnInfo, RecordedRequest, ReplyUsage};
pub use scenario::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("fake provider: cannot use {path}: {source}; check the directory exists and is writable")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("fake provider: cannot bind {addr}: {source}; pick a free port or use port 0")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(
        "fake provider: certificate generation failed: {0}; the CA files may be corrupt, remove them to regenerate"
    )]
    Cert(#[from] rcgen::Error),
    #[error("fake provider: TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("fake provider: cannot start its runtime: {0}")]
    Runtime(std::io::Error),
}

#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Reuse `ca.pem`/`ca.key` from here, or create them here. None: a temp dir.
    pub ca_dir: Option<PathBuf>,
    /// Serve the Responses WebSocket on `GET /v1/responses` (else 426).
    pub ws: bool,
    /// Plain HTTP instead of TLS (benches, direct tests).
    pub plain: bool,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<String>,
    /// Pause before every answer (simulated model latency).
    pub think_delay_ms: u64,
    /// Pause between streamed events for `SLOWSTREAM`.
    pub slow_delay_ms: u64,
    /// Status for paths the fake does not serve.
    pub unknown_status: u16,
    /// Append every recorded request to this JSONL file.
    pub log: Option<PathBuf>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:0".parse().unwrap(),
            ca_dir: None,
            ws: false,
            plain: false,
            alpn: vec!["h2".into(), "http/1.1".into()],
            think_delay_ms: 0,
            slow_delay_ms: 100,
            unknown_status: 404,
            log: None,
        }
    }
}

impl FakeOptions {
    pub fn slow_delay(&self) -> Duration {
        Duration::from_millis(self.slow_delay_ms)
    }
}

/// One request as the shape handlers see it.
pub struct Incoming<'a> {
    pub headers: &'a HeaderMap,
    /// The URI's query (Gemini's `alt=sse`, `key=`).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub json: Option<&'a Value>,
    pub opts: &'a FakeOptions,
}

impl Incoming<'_> {
    /// Gap between streamed events for this scenario.
    pub fn pacing(&self, sc: &Scenario) -> Duration {
        if sc.slow {
            self.opts.slow_delay()
        } else {
            Duration::ZERO
        }
    }
}

pub struct FakeProvider;

impl FakeProvider {
    /// Starts serving on the current tokio runtime.
    pub async fn start(opts: FakeOptions) -> Result<FakeHandle, FakeError> {
        let (tmp, ca_dir) = match &opts.ca_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("fake-provider-ca")
                    .tempdir()
                    .map_err(|source| FakeError::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let ca = Arc::new(tls::TestCa::load_or_create(&ca_dir, &opts.alpn)?);
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .map_err(|source| FakeError::Bind {
                addr: opts.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FakeError::Bind {
            addr: opts.bind,
            source,
        })?;
        let recorder = Arc::new(record::Recorder::new(opts.log.as_deref())?);
        let shared = Arc::new(server::Shared {
            ca: (!opts.plain).then(|| ca.clone()),
            recorder: recorder.clone(),
            opts: opts.clone(),
        });
        let task = tokio::spawn(server::accept_loop(listener, shared));
        Ok(FakeHandle {
            addr,
            ca_pem: ca.cert_pem.clone(),
            ca_pem_path: ca.cert_path.clone(),
            plain: opts.plain,
            recorder,
            task,
            _tmp: tmp,
            runtime: None,
        })
    }

    /// Starts on a runtime of its own, for synchronous tests. Drop the handle
    /// outside any async context.
    pub fn start_background(opts: FakeOptions) -> Result<FakeHandle, FakeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-provider")
            .enable_all()
            .build()
            .map_err(FakeError::Runtime)?;
        let mut handle = rt.block_on(Self::start(opts))?;
        handle.runtime = Some(rt);
        Ok(handle)
    }
}

/// A running fake; dropping it stops the server and closes its connections.
pub struct FakeHandle {
    pub addr: SocketAddr,
    /// The test CA certificate (PEM) that signs every leaf.
    pub ca_pem: String,
    pub ca_pem_path: PathBuf,
    pub plain: bool,
    recorder: Arc<record::Recorder>,
    task: tokio::task::JoinHandle<()>,
    _tmp: Option<tempfile::TempDir>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeHandle {
    /// Every request and WebSocket message received so far, in order.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.recorder.all()
    }

    /// Recorded requests to `path` (HTTP and WebSocket).
    pub fn recorded_for(&self, path: &str) -> Vec<RecordedRequest> {
        self.recorder.all().into_iter().filter(|r| r.path == path).collect()
    }

    pub fn clear_recorded(&self) {
        self.recorder.clear();
    }

    /// `https://127.0.0.1:PORT` (or `http://` in plain mode).
    pub fn base_url(&self) -> String {
        format!("{}://{}", if self.plain { "http" } else { "https" }, self.addr)
    }

    pub fn shutdown(self) {}
}

impl Drop for FakeHandle {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
