//! The upstream side: a pooled hyper client over rustls (native roots plus
//! configured extra roots), HTTP/1.1 and h2 by ALPN, with `SO_MARK` on every
//! socket so the eBPF/nftables redirect never sends our own traffic back to us.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::body::ProxyBody;
use crate::config::Config;
use crate::socket;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot read extra upstream root {path}: {source}; fix [upstream] extra_roots")]
    ReadRoot { path: PathBuf, source: std::io::Error },
    #[error("extra upstream root {path} holds no PEM certificate; fix [upstream] extra_roots")]
    EmptyRoot { path: PathBuf },
    #[error("no trusted roots for upstream TLS: the system store is empty and no [upstream] extra_roots are set")]
    NoRoots,
}

/// Where to dial for a host: the configured override (like curl --resolve),
/// else DNS, else the original destination seen on the transparent listener.
#[derive(Clone, Default)]
pub struct Dialer {
    overrides: Arc<BTreeMap<String, SocketAddr>>,
    /// Last original destination per host, learnt from intercepted connections.
    observed: Arc<RwLock<BTreeMap<String, SocketAddr>>>,
    mark: u32,
    connect_timeout: Duration,
    /// Addresses the proxy itself listens on: never dial them (self-call guard).
    own_listeners: Arc<Vec<SocketAddr>>,
}

impl Dialer {
    pub fn new(config: &Config) -> Self {
        let own = [
            config.listen.explicit,
            config.listen.explicit_tls,
            config.listen.transparent,
        ]
        .into_iter()
        .flatten()
        .collect();
        Dialer {
            overrides: Arc::new(config.upstream.resolve.clone()),
            observed: Default::default(),
            mark: config.upstream.mark,
            connect_timeout: Duration::from_millis(config.upstream.connect_timeout_ms.max(1)),
            own_listeners: Arc::new(own),
        }
    }

    /// Records where an intercepted client was going, so the upstream leg
    /// goes to the same address the client chose.
    pub fn observe_original_destination(&self, host: &str, addr: SocketAddr) {
        if self.overrides.contains_key(host) {
            return;
        }
        let mut map = self.observed.write().unwrap_or_else(|e| e.into_inner());
        if map.get(host) != Some(&addr) {
            map.insert(host.to_ascii_lowercase(), addr);
        }
    }

    pub fn is_own_listener(&self, addr: SocketAddr) -> bool {
        self.own_listeners.iter().any(|l| {
            l.port() == addr.port() && (l.ip() == addr.ip() || (l.ip().is_unspecified() && addr.ip().is_loopback()))
        })
    }

    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(addr) = self.overrides.get(host) {
            return Ok(vec![*addr]);
        }
        // DNS first: an observed destination is whatever some client chose
        // (any local user can send one provider's SNI to another address),
        // so it only stands in where the name does not resolve here.
        let resolved = tokio::net::lookup_host((host, port))
            .await
            .map(|addrs| addrs.collect::<Vec<_>>());
        if let Ok(addrs) = &resolved {
            if !addrs.is_empty() {
                return resolved;
            }
        }
        if let Some(addr) = self.observed.read().unwrap_or_else(|e| e.into_inner()).get(host) {
            return Ok(vec![*addr]);
        }
        resolved
    }

    /// Connects to `addr` directly (used for TLS passthrough splicing).
    pub async fn connect_addr(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        if self.is_own_listener(addr) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("refusing to connect to {addr}: it is promptwall's own listener (self-call guard)"),
            ));
        }
        socket::connect_marked(addr, self.mark, self.connect_timeout).await
    }

    pub async fn connect_host(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let addrs = self.resolve(host, port).await?;
        let mut last = None;
        for addr in addrs {
            match self.connect_addr(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} resolved to no address"))
        }))
    }
}

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().to_string();
            let default_port = if uri.scheme_str() == Some("http") { 80 } else { 443 };
            let port = uri.port_u16().unwrap_or(default_port);
            let stream = this.connect_host(&host, port).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

pub type HttpClient = Client<HttpsConnector<Dialer>, ProxyBody>;

/// The shared upstream client and the TLS config it uses.
#[derive(Clone)]
pub struct Upstream {
    pub client: HttpClient,
    pub dialer: Dialer,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Upstream {
    pub fn new(config: &Config) -> Result<Self, UpstreamError> {
        let roots = root_store(&config.upstream.extra_roots)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let dialer = Dialer::new(config);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(dialer.clone());
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Upstream {
            client,
            dialer,
            tls: Arc::new(tls),
        })
    }
}

fn root_store(extra: &[PathBuf]) -> Result<rustls::RootCertStore, UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    // A broken or partly unreadable system store must not stop the proxy;
    // every certificate that does parse is used.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    for path in extra {
        let pem = std::fs::read(path).map_err(|source| UpstreamError::ReadRoot {
            path: path.clone(),
            source,
        })?;
        let mut found = false;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
            found = true;
            let _ = roots.add(cert);
        }
        if !found {
            return Err(UpstreamError::EmptyRoot { path: path.clone() });
        }
    }
    if roots.is_empty() {
        return Err(UpstreamError::NoRoots);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialer(mark: u32, listeners: [&str; 2]) -> Dialer {
        let mut config = Config::default();
        config.upstream.mark = mark;
        config.listen.explicit = Some(listeners[0].parse().unwrap());
        config.listen.transparent = Some(listeners[1].parse().unwrap());
        Dialer::new(&config)
    }

    #[tokio::test]
    async fn the_self_call_guard_refuses_every_own_listener() {
        let d = dialer(0, ["127.0.0.1:8787", "0.0.0.0:15443"]);
        for own in ["127.0.0.1:8787", "127.0.0.1:15443", "127.0.0.9:15443"] {
            let err = d.connect_addr(own.parse().unwrap()).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{own}");
            assert!(err.to_string().contains("self-call guard"), "{own}: {err}");
        }
        // Other ports on the same addresses are not ours.
        assert!(!d.is_own_listener("127.0.0.1:8788".parse().unwrap()));
    }

    /// Any local user can send one provider's SNI to another address; that
    /// must not move everyone's upstream for the name while DNS answers.
    #[tokio::test]
    async fn a_clients_original_destination_does_not_override_dns() {
        let d = dialer(0, ["127.0.0.1:8787", "127.0.0.1:15443"]);
        d.observe_original_destination("localhost", "10.9.9.9:443".parse().unwrap());
        let addrs = d.resolve("localhost", 443).await.unwrap();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
            "{addrs:?}"
        );
        // Where the name does not resolve here, the observed address stands in.
        d.observe_original_destination("promptwall-unresolvable.invalid", "10.9.9.9:443".parse().unwrap());
        let addrs = d.resolve("promptwall-unresolvable.invalid", 443).await.unwrap();
        assert_eq!(addrs, vec!["10.9.9.9:443".parse().unwrap()]);
    }

    /// Upstream sockets carry `[upstream] mark`, whichever way they are dialled
    /// (hyper's connector, or a passthrough splice). Setting a mark needs
    /// CAP_NET_ADMIN, which `cargo xtask test` (root) has.
    #[tokio::test]
    async fn every_upstream_socket_carries_the_mark() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("PROMPTWALL_REQUIRE_CLIENTS").is_none(),
                "needs root (CAP_NET_ADMIN)"
            );
            return;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut d = dialer(0x1fa1, ["127.0.0.1:1", "127.0.0.1:2"]);
        let spliced = d.connect_addr(addr).await.unwrap();
        assert_eq!(socket2::SockRef::from(&spliced).mark().unwrap(), 0x1fa1);
        let uri: Uri = format!("http://{addr}/v1/messages").parse().unwrap();
        let pooled = tower_service::Service::call(&mut d, uri).await.unwrap();
        assert_eq!(socket2::SockRef::from(pooled.inner()).mark().unwrap(), 0x1fa1);
    }
}
