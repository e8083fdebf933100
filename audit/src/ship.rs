//! Fleet shipping: the local SQLite store is the durable spool; rows above
//! the per-central high-water mark are copied to PostgreSQL in batches.
//!
//! At least once, never lost: the mark advances only after the central
//! transaction committed; a crash in between re-sends the batch, and
//! `ON CONFLICT DO NOTHING` on the (machine_id, id) primary key makes the
//! re-send a no-op. No conflict target is named on purpose: with a target,
//! PostgreSQL requires SELECT on those columns, and agents get INSERT only.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::QueryBuilder;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

use crate::record::{column_list, COLUMNS};
use crate::store::{bind_record, decode_record, redact_url, AuditStore, Pool};
use crate::{AuditError, AuditRecord};

/// PostgreSQL accepts at most 65535 bind parameters per statement.
const MAX_BATCH: usize = 65535 / 41;

pub struct CentralShipper {
    local: AuditStore,
    central_url: String,
    /// High-water-mark key: the URL without its password.
    central_key: String,
    batch_size: usize,
    interval: Duration,
    central: Option<PgPool>,
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
        })
    }

    async fn central(&mut self) -> Result<&PgPool, AuditError> {
        if self.central.is_none() {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&self.central_url)
                .await
                .map_err(|source| AuditError::Connect {
                    url: self.central_key.clone(),
                    source,
                })?;
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
        let central = self.central().await?.clone();
        let result = async {
            let mut insert = QueryBuilder::new(format!("INSERT INTO audit_log ({}) ", column_list()));
            insert.push_values(&records, |mut b, r| {
                bind_record!(b, push_bind, r);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            let mut tx = central.begin().await?;
            insert.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        if let Err(e) = result {
            // A broken pool (server restarted) reconnects on next use anyway;
            // dropping it also resets a pool stuck on a dead address.
            self.central = None;
            return Err(AuditError::Database(e));
        }
        sqlx::query(
            "INSERT INTO audit_shipping (central, shipped_upto, updated_ts) VALUES ($1, $2, $3) \
             ON CONFLICT (central) DO UPDATE SET shipped_upto = excluded.shipped_upto, updated_ts = excluded.updated_ts",
        )
        .bind(&self.central_key)
        .bind(last)
        .bind(crate::time::now_ts())
        .execute(&local)
        .await?;
        Ok(records.len())
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
        let task_poke = poke.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let wait = match self.drain().await {
                    Ok(_) => {
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
            errors: errors_rx,
            task: Some(task),
        }
    }
}

pub struct ShipperHandle {
    poke: Arc<Notify>,
    stop: watch::Sender<bool>,
    errors: watch::Receiver<u64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ShipperHandle {
    /// Ship now instead of at the next interval.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Failed shipping attempts so far (central store unreachable, ...).
    pub fn failed_attempts(&self) -> u64 {
        *self.errors.borrow()
    }

    /// Stops after a last drain attempt.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
