//! The audit promise under a crash: no answer completes before its row is
//! durable, so a `kill -9` of the agent in the middle of load never leaves
//! an answer the client received whole without its row in the store.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promptwall_e2e::process::curl;
use promptwall_e2e::{start_fake, Agent, AgentConfig};

/// Sends one request; the agent's request id when the client received the
/// whole answer (curl succeeded, status 200), else None.
fn completed_request(url: &str, n: usize) -> Option<String> {
    let body = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
        "messages": [{"role": "user", "content": format!("request {n}")}]});
    let out = curl(&[
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-H",
        "x-api-key: sk-ant-api03-e2e-test-key",
        "-H",
        "anthropic-version: 2023-06-01",
        "-d",
        &body.to_string(),
        url,
    ]);
    if !out.success() || !out.stdout.trim_end().ends_with("200") {
        return None;
    }
    out.stdout.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-promptwall-request-id:")
            .map(|v| v.trim().to_string())
    })
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
