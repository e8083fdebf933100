//! A small regex scanner standing in for the real detector, so these tests
//! exercise the pipeline's own behaviour with known, simple matches.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use promptwall_llm::{Action, ApiShape, Category, Hit, Pipeline, PipelineSettings, Scanner};
use regex::Regex;

pub struct TestScanner {
    rules: Vec<(Arc<str>, Category, Action, Regex)>,
    pub calls: Arc<AtomicUsize>,
    pub bytes: Arc<AtomicUsize>,
}

impl TestScanner {
    pub fn new() -> Self {
        let rule = |k: &str, c, a, re: &str| (Arc::from(k), c, a, Regex::new(re).unwrap());
        TestScanner {
            rules: vec![
                rule(
                    "email",
                    Category::Pii,
                    Action::Reversible,
                    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
                ),
                rule(
                    "phone",
                    Category::Pii,
                    Action::Reversible,
                    r"\+\d{1,3} \d{3} \d{3} \d{4}",
                ),
                rule(
                    "aws_access_key_id",
                    Category::Secret,
                    Action::Block,
                    r"\bAKIA[0-9A-Z]{16}\b",
                ),
                rule(
                    "github_token",
                    Category::Secret,
                    Action::Redact,
                    r"\bghp_[A-Za-z0-9]{36}\b",
                ),
            ],
            calls: Arc::default(),
            bytes: Arc::default(),
        }
    }
}

impl Scanner for TestScanner {
    fn scan(&self, text: &str) -> Vec<Hit> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(text.len(), Ordering::Relaxed);
        let mut hits = Vec::new();
        for (kind, category, action, re) in &self.rules {
            for m in re.find_iter(text) {
                hits.push(Hit {
                    kind: kind.clone(),
                    category: *category,
                    start: m.start(),
                    end: m.end(),
                    action: *action,
                });
            }
        }
        hits.sort_by_key(|h| h.start);
        hits
    }
}

pub fn pipeline() -> Pipeline {
    Pipeline::new(TestScanner::new(), PipelineSettings::default())
}

/// A pipeline plus counters of scanner calls and scanned bytes.
pub fn counting_pipeline() -> (Pipeline, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let s = TestScanner::new();
    let (calls, bytes) = (s.calls.clone(), s.bytes.clone());
    (Pipeline::new(s, PipelineSettings::default()), calls, bytes)
}

pub fn shape_from_name(name: &str) -> ApiShape {
    match name.split("__").next().unwrap() {
        "anthropic" => ApiShape::ANTHROPIC_MESSAGES,
        "anthropic_count" => ApiShape::ANTHROPIC_COUNT_TOKENS,
        "chat" => ApiShape::OPENAI_CHAT,
        "responses" => ApiShape::OPENAI_RESPONSES,
        "embeddings" => ApiShape::OPENAI_EMBEDDINGS,
        "gemini" => ApiShape::GEMINI_GENERATE,
        "gemini_count" => ApiShape::GEMINI_COUNT_TOKENS,
        "gemini_embed" => ApiShape::GEMINI_EMBED,
        other => panic!("unknown shape prefix {other}"),
    }
}
