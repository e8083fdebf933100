//! promptwall's org CA: lifecycle (init, import, load, status), per-SNI leaf
//! minting for TLS termination, and system trust-store installation.
//!
//! ```no_run
//! # fn main() -> Result<(), promptwall_ca::CaError> {
//! use promptwall_ca::{LeafMinter, OrgCa};
//! let ca = OrgCa::load(std::path::Path::new("/var/lib/promptwall/ca"))?;
//! let minter = LeafMinter::new(&ca, std::time::Duration::from_secs(24 * 3600))?;
//! let tls = minter.server_config(&[b"h2", b"http/1.1"]);
//! # let _ = tls; Ok(()) }
//! ```

mod config;
mod constraints;
mod error;
mod files;
mod keys;
mod minter;
mod org;
pub mod pem;
pub mod trust;

pub use config::CaConfig;
pub use constraints::{normalize_dns_name, registrable_domains, DnsConstraints};
pub use error::CaError;
pub use minter::{Clock, LeafMinter};
pub use org::{default_common_name, fingerprint_sha256, CaStatus, InitOptions, OrgCa, CERT_FILE, KEY_FILE};
