//! Root-only tests of the real kernel path. Each outer test re-executes this
//! test binary inside `unshare -m -n --propagation private` (own network and
//! mount namespace: loopback only, private bpffs) and runs the matching
//! `*_in_namespace` test there. eBPF is attached only to a child cgroup the
//! test creates (`promptwall-test-<pid>`), never to the host's cgroup2 root,
//! and only 127.x addresses go into the provider maps.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use crate::config::AgentConfig;
use crate::intercept::config::FailMode;
use promptwall_proxy::origin::{ConnectionOrigin, OriginLookup};

use super::*;

const CHILD_ENV: &str = "PROMPTWALL_NETNS_TEST";
const FAKE_PROVIDER: &str = "127.0.0.2:443";

/// Runs `test_name` in fresh namespaces; false (skip) when not root.
fn run_in_namespace(test_name: &str) -> bool {
    if !sys::is_root() {
        // `cargo xtask test` (and so CI) must run them: there a skip is a failure.
        assert!(
            std::env::var_os("PROMPTWALL_REQUIRE_CLIENTS").is_none(),
            "{test_name} needs root; run the suite as root"
        );
        eprintln!("SKIP {test_name}: needs root (CI runs these as root)");
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private"])
        .arg(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test_name)
        .output()
        .expect("cannot run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test_name} failed in its namespace:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{test_name} did not run in its namespace:\n{stdout}\n{stderr}"
    );
    true
}

fn in_child(test_name: &str) -> bool {
    std::env::var(CHILD_ENV).ok().as_deref() == Some(test_name)
}

/// Child cgroup under the cgroup2 mount; removed on drop (members moved out first).
struct TestCgroup {
    path: PathBuf,
    parent: PathBuf,
}

impl TestCgroup {
    fn create() -> TestCgroup {
        let mount = cgroup::cgroup2_mount().unwrap();
        let path = mount.join(format!("{TEST_CGROUP_PREFIX}{}", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TestCgroup { path, parent: mount }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!("WARNING: cannot remove test cgroup {}: {e}", self.path.display());
        }
    }
}

fn setup_namespace() {
    let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().unwrap();
    assert!(status.success(), "ip link set lo up failed");
    // A private bpffs: pins made by fail = "closed" tests stay in this namespace.
    let bpf = Path::new("/sys/fs/bpf");
    nix::mount::mount(
        Some("bpf"),
        bpf,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
}

/// Serves `reply` to every connection; reports each peer address.
fn serve(listener: TcpListener, reply: &'static str, on_accept: impl Fn(SocketAddr, SocketAddr) + Send + 'static) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let peer = stream.peer_addr().unwrap();
            let local = stream.local_addr().unwrap();
            on_accept(peer, local);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
}

struct Client {
    body: String,
    pid: u32,
    ok: bool,
}

/// curl to the fake provider, optionally from inside `cgroup`.
fn curl(cgroup: Option<&Path>) -> Client {
    let url = format!("http://{FAKE_PROVIDER}/v1/messages");
    let script = match cgroup {
        Some(cg) => format!(
            "echo $$ > {}/cgroup.procs && exec curl -s --max-time 5 --noproxy '*' {url}",
            cg.display()
        ),
        None => format!("exec curl -s --max-time 5 --noproxy '*' {url}"),
    };
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    Client {
        body: String::from_utf8_lossy(&out.stdout).into_owned(),
        pid,
        ok: out.status.success(),
    }
}

/// Python client in the cgroup whose socket carries SO_MARK = `mark`.
fn marked_client(cgroup: &Path, mark: u32) -> String {
    let py = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, 36, {mark})\ns.settimeout(5)\n\
         s.connect(('127.0.0.2', 443))\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n\
         data=b''\nwhile True:\n    c=s.recv(4096)\n    if not c: break\n    data+=c\nprint(data.decode().split('\\r\\n\\r\\n',1)[1])\n"
    );
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec /usr/bin/python3 -c \"$PY\"",
        cgroup.display()
    );
    let out = Command::new("sh").arg("-c").arg(script).env("PY", py).output().unwrap();
    assert!(
        out.status.success(),
        "marked client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Python in the cgroup; prints what `code` prints.
fn python_client(cgroup: &Path, code: &str) -> String {
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec /usr/bin/python3 -c \"$PY\"",
        cgroup.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PY", code)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const V4_MAPPED_CONNECT: &str = "import socket\ns=socket.socket(socket.AF_INET6)\ns.settimeout(5)\n\
    s.connect(('::ffff:127.0.0.2', 443))\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n\
    data=b''\nwhile True:\n    c=s.recv(4096)\n    if not c: break\n    data+=c\nprint(data.decode().split('\\r\\n\\r\\n',1)[1])\n";

fn udp_send(port: u16) -> String {
    format!(
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         try:\n    s.sendto(b'quic', ('127.0.0.2', {port}))\n    print('sent')\n\
         except PermissionError:\n    print('EPERM')\n"
    )
}

fn test_config(fail: FailMode) -> AgentConfig {
    let mut config = AgentConfig::default();
    config.intercept.addresses = vec![format!("{}/32", FAKE_PROVIDER.split(':').next().unwrap())];
    config.intercept.ports = vec![443];
    config.intercept.resolve_interval_secs = 0;
    config.intercept.fail = fail;
    config.upstream.mark = 0x1fa1;
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_program_passes_the_verifier() {
    run_in_namespace("intercept::root_tests::load_in_namespace");
}

#[test]
fn load_in_namespace() {
    if !in_child("intercept::root_tests::load_in_namespace") {
        return;
    }
    setup_namespace();
    let cg = TestCgroup::create();
    let rt = runtime();
    for fail in [FailMode::Open, FailMode::Closed] {
        let config = test_config(fail);
        let mut options = StartOptions::from_config(&config);
        options.cgroup = Some(cg.path.clone());
        options.pin_dir = PathBuf::from("/sys/fs/bpf/promptwall-test");
        let handle = rt.block_on(start_with(&config, options)).expect("load + attach");
        let status = handle.status();
        let names: Vec<&str> = status.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ebpf::PROGRAMS.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        assert_eq!(status.maps["PROVIDERS_V4"], 1);
        if fail == FailMode::Closed {
            assert!(
                status.programs.iter().all(|p| p.pinned.is_some()),
                "closed mode pins links"
            );
            assert!(Path::new("/sys/fs/bpf/promptwall-test/pw_connect4").exists());
        }
        drop(handle);
        assert!(
            !Path::new("/sys/fs/bpf/promptwall-test").exists(),
            "shutdown removes pins"
        );
    }
    println!("all {} programs loaded and attached", ebpf::PROGRAMS.len());
}

#[test]
fn redirects_only_the_test_cgroup() {
    run_in_namespace("intercept::root_tests::redirect_in_namespace");
}

#[test]
fn redirect_in_namespace() {
    if !in_child("intercept::root_tests::redirect_in_namespace") {
        return;
    }
    setup_namespace();
    let cg = TestCgroup::create();
    serve(TcpListener::bind(FAKE_PROVIDER).unwrap(), "direct", |_, _| {});
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();

    let rt = runtime();
    let _rt_guard = rt.enter();
    let config = test_config(FailMode::Open);
    let mut options = StartOptions::from_config(&config);
    options.cgroup = Some(cg.path.clone());
    let handle = std::sync::Arc::new(rt.block_on(start_with(&config, options)).unwrap());

    // Runtime override (tests, `promptwall` test hooks) lands in the map.
    handle.add_addresses(&["127.0.0.5/32".parse().unwrap()]).unwrap();
    assert_eq!(handle.status().maps["PROVIDERS_V4"], 2);

    // Before the proxy is ready there is no heartbeat: fail open, go direct.
    assert_eq!(
        curl(Some(&cg.path)).body,
        "direct",
        "no heartbeat yet: must not redirect"
    );

    handle.set_listener(proxy_addr).unwrap();
    let (tx, rx) = mpsc::channel::<Option<ConnectionOrigin>>();
    let lookup = handle.clone();
    serve(proxy, "proxy", move |peer, local| {
        let _ = tx.send(lookup.lookup(peer, local));
    });

    let client = curl(Some(&cg.path));
    assert!(client.ok, "curl in the cgroup failed");
    assert_eq!(
        client.body, "proxy",
        "connection from the test cgroup must land on the proxy"
    );
    let origin = rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("lookup by peer address finds the record");
    assert_eq!(origin.original_dst, FAKE_PROVIDER.parse::<SocketAddr>().unwrap());
    assert_eq!(origin.identity.pid, Some(client.pid));
    assert_eq!(origin.identity.uid, Some(0));
    assert_eq!(origin.identity.comm.as_deref(), Some("curl"));
    assert!(
        origin.identity.exe.as_deref().unwrap_or("").ends_with("/curl"),
        "{:?}",
        origin.identity.exe
    );
    assert_eq!(origin.identity.cgroup_id, Some(cgroup::cgroup_id(&cg.path).unwrap()));
    assert!(origin.socket_cookie.is_some());

    // Same destination from outside the cgroup: untouched.
    assert_eq!(
        curl(None).body,
        "direct",
        "a process outside the test cgroup must not be redirected"
    );
    // A socket carrying the proxy's mark: untouched (loop guard).
    assert_eq!(
        marked_client(&cg.path, 0x1fa1),
        "direct",
        "marked sockets must not be redirected"
    );
    // Another mark is not ours.
    assert_eq!(marked_client(&cg.path, 0x1234), "proxy");

    let counters = handle.status().counters;
    assert_eq!(counters["redirected"], 2, "{counters:?}");
    assert!(counters["skipped_mark"] >= 1, "{counters:?}");

    // connect6 with a v4-mapped provider address is redirected too.
    assert_eq!(
        python_client(&cg.path, V4_MAPPED_CONNECT),
        "proxy",
        "v4-mapped IPv6 connect must be redirected"
    );
    // QUIC to a provider is refused so the client falls back to TCP; other UDP is not.
    assert_eq!(python_client(&cg.path, &udp_send(443)), "EPERM");
    assert_eq!(python_client(&cg.path, &udp_send(8443)), "sent");
    // A connection made in another network namespace is not ours to redirect.
    let before = handle.status().counters;
    let nested = format!(
        "echo $$ > {}/cgroup.procs && exec unshare -n sh -c 'ip link set lo up; curl -s --max-time 2 --noproxy \"*\" http://{FAKE_PROVIDER}/ || true'",
        cg.path.display()
    );
    assert!(Command::new("sh").arg("-c").arg(nested).status().unwrap().success());
    let after = handle.status().counters;
    assert_eq!(
        after["redirected"], before["redirected"],
        "the nested namespace's connect was redirected: {after:?}"
    );
    assert_eq!(after["redirected"], 3, "{after:?}");
    assert!(
        after["skipped_other_netns"] > before["skipped_other_netns"],
        "{after:?}"
    );
    assert!(after["rejected_quic"] >= 1, "{after:?}");
    // Every redirected client has exited: sock_release dropped their records.
    assert!(after["released"] >= after["redirected"], "{after:?}");
    assert_eq!(
        handle.status().maps["PEER_META"],
        0,
        "sock_release must empty PEER_META"
    );

    // Agent gone (links closed, as on kill -9 with fail = "open"): direct again.
    handle.shutdown();
    assert_eq!(
        curl(Some(&cg.path)).body,
        "direct",
        "after detach, traffic must go direct"
    );
    drop(handle);
    drop(rx);
}

#[test]
fn fail_closed_refuses_provider_connections_only() {
    run_in_namespace("intercept::root_tests::fail_closed_in_namespace");
}

#[test]
fn fail_closed_in_namespace() {
    if !in_child("intercept::root_tests::fail_closed_in_namespace") {
        return;
    }
    setup_namespace();
    let cg = TestCgroup::create();
    serve(TcpListener::bind(FAKE_PROVIDER).unwrap(), "direct", |_, _| {});
    serve(TcpListener::bind("127.0.0.3:443").unwrap(), "other", |_, _| {});
    let rt = runtime();
    let config = test_config(FailMode::Closed);
    let mut options = StartOptions::from_config(&config);
    options.cgroup = Some(cg.path.clone());
    options.pin_dir = PathBuf::from("/sys/fs/bpf/promptwall-test");
    let handle = rt.block_on(start_with(&config, options)).unwrap();

    // Proxy not ready (no heartbeat): provider connections are refused...
    let refused = curl(Some(&cg.path));
    assert!(
        !refused.ok && refused.body.is_empty(),
        "fail = closed must refuse provider connections: {:?}",
        refused.body
    );
    // ...but nothing else is touched.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec curl -s --max-time 5 --noproxy '*' http://127.0.0.3:443/",
        cg.path.display()
    );
    let other = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&other.stdout),
        "other",
        "non-provider traffic must pass in fail = closed"
    );
    assert_eq!(handle.status().counters["rejected_fail_closed"], 1);

    // Links are pinned: they outlive the loader's fds (a crashed agent).
    assert!(Path::new("/sys/fs/bpf/promptwall-test/pw_connect4").exists());
    // cleanup after a "crash" removes the pins; a deliberate shutdown does too.
    let report = cleanup_all(Path::new("/sys/fs/bpf/promptwall-test"), false).unwrap();
    assert!(report.iter().any(|l| l.contains("pw_connect4")), "{report:?}");
    drop(handle);
    assert_eq!(
        curl(Some(&cg.path)).body,
        "direct",
        "after cleanup provider traffic flows again"
    );
}

#[test]
fn cleanup_removes_a_dead_runs_test_cgroup_with_a_container_cgroup_under_it() {
    if !sys::is_root() {
        assert!(
            std::env::var_os("PROMPTWALL_REQUIRE_CLIENTS").is_none(),
            "this test needs root; run the suite as root"
        );
        return;
    }
    let mount = cgroup::cgroup2_mount().unwrap();
    // No process has this pid: the run that made it is gone.
    let leftover = mount.join(format!("{TEST_CGROUP_PREFIX}4294967295-leftover"));
    let container = leftover.join("docker-c0ffee.scope");
    std::fs::create_dir_all(&container).unwrap();
    let removed = remove_test_cgroups(&mount).unwrap();
    assert!(removed.contains(&leftover), "{removed:?}");
    assert!(!leftover.exists() && !container.exists());
}
