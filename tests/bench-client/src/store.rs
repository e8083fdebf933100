//! The dashboard's store queries on a large audit store: a SQLite store
//! seeded through the real writer with `--rows` rows over 30 days, then
//! each page's queries (what `promptwall ui`'s API calls for it) timed for
//! 24 hours, 7 and 30 days. With `--postgres`, the same rows shipped to a
//! private PostgreSQL cluster (the fleet store) and timed there too. Also
//! what the rollup triggers cost the writer: rows per second with and
//! without them, interleaved.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use promptwall_audit::store::Pool;
use promptwall_audit::{
    AuditRecord, AuditStore, AuditWriter, Bucket, Fingerprint, QueryFilter, SyncMode, TopBy, WriterOptions,
};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct StoreArgs {
    /// Rows in the store the pages are timed on.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Rows per round of the trigger's write-cost comparison.
    #[arg(long, default_value_t = 50_000)]
    pub write_rows: usize,
    /// Where the stores go (a fresh directory).
    #[arg(long)]
    pub dir: std::path::PathBuf,
    /// Timed runs per page and period (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also ship the store to a private PostgreSQL cluster and time it there.
    #[arg(long)]
    pub postgres: bool,
}

const DAYS: i64 = 30;

/// Six tools, each with its executable and two models; four users; a few
/// percent of rows with findings, some of them blocked secrets whose
/// fingerprints repeat. Deterministic.
fn rows(n: usize, machine_tag: u64) -> impl Iterator<Item = AuditRecord> {
    /// tool, its executable, its (provider, model)s.
    type Tool = (&'static str, &'static str, [(&'static str, &'static str); 2]);
    const TOOLS: [Tool; 6] = [
        (
            "claude-code",
            "/usr/bin/node",
            [("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-haiku-4-5")],
        ),
        (
            "codex",
            "/usr/local/bin/codex",
            [("openai", "gpt-5-codex"), ("openai", "gpt-5-mini")],
        ),
        (
            "gemini-cli",
            "/usr/bin/node",
            [("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash")],
        ),
        (
            "aider",
            "/usr/bin/python3",
            [("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1")],
        ),
        (
            "cursor",
            "/opt/cursor/cursor",
            [("openai", "gpt-4.1"), ("anthropic", "claude-opus-4-1")],
        ),
        (
            "sdk-script",
            "/usr/bin/python3",
            [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")],
        ),
    ];
    const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d ^ machine_tag;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = chrono::Utc::now() - chrono::Duration::days(DAYS);
    let step_ms = (DAYS * 86_400_000) as f64 / n.max(1) as f64;
    (0..n).map(move |i| {
        let (tool, exe, models) = TOOLS[(next() % 6) as usize];
        let (provider, model) = models[(next() % 2) as usize];
        let roll = next() % 100;
        let (verdict, findings, fingerprints) = match roll {
            0..=2 => {
                let secret = next() % 50;
                (
                    "blocked",
                    BTreeMap::from([("aws_access_key".to_string(), 1)]),
                    vec![Fingerprint {
                        kind: "aws_access_key".into(),
                        fp: format!("fp{secret:04}"),
                    }],
                )
            }
            3..=8 => ("redacted", BTreeMap::from([("email".to_string(), 2)]), vec![]),
            9 => ("error", BTreeMap::new(), vec![]),
            _ => ("allowed", BTreeMap::new(), vec![]),
        };
        let input = (next() % 60_000) as i64;
        let output = (next() % 3_000) as i64;
        AuditRecord {
            ts: promptwall_audit::time::format_ts(start + chrono::Duration::milliseconds((i as f64 * step_ms) as i64)),
            listener: "transparent".into(),
            provider: Some(provider.into()),
            host: Some(format!("api.{provider}.example")),
            method: Some("POST".into()),
            path: Some("/v1/messages".into()),
            shape: Some("anthropic.messages".into()),
            model: Some(model.into()),
            status: if verdict == "blocked" { 422 } else { 200 },
            input_tokens: Some(input),
            output_tokens: Some(output),
            request_bytes: input * 4,
            response_bytes: output * 4,
            duration_ms: 900.0,
            ttfb_ms: Some(300.0),
            pid: Some(4000 + (next() % 1000) as u32),
            exe: Some(exe.into()),
            cmdline: Some(format!("{exe} --print")),
            uid: Some(1000),
            user: Some(USERS[(next() % 4) as usize].into()),
            tool: Some(tool.into()),
            verdict: verdict.into(),
            findings,
            fingerprints,
            llm: true,
            cost_usd: Some((input as f64 * 3.0 + output as f64 * 15.0) / 1e6),
            ..Default::default()
        }
    })
}

/// Writes `n` rows through the real writer, a few thousand in flight so it
/// commits in large groups; returns rows per second.
async fn seed(store: &AuditStore, n: usize, machine_tag: u64) -> Result<f64> {
    let writer = AuditWriter::spawn(
        store.clone(),
        WriterOptions {
            max_batch: 2048,
            ..WriterOptions::new("bench-machine")
        },
    );
    let started = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for row in rows(n, machine_tag) {
        if in_flight.len() >= 4096 {
            in_flight.join_next().await.expect("tasks are in flight")??;
        }
        let writer = writer.clone();
        in_flight.spawn(async move { writer.write(row).await });
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn open(dir: &std::path::Path, name: &str) -> Result<AuditStore> {
    let url = format!("sqlite://{}", dir.join(name).display());
    AuditStore::open_for_writing(&url, SyncMode::Normal)
        .await
        .with_context(|| format!("cannot create the bench store {url}"))
}

async fn drop_rollup_trigger(store: &AuditStore) -> Result<()> {
    let Pool::Sqlite(pool) = store.pool() else {
        anyhow::bail!("the write-cost comparison runs on SQLite")
    };
    sqlx::query("DROP TRIGGER usage_add").execute(pool).await?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The store calls behind one page of the UI, in the order its API makes them.
async fn page(store: &AuditStore, name: &str, since: &str) -> Result<()> {
    let f = QueryFilter {
        since: Some(since.into()),
        ..QueryFilter::default()
    };
    let limited = |n| QueryFilter {
        limit: Some(n),
        ..f.clone()
    };
    // As the UI asks: hourly bars for a day, daily ones for longer.
    let bucket = if since == "24h" { Bucket::Hour } else { Bucket::Day };
    match name {
        "live" => {
            store.query(&limited(100)).await?;
            // Filtered as the page lets people: by tool, by user, by a
            // rare verdict, and by a user with no rows (the worst case).
            for f in [
                QueryFilter {
                    tool: Some("aider".into()),
                    ..limited(100)
                },
                QueryFilter {
                    user: Some("carol".into()),
                    ..limited(100)
                },
                QueryFilter {
                    verdict: Some("blocked".into()),
                    ..limited(100)
                },
                QueryFilter {
                    user: Some("nobody".into()),
                    ..limited(100)
                },
            ] {
                store.query(&f).await?;
            }
        }
        "request" => {
            let newest = store.query(&limited(1)).await?;
            store.show(newest[0].id, Some(&newest[0].machine_id)).await?;
        }
        "agents" => {
            store.agents(&f).await?;
        }
        "spend" => {
            store.series(TopBy::Tool, bucket, &f).await?;
            for by in [TopBy::User, TopBy::Model, TopBy::Tool] {
                store.top(by, &limited(10)).await?;
            }
        }
        "protection" => {
            store.top(TopBy::Kind, &f).await?;
            store.repeated_fingerprints(&f).await?;
            store.series(TopBy::Tool, bucket, &f).await?;
        }
        other => anyhow::bail!("no page {other}"),
    }
    Ok(())
}

pub const PAGES: [&str; 5] = ["live", "request", "agents", "spend", "protection"];

/// Each page for each period: median and worst of `runs`, in ms.
async fn time_pages(store: &AuditStore, runs: usize) -> Result<serde_json::Map<String, Value>> {
    let mut pages = serde_json::Map::new();
    for since in ["24h", "7d", "30d"] {
        for name in PAGES {
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                page(store, name, since).await?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let worst = times.iter().copied().fold(0.0, f64::max);
            pages.insert(
                format!("{name} {since}"),
                json!({"p50_ms": median(times), "max_ms": worst}),
            );
        }
    }
    Ok(pages)
}

/// Ships `spool` to a private PostgreSQL cluster in batches (as agents
/// do; the statement trigger keeps the rollups) and times the pages there.
async fn on_postgres(spool: &AuditStore, runs: usize) -> Result<Value> {
    let pg = promptwall_audit::testing::PgCluster::start()?;
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await?;
    sqlx::query("CREATE DATABASE promptwall").execute(&admin).await?;
    admin.close().await;
    let url = pg.url("promptwall");
    let owner = AuditStore::open(&url).await?;
    let shipped = Instant::now();
    let mut shipper = promptwall_audit::CentralShipper::new(spool.clone(), &url, 1000, Duration::from_millis(50))?;
    let rows = shipper.drain().await?;
    let ship_s = shipped.elapsed().as_secs_f64();
    if let Pool::Postgres(p) = owner.pool() {
        sqlx::query("ANALYZE").execute(p).await?;
    }
    let pages = time_pages(&owner, runs).await?;
    owner.close().await;
    drop(pg);
    Ok(json!({"rows": rows, "ship_rows_per_s": rows as f64 / ship_s, "pages": pages}))
}

pub async fn run(a: StoreArgs) -> Result<Value> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("cannot create {}", a.dir.display()))?;

    // What the rollup's trigger costs the writer: rounds alternate between
    // a store without it and one with it.
    let mut with = Vec::new();
    let mut without = Vec::new();
    for round in 0..3u64 {
        let plain = open(&a.dir, &format!("write-plain-{round}.db")).await?;
        drop_rollup_trigger(&plain).await?;
        without.push(seed(&plain, a.write_rows, round).await?);
        plain.close().await;
        let rolled = open(&a.dir, &format!("write-rollup-{round}.db")).await?;
        with.push(seed(&rolled, a.write_rows, round).await?);
        rolled.close().await;
    }

    let store = open(&a.dir, "pages.db").await?;
    let seeded = Instant::now();
    let seed_rate = seed(&store, a.rows, 7).await?;
    let seed_s = seeded.elapsed().as_secs_f64();
    let rollup_rows: i64 = match store.pool() {
        Pool::Sqlite(p) => {
            sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM usage_hourly) + (SELECT COUNT(*) FROM usage_daily) \
                 + (SELECT COUNT(*) FROM kinds_hourly) + (SELECT COUNT(*) FROM fingerprints_daily)",
            )
            .fetch_one(p)
            .await?
        }
        Pool::Postgres(_) => unreachable!("a SQLite store"),
    };

    let pages = time_pages(&store, a.runs).await?;
    let postgres = if a.postgres {
        Some(on_postgres(&store, a.runs).await?)
    } else {
        None
    };
    store.close().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(json!({
        "rows": a.rows,
        "runs": a.runs,
        "days": DAYS,
        "rollup_rows": rollup_rows,
        "seed_rows_per_s": seed_rate,
        "seed_s": seed_s,
        "pages": pages,
        "postgres": postgres,
        "write_rows": a.write_rows,
        "write_rows_per_s_with_rollup": median(with),
        "write_rows_per_s_without": median(without),
    }))
}
