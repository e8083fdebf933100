//! What the provider saw: every HTTP request and every WebSocket message,
//! with the TLS ClientHello facts of its connection, kept in memory and
//! optionally appended to a JSONL log for shell-based tests and benches.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::FakeError;

/// TLS facts of one connection (empty for plain HTTP).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnInfo {
    pub tls: bool,
    pub sni: Option<String>,
    /// ALPN protocols the client offered, in its order.
    pub alpn_offered: Vec<String>,
    /// ALPN protocol agreed on, if any.
    pub alpn: Option<String>,
    /// Accepted TCP connection, numbered from 1 (0: plain HTTP), so tests
    /// can tell a reused connection from a new one.
    pub conn_id: u64,
}

/// Usage the fake reported in its answer, so tests can compare audit rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplyUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// 0-based arrival order.
    pub seq: u64,
    /// `"http"` or `"ws"` (one entry per WebSocket client message).
    pub transport: &'static str,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// HTTP version as hyper reports it, e.g. "HTTP/1.1", "HTTP/2.0".
    pub version: String,
    /// Header names lower-case, in arrival order, repeated names kept.
    pub headers: Vec<(String, String)>,
    #[serde(serialize_with = "body_as_text")]
    pub body: Bytes,
    /// The body parsed as JSON when it is JSON.
    pub json: Option<Value>,
    #[serde(flatten)]
    pub conn: ConnInfo,
    /// Status the fake answered with.
    pub status: u16,
    pub reply_usage: Option<ReplyUsage>,
}

fn body_as_text<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
pub struct Recorder {
    entries: Mutex<Vec<RecordedRequest>>,
    log: Option<Mutex<File>>,
}

impl Recorder {
    pub fn new(log: Option<&Path>) -> Result<Recorder, FakeError> {
        let log = match log {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| FakeError::Io {
                        path: path.to_path_buf(),
                        source,
                    })?,
            )),
            None => None,
        };
        Ok(Recorder {
            entries: Mutex::new(Vec::new()),
            log,
        })
    }

    /// Stores `req` (its `seq` is assigned here) and appends it to the log.
    pub fn push(&self, mut req: RecordedRequest) {
        let mut entries = self.entries.lock().unwrap();
        req.seq = entries.len() as u64;
        if let Some(log) = &self.log {
            if let Ok(mut line) = serde_json::to_vec(&req) {
                line.push(b'\n');
                // Logging is best effort: a full disk must not fail the answer.
                let _ = log.lock().unwrap().write_all(&line);
            }
        }
        entries.push(req);
    }

    pub fn all(&self) -> Vec<RecordedRequest> {
        self.entries.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap().clear();
    }
}
