//! Machine facts and the markdown report (the JSON is the report value itself).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

fn cmd_out(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn machine_info(root: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next()?.split_whitespace().nth(1)?.parse::<u64>().ok());
    json!({
        "cpu_model": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        "memory_gib": mem_kb.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "date": cmd_out("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "rustc": cmd_out("rustc", &["--version"]),
        "git_rev": cmd_out("git", &["-C", &root.display().to_string(), "rev-parse", "--short", "HEAD"]),
    })
}

fn num(v: &Value, p: &str) -> Option<f64> {
    v.pointer(p).and_then(Value::as_f64).filter(|x| x.is_finite())
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(x) => format!("{x:.digits$}"),
        None => "–".into(),
    }
}

fn signed(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(x) => format!("{x:+.digits$}"),
        None => "–".into(),
    }
}

/// "32", or "32 @ 3000/s" for a fixed-rate run.
fn load_label(r: &Value) -> String {
    match r["rate"].as_u64() {
        Some(q) => format!("{} @ {q}/s", r["concurrency"]),
        None => r["concurrency"].to_string(),
    }
}

fn nonstream_table(md: &mut String, rows: &[Value]) {
    md.push_str("| body | conc. | path | p50 ms | p99 ms | added p50 ms | added p99 ms | req/s | req/s vs direct | CPU µs/req | peak RSS MiB |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        if let Some(err) = r.get("error") {
            let _ = writeln!(
                md,
                "| {} | {} | {} | error: {} |||||||| |",
                r["body"].as_str().unwrap_or(""),
                load_label(r),
                r["path"].as_str().unwrap_or(""),
                err.as_str()
                    .unwrap_or("")
                    .replace('|', "/")
                    .chars()
                    .take(160)
                    .collect::<String>()
            );
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["body"].as_str().unwrap_or(""),
            load_label(r),
            r["path"].as_str().unwrap_or(""),
            fmt(num(r, "/p50_ms"), 3),
            fmt(num(r, "/p99_ms"), 3),
            signed(num(r, "/added_p50_ms"), 3),
            signed(num(r, "/added_p99_ms"), 3),
            fmt(num(r, "/rps"), 0),
            num(r, "/rps_ratio").map(|x| format!("{x:.2}×")).unwrap_or("–".into()),
            fmt(num(r, "/cpu_us_per_req"), 0),
            fmt(num(r, "/peak_rss_mib"), 1),
        );
    }
}

pub fn markdown(r: &Value) -> String {
    let mut md = String::new();
    let m = &r["machine"];
    let _ = writeln!(
        md,
        "## promptwall bench{} — {}\n\n{} ({} cores), kernel {}, {} GiB RAM; {}; build profile {}; git {}.\n",
        if r["quick"].as_bool() == Some(true) {
            " (--quick smoke run: numbers are not meaningful)"
        } else {
            ""
        },
        m["date"].as_str().unwrap_or("?"),
        m["cpu_model"].as_str().unwrap_or("?"),
        m["cores"],
        m["kernel"].as_str().unwrap_or("?"),
        m["memory_gib"],
        m["rustc"].as_str().unwrap_or("?"),
        r["profile"].as_str().unwrap_or("?"),
        m["git_rev"].as_str().unwrap_or("?"),
    );
    md.push_str("Loopback only; the fake provider answers with zero think time and echoes the prompt (response ≈ request size). Added = path − direct, same run. CPU and peak RSS are the proxy process's (utime+stime and VmHWM from /proc, reset per scenario).\n\n");

    md.push_str("### 1. Non-streaming (oha, HTTP/1.1 keep-alive)\n\n");
    md.push_str("`conc.` N: closed loop, N connections as fast as they go (saturation: on 2 cores shared with the load generator and the fake, added latency there is queueing behind the proxy's CPU time). `N @ R/s`: open loop at a fixed rate, the way agentgateway reports its overhead.\n\n");
    let mut rows: Vec<Value> = r["nonstreaming"].as_array().cloned().unwrap_or_default();
    if let Some(t) = r["transparent"].as_array() {
        rows.extend(t.iter().cloned().map(|mut v| {
            if v["path"] == "direct" {
                v["path"] = json!("direct (netns)");
            }
            v
        }));
    }
    nonstream_table(&mut md, &rows);

    md.push_str("\n### 2. Streaming: 200 text deltas, paced 1 ms by the fake, an email in the prompt (reversible redaction)\n\n");
    md.push_str("| conc. | path | streams | TTFT p50 µs | TTFT p99 µs | added TTFT p50 µs | inter-event p99 µs | added inter-event p99 µs | email restored | CPU µs/stream | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in r["streaming"].as_array().cloned().unwrap_or_default() {
        if let Some(err) = s.get("error") {
            let _ = writeln!(
                md,
                "| {} | {} | error: {} |||||||| |",
                s["concurrency"],
                s["path"].as_str().unwrap_or(""),
                err.as_str()
                    .unwrap_or("")
                    .replace('|', "/")
                    .chars()
                    .take(160)
                    .collect::<String>()
            );
            continue;
        }
        // All deltas in one chunk: the path held the stream back until it ended.
        let buffered = num(&s, "/inter_event_us/p99") == Some(0.0);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} |",
            s["concurrency"],
            s["path"].as_str().unwrap_or(""),
            s["streams"],
            fmt(num(&s, "/ttft_us/p50"), 0),
            fmt(num(&s, "/ttft_us/p99"), 0),
            signed(num(&s, "/added_ttft_p50_us"), 0),
            if buffered {
                "0 (buffered whole)".to_string()
            } else {
                fmt(num(&s, "/inter_event_us/p99"), 0)
            },
            if buffered {
                "n/a".to_string()
            } else {
                signed(num(&s, "/added_inter_event_p99_us"), 0)
            },
            s["email_restored"],
            s["streams"],
            fmt(num(&s, "/cpu_us_per_stream"), 0),
            s["errors"],
        );
    }

    md.push_str("\n### 3. Pipeline alone (detectors + reversible redaction, default policy)\n\n");
    let p = &r["pipeline"];
    let _ = writeln!(
        md,
        "| transcript | cold p50 ms | cold min ms | next turn (+5 KB) p50 ms | next turn min ms | findings |\n|---|---|---|---|---|---|\n| {} bytes → {} bytes | {} | {} | {} | {} | {} |",
        p["first_bytes"], p["next_bytes"],
        fmt(num(p, "/cold_ms/p50"), 3), fmt(num(p, "/cold_ms/min"), 3),
        fmt(num(p, "/next_turn_ms/p50"), 3), fmt(num(p, "/next_turn_ms/min"), 3),
        p["report"]["counts"],
    );
    let o = &p["without_new_pii"];
    let _ = writeln!(
        md,
        "| same, without name/address/passport/national id detectors | {} | {} | {} | {} | {} |",
        fmt(num(o, "/cold_ms/p50"), 3),
        fmt(num(o, "/cold_ms/min"), 3),
        fmt(num(o, "/next_turn_ms/p50"), 3),
        fmt(num(o, "/next_turn_ms/min"), 3),
        o["report"]["counts"],
    );
    let _ = writeln!(
        md,
        "\nDetectors on {} bytes of the transcript's text (a turn's new text), µs:\n\n| detectors | p50 | min | p90 | findings |\n|---|---|---|---|---|",
        p["scan_10kb_bytes"]
    );
    for (label, key) in [
        ("all (default policy)", "all"),
        (
            "all but name, address, passport, national id",
            "without_name_address_passport",
        ),
        ("name alone", "name"),
        ("address alone", "address"),
        ("passport alone", "passport"),
        ("national id alone", "national_id"),
    ] {
        let d = &p["scan_10kb_us"][key];
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} |",
            fmt(num(d, "/p50"), 1),
            fmt(num(d, "/min"), 1),
            fmt(num(d, "/p90"), 1),
            d["findings"],
        );
    }

    md.push_str("\n### 3b. Budget stage alone (1 KB Messages request, admitted and settled)\n\n");
    let b = &r["budget"];
    let _ = writeln!(
        md,
        "| limits | ns/request | added ns |\n|---|---|---|\n| none | {} | – |\n| ten (every scope and measure) | {} | {} |",
        fmt(num(b, "/no_limits_ns"), 0),
        fmt(num(b, "/ten_limits_ns"), 0),
        signed(num(b, "/added_ns"), 0),
    );

    md.push_str(
        "\n### 3c. Watching: /metrics scrape (after the load; the instance also served the UI's Live stream)\n\n",
    );
    let m = &r["metrics_scrape"];
    let _ = writeln!(
        md,
        "| scrapes | page bytes | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|\n| {} | {} | {} | {} | {} |\n\nWhat watching adds per request: compare the rows `explicit` and `explicit, /metrics scraped + UI live` above.",
        m["scrapes"], m["bytes"],
        fmt(num(m, "/p50_ms"), 2), fmt(num(m, "/p99_ms"), 2), fmt(num(m, "/max_ms"), 2),
    );

    md.push_str("\n### 3d. Dashboard queries on a large store\n\n");
    let st = &r["store"];
    let _ = writeln!(
        md,
        "{} rows over {} days, written through the writer into SQLite ({} rollup rows), then shipped in batches of 1,000 to a private PostgreSQL ({} rows/s). Each page's store calls as `promptwall ui` makes them, ms, median of {} runs; target ≤ 200 ms.\n\n| page | SQLite 24 h | 7 d | 30 d | PostgreSQL 24 h | 7 d | 30 d |\n|---|---|---|---|---|---|---|",
        st["rows"], st["days"], st["rollup_rows"], fmt(num(st, "/postgres/ship_rows_per_s"), 0), st["runs"],
    );
    for page in ["live", "request", "agents", "spend", "protection"] {
        let ms = |at: &str, since: &str| fmt(num(st, &format!("{at}/{page} {since}/p50_ms")), 1);
        let _ = writeln!(
            md,
            "| {page} | {} | {} | {} | {} | {} | {} |",
            ms("/pages", "24h"),
            ms("/pages", "7d"),
            ms("/pages", "30d"),
            ms("/postgres/pages", "24h"),
            ms("/postgres/pages", "7d"),
            ms("/postgres/pages", "30d"),
        );
    }
    let _ = writeln!(
        md,
        "\nWhat the rollup triggers cost the writer ({} rows per round, 3 interleaved rounds, medians): {} rows/s with them, {} without ({} µs per row).",
        st["write_rows"],
        fmt(num(st, "/write_rows_per_s_with_rollup"), 0),
        fmt(num(st, "/write_rows_per_s_without"), 0),
        signed(
            num(st, "/write_rows_per_s_with_rollup")
                .zip(num(st, "/write_rows_per_s_without"))
                .map(|(with, without)| 1e6 / with - 1e6 / without),
            1
        ),
    );

    md.push_str("\n### 4. connect() to a non-provider address, eBPF attached vs detached\n\n");
    if r["connect"].is_object() {
        let c = &r["connect"];
        let _ = writeln!(
            md,
            "| detached ns/connect | attached ns/connect | added ns |\n|---|---|---|\n| {} | {} | {} |",
            fmt(num(c, "/detached/per_connect_ns_median"), 0),
            fmt(num(c, "/attached/per_connect_ns_median"), 0),
            signed(num(c, "/added_ns_median"), 0),
        );
    } else {
        let _ = writeln!(md, "skipped: {}", r["skipped"]["connect"].as_str().unwrap_or("not run"));
    }

    md.push_str("\n### 5. Memory (promptwall, explicit listener)\n\n");
    let mem = &r["memory"];
    let _ = writeln!(
        md,
        "| idle RSS MiB | streams open | RSS with them MiB | peak MiB |\n|---|---|---|---|\n| {} | {}/{} | {} | {} |",
        fmt(num(mem, "/idle/rss_mib"), 1),
        mem["open_streams"]["open"],
        mem["open_streams"]["streams"],
        fmt(num(mem, "/open_streams/rss_mib"), 1),
        fmt(num(mem, "/open_streams/hwm_mib"), 1),
    );

    if let Some(skipped) = r["skipped"].as_object().filter(|m| !m.is_empty()) {
        md.push_str("\n### Skipped\n\n");
        for (k, v) in skipped {
            let _ = writeln!(md, "- {k}: skipped: {}", v.as_str().unwrap_or(""));
        }
    }
    md
}
