#![allow(dead_code)]

use std::collections::BTreeMap;

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
