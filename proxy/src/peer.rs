//! Which local process owns the other end of a loopback connection, from
//! `/proc/net/tcp{,6}` and `/proc/<pid>/fd`. Used where no eBPF record exists:
//! the explicit listener and the nftables fallback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Socket inode of the TCP connection `local` → `remote`, as the kernel lists it.
pub fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let table = if local.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    find_inode(&text, local, remote).or_else(|| {
        // A v4 client may appear in tcp6 as v4-mapped, and vice versa.
        let other = if local.is_ipv4() {
            "/proc/net/tcp6"
        } else {
            "/proc/net/tcp"
        };
        find_inode(&std::fs::read_to_string(other).ok()?, local, remote)
    })
}

fn find_inode(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Some(l), Some(r)) = (parse_addr(f[1]), parse_addr(f[2])) else {
            continue;
        };
        if same(l, local) && same(r, remote) {
            return f[9].parse().ok().filter(|i| *i != 0);
        }
    }
    None
}

fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Parses `0100007F:1F90` (v4) or the 32-hex-digit v6 form.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = s.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(ip_hex, 16).ok()?.swap_bytes())),
        32 => {
            // Four host-order 32-bit words.
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(&ip_hex[i * 8..i * 8 + 8], 16).ok()?.swap_bytes();
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The process holding socket `inode` open (the thread-group leader).
pub fn pid_of_inode(inode: u64) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
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
    fn parses_proc_net_addresses() {
        assert_eq!(parse_addr("0100007F:1F90"), Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(
            parse_addr("00000000000000000000000001000000:01BB"),
            Some("[::1]:443".parse().unwrap())
        );
        assert_eq!(
            parse_addr("0000000000000000FFFF00000100007F:0050"),
            Some("[::ffff:127.0.0.1]:80".parse().unwrap())
        );
    }

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
}
