//! `promptwall doctor`: is this machine set up so every agent runtime is
//! intercepted and trusts the org CA? One row per check, a fix for each
//! failure; `--json` for fleet reporting.
//!
//! The TLS rows run real clients (curl, Python ssl / requests / httpx, Node,
//! and a rustls client in a child of this binary) against the proxy's TLS
//! listener with a provider's server name. Each gets only the machine-wide
//! environment (`/etc/environment`, `/etc/environment.d`) plus PATH and HOME,
//! which is what a fresh login session would see, not the caller's shell.
//!
//! Doctor usually runs as root, often from a directory or with a HOME that
//! another user can write (`cd /tmp; sudo promptwall doctor`). So every child
//! runs from `/`, as an absolute path found through the absolute entries of
//! PATH only, with HOME set to the effective user's own home, Python in
//! isolated mode (`-I`: no script directory, user site or PYTHON* variables)
//! and curl without `.curlrc` (`-q`): nothing planted there runs as root.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::config::AgentConfig;
use crate::intercept::config::InterceptMode;
use promptwall_ca::trust::TrustLayout;
use promptwall_ca::OrgCa;

use super::trust_env;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// One JSON document, for fleet reporting.
    #[arg(long)]
    pub json: bool,
    /// TLS listener to handshake with; default: the running agent's transparent
    /// listener, else its explicit_tls listener.
    #[arg(long)]
    pub proxy: Option<SocketAddr>,
    /// Server name for the handshakes; default: the first provider host.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Python interpreter(s) to check (e.g. a virtualenv's bin/python); repeatable.
    #[arg(long = "python", default_value = "python3")]
    pub pythons: Vec<PathBuf>,
    /// Read the machine-wide environment and trust store under this directory.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Skip loading the eBPF programs into a throwaway cgroup.
    #[arg(long)]
    pub no_ebpf: bool,
    /// Internal: run the rustls handshake probe against ADDR and exit.
    #[arg(long, hide = true)]
    pub rustls_probe: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub id: String,
    pub outcome: Outcome,
    pub detail: String,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
}

fn check(id: &str, outcome: Outcome, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        id: id.into(),
        outcome,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

pub async fn run(args: DoctorArgs, config: &AgentConfig) -> anyhow::Result<()> {
    if let Some(addr) = args.rustls_probe {
        let host = args.server_name.clone().unwrap_or_else(|| first_provider_host(config));
        return match rustls_probe(addr, &host) {
            Ok(msg) => {
                println!("{msg}");
                Ok(())
            }
            Err(e) => Err(e),
        };
    }
    let checks = collect(&args, config).await;
    let failed = checks.iter().filter(|c| c.outcome == Outcome::Fail).count();
    if args.json {
        let doc = serde_json::json!({
            "machine_id": config.machine_id(),
            "version": env!("CARGO_PKG_VERSION"),
            "ok": failed == 0,
            "checks": checks,
        });
        println!("{doc}");
    } else {
        print_table(&checks, &config.machine_id());
    }
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed; apply the fixes listed and run `promptwall doctor` again");
    }
    Ok(())
}

impl DoctorArgs {
    /// What the web UI's Setup page runs: the defaults, without loading
    /// eBPF programs (a web request should not attach anything).
    pub fn for_ui() -> DoctorArgs {
        DoctorArgs {
            json: true,
            proxy: None,
            server_name: None,
            pythons: vec![PathBuf::from("python3")],
            root: PathBuf::from("/"),
            no_ebpf: true,
            rustls_probe: None,
        }
    }
}

/// Every check, in the order `doctor` prints them.
pub async fn collect(args: &DoctorArgs, config: &AgentConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(kernel_checks());
    checks.push(if args.no_ebpf {
        check("ebpf_attach", Outcome::Skip, "--no-ebpf", None)
    } else {
        ebpf_check(config)
    });
    checks.push(nftables_check(config));
    checks.push(service_check());
    let status = crate::admin::query(&config.listen.admin_socket, "status").await;
    checks.push(match &status {
        Ok(doc) => check(
            "agent",
            Outcome::Pass,
            format!(
                "running: pid {}, version {}",
                doc["pid"],
                doc["version"].as_str().unwrap_or("?")
            ),
            None,
        ),
        Err(e) => check(
            "agent",
            Outcome::Fail,
            format!("{e:#}"),
            Some("start it: `sudo systemctl enable --now promptwall` (or `sudo promptwall up`)"),
        ),
    });
    if let Ok(doc) = &status {
        checks.push(learned_check(doc));
        checks.extend(containers_check(doc));
    }
    let layout = TrustLayout::detect(&args.root).ok();
    checks.extend(ca_checks(config, &args.root, layout));
    checks.push(catalog_check(config));
    let machine_env = trust_env::machine_environment(&args.root);
    checks.push(env_check(&machine_env, layout, &args.root));

    let target = args.proxy.or_else(|| {
        let doc = status.as_ref().ok()?;
        ["transparent", "explicit_tls"]
            .iter()
            .find_map(|k| doc["listeners"][k].as_str().and_then(|a| a.parse::<SocketAddr>().ok()))
    });
    let host = args.server_name.clone().unwrap_or_else(|| first_provider_host(config));
    checks.extend(tls_checks(target, &host, &machine_env, &args.pythons, config));
    checks
}

/// Provider hosts the org CA may not sign for are not intercepted.
fn catalog_check(config: &AgentConfig) -> Check {
    let hosts = config.provider_hosts();
    let (servable, refused) = crate::providers::servable_hosts(&hosts, &config.ca.dir);
    if refused.is_empty() {
        return check(
            "providers",
            Outcome::Pass,
            format!("{} provider hosts, all within the org CA's names", servable.len()),
            None,
        );
    }
    let names: Vec<&str> = refused.iter().map(|(h, _)| h.as_str()).collect();
    check(
        "providers",
        Outcome::Warn,
        format!(
            "not intercepted, outside the org CA's name constraints: {} ({})",
            names.join(", "),
            refused[0].1
        ),
        Some(
            "re-issue the CA so its constraints follow the catalog: `sudo promptwall ca init --force && sudo promptwall ca install`, then restart the service (or import an org CA that covers them)",
        ),
    )
}

fn first_provider_host(config: &AgentConfig) -> String {
    config
        .provider_hosts()
        .into_iter()
        .next()
        .unwrap_or_else(|| "api.anthropic.com".to_string())
}

fn print_table(checks: &[Check], machine_id: &str) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    table.set_header(vec!["check", "result", "detail", "fix"]);
    for c in checks {
        let result = match c.outcome {
            Outcome::Pass => "pass",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        };
        table.add_row(vec![
            c.id.clone(),
            result.into(),
            c.detail.clone(),
            c.fix.clone().unwrap_or_default(),
        ]);
    }
    println!("machine id: {machine_id}");
    println!("{table}");
}

/// Tools the agent learned to pass through (or, fail = "closed", keeps blocking)
/// because they reject the org CA's leaves.
fn learned_check(doc: &serde_json::Value) -> Check {
    let entries = doc["learned_passthrough"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return check(
            "learned_passthrough",
            Outcome::Pass,
            "no client has been rejecting promptwall's certificate",
            None,
        );
    }
    let text = |e: &&serde_json::Value| {
        let container = match e["container"].as_str() {
            Some(id) => format!("container {} ", short_id(id)),
            None => String::new(),
        };
        format!(
            "{container}{} -> {} ({} rejections: {})",
            e["exe"].as_str().unwrap_or("?"),
            e["server_name"].as_str().unwrap_or("?"),
            e["failures"],
            e["last_error"].as_str().unwrap_or("")
        )
    };
    let (passed, blocked): (Vec<_>, Vec<_>) = entries.iter().partition(|e| e["passthrough"] == true);
    let mut parts = Vec::new();
    if !passed.is_empty() {
        parts.push(format!(
            "passed through UNINSPECTED: {}",
            passed.iter().map(text).collect::<Vec<_>>().join("; ")
        ));
    }
    if !blocked.is_empty() {
        parts.push(format!(
            "blocked (fail = \"closed\"): {}",
            blocked.iter().map(text).collect::<Vec<_>>().join("; ")
        ));
    }
    let in_container = entries.iter().any(|e| e["container"].is_string());
    check(
        "learned_passthrough",
        if blocked.is_empty() {
            Outcome::Warn
        } else {
            Outcome::Fail
        },
        parts.join("; "),
        Some(if in_container {
            "a container does not trust the org CA: `promptwall ca container --dir <image dir>` writes it and prints the \
             Dockerfile lines (COPY it to /usr/local/share/ca-certificates/, RUN update-ca-certificates, set \
             NODE_EXTRA_CA_CERTS), or mount the host's bundle read-only over /etc/ssl/certs/ca-certificates.crt \
             (README: Containers); then restart the agent to forget learned pairs"
        } else {
            "make each tool trust the org CA (it pins certificates or ships its own trust store: see its CA setting), then restart the agent to forget learned pairs"
        }),
    )
}

/// Containers (other network namespaces of the intercepted cgroup): served
/// ones are inspected; unserved ones pass uninspected and say why.
fn containers_check(doc: &serde_json::Value) -> Option<Check> {
    // Absent or null: nftables mode, or scanning off.
    let ns = doc["intercept"].get("namespaces").filter(|v| !v.is_null())?;
    let served = ns["served"].as_array().cloned().unwrap_or_default();
    let unserved = ns["unserved"].as_object().cloned().unwrap_or_default();
    let skipped = doc["intercept"]["counters"]["skipped_other_netns"]
        .as_u64()
        .unwrap_or(0);
    let name = |s: &serde_json::Value| match s["container_id"].as_str() {
        Some(id) => format!("container {}", short_id(id)),
        None => format!("namespace of pid {}", s["pid"]),
    };
    let mut detail = format!(
        "{} other network namespace(s) intercepted{}",
        served.len(),
        if served.is_empty() {
            String::new()
        } else {
            format!(": {}", served.iter().map(name).collect::<Vec<_>>().join(", "))
        }
    );
    if unserved.is_empty() && skipped == 0 {
        return Some(check("containers", Outcome::Pass, detail, None));
    }
    for (inode, why) in &unserved {
        detail.push_str(&format!(
            "; namespace {inode} NOT served: {}",
            why.as_str().unwrap_or("?")
        ));
    }
    if skipped > 0 {
        detail.push_str(&format!(
            "; {skipped} provider connection(s) from unserved namespaces passed uninspected"
        ));
    }
    Some(check(
        "containers",
        Outcome::Warn,
        detail,
        Some("a namespace needs its loopback up for promptwall's listener inside it; connections made before the agent's first scan (intercept.container_scan_secs) pass uninspected"),
    ))
}

/// The first 12 characters of a container id, as `docker ps` shows it.
fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn kernel_checks() -> Vec<Check> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let version: Vec<u32> = release
        .split(['.', '-'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    // 5.14: SO_NETNS_COOKIE, which the redirect uses to stay in its own namespace.
    let kernel = match version.as_slice() {
        [major, minor] if (*major, *minor) >= (5, 14) => {
            check("kernel", Outcome::Pass, format!("Linux {release}"), None)
        }
        [_, _] => check(
            "kernel",
            Outcome::Warn,
            format!("Linux {release} is older than 5.14; eBPF interception may not load"),
            Some("upgrade the kernel, or set intercept.mode = \"nftables\""),
        ),
        _ => check(
            "kernel",
            Outcome::Warn,
            format!("cannot parse kernel release {release:?}"),
            None,
        ),
    };
    let cgroup = match crate::intercept::cgroup::cgroup2_mount() {
        Ok(p) => check("cgroup2", Outcome::Pass, format!("mounted at {}", p.display()), None),
        Err(e) => check(
            "cgroup2",
            Outcome::Fail,
            format!("{e:#}"),
            Some("boot with systemd.unified_cgroup_hierarchy=1, or set intercept.mode = \"nftables\""),
        ),
    };
    vec![kernel, cgroup]
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Loads and attaches the real programs to a throwaway child cgroup (never
/// the root: nothing outside that empty cgroup is affected), then detaches.
fn ebpf_check(config: &AgentConfig) -> Check {
    use crate::intercept::{cgroup, ebpf};
    let wanted = config.intercept.mode == InterceptMode::Ebpf;
    let bad = if wanted { Outcome::Fail } else { Outcome::Warn };
    if !ebpf::object_available() {
        return check(
            "ebpf_attach",
            bad,
            "this build has no eBPF programs (AYA_BUILD_SKIP)",
            Some("install a release build of promptwall"),
        );
    }
    if !is_root() {
        return check(
            "ebpf_attach",
            Outcome::Skip,
            "needs root",
            Some("run `sudo promptwall doctor`"),
        );
    }
    let result = (|| -> anyhow::Result<usize> {
        let mount = cgroup::cgroup2_mount()?;
        // Not the `promptwall-test-` prefix: a concurrent `promptwall cleanup` removes those.
        let dir = mount.join(format!("promptwall-doctor-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| anyhow::anyhow!("cannot create cgroup {}: {e}", dir.display()))?;
        struct Rmdir(PathBuf);
        impl Drop for Rmdir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _guard = Rmdir(dir.clone());
        let settings = ebpf::EbpfSettings {
            cgroup: dir,
            mark: config.upstream.mark,
            agent_cgroup_id: 0,
            netns_cookie: crate::intercept::sys::own_netns_cookie().unwrap_or(0),
            fail_closed: false,
            block_quic: false,
            heartbeat_max_age: Duration::from_secs(3),
            // No capture ports: even inside the throwaway cgroup nothing is redirected.
            ports: Vec::new(),
            pin_dir: None,
        };
        let loaded = ebpf::load(&settings)?;
        Ok(loaded.attached.len())
    })();
    match result {
        Ok(n) => check("ebpf_attach", Outcome::Pass, format!("{n} programs loaded and attached to a throwaway cgroup"), None),
        Err(e) => check(
            "ebpf_attach",
            bad,
            format!("{e:#}"),
            Some("needs Linux >= 5.14 with cgroup2 and CAP_BPF/CAP_NET_ADMIN; otherwise set intercept.mode = \"nftables\""),
        ),
    }
}

fn nftables_check(config: &AgentConfig) -> Check {
    let wanted = config.intercept.mode == InterceptMode::Nftables;
    let bad = if wanted { Outcome::Fail } else { Outcome::Warn };
    let version = system_command("nft").arg("--version").output();
    let Some(version) = version.ok().filter(|o| o.status.success()) else {
        return check(
            "nftables",
            bad,
            "nft not found (needed for the nftables fallback)",
            Some("install nftables (apt-get install nftables / dnf install nftables)"),
        );
    };
    let v = String::from_utf8_lossy(&version.stdout).trim().to_string();
    if !is_root() {
        return check(
            "nftables",
            Outcome::Pass,
            format!("{v} (kernel access not checked: not root)"),
            None,
        );
    }
    match system_command("nft").args(["list", "tables"]).output() {
        Ok(o) if o.status.success() => check("nftables", Outcome::Pass, v, None),
        Ok(o) => check(
            "nftables",
            bad,
            format!("nft list tables failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Some("load the nf_tables kernel module (modprobe nf_tables)"),
        ),
        Err(e) => check("nftables", bad, format!("cannot run nft: {e}"), None),
    }
}

fn service_check() -> Check {
    if !Path::new("/run/systemd/system").exists() {
        return check("service", Outcome::Skip, "systemd is not running here", None);
    }
    match system_command("systemctl")
        .args(["is-active", "promptwall.service"])
        .output()
    {
        Ok(o) => {
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if state == "active" {
                check("service", Outcome::Pass, "promptwall.service is active", None)
            } else {
                check(
                    "service",
                    Outcome::Fail,
                    format!("promptwall.service is {state}"),
                    Some("`sudo systemctl enable --now promptwall`; see `journalctl -u promptwall` if it fails"),
                )
            }
        }
        Err(e) => check("service", Outcome::Skip, format!("cannot run systemctl: {e}"), None),
    }
}

fn ca_checks(config: &AgentConfig, root: &Path, layout: Option<TrustLayout>) -> Vec<Check> {
    let ca = match OrgCa::load(&config.ca.dir) {
        Ok(ca) => ca,
        Err(e) => {
            let fix = if is_root() {
                "`sudo promptwall ca init` (or `ca import --cert C --key K` for an org-issued intermediate), then `sudo promptwall ca install`"
            } else {
                "run `sudo promptwall doctor` (the CA directory is readable by root only)"
            };
            return vec![check("ca", Outcome::Fail, format!("{e}"), Some(fix))];
        }
    };
    let st = ca.status_with_trust_root(root);
    let constraints = match &st.name_constraints {
        Some(c) => format!("constrained to {}", c.permitted.join(", ")),
        None => "not name-constrained".into(),
    };
    let detail = format!(
        "{}; valid until {} ({} days left); {constraints}",
        st.subject, st.not_after, st.days_left
    );
    let ca_row = if st.days_left < 0 {
        check(
            "ca",
            Outcome::Fail,
            detail,
            Some("re-issue: `sudo promptwall ca init --force && sudo promptwall ca install`, then restart the service"),
        )
    } else if st.days_left < 30 {
        check(
            "ca",
            Outcome::Warn,
            detail,
            Some("re-issue soon: `sudo promptwall ca init --force && sudo promptwall ca install`"),
        )
    } else {
        check("ca", Outcome::Pass, detail, None)
    };
    let trust_row = match (layout, st.trust.installed, st.trust.in_bundle) {
        (None, ..) => check(
            "system_trust",
            Outcome::Fail,
            "no Debian or RHEL trust store found",
            Some("install the ca-certificates package"),
        ),
        (Some(l), true, true) => check(
            "system_trust",
            Outcome::Pass,
            format!("in the {l:?} bundle {}", l.bundle_path(Path::new("/")).display()),
            None,
        ),
        (Some(_), true, false) => check(
            "system_trust",
            Outcome::Fail,
            "anchor present but the bundle was not refreshed",
            Some("`sudo promptwall ca install`"),
        ),
        (Some(_), false, _) => check(
            "system_trust",
            Outcome::Fail,
            "the org CA is not in the system trust store",
            Some("`sudo promptwall ca install`"),
        ),
    };
    vec![ca_row, trust_row]
}

fn env_check(env: &BTreeMap<String, String>, layout: Option<TrustLayout>, root: &Path) -> Check {
    let Some(layout) = layout else {
        return check(
            "machine_env",
            Outcome::Fail,
            "no trust store layout detected",
            Some("install the ca-certificates package"),
        );
    };
    let mut problems = Vec::new();
    for (k, want) in trust_env::variables(layout) {
        match env.get(k) {
            Some(v) if *v == want => {}
            Some(v) => problems.push(format!("{k}={v} (expected {want})")),
            None => problems.push(format!("{k} unset")),
        }
    }
    if let Some(bundle) = env.get("SSL_CERT_FILE") {
        let path = root.join(bundle.trim_start_matches('/'));
        let n = std::fs::read(&path)
            .map(|b| rustls_pemfile::certs(&mut b.as_slice()).filter(Result::is_ok).count())
            .unwrap_or(0);
        if n < 2 {
            problems.push(format!(
                "SSL_CERT_FILE names {} with {n} certificate(s); it must be the full system bundle (rustls clients use it instead of their roots)",
                path.display()
            ));
        }
    }
    if problems.is_empty() {
        check(
            "machine_env",
            Outcome::Pass,
            "NODE_EXTRA_CA_CERTS, NODE_USE_SYSTEM_CA, REQUESTS_CA_BUNDLE, SSL_CERT_FILE set machine-wide",
            None,
        )
    } else {
        check(
            "machine_env",
            Outcome::Fail,
            problems.join("; "),
            Some("`sudo promptwall ca install` writes /etc/environment, /etc/profile.d/promptwall.sh and /etc/environment.d; log in again to pick it up"),
        )
    }
}

/// The caller's PATH without relative entries (`.`, empty, `bin`): those name
/// whatever directory doctor happens to run in.
fn absolute_path_var() -> std::ffi::OsString {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).filter(|d| d.is_absolute()).collect())
        .unwrap_or_default();
    if dirs.is_empty() {
        return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into();
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

/// `program` as an absolute path: a bare name is looked up in the absolute
/// PATH entries; a path given on the command line (`--python ./venv/bin/python`)
/// is taken relative to where doctor was started, as its caller meant. Not
/// canonicalized: a virtualenv's interpreter is a symlink that must stay one.
fn absolute_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.components().count() > 1 || program.is_absolute() {
        return std::path::absolute(program).ok();
    }
    std::env::split_paths(&absolute_path_var())
        .map(|d| d.join(program))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The effective user's home from the password database, not `$HOME` (which
/// `sudo` may leave pointing at the calling user's directory).
fn own_home() -> PathBuf {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A child that runs `program` by absolute path, from `/`, with only PATH
/// (absolute entries) and HOME (the effective user's) in its environment.
/// Not found: a command that fails to spawn, which callers report as missing.
fn system_command(program: impl AsRef<Path>) -> Command {
    let program = program.as_ref();
    let mut cmd = match absolute_program(program) {
        Some(abs) => Command::new(abs),
        // An absolute directory that cannot exist: spawning fails as "not found".
        None => Command::new(Path::new("/nonexistent/promptwall-doctor").join(program)),
    };
    cmd.current_dir("/");
    cmd.env_clear();
    cmd.env("PATH", absolute_path_var());
    cmd.env("HOME", own_home());
    cmd
}

/// Environment for the client probes: the machine-wide variables, plus PATH
/// and HOME so the tools can be found and start (see [`system_command`]).
fn client_command(program: impl AsRef<Path>, machine_env: &BTreeMap<String, String>) -> Command {
    let mut cmd = system_command(program);
    cmd.envs(
        machine_env
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "PATH" | "HOME")),
    );
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` with a deadline; (exit code, stdout, stderr) or None if it could not start.
fn run_probe(mut cmd: Command) -> Option<(i32, String, String)> {
    let child = cmd.spawn().ok()?;
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CLIENT_TIMEOUT) {
        Ok(Ok(out)) => Some((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )),
        Ok(Err(e)) => Some((-1, String::new(), e.to_string())),
        Err(_) => {
            // SAFETY: our own child; the waiting thread reaps it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            Some((-1, String::new(), format!("timed out after {CLIENT_TIMEOUT:?}")))
        }
    }
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

const TRUST_FIX: &str =
    "`sudo promptwall ca install` (system store + machine-wide environment), then start a new login session";

const PYTHON_PROBE: &str = r#"
import os, socket, ssl, sys
mode, host, ip, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
try:
    if mode == "ssl":
        ctx = ssl.create_default_context()
        where = "OpenSSL defaults (%s)" % (os.environ.get("SSL_CERT_FILE") or ssl.get_default_verify_paths().cafile)
    elif mode == "requests":
        import requests
        # The CA bundle requests itself would pick: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi.
        verify = requests.Session().merge_environment_settings("https://%s/" % host, {}, None, None, None)["verify"]
        if verify is True:
            verify = requests.utils.DEFAULT_CA_BUNDLE_PATH
        ctx = ssl.create_default_context(capath=verify) if os.path.isdir(verify) else ssl.create_default_context(cafile=verify)
        where = "requests %s, bundle %s" % (requests.__version__, verify)
    else:
        import httpx
        ctx = httpx.create_ssl_context()
        where = "httpx %s, bundle %s" % (httpx.__version__, os.environ.get("SSL_CERT_FILE") or "certifi")
except ImportError as e:
    print("not installed: %s" % e, file=sys.stderr)
    sys.exit(3)
with socket.create_connection((ip, port), timeout=10) as sock:
    with ctx.wrap_socket(sock, server_hostname=host) as tls:
        print("%s via %s" % (tls.version(), where))
"#;

const NODE_PROBE: &str = r#"
const tls = require('tls');
const [host, ip, port] = process.argv.slice(1);
const s = tls.connect({ host: ip, port: Number(port), servername: host }, () => {
  console.log(`${s.getProtocol()} via node ${process.version}`);
  s.end();
  process.exit(0);
});
s.setTimeout(10000, () => { console.error('timed out'); process.exit(1); });
s.on('error', (e) => { console.error(`${e.code || ''} ${e.message}`); process.exit(1); });
"#;

fn tls_checks(
    target: Option<SocketAddr>,
    host: &str,
    env: &BTreeMap<String, String>,
    pythons: &[PathBuf],
    config: &AgentConfig,
) -> Vec<Check> {
    let mut ids = vec!["tls_curl".to_string()];
    for (i, py) in pythons.iter().enumerate() {
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("@{}", py.display())
        };
        for m in ["ssl", "requests", "httpx"] {
            ids.push(format!("tls_python_{m}{suffix}"));
        }
    }
    ids.extend(["tls_node".to_string(), "tls_rustls".to_string()]);
    let Some(addr) = target else {
        let why = format!(
            "no TLS listener to test: the agent is not reachable on {}",
            config.listen.admin_socket.display()
        );
        return ids
            .iter()
            .map(|id| {
                check(
                    id,
                    Outcome::Fail,
                    why.clone(),
                    Some("start the agent, or pass --proxy ADDR of a TLS listener"),
                )
            })
            .collect();
    };
    // Whatever address was chosen, the port must be reachable at all.
    if TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_err() {
        return ids
            .iter()
            .map(|id| {
                check(
                    id,
                    Outcome::Fail,
                    format!("nothing listens on {addr}"),
                    Some("start the agent (`sudo systemctl start promptwall`)"),
                )
            })
            .collect();
    }
    let ip = addr.ip().to_string();
    let port = addr.port().to_string();
    let mut out = Vec::new();

    // curl: a real request; any HTTP answer means the handshake was trusted.
    let connect_ip = if addr.is_ipv6() { format!("[{ip}]") } else { ip.clone() };
    let mut curl = client_command("curl", env);
    // -q first: never read a .curlrc (it can name output files).
    curl.args(["-q", "-sS", "-o", "/dev/null", "--max-time", "10", "-w", "%{http_code}"])
        .arg("--connect-to")
        .arg(format!("{host}:443:{connect_ip}:{port}"))
        .arg(format!("https://{host}/"));
    out.push(match run_probe(curl) {
        None => check("tls_curl", Outcome::Skip, "curl not installed", None),
        Some((0, code, _)) => check(
            "tls_curl",
            Outcome::Pass,
            format!("handshake trusted (HTTP {code})"),
            None,
        ),
        // curl's first stderr line names the problem; the rest is boilerplate.
        Some((rc, _, err)) => check(
            "tls_curl",
            Outcome::Fail,
            format!(
                "curl exit {rc}: {}",
                err.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
            ),
            Some(TRUST_FIX),
        ),
    });

    for (i, py) in pythons.iter().enumerate() {
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("@{}", py.display())
        };
        for mode in ["ssl", "requests", "httpx"] {
            let id = format!("tls_python_{mode}{suffix}");
            let mut cmd = client_command(py, env);
            // -I: isolated mode, so no ssl.py in a writable directory is imported.
            cmd.args(["-I", "-c", PYTHON_PROBE]).args([mode, host, &ip, &port]);
            out.push(match run_probe(cmd) {
                None => check(
                    &id,
                    Outcome::Skip,
                    format!("{} not found", py.display()),
                    Some("pass --python PATH"),
                ),
                Some((0, msg, _)) => check(&id, Outcome::Pass, msg, None),
                Some((3, _, err)) => check(&id, Outcome::Skip, err, None),
                Some((rc, _, err)) => check(
                    &id,
                    Outcome::Fail,
                    format!("exit {rc}: {}", last_line(&err)),
                    Some(TRUST_FIX),
                ),
            });
        }
    }

    let mut node = client_command("node", env);
    node.arg("-e").arg(NODE_PROBE).args([host, &ip, &port]);
    out.push(match run_probe(node) {
        None => check("tls_node", Outcome::Skip, "node not installed", None),
        Some((0, msg, _)) => check("tls_node", Outcome::Pass, msg, None),
        Some((rc, _, err)) => check(
            "tls_node",
            Outcome::Fail,
            format!("exit {rc}: {}", last_line(&err)),
            Some(TRUST_FIX),
        ),
    });

    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("promptwall"));
    let mut rustls = client_command(exe, env);
    // The probe needs no config; /dev/null (all defaults) keeps an unreadable
    // /etc/promptwall/config.toml from failing it.
    rustls.args([
        "--config",
        "/dev/null",
        "doctor",
        "--server-name",
        host,
        "--rustls-probe",
        &addr.to_string(),
    ]);
    out.push(match run_probe(rustls) {
        None => check(
            "tls_rustls",
            Outcome::Fail,
            "cannot re-run this binary for the rustls probe",
            None,
        ),
        Some((0, msg, _)) => check("tls_rustls", Outcome::Pass, msg, None),
        Some((rc, _, err)) => check(
            "tls_rustls",
            Outcome::Fail,
            format!("exit {rc}: {}", last_line(&err)),
            Some(TRUST_FIX),
        ),
    });
    out
}

/// A rustls client with the roots rustls-native-certs finds (what Codex and
/// other rustls CLIs use: `SSL_CERT_FILE` replaces the platform roots).
fn rustls_probe(addr: SocketAddr, host: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        anyhow::bail!("no trusted roots found (errors: {:?})", found.errors);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls rejected its default protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).context("invalid server name")?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).context("cannot start a TLS client")?;
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to {addr}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    sock.set_write_timeout(Some(Duration::from_secs(10)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .with_context(|| format!("TLS handshake with {addr} as {host} failed"))?;
    }
    Ok(format!(
        "{:?} via rustls with {added} native roots",
        conn.protocol_version().unwrap_or(rustls::ProtocolVersion::TLSv1_3)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_pass_when_every_namespace_is_served_and_none_was_skipped() {
        let doc = json!({"intercept": {
            "counters": {"skipped_other_netns": 0},
            "namespaces": {"served": [{"pid": 7, "container_id": "4f1c1a0e9b3d7c2a8e6f"}], "unserved": {}}
        }});
        let c = containers_check(&doc).unwrap();
        assert_eq!(c.outcome, Outcome::Pass);
        assert!(c.detail.contains("container 4f1c1a0e9b3d"), "{}", c.detail);
    }

    #[test]
    fn containers_warn_naming_an_unserved_namespace_and_skipped_connections() {
        let doc = json!({"intercept": {
            "counters": {"skipped_other_netns": 3},
            "namespaces": {"served": [], "unserved": {"4026532240": "cannot bind 127.0.0.1 in the namespace"}}
        }});
        let c = containers_check(&doc).unwrap();
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(
            c.detail.contains("namespace 4026532240 NOT served: cannot bind"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("3 provider connection(s)"), "{}", c.detail);
        assert!(c.fix.is_some());
    }

    #[test]
    fn containers_are_not_checked_without_namespace_serving() {
        assert!(containers_check(&json!({"intercept": {"mode": "nftables", "namespaces": null}})).is_none());
        assert!(containers_check(&json!({"intercept": null})).is_none());
    }

    #[test]
    fn a_container_rejecting_the_org_ca_gets_the_image_fix() {
        let doc = json!({"learned_passthrough": [{
            "exe": "/usr/bin/curl", "server_name": "api.anthropic.com", "failures": 3,
            "last_error": "unknown ca", "passthrough": true, "container": "c0ffee00c0ffee00c0ffee"
        }]});
        let c = learned_check(&doc);
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(
            c.detail.contains("container c0ffee00c0ff /usr/bin/curl"),
            "{}",
            c.detail
        );
        assert!(c.fix.as_deref().is_some_and(|f| f.contains("update-ca-certificates")));
    }
}
