//! The transparent listener: connections redirected by eBPF or nftables.
//! It peeks the TLS ClientHello; a provider SNI is terminated with a minted
//! leaf and inspected, anything else is spliced to its original destination
//! without decrypting.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::audit_sink::RequestLog;
use crate::forward::{now_rfc3339, ConnContext, Listener, Proxy};
use crate::origin::{ConnectionOrigin, OriginLookup};
use crate::server::serve_http;

/// A ClientHello larger than this is not plausible; stop peeking.
const MAX_HELLO_BYTES: usize = 64 * 1024;
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientHelloInfo {
    pub server_name: Option<String>,
    pub alpn: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    #[error("client closed before sending a complete TLS ClientHello")]
    Eof,
    #[error("not TLS: {0}")]
    NotTls(String),
    #[error("ClientHello larger than {MAX_HELLO_BYTES} bytes")]
    TooLarge,
    #[error("timed out waiting for the TLS ClientHello")]
    Timeout,
    #[error("reading the ClientHello failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads until a full ClientHello (which may span several TCP segments and
/// TLS records) is buffered; returns its SNI/ALPN and every byte read.
pub async fn peek_client_hello<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(ClientHelloInfo, Vec<u8>), PeekError> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(2048);
    let mut acceptor = rustls::server::Acceptor::default();
    let mut fed = 0;
    let deadline = Instant::now() + HELLO_TIMEOUT;
    loop {
        let mut chunk = [0u8; 4096];
        let remaining = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(remaining, stream.read(&mut chunk)).await {
            Err(_) => return Err(PeekError::Timeout),
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(PeekError::Eof);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HELLO_BYTES {
            return Err(PeekError::TooLarge);
        }
        while fed < buf.len() {
            let mut rd = &buf[fed..];
            match acceptor.read_tls(&mut rd) {
                Ok(0) => break,
                Ok(used) => fed += used,
                Err(e) => return Err(PeekError::NotTls(e.to_string())),
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                let info = ClientHelloInfo {
                    server_name: hello.server_name().map(|s| s.to_ascii_lowercase()),
                    alpn: hello
                        .alpn()
                        .map(|it| it.map(|p| p.to_vec()).collect())
                        .unwrap_or_default(),
                };
                return Ok((info, buf));
            }
            Ok(None) => continue,
            Err((e, _alert)) => return Err(PeekError::NotTls(e.to_string())),
        }
    }
}

/// A stream that first replays bytes already read from it.
pub struct Rewind<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Rewind { prefix, pos: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Finds the original destination of an accepted socket.
pub enum OriginSource {
    /// eBPF maps (or any other lookup) keyed by the client's address.
    Lookup(Arc<dyn OriginLookup>),
    /// nftables `redirect`: ask the kernel with SO_ORIGINAL_DST.
    SoOriginalDst,
}

pub async fn run(proxy: Arc<Proxy>, listener: TcpListener, tls: TlsAcceptor, origins: Arc<OriginSource>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("transparent listener accept failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        proxy
            .stats
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let proxy = proxy.clone();
        let tls = tls.clone();
        let origins = origins.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(proxy, stream, peer, tls, origins).await {
                tracing::debug!(%peer, "transparent connection ended: {e}");
            }
        });
    }
}

async fn handle(
    proxy: Arc<Proxy>,
    mut stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    origins: Arc<OriginSource>,
) -> io::Result<()> {
    let local = stream.local_addr()?;
    let origin: Option<ConnectionOrigin> = match origins.as_ref() {
        OriginSource::Lookup(lookup) => lookup.lookup(peer, local),
        OriginSource::SoOriginalDst => match crate::socket::original_dst(&stream).ok().filter(|dst| *dst != local) {
            None => None,
            Some(dst) => {
                // No kernel record of the process: find it through /proc.
                let identity = tokio::task::spawn_blocking(move || {
                    let mut identity = crate::origin::ClientIdentity::default();
                    // NAT is invisible to the client's socket: it is still
                    // connected to the original destination, not to us.
                    let pid =
                        crate::peer::local_client_pid(peer, dst).or_else(|| crate::peer::local_client_pid(peer, local));
                    if let Some(pid) = pid {
                        identity.pid = Some(pid);
                        crate::attribution::enrich(&mut identity);
                    }
                    identity
                })
                .await
                .unwrap_or_default();
                Some(ConnectionOrigin {
                    original_dst: dst,
                    identity,
                    socket_cookie: None,
                })
            }
        },
    };
    // Self-call guard: a connection "originally" for one of our own listeners
    // would loop forever.
    if let Some(o) = &origin {
        if proxy.upstream.dialer.is_own_listener(o.original_dst) {
            tracing::warn!(%peer, dst = %o.original_dst, "refusing a connection whose original destination is promptwall itself");
            return Ok(());
        }
    }
    let (hello, buffered) = match peek_client_hello(&mut stream).await {
        Ok(r) => r,
        Err(e) => {
            // Not TLS (or broken TLS): splice to where it was going, if known.
            if let Some(o) = &origin {
                let buffered = Vec::new();
                return splice(proxy, stream, buffered, o.clone(), None, &e.to_string()).await;
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
        }
    };
    let provider_host = hello
        .server_name
        .as_deref()
        .filter(|sni| proxy.config.provider_for_host(sni).is_some())
        .map(str::to_string);
    match (provider_host, origin) {
        (Some(host), origin) => {
            // Learned passthrough (crate::passthrough): keyed by executable.
            let exe = origin.as_ref().and_then(|o| o.identity.exe.clone());
            if let (Some(o), Some(exe)) = (&origin, &exe) {
                if proxy.stats.learned.should_pass(exe, &host) {
                    let reason =
                        format!("learned passthrough: {exe} kept rejecting promptwall's certificate for {host}");
                    return splice(proxy, stream, buffered, o.clone(), Some(host), &reason).await;
                }
            }
            proxy
                .stats
                .tls_intercepted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(o) = &origin {
                proxy
                    .upstream
                    .dialer
                    .observe_original_destination(&host, o.original_dst);
            }
            let accept = crate::admission::tls_accept(&proxy.config.limits, &tls, Rewind::new(buffered, stream));
            let tls_stream = match accept.await {
                Ok(s) => s,
                Err(e) => {
                    proxy
                        .stats
                        .tls_handshake_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(exe) = exe
                        .as_deref()
                        .filter(|_| crate::passthrough::is_certificate_rejection(&e))
                    {
                        learn_rejection(&proxy, exe, &host, &e);
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS handshake with the client for {host} failed: {e}"),
                    ));
                }
            };
            if let Some(exe) = &exe {
                proxy.stats.learned.record_success(exe, &host);
            }
            let conn = ConnContext {
                listener: Listener::Transparent,
                peer,
                server_name: Some(host),
                origin,
                identity: None,
            };
            serve_http(proxy, conn, tls_stream).await;
            Ok(())
        }
        (None, Some(origin)) => {
            let reason = match &hello.server_name {
                Some(_) => "server name is not a provider",
                None => "no server name (SNI)",
            };
            splice(proxy, stream, buffered, origin, hello.server_name, reason).await
        }
        (None, None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no original destination for a non-provider connection; closing",
        )),
    }
}

fn learn_rejection(proxy: &Proxy, exe: &str, host: &str, e: &io::Error) {
    let threshold = proxy.config.intercept.learn_passthrough_after;
    let closed = proxy.config.intercept.fail == crate::config::FailMode::Closed;
    if let Some(entry) = proxy
        .stats
        .learned
        .record_rejection(exe, host, &e.to_string(), threshold, closed, now_rfc3339)
    {
        if entry.passthrough {
            tracing::warn!(exe, host, failures = entry.failures, "{exe} keeps rejecting promptwall's certificate for {host} (pinning or a private trust store); passing it through undecrypted from now on");
        } else {
            tracing::warn!(exe, host, failures = entry.failures, "{exe} keeps rejecting promptwall's certificate for {host}; fail = \"closed\", so it stays blocked: make it trust the org CA");
        }
    }
}

/// Passes bytes both ways without decrypting; audits metadata only.
async fn splice(
    proxy: Arc<Proxy>,
    mut client: TcpStream,
    buffered: Vec<u8>,
    origin: ConnectionOrigin,
    server_name: Option<String>,
    reason: &str,
) -> io::Result<()> {
    proxy
        .stats
        .tls_passthrough
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let mut log = RequestLog {
        ts: now_rfc3339(),
        listener: Listener::Transparent.as_str(),
        host: server_name.clone().unwrap_or_default(),
        method: "CONNECT".into(),
        shape: "passthrough".into(),
        identity: Some(origin.identity.clone()),
        socket_cookie: origin.socket_cookie,
        original_dst: Some(origin.original_dst.to_string()),
        verdict: "passthrough".into(),
        error: Some(reason.to_string()),
        ..Default::default()
    };
    let mut server = match proxy.upstream.dialer.connect_addr(origin.original_dst).await {
        Ok(s) => s,
        Err(e) => {
            log.error = Some(format!("passthrough to {} failed: {e}", origin.original_dst));
            log.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let _ = (proxy.audit)(log).await;
            return Err(e);
        }
    };
    server.write_all(&buffered).await?;
    let result = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    if let Ok((up, down)) = &result {
        log.request_bytes = *up + buffered.len() as u64;
        log.response_bytes = *down;
    }
    log.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _ = (proxy.audit)(log).await;
    result.map(|_| ())
}
