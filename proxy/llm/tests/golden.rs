//! Golden tests: each directory under tests/golden/<shape>__<case>/ holds a
//! `request.json` (what the client sends) and optionally `response.sse` or
//! `response.json` (what the provider answers, with placeholders). The test
//! writes/compares `provider.json` (what the provider receives, byte-exact,
//! or the local error), `report.json`, and `client.sse` / `client.json` (what
//! the client receives). `UPDATE_GOLDEN=1 cargo test -p promptwall-llm`
//! regenerates the expected files.
//!
//! The cases run through the real detector with the default policy (see `golden_cases`), so a
//! detector change that alters what a provider sees shows up here.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use promptwall_llm::{RequestContext, RequestOutcome, ResponseProcessor, Restorer};

#[path = "common/golden_files.rs"]
mod golden_files;
use golden_files::check;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "golden cases missing");
    dirs
}

fn report_json(outcome: &RequestOutcome) -> String {
    let r = outcome.report();
    let (kind, status) = match outcome {
        RequestOutcome::Forward { body, .. } => (
            if body.is_some() {
                "forward_changed"
            } else {
                "forward_unchanged"
            },
            200,
        ),
        RequestOutcome::Block { status, .. } => ("block", *status),
        RequestOutcome::Reject { status, .. } => ("reject", *status),
    };
    let v = serde_json::json!({
        "outcome": kind,
        "status": status,
        "verdict": r.verdict.as_str(),
        "model": r.model,
        "counts": r.counts,
        "findings": r.findings.iter().map(|f| serde_json::json!({"kind": f.kind, "location": f.location, "action": format!("{:?}", f.action)})).collect::<Vec<_>>(),
        "fingerprints": r.fingerprints.len(),
    });
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

/// Run a response through a processor in the given chunks.
fn run_response(restorer: Option<&Restorer>, shape: promptwall_llm::ApiShape, ct: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let mut p = match restorer {
        Some(r) => r.response_processor(ct, shape),
        None => ResponseProcessor::observe_only(shape, ct),
    };
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&p.push(Bytes::copy_from_slice(c)));
    }
    out.extend_from_slice(&p.finish());
    out
}

#[test]
fn golden_cases() {
    // Default policy, except GitHub tokens are redacted (not blocked) so one
    // case shows an irreversible placeholder.
    let mut policy = promptwall_llm::detect::DetectPolicy::default();
    policy
        .actions
        .insert("github_pat".into(), promptwall_llm::Action::Redact);
    let detector = promptwall_llm::detect::Detector::new(&policy).unwrap();
    let pipeline = promptwall_llm::Pipeline::new(detector, promptwall_llm::PipelineSettings::default());
    let ctx = RequestContext {
        fingerprint_salt: "golden-salt",
        ..Default::default()
    };
    for dir in cases() {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let shape = common::shape_from_name(&name);
        let request = std::fs::read(dir.join("request.json")).unwrap();
        let outcome = pipeline.inspect_request(shape, &request, &ctx);
        let provider: Vec<u8> = match &outcome {
            RequestOutcome::Forward { body, .. } => {
                body.as_ref().map(|b| b.to_vec()).unwrap_or_else(|| request.clone())
            }
            RequestOutcome::Block { body, .. } | RequestOutcome::Reject { body, .. } => {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                (serde_json::to_string_pretty(&v).unwrap() + "\n").into_bytes()
            }
        };
        check(&dir.join("provider.json"), &provider);
        check(&dir.join("report.json"), report_json(&outcome).as_bytes());

        let restorer = match &outcome {
            RequestOutcome::Forward { restorer, .. } => restorer.clone(),
            _ => None,
        };
        for (file, ct, out_name) in [
            ("response.sse", "text/event-stream", "client.sse"),
            ("response.json", "application/json", "client.json"),
        ] {
            let Ok(response) = std::fs::read(dir.join(file)) else {
                continue;
            };
            let whole = run_response(restorer.as_ref(), shape, ct, &[&response]);
            check(&dir.join(out_name), &whole);
            // Every chunk boundary gives the same bytes as one chunk.
            for split in 0..=response.len() {
                let got = run_response(restorer.as_ref(), shape, ct, &[&response[..split], &response[split..]]);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&whole),
                    "{name}: split at byte {split}"
                );
            }
            let bytewise: Vec<&[u8]> = response.chunks(1).collect();
            assert_eq!(
                run_response(restorer.as_ref(), shape, ct, &bytewise),
                whole,
                "{name}: one byte per chunk"
            );
        }
    }
}
