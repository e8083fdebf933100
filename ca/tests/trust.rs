//! Trust-store install/uninstall on scratch roots (Debian and RHEL layouts),
//! with the refresh tool recorded instead of run.

mod common;

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use promptwall_ca::trust::{self, StoreRefresher, TrustLayout};
use promptwall_ca::CaError;

#[derive(Default)]
struct Recorder(RefCell<Vec<(TrustLayout, PathBuf, bool)>>);

impl StoreRefresher for Recorder {
    fn refresh(&self, layout: TrustLayout, root: &Path, removing: bool) -> Result<(), CaError> {
        self.0.borrow_mut().push((layout, root.to_path_buf(), removing));
        Ok(())
    }
}

fn scratch_root(layout: TrustLayout) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    match layout {
        TrustLayout::Debian => std::fs::create_dir_all(root.path().join("usr/local/share/ca-certificates")).unwrap(),
        TrustLayout::Rhel => std::fs::create_dir_all(root.path().join("etc/pki/ca-trust/source/anchors")).unwrap(),
    }
    root
}

fn round_trip(layout: TrustLayout, expected_anchor: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let root = scratch_root(layout);
    let r = root.path();
    assert_eq!(TrustLayout::detect(r).unwrap(), layout);
    assert!(!trust::is_installed(r, ca.anchor_der()));

    let rec = Recorder::default();
    let change = trust::install(r, ca.anchor_der(), &rec).unwrap();
    assert!(change.changed);
    assert_eq!(change.anchor_path, r.join(expected_anchor));
    let written = std::fs::read_to_string(&change.anchor_path).unwrap();
    assert_eq!(written, ca.anchor_pem());
    assert_eq!(
        std::fs::metadata(&change.anchor_path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(*rec.0.borrow(), vec![(layout, r.to_path_buf(), false)]);
    assert!(trust::is_installed(r, ca.anchor_der()));
    let st = ca.status_with_trust_root(r);
    assert!(
        st.trust.installed && !st.trust.in_bundle,
        "bundle not rebuilt by the recorder"
    );

    // Simulate the refresh tool: the bundle now holds the CA.
    let bundle = layout.bundle_path(r);
    std::fs::create_dir_all(bundle.parent().unwrap()).unwrap();
    std::fs::write(&bundle, format!("{}{}", written, written)).unwrap();
    assert!(ca.status_with_trust_root(r).trust.in_bundle);

    // Re-install is a no-op for the file but still refreshes.
    assert!(!trust::install(r, ca.anchor_der(), &rec).unwrap().changed);

    let change = trust::uninstall(r, &rec).unwrap();
    assert!(change.changed);
    assert!(!change.anchor_path.exists());
    assert_eq!(rec.0.borrow().last().unwrap(), &(layout, r.to_path_buf(), true));
    assert!(!trust::is_installed(r, ca.anchor_der()));
    let calls = rec.0.borrow().len();
    assert!(!trust::uninstall(r, &rec).unwrap().changed, "uninstall twice is fine");
    assert_eq!(rec.0.borrow().len(), calls, "nothing removed, nothing to refresh");
}

#[test]
fn debian_layout_round_trip() {
    round_trip(
        TrustLayout::Debian,
        "usr/local/share/ca-certificates/promptwall-org-ca.crt",
    );
}

#[test]
fn rhel_layout_round_trip() {
    round_trip(
        TrustLayout::Rhel,
        "etc/pki/ca-trust/source/anchors/promptwall-org-ca.pem",
    );
}

#[test]
fn a_different_ca_in_the_anchor_file_is_not_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = common::init_constrained(&tmp.path().join("a"));
    let b = common::init_constrained(&tmp.path().join("b"));
    let root = scratch_root(TrustLayout::Debian);
    trust::install(root.path(), a.anchor_der(), &trust::NoRefresh).unwrap();
    assert!(!trust::is_installed(root.path(), b.anchor_der()));
    assert!(
        trust::install(root.path(), b.anchor_der(), &trust::NoRefresh)
            .unwrap()
            .changed,
        "replaces the old anchor"
    );
    assert!(trust::is_installed(root.path(), b.anchor_der()));
}

#[test]
fn unknown_layout_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let empty = tempfile::tempdir().unwrap();
    let err = trust::install(empty.path(), ca.anchor_der(), &trust::NoRefresh).unwrap_err();
    assert!(matches!(err, CaError::UnknownTrustStore { .. }), "{err}");
    assert!(err.to_string().contains("promptwall ca export"), "{err}");
    assert!(ca.status_with_trust_root(empty.path()).trust.layout.is_none());
}

#[test]
fn failing_refresh_tool_is_reported_with_its_output() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::init_constrained(&tmp.path().join("ca"));
    let root = scratch_root(TrustLayout::Debian);
    // A chroot with no update-ca-certificates inside: the real refresher must fail loudly.
    let err = trust::install(root.path(), ca.anchor_der(), &trust::SystemRefresher).unwrap_err();
    assert!(matches!(err, CaError::TrustRefresh { .. }), "{err}");
    assert!(err.to_string().contains("update-ca-certificates"), "{err}");
}
