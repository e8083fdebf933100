//! TLS trust end to end: `promptwall up` terminates TLS on the explicit HTTPS
//! listener with leaves minted from the org CA, and real clients (curl with
//! OpenSSL, Python `ssl` in strict mode) verify them against nothing but the
//! CA `promptwall ca export` prints. The CA's name constraints bind the
//! clients too: a leaf for a foreign name signed with the CA key itself (a
//! stolen-key forgery the minter would never produce) is refused by them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use promptwall_e2e::process::clean_env;
use promptwall_e2e::{run_bounded, start_fake, Agent, AgentConfig, RunOutput, TestClients};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
use serde_json::{json, Value};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn curl(args: &[&str]) -> RunOutput {
    let mut cmd = Command::new("curl");
    clean_env(&mut cmd).args(["-sS", "--max-time", "30"]).args(args);
    run_bounded(&mut cmd, CLIENT_TIMEOUT)
}

/// curl to `https://<name>:<port><path>` pinned to loopback, trusting only `ca`.
fn curl_tls(ca: &Path, name: &str, port: u16, path: &str, extra: &[&str]) -> RunOutput {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}{path}");
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// Python `ssl` with an explicit context that trusts only `cafile`, strict
/// X.509 checks and hostname verification; connects to 127.0.0.1:port with
/// SNI `name`, sends one request, prints a JSON line.
const PY_SSL: &str = r#"
import json, socket, ssl, sys
cafile, name, port, body = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(cafile=cafile)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
try:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            san = [v for k, v in s.getpeercert().get("subjectAltName", ()) if k == "DNS"]
            req = (f"POST /v1/messages HTTP/1.1\r\nhost: {name}\r\ncontent-type: application/json\r\n"
                   f"anthropic-version: 2023-06-01\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n{body}")
            s.sendall(req.encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    head, _, payload = data.decode().partition("\r\n\r\n")
    print(json.dumps({"ok": True, "san": san, "status": head.split()[1], "body": payload}))
except ssl.SSLCertVerificationError as e:
    print(json.dumps({"ok": False, "verify_error": e.verify_message, "error": str(e)}))
except ssl.SSLError as e:
    print(json.dumps({"ok": False, "verify_error": None, "error": str(e)}))
"#;

fn python_ssl(clients: &TestClients, ca: &Path, name: &str, port: u16, body: &str) -> Value {
    let mut cmd = clients.python_cmd(PY_SSL);
    cmd.args([ca.to_str().unwrap(), name, &port.to_string(), body]);
    let out = run_bounded(&mut cmd, CLIENT_TIMEOUT);
    out.expect_success("python ssl client");
    out.last_json()
}

fn messages_body(text: &str) -> String {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}).to_string()
}

/// An agent with the explicit HTTPS listener and the CA it exported.
fn tls_agent() -> (promptwall_e2e::FakeHandle, Agent, PathBuf) {
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    cfg.explicit_tls = Some("127.0.0.1:0".parse().unwrap());
    let agent = Agent::start(&cfg);
    let export = agent.cli(&["ca", "export"]);
    export.expect_success("promptwall ca export");
    assert!(
        export.stdout.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        export.stdout
    );
    let ca = agent.dir.path().join("exported-ca.pem");
    std::fs::write(&ca, &export.stdout).unwrap();
    (fake, agent, ca)
}

#[test]
fn curl_and_python_verify_the_minted_leaf_against_the_exported_ca() {
    let (fake, agent, ca) = tls_agent();
    let port = agent.explicit_tls.expect("explicit_tls bound").port();

    let out = curl_tls(
        &ca,
        "api.anthropic.com",
        port,
        "/v1/messages",
        &[
            "-H",
            "content-type: application/json",
            "-H",
            "anthropic-version: 2023-06-01",
            "-d",
            &messages_body("curl over tls"),
        ],
    );
    out.expect_success("curl --cacert <exported CA>");
    assert_eq!(out.last_json()["content"][0]["text"], "You said: curl over tls");
    let out = curl_tls(
        &ca,
        "api.openai.com",
        port,
        "/v1/chat/completions",
        &[
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"openai over tls"}]}"#,
        ],
    );
    out.expect_success("curl --cacert <exported CA> (openai name)");
    assert_eq!(
        out.last_json()["choices"][0]["message"]["content"],
        "You said: openai over tls"
    );

    if let Some(clients) = TestClients::find() {
        let r = python_ssl(
            &clients,
            &ca,
            "api.anthropic.com",
            port,
            &messages_body("python over tls"),
        );
        assert_eq!(r["ok"], true, "strict Python ssl must accept the minted leaf: {r}");
        assert_eq!(r["san"], json!(["api.anthropic.com"]), "{r}");
        assert_eq!(r["status"], "200", "{r}");
        assert!(r["body"].as_str().unwrap().contains("You said: python over tls"), "{r}");
        // Negative control: trusting a different CA (the fake provider's) fails verification.
        let r = python_ssl(
            &clients,
            &fake.ca_pem_path,
            "api.anthropic.com",
            port,
            &messages_body("x"),
        );
        assert_eq!(r["ok"], false, "{r}");
        assert!(
            r["verify_error"]
                .as_str()
                .is_some_and(|m| m.contains("unable to get local issuer")),
            "{r}"
        );
    }
    let out = curl_tls(
        &fake.ca_pem_path,
        "api.anthropic.com",
        port,
        "/v1/messages",
        &["-d", "{}"],
    );
    assert!(!out.success(), "curl trusting another CA must refuse the leaf: {out:?}");

    let rows = agent.wait_audit_rows(2);
    assert!(
        rows.iter().all(|r| r.listener == "explicit" && r.status == 200),
        "{rows:#?}"
    );
    let texts: Vec<String> = fake.recorded().iter().map(|r| r.body_text()).collect();
    assert!(texts.iter().any(|t| t.contains("curl over tls")), "{texts:?}");
}

/// A leaf for `name` signed with the org CA's key read from disk, bypassing
/// the minter and its name check.
fn forge_leaf(ca_dir: &Path, name: &str) -> (String, String) {
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap(), ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![SanType::DnsName(name.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Serves `cert_pem` over TLS on loopback (answering any request with a
/// fixed body) until the returned guard is dropped.
struct ForgedServer {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ForgedServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(self.addr); // wake the accept loop
    }
}

fn serve_forged(cert_pem: &str, key_pem: &str) -> ForgedServer {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let Ok(tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 4096];
            // A refused handshake ends here with an error; that is the point.
            if matches!(tls.read(&mut buf), Ok(n) if n > 0) {
                let body = "forged-ok";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    ForgedServer { addr, stop }
}

#[test]
fn clients_refuse_a_leaf_outside_the_name_constraints() {
    let (_fake, agent, ca) = tls_agent();
    let ca_dir = agent.dir.path().join("ca");
    let status = agent.cli(&["ca", "status", "--json"]);
    status.expect_success("promptwall ca status --json");
    assert!(
        status.stdout.contains("anthropic.com"),
        "the CA is constrained to the provider domains: {}",
        status.stdout
    );

    // The proxy itself will not mint for a foreign name.
    let tls_port = agent.explicit_tls.unwrap().port();
    let out = curl_tls(&ca, "bank.example.com", tls_port, "/", &[]);
    assert!(!out.success(), "no leaf for a non-provider name: {out:?}");

    let clients = TestClients::find();
    // Control: a forged leaf for a permitted name is accepted, so a refusal
    // below is about the name alone.
    let (cert, key) = forge_leaf(&ca_dir, "api.anthropic.com");
    let server = serve_forged(&cert, &key);
    let out = curl_tls(&ca, "api.anthropic.com", server.addr.port(), "/", &[]);
    out.expect_success("curl with a leaf inside the constraints");
    assert_eq!(out.stdout, "forged-ok");
    if let Some(c) = &clients {
        let r = python_ssl(c, &ca, "api.anthropic.com", server.addr.port(), "{}");
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["body"], "forged-ok", "{r}");
    }
    drop(server);

    let (cert, key) = forge_leaf(&ca_dir, "bank.example.com");
    let server = serve_forged(&cert, &key);
    let out = curl_tls(&ca, "bank.example.com", server.addr.port(), "/", &[]);
    assert!(
        !out.success(),
        "curl must refuse a leaf outside the CA's name constraints: {out:?}"
    );
    assert!(
        out.stderr.contains("subtree violation"),
        "curl names the constraint violation: {}",
        out.stderr
    );
    if let Some(c) = &clients {
        let r = python_ssl(c, &ca, "bank.example.com", server.addr.port(), "{}");
        assert_eq!(r["ok"], false, "Python ssl must refuse it: {r}");
        assert!(
            r["verify_error"]
                .as_str()
                .is_some_and(|m| m.contains("subtree violation")),
            "{r}"
        );
    }
}

#[test]
fn the_upstream_leg_refuses_a_provider_certificate_it_cannot_verify() {
    // Same fake, but its CA is not among the agent's upstream roots.
    let fake = start_fake(false);
    let mut cfg = AgentConfig::explicit_to(&fake);
    cfg.extra_roots.clear();
    let agent = Agent::start(&cfg);
    let out = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "-d",
        &messages_body("should not arrive"),
        &format!("{}/v1/messages", agent.anthropic_base_url()),
    ]);
    out.expect_success("curl");
    let (body, code) = out.stdout.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(code, "502", "{body}");
    let v: Value = serde_json::from_str(body).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("certificate"), "the client learns why: {msg}");
    assert!(
        fake.recorded().is_empty(),
        "no request may be sent over an unverified connection"
    );
    let rows = agent.wait_audit_rows(1);
    assert_eq!((rows[0].status, rows[0].verdict.as_str()), (502, "error"), "{rows:#?}");
}
