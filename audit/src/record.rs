//! The audit row: one per proxied request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A salted fingerprint of a detected secret: lets auditors correlate the same
/// leaked credential across requests without ever storing its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub kind: String,
    pub fp: String,
}

/// One request as the proxy saw it. `None` means "not known" (e.g. no
/// attribution in explicit mode, no usage block in the response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AuditRecord {
    /// Row id, unique per machine; assigned by the writer (ignored on input).
    pub id: i64,
    pub machine_id: String,
    /// Request start, RFC3339 UTC with milliseconds (`2025-01-31T12:00:00.123Z`).
    pub ts: String,
    /// "explicit" | "transparent".
    pub listener: String,
    pub provider: Option<String>,
    pub host: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    /// API shape: anthropic.messages, openai.chat, openai.responses, ... (the
    /// shape registry's names), or refused / passthrough.
    pub shape: Option<String>,
    pub model: Option<String>,
    /// HTTP status returned to the client; 0 if no response was produced.
    pub status: u16,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub duration_ms: f64,
    pub ttfb_ms: Option<f64>,
    pub pid: Option<u32>,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub login_user: Option<String>,
    /// Coding tool name derived from exe/cmdline (claude-code, cursor, aider, ...).
    pub tool: Option<String>,
    pub container_id: Option<String>,
    pub socket_cookie: Option<u64>,
    /// Original destination of a transparently redirected connection.
    pub original_dst: Option<String>,
    /// "allowed" | "redacted" | "blocked" | "limited" | "error" | "passthrough".
    pub verdict: String,
    /// Detector kind -> number of findings in this request.
    pub findings: BTreeMap<String, u32>,
    pub fingerprints: Vec<Fingerprint>,
    pub error: Option<String>,
    /// true for LLM API paths, false for other paths on provider hosts.
    pub llm: bool,
    /// Estimated USD cost from the price table (filled by the writer).
    pub cost_usd: Option<f64>,
    /// Bodies as the provider saw them (redacted), only when capture is on.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// SHA-256 of the bodies; the chain covers these, so bodies can be
    /// purged by retention without breaking verification.
    pub request_body_sha256: Option<String>,
    pub response_body_sha256: Option<String>,
    /// Hash chain: hash = SHA-256(prev_hash || canonical JSON of the row).
    pub prev_hash: String,
    pub hash: String,
    /// Random id of the local store that wrote the row, generated once when
    /// the store is created (set by the writer, ignored on input). Ids
    /// restart at 1 in a new store, so the fleet key is (machine_id,
    /// install_id, id): a purge and reinstall with the same /etc/machine-id
    /// cannot collide with the old install's rows. Empty on rows of stores
    /// created before install ids existed (their hashes do not cover it).
    pub install_id: String,
    /// Id of the exchange, also sent to the client in a response header, so
    /// a developer's failed request is found in one query. Empty when
    /// unknown, as on rows written before request ids existed (the hash
    /// covers it only when set, so those rows verify as before).
    pub request_id: String,
    /// Name of the routing rule that matched; empty when none did (the
    /// request went where the client addressed it), as on rows written
    /// before routing existed. Like the other routing fields, the hash
    /// covers it only when set.
    pub route: String,
    /// `<upstream>/<account>` (or `<upstream>`) that answered; empty when
    /// the request was not routed.
    pub upstream: String,
    /// The routing detail as compact JSON text: requested and upstream
    /// model, translation, notes and attempts. Build it with
    /// [`RoutingDetail::to_json`](crate::RoutingDetail::to_json) and read it
    /// with [`AuditRecord::routing_detail`]. None when not routed.
    pub routing: Option<String>,
    /// The container's name and image, when the client ran in one
    /// (`container_id`) and its runtime's records named them. The hash
    /// covers each only when set.
    pub container_name: Option<String>,
    pub container_image: Option<String>,
}

/// Columns in storage order; shared by inserts and selects on both databases.
pub(crate) const COLUMNS: &[&str] = &[
    "id",
    "machine_id",
    "ts",
    "listener",
    "provider",
    "host",
    "method",
    "path",
    "shape",
    "model",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "request_bytes",
    "response_bytes",
    "duration_ms",
    "ttfb_ms",
    "pid",
    "exe",
    "cmdline",
    "uid",
    "\"user\"",
    "login_user",
    "tool",
    "container_id",
    "socket_cookie",
    "original_dst",
    "verdict",
    "findings",
    "fingerprints",
    "error",
    "llm",
    "cost_usd",
    "request_body",
    "response_body",
    "request_body_sha256",
    "response_body_sha256",
    "prev_hash",
    "hash",
    "install_id",
    "request_id",
    "route",
    "upstream",
    "routing",
    "container_name",
    "container_image",
];

pub(crate) fn column_list() -> String {
    COLUMNS.join(", ")
}

pub(crate) fn placeholders(first: usize) -> String {
    (first..first + COLUMNS.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Longest stored text of an identifier-like field (model, user, tool, ...),
/// in bytes: keeps index entries far below PostgreSQL's ~2.7 KB B-tree limit.
pub const MAX_SHORT_FIELD: usize = 256;
/// Longest stored host, path, executable, command line or error, in bytes.
pub const MAX_LONG_FIELD: usize = 8192;

/// Longest stored request id, in bytes (UUIDs and ULIDs are 26-36).
pub const MAX_REQUEST_ID: usize = 64;

/// Text as it may be stored: every control character (C0, DEL, C1) written
/// as a visible `\u{..}` escape, except newline, carriage return and tab when
/// `multiline`. A local user chooses the model name, the executable name and
/// the command line; raw NUL makes PostgreSQL reject the row, and escape
/// sequences would drive an auditor's terminal.
pub fn escape_controls(s: &str, multiline: bool) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if !s.chars().any(|c| c.is_control() && !keep(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && !keep(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Cuts `s` to at most `max` bytes at a character boundary, saying so.
pub(crate) fn bound(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let marker = "…[truncated]";
    let mut cut = max.saturating_sub(marker.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(marker);
}

pub(crate) fn clean(s: &mut String, max: usize) {
    if let std::borrow::Cow::Owned(escaped) = escape_controls(s, false) {
        *s = escaped;
    }
    bound(s, max);
}

/// A request id is matched exactly and shown in terminals: every character
/// but printable ASCII is escaped (`\u{..}`), then the length bounded.
fn clean_request_id(s: &mut String) {
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        *s = s
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() {
                    c.to_string()
                } else {
                    format!("\\u{{{:x}}}", c as u32)
                }
            })
            .collect();
    }
    bound(s, MAX_REQUEST_ID);
}

fn clean_opt(s: &mut Option<String>, max: usize) {
    if let Some(s) = s {
        clean(s, max);
    }
}

impl AuditRecord {
    /// The routing detail, read from [`AuditRecord::routing`]; None when the
    /// row has none, an error when its text is not one (a foreign writer).
    pub fn routing_detail(&self) -> Option<Result<crate::RoutingDetail, serde_json::Error>> {
        self.routing.as_deref().map(crate::RoutingDetail::from_json)
    }

    /// Makes every text field storable and displayable: control characters
    /// escaped, lengths bounded. Bodies keep their line structure and only
    /// lose NUL (PostgreSQL text cannot hold it); their size is capped by
    /// the writer's capture limit. The writer calls this before hashing.
    pub fn sanitize(&mut self) {
        for s in [&mut self.machine_id, &mut self.listener, &mut self.verdict] {
            clean(s, MAX_SHORT_FIELD);
        }
        bound(&mut self.ts, 64);
        clean_request_id(&mut self.request_id);
        clean(&mut self.route, MAX_SHORT_FIELD);
        clean(&mut self.upstream, MAX_SHORT_FIELD);
        crate::routing::sanitize_routing(&mut self.routing);
        for s in [
            &mut self.provider,
            &mut self.method,
            &mut self.shape,
            &mut self.model,
            &mut self.user,
            &mut self.login_user,
            &mut self.tool,
            &mut self.container_id,
            &mut self.container_name,
            &mut self.container_image,
            &mut self.original_dst,
        ] {
            clean_opt(s, MAX_SHORT_FIELD);
        }
        for s in [
            &mut self.host,
            &mut self.path,
            &mut self.exe,
            &mut self.cmdline,
            &mut self.error,
        ] {
            clean_opt(s, MAX_LONG_FIELD);
        }
        if self
            .findings
            .keys()
            .any(|k| escape_controls(k, false).len() != k.len() || k.len() > MAX_SHORT_FIELD)
        {
            self.findings = std::mem::take(&mut self.findings)
                .into_iter()
                .map(|(mut k, n)| {
                    clean(&mut k, MAX_SHORT_FIELD);
                    (k, n)
                })
                .collect();
        }
        for f in &mut self.fingerprints {
            clean(&mut f.kind, MAX_SHORT_FIELD);
            clean(&mut f.fp, MAX_SHORT_FIELD);
        }
        for body in [&mut self.request_body, &mut self.response_body].into_iter().flatten() {
            if body.contains('\0') {
                *body = body.replace('\0', "\\u{0}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_lengths_bounded() {
        let mut r = AuditRecord {
            model: Some("gpt\0\x1b[31mx\u{9b}".into()),
            cmdline: Some("a\nb".into()),
            user: Some("é".repeat(300)),
            request_body: Some("{\"a\":\n\"\0\"}".into()),
            ..Default::default()
        };
        r.sanitize();
        assert_eq!(r.model.as_deref(), Some("gpt\\u{0}\\u{1b}[31mx\\u{9b}"));
        assert_eq!(r.cmdline.as_deref(), Some("a\\u{a}b"));
        let user = r.user.unwrap();
        assert!(
            user.len() <= MAX_SHORT_FIELD && user.ends_with("…[truncated]"),
            "{user}"
        );
        assert_eq!(r.request_body.as_deref(), Some("{\"a\":\n\"\\u{0}\"}"));
        assert_eq!(escape_controls("plain", false), "plain");
    }

    #[test]
    fn request_ids_are_kept_printable_and_bounded() {
        let mut r = AuditRecord {
            request_id: "01JF3Z9K8M2V7Q4XN6T5R0W1YA".into(),
            ..Default::default()
        };
        r.sanitize();
        assert_eq!(
            r.request_id, "01JF3Z9K8M2V7Q4XN6T5R0W1YA",
            "a well-formed id is kept as is"
        );
        r.request_id = "id \x1b[2J\u{e9}".into();
        r.sanitize();
        assert_eq!(r.request_id, "id\\u{20}\\u{1b}[2J\\u{e9}");
        r.request_id = "x".repeat(1000);
        r.sanitize();
        assert!(r.request_id.len() <= MAX_REQUEST_ID, "{}", r.request_id);
    }

    #[test]
    fn route_and_upstream_are_escaped_and_bounded_like_other_names() {
        let mut r = AuditRecord {
            route: format!("cheap\u{1b}{}", "r".repeat(400)),
            upstream: "openai/main\n".into(),
            ..Default::default()
        };
        r.sanitize();
        assert!(
            r.route.starts_with("cheap\\u{1b}rrr") && r.route.len() <= MAX_SHORT_FIELD,
            "{}",
            r.route
        );
        assert_eq!(r.upstream, "openai/main\\u{a}");
    }
}
