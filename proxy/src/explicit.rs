//! The explicit base-URL listener: plain HTTP (or HTTPS with a minted leaf)
//! that SDKs reach through ANTHROPIC_BASE_URL / OPENAI_BASE_URL.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::exchange::{ConnContext, Listener};
use crate::forward::Proxy;
use crate::server::serve_http;

pub async fn run(proxy: Arc<Proxy>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("explicit listener accept failed: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
        let span = tracing::info_span!("conn", listener = "explicit", %peer);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let identity = local_identity(&stream, peer).await;
                match tls {
                    None => {
                        let conn = ConnContext {
                            listener: Listener::Explicit,
                            peer,
                            server_name: None,
                            origin: None,
                            identity,
                        };
                        serve_http(proxy, conn, stream).await
                    }
                    Some(acceptor) => match crate::admission::tls_accept(&proxy.config.limits, &acceptor, stream).await
                    {
                        Ok(tls_stream) => {
                            // Explicit HTTPS is addressed by base URL, not by SNI; route by path.
                            let conn = ConnContext {
                                listener: Listener::Explicit,
                                peer,
                                server_name: None,
                                origin: None,
                                identity,
                            };
                            serve_http(proxy, conn, tls_stream).await
                        }
                        Err(e) => {
                            proxy
                                .stats
                                .tls_handshake_failures
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::debug!("explicit TLS handshake failed: {e}");
                        }
                    },
                }
            },
            span,
        ));
    }
}

/// The process on this machine that opened the connection, if any.
pub(crate) async fn local_identity(
    stream: &tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<crate::origin::ClientIdentity> {
    let local = stream.local_addr().ok()?;
    tokio::task::spawn_blocking(move || {
        let pid = crate::peer::local_client_pid(peer, local)?;
        let mut identity = crate::origin::ClientIdentity {
            pid: Some(pid),
            ..Default::default()
        };
        crate::attribution::enrich(&mut identity);
        Some(identity)
    })
    .await
    .ok()
    .flatten()
}
