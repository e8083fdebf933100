//! The fake seen by other TLS stacks (curl/OpenSSL, Python `ssl` in strict
//! X.509 mode) and the `fake-provider` binary's contract.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use promptwall_fake_provider::{FakeOptions, FakeProvider};
use serde_json::Value;

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn curl_verifies_the_leaf_and_streams() {
    assert!(have("curl"), "curl is required (cargo xtask setup installs it)");
    let fake = FakeProvider::start_background(FakeOptions::default()).unwrap();
    let port = fake.addr.port();
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "20", "--cacert"])
        .arg(&fake.ca_pem_path)
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .arg("--resolve")
        .arg(format!("api.anthropic.com:{port}:127.0.0.1"))
        .arg(format!("https://api.anthropic.com:{port}/v1/messages"))
        .args([
            "-H",
            "content-type: application/json",
            "-H",
            "anthropic-version: 2023-06-01",
            "-d",
        ])
        .arg(r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"via curl"}]}"#)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}{}",
        body,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.starts_with("event: message_start\ndata: "), "{body}");
    assert!(body.contains("event: message_stop"));
    let rec = fake.recorded();
    assert_eq!(rec[0].conn.sni.as_deref(), Some("api.anthropic.com"));
    assert!(rec[0].conn.alpn_offered.contains(&"h2".to_string()));

    // A client that does not trust the fake's CA is refused.
    let untrusted = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert", "/dev/null"])
        .arg("--resolve")
        .arg(format!("api.anthropic.com:{port}:127.0.0.1"))
        .arg(format!("https://api.anthropic.com:{port}/api/hello"))
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
}

#[test]
fn python_ssl_strict_accepts_the_leaf() {
    assert!(have("python3"), "python3 is required");
    let fake = FakeProvider::start_background(FakeOptions::default()).unwrap();
    // VERIFY_X509_STRICT is Python 3.13's default: it needs AKI and proper CA extensions.
    let script = r#"
import ssl, socket, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
ctx.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=20) as s:
    with ctx.wrap_socket(s, server_hostname="api.openai.com") as t:
        t.sendall(b"GET /backend-api/codex/models HTTP/1.1\r\nHost: api.openai.com\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := t.recv(65536):
            data += chunk
        print(t.selected_alpn_protocol(), data.split(b"\r\n")[0].decode(), data.split(b"\r\n\r\n", 1)[1].decode())
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&fake.ca_pem_path)
        .arg(fake.addr.port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("http/1.1 HTTP/1.1 200"), "{stdout}");
    assert!(stdout.contains(r#"{"models":[]}"#), "{stdout}");
}

#[test]
fn binary_prints_ready_line_and_logs_requests() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-provider"))
        .args(["--plain", "--bind", "127.0.0.1:0", "--ca-dir"])
        .arg(dir.path().join("ca"))
        .arg("--log")
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
    let addr = ready["addr"].as_str().unwrap().to_string();
    assert_eq!(
        ready["ca"].as_str().unwrap(),
        dir.path().join("ca/ca.pem").to_str().unwrap()
    );
    assert!(dir.path().join("ca/ca.pem").exists());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-H", "content-type: application/json", "-d"])
        .arg(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"bin"}]}"#)
        .arg(format!("http://{addr}/v1/chat/completions"))
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: bin");
    let logged: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(logged["path"], "/v1/chat/completions");
    assert_eq!(logged["tls"], false);
}
