//! Per-account cooldowns after a failure, and when a provider says to come
//! back. The clock is injected so tests can move time.
//!
//! A failed account is skipped until its cooldown passes: as long as the
//! provider asked (`Retry-After` and its relatives, capped at one hour),
//! otherwise `min` doubling with each consecutive failure up to `max`
//! (CodeGate's 15 s → 300 s). A success clears the account's record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;

pub use crate::clock::{Clock, SystemClock};

/// The longest a provider's own "come back later" is honoured for: past
/// it the account is tried again (a daily limit's reset would otherwise
/// take an account out for a day on one answer).
pub const MAX_HONOURED_WAIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
struct State {
    until: Instant,
    failures: u32,
}

pub struct Cooldowns {
    clock: Arc<dyn Clock>,
    min: Duration,
    max: Duration,
    state: Mutex<HashMap<String, State>>,
}

impl Cooldowns {
    pub fn new(clock: Arc<dyn Clock>, min: Duration, max: Duration) -> Self {
        Cooldowns {
            clock,
            min,
            max: max.max(min),
            state: Mutex::new(HashMap::new()),
        }
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// How long `key` still cools down; None when it may be tried.
    pub fn remaining(&self, key: &str) -> Option<Duration> {
        let now = self.clock.now();
        let state = self.state.lock().expect("cooldown lock");
        state
            .get(key)
            .and_then(|s| s.until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Records a failure of `key`; `asked` is how long the provider asked
    /// to wait, if it did. Returns the cooldown applied.
    pub fn failed(&self, key: &str, asked: Option<Duration>) -> Duration {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("cooldown lock");
        let entry = state.entry(key.to_string()).or_insert(State {
            until: now,
            failures: 0,
        });
        entry.failures = entry.failures.saturating_add(1);
        let backoff = self
            .min
            .saturating_mul(1u32 << (entry.failures - 1).min(16))
            .min(self.max);
        let wait = asked.map(|d| d.min(MAX_HONOURED_WAIT)).unwrap_or(backoff);
        entry.until = now + wait;
        wait
    }

    pub fn succeeded(&self, key: &str) {
        self.state.lock().expect("cooldown lock").remove(key);
    }
}

/// How long an answer asks the client to wait before retrying, from the
/// headers providers use, in order of precision: `retry-after-ms`,
/// `retry-after` (seconds or an HTTP date), Anthropic's
/// `anthropic-ratelimit-*-reset` (RFC 3339) and OpenAI's
/// `x-ratelimit-reset-*` (`6m0s`, `1.5s`, `20ms`). Of several resets the
/// latest counts: the request needs every exhausted limit back.
pub fn asked_wait(headers: &HeaderMap, wall: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        // NaN and negatives are ignored; anything past the cap (even
        // infinity) is the cap.
        let secs = ms / 1000.0;
        if secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(MAX_HONOURED_WAIT.as_secs_f64())));
        }
    }
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs).min(MAX_HONOURED_WAIT));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(wall).unwrap_or_default().min(MAX_HONOURED_WAIT));
        }
    }
    let mut latest: Option<Duration> = None;
    for (name, value) in headers {
        let Ok(v) = value.to_str() else { continue };
        let n = name.as_str();
        let wait = if n.starts_with("anthropic-ratelimit-") && n.ends_with("-reset") {
            time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|at| SystemTime::from(at).duration_since(wall).unwrap_or_default())
        } else if n.starts_with("x-ratelimit-reset") {
            go_duration(v.trim())
        } else {
            None
        };
        if let Some(w) = wait {
            latest = Some(latest.map_or(w, |l| l.max(w)));
        }
    }
    latest.map(|d| d.min(MAX_HONOURED_WAIT))
}

/// A Go-style duration as OpenAI sends it: `1h2m3.5s`, `20ms`, `0s`.
fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub use crate::clock::ManualClock;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_account_asked_to_wait_30_s_is_skipped_until_then_and_not_a_moment_longer() {
        let clock = ManualClock::new();
        let c = Cooldowns::new(clock.clone(), Duration::from_secs(15), Duration::from_secs(300));
        assert_eq!(c.failed("a", Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(c.remaining("a"), Some(Duration::from_secs(30)));
        clock.advance(Duration::from_secs(29));
        assert_eq!(c.remaining("a"), Some(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(c.remaining("a"), None);
        assert_eq!(c.remaining("b"), None);
    }

    #[test]
    fn without_retry_after_the_cooldown_doubles_from_15_s_up_to_300_s_and_a_success_resets_it() {
        let clock = ManualClock::new();
        let c = Cooldowns::new(clock, Duration::from_secs(15), Duration::from_secs(300));
        let waits: Vec<u64> = (0..7).map(|_| c.failed("a", None).as_secs()).collect();
        assert_eq!(waits, [15, 30, 60, 120, 240, 300, 300]);
        c.succeeded("a");
        assert_eq!(c.failed("a", None).as_secs(), 15);
    }

    #[test]
    fn a_provider_asking_for_a_day_is_honoured_for_an_hour_at_most() {
        let c = Cooldowns::new(ManualClock::new(), Duration::from_secs(15), Duration::from_secs(300));
        assert_eq!(c.failed("a", Some(Duration::from_secs(86_400))), MAX_HONOURED_WAIT);
    }

    #[test]
    fn retry_after_is_read_from_each_header_providers_use() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let secs = |pairs: &[(&str, &str)]| asked_wait(&headers(pairs), wall).map(|d| d.as_secs_f64());
        assert_eq!(secs(&[("retry-after", "30")]), Some(30.0));
        assert_eq!(secs(&[("retry-after-ms", "1500"), ("retry-after", "30")]), Some(1.5));
        let date = httpdate::fmt_http_date(wall + Duration::from_secs(90));
        assert_eq!(secs(&[("retry-after", &date)]), Some(90.0));
        let at = time::OffsetDateTime::from(wall + Duration::from_secs(42))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert_eq!(
            secs(&[
                ("anthropic-ratelimit-requests-reset", &at),
                ("anthropic-ratelimit-tokens-reset", "2020-01-01T00:00:00Z")
            ]),
            Some(42.0)
        );
        assert_eq!(
            secs(&[
                ("x-ratelimit-reset-requests", "1m0.5s"),
                ("x-ratelimit-reset-tokens", "20ms")
            ]),
            Some(60.5)
        );
        assert_eq!(secs(&[("retry-after", "soon")]), None);
        // Hostile values are bounded, never a panic.
        assert_eq!(secs(&[("retry-after-ms", "1e30")]), Some(3600.0));
        assert_eq!(secs(&[("retry-after-ms", "inf")]), Some(3600.0));
        assert_eq!(secs(&[("retry-after-ms", "NaN"), ("retry-after", "7")]), Some(7.0));
        assert_eq!(secs(&[("retry-after-ms", "-5")]), None);
        assert_eq!(secs(&[("retry-after", "18446744073709551615")]), Some(3600.0));
        assert_eq!(
            secs(&[("x-ratelimit-reset-requests", "99999999999999999999999h")]),
            None
        );
        assert_eq!(secs(&[]), None);
    }

    #[test]
    fn go_durations_parse_and_garbage_does_not() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("5x"), None);
        assert_eq!(go_duration(""), None);
        assert_eq!(go_duration("s"), None);
    }
}
