//! Fleet install: `deploy/install.sh --root` into a scratch root (every file,
//! mode, owner, the unit verified by systemd-analyze, and an uninstall that
//! restores the tree), the Debian package's contents, and `promptwall doctor`
//! judging real clients' trust through only the machine-wide environment.
//!
//! Needs root (groupadd --prefix, chown, namespaces). Without root the tests
//! skip, unless PROMPTWALL_REQUIRE_CLIENTS=1 (CI), where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use promptwall_e2e::cgroup::TestCgroup;
use promptwall_e2e::paths::{promptwall_bin, workspace_root};
use promptwall_e2e::process::clean_env;
use promptwall_e2e::{run_bounded, Namespace, RunOutput, TestClients};
use serde_json::Value;

const STEP_TIMEOUT: Duration = Duration::from_secs(120);

fn required() -> bool {
    std::env::var("PROMPTWALL_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// True when the test can run; otherwise skips (or fails in CI) with `why`.
fn have_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let msg = format!("{test} needs root");
    assert!(!required(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let msg = format!("{tool} is not installed (cargo xtask setup installs it)");
        assert!(!required(), "{msg}");
        eprintln!("SKIPPED: {msg}");
    }
    found
}

fn sh(script: &Path, args: &[&str]) -> RunOutput {
    let mut cmd = Command::new("sh");
    clean_env(&mut cmd).arg(script).args(args);
    run_bounded(&mut cmd, STEP_TIMEOUT)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    /// File bytes, or a symlink's target; empty for directories.
    content: Vec<u8>,
}

/// Every path under `root` with its mode, owner and content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let content = if meta.file_type().is_symlink() {
                fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
            } else if meta.is_dir() {
                stack.push(p.clone());
                Vec::new()
            } else {
                fs::read(&p).unwrap()
            };
            let entry = Entry {
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                content,
            };
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), entry);
        }
    }
    out
}

/// A Debian-like skeleton: accounts, trust store with the host's bundle,
/// /etc/environment with a line of its own, and the systemd unit tree (so
/// `systemd-analyze verify --root` finds its targets).
fn scratch_root() -> tempfile::TempDir {
    let root = tempfile::Builder::new().prefix("promptwall-root").tempdir().unwrap();
    let r = root.path();
    for d in [
        "etc/profile.d",
        "etc/ssl/certs",
        "etc/systemd/system",
        "usr/bin",
        "usr/local/share/ca-certificates",
        "var/lib",
    ] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    for f in ["group", "gshadow", "passwd", "shadow"] {
        fs::copy(Path::new("/etc").join(f), r.join("etc").join(f)).unwrap();
    }
    fs::write(r.join("etc/environment"), "LANG=C.UTF-8\n").unwrap();
    fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        r.join("etc/ssl/certs/ca-certificates.crt"),
    )
    .unwrap();
    if Path::new("/usr/lib/systemd/system").is_dir() {
        fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
        let ok = Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(r.join("usr/lib/systemd/"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot copy the systemd unit tree into the scratch root");
    }
    root
}

fn group_id(root: &Path, name: &str) -> Option<u32> {
    fs::read_to_string(root.join("etc/group"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .and_then(|rest| rest.split(':').nth(1)?.parse().ok())
        })
}

/// `systemd-analyze verify` of `unit` inside `root`: no errors and no warnings.
fn verify_unit(root: &Path, unit: &Path) {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg(format!("--root={}", root.display())).arg(unit);
    let out = run_bounded(&mut cmd, STEP_TIMEOUT);
    assert!(
        out.success() && out.stderr.trim().is_empty(),
        "systemd-analyze verify {}:\n{}{}",
        unit.display(),
        out.stdout,
        out.stderr
    );
}

fn expect_machine_env(root: &Path) {
    let env = fs::read_to_string(root.join("etc/environment")).unwrap();
    assert!(
        env.starts_with("LANG=C.UTF-8\n# >>> promptwall trust"),
        "the admin's line stays first:\n{env}"
    );
    for line in [
        "NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/promptwall-org-ca.crt",
        "NODE_USE_SYSTEM_CA=1",
        "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    ] {
        assert!(env.lines().any(|l| l == line), "/etc/environment lacks {line}:\n{env}");
        assert!(fs::read_to_string(root.join("etc/environment.d/90-promptwall.conf"))
            .unwrap()
            .contains(line));
        let (k, v) = line.split_once('=').unwrap();
        let profile = fs::read_to_string(root.join("etc/profile.d/promptwall.sh")).unwrap();
        assert!(profile.contains(&format!("export {k}=\"${{{k}:-{v}}}\"")), "{profile}");
    }
}

#[test]
fn install_sh_into_a_scratch_root_and_back() {
    if !have_root("install.sh --root") || !have_tool("groupadd") {
        return;
    }
    let root = scratch_root();
    let r = root.path();
    let ignore = |p: &Path| p == Path::new("etc/group-") || p == Path::new("etc/gshadow-");
    let before: BTreeMap<_, _> = snapshot(r).into_iter().filter(|(p, _)| !ignore(p)).collect();
    let script = workspace_root().join("deploy/install.sh");
    let bin = promptwall_bin();
    let root_arg = r.to_str().unwrap();
    sh(&script, &["--root", root_arg, "--bin", bin.to_str().unwrap()]).expect_success("install.sh --root");

    let gid = group_id(r, "promptwall").expect("install.sh created the promptwall group");
    let after = snapshot(r);
    let added: BTreeSet<&PathBuf> = after
        .keys()
        .filter(|p| !before.contains_key(*p) && !ignore(p))
        .collect();
    // (path, mode, gid) of everything install.sh adds, and nothing else.
    let expected: Vec<(&str, u32, u32)> = vec![
        ("usr/bin/promptwall", 0o755, 0),
        ("etc/systemd/system/promptwall.service", 0o644, 0),
        ("etc/promptwall", 0o750, gid),
        ("etc/promptwall/config.toml", 0o640, gid),
        ("etc/promptwall/config.d", 0o750, gid),
        ("var/lib/promptwall", 0o750, gid),
        ("var/lib/promptwall/.group-created-by-install", 0o644, 0),
        ("var/lib/promptwall/ca", 0o700, 0),
        ("var/lib/promptwall/ca/ca.pem", 0o644, 0),
        ("var/lib/promptwall/ca/ca.key", 0o600, 0),
        ("usr/local/share/ca-certificates/promptwall-org-ca.crt", 0o644, 0),
        ("etc/profile.d/promptwall.sh", 0o644, 0),
        ("etc/environment.d", 0o755, 0),
        ("etc/environment.d/90-promptwall.conf", 0o644, 0),
    ];
    let expected_paths: BTreeSet<PathBuf> = expected.iter().map(|(p, ..)| PathBuf::from(p)).collect();
    assert_eq!(
        added.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected_paths,
        "files added by install.sh"
    );
    for (path, mode, group) in &expected {
        let e = &after[Path::new(path)];
        assert_eq!((e.mode, e.uid, e.gid), (*mode, 0, *group), "mode/owner of {path}");
    }
    assert_eq!(after[Path::new("usr/bin/promptwall")].content, fs::read(&bin).unwrap());
    assert_eq!(
        after[Path::new("etc/systemd/system/promptwall.service")].content,
        fs::read(workspace_root().join("deploy/systemd/promptwall.service")).unwrap()
    );
    assert_eq!(
        after[Path::new("etc/promptwall/config.toml")].content,
        fs::read(workspace_root().join("deploy/config.example.toml")).unwrap()
    );
    let ca_pem = String::from_utf8(after[Path::new("var/lib/promptwall/ca/ca.pem")].content.clone()).unwrap();
    let anchor = String::from_utf8(
        after[Path::new("usr/local/share/ca-certificates/promptwall-org-ca.crt")]
            .content
            .clone(),
    )
    .unwrap();
    assert!(
        anchor.contains("BEGIN CERTIFICATE") && ca_pem.contains(anchor.trim()),
        "the anchor is the org CA"
    );
    expect_machine_env(r);
    let changed: Vec<&PathBuf> = before
        .iter()
        .filter(|(p, e)| after.get(*p) != Some(e))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        changed,
        vec![
            Path::new("etc/environment"),
            Path::new("etc/group"),
            Path::new("etc/gshadow")
        ],
        "files install.sh modified"
    );
    if have_tool("systemd-analyze") && r.join("usr/lib/systemd/system").is_dir() {
        verify_unit(r, &r.join("etc/systemd/system/promptwall.service"));
    }

    // Again: idempotent, and the CA is kept, not regenerated.
    sh(&script, &["--root", root_arg, "--bin", bin.to_str().unwrap()]).expect_success("install.sh again");
    assert_eq!(
        fs::read_to_string(r.join("var/lib/promptwall/ca/ca.pem")).unwrap(),
        ca_pem,
        "CA kept on reinstall"
    );
    assert_eq!(snapshot(r).len(), after.len(), "a second install adds nothing");

    // Uninstall keeps config, CA and group; purge leaves the tree as it was.
    sh(&workspace_root().join("deploy/uninstall.sh"), &["--root", root_arg]).expect_success("uninstall.sh");
    for gone in [
        "usr/bin/promptwall",
        "etc/systemd/system/promptwall.service",
        "etc/profile.d/promptwall.sh",
        "usr/local/share/ca-certificates/promptwall-org-ca.crt",
        "etc/environment.d",
    ] {
        assert!(!r.join(gone).exists(), "uninstall left {gone}");
    }
    assert_eq!(fs::read_to_string(r.join("etc/environment")).unwrap(), "LANG=C.UTF-8\n");
    assert!(r.join("var/lib/promptwall/ca/ca.key").exists() && group_id(r, "promptwall").is_some());
    sh(
        &workspace_root().join("deploy/uninstall.sh"),
        &["--root", root_arg, "--purge"],
    )
    .expect_success("uninstall --purge");
    let restored: BTreeMap<_, _> = snapshot(r).into_iter().filter(|(p, _)| !ignore(p)).collect();
    let diff: Vec<_> = restored
        .keys()
        .chain(before.keys())
        .filter(|p| restored.get(*p) != before.get(*p))
        .collect();
    assert!(
        diff.is_empty(),
        "purge did not restore the scratch root; differing paths: {diff:?}"
    );
}

#[test]
fn install_sh_imports_an_org_issued_ca() {
    if !have_root("install.sh --ca-cert") || !have_tool("groupadd") {
        return;
    }
    // The org's CA, made elsewhere (here: by promptwall in another directory).
    let org = tempfile::tempdir().unwrap();
    let cfg = org.path().join("config.toml");
    fs::write(&cfg, format!("[ca]\ndir = \"{}\"\n", org.path().join("ca").display())).unwrap();
    let mut init = Command::new(promptwall_bin());
    init.arg("--config")
        .arg(&cfg)
        .args(["ca", "init", "--common-name", "Example Corp fleet CA"]);
    run_bounded(&mut init, STEP_TIMEOUT).expect_success("ca init (org CA)");
    let root = scratch_root();
    let r = root.path();
    let (cert, key) = (org.path().join("ca/ca.pem"), org.path().join("ca/ca.key"));
    sh(
        &workspace_root().join("deploy/install.sh"),
        &[
            "--root",
            r.to_str().unwrap(),
            "--bin",
            promptwall_bin().to_str().unwrap(),
            "--ca-cert",
            cert.to_str().unwrap(),
            "--ca-key",
            key.to_str().unwrap(),
        ],
    )
    .expect_success("install.sh --ca-cert --ca-key");
    assert!(!key.exists(), "the org key must not stay where it was handed over");
    assert_eq!(
        fs::read(r.join("var/lib/promptwall/ca/ca.pem")).unwrap(),
        fs::read(&cert).unwrap()
    );
    let anchor = fs::read_to_string(r.join("usr/local/share/ca-certificates/promptwall-org-ca.crt")).unwrap();
    assert!(fs::read_to_string(&cert).unwrap().contains(anchor.trim()));
    sh(
        &workspace_root().join("deploy/uninstall.sh"),
        &["--root", r.to_str().unwrap(), "--purge"],
    )
    .expect_success("purge");
}

/// `dpkg-deb -c` line: (mode string, owner/group, path).
fn deb_listing(deb: &Path) -> BTreeMap<String, (String, String)> {
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("-c").arg(deb);
    let out = run_bounded(&mut cmd, STEP_TIMEOUT);
    out.expect_success("dpkg-deb -c");
    out.stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[5].trim_start_matches("./").trim_end_matches('/').to_string(),
                (f[0].to_string(), f[1].to_string()),
            )
        })
        .collect()
}

#[test]
fn debian_package_contents_and_scripts() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let built = sh(
        &workspace_root().join("deploy/debian/build-deb.sh"),
        &[
            "--bin",
            promptwall_bin().to_str().unwrap(),
            "--version",
            "0.1.0",
            "--out",
            out_dir.path().to_str().unwrap(),
            "--compress",
            "none",
        ],
    );
    built.expect_success("build-deb.sh");
    let deb = PathBuf::from(built.stdout.lines().last().unwrap().trim());
    assert!(deb.is_file(), "{}", deb.display());

    let listing = deb_listing(&deb);
    let expected = [
        ("", "drwxr-xr-x"),
        ("usr/bin/promptwall", "-rwxr-xr-x"),
        ("usr/lib/systemd/system/promptwall.service", "-rw-r--r--"),
        ("etc/promptwall", "drwxr-x---"),
        ("etc/promptwall/config.d", "drwxr-x---"),
        ("etc/promptwall/config.toml", "-rw-r-----"),
        ("usr/share/doc/promptwall/config.example.toml", "-rw-r--r--"),
        ("usr/share/doc/promptwall/copyright", "-rw-r--r--"),
    ];
    for (path, mode) in expected {
        let (m, owner) = listing
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the .deb: {listing:#?}"));
        assert_eq!((m.as_str(), owner.as_str()), (mode, "root/root"), "{path}");
    }
    let files: BTreeSet<&str> = listing
        .iter()
        .filter(|(_, (m, _))| !m.starts_with('d'))
        .map(|(p, _)| p.as_str())
        .collect();
    let expected_files: BTreeSet<&str> = expected
        .iter()
        .filter(|(_, m)| !m.starts_with('d'))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(files, expected_files, "files in the .deb");

    let mut info = Command::new("dpkg-deb");
    info.arg("-I").arg(&deb);
    let info = run_bounded(&mut info, STEP_TIMEOUT);
    info.expect_success("dpkg-deb -I");
    for needle in [
        "Package: promptwall",
        "Version: 0.1.0",
        "Depends: libc6 (>= 2.31), ca-certificates, passwd",
        "postinst",
        "prerm",
        "postrm",
        "conffiles",
    ] {
        assert!(
            info.stdout.contains(needle),
            "dpkg-deb -I lacks {needle}:\n{}",
            info.stdout
        );
    }

    // Control files: scripts executable and valid sh; the config is a conffile.
    let raw = tempfile::tempdir().unwrap();
    let mut extract = Command::new("dpkg-deb");
    extract.arg("-R").arg(&deb).arg(raw.path());
    run_bounded(&mut extract, STEP_TIMEOUT).expect_success("dpkg-deb -R");
    assert_eq!(
        fs::read_to_string(raw.path().join("DEBIAN/conffiles")).unwrap(),
        "/etc/promptwall/config.toml\n"
    );
    for s in ["postinst", "prerm", "postrm"] {
        let p = raw.path().join("DEBIAN").join(s);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o755, "{s}");
        let mut check = Command::new("sh");
        check.arg("-n").arg(&p);
        run_bounded(&mut check, STEP_TIMEOUT).expect_success(&format!("sh -n {s}"));
    }
    let postinst = fs::read_to_string(raw.path().join("DEBIAN/postinst")).unwrap();
    for step in [
        "groupadd --system promptwall",
        "promptwall ca import",
        "promptwall ca init",
        "promptwall ca install",
        "systemctl enable promptwall.service",
    ] {
        assert!(postinst.contains(step), "postinst lacks {step}");
    }
    assert!(fs::read_to_string(raw.path().join("DEBIAN/prerm"))
        .unwrap()
        .contains("promptwall ca uninstall"));
    let postrm = fs::read_to_string(raw.path().join("DEBIAN/postrm")).unwrap();
    for step in ["rm -rf /var/lib/promptwall /etc/promptwall", "groupdel promptwall"] {
        assert!(postrm.contains(step), "postrm lacks {step}");
    }
    // The packaged binary runs, and the packaged config is the documented default.
    let mut version = Command::new(raw.path().join("usr/bin/promptwall"));
    version.arg("--version");
    assert!(run_bounded(&mut version, STEP_TIMEOUT)
        .stdout
        .starts_with("promptwall "));
    assert_eq!(
        fs::read(raw.path().join("etc/promptwall/config.toml")).unwrap(),
        fs::read(workspace_root().join("deploy/config.example.toml")).unwrap()
    );
    if have_tool("systemd-analyze") && Path::new("/usr/lib/systemd/system").is_dir() {
        fs::remove_dir_all(raw.path().join("DEBIAN")).unwrap();
        let units = raw.path().join("usr/lib/systemd/system");
        let mut cp = Command::new("sh");
        cp.arg("-c")
            .arg(format!("cp -an /usr/lib/systemd/system/. '{}'", units.display()));
        run_bounded(&mut cp, STEP_TIMEOUT).expect_success("copy the systemd unit tree");
        verify_unit(raw.path(), &units.join("promptwall.service"));
    }
}

/// Rows of a `doctor --json` document by id.
fn doctor_rows(doc: &Value) -> BTreeMap<String, (String, String)> {
    doc["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("doctor --json has no checks: {doc}"))
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (
                    c["outcome"].as_str().unwrap().to_string(),
                    c["detail"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

/// In a private mount + network namespace, over a private copy of /etc and
/// of the local anchors directory (so the real update-ca-certificates runs
/// and the host stays untouched): `ca install` writes trust and the
/// machine-wide environment, and doctor finds curl, Python (ssl, requests
/// with certifi in a venv, httpx), Node and rustls all trusting the agent's
/// TLS listener; after `ca uninstall` every one of them fails.
#[test]
fn doctor_sees_trust_through_the_machine_environment_only() {
    if !Namespace::available() {
        assert!(!required(), "doctor test needs root and unshare");
        eprintln!("SKIPPED: doctor test needs root and unshare");
        return;
    }
    let Some(clients) = TestClients::find() else { return };
    if !have_tool("update-ca-certificates") || !have_tool("node") || !have_tool("curl") {
        return;
    }
    let mut ns = Namespace::new();
    ns.env("PW", promptwall_bin().display().to_string())
        .env("PY", clients.python().display().to_string());
    let script = r#"
cp -a /etc "$NS_DIR/etc"
mount --bind "$NS_DIR/etc" /etc
mount --bind "$NS_DIR/hosts" /etc/hosts
mkdir "$NS_DIR/anchors"
mount --bind "$NS_DIR/anchors" /usr/local/share/ca-certificates
cat > "$NS_DIR/config.toml" <<EOF
[listen]
explicit = "127.0.0.1:0"
explicit_tls = "127.0.0.1:0"
admin_socket = "$NS_DIR/admin.sock"
[ca]
dir = "$NS_DIR/ca"
[audit]
url = "sqlite://$NS_DIR/audit.db"
[intercept]
enabled = false
[upstream.resolve]
"api.anthropic.com" = "127.0.0.1:9"
EOF
export PROMPTWALL_CONFIG="$NS_DIR/config.toml"
"$PW" ca init >/dev/null
"$PW" ca install
"$PW" up --no-intercept > "$NS_DIR/up.out" 2> "$NS_DIR/up.log" &
AGENT=$!
trap 'kill $AGENT 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do [ -s "$NS_DIR/up.out" ] && break; sleep 0.1; done
[ -s "$NS_DIR/up.out" ] || { cat "$NS_DIR/up.log" >&2; exit 1; }
"$PW" doctor --json --python "$PY" > "$NS_DIR/trusted.json" || true
"$PW" ca uninstall
"$PW" doctor --json --python "$PY" > "$NS_DIR/untrusted.json" || true
"#;
    let out = ns.run(script, Duration::from_secs(240));
    out.expect_success("doctor namespace script");
    let read = |name: &str| -> Value {
        let text = fs::read_to_string(ns.dir().join(name)).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {text}\n{}", out.stderr))
    };
    let trusted = doctor_rows(&read("trusted.json"));
    let untrusted = doctor_rows(&read("untrusted.json"));
    eprintln!("with trust: {trusted:#?}\nwithout: {untrusted:#?}");
    let tls = [
        "tls_curl",
        "tls_python_ssl",
        "tls_python_requests",
        "tls_python_httpx",
        "tls_node",
        "tls_rustls",
    ];
    for id in tls
        .iter()
        .chain(&["ca", "system_trust", "machine_env", "agent", "cgroup2"])
    {
        assert_eq!(trusted[*id].0, "pass", "{id} with trust installed: {trusted:#?}");
    }
    assert!(
        trusted["tls_python_requests"]
            .1
            .contains("/etc/ssl/certs/ca-certificates.crt"),
        "{trusted:#?}"
    );
    assert_eq!(
        trusted["ebpf_attach"].0, "pass",
        "eBPF attach to a throwaway cgroup: {trusted:#?}"
    );
    for id in tls.iter().chain(&["system_trust", "machine_env"]) {
        assert_eq!(untrusted[*id].0, "fail", "{id} after ca uninstall: {untrusted:#?}");
    }
    assert_eq!(untrusted["ca"].0, "pass");
    assert!(read("untrusted.json")["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["outcome"] != "fail" || c["fix"].is_string()));
    assert_eq!(read("untrusted.json")["ok"], false);
    assert!(read("trusted.json")["machine_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

/// The issue's end-to-end promise: after `promptwall ca install`, curl,
/// Python `requests` (certifi in a venv), Node's fetch and a rustls client,
/// each started like a fresh login (empty environment + /etc/environment
/// only) inside a cgroup the agent's eBPF redirect is attached to, reach the
/// fake provider through transparent interception. After `ca uninstall`
/// every one of them refuses the agent's certificate.
#[test]
fn installed_trust_carries_real_clients_through_transparent_interception() {
    if !Namespace::available() {
        assert!(!required(), "transparent install test needs root and unshare");
        eprintln!("SKIPPED: transparent install test needs root and unshare");
        return;
    }
    let Some(clients) = TestClients::find() else { return };
    if !have_tool("update-ca-certificates") || !have_tool("node") || !have_tool("curl") || !have_tool("findmnt") {
        return;
    }
    let cgroup = TestCgroup::create("install");
    let mut ns = Namespace::new();
    ns.env("PW", promptwall_bin().display().to_string())
        .env("PY", clients.python().display().to_string())
        .env(
            "FAKE_BIN",
            promptwall_e2e::paths::fake_provider_bin().display().to_string(),
        )
        .env("CG", cgroup.path().display().to_string());
    let script = r#"
cp -a /etc "$NS_DIR/etc"
# Providers at 127.0.0.2, so only their connections match the redirect.
printf '127.0.0.1 localhost\n127.0.0.2 api.anthropic.com api.openai.com chatgpt.com ab.chatgpt.com\n' > "$NS_DIR/etc/hosts"
mount --bind "$NS_DIR/etc" /etc
mkdir "$NS_DIR/anchors"
mount --bind "$NS_DIR/anchors" /usr/local/share/ca-certificates
AGENT= FAKE=
cleanup() {
    [ -z "$AGENT" ] || kill "$AGENT" 2>/dev/null || true
    [ -z "$FAKE" ] || kill "$FAKE" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
"$FAKE_BIN" --bind 127.0.0.2:443 --ca-dir "$NS_DIR/fakeca" --log "$NS_DIR/fake.jsonl" > "$NS_DIR/fake.ready" &
FAKE=$!
for _ in $(seq 1 200); do [ -s "$NS_DIR/fake.ready" ] && break; sleep 0.05; done
cat > "$NS_DIR/config.toml" <<EOF
[listen]
explicit = "127.0.0.1:0"
transparent = "127.0.0.1:15443"
admin_socket = "$NS_DIR/admin.sock"
[ca]
dir = "$NS_DIR/ca"
[audit]
url = "sqlite://$NS_DIR/audit.db"
[upstream]
extra_roots = ["$NS_DIR/fakeca/ca.pem"]
[upstream.resolve]
"api.anthropic.com" = "127.0.0.2:443"
[intercept]
enabled = true
mode = "ebpf"
cgroup = "$CG"
addresses = ["127.0.0.2/32"]
resolve_interval_secs = 0
EOF
export PROMPTWALL_CONFIG="$NS_DIR/config.toml"
"$PW" ca init >/dev/null
"$PW" ca install
"$PW" up > "$NS_DIR/up.out" 2> "$NS_DIR/up.log" &
AGENT=$!
for _ in $(seq 1 300); do [ -s "$NS_DIR/up.out" ] && break; sleep 0.1; done
[ -s "$NS_DIR/up.out" ] || { cat "$NS_DIR/up.log" >&2; exit 1; }

# A fresh login: empty environment, then /etc/environment (what pam_env
# reads), inside the intercepted cgroup.
login() {
    env -i PATH="$PATH" HOME="$NS_DIR" sh -c 'echo $$ > "$0/cgroup.procs"; set -a; . /etc/environment; set +a; exec "$@"' "$CG" "$@"
}
BODY='{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hello from CLIENT"}]}'
PYCODE='import requests, sys
r = requests.post("https://api.anthropic.com/v1/messages", data=sys.argv[1], timeout=20,
    headers={"content-type": "application/json", "x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"})
print(r.status_code, r.text)
r.raise_for_status()'
JSCODE='fetch("https://api.anthropic.com/v1/messages", {method: "POST", body: process.argv[1],
  headers: {"content-type": "application/json", "x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}})
  .then(async (r) => { console.log(r.status, await r.text()); process.exit(r.ok ? 0 : 1); })
  .catch((e) => { console.error(String(e.cause || e)); process.exit(1); });'
run_clients() {
    set +e
    login curl -sS --fail --max-time 20 https://api.anthropic.com/v1/messages -H 'content-type: application/json' \
        -H 'x-api-key: sk-ant-test' -H 'anthropic-version: 2023-06-01' -d "${BODY/CLIENT/curl-$1}" > "$NS_DIR/$1.curl" 2>&1
    echo $? > "$NS_DIR/$1.curl.rc"
    login "$PY" -c "$PYCODE" "${BODY/CLIENT/requests-$1}" > "$NS_DIR/$1.requests" 2>&1
    echo $? > "$NS_DIR/$1.requests.rc"
    login node -e "$JSCODE" "${BODY/CLIENT/node-$1}" > "$NS_DIR/$1.node" 2>&1
    echo $? > "$NS_DIR/$1.node.rc"
    login "$PW" doctor --rustls-probe 127.0.0.2:443 --server-name api.anthropic.com > "$NS_DIR/$1.rustls" 2>&1
    echo $? > "$NS_DIR/$1.rustls.rc"
    set -e
}
run_clients trusted
"$PW" audit query --json > "$NS_DIR/audit.jsonl"
"$PW" ca uninstall
run_clients untrusted
"#;
    let out = ns.run(script, Duration::from_secs(300));
    out.expect_success("transparent install namespace script");
    let dir = ns.dir();
    let result = |label: &str, client: &str| -> (i32, String) {
        let rc = fs::read_to_string(dir.join(format!("{label}.{client}.rc")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (rc, fs::read_to_string(dir.join(format!("{label}.{client}"))).unwrap())
    };
    let log = || fs::read_to_string(dir.join("up.log")).unwrap_or_default();
    for client in ["curl", "requests", "node"] {
        let (rc, text) = result("trusted", client);
        assert_eq!(
            rc,
            0,
            "{client} with the installed trust failed:\n{text}\nagent log:\n{}",
            log()
        );
        assert!(
            text.contains(&format!("You said: hello from {client}-trusted")),
            "{client} answer: {text}"
        );
    }
    let (rc, text) = result("trusted", "rustls");
    assert_eq!(rc, 0, "rustls client with the installed trust failed:\n{text}");
    let audit: Vec<Value> = fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let transparent = audit
        .iter()
        .filter(|r| r["listener"] == "transparent" && r["path"] == "/v1/messages")
        .count();
    assert_eq!(
        transparent, 3,
        "curl, requests and node each audited once via the transparent listener: {audit:#?}"
    );

    for client in ["curl", "requests", "node", "rustls"] {
        let (rc, text) = result("untrusted", client);
        assert_ne!(rc, 0, "{client} still succeeded after ca uninstall:\n{text}");
        let lower = text.to_lowercase();
        assert!(
            [
                "certificate",
                "unknownissuer",
                "unable to verify",
                "self-signed",
                "issuer"
            ]
            .iter()
            .any(|w| lower.contains(w)),
            "{client} failed for a reason other than trust:\n{text}"
        );
    }
    let fake_log = fs::read_to_string(dir.join("fake.jsonl")).unwrap_or_default();
    assert!(
        !fake_log.contains("untrusted"),
        "no request may reach the provider without trust: {fake_log}"
    );
}

/// The .deb for real: `dpkg -i`, `dpkg -r`, `dpkg --purge` inside a private
/// mount namespace whose /etc, /usr and /var are overlays on a tmpfs (the
/// host's files are only read) and whose /run/systemd is hidden (no host
/// systemd is contacted). The maintainer scripts create the group and the CA,
/// put it in the real bundle (update-ca-certificates) and the machine-wide
/// environment, enable the unit; remove withdraws trust; purge leaves the
/// system as it was. A second round imports an org CA dropped beforehand.
#[test]
fn debian_package_installs_removes_and_purges() {
    if !Namespace::available() {
        assert!(!required(), "dpkg test needs root and unshare");
        eprintln!("SKIPPED: dpkg test needs root and unshare");
        return;
    }
    if !have_tool("dpkg") || !have_tool("update-ca-certificates") || !have_tool("groupadd") {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let built = sh(
        &workspace_root().join("deploy/debian/build-deb.sh"),
        &[
            "--bin",
            promptwall_bin().to_str().unwrap(),
            "--version",
            "0.1.0",
            "--out",
            out_dir.path().to_str().unwrap(),
            "--compress",
            "none",
        ],
    );
    built.expect_success("build-deb.sh");
    let deb = built.stdout.lines().last().unwrap().trim().to_string();
    let mut ns = Namespace::new();
    ns.env("DEB", deb)
        .env("PW_FOR_ORG_CA", promptwall_bin().display().to_string());
    let script = r#"
fail() { echo "FAIL: $*" >&2; exit 1; }
T="$NS_DIR/overlay"
mkdir "$T"
mount -t tmpfs tmpfs "$T"
for d in etc usr var; do
    mkdir "$T/$d.up" "$T/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/$d.up,workdir=$T/$d.work" "/$d"
done
mount --bind "$NS_DIR/hosts" /etc/hosts
[ -d /run/systemd ] && mount -t tmpfs tmpfs /run/systemd
export SYSTEMD_OFFLINE=1
bundle_certs() { grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt; }
in_bundle() { grep -qF "$(sed -n '2p' "$1")" /etc/ssl/certs/ca-certificates.crt; }
ENV_BEFORE=$(cat /etc/environment 2>/dev/null || true)
GROUP_BEFORE=$(cat /etc/group)
N_BEFORE=$(bundle_certs)
getent group promptwall >/dev/null && fail "the host already has a promptwall group"

dpkg -i "$DEB" > "$NS_DIR/install.log" 2>&1 || { cat "$NS_DIR/install.log" >&2; fail "dpkg -i"; }
getent group promptwall >/dev/null || fail "postinst created no promptwall group"
[ "$(stat -c '%a %U %G' /etc/promptwall)" = "750 root promptwall" ] || fail "/etc/promptwall: $(stat -c '%a %U %G' /etc/promptwall)"
[ "$(stat -c '%a %U %G' /etc/promptwall/config.toml)" = "640 root promptwall" ] || fail "config.toml mode/owner"
[ "$(stat -c '%a %U %G' /var/lib/promptwall)" = "750 root promptwall" ] || fail "/var/lib/promptwall mode/owner"
[ "$(stat -c '%a' /var/lib/promptwall/ca/ca.key)" = 600 ] || fail "CA key mode"
ANCHOR=/usr/local/share/ca-certificates/promptwall-org-ca.crt
[ -f "$ANCHOR" ] || fail "no anchor"
in_bundle "$ANCHOR" || fail "the org CA is not in the refreshed bundle"
[ "$(bundle_certs)" = $((N_BEFORE + 1)) ] || fail "bundle should have grown by one certificate"
grep -qx 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' /etc/environment || fail "no SSL_CERT_FILE in /etc/environment"
grep -qx 'NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/promptwall-org-ca.crt' /etc/environment.d/90-promptwall.conf || fail "no environment.d drop-in"
[ -f /etc/profile.d/promptwall.sh ] || fail "no profile.d script"
[ -L /etc/systemd/system/multi-user.target.wants/promptwall.service ] || fail "unit not enabled"
promptwall --version >/dev/null || fail "promptwall not on PATH"
FP=$(promptwall ca status --json | sed 's/.*"fingerprint_sha256":"\([^"]*\)".*/\1/')

dpkg -i "$DEB" > "$NS_DIR/reinstall.log" 2>&1 || { cat "$NS_DIR/reinstall.log" >&2; fail "reinstall"; }
[ "$(promptwall ca status --json | sed 's/.*"fingerprint_sha256":"\([^"]*\)".*/\1/')" = "$FP" ] || fail "reinstall replaced the CA"
[ "$(bundle_certs)" = $((N_BEFORE + 1)) ] || fail "reinstall duplicated the anchor"

dpkg -r promptwall > "$NS_DIR/remove.log" 2>&1 || { cat "$NS_DIR/remove.log" >&2; fail "dpkg -r"; }
[ -e /usr/bin/promptwall ] && fail "remove left the binary"
[ -e "$ANCHOR" ] && fail "remove left the anchor"
[ "$(bundle_certs)" = "$N_BEFORE" ] || fail "remove left the CA in the bundle"
[ "$(cat /etc/environment 2>/dev/null || true)" = "$ENV_BEFORE" ] || fail "remove did not restore /etc/environment"
[ -e /etc/profile.d/promptwall.sh ] && fail "remove left profile.d"
[ -e /etc/environment.d/90-promptwall.conf ] && fail "remove left environment.d"
[ -L /etc/systemd/system/multi-user.target.wants/promptwall.service ] && fail "remove left the unit enabled"
[ -f /var/lib/promptwall/ca/ca.key ] || fail "remove (not purge) must keep the CA"
[ -f /etc/promptwall/config.toml ] || fail "remove (not purge) must keep the conffile"

dpkg --purge promptwall > "$NS_DIR/purge.log" 2>&1 || { cat "$NS_DIR/purge.log" >&2; fail "dpkg --purge"; }
[ -e /var/lib/promptwall ] && fail "purge left /var/lib/promptwall"
[ -e /etc/promptwall ] && fail "purge left /etc/promptwall"
getent group promptwall >/dev/null && fail "purge left the group"
[ "$(cat /etc/group)" = "$GROUP_BEFORE" ] || fail "purge did not restore /etc/group"

# Fleet: an org CA dropped before install is imported, not regenerated.
ORG="$NS_DIR/org"
printf '[ca]\ndir = "%s"\n' "$ORG" > "$NS_DIR/org.toml"
"$PW_FOR_ORG_CA" --config "$NS_DIR/org.toml" ca init --common-name "Example fleet CA" >/dev/null
install -d -m 0750 /etc/promptwall
install -m 0644 "$ORG/ca.pem" /etc/promptwall/org-ca.pem
install -m 0600 "$ORG/ca.key" /etc/promptwall/org-ca.key
dpkg -i "$DEB" > "$NS_DIR/fleet.log" 2>&1 || { cat "$NS_DIR/fleet.log" >&2; fail "fleet install"; }
cmp -s "$ORG/ca.pem" /var/lib/promptwall/ca/ca.pem || fail "postinst did not import the dropped org CA"
[ -e /etc/promptwall/org-ca.key ] && fail "postinst left the dropped org key in /etc/promptwall"
promptwall ca status --json | grep -q 'Example fleet CA' || fail "CA status does not name the org CA"
dpkg --purge promptwall > "$NS_DIR/purge2.log" 2>&1 || { cat "$NS_DIR/purge2.log" >&2; fail "second purge"; }
[ "$(bundle_certs)" = "$N_BEFORE" ] || fail "second purge left the CA in the bundle"
echo "dpkg round trip ok"
"#;
    let out = ns.run(script, Duration::from_secs(300));
    out.expect_success("dpkg install/remove/purge in an overlay namespace");
    assert!(out.stdout.contains("dpkg round trip ok"), "{}", out.stdout);
}

/// Learned passthrough: a tool that keeps rejecting the org CA's leaf (here
/// curl, with the org CA deliberately not installed, while the provider's
/// own root is in the system store as a public root would be) is intercepted
/// and refused `learn_passthrough_after` times, then spliced to the provider
/// undecrypted and succeeds; status, doctor and the audit log name it, and
/// another tool (node) is not affected.
#[test]
fn learned_passthrough_after_repeated_certificate_rejections() {
    if !Namespace::available() {
        assert!(!required(), "learned passthrough test needs root and unshare");
        eprintln!("SKIPPED: learned passthrough test needs root and unshare");
        return;
    }
    if !have_tool("update-ca-certificates") || !have_tool("node") || !have_tool("curl") || !have_tool("findmnt") {
        return;
    }
    let cgroup = TestCgroup::create("learn");
    let mut ns = Namespace::new();
    ns.env("PW", promptwall_bin().display().to_string())
        .env(
            "FAKE_BIN",
            promptwall_e2e::paths::fake_provider_bin().display().to_string(),
        )
        .env("CG", cgroup.path().display().to_string());
    let script = r#"
cp -a /etc "$NS_DIR/etc"
printf '127.0.0.1 localhost\n127.0.0.2 api.anthropic.com api.openai.com chatgpt.com ab.chatgpt.com\n' > "$NS_DIR/etc/hosts"
mount --bind "$NS_DIR/etc" /etc
mkdir "$NS_DIR/anchors"
mount --bind "$NS_DIR/anchors" /usr/local/share/ca-certificates
AGENT= FAKE=
cleanup() {
    [ -z "$AGENT" ] || kill "$AGENT" 2>/dev/null || true
    [ -z "$FAKE" ] || kill "$FAKE" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
"$FAKE_BIN" --bind 127.0.0.2:443 --ca-dir "$NS_DIR/fakeca" --log "$NS_DIR/fake.jsonl" > "$NS_DIR/fake.ready" &
FAKE=$!
for _ in $(seq 1 200); do [ -s "$NS_DIR/fake.ready" ] && break; sleep 0.05; done
# The provider's root is public: in the system store. The org CA is not.
cp "$NS_DIR/fakeca/ca.pem" /usr/local/share/ca-certificates/public-provider-root.crt
update-ca-certificates >/dev/null 2>&1
cat > "$NS_DIR/config.toml" <<EOF
[listen]
explicit = "127.0.0.1:0"
transparent = "127.0.0.1:15443"
admin_socket = "$NS_DIR/admin.sock"
[ca]
dir = "$NS_DIR/ca"
[audit]
url = "sqlite://$NS_DIR/audit.db"
[upstream]
extra_roots = ["$NS_DIR/fakeca/ca.pem"]
[upstream.resolve]
"api.anthropic.com" = "127.0.0.2:443"
[intercept]
enabled = true
cgroup = "$CG"
addresses = ["127.0.0.2/32"]
resolve_interval_secs = 0
learn_passthrough_after = 2
EOF
export PROMPTWALL_CONFIG="$NS_DIR/config.toml"
"$PW" ca init >/dev/null
"$PW" up > "$NS_DIR/up.out" 2> "$NS_DIR/up.log" &
AGENT=$!
for _ in $(seq 1 300); do [ -s "$NS_DIR/up.out" ] && break; sleep 0.1; done
[ -s "$NS_DIR/up.out" ] || { cat "$NS_DIR/up.log" >&2; exit 1; }
in_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$CG" "$@"; }
set +e
for i in 1 2 3; do
    in_cgroup env -i PATH="$PATH" curl -sS --max-time 20 https://api.anthropic.com/v1/messages -H 'content-type: application/json' \
        -H 'x-api-key: sk-ant-test' -H 'anthropic-version: 2023-06-01' \
        -d "{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"attempt $i\"}]}" > "$NS_DIR/curl.$i" 2>&1
    echo $? > "$NS_DIR/curl.$i.rc"
done
in_cgroup env -i PATH="$PATH" node -e 'fetch("https://api.anthropic.com/v1/models").then(() => process.exit(0), (e) => { console.error(String(e.cause || e)); process.exit(1); })' > "$NS_DIR/node" 2>&1
echo $? > "$NS_DIR/node.rc"
set -e
"$PW" status --json > "$NS_DIR/status.json"
"$PW" doctor --json --no-ebpf > "$NS_DIR/doctor.json" || true
"$PW" audit query --json > "$NS_DIR/audit.jsonl"
"#;
    let out = ns.run(script, Duration::from_secs(300));
    out.expect_success("learned passthrough namespace script");
    let dir = ns.dir();
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    let rc = |name: &str| -> i32 { read(&format!("{name}.rc")).trim().parse().unwrap() };
    let log = || fs::read_to_string(dir.join("up.log")).unwrap_or_default();
    for i in 1..=2 {
        assert_eq!(
            rc(&format!("curl.{i}")),
            60,
            "attempt {i} must reject the org CA's leaf: {}",
            read(&format!("curl.{i}"))
        );
    }
    assert_eq!(
        rc("curl.3"),
        0,
        "attempt 3 must pass through: {}\nagent log:\n{}",
        read("curl.3"),
        log()
    );
    assert!(read("curl.3").contains("You said: attempt 3"), "{}", read("curl.3"));
    assert_ne!(
        rc("node"),
        0,
        "node rejected the leaf once; it must still be intercepted: {}",
        read("node")
    );

    let status: Value = serde_json::from_str(&read("status.json")).unwrap();
    let learned = status["learned_passthrough"]
        .as_array()
        .expect("status lists learned pairs");
    assert_eq!(learned.len(), 1, "{learned:#?}");
    assert!(learned[0]["exe"].as_str().unwrap().ends_with("/curl"), "{learned:#?}");
    assert_eq!(
        (learned[0]["server_name"].as_str(), learned[0]["failures"].as_u64()),
        (Some("api.anthropic.com"), Some(2))
    );
    assert_eq!(learned[0]["passthrough"], true);

    let doctor = doctor_rows(&serde_json::from_str(&read("doctor.json")).unwrap());
    assert_eq!(doctor["learned_passthrough"].0, "warn", "{doctor:#?}");
    assert!(doctor["learned_passthrough"].1.contains("UNINSPECTED"), "{doctor:#?}");

    let rows: Vec<Value> = read("audit.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let passthrough: Vec<&Value> = rows.iter().filter(|r| r["verdict"] == "passthrough").collect();
    assert_eq!(passthrough.len(), 1, "one spliced connection audited: {rows:#?}");
    let row = passthrough[0];
    assert!(
        row["error"].as_str().unwrap_or("").contains("learned passthrough"),
        "{row:#?}"
    );
    assert!(row["exe"].as_str().unwrap_or("").ends_with("/curl"), "{row:#?}");
    let fake = read("fake.jsonl");
    assert!(
        fake.contains("attempt 3") && !fake.contains("attempt 1") && !fake.contains("attempt 2"),
        "{fake}"
    );
}

/// install.sh on a live root (no --root): real groupadd, real
/// update-ca-certificates, the installed config. Run inside a private mount
/// namespace whose /etc, /usr and /var are tmpfs-backed overlays, so the
/// host is only read. `uninstall.sh --purge` must restore what it changed.
#[test]
fn install_sh_on_a_live_root_in_an_overlay() {
    if !Namespace::available() {
        assert!(!required(), "live install.sh test needs root and unshare");
        eprintln!("SKIPPED: live install.sh test needs root and unshare");
        return;
    }
    if !have_tool("update-ca-certificates") || !have_tool("groupadd") {
        return;
    }
    let mut ns = Namespace::new();
    ns.env("PW", promptwall_bin().display().to_string())
        .env("DEPLOY", workspace_root().join("deploy").display().to_string());
    let script = r#"
fail() { echo "FAIL: $*" >&2; exit 1; }
T="$NS_DIR/overlay"
mkdir "$T"
mount -t tmpfs tmpfs "$T"
for d in etc usr var; do
    mkdir "$T/$d.up" "$T/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/$d.up,workdir=$T/$d.work" "/$d"
done
mount --bind "$NS_DIR/hosts" /etc/hosts
[ -d /run/systemd ] && mount -t tmpfs tmpfs /run/systemd
bundle_certs() { grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt; }
N_BEFORE=$(bundle_certs)
ENV_BEFORE=$(cat /etc/environment 2>/dev/null || echo absent)
GROUP_BEFORE=$(cat /etc/group)
sh "$DEPLOY/install.sh" --bin "$PW" --no-start > "$NS_DIR/install.log" 2>&1 || { cat "$NS_DIR/install.log" >&2; fail "install.sh"; }
getent group promptwall >/dev/null || fail "no promptwall group"
[ "$(stat -c '%a %G' /etc/promptwall/config.toml)" = "640 promptwall" ] || fail "config mode/group"
[ "$(stat -c '%a' /var/lib/promptwall/ca)" = 700 ] || fail "CA directory mode"
[ "$(bundle_certs)" = $((N_BEFORE + 1)) ] || fail "the refreshed bundle lacks the org CA"
grep -qx 'REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' /etc/environment || fail "no machine-wide environment"
grep -q 'not started' "$NS_DIR/install.log" || fail "--no-start must not start anything"
sh "$DEPLOY/uninstall.sh" --purge > "$NS_DIR/uninstall.log" 2>&1 || { cat "$NS_DIR/uninstall.log" >&2; fail "uninstall.sh --purge"; }
[ "$(bundle_certs)" = "$N_BEFORE" ] || fail "purge left the CA in the bundle"
[ "$(cat /etc/environment 2>/dev/null || echo absent)" = "$ENV_BEFORE" ] || fail "purge did not restore /etc/environment"
[ "$(cat /etc/group)" = "$GROUP_BEFORE" ] || fail "purge did not restore /etc/group"
for p in /usr/bin/promptwall /etc/systemd/system/promptwall.service /etc/promptwall /var/lib/promptwall \
    /etc/profile.d/promptwall.sh /etc/environment.d/90-promptwall.conf /usr/local/share/ca-certificates/promptwall-org-ca.crt; do
    [ -e "$p" ] && fail "purge left $p"
done
echo "live install round trip ok"
"#;
    let out = ns.run(script, Duration::from_secs(300));
    out.expect_success("install.sh / uninstall.sh --purge on a live root in an overlay");
    assert!(out.stdout.contains("live install round trip ok"), "{}", out.stdout);
}
