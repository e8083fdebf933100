//! Fleet limits: every second, this machine's usage of each `fleet` limit
//! goes to the central store (`[audit.central]`) and the fleet's totals
//! come back into the quota engine. While the store does not answer, the
//! engine lets this machine go on only within `[quota] fleet_allowance`.

use std::time::Duration;

use promptwall_audit::fleet::{sync_usage, UsageRow};
use promptwall_audit::AuditStore;
use promptwall_proxy::quota::{FleetUsage, Quota};

/// One sync may take this long before it counts as failed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);

pub fn spawn(central_url: String, machine_id: String, quota: Quota) -> tokio::task::JoinHandle<()> {
    quota.enable_fleet();
    tokio::spawn(async move {
        let mut store: Option<AuditStore> = None;
        let mut failing = false;
        loop {
            let result =
                tokio::time::timeout(SYNC_TIMEOUT, sync_once(&mut store, &central_url, &machine_id, &quota)).await;
            match result.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {} s", SYNC_TIMEOUT.as_secs()))) {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("fleet limits: the central store answers again; usage reconciled");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("fleet limits: cannot sync with the central store ({e:#}); going on within [quota] fleet_allowance until it answers");
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn sync_once(store: &mut Option<AuditStore>, url: &str, machine_id: &str, quota: &Quota) -> anyhow::Result<()> {
    if store.is_none() {
        *store = Some(AuditStore::open(url).await?);
    }
    let s = store.as_ref().expect("opened above");
    let own = quota.fleet_own();
    let rows: Vec<UsageRow> = own
        .iter()
        .map(|u| UsageRow {
            limit: u.limit.clone(),
            key: u.key.clone(),
            window_start: u.window_start,
            used: u.used,
        })
        .collect();
    // Months are the longest windows: older rows are not the current one.
    let since = chrono::Utc::now().timestamp_millis() - 32 * 86_400_000;
    let totals = sync_usage(s, machine_id, &rows, since, &promptwall_audit::time::now_ts()).await?;
    let totals: Vec<FleetUsage> = totals
        .into_iter()
        .map(|t| FleetUsage {
            limit: t.limit,
            key: t.key,
            window_start: t.window_start,
            used: t.used,
        })
        .collect();
    quota.fleet_apply(&own, &totals);
    Ok(())
}
