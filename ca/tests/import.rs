//! `OrgCa::import` with CAs made by OpenSSL, as an org PKI would hand them out:
//! an intermediate (SEC1 EC key) with its root in the same file, and an RSA root
//! with a PKCS#1 key. Leaves must be served with the intermediate so clients
//! trusting only the org root verify them.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{have, python_ssl, rustls_get, serve, text, write_pem, BODY};
use promptwall_ca::{CaError, LeafMinter, OrgCa};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// root.pem/root.key, int.pem/int.key (SEC1), chain.pem = int + root.
fn make_org_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "30",
            "-subj",
            "/O=Example Org/CN=Example Org Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "int.key"],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/O=Example Org/CN=Example Org promptwall Intermediate",
            "-out",
            "int.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "[v3_int]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\nnameConstraints=critical,permitted;DNS:anthropic.com\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "v3_int",
            "-out",
            "int.pem",
        ],
    );
    let chain =
        std::fs::read_to_string(dir.join("int.pem")).unwrap() + &std::fs::read_to_string(dir.join("root.pem")).unwrap();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_intermediate_serves_its_chain_and_keeps_its_constraints() {
    if !have("openssl") {
        eprintln!("NOTICE: openssl not installed; skipping the import test");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    make_org_pki(tmp.path());
    assert!(
        std::fs::read_to_string(tmp.path().join("int.key"))
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY"),
        "SEC1 key"
    );
    let dir = tmp.path().join("ca");
    let ca = OrgCa::import(&dir, &tmp.path().join("chain.pem"), &tmp.path().join("int.key"), false).unwrap();
    let root_pem = std::fs::read_to_string(tmp.path().join("root.pem")).unwrap();
    assert_eq!(ca.anchor_pem().trim(), root_pem.trim(), "export gives the org root");
    let st = ca.status();
    assert!(!st.self_signed);
    assert_eq!(st.chain_len, 2);
    assert!(st.subject.contains("Intermediate"));
    assert_eq!(st.name_constraints.unwrap().permitted, vec!["anthropic.com"]);

    // Reload from disk, as the daemon does.
    let ca = OrgCa::load(&dir).unwrap();
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    let err = minter.certified_key("api.openai.com").unwrap_err();
    assert!(
        matches!(err, CaError::NameNotPermitted { .. }),
        "intermediate's constraints apply: {err}"
    );
    let leaf = minter.certified_key("api.anthropic.com").unwrap();
    assert_eq!(leaf.cert.len(), 2, "leaf + intermediate, root omitted");
    assert_eq!(&leaf.cert[1], ca.cert_der());

    let server = serve(minter.server_config(&[b"http/1.1"])).await;
    let root_der = ca.anchor_der().clone();
    let body = rustls_get(&[root_der], "api.anthropic.com", server.port)
        .await
        .expect("rustls trusting only the root");
    assert!(body.ends_with(BODY));
    let root_file = write_pem(tmp.path(), "trust.pem", &root_pem);
    if have("curl") {
        let out = common::curl(&root_file, "api.anthropic.com", server.port).await;
        assert!(out.status.success(), "curl: {}", text(&out));
    }
    let out = python_ssl(&root_file, "api.anthropic.com", server.port).await;
    assert!(out.status.success(), "python strict: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_rsa_root_with_pkcs1_key_mints_verifiable_leaves() {
    if !have("openssl") {
        eprintln!("NOTICE: openssl not installed; skipping the import test");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    openssl(tmp.path(), &["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    assert!(
        std::fs::read_to_string(tmp.path().join("rsa.key"))
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY"),
        "PKCS#1 key"
    );
    openssl(
        tmp.path(),
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "rsa.key",
            "-out",
            "rsa.pem",
            "-days",
            "30",
            "-subj",
            "/CN=RSA Org Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let ca = OrgCa::import(
        &tmp.path().join("ca"),
        &tmp.path().join("rsa.pem"),
        &tmp.path().join("rsa.key"),
        false,
    )
    .unwrap();
    assert_eq!(ca.status().key_algorithm, "RSA");
    assert!(ca.status().name_constraints.is_none());
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    let server = serve(minter.server_config(&[b"http/1.1"])).await;
    rustls_get(&[ca.anchor_der().clone()], "api.openai.com", server.port)
        .await
        .expect("RSA-signed leaf verifies");
    let out = python_ssl(
        &write_pem(tmp.path(), "t.pem", &ca.anchor_pem()),
        "api.openai.com",
        server.port,
    )
    .await;
    assert!(out.status.success(), "python strict: {}", text(&out));
}

#[test]
fn import_rejects_wrong_key_non_ca_and_existing_ca() {
    if !have("openssl") {
        eprintln!("NOTICE: openssl not installed; skipping the import test");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    make_org_pki(tmp.path());
    let p = |n: &str| tmp.path().join(n);

    let err = OrgCa::import(&p("ca"), &p("root.pem"), &p("int.key"), false).unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");

    // A leaf (CA:FALSE) with its own key.
    openssl(
        tmp.path(),
        &[
            "req",
            "-x509",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.pem",
            "-days",
            "30",
            "-subj",
            "/CN=leaf",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    let err = OrgCa::import(&p("ca"), &p("leaf.pem"), &p("leaf.key"), false).unwrap_err();
    assert!(matches!(err, CaError::NotCa { .. }), "{err}");
    assert!(!OrgCa::exists(&p("ca")), "failed imports write nothing");

    OrgCa::import(&p("ca"), &p("root.pem"), &p("root.key"), false).unwrap();
    let err = OrgCa::import(&p("ca"), &p("chain.pem"), &p("int.key"), false).unwrap_err();
    assert!(matches!(err, CaError::AlreadyExists { .. }), "{err}");
    OrgCa::import(&p("ca"), &p("chain.pem"), &p("int.key"), true).expect("--force replaces");
    assert!(OrgCa::load(&p("ca")).unwrap().subject().contains("Intermediate"));

    let err = OrgCa::import(&p("ca2"), &p("nonexistent.pem"), &p("int.key"), false).unwrap_err();
    assert!(err.to_string().contains("nonexistent.pem"), "{err}");
}

/// Fleet drop: the org key handed to `import` must not stay where it was
/// dropped; it lives on only in the private CA directory. A failed import
/// keeps it (nothing was copied yet).
#[test]
fn import_moves_the_dropped_key_into_the_ca_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    let org = common::init_constrained(&p("org"));
    let other = common::init_constrained(&p("other"));
    std::fs::create_dir(p("drop")).unwrap();
    std::fs::write(p("drop/org-ca.pem"), org.chain_pem()).unwrap();
    std::fs::copy(OrgCa::key_path(&p("org")), p("drop/org-ca.key")).unwrap();
    std::fs::copy(OrgCa::key_path(&p("other")), p("drop/other.key")).unwrap();

    let err = OrgCa::import_moving_key(&p("ca"), &p("drop/org-ca.pem"), &p("drop/other.key"), false).unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
    assert!(p("drop/other.key").exists(), "a failed import leaves the key alone");

    let ca = OrgCa::import_moving_key(&p("ca"), &p("drop/org-ca.pem"), &p("drop/org-ca.key"), false).unwrap();
    assert!(!p("drop/org-ca.key").exists(), "the dropped key must be gone");
    assert_eq!(ca.cert_der(), org.cert_der());
    let loaded = OrgCa::load(&p("ca")).expect("the CA directory holds the key");
    assert_eq!(loaded.cert_der(), org.cert_der());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(OrgCa::key_path(&p("ca")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(other);

    // Re-importing from the CA directory itself must not delete its own key.
    std::fs::write(p("drop/again.pem"), org.chain_pem()).unwrap();
    OrgCa::import_moving_key(&p("ca"), &p("drop/again.pem"), &OrgCa::key_path(&p("ca")), true).unwrap();
    OrgCa::load(&p("ca")).expect("own key kept");
}
