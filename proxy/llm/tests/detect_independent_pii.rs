//! Personal-data detection scored on data nobody on promptwall wrote:
//! Microsoft presidio-research's synthetic evaluation set and the cases of
//! presidio-analyzer's recognizer tests (tests/corpus/independent/pii/,
//! PROVENANCE.md there; extract.py rebuilds corpus.jsonl mechanically).
//!
//! Per kind: recall over labelled spans (a finding of that kind overlaps
//! the span) and strict recall (a finding covers the whole span); the share
//! of negative documents (no labels at all, or a recognizer test's
//! expected-no-match case) with any finding. Floors in
//! tests/detect_independent_pii_baseline.json; raise them when detectors
//! improve, never lower them to let a change pass. Run with `--nocapture`
//! for the table and examples of misses and false alarms.

use std::collections::BTreeMap;

use promptwall_llm::detect::{Category, DetectPolicy, Detector};

#[derive(serde::Deserialize)]
struct Span {
    kind: String,
    start: usize,
    end: usize,
}

#[derive(serde::Deserialize)]
struct Doc {
    text: String,
    spans: Vec<Span>,
    negative: bool,
    source: String,
}

#[derive(serde::Deserialize)]
struct Baseline {
    min_documents: usize,
    min_recall: f64,
    min_recall_per_kind: BTreeMap<String, f64>,
    max_negative_flag_rate: f64,
}

/// presidio positions are Python string (code point) offsets.
fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i)
}

fn kind_matches(gold: &str, found: &str) -> bool {
    gold == found || (gold == "ip" && (found == "ipv4" || found == "ipv6"))
}

#[derive(Default)]
struct Tally {
    n: usize,
    found: usize,
    strict: usize,
}

/// `PROMPTWALL_INDEPENDENT_PII_CORPUS` (a directory), else the crate's
/// tests/corpus/independent/pii, else shared/corpus/independent/pii beside
/// the repository. The extracted corpus is third-party data fetched for
/// evaluation: it is not committed (extract.py rebuilds it; PROVENANCE.md).
fn corpus_file() -> Option<std::path::PathBuf> {
    let krate = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("PROMPTWALL_INDEPENDENT_PII_CORPUS").map(std::path::PathBuf::from),
        Some(krate.join("tests/corpus/independent/pii")),
        Some(krate.join("../../../shared/corpus/independent/pii")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|d| d.join("corpus.jsonl"))
        .find(|f| f.exists())
}

#[test]
fn independent_pii_corpus_recall_and_false_alarms_do_not_regress() {
    let Some(file) = corpus_file() else {
        eprintln!(
            "NOTICE: the independent PII corpus is not here (not committed: third-party data); \
             rebuild it with tests/corpus/independent/pii/extract.py or set PROMPTWALL_INDEPENDENT_PII_CORPUS"
        );
        return;
    };
    let docs: Vec<Doc> = std::fs::read_to_string(&file)
        .expect("corpus.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("corpus line parses"))
        .collect();
    let b: Baseline = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/detect_independent_pii_baseline.json"
        ))
        .expect("baseline"),
    )
    .expect("baseline parses");
    assert!(docs.len() >= b.min_documents, "corpus has {} documents", docs.len());

    // PII_CORPUS_OFF=name,address compares with kinds switched off (locally).
    let mut policy = DetectPolicy::default();
    for k in std::env::var("PII_CORPUS_OFF")
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
    {
        policy
            .actions
            .insert(k.to_string(), promptwall_llm::detect::Action::Off);
    }
    let detector = Detector::new(&policy).expect("default policy");
    let mut per_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut misses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut negatives, mut flagged) = (0, 0);
    let mut alarms = Vec::new();
    for d in &docs {
        let found: Vec<_> = detector
            .scan(&d.text)
            .into_iter()
            .filter(|f| f.category == Category::Pii)
            .collect();
        if d.negative {
            negatives += 1;
            if !found.is_empty() {
                flagged += 1;
                let what: Vec<String> = found
                    .iter()
                    .map(|f| format!("{}={:?}", f.kind, f.value(&d.text)))
                    .collect();
                alarms.push(format!("{} {:?} -> {what:?}", d.source, d.text));
            }
        }
        for s in &d.spans {
            let (start, end) = (byte_offset(&d.text, s.start), byte_offset(&d.text, s.end));
            let t = per_kind.entry(s.kind.clone()).or_default();
            t.n += 1;
            let of_kind = || found.iter().filter(|f| kind_matches(&s.kind, &f.kind));
            if of_kind().any(|f| f.start < end && start < f.end) {
                t.found += 1;
            } else {
                misses.entry(s.kind.clone()).or_default().push(format!(
                    "{} {:?} in {:?}",
                    d.source,
                    &d.text[start..end],
                    d.text
                ));
            }
            if of_kind().any(|f| f.start <= start && end <= f.end) {
                t.strict += 1;
            }
        }
    }

    let (n, hit): (usize, usize) = per_kind.values().fold((0, 0), |(n, h), t| (n + t.n, h + t.found));
    let recall = hit as f64 / n as f64;
    let flag_rate = flagged as f64 / negatives.max(1) as f64;
    println!(
        "independent PII corpus: {} documents, {n} labelled spans, {negatives} negatives",
        docs.len()
    );
    println!("{:<12} {:>5} {:>8} {:>8}", "kind", "spans", "recall", "strict");
    for (k, t) in &per_kind {
        println!(
            "{k:<12} {:>5} {:>8.3} {:>8.3}",
            t.n,
            t.found as f64 / t.n as f64,
            t.strict as f64 / t.n as f64
        );
    }
    println!("all          {n:>5} {recall:>8.3}");
    println!("negatives flagged: {flagged}/{negatives} = {flag_rate:.3}");
    // PROMPTWALL_CORPUS_VERBOSE=1 lists every miss.
    let shown = if std::env::var_os("PROMPTWALL_CORPUS_VERBOSE").is_some() {
        usize::MAX
    } else {
        8
    };
    for (k, m) in &misses {
        println!("misses of {k} ({}), first {}:", m.len(), shown.min(m.len()));
        for x in m.iter().take(shown) {
            println!("  {x}");
        }
    }
    println!("flagged negatives, first 15:");
    for a in alarms.iter().take(15) {
        println!("  {a}");
    }

    let mut failures = Vec::new();
    if recall < b.min_recall {
        failures.push(format!("recall {recall:.3} < floor {:.3}", b.min_recall));
    }
    for (k, floor) in &b.min_recall_per_kind {
        let r = per_kind.get(k).map_or(0.0, |t| t.found as f64 / t.n as f64);
        if r < *floor {
            failures.push(format!("{k}: recall {r:.3} < floor {floor:.3}"));
        }
    }
    if flag_rate > b.max_negative_flag_rate {
        failures.push(format!(
            "negatives flagged {flag_rate:.3} > ceiling {:.3}",
            b.max_negative_flag_rate
        ));
    }
    assert!(
        failures.is_empty(),
        "independent PII corpus regressed:\n{}",
        failures.join("\n")
    );
}
