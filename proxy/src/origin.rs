//! Who opened an intercepted connection, and where it was going.
//!
//! The redirect layer (eBPF maps, or nftables + SO_ORIGINAL_DST) implements
//! [`OriginLookup`]; the transparent listener calls it once per accepted socket.

use std::net::SocketAddr;

/// The process behind a connection, as far as it could be learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientIdentity {
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The human behind sudo (`/proc/<pid>/loginuid`), when set.
    pub login_uid: Option<u32>,
    pub user: Option<String>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub cgroup_id: Option<u64>,
    /// Container id parsed from `/proc/<pid>/cgroup` (docker, containerd, podman).
    pub container_id: Option<String>,
    /// Its name and image, from the runtime's records ([`crate::containers`]).
    pub container_name: Option<String>,
    pub container_image: Option<String>,
}

/// What the redirect recorded for one intercepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOrigin {
    /// The address the client tried to reach before it was redirected.
    pub original_dst: SocketAddr,
    pub identity: ClientIdentity,
    /// Kernel socket cookie of the client's socket, logged for correlation.
    pub socket_cookie: Option<u64>,
}

/// Finds the origin of an accepted connection by its peer (client) address.
pub trait OriginLookup: Send + Sync + 'static {
    fn lookup(&self, peer: SocketAddr, local: SocketAddr) -> Option<ConnectionOrigin>;

    /// Whether a connection without a redirect record may be attributed
    /// through this host's `/proc/net/tcp`. Not for a listener inside
    /// another network namespace (a container's): its peers are not in
    /// that table, and a socket of the host with the same addresses would
    /// lend the connection someone else's identity.
    fn host_proc_fallback(&self) -> bool {
        true
    }
}
