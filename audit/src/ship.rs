//! Fleet shipping: the local SQLite store is the durable spool; rows above
//! the per-central high-water mark are copied to PostgreSQL in batches.
//!
//! At least once, never lost: the mark advances only after the central
//! transaction committed; a crash in between re-sends the batch, and
//! `ON CONFLICT DO NOTHING` on the (machine_id, install_id, id, hash)
//! primary key makes the re-send a no-op. The hash is in the key so that a
//! *different* row with the same (machine, install, id) — a cloned VM image
//! that copied the store — is stored beside the first instead of being
//! swallowed; `verify` on the central store reports such pairs. No conflict
//! target is named on purpose: with a target, PostgreSQL requires SELECT on
//! those columns, and agents get INSERT only.
//!
//! A row the central store rejects for its content (a data error such as
//! text PostgreSQL cannot hold, from a spool written before fields were
//! sanitised) would otherwise fail its batch forever: it is quarantined in
//! the spool (`audit_quarantine`, listed by `promptwall audit verify`),
//! logged, and skipped, and the rows after it still ship. Errors about the
//! connection or permissions never quarantine anything: the batch is retried.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::QueryBuilder;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

use crate::record::{column_list, escape_controls, COLUMNS};
use crate::store::{bind_record, decode_record, redact_url, AuditStore, Pool};
use crate::{AuditError, AuditRecord};

/// PostgreSQL accepts at most 65535 bind parameters per statement.
const MAX_BATCH: usize = 65535 / COLUMNS.len();

pub struct CentralShipper {
    local: AuditStore,
    central_url: String,
    /// High-water-mark key: the URL without its password.
    central_key: String,
    batch_size: usize,
    interval: Duration,
    central: Option<PgPool>,
    /// Role to log in as when the URL names none: the machine id, so each
    /// agent is its own role (row-level security binds it to its machine).
    default_user: Option<String>,
}

/// How the central store answered a batch.
enum Outcome {
    Stored,
    /// The row (or one in the batch) is invalid for PostgreSQL: SQLSTATE and message.
    Rejected(Option<String>, String),
    Failed(sqlx::Error),
}

/// Data exceptions (22: bad text/number), integrity (23) and program limits
/// (54: index row too large) are about a row's content: retrying cannot help.
fn classify(result: Result<(), sqlx::Error>) -> Outcome {
    match result {
        Ok(()) => Outcome::Stored,
        Err(sqlx::Error::Database(db))
            if db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")) =>
        {
            Outcome::Rejected(db.code().map(|c| c.into_owned()), db.message().to_string())
        }
        Err(e) => Outcome::Failed(e),
    }
}

impl CentralShipper {
    /// `local` must be the SQLite spool; `central_url` a postgres:// URL
    /// whose role may INSERT into audit_log (the schema must exist: create
    /// it once with `promptwall audit migrate --db URL` as the owner role).
    pub fn new(
        local: AuditStore,
        central_url: &str,
        batch_size: usize,
        interval: Duration,
    ) -> Result<CentralShipper, AuditError> {
        if !local.is_sqlite() {
            return Err(AuditError::UnsupportedUrl(format!(
                "{} as the shipping spool: the local audit.url must be sqlite:// when [audit.central] is set",
                local.url()
            )));
        }
        if !(central_url.starts_with("postgres://") || central_url.starts_with("postgresql://")) {
            return Err(AuditError::UnsupportedUrl(redact_url(central_url)));
        }
        Ok(CentralShipper {
            local,
            central_url: central_url.to_string(),
            central_key: redact_url(central_url),
            batch_size: batch_size.clamp(1, MAX_BATCH),
            interval,
            central: None,
            default_user: None,
        })
    }

    /// Logs in as `user` (the machine id) when the central URL names no role.
    pub fn default_user(mut self, user: &str) -> CentralShipper {
        self.default_user = Some(user.to_string());
        self
    }

    async fn central(&mut self) -> Result<&PgPool, AuditError> {
        if self.central.is_none() {
            let connect_err = |source| AuditError::Connect {
                url: self.central_key.clone(),
                source,
            };
            let mut options: PgConnectOptions = self.central_url.parse().map_err(connect_err)?;
            if let Some(user) = &self.default_user {
                if url_user(&self.central_url).is_none() {
                    options = options.username(user);
                }
            }
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            self.central = Some(pool);
        }
        Ok(self.central.as_ref().expect("just set"))
    }

    /// Records this central store in the spool with nothing shipped yet (if
    /// it is new), so pruning keeps every row until the first batch lands.
    pub async fn register(&self) -> Result<(), AuditError> {
        let Pool::Sqlite(local) = self.local.pool() else {
            unreachable!("checked in new")
        };
        sqlx::query(
            "INSERT INTO audit_shipping (central, shipped_upto, updated_ts) VALUES ($1, 0, $2) ON CONFLICT (central) DO NOTHING",
        )
        .bind(&self.central_key)
        .bind(crate::time::now_ts())
        .execute(local)
        .await?;
        Ok(())
    }

    /// The id up to which rows are known to be in the central store.
    pub async fn shipped_upto(&self) -> Result<i64, AuditError> {
        let Pool::Sqlite(local) = self.local.pool() else {
            unreachable!("checked in new")
        };
        let v: Option<i64> = sqlx::query_scalar("SELECT shipped_upto FROM audit_shipping WHERE central = $1")
            .bind(&self.central_key)
            .fetch_optional(local)
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Ships one batch; returns how many rows it carried (0: caught up).
    pub async fn ship_once(&mut self) -> Result<usize, AuditError> {
        let Pool::Sqlite(local) = self.local.pool().clone() else {
            unreachable!("checked in new")
        };
        let upto = self.shipped_upto().await?;
        let sql = format!(
            "SELECT {} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
            COLUMNS.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(upto)
            .bind(self.batch_size as i64)
            .fetch_all(&local)
            .await?;
        let records: Vec<AuditRecord> = rows
            .iter()
            .map(|r| decode_record!(r))
            .collect::<Result<_, AuditError>>()?;
        let Some(last) = records.last().map(|r| r.id) else {
            return Ok(0);
        };
        // A row of another machine id than this agent's (the id changed: a
        // config drop-in, a regenerated /etc/machine-id) can never pass the
        // per-machine row-level security: quarantined, not retried forever.
        let batch_len = records.len();
        let mut records = records;
        if let Some(role) = self.default_user.clone() {
            let (own, foreign): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| r.machine_id == role);
            for rec in &foreign {
                let reason = format!(
                    "row of machine id {} cannot be shipped by machine {role} (the machine id changed); row-level security would refuse it forever",
                    rec.machine_id
                );
                self.quarantine(&local, rec, Some("42501".into()), &reason).await?;
            }
            records = own;
        }
        if records.is_empty() {
            self.mark_shipped(&local, last).await?;
            return Ok(batch_len);
        }
        let central = self.central().await?.clone();
        let outcome = classify(insert(&central, &records).await);
        let outcome = match outcome {
            // Find the offending row(s): one statement per row, so each
            // invalid row is quarantined and every valid one is stored.
            Outcome::Rejected(..) if records.len() > 1 => {
                let mut failed = None;
                for rec in &records {
                    match classify(insert(&central, std::slice::from_ref(rec)).await) {
                        Outcome::Stored => {}
                        Outcome::Rejected(code, message) => self.quarantine(&local, rec, code, &message).await?,
                        Outcome::Failed(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                failed.map_or(Outcome::Stored, Outcome::Failed)
            }
            Outcome::Rejected(code, message) => {
                self.quarantine(&local, &records[0], code, &message).await?;
                Outcome::Stored
            }
            other => other,
        };
        if let Outcome::Failed(e) = outcome {
            // A broken pool (server restarted) reconnects on next use anyway;
            // dropping it also resets a pool stuck on a dead address.
            self.central = None;
            return Err(self.explain(e, &records[0].machine_id));
        }
        self.mark_shipped(&local, last).await?;
        Ok(batch_len)
    }

    /// Advances the shipped mark past `last`.
    async fn mark_shipped(&self, local: &sqlx::SqlitePool, last: i64) -> Result<(), AuditError> {
        sqlx::query(
            "INSERT INTO audit_shipping (central, shipped_upto, updated_ts) VALUES ($1, $2, $3) \
             ON CONFLICT (central) DO UPDATE SET shipped_upto = excluded.shipped_upto, updated_ts = excluded.updated_ts",
        )
        .bind(&self.central_key)
        .bind(last)
        .bind(crate::time::now_ts())
        .execute(local)
        .await?;
        Ok(())
    }

    /// Records a row the central store refused, so shipping can go on.
    async fn quarantine(
        &self,
        local: &sqlx::SqlitePool,
        rec: &AuditRecord,
        code: Option<String>,
        message: &str,
    ) -> Result<(), AuditError> {
        let reason = escape_controls(message, false).into_owned();
        tracing::error!(id = rec.id, machine_id = %rec.machine_id, central = %self.central_key,
            sqlstate = code.as_deref().unwrap_or(""), reason = %reason,
            "the central store rejected an audit row; it is quarantined in the local spool (see `promptwall audit verify`) and shipping goes on");
        sqlx::query(
            "INSERT OR IGNORE INTO audit_quarantine (central, id, machine_id, install_id, hash, sqlstate, reason, ts, row_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&self.central_key)
        .bind(rec.id)
        .bind(&rec.machine_id)
        .bind(&rec.install_id)
        .bind(&rec.hash)
        .bind(code)
        .bind(reason)
        .bind(crate::time::now_ts())
        .bind(crate::render::record_json(rec, true).to_string())
        .execute(local)
        .await?;
        Ok(())
    }

    /// Row-level security refusals name the fix; everything else as is.
    fn explain(&self, e: sqlx::Error, machine_id: &str) -> AuditError {
        if let sqlx::Error::Database(db) = &e {
            if db.code().as_deref() == Some("42501") && db.message().contains("row-level security") {
                return AuditError::CentralRefused {
                    central: self.central_key.clone(),
                    machine_id: machine_id.to_string(),
                };
            }
            // undefined_column: the agent was upgraded before the central schema.
            if db.code().as_deref() == Some("42703") {
                return AuditError::SchemaOutdated {
                    url: self.central_key.clone(),
                };
            }
        }
        AuditError::Database(e)
    }

    /// Ships until caught up; returns the number of rows sent.
    pub async fn drain(&mut self) -> Result<usize, AuditError> {
        let mut total = 0;
        loop {
            let n = self.ship_once().await?;
            total += n;
            if n < self.batch_size {
                return Ok(total);
            }
        }
    }

    /// Runs in the background: drains every `interval` (or when poked),
    /// backing off exponentially while the central store is unreachable.
    pub fn spawn(mut self) -> ShipperHandle {
        let poke = Arc::new(Notify::new());
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (errors_tx, errors_rx) = watch::channel(0u64);
        let (shipped_tx, shipped_rx) = watch::channel(None::<std::time::SystemTime>);
        let task_poke = poke.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let wait = match self.drain().await {
                    Ok(_) => {
                        shipped_tx.send_replace(Some(std::time::SystemTime::now()));
                        backoff = Duration::from_millis(200);
                        self.interval
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, central = %self.central_key, retry_in_ms = backoff.as_millis() as u64,
                            "audit rows not shipped yet; they stay in the local spool");
                        errors_tx.send_modify(|n| *n += 1);
                        let wait = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        wait
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = task_poke.notified() => {}
                    _ = stop_rx.changed() => {
                        // Last attempt so a clean shutdown leaves little behind.
                        let _ = self.drain().await;
                        return;
                    }
                }
            }
        });
        ShipperHandle {
            poke,
            stop: stop_tx,
            progress: ShipProgress {
                errors: errors_rx,
                shipped: shipped_rx,
            },
            task: Some(task),
        }
    }
}

/// One INSERT for `records`, in a transaction; re-sent rows are skipped.
async fn insert(central: &PgPool, records: &[AuditRecord]) -> Result<(), sqlx::Error> {
    let mut insert = QueryBuilder::new(format!("INSERT INTO audit_log ({}) ", column_list()));
    insert.push_values(records, |mut b, r| {
        bind_record!(b, push_bind, r);
    });
    insert.push(" ON CONFLICT DO NOTHING");
    let mut tx = central.begin().await?;
    insert.build().execute(&mut *tx).await?;
    tx.commit().await
}

/// The role `postgres://user[:password]@host/db?user=...` names, if any.
fn url_user(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let in_authority = authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split(':').next())
        .filter(|u| !u.is_empty());
    let in_query = rest
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("user=")))
        .filter(|u| !u.is_empty());
    in_query.or(in_authority)
}

pub struct ShipperHandle {
    poke: Arc<Notify>,
    stop: watch::Sender<bool>,
    progress: ShipProgress,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How shipping goes, readable while it runs (metrics, status).
#[derive(Clone)]
pub struct ShipProgress {
    errors: watch::Receiver<u64>,
    shipped: watch::Receiver<Option<std::time::SystemTime>>,
}

impl ShipProgress {
    /// Failed shipping attempts so far (central store unreachable, ...).
    pub fn failed_attempts(&self) -> u64 {
        *self.errors.borrow()
    }

    /// When the spool was last drained to the central store (every row
    /// written before then had shipped).
    pub fn last_drained(&self) -> Option<std::time::SystemTime> {
        *self.shipped.borrow()
    }
}

impl ShipperHandle {
    /// Ship now instead of at the next interval.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Failed shipping attempts so far (central store unreachable, ...).
    pub fn failed_attempts(&self) -> u64 {
        self.progress.failed_attempts()
    }

    pub fn progress(&self) -> ShipProgress {
        self.progress.clone()
    }

    /// Stops after a last drain attempt.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_named_in_a_url_is_found() {
        assert_eq!(url_user("postgres://agent:pw@db/pw"), Some("agent"));
        assert_eq!(url_user("postgres://db:5432/pw?sslmode=require&user=m1"), Some("m1"));
        assert_eq!(url_user("postgres://db/pw"), None);
        assert_eq!(url_user("postgresql://@db/pw"), None);
    }
}
