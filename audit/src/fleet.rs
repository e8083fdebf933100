//! Fleet limits' usage in the central store: each agent writes its own
//! usage per (limit, key, calendar window), never lowering it (a restarted
//! agent starts counting from zero but cannot erase what it used), and
//! reads the sums over machines.

use crate::store::{on_pool, AuditStore};
use crate::AuditError;

#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub limit: String,
    pub key: String,
    /// Wall ms since the epoch.
    pub window_start: i64,
    pub used: f64,
}

/// Writes `own` for `machine_id` and returns every total of windows
/// starting at or after `since` (ms).
pub async fn sync_usage(
    store: &AuditStore,
    machine_id: &str,
    own: &[UsageRow],
    since: i64,
    now_ts: &str,
) -> Result<Vec<UsageRow>, AuditError> {
    let upsert = "INSERT INTO quota_usage (limit_name, key, window_start, machine_id, used, updated_at) \
                  VALUES ($1, $2, $3, $4, $5, $6) \
                  ON CONFLICT (limit_name, key, window_start, machine_id) DO UPDATE SET \
                  used = CASE WHEN excluded.used > quota_usage.used THEN excluded.used ELSE quota_usage.used END, \
                  updated_at = excluded.updated_at";
    let totals = "SELECT limit_name, key, window_start, SUM(used) FROM quota_usage \
                  WHERE window_start >= $1 GROUP BY limit_name, key, window_start";
    let rows: Vec<(String, String, i64, f64)> = on_pool!(store.pool(), p => {
        let mut tx = p.begin().await?;
        for r in own {
            sqlx::query(upsert)
                .bind(&r.limit)
                .bind(&r.key)
                .bind(r.window_start)
                .bind(machine_id)
                .bind(r.used)
                .bind(now_ts)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        sqlx::query_as(totals).bind(since).fetch_all(p).await?
    });
    Ok(rows
        .into_iter()
        .map(|(limit, key, window_start, used)| UsageRow {
            limit,
            key,
            window_start,
            used,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn machines_add_up_and_none_can_lower_its_own_usage() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&format!("sqlite://{}", dir.path().join("a.db").display()))
            .await
            .unwrap();
        let row = |used| UsageRow {
            limit: "org".into(),
            key: "org".into(),
            window_start: 1000,
            used,
        };
        sync_usage(&store, "a", &[row(3.0)], 0, "t").await.unwrap();
        let totals = sync_usage(&store, "b", &[row(2.0)], 0, "t").await.unwrap();
        assert_eq!(totals, [row(5.0)]);
        // a restarted: it reports 1, the store keeps its 3.
        let totals = sync_usage(&store, "a", &[row(1.0)], 0, "t").await.unwrap();
        assert_eq!(totals, [row(5.0)]);
        assert!(
            sync_usage(&store, "a", &[], 2000, "t").await.unwrap().is_empty(),
            "older windows are not read"
        );
    }
}
