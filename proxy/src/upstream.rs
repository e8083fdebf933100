//! The upstream side: a pooled hyper client over rustls (native roots plus
//! configured extra roots, never promptwall's own org CA), HTTP/1.1 and h2 by
//! ALPN, with `SO_MARK` on every socket so the eBPF/nftables redirect never
//! sends our own traffic back to us.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use tokio::net::TcpStream;
use x509_parser::prelude::{FromDer, X509Certificate};

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
    #[error("cannot build the upstream certificate verifier: {0}; fix [upstream] extra_roots")]
    Verifier(rustls::client::VerifierBuilderError),
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
    /// Dial this address for every host without an override: a client of
    /// [`Upstream::client_for`] carrying one intercepted connection's own
    /// original destination.
    pinned: Option<SocketAddr>,
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
            pinned: None,
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
        if let Some(addr) = self.pinned {
            return Ok(vec![addr]);
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
    /// A pooled client per original destination: an intercepted connection
    /// goes upstream to the address its client chose, not wherever another
    /// connection to the same name went (hyper pools by name only).
    pinned: Arc<Mutex<HashMap<SocketAddr, HttpClient>>>,
}

/// Destinations kept pooled at once; past it the pools start afresh (a
/// provider has a handful of addresses, a fleet's catalog a few hundred).
const PINNED_CLIENTS: usize = 1024;

fn build_client(tls: &rustls::ClientConfig, dialer: Dialer) -> HttpClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(dialer);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .build(connector)
}

impl Upstream {
    pub fn new(config: &Config) -> Result<Self, UpstreamError> {
        let own = OwnCas::load(config);
        let roots = root_store(&config.upstream.extra_roots, &own)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(UpstreamError::Verifier)?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RefuseOwnCa { inner: webpki, own }))
            .with_no_client_auth();
        let dialer = Dialer::new(config);
        let client = build_client(&tls, dialer.clone());
        Ok(Upstream {
            client,
            dialer,
            tls: Arc::new(tls),
            pinned: Default::default(),
        })
    }

    /// The client for a request: with `dial` (an intercepted connection's
    /// original destination, its name unchanged), one whose connections go
    /// to that address, pooled per address; else the shared one. The name
    /// is still what TLS verifies, so an address only decides where to
    /// knock, never whom to trust.
    pub fn client_for(&self, dial: Option<SocketAddr>) -> HttpClient {
        let Some(addr) = dial else {
            return self.client.clone();
        };
        let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = pinned.get(&addr) {
            return client.clone();
        }
        if pinned.len() >= PINNED_CLIENTS {
            pinned.clear();
        }
        let dialer = Dialer {
            pinned: Some(addr),
            ..self.dialer.clone()
        };
        let client = build_client(&self.tls, dialer);
        pinned.insert(addr, client.clone());
        client
    }
}

/// Where `promptwall ca install` puts the org CA in the system store
/// (`promptwall_ca::trust::TrustLayout::anchor_path`, Debian and RHEL).
const INSTALLED_ANCHORS: [&str; 2] = [
    "/usr/local/share/ca-certificates/promptwall-org-ca.crt",
    "/etc/pki/ca-trust/source/anchors/promptwall-org-ca.pem",
];

/// The CAs promptwall itself signs with: the org CA chain in `[ca] dir` and
/// the anchors `ca install` put in the system store. In a fleet every host
/// holds the same intermediate key, so upstream TLS must accept no chain
/// through them: anyone with root on one host could otherwise impersonate
/// the providers to every other host's agent, API keys included.
#[derive(Debug, Default, Clone)]
struct OwnCas {
    /// Raw DER SubjectPublicKeyInfo of each.
    keys: Vec<Vec<u8>>,
    /// Raw DER subject Name of each (what a certificate they issue names as issuer).
    names: Vec<Vec<u8>>,
}

impl OwnCas {
    fn load(config: &Config) -> Self {
        let chain = config.ca_dir.join("ca.pem");
        let mut own = OwnCas::default();
        for path in std::iter::once(chain.as_path()).chain(INSTALLED_ANCHORS.iter().map(std::path::Path::new)) {
            match std::fs::read(path) {
                Ok(pem) => {
                    for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                        own.add(&cert);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "cannot read the org CA ({e}); upstream TLS cannot exclude it and may trust it"
                ),
            }
        }
        own
    }

    fn add(&mut self, der: &CertificateDer<'_>) {
        if let Ok((_, x)) = X509Certificate::from_der(der.as_ref()) {
            self.keys.push(x.public_key().raw.to_vec());
            self.names.push(x.subject().as_raw().to_vec());
        }
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// One of ours, as a trust anchor: the same key or the same name.
    fn is_own(&self, x: &X509Certificate<'_>) -> bool {
        self.keys.iter().any(|k| k.as_slice() == x.public_key().raw)
            || self.names.iter().any(|n| n.as_slice() == x.subject().as_raw())
    }

    /// One of ours, or issued by one of ours. Path building matches issuer
    /// to subject byte for byte, so any chain through our CAs names one of
    /// them as the issuer of a certificate the server presents.
    fn vouches_for(&self, der: &CertificateDer<'_>) -> bool {
        match X509Certificate::from_der(der.as_ref()) {
            Ok((_, x)) => self.is_own(&x) || self.names.iter().any(|n| n.as_slice() == x.issuer().as_raw()),
            Err(_) => false,
        }
    }
}

struct SignedByOwnCa;

// rustls shows the cause of a certificate error with `{:?}`: make that the message.
impl std::fmt::Debug for SignedByOwnCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for SignedByOwnCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the provider's certificate chains to promptwall's own org CA, which upstream connections never trust: \
             someone holding the org CA key is intercepting this host's provider traffic",
        )
    }
}

impl std::error::Error for SignedByOwnCa {}

/// webpki verification, after refusing any chain through our own CAs (even
/// when they are in the supplied roots).
#[derive(Debug)]
struct RefuseOwnCa {
    inner: Arc<WebPkiServerVerifier>,
    own: OwnCas,
}

impl ServerCertVerifier for RefuseOwnCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if std::iter::once(end_entity)
            .chain(intermediates)
            .any(|c| self.own.vouches_for(c))
        {
            tracing::warn!(server = ?server_name, "{SignedByOwnCa}");
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(SignedByOwnCa),
            ))));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn root_store(extra: &[PathBuf], own: &OwnCas) -> Result<rustls::RootCertStore, UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut add = |cert: CertificateDer<'static>| {
        let ours = !own.is_empty()
            && X509Certificate::from_der(cert.as_ref())
                .map(|(_, x)| own.is_own(&x))
                .unwrap_or(false);
        if !ours {
            let _ = roots.add(cert);
        }
    };
    // A broken or partly unreadable system store must not stop the proxy;
    // every certificate that does parse is used.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        add(cert);
    }
    for path in extra {
        let pem = std::fs::read(path).map_err(|source| UpstreamError::ReadRoot {
            path: path.clone(),
            source,
        })?;
        let mut found = false;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
            found = true;
            add(cert);
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
    use promptwall_ca::{InitOptions, LeafMinter, OrgCa};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers one HTTP/1.1 request per TLS connection with 200 "ok".
    async fn tls_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }

    /// An upstream client dialling `api.anthropic.com` at `addr`, trusting
    /// `roots` in addition to the system store, with its org CA in `ca_dir`.
    fn upstream_to(addr: SocketAddr, ca_dir: &std::path::Path, roots: Vec<PathBuf>) -> Upstream {
        let mut config = Config {
            ca_dir: ca_dir.to_path_buf(),
            ..Config::default()
        };
        config.upstream.extra_roots = roots;
        config.upstream.mark = 0;
        config.upstream.resolve.insert("api.anthropic.com".into(), addr);
        Upstream::new(&config).unwrap()
    }

    async fn get(upstream: &Upstream) -> Result<http::StatusCode, String> {
        let req = http::Request::get("https://api.anthropic.com/v1/models")
            .body(crate::body::empty())
            .unwrap();
        match upstream.client.request(req).await {
            Ok(resp) => Ok(resp.status()),
            Err(e) => {
                let mut text = format!("{e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                Err(text)
            }
        }
    }

    fn org_ca(dir: &std::path::Path) -> OrgCa {
        OrgCa::init(
            dir,
            &InitOptions {
                permitted_domains: vec!["anthropic.com".into()],
                common_name: format!("upstream test org CA {}", dir.display()),
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// Any developer with root on one fleet host holds the org CA key: a leaf
    /// it signs must not let them intercept another host's upstream leg, even
    /// when the org CA reached the roots (`ca install`, or `extra_roots`).
    #[tokio::test]
    async fn upstream_refuses_a_leaf_signed_by_the_org_ca_even_as_a_supplied_root() {
        let tmp = tempfile::tempdir().unwrap();
        let ca_dir = tmp.path().join("ca");
        let ca = org_ca(&ca_dir);
        let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
        let addr = tls_server(minter.server_config(&[b"http/1.1"])).await;
        let roots = vec![OrgCa::cert_path(&ca_dir)];

        // Control: the same CA as a plain extra root (not this host's org CA)
        // is trusted, so the refusal below is about it being ours.
        let other_host = upstream_to(addr, &tmp.path().join("no-ca-here"), roots.clone());
        assert_eq!(get(&other_host).await.expect("trusted as a foreign root"), 200);

        let err = get(&upstream_to(addr, &ca_dir, roots)).await.unwrap_err();
        assert!(err.contains("org CA"), "must say why: {err}");
    }

    /// Fleet import: an org intermediate (key on every host) under a corporate
    /// root the host trusts. A leaf from the intermediate chains to a trusted
    /// root, yet must be refused because the chain runs through our CA.
    #[tokio::test]
    async fn upstream_refuses_a_chain_through_the_imported_org_intermediate() {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let tmp = tempfile::tempdir().unwrap();
        let ca_params = |cn: &str| {
            let mut p = CertificateParams::default();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p.use_authority_key_identifier_extension = true;
            p
        };
        let root_key = KeyPair::generate().unwrap();
        let root = ca_params("upstream test corporate root")
            .self_signed(&root_key)
            .unwrap();
        let int_key = KeyPair::generate().unwrap();
        let int = ca_params("upstream test fleet intermediate")
            .signed_by(
                &int_key,
                &Issuer::new(ca_params("upstream test corporate root"), &root_key),
            )
            .unwrap();
        let file = |name: &str, text: String| {
            let p = tmp.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let root_pem = file("root.pem", root.pem());
        // The fleet hands out the intermediate alone; the root is trusted separately.
        let ca_dir = tmp.path().join("ca");
        let ca = OrgCa::import(
            &ca_dir,
            &file("int.pem", int.pem()),
            &file("int.key", int_key.serialize_pem()),
            false,
        )
        .unwrap();
        let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
        let addr = tls_server(minter.server_config(&[b"http/1.1"])).await;

        let other_host = upstream_to(addr, &tmp.path().join("no-ca-here"), vec![root_pem.clone()]);
        assert_eq!(get(&other_host).await.expect("chains to the trusted root"), 200);

        let err = get(&upstream_to(addr, &ca_dir, vec![root_pem])).await.unwrap_err();
        assert!(err.contains("org CA"), "must say why: {err}");
    }

    #[test]
    fn installed_anchor_paths_match_where_ca_install_writes() {
        use promptwall_ca::trust::TrustLayout;
        let root = std::path::Path::new("/");
        let written = [
            TrustLayout::Debian.anchor_path(root),
            TrustLayout::Rhel.anchor_path(root),
        ];
        assert_eq!(
            written.map(|p| p.display().to_string()),
            INSTALLED_ANCHORS.map(str::to_string)
        );
    }

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
