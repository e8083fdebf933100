//! A container, wired the way Docker's default bridge wires one, inside a
//! [`TransparentEnv`] started with `container: true`: its own network
//! namespace, a veth pair to a bridge (`pwbr0`, 10.89.0.1/24) with a
//! default route and NAT out, its processes in a `docker-<id>.scope` cgroup
//! under the intercepted cgroup, a Docker record naming it
//! (`<tempdir>/docker/containers/<id>/config.v2.json`), and its own
//! `/etc/hosts` resolving the provider names to [`CONTAINER_FAKE_IP`].
//! Everything lives in the test's private network namespace.
//!
//! ```ignore
//! let c = Container::start(&env, 1, Trust::OrgCa, Loopback::Up);
//! let out = c.sh(&env, "curl -sS https://api.anthropic.com/...", secs(30));
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cgroup::TestCgroup;
use crate::process::{clean_env, run_bounded, RunOutput};
use crate::transparent::{TransparentEnv, ANCHOR, BUNDLE, CONTAINER_FAKE_IP};

pub const BRIDGE: &str = "pwbr0";
pub const BRIDGE_IP: &str = "10.89.0.1";
/// The image and name the Docker record gives every test container (`-<n>`).
pub const IMAGE: &str = "python:3.13-slim";
pub const NAME_PREFIX: &str = "agent-box";

/// The host side: bridge, the routed provider address, forwarding and NAT.
pub(crate) fn wire_host(env: &TransparentEnv) {
    let script = format!(
        r#"set -eu
ip link add {BRIDGE} type bridge
ip addr add {BRIDGE_IP}/24 dev {BRIDGE}
ip link set {BRIDGE} up
ip addr add {CONTAINER_FAKE_IP}/32 dev lo
sysctl -qw net.ipv4.ip_forward=1
nft -f - <<'EOF'
table ip pw_test_nat {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.89.0.0/24 oifname != "{BRIDGE}" masquerade
  }}
}}
EOF
"#
    );
    run_bounded(env.ns_command("sh").args(["-c", &script]), Duration::from_secs(20))
        .expect_success("wiring the containers' bridge");
    std::fs::create_dir_all(env.path("docker/containers")).unwrap();
}

/// What the container's trust store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The org CA installed (the system bundle as the installer leaves it).
    OrgCa,
    /// Only the providers' own CA (an image nobody added the org CA to).
    ProvidersOnly,
}

/// Whether the container's loopback is up (Docker always brings it up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loopback {
    Up,
    Down,
}

pub struct Container {
    pub id: String,
    pub name: String,
    pub ip: String,
    trust: Trust,
    holder: Child,
    cgroup: TestCgroup,
    dir: PathBuf,
}

impl Container {
    /// Container `n` (1..=200): namespace, veth, cgroup and Docker record.
    pub fn start(env: &TransparentEnv, n: u8, trust: Trust, loopback: Loopback) -> Container {
        let id = format!(
            "{:064x}",
            0xc0ffee_u128 * 1_000_000 + u128::from(n) + u128::from(std::process::id()) * 1000
        );
        let name = format!("{NAME_PREFIX}-{n}");
        let ip = format!("10.89.0.{}", n + 1);
        let cgroup = TestCgroup::child_of(env.cgroup(), &format!("docker-{id}.scope"));
        let dir = env.path(&format!("ctr-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = format!(
            "127.0.0.1 localhost\n{CONTAINER_FAKE_IP} {}\n",
            crate::PROVIDER_HOSTS.join(" ")
        );
        std::fs::write(dir.join("hosts"), hosts).unwrap();
        // A trust directory holding only the providers' CA: OpenSSL reads
        // the bundle and the hashed links beside it, so both are replaced.
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        std::fs::copy(env.fake_ca_pem(), dir.join("certs/ca-certificates.crt")).unwrap();
        let record = env.path(&format!("docker/containers/{id}"));
        std::fs::create_dir_all(&record).unwrap();
        std::fs::write(
            record.join("config.v2.json"),
            serde_json::json!({"ID": id, "Name": format!("/{name}"), "Config": {"Image": IMAGE}}).to_string(),
        )
        .unwrap();

        // The holder: the container's first process, in its own network
        // namespace and its scope cgroup.
        let mut cmd = env.ns_command("unshare");
        cmd.args(["-n", "sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec sleep 100000"])
            .arg(cgroup.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let holder = cmd.spawn().expect("cannot start the container holder");
        let pid = holder.id();
        let mut c = Container {
            id,
            name,
            ip,
            trust,
            holder,
            cgroup,
            dir,
        };
        // Wait until it sits in its namespace and cgroup.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(c.cgroup.path().join("cgroup.procs")).is_ok_and(|p| p.contains(&pid.to_string()))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the container holder never joined its cgroup"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let host_side = format!("pwv{n}");
        let wire = format!(
            "set -eu\nip link add {host_side} type veth peer name eth0 netns {pid}\nip link set {host_side} master {BRIDGE} up\n"
        );
        run_bounded(env.ns_command("sh").args(["-c", &wire]), Duration::from_secs(20))
            .expect_success("adding the container's veth pair");
        let lo = if loopback == Loopback::Up {
            "ip link set lo up\n"
        } else {
            ""
        };
        let inside = format!(
            "set -eu\n{lo}ip addr add {}/24 dev eth0\nip link set eth0 up\nip route add default via {BRIDGE_IP}\n",
            c.ip
        );
        run_bounded(
            env.ns_command("nsenter")
                .args(["-t", &pid.to_string(), "-n", "--", "sh", "-c", &inside]),
            Duration::from_secs(20),
        )
        .expect_success("configuring the container's interfaces");
        c.holder_alive();
        c
    }

    fn holder_alive(&mut self) {
        if let Ok(Some(status)) = self.holder.try_wait() {
            panic!("the container holder exited: {status}");
        }
    }

    /// Brings the container's loopback up (a namespace that started without it).
    pub fn loopback_up(&self, env: &TransparentEnv) {
        run_bounded(
            env.ns_command("nsenter").args([
                "-t",
                &self.holder.id().to_string(),
                "-n",
                "--",
                "ip",
                "link",
                "set",
                "lo",
                "up",
            ]),
            Duration::from_secs(10),
        )
        .expect_success("bringing the container's loopback up");
    }

    /// The first 12 characters of the id, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// Runs `program args` in the container: its network namespace and
    /// cgroup, its /etc/hosts and trust store, HOME in its directory.
    pub fn run(&self, env: &TransparentEnv, program: &str, args: &[&str], timeout: Duration) -> RunOutput {
        let mut setup =
            String::from("echo $$ > \"$CTR_CGROUP/cgroup.procs\" && mount --bind \"$CTR_DIR/hosts\" /etc/hosts");
        if self.trust == Trust::ProvidersOnly {
            setup.push_str(" && mount --bind \"$CTR_DIR/certs\" /etc/ssl/certs");
        }
        setup.push_str(" && exec \"$@\"");
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(env.holder_pid().to_string())
            .args(["-m", "-n", "--", "nsenter", "-t"])
            .arg(self.holder.id().to_string())
            .args(["-n", "--", "unshare", "-m", "sh", "-c", &setup, "sh", program])
            .args(args);
        clean_env(&mut cmd);
        cmd.env("CTR_CGROUP", self.cgroup.path())
            .env("CTR_DIR", &self.dir)
            .env("HOME", &self.dir)
            .env("SSL_CERT_FILE", BUNDLE)
            .env("REQUESTS_CA_BUNDLE", BUNDLE)
            .current_dir(&self.dir);
        if self.trust == Trust::OrgCa {
            cmd.env("NODE_EXTRA_CA_CERTS", ANCHOR);
        }
        run_bounded(&mut cmd, timeout)
    }

    /// `bash -c script` in the container.
    pub fn sh(&self, env: &TransparentEnv, script: &str, timeout: Duration) -> RunOutput {
        self.run(env, "bash", &["-c", script], timeout)
    }

    /// Runs `args` as an OCI container started by runc (the runtime Docker
    /// and containerd use): its own pid, mount, ipc and uts namespaces, a
    /// read-only root of the host's /usr and /etc (which carry curl, the
    /// trust store and the clients), this container's /etc/hosts, and this
    /// container's network namespace (joined like a pod's sandbox). Its
    /// cgroup is `<cgroup>/docker/<id>`, Docker's cgroupfs layout.
    pub fn run_with_runc(&self, env: &TransparentEnv, args: &[&str], timeout: Duration) -> RunOutput {
        let bundle = self.dir.join("oci");
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        for dir in ["usr", "etc", "tmp", "proc", "dev", "sys", "work"] {
            std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        for link in ["bin", "lib", "lib64", "sbin"] {
            let _ = std::os::unix::fs::symlink(format!("usr/{link}"), rootfs.join(link));
        }
        let clients = crate::paths::test_clients_root();
        let mut mounts = vec![
            serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"}),
            serde_json::json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            serde_json::json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
            serde_json::json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
            serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
            serde_json::json!({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}),
            serde_json::json!({"destination": "/etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]}),
            serde_json::json!({"destination": "/etc/hosts", "type": "bind", "source": self.dir.join("hosts"), "options": ["bind", "ro"]}),
        ];
        if clients.exists() {
            std::fs::create_dir_all(rootfs.join(clients.strip_prefix("/").unwrap())).unwrap();
            mounts.push(serde_json::json!({"destination": clients, "type": "bind", "source": clients, "options": ["rbind", "ro"]}));
        }
        let cgroup_root = env.cgroup().file_name().unwrap().to_string_lossy().into_owned();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME=/tmp",
                    format!("SSL_CERT_FILE={BUNDLE}"),
                    format!("REQUESTS_CA_BUNDLE={BUNDLE}"),
                    format!("NODE_EXTRA_CA_CERTS={ANCHOR}"),
                ],
                "cwd": "/tmp",
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": true},
            "hostname": self.name,
            "mounts": mounts,
            "linux": {
                "namespaces": [
                    {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                    {"type": "network", "path": format!("/proc/{}/ns/net", self.holder.id())}
                ],
                "cgroupsPath": format!("/{cgroup_root}/docker/{}", self.id),
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
                "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
            }
        });
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        let mut cmd = env.ns_command("runc");
        cmd.arg("--root")
            .arg(self.dir.join("runc-state"))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&self.name);
        let out = run_bounded(&mut cmd, timeout);
        let _ = run_bounded(
            env.ns_command("runc")
                .arg("--root")
                .arg(self.dir.join("runc-state"))
                .args(["delete", "--force", &self.name]),
            Duration::from_secs(10),
        );
        remove_v1_cgroups(&cgroup_root);
        out
    }
}

/// On a hybrid cgroup layout runc also creates `<root>/docker/<id>` in
/// every v1 hierarchy; those are ours to remove once the container is gone.
fn remove_v1_cgroups(cgroup_root: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let top = h.path().join(cgroup_root);
        if h.file_name() == "unified" || !top.is_dir() {
            continue;
        }
        crate::cgroup::remove(&top);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        // The scope cgroup goes with its field.
    }
}
