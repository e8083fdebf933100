//! Which local process owns a TCP connection, from `/proc/net/tcp{,6}` and
//! `/proc/<pid>/fd` (read with the procfs crate). Used where no eBPF record
//! exists: the explicit listener and the nftables fallback (NAT keeps the
//! client socket's view, so its entry still names the original destination).
//! The one place promptwall reads these tables.
//!
//! A connection whose both ends are known is looked up by its address pair
//! through the kernel's sock_diag netlink interface instead: reading
//! `/proc/net/tcp` walks every bucket of the established-socket hash table
//! (262,144 on a 24 GiB machine: ~4 ms of CPU per read, whatever the number
//! of sockets), and each new connection to the explicit listener did that
//! before its first request was served.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI32, Ordering};

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
    match diag::inode(local, remote) {
        Ok(found) => found,
        // No sock_diag (a kernel without it, a seccomp filter): the table.
        Err(_) => find_socket(local, |e| same(e.local, local) && same(e.remote, remote)).map(|e| e.inode),
    }
}

/// The exact lookup of one TCP socket by its address pair (SOCK_DIAG_BY_FAMILY
/// without NLM_F_DUMP): a hash lookup in the kernel, as `ss` does it.
mod diag {
    use std::io;
    use std::net::{IpAddr, SocketAddr};

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const INET_DIAG_NOCOOKIE: u32 = !0;

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct SockId {
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        interface: u32,
        cookie: [u32; 2],
    }

    #[repr(C)]
    struct Request {
        header: libc::nlmsghdr,
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        id: SockId,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Message {
        family: u8,
        state: u8,
        timer: u8,
        retrans: u8,
        id: SockId,
        expires: u32,
        rqueue: u32,
        wqueue: u32,
        uid: u32,
        inode: u32,
    }

    fn octets(ip: IpAddr) -> [u8; 16] {
        let mut out = [0; 16];
        match ip {
            IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out = v6.octets(),
        }
        out
    }

    /// The inode of the socket bound to `local` and connected to `remote`:
    /// Ok(None) when the kernel has no such socket; Err when it could not
    /// be asked. A v4 pair is also looked up as v4-mapped v6 (a v6 socket
    /// that dialled a v4 address).
    pub(super) fn inode(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u64>> {
        let canon = |a: SocketAddr| SocketAddr::new(super::canonical(a.ip()), a.port());
        let (local, remote) = (canon(local), canon(remote));
        if let (IpAddr::V4(l), IpAddr::V4(r)) = (local.ip(), remote.ip()) {
            if let Some(inode) = query(libc::AF_INET as u8, local, remote)? {
                return Ok(Some(inode));
            }
            let mapped = |ip: std::net::Ipv4Addr, port| SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), port);
            return query(libc::AF_INET6 as u8, mapped(l, local.port()), mapped(r, remote.port()));
        }
        if local.is_ipv6() && remote.is_ipv6() {
            return query(libc::AF_INET6 as u8, local, remote);
        }
        Ok(None)
    }

    fn query(family: u8, local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u64>> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let request = Request {
            header: libc::nlmsghdr {
                nlmsg_len: std::mem::size_of::<Request>() as u32,
                nlmsg_type: SOCK_DIAG_BY_FAMILY,
                nlmsg_flags: libc::NLM_F_REQUEST as u16,
                nlmsg_seq: 1,
                nlmsg_pid: 0,
            },
            family,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: !0,
            id: SockId {
                sport: local.port().to_be_bytes(),
                dport: remote.port().to_be_bytes(),
                src: octets(local.ip()),
                dst: octets(remote.ip()),
                interface: 0,
                cookie: [INET_DIAG_NOCOOKIE; 2],
            },
        };
        // SAFETY: sends the bytes of a repr(C) value that lives across the call.
        let sent = unsafe {
            libc::send(
                fd,
                (&request as *const Request).cast(),
                std::mem::size_of::<Request>(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = [0u64; 128];
        // SAFETY: receives into a buffer of the given length, aligned for nlmsghdr.
        let got = unsafe { libc::recv(fd, reply.as_mut_ptr().cast(), std::mem::size_of_val(&reply), 0) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        let header_len = std::mem::size_of::<libc::nlmsghdr>();
        if got < header_len {
            return Err(io::Error::other("short sock_diag reply"));
        }
        // SAFETY: at least a header was received into an aligned buffer.
        let header: libc::nlmsghdr = unsafe { std::ptr::read(reply.as_ptr().cast()) };
        if header.nlmsg_type == libc::NLMSG_ERROR as u16 {
            // The error code follows the header: ENOENT is "no such socket".
            let code = if got >= header_len + 4 {
                // SAFETY: four more bytes were received.
                unsafe { std::ptr::read_unaligned(reply.as_ptr().cast::<u8>().add(header_len).cast::<i32>()) }
            } else {
                0
            };
            return match -code {
                0 | libc::ENOENT => Ok(None),
                errno => Err(io::Error::from_raw_os_error(errno)),
            };
        }
        if header.nlmsg_type != SOCK_DIAG_BY_FAMILY || got < header_len + std::mem::size_of::<Message>() {
            return Err(io::Error::other("unexpected sock_diag reply"));
        }
        // SAFETY: a whole Message was received right after the header.
        let message: Message = unsafe { std::ptr::read_unaligned(reply.as_ptr().cast::<u8>().add(header_len).cast()) };
        Ok((message.inode != 0).then_some(u64::from(message.inode)))
    }
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
    // A client usually opens its connections in bursts (an SDK's pool), so
    // the last owner found is asked first: one process's descriptors
    // instead of every process's, each a readlink.
    static LAST_OWNER: AtomicI32 = AtomicI32::new(0);
    let holds = |process: &procfs::process::Process| {
        process.fd().ok().is_some_and(|mut fds| {
            fds.any(|fd| fd.is_ok_and(|fd| matches!(fd.target, FDTarget::Socket(i) if i == inode)))
        })
    };
    let last = LAST_OWNER.load(Ordering::Relaxed);
    if last > 0 && procfs::process::Process::new(last).is_ok_and(|p| holds(&p)) {
        return u32::try_from(last).ok();
    }
    let owner = procfs::process::all_processes()
        .ok()?
        .flatten()
        .find(|process| process.pid != last && holds(process))?;
    LAST_OWNER.store(owner.pid, Ordering::Relaxed);
    u32::try_from(owner.pid).ok()
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
    fn the_exact_lookup_finds_the_inode_the_table_lists() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let local = client.local_addr().unwrap();
        let listed = find_socket(local, |e| same(e.local, local) && same(e.remote, server)).expect("listed");
        assert_eq!(diag::inode(local, server).unwrap(), Some(listed.inode));
        // The accepted end is another socket, with its own inode.
        let (_accepted, _) = listener.accept().unwrap();
        let other_end = diag::inode(server, local).unwrap().expect("the accepted socket");
        assert_ne!(other_end, listed.inode);
        assert_eq!(diag::inode("127.0.0.1:1".parse().unwrap(), server).unwrap(), None);
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
        // Asked again, the remembered owner answers; a socket nobody holds has none.
        assert_eq!(pid_of_inode(entry.inode), Some(std::process::id()));
        assert_eq!(pid_of_inode(u64::MAX), None);
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
