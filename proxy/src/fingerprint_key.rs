//! The secret key of the audit fingerprints of blocked secrets.
//!
//! A fingerprint is HMAC-SHA256(key, secret): auditors see "the same key
//! leaked 5 times" without the value. Anyone who knows the key can test
//! guesses against a fingerprint (a low-entropy password falls to a
//! dictionary), so the key is random and readable by the service only
//! (`[audit] fingerprint_key`, 0600), never derived from something public
//! such as the machine id every row carries. Distribute one file fleet-wide
//! to correlate a secret across machines.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::config::Config;

/// Shortest key accepted from a distributed file (e.g. `openssl rand -hex 32`).
const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum FingerprintKeyError {
    #[error("cannot {action} the fingerprint key {path}: {source}; fix its permissions (root-owned, mode 0600) or point [audit] fingerprint_key elsewhere")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the fingerprint key {path} holds {len} bytes, fewer than {MIN_KEY_BYTES}; write a random key (e.g. `openssl rand -hex 32 > {path}`), or delete the file to have one generated")]
    TooShort { path: std::path::PathBuf, len: usize },
}

/// The HMAC key fingerprints use, as the pipeline takes it (hex text).
///
/// `pipeline.fingerprint_salt`, if set, wins (the pre-key-file way to share
/// one key fleet-wide). Otherwise the key file is read, or created on first
/// start. If this user may not read or create it (no state directory, not
/// root: a personal or test run), fingerprints use a key that lives as long
/// as this process: still unguessable, but not comparable across restarts.
pub fn salt(config: &Config) -> Result<String, FingerprintKeyError> {
    if let Some(salt) = &config.pipeline.fingerprint_salt {
        tracing::warn!(
            "pipeline.fingerprint_salt is set: fingerprints are only as secret as the config file (readable by the promptwall group); move the secret into a 0600 file named by [audit] fingerprint_key"
        );
        return Ok(salt.clone());
    }
    let path = &config.audit.fingerprint_key;
    match load_or_create(path) {
        Ok(key) => Ok(key),
        Err(FingerprintKeyError::Io { source, .. })
            if matches!(
                source.kind(),
                ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            tracing::warn!(
                path = %path.display(),
                "cannot read or create the fingerprint key ({source}); fingerprints of blocked secrets will not match across restarts; run as the service (root), or set [audit] fingerprint_key to a path this user owns"
            );
            Ok(hex::encode(random_key()))
        }
        Err(e) => Err(e),
    }
}

/// Reads the key at `path`, or creates it (32 random bytes, hex, mode 0600).
pub fn load_or_create(path: &Path) -> Result<String, FingerprintKeyError> {
    let io = |action: &'static str| {
        move |source| FingerprintKeyError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    match std::fs::read(path) {
        Ok(bytes) => return from_file(path, &bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io("read")(e)),
    }
    let text = format!("{}\n", hex::encode(random_key()));
    // create_new: two starting processes never overwrite each other's key;
    // mode 0600 from the first byte.
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(text.as_bytes()).map_err(io("write"))?;
            f.sync_all().map_err(io("write"))?;
            tracing::info!(path = %path.display(), "created the fingerprint key");
            Ok(text.trim().to_string())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let bytes = std::fs::read(path).map_err(io("read"))?;
            from_file(path, &bytes)
        }
        Err(e) => Err(io("create")(e)),
    }
}

fn from_file(path: &Path, bytes: &[u8]) -> Result<String, FingerprintKeyError> {
    let key = bytes.trim_ascii();
    if key.len() < MIN_KEY_BYTES {
        return Err(FingerprintKeyError::TooShort {
            path: path.to_path_buf(),
            len: key.len(),
        });
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the fingerprint key is readable by group or others, who can then test guesses against audit fingerprints; run `chmod 600` on it");
        }
    }
    // Generated keys are hex already; any other content is hex-encoded so
    // every key reaches the pipeline as text.
    Ok(match std::str::from_utf8(key) {
        Ok(text) if text.bytes().all(|b| b.is_ascii_hexdigit()) => text.to_string(),
        _ => hex::encode(key),
    })
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut key)
        .expect("the system RNG works");
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Decision, Inspector};
    use promptwall_llm::ApiShape;

    const AWS_KEY: &str = "AKIAQ3EGVP7XWJ4LN2TZ";

    fn config(key_file: &Path, machine_id: &str) -> Config {
        let mut c = Config {
            machine_id: Some(machine_id.into()),
            ..Config::default()
        };
        c.audit.fingerprint_key = key_file.to_path_buf();
        c
    }

    /// The fingerprint the audit row records for `AWS_KEY` in a request.
    fn recorded_fingerprint(config: &Config) -> String {
        let inspector = Inspector::new(config).unwrap();
        let body = serde_json::json!({
            "model": "claude-x",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": format!("deploy with {AWS_KEY}")}],
        });
        let report = match inspector.inspect_request(
            ApiShape::ANTHROPIC_MESSAGES,
            body.to_string().as_bytes(),
            &Default::default(),
            None,
        ) {
            Decision::Reject { report, .. } | Decision::Forward { report, .. } => report,
        };
        assert_eq!(report.fingerprints.len(), 1, "{report:?}");
        report.fingerprints[0].1.clone()
    }

    /// Audit readers see the machine id in every row: if it keyed the HMAC
    /// they could test password guesses against the fingerprints.
    #[test]
    fn fingerprints_are_not_computable_from_the_machine_id() {
        let tmp = tempfile::tempdir().unwrap();
        let key_file = tmp.path().join("fingerprint.key");
        let fp = recorded_fingerprint(&config(&key_file, "machine-1"));
        assert_ne!(fp, promptwall_llm::detect::fingerprint("promptwall:machine-1", AWS_KEY));
        assert_eq!(fp.len(), 32, "128-bit fingerprints: {fp}");

        // Same key file (a restart, or another machine given the fleet's
        // file) → same fingerprint; another key → another one.
        assert_eq!(recorded_fingerprint(&config(&key_file, "machine-2")), fp);
        let other = tmp.path().join("other.key");
        assert_ne!(recorded_fingerprint(&config(&other, "machine-1")), fp);
    }

    #[test]
    fn fingerprint_key_is_created_0600_and_reused_across_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("fingerprint.key");
        let first = load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(load_or_create(&path).unwrap(), first);
        assert_ne!(load_or_create(&tmp.path().join("second.key")).unwrap(), first);
    }

    #[test]
    fn a_distributed_key_file_is_used_as_is_and_a_weak_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let fleet = tmp.path().join("fleet.key");
        std::fs::write(
            &fleet,
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        assert_eq!(
            load_or_create(&fleet).unwrap(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        let weak = tmp.path().join("weak.key");
        std::fs::write(&weak, "hunter2\n").unwrap();
        let err = load_or_create(&weak).unwrap_err();
        assert!(matches!(err, FingerprintKeyError::TooShort { len: 7, .. }), "{err}");
        let mut c = config(&weak, "m");
        assert!(
            salt(&c).is_err(),
            "a bad fleet key stops the start instead of being replaced"
        );
        c.audit.fingerprint_key = tmp.path().join("no/such/dir/fingerprint.key");
        assert_eq!(
            salt(&c).unwrap().len(),
            64,
            "no state directory: a per-process random key"
        );
    }
}
