//! `promptwall audit …` as the security team runs it, on a seeded SQLite
//! store: table and `--json` output of agents/top/show/export, filters,
//! `verify`'s exit status on a tampered row, and the access error.

use std::path::PathBuf;
use std::process::{Command, Output};

use promptwall_audit::{AuditRecord, AuditStore, AuditWriter, WriterOptions};

struct Seeded {
    _dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
}

fn row(user: &str, tool: &str, model: &str, verdict: &str, tokens: (i64, i64)) -> AuditRecord {
    AuditRecord {
        ts: promptwall_audit::time::now_ts(),
        listener: "transparent".into(),
        provider: Some(
            if model.starts_with("claude") {
                "anthropic"
            } else {
                "openai"
            }
            .into(),
        ),
        model: Some(model.into()),
        status: if verdict == "blocked" { 422 } else { 200 },
        input_tokens: Some(tokens.0),
        output_tokens: Some(tokens.1),
        user: Some(user.into()),
        uid: Some(1000),
        tool: Some(tool.into()),
        exe: Some(format!("/usr/bin/{tool}")),
        verdict: verdict.into(),
        findings: if verdict == "blocked" {
            [("aws_access_key_id".to_string(), 1)].into()
        } else {
            Default::default()
        },
        llm: true,
        ..Default::default()
    }
}

/// The request id bob's client got in promptwall's response header (row 3).
const BOBS_REQUEST: &str = "01JF3Z9K8M2V7Q4XN6T5R0W1YA";

async fn seeded() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let url = format!("sqlite://{}", db.display());
    let store = AuditStore::open(&url).await.unwrap();
    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("laptop-7"));
    for r in [
        row("ann", "claude-code", "claude-sonnet-4-5", "allowed", (1000, 200)),
        row("ann", "claude-code", "claude-sonnet-4-5", "redacted", (3000, 400)),
        AuditRecord {
            request_id: BOBS_REQUEST.into(),
            ..row("bob", "claude-code", "claude-sonnet-4-5", "blocked", (0, 0))
        },
        row("bob", "codex", "gpt-5", "allowed", (500, 50)),
        row("cat", "aider", "gpt-4o", "allowed", (10, 5)),
    ] {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    store.close().await;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[audit]\nurl = \"{url}\"\n")).unwrap();
    Seeded { _dir: dir, config, db }
}

fn audit(s: &Seeded, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptwall"))
        .arg("--config")
        .arg(&s.config)
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

fn ok_stdout(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn agents_and_top_count_what_was_sent_by_whom() {
    let s = seeded().await;
    let agents = json_lines(&ok_stdout(audit(&s, &["agents", "--json"])));
    let claude = agents
        .iter()
        .find(|a| a["tool"] == "claude-code")
        .expect("claude-code listed");
    assert_eq!(
        (
            claude["requests"].as_i64(),
            claude["users"].as_i64(),
            claude["machines"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(agents.len(), 3, "{agents:?}");
    let table = ok_stdout(audit(&s, &["agents"]));
    assert!(
        table.contains("claude-code") && table.contains("codex") && table.contains("aider"),
        "{table}"
    );

    let top = json_lines(&ok_stdout(audit(&s, &["top", "--by", "user", "--json"])));
    let ann = top.iter().find(|r| r["key"] == "ann").unwrap();
    assert_eq!(
        (
            ann["requests"].as_i64(),
            ann["input_tokens"].as_i64(),
            ann["redacted"].as_i64()
        ),
        (Some(2), Some(4000), Some(1))
    );
    let bob = top.iter().find(|r| r["key"] == "bob").unwrap();
    assert_eq!((bob["requests"].as_i64(), bob["blocked"].as_i64()), (Some(2), Some(1)));
    assert!(ann["cost_usd"].as_f64().unwrap() > 0.0, "priced from the table: {ann}");
    let kinds = json_lines(&ok_stdout(audit(&s, &["top", "--by", "kind", "--json"])));
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!(
        (kinds[0]["key"].as_str(), kinds[0]["blocked"].as_i64()),
        (Some("aws_access_key_id"), Some(1))
    );

    // Filters combine: bob's blocked Claude Code request only.
    let q = json_lines(&ok_stdout(audit(
        &s,
        &["query", "--user", "bob", "--verdict", "blocked", "--json"],
    )));
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(
        (q[0]["id"].as_i64(), q[0]["tool"].as_str(), q[0]["status"].as_i64()),
        (Some(3), Some("claude-code"), Some(422))
    );
    let none = audit(&s, &["query", "--tool", "cursor"]);
    assert!(none.status.success() && String::from_utf8_lossy(&none.stderr).contains("no matching requests"));
}

#[tokio::test]
async fn show_and_export_give_the_same_rows_for_people_and_scripts() {
    let s = seeded().await;
    let detail = ok_stdout(audit(&s, &["show", "3"]));
    assert!(
        detail.contains("bob") && detail.contains("blocked") && detail.contains("aws_access_key_id"),
        "{detail}"
    );
    let one: serde_json::Value = serde_json::from_str(ok_stdout(audit(&s, &["show", "3", "--json"])).trim()).unwrap();
    assert_eq!(
        (one["id"].as_i64(), one["machine_id"].as_str()),
        (Some(3), Some("laptop-7"))
    );
    let missing = audit(&s, &["show", "99"]);
    assert!(!missing.status.success(), "a missing row is an error");

    let jsonl = json_lines(&ok_stdout(audit(&s, &["export", "--since", "1h", "--format", "jsonl"])));
    assert_eq!(
        jsonl.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    let csv = ok_stdout(audit(&s, &["export", "--format", "csv"]));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(header.contains(&"user") && header.contains(&"hash"), "{header:?}");
    assert_eq!(lines.count(), 5, "{csv}");
}

#[tokio::test]
async fn verify_exits_non_zero_and_names_the_edited_row() {
    let s = seeded().await;
    let out = ok_stdout(audit(&s, &["verify"]));
    assert!(out.contains("laptop-7"), "{out}");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET user = 'mallory' WHERE id = 4")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = audit(&s, &["verify"]);
    assert!(!out.status.success(), "a tampered chain must fail verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken at row 4") && stderr.contains("promptwall audit show 4"),
        "{stderr}"
    );
}

/// Outside root and the `promptwall` group the store is unreadable; the
/// CLI says so and how to fix it (needs root to switch to `nobody`).
#[tokio::test]
async fn a_user_outside_the_group_is_told_why_and_what_to_do() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("PROMPTWALL_REQUIRE_CLIENTS").is_none(),
            "needs root to run as nobody"
        );
        return;
    }
    let s = seeded().await;
    // The tempdir is 0700 root: let nobody reach the files, not read them.
    std::fs::set_permissions(
        s.db.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&s.config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mode = std::fs::metadata(&s.db)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode & 0o007, 0, "the store must not be world-readable: {mode:o}");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_promptwall"))
        .arg("--config")
        .arg(&s.config)
        .args(["audit", "query"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readable only by root and the promptwall group") && stderr.contains("usermod -aG promptwall"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// Cells of a CSV line, unquoted (RFC 4180; no embedded newlines here).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

/// Whoever sends a request chooses the model name (and names the binary):
/// a spreadsheet opening the export must not run them as formulas.
#[tokio::test]
async fn csv_export_neutralises_formula_cells() {
    let s = seeded().await;
    let store = AuditStore::open(&format!("sqlite://{}", s.db.display())).await.unwrap();
    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("laptop-7"));
    let mut evil = row("=cmd|' /C calc'!A0", "+tool", "@SUM(A1:A9)", "allowed", (1, 1));
    evil.cmdline = Some("-2+3+cmd|' /C calc'!A0".into());
    evil.error = Some("\t=1+1".into());
    writer.write(evil).await.unwrap();
    drop(writer);
    store.close().await;

    for args in [
        &["export", "--format", "csv"][..],
        &["query", "--format", "csv"][..],
        &["top", "--by", "model", "--format", "csv"][..],
    ] {
        let csv = ok_stdout(audit(&s, args));
        assert!(
            csv.contains("'=cmd|' /C calc'!A0") || csv.contains("'@SUM(A1:A9)"),
            "{args:?}: {csv}"
        );
        for line in csv.lines() {
            for cell in csv_cells(line) {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{args:?}: formula cell {cell:?} in {line}"
                );
            }
        }
    }
}

/// A stored field holding terminal escapes (a binary named with one, or a
/// row from a writer that did not escape them) is shown escaped.
#[tokio::test]
async fn table_output_never_prints_terminal_escapes() {
    let s = seeded().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.db.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_log SET user = 'bob' || char(27) || '[2J' || char(27) || ']0;owned' || char(7), \
         model = 'gpt-5' || char(13) || 'fake', tool = 'codex' || char(8238) WHERE id = 4",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    for args in [
        &["query"][..],
        &["show", "4"][..],
        &["agents"][..],
        &["top", "--by", "user"][..],
        &["top", "--by", "model"][..],
    ] {
        let out = ok_stdout(audit(&s, args));
        assert!(
            !out.contains(['\u{1b}', '\r', '\u{7}', '\u{202e}']),
            "{args:?} printed a raw escape: {out:?}"
        );
    }
    let table = ok_stdout(audit(&s, &["query"]));
    assert!(table.contains("bob\\u{1b}[2J"), "{table}");
}

/// `export -o` in a shared directory: a planted symlink (or any existing
/// file) is refused, never followed; a new file is readable by its owner only.
#[tokio::test]
async fn export_onto_a_symlink_refuses_and_new_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = seeded().await;
    let shared = tempfile::tempdir().unwrap();
    let victim = shared.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let link = shared.path().join("export.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dangling = shared.path().join("dangling.csv");
    let created_through_link = shared.path().join("created");
    std::os::unix::fs::symlink(&created_through_link, &dangling).unwrap();

    for target in [&link, &dangling, &victim] {
        let out = audit(&s, &["export", "-o", target.to_str().unwrap()]);
        assert!(!out.status.success(), "export onto {} must fail", target.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("already exists"), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(!created_through_link.exists());

    let fresh = shared.path().join("rows.jsonl");
    ok_stdout(audit(&s, &["export", "-o", fresh.to_str().unwrap()]));
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(json_lines(&std::fs::read_to_string(&fresh).unwrap()).len(), 5);
}

/// A developer reports the request id from the error their client showed:
/// `audit query --request-id` finds that one row in one query, and `show`
/// and `--json` output carry the id.
#[tokio::test]
async fn a_request_id_from_a_developers_error_finds_its_row() {
    let s = seeded().await;
    let rows = json_lines(&ok_stdout(audit(
        &s,
        &["query", "--request-id", BOBS_REQUEST, "--json"],
    )));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0]["id"].as_i64(),
            rows[0]["verdict"].as_str(),
            rows[0]["request_id"].as_str()
        ),
        (Some(3), Some("blocked"), Some(BOBS_REQUEST))
    );
    let none = ok_stdout(audit(
        &s,
        &["query", "--request-id", "01JF3Z9K8M2V7Q4XN6T5R0W1YB", "--json"],
    ));
    assert!(none.trim().is_empty(), "{none}");

    let detail = ok_stdout(audit(&s, &["show", "3"]));
    assert!(
        detail
            .lines()
            .any(|l| l.contains("request_id") && l.contains(BOBS_REQUEST)),
        "{detail}"
    );
    let one: serde_json::Value = serde_json::from_str(ok_stdout(audit(&s, &["show", "3", "--json"])).trim()).unwrap();
    assert_eq!(one["request_id"], BOBS_REQUEST);
    // Rows without an id say so as an empty string, in every output.
    let other: serde_json::Value = serde_json::from_str(ok_stdout(audit(&s, &["show", "1", "--json"])).trim()).unwrap();
    assert_eq!(other["request_id"], "");
}

/// A request the router sent to another upstream: `audit list --route`
/// finds it (exactly), the table gains ROUTE and UPSTREAM columns, `show`
/// prints the detail with its attempts as a table, and `--json` carries
/// the fields (the detail as the stored JSON text).
#[tokio::test]
async fn a_routed_request_is_listed_by_its_route_and_shown_with_its_attempts() {
    use promptwall_audit::{Attempt, RoutingDetail, TranslationRecord};
    let s = seeded().await;
    let detail = RoutingDetail {
        requested_model: Some("claude-sonnet-4-5".into()),
        upstream_model: Some("gpt-5".into()),
        translation: Some(TranslationRecord {
            from: "anthropic.messages".into(),
            to: "openai.chat".into(),
        }),
        notes: vec!["thinking budget not translated".into()],
        attempts: vec![
            Attempt {
                upstream: "openai/main".into(),
                model: "gpt-5".into(),
                status: Some(429),
                ms: 12.5,
                outcome: "retry: 429, Retry-After 30 s".into(),
            },
            Attempt {
                upstream: "openai/backup".into(),
                model: "gpt-5".into(),
                status: Some(200),
                ms: 640.0,
                outcome: "ok".into(),
            },
        ],
    };
    {
        let store = AuditStore::open(&format!("sqlite://{}", s.db.display())).await.unwrap();
        let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("laptop-7"));
        let routed = AuditRecord {
            route: "claude-via-openai".into(),
            upstream: "openai/backup".into(),
            routing: Some(detail.to_json()),
            ..row("dan", "claude-code", "claude-sonnet-4-5", "allowed", (800, 90))
        };
        assert_eq!(writer.write(routed).await.unwrap(), 6);
        drop(writer);
        store.close().await;
    }

    let rows = json_lines(&ok_stdout(audit(
        &s,
        &["list", "--route", "claude-via-openai", "--json"],
    )));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0]["id"].as_i64(),
            rows[0]["route"].as_str(),
            rows[0]["upstream"].as_str()
        ),
        (Some(6), Some("claude-via-openai"), Some("openai/backup"))
    );
    let stored = RoutingDetail::from_json(rows[0]["routing"].as_str().expect("detail text")).unwrap();
    assert_eq!(stored, detail);
    let none = ok_stdout(audit(&s, &["query", "--route", "claude", "--json"]));
    assert!(none.trim().is_empty(), "an exact match, not a prefix: {none}");
    let unrouted = json_lines(&ok_stdout(audit(&s, &["query", "--route", "", "--json"])));
    assert_eq!(unrouted.len(), 5);
    assert!(unrouted.iter().all(|r| r["route"] == "" && r["routing"].is_null()));

    let table = ok_stdout(audit(&s, &["list"]));
    assert!(table.contains("ROUTE") && table.contains("UPSTREAM"), "{table}");
    let line = table
        .lines()
        .find(|l| l.contains("claude-via-openai"))
        .expect("routed row listed");
    assert!(line.contains("openai/backup") && line.contains("dan"), "{line}");
    let plain = ok_stdout(audit(&s, &["list", "--user", "ann"]));
    assert!(
        !plain.contains("ROUTE"),
        "no routing columns when nothing was routed: {plain}"
    );

    let shown = ok_stdout(audit(&s, &["show", "6"]));
    assert!(
        shown
            .lines()
            .any(|l| l.contains("route") && l.contains("claude-via-openai"))
            && shown
                .lines()
                .any(|l| l.contains("upstream") && l.contains("openai/backup")),
        "{shown}"
    );
    let section = shown.split("--- routing ---").nth(1).expect("routing section");
    assert!(section.contains("anthropic.messages -> openai.chat"), "{shown}");
    let first = section
        .lines()
        .find(|l| l.contains("openai/main"))
        .expect("first attempt");
    for cell in ["gpt-5", "429", "12.5", "retry: 429, Retry-After 30 s"] {
        assert!(first.contains(cell), "{cell}: {first}");
    }
    assert!(section
        .lines()
        .any(|l| l.contains("openai/backup") && l.contains("200") && l.contains("ok")));
    let one: serde_json::Value = serde_json::from_str(ok_stdout(audit(&s, &["show", "6", "--json"])).trim()).unwrap();
    assert_eq!(
        (&one["route"], &one["upstream"]),
        (&"claude-via-openai".into(), &"openai/backup".into())
    );
    assert_eq!(one["routing"].as_str(), Some(detail.to_json().as_str()));
    assert!(ok_stdout(audit(&s, &["verify"])).contains("chain intact"));
}
