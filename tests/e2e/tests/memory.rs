//! Memory exhaustion (issue 18, item 13): the agent is killed when it runs
//! out of memory, and with `fail = "open"` traffic then goes uninspected. A
//! flood of large bodies (plain, JSON bombs, findings bombs) must leave the agent alive,
//! under a fixed memory bound, answering what does not fit with 503 in the
//! client's format.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use promptwall_e2e::{start_fake, Agent};
use serde_json::{json, Value};

const MIB: usize = 1 << 20;
/// Clients at once, each sending a body just under the default 32 MiB limit.
const CLIENTS: usize = 40;
const BODY: usize = 30 * MIB;
/// Peak resident memory allowed to the agent under the flood with the
/// default limits: a 256 MiB body budget, per inspecting worker one tree (at
/// most a million nodes) or one body's scan results (findings past the cap
/// are refused before they cost more), and the agent's own baseline. Without
/// these bounds the same flood held 40 bodies (1.2 GB, twice while
/// collected), trees of 15 million nodes and about 1 GB per address book:
/// the old agent peaked near 4 GB.
const PEAK_BOUND: u64 = 768 * MIB as u64;

/// A Messages request carrying a 30 MiB system prompt of ordinary words.
fn big_prompt() -> Vec<u8> {
    let head = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"system":""#;
    let tail = r#"","messages":[{"role":"user","content":"flood"}]}"#;
    let words = "the quick brown fox jumps over the lazy dog ";
    let mut body = head.as_bytes().to_vec();
    while body.len() + words.len() + tail.len() <= BODY {
        body.extend_from_slice(words.as_bytes());
    }
    body.extend_from_slice(tail.as_bytes());
    body
}

/// A Messages request with a 30 MiB array of zeros: two bytes per JSON node.
fn json_bomb() -> Vec<u8> {
    let head =
        r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"bomb"}],"metadata":[0"#;
    let mut body = head.as_bytes().to_vec();
    while body.len() + 4 <= BODY {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    body
}

/// A Messages request whose 30 MiB prompt is e-mail addresses (1.4 million
/// findings, each costing records, placeholders and restore entries).
fn address_book() -> Vec<u8> {
    let head = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":""#;
    let tail = r#""}]}"#;
    let mut body = head.as_bytes().to_vec();
    let mut i = 0u64;
    loop {
        let address = format!("u{i}@ex{i}.com ");
        if body.len() + address.len() + tail.len() > BODY {
            break;
        }
        body.extend_from_slice(address.as_bytes());
        i += 1;
    }
    body.extend_from_slice(tail.as_bytes());
    body
}

/// One POST /v1/messages over its own connection: (status, headers, body).
/// The body is written while the answer is read, as a 503 may come first.
fn post(addr: SocketAddr, body: Arc<Vec<u8>>) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(180))).unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nanthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let _ = s.shutdown(std::net::Shutdown::Both);
    sending.join().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // 0: the connection closed without an answer.
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// Peak resident set of `pid` in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

#[test]
fn a_body_flood_stays_under_the_memory_cap_without_the_agent_dying() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let bodies = [Arc::new(big_prompt()), Arc::new(json_bomb()), Arc::new(address_book())];

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let body = bodies[i % 3].clone();
            let addr = agent.explicit;
            std::thread::spawn(move || (i % 3, post(addr, body)))
        })
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    let peak = peak_rss(agent.pid());
    let unanswered = answers.iter().filter(|(_, (status, _, _))| *status == 0).count();
    assert_eq!(
        unanswered,
        0,
        "{unanswered} of {CLIENTS} clients got no answer (agent peak RSS {} MiB)\nlog:\n{}",
        peak / MIB as u64,
        agent.log()
    );
    let (mut ok, mut refused, mut busy) = (0, 0, 0);
    let mut admitted = [0; 3];
    for (kind, (status, head, body)) in &answers {
        if *status != 503 {
            admitted[*kind] += 1;
        }
        let v: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {status} {body}"));
        match (status, kind) {
            (200, 0) => ok += 1,
            (400, 1 | 2) => {
                assert_eq!(v["type"], "error", "{v}");
                let msg = v["error"]["message"].as_str().unwrap();
                let why = if *kind == 1 {
                    "more than 1000000 JSON values"
                } else {
                    "findings"
                };
                assert!(msg.contains(why), "{msg}");
                refused += 1;
            }
            (503, _) => {
                assert_eq!(v["type"], "error", "Anthropic envelope: {v}");
                assert!(head.contains("\r\nretry-after: 1"), "{head}");
                assert!(v["error"]["message"].as_str().unwrap().contains("retry"), "{v}");
                busy += 1;
            }
            other => panic!("unexpected answer {other:?}: {body}\nlog:\n{}", agent.log()),
        }
    }
    eprintln!(
        "flood of {CLIENTS} x {} MiB: {ok} forwarded, {refused} bombs refused, {busy} busy (admitted prompts, JSON bombs, address books: {admitted:?}); agent peak RSS {} MiB",
        BODY / MIB,
        peak / MIB as u64
    );
    assert!(busy > 0, "the budget never filled: the flood did not test it");
    assert!(ok + refused > 0, "nothing was admitted");
    assert!(
        peak <= PEAK_BOUND,
        "the agent peaked at {} MiB under the flood (bound {} MiB)",
        peak / MIB as u64,
        PEAK_BOUND / MIB as u64
    );
    assert!(
        fake.recorded()
            .iter()
            .all(|r| r.body.len() < 1000 || r.body.starts_with(&bodies[0][..64])),
        "no bomb reached the provider"
    );

    // Still alive and serving.
    let small = json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "after the flood"}]});
    let (status, _, body) = post(agent.explicit, Arc::new(small.to_string().into_bytes()));
    assert_eq!(status, 200, "{body}\nlog:\n{}", agent.log());
    assert!(body.contains("You said: after the flood"), "{body}");
}

#[test]
fn the_service_unit_caps_memory_above_the_agents_bounded_peak() {
    let unit =
        std::fs::read_to_string(promptwall_e2e::paths::workspace_root().join("deploy/systemd/promptwall.service"))
            .unwrap();
    let value = |key: &str| -> u64 {
        let v = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("the unit sets no {key}"));
        let (num, unit) = v
            .trim()
            .split_at(v.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(v.trim().len()));
        let mult = match unit {
            "" => 1,
            "K" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            other => panic!("{key}{v}: unexpected unit {other:?}"),
        };
        num.parse::<u64>().unwrap() * mult
    };
    let (high, max) = (value("MemoryHigh="), value("MemoryMax="));
    // The bounded peak must fit below the point where the kernel starts
    // throttling, and the hard stop above it.
    assert!(PEAK_BOUND < high && high < max, "MemoryHigh={high} MemoryMax={max}");
}
