//! Detection quality on an independent corpus: examples other secret
//! scanners publish for their own rules (tests/corpus/independent/, see its
//! PROVENANCE.md), scored with the default policy. Nothing in it was
//! written for promptwall's detectors.
//!
//! A positive document counts as found when any credential finding lies in
//! it; a negative document (a scanner's false-positive example) counts as
//! flagged when any credential finding lies in it. Personal-data findings
//! are not scored here. Recall per expected kind, document-level precision
//! and the share of negatives flagged must not fall below the floors in
//! tests/detect_independent_baseline.json.
//!
//! `cargo test -p promptwall-llm --test detect_independent -- --nocapture`
//! prints the table; `PROMPTWALL_CORPUS_VERBOSE=1` also lists every miss
//! and every flagged negative.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use promptwall_llm::detect::{Category, DetectPolicy, Detector};
use serde::Deserialize;

#[derive(Deserialize)]
struct Item {
    id: String,
    text: String,
    kind_expected: Option<String>,
    source_rule: String,
}

#[derive(Deserialize)]
struct Baseline {
    min_recall: f64,
    min_precision: f64,
    max_negative_flag_rate: f64,
    min_documents: usize,
    #[serde(default)]
    min_recall_per_kind: BTreeMap<String, f64>,
}

/// `PROMPTWALL_INDEPENDENT_CORPUS`, else the crate's
/// tests/corpus/independent/secrets, else shared/corpus/independent/secrets
/// beside the repository (where CI finds shared data).
fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROMPTWALL_INDEPENDENT_CORPUS") {
        return PathBuf::from(dir);
    }
    let krate = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = krate.join("tests/corpus/independent/secrets");
    let shared = krate.join("../../../shared/corpus/independent/secrets");
    if !here.join("gitleaks.jsonl").exists() && shared.join("gitleaks.jsonl").exists() {
        return shared;
    }
    here
}

fn load(dir: &Path) -> Vec<Item> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut items = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("corpus file reads");
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let item: Item = serde_json::from_str(line).unwrap_or_else(|e| panic!("{}:{}: {e}", f.display(), n + 1));
            items.push(item);
        }
    }
    items
}

#[derive(Default)]
struct Tally {
    n: usize,
    found: usize,
    right_kind: usize,
}

/// The measured numbers, printable and checkable.
struct Report {
    per_kind: BTreeMap<String, Tally>,
    per_rule_missed: BTreeMap<String, (usize, usize)>,
    positives: usize,
    found: usize,
    negatives: usize,
    flagged: usize,
    not_scored: usize,
    misses: Vec<String>,
    false_alarms: Vec<String>,
}

impl Report {
    fn recall(&self) -> f64 {
        self.found as f64 / self.positives.max(1) as f64
    }
    fn flag_rate(&self) -> f64 {
        self.flagged as f64 / self.negatives.max(1) as f64
    }
    fn precision(&self) -> f64 {
        self.found as f64 / (self.found + self.flagged).max(1) as f64
    }
}

fn score(items: &[Item]) -> Report {
    let detector = Detector::new(&DetectPolicy::default()).expect("default policy");
    let mut r = Report {
        per_kind: BTreeMap::new(),
        per_rule_missed: BTreeMap::new(),
        positives: 0,
        found: 0,
        negatives: 0,
        flagged: 0,
        not_scored: 0,
        misses: Vec::new(),
        false_alarms: Vec::new(),
    };
    for item in items {
        let secrets: Vec<_> = detector
            .scan(&item.text)
            .into_iter()
            .filter(|f| f.category == Category::Secret)
            .collect();
        let shown = |item: &Item| {
            let kinds: Vec<&str> = secrets.iter().map(|f| &*f.kind).collect();
            let text: String = item.text.chars().take(160).collect();
            format!("{} {:?} [{}]", item.id, text, kinds.join(","))
        };
        match item.kind_expected.as_deref() {
            None => {
                r.negatives += 1;
                if !secrets.is_empty() {
                    r.flagged += 1;
                    r.false_alarms.push(shown(item));
                }
            }
            Some("not_scored") => r.not_scored += 1,
            Some(kind) => {
                r.positives += 1;
                let t = r.per_kind.entry(kind.to_string()).or_default();
                t.n += 1;
                let rule = r.per_rule_missed.entry(item.source_rule.clone()).or_default();
                rule.0 += 1;
                if secrets.is_empty() {
                    rule.1 += 1;
                    r.misses.push(shown(item));
                } else {
                    t.found += 1;
                    r.found += 1;
                    if secrets.iter().any(|f| &*f.kind == kind) {
                        t.right_kind += 1;
                    }
                }
            }
        }
    }
    r
}

fn print(r: &Report) {
    println!("\nindependent secrets corpus ({})", corpus_dir().display());
    println!(
        "{:<40} {:>6} {:>8} {:>10}",
        "expected kind", "items", "recall", "same kind"
    );
    for (kind, t) in &r.per_kind {
        let same = if kind == "secret" {
            "-".to_string()
        } else {
            format!("{:.3}", t.right_kind as f64 / t.n as f64)
        };
        println!(
            "{:<40} {:>6} {:>8.3} {:>10}",
            kind,
            t.n,
            t.found as f64 / t.n as f64,
            same
        );
    }
    println!(
        "\npositives {} found {} recall {:.3} | negatives {} flagged {} rate {:.3} | precision {:.3} | not scored {}",
        r.positives,
        r.found,
        r.recall(),
        r.negatives,
        r.flagged,
        r.flag_rate(),
        r.precision(),
        r.not_scored
    );
    let mut worst: Vec<_> = r
        .per_rule_missed
        .iter()
        .filter(|(_, (_, missed))| *missed > 0)
        .collect();
    worst.sort_by(|a, b| (b.1).1.cmp(&(a.1).1).then(a.0.cmp(b.0)));
    println!("\nsource rules with misses (missed/items):");
    for (rule, (n, missed)) in worst.iter().take(200) {
        println!("  {rule}: {missed}/{n}");
    }
    if std::env::var_os("PROMPTWALL_CORPUS_VERBOSE").is_some() {
        println!("\nmisses:");
        for m in &r.misses {
            println!("  {m}");
        }
    }
    println!("\nflagged negatives:");
    for f in &r.false_alarms {
        println!("  {f}");
    }
}

#[test]
fn independent_corpus_recall_and_false_alarms_do_not_regress() {
    let dir = corpus_dir();
    let items = load(&dir);
    let b: Baseline = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/detect_independent_baseline.json"
        ))
        .expect("baseline file"),
    )
    .expect("baseline parses");
    if items.is_empty() {
        // The corpus is third-party data: where it is not laid out (see
        // tests/corpus/independent/PROVENANCE.md for how to build it) there
        // is nothing to score.
        println!("independent corpus absent at {}: not scored", dir.display());
        return;
    }
    assert!(
        items.len() >= b.min_documents,
        "the independent corpus at {} has {} documents, the baseline expects at least {}; \
         rebuild it as tests/corpus/independent/PROVENANCE.md says",
        dir.display(),
        items.len(),
        b.min_documents
    );
    let r = score(&items);
    print(&r);
    let mut failures = Vec::new();
    if r.recall() < b.min_recall {
        failures.push(format!("recall {:.3} < floor {:.3}", r.recall(), b.min_recall));
    }
    if r.precision() < b.min_precision {
        failures.push(format!("precision {:.3} < floor {:.3}", r.precision(), b.min_precision));
    }
    if r.flag_rate() > b.max_negative_flag_rate {
        failures.push(format!(
            "negatives flagged {:.3} > ceiling {:.3}",
            r.flag_rate(),
            b.max_negative_flag_rate
        ));
    }
    for (kind, floor) in &b.min_recall_per_kind {
        let t = r.per_kind.get(kind);
        let recall = t.map_or(0.0, |t| t.found as f64 / t.n as f64);
        if recall < *floor {
            failures.push(format!("{kind}: recall {recall:.3} < floor {floor:.3}"));
        }
    }
    assert!(
        failures.is_empty(),
        "regressions on the independent corpus:\n{}",
        failures.join("\n")
    );
}
