//! One error type for the crate; every message says what happened and what to do.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("an org CA already exists in {dir}; pass --force to replace it (clients that trust the old CA will stop trusting promptwall until the new one is installed)")]
    AlreadyExists { dir: PathBuf },

    #[error("name constraints need at least one permitted domain; pass --domain (e.g. --domain anthropic.com) or --no-name-constraints")]
    NoPermittedDomains,

    #[error("no org CA in {dir}; run `promptwall ca init` to create one or `promptwall ca import --cert F --key F` to use an existing one")]
    NotFound { dir: PathBuf },

    #[error("cannot {action} {path}: {source}{hint}", hint = permission_hint(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("the CA was imported, but its key file {path} could not be removed ({source}); delete it by hand (e.g. `shred -u {path}`): any copy of the org key outside the CA directory lets whoever reads it impersonate the providers to every machine that trusts the CA")]
    KeyNotRemoved { path: PathBuf, source: io::Error },

    #[error("{path} is not a usable certificate: {reason}; give a PEM file holding the CA certificate (and optionally its chain)")]
    BadCertificate { path: PathBuf, reason: String },

    #[error("{path} is not a usable private key: {reason}; give an unencrypted PEM key (PKCS#8, SEC1 EC or PKCS#1 RSA), e.g. `openssl pkcs8 -topk8 -nocrypt -in KEY`")]
    BadKey { path: PathBuf, reason: String },

    #[error("the key in {key} belongs to none of the certificates in {cert}; pass the key that was used to create that CA certificate")]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    #[error("the certificate {subject} in {path} is not a CA (BasicConstraints cA is missing or false) or may not sign certificates (KeyUsage lacks keyCertSign); import a CA or intermediate certificate")]
    NotCa { path: PathBuf, subject: String },

    #[error("the org CA {subject} is not valid now (valid {not_before} to {not_after}); create a new one with `promptwall ca init --force` or import a current one")]
    NotCurrentlyValid {
        subject: String,
        not_before: String,
        not_after: String,
    },

    #[error("refusing to mint a certificate for {name}: the org CA is name-constrained to {permitted}; add the domain with `promptwall ca init --force --domain ...`, or let this host pass through undecrypted")]
    NameNotPermitted { name: String, permitted: String },

    #[error("{name:?} is not a valid DNS name for a certificate; only TLS SNI host names can be minted")]
    InvalidName { name: String },

    #[error("certificate generation failed: {0}; this is a bug in promptwall, please report it")]
    Generate(#[from] rcgen::Error),

    #[error("cannot build the TLS key for a minted leaf: {0}; this is a bug in promptwall, please report it")]
    Tls(#[from] rustls::Error),

    #[error("no supported system trust store under {root}: found neither Debian (/usr/local/share/ca-certificates) nor RHEL (/etc/pki/ca-trust) layout; install ca-certificates, or add the CA from `promptwall ca export` to your trust store by hand")]
    UnknownTrustStore { root: PathBuf },

    #[error(
        "`{command}` failed ({status}): {stderr}; fix the trust store tooling and run `promptwall ca install` again"
    )]
    TrustRefresh {
        command: String,
        status: String,
        stderr: String,
    },
}

impl CaError {
    pub(crate) fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> CaError + 'p {
        move |source| CaError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the failure was a permission problem (callers print "run as root").
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, CaError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

fn permission_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        "; run as root (e.g. with sudo), or for the CA itself set [ca] dir to a directory you own"
    } else {
        ""
    }
}
