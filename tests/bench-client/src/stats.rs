//! HDR histograms (nanoseconds) summarised as JSON in microseconds.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

pub fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 h, 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

pub fn summary_us(h: &Histogram<u64>) -> Value {
    let us = |ns: u64| (ns as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "mean": us(h.mean() as u64),
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "p999": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
    })
}
