//! Transparent interception: eBPF redirect (default) or nftables fallback.
//!
//! `start` loads and attaches the programs (or installs the nftables table),
//! keeps the heartbeat and the provider address set up to date, and returns an
//! [`InterceptHandle`] that the transparent listener uses as its
//! [`OriginLookup`]. Dropping the handle detaches everything.

pub mod addresses;
pub mod cgroup;
pub mod config;
pub mod ebpf;
pub mod heartbeat;
pub mod netns;
pub mod nft;
pub mod resolver;
pub mod sys;

#[cfg(test)]
mod root_tests;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::AgentConfig;
use anyhow::Context;
use config::{FailMode, InterceptMode};
use promptwall_proxy::attribution;
use promptwall_proxy::origin::{ClientIdentity, ConnectionOrigin, OriginLookup};

use addresses::{AddressSet, Prefix, Source};
use ebpf::Loaded;

/// Name prefix of cgroups that tests create (cleanup removes leftovers).
pub const TEST_CGROUP_PREFIX: &str = "promptwall-test-";

#[derive(clap::Args)]
pub struct CleanupArgs {
    /// Run as the unit's ExecStopPost: after a crash (systemd's
    /// SERVICE_RESULT is not "success") with fail = "closed", keep the pinned
    /// redirect so provider connections stay refused until the restart.
    #[arg(long)]
    pub after_service_stop: bool,
}

/// Whether `cleanup --after-service-stop` must leave the redirect in place.
/// `service_result` is systemd's `$SERVICE_RESULT` ("success" for a
/// requested stop; "signal", "exit-code", "core-dump", … for a crash).
pub fn keep_redirect_after_stop(fail: FailMode, service_result: Option<&str>) -> bool {
    fail == FailMode::Closed && service_result != Some("success")
}

/// How `start_with` should run, beyond what the config says.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Some: the transparent listener is already up here; redirect to it now.
    /// None: wait for [`InterceptHandle::proxy_ready`] / [`InterceptHandle::set_listener`].
    pub listener: Option<SocketAddr>,
    /// Where native IPv6 connections go; default: the IPv4 listener as a v4-mapped address.
    pub listener_v6: Option<SocketAddrV6>,
    /// cgroup2 directory to attach to; default: config, else the cgroup2 mount root.
    pub cgroup: Option<PathBuf>,
    /// bpffs directory for pinned links (fail = "closed").
    pub pin_dir: PathBuf,
    /// Extra addresses/prefixes to redirect (tests: 127.x/32).
    pub extra_addresses: Vec<Prefix>,
    /// Run the DNS resolver task (default: unless `intercept.resolve_interval_secs` is 0).
    pub resolve: bool,
    pub heartbeat_max_age: Duration,
}

impl StartOptions {
    pub fn from_config(config: &AgentConfig) -> Self {
        StartOptions {
            listener: None,
            listener_v6: None,
            cgroup: config.intercept.cgroup.clone(),
            pin_dir: PathBuf::from(ebpf::DEFAULT_PIN_DIR),
            extra_addresses: Vec::new(),
            resolve: config.intercept.resolve_interval_secs > 0,
            heartbeat_max_age: Duration::from_secs(3),
        }
    }
}

/// The IPv4 address redirected connections are sent to.
fn listener_v4(listener: SocketAddr) -> anyhow::Result<SocketAddrV4> {
    Ok(match listener {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => SocketAddrV4::new(Ipv4Addr::LOCALHOST, v4.port()),
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddrV4::new(v4, v6.port()),
            None => anyhow::bail!(
                "transparent listener {listener} must be an IPv4 address (e.g. 127.0.0.1:15443) so IPv4 \
                 connections can be redirected to it; set listen.transparent"
            ),
        },
    })
}

enum Backend {
    Ebpf(Arc<Mutex<Option<Loaded>>>),
    Nftables { installed: Mutex<bool> },
}

struct Inner {
    backend: Backend,
    options: StartOptions,
    cgroup: Option<PathBuf>,
    fail: FailMode,
    addresses: Arc<Mutex<AddressSet>>,
    listener: Mutex<Option<(SocketAddrV4, SocketAddrV6)>>,
    /// (block QUIC, mark, ports, cgroup scope): what nftables mode needs to re-render its table.
    nft_base: (bool, u32, Vec<u16>, Option<nft::CgroupScope>),
    /// Other network namespaces (containers) served, eBPF mode only.
    namespaces: Option<(Arc<netns::Namespaces>, Duration)>,
}

/// The running redirect. Implements [`OriginLookup`]; dropping it (or
/// `shutdown`) detaches the programs / removes the nftables table.
pub struct InterceptHandle {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What `promptwall status` shows about interception.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InterceptStatus {
    pub mode: &'static str,
    pub fail: &'static str,
    pub cgroup: Option<PathBuf>,
    pub listener_v4: Option<SocketAddrV4>,
    pub listener_v6: Option<SocketAddrV6>,
    pub object_sha256: Option<String>,
    pub programs: Vec<ebpf::AttachedProgram>,
    pub maps: BTreeMap<String, usize>,
    pub counters: BTreeMap<String, u64>,
    pub heartbeat_age_ms: Option<u64>,
    pub provider_prefixes: Vec<String>,
    pub nftables_table: Option<String>,
    /// Containers (other network namespaces) served with a listener inside them.
    pub namespaces: Option<netns::NamespaceStatus>,
}

struct EbpfSink(Arc<Mutex<Option<Loaded>>>);

impl resolver::AddressSink for EbpfSink {
    fn apply(&self, added: &[Prefix], removed: &[Prefix]) {
        let mut guard = self.0.lock().unwrap();
        let Some(loaded) = guard.as_mut() else { return };
        for p in added {
            if let Err(e) = loaded.insert_prefix(*p, Source::Resolved) {
                tracing::error!("{e:#}");
            }
        }
        for p in removed {
            if let Err(e) = loaded.remove_prefix(*p) {
                tracing::error!("{e:#}");
            }
        }
    }
}

struct NftSink;

impl resolver::AddressSink for NftSink {
    fn apply(&self, added: &[Prefix], removed: &[Prefix]) {
        if let Err(e) = nft::update_elements(added, removed) {
            tracing::error!("{e:#}");
        }
    }
}

/// Lookup half of the eBPF backend, shareable with the transparent listener.
pub struct EbpfLookup(Arc<Mutex<Option<Loaded>>>);

impl OriginLookup for EbpfLookup {
    fn lookup(&self, peer: SocketAddr, _local: SocketAddr) -> Option<ConnectionOrigin> {
        Self::origin(&self.0, peer, None)
    }
}

impl EbpfLookup {
    /// The origin of a connection from `peer` accepted in the network
    /// namespace `netns_cookie` (None: the host's).
    fn origin(loaded: &Mutex<Option<Loaded>>, peer: SocketAddr, netns_cookie: Option<u64>) -> Option<ConnectionOrigin> {
        let meta = loaded.lock().unwrap().as_ref()?.lookup_peer(peer, netns_cookie)?;
        let mut identity = ClientIdentity {
            pid: Some(meta.tgid),
            uid: Some(meta.uid),
            gid: Some(meta.gid),
            comm: Some(ebpf::comm(&meta)),
            cgroup_id: Some(meta.cgroup_id),
            ..Default::default()
        };
        attribution::enrich(&mut identity);
        Some(ConnectionOrigin {
            original_dst: ebpf::original_dst(&meta),
            identity,
            socket_cookie: Some(meta.socket_cookie),
        })
    }
}

/// Lookup for the nftables fallback: /proc/net/tcp + /proc/*/fd ([`promptwall_proxy::peer`]).
pub struct ProcLookup;

impl OriginLookup for ProcLookup {
    fn lookup(&self, peer: SocketAddr, local: SocketAddr) -> Option<ConnectionOrigin> {
        let entry = promptwall_proxy::peer::find_client(peer, local)?;
        let mut identity = ClientIdentity {
            uid: Some(entry.uid),
            pid: promptwall_proxy::peer::pid_of_inode(entry.inode),
            ..Default::default()
        };
        attribution::enrich(&mut identity);
        let remote = SocketAddr::new(addresses::canonical(entry.remote.ip()), entry.remote.port());
        Some(ConnectionOrigin {
            original_dst: remote,
            identity,
            socket_cookie: None,
        })
    }
}

/// Loads and attaches the redirect per config. Nothing is redirected until
/// [`InterceptHandle::proxy_ready`] names the transparent listener (until then
/// provider connections go direct, or are refused with fail = "closed").
pub async fn start(config: &AgentConfig) -> anyhow::Result<InterceptHandle> {
    start_with(config, StartOptions::from_config(config)).await
}

pub async fn start_with(config: &AgentConfig, options: StartOptions) -> anyhow::Result<InterceptHandle> {
    if !sys::is_root() {
        anyhow::bail!(
            "transparent interception needs root (CAP_BPF, CAP_NET_ADMIN); run `promptwall up` as root, \
             or set intercept.enabled = false for explicit base-URL mode only"
        );
    }
    let mut prefixes = addresses::parse_prefixes(&config.intercept.addresses)?;
    let mut set = AddressSet::with_static(&prefixes);
    for p in &options.extra_addresses {
        set.add_override(*p);
    }
    prefixes.extend(options.extra_addresses.iter().copied());
    let addresses = Arc::new(Mutex::new(set));
    let fail = config.intercept.fail;
    let ports = config.intercept.ports.clone();

    // The nftables fallback, like eBPF, touches only the configured cgroup.
    let nft_scope = match (&config.intercept.mode, &options.cgroup) {
        (InterceptMode::Nftables, Some(cg)) => nft::scope_for(cg, &cgroup::cgroup2_mount()?)?,
        _ => None,
    };
    let (backend, cgroup, sink): (Backend, Option<PathBuf>, Arc<dyn resolver::AddressSink>) =
        match config.intercept.mode {
            InterceptMode::Ebpf => {
                let mount = cgroup::cgroup2_mount()?;
                let cgroup_path = options.cgroup.clone().unwrap_or_else(|| mount.clone());
                let settings = ebpf::EbpfSettings {
                    cgroup: cgroup_path.clone(),
                    mark: config.upstream.mark,
                    agent_cgroup_id: cgroup::agent_cgroup_id(&mount).unwrap_or(0),
                    netns_cookie: sys::own_netns_cookie()?,
                    fail_closed: fail == FailMode::Closed,
                    block_quic: config.intercept.block_quic,
                    heartbeat_max_age: options.heartbeat_max_age,
                    ports: ports.clone(),
                    pin_dir: (fail == FailMode::Closed).then(|| options.pin_dir.clone()),
                };
                let mut loaded = ebpf::load(&settings)?;
                for (prefix, source) in addresses.lock().unwrap().entries() {
                    loaded.insert_prefix(prefix, source)?;
                }
                tracing::info!(
                    cgroup = %cgroup_path.display(),
                    sha256 = %ebpf::object_sha256(),
                    fail = ?fail,
                    "eBPF redirect attached"
                );
                let loaded = Arc::new(Mutex::new(Some(loaded)));
                (
                    Backend::Ebpf(loaded.clone()),
                    Some(cgroup_path),
                    Arc::new(EbpfSink(loaded)),
                )
            }
            InterceptMode::Nftables => {
                // QUIC is blocked now; the redirect rule follows once the listener is known.
                nft::apply(&nft::NftSettings {
                    redirect_port_v4: None,
                    redirect_port_v6: None,
                    block_quic: config.intercept.block_quic,
                    mark: config.upstream.mark,
                    ports: ports.clone(),
                    prefixes,
                    scope: nft_scope.clone(),
                })?;
                (
                    Backend::Nftables {
                        installed: Mutex::new(true),
                    },
                    nft_scope.as_ref().and(options.cgroup.clone()),
                    Arc::new(NftSink),
                )
            }
        };
    let namespaces = match (&backend, &cgroup) {
        (Backend::Ebpf(loaded), Some(cg)) if config.intercept.container_scan_secs > 0 => Some((
            Arc::new(netns::Namespaces::new(loaded.clone(), cg.clone())?),
            Duration::from_secs(config.intercept.container_scan_secs),
        )),
        _ => None,
    };
    let handle = InterceptHandle {
        inner: Arc::new(Inner {
            namespaces,
            backend,
            options: options.clone(),
            cgroup,
            fail,
            addresses: addresses.clone(),
            listener: Mutex::new(None),
            nft_base: (config.intercept.block_quic, config.upstream.mark, ports, nft_scope),
        }),
        tasks: Mutex::new(Vec::new()),
    };
    if options.resolve {
        // Hosts the org CA cannot sign for are left alone: redirecting
        // them would only break their clients.
        let (hosts, refused) = crate::providers::servable_hosts(&config.provider_hosts(), &config.ca.dir);
        for (host, why) in refused {
            tracing::warn!(
                "not intercepting provider host {host}: {why}; re-issue the org CA (`promptwall ca init --force`, \
                 then `promptwall ca install`) so its name constraints cover the catalog"
            );
        }
        handle.tasks.lock().unwrap().push(resolver::spawn(
            hosts,
            Duration::from_secs(config.intercept.resolve_interval_secs.max(1)),
            Duration::from_secs(config.intercept.address_keep_secs),
            addresses,
            sink,
        ));
    }
    if let Some(listener) = options.listener {
        handle.set_listener(listener)?;
    }
    Ok(handle)
}

impl InterceptHandle {
    /// Call once the proxy's listeners are up: starts redirecting to its transparent listener.
    /// `tls` terminates the connections of containers' listeners.
    pub async fn proxy_ready(
        &self,
        running: &promptwall_proxy::app::Running,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<()> {
        let listener = running.transparent.context(
            "interception is enabled but the proxy has no transparent listener; set listen.transparent (e.g. 127.0.0.1:15443)",
        )?;
        self.set_listener(listener)?;
        if let (Some((namespaces, every)), Some(tls)) = (&self.inner.namespaces, tls) {
            let task = namespaces.clone().spawn(running.proxy.clone(), tls, *every);
            self.tasks.lock().unwrap().push(task);
        }
        Ok(())
    }

    /// Points the redirect at `listener` and starts the heartbeat.
    pub fn set_listener(&self, listener: SocketAddr) -> anyhow::Result<()> {
        let v4 = listener_v4(listener)?;
        let v6 = self
            .inner
            .options
            .listener_v6
            .unwrap_or_else(|| SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0));
        match &self.inner.backend {
            Backend::Ebpf(loaded) => {
                {
                    let mut guard = loaded.lock().unwrap();
                    let l = guard.as_mut().context("interception was shut down")?;
                    l.set_listener(v4, v6)?;
                    l.write_heartbeat(sys::monotonic_ns())?;
                }
                self.tasks.lock().unwrap().push(heartbeat::spawn(loaded.clone()));
            }
            Backend::Nftables { .. } => {
                let (block_quic, mark, ports, scope) = self.inner.nft_base.clone();
                let prefixes: Vec<Prefix> = self
                    .inner
                    .addresses
                    .lock()
                    .unwrap()
                    .entries()
                    .into_iter()
                    .map(|(p, _)| p)
                    .collect();
                nft::apply(&nft::NftSettings {
                    redirect_port_v4: Some(v4.port()),
                    redirect_port_v6: self.inner.options.listener_v6.map(|a| a.port()),
                    block_quic,
                    mark,
                    ports,
                    prefixes,
                    scope,
                })?;
                tracing::warn!(
                    "nftables fallback redirect installed (table inet promptwall); its rules outlive a crash: \
                     run `promptwall cleanup` after one"
                );
            }
        }
        *self.inner.listener.lock().unwrap() = Some((v4, v6));
        Ok(())
    }

    /// What the transparent listener should use to find each connection's origin.
    pub fn origin_source(&self) -> promptwall_proxy::transparent::OriginSource {
        use promptwall_proxy::transparent::OriginSource;
        match &self.inner.backend {
            Backend::Ebpf(loaded) => OriginSource::Lookup(Arc::new(EbpfLookup(loaded.clone()))),
            Backend::Nftables { .. } => OriginSource::SoOriginalDst,
        }
    }

    /// Adds addresses to the redirect set at runtime (test override).
    #[cfg(test)]
    pub fn add_addresses(&self, prefixes: &[Prefix]) -> anyhow::Result<()> {
        for p in prefixes {
            self.inner.addresses.lock().unwrap().add_override(*p);
        }
        match &self.inner.backend {
            Backend::Ebpf(loaded) => {
                let mut guard = loaded.lock().unwrap();
                let loaded = guard.as_mut().context("interception was shut down")?;
                for p in prefixes {
                    loaded.insert_prefix(*p, Source::Override)?;
                }
                Ok(())
            }
            Backend::Nftables { .. } => nft::update_elements(prefixes, &[]),
        }
    }

    #[cfg(test)]
    pub fn status(&self) -> InterceptStatus {
        self.inner.status()
    }

    /// A status snapshot function for the admin socket.
    pub fn status_fn(&self) -> Arc<dyn Fn() -> serde_json::Value + Send + Sync> {
        let inner = self.inner.clone();
        Arc::new(move || serde_json::to_value(inner.status()).unwrap_or(serde_json::Value::Null))
    }

    /// Detaches programs / removes the nftables table. Idempotent.
    pub fn shutdown(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        if let Some((namespaces, _)) = &self.inner.namespaces {
            namespaces.release_all();
        }
        match &self.inner.backend {
            Backend::Ebpf(loaded) => {
                if loaded.lock().unwrap().take().is_some() {
                    tracing::info!("eBPF redirect detached");
                }
            }
            Backend::Nftables { installed } => {
                let mut installed = installed.lock().unwrap();
                if *installed {
                    if let Err(e) = nft::remove_table() {
                        tracing::error!("{e:#}");
                    }
                    *installed = false;
                }
            }
        }
    }
}

impl Inner {
    fn status(&self) -> InterceptStatus {
        let listener = *self.listener.lock().unwrap();
        let mut status = InterceptStatus {
            mode: "ebpf",
            fail: match self.fail {
                FailMode::Open => "open",
                FailMode::Closed => "closed",
            },
            cgroup: self.cgroup.clone(),
            listener_v4: listener.map(|l| l.0),
            listener_v6: listener.map(|l| l.1),
            object_sha256: None,
            programs: Vec::new(),
            maps: BTreeMap::new(),
            counters: BTreeMap::new(),
            heartbeat_age_ms: None,
            provider_prefixes: self
                .addresses
                .lock()
                .unwrap()
                .entries()
                .iter()
                .map(|(p, _)| p.to_string())
                .collect(),
            nftables_table: None,
            namespaces: self.namespaces.as_ref().map(|(n, _)| n.status()),
        };
        match &self.backend {
            Backend::Ebpf(loaded) => {
                status.object_sha256 = Some(ebpf::object_sha256());
                if let Some(loaded) = loaded.lock().unwrap().as_ref() {
                    status.programs = loaded.attached.clone();
                    status.maps = loaded.map_sizes();
                    status.counters = loaded.counters();
                    status.heartbeat_age_ms = loaded
                        .heartbeat()
                        .map(|beat| sys::monotonic_ns().saturating_sub(beat) / 1_000_000);
                }
            }
            Backend::Nftables { installed } => {
                status.mode = "nftables";
                if *installed.lock().unwrap() {
                    status.nftables_table = Some(format!("{} {}", nft::FAMILY, nft::TABLE));
                }
            }
        }
        status
    }
}

impl OriginLookup for InterceptHandle {
    fn lookup(&self, peer: SocketAddr, local: SocketAddr) -> Option<ConnectionOrigin> {
        match &self.inner.backend {
            Backend::Ebpf(loaded) => EbpfLookup(loaded.clone()).lookup(peer, local),
            Backend::Nftables { .. } => ProcLookup.lookup(peer, local),
        }
    }
}

impl Drop for InterceptHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Removes what a crashed agent can leave behind: pinned links (fail =
/// "closed"), the nftables table, and cgroups created by tests.
pub async fn cleanup(args: CleanupArgs, config: &AgentConfig) -> anyhow::Result<()> {
    if !sys::is_root() {
        anyhow::bail!("cleanup needs root; run `sudo promptwall cleanup`");
    }
    let service_result = std::env::var("SERVICE_RESULT").ok();
    if args.after_service_stop && keep_redirect_after_stop(config.intercept.fail, service_result.as_deref()) {
        println!(
            "fail = \"closed\" and the service ended with {:?}: leaving the redirect pinned, so provider \
             connections stay refused until promptwall restarts; run `promptwall cleanup` to remove it",
            service_result.as_deref().unwrap_or("an unknown result")
        );
        return Ok(());
    }
    let report = cleanup_all(Path::new(ebpf::DEFAULT_PIN_DIR), true)?;
    if report.is_empty() {
        println!("nothing to clean up");
    }
    for line in report {
        println!("{line}");
    }
    Ok(())
}

/// Does the work of `cleanup`; returns one line per removed object.
pub fn cleanup_all(pin_dir: &Path, test_cgroups: bool) -> anyhow::Result<Vec<String>> {
    let mut report = Vec::new();
    if pin_dir.parent().map(ebpf::is_bpffs).unwrap_or(false) {
        for path in ebpf::remove_pins(pin_dir)? {
            report.push(format!("removed pinned eBPF link {}", path.display()));
        }
    }
    if nft::remove_table()? {
        report.push(format!("removed nftables table {} {}", nft::FAMILY, nft::TABLE));
    }
    if let Some(mount) = test_cgroups.then(cgroup::cgroup2_mount).and_then(Result::ok) {
        for dir in remove_test_cgroups(&mount)? {
            report.push(format!("removed test cgroup {}", dir.display()));
        }
    }
    Ok(report)
}

/// Test cgroups are named `promptwall-test-<pid of the test process>[-…]`;
/// one whose creator still runs is not leftover.
fn test_cgroup_owner_alive(name: &str) -> bool {
    let digits: String = name[TEST_CGROUP_PREFIX.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let Ok(pid) = digits.parse::<u32>() else { return false };
    pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
}

/// Test cgroups hold short-lived helpers; move any survivors to the parent and remove the directory.
fn remove_test_cgroups(mount: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(mount) else {
        return Ok(removed);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(TEST_CGROUP_PREFIX) || !entry.path().is_dir() {
            continue;
        }
        if test_cgroup_owner_alive(&name) {
            // Another test run is using it right now.
            continue;
        }
        let dir = entry.path();
        remove_cgroup_tree(&dir, mount)?;
        removed.push(dir);
    }
    Ok(removed)
}

/// Removes `dir` and the cgroups under it (a test's containers), deepest
/// first, moving any survivors to the root cgroup `mount`.
fn remove_cgroup_tree(dir: &Path, mount: &Path) -> anyhow::Result<()> {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten().filter(|c| c.path().is_dir()) {
            remove_cgroup_tree(&child.path(), mount)?;
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.split_whitespace() {
            let _ = std::fs::write(mount.join("cgroup.procs"), pid);
        }
    }
    std::fs::remove_dir(dir).with_context(|| format!("cannot remove leftover test cgroup {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_in_fail_closed_keeps_the_redirect_and_nothing_else_does() {
        for crash in [
            None,
            Some("signal"),
            Some("exit-code"),
            Some("core-dump"),
            Some("watchdog"),
        ] {
            assert!(
                keep_redirect_after_stop(FailMode::Closed, crash),
                "closed after {crash:?}"
            );
            assert!(!keep_redirect_after_stop(FailMode::Open, crash), "open after {crash:?}");
        }
        // A requested stop (systemctl stop, package removal) always detaches.
        assert!(!keep_redirect_after_stop(FailMode::Closed, Some("success")));
        assert!(!keep_redirect_after_stop(FailMode::Open, Some("success")));
    }
}
