//! The system trust store: put the org CA where curl, OpenSSL, Go, the Python
//! stdlib and rustls-native-certs look (Debian and RHEL layouts).
//!
//! Every function takes a `root` prefix so tests and packaging can work on a
//! scratch root; refreshing the bundle is a [`StoreRefresher`] so tests can
//! skip or record it instead of running the distribution's tool.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustls_pki_types::CertificateDer;

use crate::files::write_atomic;
use crate::{pem, CaError};

/// File name of our anchor (Debian requires `.crt`).
pub const ANCHOR_NAME_DEBIAN: &str = "promptwall-org-ca.crt";
pub const ANCHOR_NAME_RHEL: &str = "promptwall-org-ca.pem";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLayout {
    /// `/usr/local/share/ca-certificates` + `update-ca-certificates`.
    Debian,
    /// `/etc/pki/ca-trust/source/anchors` + `update-ca-trust extract`.
    Rhel,
}

impl TrustLayout {
    /// Which layout the system under `root` uses.
    pub fn detect(root: &Path) -> Result<TrustLayout, CaError> {
        let has = |p: &str| root.join(p.trim_start_matches('/')).exists();
        if has("/etc/pki/ca-trust") || has("/usr/bin/update-ca-trust") {
            Ok(TrustLayout::Rhel)
        } else if has("/usr/local/share/ca-certificates")
            || has("/usr/sbin/update-ca-certificates")
            || has("/etc/ca-certificates.conf")
        {
            Ok(TrustLayout::Debian)
        } else {
            Err(CaError::UnknownTrustStore {
                root: root.to_path_buf(),
            })
        }
    }

    pub fn anchor_dir(self, root: &Path) -> PathBuf {
        match self {
            TrustLayout::Debian => root.join("usr/local/share/ca-certificates"),
            TrustLayout::Rhel => root.join("etc/pki/ca-trust/source/anchors"),
        }
    }

    pub fn anchor_path(self, root: &Path) -> PathBuf {
        self.anchor_dir(root).join(match self {
            TrustLayout::Debian => ANCHOR_NAME_DEBIAN,
            TrustLayout::Rhel => ANCHOR_NAME_RHEL,
        })
    }

    /// The full bundle the refresh tool generates (what `SSL_CERT_FILE` should name).
    pub fn bundle_path(self, root: &Path) -> PathBuf {
        match self {
            TrustLayout::Debian => root.join("etc/ssl/certs/ca-certificates.crt"),
            TrustLayout::Rhel => root.join("etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
        }
    }

    /// The command that rebuilds the bundle (run inside `root`).
    pub fn refresh_command(self, removing: bool) -> Vec<&'static str> {
        match self {
            // --fresh drops the removed anchor's symlink as well as its bundle entry.
            TrustLayout::Debian if removing => vec!["update-ca-certificates", "--fresh"],
            TrustLayout::Debian => vec!["update-ca-certificates"],
            TrustLayout::Rhel => vec!["update-ca-trust", "extract"],
        }
    }
}

/// Rebuilds the trust bundle after an anchor was added or removed.
pub trait StoreRefresher {
    fn refresh(&self, layout: TrustLayout, root: &Path, removing: bool) -> Result<(), CaError>;
}

/// Runs the distribution's tool (through `chroot` when `root` is not `/`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRefresher;

impl StoreRefresher for SystemRefresher {
    fn refresh(&self, layout: TrustLayout, root: &Path, removing: bool) -> Result<(), CaError> {
        let argv = layout.refresh_command(removing);
        let mut cmd = if root == Path::new("/") {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        } else {
            let mut c = Command::new("chroot");
            c.arg(root).args(&argv);
            c
        };
        let shown = argv.join(" ");
        let out = cmd.output().map_err(|e| CaError::TrustRefresh {
            command: shown.clone(),
            status: "could not start".into(),
            stderr: format!("{e}; install the ca-certificates package"),
        })?;
        if !out.status.success() {
            return Err(CaError::TrustRefresh {
                command: shown,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

/// Leaves the bundle alone (scratch roots, packaging that refreshes later).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRefresh;

impl StoreRefresher for NoRefresh {
    fn refresh(&self, _: TrustLayout, _: &Path, _: bool) -> Result<(), CaError> {
        Ok(())
    }
}

/// What an install or uninstall did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustChange {
    pub layout: TrustLayout,
    pub anchor_path: PathBuf,
    /// False when there was nothing to do (already installed / not installed).
    pub changed: bool,
}

/// Adds `anchor` (the org root) to the trust store under `root` and refreshes it.
pub fn install(
    root: &Path,
    anchor: &CertificateDer<'_>,
    refresher: &dyn StoreRefresher,
) -> Result<TrustChange, CaError> {
    let layout = TrustLayout::detect(root)?;
    let dir = layout.anchor_dir(root);
    let path = layout.anchor_path(root);
    let already = anchor_matches(&path, anchor);
    if !already {
        fs::create_dir_all(&dir).map_err(CaError::io("create the trust anchor directory", &dir))?;
        write_atomic(&path, pem::encode_cert(anchor).as_bytes(), 0o644)?;
    }
    // Refresh even when the anchor was present: the bundle may be stale.
    refresher.refresh(layout, root, false)?;
    Ok(TrustChange {
        layout,
        anchor_path: path,
        changed: !already,
    })
}

/// Removes our anchor from the trust store under `root` and refreshes it.
pub fn uninstall(root: &Path, refresher: &dyn StoreRefresher) -> Result<TrustChange, CaError> {
    let layout = TrustLayout::detect(root)?;
    let path = layout.anchor_path(root);
    let changed = match fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(CaError::Io {
                action: "remove",
                path,
                source: e,
            })
        }
    };
    if changed {
        refresher.refresh(layout, root, true)?;
    }
    Ok(TrustChange {
        layout,
        anchor_path: path,
        changed,
    })
}

/// Whether our anchor file under `root` holds exactly `anchor`.
pub fn is_installed(root: &Path, anchor: &CertificateDer<'_>) -> bool {
    TrustLayout::detect(root)
        .map(|l| anchor_matches(&l.anchor_path(root), anchor))
        .unwrap_or(false)
}

/// Trust-store view for `ca status` and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustStatus {
    pub layout: Option<TrustLayout>,
    pub anchor_path: Option<PathBuf>,
    /// Our anchor file holds this CA.
    pub installed: bool,
    /// The generated bundle contains this CA (i.e. the refresh ran).
    pub in_bundle: bool,
}

pub fn status(root: &Path, anchor: &CertificateDer<'_>) -> TrustStatus {
    let Ok(layout) = TrustLayout::detect(root) else {
        return TrustStatus {
            layout: None,
            anchor_path: None,
            installed: false,
            in_bundle: false,
        };
    };
    let bundle = fs::read_to_string(layout.bundle_path(root)).ok();
    let in_bundle = bundle
        .map(|b| {
            rustls_pemfile::certs(&mut b.as_bytes())
                .filter_map(Result::ok)
                .any(|c| c.as_ref() == anchor.as_ref())
        })
        .unwrap_or(false);
    TrustStatus {
        layout: Some(layout),
        anchor_path: Some(layout.anchor_path(root)),
        installed: anchor_matches(&layout.anchor_path(root), anchor),
        in_bundle,
    }
}

fn anchor_matches(path: &Path, anchor: &CertificateDer<'_>) -> bool {
    fs::read_to_string(path)
        .ok()
        .map(|t| {
            rustls_pemfile::certs(&mut t.as_bytes())
                .filter_map(Result::ok)
                .any(|c| c.as_ref() == anchor.as_ref())
        })
        .unwrap_or(false)
}
