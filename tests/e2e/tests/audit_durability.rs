//! The audit promise under a crash: no answer completes before its row is
//! durable, so a `kill -9` of the agent in the middle of load never leaves
//! an answer the client received whole without its row in the store.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promptwall_e2e::agent::{post_messages, request_id_header};
use promptwall_e2e::{start_fake, Agent, AgentConfig};

/// Sends one request; the agent's request id when the client received the
/// whole answer (curl succeeded, status 200), else None.
fn completed_request(url: &str, n: usize) -> Option<String> {
    let body = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
        "messages": [{"role": "user", "content": format!("request {n}")}]});
    let out = post_messages(url, &body);
    if !out.success() || !out.stdout.trim_end().ends_with("200") {
        return None;
    }
    request_id_header(&out.stdout)
}

#[test]
fn kill_9_under_load_never_leaves_a_completed_answer_without_its_row() {
    let fake = start_fake(false);
    let config = AgentConfig::explicit_to(&fake);
    let mut agent = Agent::start(&config);
    let url = format!("{}/v1/messages", agent.anthropic_base_url());
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (url, stop, completed) = (url.clone(), stop.clone(), completed.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if let Some(id) = completed_request(&url, client * 1_000_000 + n) {
                        completed.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed.lock().unwrap().len() < 100 {
        assert!(
            Instant::now() < deadline,
            "the load never reached 100 answers; log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed with 8 requests in flight; the restarted agent listens on
    // another port, so every later request fails and adds nothing.
    agent.kill9_and_restart(&config);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let completed: Vec<String> = completed.lock().unwrap().clone();
    let out = agent.cli(&["audit", "query", "--json", "--limit", "1000000"]);
    out.expect_success("promptwall audit query --json");
    let stored: BTreeSet<String> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            row["request_id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let missing: Vec<&String> = completed.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answers completed without their audit row: {missing:?}",
        missing.len(),
        completed.len()
    );
    let verify = agent.cli(&["audit", "verify"]);
    verify.expect_success("promptwall audit verify after kill -9");
}

/// When the agent's audit WAL was fsynced (syscall completions) and when it
/// last wrote to the client on `listener`, from an `strace -f -ttt -T -yy`
/// log of one request.
fn fsyncs_and_last_answer_write(log: &str, listener: std::net::SocketAddr) -> (Vec<f64>, Option<f64>) {
    let client_socket = format!("<TCP:[{listener}->");
    let mut fsyncs = Vec::new();
    let mut pending_fsync = BTreeSet::new();
    let mut last_write = None;
    for line in log.lines() {
        let mut fields = line.splitn(3, ' ');
        let (Some(pid), Some(ts), Some(call)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let is_fsync = call.starts_with("fsync(") || call.starts_with("fdatasync(");
        if is_fsync && call.contains("audit.db-wal>") {
            if call.contains("<unfinished") {
                pending_fsync.insert(pid.to_string());
            } else {
                // Entry time plus the duration strace appends as <secs>.
                let took = call
                    .rsplit_once('<')
                    .and_then(|(_, t)| t.trim_end_matches('>').parse::<f64>().ok())
                    .unwrap_or(0.0);
                fsyncs.push(ts + took);
            }
        } else if call.starts_with("<... f") && call.contains("sync resumed>") && pending_fsync.remove(pid) {
            fsyncs.push(ts);
        } else if (call.starts_with("write") || call.starts_with("send")) && call.contains(&client_socket) {
            last_write = Some(ts);
        }
    }
    (fsyncs, last_write)
}

/// The power-loss half of the promise, observed from outside: with
/// `sync = full` the audit WAL is fsynced after the request arrives and
/// before the answer's last byte is written; with `sync = normal` the same
/// check sees no fsync before the answer (it comes with a later checkpoint).
#[test]
fn with_sync_full_the_answer_waits_for_the_wal_fsync_and_with_normal_it_does_not() {
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs strace; install it (apt-get install strace, or cargo xtask setup)"
    );
    let fake = start_fake(false);
    for (sync, fsync_first) in [("full", true), ("normal", false)] {
        let mut config = AgentConfig::explicit_to(&fake);
        config.audit_extra = format!("sync = \"{sync}\"\n");
        let agent = Agent::start(&config);
        let log_path = agent.dir.path().join("strace.log");
        let mut strace = std::process::Command::new("strace")
            .args(["-f", "-qq", "-ttt", "-T", "-yy", "-e"])
            .arg("trace=fsync,fdatasync,write,writev,sendto,sendmsg")
            .arg("-o")
            .arg(&log_path)
            .arg("-p")
            .arg(agent.pid().to_string())
            .spawn()
            .expect("cannot start strace");
        // Every thread of the agent is traced before the request is sent.
        let traced = |pid: u32| {
            std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
                tasks.flatten().all(|t| {
                    std::fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
                        s.lines()
                            .any(|l| l.starts_with("TracerPid:") && l.trim() != "TracerPid:\t0")
                    })
                })
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !traced(agent.pid()) {
            assert!(Instant::now() < deadline, "strace never attached to the agent");
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = agent.send_messages("claude-sonnet-4-5", "hello", false);
        assert_eq!(sent.status, 200);
        // SAFETY: signals our own child; SIGINT makes strace detach and flush.
        unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
        strace.wait().unwrap();
        let log = std::fs::read_to_string(&log_path).unwrap();
        let (fsyncs, last_write) = fsyncs_and_last_answer_write(&log, agent.explicit);
        let answered = last_write.unwrap_or_else(|| panic!("no write to the client seen; strace log:\n{log}"));
        assert_eq!(
            fsyncs.iter().any(|&t| t <= answered),
            fsync_first,
            "sync = {sync}: WAL fsyncs at {fsyncs:?}, answer's last write at {answered}; strace log:\n{log}"
        );
    }
}
