//! The durable outbox of alerts, in the audit store.
//!
//! The contract: [`Outbox::enqueue`] resolves once the alert is committed
//! (one row per webhook); the deliverer takes [`Outbox::due`] rows, posts
//! them and marks each [`Outbox::delivered`] only after the webhook's 2xx,
//! or [`Outbox::retry_later`]. A crash between the post and the mark
//! delivers the alert again after restart: at least once, never lost;
//! receivers deduplicate by `event_id`. Enqueuing an event id twice for a
//! webhook is a no-op.

use crate::store::{on_pool, AuditStore, Pool};
use crate::AuditError;

/// One alert for one webhook, not yet delivered.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Pending {
    pub seq: i64,
    pub event_id: String,
    pub webhook: String,
    pub kind: String,
    pub created_at: String,
    pub body: String,
    pub attempts: i64,
}

#[derive(Clone)]
pub struct Outbox {
    pool: Pool,
}

impl Outbox {
    pub fn new(store: &AuditStore) -> Outbox {
        Outbox {
            pool: store.pool().clone(),
        }
    }

    /// Commits `body` (the event's JSON) for each of `webhooks`, due now.
    pub async fn enqueue(
        &self,
        event_id: &str,
        kind: &str,
        created_at: &str,
        body: &str,
        webhooks: &[String],
    ) -> Result<(), AuditError> {
        let sql = "INSERT INTO alert_outbox (event_id, webhook, kind, created_at, body, next_attempt_at) \
                   VALUES ($1, $2, $3, $4, $5, $4) ON CONFLICT (event_id, webhook) DO NOTHING";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            for webhook in webhooks {
                sqlx::query(sql)
                    .bind(event_id)
                    .bind(webhook)
                    .bind(kind)
                    .bind(created_at)
                    .bind(body)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Undelivered rows whose next attempt is at or before `now`, oldest
    /// first.
    pub async fn due(&self, now: &str, limit: i64) -> Result<Vec<Pending>, AuditError> {
        let sql = "SELECT seq, event_id, webhook, kind, created_at, body, attempts FROM alert_outbox \
                   WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY seq LIMIT $2";
        Ok(on_pool!(&self.pool, p => sqlx::query_as(sql).bind(now).bind(limit).fetch_all(p).await?))
    }

    pub async fn delivered(&self, seq: i64, at: &str) -> Result<(), AuditError> {
        let sql =
            "UPDATE alert_outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE seq = $1";
        on_pool!(&self.pool, p => sqlx::query(sql).bind(seq).bind(at).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Records a failed attempt (`error` never holds the webhook's secret)
    /// and when to try again.
    pub async fn retry_later(&self, seq: i64, next_attempt_at: &str, error: &str) -> Result<(), AuditError> {
        let sql =
            "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE seq = $1";
        on_pool!(&self.pool, p => sqlx::query(sql).bind(seq).bind(next_attempt_at).bind(error).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Undelivered rows, and the next time one is due (for the deliverer's
    /// sleep and `promptwall status`).
    pub async fn backlog(&self) -> Result<(i64, Option<String>), AuditError> {
        let sql = "SELECT COUNT(*), MIN(next_attempt_at) FROM alert_outbox WHERE delivered_at IS NULL";
        Ok(on_pool!(&self.pool, p => sqlx::query_as(sql).fetch_one(p).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn outbox() -> (Outbox, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = AuditStore::open(&url).await.unwrap();
        (Outbox::new(&store), dir)
    }

    const T0: &str = "2027-01-15T08:00:00.000Z";
    const T1: &str = "2027-01-15T08:00:05.000Z";

    #[tokio::test]
    async fn an_event_is_due_once_per_webhook_until_delivered_and_enqueuing_it_again_is_a_no_op() {
        let (o, _dir) = outbox().await;
        let hooks = vec!["ops".to_string(), "slack".to_string()];
        o.enqueue("ev-1", "budget.crossed", T0, "{}", &hooks).await.unwrap();
        o.enqueue("ev-1", "budget.crossed", T0, "{}", &hooks).await.unwrap();
        let due = o.due(T0, 10).await.unwrap();
        assert_eq!(
            due.iter().map(|p| p.webhook.as_str()).collect::<Vec<_>>(),
            ["ops", "slack"]
        );
        o.delivered(due[0].seq, T0).await.unwrap();
        let left = o.due(T0, 10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].webhook, "slack");
        assert_eq!(o.backlog().await.unwrap().0, 1);
    }

    #[tokio::test]
    async fn a_failed_attempt_waits_until_its_next_time_and_counts() {
        let (o, _dir) = outbox().await;
        o.enqueue("ev-2", "secret.blocked", T0, "{}", &["ops".to_string()])
            .await
            .unwrap();
        let seq = o.due(T0, 10).await.unwrap()[0].seq;
        o.retry_later(seq, T1, "connection refused").await.unwrap();
        assert!(o.due(T0, 10).await.unwrap().is_empty());
        let again = o.due(T1, 10).await.unwrap();
        assert_eq!(again[0].attempts, 1);
        assert_eq!(o.backlog().await.unwrap(), (1, Some(T1.to_string())));
    }
}
