//! Real TLS on 127.0.0.1 with minted leaves, verified by real clients that trust
//! only the exported CA: rustls/webpki, curl (OpenSSL) and Python `ssl` in
//! strict mode. Also proves the name constraints bind clients, not just the
//! minter: a leaf for a foreign name signed with the CA key directly is rejected.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{curl, have, python_ssl, rustls_get, serve, text, write_pem, BODY};
use promptwall_ca::{LeafMinter, OrgCa};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const ALPN: &[&[u8]] = &[b"http/1.1"];

/// Signs a leaf for `name` with the CA key read from disk, bypassing the minter
/// (what an attacker holding a stolen key could do).
fn forge_leaf(ca_dir: &Path, name: &str, with_aki: bool) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    forge_leaf_for(ca_dir, name, SanType::DnsName(name.try_into().unwrap()), with_aki)
}

fn forge_leaf_for(
    ca_dir: &Path,
    name: &str,
    san: SanType,
    with_aki: bool,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(OrgCa::key_path(ca_dir)).unwrap()).unwrap();
    let ca = OrgCa::load(ca_dir).unwrap();
    let issuer = Issuer::from_ca_cert_der(ca.cert_der(), ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![san];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::hours(1);
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = with_aki;
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_leaf_verifies_with_rustls_curl_and_strict_python() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let exported = write_pem(tmp.path(), "exported.pem", &ca.anchor_pem());
    let minter = LeafMinter::new(&ca, Duration::from_secs(24 * 3600)).unwrap();
    let server = serve(minter.server_config(ALPN)).await;

    let body = rustls_get(&[ca.anchor_der().clone()], "api.anthropic.com", server.port)
        .await
        .expect("rustls verifies");
    assert!(body.ends_with(BODY), "{body}");

    if have("curl") {
        let out = curl(&exported, "api.anthropic.com", server.port).await;
        assert!(out.status.success(), "curl: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), BODY);
    } else {
        eprintln!("NOTICE: curl not installed; skipping the curl check");
    }

    let out = python_ssl(&exported, "api.openai.com", server.port).await;
    assert!(out.status.success(), "python ssl (strict): {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(BODY));
    assert_eq!(minter.cached_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reject_a_leaf_without_the_trusted_ca() {
    // Negative control: the same server, but the client trusts a different CA.
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let other = OrgCa::init(
        &tmp.path().join("other"),
        &promptwall_ca::InitOptions {
            permitted_domains: vec!["anthropic.com".into()],
            common_name: "some other CA".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let other_pem = write_pem(tmp.path(), "other.pem", &other.anchor_pem());
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    let server = serve(minter.server_config(ALPN)).await;

    let err = rustls_get(&[other.anchor_der().clone()], "api.anthropic.com", server.port)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    if have("curl") {
        let out = curl(&other_pem, "api.anthropic.com", server.port).await;
        assert_eq!(out.status.code(), Some(60), "curl: {}", text(&out));
    }
    let out = python_ssl(&other_pem, "api.anthropic.com", server.port).await;
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_presents_nothing_for_names_outside_the_constraints() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    let server = serve(minter.server_config(ALPN)).await;
    let err = rustls_get(&[ca.anchor_der().clone()], "example.com", server.port)
        .await
        .unwrap_err();
    assert!(
        err.contains("HandshakeFailure") || err.contains("AlertReceived"),
        "{err}"
    );
    assert_eq!(minter.cached_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_constraints_make_clients_reject_a_forged_foreign_leaf() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = common::init_constrained(&dir);
    let exported = write_pem(tmp.path(), "exported.pem", &ca.anchor_pem());
    let anchors = [ca.anchor_der().clone()];

    // The minter itself refuses.
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    assert!(minter.certified_key("example.com").is_err());

    // Control: a leaf forged the same way for a permitted name is accepted,
    // so the rejection below is due to the constraints alone.
    let (chain, key) = forge_leaf(&dir, "api.anthropic.com", true);
    let ok = serve(common::fixed_cert_config(chain, key)).await;
    rustls_get(&anchors, "api.anthropic.com", ok.port)
        .await
        .expect("permitted forged leaf verifies");
    let out = python_ssl(&exported, "api.anthropic.com", ok.port).await;
    assert!(out.status.success(), "{}", text(&out));

    let (chain, key) = forge_leaf(&dir, "example.com", true);
    let bad = serve(common::fixed_cert_config(chain, key)).await;
    let err = rustls_get(&anchors, "example.com", bad.port).await.unwrap_err();
    assert!(
        err.contains("NameConstraintViolation"),
        "webpki must cite the name constraints: {err}"
    );
    if have("curl") {
        let out = curl(&exported, "example.com", bad.port).await;
        assert_eq!(out.status.code(), Some(60), "curl: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("permitted subtree violation"),
            "{}",
            text(&out)
        );
    } else {
        eprintln!("NOTICE: curl not installed; skipping the curl check");
    }
    let out = python_ssl(&exported, "example.com", bad.port).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permitted subtree violation"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_constraints_make_clients_reject_a_forged_ip_address_leaf() {
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let tmp = tempfile::tempdir().unwrap();

    // Control: the same forged IP leaf from an unconstrained CA is accepted,
    // so the rejection below comes from the excluded IP ranges alone.
    let open_dir = tmp.path().join("open");
    let open = OrgCa::init(
        &open_dir,
        &promptwall_ca::InitOptions {
            name_constraints: false,
            ..Default::default()
        },
    )
    .unwrap();
    let (chain, key) = forge_leaf_for(&open_dir, "127.0.0.1", SanType::IpAddress(ip), true);
    let ok = serve(common::fixed_cert_config(chain, key)).await;
    rustls_get(&[open.anchor_der().clone()], "127.0.0.1", ok.port)
        .await
        .expect("an IP leaf from an unconstrained CA verifies");

    let dir = tmp.path().join("ca");
    let ca = common::init_constrained(&dir);
    let exported = write_pem(tmp.path(), "exported.pem", &ca.anchor_pem());
    let (chain, key) = forge_leaf_for(&dir, "127.0.0.1", SanType::IpAddress(ip), true);
    let bad = serve(common::fixed_cert_config(chain, key)).await;
    let err = rustls_get(&[ca.anchor_der().clone()], "127.0.0.1", bad.port)
        .await
        .unwrap_err();
    assert!(
        err.contains("NameConstraintViolation"),
        "webpki must cite the name constraints: {err}"
    );
    if have("curl") {
        let out = curl(&exported, "127.0.0.1", bad.port).await;
        assert_eq!(out.status.code(), Some(60), "curl: {}", text(&out));
    } else {
        eprintln!("NOTICE: curl not installed; skipping the curl check");
    }
    let out = python_ssl(&exported, "127.0.0.1", bad.port).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("excluded subtree violation"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_python_rejects_a_leaf_without_aki() {
    // Shows the strict-mode check is live, so the AKI on minted leaves matters.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = common::init_constrained(&dir);
    let exported = write_pem(tmp.path(), "exported.pem", &ca.anchor_pem());
    let (chain, key) = forge_leaf(&dir, "api.anthropic.com", false);
    let server = serve(common::fixed_cert_config(chain, key)).await;
    let out = python_ssl(&exported, "api.anthropic.com", server.port).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Missing Authority Key Identifier"),
        "{}",
        text(&out)
    );
}
