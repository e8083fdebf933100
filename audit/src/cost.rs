//! Estimated spend per request from a price table kept as data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::AuditError;

/// The built-in table; `audit.price_table` in the config adds to / overrides it.
pub const DEFAULT_PRICES_TOML: &str = include_str!("../prices.toml");

/// Token counts as reported by the provider's `usage` block.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
}

/// USD per million tokens for models whose name starts with `model`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub provider: String,
    pub model: String,
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderPricing {
    pub input_includes_cache_read: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    pub providers: BTreeMap<String, ProviderPricing>,
    pub price: Vec<Price>,
}

impl PriceTable {
    pub fn parse(text: &str, origin: &str) -> Result<PriceTable, AuditError> {
        toml::from_str(text).map_err(|e| AuditError::PriceTable {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }

    pub fn builtin() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            PriceTable::parse(DEFAULT_PRICES_TOML, "built-in prices.toml").expect("built-in price table parses")
        })
    }

    /// The built-in table, with the entries of `path` (if any) taking precedence.
    pub fn load(path: Option<&Path>) -> Result<PriceTable, AuditError> {
        let mut table = PriceTable::builtin().clone();
        if let Some(path) = path {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| AuditError::PriceTable {
                path: origin.clone(),
                message: format!("cannot read: {e}"),
            })?;
            table = PriceTable::parse(&text, &origin)?.overriding(table);
        }
        Ok(table)
    }

    /// `self`'s entries first: at equal prefix length the earlier entry wins.
    fn overriding(mut self, base: PriceTable) -> PriceTable {
        for (name, pricing) in base.providers {
            self.providers.entry(name).or_insert(pricing);
        }
        self.price.extend(base.price);
        self
    }

    pub fn price_for(&self, provider: &str, model: &str) -> Option<&Price> {
        let model = model.to_ascii_lowercase();
        let mut best: Option<&Price> = None;
        for p in self.price.iter().filter(|p| p.provider.eq_ignore_ascii_case(provider)) {
            if model.starts_with(&p.model.to_ascii_lowercase()) && best.is_none_or(|b| p.model.len() > b.model.len()) {
                best = Some(p);
            }
        }
        best
    }

    /// None when the model has no price or the response reported no usage.
    pub fn estimate(&self, provider: &str, model: &str, usage: Usage) -> Option<f64> {
        let price = self.price_for(provider, model)?;
        if usage == Usage::default() {
            return None;
        }
        let per = |tokens: Option<i64>, usd_per_million: f64| tokens.unwrap_or(0).max(0) as f64 * usd_per_million / 1e6;
        let cache_read = usage.cache_read_tokens.unwrap_or(0).max(0);
        let mut input = usage.input_tokens.unwrap_or(0).max(0);
        if self
            .providers
            .get(provider)
            .is_some_and(|p| p.input_includes_cache_read)
        {
            input = (input - cache_read).max(0);
        }
        let cost = per(Some(input), price.input)
            + per(usage.output_tokens, price.output)
            + per(Some(cache_read), price.cache_read.unwrap_or(price.input))
            + per(usage.cache_write_tokens, price.cache_write.unwrap_or(price.input));
        Some(cost)
    }
}

/// Estimate with the built-in table.
pub fn estimate_cost(provider: &str, model: &str, usage: Usage) -> Option<f64> {
    PriceTable::builtin().estimate(provider, model, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(i: i64, o: i64, cr: i64, cw: i64) -> Usage {
        Usage {
            input_tokens: Some(i),
            output_tokens: Some(o),
            cache_read_tokens: Some(cr),
            cache_write_tokens: Some(cw),
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = PriceTable::builtin();
        assert_eq!(t.price_for("anthropic", "claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(
            t.price_for("anthropic", "claude-opus-4-1-20250805").unwrap().input,
            15.0
        );
        assert_eq!(t.price_for("openai", "gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(t.price_for("openai", "gpt-4o-2024-08-06").unwrap().input, 2.5);
        assert!(
            t.price_for("openai", "claude-sonnet-4").is_none(),
            "provider must match"
        );
    }

    #[test]
    fn anthropic_cost_adds_all_four_token_classes() {
        // sonnet-4: 3 in, 15 out, 0.3 cache read, 3.75 cache write per million.
        let c = estimate_cost(
            "anthropic",
            "claude-sonnet-4-20250514",
            usage(1_000_000, 100_000, 2_000_000, 10_000),
        )
        .unwrap();
        let expected = 3.0 + 1.5 + 0.6 + 0.0375;
        assert!((c - expected).abs() < 1e-9, "{c} vs {expected}");
    }

    #[test]
    fn openai_cached_tokens_are_not_billed_twice() {
        // gpt-4o: 2.5 in, 10 out, 1.25 cached; 1M prompt tokens of which 400k cached.
        let c = estimate_cost("openai", "gpt-4o", usage(1_000_000, 0, 400_000, 0)).unwrap();
        let expected = 0.6 * 2.5 + 0.4 * 1.25;
        assert!((c - expected).abs() < 1e-9, "{c} vs {expected}");
    }

    #[test]
    fn unknown_model_or_no_usage_has_no_estimate() {
        assert_eq!(
            estimate_cost("anthropic", "some-future-model", usage(10, 10, 0, 0)),
            None
        );
        assert_eq!(estimate_cost("anthropic", "claude-sonnet-4", Usage::default()), None);
    }

    #[test]
    fn file_overrides_builtin_and_adds_models() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.toml");
        std::fs::write(
            &path,
            "[[price]]\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4\"\ninput = 1.0\noutput = 2.0\n\
             [[price]]\nprovider = \"acme\"\nmodel = \"acme-1\"\ninput = 10.0\noutput = 20.0\n",
        )
        .unwrap();
        let t = PriceTable::load(Some(&path)).unwrap();
        assert_eq!(t.price_for("anthropic", "claude-sonnet-4-x").unwrap().input, 1.0);
        assert_eq!(t.price_for("acme", "acme-1-large").unwrap().output, 20.0);
        assert_eq!(
            t.price_for("anthropic", "claude-3-haiku").unwrap().input,
            0.25,
            "defaults stay"
        );
        assert!(t.providers["openai"].input_includes_cache_read);
    }

    #[test]
    fn bad_file_names_the_file() {
        let err = PriceTable::parse("[[price]]\nprovider = 1", "/etc/promptwall/prices.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/promptwall/prices.toml"), "{err}");
    }
}
