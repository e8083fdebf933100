//! Properties of the org root and the minted leaves, parsed back with x509-parser.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use promptwall_ca::{CaError, InitOptions, LeafMinter, OrgCa};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn ski(x: &X509Certificate<'_>) -> Option<Vec<u8>> {
    x.iter_extensions().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
        _ => None,
    })
}

fn aki(x: &X509Certificate<'_>) -> Option<Vec<u8>> {
    x.iter_extensions().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
        _ => None,
    })
}

#[test]
fn root_is_a_name_constrained_p256_ca_with_key_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = common::init_constrained(&dir);
    let x = parse(ca.cert_der().as_ref());

    let bc = x.basic_constraints().unwrap().expect("BasicConstraints present");
    assert!(bc.critical, "BasicConstraints must be critical");
    assert!(bc.value.ca);
    let ku = x.key_usage().unwrap().expect("KeyUsage present");
    assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
    assert!(!ku.value.digital_signature());
    let ski = ski(&x).expect("SKI present");
    assert_eq!(
        aki(&x).expect("AKI present"),
        ski,
        "a self-signed root's AKI is its own SKI"
    );
    // id-ecPublicKey with prime256v1.
    assert_eq!(x.public_key().algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
    let curve = x.public_key().algorithm.parameters.as_ref().unwrap().as_oid().unwrap();
    assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7");

    let nc = x.name_constraints().unwrap().expect("NameConstraints present");
    assert!(nc.critical);
    let permitted: Vec<String> = nc
        .value
        .permitted_subtrees
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| match s.base {
            GeneralName::DNSName(d) => d.to_string(),
            ref other => panic!("unexpected subtree {other:?}"),
        })
        .collect();
    assert_eq!(permitted, vec!["anthropic.com", "chatgpt.com", "openai.com"]);
    assert!(x.subject().to_string().contains("promptwall test CA"));
}

#[test]
fn key_is_0600_and_dir_0700_and_reload_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/ca");
    let ca = common::init_constrained(&dir);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&OrgCa::key_path(&dir)), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&OrgCa::cert_path(&dir)), 0o644);
    assert!(std::fs::read_to_string(OrgCa::key_path(&dir))
        .unwrap()
        .contains("BEGIN PRIVATE KEY"));

    let loaded = OrgCa::load(&dir).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    let st = loaded.status();
    assert_eq!(st.key_mode.as_deref(), Some("0600"));
    assert!(st.self_signed);
    assert!(st.days_left >= 3649 && st.days_left <= 3650, "{}", st.days_left);
    assert_eq!(st.fingerprint_sha256.len(), 32 * 3 - 1);
    assert_eq!(st.key_algorithm, "ECDSA P-256");
    assert_eq!(
        st.name_constraints.unwrap().permitted,
        vec!["anthropic.com", "chatgpt.com", "openai.com"]
    );
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let first = common::init_constrained(&dir);
    let opts = InitOptions {
        permitted_domains: vec!["anthropic.com".into()],
        ..InitOptions::default()
    };
    let err = OrgCa::init(&dir, &opts).unwrap_err();
    assert!(matches!(err, CaError::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(
        OrgCa::load(&dir).unwrap().cert_der(),
        first.cert_der(),
        "refused init must not touch the CA"
    );

    let second = OrgCa::init(&dir, &InitOptions { force: true, ..opts }).unwrap();
    assert_ne!(second.cert_der(), first.cert_der());
    assert_eq!(OrgCa::load(&dir).unwrap().cert_der(), second.cert_der());
}

#[test]
fn constraints_need_a_domain_and_can_be_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let err = OrgCa::init(&tmp.path().join("a"), &InitOptions::default()).unwrap_err();
    assert!(matches!(err, CaError::NoPermittedDomains), "{err}");

    let ca = OrgCa::init(
        &tmp.path().join("b"),
        &InitOptions {
            name_constraints: false,
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert!(parse(ca.cert_der().as_ref()).name_constraints().unwrap().is_none());
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    minter
        .certified_key("example.com")
        .expect("an unconstrained CA mints any name");
}

#[test]
fn leaf_has_san_aki_ski_eku_and_short_backdated_validity() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let ca_ski = ski(&parse(ca.cert_der().as_ref())).unwrap();
    let minter = LeafMinter::new(&ca, Duration::from_secs(24 * 3600)).unwrap();
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let key = minter.certified_key("API.Anthropic.com.").unwrap();
    assert_eq!(key.cert.len(), 1, "a self-signed root is not sent in the chain");
    let x = parse(key.cert[0].as_ref());

    let san = x.subject_alternative_name().unwrap().expect("SAN present");
    assert_eq!(san.value.general_names, vec![GeneralName::DNSName("api.anthropic.com")]);
    assert_eq!(aki(&x).expect("AKI present"), ca_ski);
    assert!(ski(&x).is_some(), "SKI present");
    let eku = x.extended_key_usage().unwrap().expect("EKU present");
    assert!(eku.value.server_auth && !eku.value.client_auth);
    let bc = x.basic_constraints().unwrap().expect("BasicConstraints present");
    assert!(!bc.value.ca);
    assert!(x.key_usage().unwrap().unwrap().value.digital_signature());
    assert_eq!(x.issuer().as_raw(), parse(ca.cert_der().as_ref()).subject().as_raw());
    let nb = x.validity().not_before.timestamp();
    let na = x.validity().not_after.timestamp();
    assert!(
        (before - 3600 - 5..=before - 3600 + 5).contains(&nb),
        "backdated one hour: {nb} vs {before}"
    );
    assert!(
        (before + 24 * 3600 - 5..=before + 24 * 3600 + 5).contains(&na),
        "lives the configured hours"
    );
    assert_eq!(x.public_key().algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
}

#[test]
fn names_outside_the_constraints_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    for name in ["example.com", "anthropic.com.evil.net", "notopenai.com"] {
        let err = minter.certified_key(name).unwrap_err();
        assert!(matches!(err, CaError::NameNotPermitted { .. }), "{name}: {err}");
        assert!(
            err.to_string().contains("anthropic.com"),
            "message lists the permitted domains: {err}"
        );
    }
    assert!(matches!(
        minter.certified_key("1.2.3.4"),
        Err(CaError::InvalidName { .. })
    ));
    assert!(matches!(
        minter.certified_key("bad name"),
        Err(CaError::InvalidName { .. })
    ));
    assert_eq!(minter.cached_count(), 0);
    assert!(minter.is_permitted("ab.chatgpt.com"));
}

#[test]
fn leaves_are_cached_per_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let minter = LeafMinter::new(&ca, Duration::from_secs(3600)).unwrap();
    let a = minter.certified_key("api.anthropic.com").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = minter.clone();
            std::thread::spawn(move || m.certified_key("api.anthropic.com").unwrap())
        })
        .collect();
    for t in threads {
        assert!(Arc::ptr_eq(&t.join().unwrap(), &a));
    }
    let b = minter.certified_key("api.openai.com").unwrap();
    assert_ne!(a.cert[0], b.cert[0]);
    assert_eq!(minter.cached_count(), 2);
}

#[test]
fn leaves_are_reminted_when_a_third_of_their_life_remains() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let start = time::OffsetDateTime::now_utc();
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let clock: promptwall_ca::Clock =
        Arc::new(move || start + time::Duration::seconds(clock_offset.load(Ordering::SeqCst)));
    let minter = LeafMinter::with_clock(&ca, Duration::from_secs(3 * 3600), clock).unwrap();

    let first = minter.certified_key("api.anthropic.com").unwrap();
    offset.store(2 * 3600 - 1, Ordering::SeqCst); // just over a third left
    assert!(
        Arc::ptr_eq(&minter.certified_key("api.anthropic.com").unwrap(), &first),
        "still fresh: cached"
    );

    offset.store(2 * 3600 + 1, Ordering::SeqCst); // under a third left
    let second = minter.certified_key("api.anthropic.com").unwrap();
    assert!(!Arc::ptr_eq(&second, &first));
    let (x1, x2) = (parse(first.cert[0].as_ref()), parse(second.cert[0].as_ref()));
    assert_ne!(x1.raw_serial(), x2.raw_serial());
    assert_eq!(
        x2.validity().not_before.timestamp(),
        (start + time::Duration::seconds(2 * 3600 + 1 - 3600)).unix_timestamp()
    );
    assert!(x2.validity().not_after.timestamp() > x1.validity().not_after.timestamp());
    assert!(
        Arc::ptr_eq(&minter.certified_key("api.anthropic.com").unwrap(), &second),
        "the new leaf is cached"
    );
}

#[test]
fn leaves_never_outlive_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OrgCa::init(
        &tmp.path().join("ca"),
        &InitOptions {
            permitted_domains: vec!["anthropic.com".into()],
            validity_days: 1,
            ..InitOptions::default()
        },
    )
    .unwrap();
    let minter = LeafMinter::new(&ca, Duration::from_secs(72 * 3600)).unwrap();
    let leaf = minter.certified_key("api.anthropic.com").unwrap();
    let x = parse(leaf.cert[0].as_ref());
    assert_eq!(x.validity().not_after.timestamp(), ca.not_after().unix_timestamp());
}

#[test]
fn load_reports_missing_ca_with_a_next_step() {
    let tmp = tempfile::tempdir().unwrap();
    let err = OrgCa::load(&tmp.path().join("none")).unwrap_err();
    assert!(matches!(err, CaError::NotFound { .. }));
    assert!(err.to_string().contains("promptwall ca init"), "{err}");
}

#[test]
fn permission_denied_says_run_as_root() {
    let err = if unsafe { libc::geteuid() } == 0 {
        // Root bypasses file modes; check the message an unprivileged run gets.
        CaError::Io {
            action: "create the CA directory",
            path: "/var/lib/promptwall/ca".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        }
    } else {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        let opts = InitOptions {
            name_constraints: false,
            ..InitOptions::default()
        };
        OrgCa::init(&tmp.path().join("ca"), &opts).unwrap_err()
    };
    assert!(err.is_permission_denied(), "{err}");
    assert!(err.to_string().contains("run as root"), "{err}");
}

/// The dNSName constraints alone leave iPAddress names unconstrained (RFC 5280
/// applies a subtree only to names of its own type): the root must exclude
/// every IPv4 and IPv6 address so a stolen key cannot vouch for an IP.
#[test]
fn root_excludes_every_ip_address() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let x = parse(ca.cert_der().as_ref());
    let nc = x.name_constraints().unwrap().expect("NameConstraints present");
    let excluded: Vec<&[u8]> = nc
        .value
        .excluded_subtrees
        .as_ref()
        .expect("excluded subtrees present")
        .iter()
        .map(|s| match s.base {
            GeneralName::IPAddress(b) => b,
            ref other => panic!("unexpected excluded subtree {other:?}"),
        })
        .collect();
    assert_eq!(excluded, vec![&[0u8; 8][..], &[0u8; 32][..]], "0.0.0.0/0 and ::/0");
    let shown = ca.status().name_constraints.expect("constraints shown");
    assert_eq!(shown.excluded_ip, vec!["0.0.0.0/0", "::/0"]);
}
