//! The `[quota]` section: limits by identity, each with a scope, a measure
//! and a window. Validated in one place ([`QuotaConfig::check`]); the
//! [`super::Quota`] engine is built from it.
//!
//! ```toml
//! [[quota.limits]]
//! name = "dev-daily-tokens"
//! per = "user"            # user | group | tool | executable | machine | container | token | org
//! measure = "tokens"      # requests | concurrent | input_tokens | output_tokens | tokens | cost_usd
//! max = 2_000_000
//! window = "day"          # minute | hour | day | month (none for concurrent)
//! rolling = false         # false: calendar windows in UTC; true: the last minute/hour/day/30 days
//! soft = false            # true: warn (audit, alert) without refusing
//! tools = ["claude-code"] # optional filters, globs: users, tools, executables, models
//! ```

use serde::{Deserialize, Serialize};

/// `[quota]`. No limits (the default): nothing is counted or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    pub limits: Vec<LimitConfig>,
    /// Output tokens reserved for a request that does not bound its answer
    /// (no `max_tokens`), until its real usage replaces the reservation.
    pub default_max_output_tokens: u64,
    /// Of a `fleet` limit, the share one machine may use beyond the fleet's
    /// last confirmed total while the central store is unreachable: the
    /// fleet overspends by at most machines × this × max.
    pub fleet_allowance: f64,
    /// The central store counts as unreachable after this long without a
    /// successful sync.
    pub fleet_stale_secs: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            limits: Vec::new(),
            default_max_output_tokens: 4096,
            fleet_allowance: 0.05,
            fleet_stale_secs: 10,
        }
    }
}

/// One limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Shown to the refused client, in headers, audit rows and alerts.
    pub name: String,
    /// Whose usage is counted together: one counter per user, per tool…
    pub per: Per,
    pub measure: Measure,
    pub max: f64,
    /// Required unless `measure = "concurrent"`.
    #[serde(default)]
    pub window: Option<WindowUnit>,
    #[serde(default)]
    pub rolling: bool,
    #[serde(default)]
    pub soft: bool,
    /// Counted across every agent sharing `[audit.central]` (calendar
    /// windows only); otherwise per machine.
    #[serde(default)]
    pub fleet: bool,
    /// The limit applies only to requests matching every filter given
    /// (globs; empty: any).
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub executables: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

impl LimitConfig {
    /// A hard, per-machine, calendar-window limit with no filters: the
    /// fields people set most; the rest by struct update.
    pub fn new(name: impl Into<String>, per: Per, measure: Measure, max: f64, window: Option<WindowUnit>) -> Self {
        LimitConfig {
            name: name.into(),
            per,
            measure,
            max,
            window,
            rolling: false,
            soft: false,
            fleet: false,
            users: vec![],
            tools: vec![],
            executables: vec![],
            models: vec![],
        }
    }
}

/// Whose requests share one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    User,
    /// The client process's group id.
    Group,
    Tool,
    Executable,
    Machine,
    /// The container id, or `host` for processes outside containers.
    Container,
    /// The explicit listener's bearer token (`pw_live_…`); `none` without.
    Token,
    /// Everything this agent sees (the whole org when fleet-wide).
    Org,
}

impl Per {
    pub fn as_str(self) -> &'static str {
        match self {
            Per::User => "user",
            Per::Group => "group",
            Per::Tool => "tool",
            Per::Executable => "executable",
            Per::Machine => "machine",
            Per::Container => "container",
            Per::Token => "token",
            Per::Org => "org",
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Requests,
    /// Requests in flight (until the answer's last byte); no window.
    Concurrent,
    InputTokens,
    OutputTokens,
    /// Input (cache reads and writes included) plus output.
    Tokens,
    /// Estimated from the price table (`[audit] price_table`); requests to
    /// models without a price count as 0.
    CostUsd,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Requests => "requests",
            Measure::Concurrent => "concurrent",
            Measure::InputTokens => "input_tokens",
            Measure::OutputTokens => "output_tokens",
            Measure::Tokens => "tokens",
            Measure::CostUsd => "cost_usd",
        }
    }

    /// The suffix of its `x-ratelimit-*` headers.
    pub fn header_suffix(self) -> &'static str {
        match self {
            Measure::Requests => "requests",
            Measure::Concurrent => "concurrent-requests",
            Measure::InputTokens => "input-tokens",
            Measure::OutputTokens => "output-tokens",
            Measure::Tokens => "tokens",
            Measure::CostUsd => "cost-usd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowUnit {
    Minute,
    Hour,
    Day,
    /// Calendar: from the 1st, 00:00 UTC. Rolling: the last 30 days.
    Month,
}

impl WindowUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowUnit::Minute => "minute",
            WindowUnit::Hour => "hour",
            WindowUnit::Day => "day",
            WindowUnit::Month => "month",
        }
    }
}

impl QuotaConfig {
    /// Every mistake in the section, named with its fix; the one place the
    /// section is validated.
    pub fn check(&self) -> Result<(), String> {
        if !(self.fleet_allowance.is_finite() && (0.0..=1.0).contains(&self.fleet_allowance)) {
            return Err("fleet_allowance must be between 0 and 1 (a share of each fleet limit)".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, l) in self.limits.iter().enumerate() {
            let at = if l.name.is_empty() {
                format!("limit #{}", i + 1)
            } else {
                format!("limit {:?}", l.name)
            };
            if l.name.is_empty() || !l.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(format!(
                    "{at}: name must be non-empty letters, digits, '-', '_' or '.' (it is sent in headers)"
                ));
            }
            if !names.insert(&l.name) {
                return Err(format!("{at} is defined twice; give each limit its own name"));
            }
            if !(l.max.is_finite() && l.max >= 0.0) {
                return Err(format!("{at}: max = {} must be a number ≥ 0", l.max));
            }
            match (l.measure, l.window) {
                (Measure::Concurrent, Some(_)) => {
                    return Err(format!(
                        "{at}: a concurrent limit counts requests in flight and has no window; remove window"
                    ))
                }
                (Measure::Concurrent, None) if l.rolling => {
                    return Err(format!(
                        "{at}: a concurrent limit has no window to roll; remove rolling"
                    ));
                }
                (Measure::Concurrent, None) => {}
                (m, None) => {
                    return Err(format!(
                        "{at}: {} needs a window: add window = \"minute\", \"hour\", \"day\" or \"month\"",
                        m.as_str()
                    ))
                }
                _ => {}
            }
            if l.fleet && (l.rolling || l.window.is_none()) {
                return Err(format!(
                    "{at}: fleet limits are shared per calendar window; use a window and rolling = false, or drop fleet"
                ));
            }
            for (field, globs) in [
                ("users", &l.users),
                ("tools", &l.tools),
                ("executables", &l.executables),
                ("models", &l.models),
            ] {
                for g in globs {
                    globset::Glob::new(g).map_err(|e| format!("{at}: {field} pattern {g:?}: {e}"))?;
                }
            }
        }
        Ok(())
    }
}
