//! OpenTelemetry traces end to end: `promptwall up` with `[traces]`
//! exporting over OTLP/HTTP to a receiver in the test (a real HTTP server
//! that records each export), requests through the explicit listener to
//! the fake provider. A span per exchange, the GenAI attributes, the
//! guardrail event, and never the prompt text.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promptwall_e2e::{start_fake, Agent, AgentConfig, AuditRow};
use serde_json::Value;

/// A word only the prompts contain: it must never reach the collector.
const PROMPT_WORD: &str = "quarterlyzebra";

fn aws_key() -> String {
    format!("AKIA{}", "Q3EGUX7MZPW5KD4N")
}

/// One OTLP export as received.
#[derive(Clone, Debug)]
struct Export {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// An OTLP/HTTP receiver: answers 200 to every POST and keeps it.
struct Receiver {
    addr: SocketAddr,
    exports: Arc<Mutex<Vec<Export>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let kept = exports.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        Receiver { addr, exports }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    fn exports(&self) -> Vec<Export> {
        self.exports.lock().unwrap().clone()
    }

    /// Waits (bounded) until `done` holds for what was received.
    fn wait_until(&self, what: &str, done: impl Fn(&[Export]) -> bool) -> Vec<Export> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let exports = self.exports();
            if done(&exports) {
                return exports;
            }
            assert!(Instant::now() < deadline, "{what}: received {exports:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// HTTP/1.1 requests on one connection, kept alive, until it closes.
fn serve(stream: TcpStream, kept: &Mutex<Vec<Export>>) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        kept.lock().unwrap().push(Export {
            path,
            content_type,
            body,
        });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
            .is_err()
        {
            return;
        }
    }
}

/// Every span in JSON exports, flattened with its attributes as a map.
fn spans(exports: &[Export]) -> Vec<Value> {
    let mut out = Vec::new();
    for e in exports {
        let doc: Value = serde_json::from_slice(&e.body).expect("OTLP/JSON body");
        for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    out
}

/// An attribute's value as text (OTLP/JSON writes int64 as a string or a
/// number, depending on the encoder).
fn attr(item: &Value, key: &str) -> Option<String> {
    let kv = item["attributes"].as_array()?.iter().find(|kv| kv["key"] == key)?;
    let v = &kv["value"];
    v["stringValue"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["intValue"].as_str().map(str::to_string))
        .or_else(|| v["intValue"].as_i64().map(|n| n.to_string()))
}

fn messages(agent: &Agent, text: &str) -> u16 {
    agent.send_messages("claude-sonnet-4-5", text, false).status
}

fn agent_exporting_to(fake: &promptwall_e2e::FakeHandle, receiver: &Receiver, protocol: &str) -> Agent {
    let mut config = AgentConfig::explicit_to(fake);
    config.toml_extra = format!(
        "[traces]\nendpoint = \"{}\"\nprotocol = \"{protocol}\"\nbatch_delay_ms = 100\n",
        receiver.endpoint()
    );
    Agent::start(&config)
}

fn request_id(row: &AuditRow) -> String {
    row.rest["request_id"].as_str().unwrap().to_string()
}

#[test]
fn each_exchange_is_a_span_with_genai_attributes_and_the_guardrail_event_and_no_prompt_text() {
    let fake = start_fake(false);
    let receiver = Receiver::start();
    let agent = agent_exporting_to(&fake, &receiver, "http/json");

    assert_eq!(messages(&agent, &format!("{PROMPT_WORD}: hello")), 200);
    assert_eq!(
        messages(&agent, &format!("{PROMPT_WORD}: write to jane.roe@acme-corp.io")),
        200
    );
    assert_eq!(
        messages(&agent, &format!("{PROMPT_WORD}: my key is {}", aws_key())),
        422
    );
    let rows = agent.wait_audit_rows(3);
    let exports = receiver.wait_until("three spans", |e| spans(e).len() >= 3);
    for e in &exports {
        assert_eq!(e.path, "/v1/traces");
        assert!(e.content_type.starts_with("application/json"), "{}", e.content_type);
        let text = String::from_utf8_lossy(&e.body);
        assert!(!text.contains(PROMPT_WORD), "prompt text left the machine: {text}");
        assert!(!text.contains("jane.roe") && !text.contains(&aws_key()), "{text}");
        assert!(!text.contains("gen_ai.system"), "{text}");
    }
    let spans = spans(&exports);
    assert_eq!(spans.len(), 3, "one span per exchange: {spans:#?}");
    for row in &rows {
        let id = request_id(row);
        let span = spans
            .iter()
            .find(|s| attr(s, "promptwall.request_id").as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no span for {id}: {spans:#?}"));
        assert_eq!(span["name"], "chat claude-sonnet-4-5", "{span}");
        assert_eq!(span["kind"], 3, "SPAN_KIND_CLIENT: {span}");
        assert_eq!(attr(span, "gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(attr(span, "gen_ai.provider.name").as_deref(), Some("anthropic"));
        assert_eq!(attr(span, "gen_ai.request.model").as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(
            attr(span, "gen_ai.usage.input_tokens"),
            row.input_tokens.map(|n| n.to_string()),
            "{span}"
        );
        assert_eq!(
            attr(span, "gen_ai.usage.output_tokens"),
            row.output_tokens.map(|n| n.to_string())
        );
        let guardrail: Vec<&Value> = span["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["name"] == "gen_ai.guardrail.result")
            .collect();
        assert!(!guardrail.is_empty(), "{span}");
        for event in &guardrail {
            assert_eq!(
                attr(event, "gen_ai.guardrail.result.value").as_deref(),
                Some(row.verdict.as_str())
            );
            assert_eq!(
                attr(event, "gen_ai.guardrail.component.name").as_deref(),
                Some("promptwall")
            );
        }
        match row.verdict.as_str() {
            "blocked" => {
                assert_eq!(attr(span, "error.type").as_deref(), Some("422"));
                assert_eq!(span["status"]["code"], 2, "STATUS_CODE_ERROR: {span}");
                assert!(guardrail
                    .iter()
                    .any(|e| attr(e, "gen_ai.guardrail.risk.category").as_deref() == Some("aws_access_key_id")));
            }
            "redacted" => assert!(guardrail
                .iter()
                .any(|e| attr(e, "gen_ai.guardrail.risk.category").as_deref() == Some("email"))),
            verdict => assert_eq!(verdict, "allowed"),
        }
    }
    assert_eq!(
        rows.iter().map(|r| r.verdict.as_str()).collect::<Vec<_>>(),
        ["allowed", "redacted", "blocked"]
    );
}

#[test]
fn protobuf_exports_carry_the_span_and_never_the_prompt() {
    let fake = start_fake(false);
    let receiver = Receiver::start();
    let agent = agent_exporting_to(&fake, &receiver, "http/protobuf");
    assert_eq!(
        messages(&agent, &format!("{PROMPT_WORD}: write to jane.roe@acme-corp.io")),
        200
    );
    let rows = agent.wait_audit_rows(1);
    let id = request_id(&rows[0]);
    // Protobuf keeps strings as raw bytes, so the span's texts are visible.
    let contains = |body: &[u8], s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
    let exports = receiver.wait_until("the span", |e| e.iter().any(|x| contains(&x.body, &id)));
    for e in &exports {
        assert_eq!(e.content_type, "application/x-protobuf");
        assert!(!contains(&e.body, PROMPT_WORD) && !contains(&e.body, "jane.roe"));
    }
    let export = exports.iter().find(|x| contains(&x.body, &id)).unwrap();
    for expected in [
        "gen_ai.guardrail.result",
        "gen_ai.usage.input_tokens",
        "chat claude-sonnet-4-5",
        "redacted",
    ] {
        assert!(contains(&export.body, expected), "{expected} missing");
    }
}
