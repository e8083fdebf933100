//! Loading, parameterising and attaching the eBPF programs, and access to their maps.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, CgroupSock, CgroupSockAddr, SockOps};
use aya::{Ebpf, EbpfLoader};
use promptwall_common::{counters, globals, maps, programs, ConnMeta, Listener, PeerKey, AF_INET, AF_INET6};
use sha2::Digest;

use super::addresses::{Prefix, Source};

#[cfg(not(promptwall_ebpf_stub))]
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/promptwall"));
#[cfg(promptwall_ebpf_stub)]
static OBJECT: &[u8] = &[];

/// The programs in load order, with the hook each one attaches to.
pub const PROGRAMS: [(&str, &str); 6] = [
    (programs::CONNECT4, "cgroup/connect4"),
    (programs::CONNECT6, "cgroup/connect6"),
    (programs::SENDMSG4, "cgroup/sendmsg4"),
    (programs::SENDMSG6, "cgroup/sendmsg6"),
    (programs::SOCK_OPS, "sockops"),
    (programs::SOCK_RELEASE, "cgroup/sock_release"),
];

/// bpf_link attachments always coexist with other programs (multi semantics);
/// the kernel rejects any flags on link_create for cgroups, so pass none.
const ATTACH_MODE: CgroupAttachMode = CgroupAttachMode::Single;

/// Default directory for pinned links (fail = "closed").
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/promptwall";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// sha256 of the embedded object, logged so a running agent can be matched to a build.
pub fn object_sha256() -> String {
    hex::encode(sha2::Sha256::digest(OBJECT))
}

pub fn object_available() -> bool {
    !OBJECT.is_empty()
}

/// Everything the programs are parameterised with.
#[derive(Debug, Clone)]
pub struct EbpfSettings {
    pub cgroup: PathBuf,
    pub mark: u32,
    pub agent_cgroup_id: u64,
    pub netns_cookie: u64,
    pub fail_closed: bool,
    pub block_quic: bool,
    pub heartbeat_max_age: Duration,
    pub ports: Vec<u16>,
    /// Some: pin links here so they outlive the agent (fail = "closed").
    pub pin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AttachedProgram {
    pub name: String,
    pub hook: String,
    pub pinned: Option<PathBuf>,
}

/// The loaded programs (dropping this detaches unpinned links) and their maps.
pub struct Loaded {
    _ebpf: Ebpf,
    pinned: Vec<(PathBuf, PinnedLink)>,
    pub attached: Vec<AttachedProgram>,
    pub providers_v4: LpmTrie<MapData, [u8; 4], u32>,
    pub providers_v6: LpmTrie<MapData, [u8; 16], u32>,
    pub heartbeat: Array<MapData, u64>,
    pub listener: Array<MapData, Listener>,
    pub netns_listeners: HashMap<MapData, u64, Listener>,
    /// The agent's own network namespace (`HOST_NETNS_COOKIE`).
    pub host_netns_cookie: u64,
    pub peer_meta: HashMap<MapData, PeerKey, ConnMeta>,
    pub cookie_meta: HashMap<MapData, u64, ConnMeta>,
    pub counters: PerCpuArray<MapData, u64>,
}

fn ip4_raw(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

fn ip6_raw(ip: Ipv6Addr) -> [u32; 4] {
    let o = ip.octets();
    std::array::from_fn(|i| u32::from_ne_bytes([o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]]))
}

fn take<T>(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| anyhow::anyhow!("eBPF object has no map {name}; rebuild the agent"))?;
    T::try_from(map).with_context(|| format!("eBPF map {name} has an unexpected type; rebuild the agent"))
}

pub fn load(settings: &EbpfSettings) -> anyhow::Result<Loaded> {
    if !object_available() {
        anyhow::bail!(
            "this promptwall was built with AYA_BUILD_SKIP=1 and has no eBPF programs; \
             rebuild without it or set intercept.mode = \"nftables\""
        );
    }
    let fail_closed = settings.fail_closed as u8;
    let block_quic = settings.block_quic as u8;
    let max_age = settings.heartbeat_max_age.as_nanos() as u64;
    let mut ebpf = EbpfLoader::new()
        .override_global(globals::PROXY_MARK, &settings.mark, true)
        .override_global(globals::AGENT_CGROUP_ID, &settings.agent_cgroup_id, true)
        .override_global(globals::HOST_NETNS_COOKIE, &settings.netns_cookie, true)
        .override_global(globals::FAIL_CLOSED, &fail_closed, true)
        .override_global(globals::BLOCK_QUIC, &block_quic, true)
        .override_global(globals::HEARTBEAT_MAX_AGE_NS, &max_age, true)
        .load(OBJECT)
        .context("loading the eBPF object failed; is this root (CAP_BPF + CAP_NET_ADMIN) on Linux >= 5.14?")?;

    // Borrow, don't take: a taken map's fd closes on drop, and the programs
    // (loaded below) reference maps by fd.
    {
        let map = ebpf
            .map_mut(maps::CAPTURE_PORTS)
            .context("eBPF object has no CAPTURE_PORTS map; rebuild the agent")?;
        let mut ports: HashMap<&mut MapData, u16, u8> = HashMap::try_from(map)?;
        for port in &settings.ports {
            ports
                .insert(port, 1, 0)
                .with_context(|| format!("cannot add capture port {port}"))?;
        }
    }

    let cgroup = std::fs::File::open(&settings.cgroup).with_context(|| {
        format!(
            "cannot open cgroup {}; set intercept.cgroup to a cgroup2 directory",
            settings.cgroup.display()
        )
    })?;
    if let Some(dir) = &settings.pin_dir {
        prepare_pin_dir(dir)?;
    }
    let mut attached = Vec::new();
    let mut pinned = Vec::new();
    for (name, hook) in PROGRAMS {
        let program = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow::anyhow!("eBPF object has no program {name}"))?;
        let link: FdLink = match program {
            aya::programs::Program::CgroupSockAddr(p) => {
                load_program(name, p.load())?;
                let id = attach_program(name, p.attach(&cgroup, ATTACH_MODE))?;
                if settings.pin_dir.is_none() {
                    attached.push(AttachedProgram {
                        name: name.into(),
                        hook: hook.into(),
                        pinned: None,
                    });
                    continue;
                }
                p.take_link(id)?.try_into()?
            }
            aya::programs::Program::SockOps(p) => {
                let p: &mut SockOps = p;
                load_program(name, p.load())?;
                let id = attach_program(name, p.attach(&cgroup, ATTACH_MODE))?;
                if settings.pin_dir.is_none() {
                    attached.push(AttachedProgram {
                        name: name.into(),
                        hook: hook.into(),
                        pinned: None,
                    });
                    continue;
                }
                p.take_link(id)?.try_into()?
            }
            aya::programs::Program::CgroupSock(p) => {
                let p: &mut CgroupSock = p;
                load_program(name, p.load())?;
                let id = attach_program(name, p.attach(&cgroup, ATTACH_MODE))?;
                if settings.pin_dir.is_none() {
                    attached.push(AttachedProgram {
                        name: name.into(),
                        hook: hook.into(),
                        pinned: None,
                    });
                    continue;
                }
                p.take_link(id)?.try_into()?
            }
            other => anyhow::bail!("eBPF program {name} has unexpected type {:?}", other.prog_type()),
        };
        let dir = settings.pin_dir.as_ref().expect("pin_dir checked above");
        let path = dir.join(name);
        let pinned_link = link
            .pin(&path)
            .with_context(|| format!("cannot pin link {}", path.display()))?;
        attached.push(AttachedProgram {
            name: name.into(),
            hook: hook.into(),
            pinned: Some(path.clone()),
        });
        pinned.push((path, pinned_link));
    }
    let _: &CgroupSockAddr; // (type named for readers: connect/sendmsg hooks)

    Ok(Loaded {
        providers_v4: take(&mut ebpf, maps::PROVIDERS_V4)?,
        providers_v6: take(&mut ebpf, maps::PROVIDERS_V6)?,
        heartbeat: take(&mut ebpf, maps::HEARTBEAT)?,
        listener: take(&mut ebpf, maps::LISTENER)?,
        netns_listeners: take(&mut ebpf, maps::NETNS_LISTENERS)?,
        host_netns_cookie: settings.netns_cookie,
        peer_meta: take(&mut ebpf, maps::PEER_META)?,
        cookie_meta: take(&mut ebpf, maps::COOKIE_META)?,
        counters: take(&mut ebpf, maps::COUNTERS)?,
        _ebpf: ebpf,
        pinned,
        attached,
    })
}

fn load_program(name: &str, result: Result<(), aya::programs::ProgramError>) -> anyhow::Result<()> {
    result.map_err(|e| match e {
        aya::programs::ProgramError::LoadError { io_error, verifier_log } => {
            anyhow::anyhow!("the kernel rejected eBPF program {name}: {io_error}; verifier output:\n{verifier_log}")
        }
        other => anyhow::Error::new(other).context(format!("cannot load eBPF program {name}")),
    })
}

fn attach_program<T>(name: &str, result: Result<T, aya::programs::ProgramError>) -> anyhow::Result<T> {
    result.with_context(|| format!("cannot attach eBPF program {name} to the cgroup; is this root on a cgroup2 host?"))
}

/// Pinned links need a bpffs; mount one at /sys/fs/bpf when the host has none.
fn prepare_pin_dir(dir: &Path) -> anyhow::Result<()> {
    let fs_root = dir.parent().unwrap_or(Path::new("/sys/fs/bpf"));
    if !is_bpffs(fs_root) {
        std::fs::create_dir_all(fs_root).ok();
        nix::mount::mount(
            Some("bpf"),
            fs_root,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "cannot mount a bpf filesystem at {}; needed for fail = \"closed\"",
                fs_root.display()
            )
        })?;
    }
    remove_pins(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create pin directory {}", dir.display()))
}

pub fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 as i64 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// Removes pinned links/maps left in `dir` (unpinning detaches a link whose
/// only reference was the pin). Returns what was removed.
pub fn remove_pins(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e).with_context(|| format!("cannot list pin directory {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        std::fs::remove_file(&path).with_context(|| format!("cannot remove pinned object {}", path.display()))?;
        removed.push(path);
    }
    std::fs::remove_dir(dir).ok();
    Ok(removed)
}

impl Loaded {
    pub fn write_heartbeat(&mut self, monotonic_ns: u64) -> anyhow::Result<()> {
        self.heartbeat
            .set(0, monotonic_ns, 0)
            .context("cannot write the eBPF heartbeat")
    }

    /// Points the redirect at the proxy; until this is called nothing is redirected.
    pub fn set_listener(&mut self, v4: SocketAddrV4, v6: SocketAddrV6) -> anyhow::Result<()> {
        let value = Listener {
            v6_addr: ip6_raw(*v6.ip()),
            v4_addr: ip4_raw(*v4.ip()),
            v4_port: v4.port(),
            v6_port: v6.port(),
        };
        self.listener
            .set(0, value, 0)
            .context("cannot write the listener address to the eBPF map")
    }

    /// Redirects connections made in the network namespace `cookie` to
    /// `v4` (an address of a listener opened inside that namespace).
    pub fn set_netns_listener(&mut self, cookie: u64, v4: SocketAddrV4) -> anyhow::Result<()> {
        let mapped = v4.ip().to_ipv6_mapped();
        let value = Listener {
            v6_addr: ip6_raw(mapped),
            v4_addr: ip4_raw(*v4.ip()),
            v4_port: v4.port(),
            v6_port: v4.port(),
        };
        self.netns_listeners.insert(cookie, value, 0).with_context(|| {
            format!("cannot add the listener of network namespace {cookie} to the eBPF map (map full?)")
        })
    }

    /// Stops redirecting the namespace `cookie` (its listener is closing).
    pub fn remove_netns_listener(&mut self, cookie: u64) -> anyhow::Result<()> {
        match self.netns_listeners.remove(&cookie) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove network namespace {cookie} from the eBPF map")),
        }
    }

    pub fn heartbeat(&self) -> Option<u64> {
        self.heartbeat.get(&0, 0).ok().filter(|v| *v != 0)
    }

    pub fn insert_prefix(&mut self, prefix: Prefix, source: Source) -> anyhow::Result<()> {
        let bytes = prefix.masked_octets();
        let result = match prefix.addr {
            IpAddr::V4(_) => {
                let key = Key::new(
                    prefix.len as u32,
                    <[u8; 4]>::try_from(bytes.as_slice()).expect("4 bytes"),
                );
                self.providers_v4.insert(&key, source as u32, 0)
            }
            IpAddr::V6(_) => {
                let key = Key::new(
                    prefix.len as u32,
                    <[u8; 16]>::try_from(bytes.as_slice()).expect("16 bytes"),
                );
                self.providers_v6.insert(&key, source as u32, 0)
            }
        };
        result.with_context(|| format!("cannot add provider prefix {prefix} to the eBPF map (map full?)"))
    }

    pub fn remove_prefix(&mut self, prefix: Prefix) -> anyhow::Result<()> {
        let bytes = prefix.masked_octets();
        let result = match prefix.addr {
            IpAddr::V4(_) => {
                let key = Key::new(
                    prefix.len as u32,
                    <[u8; 4]>::try_from(bytes.as_slice()).expect("4 bytes"),
                );
                self.providers_v4.remove(&key)
            }
            IpAddr::V6(_) => {
                let key = Key::new(
                    prefix.len as u32,
                    <[u8; 16]>::try_from(bytes.as_slice()).expect("16 bytes"),
                );
                self.providers_v6.remove(&key)
            }
        };
        match result {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove provider prefix {prefix} from the eBPF map")),
        }
    }

    /// The record of a connection accepted from `peer` on a listener in
    /// the network namespace `netns_cookie` (None: the host's).
    pub fn lookup_peer(&self, peer: SocketAddr, netns_cookie: Option<u64>) -> Option<ConnMeta> {
        let key = peer_key(peer, netns_cookie.unwrap_or(self.host_netns_cookie));
        self.peer_meta.get(&key, 0).ok()
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        (0..counters::COUNT)
            .map(|i| {
                let total = self
                    .counters
                    .get(&i, 0)
                    .map(|per_cpu| per_cpu.iter().sum())
                    .unwrap_or(0);
                (counters::NAMES[i as usize].to_string(), total)
            })
            .collect()
    }

    pub fn map_sizes(&self) -> BTreeMap<String, usize> {
        let mut sizes = BTreeMap::new();
        sizes.insert(
            maps::PROVIDERS_V4.to_string(),
            self.providers_v4.keys().filter(Result::is_ok).count(),
        );
        sizes.insert(
            maps::PROVIDERS_V6.to_string(),
            self.providers_v6.keys().filter(Result::is_ok).count(),
        );
        sizes.insert(
            maps::PEER_META.to_string(),
            self.peer_meta.keys().filter(Result::is_ok).count(),
        );
        sizes.insert(
            maps::COOKIE_META.to_string(),
            self.cookie_meta.keys().filter(Result::is_ok).count(),
        );
        sizes
    }

    /// Detaches pinned links too (a deliberate stop is not a crash).
    pub fn unpin_all(&mut self) {
        let mut dirs = Vec::new();
        for (path, link) in self.pinned.drain(..) {
            if let Err(e) = link.unpin() {
                tracing::warn!("cannot unpin {}: {e}; run `promptwall cleanup`", path.display());
            }
            dirs.extend(path.parent().map(Path::to_path_buf));
        }
        dirs.dedup();
        for dir in dirs {
            // Only if empty: never remove pins something else put there.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        self.unpin_all();
    }
}

/// The client address the proxy sees after accept(), in the network
/// namespace it connected from, as sock_ops stored it.
pub fn peer_key(peer: SocketAddr, netns_cookie: u64) -> PeerKey {
    let (family, addr) = match peer.ip() {
        IpAddr::V4(v4) => (AF_INET, [ip4_raw(v4), 0, 0, 0]),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (AF_INET, [ip4_raw(v4), 0, 0, 0]),
            None => (AF_INET6, ip6_raw(v6)),
        },
    };
    PeerKey {
        family,
        port: peer.port(),
        addr,
        _pad: 0,
        netns_cookie,
    }
}

/// The destination the client asked for.
pub fn original_dst(meta: &ConnMeta) -> SocketAddr {
    if meta.orig_family == AF_INET6 {
        let mut octets = [0u8; 16];
        for (i, word) in meta.orig_addr.iter().enumerate() {
            octets[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), meta.orig_port)
    } else {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(meta.orig_addr[0].to_ne_bytes())),
            meta.orig_port,
        )
    }
}

pub fn comm(meta: &ConnMeta) -> String {
    let end = meta.comm.iter().position(|b| *b == 0).unwrap_or(meta.comm.len());
    String::from_utf8_lossy(&meta.comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_keys_normalise_v4_mapped_clients() {
        let v4 = peer_key("127.0.0.1:40000".parse().unwrap(), 7);
        let mapped = peer_key("[::ffff:127.0.0.1]:40000".parse().unwrap(), 7);
        assert_eq!(v4, mapped);
        assert_eq!(v4.family, AF_INET);
        assert_eq!(v4.addr[0].to_ne_bytes(), [127, 0, 0, 1]);
        assert_ne!(
            v4,
            peer_key("127.0.0.1:40000".parse().unwrap(), 8),
            "namespaces keep keys apart"
        );
        let v6 = peer_key("[::1]:40000".parse().unwrap(), 7);
        assert_eq!(v6.family, AF_INET6);
        assert_eq!(v6.addr[3].to_ne_bytes(), [0, 0, 0, 1]);
    }

    #[test]
    fn original_dst_round_trips_both_families() {
        let mut meta: ConnMeta = unsafe { std::mem::zeroed() };
        meta.orig_family = AF_INET;
        meta.orig_addr = [ip4_raw(Ipv4Addr::new(127, 0, 0, 2)), 0, 0, 0];
        meta.orig_port = 443;
        assert_eq!(original_dst(&meta), "127.0.0.2:443".parse().unwrap());
        meta.orig_family = AF_INET6;
        meta.orig_addr = ip6_raw("2607:6bc0::10".parse().unwrap());
        assert_eq!(original_dst(&meta), "[2607:6bc0::10]:443".parse().unwrap());
        meta.comm[..4].copy_from_slice(b"curl");
        assert_eq!(comm(&meta), "curl");
    }
}
