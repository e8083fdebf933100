//! promptwall's kernel side: send connections for provider addresses to the
//! local transparent proxy and remember who made them (Cilium bpf_sock.c style).
//!
//! * `cgroup/connect4|6`: TCP to a captured port + provider prefix + not our own
//!   socket + fresh heartbeat -> record `ConnMeta` by socket cookie and rewrite
//!   the destination to the transparent listener: the host's for the agent's
//!   network namespace, or the one the agent opened inside another namespace
//!   (a container's), reachable from there; a namespace without one is passed.
//! * `sockops` TCP_CONNECT_CB: the source port is known now; re-key the record
//!   by the client address the proxy will see after accept().
//! * `cgroup/sock_release`: drop the records of closed sockets.
//! * `cgroup/connect4|6` + `sendmsg4|6` for UDP: refuse QUIC to providers.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{bpf_sock_addr, BPF_SOCK_OPS_TCP_CONNECT_CB},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_getsockopt, bpf_ktime_get_ns,
    },
    macros::{cgroup_sock, cgroup_sock_addr, map, sock_ops},
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
    programs::{SockAddrContext, SockContext, SockOpsContext},
};
use promptwall_common::{counters, ConnMeta, Listener, PeerKey, AF_INET, AF_INET6};

const ALLOW: i32 = 1;
/// Returning 0 from a cgroup sock_addr program fails the syscall with EPERM.
const REJECT: i32 = 0;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOL_SOCKET: i32 = 1;
const SO_MARK: i32 = 36;
const META_ENTRIES: u32 = 65536;

// Globals patched by the agent at load (EbpfLoader::set_global). Read through
// read_volatile so the compiler cannot constant-fold the defaults.
#[no_mangle]
static PROXY_MARK: u32 = 0;
#[no_mangle]
static AGENT_CGROUP_ID: u64 = 0;
#[no_mangle]
static HOST_NETNS_COOKIE: u64 = 0;
#[no_mangle]
static FAIL_CLOSED: u8 = 0;
#[no_mangle]
static BLOCK_QUIC: u8 = 0;
#[no_mangle]
static HEARTBEAT_MAX_AGE_NS: u64 = 3_000_000_000;

#[inline(always)]
fn global<T: Copy>(value: &T) -> T {
    unsafe { core::ptr::read_volatile(value) }
}

#[map]
static PROVIDERS_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(16384, 0);
#[map]
static PROVIDERS_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(16384, 0);
#[map]
static CAPTURE_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(64, 0);
#[map]
static HEARTBEAT: Array<u64> = Array::with_max_entries(1, 0);
#[map]
static COOKIE_META: LruHashMap<u64, ConnMeta> = LruHashMap::with_max_entries(META_ENTRIES, 0);
#[map]
static PEER_META: LruHashMap<PeerKey, ConnMeta> = LruHashMap::with_max_entries(META_ENTRIES, 0);
#[map]
static COOKIE_PEER: LruHashMap<u64, PeerKey> = LruHashMap::with_max_entries(META_ENTRIES, 0);
#[map]
static LISTENER: Array<Listener> = Array::with_max_entries(1, 0);
#[map]
static NETNS_LISTENERS: HashMap<u64, Listener> = HashMap::with_max_entries(4096, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

#[inline(always)]
fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        unsafe { *slot += 1 };
    }
}

/// The proxy's listener, once it is ready (port 0 until then).
#[inline(always)]
fn listener() -> Option<Listener> {
    let l = *LISTENER.get(0)?;
    if l.v4_port == 0 {
        None
    } else {
        Some(l)
    }
}

#[inline(always)]
fn is_captured_port(port: u16) -> bool {
    unsafe { CAPTURE_PORTS.get(&port).is_some() }
}

#[inline(always)]
fn is_provider_v4(addr: u32) -> bool {
    PROVIDERS_V4.get(Key::new(32, addr.to_ne_bytes())).is_some()
}

#[inline(always)]
fn is_provider_v6(addr: &[u32; 4]) -> bool {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = addr[i].to_ne_bytes();
        bytes[i * 4] = b[0];
        bytes[i * 4 + 1] = b[1];
        bytes[i * 4 + 2] = b[2];
        bytes[i * 4 + 3] = b[3];
        i += 1;
    }
    PROVIDERS_V6.get(Key::new(128, bytes)).is_some()
}

#[inline(always)]
fn heartbeat_fresh() -> bool {
    let Some(beat) = HEARTBEAT.get(0) else { return false };
    let beat = *beat;
    if beat == 0 {
        return false;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    // A beat written after `now` was read is fresh too.
    beat >= now || now - beat <= global(&HEARTBEAT_MAX_AGE_NS)
}

/// The proxy marks its upstream sockets; those must never loop back to it.
#[inline(always)]
fn is_marked(ctx: &SockAddrContext) -> bool {
    let mark_wanted = global(&PROXY_MARK);
    if mark_wanted == 0 {
        return false;
    }
    let mut mark: u32 = 0;
    let rc = unsafe {
        bpf_getsockopt(
            ctx.sock_addr as *mut _,
            SOL_SOCKET,
            SO_MARK,
            &mut mark as *mut u32 as *mut _,
            core::mem::size_of::<u32>() as i32,
        )
    };
    rc == 0 && mark == mark_wanted
}

/// Where a connection from the caller's network namespace is redirected:
/// `Ok(None)` while the host listener is not ready, `Err(())` for another
/// namespace the agent serves no listener in (a container it has not seen
/// yet, or cannot serve): passed and counted, never broken.
#[inline(always)]
fn listener_for_netns(ctx: &SockAddrContext) -> Result<Option<Listener>, ()> {
    let cookie = unsafe { bpf_get_netns_cookie(ctx.sock_addr as *mut _) };
    if cookie == global(&HOST_NETNS_COOKIE) {
        return Ok(listener());
    }
    match unsafe { NETNS_LISTENERS.get(&cookie) } {
        Some(l) if l.v4_port != 0 => Ok(Some(*l)),
        _ => Err(()),
    }
}

#[inline(always)]
fn is_agent(ctx: &SockAddrContext) -> bool {
    let _ = ctx;
    let agent = global(&AGENT_CGROUP_ID);
    agent != 0 && unsafe { bpf_get_current_cgroup_id() } == agent
}

enum Verdict {
    Pass,
    Reject,
    Redirect(Listener),
}

/// Shared decision for a destination already known to be a provider on a captured port.
#[inline(always)]
fn decide(ctx: &SockAddrContext, sock_type: u32) -> Verdict {
    let Ok(listen) = listener_for_netns(ctx) else {
        count(counters::SKIPPED_NETNS);
        return Verdict::Pass;
    };
    let fresh = heartbeat_fresh();
    let closed = global(&FAIL_CLOSED) != 0;
    if sock_type == SOCK_DGRAM {
        if global(&BLOCK_QUIC) != 0 && (fresh || closed) {
            count(counters::REJECTED_QUIC);
            return Verdict::Reject;
        }
        return Verdict::Pass;
    }
    if sock_type != SOCK_STREAM {
        return Verdict::Pass;
    }
    if is_marked(ctx) {
        count(counters::SKIPPED_MARK);
        return Verdict::Pass;
    }
    if is_agent(ctx) {
        return Verdict::Pass;
    }
    if !fresh {
        if closed {
            count(counters::REJECTED_CLOSED);
            return Verdict::Reject;
        }
        count(counters::SKIPPED_STALE);
        return Verdict::Pass;
    }
    match listen {
        Some(l) => Verdict::Redirect(l),
        None => Verdict::Pass,
    }
}

#[inline(always)]
fn record(ctx: &SockAddrContext, orig_addr: [u32; 4], orig_port: u16, orig_family: u16, redirected_v4: bool) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr as *mut _) };
    let meta = ConnMeta {
        orig_addr,
        orig_port,
        orig_family,
        redirected_v4: redirected_v4 as u8,
        _pad0: [0; 3],
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        _pad1: 0,
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        netns_cookie: unsafe { bpf_get_netns_cookie(ctx.sock_addr as *mut _) },
        socket_cookie: cookie,
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    let _ = COOKIE_META.insert(&cookie, &meta, 0);
    count(if meta.netns_cookie == global(&HOST_NETNS_COOKIE) {
        counters::REDIRECTED
    } else {
        counters::REDIRECTED_NETNS
    });
}

#[inline(always)]
fn handle4(ctx: &SockAddrContext) -> i32 {
    let sa: *mut bpf_sock_addr = ctx.sock_addr;
    let (addr, port, sock_type) = unsafe { ((*sa).user_ip4, u16::from_be((*sa).user_port as u16), (*sa).type_) };
    if !is_captured_port(port) || !is_provider_v4(addr) {
        return ALLOW;
    }
    match decide(ctx, sock_type) {
        Verdict::Pass => ALLOW,
        Verdict::Reject => REJECT,
        // Already addressed to the listener (a test's provider address may be one).
        Verdict::Redirect(l) if addr == l.v4_addr && port == l.v4_port => ALLOW,
        Verdict::Redirect(l) => {
            record(ctx, [addr, 0, 0, 0], port, AF_INET, true);
            unsafe {
                (*sa).user_ip4 = l.v4_addr;
                (*sa).user_port = l.v4_port.to_be() as u32;
            }
            ALLOW
        }
    }
}

#[inline(always)]
fn is_v4_mapped(a: &[u32; 4]) -> bool {
    a[0] == 0 && a[1] == 0 && a[2] == 0xffffu32.to_be()
}

#[inline(always)]
fn handle6(ctx: &SockAddrContext) -> i32 {
    let sa: *mut bpf_sock_addr = ctx.sock_addr;
    let (addr, port, sock_type) = unsafe {
        (
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ],
            u16::from_be((*sa).user_port as u16),
            (*sa).type_,
        )
    };
    if !is_captured_port(port) {
        return ALLOW;
    }
    let mapped = is_v4_mapped(&addr);
    let provider = if mapped {
        is_provider_v4(addr[3])
    } else {
        is_provider_v6(&addr)
    };
    if !provider {
        return ALLOW;
    }
    let l = match decide(ctx, sock_type) {
        Verdict::Pass => return ALLOW,
        Verdict::Reject => return REJECT,
        Verdict::Redirect(l) => l,
    };
    let own = if mapped {
        addr[3] == l.v4_addr && port == l.v4_port
    } else {
        addr == l.v6_addr && port == l.v6_port
    };
    if own {
        return ALLOW;
    }
    let (target, target_port) = if mapped {
        ([0, 0, 0xffffu32.to_be(), l.v4_addr], l.v4_port)
    } else {
        (l.v6_addr, l.v6_port)
    };
    if mapped {
        record(ctx, [addr[3], 0, 0, 0], port, AF_INET, true);
    } else {
        record(ctx, addr, port, AF_INET6, is_v4_mapped(&target));
    }
    unsafe {
        (*sa).user_ip6[0] = target[0];
        (*sa).user_ip6[1] = target[1];
        (*sa).user_ip6[2] = target[2];
        (*sa).user_ip6[3] = target[3];
        (*sa).user_port = target_port.to_be() as u32;
    }
    ALLOW
}

#[cgroup_sock_addr(connect4)]
pub fn pw_connect4(ctx: SockAddrContext) -> i32 {
    handle4(&ctx)
}

#[cgroup_sock_addr(connect6)]
pub fn pw_connect6(ctx: SockAddrContext) -> i32 {
    handle6(&ctx)
}

/// Unconnected UDP sends name their destination per message; refuse QUIC there too.
#[cgroup_sock_addr(sendmsg4)]
pub fn pw_sendmsg4(ctx: SockAddrContext) -> i32 {
    let sa = ctx.sock_addr;
    let (addr, port) = unsafe { ((*sa).user_ip4, u16::from_be((*sa).user_port as u16)) };
    if !is_captured_port(port) || !is_provider_v4(addr) {
        return ALLOW;
    }
    match decide(&ctx, SOCK_DGRAM) {
        Verdict::Reject => REJECT,
        _ => ALLOW,
    }
}

#[cgroup_sock_addr(sendmsg6)]
pub fn pw_sendmsg6(ctx: SockAddrContext) -> i32 {
    let sa = ctx.sock_addr;
    let (addr, port) = unsafe {
        (
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ],
            u16::from_be((*sa).user_port as u16),
        )
    };
    if !is_captured_port(port) {
        return ALLOW;
    }
    let provider = if is_v4_mapped(&addr) {
        is_provider_v4(addr[3])
    } else {
        is_provider_v6(&addr)
    };
    if !provider {
        return ALLOW;
    }
    match decide(&ctx, SOCK_DGRAM) {
        Verdict::Reject => REJECT,
        _ => ALLOW,
    }
}

/// TCP_CONNECT_CB runs after the source address/port are chosen and before the
/// SYN leaves: re-key the record by what the proxy will see as the peer.
#[sock_ops]
pub fn pw_sock_ops(ctx: SockOpsContext) -> u32 {
    if ctx.op() != BPF_SOCK_OPS_TCP_CONNECT_CB {
        return 1;
    }
    let cookie = unsafe { bpf_get_socket_cookie(ctx.ops as *mut _) };
    let Some(meta) = (unsafe { COOKIE_META.get(&cookie) }) else {
        return 1;
    };
    let meta = *meta;
    // local_port is host order in bpf_sock_ops; addresses are network order.
    // Volatile loads, one per field: LLVM otherwise merges the two branches'
    // loads into one through a computed ctx pointer, which the verifier rejects.
    let ops = ctx.ops;
    let port = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*ops).local_port)) } as u16;
    let key = if meta.redirected_v4 != 0 {
        let ip4 = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*ops).local_ip4)) };
        PeerKey {
            family: AF_INET,
            port,
            addr: [ip4, 0, 0, 0],
            _pad: 0,
            netns_cookie: meta.netns_cookie,
        }
    } else {
        let addr = unsafe {
            [
                core::ptr::read_volatile(core::ptr::addr_of!((*ops).local_ip6[0])),
                core::ptr::read_volatile(core::ptr::addr_of!((*ops).local_ip6[1])),
                core::ptr::read_volatile(core::ptr::addr_of!((*ops).local_ip6[2])),
                core::ptr::read_volatile(core::ptr::addr_of!((*ops).local_ip6[3])),
            ]
        };
        PeerKey {
            family: AF_INET6,
            port,
            addr,
            _pad: 0,
            netns_cookie: meta.netns_cookie,
        }
    };
    let _ = PEER_META.insert(&key, &meta, 0);
    let _ = COOKIE_PEER.insert(&cookie, &key, 0);
    let _ = COOKIE_META.remove(&cookie);
    count(counters::REKEYED);
    1
}

#[cgroup_sock(sock_release)]
pub fn pw_sock_release(ctx: SockContext) -> i32 {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock as *mut _) };
    let _ = COOKIE_META.remove(&cookie);
    if let Some(key) = unsafe { COOKIE_PEER.get(&cookie) } {
        let key = *key;
        let _ = PEER_META.remove(&key);
        let _ = COOKIE_PEER.remove(&cookie);
        count(counters::RELEASED);
    }
    1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
