//! Prometheus metrics (`GET /metrics` on the admin HTTP listener).
//!
//! Per-exchange series come from the committed audit row (an
//! [`Observer`]), so the numbers agree with `promptwall audit`. Names
//! follow the OpenTelemetry GenAI semantic conventions as exported to
//! Prometheus (`gen_ai.client.token.usage` → `gen_ai_client_token_usage`,
//! attribute dots → underscores, `gen_ai.provider.name`, never the
//! deprecated `gen_ai.system`); everything else is `promptwall_*`. Counters
//! the daemon already keeps (connections, TLS, the eBPF maps) are read at
//! scrape time, not copied. The README lists each series.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use promptwall_audit::{AuditRecord, PriceTable};
use promptwall_proxy::observe::{Observed, Observer};

/// Bucket bounds the GenAI conventions advise for token counts.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];
/// Bucket bounds the GenAI conventions advise for operation durations.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// What promptwall adds is sub-millisecond when healthy: finer buckets.
const ADDED_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GenAiTokenLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    gen_ai_token_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GenAiOperationLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    /// Empty (so absent in Prometheus) unless the operation failed.
    error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: String,
    provider: String,
    tool: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    kind: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageLabels {
    provider: String,
    model: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    model: String,
    tool: String,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn token_histogram() -> Histogram {
    Histogram::new(TOKEN_BUCKETS.iter().copied())
}
fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}
/// Sub-millisecond buckets: what promptwall adds, an audit commit.
fn fine_histogram() -> Histogram {
    Histogram::new(ADDED_BUCKETS.iter().copied())
}

/// The daemon's metrics: the per-exchange series (filled by
/// [`Observer::observe`]) and the registry that encodes them with the
/// scrape-time collectors.
pub struct Metrics {
    registry: Registry,
    prices: Arc<PriceTable>,
    token_usage: HistogramFamily<GenAiTokenLabels>,
    operation_duration: HistogramFamily<GenAiOperationLabels>,
    first_chunk: HistogramFamily<GenAiOperationLabels>,
    requests: Family<RequestLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<UsageLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    added: HistogramFamily<ListenerLabels>,
    audit_write: Histogram,
    audit_pending: Arc<AtomicI64>,
    sources: Sources,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Values read when Prometheus scrapes, from state the daemon keeps anyway.
pub trait ScrapeSource: Send + Sync + 'static {
    fn sample(&self) -> Vec<Sample>;
}

impl<F: Fn() -> Vec<Sample> + Send + Sync + 'static> ScrapeSource for F {
    fn sample(&self) -> Vec<Sample> {
        self()
    }
}

/// One scrape-time series.
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub counter: bool,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
        Sample {
            name,
            help,
            counter: true,
            labels: Vec::new(),
            value: value as f64,
        }
    }
    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Sample {
        Sample {
            name,
            help,
            counter: false,
            labels: Vec::new(),
            value,
        }
    }
    pub fn with(mut self, label: &'static str, value: impl Into<String>) -> Sample {
        self.labels.push((label, value.into()));
        self
    }
}

/// The scrape-time sources, added as the daemon starts its parts.
#[derive(Clone, Default)]
struct Sources(Arc<std::sync::RwLock<Vec<Box<dyn ScrapeSource>>>>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut samples: Vec<Sample> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|s| s.sample())
            .collect();
        // Series of one name must be contiguous under one descriptor.
        samples.sort_by_key(|s| s.name);
        // One descriptor per name, every labelled series under it.
        let mut i = 0;
        while i < samples.len() {
            let first = &samples[i];
            let same = samples[i..].iter().take_while(|s| s.name == first.name).count();
            let kind = if first.counter {
                prometheus_client::metrics::MetricType::Counter
            } else {
                prometheus_client::metrics::MetricType::Gauge
            };
            let mut family = encoder.encode_descriptor(first.name, first.help, None, kind)?;
            if same == 1 && first.labels.is_empty() {
                encode_sample(first, family)?;
            } else {
                for s in &samples[i..i + same] {
                    let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    encode_sample(s, family.encode_family(&labels)?)?;
                }
            }
            i += same;
        }
        Ok(())
    }
}

fn encode_sample(s: &Sample, series: prometheus_client::encoding::MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
    if s.counter {
        ConstCounter::new(s.value as u64).encode(series)
    } else {
        ConstGauge::new(s.value).encode(series)
    }
}

impl Metrics {
    pub fn new(prices: Arc<PriceTable>) -> Metrics {
        let mut registry = Registry::default();
        let token_usage: HistogramFamily<GenAiTokenLabels> = Family::new_with_constructor(token_histogram);
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens per GenAI operation (gen_ai.client.token.usage), by gen_ai.token.type input/output",
            token_usage.clone(),
        );
        let operation_duration: HistogramFamily<GenAiOperationLabels> =
            Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "gen_ai_client_operation_duration",
            "Duration of GenAI operations through promptwall, request start to the end of the answer (gen_ai.client.operation.duration)",
            Unit::Seconds,
            operation_duration.clone(),
        );
        let first_chunk: HistogramFamily<GenAiOperationLabels> = Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "gen_ai_client_operation_time_to_first_chunk",
            "Time to the first chunk of a streamed answer the client received (gen_ai.client.operation.time_to_first_chunk)",
            Unit::Seconds,
            first_chunk.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "promptwall_requests",
            "Exchanges audited, by listener, provider, tool and verdict (allowed, redacted, blocked, limited, error, passthrough)",
            requests.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "promptwall_findings",
            "Detector findings by kind and what was done (blocked, redacted, seen)",
            findings.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "promptwall_tokens",
            "Tokens the providers reported, by provider, model, tool and type (input, output, cache_read, cache_write)",
            tokens.clone(),
        );
        let cost = Family::<UsageLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "promptwall_cost_usd",
            "Estimated cost in US dollars from the price table, by provider, model and tool",
            cost.clone(),
        );
        let added: HistogramFamily<ListenerLabels> = Family::new_with_constructor(fine_histogram);
        registry.register_with_unit(
            "promptwall_added_latency",
            "Time promptwall added before the provider's response head reached it (reading, inspection, routing), by listener",
            Unit::Seconds,
            added.clone(),
        );
        let audit_write = fine_histogram();
        registry.register_with_unit(
            "promptwall_audit_write",
            "Time to commit one audit row durably",
            Unit::Seconds,
            audit_write.clone(),
        );
        let audit_pending = Arc::new(AtomicI64::new(0));
        let sources = Sources::default();
        sources
            .0
            .write()
            .unwrap()
            .push(Box::new(PendingRows(audit_pending.clone())));
        registry.register_collector(Box::new(sources.clone()));
        Metrics {
            registry,
            prices,
            token_usage,
            operation_duration,
            first_chunk,
            requests,
            findings,
            tokens,
            cost,
            added,
            audit_write,
            audit_pending,
            sources,
        }
    }

    /// Adds series read at each scrape.
    pub fn add_source(&self, source: impl ScrapeSource) {
        self.sources
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(source));
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Times one audit write and counts it as pending meanwhile.
    pub fn audit_write_started(&self) -> AuditWriteTimer {
        self.audit_pending.fetch_add(1, Ordering::Relaxed);
        AuditWriteTimer {
            started: std::time::Instant::now(),
            histogram: self.audit_write.clone(),
            pending: self.audit_pending.clone(),
        }
    }

    fn record(&self, seen: &Observed<'_>) {
        let row = seen.row;
        let provider = row.provider.clone().unwrap_or_default();
        let model = row.model.clone().unwrap_or_default();
        let tool = row.tool.clone().unwrap_or_default();
        self.requests
            .get_or_create(&RequestLabels {
                listener: row.listener.clone(),
                provider: provider.clone(),
                tool: tool.clone(),
                verdict: row.verdict.clone(),
            })
            .inc();
        let action = match row.verdict.as_str() {
            "blocked" => "blocked",
            "redacted" => "redacted",
            _ => "seen",
        };
        for (kind, n) in &row.findings {
            self.findings
                .get_or_create(&FindingLabels {
                    kind: kind.clone(),
                    action,
                })
                .inc_by(u64::from(*n));
        }
        let usage = UsageLabels {
            provider: provider.clone(),
            model: model.clone(),
            tool: tool.clone(),
        };
        let counts = [
            ("input", row.input_tokens),
            ("output", row.output_tokens),
            ("cache_read", row.cache_read_tokens),
            ("cache_write", row.cache_write_tokens),
        ];
        for (kind, n) in counts {
            if let Some(n) = n.filter(|n| *n > 0) {
                self.tokens
                    .get_or_create(&TokenLabels {
                        provider: provider.clone(),
                        model: model.clone(),
                        tool: tool.clone(),
                        r#type: kind,
                    })
                    .inc_by(n as u64);
            }
        }
        if let Some(cost) = row.cost_usd.or_else(|| estimate_cost(&self.prices, row)) {
            if cost > 0.0 {
                self.cost.get_or_create(&usage).inc_by(cost);
            }
        }
        if let Some(added) = seen.added {
            self.added
                .get_or_create(&ListenerLabels {
                    listener: row.listener.clone(),
                })
                .observe(added.as_secs_f64());
        }
        let Some(operation) = operation_name(row) else { return };
        let gen_ai_provider_name = provider_name(&provider);
        for (kind, n) in [("input", row.input_tokens), ("output", row.output_tokens)] {
            if let Some(n) = n {
                self.token_usage
                    .get_or_create(&GenAiTokenLabels {
                        gen_ai_operation_name: operation,
                        gen_ai_provider_name: gen_ai_provider_name.clone(),
                        gen_ai_request_model: model.clone(),
                        gen_ai_token_type: kind,
                    })
                    .observe(n as f64);
            }
        }
        let labels = GenAiOperationLabels {
            gen_ai_operation_name: operation,
            gen_ai_provider_name,
            gen_ai_request_model: model,
            error_type: error_type(row, seen.committed),
        };
        self.operation_duration
            .get_or_create(&labels)
            .observe(seen.duration.as_secs_f64());
        if let Some(first) = seen.first_chunk {
            self.first_chunk.get_or_create(&labels).observe(first.as_secs_f64());
        }
    }
}

impl Observer for Metrics {
    fn observe(&self, seen: &Observed<'_>) {
        self.record(seen);
    }
}

/// Ends a timed audit write (see [`Metrics::audit_write_started`]).
pub struct AuditWriteTimer {
    started: std::time::Instant,
    histogram: Histogram,
    pending: Arc<AtomicI64>,
}

impl Drop for AuditWriteTimer {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

struct PendingRows(Arc<AtomicI64>);

impl ScrapeSource for PendingRows {
    fn sample(&self) -> Vec<Sample> {
        vec![Sample::gauge(
            "promptwall_audit_pending_rows",
            "Audit rows handed to the writer and not yet committed",
            self.0.load(Ordering::Relaxed) as f64,
        )]
    }
}

/// The writer fills `cost_usd` in its own copy; observers see the row
/// before that, so the same table prices it here.
fn estimate_cost(prices: &PriceTable, row: &AuditRecord) -> Option<f64> {
    let usage = promptwall_audit::cost::Usage {
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        cache_read_tokens: row.cache_read_tokens,
        cache_write_tokens: row.cache_write_tokens,
    };
    prices.estimate(row.provider.as_deref()?, row.model.as_deref()?, usage)
}

/// `gen_ai.operation.name` of a row's API shape; None for what is not a
/// GenAI operation (token counting, model lists, spliced connections).
pub(crate) fn operation_name(row: &AuditRecord) -> Option<&'static str> {
    if !row.llm {
        return None;
    }
    match row.shape.as_deref()? {
        "anthropic.messages" | "openai.chat" | "openai.responses" => Some("chat"),
        "openai.embeddings" => Some("embeddings"),
        _ => None,
    }
}

/// `gen_ai.provider.name` (well-known values of the conventions).
pub(crate) fn provider_name(provider: &str) -> String {
    match provider {
        "chatgpt" => "openai".to_string(),
        other => other.to_string(),
    }
}

/// `error.type`: empty when the operation succeeded; else the HTTP status,
/// or what ended it without one.
pub(crate) fn error_type(row: &AuditRecord, committed: bool) -> String {
    if !committed {
        return "audit_failed".into();
    }
    match row.status {
        0 => "no_response".into(),
        s if s >= 400 => s.to_string(),
        _ if row.error.is_some() => "stream_error".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn metrics() -> Metrics {
        Metrics::new(Arc::new(PriceTable::builtin().clone()))
    }

    fn chat_row() -> AuditRecord {
        AuditRecord {
            listener: "transparent".into(),
            provider: Some("anthropic".into()),
            shape: Some("anthropic.messages".into()),
            model: Some("claude-sonnet-4-5".into()),
            tool: Some("claude-code".into()),
            status: 200,
            llm: true,
            input_tokens: Some(1200),
            output_tokens: Some(300),
            verdict: "redacted".into(),
            findings: [("email".to_string(), 2)].into(),
            ..Default::default()
        }
    }

    fn observe(m: &Metrics, row: &AuditRecord, first_chunk: Option<Duration>) {
        m.observe(&Observed {
            row,
            committed: true,
            started: SystemTime::now(),
            duration: Duration::from_millis(900),
            added: Some(Duration::from_micros(400)),
            first_chunk,
        });
    }

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
    }

    #[test]
    fn a_chat_answer_is_counted_under_the_genai_names_with_its_tokens_cost_and_findings() {
        let m = metrics();
        observe(&m, &chat_row(), Some(Duration::from_millis(250)));
        let text = m.encode();
        let input_sum = text
            .lines()
            .find(|l| l.starts_with("gen_ai_client_token_usage_sum{") && l.contains("gen_ai_token_type=\"input\""))
            .unwrap_or_else(|| panic!("no input token sum in\n{text}"));
        assert!(input_sum.ends_with(" 1200.0"), "{input_sum}");
        let input = line(&text, "promptwall_tokens_total{");
        assert!(input.contains("tool=\"claude-code\""), "{input}");
        assert!(text.contains("type=\"output\"} 300"), "{text}");
        assert!(
            text.contains("promptwall_findings_total{kind=\"email\",action=\"redacted\"} 2"),
            "{text}"
        );
        assert!(text.contains("gen_ai_provider_name=\"anthropic\""), "{text}");
        assert!(!text.contains("gen_ai_system"), "{text}");
        assert!(line(&text, "promptwall_cost_usd_total{").contains("model=\"claude-sonnet-4-5\""));
        assert!(
            text.contains("gen_ai_client_operation_time_to_first_chunk_seconds_count{"),
            "{text}"
        );
        assert!(line(&text, "promptwall_added_latency_seconds_count{").ends_with(" 1"));
    }

    #[test]
    fn what_is_not_a_genai_operation_counts_as_a_request_only() {
        let m = metrics();
        let spliced = AuditRecord {
            listener: "transparent".into(),
            verdict: "passthrough".into(),
            ..Default::default()
        };
        observe(&m, &spliced, None);
        let text = m.encode();
        assert!(text.contains("verdict=\"passthrough\"} 1"), "{text}");
        assert!(
            !text.contains("gen_ai_client_operation_duration_seconds_count{"),
            "{text}"
        );
        assert!(
            !text.contains("gen_ai_client_operation_time_to_first_chunk_seconds_count{"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_operation_names_its_error_type_and_a_good_one_none() {
        let m = metrics();
        observe(&m, &chat_row(), None);
        let refused = AuditRecord {
            status: 422,
            verdict: "blocked".into(),
            input_tokens: None,
            output_tokens: None,
            ..chat_row()
        };
        observe(&m, &refused, None);
        let text = m.encode();
        assert!(text.contains("error_type=\"422\"} 1"), "{text}");
        assert!(text.contains("error_type=\"\"} 1"), "{text}");
    }

    #[test]
    fn scrape_time_series_of_one_name_share_one_descriptor() {
        let m = metrics();
        m.add_source(|| {
            vec![
                Sample::counter("promptwall_tls_connections", "TLS", 3).with("outcome", "intercepted"),
                Sample::gauge("promptwall_audit_healthy", "healthy", 1.0),
            ]
        });
        m.add_source(|| vec![Sample::counter("promptwall_tls_connections", "TLS", 4).with("outcome", "passthrough")]);
        let text = m.encode();
        assert_eq!(
            text.matches("# TYPE promptwall_tls_connections counter").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("promptwall_tls_connections_total{outcome=\"intercepted\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("promptwall_tls_connections_total{outcome=\"passthrough\"} 4"),
            "{text}"
        );
        assert!(text.contains("promptwall_audit_healthy 1.0"), "{text}");
        assert!(text.contains("promptwall_audit_pending_rows 0.0"), "{text}");
    }

    #[test]
    fn an_audit_write_is_pending_until_its_timer_ends() {
        let m = metrics();
        let timer = m.audit_write_started();
        assert!(m.encode().contains("promptwall_audit_pending_rows 1.0"));
        drop(timer);
        let text = m.encode();
        assert!(text.contains("promptwall_audit_pending_rows 0.0"), "{text}");
        assert!(text.contains("promptwall_audit_write_seconds_count 1"), "{text}");
    }
}
