//! Alerts as signed webhooks, from a durable outbox in the audit store.
//!
//! - [`event`]: the schema, the signature, Slack's rendering (pure).
//! - [`Alerts::emit`]: commits an event to the outbox, one row per
//!   subscribed webhook, then wakes the deliverer.
//! - [`deliver`]: posts due rows, marks them delivered after a 2xx, else
//!   retries with backoff; rows survive a crash (at least once).
//! - [`watch`]: the events nobody calls `emit` for: spend anomalies,
//!   learned passthroughs, interception failing.
//!
//! `[alerts]` in the config:
//!
//! ```toml
//! [[alerts.webhooks]]
//! name = "ops"
//! url = "https://hooks.example.com/promptwall"
//! secret_file = "/etc/promptwall/webhook.secret"   # or secret_env; the HMAC key
//! format = "json"                                   # or "slack"
//! events = ["budget", "anomaly", "secret", "passthrough", "interception"]  # default: all
//! ```

pub mod deliver;
pub mod event;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use promptwall_audit::Outbox;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use event::{AlertEvent, EventKind, Format, Severity};

/// `[alerts]`. No webhooks (the default): nothing is queued or sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub webhooks: Vec<WebhookConfig>,
    /// A spend anomaly: an identity's spend in the last hour is at least
    /// `anomaly_factor` times its average hourly spend over the previous
    /// `anomaly_baseline_days`, and at least `anomaly_min_usd`.
    pub anomaly_factor: f64,
    pub anomaly_min_usd: f64,
    pub anomaly_baseline_days: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhooks: Vec::new(),
            anomaly_factor: 5.0,
            anomaly_min_usd: 5.0,
            anomaly_baseline_days: 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    /// `https://…` (or `http://` for a receiver on this machine).
    pub url: String,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub format: Format,
    /// Empty: every kind.
    #[serde(default)]
    pub events: Vec<EventKind>,
}

impl AlertsConfig {
    /// Every mistake in the section, with its fix (secrets are read by
    /// [`Webhook::load`], not here).
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for w in &self.webhooks {
            if w.name.is_empty() || !names.insert(&w.name) {
                return Err(format!(
                    "webhook {:?}: give each webhook its own non-empty name",
                    w.name
                ));
            }
            let uri: http::Uri = w
                .url
                .parse()
                .map_err(|e| format!("webhook {:?}: url {:?} is not a URL ({e})", w.name, w.url))?;
            if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
                return Err(format!(
                    "webhook {:?}: url must be https://host/… (or http:// for a local receiver)",
                    w.name
                ));
            }
            if w.secret_file.is_some() == w.secret_env.is_some() {
                return Err(format!(
                    "webhook {:?}: set exactly one of secret_file or secret_env (the HMAC key receivers verify)",
                    w.name
                ));
            }
        }
        if !(self.anomaly_factor.is_finite() && self.anomaly_factor >= 1.0) {
            return Err("anomaly_factor must be a number ≥ 1".into());
        }
        if !(self.anomaly_min_usd.is_finite() && self.anomaly_min_usd >= 0.0) || self.anomaly_baseline_days == 0 {
            return Err("anomaly_min_usd must be ≥ 0 and anomaly_baseline_days ≥ 1".into());
        }
        Ok(())
    }
}

/// A webhook with its secret loaded.
#[derive(Clone)]
pub struct Webhook {
    pub name: String,
    pub url: http::Uri,
    pub format: Format,
    pub events: Vec<EventKind>,
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub fn load(c: &WebhookConfig) -> anyhow::Result<Webhook> {
        let secret = match (&c.secret_file, &c.secret_env) {
            (Some(path), _) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "webhook {:?}: cannot read secret_file {} ({e}); create it (e.g. openssl rand -hex 32 > {0}) or fix the path",
                    c.name,
                    path.display()
                )
            })?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                anyhow::anyhow!("webhook {:?}: environment variable {var} (secret_env) is not set; set it for the agent's service", c.name)
            })?,
            (None, None) => anyhow::bail!("webhook {:?}: no secret_file or secret_env", c.name),
        };
        let secret = secret.trim();
        if secret.len() < 16 {
            anyhow::bail!(
                "webhook {:?}: its secret is shorter than 16 characters; use a random one (openssl rand -hex 32)",
                c.name
            );
        }
        Ok(Webhook {
            name: c.name.clone(),
            url: c.url.parse()?,
            format: c.format,
            events: c.events.clone(),
            secret: Arc::from(secret.as_bytes()),
        })
    }

    pub fn wants(&self, kind: EventKind) -> bool {
        kind == EventKind::Test || self.events.is_empty() || self.events.contains(&kind)
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// Where events go: the outbox, for the webhooks that subscribe.
#[derive(Clone)]
pub struct Alerts {
    outbox: Outbox,
    webhooks: Arc<Vec<Webhook>>,
    machine_id: String,
    wake: Arc<Notify>,
}

impl Alerts {
    pub fn new(outbox: Outbox, webhooks: Vec<Webhook>, machine_id: String) -> Alerts {
        Alerts {
            outbox,
            webhooks: Arc::new(webhooks),
            machine_id,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn machine_id(&self) -> &str {
        &self.machine_id
    }

    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty()
    }

    /// Commits `event` for every webhook subscribed to its kind; resolves
    /// once it is durable.
    pub async fn emit(&self, kind: EventKind, event: AlertEvent) -> anyhow::Result<()> {
        let hooks: Vec<String> = self
            .webhooks
            .iter()
            .filter(|w| w.wants(kind))
            .map(|w| w.name.clone())
            .collect();
        if hooks.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(&event)?;
        self.outbox
            .enqueue(&event.id, &event.kind, &event.ts, &body, &hooks)
            .await?;
        tracing::info!(kind = %event.kind, id = %event.id, "alert queued: {}", event.summary);
        self.wake.notify_one();
        Ok(())
    }

    /// [`Self::emit`] from code that cannot wait (a quota crossing inside
    /// the request path).
    pub fn emit_later(&self, kind: EventKind, event: AlertEvent) {
        let alerts = self.clone();
        tokio::spawn(async move {
            if let Err(e) = alerts.emit(kind, event).await {
                tracing::error!("an alert could not be queued: {e:#}; check the audit store");
            }
        });
    }
}

/// The event for a `[quota]` crossing.
pub fn budget_event(machine_id: &str, e: &promptwall_proxy::quota::QuotaEvent) -> AlertEvent {
    use promptwall_proxy::quota::amount;
    let severity = match (e.percent, e.soft) {
        (100, false) => Severity::Critical,
        (p, _) if p >= 80 => Severity::Warning,
        _ => Severity::Info,
    };
    let summary = format!(
        "limit {} at {} % for {} {}: {} of {} {}{}",
        e.limit,
        e.percent,
        e.per.as_str(),
        e.key,
        amount(e.measure, e.used),
        amount(e.measure, e.max),
        e.measure.as_str().replace('_', " "),
        if e.soft { " (soft: not enforced)" } else { "" }
    );
    AlertEvent::new(
        EventKind::Budget,
        severity,
        machine_id,
        summary,
        serde_json::to_value(e).unwrap_or_default(),
    )
}

/// The event for a request refused for a secret: who, where, which kinds;
/// never the value (the row has only salted fingerprints of it).
pub fn secret_event(machine_id: &str, row: &promptwall_audit::AuditRecord) -> Option<AlertEvent> {
    if row.verdict != "blocked" {
        return None;
    }
    let kinds: Vec<String> = row.findings.keys().cloned().collect();
    if kinds.is_empty() {
        return None;
    }
    let who = row.user.clone().unwrap_or_else(|| "unknown user".into());
    let tool = row.tool.clone().unwrap_or_else(|| "unknown tool".into());
    Some(AlertEvent::new(
        EventKind::Secret,
        Severity::Warning,
        machine_id,
        format!("blocked a request from {tool} ({who}) carrying {}", kinds.join(", ")),
        serde_json::json!({
            "request_id": row.request_id, "user": row.user, "tool": row.tool, "exe": row.exe,
            "provider": row.provider, "path": row.path, "kinds": kinds,
        }),
    ))
}
