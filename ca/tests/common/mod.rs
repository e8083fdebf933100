//! Shared helpers for the CA integration tests: TLS servers on 127.0.0.1 and
//! real clients (rustls, curl, Python ssl) with explicitly chosen trust.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use promptwall_ca::{InitOptions, OrgCa};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const BODY: &str = "hello from promptwall test server";

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn init_constrained(dir: &Path) -> OrgCa {
    OrgCa::init(
        dir,
        &InitOptions {
            permitted_domains: vec!["anthropic.com".into(), "openai.com".into(), "chatgpt.com".into()],
            common_name: "promptwall test CA".into(),
            ..InitOptions::default()
        },
    )
    .expect("init CA")
}

/// Serves HTTP/1.1 over TLS with `config` on an ephemeral loopback port until dropped.
pub struct TlsServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(config: Arc<rustls::ServerConfig>) -> TlsServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if buf.len() > 64 * 1024 {
                        return;
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsServer { port, task }
}

/// A server config presenting one fixed chain (for forged leaves).
pub fn fixed_cert_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// Handshake + GET with a rustls client trusting only `anchors`; returns the body or the error text.
pub async fn rustls_get(anchors: &[CertificateDer<'static>], sni: &str, port: u16) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for a in anchors {
        roots.add(a.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await.map_err(|e| format!("{e:?}"))?;
    tls.write_all(format!("GET / HTTP/1.1\r\nhost: {sni}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out).await;
    Ok(out)
}

/// Whether `tool` is an executable on PATH.
pub fn have(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).any(|d| {
                std::fs::metadata(d.join(tool))
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

/// Drops the trust-related variables this environment pre-sets, so only the
/// trust we pass explicitly counts.
fn clean_trust_env(cmd: &mut tokio::process::Command) {
    for var in [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
}

pub async fn curl(cafile: &Path, sni: &str, port: u16) -> Output {
    let mut cmd = tokio::process::Command::new("curl");
    clean_trust_env(&mut cmd);
    cmd.args(["-sS", "--max-time", "10", "--noproxy", "*", "--cacert"])
        .arg(cafile)
        .arg("--resolve")
        .arg(format!("{sni}:{port}:127.0.0.1"))
        .arg(format!("https://{sni}:{port}/"));
    cmd.output().await.unwrap()
}

/// Python stdlib ssl with VERIFY_X509_STRICT (Python 3.13's default), trusting only `cafile`.
pub async fn python_ssl(cafile: &Path, sni: &str, port: u16) -> Output {
    const SCRIPT: &str = r#"
import socket, ssl, sys
cafile, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
        sys.stdout.write(data.decode())
"#;
    let mut cmd = tokio::process::Command::new("python3");
    clean_trust_env(&mut cmd);
    cmd.arg("-c").arg(SCRIPT).arg(cafile).arg(sni).arg(port.to_string());
    cmd.output().await.unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "status={} stdout={} stderr={}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn write_pem(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}
