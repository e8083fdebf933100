//! The real Debian tool, `update-ca-certificates`, run against the real paths,
//! but inside a private mount namespace with tmpfs over the trust directories,
//! so the machine's own trust store is never touched. Proves that after
//! `install` the stdlib Python default context (system store, no cafile)
//! trusts a minted leaf, and after `uninstall` no longer does.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{have, serve, text};
use promptwall_ca::trust::{self, SystemRefresher, TrustLayout};
use promptwall_ca::LeafMinter;

const INNER: &str = "PROMPTWALL_CA_TEST_IN_NAMESPACE";
const TEST: &str = "install_with_update_ca_certificates_in_a_private_mount_namespace";

#[test]
fn install_with_update_ca_certificates_in_a_private_mount_namespace() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    if unsafe { libc::geteuid() } != 0 || !have("unshare") || !have("update-ca-certificates") {
        eprintln!("NOTICE: needs root, unshare and update-ca-certificates; skipping the system trust-store test");
        return;
    }
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && all.contains("1 passed"),
        "inner run failed:\n{all}"
    );
    assert!(all.contains("INNER-RAN"), "the inner test body must have run:\n{all}");
}

fn mount_tmpfs(path: &str) {
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs", path])
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs on {path}");
}

fn inner() {
    // Private copies of every directory the tool writes.
    mount_tmpfs("/etc/ssl/certs");
    mount_tmpfs("/usr/local/share/ca-certificates");
    let root = Path::new("/");
    assert_eq!(TrustLayout::detect(root).unwrap(), TrustLayout::Debian);

    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    assert!(!ca.status().trust.installed);
    trust::install(root, ca.anchor_der(), &SystemRefresher).expect("install with update-ca-certificates");
    let st = ca.status();
    assert!(st.trust.installed && st.trust.in_bundle, "{st:?}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
        let server = serve(minter.server_config(&[b"http/1.1"])).await;
        let trusted = python_system_store("api.anthropic.com", server.port).await;
        assert!(
            trusted.status.success(),
            "system store should trust the CA: {}",
            text(&trusted)
        );

        trust::uninstall(root, &SystemRefresher).expect("uninstall with update-ca-certificates --fresh");
        assert!(!ca.status().trust.in_bundle);
        let untrusted = python_system_store("api.anthropic.com", server.port).await;
        assert!(
            !untrusted.status.success(),
            "after uninstall the CA must not be trusted: {}",
            text(&untrusted)
        );
    });
    println!("INNER-RAN");
}

/// Python's default context with only the OpenSSL system paths.
async fn python_system_store(sni: &str, port: u16) -> std::process::Output {
    const SCRIPT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname=sys.argv[1]) as tls:
        print("verified", tls.version())
"#;
    let mut cmd = tokio::process::Command::new("python3");
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
        cmd.env_remove(var);
    }
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(sni)
        .arg(port.to_string())
        .output()
        .await
        .unwrap()
}
