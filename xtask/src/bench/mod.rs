//! `cargo xtask bench [--quick] [--peers]`: what promptwall adds to every
//! request, measured beside direct traffic (and, with --peers, beside
//! mitmproxy and LiteLLM) in one run, on loopback only.
//!
//! Scenarios (issue 8): non-streaming 1 KB / 256 KB at concurrency 1 and 32
//! (oha) direct vs explicit listener vs transparent interception (eBPF, in a
//! private network namespace and child cgroup); 200-event SSE with
//! reversible redaction active (bench-client: TTFT and inter-event gaps);
//! the pipeline alone on a ~1 MB transcript, cold and next turn; connect()
//! cost with the eBPF programs attached vs detached; RSS idle and with
//! 1,000 open streams. Output: target/bench/report.md and report.json
//! (report-quick.* for --quick).
//!
//! `--quick` is the CI smoke run (debug builds, ~1 s per scenario): it fails
//! only when the harness breaks, never on a number.

mod load;
mod netns;
mod observe;
mod peers;
mod procs;
mod report;
mod scenario;
mod services;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use scenario::{Plan, Route, Size};
use services::Bins;

/// The benched proxy's config: no interception, and one rule that sends the
/// model `bench-translated` to a Chat upstream (the same fake, reached as
/// api.openai.com through `[upstream.resolve]`).
const TRANSLATED_ROUTE: &str = r#"[intercept]
enabled = false
[routing.upstreams.bench-chat]
kind = "openai"
api = "chat"
[[routing.routes]]
name = "bench-translated"
models = ["bench-translated"]
targets = ["bench-chat:gpt-bench"]
"#;

pub fn run(quick: bool, peers: bool) -> Result<()> {
    if let Ok(out) = std::env::var(netns::INNER_ENV) {
        return netns::inner(quick, Path::new(&out));
    }
    let root = crate::root();
    let plan = Plan::new(quick);
    let bins = build(&root, quick)?;
    let oha = load::ensure_oha(&root)?;
    let bench_dir = root.join("target/bench");
    let work = bench_dir.join("run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let started = std::time::Instant::now();

    let mut report = json!({
        "quick": quick,
        "profile": if quick { "debug" } else { "release" },
        "machine": report::machine_info(&root),
        "skipped": {},
    });

    crate::step("pipeline alone on a ~1 MB transcript");
    report["pipeline"] = client_json(&bins, &["pipeline", "--iters", &plan.pipeline_iters.to_string()])?;
    crate::step("budget stage alone: no limits, then ten");
    let budget_iters = if quick { "2000" } else { "200000" };
    report["budget"] = client_json(&bins, &["budget", "--iters", budget_iters])?;

    crate::step("dashboard queries on a large audit store");
    let (store_rows, write_rows, runs) = if quick {
        ("20000", "2000", "1")
    } else {
        ("1000000", "20000", "5")
    };
    let store_dir = work.join("store");
    report["store"] = client_json(
        &bins,
        &[
            "store",
            "--rows",
            store_rows,
            "--write-rows",
            write_rows,
            "--runs",
            runs,
            "--postgres",
            "--dir",
            &store_dir.display().to_string(),
        ],
    )?;
    // A million rows take about a gigabyte.
    let _ = std::fs::remove_dir_all(&store_dir);

    let fake_bind = format!("127.0.0.1:{}", procs::free_port("127.0.0.1")?);
    let first_fake = services::fake(&bins, &work, &fake_bind, 1)?;
    let pw = services::promptwall(&bins, &work, &first_fake, true, "full", TRANSLATED_ROUTE, &[])?;
    // The same proxy with `[audit] sync = "normal"`: what the per-commit fsync costs.
    let pw_normal = services::promptwall(
        &bins,
        &work.join("sync-normal"),
        &first_fake,
        true,
        "normal",
        "[intercept]\nenabled = false\n",
        &[],
    )?;
    // The same proxy as `pw` with /metrics served and scraped every second
    // and the web UI's Live stream open on its store: what watching costs.
    let pw_watched = services::promptwall(
        &bins,
        &work.join("watched"),
        &first_fake,
        true,
        "full",
        "[intercept]\nenabled = false\n",
        &[("PROMPTWALL_LISTEN__ADMIN_HTTP", "127.0.0.1:0")],
    )?;
    let watchers = observe::Watchers::start(&bins, &pw_watched)?;
    let fake_ca = first_fake.ca.clone();
    let fake_addr = first_fake.addr.clone();
    let mut fake = Some(first_fake);
    let pw_pid = pw.guard.pid();
    std::thread::sleep(Duration::from_millis(500));
    let idle = json!({
        "rss_mib": procs::status_mib(pw_pid, "VmRSS")?,
        "hwm_mib": procs::status_mib(pw_pid, "VmHWM")?,
    });

    let direct = Route {
        name: "direct",
        url: format!("https://{fake_addr}/v1/messages"),
        proxy: None,
        cgroup: None,
        pid: None,
        stream_target: vec![
            "--connect".into(),
            fake_addr.clone(),
            "--tls-name".into(),
            "api.anthropic.com".into(),
            "--ca".into(),
            fake_ca.display().to_string(),
        ],
    };
    let explicit = Route {
        name: "explicit",
        url: format!("http://{}/v1/messages", pw.explicit),
        proxy: None,
        cgroup: None,
        pid: Some(pw_pid),
        stream_target: vec![
            "--connect".into(),
            pw.explicit.clone(),
            "--host".into(),
            pw.explicit.clone(),
        ],
    };
    let explicit_normal = Route {
        name: "explicit, sync=normal",
        url: format!("http://{}/v1/messages", pw_normal.explicit),
        pid: Some(pw_normal.guard.pid()),
        stream_target: vec![
            "--connect".into(),
            pw_normal.explicit.clone(),
            "--host".into(),
            pw_normal.explicit.clone(),
        ],
        ..explicit.clone()
    };
    // Translation's own cost: the same Chat upstream events (the fake
    // steered by the prompt, since headers do not cross providers), asked
    // for by a Chat client as is, and by a Messages client through a rule
    // that translates both ways.
    let with_triggers = |name: &'static str, args: &[&str]| Route {
        name,
        stream_target: [
            explicit.stream_target.clone(),
            args.iter().map(|a| a.to_string()).collect(),
        ]
        .concat(),
        ..explicit.clone()
    };
    let stream_only = vec![
        with_triggers(
            "explicit, Chat → Chat (prompt-steered)",
            &[
                "--text-triggers",
                "--chat",
                "--path",
                "/v1/chat/completions",
                "--model",
                "gpt-bench",
            ],
        ),
        with_triggers(
            "explicit, Messages → Chat, translated",
            &["--text-triggers", "--model", "bench-translated"],
        ),
    ];
    let explicit_watched = Route {
        name: "explicit, /metrics scraped + UI live",
        url: format!("http://{}/v1/messages", pw_watched.explicit),
        pid: Some(pw_watched.guard.pid()),
        stream_target: vec![
            "--connect".into(),
            pw_watched.explicit.clone(),
            "--host".into(),
            pw_watched.explicit.clone(),
        ],
        ..explicit.clone()
    };
    let mut routes = vec![explicit.clone(), explicit_normal, explicit_watched];
    let mut peer_guards = Vec::new();
    if peers {
        match peers::start(&bench_dir, &work, &fake_addr, &fake_ca) {
            Ok(started) => {
                for (route, guard) in started.routes {
                    routes.push(route);
                    peer_guards.push(guard);
                }
                for (name, why) in started.skipped {
                    report["skipped"][name] = json!(why);
                }
            }
            Err(e) => report["skipped"]["peers"] = json!(format!("{e:#}")),
        }
    }

    let bodies: Vec<(Size, PathBuf)> = plan
        .sizes
        .iter()
        .map(|s| Ok((*s, scenario::body_file(&work, s.bytes)?)))
        .collect::<Result<_>>()?;
    // A fresh fake per group keeps its in-memory request log small.
    let restart = |fake: &mut Option<services::Fake>, slow_ms: u64| -> Result<()> {
        *fake = None;
        *fake = Some(services::fake(&bins, &work, &fake_bind, slow_ms)?);
        Ok(())
    };
    let nonstream = scenario::nonstreaming(&oha, &plan, &bodies, &direct, &routes, || restart(&mut fake, 1))?;
    report["nonstreaming"] = json!(nonstream);

    restart(&mut fake, 1)?;
    let stream_routes: Vec<Route> = routes.iter().cloned().chain(stream_only).collect();
    report["streaming"] = json!(scenario::streaming(&bins.client(), &plan, &direct, &stream_routes)?);
    drop(peer_guards);

    crate::step(&format!("memory with {} open streams", plan.hold_streams));
    restart(&mut fake, 500)?;
    let held = hold(&bins, &explicit, pw_pid, plan.hold_streams);
    report["memory"] =
        json!({"idle": idle, "open_streams": held.unwrap_or_else(|e| json!({"error": format!("{e:#}")}))});
    crate::step("/metrics scrape time (after the load above)");
    report["metrics_scrape"] = watchers.scrape_times(if quick { 20 } else { 200 })?;
    drop(watchers);
    drop(pw);
    drop(pw_normal);
    drop(pw_watched);
    drop(fake);

    crate::step("transparent interception and connect() cost (private network namespace)");
    match netns::outer(&bins, &oha, &work, quick) {
        Ok(v) => {
            report["transparent"] = v["nonstreaming"].clone();
            report["connect"] = v["connect"].clone();
        }
        Err(reason) => {
            let reason = format!("{reason:#}");
            report["skipped"]["transparent"] = json!(reason);
            report["skipped"]["connect"] = json!(reason);
        }
    }
    report["duration_secs"] = json!(started.elapsed().as_secs_f64());

    let md = report::markdown(&report);
    // The smoke run must not overwrite a full run's report.
    let stem = if quick { "report-quick" } else { "report" };
    std::fs::write(
        bench_dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(bench_dir.join(format!("{stem}.md")), &md)?;
    println!("{md}");
    crate::step(&format!("wrote {}.md and {stem}.json", bench_dir.join(stem).display()));
    Ok(())
}

fn build(root: &Path, quick: bool) -> Result<Bins> {
    let profile = if quick { "debug" } else { "release" };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // PROMPTWALL_BENCH_NO_BUILD=1: use the binaries already built.
    if std::env::var_os("PROMPTWALL_BENCH_NO_BUILD").is_some() {
        return Ok(Bins {
            dir: target.join(profile),
        });
    }
    crate::step(&format!(
        "building promptwall, the fake provider and bench-client ({profile})"
    ));
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).arg("build");
    if !quick {
        cmd.arg("--release");
    }
    cmd.args([
        "-p",
        "promptwall-agent",
        "-p",
        "promptwall-fake-provider",
        "-p",
        "promptwall-bench-client",
    ]);
    crate::run(&mut cmd)?;
    Ok(Bins {
        dir: target.join(profile),
    })
}

/// Runs bench-client and parses its JSON line.
pub fn client_json(bins: &Bins, args: &[&str]) -> Result<Value> {
    let out = Command::new(bins.client())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run bench-client")?;
    anyhow::ensure!(
        out.status.success(),
        "bench-client {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("bench-client printed no JSON")
}

/// Holds `n` paced streams open through `route`; reads promptwall's RSS meanwhile.
fn hold(bins: &Bins, route: &Route, pid: u32, n: usize) -> Result<Value> {
    use std::io::BufRead;
    procs::reset_peak(pid);
    let mut child = Command::new(bins.client())
        .arg("hold")
        .args(&route.stream_target)
        .args(["--streams", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run bench-client hold")?;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().context("bench-client hold ended early")??;
    let opened: Value = serde_json::from_str(&first)?;
    std::thread::sleep(Duration::from_millis(500));
    let v = json!({
        "streams": n,
        "open": opened["open"],
        "failed": opened["failed"],
        "rss_mib": procs::status_mib(pid, "VmRSS")?,
        "hwm_mib": procs::status_mib(pid, "VmHWM")?,
    });
    drop(child.stdin.take());
    let _ = child.wait();
    Ok(v)
}
