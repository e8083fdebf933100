use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::ManualClock;

fn limit(name: &str, per: Per, measure: Measure, max: f64, window: Option<WindowUnit>) -> LimitConfig {
    LimitConfig::new(name, per, measure, max, window)
}

fn quota(limits: Vec<LimitConfig>) -> (Quota, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let q = Quota::new(
        &QuotaConfig {
            limits,
            ..QuotaConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    (q, clock)
}

fn alice() -> Who<'static> {
    Who {
        user: Some("alice"),
        uid: Some(1000),
        tool: "claude-code",
        machine: "m1",
        ..Who::default()
    }
}

fn tokens(input: f64, output: f64) -> Amounts {
    Amounts {
        input_tokens: input,
        output_tokens: output,
        cost_usd: 0.0,
    }
}

const MIN: Duration = Duration::from_secs(60);

#[test]
fn a_calendar_minute_admits_its_requests_then_refuses_until_the_boundary_exactly() {
    let (q, clock) = quota(vec![limit(
        "rpm",
        Per::User,
        Measure::Requests,
        3.0,
        Some(WindowUnit::Minute),
    )]);
    clock.advance(Duration::from_millis(20_250));
    for _ in 0..3 {
        q.admit(&alice(), Amounts::default())
            .unwrap()
            .settle(Amounts::default());
    }
    let refused = q.admit(&alice(), Amounts::default()).unwrap_err();
    assert_eq!(refused.standing.limit, "rpm");
    assert_eq!(refused.standing.used, 3.0);
    // 08:00:20.250 → the window ends at 08:01:00.
    assert_eq!(refused.retry_after, Duration::from_millis(39_750));
    clock.advance(Duration::from_millis(39_749));
    assert!(
        q.admit(&alice(), Amounts::default()).is_err(),
        "one ms before the boundary"
    );
    clock.advance(Duration::from_millis(1));
    assert!(q.admit(&alice(), Amounts::default()).is_ok(), "at the boundary");
}

#[test]
fn a_rolling_hour_frees_usage_slice_by_slice() {
    let mut l = limit("tph", Per::User, Measure::Tokens, 1000.0, Some(WindowUnit::Hour));
    l.rolling = true;
    let (q, clock) = quota(vec![l]);
    q.admit(&alice(), tokens(0.0, 0.0)).unwrap().settle(tokens(600.0, 0.0));
    clock.advance(Duration::from_secs(30 * 60));
    q.admit(&alice(), tokens(0.0, 0.0)).unwrap().settle(tokens(400.0, 0.0));
    let refused = q.admit(&alice(), tokens(100.0, 0.0)).unwrap_err();
    // The first 600 were recorded in the 08:00 slice; they leave at 09:01
    // (a slice after the hour), 31 minutes from 08:30.
    assert_eq!(refused.retry_after, 31 * MIN);
    clock.advance(31 * MIN);
    let hold = q.admit(&alice(), tokens(100.0, 0.0)).unwrap();
    assert_eq!(hold.standings[0].used, 400.0);
}

#[test]
fn a_month_resets_on_the_first_at_midnight_utc() {
    let clock = ManualClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_835_478_000)); // 2028-02-29T23:00Z
    let q = Quota::new(
        &QuotaConfig {
            limits: vec![limit(
                "monthly-usd",
                Per::Org,
                Measure::CostUsd,
                10.0,
                Some(WindowUnit::Month),
            )],
            ..QuotaConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let spend = Amounts {
        cost_usd: 10.0,
        ..Amounts::default()
    };
    q.admit(&alice(), Amounts::default()).unwrap().settle(spend);
    let refused = q.admit(&alice(), Amounts::default()).unwrap_err();
    assert_eq!(
        refused.retry_after,
        Duration::from_secs(3600),
        "2028 is a leap year: March starts in an hour"
    );
    assert!(refused.message().contains("$10.00 of $10.00"), "{}", refused.message());
    clock.advance(Duration::from_secs(3600));
    assert!(q.admit(&alice(), Amounts::default()).is_ok());
}

#[test]
fn a_reservation_holds_budget_until_the_real_usage_replaces_it() {
    let (q, _) = quota(vec![limit(
        "tpd",
        Per::User,
        Measure::Tokens,
        10_000.0,
        Some(WindowUnit::Day),
    )]);
    let first = q.admit(&alice(), tokens(1000.0, 7000.0)).unwrap();
    assert_eq!(first.standings[0].remaining(), 2000.0);
    let refused = q.admit(&alice(), tokens(1000.0, 2000.0)).unwrap_err();
    assert_eq!(
        refused.retry_after, IN_FLIGHT_RETRY,
        "only a reservation stands in the way"
    );
    first.settle(tokens(1000.0, 500.0));
    let second = q.admit(&alice(), tokens(1000.0, 2000.0)).unwrap();
    assert_eq!(second.standings[0].used, 1500.0);
    assert_eq!(second.standings[0].reserved, 3000.0);
}

#[test]
fn a_hold_dropped_unsettled_gives_its_reservation_back_and_keeps_the_request_counted() {
    let (q, _) = quota(vec![
        limit("tpd", Per::User, Measure::Tokens, 10_000.0, Some(WindowUnit::Day)),
        limit("rpd", Per::User, Measure::Requests, 100.0, Some(WindowUnit::Day)),
    ]);
    drop(q.admit(&alice(), tokens(9000.0, 0.0)).unwrap());
    let hold = q.admit(&alice(), tokens(9000.0, 0.0)).unwrap();
    let by = |m| hold.standings.iter().find(|s| s.measure == m).unwrap().clone();
    assert_eq!(by(Measure::Tokens).reserved, 9000.0);
    assert_eq!(by(Measure::Tokens).used, 0.0);
    assert_eq!(by(Measure::Requests).used, 2.0);
}

#[test]
fn requests_racing_for_the_last_budget_never_reserve_past_it() {
    let (q, _) = quota(vec![limit(
        "org-tokens",
        Per::Org,
        Measure::Tokens,
        10_000.0,
        Some(WindowUnit::Day),
    )]);
    q.admit(&alice(), tokens(0.0, 0.0))
        .unwrap()
        .settle(tokens(2_500.0, 0.0));
    let threads = 32;
    let barrier = Arc::new(Barrier::new(threads));
    let holds = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (q, barrier, holds) = (q.clone(), barrier.clone(), holds.clone());
            std::thread::spawn(move || {
                barrier.wait();
                if let Ok(h) = q.admit(&alice(), tokens(300.0, 700.0)) {
                    holds.lock().unwrap().push(h);
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let holds = std::mem::take(&mut *holds.lock().unwrap());
    assert_eq!(holds.len(), 7, "7,500 left fits seven 1,000-token estimates");
    // Each used 100 more than estimated: over by less than one estimate.
    holds.into_iter().for_each(|h| h.settle(tokens(300.0, 800.0)));
    let used = q.standings()[0].used;
    assert_eq!(used, 2_500.0 + 7.0 * 1_100.0);
    assert!(used - 10_000.0 < 1_000.0);
}

#[test]
fn a_concurrency_limit_counts_requests_until_their_answers_end() {
    let (q, _) = quota(vec![limit("two-at-once", Per::Tool, Measure::Concurrent, 2.0, None)]);
    let a = q.admit(&alice(), Amounts::default()).unwrap();
    let _b = q.admit(&alice(), Amounts::default()).unwrap();
    let refused = q.admit(&alice(), Amounts::default()).unwrap_err();
    assert_eq!(refused.retry_after, IN_FLIGHT_RETRY);
    assert!(refused.message().contains("at once"), "{}", refused.message());
    a.settle(Amounts::default());
    assert!(q.admit(&alice(), Amounts::default()).is_ok());
}

#[test]
fn a_request_larger_than_the_whole_limit_passes_alone_in_an_empty_window_only() {
    let (q, _) = quota(vec![limit(
        "small",
        Per::User,
        Measure::OutputTokens,
        1000.0,
        Some(WindowUnit::Hour),
    )]);
    let big = q.admit(&alice(), tokens(10.0, 32_000.0)).unwrap();
    assert!(
        q.admit(&alice(), tokens(10.0, 32_000.0)).is_err(),
        "not while another holds the window"
    );
    big.settle(tokens(10.0, 200.0));
    assert!(
        q.admit(&alice(), tokens(10.0, 32_000.0)).is_err(),
        "not once the window has usage"
    );
    assert!(q.admit(&alice(), tokens(10.0, 800.0)).is_ok());
}

#[test]
fn a_limit_of_zero_requests_refuses_everything_it_applies_to() {
    let mut l = limit("no-aider", Per::Tool, Measure::Requests, 0.0, Some(WindowUnit::Day));
    l.tools = vec!["aider".into()];
    let (q, _) = quota(vec![l]);
    assert!(
        q.admit(&alice(), Amounts::default()).is_ok(),
        "claude-code is not aider"
    );
    let aider = Who {
        tool: "aider",
        ..alice()
    };
    assert!(q.admit(&aider, Amounts::default()).is_err());
}

#[test]
fn each_identity_has_its_own_counter() {
    let (q, _) = quota(vec![limit(
        "per-user",
        Per::User,
        Measure::Requests,
        1.0,
        Some(WindowUnit::Day),
    )]);
    q.admit(&alice(), Amounts::default()).unwrap();
    assert!(q.admit(&alice(), Amounts::default()).is_err());
    let bob = Who {
        user: Some("bob"),
        uid: Some(1001),
        ..alice()
    };
    assert!(q.admit(&bob, Amounts::default()).is_ok());
    let nameless = Who {
        user: None,
        uid: Some(1002),
        ..alice()
    };
    assert_eq!(nameless.key(Per::User), "uid:1002");
    assert_eq!(alice().key(Per::Container), "host");
    let keys: Vec<String> = q.standings().into_iter().map(|s| s.key).collect();
    assert_eq!(keys, ["alice", "bob"]);
}

#[test]
fn of_several_exceeded_limits_the_one_freeing_last_is_named() {
    let (q, _) = quota(vec![
        limit("rpm", Per::User, Measure::Requests, 1.0, Some(WindowUnit::Minute)),
        limit("rph", Per::User, Measure::Requests, 1.0, Some(WindowUnit::Hour)),
        limit("rpd", Per::User, Measure::Requests, 10.0, Some(WindowUnit::Day)),
    ]);
    q.admit(&alice(), Amounts::default()).unwrap();
    let refused = q.admit(&alice(), Amounts::default()).unwrap_err();
    assert_eq!(refused.standing.limit, "rph");
    assert_eq!(refused.limits, ["rpm", "rph"]);
    assert_eq!(refused.retry_after, 60 * MIN);
    // Headers name the tightest limit of the measure.
    assert_eq!(refused.standings.len(), 1);
    assert_eq!(refused.standings[0].remaining(), 0.0);
}

#[test]
fn a_soft_limit_warns_and_never_refuses() {
    let mut l = limit("soft-rpm", Per::User, Measure::Requests, 1.0, Some(WindowUnit::Minute));
    l.soft = true;
    let (q, _) = quota(vec![l]);
    assert!(q.admit(&alice(), Amounts::default()).unwrap().warnings.is_empty());
    let hold = q.admit(&alice(), Amounts::default()).unwrap();
    assert_eq!(hold.warnings, ["soft-rpm"]);
    assert!(hold.standings.is_empty(), "soft limits are not advertised as limits");
}

#[test]
fn crossing_50_80_and_100_percent_is_announced_once_each_and_again_in_the_next_window() {
    let (q, clock) = quota(vec![limit(
        "tpd",
        Per::User,
        Measure::Tokens,
        1000.0,
        Some(WindowUnit::Day),
    )]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    q.on_event(Arc::new(move |e: QuotaEvent| sink.lock().unwrap().push(e.percent)));
    for used in [400.0, 150.0, 100.0, 50.0, 400.0] {
        q.admit(&alice(), tokens(0.0, 0.0)).unwrap().settle(tokens(used, 0.0));
    }
    assert_eq!(*seen.lock().unwrap(), [50, 80, 100]);
    clock.advance(Duration::from_secs(86_400));
    q.admit(&alice(), tokens(0.0, 0.0)).unwrap().settle(tokens(600.0, 0.0));
    assert_eq!(*seen.lock().unwrap(), [50, 80, 100, 50]);
}

#[test]
fn config_mistakes_are_named_with_their_fix() {
    let check = |l: LimitConfig| {
        QuotaConfig {
            limits: vec![l],
            ..QuotaConfig::default()
        }
        .check()
        .unwrap_err()
    };
    assert!(check(limit("x", Per::User, Measure::Tokens, 1.0, None)).contains("needs a window"));
    assert!(check(limit("x", Per::User, Measure::Concurrent, 1.0, Some(WindowUnit::Day))).contains("no window"));
    assert!(check(limit(
        "bad name",
        Per::User,
        Measure::Requests,
        1.0,
        Some(WindowUnit::Day)
    ))
    .contains("name"));
    assert!(check(limit(
        "x",
        Per::User,
        Measure::Requests,
        f64::NAN,
        Some(WindowUnit::Day)
    ))
    .contains("max"));
    let mut l = limit("x", Per::User, Measure::Requests, 1.0, Some(WindowUnit::Day));
    l.tools = vec!["[".into()];
    assert!(check(l).contains("tools"));
    let twice = QuotaConfig {
        limits: vec![
            limit("x", Per::User, Measure::Requests, 1.0, Some(WindowUnit::Day)),
            limit("x", Per::Tool, Measure::Requests, 1.0, Some(WindowUnit::Day)),
        ],
        ..QuotaConfig::default()
    };
    assert!(twice.check().unwrap_err().contains("twice"));
}

#[test]
fn the_refusal_message_names_the_limit_the_identity_and_when_to_retry() {
    let (q, _) = quota(vec![limit(
        "dev-daily",
        Per::User,
        Measure::Tokens,
        100.0,
        Some(WindowUnit::Day),
    )]);
    q.admit(&alice(), tokens(0.0, 0.0)).unwrap().settle(tokens(150.0, 0.0));
    let m = q.admit(&alice(), tokens(10.0, 10.0)).unwrap_err().message();
    assert!(m.contains("\"dev-daily\""), "{m}");
    assert!(m.contains("user alice"), "{m}");
    assert!(m.contains("150 of 100 tokens per day (UTC calendar)"), "{m}");
    assert!(m.contains("retry in 16h 0m"), "{m}");
}

/// The central store's contract, in memory: each machine's usage per
/// window is kept at its highest (a restarted agent cannot lower it), and
/// totals are the sum over machines.
#[derive(Default)]
struct Central {
    rows: std::collections::HashMap<(String, String, i64, String), f64>,
}

impl Central {
    fn sync(&mut self, machine: &str, q: &Quota) {
        let own = q.fleet_own();
        for u in &own {
            let v = self
                .rows
                .entry((u.limit.clone(), u.key.clone(), u.window_start, machine.into()))
                .or_default();
            *v = v.max(u.used);
        }
        let mut totals: std::collections::HashMap<(String, String, i64), f64> = Default::default();
        for ((l, k, w, _), v) in &self.rows {
            *totals.entry((l.clone(), k.clone(), *w)).or_default() += v;
        }
        let totals: Vec<FleetUsage> = totals
            .into_iter()
            .map(|((limit, key, window_start), used)| FleetUsage {
                limit,
                key,
                window_start,
                used,
            })
            .collect();
        q.fleet_apply(&own, &totals);
    }
}

fn fleet_quota(clock: &Arc<ManualClock>, max: f64) -> Quota {
    let mut l = limit("org-daily", Per::Org, Measure::Requests, max, Some(WindowUnit::Day));
    l.fleet = true;
    let q = Quota::new(
        &QuotaConfig {
            limits: vec![l],
            fleet_allowance: 0.1,
            ..QuotaConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    q.enable_fleet();
    q
}

#[test]
fn a_fleet_limit_counts_per_machine_until_a_central_store_is_synced() {
    let clock = ManualClock::new();
    let mut l = limit("org-daily", Per::Org, Measure::Requests, 4.0, Some(WindowUnit::Day));
    l.fleet = true;
    let q = Quota::new(
        &QuotaConfig {
            limits: vec![l],
            ..QuotaConfig::default()
        },
        clock,
    )
    .unwrap();
    for _ in 0..4 {
        q.admit(&alice(), Amounts::default()).unwrap();
    }
    assert!(!q.admit(&alice(), Amounts::default()).unwrap_err().fleet_unreachable);
}

#[test]
fn an_agent_not_yet_confirmed_by_the_central_store_uses_only_its_allowance() {
    let clock = ManualClock::new();
    let q = fleet_quota(&clock, 20.0);
    for _ in 0..2 {
        q.admit(&alice(), Amounts::default()).unwrap();
    }
    assert!(q.admit(&alice(), Amounts::default()).unwrap_err().fleet_unreachable);
}

#[test]
fn two_machines_share_a_fleet_limit_through_the_central_store() {
    let clock = ManualClock::new();
    let (a, b) = (fleet_quota(&clock, 4.0), fleet_quota(&clock, 4.0));
    let mut central = Central::default();
    central.sync("a", &a);
    central.sync("b", &b);
    a.admit(&alice(), Amounts::default()).unwrap();
    a.admit(&alice(), Amounts::default()).unwrap();
    central.sync("a", &a);
    central.sync("b", &b);
    b.admit(&alice(), Amounts::default()).unwrap();
    b.admit(&alice(), Amounts::default()).unwrap();
    assert!(b.admit(&alice(), Amounts::default()).is_err(), "b knows a's two");
    central.sync("b", &b);
    central.sync("a", &a);
    let refused = a.admit(&alice(), Amounts::default()).unwrap_err();
    assert!(!refused.fleet_unreachable);
    assert_eq!(refused.standing.used, 4.0);
}

#[test]
fn cut_off_from_the_central_store_a_machine_goes_on_within_its_allowance_and_reconciles() {
    let clock = ManualClock::new();
    let (a, b) = (fleet_quota(&clock, 100.0), fleet_quota(&clock, 100.0));
    let mut central = Central::default();
    central.sync("b", &b);
    for _ in 0..30 {
        b.admit(&alice(), Amounts::default()).unwrap();
    }
    central.sync("b", &b);
    central.sync("a", &a);
    // The store goes away: after fleet_stale_secs, a may use 10 % of the
    // limit (10 requests) beyond what the store confirmed.
    clock.advance(Duration::from_secs(11));
    for _ in 0..10 {
        a.admit(&alice(), Amounts::default()).unwrap();
    }
    let refused = a.admit(&alice(), Amounts::default()).unwrap_err();
    assert!(refused.fleet_unreachable);
    assert!(refused.message().contains("central store"), "{}", refused.message());
    assert_eq!(refused.retry_after, FLEET_RETRY);
    // Back: a's ten are confirmed, the fleet's total is 40, and it goes on.
    central.sync("a", &a);
    central.sync("b", &b);
    let hold = a.admit(&alice(), Amounts::default()).unwrap();
    assert_eq!(hold.standings[0].used, 41.0);
}

#[test]
fn a_restarted_agent_does_not_forget_its_share_of_the_fleet_window() {
    let clock = ManualClock::new();
    let a = fleet_quota(&clock, 4.0);
    let mut central = Central::default();
    central.sync("a", &a);
    for _ in 0..3 {
        a.admit(&alice(), Amounts::default()).unwrap();
    }
    central.sync("a", &a);
    let restarted = fleet_quota(&clock, 4.0);
    central.sync("a", &restarted);
    restarted.admit(&alice(), Amounts::default()).unwrap();
    assert!(
        restarted.admit(&alice(), Amounts::default()).is_err(),
        "3 before the restart and 1 after fill the 4"
    );
}
