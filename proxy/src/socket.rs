//! Socket options the proxy depends on: `SO_MARK` on upstream sockets (so the
//! redirect skips them) and `SO_ORIGINAL_DST` for the nftables fallback.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

/// Connects with `SO_MARK = mark` (0: no mark) within `timeout`.
pub async fn connect_marked(addr: SocketAddr, mark: u32, timeout: Duration) -> std::io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if mark != 0 {
        sock.set_mark(mark).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot set SO_MARK {mark:#x} on the upstream socket ({e}); run promptwall as root or with CAP_NET_ADMIN"),
            )
        })?;
    }
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    // Long generations stream slowly; keepalive notices a provider
    // connection that died silently (NAT drop, host gone) within ~2 minutes
    // instead of leaving the client waiting forever.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(15))
        .with_retries(4);
    sock.set_tcp_keepalive(&keepalive)?;
    let std_stream: std::net::TcpStream = sock.into();
    let socket = TcpSocket::from_std_stream(std_stream);
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connecting to {addr} timed out after {} ms", timeout.as_millis()),
        )),
    }
}

/// Checks at startup that marking works, as ztunnel does: without it the
/// redirect would loop our own upstream connections back to us.
pub fn verify_mark_capability(mark: u32) -> std::io::Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_mark(mark)
}

/// The pre-NAT destination of a connection redirected by nftables
/// (`SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST`, per the accepted socket's family).
pub fn original_dst(stream: &TcpStream) -> std::io::Result<SocketAddr> {
    let sock = socket2::SockRef::from(stream);
    let addr = if stream.local_addr()?.is_ipv4() {
        sock.original_dst()?
    } else {
        sock.original_dst_ipv6()?
    };
    addr.as_socket().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "SO_ORIGINAL_DST returned an address that is not IPv4 or IPv6",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upstream_sockets_have_nodelay_and_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = connect_marked(addr, 0, Duration::from_secs(5)).await.unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.keepalive_time().unwrap(), Duration::from_secs(60));
        assert!(sock.nodelay().unwrap());
    }
}
