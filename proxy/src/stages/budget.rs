//! Budget: whether the client's limits ([`crate::quota`]) leave room for
//! this request, before anything is sent. Runs after route, when the model
//! that will answer (and so its price) is known; the request's estimate
//! (input tokens counted from its body, output bounded by its
//! `max_tokens`) is reserved until the answer ends and its real usage
//! replaces it ([`Metered::settle`], called by the relay before the row).
//!
//! Over a hard limit the client gets a 429 in its own envelope with
//! `Retry-After`, `x-ratelimit-*` and the limit's name; a limit that frees
//! in more than a minute also says `x-should-retry: false`, so the
//! Anthropic and OpenAI SDKs show the reason instead of retrying into it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use promptwall_audit::PriceTable;
use promptwall_llm::ApiShape;
use serde_json::Value;

use super::route::Routing;
use super::{Refusal, Stage};
use crate::exchange::{Exchange, Verdict};
use crate::quota::{Amounts, Hold, Measure, Quota, Standing, Who};
use crate::routing::Destination;

/// A refusal that frees sooner than this is left to the SDKs' own retry
/// (they honour `Retry-After` up to a minute).
pub const RETRY_HINT_MAX: Duration = Duration::from_secs(60);

pub struct Budget<'a> {
    pub quota: &'a Quota,
    pub prices: &'a Arc<PriceTable>,
    /// This machine's id (limits `per = "machine"`).
    pub machine: &'a str,
}

/// A request's reservation, for the relay to settle with its usage.
#[derive(Debug)]
pub struct Metered {
    hold: Hold,
    prices: Arc<PriceTable>,
}

impl Metered {
    pub fn none(prices: Arc<PriceTable>) -> Metered {
        Metered {
            hold: Hold::empty(),
            prices,
        }
    }

    /// The answer's `x-ratelimit-*` headers, where the provider sent none
    /// of the same name.
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        let mut ours = HeaderMap::new();
        rate_limit_headers(&self.hold.standings, &mut ours);
        for (name, value) in ours {
            if let Some(name) = name {
                headers.entry(name).or_insert(value);
            }
        }
    }

    /// Replaces the reservation with what the exchange used.
    pub fn settle(self, ex: &Exchange) {
        let actual = actual(ex, &self.prices);
        self.hold.settle(actual);
    }
}

impl<'a> Stage for Budget<'a> {
    /// Where the request goes, and its inspected body (None: streamed
    /// uninspected, not an LLM request).
    type Input = Option<(&'a Routing, &'a Bytes)>;
    type Output = Metered;

    async fn run(&self, ex: &mut Exchange, input: Self::Input) -> Result<Metered, Refusal> {
        self.meter(ex, input)
    }
}

impl Budget<'_> {
    /// The stage's decision, synchronous.
    pub fn meter(&self, ex: &mut Exchange, input: Option<(&Routing, &Bytes)>) -> Result<Metered, Refusal> {
        let none = || Metered::none(self.prices.clone());
        let shape = ex.shape();
        let Some((routing, body)) = input else {
            return Ok(none());
        };
        if !self.applies(ex) || !metered(shape, &ex.method) {
            return Ok(none());
        }
        self.reserve(ex, routing, body)
    }

    /// Whether any limit could apply: configured ones, or the request's
    /// token's own.
    fn applies(&self, ex: &Exchange) -> bool {
        !self.quota.is_empty() || ex.client.token.as_ref().is_some_and(|g| !g.limits.is_empty())
    }

    /// Admits the request's estimate, or refuses it on the row.
    fn reserve(&self, ex: &mut Exchange, routing: &Routing, body: &[u8]) -> Result<Metered, Refusal> {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let requested = ex.requested_model(json.get("model").and_then(Value::as_str));
        let requested = requested.as_deref();
        let estimate = self.estimate(&json, routing, requested);
        let admitted = self.quota.admit(&who(ex, self.machine, requested), estimate);
        match admitted {
            Ok(hold) => {
                if !hold.warnings.is_empty() {
                    tracing::warn!(limits = ?hold.warnings, "request over soft limits (not refused)");
                }
                Ok(Metered {
                    hold,
                    prices: self.prices.clone(),
                })
            }
            Err(exceeded) => {
                let message = exceeded.message();
                ex.verdict = Verdict::Limited;
                ex.error = Some(format!("limits {} exceeded: {message}", exceeded.limits.join(", ")));
                let mut headers = HeaderMap::new();
                rate_limit_headers(&exceeded.standings, &mut headers);
                if let Ok(v) = HeaderValue::from_str(&exceeded.standing.limit) {
                    headers.insert(HeaderName::from_static("x-promptwall-limit"), v);
                }
                if exceeded.retry_after > RETRY_HINT_MAX {
                    headers.insert(
                        HeaderName::from_static("x-should-retry"),
                        HeaderValue::from_static("false"),
                    );
                }
                Err(Refusal {
                    retry_after: Some(exceeded.retry_after.as_secs_f64().ceil() as u64),
                    headers: headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    ..Refusal::new(StatusCode::TOO_MANY_REQUESTS, message)
                })
            }
        }
    }

    /// A WebSocket `response.create` (its own row, `ex`), metered like a
    /// request to `target`: Ok carries the reservation to settle when its
    /// response ends; Err the refusal, already on the row.
    pub fn meter_message(
        &self,
        ex: &mut Exchange,
        target: &crate::exchange::Target,
        text: &str,
    ) -> Result<Metered, Refusal> {
        if !self.applies(ex) {
            return Ok(Metered::none(self.prices.clone()));
        }
        self.reserve(ex, &Routing::Direct(target.clone()), text.as_bytes())
    }

    /// Input tokens counted the routing rules' way (text / 4), output
    /// bounded by the request's own cap, cost from the price of the model
    /// that will answer first.
    fn estimate(&self, json: &Value, routing: &Routing, requested: Option<&str>) -> Amounts {
        let input = crate::routing::Features::of(json).input_tokens as f64;
        let output = [
            "/max_tokens",
            "/max_completion_tokens",
            "/max_output_tokens",
            "/generationConfig/maxOutputTokens",
        ]
        .iter()
        .find_map(|k| json.pointer(k).and_then(Value::as_u64))
        .unwrap_or(self.quota.default_max_output_tokens()) as f64;
        let (provider, model) = match routing {
            Routing::Direct(target) => (target.provider.clone(), requested.map(str::to_string)),
            Routing::Planned {
                candidates, addressed, ..
            } => match candidates.first() {
                Some(c) => (
                    match &c.destination {
                        Destination::Upstream { upstream, .. } => upstream.kind.price_family().to_string(),
                        Destination::Client => addressed.provider.clone(),
                    },
                    c.model.clone().or(requested.map(str::to_string)),
                ),
                None => (addressed.provider.clone(), requested.map(str::to_string)),
            },
        };
        let usage = promptwall_audit::Usage {
            input_tokens: Some(input as i64),
            output_tokens: Some(output as i64),
            ..Default::default()
        };
        let cost = model
            .and_then(|m| self.prices.estimate(&provider, &m, usage))
            .unwrap_or(0.0);
        Amounts {
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
        }
    }
}

/// The exchange's client as limits see it.
pub fn who<'a>(ex: &'a Exchange, machine: &'a str, model: Option<&'a str>) -> Who<'a> {
    let identity = ex.client.identity.as_ref();
    Who {
        user: identity.and_then(|i| i.user.as_deref()),
        uid: identity.and_then(|i| i.uid),
        gid: identity.and_then(|i| i.gid),
        tool: &ex.client.tool,
        executable: identity.and_then(|i| i.exe.as_deref()),
        machine,
        container: identity.and_then(|i| i.container_id.as_deref()),
        token: ex.client.token.as_ref().map(|g| g.id.as_str()),
        model,
        extra: ex.client.token.as_ref().map_or(&[], |g| g.limits.as_slice()),
    }
}

/// Requests that ask a model for something: not token counts, not reads.
fn metered(shape: ApiShape, method: &str) -> bool {
    shape.is_llm()
        && ![ApiShape::ANTHROPIC_COUNT_TOKENS, ApiShape::GEMINI_COUNT_TOKENS].contains(&shape)
        && method == "POST"
}

/// What the exchange used, as its audit row will say: input tokens with
/// cache reads and writes (however the provider counts them), output,
/// and cost from the same price table.
fn actual(ex: &Exchange, prices: &PriceTable) -> Amounts {
    let (record_provider, model) = ex.priced_as();
    let record_provider = record_provider.unwrap_or_default();
    let u = &ex.usage;
    let n = |v: Option<u64>| v.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
    let usage = promptwall_audit::Usage {
        input_tokens: n(u.input_tokens),
        output_tokens: n(u.output_tokens),
        cache_read_tokens: n(u.cache_read_tokens),
        cache_write_tokens: n(u.cache_write_tokens),
    };
    let includes_cache = prices
        .providers
        .get(&record_provider)
        .is_some_and(|p| p.input_includes_cache_read);
    let tokens = |v: Option<u64>| v.unwrap_or(0) as f64;
    let mut input = tokens(u.input_tokens) + tokens(u.cache_write_tokens);
    if !includes_cache {
        input += tokens(u.cache_read_tokens);
    }
    Amounts {
        input_tokens: input,
        output_tokens: tokens(u.output_tokens),
        cost_usd: model
            .and_then(|m| prices.estimate(&record_provider, &m, usage))
            .unwrap_or(0.0),
    }
}

/// `x-ratelimit-{limit,remaining,reset}-<measure>` for the tightest limit
/// of each measure (reset as OpenAI writes it: `1m30s`).
pub fn rate_limit_headers(standings: &[Standing], headers: &mut HeaderMap) {
    for s in standings {
        let suffix = s.measure.header_suffix();
        let number = |v: f64| match s.measure {
            Measure::CostUsd => format!("{v:.4}"),
            _ => format!("{}", v.floor() as i64),
        };
        for (kind, value) in [
            ("limit", number(s.max)),
            ("remaining", number(s.remaining())),
            ("reset", go_duration(s.resets_in)),
        ] {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(format!("x-ratelimit-{kind}-{suffix}")),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
    }
}

/// A duration the way OpenAI's rate-limit headers write it.
pub fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis().max(1));
    }
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Client, Listener, Target, Traffic};
    use crate::quota::{LimitConfig, Per, QuotaConfig, WindowUnit};

    fn target() -> Target {
        Target {
            provider: "anthropic".into(),
            uri: "https://api.anthropic.com/v1/messages".parse().unwrap(),
            host: "api.anthropic.com".into(),
            dial: None,
        }
    }

    fn exchange() -> Exchange {
        let mut ex = Exchange::new(Listener::Transparent, Client::default());
        ex.traffic = Traffic::Api(ApiShape::ANTHROPIC_MESSAGES);
        ex.method = "POST".into();
        ex.client.tool = "claude-code".into();
        ex.client.identity = Some(crate::origin::ClientIdentity {
            user: Some("alice".into()),
            uid: Some(1000),
            ..Default::default()
        });
        ex.target = Some(target());
        ex
    }

    fn quota(measure: Measure, max: f64, window: Option<WindowUnit>) -> Quota {
        Quota::new(
            &QuotaConfig {
                limits: vec![LimitConfig::new("dev", Per::User, measure, max, window)],
                ..QuotaConfig::default()
            },
            crate::clock::ManualClock::new(),
        )
        .unwrap()
    }

    fn body(max_tokens: u64) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": "x".repeat(4000)}]
            })
            .to_string(),
        )
    }

    fn run(q: &Quota, ex: &mut Exchange, body: &Bytes) -> Result<Metered, Refusal> {
        let prices = Arc::new(PriceTable::builtin().clone());
        Budget {
            quota: q,
            prices: &prices,
            machine: "m1",
        }
        .meter(ex, Some((&Routing::Direct(target()), body)))
    }

    #[test]
    fn the_estimate_is_the_prompt_counted_and_the_answer_bounded_by_max_tokens() {
        let q = quota(Measure::Tokens, 10_000.0, Some(WindowUnit::Day));
        let metered = run(&q, &mut exchange(), &body(2000)).unwrap();
        let mut h = HeaderMap::new();
        metered.add_headers(&mut h);
        // 1,001 prompt tokens (the 4,004 characters of the messages' text,
        // not the JSON around them) and 2,000 for the answer, reserved.
        assert_eq!(h["x-ratelimit-limit-tokens"], "10000");
        assert_eq!(h["x-ratelimit-remaining-tokens"], "6999");
        assert_eq!(h["x-ratelimit-reset-tokens"], "16h0m0s");
    }

    #[test]
    fn a_gemini_request_is_estimated_from_its_contents_and_max_output_tokens_and_its_count_is_free() {
        let q = quota(Measure::Tokens, 10_000.0, Some(WindowUnit::Day));
        let mut ex = exchange();
        ex.traffic = Traffic::Api(ApiShape::GEMINI_GENERATE);
        ex.path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent".into();
        let gemini = Bytes::from(
            serde_json::json!({
                "contents": [{"role": "user", "parts": [{"text": "x".repeat(4000)}]}],
                "generationConfig": {"maxOutputTokens": 2000}
            })
            .to_string(),
        );
        let mut h = HeaderMap::new();
        run(&q, &mut ex, &gemini).unwrap().add_headers(&mut h);
        // 1,001 for the 4,004 characters of contents (role included), 2,000 for the answer.
        assert_eq!(h["x-ratelimit-remaining-tokens"], "6999");
        let none = quota(Measure::Requests, 0.0, Some(WindowUnit::Day));
        let mut ex = exchange();
        ex.traffic = Traffic::Api(ApiShape::GEMINI_COUNT_TOKENS);
        assert!(run(&none, &mut ex, &gemini).is_ok());
    }

    #[test]
    fn over_a_limit_the_client_gets_a_429_naming_it_with_retry_headers() {
        let q = quota(Measure::Requests, 1.0, Some(WindowUnit::Day));
        let mut ex = exchange();
        let _first = run(&q, &mut ex, &body(10)).unwrap();
        let mut ex = exchange();
        let refusal = run(&q, &mut ex, &body(10)).unwrap_err();
        assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.retry_after, Some(16 * 3600));
        assert_eq!(refusal.header("x-promptwall-limit"), Some("dev"));
        assert_eq!(
            refusal.header("x-should-retry"),
            Some("false"),
            "a day's limit is not retried into"
        );
        assert_eq!(refusal.header("x-ratelimit-remaining-requests"), Some("0"));
        assert!(refusal.message.contains("\"dev\""), "{}", refusal.message);
        assert_eq!(ex.verdict, Verdict::Limited);
    }

    #[test]
    fn a_limit_freeing_within_a_minute_leaves_the_retry_to_the_sdk() {
        let q = quota(Measure::Requests, 1.0, Some(WindowUnit::Minute));
        let _first = run(&q, &mut exchange(), &body(10)).unwrap();
        let refusal = run(&q, &mut exchange(), &body(10)).unwrap_err();
        assert_eq!(refusal.retry_after, Some(60));
        assert_eq!(refusal.header("x-should-retry"), None);
    }

    #[test]
    fn token_counts_reads_and_bodiless_requests_are_not_metered() {
        let q = quota(Measure::Requests, 0.0, Some(WindowUnit::Day));
        let mut ex = exchange();
        ex.traffic = Traffic::Api(ApiShape::ANTHROPIC_COUNT_TOKENS);
        assert!(run(&q, &mut ex, &body(10)).is_ok());
        let mut ex = exchange();
        ex.method = "GET".into();
        assert!(run(&q, &mut ex, &body(10)).is_ok());
        let prices = Arc::new(PriceTable::builtin().clone());
        let budget = Budget {
            quota: &q,
            prices: &prices,
            machine: "m1",
        };
        assert!(budget.meter(&mut exchange(), None).is_ok());
        assert!(run(&q, &mut exchange(), &body(10)).is_err());
    }

    #[test]
    fn settling_charges_what_the_provider_reported_cache_included() {
        let q = quota(Measure::Tokens, 10_000.0, Some(WindowUnit::Day));
        let mut ex = exchange();
        let metered = run(&q, &mut ex, &body(5000)).unwrap();
        ex.usage.input_tokens = Some(100);
        ex.usage.cache_read_tokens = Some(3000);
        ex.usage.cache_write_tokens = Some(200);
        ex.usage.output_tokens = Some(50);
        metered.settle(&ex);
        assert_eq!(q.standings()[0].used, 3350.0, "Anthropic counts cache apart from input");
        assert_eq!(q.standings()[0].reserved, 0.0);
    }

    #[test]
    fn durations_are_written_as_openai_does() {
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "2s");
        assert_eq!(go_duration(Duration::from_secs(3 * 3600 + 5)), "3h0m5s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
