//! Fleet store against a real PostgreSQL server (private cluster on
//! loopback, see promptwall_audit::testing). Fails with set-up instructions
//! when the server binaries are missing, unless PROMPTWALL_SKIP_PG=1.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{record, Req};
use promptwall_audit::store::Pool;
use promptwall_audit::testing::PgCluster;
use promptwall_audit::{AuditStore, AuditWriter, CentralShipper, QueryFilter, TopBy, WriterOptions};

struct Agent {
    _dir: tempfile::TempDir,
    spool: AuditStore,
    writer: AuditWriter,
    written: usize,
}

impl Agent {
    async fn new(machine: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let spool = AuditStore::open(&format!("sqlite://{}/spool.db", dir.path().display()))
            .await
            .unwrap();
        let writer = AuditWriter::spawn(spool.clone(), WriterOptions::new(machine));
        Agent {
            _dir: dir,
            spool,
            writer,
            written: 0,
        }
    }

    /// Agent A: all claude-code/alice. Agent B: alternately claude-code/carol and cursor/bob.
    async fn write(&mut self, n: usize, mixed: bool) {
        for _ in 0..n {
            let i = self.written;
            let req = if mixed && i % 2 == 1 {
                Req {
                    user: "bob",
                    tool: "cursor",
                    exe: "/opt/cursor/cursor",
                    ..Default::default()
                }
            } else if mixed {
                Req {
                    user: "carol",
                    ..Default::default()
                }
            } else {
                Req {
                    user: "alice",
                    ..Default::default()
                }
            };
            self.writer.write(record(req)).await.unwrap();
            self.written += 1;
        }
    }

    async fn rows(&self) -> BTreeSet<(String, i64, String)> {
        self.spool
            .export(&QueryFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.machine_id, r.id, r.hash))
            .collect()
    }
}

fn pg_pool(store: &AuditStore) -> &sqlx::PgPool {
    match store.pool() {
        Pool::Postgres(p) => p,
        Pool::Sqlite(_) => panic!("postgres expected"),
    }
}

async fn central_rows(central: &AuditStore) -> Vec<(String, i64, String)> {
    sqlx::query_as("SELECT machine_id, id, hash FROM audit_log ORDER BY machine_id, id")
        .fetch_all(pg_pool(central))
        .await
        .unwrap()
}

/// Drains after a restart: the first attempt may meet a pooled connection the
/// restart killed (the background shipper retries the same way); bounded.
async fn drain_after_restart(shipper: &mut CentralShipper) -> usize {
    let mut last_err = None;
    for _ in 0..5 {
        match shipper.drain().await {
            Ok(n) => return n,
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("shipping did not resume after PostgreSQL came back: {:?}", last_err);
}

async fn count_after_restart(store: &AuditStore) -> i64 {
    let mut last_err = None;
    for _ in 0..5 {
        match store.count_all().await {
            Ok(n) => return n,
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("central store unreadable after restart: {:?}", last_err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_ship_to_one_central_store_through_an_outage() {
    let mut pg = match PgCluster::start_unless_skipped() {
        Ok(Some(pg)) => pg,
        Ok(None) => return,
        Err(e) => panic!("{e}"),
    };
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE promptwall").execute(&admin).await.unwrap();
    admin.close().await;
    // The owner creates the schema; then the documented roles are applied.
    let owner = AuditStore::open(&pg.url("promptwall")).await.unwrap();
    sqlx::raw_sql(include_str!("../../deploy/postgres-roles.sql"))
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    let agent_url = pg.url_as("promptwall_agent", "promptwall");

    let mut a = Agent::new("machine-a").await;
    let mut b = Agent::new("machine-b").await;
    let mut ship_a = CentralShipper::new(a.spool.clone(), &agent_url, 7, Duration::from_millis(50)).unwrap();
    let mut ship_b = CentralShipper::new(b.spool.clone(), &agent_url, 7, Duration::from_millis(50)).unwrap();

    // Phase 1: both agents ship (several batches of 7).
    a.write(10, false).await;
    b.write(6, true).await;
    assert_eq!(ship_a.drain().await.unwrap(), 10);
    assert_eq!(ship_b.drain().await.unwrap(), 6);
    assert_eq!(owner.count_all().await.unwrap(), 16);

    // Phase 2: central store down. Local writes still succeed; shipping
    // fails without advancing the mark; nothing is lost when it returns.
    tokio::task::block_in_place(|| pg.stop()).unwrap();
    a.write(5, false).await;
    b.write(4, true).await;
    assert!(
        ship_a.ship_once().await.is_err(),
        "shipping must fail while PostgreSQL is down"
    );
    assert_eq!(ship_a.shipped_upto().await.unwrap(), 10);
    tokio::task::block_in_place(|| pg.start_server()).unwrap();
    assert_eq!(drain_after_restart(&mut ship_a).await, 5);
    assert_eq!(drain_after_restart(&mut ship_b).await, 4);
    assert_eq!(count_after_restart(&owner).await, 25);

    // A lost acknowledgement (crash after the central commit) re-sends rows:
    // idempotent, no duplicates.
    let Pool::Sqlite(spool_a) = a.spool.pool() else {
        unreachable!()
    };
    sqlx::query("UPDATE audit_shipping SET shipped_upto = 0")
        .execute(spool_a)
        .await
        .unwrap();
    assert_eq!(ship_a.drain().await.unwrap(), 15);
    assert_eq!(owner.count_all().await.unwrap(), 25);

    // Phase 3: background shippers; PostgreSQL stops mid-run and comes back.
    let handle_a = ship_a.spawn();
    let handle_b = ship_b.spawn();
    a.write(10, false).await;
    b.write(10, true).await;
    tokio::task::block_in_place(|| pg.stop()).unwrap();
    a.write(10, false).await;
    b.write(10, true).await;
    tokio::task::block_in_place(|| pg.start_server()).unwrap();
    handle_a.poke();
    handle_b.poke();
    let expected_total = (a.written + b.written) as i64;
    assert_eq!(expected_total, 65);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let n = owner.count_all().await.unwrap_or(-1);
        if n >= expected_total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle_a.shutdown().await;
    handle_b.shutdown().await;

    // Exactly the spools' rows, each once, byte-identical hashes.
    let mut local: Vec<(String, i64, String)> = a.rows().await.into_iter().chain(b.rows().await).collect();
    local.sort();
    let central = central_rows(&owner).await;
    assert_eq!(central.len(), 65, "no row lost, none duplicated");
    assert_eq!(central, local);

    // The auditor queries the fleet store with the same code paths.
    let auditor = AuditStore::open_read_only(&pg.url_as("promptwall_auditor", "promptwall"))
        .await
        .unwrap();
    let agents = auditor.agents(&QueryFilter::default()).await.unwrap();
    let summary: Vec<(Option<&str>, i64, i64, i64)> = agents
        .iter()
        .map(|s| (s.tool.as_deref(), s.requests, s.users, s.machines))
        .collect();
    // A: 35 claude-code/alice. B: 30 rows, 15 claude-code/carol + 15 cursor/bob.
    assert_eq!(
        summary,
        vec![(Some("claude-code"), 50, 2, 2), (Some("cursor"), 15, 1, 1)]
    );

    let by_machine = auditor.top(TopBy::Machine, &QueryFilter::default()).await.unwrap();
    let m: Vec<(Option<&str>, i64, i64, i64)> = by_machine
        .iter()
        .map(|r| (r.key.as_deref(), r.requests, r.input_tokens, r.output_tokens))
        .collect();
    assert_eq!(
        m,
        vec![
            (Some("machine-a"), 35, 35_000, 3_500),
            (Some("machine-b"), 30, 30_000, 3_000)
        ]
    );
    let by_user = auditor.top(TopBy::User, &QueryFilter::default()).await.unwrap();
    let u: Vec<(Option<&str>, i64)> = by_user.iter().map(|r| (r.key.as_deref(), r.requests)).collect();
    assert_eq!(u, vec![(Some("alice"), 35), (Some("bob"), 15), (Some("carol"), 15)]);
    let alice_cost = by_user[0].cost_usd;
    assert!((alice_cost - 35.0 * (0.003 + 0.0015)).abs() < 1e-9, "{alice_cost}");
    let cursor_rows = auditor
        .query(&QueryFilter {
            tool: Some("cursor".into()),
            machine: Some("machine-b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cursor_rows.len(), 15);

    // And through the CLI, as the security team runs it against the fleet.
    fleet_cli_reports_the_same(&pg.url_as("promptwall_auditor", "promptwall"));

    // Both machines' chains verify on the central copy.
    let report = auditor.verify(None).await.unwrap();
    assert_eq!(report.machines.len(), 2);
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines.iter().map(|m| m.rows_checked).sum::<i64>(), 65);

    // Roles: agents cannot read or delete; auditors cannot write.
    let agent_pool = sqlx::PgPool::connect(&agent_url).await.unwrap();
    let err = sqlx::query("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&agent_pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&agent_pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let err = sqlx::query("UPDATE audit_log SET \"user\" = 'x'")
        .execute(pg_pool(&auditor))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    agent_pool.close().await;
    auditor.close().await;
    owner.close().await;
}

/// `promptwall audit … --db postgres://auditor@…` (the binary `cargo xtask
/// test` builds; PROMPTWALL_BIN) gives the numbers the library gave.
fn fleet_cli_reports_the_same(auditor_url: &str) {
    let Some(bin) = std::env::var_os("PROMPTWALL_BIN") else {
        assert!(
            std::env::var_os("PROMPTWALL_REQUIRE_CLIENTS").is_none(),
            "PROMPTWALL_BIN is not set"
        );
        eprintln!("SKIP the CLI half: PROMPTWALL_BIN is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let run = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = std::process::Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .arg("audit")
            .args(args)
            .args(["--db", auditor_url, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let agents = run(&["agents"]);
    let got: Vec<(String, i64, i64, i64)> = agents
        .iter()
        .map(|a| {
            (
                a["tool"].as_str().unwrap().to_string(),
                a["requests"].as_i64().unwrap(),
                a["users"].as_i64().unwrap(),
                a["machines"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("claude-code".to_string(), 50, 2, 2), ("cursor".to_string(), 15, 1, 1)]
    );
    let machines = run(&["top", "--by", "machine"]);
    let got: Vec<(String, i64)> = machines
        .iter()
        .map(|m| (m["key"].as_str().unwrap().to_string(), m["requests"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, vec![("machine-a".to_string(), 35), ("machine-b".to_string(), 30)]);
    let cursor = run(&["query", "--tool", "cursor", "--machine", "machine-b", "--limit", "100"]);
    assert_eq!(cursor.len(), 15);
    assert!(cursor
        .iter()
        .all(|r| r["machine_id"] == "machine-b" && r["user"] == "bob"));
}
