//! Which local process owns a TCP connection, from `/proc/net/tcp{,6}` and
//! `/proc/<pid>/fd` (read with the procfs crate). Used where no eBPF record
//! exists: the explicit listener and the nftables fallback (NAT keeps the
//! client socket's view, so its entry still names the original destination).
//! The one place promptwall reads these tables.

use std::net::{IpAddr, SocketAddr};

use procfs::process::FDTarget;

/// One TCP socket as the kernel lists it in this network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The socket owner's uid.
    pub uid: u32,
    pub inode: u64,
}

/// The first socket with an inode that `matches`, searching the table of
/// `family_of`'s address family first: a v4 client may appear in tcp6 as
/// v4-mapped, and vice versa.
fn find_socket(family_of: SocketAddr, matches: impl Fn(&TcpEntry) -> bool) -> Option<TcpEntry> {
    let tables: [fn() -> procfs::ProcResult<Vec<procfs::net::TcpNetEntry>>; 2] = if family_of.is_ipv4() {
        [procfs::net::tcp, procfs::net::tcp6]
    } else {
        [procfs::net::tcp6, procfs::net::tcp]
    };
    tables.iter().find_map(|table| {
        table().ok()?.into_iter().find_map(|e| {
            let entry = TcpEntry {
                local: e.local_address,
                remote: e.remote_address,
                uid: e.uid,
                inode: e.inode,
            };
            (entry.inode != 0 && matches(&entry)).then_some(entry)
        })
    })
}

/// Socket inode of the TCP connection `local` → `remote`, as the kernel lists it.
pub fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    find_socket(local, |e| same(e.local, local) && same(e.remote, remote)).map(|e| e.inode)
}

/// The client socket whose local address is `peer` (as a proxy listening on
/// `listener` sees it); its `remote` is the destination the client dialled.
pub fn find_client(peer: SocketAddr, listener: SocketAddr) -> Option<TcpEntry> {
    find_socket(peer, |e| same(e.local, peer) && !same(e.local, listener))
}

fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

/// A v4-mapped v6 address as the v4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The process holding socket `inode` open (first match; shared sockets are rare).
pub fn pid_of_inode(inode: u64) -> Option<u32> {
    procfs::process::all_processes().ok()?.flatten().find_map(|process| {
        let mut fds = process.fd().ok()?.flatten();
        fds.any(|fd| matches!(fd.target, FDTarget::Socket(i) if i == inode))
            .then(|| u32::try_from(process.pid).ok())
            .flatten()
    })
}

/// The pid of the local process whose socket `client` is connected to `server`.
pub fn local_client_pid(client: SocketAddr, server: SocketAddr) -> Option<u32> {
    if !canonical(client.ip()).is_loopback() && !is_local_address(client.ip()) {
        return None;
    }
    pid_of_inode(socket_inode(client, server)?)
}

fn is_local_address(ip: IpAddr) -> bool {
    // Bind a throwaway UDP socket to it: succeeds only for this host's addresses.
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_as_the_owner_of_its_own_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(local_client_pid(peer, server), Some(std::process::id()));
        // A made-up connection has no owner.
        assert_eq!(local_client_pid("127.0.0.1:1".parse().unwrap(), server), None);
    }

    #[test]
    fn finds_the_client_socket_with_its_destination_uid_and_pid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let entry = find_client(client.local_addr().unwrap(), server).expect("client row");
        assert_eq!(entry.remote, server);
        assert_eq!(entry.uid, unsafe { libc::geteuid() });
        assert_eq!(pid_of_inode(entry.inode), Some(std::process::id()));
    }

    #[test]
    fn a_v4_client_of_a_dual_stack_listener_is_attributed_through_the_v4_table() {
        // Skipped where the host has no IPv6 loopback.
        let Ok(listener) = std::net::TcpListener::bind("[::]:0") else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let server: SocketAddr = ([127, 0, 0, 1], port).into();
        let Ok(_client) = std::net::TcpStream::connect(server) else {
            return;
        };
        // The listener sees ::ffff:127.0.0.1 (tcp6); the client is in tcp.
        let (accepted, peer) = listener.accept().unwrap();
        assert!(peer.is_ipv6());
        let local = accepted.local_addr().unwrap();
        assert_eq!(local_client_pid(peer, local), Some(std::process::id()));
    }
}
