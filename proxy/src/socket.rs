//! Socket options the proxy depends on: `SO_MARK` on upstream sockets (so the
//! redirect skips them) and `SO_ORIGINAL_DST` for the nftables fallback.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
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

/// The pre-NAT destination of a connection redirected by nftables.
pub fn original_dst(stream: &TcpStream) -> std::io::Result<SocketAddr> {
    const SO_ORIGINAL_DST: libc::c_int = 80;
    const IP6T_SO_ORIGINAL_DST: libc::c_int = 80;
    let fd = stream.as_raw_fd();
    let local = stream.local_addr()?;
    unsafe {
        if local.is_ipv4() {
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::getsockopt(
                fd,
                libc::SOL_IP,
                SO_ORIGINAL_DST,
                &mut addr as *mut _ as *mut _,
                &mut len,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(addr.sin_port))))
        } else {
            let mut addr: libc::sockaddr_in6 = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            if libc::getsockopt(
                fd,
                libc::SOL_IPV6,
                IP6T_SO_ORIGINAL_DST,
                &mut addr as *mut _ as *mut _,
                &mut len,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let ip = std::net::Ipv6Addr::from(addr.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(addr.sin6_port),
                0,
                0,
            )))
        }
    }
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
