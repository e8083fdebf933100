//! The SQLite store end to end: writer, chain, filters, aggregates, output.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use common::{record, Req};
use promptwall_audit::chain::BreakKind;
use promptwall_audit::render::{self, Format};
use promptwall_audit::{AuditError, AuditRecord, AuditStore, AuditWriter, Bucket, QueryFilter, TopBy, WriterOptions};

async fn fresh() -> (tempfile::TempDir, String, AuditStore, AuditWriter) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/audit.db", dir.path().display());
    let store = AuditStore::open(&url).await.unwrap();
    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("machine-a"));
    (dir, url, store, writer)
}

/// Ids 1..=8 in this order; times relative to now.
async fn seed(writer: &AuditWriter) {
    let reqs = [
        Req {
            minutes_ago: 600,
            ..Default::default()
        },
        Req {
            minutes_ago: 300,
            user: "bob",
            tool: "cursor",
            exe: "/opt/cursor/cursor",
            provider: "openai",
            model: "gpt-4o-2024-08-06",
            ..Default::default()
        },
        Req {
            minutes_ago: 50,
            verdict: "blocked",
            status: 422,
            findings: &[("aws_access_key", 1)],
            tokens: (0, 0),
            ..Default::default()
        },
        Req {
            minutes_ago: 40,
            user: "bob",
            verdict: "redacted",
            findings: &[("email", 2), ("phone", 1)],
            ..Default::default()
        },
        Req {
            minutes_ago: 30,
            user: "carol",
            tool: "aider",
            exe: "/home/carol/.venv/bin/python3",
            provider: "openai",
            model: "gpt-4o-mini",
            ..Default::default()
        },
        Req {
            minutes_ago: 20,
            user: "bob",
            tool: "cursor",
            exe: "/opt/cursor/cursor",
            provider: "openai",
            model: "gpt-4o",
            status: 500,
            verdict: "error",
            ..Default::default()
        },
        Req {
            minutes_ago: 10,
            verdict: "redacted",
            findings: &[("email", 1)],
            model: "claude-opus-4-1",
            ..Default::default()
        },
        Req {
            minutes_ago: 5,
            user: "carol",
            tool: "aider",
            exe: "/home/carol/.venv/bin/python3",
            provider: "anthropic",
            model: "claude-3-5-haiku-latest",
            ..Default::default()
        },
    ];
    for r in reqs {
        writer.write(record(r)).await.unwrap();
    }
}

fn ids(rows: &[AuditRecord]) -> BTreeSet<i64> {
    rows.iter().map(|r| r.id).collect()
}

fn set(v: &[i64]) -> BTreeSet<i64> {
    v.iter().copied().collect()
}

#[tokio::test]
async fn acknowledged_rows_are_committed_with_ids_hashes_and_cost() {
    let (dir, url, store, writer) = fresh().await;
    let id = writer.write(record(Req::default())).await.unwrap();
    assert_eq!(id, 1);

    // A separate connection pool (as after a crash and restart) sees the row.
    let reopened = AuditStore::open_read_only(&url).await.unwrap();
    let row = reopened.show(1, None).await.unwrap();
    assert_eq!(row.machine_id, "machine-a");
    assert_eq!(row.prev_hash, promptwall_audit::chain::GENESIS);
    assert_eq!(row.hash, promptwall_audit::chain::compute_hash(&row.prev_hash, &row));
    // sonnet-4: 1000 in * $3/M + 100 out * $15/M.
    assert!(
        (row.cost_usd.unwrap() - (0.003 + 0.0015)).abs() < 1e-12,
        "{:?}",
        row.cost_usd
    );

    let path = dir.path().join("nested/dir/audit.db");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "store file mode");
    let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o750, "store directory mode");

    let promptwall_audit::store::Pool::Sqlite(pool) = store.pool() else {
        panic!("sqlite expected")
    };
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(pool).await.unwrap();
    assert_eq!((journal.as_str(), synchronous), ("wal", 2), "WAL with synchronous=FULL");
}

#[tokio::test]
async fn concurrent_writes_get_unique_ids_and_one_intact_chain() {
    let (_dir, _url, store, writer) = fresh().await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(record(Req {
                    minutes_ago: i % 7,
                    ..Default::default()
                }))
                .await
                .unwrap()
            })
        })
        .collect();
    let mut got = BTreeSet::new();
    for t in tasks {
        got.insert(t.await.unwrap());
    }
    assert_eq!(got, (1..=200).collect());
    assert_eq!(store.count_all().await.unwrap(), 200);
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines[0].rows_checked, 200);
}

/// The shipper (another connection) writes its mark while the writer
/// commits: no write may fail with SQLITE_BUSY_SNAPSHOT ("database is locked").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_a_concurrent_writer_on_another_connection() {
    let (_dir, url, store, writer) = fresh().await;
    let other = AuditStore::open(&url).await.unwrap();
    let promptwall_audit::store::Pool::Sqlite(pool) = other.pool().clone() else {
        unreachable!()
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let marker = tokio::spawn(async move {
        let mut n = 0i64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
            sqlx::query(
                "INSERT INTO audit_shipping (central, shipped_upto, updated_ts) VALUES ('x', $1, '') \
                 ON CONFLICT (central) DO UPDATE SET shipped_upto = excluded.shipped_upto",
            )
            .bind(n)
            .execute(&pool)
            .await
            .unwrap();
            n += 1;
            tokio::task::yield_now().await;
        }
        n
    });
    for i in 0..300 {
        writer
            .write(record(Req {
                minutes_ago: i % 7,
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(marker.await.unwrap() > 0, "the concurrent writer must have run");
    assert_eq!(store.count_all().await.unwrap(), 300);
    assert!(store.verify(None).await.unwrap().is_intact());
}

#[tokio::test]
async fn bodies_are_captured_capped_and_shown_only_when_capture_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&format!("sqlite://{}/a.db", dir.path().display()))
        .await
        .unwrap();
    let writer = AuditWriter::spawn(
        store.clone(),
        WriterOptions {
            capture_bodies: true,
            capture_max_bytes: 16,
            ..WriterOptions::new("m")
        },
    );
    let mut rec = record(Req::default());
    rec.request_body = Some(r#"{"messages":[{"content":"hello [[EMAIL_001]]"}]}"#.into());
    rec.response_body = Some("ok".into());
    let id = writer.write(rec).await.unwrap();
    let row = store.show(id, None).await.unwrap();
    assert!(
        row.request_body
            .as_deref()
            .unwrap()
            .starts_with("{\"messages\":[{\"c\n[promptwall: truncated"),
        "{:?}",
        row.request_body
    );
    assert_eq!(row.response_body.as_deref(), Some("ok"));
    let detail = render::record_detail(&row);
    assert!(detail.contains("--- response body ---\nok"), "{detail}");

    // Retention purges bodies; the chain still verifies (digests are hashed).
    let purged = store.purge_bodies("9999-01-01T00:00:00.000Z").await.unwrap();
    assert_eq!(purged, 1);
    assert_eq!(store.show(id, None).await.unwrap().request_body, None);
    assert!(store.verify(None).await.unwrap().is_intact());
    assert!(matches!(store.show(99, None).await, Err(AuditError::NotFound(99))));
}

#[tokio::test]
async fn filters_select_the_right_rows() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    let q = |f: QueryFilter| {
        let store = store.clone();
        async move { ids(&store.query(&f).await.unwrap()) }
    };
    assert_eq!(q(QueryFilter::default()).await, (1..=8).collect());
    assert_eq!(
        q(QueryFilter {
            since: Some("1h".into()),
            ..Default::default()
        })
        .await,
        set(&[3, 4, 5, 6, 7, 8])
    );
    assert_eq!(
        q(QueryFilter {
            since: Some("1h".into()),
            until: Some("25m".into()),
            ..Default::default()
        })
        .await,
        set(&[3, 4, 5])
    );
    assert_eq!(
        q(QueryFilter {
            user: Some("bob".into()),
            ..Default::default()
        })
        .await,
        set(&[2, 4, 6])
    );
    assert_eq!(
        q(QueryFilter {
            tool: Some("aider".into()),
            ..Default::default()
        })
        .await,
        set(&[5, 8])
    );
    assert_eq!(
        q(QueryFilter {
            exe: Some("cursor".into()),
            ..Default::default()
        })
        .await,
        set(&[2, 6]),
        "exe by file name"
    );
    assert_eq!(
        q(QueryFilter {
            exe: Some("/usr/bin/claude".into()),
            ..Default::default()
        })
        .await,
        set(&[1, 3, 4, 7])
    );
    assert_eq!(
        q(QueryFilter {
            provider: Some("openai".into()),
            ..Default::default()
        })
        .await,
        set(&[2, 5, 6])
    );
    assert_eq!(
        q(QueryFilter {
            model: Some("gpt-4o".into()),
            ..Default::default()
        })
        .await,
        set(&[2, 5, 6]),
        "model prefix"
    );
    assert_eq!(
        q(QueryFilter {
            model: Some("gpt-4o-mini".into()),
            ..Default::default()
        })
        .await,
        set(&[5])
    );
    assert_eq!(
        q(QueryFilter {
            status: Some(422),
            ..Default::default()
        })
        .await,
        set(&[3])
    );
    assert_eq!(
        q(QueryFilter {
            verdict: Some("redacted".into()),
            ..Default::default()
        })
        .await,
        set(&[4, 7])
    );
    assert_eq!(
        q(QueryFilter {
            kind: Some("email".into()),
            ..Default::default()
        })
        .await,
        set(&[4, 7])
    );
    assert_eq!(
        q(QueryFilter {
            kind: Some("aws_access_key".into()),
            ..Default::default()
        })
        .await,
        set(&[3])
    );
    // LIKE wildcards in a kind are literal.
    assert_eq!(
        q(QueryFilter {
            kind: Some("aws%".into()),
            ..Default::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        q(QueryFilter {
            kind: Some("e_ail".into()),
            ..Default::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        q(QueryFilter {
            machine: Some("machine-a".into()),
            ..Default::default()
        })
        .await
        .len(),
        8
    );
    assert_eq!(
        q(QueryFilter {
            machine: Some("machine-b".into()),
            ..Default::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        q(QueryFilter {
            user: Some("bob".into()),
            provider: Some("openai".into()),
            status: Some(200),
            ..Default::default()
        })
        .await,
        set(&[2])
    );

    let newest_two = store
        .query(&QueryFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newest_two.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![8, 7],
        "newest first"
    );
    let exported = store
        .export(&QueryFilter {
            since: Some("45m".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        exported.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![4, 5, 6, 7, 8],
        "export oldest first"
    );

    let err = store
        .query(&QueryFilter {
            since: Some("last tuesday".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("7d"), "{err}");
}

#[tokio::test]
async fn agents_and_top_aggregate_correctly() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    let agents = store.agents(&QueryFilter::default()).await.unwrap();
    let summary: Vec<(Option<&str>, i64, i64, i64)> = agents
        .iter()
        .map(|a| (a.tool.as_deref(), a.requests, a.users, a.machines))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("claude-code"), 4, 2, 1),
            (Some("aider"), 2, 1, 1),
            (Some("cursor"), 2, 1, 1)
        ],
        "claude-code: alice+bob; ties ordered by name"
    );
    let aider = agents.iter().find(|a| a.tool.as_deref() == Some("aider")).unwrap();
    assert_eq!(aider.last_seen, store.show(8, None).await.unwrap().ts);
    let recent = store
        .agents(&QueryFilter {
            since: Some("1h".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recent.iter().map(|a| a.requests).sum::<i64>(), 6);

    let by_user = store.top(TopBy::User, &QueryFilter::default()).await.unwrap();
    let bob = by_user.iter().find(|r| r.key.as_deref() == Some("bob")).unwrap();
    assert_eq!(
        (
            bob.requests,
            bob.input_tokens,
            bob.output_tokens,
            bob.blocked,
            bob.redacted
        ),
        (3, 3000, 300, 0, 1)
    );
    let alice = by_user.iter().find(|r| r.key.as_deref() == Some("alice")).unwrap();
    assert_eq!(
        (alice.requests, alice.input_tokens, alice.blocked, alice.redacted),
        (3, 2000, 1, 1)
    );
    assert_eq!(by_user[0].requests, 3);
    // Cost is the sum of the per-row estimates.
    let rows = store
        .query(&QueryFilter {
            user: Some("bob".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let expected: f64 = rows.iter().filter_map(|r| r.cost_usd).sum();
    assert!(expected > 0.0 && (bob.cost_usd - expected).abs() < 1e-12);

    let by_kind = store.top(TopBy::Kind, &QueryFilter::default()).await.unwrap();
    let kinds: Vec<(&str, i64, i64, i64)> = by_kind
        .iter()
        .map(|r| (r.key.as_deref().unwrap(), r.requests, r.blocked, r.redacted))
        .collect();
    assert_eq!(
        kinds,
        vec![("email", 2, 0, 2), ("aws_access_key", 1, 1, 0), ("phone", 1, 0, 1)]
    );

    let by_model = store
        .top(
            TopBy::Model,
            &QueryFilter {
                provider: Some("openai".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_model.len(), 3);
    let by_machine = store.top(TopBy::Machine, &QueryFilter::default()).await.unwrap();
    assert_eq!(
        (by_machine[0].key.as_deref(), by_machine[0].requests),
        (Some("machine-a"), 8)
    );
    let by_exe = store
        .top(
            TopBy::Exe,
            &QueryFilter {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (by_exe[0].key.as_deref(), by_exe[0].requests),
        (Some("/usr/bin/claude"), 4)
    );
    let by_tool = store.top(TopBy::Tool, &QueryFilter::default()).await.unwrap();
    assert_eq!(by_tool.iter().map(|r| r.requests).sum::<i64>(), 8);
}

#[tokio::test]
async fn table_json_and_csv_output() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    let rows = store
        .query(&QueryFilter {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();

    let table = render::records(&rows, Format::Table);
    let lines: Vec<&str> = table.lines().collect();
    for col in [
        "ID",
        "TIME (UTC)",
        "USER",
        "TOOL",
        "EXE",
        "MODEL",
        "STATUS",
        "IN",
        "OUT",
        "VERDICT",
        "FINDINGS",
        "COST",
    ] {
        assert!(lines[1].contains(col), "header lacks {col}: {}", lines[1]);
    }
    assert!(!lines[1].contains("MACHINE"), "one machine: no machine column");
    let row8 = lines
        .iter()
        .find(|l| l.contains("claude-3-5-haiku-latest"))
        .expect("row 8 rendered");
    for cell in ["carol", "aider", "python3", "200", "1000", "100", "allowed"] {
        assert!(row8.contains(cell), "row lacks {cell}: {row8}");
    }
    assert!(table.contains("email×1"), "{table}");
    assert_eq!(
        table
            .lines()
            .filter(|l| [" claude-code ", " aider ", " cursor "].iter().any(|t| l.contains(t)))
            .count(),
        3
    );

    let jsonl = render::records(&rows, Format::Jsonl);
    let objects: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 3);
    for key in [
        "id",
        "ts",
        "listener",
        "provider",
        "host",
        "method",
        "path",
        "shape",
        "model",
        "status",
        "input_tokens",
        "output_tokens",
        "duration_ms",
        "ttfb_ms",
        "pid",
        "exe",
        "uid",
        "user",
        "tool",
        "verdict",
    ] {
        assert!(objects.iter().all(|o| o.get(key).is_some()), "missing {key}");
    }
    assert_eq!(objects[0]["id"], 8);
    assert_eq!(objects[0]["user"], "carol");
    assert_eq!(objects[0]["status"], 200);
    assert_eq!(objects[1]["findings"]["email"], 1);
    assert!(objects[0].get("request_body").is_none(), "bodies only in show/export");

    let csv = render::records(&rows, Format::Csv);
    let mut csv_lines = csv.lines();
    let header = csv_lines.next().unwrap();
    assert!(header.starts_with("id,machine_id,ts,listener,"), "{header}");
    let first = csv_lines.next().unwrap();
    assert!(first.starts_with("8,machine-a,"), "{first}");
    assert!(
        first.contains(",\"{\"\"email\"\":1}\",") || csv.contains("\"{\"\"email\"\":1}\""),
        "JSON quoted: {csv}"
    );
    assert_eq!(csv.lines().count(), 4);

    let agents = store.agents(&QueryFilter::default()).await.unwrap();
    let t = render::agents(&agents, Format::Table);
    assert!(
        t.contains("TOOL") && t.contains("USERS") && t.contains("claude-code"),
        "{t}"
    );
    let top = store.top(TopBy::User, &QueryFilter::default()).await.unwrap();
    let t = render::top(TopBy::User, &top, Format::Table);
    assert!(
        t.contains("USER") && t.contains("EST. COST") && t.contains("bob"),
        "{t}"
    );
    let j = render::top(TopBy::User, &top, Format::Jsonl);
    let first: serde_json::Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
    assert_eq!(first["requests"], 3);
}

async fn exec(store: &AuditStore, sql: &str) {
    let promptwall_audit::store::Pool::Sqlite(pool) = store.pool() else {
        panic!()
    };
    sqlx::query(sql).execute(pool).await.unwrap();
}

#[tokio::test]
async fn verify_detects_an_edited_row() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    assert!(store.verify(None).await.unwrap().is_intact());
    exec(&store, "UPDATE audit_log SET \"user\" = 'mallory' WHERE id = 4").await;
    let report = store.verify(None).await.unwrap();
    let b = report.first_break().expect("break found");
    assert_eq!((b.id, b.kind), (4, BreakKind::Edited), "{b:?}");
    assert!(render::verify(&report).contains("CHAIN BROKEN at row 4 (edited)"));
}

#[tokio::test]
async fn verify_detects_a_deleted_row() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    exec(&store, "DELETE FROM audit_log WHERE id = 3").await;
    let b = store
        .verify(None)
        .await
        .unwrap()
        .first_break()
        .cloned()
        .expect("break found");
    assert_eq!((b.id, b.kind), (4, BreakKind::Deleted), "{b:?}");
    // Deleting the first row is caught too (chain must start at genesis).
    let (_dir2, _url2, store2, writer2) = fresh().await;
    seed(&writer2).await;
    exec(&store2, "DELETE FROM audit_log WHERE id = 1").await;
    let b = store2
        .verify(None)
        .await
        .unwrap()
        .first_break()
        .cloned()
        .expect("break found");
    assert_eq!((b.id, b.kind), (2, BreakKind::Deleted), "{b:?}");
}

#[tokio::test]
async fn verify_detects_an_inserted_row() {
    let (_dir, _url, store, writer) = fresh().await;
    for _ in 0..3 {
        writer.write(record(Req::default())).await.unwrap();
    }
    // A forger appends a well-formed row that links to row 3...
    let mut forged = store.show(3, None).await.unwrap();
    forged.id = 4;
    forged.user = Some("nobody-was-here".into());
    forged.prev_hash = store.show(3, None).await.unwrap().hash;
    forged.hash = promptwall_audit::chain::compute_hash(&forged.prev_hash, &forged);
    let promptwall_audit::store::Pool::Sqlite(pool) = store.pool() else {
        panic!()
    };
    insert_raw(pool, &forged).await;
    // ...but the real writer keeps chaining from row 3, exposing it.
    writer.write(record(Req::default())).await.unwrap();
    let b = store
        .verify(None)
        .await
        .unwrap()
        .first_break()
        .cloned()
        .expect("break found");
    assert_eq!((b.id, b.kind), (4, BreakKind::Inserted), "{b:?}");
}

async fn insert_raw(pool: &sqlx::SqlitePool, r: &AuditRecord) {
    // Copy the row before it, then rewrite the fields the forger controls.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("CREATE TEMP TABLE forged AS SELECT * FROM audit_log WHERE id = $1")
        .bind(r.id - 1)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE forged SET id = $1, \"user\" = $2, prev_hash = $3, hash = $4")
        .bind(r.id)
        .bind(r.user.clone())
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO audit_log SELECT * FROM forged")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DROP TABLE forged").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn prune_keeps_rows_a_registered_central_store_has_not_received() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    // Configured, but the central store was never reachable: nothing shipped.
    let shipper = promptwall_audit::CentralShipper::new(
        store.clone(),
        "postgres://agent@127.0.0.1:1/promptwall",
        100,
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    shipper.register().await.unwrap();
    shipper.register().await.unwrap(); // idempotent
    let reports = store.prune("9999-01-01T00:00:00.000Z", false).await.unwrap();
    assert_eq!(reports.iter().map(|r| r.deleted).sum::<u64>(), 0, "{reports:?}");
    assert_eq!(store.count_all().await.unwrap(), 8);
    // Once rows 1..=5 are shipped, exactly those may go.
    exec(&store, "UPDATE audit_shipping SET shipped_upto = 5").await;
    let reports = store.prune("9999-01-01T00:00:00.000Z", false).await.unwrap();
    assert_eq!(reports[0].deleted, 5);
    assert_eq!(
        ids(&store.query(&QueryFilter::default()).await.unwrap()),
        set(&[6, 7, 8])
    );
}

#[tokio::test]
async fn prune_keeps_the_chain_verifiable_and_refuses_to_destroy_evidence() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    let cutoff = promptwall_audit::time::parse_time_spec("45m", chrono::Utc::now()).unwrap();
    let reports = store.prune(&cutoff, false).await.unwrap();
    assert_eq!((reports[0].deleted, reports[0].checkpoint_id), (3, 3));
    assert_eq!(
        ids(&store.query(&QueryFilter::default()).await.unwrap()),
        set(&[4, 5, 6, 7, 8])
    );
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.machines[0].rows_checked, report.machines[0].pruned_rows),
        (5, 3)
    );

    // New rows continue the chain after the prune.
    let id = writer.write(record(Req::default())).await.unwrap();
    assert_eq!(id, 9);
    assert!(store.verify(None).await.unwrap().is_intact());

    // Deleting the row right after the checkpoint is still detected.
    exec(&store, "DELETE FROM audit_log WHERE id = 4").await;
    let b = store.verify(None).await.unwrap().first_break().cloned().unwrap();
    assert_eq!((b.id, b.kind), (5, BreakKind::Deleted));
    // And prune will not erase that evidence without --force.
    let err = store
        .prune("9999-01-01T00:00:00.000Z", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refusing to prune") && err.contains("--force"), "{err}");
    let forced = store.prune("9999-01-01T00:00:00.000Z", true).await.unwrap();
    assert_eq!(forced[0].deleted, 5);
    assert_eq!(store.count_all().await.unwrap(), 0);
    assert!(store.verify(None).await.unwrap().is_intact());
    assert_eq!(
        writer.write(record(Req::default())).await.unwrap(),
        10,
        "ids never reused after a full prune"
    );
    assert!(store.verify(None).await.unwrap().is_intact());
}

#[tokio::test]
async fn readers_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}/none.db", dir.path().display());
    let err = AuditStore::open_read_only(&missing).await.unwrap_err();
    assert!(matches!(err, AuditError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("promptwall up"), "{err}");
    let err = AuditStore::open("mysql://x/y").await.unwrap_err();
    assert!(err.to_string().contains("sqlite:///"), "{err}");
    let denied = AuditError::PermissionDenied {
        path: "/var/lib/promptwall/audit.db".into(),
    }
    .to_string();
    assert!(
        denied.contains("readable only by root and the promptwall group") && denied.contains("sudo"),
        "{denied}"
    );
}

#[tokio::test]
async fn retention_purges_bodies_then_prunes_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&format!("sqlite://{}/r.db", dir.path().display()))
        .await
        .unwrap();
    let writer = AuditWriter::spawn(
        store.clone(),
        WriterOptions {
            capture_bodies: true,
            ..WriterOptions::new("m")
        },
    );
    for days in [40i64, 10, 0] {
        let mut rec = record(Req {
            minutes_ago: days * 24 * 60,
            ..Default::default()
        });
        rec.request_body = Some(format!("body {days}"));
        writer.write(rec).await.unwrap();
    }
    let policy = promptwall_audit::RetentionPolicy {
        rows_days: Some(30),
        bodies_days: Some(7),
    };
    assert_eq!(
        policy.apply(&store).await.unwrap(),
        (1, 2),
        "row 1 pruned; bodies of rows 1 and 2 purged"
    );
    let rows = store.export(&QueryFilter::default()).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.id, r.request_body.is_some()))
            .collect::<Vec<_>>(),
        vec![(2, false), (3, true)]
    );
    assert!(store.verify(None).await.unwrap().is_intact());
}

#[tokio::test]
async fn durability_is_fsync_per_commit_unless_configured_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sync, pragma) in [
        ("full.db", promptwall_audit::SyncMode::Full, 2),
        ("normal.db", promptwall_audit::SyncMode::Normal, 1),
    ] {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        let store = AuditStore::open_for_writing(&url, sync).await.unwrap();
        let promptwall_audit::store::Pool::Sqlite(pool) = store.pool() else {
            panic!()
        };
        let got: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(pool).await.unwrap();
        assert_eq!(got, pragma, "{name}");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
        assert_eq!(mode, "wal");
    }
}

/// The writer's connection never checkpoints on its own (a commit would
/// wait for it); its checkpointer thread copies committed rows into the
/// database file shortly after they are committed.
#[tokio::test]
async fn committed_rows_reach_the_database_file_through_the_checkpointer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = AuditStore::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("m"));
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    let writes: Vec<_> = (0..300)
        .map(|_| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.write(record(Req::default())).await })
        })
        .collect();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {before} bytes: nothing checkpointed the WAL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(store.count_all().await.unwrap(), 300);
    assert!(store.verify(None).await.unwrap().is_intact());
}

/// A spool written before install ids (and pruned once) upgrades in place:
/// its rows keep their hashes, it keeps the empty install id (its ids never
/// restart, so it cannot clash with itself), and new rows continue its chain.
#[tokio::test]
async fn a_store_from_before_install_ids_migrates_and_its_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        common::sqlite_before_install_ids(&pool).await;
        let rows = common::legacy_chain("machine-a", 4);
        for r in &rows[2..] {
            insert_legacy!(&pool, r);
        }
        sqlx::query("INSERT INTO audit_checkpoint (machine_id, last_id, last_hash, pruned_rows, ts) VALUES ('machine-a', 2, $1, 2, $2)")
            .bind(&rows[1].hash)
            .bind(&rows[1].ts)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let url = format!("sqlite://{}", path.display());
    // `promptwall audit` (read-only, never migrates) before the agent restarted.
    let err = AuditStore::open_read_only(&url).await.unwrap_err();
    assert!(
        matches!(err, AuditError::SchemaOutdated { .. }) && err.to_string().contains("restart the agent"),
        "{err}"
    );
    let store = AuditStore::open(&url).await.unwrap();
    assert_eq!(store.install_id().await.unwrap(), "");
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.machines[0].rows_checked, report.machines[0].pruned_rows),
        (2, 2)
    );
    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("machine-a"));
    assert_eq!(writer.write(record(Req::default())).await.unwrap(), 5);
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.machines.len(), report.machines[0].rows_checked), (1, 3));

    // A store created now gets a random install id, on every row.
    let (_dir, _url, fresh_store, fresh_writer) = fresh().await;
    fresh_writer.write(record(Req::default())).await.unwrap();
    let id = fresh_store.install_id().await.unwrap();
    assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(fresh_store.show(1, None).await.unwrap().install_id, id);
    assert!(fresh_store.verify(None).await.unwrap().is_intact());
}

/// What a local user controls (model, executable, command line) reaches
/// the store with control characters escaped and lengths bounded.
#[tokio::test]
async fn control_characters_are_escaped_before_the_row_is_stored_and_hashed() {
    let (_dir, _url, store, writer) = fresh().await;
    let mut r = record(Req::default());
    r.model = Some("gpt\0\u{1b}]0;pwned\u{7}".into());
    r.exe = Some(format!("/tmp/{}", "a".repeat(20_000)));
    writer.write(r).await.unwrap();
    let got = store.show(1, None).await.unwrap();
    assert_eq!(got.model.as_deref(), Some("gpt\\u{0}\\u{1b}]0;pwned\\u{7}"));
    assert!(got.exe.as_ref().unwrap().len() <= promptwall_audit::record::MAX_LONG_FIELD);
    assert!(store.verify(None).await.unwrap().is_intact());
}

/// A row written with the exchange's request id keeps it, is found by it in
/// one query (and only it), shows it in JSON output, and is covered by the
/// hash chain.
#[tokio::test]
async fn a_row_with_a_request_id_round_trips_and_is_found_by_it() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    let mut r = record(Req::default());
    r.request_id = "01JF3Z9K8M2V7Q4XN6T5R0W1YA".into();
    let id = writer.write(r).await.unwrap();
    writer.write(record(Req::default())).await.unwrap();

    let shown = store.show(id, None).await.unwrap();
    assert_eq!(shown.request_id, "01JF3Z9K8M2V7Q4XN6T5R0W1YA");
    let found = store
        .query(&QueryFilter {
            request_id: Some("01JF3Z9K8M2V7Q4XN6T5R0W1YA".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&found), set(&[id]));
    let none = store
        .query(&QueryFilter {
            request_id: Some("01JF3Z9K8M2V7Q4XN6T5R0W1YB".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let json: serde_json::Value = serde_json::from_str(render::records(&found, Format::Jsonl).trim()).unwrap();
    assert_eq!(json["request_id"], "01JF3Z9K8M2V7Q4XN6T5R0W1YA");
    assert!(render::record_detail(&shown).contains("01JF3Z9K8M2V7Q4XN6T5R0W1YA"));
    assert!(store.verify(None).await.unwrap().is_intact());
    // One index lookup, not a scan of the log.
    let promptwall_audit::store::Pool::Sqlite(pool) = store.pool() else {
        panic!()
    };
    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("EXPLAIN QUERY PLAN SELECT id FROM audit_log WHERE request_id = $1")
            .bind("x")
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(
        plan.iter().any(|(.., detail)| detail.contains("audit_log_request_id")),
        "{plan:?}"
    );

    // The id is covered by the hash: changing it breaks the chain.
    exec(
        &store,
        &format!("UPDATE audit_log SET request_id = 'other' WHERE id = {id}"),
    )
    .await;
    let report = store.verify(None).await.unwrap();
    let broken = report.machines[0].first_break.as_ref().expect("edit detected");
    assert_eq!((broken.id, broken.kind), (id, BreakKind::Edited));
}

/// A store written before request ids upgrades in place: read-only access
/// says to restart the agent, its rows (empty request id) keep their hashes,
/// new rows carry request ids and continue the chain, and the old rows are
/// not found by a request id.
#[tokio::test]
async fn a_store_from_before_request_ids_migrates_and_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let install_id;
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        common::sqlite_before_request_ids(&pool).await;
        install_id = sqlx::query_scalar::<_, String>("SELECT value FROM audit_meta WHERE key = 'install_id'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(install_id.len(), 32, "a new store of that version has an install id");
        for r in &common::chain_before_request_ids("machine-a", &install_id, 3) {
            insert_before_request_ids!(&pool, r);
        }
        pool.close().await;
    }
    let url = format!("sqlite://{}", path.display());
    let err = AuditStore::open_read_only(&url).await.unwrap_err();
    assert!(
        matches!(err, AuditError::SchemaOutdated { .. }) && err.to_string().contains("restart the agent"),
        "{err}"
    );
    let store = AuditStore::open(&url).await.unwrap();
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines[0].rows_checked, 3);
    assert_eq!(store.show(2, None).await.unwrap().request_id, "");

    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("machine-a"));
    let mut r = record(Req::default());
    r.request_id = "req-after-upgrade".into();
    assert_eq!(writer.write(r).await.unwrap(), 4);
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.machines.len(), report.machines[0].rows_checked), (1, 4));
    let found = store
        .query(&QueryFilter {
            request_id: Some("req-after-upgrade".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&found), set(&[4]));
    assert_eq!(found[0].install_id, install_id);
    // Reopening (migrations already applied) changes nothing.
    drop(writer);
    let reopened = AuditStore::open_read_only(&url).await.unwrap();
    assert!(reopened.verify(None).await.unwrap().is_intact());
}

fn by_route(route: &str) -> QueryFilter {
    QueryFilter {
        route: Some(route.into()),
        ..Default::default()
    }
}

/// A routed row keeps its route, upstream and routing detail through the
/// store (the detail reads back as the proxy built it), is found by its
/// route in one index lookup and only by it, and every routing field is
/// covered by the hash chain.
#[tokio::test]
async fn a_routed_row_round_trips_is_found_by_its_route_and_is_covered_by_the_chain() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    let id = writer
        .write(common::routed("claude-via-openai", "openai/main"))
        .await
        .unwrap();
    let other = writer.write(common::routed("cheap", "local")).await.unwrap();
    writer.write(record(Req::default())).await.unwrap();

    let shown = store.show(id, None).await.unwrap();
    assert_eq!(
        (shown.route.as_str(), shown.upstream.as_str()),
        ("claude-via-openai", "openai/main")
    );
    assert_eq!(
        shown.routing_detail().unwrap().unwrap(),
        common::routing_detail("openai/main")
    );
    assert_eq!(
        ids(&store.query(&by_route("claude-via-openai")).await.unwrap()),
        set(&[id])
    );
    assert_eq!(ids(&store.query(&by_route("cheap")).await.unwrap()), set(&[other]));
    assert!(
        store.query(&by_route("claude")).await.unwrap().is_empty(),
        "exact, not a prefix"
    );
    assert_eq!(
        store.count(&by_route("")).await.unwrap(),
        9,
        "\"\" finds the rows no rule routed"
    );
    let unrouted = store.show(1, None).await.unwrap();
    assert_eq!(
        (unrouted.route.as_str(), unrouted.upstream.as_str(), unrouted.routing),
        ("", "", None)
    );
    assert!(store.verify(None).await.unwrap().is_intact());

    let promptwall_audit::store::Pool::Sqlite(pool) = store.pool() else {
        panic!()
    };
    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("EXPLAIN QUERY PLAN SELECT id FROM audit_log WHERE route = $1")
            .bind("x")
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(
        plan.iter().any(|(.., detail)| detail.contains("audit_log_route")),
        "{plan:?}"
    );

    for (column, forged) in [
        ("route", "'other-rule'"),
        ("upstream", "'attacker/acct'"),
        ("routing", "replace(routing, '\"status\":429', '\"status\":200')"),
    ] {
        let saved: (String, String, Option<String>) =
            sqlx::query_as("SELECT route, upstream, routing FROM audit_log WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        exec(
            &store,
            &format!("UPDATE audit_log SET {column} = {forged} WHERE id = {id}"),
        )
        .await;
        let report = store.verify(None).await.unwrap();
        let broken = report.machines[0]
            .first_break
            .as_ref()
            .unwrap_or_else(|| panic!("{column} edit missed"));
        assert_eq!((broken.id, broken.kind), (id, BreakKind::Edited), "{column}");
        sqlx::query("UPDATE audit_log SET route = $1, upstream = $2, routing = $3 WHERE id = $4")
            .bind(saved.0)
            .bind(saved.1)
            .bind(saved.2)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
        assert!(store.verify(None).await.unwrap().is_intact(), "{column} restored");
    }
}

/// The writer bounds the detail before hashing: a runaway failover loop
/// stores 32 attempts (the last one kept), and the row verifies.
#[tokio::test]
async fn a_runaway_routing_detail_is_bounded_before_it_is_stored_and_hashed() {
    let (_dir, _url, store, writer) = fresh().await;
    let mut detail = common::routing_detail("openai/main");
    let last = detail.attempts.pop().unwrap();
    detail.attempts = (0..100)
        .map(|i| promptwall_audit::Attempt {
            upstream: format!("u{i}/acct"),
            outcome: format!("retry \u{1b}[1m{i}"),
            ..last.clone()
        })
        .collect();
    detail.attempts.push(last);
    let mut r = common::routed("r", "openai/main");
    r.routing = Some(detail.to_json());
    let id = writer.write(r).await.unwrap();
    let stored = store.show(id, None).await.unwrap().routing_detail().unwrap().unwrap();
    assert_eq!(stored.attempts.len(), promptwall_audit::routing::MAX_ATTEMPTS);
    assert_eq!(stored.attempts.last().unwrap().upstream, "openai/main");
    assert_eq!(stored.attempts[0].outcome, "retry \\u{1b}[1m0");
    assert!(
        stored.notes.iter().any(|n| n.contains("attempts not recorded")),
        "{:?}",
        stored.notes
    );
    assert!(store.verify(None).await.unwrap().is_intact());
}

/// A store written before routing upgrades in place: read-only access says
/// to restart the agent, its rows keep their hashes (no routing fields) and
/// are not found by a route, and routed rows continue the chain.
#[tokio::test]
async fn a_store_from_before_routing_migrates_and_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let install_id;
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        common::sqlite_before_routing(&pool).await;
        install_id = sqlx::query_scalar::<_, String>("SELECT value FROM audit_meta WHERE key = 'install_id'")
            .fetch_one(&pool)
            .await
            .unwrap();
        for r in &common::chain_before_routing("machine-a", &install_id, 3) {
            insert_before_routing!(&pool, r);
        }
        pool.close().await;
    }
    let url = format!("sqlite://{}", path.display());
    let err = AuditStore::open_read_only(&url).await.unwrap_err();
    assert!(matches!(err, AuditError::SchemaOutdated { .. }), "{err}");
    let store = AuditStore::open(&url).await.unwrap();
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines[0].rows_checked, 3);
    let old = store.show(2, None).await.unwrap();
    assert_eq!(
        (
            old.request_id.as_str(),
            old.route.as_str(),
            old.upstream.as_str(),
            old.routing
        ),
        ("req-2", "", "", None)
    );

    // The migration counted the rows already there into the rollup.
    common::assert_usage_matches_rows(&store, &QueryFilter::default()).await;

    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("machine-a"));
    assert_eq!(
        writer
            .write(common::routed("claude-via-openai", "openai/main"))
            .await
            .unwrap(),
        4
    );
    common::assert_usage_matches_rows(&store, &QueryFilter::default()).await;
    let report = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.machines.len(), report.machines[0].rows_checked), (1, 4));
    assert_eq!(
        ids(&store.query(&by_route("claude-via-openai")).await.unwrap()),
        set(&[4])
    );
    assert_eq!(ids(&store.query(&by_route("")).await.unwrap()), set(&[1, 2, 3]));
    drop(writer);
    let reopened = AuditStore::open_read_only(&url).await.unwrap();
    assert!(reopened.verify(None).await.unwrap().is_intact());
}

#[tokio::test]
async fn a_series_sums_to_the_top_table_bucket_by_bucket() {
    let (_dir, _url, store, writer) = fresh().await;
    seed(&writer).await;
    let all = QueryFilter::default();
    let series = store.series(TopBy::Tool, Bucket::Hour, &all).await.unwrap();
    let top = store.top(TopBy::Tool, &all).await.unwrap();
    for row in &top {
        let points: Vec<_> = series.iter().filter(|p| p.key == row.key).collect();
        assert_eq!(
            points.iter().map(|p| p.requests).sum::<i64>(),
            row.requests,
            "{:?}",
            row.key
        );
        assert_eq!(points.iter().map(|p| p.input_tokens).sum::<i64>(), row.input_tokens);
        assert_eq!(points.iter().map(|p| p.blocked).sum::<i64>(), row.blocked);
    }
    assert!(series.windows(2).all(|w| w[0].bucket <= w[1].bucket), "oldest first");
    assert!(series.iter().all(|p| p.bucket.len() == 13), "hour buckets: {series:?}");
    let days = store.series(TopBy::User, Bucket::Day, &all).await.unwrap();
    assert!(days.iter().all(|p| p.bucket.len() == 10), "{days:?}");
    let err = store.series(TopBy::Kind, Bucket::Day, &all).await.unwrap_err();
    assert!(err.to_string().contains("by user"), "{err}");
}

#[tokio::test]
async fn the_same_secret_blocked_twice_is_reported_as_repeated_with_who_pasted_it() {
    let (_dir, _url, store, writer) = fresh().await;
    for (minutes_ago, user) in [(30, "alice"), (20, "bob"), (10, "alice")] {
        writer
            .write(record(Req {
                minutes_ago,
                user,
                verdict: "blocked",
                status: 422,
                findings: &[("aws_access_key", 1)],
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    writer
        .write(record(Req {
            verdict: "blocked",
            status: 422,
            findings: &[("github_key", 1)],
            ..Default::default()
        }))
        .await
        .unwrap();
    let repeated = store.repeated_fingerprints(&QueryFilter::default()).await.unwrap();
    assert_eq!(repeated.len(), 1, "a secret seen once is not repeated: {repeated:?}");
    let r = &repeated[0];
    assert_eq!((r.kind.as_str(), r.times), ("aws_access_key", 3));
    assert_eq!(r.users, vec!["alice".to_string(), "bob".to_string()]);
    assert!(r.first_seen < r.last_seen);
}

#[tokio::test]
async fn after_id_finds_exactly_the_rows_committed_since() {
    let (_dir, _url, store, writer) = fresh().await;
    for minutes_ago in [5, 50, 1] {
        writer
            .write(record(Req {
                minutes_ago,
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    let newer = store
        .query(&QueryFilter {
            after_id: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<i64> = newer.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, vec![2, 3], "whatever their request times");
}

#[tokio::test]
async fn usage_read_from_whole_hours_and_edge_rows_equals_a_scan_of_the_rows_also_after_a_prune() {
    let (_dir, _url, store, writer) = fresh().await;
    for r in common::spread_rows(600, 60) {
        writer.write(r).await.unwrap();
    }
    for f in common::usage_filters() {
        common::assert_usage_matches_rows(&store, &f).await;
    }
    // A prune whose cutoff falls inside an hour: that hour is counted again
    // from what is left of it.
    let cutoff = promptwall_audit::time::format_ts(chrono::Utc::now() - chrono::Duration::minutes(41 * 60 + 17));
    let pruned = store.prune(&cutoff, false).await.unwrap();
    assert!(pruned[0].deleted > 100, "{pruned:?}");
    for f in common::usage_filters() {
        common::assert_usage_matches_rows(&store, &f).await;
    }
    // And rows written after the prune count as before.
    for r in common::spread_rows(50, 2) {
        writer.write(r).await.unwrap();
    }
    common::assert_usage_matches_rows(&store, &QueryFilter::default()).await;
}
