//! Alerts end to end: `promptwall up` (explicit mode) with a `[quota]`
//! limit and a webhook to a real HTTP receiver in this test. Events are
//! signed, survive a `kill -9` of the agent while the receiver is down,
//! and each is delivered once; `promptwall alerts test` reaches it too.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use promptwall_e2e::process::curl_status;
use promptwall_e2e::{start_fake, Agent, AgentConfig};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "e2e-webhook-secret-0123456789abcdef";

#[derive(Debug, Clone)]
struct Delivery {
    headers: BTreeMap<String, String>,
    body: String,
    /// What the receiver answered.
    answered: u16,
}

/// A webhook receiver: answers every post with the current status.
struct Receiver {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (st, log) = (status.clone(), got.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let answered = st.load(Ordering::SeqCst);
                log.lock().unwrap().push(Delivery {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    answered,
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { addr, status, got }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.deliveries();
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{what} within {timeout:?}; got {got:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The receiver's check: HMAC-SHA256(secret, "<timestamp>.<body>").
fn signed_right(d: &Delivery) -> bool {
    let ts = &d.headers["x-promptwall-timestamp"];
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", d.body).as_bytes());
    d.headers["x-promptwall-signature"] == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn distinct_ids(got: &[Delivery]) -> usize {
    got.iter()
        .map(|d| d.headers["x-promptwall-event-id"].clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

#[test]
fn alerts_are_signed_survive_a_kill_9_and_are_delivered_once_per_id() {
    let fake = start_fake(false);
    let receiver = Receiver::start(503);
    let keys = tempfile::tempdir().unwrap();
    let secret_file = keys.path().join("webhook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let mut config = AgentConfig::explicit_to(&fake);
    config.toml_extra = format!(
        r#"
[[quota.limits]]
name = "daily-requests"
per = "user"
measure = "requests"
max = 2
window = "day"

[[alerts.webhooks]]
name = "ops"
url = "http://{}/hook"
secret_file = "{}"
events = ["budget", "secret"]
"#,
        receiver.addr,
        secret_file.display()
    );
    let mut agent = Agent::start(&config);
    let url = |a: &Agent| format!("{}/v1/messages", a.anthropic_base_url());
    let post = |a: &Agent, text: &str| {
        curl_status(&[
            "-H",
            "content-type: application/json",
            "-H",
            "x-api-key: sk-ant-e2e-test-key",
            "-H",
            "anthropic-version: 2023-06-01",
            "-d",
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": text}]})
                .to_string(),
            &url(a),
        ])
    };
    assert_eq!(post(&agent, "first").0, 200);
    assert_eq!(post(&agent, "second").0, 200);
    // Built at run time so the source holds no credential-shaped literal.
    let aws_key = format!("AKIA{}", "Q3EGUX7MZPW5KD4N");
    assert_eq!(post(&agent, &format!("deploy with {aws_key}")).0, 422);

    // 50, 80 and 100 % of the limit, and the blocked secret: each tried
    // once against a receiver that is down.
    receiver.wait_for("four events tried", Duration::from_secs(20), |got| {
        distinct_ids(got) == 4
    });
    agent.kill9_and_restart(&config);
    receiver.status.store(200, Ordering::SeqCst);
    let got = receiver.wait_for(
        "every event delivered after the restart",
        Duration::from_secs(60),
        |got| {
            let ok: Vec<_> = got.iter().filter(|d| d.answered == 200).collect();
            distinct_ids(&ok.into_iter().cloned().collect::<Vec<_>>()) == 4
        },
    );

    let delivered: Vec<&Delivery> = got.iter().filter(|d| d.answered == 200).collect();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for d in &delivered {
        *per_id.entry(d.headers["x-promptwall-event-id"].clone()).or_default() += 1;
    }
    assert!(
        per_id.values().all(|n| *n == 1),
        "each id acknowledged once: {per_id:?}"
    );
    assert!(got.iter().all(signed_right), "every post carries a valid signature");
    let events: Vec<Value> = delivered
        .iter()
        .map(|d| serde_json::from_str(&d.body).unwrap())
        .collect();
    for (e, d) in events.iter().zip(&delivered) {
        assert_eq!(e["schema"], "promptwall.alert.v1");
        assert_eq!(e["id"], d.headers["x-promptwall-event-id"].as_str());
    }
    let mut percents: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "budget.crossed")
        .map(|e| e["data"]["percent"].as_u64().unwrap())
        .collect();
    percents.sort();
    assert_eq!(percents, [50, 80, 100]);
    let secret = events
        .iter()
        .find(|e| e["kind"] == "secret.blocked")
        .expect("a secret event");
    assert!(
        secret["data"]["kinds"].as_array().is_some_and(|k| !k.is_empty()),
        "{secret}"
    );
    assert!(
        !got.iter().any(|d| d.body.contains(&aws_key)),
        "no alert carries the secret itself"
    );

    // The operator's check reaches the same receiver, signed.
    let test = agent.cli(&["alerts", "test", "--json"]);
    test.expect_success("promptwall alerts test");
    assert_eq!(test.last_json()["ok"], true);
    let last = receiver.deliveries().pop().unwrap();
    assert!(signed_right(&last));
    assert_eq!(serde_json::from_str::<Value>(&last.body).unwrap()["kind"], "test");
}
