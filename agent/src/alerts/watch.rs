//! Events found by looking rather than told: spend anomalies (from the
//! audit store, every 5 minutes), newly learned passthroughs and the
//! redirect failing (from the daemon's state, every 10 seconds). The
//! decisions are pure functions, tested on their own.

use std::collections::BTreeSet;
use std::time::Duration;

use promptwall_audit::{AuditStore, QueryFilter, TopBy, TopRow};
use serde_json::{json, Value};

use super::{AlertEvent, Alerts, AlertsConfig, EventKind, Severity};

/// An identity spending far above its own habit.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub user: String,
    pub last_hour_usd: f64,
    pub baseline_hourly_usd: f64,
}

/// The rule: spend in the last hour ≥ `factor` × the user's average hourly
/// spend over the baseline window (the hours before it), and ≥ `min_usd`,
/// so a user with no history is flagged only past `min_usd`.
pub fn anomalies(
    last_hour: &[TopRow],
    baseline: &[TopRow],
    baseline_hours: f64,
    factor: f64,
    min_usd: f64,
) -> Vec<Anomaly> {
    last_hour
        .iter()
        .filter_map(|r| {
            let user = r.key.clone()?;
            let past = baseline
                .iter()
                .find(|b| b.key.as_deref() == Some(user.as_str()))
                .map_or(0.0, |b| b.cost_usd);
            let hourly = past / baseline_hours.max(1.0);
            (r.cost_usd >= min_usd && r.cost_usd >= factor * hourly).then_some(Anomaly {
                user,
                last_hour_usd: r.cost_usd,
                baseline_hourly_usd: hourly,
            })
        })
        .collect()
}

/// Whether the redirect is failing, from `promptwall status`'s intercept
/// document: eBPF mode with no program attached, or a heartbeat older
/// than a minute.
pub fn interception_failure(status: &Value) -> Option<String> {
    if status.is_null() {
        return None;
    }
    if status["mode"] == "ebpf" && status["programs"].as_array().is_some_and(|p| p.is_empty()) {
        return Some("the eBPF programs are detached".into());
    }
    match status["heartbeat_age_ms"].as_u64() {
        Some(age) if age > 60_000 => Some(format!("the redirect's heartbeat is {} s old", age / 1000)),
        _ => None,
    }
}

/// Runs the watchers until aborted.
pub fn spawn(
    alerts: Alerts,
    config: AlertsConfig,
    store: AuditStore,
    learned: impl Fn() -> Vec<promptwall_proxy::passthrough::LearnedEntry> + Send + 'static,
    intercept: Option<std::sync::Arc<dyn Fn() -> Value + Send + Sync>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut announced: BTreeSet<(u32, String, String)> = BTreeSet::new();
        let mut failing = false;
        let mut tick = 0u64;
        loop {
            for e in learned() {
                let key = (e.uid, e.exe.clone(), e.server_name.clone());
                if e.learned_at.is_some() && announced.insert(key) {
                    let learned_at = e.learned_at.clone().unwrap_or_default();
                    let event = AlertEvent::new(
                        EventKind::Passthrough,
                        Severity::Warning,
                        alerts.machine_id(),
                        format!(
                            "{} (uid {}) rejected the org CA {} times for {}; its connections now {}",
                            e.exe,
                            e.uid,
                            e.failures,
                            e.server_name,
                            if e.passthrough {
                                "pass uninspected"
                            } else {
                                "stay blocked"
                            }
                        ),
                        json!({"uid": e.uid, "exe": e.exe, "server_name": e.server_name, "failures": e.failures,
                               "passthrough": e.passthrough, "learned_at": learned_at}),
                    )
                    .keyed(&[&e.uid.to_string(), &e.exe, &e.server_name, &learned_at]);
                    let _ = alerts.emit(EventKind::Passthrough, event).await;
                }
            }
            if let Some(status) = intercept.as_ref().map(|f| f()) {
                match (interception_failure(&status), failing) {
                    (Some(why), false) => {
                        failing = true;
                        let event = AlertEvent::new(
                            EventKind::Interception,
                            Severity::Critical,
                            alerts.machine_id(),
                            format!("interception is failing: {why}; coding agents may reach providers uninspected"),
                            json!({"reason": why, "status": status}),
                        );
                        let _ = alerts.emit(EventKind::Interception, event).await;
                    }
                    (None, true) => failing = false,
                    _ => {}
                }
            }
            if tick.is_multiple_of(30) {
                if let Err(e) = check_spend(&alerts, &config, &store).await {
                    tracing::warn!("spend anomaly check failed: {e:#}");
                }
            }
            tick += 1;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
}

async fn check_spend(alerts: &Alerts, config: &AlertsConfig, store: &AuditStore) -> anyhow::Result<()> {
    let days = config.anomaly_baseline_days;
    let last_hour = store
        .top(
            TopBy::User,
            &QueryFilter {
                since: Some("1h".into()),
                ..QueryFilter::default()
            },
        )
        .await?;
    if last_hour.iter().all(|r| r.cost_usd < config.anomaly_min_usd) {
        return Ok(());
    }
    let baseline = store
        .top(
            TopBy::User,
            &QueryFilter {
                since: Some(format!("{days}d")),
                until: Some("1h".into()),
                ..QueryFilter::default()
            },
        )
        .await?;
    let hour = chrono::Utc::now().format("%Y-%m-%dT%H").to_string();
    for a in anomalies(
        &last_hour,
        &baseline,
        f64::from(days) * 24.0 - 1.0,
        config.anomaly_factor,
        config.anomaly_min_usd,
    ) {
        let event = AlertEvent::new(
            EventKind::Anomaly,
            Severity::Warning,
            alerts.machine_id(),
            format!(
                "user {} spent ${:.2} in the last hour, against ${:.2} an hour over the last {days} days",
                a.user, a.last_hour_usd, a.baseline_hourly_usd
            ),
            json!({"user": a.user, "last_hour_usd": a.last_hour_usd, "baseline_hourly_usd": a.baseline_hourly_usd,
                   "factor": config.anomaly_factor, "baseline_days": days}),
        )
        // Once per user per clock hour, restarts included.
        .keyed(&[&a.user, &hour]);
        alerts.emit(EventKind::Anomaly, event).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, cost: f64) -> TopRow {
        TopRow {
            key: Some(user.into()),
            requests: 1,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: cost,
            blocked: 0,
            redacted: 0,
        }
    }

    #[test]
    fn an_hour_far_above_the_users_own_average_is_an_anomaly() {
        // 167 baseline hours at $1 each: $1 an hour.
        let baseline = [row("alice", 167.0), row("bob", 167.0)];
        let hour = [row("alice", 6.0), row("bob", 4.0)];
        let found = anomalies(&hour, &baseline, 167.0, 5.0, 5.0);
        assert_eq!(
            found,
            [Anomaly {
                user: "alice".into(),
                last_hour_usd: 6.0,
                baseline_hourly_usd: 1.0
            }]
        );
    }

    #[test]
    fn a_heavy_but_habitual_user_and_small_new_spend_are_not() {
        let baseline = [row("heavy", 167.0 * 20.0)];
        assert!(anomalies(&[row("heavy", 50.0)], &baseline, 167.0, 5.0, 5.0).is_empty());
        assert!(anomalies(&[row("new", 4.99)], &[], 167.0, 5.0, 5.0).is_empty());
        assert_eq!(anomalies(&[row("new", 5.0)], &[], 167.0, 5.0, 5.0).len(), 1);
    }

    #[test]
    fn interception_fails_when_programs_detach_or_the_heartbeat_stops() {
        assert_eq!(interception_failure(&Value::Null), None);
        assert_eq!(
            interception_failure(&json!({"mode": "ebpf", "programs": [{"name": "connect4"}], "heartbeat_age_ms": 900})),
            None
        );
        assert!(interception_failure(&json!({"mode": "ebpf", "programs": []})).is_some());
        assert!(
            interception_failure(&json!({"mode": "nftables", "heartbeat_age_ms": 120_000}))
                .unwrap()
                .contains("120 s")
        );
    }
}
