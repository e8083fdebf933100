//! Dialing the measured endpoint: plain HTTP, TLS (trusting given CA files),
//! or TLS through an HTTP CONNECT proxy (mitmproxy's regular mode).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where and how to connect; shared by `stream` and `hold`.
#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// TCP address to dial (the fake, the proxy, or the CONNECT proxy).
    #[arg(long)]
    pub connect: String,
    /// Speak TLS with this server name (omit for plain HTTP).
    #[arg(long)]
    pub tls_name: Option<String>,
    /// CA files trusted for TLS (PEM).
    #[arg(long)]
    pub ca: Vec<PathBuf>,
    /// Tunnel through `--connect` with `CONNECT <this>` first (HTTP proxy).
    #[arg(long)]
    pub tunnel_to: Option<String>,
    /// Host header.
    #[arg(long, default_value = "api.anthropic.com")]
    pub host: String,
    /// Request path.
    #[arg(long, default_value = "/v1/messages")]
    pub path: String,
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub struct Dialer {
    target: Target,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
}

impl Dialer {
    pub fn new(target: Target) -> Result<Dialer> {
        let tls = match &target.tls_name {
            None => None,
            Some(name) => {
                let mut roots = rustls::RootCertStore::empty();
                for path in &target.ca {
                    let pem = std::fs::read(path).with_context(|| format!("cannot read CA file {}", path.display()))?;
                    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                        roots
                            .add(cert.context("bad certificate in CA file")?)
                            .context("cannot trust CA")?;
                    }
                }
                if roots.is_empty() {
                    bail!("--tls-name needs at least one --ca file with a certificate");
                }
                let mut cfg =
                    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                let server = rustls_pki_types::ServerName::try_from(name.clone())
                    .with_context(|| format!("--tls-name {name:?} is not a valid server name"))?;
                Some((TlsConnector::from(Arc::new(cfg)), server))
            }
        };
        Ok(Dialer { target, tls })
    }

    async fn io(&self) -> Result<Box<dyn Io>> {
        let mut tcp = TcpStream::connect(&self.target.connect)
            .await
            .with_context(|| format!("cannot connect to {}; is the server up?", self.target.connect))?;
        tcp.set_nodelay(true)?;
        if let Some(dest) = &self.target.tunnel_to {
            tcp.write_all(format!("CONNECT {dest} HTTP/1.1\r\nHost: {dest}\r\n\r\n").as_bytes())
                .await?;
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if tcp.read(&mut byte).await? == 0 || head.len() > 8192 {
                    bail!(
                        "the proxy at {} closed or garbled the CONNECT answer",
                        self.target.connect
                    );
                }
                head.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&head);
            if line.split_whitespace().nth(1) != Some("200") {
                bail!("CONNECT {dest} refused: {}", line.lines().next().unwrap_or(""));
            }
        }
        Ok(match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS handshake failed")?,
            ),
        })
    }

    /// One HTTP/1.1 connection; the connection task runs in the background.
    pub async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let io = self.io().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    pub fn request(&self, body: Bytes, extra: &[(&str, String)]) -> Result<http::Request<Full<Bytes>>> {
        let mut req = http::Request::post(&self.target.path)
            .header("host", &self.target.host)
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "bench-key-not-a-secret");
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        Ok(req.body(Full::new(body))?)
    }
}
