#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use promptwall_audit::{AuditRecord, Fingerprint};

/// A completed request `minutes_ago` with the given attribution.
pub struct Req<'a> {
    pub minutes_ago: i64,
    pub user: &'a str,
    pub tool: &'a str,
    pub exe: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub status: u16,
    pub verdict: &'a str,
    pub findings: &'a [(&'a str, u32)],
    pub tokens: (i64, i64),
}

impl Default for Req<'_> {
    fn default() -> Self {
        Req {
            minutes_ago: 1,
            user: "alice",
            tool: "claude-code",
            exe: "/usr/bin/claude",
            provider: "anthropic",
            model: "claude-sonnet-4-20250514",
            status: 200,
            verdict: "allowed",
            findings: &[],
            tokens: (1000, 100),
        }
    }
}

pub fn record(r: Req<'_>) -> AuditRecord {
    let ts = promptwall_audit::time::format_ts(Utc::now() - Duration::minutes(r.minutes_ago));
    let findings: BTreeMap<String, u32> = r.findings.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    AuditRecord {
        ts,
        listener: "transparent".into(),
        provider: Some(r.provider.into()),
        host: Some(
            if r.provider == "openai" {
                "api.openai.com"
            } else {
                "api.anthropic.com"
            }
            .into(),
        ),
        method: Some("POST".into()),
        path: Some("/v1/messages".into()),
        shape: Some("anthropic_messages".into()),
        model: Some(r.model.into()),
        status: r.status,
        input_tokens: Some(r.tokens.0),
        output_tokens: Some(r.tokens.1),
        request_bytes: 2048,
        response_bytes: 512,
        duration_ms: 812.5,
        ttfb_ms: Some(120.25),
        pid: Some(4242),
        exe: Some(r.exe.into()),
        cmdline: Some(format!("{} --print", r.exe)),
        uid: Some(1000),
        user: Some(r.user.into()),
        tool: Some(r.tool.into()),
        verdict: r.verdict.into(),
        fingerprints: findings
            .keys()
            .filter(|k| k.contains("key"))
            .map(|k| Fingerprint {
                kind: k.clone(),
                fp: format!("fp-{k}"),
            })
            .collect(),
        findings,
        llm: true,
        ..Default::default()
    }
}
