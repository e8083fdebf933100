//! Fleet store against a real PostgreSQL server (private cluster on
//! loopback, see promptwall_audit::testing). Fails with set-up instructions
//! when the server binaries are missing, unless PROMPTWALL_SKIP_PG=1.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{record, Req};
use promptwall_audit::chain::BreakKind;
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
        Agent::on(dir, spool, machine)
    }

    fn on(dir: tempfile::TempDir, spool: AuditStore, machine: &str) -> Agent {
        let writer = AuditWriter::spawn(spool.clone(), WriterOptions::new(machine));
        Agent {
            _dir: dir,
            spool,
            writer,
            written: 0,
        }
    }

    /// A VM image copied with its audit store: same machine id, same
    /// install id, same next row id.
    async fn clone_image(&self, machine: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        sqlx::query("VACUUM INTO $1")
            .bind(path.to_str().unwrap())
            .execute(sqlite(&self.spool))
            .await
            .unwrap();
        let spool = AuditStore::open(&format!("sqlite://{}", path.display())).await.unwrap();
        Agent::on(dir, spool, machine)
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

fn sqlite(store: &AuditStore) -> &sqlx::SqlitePool {
    match store.pool() {
        Pool::Sqlite(p) => p,
        Pool::Postgres(_) => panic!("sqlite expected"),
    }
}

/// A fleet store as deploy/postgres-roles.sql sets it up: database
/// `promptwall`, schema created by the owner, the documented roles and
/// policies, and one login role per machine (named after the machine id).
/// Returns the owner's handle.
async fn fleet_store(pg: &PgCluster, machines: &[&str]) -> AuditStore {
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE promptwall").execute(&admin).await.unwrap();
    admin.close().await;
    let owner = AuditStore::open(&pg.url("promptwall")).await.unwrap();
    sqlx::raw_sql(include_str!("../../deploy/postgres-roles.sql"))
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    for m in machines {
        sqlx::raw_sql(&format!("CREATE ROLE \"{m}\" LOGIN IN ROLE promptwall_agent"))
            .execute(pg_pool(&owner))
            .await
            .unwrap();
    }
    owner
}

fn start_pg() -> Option<PgCluster> {
    match PgCluster::start_unless_skipped() {
        Ok(pg) => pg,
        Err(e) => panic!("{e}"),
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
    let Some(mut pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a", "machine-b"]).await;
    let agent_url = pg.url_as("machine-a", "promptwall");

    let mut a = Agent::new("machine-a").await;
    let mut b = Agent::new("machine-b").await;
    let mut ship_a = CentralShipper::new(a.spool.clone(), &agent_url, 7, Duration::from_millis(50)).unwrap();
    // No role in the URL: the agent logs in as the role named after its machine.
    let mut ship_b = CentralShipper::new(
        b.spool.clone(),
        &format!("postgres://127.0.0.1:{}/promptwall", pg.port()),
        7,
        Duration::from_millis(50),
    )
    .unwrap()
    .default_user("machine-b");

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

fn ship(agent: &Agent, pg: &PgCluster, machine: &str) -> CentralShipper {
    CentralShipper::new(
        agent.spool.clone(),
        &pg.url_as(machine, "promptwall"),
        100,
        Duration::from_millis(50),
    )
    .unwrap()
}

/// Purge and reinstall: same /etc/machine-id, a fresh store whose ids
/// restart at 1. Before install ids, `ON CONFLICT DO NOTHING` on
/// (machine_id, id) swallowed every new row while the mark advanced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstall_with_the_same_machine_id_ships_every_row() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a"]).await;

    let mut first = Agent::new("machine-a").await;
    first.write(5, false).await;
    assert_eq!(ship(&first, &pg, "machine-a").drain().await.unwrap(), 5);
    drop(first); // apt purge: the spool is gone

    let mut again = Agent::new("machine-a").await;
    again.write(3, false).await;
    assert_eq!(
        again.spool.query(&QueryFilter::default()).await.unwrap()[0].id,
        3,
        "ids restarted"
    );
    assert_eq!(ship(&again, &pg, "machine-a").drain().await.unwrap(), 3);

    assert_eq!(
        owner.count_all().await.unwrap(),
        8,
        "every row of both installs is in the fleet store"
    );
    let central: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT machine_id, install_id, id FROM audit_log ORDER BY install_id, id")
            .fetch_all(pg_pool(&owner))
            .await
            .unwrap();
    let installs: BTreeSet<&str> = central.iter().map(|(_, i, _)| i.as_str()).collect();
    assert_eq!(installs.len(), 2, "{central:?}");
    assert!(
        installs.iter().all(|i| i.len() == 32),
        "random install ids: {installs:?}"
    );
    let report = owner.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        report
            .machines
            .iter()
            .map(|m| m.rows_checked)
            .collect::<Vec<_>>()
            .iter()
            .sum::<i64>(),
        8
    );
    owner.close().await;
}

/// A VM image cloned with its store: both copies write a different row 3
/// under the same (machine, install, id). Both reach the fleet store and
/// `verify` names the clash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clash_with_different_content_is_detected_not_dropped() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a"]).await;

    let mut original = Agent::new("machine-a").await;
    original.write(2, false).await;
    let mut clone = original.clone_image("machine-a").await;
    original.write(1, false).await;
    clone.write(1, true).await; // user carol: different content
    let mut ship_original = ship(&original, &pg, "machine-a");
    let mut ship_clone = ship(&clone, &pg, "machine-a");
    assert_eq!(ship_original.drain().await.unwrap(), 3);
    assert_eq!(ship_clone.drain().await.unwrap(), 3);
    // A lost acknowledgement re-sends identical rows: still skipped.
    sqlx::query("UPDATE audit_shipping SET shipped_upto = 0")
        .execute(sqlite(&clone.spool))
        .await
        .unwrap();
    assert_eq!(ship_clone.drain().await.unwrap(), 3);

    let users: Vec<(i64, String)> = sqlx::query_as("SELECT id, \"user\" FROM audit_log ORDER BY id, \"user\"")
        .fetch_all(pg_pool(&owner))
        .await
        .unwrap();
    assert_eq!(
        users,
        vec![
            (1, "alice".into()),
            (2, "alice".into()),
            (3, "alice".into()),
            (3, "carol".into())
        ],
        "both versions of row 3 are kept"
    );
    let report = owner.verify(None).await.unwrap();
    let b = report.first_break().expect("the clash is reported");
    assert_eq!(
        (b.machine_id.as_str(), b.id, b.kind),
        ("machine-a", 3, BreakKind::Conflict),
        "{b:?}"
    );
    let text = promptwall_audit::render::verify(&report);
    assert!(
        text.contains("CHAIN BROKEN at row 3 (conflict)") && text.contains("cloned install"),
        "{text}"
    );
    owner.close().await;
}

/// Row-level security: a host's role inserts rows of its own machine only,
/// even after SET ROLE to the shared group; a refused shipper keeps its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_role_cannot_insert_rows_for_another_machine() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a", "machine-b"]).await;

    // Machine a's credentials used to ship machine b's spool.
    let mut b = Agent::new("machine-b").await;
    b.write(2, false).await;
    let mut forged = ship(&b, &pg, "machine-a");
    let err = forged.drain().await.unwrap_err();
    assert!(
        matches!(err, promptwall_audit::AuditError::CentralRefused { .. })
            && err.to_string().contains("CREATE ROLE \"machine-b\""),
        "{err}"
    );
    assert_eq!(forged.shipped_upto().await.unwrap(), 0, "nothing marked shipped");
    assert!(
        b.spool.quarantined().await.unwrap().is_empty(),
        "a refusal is not a bad row"
    );
    assert_eq!(owner.count_all().await.unwrap(), 0);

    let as_a = sqlx::PgPool::connect(&pg.url_as("machine-a", "promptwall"))
        .await
        .unwrap();
    for set_role in [false, true] {
        let mut conn = as_a.acquire().await.unwrap();
        if set_role {
            sqlx::query("SET ROLE promptwall_agent")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let err = sqlx::query(
            "INSERT INTO audit_log (id, machine_id, ts, listener, status, verdict, findings, fingerprints, llm, prev_hash, hash) \
             VALUES (1, 'machine-b', '2026-01-01T00:00:00.000Z', 'explicit', 200, 'allowed', '{}', '[]', true, 'x', 'y')",
        )
        .execute(&mut *conn)
        .await
        .unwrap_err();
        assert!(err.to_string().contains("row-level security"), "{err}");
    }
    as_a.close().await;

    // Its own role ships the same rows.
    assert_eq!(ship(&b, &pg, "machine-b").drain().await.unwrap(), 2);
    assert_eq!(owner.count_all().await.unwrap(), 2);
    owner.close().await;
}

/// Any local user picks the model name: a NUL in it used to be stored in
/// SQLite, rejected by PostgreSQL, and retried forever. Now it is escaped
/// when written; a row PostgreSQL still rejects (a spool written before the
/// fix) is quarantined and the rows after it ship.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_model_ships_and_a_rejected_row_is_quarantined_while_later_rows_ship() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a"]).await;
    let mut a = Agent::new("machine-a").await;
    let mut nul = record(Req::default());
    nul.model = Some("claude\0\u{1b}[2Jx".into());
    a.writer.write(nul).await.unwrap();
    let mut shipper = ship(&a, &pg, "machine-a");
    assert_eq!(shipper.drain().await.unwrap(), 1);
    let model: String = sqlx::query_scalar("SELECT model FROM audit_log WHERE id = 1")
        .fetch_one(pg_pool(&owner))
        .await
        .unwrap();
    assert_eq!(model, "claude\\u{0}\\u{1b}[2Jx");

    // Rows 2..=5; row 3 as a spool from before the fix holds it.
    a.write(4, false).await;
    sqlx::query("UPDATE audit_log SET model = 'gpt' || char(0) || 'x' WHERE id = 3")
        .execute(sqlite(&a.spool))
        .await
        .unwrap();
    assert_eq!(shipper.drain().await.unwrap(), 4, "the batch goes through");
    a.write(2, false).await;
    assert_eq!(shipper.drain().await.unwrap(), 2, "and shipping goes on");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM audit_log ORDER BY id")
        .fetch_all(pg_pool(&owner))
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 2, 4, 5, 6, 7]);
    assert_eq!(shipper.shipped_upto().await.unwrap(), 7);

    let report = a.spool.verify(None).await.unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    let q = &report.quarantined[0];
    assert_eq!(
        (q.id, q.machine_id.as_str(), q.sqlstate.as_deref()),
        (3, "machine-a", Some("22021"))
    );
    let text = promptwall_audit::render::verify(&report);
    assert!(text.contains("row 3 of machine machine-a: QUARANTINED"), "{text}");
    owner.close().await;
}

/// A fleet store created before install ids migrates in place: the rows old
/// agents shipped stay verifiable, and a reinstalled agent's rows (ids from
/// 1 again) are stored beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_fleet_store_migrates_and_keeps_its_rows() {
    let Some(pg) = start_pg() else { return };
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE promptwall").execute(&admin).await.unwrap();
    admin.close().await;
    let old = sqlx::PgPool::connect(&pg.url("promptwall")).await.unwrap();
    common::postgres_before_install_ids(&old).await;
    for r in &common::legacy_chain("machine-a", 3) {
        insert_legacy!(&old, r);
    }
    old.close().await;
    let err = AuditStore::open_read_only(&pg.url("promptwall")).await.unwrap_err();
    assert!(err.to_string().contains("promptwall audit migrate"), "{err}");

    let owner = AuditStore::open(&pg.url("promptwall")).await.unwrap();
    sqlx::raw_sql(include_str!("../../deploy/postgres-roles.sql"))
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE ROLE \"machine-a\" LOGIN IN ROLE promptwall_agent")
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    assert!(owner.verify(None).await.unwrap().is_intact());

    let mut a = Agent::new("machine-a").await;
    a.write(2, false).await;
    assert_eq!(ship(&a, &pg, "machine-a").drain().await.unwrap(), 2);
    assert_eq!(owner.count_all().await.unwrap(), 5);
    let report = owner.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        report.machines.len(),
        2,
        "the old rows and the new install are two chains"
    );
    owner.close().await;
}

/// The machine id changed (a config drop-in, a regenerated /etc/machine-id)
/// while rows were waiting: those rows can never pass row-level security as
/// the new role, so they are quarantined and the new machine's rows ship,
/// instead of the shipper retrying the old ones forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_a_previous_machine_id_are_quarantined_not_retried_forever() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-new"]).await;
    let mut old = Agent::new("machine-old").await;
    old.write(2, false).await;
    // The same spool, now written under the new machine id.
    let dir = tempfile::tempdir().unwrap();
    let mut new = Agent::on(dir, old.spool.clone(), "machine-new");
    new.write(3, false).await;
    let mut shipper = ship(&new, &pg, "machine-new").default_user("machine-new");
    assert_eq!(shipper.drain().await.unwrap(), 5);
    let rows = central_rows(&owner).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|(m, _, _)| m == "machine-new"), "{rows:?}");
    let report = new.spool.verify(None).await.unwrap();
    assert_eq!(report.quarantined.len(), 2, "{report:?}");
    assert!(report.quarantined.iter().all(|q| q.machine_id == "machine-old"));
    owner.close().await;
}

/// A row written with a request id ships to the fleet store with it (the
/// agent's role may insert the column under row-level security), is found
/// there by that id in one query, and the fleet chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipped_row_keeps_its_request_id_and_is_found_by_it_centrally() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a"]).await;
    let mut a = Agent::new("machine-a").await;
    a.write(2, false).await;
    let mut r = record(Req::default());
    r.request_id = "0193f4c2-7a1e-7b3d-9c2f-5e8d1a6b4c3f".into();
    let id = a.writer.write(r).await.unwrap();
    a.write(1, false).await;
    assert_eq!(ship(&a, &pg, "machine-a").drain().await.unwrap(), 4);

    let found = owner
        .query(&QueryFilter {
            request_id: Some("0193f4c2-7a1e-7b3d-9c2f-5e8d1a6b4c3f".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].id, found[0].machine_id.as_str()), (id, "machine-a"));
    assert_eq!(found[0].request_id, "0193f4c2-7a1e-7b3d-9c2f-5e8d1a6b4c3f");
    assert!(owner.verify(None).await.unwrap().is_intact());
    owner.close().await;
}

/// A fleet store created after install ids but before request ids migrates
/// in place: its rows keep verifying, and rows shipped with request ids
/// afterwards are stored beside them and found by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_store_from_before_request_ids_migrates_and_still_verifies() {
    let Some(pg) = start_pg() else { return };
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE promptwall").execute(&admin).await.unwrap();
    admin.close().await;
    let old = sqlx::PgPool::connect(&pg.url("promptwall")).await.unwrap();
    common::postgres_before_request_ids(&old).await;
    let old_install = "5f0c3a9e2b7d4e1f8a6c0b9d3e2f1a7c";
    for r in &common::chain_before_request_ids("machine-a", old_install, 3) {
        insert_before_request_ids!(&old, r);
    }
    old.close().await;
    let err = AuditStore::open_read_only(&pg.url("promptwall")).await.unwrap_err();
    assert!(err.to_string().contains("promptwall audit migrate"), "{err}");

    let owner = AuditStore::open(&pg.url("promptwall")).await.unwrap();
    sqlx::raw_sql(include_str!("../../deploy/postgres-roles.sql"))
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE ROLE \"machine-a\" LOGIN IN ROLE promptwall_agent")
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    let report = owner.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines[0].rows_checked, 3);

    let a = Agent::new("machine-a").await;
    let mut r = record(Req::default());
    r.request_id = "req-after-upgrade".into();
    a.writer.write(r).await.unwrap();
    assert_eq!(ship(&a, &pg, "machine-a").drain().await.unwrap(), 1);
    let found = owner
        .query(&QueryFilter {
            request_id: Some("req-after-upgrade".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_ne!(found[0].install_id, old_install);
    let report = owner.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines.iter().map(|m| m.rows_checked).sum::<i64>(), 4);
    owner.close().await;
}

/// A routed row ships to the fleet store with its route, upstream and
/// detail (the agent's role may insert them under row-level security), the
/// detail's text arrives byte for byte (TEXT, not JSONB), it is found there
/// by its route, and the fleet chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipped_routed_row_keeps_its_routing_and_is_found_by_its_route_centrally() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a"]).await;
    let mut a = Agent::new("machine-a").await;
    a.write(2, false).await;
    let id = a
        .writer
        .write(common::routed("claude-via-openai", "openai/main"))
        .await
        .unwrap();
    a.write(1, false).await;
    assert_eq!(ship(&a, &pg, "machine-a").drain().await.unwrap(), 4);

    let filter = QueryFilter {
        route: Some("claude-via-openai".into()),
        ..Default::default()
    };
    let found = owner.query(&filter).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let local = a.spool.show(id, None).await.unwrap();
    assert_eq!(found[0], local, "the central row is the spool's row");
    assert_eq!(
        (found[0].route.as_str(), found[0].upstream.as_str()),
        ("claude-via-openai", "openai/main")
    );
    assert_eq!(
        found[0].routing_detail().unwrap().unwrap(),
        common::routing_detail("openai/main")
    );
    let unrouted = QueryFilter {
        route: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(owner.count(&unrouted).await.unwrap(), 3);
    assert!(owner.verify(None).await.unwrap().is_intact());
    owner.close().await;
}

/// A fleet store created before routing migrates in place: its rows keep
/// verifying, and routed rows shipped afterwards are stored beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_store_from_before_routing_migrates_and_still_verifies() {
    let Some(pg) = start_pg() else { return };
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE promptwall").execute(&admin).await.unwrap();
    admin.close().await;
    let old = sqlx::PgPool::connect(&pg.url("promptwall")).await.unwrap();
    common::postgres_before_routing(&old).await;
    let old_install = "5f0c3a9e2b7d4e1f8a6c0b9d3e2f1a7c";
    for r in &common::chain_before_routing("machine-a", old_install, 3) {
        insert_before_routing!(&old, r);
    }
    old.close().await;
    let err = AuditStore::open_read_only(&pg.url("promptwall")).await.unwrap_err();
    assert!(err.to_string().contains("promptwall audit migrate"), "{err}");

    let owner = AuditStore::open(&pg.url("promptwall")).await.unwrap();
    sqlx::raw_sql(include_str!("../../deploy/postgres-roles.sql"))
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE ROLE \"machine-a\" LOGIN IN ROLE promptwall_agent")
        .execute(pg_pool(&owner))
        .await
        .unwrap();
    let report = owner.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines[0].rows_checked, 3);

    let a = Agent::new("machine-a").await;
    a.writer.write(common::routed("cheap", "local")).await.unwrap();
    assert_eq!(ship(&a, &pg, "machine-a").drain().await.unwrap(), 1);
    let found = owner
        .query(&QueryFilter {
            route: Some("cheap".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].upstream, "local");
    let report = owner.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.machines.iter().map(|m| m.rows_checked).sum::<i64>(), 4);
    owner.close().await;
}

/// The fleet store keeps its hourly rollup with a statement trigger that
/// runs as the owner: agents (INSERT only) fill it by shipping, a re-sent
/// batch is not counted twice, the auditor reads it, and a prune recounts
/// the hours it cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_usage_read_from_whole_hours_and_edge_rows_equals_a_scan_for_the_auditor_also_after_a_prune() {
    let Some(pg) = start_pg() else { return };
    let owner = fleet_store(&pg, &["machine-a", "machine-b"]).await;
    for (machine, n) in [("machine-a", 400), ("machine-b", 250)] {
        let agent = Agent::new(machine).await;
        for r in common::spread_rows(n, 60) {
            agent.writer.write(r).await.unwrap();
        }
        let mut shipper = ship(&agent, &pg, machine);
        assert_eq!(shipper.drain().await.unwrap(), n);
        // A lost acknowledgement: every row is sent again.
        sqlx::query("UPDATE audit_shipping SET shipped_upto = 0")
            .execute(sqlite(&agent.spool))
            .await
            .unwrap();
        assert_eq!(shipper.drain().await.unwrap(), n);
    }
    assert_eq!(owner.count_all().await.unwrap(), 650);

    let auditor = AuditStore::open_read_only(&pg.url_as("promptwall_auditor", "promptwall"))
        .await
        .unwrap();
    let by_machine = auditor.top(TopBy::Machine, &QueryFilter::default()).await.unwrap();
    assert_eq!(
        by_machine.iter().map(|t| t.requests).collect::<Vec<_>>(),
        vec![400, 250],
        "re-sent rows are not counted again"
    );
    for f in common::usage_filters() {
        common::assert_usage_matches_rows(&auditor, &f).await;
    }

    let cutoff = promptwall_audit::time::format_ts(chrono::Utc::now() - chrono::Duration::minutes(41 * 60 + 17));
    let pruned = owner.prune(&cutoff, false).await.unwrap();
    assert_eq!(pruned.len(), 2, "{pruned:?}");
    for f in common::usage_filters() {
        common::assert_usage_matches_rows(&auditor, &f).await;
    }
    auditor.close().await;
    owner.close().await;
}
