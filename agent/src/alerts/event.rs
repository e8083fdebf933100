//! Alert events as webhooks receive them: a stable, versioned JSON schema,
//! an HMAC-SHA256 signature over the timestamp and the body, and a
//! Slack-compatible rendering. Pure: no I/O.
//!
//! ```json
//! {"schema": "promptwall.alert.v1", "id": "…", "kind": "budget.crossed",
//!  "ts": "2027-01-15T08:00:00.000Z", "machine_id": "…", "severity": "warning",
//!  "summary": "…", "data": {…}}
//! ```
//!
//! Headers: `x-promptwall-event-id`, `x-promptwall-timestamp` (Unix
//! seconds at delivery), `x-promptwall-signature: sha256=<hex>` of
//! HMAC-SHA256(secret, "<timestamp>.<body>"). A receiver recomputes it,
//! rejects stale timestamps, and deduplicates by the event id (delivery is
//! at least once).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const SCHEMA: &str = "promptwall.alert.v1";

/// What an alert is about; webhooks subscribe by these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A `[quota]` limit crossed 50, 80 or 100 %.
    Budget,
    /// An identity's spend in the last hour far above its own baseline.
    Anomaly,
    /// A request was refused for a secret in it.
    Secret,
    /// A program's TLS failures made its connections pass uninspected.
    Passthrough,
    /// The redirect stopped working.
    Interception,
    /// `promptwall alerts test`.
    Test,
}

impl EventKind {
    pub fn wire_name(self) -> &'static str {
        match self {
            EventKind::Budget => "budget.crossed",
            EventKind::Anomaly => "spend.anomaly",
            EventKind::Secret => "secret.blocked",
            EventKind::Passthrough => "passthrough.learned",
            EventKind::Interception => "interception.failed",
            EventKind::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub schema: String,
    pub id: String,
    pub kind: String,
    pub ts: String,
    pub machine_id: String,
    pub severity: Severity,
    /// One line for people (and Slack).
    pub summary: String,
    /// The facts, by kind; names and numbers, never a secret value.
    pub data: Value,
}

impl AlertEvent {
    /// A new event with a fresh id.
    pub fn new(kind: EventKind, severity: Severity, machine_id: &str, summary: String, data: Value) -> AlertEvent {
        AlertEvent {
            schema: SCHEMA.into(),
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.wire_name().into(),
            ts: promptwall_audit::time::now_ts(),
            machine_id: machine_id.into(),
            severity,
            summary,
            data,
        }
    }

    /// The id derived from what the event is about, for events detected
    /// again after a restart (an anomaly hour, a learned pair): enqueuing
    /// it again is then a no-op.
    pub fn keyed(mut self, parts: &[&str]) -> AlertEvent {
        let mut h = Sha256::new();
        h.update(self.kind.as_bytes());
        for p in parts {
            h.update([0]);
            h.update(p.as_bytes());
        }
        self.id = hex::encode(&h.finalize()[..16]);
        self
    }
}

/// How a webhook wants its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The event as it is.
    #[default]
    Json,
    /// `{"text": …}`, what Slack (and Mattermost, Teams workflows)
    /// incoming webhooks take.
    Slack,
}

/// The body posted for `event` (stored as its JSON in the outbox).
pub fn render(format: Format, event_json: &str) -> String {
    match format {
        Format::Json => event_json.to_string(),
        Format::Slack => {
            let Ok(e) = serde_json::from_str::<AlertEvent>(event_json) else {
                return serde_json::json!({ "text": "promptwall alert (unreadable event)" }).to_string();
            };
            let icon = match e.severity {
                Severity::Info => ":information_source:",
                Severity::Warning => ":warning:",
                Severity::Critical => ":rotating_light:",
            };
            serde_json::json!({
                "text": format!("{icon} *promptwall* {} — {} (machine {}, event {})", e.kind, e.summary, e.machine_id, e.id)
            })
            .to_string()
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// When the `attempts`-th failed delivery is tried again: 2 s doubling, at
/// most every 10 minutes (an alert is never dropped).
pub fn backoff(attempts: i64) -> std::time::Duration {
    let secs = 2u64.saturating_mul(1u64 << attempts.clamp(0, 20));
    std::time::Duration::from_secs(secs.min(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Recomputed the way a receiver does.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, b"{\"a\":1}"),
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(
            signature(b"Jefe", 1_700_000_001, b"{\"a\":1}"),
            signature(b"Jefe", 1_700_000_000, b"{\"a\":1}")
        );
    }

    #[test]
    fn an_hmac_known_answer_holds() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_gets_one_line_of_text_and_json_the_event_as_is() {
        let e = AlertEvent::new(
            EventKind::Budget,
            Severity::Warning,
            "m1",
            "limit dev at 80 %".into(),
            serde_json::json!({}),
        );
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(render(Format::Json, &json), json);
        let slack: Value = serde_json::from_str(&render(Format::Slack, &json)).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("budget.crossed") && text.contains("limit dev at 80 %") && text.contains(&e.id));
    }

    #[test]
    fn keyed_events_get_the_same_id_for_the_same_facts() {
        let e = || AlertEvent::new(EventKind::Anomaly, Severity::Warning, "m1", String::new(), Value::Null);
        assert_eq!(e().keyed(&["alice", "10"]).id, e().keyed(&["alice", "10"]).id);
        assert_ne!(e().keyed(&["alice", "10"]).id, e().keyed(&["alice", "11"]).id);
        assert_ne!(e().keyed(&["ab", "c"]).id, e().keyed(&["a", "bc"]).id);
    }

    #[test]
    fn retries_back_off_from_2_s_to_10_minutes() {
        let waits: Vec<u64> = (0..12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]);
    }
}
