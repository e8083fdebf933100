//! promptwall-audit: the durable, tamper-evident audit log.
//!
//! * One row per proxied request ([`AuditRecord`]), written through a single
//!   group-committing [`AuditWriter`] whose `write` resolves only once the row
//!   is committed (SQLite WAL with `synchronous=FULL`: committed means on disk,
//!   surviving process crash and power loss).
//! * Rows are hash-chained per machine; [`AuditStore::verify`] finds the first
//!   broken link, [`AuditStore::prune`] keeps the chain verifiable through a
//!   checkpoint.
//! * The local SQLite store is the spool for the fleet store: [`CentralShipper`]
//!   copies rows to PostgreSQL idempotently, keyed by machine, install, id
//!   and hash so that no row is ever swallowed, quarantining rows PostgreSQL
//!   rejects instead of stalling.
//! * The same queries ([`QueryFilter`], `agents`, `top`, ...) run on both.

pub mod chain;
pub mod config;
pub mod cost;
mod error;
pub mod fleet;
pub mod outbox;
pub mod query;
pub mod record;
pub mod render;
pub mod retention;
mod rollup;
pub mod routing;
pub mod ship;
pub mod store;
pub mod testing;
pub mod time;
pub mod tokens;
pub mod writer;

pub use chain::{ChainBreak, QuarantinedRow, VerifyReport};
pub use config::{AuditConfig, CentralConfig};
pub use cost::{estimate_cost, PriceTable, Usage};
pub use error::AuditError;
pub use outbox::{Outbox, Pending};
pub use query::{AgentSummary, Bucket, QueryFilter, RepeatedFingerprint, SeriesPoint, TopBy, TopRow};
pub use record::{AuditRecord, Fingerprint};
pub use render::Format;
pub use retention::RetentionPolicy;
pub use routing::{Attempt, RoutingDetail, TranslationRecord};
pub use ship::{CentralShipper, ShipProgress, ShipperHandle};
pub use store::{AuditStore, SyncMode};
pub use writer::{AuditWriter, WriterOptions};
