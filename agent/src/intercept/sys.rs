//! Small kernel facts the programs are parameterised with.

use std::os::fd::AsRawFd;

use anyhow::Context;

const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of this process's network namespace (what `bpf_get_netns_cookie` returns).
pub fn own_netns_cookie() -> anyhow::Result<u64> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")
        .or_else(|_| std::net::UdpSocket::bind("[::]:0"))
        .context("cannot open a socket to read the network namespace cookie")?;
    netns_cookie_of(&socket)
}

/// The cookie of the network namespace `socket` lives in.
pub fn netns_cookie_of(socket: &impl AsRawFd) -> anyhow::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: valid fd, out-pointer sized by len.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            &mut cookie as *mut u64 as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("getsockopt(SO_NETNS_COOKIE) failed; the kernel must be 5.14 or newer for eBPF interception");
    }
    Ok(cookie)
}

/// CLOCK_MONOTONIC in ns, the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}
