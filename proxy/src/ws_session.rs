//! One inspected WebSocket connection (Codex's Responses transport): every
//! client message runs the inspect stage on its own and every provider
//! event the respond stage; each message exchange is audited under the one
//! policy ([`Recorder`]).

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use promptwall_llm::{Report, RequestContext, Vault, WsClientOutcome};

use crate::audit_sink::{AuditFailed, Recorder};
use crate::exchange::{Exchange, Verdict};
use crate::pipeline::Inspector;
use crate::websocket::{ClientVerdict, MessageInspector};

/// One inspected WebSocket connection (Codex Responses transport): each
/// `response.create` is inspected like a request body and audited, completed
/// by its terminal event; every other client message that reaches the
/// provider (`response.append` carries input too) gets a row of its own
/// before it is sent; every event frame is restored. A row that cannot be
/// committed stops the exchange (see [`AuditFailed`]).
pub struct WsSession {
    inspector: Arc<Inspector>,
    vault: Vault,
    /// The upgrade's exchange: each message's row starts as a copy.
    base: Exchange,
    recorder: Recorder,
    /// Messages audited so far (numbers their request ids).
    messages: u64,
    /// `response.create` rows waiting for their terminal event, with their
    /// `[quota]` reservations.
    pending: VecDeque<(Exchange, Option<crate::stages::budget::Metered>)>,
    /// Limits per `response.create`, when any are configured.
    meter: Option<WsMeter>,
    /// The session's admission slot (crate::admission), held until it ends.
    _admission: Option<crate::admission::Ticket>,
}

impl WsSession {
    pub fn new(inspector: Arc<Inspector>, base: Exchange, recorder: Recorder) -> Self {
        WsSession {
            inspector,
            vault: Vault::new(),
            base,
            recorder,
            messages: 0,
            pending: VecDeque::new(),
            meter: None,
            _admission: None,
        }
    }

    /// Meters every `response.create` against `[quota]` like an HTTP
    /// request to `target`.
    pub fn metered(mut self, meter: WsMeter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Holds `ticket` for the session's life: an inspected WebSocket counts
    /// as an exchange in flight like any other.
    pub fn holding(mut self, ticket: crate::admission::Ticket) -> Self {
        self._admission = Some(ticket);
        self
    }
}

/// What a session needs to meter its messages.
pub struct WsMeter {
    pub quota: crate::quota::Quota,
    pub prices: Arc<promptwall_audit::PriceTable>,
    pub machine_id: String,
    pub target: crate::exchange::Target,
}

/// How a forwarded client message is audited.
#[derive(Debug, PartialEq, Eq)]
enum Audited {
    /// `response.create`: one row, completed by the response's terminal event.
    Exchange,
    /// Carries nothing for the model (`response.processed` acknowledging a
    /// response by id, and nothing else): no row.
    Acknowledgement,
    /// Anything else, including unknown types and text that is not a JSON
    /// object: a row of its own, committed before the message is sent.
    Message,
}

/// The top-level facts of a client message the audit needs, read without
/// building a tree (messages can be tens of MiB). serde_json decodes
/// escapes (`"response\u002ecreate"` is `response.create`) and the last of
/// duplicate keys wins, as in the provider's parser.
#[derive(Debug, Default)]
struct Envelope {
    kind: Option<String>,
    model: Option<String>,
    /// Keys other than `type` and `response_id`.
    other_keys: bool,
}

impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Envelope;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
                let mut e = Envelope::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        // A non-string type or model fails the read, and
                        // an unread envelope is audited as a `Message`.
                        "type" => e.kind = Some(map.next_value()?),
                        "model" => {
                            e.model = Some(map.next_value()?);
                            e.other_keys = true;
                        }
                        "response_id" => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            e.other_keys = true;
                        }
                    }
                }
                Ok(e)
            }
        }
        d.deserialize_map(Fields)
    }
}

impl Envelope {
    fn read(text: &str) -> Option<Envelope> {
        serde_json::from_str(text).ok()
    }

    fn audited(envelope: Option<&Envelope>) -> Audited {
        match envelope {
            Some(Envelope { kind: Some(k), .. }) if k == "response.create" => Audited::Exchange,
            Some(Envelope {
                kind: Some(k),
                other_keys: false,
                ..
            }) if k == "response.processed" => Audited::Acknowledgement,
            _ => Audited::Message,
        }
    }
}

impl WsSession {
    /// Commits `ex` under the one audit policy; resolves once committed.
    /// (Borrows nothing, so the session need not be `Sync` to await it.)
    fn commit(&self, ex: Exchange) -> impl std::future::Future<Output = Result<(), AuditFailed>> + Send + 'static {
        self.recorder.commit(ex)
    }

    fn start_row(&mut self, text: &str, envelope: Option<&Envelope>, report: Option<&Report>) -> Exchange {
        self.messages += 1;
        let mut ex = self.base.message(self.messages);
        ex.request_bytes = text.len() as u64;
        if let Some(r) = report {
            ex.record_report(r);
        }
        if ex.model.is_none() {
            ex.model = envelope.and_then(|e| e.model.clone());
        }
        ex
    }

    async fn on_client_text(&mut self, text: String) -> Result<ClientVerdict, AuditFailed> {
        let envelope = Envelope::read(&text);
        let inspector = self.inspector.clone();
        let (changed, report) = match &inspector.pipeline {
            None => (None, None),
            Some(pipeline) => {
                let ctx = RequestContext {
                    fingerprint_salt: &inspector.salt,
                    ..Default::default()
                };
                match pipeline.inspect_ws_client_message(&text, &mut self.vault, &ctx) {
                    WsClientOutcome::Forward { text: changed, report } => (changed, Some(report)),
                    WsClientOutcome::Block { frame, report } | WsClientOutcome::Reject { frame, report } => {
                        let mut row = self.start_row(&text, envelope.as_ref(), Some(&report));
                        if report.verdict == promptwall_llm::Verdict::Blocked {
                            row.status = 422;
                        } else {
                            row.status = 400;
                            row.verdict = Verdict::Error;
                        }
                        row.error = report.message.clone();
                        self.commit(row).await?;
                        return Ok(ClientVerdict::Refuse(vec![frame]));
                    }
                }
            }
        };
        let mut row = self.start_row(&text, envelope.as_ref(), report.as_ref());
        match Envelope::audited(envelope.as_ref()) {
            Audited::Exchange => {
                let metered = match &self.meter {
                    None => None,
                    Some(m) => {
                        let budget = crate::stages::budget::Budget {
                            quota: &m.quota,
                            prices: &m.prices,
                            machine: &m.machine_id,
                        };
                        match budget.meter_message(&mut row, &m.target, changed.as_deref().unwrap_or(&text)) {
                            Ok(metered) => Some(metered),
                            Err(refusal) => {
                                row.status = refusal.status.as_u16();
                                let frame = promptwall_llm::ws_error_frame(
                                    429,
                                    "rate_limit_error",
                                    "rate_limit_exceeded",
                                    &refusal.message,
                                );
                                self.commit(row).await?;
                                return Ok(ClientVerdict::Refuse(vec![frame]));
                            }
                        }
                    }
                };
                self.pending.push_back((row, metered))
            }
            Audited::Acknowledgement => {}
            Audited::Message => self.commit(row).await?,
        }
        Ok(ClientVerdict::Forward(changed.unwrap_or(text)))
    }

    async fn on_server_text(&mut self, text: String) -> Result<Vec<String>, AuditFailed> {
        if let Some((ex, _)) = self.pending.front_mut() {
            ex.response_bytes += text.len() as u64;
        }
        let frames = match &self.inspector.pipeline {
            Some(pipeline) => pipeline.restore_ws_server_message(&text, &mut self.vault),
            None => vec![text.clone()],
        };
        // The provider's own events: a substring test only picks which
        // frames are worth parsing.
        let terminal = [
            "\"response.completed\"",
            "\"response.failed\"",
            "\"response.incomplete\"",
            "\"error\"",
        ];
        if terminal.iter().any(|t| text.contains(t)) {
            if let Some(row) = self.finish_row(&text) {
                // Committed before the terminal event goes to the client.
                self.commit(row).await?;
            }
        }
        Ok(frames)
    }

    async fn on_finished(&mut self, error: Option<String>) {
        while let Some((mut ex, _released)) = self.pending.pop_front() {
            ex.error = Some(
                error
                    .clone()
                    .unwrap_or_else(|| "WebSocket closed before the response completed".into()),
            );
            // Nothing is left to hold back; the failure is logged and
            // closes the audit gate (crate::audit_sink::Recorder).
            let _ = self.commit(ex).await;
        }
    }

    /// The completed row of the oldest pending response, if `text` is its
    /// terminal event.
    fn finish_row(&mut self, text: &str) -> Option<Exchange> {
        let v = serde_json::from_str::<serde_json::Value>(text).ok()?;
        let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if !matches!(
            kind,
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            return None;
        }
        let (mut log, metered) = self.pending.pop_front()?;
        let resp = v.get("response");
        if let Some(m) = resp.and_then(|r| r.get("model")).and_then(|m| m.as_str()) {
            log.usage.model = Some(m.to_string());
        }
        if let Some(u) = resp.and_then(|r| r.get("usage")) {
            log.usage.input_tokens = u.get("input_tokens").and_then(|x| x.as_u64());
            log.usage.output_tokens = u.get("output_tokens").and_then(|x| x.as_u64());
            log.usage.cache_read_tokens = u
                .pointer("/input_tokens_details/cached_tokens")
                .and_then(|x| x.as_u64());
        }
        // A WebSocket `error` event carries the HTTP status it stands for (429, 400...).
        let status = v
            .get("status")
            .and_then(|s| s.as_u64())
            .filter(|s| (400..600).contains(s));
        log.status = if kind == "response.completed" {
            200
        } else {
            status.map_or(500, |s| s as u16)
        };
        if kind != "response.completed" {
            log.error = Some(format!("provider ended the response with {kind}"));
        }
        log.duration = Some(log.started.elapsed());
        if let Some(m) = metered {
            m.settle(&log);
        }
        Some(log)
    }
}

impl MessageInspector for WsSession {
    fn client_text(&mut self, text: String) -> BoxFuture<'_, Result<ClientVerdict, AuditFailed>> {
        Box::pin(self.on_client_text(text))
    }

    fn server_text(&mut self, text: String) -> BoxFuture<'_, Result<Vec<String>, AuditFailed>> {
        Box::pin(self.on_server_text(text))
    }

    fn finished(&mut self, _up: u64, _down: u64, error: Option<String>) -> BoxFuture<'_, ()> {
        Box::pin(self.on_finished(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::exchange::{Client, Listener, Traffic};
    use promptwall_audit::AuditRecord;
    use promptwall_llm::ApiShape;
    use std::sync::Mutex;

    type Rows = Arc<Mutex<Vec<AuditRecord>>>;

    fn recording() -> (Recorder, Rows) {
        let rows: Rows = Default::default();
        let sink_rows = rows.clone();
        let sink: crate::audit_sink::AuditSink = Arc::new(move |row| {
            sink_rows.lock().unwrap().push(row);
            Box::pin(async { Ok(()) })
        });
        let recorder = Recorder::new(
            sink,
            Arc::new(|_| {}),
            crate::stats::Stats::default(),
            crate::audit_space::AuditSpace::new("", 0),
        );
        (recorder, rows)
    }

    fn session(pipeline_on: bool) -> (WsSession, Rows) {
        let mut config = Config {
            machine_id: Some("test-machine".into()),
            ..Default::default()
        };
        config.pipeline.enabled = pipeline_on;
        let inspector = Arc::new(Inspector::new(&config).unwrap());
        let (sink, rows) = recording();
        let mut base = Exchange::new(Listener::Transparent, Client::default());
        base.status = 101;
        base.traffic = Traffic::Api(ApiShape::OPENAI_RESPONSES);
        (WsSession::new(inspector, base, sink), rows)
    }

    async fn forwarded(s: &mut WsSession, text: &str) -> String {
        match s.client_text(text.to_string()).await {
            Ok(ClientVerdict::Forward(t)) => t,
            Ok(ClientVerdict::Refuse(r)) => panic!("refused {text}: {r:?}"),
            Err(e) => panic!("audit failed: {e:?}"),
        }
    }

    const COMPLETED: &str =
        r#"{"type":"response.completed","response":{"model":"gpt-5","usage":{"input_tokens":3,"output_tokens":2}}}"#;

    /// The exploit: `\u002e` spells the same type for the provider's JSON
    /// parser, but is not the bytes `"response.create"`.
    #[tokio::test]
    async fn a_response_create_spelled_with_escapes_is_audited() {
        for pipeline_on in [true, false] {
            let (mut s, rows) = session(pipeline_on);
            let msg = r#"{"type":"response\u002ecreate","model":"gpt-5","input":"mail ann@example.com"}"#;
            let sent = forwarded(&mut s, msg).await;
            assert_eq!(sent.contains("ann@example.com"), !pipeline_on, "{sent}");
            s.server_text(COMPLETED.into()).await.unwrap();
            let rows = rows.lock().unwrap();
            assert_eq!(rows.len(), 1, "pipeline {pipeline_on}: {rows:#?}");
            assert_eq!(rows[0].status, 200);
            assert_eq!(rows[0].model.as_deref(), Some("gpt-5"));
            assert_eq!(rows[0].input_tokens, Some(3));
            if pipeline_on {
                assert_eq!(rows[0].verdict, "redacted");
                assert_eq!(rows[0].findings.get("email"), Some(&1));
            }
        }
    }

    /// Anything the provider may act on is on record before it is sent;
    /// only a bare acknowledgement of a response id is not.
    #[tokio::test]
    async fn every_forwarded_websocket_message_but_an_acknowledgement_gets_a_row() {
        for pipeline_on in [true, false] {
            let (mut s, rows) = session(pipeline_on);
            let audited = [
                r#"{"type":"response.append","input":[{"type":"message","role":"user","content":"also this"}]}"#,
                r#"{"type":"response.processed","response_id":"resp_1","input":"sneaked in"}"#,
                r#"{"type":"something.new","input":"x"}"#,
                r#"{"type":"response.create","type":"response.append","input":"x"}"#,
                r#"{"input":"no type at all"}"#,
            ];
            for (i, msg) in audited.iter().enumerate() {
                forwarded(&mut s, msg).await;
                let rows = rows.lock().unwrap();
                assert_eq!(rows.len(), i + 1, "no row for {msg}");
                assert_eq!(rows[i].request_bytes, msg.len() as i64);
            }
            forwarded(&mut s, r#"{"type":"response.processed","response_id":"resp_1"}"#).await;
            assert_eq!(rows.lock().unwrap().len(), audited.len());
            // Not JSON: refused by the pipeline, forwarded without it; a row either way.
            match s.client_text("not json".into()).await.unwrap() {
                ClientVerdict::Forward(_) => assert!(!pipeline_on),
                ClientVerdict::Refuse(_) => assert!(pipeline_on),
            }
            assert_eq!(rows.lock().unwrap().len(), audited.len() + 1);
            // None of these is waiting for a terminal event.
            s.finished(0, 0, None).await;
            assert_eq!(rows.lock().unwrap().len(), audited.len() + 1);
        }
    }

    /// The upgrade's id (sent to the client in the response header) finds
    /// every message's row: theirs are `<upgrade id>-<n>`.
    #[tokio::test]
    async fn message_rows_carry_ids_derived_from_the_upgrades() {
        let (mut s, rows) = session(true);
        let upgrade = s.base.id.clone();
        forwarded(&mut s, r#"{"type":"response.append","input":"a"}"#).await;
        forwarded(&mut s, r#"{"type":"response.create","model":"gpt-5","input":"b"}"#).await;
        s.server_text(COMPLETED.into()).await.unwrap();
        let rows = rows.lock().unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, [format!("{upgrade}-1"), format!("{upgrade}-2")]);
    }

    #[tokio::test]
    async fn a_response_create_over_a_limit_gets_an_error_frame_and_never_leaves() {
        use crate::quota::{LimitConfig, Measure, Per, Quota, QuotaConfig, WindowUnit};
        let (recorder, rows) = recording();
        let quota = Quota::new(
            &QuotaConfig {
                limits: vec![LimitConfig::new(
                    "ws-daily",
                    Per::Org,
                    Measure::Requests,
                    1.0,
                    Some(WindowUnit::Day),
                )],
                ..QuotaConfig::default()
            },
            crate::clock::ManualClock::new(),
        )
        .unwrap();
        let inspector = Arc::new(Inspector::new(&Config::default()).unwrap());
        let mut base = Exchange::new(Listener::Transparent, Client::default());
        base.traffic = Traffic::Api(ApiShape::OPENAI_RESPONSES);
        let target = crate::exchange::Target {
            provider: "openai".into(),
            uri: "https://api.openai.com/v1/responses".parse().unwrap(),
            host: "api.openai.com".into(),
            dial: None,
        };
        let mut s = WsSession::new(inspector, base, recorder).metered(WsMeter {
            quota: quota.clone(),
            prices: Arc::new(promptwall_audit::PriceTable::builtin().clone()),
            machine_id: "m1".into(),
            target,
        });
        let create = r#"{"type":"response.create","model":"gpt-5","input":"hi"}"#;
        assert!(matches!(
            s.on_client_text(create.into()).await.unwrap(),
            ClientVerdict::Forward(_)
        ));
        let refused = s.on_client_text(create.into()).await.unwrap();
        let ClientVerdict::Refuse(frames) = refused else {
            panic!("forwarded over the limit")
        };
        let frame: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["status"], 429);
        assert!(frames[0].contains("ws-daily"), "{}", frames[0]);
        let rows = rows.lock().unwrap();
        assert_eq!(
            rows.len(),
            1,
            "the refused message's row (the first waits for its answer)"
        );
        assert_eq!((rows[0].status, rows[0].verdict.as_str()), (429, "limited"));
        assert_eq!(quota.standings()[0].used, 1.0);
    }
}
