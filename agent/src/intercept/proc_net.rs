//! Attribution for the nftables fallback: NAT keeps the client socket's view,
//! so the client's entry in /proc/net/tcp{,6} still names the original
//! destination; its inode leads to the owning process via /proc/<pid>/fd.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub uid: u32,
    pub inode: u64,
}

fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.to_ne_bytes())),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()?;
                octets[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

pub fn parse_table(text: &str) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            Some(TcpEntry {
                local: parse_addr(f[1])?,
                remote: parse_addr(f[2])?,
                state: u8::from_str_radix(f[3], 16).ok()?,
                uid: f[7].parse().ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

fn same(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |s: SocketAddr| (super::addresses::canonical(s.ip()), s.port());
    canon(a) == canon(b)
}

/// The client socket whose local address is `peer` (as the proxy sees it).
pub fn find_client(peer: SocketAddr, listener: SocketAddr) -> Option<TcpEntry> {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        parse_table(&text)
            .into_iter()
            .find(|e| same(e.local, peer) && !same(e.local, listener) && e.inode != 0)
    })
}

/// The process holding socket `inode` (first match; shared sockets are rare).
pub fn pid_of_inode(inode: u64) -> Option<u32> {
    let needle = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path())
                .map(|l| l.as_os_str() == needle.as_str())
                .unwrap_or(false)
            {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_rows() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 0100007F:9C40 0200007F:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 20 4 30 10 -1\n";
        let e = &parse_table(v4)[0];
        assert_eq!(e.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(e.remote, "127.0.0.2:443".parse().unwrap());
        assert_eq!((e.state, e.uid, e.inode), (1, 1000, 12345));
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 00000000000000000000000001000000:9C40 0000000000000000FFFF00000200007F:01BB 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1\n";
        let e = &parse_table(v6)[0];
        assert_eq!(e.local, "[::1]:40000".parse().unwrap());
        assert_eq!(e.remote, "[::ffff:127.0.0.2]:443".parse().unwrap());
    }

    #[test]
    fn finds_own_socket_and_pid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let entry = find_client(client.local_addr().unwrap(), listener.local_addr().unwrap()).expect("client row");
        assert_eq!(entry.remote, listener.local_addr().unwrap());
        assert_eq!(pid_of_inode(entry.inode), Some(std::process::id()));
    }
}
