//! The `[audit]` section of the config file. The daemon opens the store,
//! writer, retention and shipper from it; the proxy reads the capture,
//! fingerprint-key and free-space settings of the rows it writes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::SyncMode;

/// `[audit]`: the local store and what goes into its rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// sqlx URL: sqlite:///var/lib/promptwall/audit.db or postgres://...
    pub url: String,
    /// SQLite durability of each row: "full" fsyncs every commit (survives
    /// power loss); "normal" fsyncs at checkpoints (survives agent crashes).
    pub sync: SyncMode,
    /// Store request/response bodies as the provider saw them (redacted).
    pub capture_bodies: bool,
    pub capture_max_bytes: usize,
    /// Delete rows older than this many days (chain kept verifiable by a
    /// checkpoint; rows not yet shipped to the central store are kept).
    pub retention_days: Option<u32>,
    /// Drop captured bodies older than this many days (rows stay).
    pub body_retention_days: Option<u32>,
    /// TOML price table overriding/extending the built-in one (cost estimates).
    pub price_table: Option<PathBuf>,
    /// Secret key (0600, root) of the fingerprints of blocked secrets; created
    /// with 32 random bytes on first start if absent. Give every machine the
    /// same file to correlate one secret across the fleet.
    pub fingerprint_key: PathBuf,
    /// New exchanges are refused (503) before reaching a provider while the
    /// SQLite store's filesystem has less than this free: their rows could
    /// not be written. 0 turns the check off.
    pub min_free_bytes: u64,
    /// `[audit.central]`: the fleet store rows are shipped to.
    pub central: Option<CentralConfig>,
}

/// `[audit.central]`: shipping rows to the fleet's PostgreSQL store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CentralConfig {
    pub url: String,
    pub batch_size: usize,
    pub interval_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            url: "sqlite:///var/lib/promptwall/audit.db".into(),
            sync: SyncMode::Full,
            capture_bodies: false,
            capture_max_bytes: 256 * 1024,
            retention_days: None,
            body_retention_days: None,
            price_table: None,
            fingerprint_key: "/var/lib/promptwall/fingerprint.key".into(),
            min_free_bytes: 64 * 1024 * 1024,
            central: None,
        }
    }
}

impl Default for CentralConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            batch_size: 500,
            interval_ms: 2000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_is_written_in_lowercase() {
        let c: AuditConfig = toml::from_str("sync = \"normal\"").unwrap();
        assert_eq!(c.sync, SyncMode::Normal);
        assert!(toml::from_str::<AuditConfig>("sync = \"Normal\"").is_err());
    }
}
