//! Every audit row passes the sink `app::start` installs, and that sink
//! scrubs the client process's command line: a spliced (passthrough) row,
//! whose traffic was never inspected, is stored in a real SQLite audit store
//! without the email and the credential its command line carried.

use std::path::Path;
use std::sync::Arc;

use promptwall_audit::{AuditRecord, AuditStore, AuditWriter, WriterOptions};
use promptwall_proxy::app::{self, Deps};
use promptwall_proxy::audit_sink::AuditSink;
use promptwall_proxy::config::Config;
use promptwall_proxy::exchange::{Client, Exchange, Listener, Target, Traffic, Verdict};
use promptwall_proxy::origin::ClientIdentity;

/// Shaped like an AWS access key id, not the documented (allowlisted) example.
const AWS_KEY: &str = "AKIAQ3EGVP7XWJ4LN2TZ";
const EMAIL: &str = "maria.lopez@example.org";

/// The SQLite store as the agent writes it.
fn sqlite_sink(writer: AuditWriter) -> AuditSink {
    Arc::new(move |rec: AuditRecord| {
        let writer = writer.clone();
        Box::pin(async move { writer.write(rec).await.map(|_| ()).map_err(|e| e.to_string()) })
    })
}

/// Files under `dir` (the database and its WAL) whose bytes contain `value`.
fn files_containing(dir: &Path, value: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b.windows(value.len()).any(|w| w == value.as_bytes())))
        .map(|e| e.path().display().to_string())
        .collect()
}

#[tokio::test]
async fn a_passthrough_row_is_stored_without_the_email_and_key_on_its_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = AuditStore::open(&url).await.unwrap();
    let writer = AuditWriter::spawn(store.clone(), WriterOptions::new("test-machine"));

    let mut config = Config {
        machine_id: Some("test-machine".into()),
        ..Default::default()
    };
    config.listen.explicit = Some("127.0.0.1:0".parse().unwrap());
    config.listen.transparent = None;
    let running = app::start(
        config,
        Deps {
            audit: sqlite_sink(writer),
            tls: None,
            origins: None,
            shapes: promptwall_llm::Shapes::builtin(),
        },
    )
    .await
    .unwrap();

    // The row the transparent listener writes for a spliced connection:
    // nothing was decrypted, so nothing was inspected.
    let cmdline = format!("gemini -p \"email {EMAIL} the key {AWS_KEY}\"");
    let mut row = Exchange::new(Listener::Transparent, Client::default());
    row.traffic = Traffic::Spliced;
    row.method = "CONNECT".into();
    row.verdict = Verdict::Passthrough;
    row.error = Some("client rejected the certificate (pinned)".into());
    row.target = Some(Target {
        provider: String::new(),
        uri: Default::default(),
        host: "generativelanguage.googleapis.com".into(),
        dial: None,
    });
    row.client.identity = Some(ClientIdentity {
        pid: Some(4242),
        uid: Some(1000),
        user: Some("maria".into()),
        exe: Some("/usr/local/bin/gemini".into()),
        comm: Some("gemini".into()),
        cmdline: Some(cmdline),
        ..Default::default()
    });
    running.proxy.recorder.commit(row).await.expect("the row is committed");
    assert_eq!(store.count_all().await.unwrap(), 1);

    for secret in [EMAIL, AWS_KEY] {
        let leaked = files_containing(dir.path(), secret);
        assert!(leaked.is_empty(), "stored in clear text in {leaked:?}");
    }
    // The rest of the command line is still there for the auditor.
    assert!(
        !files_containing(dir.path(), "gemini -p \"email [[REDACTED_EMAIL]] the key [[REDACTED_").is_empty(),
        "the scrubbed command line is not in the store"
    );
    assert!(!files_containing(dir.path(), "/usr/local/bin/gemini").is_empty());
}
