//! OpenTelemetry traces (opt-in `[traces]`): one CLIENT span per exchange,
//! sent over OTLP/HTTP by the SDK's batch processor.
//!
//! A span is planned from the committed row ([`plan`], pure, tested per
//! case) and only then handed to the SDK, so what a span says is decided in
//! one place. Names follow the OpenTelemetry GenAI conventions: the span is
//! `{gen_ai.operation.name} {gen_ai.request.model}` with the `gen_ai.*`
//! request, response and usage attributes, and the inspection's outcome is
//! a `gen_ai.guardrail.result` event per detector kind (component
//! `promptwall`, source `input`, result type `verdict`). Spans never carry
//! prompt text, command lines or secret values: only names, counts and
//! the request id.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use promptwall_audit::AuditRecord;
use promptwall_proxy::observe::{Observed, Observer};
use serde::{Deserialize, Serialize};

/// `[traces]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`.
    /// Empty: no traces.
    pub endpoint: String,
    /// `http/protobuf` (OTLP's default) or `http/json`.
    pub protocol: String,
    /// Headers sent with each export (a collector's API key, a tenant).
    pub headers: BTreeMap<String, String>,
    /// Longest a finished span waits before its batch is sent.
    pub batch_delay_ms: u64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            endpoint: String::new(),
            protocol: "http/protobuf".into(),
            headers: BTreeMap::new(),
            batch_delay_ms: 1000,
        }
    }
}

impl TracesConfig {
    pub fn enabled(&self) -> bool {
        !self.endpoint.is_empty()
    }

    /// What is wrong, said with its fix.
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let uri: http::Uri = self.endpoint.parse().map_err(|e| {
            format!(
                "endpoint {:?} is not a URL ({e}); write e.g. http://collector:4318/v1/traces",
                self.endpoint
            )
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "endpoint {:?} must be an http:// or https:// URL with a host, e.g. http://collector:4318/v1/traces",
                self.endpoint
            ));
        }
        self.otlp_protocol()?;
        Ok(())
    }

    fn otlp_protocol(&self) -> Result<Protocol, String> {
        match self.protocol.as_str() {
            "http/protobuf" => Ok(Protocol::HttpBinary),
            "http/json" => Ok(Protocol::HttpJson),
            other => Err(format!(
                "protocol {other:?} is not supported; use \"http/protobuf\" or \"http/json\" (OTLP over HTTP)"
            )),
        }
    }
}

/// One attribute value of a planned span.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

pub type Attributes = Vec<(&'static str, Value)>;

/// A span decided from one row, before any SDK call.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanPlan {
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Attributes,
    pub events: Vec<EventPlan>,
    /// Set when the operation failed: the span's status description.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventPlan {
    pub name: &'static str,
    pub at: SystemTime,
    pub attributes: Attributes,
}

/// The span of one exchange.
pub fn plan(seen: &Observed<'_>) -> SpanPlan {
    let row = seen.row;
    let end = seen.started + seen.duration;
    let operation = crate::metrics::operation_name(row);
    let requested_model = row
        .routing_detail()
        .and_then(Result::ok)
        .and_then(|d| d.requested_model)
        .or_else(|| row.model.clone());
    let mut attributes: Attributes = Vec::new();
    let mut push = |key: &'static str, value: Option<Value>| {
        if let Some(v) = value {
            attributes.push((key, v));
        }
    };
    let provider = row.provider.as_deref().map(crate::metrics::provider_name);
    push("gen_ai.operation.name", operation.map(Value::from));
    push("gen_ai.provider.name", provider.map(Value::from));
    push("gen_ai.request.model", requested_model.clone().map(Value::from));
    push("gen_ai.response.model", row.model.clone().map(Value::from));
    push("gen_ai.usage.input_tokens", row.input_tokens.map(Value::from));
    push("gen_ai.usage.output_tokens", row.output_tokens.map(Value::from));
    push(
        "gen_ai.usage.cache_read.input_tokens",
        row.cache_read_tokens.map(Value::from),
    );
    push(
        "gen_ai.usage.cache_creation.input_tokens",
        row.cache_write_tokens.map(Value::from),
    );
    push("server.address", row.host.clone().map(Value::from));
    push(
        "http.response.status_code",
        (row.status != 0).then_some(Value::Int(i64::from(row.status))),
    );
    let error_type = crate::metrics::error_type(row, seen.committed);
    push(
        "error.type",
        (!error_type.is_empty()).then(|| Value::from(error_type.clone())),
    );
    push("promptwall.request_id", Some(Value::from(row.request_id.clone())));
    push("promptwall.verdict", Some(Value::from(row.verdict.clone())));
    push("promptwall.listener", Some(Value::from(row.listener.clone())));
    push("promptwall.tool", row.tool.clone().map(Value::from));
    push("user.name", row.user.clone().map(Value::from));
    push("process.pid", row.pid.map(|p| Value::Int(i64::from(p))));
    push("process.executable.path", row.exe.clone().map(Value::from));
    push("container.id", row.container_id.clone().map(Value::from));
    push(
        "promptwall.route",
        (!row.route.is_empty()).then(|| Value::from(row.route.clone())),
    );
    push(
        "promptwall.upstream",
        (!row.upstream.is_empty()).then(|| Value::from(row.upstream.clone())),
    );
    push(
        "promptwall.cost_usd_micros",
        row.cost_usd.map(|c| Value::Int((c * 1e6).round() as i64)),
    );
    let name = match (operation, &requested_model) {
        (Some(op), Some(model)) => format!("{op} {model}"),
        (Some(op), None) => op.to_string(),
        (None, _) => format!("promptwall {}", row.verdict),
    };
    let events = if operation.is_some() {
        guardrail_events(row, seen.started)
    } else {
        Vec::new()
    };
    SpanPlan {
        name,
        start: seen.started,
        end,
        attributes,
        events,
        error: (!error_type.is_empty()).then(|| row.error.clone().unwrap_or_else(|| error_type.clone())),
    }
}

/// `gen_ai.guardrail.result`: promptwall's verdict on the request, once
/// per detector kind that found something (or once, without a category,
/// when nothing was found). The verdict is promptwall's own result value,
/// as the conventions ask, not a translated allow/deny.
fn guardrail_events(row: &AuditRecord, at: SystemTime) -> Vec<EventPlan> {
    let base = |extra: Attributes| {
        let mut attributes: Attributes = vec![
            ("gen_ai.guardrail.component.name", "promptwall".into()),
            ("gen_ai.guardrail.source", "input".into()),
            ("gen_ai.guardrail.result.type", "verdict".into()),
            ("gen_ai.guardrail.result.value", row.verdict.clone().into()),
        ];
        attributes.extend(extra);
        EventPlan {
            name: "gen_ai.guardrail.result",
            at,
            attributes,
        }
    };
    if row.findings.is_empty() {
        return vec![base(Vec::new())];
    }
    row.findings
        .iter()
        .map(|(kind, n)| {
            base(vec![
                ("gen_ai.guardrail.risk.category", kind.clone().into()),
                ("gen_ai.guardrail.policy.rule.id", kind.clone().into()),
                ("promptwall.findings", Value::Int(i64::from(*n))),
            ])
        })
        .collect()
}

fn key_values(attributes: Attributes) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|(k, v)| match v {
            Value::Str(s) => KeyValue::new(k, s),
            Value::Int(n) => KeyValue::new(k, n),
        })
        .collect()
}

/// The exporter: plans each committed row's span and hands it to the
/// batch processor (which sends from its own thread; observing never
/// waits on the network).
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Traces {
    pub fn start(config: &TracesConfig, machine_id: &str) -> anyhow::Result<Traces> {
        let protocol = config.otlp_protocol().map_err(anyhow::Error::msg)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(config.endpoint.clone())
            .with_headers(config.headers.clone().into_iter().collect())
            .with_timeout(Duration::from_secs(10))
            .build()
            .with_context(|| {
                format!(
                    "cannot set up the OTLP exporter for [traces] endpoint {}",
                    config.endpoint
                )
            })?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(config.batch_delay_ms.max(10)))
            .build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("promptwall")
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("host.id", machine_id.to_string()),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("promptwall");
        Ok(Traces { provider, tracer })
    }

    fn emit(&self, plan: SpanPlan) {
        let mut span = self
            .tracer
            .span_builder(plan.name)
            .with_kind(SpanKind::Client)
            .with_start_time(plan.start)
            .with_attributes(key_values(plan.attributes))
            .start(&self.tracer);
        for event in plan.events {
            span.add_event_with_timestamp(event.name, event.at, key_values(event.attributes));
        }
        if let Some(why) = plan.error {
            span.set_status(Status::error(why));
        }
        span.end_with_timestamp(plan.end);
    }

    /// Sends what is still batched; called at shutdown.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("traces not all exported at shutdown: {e}");
        }
    }
}

impl Observer for Traces {
    fn observe(&self, seen: &Observed<'_>) {
        self.emit(plan(seen));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> AuditRecord {
        AuditRecord {
            request_id: "019af3c2-0000-7000-8000-000000000001".into(),
            listener: "transparent".into(),
            provider: Some("anthropic".into()),
            host: Some("api.anthropic.com".into()),
            shape: Some("anthropic.messages".into()),
            model: Some("claude-sonnet-4-5".into()),
            tool: Some("claude-code".into()),
            user: Some("alice".into()),
            pid: Some(4242),
            cmdline: Some("claude -p 'summarise the contract for jane@acme.io'".into()),
            status: 200,
            llm: true,
            input_tokens: Some(1200),
            output_tokens: Some(300),
            verdict: "redacted".into(),
            findings: [("email".to_string(), 2)].into(),
            ..Default::default()
        }
    }

    fn observed(row: &AuditRecord) -> Observed<'_> {
        Observed {
            row,
            committed: true,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            duration: Duration::from_millis(900),
            added: None,
            first_chunk: None,
        }
    }

    fn attr<'a>(attributes: &'a Attributes, key: &str) -> Option<&'a Value> {
        attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    #[test]
    fn a_chat_request_is_one_client_span_named_by_operation_and_model_with_genai_usage() {
        let row = row();
        let span = plan(&observed(&row));
        assert_eq!(span.name, "chat claude-sonnet-4-5");
        assert_eq!(span.end.duration_since(span.start).unwrap(), Duration::from_millis(900));
        let a = &span.attributes;
        assert_eq!(attr(a, "gen_ai.operation.name"), Some(&"chat".into()));
        assert_eq!(attr(a, "gen_ai.provider.name"), Some(&"anthropic".into()));
        assert_eq!(attr(a, "gen_ai.usage.input_tokens"), Some(&Value::Int(1200)));
        assert_eq!(attr(a, "gen_ai.usage.output_tokens"), Some(&Value::Int(300)));
        assert_eq!(attr(a, "promptwall.request_id"), Some(&row.request_id.as_str().into()));
        assert_eq!(attr(a, "gen_ai.system"), None, "the deprecated attribute is never set");
        assert_eq!(span.error, None);
    }

    #[test]
    fn the_guardrail_result_is_an_event_per_kind_carrying_the_verdict_not_the_text() {
        let row = row();
        let span = plan(&observed(&row));
        assert_eq!(span.events.len(), 1);
        let e = &span.events[0];
        assert_eq!(e.name, "gen_ai.guardrail.result");
        assert_eq!(
            attr(&e.attributes, "gen_ai.guardrail.result.value"),
            Some(&"redacted".into())
        );
        assert_eq!(
            attr(&e.attributes, "gen_ai.guardrail.risk.category"),
            Some(&"email".into())
        );
        assert_eq!(attr(&e.attributes, "promptwall.findings"), Some(&Value::Int(2)));
        let everything = format!("{span:?}");
        assert!(
            !everything.contains("jane@acme.io") && !everything.contains("summarise"),
            "{everything}"
        );
    }

    #[test]
    fn a_request_with_nothing_found_still_says_the_guardrail_ran() {
        let row = AuditRecord {
            verdict: "allowed".into(),
            findings: Default::default(),
            ..row()
        };
        let span = plan(&observed(&row));
        assert_eq!(span.events.len(), 1);
        assert_eq!(
            attr(&span.events[0].attributes, "gen_ai.guardrail.result.value"),
            Some(&"allowed".into())
        );
        assert_eq!(attr(&span.events[0].attributes, "gen_ai.guardrail.risk.category"), None);
    }

    #[test]
    fn a_blocked_request_is_an_error_span_with_its_status_as_error_type() {
        let row = AuditRecord {
            status: 422,
            verdict: "blocked".into(),
            error: Some("blocked: aws_access_key_id".into()),
            findings: [("aws_access_key_id".to_string(), 1)].into(),
            ..row()
        };
        let span = plan(&observed(&row));
        assert_eq!(attr(&span.attributes, "error.type"), Some(&"422".into()));
        assert_eq!(span.error.as_deref(), Some("blocked: aws_access_key_id"));
    }

    #[test]
    fn a_spliced_connection_is_a_span_without_genai_attributes_or_guardrail() {
        let row = AuditRecord {
            listener: "transparent".into(),
            verdict: "passthrough".into(),
            ..Default::default()
        };
        let span = plan(&observed(&row));
        assert_eq!(span.name, "promptwall passthrough");
        assert!(span.events.is_empty());
        assert_eq!(attr(&span.attributes, "gen_ai.operation.name"), None);
    }

    #[test]
    fn config_mistakes_are_named_with_their_fix() {
        let bad = |endpoint: &str, protocol: &str| {
            TracesConfig {
                endpoint: endpoint.into(),
                protocol: protocol.into(),
                ..Default::default()
            }
            .check()
            .unwrap_err()
        };
        assert!(bad("collector:4318", "http/protobuf").contains("http://"));
        assert!(bad("http://collector:4318/v1/traces", "grpc").contains("http/json"));
        assert!(TracesConfig::default().check().is_ok(), "off by default");
    }
}
