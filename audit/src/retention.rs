//! Periodic retention for the daemon: prune old rows (checkpointed) and
//! purge old captured bodies.

use std::time::Duration;

use chrono::Utc;

use crate::AuditStore;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub rows_days: Option<u32>,
    pub bodies_days: Option<u32>,
}

impl RetentionPolicy {
    pub fn is_off(&self) -> bool {
        self.rows_days.is_none() && self.bodies_days.is_none()
    }

    /// Applies the policy once; returns (rows pruned, bodies purged).
    pub async fn apply(&self, store: &AuditStore) -> Result<(u64, u64), crate::AuditError> {
        let cutoff = |days: u32| crate::time::format_ts(Utc::now() - chrono::Duration::days(i64::from(days)));
        let mut bodies = 0;
        if let Some(days) = self.bodies_days {
            bodies = store.purge_bodies(&cutoff(days)).await?;
        }
        let mut rows = 0;
        if let Some(days) = self.rows_days {
            // Never forced: a broken chain is kept as evidence and reported.
            rows = store.prune(&cutoff(days), false).await?.iter().map(|r| r.deleted).sum();
        }
        Ok((rows, bodies))
    }

    /// Runs `apply` now and then every `every`, logging failures.
    pub fn spawn(self, store: AuditStore, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if self.is_off() {
            return None;
        }
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match self.apply(&store).await {
                    Ok((rows, bodies)) if rows + bodies > 0 => {
                        tracing::info!(rows, bodies, "audit retention applied")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
                }
            }
        }))
    }
}
