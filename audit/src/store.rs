//! Opening the store (SQLite spool or PostgreSQL fleet store) and the
//! row codec shared by both.
//!
//! Durability: SQLite runs in WAL mode. With [`SyncMode::Full`] (the default) a
//! transaction is fsynced to the WAL before COMMIT returns; the writer
//! acknowledges a row only after COMMIT, so neither a crash of the agent nor
//! a power loss after the acknowledgement can lose it. Group commit amortises
//! the fsync. [`SyncMode::Normal`] fsyncs at checkpoints only (the writer's
//! checkpointer runs about every 200 ms while rows arrive, see
//! [`crate::writer`]): a committed row still survives any crash of the agent
//! (it is in the OS page cache), but a power loss or kernel crash may drop
//! the rows since the last checkpoint — auditd's default trade-off — for
//! about 0.2–0.3 ms less per request on a virtual disk (measured by
//! `cargo xtask bench`).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::AuditError;

/// Group that may read the local store (`promptwall audit` without sudo).
pub const READER_GROUP: &str = "promptwall";

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool; the body is compiled
/// once per backend, so runtime-bound queries and decoders work on both.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Binds every field of an [`AuditRecord`](crate::AuditRecord) in
/// [`COLUMNS`](crate::record::COLUMNS) order with method `$m` (`bind` on a
/// query, `push_bind` on a `QueryBuilder` separator).
macro_rules! bind_record {
    ($target:expr, $m:ident, $rec:expr) => {{
        let r: &$crate::AuditRecord = $rec;
        $target
            .$m(r.id)
            .$m(r.machine_id.clone())
            .$m(r.ts.clone())
            .$m(r.listener.clone())
            .$m(r.provider.clone())
            .$m(r.host.clone())
            .$m(r.method.clone())
            .$m(r.path.clone())
            .$m(r.shape.clone())
            .$m(r.model.clone())
            .$m(i64::from(r.status))
            .$m(r.input_tokens)
            .$m(r.output_tokens)
            .$m(r.cache_read_tokens)
            .$m(r.cache_write_tokens)
            .$m(r.request_bytes)
            .$m(r.response_bytes)
            .$m(r.duration_ms)
            .$m(r.ttfb_ms)
            .$m(r.pid.map(i64::from))
            .$m(r.exe.clone())
            .$m(r.cmdline.clone())
            .$m(r.uid.map(i64::from))
            .$m(r.user.clone())
            .$m(r.login_user.clone())
            .$m(r.tool.clone())
            .$m(r.container_id.clone())
            // Socket cookies are kernel counters far below 2^63; stored as bits.
            .$m(r.socket_cookie.map(|c| c as i64))
            .$m(r.original_dst.clone())
            .$m(r.verdict.clone())
            .$m(serde_json::to_string(&r.findings).expect("map of counts serialises"))
            .$m(serde_json::to_string(&r.fingerprints).expect("fingerprints serialise"))
            .$m(r.error.clone())
            .$m(r.llm)
            .$m(r.cost_usd)
            .$m(r.request_body.clone())
            .$m(r.response_body.clone())
            .$m(r.request_body_sha256.clone())
            .$m(r.response_body_sha256.clone())
            .$m(r.prev_hash.clone())
            .$m(r.hash.clone())
            .$m(r.install_id.clone())
            .$m(r.request_id.clone())
            .$m(r.route.clone())
            .$m(r.upstream.clone())
            .$m(r.routing.clone())
            .$m(r.container_name.clone())
            .$m(r.container_image.clone())
    }};
}
pub(crate) use bind_record;

/// Decodes a row selected with [`COLUMNS`](crate::record::COLUMNS) order.
macro_rules! decode_record {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let id: i64 = row.try_get(0)?;
        let corrupt = |message: String| $crate::AuditError::CorruptRow { id, message };
        let status: i64 = row.try_get(10)?;
        let findings: String = row.try_get(30)?;
        let fingerprints: String = row.try_get(31)?;
        let rec = $crate::AuditRecord {
            id,
            machine_id: row.try_get(1)?,
            ts: row.try_get(2)?,
            listener: row.try_get(3)?,
            provider: row.try_get(4)?,
            host: row.try_get(5)?,
            method: row.try_get(6)?,
            path: row.try_get(7)?,
            shape: row.try_get(8)?,
            model: row.try_get(9)?,
            status: u16::try_from(status).map_err(|_| corrupt(format!("status {status} out of range")))?,
            input_tokens: row.try_get(11)?,
            output_tokens: row.try_get(12)?,
            cache_read_tokens: row.try_get(13)?,
            cache_write_tokens: row.try_get(14)?,
            request_bytes: row.try_get(15)?,
            response_bytes: row.try_get(16)?,
            duration_ms: row.try_get(17)?,
            ttfb_ms: row.try_get(18)?,
            pid: row.try_get::<Option<i64>, _>(19)?.map(|v| v as u32),
            exe: row.try_get(20)?,
            cmdline: row.try_get(21)?,
            uid: row.try_get::<Option<i64>, _>(22)?.map(|v| v as u32),
            user: row.try_get(23)?,
            login_user: row.try_get(24)?,
            tool: row.try_get(25)?,
            container_id: row.try_get(26)?,
            socket_cookie: row.try_get::<Option<i64>, _>(27)?.map(|v| v as u64),
            original_dst: row.try_get(28)?,
            verdict: row.try_get(29)?,
            findings: serde_json::from_str(&findings).map_err(|e| corrupt(format!("findings: {e}")))?,
            fingerprints: serde_json::from_str(&fingerprints).map_err(|e| corrupt(format!("fingerprints: {e}")))?,
            error: row.try_get(32)?,
            llm: row.try_get(33)?,
            cost_usd: row.try_get(34)?,
            request_body: row.try_get(35)?,
            response_body: row.try_get(36)?,
            request_body_sha256: row.try_get(37)?,
            response_body_sha256: row.try_get(38)?,
            prev_hash: row.try_get(39)?,
            hash: row.try_get(40)?,
            install_id: row.try_get(41)?,
            request_id: row.try_get(42)?,
            route: row.try_get(43)?,
            upstream: row.try_get(44)?,
            routing: row.try_get(45)?,
            container_name: row.try_get(46)?,
            container_image: row.try_get(47)?,
        };
        Ok::<$crate::AuditRecord, $crate::AuditError>(rec)
    }};
}
pub(crate) use decode_record;

/// A handle on the audit database; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditStore {
    pub(crate) pool: Pool,
    /// The URL without any password, for messages.
    display_url: String,
    /// A SQLite store's file and durability: the writer opens its own
    /// connection on them (see [`crate::writer`]).
    sqlite: Option<(PathBuf, SyncMode)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

impl AuditStore {
    /// Opens (creating if needed) and migrates the store: what the agent does.
    /// `sqlite://PATH` creates PATH's directory (0750) and the file (0640,
    /// group `promptwall` when it exists); `postgres://...` needs a role that
    /// may create tables the first time.
    pub async fn open(url: &str) -> Result<AuditStore, AuditError> {
        Self::open_with(url, Access::ReadWrite, SyncMode::Full).await
    }

    /// Opens for writing with the given SQLite durability (ignored for
    /// PostgreSQL, whose server decides).
    pub async fn open_for_writing(url: &str, sync: SyncMode) -> Result<AuditStore, AuditError> {
        Self::open_with(url, Access::ReadWrite, sync).await
    }

    /// Opens an existing store for queries without creating or migrating it:
    /// what `promptwall audit` does, so a reader never needs write access.
    pub async fn open_read_only(url: &str) -> Result<AuditStore, AuditError> {
        Self::open_with(url, Access::ReadOnly, SyncMode::Full).await
    }

    async fn open_with(url: &str, access: Access, sync: SyncMode) -> Result<AuditStore, AuditError> {
        let display_url = redact_url(url);
        if let Some(path) = sqlite_path(url) {
            let pool = open_sqlite(&path, access, sync).await?;
            if access == Access::ReadWrite {
                sqlx::migrate!("migrations/sqlite")
                    .run(&pool)
                    .await
                    .map_err(|source| AuditError::Migrate {
                        url: display_url.clone(),
                        source,
                    })?;
            }
            let store = AuditStore {
                pool: Pool::Sqlite(pool),
                display_url,
                sqlite: Some((path, sync)),
            };
            store.check_schema().await?;
            return Ok(store);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|source| AuditError::Connect {
                    url: display_url.clone(),
                    source,
                })?;
            if access == Access::ReadWrite {
                migrate_postgres(&pool, &display_url).await?;
            }
            let store = AuditStore {
                pool: Pool::Postgres(pool),
                display_url,
                sqlite: None,
            };
            store.check_schema().await?;
            return Ok(store);
        }
        Err(AuditError::UnsupportedUrl(display_url))
    }

    /// A store opened read-only is not migrated: say so when it predates
    /// the columns this version reads, instead of failing every query.
    async fn check_schema(&self) -> Result<(), AuditError> {
        // The newest column of each migration that added one.
        let probe = "SELECT install_id, request_id, routing FROM audit_log WHERE 1 = 0";
        let result = on_pool!(&self.pool, p => sqlx::query(probe).fetch_all(p).await.map(|_| ()));
        match result {
            Err(sqlx::Error::Database(db))
                if ["install_id", "request_id", "routing"]
                    .iter()
                    .any(|column| db.message().contains(column)) =>
            {
                Err(AuditError::SchemaOutdated {
                    url: self.display_url.clone(),
                })
            }
            // Anything else (no table yet, no privilege) shows up in the query itself.
            Err(_) => Ok(()),
            // The newest table a migration added.
            Ok(()) => {
                let probe = "SELECT day FROM fingerprints_daily WHERE 1 = 0";
                match on_pool!(&self.pool, p => sqlx::query(probe).fetch_all(p).await.map(|_| ())) {
                    Err(sqlx::Error::Database(db)) if db.message().contains("fingerprints_daily") => {
                        Err(AuditError::SchemaOutdated {
                            url: self.display_url.clone(),
                        })
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.display_url
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.pool, Pool::Sqlite(_))
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A SQLite store's file and the durability it was opened with.
    pub(crate) fn sqlite_file(&self) -> Option<(&Path, SyncMode)> {
        self.sqlite.as_ref().map(|(path, sync)| (path.as_path(), *sync))
    }

    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await)
    }

    /// This store's install id (see [`AuditRecord::install_id`](crate::AuditRecord::install_id)):
    /// random, generated by the migration that created the store; empty for
    /// a store that already held rows when install ids were introduced.
    pub async fn install_id(&self) -> Result<String, AuditError> {
        let sql = "SELECT value FROM audit_meta WHERE key = 'install_id'";
        let id: Option<String> = on_pool!(&self.pool, p => sqlx::query_scalar(sql).fetch_optional(p).await?);
        Ok(id.unwrap_or_default())
    }

    /// Number of rows (all machines).
    pub async fn count_all(&self) -> Result<i64, AuditError> {
        let n: i64 =
            on_pool!(&self.pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(p).await?);
        Ok(n)
    }
}

pub(crate) async fn migrate_postgres(pool: &PgPool, display_url: &str) -> Result<(), AuditError> {
    sqlx::migrate!("migrations/postgres")
        .run(pool)
        .await
        .map_err(|source| AuditError::Migrate {
            url: display_url.to_string(),
            source,
        })
}

/// `sqlite:///abs/path`, `sqlite://rel/path` or `sqlite:path` -> the path.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    (!rest.is_empty()).then(|| PathBuf::from(rest))
}

/// Drops the password from `scheme://user:password@host/...`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

fn is_permission_denied(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
}

/// When SQLite makes a commit durable; see the module docs. Written
/// `"full"` / `"normal"` in `[audit] sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync on every commit: survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints: survives agent crashes, not power loss.
    Normal,
}

async fn open_sqlite(path: &Path, access: Access, sync: SyncMode) -> Result<SqlitePool, AuditError> {
    match path.try_exists() {
        Err(e) if is_permission_denied(&e) => return Err(AuditError::PermissionDenied { path: path.into() }),
        Ok(false) if access == Access::ReadOnly => return Err(AuditError::Missing { path: path.into() }),
        Ok(false) => create_sqlite_file(path)?,
        _ => {}
    }
    // Probe with the access we need so the error names the real cause
    // instead of SQLite's generic "unable to open database file".
    let probe = std::fs::OpenOptions::new()
        .read(true)
        .write(access == Access::ReadWrite)
        .open(path);
    if let Err(e) = probe {
        if is_permission_denied(&e) {
            return Err(AuditError::PermissionDenied { path: path.into() });
        }
        return Err(AuditError::Create {
            path: path.into(),
            source: e,
        });
    }
    let options = SqliteConnectOptions::from_str("sqlite://")
        .expect("static sqlite URL parses")
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match sync {
            SyncMode::Full => SqliteSynchronous::Full,
            SyncMode::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(Duration::from_secs(30))
        .read_only(access == Access::ReadOnly)
        .create_if_missing(false);
    let display = format!("sqlite://{}", path.display());
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|source| match &source {
            sqlx::Error::Database(db) if db.message().contains("unable to open") => {
                AuditError::PermissionDenied { path: path.into() }
            }
            _ => AuditError::Connect { url: display, source },
        })
}

/// Directory 0750 and file 0640, group `promptwall` when it exists and we
/// are root, so that group can read the store and nobody else can.
fn create_sqlite_file(path: &Path) -> Result<(), AuditError> {
    let create_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| AuditError::Create { path: p, source }
    };
    let group = reader_gid();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(create_err(dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(create_err(dir))?;
            if let Some(gid) = group {
                chown_group(dir, gid)?;
            }
        }
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .open(path)
        .map_err(create_err(path))?;
    // SQLite gives the -wal and -shm files the main file's owner and mode.
    if let Some(gid) = group {
        chown_group(path, gid)?;
    }
    Ok(())
}

fn reader_gid() -> Option<u32> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new(READER_GROUP).expect("no NUL");
    // SAFETY: getgrnam reads a static NUL-terminated name; the result is
    // copied out before any other call can overwrite it.
    let group = unsafe { libc::getgrnam(name.as_ptr()) };
    (!group.is_null()).then(|| unsafe { (*group).gr_gid })
}

fn chown_group(path: &Path, gid: u32) -> Result<(), AuditError> {
    std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| AuditError::Create {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_map_to_paths() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/promptwall/audit.db").unwrap(),
            Path::new("/var/lib/promptwall/audit.db")
        );
        assert_eq!(
            sqlite_path("sqlite://audit.db?mode=rwc").unwrap(),
            Path::new("audit.db")
        );
        assert_eq!(sqlite_path("sqlite:x.db").unwrap(), Path::new("x.db"));
        assert!(sqlite_path("postgres://h/db").is_none());
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://agent:s3cret@db.corp:5432/pw"),
            "postgres://agent@db.corp:5432/pw"
        );
        assert_eq!(redact_url("postgres://db.corp/pw"), "postgres://db.corp/pw");
    }
}
