//! ClientHello peeking: SNI/ALPN from a hello split across many segments,
//! replay of the peeked bytes into a real TLS handshake, and non-TLS input.

use std::sync::Arc;

use promptwall_proxy::transparent::{peek_client_hello, PeekError, Rewind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn self_signed(name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (
        cert.cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der())),
    )
}

fn client_config(trusted: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}

#[tokio::test]
async fn hello_split_into_tiny_segments_is_reassembled_and_replayed() {
    let (cert, key) = self_signed("api.anthropic.com");
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    let client_cfg = client_config(cert);
    let client = tokio::spawn(async move {
        // Produce the ClientHello by hand so it can be dribbled out 7 bytes at a time.
        let mut conn =
            rustls::ClientConnection::new(client_cfg.clone(), ServerName::try_from("api.anthropic.com").unwrap())
                .unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        for piece in hello.chunks(7) {
            tcp.write_all(piece).await.unwrap();
            tcp.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        // Finish the handshake with rustls driving the same socket.
        let (mut rd, mut wr) = tcp.into_split();
        let mut buf = vec![0u8; 16384];
        loop {
            if conn.wants_write() {
                let mut out = Vec::new();
                conn.write_tls(&mut out).unwrap();
                wr.write_all(&out).await.unwrap();
            }
            if !conn.is_handshaking() {
                break;
            }
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during handshake");
            conn.read_tls(&mut &buf[..n]).unwrap();
            conn.process_new_packets().unwrap();
        }
        hello.len()
    });

    let (mut stream, _) = listener.accept().await.unwrap();
    let (info, buffered) = peek_client_hello(&mut stream).await.unwrap();
    assert_eq!(info.server_name.as_deref(), Some("api.anthropic.com"));
    assert_eq!(info.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let tls = acceptor
        .accept(Rewind::new(buffered.clone(), stream))
        .await
        .expect("handshake over replayed bytes");
    let hello_len = client.await.unwrap();
    assert_eq!(buffered.len(), hello_len, "exactly the ClientHello was consumed");
    assert_eq!(tls.get_ref().1.server_name(), Some("api.anthropic.com"));
}

#[tokio::test]
async fn plain_http_is_not_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    });
    let (mut stream, _) = listener.accept().await.unwrap();
    match peek_client_hello(&mut stream).await {
        Err(PeekError::NotTls(_)) => {}
        other => panic!("expected NotTls, got {other:?}"),
    }
}

#[tokio::test]
async fn hello_without_sni_has_no_server_name() {
    let (cert, _key) = self_signed("x.invalid");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = client_config(cert);
    tokio::spawn(async move {
        // An IP-address server name sends no SNI extension.
        let conn = rustls::ClientConnection::new(cfg, ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        let mut conn = conn.unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&hello).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    });
    let (mut stream, _) = listener.accept().await.unwrap();
    let (info, _) = peek_client_hello(&mut stream).await.unwrap();
    assert_eq!(info.server_name, None);
}
