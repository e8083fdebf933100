//! Types shared by the eBPF programs and the agent. Every type is `#[repr(C)]`
//! with explicit padding so both sides agree on the layout byte for byte.
#![no_std]

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// Map names, so the agent and the programs cannot drift apart.
pub mod maps {
    /// LPM trie: provider IPv4 prefixes (key bytes in network order) -> source flags.
    pub const PROVIDERS_V4: &str = "PROVIDERS_V4";
    /// LPM trie: provider IPv6 prefixes -> source flags.
    pub const PROVIDERS_V6: &str = "PROVIDERS_V6";
    /// Hash: captured destination port (host order) -> 1.
    pub const CAPTURE_PORTS: &str = "CAPTURE_PORTS";
    /// Array[1]: CLOCK_MONOTONIC ns of the agent's last heartbeat.
    pub const HEARTBEAT: &str = "HEARTBEAT";
    /// LRU hash: socket cookie -> ConnMeta, written at connect().
    pub const COOKIE_META: &str = "COOKIE_META";
    /// LRU hash: PeerKey (client address after connect) -> ConnMeta.
    pub const PEER_META: &str = "PEER_META";
    /// LRU hash: socket cookie -> PeerKey, so sock_release can drop PEER_META entries.
    pub const COOKIE_PEER: &str = "COOKIE_PEER";
    /// Array[1]: the transparent listener (`Listener`); port 0 = not ready, pass.
    pub const LISTENER: &str = "LISTENER";
    /// Hash: network namespace cookie -> `Listener` the agent opened inside
    /// that namespace (containers); a namespace without one is passed.
    pub const NETNS_LISTENERS: &str = "NETNS_LISTENERS";
    /// Array of counters, indexed by `counters::*`.
    pub const COUNTERS: &str = "COUNTERS";
}

/// Indexes into the COUNTERS array.
pub mod counters {
    pub const REDIRECTED: u32 = 0;
    pub const SKIPPED_MARK: u32 = 1;
    pub const SKIPPED_STALE: u32 = 2;
    pub const REJECTED_CLOSED: u32 = 3;
    pub const REJECTED_QUIC: u32 = 4;
    pub const REKEYED: u32 = 5;
    pub const RELEASED: u32 = 6;
    pub const SKIPPED_NETNS: u32 = 7;
    pub const REDIRECTED_NETNS: u32 = 8;
    pub const COUNT: u32 = 9;
    pub const NAMES: [&str; COUNT as usize] = [
        "redirected",
        "skipped_mark",
        "skipped_stale_heartbeat",
        "rejected_fail_closed",
        "rejected_quic",
        "rekeyed",
        "released",
        "skipped_other_netns",
        "redirected_other_netns",
    ];
}

/// Globals patched at load time with `EbpfLoader::set_global`.
pub mod globals {
    /// SO_MARK carried by the proxy's own upstream sockets.
    pub const PROXY_MARK: &str = "PROXY_MARK";
    /// cgroup id of the agent (0 = don't exclude by cgroup).
    pub const AGENT_CGROUP_ID: &str = "AGENT_CGROUP_ID";
    /// Network namespace cookie of the agent: its connections go to `LISTENER`;
    /// other namespaces' to their `NETNS_LISTENERS` entry, if any.
    pub const HOST_NETNS_COOKIE: &str = "HOST_NETNS_COOKIE";
    /// 1: reject provider connections while the heartbeat is stale.
    pub const FAIL_CLOSED: &str = "FAIL_CLOSED";
    /// 1: refuse UDP to provider addresses on captured ports (QUIC).
    pub const BLOCK_QUIC: &str = "BLOCK_QUIC";
    /// Heartbeat older than this (ns) counts as a dead agent.
    pub const HEARTBEAT_MAX_AGE_NS: &str = "HEARTBEAT_MAX_AGE_NS";
}

/// Program names (the Rust function names in promptwall-ebpf).
pub mod programs {
    pub const CONNECT4: &str = "pw_connect4";
    pub const CONNECT6: &str = "pw_connect6";
    pub const SENDMSG4: &str = "pw_sendmsg4";
    pub const SENDMSG6: &str = "pw_sendmsg6";
    pub const SOCK_OPS: &str = "pw_sock_ops";
    pub const SOCK_RELEASE: &str = "pw_sock_release";
}

/// What connect4/6 recorded about one redirected socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ConnMeta {
    /// Original destination; for IPv4 only `orig_addr[0]` is used. Network byte order.
    pub orig_addr: [u32; 4],
    /// Original destination port, host byte order.
    pub orig_port: u16,
    /// AF_INET or AF_INET6 of the original destination (v4-mapped counts as AF_INET).
    pub orig_family: u16,
    /// 1 when the socket was sent to the IPv4 listener (connect4 or v4-mapped connect6).
    pub redirected_v4: u8,
    pub _pad0: [u8; 3],
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub _pad1: u32,
    pub cgroup_id: u64,
    pub netns_cookie: u64,
    pub socket_cookie: u64,
    /// bpf_ktime_get_ns() at connect (CLOCK_MONOTONIC).
    pub ktime_ns: u64,
    pub comm: [u8; 16],
}

/// Where redirected connections go (written once the proxy listens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Listener {
    /// Target of native IPv6 connections, as `user_ip6` words (network order);
    /// a v4-mapped address sends them to the IPv4 listener.
    pub v6_addr: [u32; 4],
    /// IPv4 listener address as read from `user_ip4` (network order).
    pub v4_addr: u32,
    /// Ports in host order; `v4_port == 0` means "proxy not ready".
    pub v4_port: u16,
    pub v6_port: u16,
}

/// The client's address as the proxy sees it after accept(), in the
/// network namespace it connected from: two containers may both connect
/// from 127.0.0.1:40000 to their own listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct PeerKey {
    pub family: u16,
    /// Client port, host byte order.
    pub port: u16,
    /// Client address, network byte order; IPv4 in `addr[0]`, rest zero.
    pub addr: [u32; 4],
    pub _pad: u32,
    pub netns_cookie: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] data with explicit padding, no pointers.
    unsafe impl aya::Pod for super::ConnMeta {}
    unsafe impl aya::Pod for super::PeerKey {}
    unsafe impl aya::Pod for super::Listener {}
}
