//! Limits by identity: requests, requests in flight, tokens and estimated
//! cost, per user, group, tool, executable, machine, container, token or
//! the whole org, in calendar or rolling windows ([`config`]).
//!
//! The contract, for the budget stage and the relay that ends an answer:
//! - [`Quota::admit`] checks every limit that applies to a request and,
//!   only if all hard ones have room, reserves the request's estimate in
//!   each (input tokens counted, output bounded by `max_tokens`) under one
//!   lock: requests racing for the last of a budget are admitted only
//!   while their reservations fit, so a limit is never exceeded by more
//!   than what one request used beyond its estimate. A request larger than
//!   a whole token or cost limit is admitted alone in an empty window, or
//!   it could never pass.
//! - [`Hold::settle`] replaces the reservation with the usage the provider
//!   reported; a hold dropped unsettled (refused later, never sent)
//!   releases it. Requests count when admitted.
//! - A refused request gets an [`Exceeded`]: the limit that frees last
//!   (the request needs every exceeded one), and when.
//! - Crossing 50, 80 and 100 % of a limit emits a [`QuotaEvent`] once per
//!   crossing (again after usage fell back below).
//!
//! Pure: no I/O; the clock is injected. Counters are per agent; `Per::Org`
//! counts everything this agent sees.

pub mod config;
pub mod window;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

pub use config::{LimitConfig, Measure, Per, QuotaConfig, WindowUnit};

use crate::clock::Clock;

/// How soon a request refused only because other requests' reservations
/// fill the limit is told to retry: they settle as their answers end.
pub const IN_FLIGHT_RETRY: Duration = Duration::from_secs(2);

/// How soon a fleet limit refused for an unreachable central store is
/// retried: the store may be back.
pub const FLEET_RETRY: Duration = Duration::from_secs(5);

/// Counters are pruned of idle identities past this many.
const PRUNE_ABOVE: usize = 4096;

/// Announced crossings: (bit in `Counter::fired`, percent).
const THRESHOLDS: [(u8, u8); 3] = [(1, 50), (2, 80), (4, 100)];

/// Floating-point dust left by reservations released in another order.
const EPSILON: f64 = 1e-9;

/// Who sent a request, as limits see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Who<'a> {
    pub user: Option<&'a str>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub tool: &'a str,
    pub executable: Option<&'a str>,
    pub machine: &'a str,
    pub container: Option<&'a str>,
    /// The explicit listener's token id, never the token.
    pub token: Option<&'a str>,
    /// The model the client asked for (the `models` filter).
    pub model: Option<&'a str>,
    /// Limits that come with the request's token (`promptwall token
    /// create --rate/--budget`); they apply to it whatever the filters.
    pub extra: &'a [Arc<LimitConfig>],
}

impl Who<'_> {
    /// The counter this request shares under `per`.
    pub fn key(&self, per: Per) -> String {
        let or = |v: Option<&str>, none: &str| v.filter(|s| !s.is_empty()).unwrap_or(none).to_string();
        match per {
            Per::User => match (self.user, self.uid) {
                (Some(u), _) if !u.is_empty() => u.to_string(),
                (_, Some(uid)) => format!("uid:{uid}"),
                _ => "unknown".into(),
            },
            Per::Group => self.gid.map_or("unknown".into(), |g| format!("gid:{g}")),
            Per::Tool => or(Some(self.tool), "unknown"),
            Per::Executable => or(self.executable, "unknown"),
            Per::Machine => or(Some(self.machine), "unknown"),
            Per::Container => or(self.container, "host"),
            Per::Token => or(self.token, "none"),
            Per::Org => "org".into(),
        }
    }
}

/// Token and cost amounts of one request: estimated before, reported after.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Amounts {
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub cost_usd: f64,
}

impl Amounts {
    fn of(&self, m: Measure) -> f64 {
        match m {
            Measure::Requests | Measure::Concurrent => 1.0,
            Measure::InputTokens => self.input_tokens,
            Measure::OutputTokens => self.output_tokens,
            Measure::Tokens => self.input_tokens + self.output_tokens,
            Measure::CostUsd => self.cost_usd,
        }
    }
}

/// Where one limit stands for one identity, for `x-ratelimit-*` headers
/// and `promptwall limits` (the admin socket's JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    pub limit: String,
    pub per: Per,
    pub key: String,
    pub measure: Measure,
    pub window: Option<WindowUnit>,
    pub rolling: bool,
    pub soft: bool,
    pub max: f64,
    pub used: f64,
    /// Held by requests whose answers have not ended.
    pub reserved: f64,
    /// Until the window's usage is gone (calendar: the boundary; rolling:
    /// the newest usage leaves; concurrent: zero).
    #[serde(serialize_with = "secs", deserialize_with = "from_secs")]
    pub resets_in: Duration,
}

impl Standing {
    pub fn remaining(&self) -> f64 {
        (self.max - self.used - self.reserved).max(0.0)
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn from_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    Duration::try_from_secs_f64(secs.max(0.0)).map_err(serde::de::Error::custom)
}

/// A request refused by a hard limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    /// The exceeded limit that frees last.
    pub standing: Standing,
    /// Every exceeded limit's name.
    pub limits: Vec<String>,
    pub retry_after: Duration,
    /// The tightest limit per measure, for the refusal's headers.
    pub standings: Vec<Standing>,
    /// A fleet limit was refused because the central store has not
    /// confirmed usage lately and this machine used its allowance.
    pub fleet_unreachable: bool,
}

impl Exceeded {
    /// What the client is told: the limit, whose, how much and when it frees.
    pub fn message(&self) -> String {
        let s = &self.standing;
        if self.fleet_unreachable {
            return format!(
                "promptwall: limit {:?} is shared by the fleet, whose central store has not answered lately, and this machine has used its allowance of it; retry in {} (or check [audit.central])",
                s.limit,
                human(self.retry_after)
            );
        }
        let window = match (s.measure, s.window) {
            (Measure::Concurrent, _) | (_, None) => "at once".to_string(),
            (_, Some(w)) if s.rolling => format!("per rolling {}", w.as_str()),
            (_, Some(w)) => format!("per {} (UTC calendar)", w.as_str()),
        };
        format!(
            "promptwall: limit {:?} reached for {} {}: {} of {} {} {window}; retry in {} (ask your admin to raise [quota] limit {:?} if this is too tight)",
            s.limit,
            s.per.as_str(),
            s.key,
            amount(s.measure, s.used + s.reserved),
            amount(s.measure, s.max),
            s.measure.as_str().replace('_', " "),
            human(self.retry_after),
            s.limit,
        )
    }
}

/// A limit's usage crossed a threshold (alerts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaEvent {
    pub limit: String,
    pub per: Per,
    pub key: String,
    pub measure: Measure,
    /// 50, 80 or 100.
    pub percent: u8,
    pub used: f64,
    pub max: f64,
    pub soft: bool,
}

pub type EventSink = Arc<dyn Fn(QuotaEvent) + Send + Sync>;

/// The limits and their counters.
#[derive(Clone)]
pub struct Quota {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Vec<Compiled>,
    clock: Arc<dyn Clock>,
    default_max_output_tokens: u64,
    /// Keyed by (limit name, identity key): names are unique, and token
    /// limits come and go with their tokens.
    state: Mutex<HashMap<(String, String), Counter>>,
    events: Mutex<Option<EventSink>>,
    fleet_allowance: f64,
    fleet_stale_ms: i64,
    /// When the central store last confirmed the fleet's usage (wall ms).
    fleet_last_ok: Mutex<Option<i64>>,
    /// Set once something syncs with a central store; until then fleet
    /// limits count per machine.
    fleet_enabled: std::sync::atomic::AtomicBool,
}

/// One fleet limit's usage for one identity in one calendar window: this
/// machine's own (pushed to the central store), or the fleet's total.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetUsage {
    pub limit: String,
    pub key: String,
    /// Wall ms since the epoch.
    pub window_start: i64,
    pub used: f64,
}

struct Compiled {
    config: Arc<LimitConfig>,
    users: Option<GlobSet>,
    tools: Option<GlobSet>,
    executables: Option<GlobSet>,
    models: Option<GlobSet>,
}

impl Compiled {
    fn applies(&self, who: &Who) -> bool {
        let ok = |set: &Option<GlobSet>, v: Option<&str>| set.as_ref().is_none_or(|s| v.is_some_and(|v| s.is_match(v)));
        ok(&self.users, who.user)
            && ok(&self.tools, Some(who.tool))
            && ok(&self.executables, who.executable)
            && ok(&self.models, who.model)
    }
}

/// One limit's usage for one identity: usage per slice (calendar: one
/// slice, the current window), what in-flight requests reserved, and which
/// thresholds were announced.
#[derive(Debug)]
struct Counter {
    config: Arc<LimitConfig>,
    slices: VecDeque<(i64, f64)>,
    reserved: f64,
    fired: u8,
    /// Fleet limits: the other machines' usage in `fleet_window`, and this
    /// machine's usage the central store last confirmed.
    remote: f64,
    confirmed: f64,
    fleet_window: i64,
}

impl Counter {
    fn new(config: Arc<LimitConfig>) -> Counter {
        Counter {
            config,
            slices: VecDeque::new(),
            reserved: 0.0,
            fired: 0,
            remote: 0.0,
            confirmed: 0.0,
            fleet_window: i64::MIN,
        }
    }

    fn expire(&mut self, l: &LimitConfig, now: i64) {
        let Some(unit) = l.window else { return };
        let before = self.slices.len();
        if l.rolling {
            while self
                .slices
                .front()
                .is_some_and(|(s, _)| window::slice_expiry(unit, *s) <= now)
            {
                self.slices.pop_front();
            }
        } else {
            let start = window::calendar(unit, now).start;
            self.slices.retain(|(s, _)| *s >= start);
            if self.fleet_window != start {
                self.fleet_window = start;
                self.remote = 0.0;
                self.confirmed = 0.0;
            }
        }
        if self.slices.len() != before {
            // Thresholds usage fell back below may be announced again.
            let percent = if l.max > 0.0 { self.used() / l.max * 100.0 } else { 0.0 };
            for (bit, threshold) in THRESHOLDS {
                if percent + EPSILON < f64::from(threshold) {
                    self.fired &= !bit;
                }
            }
        }
    }

    /// This machine's usage in the window.
    fn own(&self) -> f64 {
        self.slices.iter().map(|(_, v)| v).sum()
    }

    /// The window's usage: this machine's, plus the fleet's others' for a
    /// fleet limit.
    fn used(&self) -> f64 {
        self.own() + self.remote
    }

    fn add(&mut self, l: &LimitConfig, now: i64, amount: f64) {
        let Some(unit) = l.window else { return };
        let key = if l.rolling {
            window::slice_start(unit, now)
        } else {
            window::calendar(unit, now).start
        };
        match self.slices.back_mut() {
            Some((s, v)) if *s == key => *v += amount,
            _ => self.slices.push_back((key, amount)),
        }
    }

    fn release(&mut self, amount: f64) {
        self.reserved -= amount;
        if self.reserved < EPSILON {
            self.reserved = 0.0;
        }
    }

    /// When the window's usage is all gone.
    fn resets_at(&self, l: &LimitConfig, now: i64) -> i64 {
        match l.window {
            None => now,
            Some(unit) if l.rolling => self.slices.back().map_or(now, |(s, _)| window::slice_expiry(unit, *s)),
            Some(unit) => window::calendar(unit, now).end,
        }
    }

    /// When `amount` more would fit, or None if only in-flight
    /// reservations stand in the way.
    fn fits_at(&self, l: &LimitConfig, now: i64, amount: f64) -> Option<i64> {
        match l.window {
            None => None,
            Some(_) if self.reserved + amount > l.max + EPSILON => None,
            Some(unit) if l.rolling => {
                let mut used = self.used();
                for (s, v) in &self.slices {
                    used -= v;
                    if used + self.reserved + amount <= l.max + EPSILON {
                        return Some(window::slice_expiry(unit, *s));
                    }
                }
                None
            }
            Some(unit) => Some(window::calendar(unit, now).end),
        }
    }

    fn standing(&self, l: &LimitConfig, key: &str, now: i64) -> Standing {
        Standing {
            limit: l.name.clone(),
            per: l.per,
            key: key.to_string(),
            measure: l.measure,
            window: l.window,
            rolling: l.rolling,
            soft: l.soft,
            max: l.max,
            used: self.used(),
            reserved: self.reserved,
            resets_in: ms_duration(self.resets_at(l, now) - now),
        }
    }

    /// Thresholds newly crossed; a threshold usage fell back below may
    /// fire again.
    fn crossings(&mut self, l: &LimitConfig, key: &str) -> Vec<QuotaEvent> {
        if l.measure == Measure::Concurrent || l.max <= 0.0 {
            return Vec::new();
        }
        let used = self.used();
        let percent = used / l.max * 100.0;
        let mut out = Vec::new();
        for (bit, threshold) in THRESHOLDS {
            if percent + EPSILON >= f64::from(threshold) {
                if self.fired & bit == 0 {
                    self.fired |= bit;
                    out.push(QuotaEvent {
                        limit: l.name.clone(),
                        per: l.per,
                        key: key.to_string(),
                        measure: l.measure,
                        percent: threshold,
                        used,
                        max: l.max,
                        soft: l.soft,
                    });
                }
            } else {
                self.fired &= !bit;
            }
        }
        out
    }
}

fn over(l: &LimitConfig, used: f64, reserved: f64, amount: f64) -> bool {
    let sized = matches!(
        l.measure,
        Measure::InputTokens | Measure::OutputTokens | Measure::Tokens | Measure::CostUsd
    );
    // A used-up token or cost limit refuses even a request estimated at
    // nothing (a model without a price still costs).
    let full = used + reserved + amount > l.max + EPSILON || (sized && used + reserved + EPSILON >= l.max);
    if !full {
        return false;
    }
    let alone = sized && l.max > 0.0 && amount > l.max && used + reserved <= EPSILON;
    !alone
}

impl Quota {
    /// Compiles `[quota]`; the errors are [`QuotaConfig::check`]'s.
    pub fn new(config: &QuotaConfig, clock: Arc<dyn Clock>) -> Result<Quota, String> {
        config.check()?;
        let set = |globs: &[String]| -> Result<Option<GlobSet>, String> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut b = GlobSetBuilder::new();
            for g in globs {
                b.add(Glob::new(g).map_err(|e| e.to_string())?);
            }
            b.build().map(Some).map_err(|e| e.to_string())
        };
        let limits = config
            .limits
            .iter()
            .map(|l| {
                Ok(Compiled {
                    config: Arc::new(l.clone()),
                    users: set(&l.users)?,
                    tools: set(&l.tools)?,
                    executables: set(&l.executables)?,
                    models: set(&l.models)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Quota {
            inner: Arc::new(Inner {
                limits,
                clock,
                default_max_output_tokens: config.default_max_output_tokens,
                state: Mutex::new(HashMap::new()),
                events: Mutex::new(None),
                fleet_allowance: config.fleet_allowance,
                fleet_stale_ms: config.fleet_stale_secs as i64 * 1000,
                fleet_last_ok: Mutex::new(None),
                fleet_enabled: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.inner.limits.is_empty()
    }

    /// Output tokens reserved for a request with no `max_tokens`.
    pub fn default_max_output_tokens(&self) -> u64 {
        self.inner.default_max_output_tokens
    }

    /// Whether any limit is shared by the fleet.
    pub fn has_fleet_limits(&self) -> bool {
        self.inner.limits.iter().any(|l| l.config.fleet)
    }

    /// Fleet limits are shared from now on: until the first confirmed
    /// sync, this machine may use only its allowance of each.
    pub fn enable_fleet(&self) {
        self.inner
            .fleet_enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn fleet_stale(&self, now: i64) -> bool {
        if !self.inner.fleet_enabled.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        let last = *self.inner.fleet_last_ok.lock().expect("fleet lock");
        last.is_none_or(|t| now - t > self.inner.fleet_stale_ms)
    }

    /// This machine's usage of every fleet limit in its current window,
    /// for the central store.
    pub fn fleet_own(&self) -> Vec<FleetUsage> {
        let now = wall_ms(self.inner.clock.wall());
        let mut state = self.inner.state.lock().expect("quota lock");
        state
            .iter_mut()
            .filter(|(_, c)| c.config.fleet)
            .map(|((name, key), c)| {
                let l = c.config.clone();
                c.expire(&l, now);
                FleetUsage {
                    limit: name.clone(),
                    key: key.clone(),
                    window_start: c.fleet_window,
                    used: c.own(),
                }
            })
            .collect()
    }

    /// The central store took `pushed` (this machine's usage) and answered
    /// with the fleet's `totals`: the others' share is the difference.
    pub fn fleet_apply(&self, pushed: &[FleetUsage], totals: &[FleetUsage]) {
        let now = wall_ms(self.inner.clock.wall());
        let mut state = self.inner.state.lock().expect("quota lock");
        for t in totals {
            let Some(config) = self
                .inner
                .limits
                .iter()
                .find(|c| c.config.fleet && c.config.name == t.limit)
                .map(|c| c.config.clone())
            else {
                continue;
            };
            let counter = state
                .entry((t.limit.clone(), t.key.clone()))
                .or_insert_with(|| Counter::new(config.clone()));
            counter.expire(&config, now);
            if counter.fleet_window != t.window_start {
                continue;
            }
            let mine = pushed
                .iter()
                .find(|p| p.limit == t.limit && p.key == t.key && p.window_start == t.window_start)
                .map_or(0.0, |p| p.used);
            counter.remote = (t.used - mine).max(0.0);
            counter.confirmed = mine;
        }
        *self.inner.fleet_last_ok.lock().expect("fleet lock") = Some(now);
    }

    /// Where crossings go (alerts); set once the agent has an outbox.
    pub fn on_event(&self, sink: EventSink) {
        *self.inner.events.lock().expect("quota events lock") = Some(sink);
    }

    /// Checks every applicable limit and reserves `estimate` in each, or
    /// refuses (module docs).
    pub fn admit(&self, who: &Who, estimate: Amounts) -> Result<Hold, Box<Exceeded>> {
        let inner = &self.inner;
        let now = wall_ms(inner.clock.wall());
        let applicable: Vec<(Arc<LimitConfig>, String)> = inner
            .limits
            .iter()
            .filter(|l| l.applies(who))
            .map(|l| l.config.clone())
            .chain(who.extra.iter().cloned())
            .map(|l| {
                let key = who.key(l.per);
                (l, key)
            })
            .collect();
        if applicable.is_empty() {
            return Ok(Hold::empty());
        }
        let mut events = Vec::new();
        let mut state = inner.state.lock().expect("quota lock");
        if state.len() > PRUNE_ABOVE {
            prune(&mut state, now);
        }
        let mut breaches: Vec<(Standing, i64)> = Vec::new();
        let mut fleet_unreachable = false;
        for (l, key) in &applicable {
            let counter = state
                .entry((l.name.clone(), key.clone()))
                .or_insert_with(|| Counter::new(l.clone()));
            counter.expire(l, now);
            let amount = estimate.of(l.measure);
            if !l.soft && over(l, counter.used(), counter.reserved, amount) {
                let at = counter
                    .fits_at(l, now, amount)
                    .unwrap_or(now + IN_FLIGHT_RETRY.as_millis() as i64);
                breaches.push((counter.standing(l, key, now), at));
            } else if l.fleet && !l.soft && self.fleet_stale(now) {
                // Unconfirmed by the central store: this machine may go on
                // only within its allowance of the limit.
                let unconfirmed = counter.own() + counter.reserved - counter.confirmed;
                if unconfirmed + amount > inner.fleet_allowance * l.max + EPSILON {
                    fleet_unreachable = true;
                    breaches.push((counter.standing(l, key, now), now + FLEET_RETRY.as_millis() as i64));
                }
            }
        }
        if !breaches.is_empty() {
            let standings = tightest(
                applicable
                    .iter()
                    .filter(|(l, _)| !l.soft)
                    .map(|(l, key)| state[&(l.name.clone(), key.clone())].standing(l, key, now)),
            );
            drop(state);
            let limits = breaches.iter().map(|(s, _)| s.limit.clone()).collect();
            let (standing, at) = breaches
                .into_iter()
                .max_by_key(|(_, at)| *at)
                .expect("at least one breach");
            return Err(Box::new(Exceeded {
                standing,
                limits,
                retry_after: ms_duration(at - now).max(Duration::from_secs(1)),
                standings,
                fleet_unreachable,
            }));
        }
        let mut entries = Vec::with_capacity(applicable.len());
        let mut standings = Vec::with_capacity(applicable.len());
        let mut warnings = Vec::new();
        for (l, key) in applicable {
            let counter = state.get_mut(&(l.name.clone(), key.clone())).expect("entered above");
            let amount = estimate.of(l.measure);
            if l.soft && over(&l, counter.used(), counter.reserved, amount) {
                warnings.push(l.name.clone());
            }
            let reserved = match l.measure {
                Measure::Requests => {
                    counter.add(&l, now, 1.0);
                    events.extend(counter.crossings(&l, &key));
                    0.0
                }
                _ => {
                    counter.reserved += amount;
                    amount
                }
            };
            if !l.soft {
                standings.push(counter.standing(&l, &key, now));
            }
            entries.push(HoldEntry {
                limit: l,
                key,
                reserved,
            });
        }
        drop(state);
        self.emit(events);
        Ok(Hold {
            quota: Some(self.clone()),
            entries,
            standings: tightest(standings.into_iter()),
            warnings,
        })
    }

    /// Every limit's standing per identity seen in its current window (a
    /// configured limit nobody used yet has one row with key `-`), token
    /// limits included.
    pub fn standings(&self) -> Vec<Standing> {
        let inner = &self.inner;
        let now = wall_ms(inner.clock.wall());
        let mut state = inner.state.lock().expect("quota lock");
        let mut rows: Vec<Standing> = state
            .iter_mut()
            .map(|((_, key), counter)| {
                let l = counter.config.clone();
                counter.expire(&l, now);
                counter.standing(&l, key, now)
            })
            .filter(|s| s.used > 0.0 || s.reserved > 0.0)
            .collect();
        for c in &inner.limits {
            if !rows.iter().any(|r| r.limit == c.config.name) {
                rows.push(Counter::new(c.config.clone()).standing(&c.config, "-", now));
            }
        }
        // Configured limits in their order, then token limits by name;
        // within a limit the heaviest users first.
        let order = |name: &str| {
            inner
                .limits
                .iter()
                .position(|c| c.config.name == name)
                .unwrap_or(usize::MAX)
        };
        rows.sort_by(|a, b| {
            order(&a.limit)
                .cmp(&order(&b.limit))
                .then_with(|| a.limit.cmp(&b.limit))
                .then_with(|| b.used.total_cmp(&a.used))
                .then_with(|| a.key.cmp(&b.key))
        });
        rows
    }

    fn settle(&self, entries: &[HoldEntry], actual: Option<Amounts>) {
        let inner = &self.inner;
        let now = wall_ms(inner.clock.wall());
        let mut events = Vec::new();
        let mut state = inner.state.lock().expect("quota lock");
        for e in entries {
            let l = &e.limit;
            let counter = state
                .entry((l.name.clone(), e.key.clone()))
                .or_insert_with(|| Counter::new(l.clone()));
            counter.release(e.reserved);
            if let (Some(actual), Measure::InputTokens | Measure::OutputTokens | Measure::Tokens | Measure::CostUsd) =
                (actual, l.measure)
            {
                counter.expire(l, now);
                counter.add(l, now, actual.of(l.measure));
                events.extend(counter.crossings(l, &e.key));
            }
        }
        drop(state);
        self.emit(events);
    }

    fn emit(&self, events: Vec<QuotaEvent>) {
        if events.is_empty() {
            return;
        }
        let sink = self.inner.events.lock().expect("quota events lock").clone();
        if let Some(sink) = sink {
            events.into_iter().for_each(|e| sink(e));
        }
    }
}

/// The smallest remaining per measure.
fn tightest(standings: impl Iterator<Item = Standing>) -> Vec<Standing> {
    let mut best: Vec<Standing> = Vec::new();
    for s in standings {
        match best.iter_mut().find(|b| b.measure == s.measure) {
            Some(b) if s.remaining() < b.remaining() => *b = s,
            Some(_) => {}
            None => best.push(s),
        }
    }
    best
}

fn prune(state: &mut HashMap<(String, String), Counter>, now: i64) {
    state.retain(|_, c| {
        let l = c.config.clone();
        c.expire(&l, now);
        c.reserved > 0.0 || !c.slices.is_empty()
    });
}

struct HoldEntry {
    limit: Arc<LimitConfig>,
    key: String,
    reserved: f64,
}

/// A request's reservations, released when dropped unless settled.
pub struct Hold {
    quota: Option<Quota>,
    entries: Vec<HoldEntry>,
    /// The tightest hard limit per measure, after this request's
    /// reservation (for `x-ratelimit-*` on the answer).
    pub standings: Vec<Standing>,
    /// Soft limits this request went over.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("entries", &self.entries.len())
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl Hold {
    /// No limit applies.
    pub fn empty() -> Hold {
        Hold {
            quota: None,
            entries: Vec::new(),
            standings: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Replaces the reservations with what the request really used.
    pub fn settle(mut self, actual: Amounts) {
        if let Some(q) = self.quota.take() {
            q.settle(&self.entries, Some(actual));
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(q) = self.quota.take() {
            q.settle(&self.entries, None);
        }
    }
}

fn wall_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// An amount as people read it: whole for counts, cents for dollars.
pub fn amount(m: Measure, v: f64) -> String {
    match m {
        Measure::CostUsd => format!("${v:.2}"),
        _ => format!("{}", v.round() as i64),
    }
}

/// `2h 5m`, `42 s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{}m {}s", s / 60, s % 60),
        7200..=172_799 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests;
