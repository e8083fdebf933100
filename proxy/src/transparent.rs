//! The transparent listener: connections redirected by eBPF or nftables.
//! It peeks the TLS ClientHello; a provider SNI is terminated with a minted
//! leaf and inspected; a name the operator lists is spliced to its original
//! destination without decrypting; anything else is refused
//! ([`route_connection`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::exchange::{now_rfc3339, Client, ConnContext, Exchange, Listener, Target, Traffic, Verdict};
use crate::forward::Proxy;
use crate::origin::{ConnectionOrigin, OriginLookup};
use crate::passthrough::PassthroughKey;
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

impl OriginSource {
    /// See [`OriginLookup::host_proc_fallback`].
    fn host_proc_fallback(&self) -> bool {
        match self {
            OriginSource::Lookup(lookup) => lookup.host_proc_fallback(),
            OriginSource::SoOriginalDst => true,
        }
    }
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
        let span = tracing::info_span!("conn", listener = "transparent", %peer);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                if let Err(e) = handle(proxy, stream, peer, tls, origins).await {
                    tracing::debug!("transparent connection ended: {e}");
                }
            },
            span,
        ));
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
    let origin = find_origin(&origins, &stream, peer, local).await;
    // Self-call guard: a connection "originally" for one of our own listeners
    // would loop forever.
    if let Some(o) = &origin {
        if proxy.upstream.dialer.is_own_listener(o.original_dst) {
            tracing::warn!(%peer, dst = %o.original_dst, "refusing a connection whose original destination is promptwall itself");
            return Ok(());
        }
    }
    let hello = peek_client_hello(&mut stream).await;
    let decision = route_connection(&proxy.config, hello.as_ref().map(|(h, _)| h), origin.as_ref());
    match decision {
        ConnectionRoute::Intercept { host } => {
            let Ok((_, buffered)) = hello else {
                return Err(io::Error::other("interception without a ClientHello"));
            };
            // A connection made straight to this port (no redirect record)
            // is attributed through /proc like the explicit listener's.
            let identity = match &origin {
                Some(o) => Some(o.identity.clone()),
                None if origins.host_proc_fallback() => crate::explicit::local_identity(&stream, peer).await,
                None => None,
            };
            let Some(identity) = identity else {
                let reason = format!("a connection for {host} with no redirect record and no local process behind it");
                return refuse(&proxy, peer, origin, Some(host), &reason).await;
            };
            intercept(proxy, stream, peer, tls, origin, identity, host, buffered).await
        }
        ConnectionRoute::Splice { server_name } => {
            let (Some(origin), Ok((_, buffered))) = (origin, hello) else {
                return Err(io::Error::other("splicing without an original destination"));
            };
            let reason = "server name is not a provider (listed in [intercept] splice_server_names)";
            splice(proxy, stream, buffered, origin, Some(server_name), reason).await
        }
        ConnectionRoute::SpliceIfResolvesHere { server_name } => {
            let (Some(origin), Ok((_, buffered))) = (origin, hello) else {
                return Err(io::Error::other("splicing without an original destination"));
            };
            if resolves_to(&server_name, origin.original_dst).await {
                let reason = "server name is not a provider but resolves to this address (a shared CDN address)";
                splice(proxy, stream, buffered, origin, Some(server_name), reason).await
            } else {
                let reason = format!(
                    "refused: server name {server_name} is not a provider and does not resolve to {}, a provider address; \
                     list it in [intercept] splice_server_names if it belongs there",
                    origin.original_dst.ip()
                );
                refuse(&proxy, peer, Some(origin), Some(server_name), &reason).await
            }
        }
        ConnectionRoute::Refuse { server_name, reason } => refuse(&proxy, peer, origin, server_name, &reason).await,
        ConnectionRoute::Close { reason } => Err(io::Error::new(io::ErrorKind::InvalidData, reason)),
    }
}

/// What happens to a redirected connection, decided from its ClientHello
/// and redirect record alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionRoute {
    /// A provider name: terminate TLS with a minted leaf and inspect.
    Intercept { host: String },
    /// A name the operator allows at provider addresses: relay undecrypted.
    Splice { server_name: String },
    /// Another name: relayed undecrypted only if it really lives at the
    /// address it connected to (its own DNS answer holds it), else refused.
    SpliceIfResolvesHere { server_name: String },
    /// Refused and audited: a path around inspection if it were relayed.
    Refuse {
        server_name: Option<String>,
        reason: String,
    },
    /// Not worth a row (no TLS and no redirect record: a stray connection).
    Close { reason: String },
}

/// Every connection here was bound for a provider address (that is what the
/// redirect captures), so anything that is not a provider name is refused
/// unless listed: no SNI, another name (the `Host` inside could still be the
/// API), or not TLS at all.
pub fn route_connection(
    config: &crate::config::Config,
    hello: Result<&ClientHelloInfo, &PeekError>,
    origin: Option<&ConnectionOrigin>,
) -> ConnectionRoute {
    let hello = match hello {
        Ok(h) => h,
        Err(e) if origin.is_some() => {
            return ConnectionRoute::Refuse {
                server_name: None,
                reason: format!("refused a non-TLS connection to a provider address ({e})"),
            }
        }
        Err(e) => return ConnectionRoute::Close { reason: e.to_string() },
    };
    match hello.server_name.as_deref() {
        Some(name) if config.provider_for_host(name).is_some() => ConnectionRoute::Intercept { host: name.to_string() },
        Some(name) if origin.is_some() && config.may_splice(name) => ConnectionRoute::Splice {
            server_name: name.to_string(),
        },
        Some(name) if origin.is_some() && config.transparent.foreign_sni == crate::config::ForeignSni::Resolving => {
            ConnectionRoute::SpliceIfResolvesHere {
                server_name: name.to_string(),
            }
        }
        Some(name) => ConnectionRoute::Refuse {
            server_name: Some(name.to_string()),
            reason: format!(
                "refused: server name {name} is not a provider, at a provider address; \
                 list it in [intercept] splice_server_names if this site shares the provider's addresses"
            ),
        },
        None => ConnectionRoute::Refuse {
            server_name: None,
            reason: "refused: a TLS connection without a server name (SNI) to a provider address".into(),
        },
    }
}

/// Whether `name`'s own DNS answer holds `dst`'s address (bounded wait: a
/// name that does not answer in time is treated as not living there).
async fn resolves_to(name: &str, dst: SocketAddr) -> bool {
    let lookup = tokio::net::lookup_host((name, dst.port()));
    match tokio::time::timeout(Duration::from_secs(3), lookup).await {
        Ok(Ok(addrs)) => addrs.into_iter().any(|a| a.ip() == dst.ip()),
        _ => false,
    }
}

/// The redirect record of an accepted connection. `/proc` and user lookups
/// block, so they run off the async workers.
async fn find_origin(
    origins: &Arc<OriginSource>,
    stream: &TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<ConnectionOrigin> {
    match origins.as_ref() {
        OriginSource::Lookup(lookup) => {
            let lookup = lookup.clone();
            tokio::task::spawn_blocking(move || lookup.lookup(peer, local))
                .await
                .ok()
                .flatten()
        }
        OriginSource::SoOriginalDst => {
            let dst = crate::socket::original_dst(stream).ok().filter(|dst| *dst != local)?;
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
    }
}

#[allow(clippy::too_many_arguments)]
async fn intercept(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    origin: Option<ConnectionOrigin>,
    identity: crate::origin::ClientIdentity,
    host: String,
    buffered: Vec<u8>,
) -> io::Result<()> {
    // Learned passthrough (crate::passthrough): per user and executable.
    let learn_key = match (identity.uid, &identity.exe) {
        (Some(uid), Some(exe)) => Some(PassthroughKey {
            uid,
            exe: crate::passthrough::program_of(exe, identity.cmdline.as_deref()),
            server_name: host.clone(),
            container: identity.container_id.clone(),
        }),
        _ => None,
    };
    if let (Some(o), Some(key)) = (&origin, &learn_key) {
        let ttl = Duration::from_secs(proxy.config.transparent.learned_passthrough_ttl_secs);
        if proxy.stats.learned.should_pass(key, Instant::now(), ttl) {
            let reason = format!(
                "learned passthrough: {} (uid {}) kept rejecting promptwall's certificate for {host}",
                key.exe, key.uid
            );
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
    let tls_stream = match crate::admission::tls_accept(&proxy.config.limits, &tls, Rewind::new(buffered, stream)).await
    {
        Ok(s) => s,
        Err(e) => {
            proxy
                .stats
                .tls_handshake_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(key) = learn_key
                .as_ref()
                .filter(|_| crate::passthrough::is_certificate_rejection(&e))
            {
                learn_rejection(&proxy, key, &e);
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS handshake with the client for {host} failed: {e}"),
            ));
        }
    };
    if let Some(key) = &learn_key {
        proxy.stats.learned.record_success(key);
    }
    let (origin, identity) = match origin {
        Some(o) => (Some(o), None),
        None => (None, Some(identity)),
    };
    let conn = ConnContext {
        listener: Listener::Transparent,
        peer,
        server_name: Some(host),
        origin,
        identity,
    };
    serve_http(proxy, conn, tls_stream).await;
    Ok(())
}

/// Closes a connection that would bypass inspection, leaving a row.
async fn refuse(
    proxy: &Proxy,
    peer: SocketAddr,
    origin: Option<ConnectionOrigin>,
    server_name: Option<String>,
    reason: &str,
) -> io::Result<()> {
    tracing::warn!(%peer, server_name = server_name.as_deref().unwrap_or(""), "{reason}");
    let mut ex = connection_exchange(origin.as_ref(), server_name, Traffic::Refused);
    ex.verdict = Verdict::Blocked;
    ex.status = 403;
    ex.error = Some(reason.to_string());
    ex.duration = Some(std::time::Duration::ZERO);
    // The connection is closed either way; a failed row is logged and
    // closes the audit gate (crate::audit_sink::Recorder).
    let _ = proxy.recorder.commit(ex).await;
    Ok(())
}

fn learn_rejection(proxy: &Proxy, key: &PassthroughKey, e: &io::Error) {
    let threshold = proxy.config.transparent.learn_passthrough_after;
    let closed = proxy.config.transparent.fail_closed;
    let (exe, host, uid) = (key.exe.as_str(), key.server_name.as_str(), key.uid);
    if let Some(entry) =
        proxy
            .stats
            .learned
            .record_rejection(key, &e.to_string(), threshold, closed, Instant::now(), now_rfc3339)
    {
        if entry.passthrough {
            tracing::warn!(exe, host, uid, failures = entry.failures, "{exe} (uid {uid}) keeps rejecting promptwall's certificate for {host} (pinning or a private trust store); passing it through undecrypted for this user");
        } else {
            tracing::warn!(exe, host, failures = entry.failures, "{exe} keeps rejecting promptwall's certificate for {host}; fail = \"closed\", so it stays blocked: make it trust the org CA");
        }
    }
}

/// The row of a connection-level decision (refused or spliced): the TLS
/// server name stands for the host, `CONNECT` for the method.
fn connection_exchange(origin: Option<&ConnectionOrigin>, server_name: Option<String>, traffic: Traffic) -> Exchange {
    let mut client = Client::from_origin(origin, None);
    // No HTTP is seen on these rows: the process alone names the tool.
    if let Some(identity) = &client.identity {
        client.tool = crate::attribution::identify_tool(Some(identity), &http::HeaderMap::new()).to_string();
    }
    let mut ex = Exchange::new(Listener::Transparent, client);
    ex.method = "CONNECT".into();
    ex.traffic = traffic;
    ex.target = Some(Target {
        provider: String::new(),
        uri: http::Uri::default(),
        host: server_name.unwrap_or_default(),
        dial: origin.map(|o| o.original_dst),
    });
    ex
}

/// Passes bytes both ways without decrypting; audits metadata only. The row
/// is committed before the first byte is relayed (a long-lived splice is on
/// record from its start, and one that cannot be recorded is not relayed).
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
    let mut ex = connection_exchange(Some(&origin), server_name.clone(), Traffic::Spliced);
    ex.verdict = Verdict::Passthrough;
    ex.error = Some(reason.to_string());
    let mut server = match proxy.upstream.dialer.connect_addr(origin.original_dst).await {
        Ok(s) => s,
        Err(e) => {
            ex.error = Some(format!("passthrough to {} failed: {e}", origin.original_dst));
            ex.duration = Some(started.elapsed());
            let _ = proxy.recorder.commit(ex).await;
            return Err(e);
        }
    };
    ex.duration = Some(started.elapsed());
    // Committed before the first byte is relayed: one that cannot be
    // recorded is not relayed at all.
    if let Err(e) = proxy.recorder.commit(ex).await {
        return Err(io::Error::other(format!("passthrough not relayed: {e}")));
    }
    server.write_all(&buffered).await?;
    let result = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    if let Ok((up, down)) = &result {
        tracing::debug!(
            host = server_name.as_deref().unwrap_or(""),
            up = *up + buffered.len() as u64,
            down,
            secs = started.elapsed().as_secs_f64(),
            "passthrough closed"
        );
    }
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_spliced_or_refused_connection_names_its_tool_from_the_process() {
        let origin = ConnectionOrigin {
            original_dst: "127.0.0.2:443".parse().unwrap(),
            identity: crate::origin::ClientIdentity {
                exe: Some("/opt/npm/node_modules/@github/copilot-linux-x64/copilot".into()),
                ..Default::default()
            },
            socket_cookie: None,
        };
        let ex = connection_exchange(Some(&origin), Some("api.github.com".into()), Traffic::Spliced);
        assert_eq!(ex.client.tool, "copilot-cli");
        assert_eq!(
            connection_exchange(None, None, Traffic::Spliced).client.tool,
            "",
            "no process, no tool"
        );
    }

    fn hello(name: Option<&str>) -> ClientHelloInfo {
        ClientHelloInfo {
            server_name: name.map(str::to_string),
            alpn: Vec::new(),
        }
    }

    fn redirected() -> ConnectionOrigin {
        ConnectionOrigin {
            original_dst: "160.79.104.10:443".parse().unwrap(),
            identity: Default::default(),
            socket_cookie: None,
        }
    }

    fn config(splice: &[&str]) -> Config {
        let mut c = Config::default();
        c.transparent.splice_server_names = splice.iter().map(|s| s.to_string()).collect();
        c.transparent.foreign_sni = crate::config::ForeignSni::Refuse;
        c
    }

    #[test]
    fn a_provider_name_is_intercepted() {
        let route = route_connection(&config(&[]), Ok(&hello(Some("api.anthropic.com"))), Some(&redirected()));
        assert_eq!(
            route,
            ConnectionRoute::Intercept {
                host: "api.anthropic.com".into()
            }
        );
    }

    #[test]
    fn no_server_name_at_a_provider_address_is_refused_not_spliced() {
        let route = route_connection(&config(&[]), Ok(&hello(None)), Some(&redirected()));
        assert!(
            matches!(route, ConnectionRoute::Refuse { server_name: None, .. }),
            "{route:?}"
        );
    }

    #[test]
    fn another_name_at_a_provider_address_is_refused_unless_listed() {
        let other = hello(Some("front.example.com"));
        let route = route_connection(&config(&[]), Ok(&other), Some(&redirected()));
        assert!(matches!(route, ConnectionRoute::Refuse { .. }), "{route:?}");
        let route = route_connection(&config(&["*.example.com"]), Ok(&other), Some(&redirected()));
        assert_eq!(
            route,
            ConnectionRoute::Splice {
                server_name: "front.example.com".into()
            }
        );
    }

    #[test]
    fn by_default_another_name_is_spliced_only_if_it_resolves_to_the_address() {
        let route = route_connection(
            &Config::default(),
            Ok(&hello(Some("cdn.example.com"))),
            Some(&redirected()),
        );
        assert_eq!(
            route,
            ConnectionRoute::SpliceIfResolvesHere {
                server_name: "cdn.example.com".into()
            }
        );
        let route = route_connection(&Config::default(), Ok(&hello(None)), Some(&redirected()));
        assert!(
            matches!(route, ConnectionRoute::Refuse { .. }),
            "no SNI is never spliced: {route:?}"
        );
    }

    #[tokio::test]
    async fn a_name_resolves_here_only_if_its_dns_answer_holds_the_address() {
        assert!(resolves_to("localhost", "127.0.0.1:443".parse().unwrap()).await);
        assert!(!resolves_to("localhost", "160.79.104.10:443".parse().unwrap()).await);
        assert!(!resolves_to("promptwall-unresolvable.invalid", "127.0.0.1:443".parse().unwrap()).await);
    }

    #[test]
    fn non_tls_at_a_provider_address_is_refused_and_stray_bytes_are_closed() {
        let route = route_connection(&config(&[]), Err(&PeekError::NotTls("x".into())), Some(&redirected()));
        assert!(matches!(route, ConnectionRoute::Refuse { .. }), "{route:?}");
        let route = route_connection(&config(&[]), Err(&PeekError::Eof), None);
        assert!(matches!(route, ConnectionRoute::Close { .. }), "{route:?}");
    }

    #[test]
    fn a_listed_name_without_a_redirect_record_is_not_spliced() {
        let route = route_connection(&config(&["example.test"]), Ok(&hello(Some("example.test"))), None);
        assert!(matches!(route, ConnectionRoute::Refuse { .. }), "{route:?}");
    }
}
