use std::path::PathBuf;

/// Every variant says what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store URL {0:?} is not supported; use sqlite:///path/to/audit.db or postgres://user@host/db")]
    UnsupportedUrl(String),
    #[error("audit store {path} is readable only by root and the promptwall group; run with sudo or add yourself to the promptwall group (sudo usermod -aG promptwall $USER, then log in again)")]
    PermissionDenied { path: PathBuf },
    #[error("audit store {path} does not exist yet; start the agent (promptwall up) to create it, or pass --db URL to query another store")]
    Missing { path: PathBuf },
    #[error("cannot create audit store directory or file {path}: {source}; check that the parent directory is writable (the agent normally runs as root)")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open audit store {url}: {source}; check the URL, that the database is running and that the credentials are right")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot apply the audit schema migrations to {url}: {source}; the store may belong to a newer promptwall, or the role lacks CREATE rights (run once as the owner role)")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "audit database error: {0}; check that the store is reachable and not corrupted (promptwall audit verify)"
    )]
    Database(#[from] sqlx::Error),
    #[error("audit row could not be written: {0}; the request was refused because its audit row is not durable — check disk space and permissions of the audit store")]
    Write(String),
    #[error("the audit writer has stopped; restart the agent")]
    WriterClosed,
    #[error("invalid time {0:?}: use RFC3339 (2025-01-31T12:00:00Z), a date (2025-01-31) or a relative age such as 30m, 1h, 7d, 2w")]
    BadTime(String),
    #[error("invalid filter: {0}")]
    BadFilter(String),
    #[error("price table {path}: {message}; fix the file (see audit/prices.toml for the format) or remove audit.price_table from the config")]
    PriceTable { path: String, message: String },
    #[error("row {0} is not in the audit store; list ids with `promptwall audit query`")]
    NotFound(i64),
    #[error("corrupt audit row {id}: {message}; run `promptwall audit verify`")]
    CorruptRow { id: i64, message: String },
    #[error("the central audit store {central} refused rows of machine {machine_id:?} (row-level security): each agent must log in as the PostgreSQL role named exactly after its machine id; create it with CREATE ROLE \"{machine_id}\" LOGIN IN ROLE promptwall_agent and leave the user out of [audit.central] url (see deploy/README.md, \"Fleet audit store\"); the rows stay in the local spool until then")]
    CentralRefused { central: String, machine_id: String },
    #[error("audit store {url} has an older schema than this promptwall; restart the agent (it upgrades its local store when it starts), or for a central store run `promptwall audit migrate --db URL` once as its owner role")]
    SchemaOutdated { url: String },
    #[error("test PostgreSQL cluster: {0}")]
    PgCluster(String),
}
