#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use promptwall_audit::{Attempt, AuditRecord, Fingerprint, RoutingDetail, TranslationRecord};

/// A completed request `minutes_ago` with the given attribution.
pub struct Req<'a> {
    pub minutes_ago: i64,
    pub user: &'a str,
    pub tool: &'a str,
    pub exe: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub status: u16,
    pub verdict: &'a str,
    pub findings: &'a [(&'a str, u32)],
    pub tokens: (i64, i64),
}

impl Default for Req<'_> {
    fn default() -> Self {
        Req {
            minutes_ago: 1,
            user: "alice",
            tool: "claude-code",
            exe: "/usr/bin/claude",
            provider: "anthropic",
            model: "claude-sonnet-4-20250514",
            status: 200,
            verdict: "allowed",
            findings: &[],
            tokens: (1000, 100),
        }
    }
}

pub fn record(r: Req<'_>) -> AuditRecord {
    let ts = promptwall_audit::time::format_ts(Utc::now() - Duration::minutes(r.minutes_ago));
    let findings: BTreeMap<String, u32> = r.findings.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    AuditRecord {
        ts,
        listener: "transparent".into(),
        provider: Some(r.provider.into()),
        host: Some(
            if r.provider == "openai" {
                "api.openai.com"
            } else {
                "api.anthropic.com"
            }
            .into(),
        ),
        method: Some("POST".into()),
        path: Some("/v1/messages".into()),
        shape: Some("anthropic_messages".into()),
        model: Some(r.model.into()),
        status: r.status,
        input_tokens: Some(r.tokens.0),
        output_tokens: Some(r.tokens.1),
        request_bytes: 2048,
        response_bytes: 512,
        duration_ms: 812.5,
        ttfb_ms: Some(120.25),
        pid: Some(4242),
        exe: Some(r.exe.into()),
        cmdline: Some(format!("{} --print", r.exe)),
        uid: Some(1000),
        user: Some(r.user.into()),
        tool: Some(r.tool.into()),
        verdict: r.verdict.into(),
        fingerprints: findings
            .keys()
            .filter(|k| k.contains("key"))
            .map(|k| Fingerprint {
                kind: k.clone(),
                fp: format!("fp-{k}"),
            })
            .collect(),
        findings,
        llm: true,
        ..Default::default()
    }
}

/// A store created by an older promptwall: only its first `n` migrations
/// applied (from copies of their files, as the old binary embedded them).
async fn first_migrations(postgres: bool, n: usize) -> (tempfile::TempDir, sqlx::migrate::Migrator) {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, &str); 3] = if postgres {
        [
            (
                "20250101000001_audit_log.sql",
                include_str!("../../migrations/postgres/20250101000001_audit_log.sql"),
            ),
            (
                "20261201000001_install_id.sql",
                include_str!("../../migrations/postgres/20261201000001_install_id.sql"),
            ),
            (
                "20261207000001_request_id.sql",
                include_str!("../../migrations/postgres/20261207000001_request_id.sql"),
            ),
        ]
    } else {
        [
            (
                "20250101000001_audit_log.sql",
                include_str!("../../migrations/sqlite/20250101000001_audit_log.sql"),
            ),
            (
                "20261201000001_install_id.sql",
                include_str!("../../migrations/sqlite/20261201000001_install_id.sql"),
            ),
            (
                "20261207000001_request_id.sql",
                include_str!("../../migrations/sqlite/20261207000001_request_id.sql"),
            ),
        ]
    };
    for (name, sql) in &files[..n] {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    (dir, migrator)
}

async fn first_migration_only(postgres: bool) -> (tempfile::TempDir, sqlx::migrate::Migrator) {
    first_migrations(postgres, 1).await
}

/// A store created by promptwall after install ids, before request ids.
pub async fn sqlite_before_request_ids(pool: &sqlx::SqlitePool) {
    let (_dir, migrator) = first_migrations(false, 2).await;
    migrator.run(pool).await.unwrap();
}

pub async fn postgres_before_request_ids(pool: &sqlx::PgPool) {
    let (_dir, migrator) = first_migrations(true, 2).await;
    migrator.run(pool).await.unwrap();
}

/// A store created by promptwall after request ids, before routing.
pub async fn sqlite_before_routing(pool: &sqlx::SqlitePool) {
    let (_dir, migrator) = first_migrations(false, 3).await;
    migrator.run(pool).await.unwrap();
}

pub async fn postgres_before_routing(pool: &sqlx::PgPool) {
    let (_dir, migrator) = first_migrations(true, 3).await;
    migrator.run(pool).await.unwrap();
}

pub async fn sqlite_before_install_ids(pool: &sqlx::SqlitePool) {
    let (_dir, migrator) = first_migration_only(false).await;
    migrator.run(pool).await.unwrap();
}

pub async fn postgres_before_install_ids(pool: &sqlx::PgPool) {
    let (_dir, migrator) = first_migration_only(true).await;
    migrator.run(pool).await.unwrap();
}

/// Rows 1..=n of `machine` as the old writer hashed them (no install id).
pub fn legacy_chain(machine: &str, n: i64) -> Vec<AuditRecord> {
    chain_before_request_ids(machine, "", n)
}

/// Rows 1..=n of (`machine`, `install_id`) as the writer before request ids
/// hashed them (an empty install id: as the one before install ids).
pub fn chain_before_request_ids(machine: &str, install_id: &str, n: i64) -> Vec<AuditRecord> {
    let mut prev = promptwall_audit::chain::GENESIS.to_string();
    (1..=n)
        .map(|id| {
            let mut r = AuditRecord {
                id,
                machine_id: machine.into(),
                ts: promptwall_audit::time::format_ts(Utc::now() - Duration::minutes(100 - id)),
                listener: "explicit".into(),
                status: 200,
                verdict: "allowed".into(),
                llm: true,
                prev_hash: prev.clone(),
                install_id: install_id.into(),
                ..Default::default()
            };
            r.hash = promptwall_audit::chain::compute_hash(&r.prev_hash, &r);
            prev = r.hash.clone();
            r
        })
        .collect()
}

/// Rows 1..=n of (`machine`, `install_id`) as the writer before routing
/// hashed them: request ids `req-<id>`, no routing fields.
pub fn chain_before_routing(machine: &str, install_id: &str, n: i64) -> Vec<AuditRecord> {
    let mut prev = promptwall_audit::chain::GENESIS.to_string();
    chain_before_request_ids(machine, install_id, n)
        .into_iter()
        .map(|mut r| {
            r.request_id = format!("req-{}", r.id);
            r.prev_hash = prev.clone();
            r.hash = promptwall_audit::chain::compute_hash(&r.prev_hash, &r);
            prev = r.hash.clone();
            r
        })
        .collect()
}

/// A request the router sent elsewhere: `route` matched, answered by
/// `upstream` after one retried attempt, translated between shapes.
pub fn routed(route: &str, upstream: &str) -> AuditRecord {
    let mut r = record(Req::default());
    r.route = route.into();
    r.upstream = upstream.into();
    r.routing = Some(routing_detail(upstream).to_json());
    r
}

pub fn routing_detail(upstream: &str) -> RoutingDetail {
    RoutingDetail {
        requested_model: Some("claude-sonnet-4-20250514".into()),
        upstream_model: Some("gpt-5".into()),
        translation: Some(TranslationRecord {
            from: "anthropic.messages".into(),
            to: "openai.chat".into(),
        }),
        notes: vec!["thinking budget not translated".into()],
        attempts: vec![
            Attempt {
                upstream: format!("{upstream}-backup"),
                model: "gpt-5".into(),
                status: Some(429),
                ms: 12.5,
                outcome: "retry: 429, Retry-After 30 s".into(),
            },
            Attempt {
                upstream: upstream.into(),
                model: "gpt-5".into(),
                status: Some(200),
                ms: 640.25,
                outcome: "ok".into(),
            },
        ],
    }
}

/// The INSERT of a [`legacy_chain`] row into the old schema.
pub const LEGACY_INSERT: &str = "INSERT INTO audit_log (id, machine_id, ts, listener, status, request_bytes, \
    response_bytes, duration_ms, verdict, findings, fingerprints, llm, prev_hash, hash) \
    VALUES ($1, $2, $3, $4, $5, 0, 0, 0.0, $6, '{}', '[]', $7, $8, $9)";

/// The INSERT of a [`chain_before_request_ids`] row into the schema before request ids.
pub const INSERT_BEFORE_REQUEST_IDS: &str = "INSERT INTO audit_log (id, machine_id, ts, listener, status, \
    request_bytes, response_bytes, duration_ms, verdict, findings, fingerprints, llm, prev_hash, hash, install_id) \
    VALUES ($1, $2, $3, $4, $5, 0, 0, 0.0, $6, '{}', '[]', $7, $8, $9, $10)";

#[macro_export]
macro_rules! insert_before_request_ids {
    ($pool:expr, $r:expr) => {{
        let r: &promptwall_audit::AuditRecord = $r;
        sqlx::query(common::INSERT_BEFORE_REQUEST_IDS)
            .bind(r.id)
            .bind(&r.machine_id)
            .bind(&r.ts)
            .bind(&r.listener)
            .bind(i64::from(r.status))
            .bind(&r.verdict)
            .bind(r.llm)
            .bind(&r.prev_hash)
            .bind(&r.hash)
            .bind(&r.install_id)
            .execute($pool)
            .await
            .unwrap();
    }};
}

/// The INSERT of a [`chain_before_routing`] row into the schema before routing.
pub const INSERT_BEFORE_ROUTING: &str = "INSERT INTO audit_log (id, machine_id, ts, listener, status, \
    request_bytes, response_bytes, duration_ms, verdict, findings, fingerprints, llm, prev_hash, hash, install_id, \
    request_id) VALUES ($1, $2, $3, $4, $5, 0, 0, 0.0, $6, '{}', '[]', $7, $8, $9, $10, $11)";

#[macro_export]
macro_rules! insert_before_routing {
    ($pool:expr, $r:expr) => {{
        let r: &promptwall_audit::AuditRecord = $r;
        sqlx::query(common::INSERT_BEFORE_ROUTING)
            .bind(r.id)
            .bind(&r.machine_id)
            .bind(&r.ts)
            .bind(&r.listener)
            .bind(i64::from(r.status))
            .bind(&r.verdict)
            .bind(r.llm)
            .bind(&r.prev_hash)
            .bind(&r.hash)
            .bind(&r.install_id)
            .bind(&r.request_id)
            .execute($pool)
            .await
            .unwrap();
    }};
}

#[macro_export]
macro_rules! insert_legacy {
    ($pool:expr, $r:expr) => {{
        let r: &promptwall_audit::AuditRecord = $r;
        sqlx::query(common::LEGACY_INSERT)
            .bind(r.id)
            .bind(&r.machine_id)
            .bind(&r.ts)
            .bind(&r.listener)
            .bind(i64::from(r.status))
            .bind(&r.verdict)
            .bind(r.llm)
            .bind(&r.prev_hash)
            .bind(&r.hash)
            .execute($pool)
            .await
            .unwrap();
    }};
}

/// `n` rows over the `hours` before now: every minute offset, attributes
/// cycling independently (some unknown), all verdicts; deterministic.
pub fn spread_rows(n: usize, hours: i64) -> Vec<AuditRecord> {
    let users = [Some("alice"), Some("bob"), None, Some("carol")];
    let tools = [Some("claude-code"), Some("codex"), Some("aider"), None, Some("cursor")];
    let exes = ["/usr/bin/node", "/usr/bin/python3", "/opt/cursor/cursor"];
    let models = [
        ("anthropic", "claude-sonnet-4-20250514"),
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
    ];
    let verdicts = ["allowed", "allowed", "redacted", "blocked", "passthrough"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let now = Utc::now();
    let mut rows: Vec<AuditRecord> = (0..n)
        .map(|_| {
            let seconds_ago = (next() % (hours as u64 * 3600)) as i64;
            let (provider, model) = models[(next() % 3) as usize];
            let mut r = record(Req {
                user: "x",
                provider,
                model,
                verdict: verdicts[(next() % 5) as usize],
                tokens: ((next() % 5000) as i64, (next() % 800) as i64),
                ..Default::default()
            });
            r.ts = promptwall_audit::time::format_ts(now - Duration::seconds(seconds_ago));
            r.user = users[(next() % 4) as usize].map(str::to_string);
            r.tool = tools[(next() % 5) as usize].map(str::to_string);
            r.exe = Some(exes[(next() % 3) as usize].to_string());
            r.cost_usd = (next() % 4 != 0).then(|| (next() % 10_000) as f64 / 1e5);
            r.input_tokens = (next() % 6 != 0).then_some(r.input_tokens.unwrap_or(0));
            r.findings = match r.verdict.as_str() {
                "blocked" => BTreeMap::from([("aws_access_key".to_string(), 1), ("email".to_string(), 1)]),
                "redacted" => BTreeMap::from([("email".to_string(), 2)]),
                _ if next() % 7 == 0 => BTreeMap::from([("internal_host".to_string(), 1)]),
                _ => BTreeMap::new(),
            };
            r.fingerprints = if r.verdict == "blocked" {
                vec![Fingerprint {
                    kind: "aws_access_key".into(),
                    fp: format!("fp-{}", next() % 6),
                }]
            } else {
                vec![]
            };
            r
        })
        .collect();
    rows.sort_by(|a, b| a.ts.cmp(&b.ts));
    rows
}

/// `agents`, `top` (every column) and `series` (hour and day) for `filter`
/// equal what the matching rows themselves add up to: the rollup and the
/// raw edges together answer exactly what a scan would.
pub async fn assert_usage_matches_rows(store: &promptwall_audit::AuditStore, filter: &promptwall_audit::QueryFilter) {
    use promptwall_audit::{Bucket, TopBy};
    let rows = store.export(filter).await.unwrap();
    let label = format!("{filter:?} over {} rows", rows.len());
    type Sums = (i64, i64, i64, f64, i64, i64);
    let add = |s: &mut Sums, r: &AuditRecord| {
        s.0 += 1;
        s.1 += r.input_tokens.unwrap_or(0);
        s.2 += r.output_tokens.unwrap_or(0);
        s.3 += r.cost_usd.unwrap_or(0.0);
        s.4 += i64::from(r.verdict == "blocked");
        s.5 += i64::from(r.verdict == "redacted");
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;

    // Agents.
    /// requests, users, machines, first and last seen.
    type Agent = (i64, BTreeSet<String>, BTreeSet<String>, String, String);
    let mut agents: BTreeMap<Option<String>, Agent> = BTreeMap::new();
    for r in &rows {
        let e = agents
            .entry(r.tool.clone())
            .or_insert_with(|| (0, BTreeSet::new(), BTreeSet::new(), r.ts.clone(), r.ts.clone()));
        e.0 += 1;
        if let Some(u) = &r.user {
            e.1.insert(u.clone());
        }
        e.2.insert(r.machine_id.clone());
        e.3 = e.3.clone().min(r.ts.clone());
        e.4 = e.4.clone().max(r.ts.clone());
    }
    let got: BTreeMap<_, _> = store
        .agents(filter)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.tool, (a.requests, a.users, a.machines, a.first_seen, a.last_seen)))
        .collect();
    let want: BTreeMap<_, _> = agents
        .into_iter()
        .map(|(k, (n, u, m, f, l))| (k, (n, u.len() as i64, m.len() as i64, f, l)))
        .collect();
    assert_eq!(got, want, "agents, {label}");

    // Top by every column.
    let key_of = |by: TopBy, r: &AuditRecord| match by {
        TopBy::User => r.user.clone(),
        TopBy::Tool => r.tool.clone(),
        TopBy::Model => r.model.clone(),
        TopBy::Machine => Some(r.machine_id.clone()),
        TopBy::Exe => r.exe.clone(),
        TopBy::Kind => unreachable!(),
    };
    for by in [TopBy::User, TopBy::Tool, TopBy::Model, TopBy::Machine, TopBy::Exe] {
        let mut want: BTreeMap<Option<String>, Sums> = BTreeMap::new();
        for r in &rows {
            add(want.entry(key_of(by, r)).or_default(), r);
        }
        let got = store.top(by, filter).await.unwrap();
        assert_eq!(got.len(), want.len(), "top by {by:?} keys, {label}");
        for t in got {
            let w = want[&t.key];
            assert_eq!(
                (t.requests, t.input_tokens, t.output_tokens, t.blocked, t.redacted),
                (w.0, w.1, w.2, w.4, w.5),
                "top by {by:?} {:?}, {label}",
                t.key
            );
            assert!(
                close(t.cost_usd, w.3),
                "cost by {by:?} {:?}: {} vs {}, {label}",
                t.key,
                t.cost_usd,
                w.3
            );
        }
    }

    // Top by detector kind: a row counts once per kind it holds.
    let mut want: BTreeMap<Option<String>, Sums> = BTreeMap::new();
    for r in &rows {
        for kind in r.findings.keys() {
            add(want.entry(Some(kind.clone())).or_default(), r);
        }
    }
    let got = store.top(TopBy::Kind, filter).await.unwrap();
    assert_eq!(got.len(), want.len(), "top by kind keys, {label}");
    for t in got {
        let w = want[&t.key];
        assert_eq!(
            (t.requests, t.input_tokens, t.output_tokens, t.blocked, t.redacted),
            (w.0, w.1, w.2, w.4, w.5),
            "top by kind {:?}, {label}",
            t.key
        );
        assert!(close(t.cost_usd, w.3), "cost by kind {:?}, {label}", t.key);
    }

    // The same secret blocked more than once.
    type Seen = (i64, BTreeSet<String>, String, String);
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    for r in &rows {
        for f in &r.fingerprints {
            let e = seen
                .entry((f.kind.clone(), f.fp.clone()))
                .or_insert_with(|| (0, BTreeSet::new(), r.ts.clone(), r.ts.clone()));
            e.0 += 1;
            e.1.extend(r.user.clone());
            e.2 = e.2.clone().min(r.ts.clone());
            e.3 = e.3.clone().max(r.ts.clone());
        }
    }
    let want: BTreeMap<_, _> = seen
        .into_iter()
        .filter(|(_, v)| v.0 > 1)
        .map(|(k, (n, users, first, last))| (k, (n, users.into_iter().collect::<Vec<_>>(), first, last)))
        .collect();
    let got: BTreeMap<_, _> = store
        .repeated_fingerprints(filter)
        .await
        .unwrap()
        .into_iter()
        .map(|f| ((f.kind, f.fingerprint), (f.times, f.users, f.first_seen, f.last_seen)))
        .collect();
    assert_eq!(got, want, "repeated fingerprints, {label}");

    // Series by hour and by day.
    for (bucket, len) in [(Bucket::Hour, 13), (Bucket::Day, 10)] {
        for by in [TopBy::Tool, TopBy::User] {
            let mut want: BTreeMap<(String, Option<String>), Sums> = BTreeMap::new();
            for r in &rows {
                add(want.entry((r.ts[..len].to_string(), key_of(by, r))).or_default(), r);
            }
            let got = store.series(by, bucket, filter).await.unwrap();
            assert_eq!(got.len(), want.len(), "series {bucket:?} by {by:?} points, {label}");
            for p in got {
                let w = want[&(p.bucket.clone(), p.key.clone())];
                assert_eq!(
                    (p.requests, p.input_tokens, p.output_tokens, p.blocked, p.redacted),
                    (w.0, w.1, w.2, w.4, w.5),
                    "series {bucket:?} by {by:?} at {} {:?}, {label}",
                    p.bucket,
                    p.key
                );
                assert!(
                    close(p.cost_usd, w.3),
                    "series cost at {} {:?}, {label}",
                    p.bucket,
                    p.key
                );
            }
        }
    }
}

/// Windows that cut hours at both ends, whole-hour windows, one inside an
/// hour, attribute filters, and filters only rows can answer.
pub fn usage_filters() -> Vec<promptwall_audit::QueryFilter> {
    use promptwall_audit::QueryFilter;
    let now = Utc::now();
    let at = |minutes_ago: i64| promptwall_audit::time::format_ts(now - Duration::minutes(minutes_ago));
    let day_start = |days_ago: i64| (now - Duration::days(days_ago)).format("%Y-%m-%d").to_string();
    vec![
        QueryFilter::default(),
        QueryFilter {
            since: Some("30h".into()),
            ..Default::default()
        },
        QueryFilter {
            since: Some(at(47 * 60 + 13)),
            until: Some(at(5 * 60 + 41)),
            ..Default::default()
        },
        QueryFilter {
            since: Some(day_start(2)),
            until: Some(day_start(1)),
            ..Default::default()
        },
        QueryFilter {
            since: Some(at(200)),
            until: Some(at(170)),
            ..Default::default()
        },
        QueryFilter {
            since: Some("20h".into()),
            user: Some("bob".into()),
            ..Default::default()
        },
        QueryFilter {
            since: Some("50h".into()),
            exe: Some("node".into()),
            tool: Some("codex".into()),
            ..Default::default()
        },
        QueryFilter {
            model: Some("gpt-4o".into()),
            verdict: Some("redacted".into()),
            ..Default::default()
        },
        QueryFilter {
            provider: Some("anthropic".into()),
            machine: Some("machine-a".into()),
            until: Some(at(100)),
            ..Default::default()
        },
        QueryFilter {
            since: Some("40h".into()),
            status: Some(200),
            ..Default::default()
        },
    ]
}
