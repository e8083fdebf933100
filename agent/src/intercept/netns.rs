//! Containers: processes of the intercepted cgroup that live in another
//! network namespace (Docker, Podman, containerd, devcontainers).
//!
//! The host's transparent listener is unreachable from such a namespace
//! (its 127.0.0.1 is its own), so the agent opens a listener *inside* each
//! one it finds: a thread enters the namespace (`setns`), binds
//! `127.0.0.1:0` there and leaves; the socket stays in that namespace and is
//! served by the same transparent pipeline. The eBPF programs send the
//! namespace's provider connections to it (`NETNS_LISTENERS`, keyed by the
//! namespace cookie), and its peers are looked up under that cookie, since
//! two containers may both connect from 127.0.0.1:40000.
//!
//! Namespaces are found by a scan of the cgroup's processes every
//! `interval`; a container's connections made before its first scan pass
//! uninspected and are counted (`skipped_other_netns`), as are those of a
//! namespace that cannot be served (loopback down): never broken, and
//! tried again every few seconds (its loopback may come up later). A
//! namespace whose processes are all gone is let go (our listener would
//! otherwise keep it alive).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use promptwall_proxy::forward::Proxy;
use promptwall_proxy::origin::{ConnectionOrigin, OriginLookup};
use promptwall_proxy::transparent::OriginSource;
use tokio_rustls::TlsAcceptor;

use super::ebpf::Loaded;
use super::EbpfLookup;

/// Directory levels below the intercepted cgroup that are searched
/// (`system.slice/docker-<id>.scope` is two; kubepods nest deeper).
const MAX_DEPTH: usize = 8;

/// How long a namespace that could not be served waits before another try.
const RETRY_UNSERVED: Duration = Duration::from_secs(5);

/// One network namespace served by a listener of its own.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServedNamespace {
    /// The namespace's inode (`/proc/<pid>/ns/net` -> `net:[inode]`).
    pub inode: u64,
    pub cookie: u64,
    /// The listener, as seen from inside the namespace.
    pub listener: SocketAddrV4,
    /// A process found in it, and its container, if any.
    pub pid: u32,
    pub container_id: Option<String>,
}

/// What `status` shows: namespaces served, and those that could not be.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NamespaceStatus {
    pub served: Vec<ServedNamespace>,
    /// inode -> why it is passed uninspected.
    pub unserved: BTreeMap<u64, String>,
}

struct Serving {
    info: ServedNamespace,
    task: tokio::task::JoinHandle<()>,
}

/// The namespace-serving task's shared state.
pub struct Namespaces {
    loaded: Arc<Mutex<Option<Loaded>>>,
    cgroup: PathBuf,
    host_inode: u64,
    serving: Mutex<BTreeMap<u64, Serving>>,
    /// inode -> why it could not be served, and when that was tried.
    unserved: Mutex<BTreeMap<u64, (String, std::time::Instant)>>,
}

impl Namespaces {
    pub fn new(loaded: Arc<Mutex<Option<Loaded>>>, cgroup: PathBuf) -> anyhow::Result<Namespaces> {
        let host_inode = netns_inode(Path::new("/proc/self/ns/net"))
            .context("cannot read this process's network namespace (/proc/self/ns/net)")?;
        Ok(Namespaces {
            loaded,
            cgroup,
            host_inode,
            serving: Mutex::new(BTreeMap::new()),
            unserved: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn status(&self) -> NamespaceStatus {
        NamespaceStatus {
            served: self.serving.lock().unwrap().values().map(|s| s.info.clone()).collect(),
            unserved: self
                .unserved
                .lock()
                .unwrap()
                .iter()
                .map(|(inode, (why, _))| (*inode, why.clone()))
                .collect(),
        }
    }

    /// Scans every `interval` until aborted, serving new namespaces with
    /// `proxy` and letting go of empty ones.
    pub fn spawn(
        self: Arc<Self>,
        proxy: Arc<Proxy>,
        tls: TlsAcceptor,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let this = self.clone();
                let found =
                    match tokio::task::spawn_blocking(move || namespaces_in(&this.cgroup, this.host_inode)).await {
                        Ok(found) => found,
                        Err(_) => continue,
                    };
                self.reconcile(found, &proxy, &tls).await;
            }
        })
    }

    async fn reconcile(&self, found: BTreeMap<u64, u32>, proxy: &Arc<Proxy>, tls: &TlsAcceptor) {
        let gone: Vec<u64> = {
            let serving = self.serving.lock().unwrap();
            serving
                .keys()
                .filter(|inode| !found.contains_key(inode))
                .copied()
                .collect()
        };
        for inode in gone {
            self.release(inode);
        }
        self.unserved
            .lock()
            .unwrap()
            .retain(|inode, _| found.contains_key(inode));
        for (inode, pid) in found {
            // A namespace that could not be served is tried again after a
            // while: its loopback may have come up since.
            let failed_recently = self
                .unserved
                .lock()
                .unwrap()
                .get(&inode)
                .is_some_and(|(_, at)| at.elapsed() < RETRY_UNSERVED);
            if self.serving.lock().unwrap().contains_key(&inode) || failed_recently {
                continue;
            }
            let opened = tokio::task::spawn_blocking(move || open_listener_in(pid)).await;
            let result = match opened {
                Ok(r) => r,
                Err(e) => Err(anyhow::anyhow!("the listener thread failed: {e}")),
            };
            match result.and_then(|(listener, cookie)| self.serve(inode, pid, listener, cookie, proxy, tls)) {
                Ok(info) => {
                    self.unserved.lock().unwrap().remove(&inode);
                    tracing::info!(
                        inode,
                        pid,
                        container = info.container_id.as_deref().unwrap_or("-"),
                        listener = %info.listener,
                        "intercepting a network namespace of the cgroup (a container) through a listener inside it"
                    );
                }
                Err(e) => {
                    if !self.unserved.lock().unwrap().contains_key(&inode) {
                        tracing::warn!(
                            inode,
                            pid,
                            "cannot serve the network namespace of process {pid}: {e:#}; its provider connections \
                             pass uninspected (counted as skipped_other_netns) until a retry succeeds"
                        );
                    }
                    self.unserved
                        .lock()
                        .unwrap()
                        .insert(inode, (format!("{e:#}"), std::time::Instant::now()));
                }
            }
        }
    }

    fn serve(
        &self,
        inode: u64,
        pid: u32,
        listener: std::net::TcpListener,
        cookie: u64,
        proxy: &Arc<Proxy>,
        tls: &TlsAcceptor,
    ) -> anyhow::Result<ServedNamespace> {
        let local = match listener.local_addr()? {
            SocketAddr::V4(v4) => v4,
            other => anyhow::bail!("the namespace listener is bound to {other}, not an IPv4 address"),
        };
        let listener = tokio::net::TcpListener::from_std(listener).context("cannot register the namespace listener")?;
        {
            let mut guard = self.loaded.lock().unwrap();
            let loaded = guard.as_mut().context("interception was shut down")?;
            loaded.set_netns_listener(cookie, local)?;
        }
        let origins = Arc::new(OriginSource::Lookup(Arc::new(NetnsLookup {
            loaded: self.loaded.clone(),
            cookie,
        })));
        let task = tokio::spawn(promptwall_proxy::transparent::run(
            proxy.clone(),
            listener,
            tls.clone(),
            origins,
        ));
        let container_id = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|c| promptwall_proxy::attribution::container_id(&c));
        let info = ServedNamespace {
            inode,
            cookie,
            listener: local,
            pid,
            container_id,
        };
        self.serving.lock().unwrap().insert(
            inode,
            Serving {
                info: info.clone(),
                task,
            },
        );
        Ok(info)
    }

    fn release(&self, inode: u64) {
        let Some(s) = self.serving.lock().unwrap().remove(&inode) else {
            return;
        };
        if let Some(loaded) = self.loaded.lock().unwrap().as_mut() {
            if let Err(e) = loaded.remove_netns_listener(s.info.cookie) {
                tracing::warn!("{e:#}");
            }
        }
        // Aborting the accept loop drops the listener: the namespace may go.
        s.task.abort();
        tracing::info!(
            inode,
            "network namespace has no process left in the cgroup; released its listener"
        );
    }

    /// Stops serving every namespace (shutdown).
    pub fn release_all(&self) {
        let inodes: Vec<u64> = self.serving.lock().unwrap().keys().copied().collect();
        for inode in inodes {
            self.release(inode);
        }
    }
}

/// Finds the origin of a connection accepted inside one namespace.
struct NetnsLookup {
    loaded: Arc<Mutex<Option<Loaded>>>,
    cookie: u64,
}

impl OriginLookup for NetnsLookup {
    fn lookup(&self, peer: SocketAddr, _local: SocketAddr) -> Option<ConnectionOrigin> {
        EbpfLookup::origin(&self.loaded, peer, Some(self.cookie))
    }

    fn host_proc_fallback(&self) -> bool {
        // Only this namespace's peers come here, and the kernel's record is
        // their only attribution.
        false
    }
}

/// Network namespaces other than `host_inode` of the processes in `cgroup`
/// and its descendants: inode -> one pid in it.
pub fn namespaces_in(cgroup: &Path, host_inode: u64) -> BTreeMap<u64, u32> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![(cgroup.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = dirs.pop() {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                match netns_inode(Path::new(&format!("/proc/{pid}/ns/net"))) {
                    Some(inode) if inode != host_inode => {
                        found.entry(inode).or_insert(pid);
                    }
                    _ => {}
                }
            }
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push((entry.path(), depth + 1));
            }
        }
    }
    found
}

fn netns_inode(link: &Path) -> Option<u64> {
    parse_ns_link(&std::fs::read_link(link).ok()?.to_string_lossy())
}

/// `net:[4026531840]` -> 4026531840.
pub fn parse_ns_link(target: &str) -> Option<u64> {
    target.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Opens a listener on 127.0.0.1 inside the network namespace of `pid`,
/// and returns it with the namespace's cookie. A thread of its own enters
/// the namespace, so no other thread of the agent ever runs in it.
pub fn open_listener_in(pid: u32) -> anyhow::Result<(std::net::TcpListener, u64)> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .with_context(|| format!("cannot open the network namespace of process {pid}"))?;
    std::thread::Builder::new()
        .name("pw-netns".into())
        .spawn(move || -> anyhow::Result<(std::net::TcpListener, u64)> {
            // SAFETY: a valid namespace fd; only this thread changes namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("setns(CLONE_NEWNET) failed (needs CAP_SYS_ADMIN)");
            }
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket
                .bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into())
                .context("cannot bind 127.0.0.1 in the namespace (is its loopback down?)")?;
            socket.listen(1024)?;
            socket.set_nonblocking(true)?;
            let listener: std::net::TcpListener = socket.into();
            let cookie = super::sys::netns_cookie_of(&listener)?;
            Ok((listener, cookie))
        })
        .context("cannot start a thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_links_name_their_inode() {
        assert_eq!(parse_ns_link("net:[4026531840]"), Some(4026531840));
        assert_eq!(parse_ns_link("mnt:[4026531840]"), None);
        assert_eq!(parse_ns_link("net:[x]"), None);
    }
}
