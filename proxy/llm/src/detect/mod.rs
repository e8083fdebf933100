//! The detection engine: credentials and personal data in text.
//!
//! [`Detector::new`] compiles a [`DetectPolicy`] (the `[pipeline]` config)
//! into a scanner; [`Detector::scan`] returns non-overlapping [`Finding`]s
//! sorted by position. Pure: no I/O, no logging, never stores values.
//!
//! Speed: an Aho-Corasick prefilter finds the literal keywords of the
//! credential rules (`ghp_`, `AKIA`, `password`, …) and each rule's regex
//! runs only in a small window around its keywords' hits. PII detectors
//! use prefilters (`@`, `+`, `:`) or one linear regex pass each.
//!
//! Overlaps: the more specific detector wins (prefixed tokens and key
//! blocks > contextual secrets and custom detectors > URL credentials >
//! generic `password=` assignments > personal data), then the longer match.
//!
//! IP addresses (policy): only addresses a third party could route to are
//! personal data by default: public IPv4 (not private, loopback,
//! link-local, CGNAT, documentation, benchmarking, multicast, reserved) and
//! IPv6 in global unicast 2000::/3 (not 2001:db8::/32 documentation or
//! 2001::/23 protocol space); well-known public resolvers (8.8.8.8,
//! 1.1.1.1, …), OIDs (1.3.6.1…) and spec clause numbers (8.1.3.3) are not.
//! `private_ips_are_pii = true` counts every valid address except the
//! unspecified and broadcast ones.
//!
//! Allowlists: documented example keys (AWS `…EXAMPLE`), placeholders
//! (`changeme`, `<your-token>`, `${VAR}`, `xxxx`, `****`, env lookups),
//! low-entropy bodies and published test card numbers are never reported;
//! `allowlist`/`allowlist_patterns` add more. Stripe test-mode keys
//! (`sk_test_`) are reported as `stripe_test_key` and follow the `secrets`
//! action like any credential (they read the account's test data); set
//! `actions.stripe_test_key = "off"` to allow them.

mod address;
mod fingerprint;
mod names;
mod national_id;
mod passport;
mod pii;
pub mod policy;
mod rules;
mod validate;

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use aho_corasick::automaton::{Automaton, OverlappingState};
use aho_corasick::{dfa, Input, MatchKind};
use regex::{Regex, RegexBuilder};

pub use fingerprint::fingerprint;
pub use policy::{Action, Category, CustomDetector, DetectPolicy, PipelineConfig};
pub use validate::{github_checksum, luhn_ok, shannon_entropy};

use pii::{PiiKind, PiiScanner};
use rules::{Candidate, SecretRule};

/// One detected value: `text[start..end]` (byte offsets, char boundaries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Detector kind, e.g. `aws_access_key_id`, `email`, or a custom kind.
    pub kind: Arc<str>,
    pub category: Category,
    pub start: usize,
    pub end: usize,
    /// The policy's action for this kind (never `Off`: disabled detectors
    /// do not run).
    pub action: Action,
}

impl Finding {
    pub fn value<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start..self.end]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("custom detector {kind:?} has an invalid pattern: {source}; fix its `pattern` in [[pipeline.custom]] (Rust regex syntax)")]
    CustomPattern { kind: String, source: Box<regex::Error> },
    #[error("custom detector kind {0:?} is not usable; use a non-empty name of letters, digits, '_' or '-' that is not a built-in kind")]
    CustomKind(String),
    #[error(
        "allowlist pattern {pattern:?} is invalid: {source}; fix [pipeline] allowlist_patterns (Rust regex syntax)"
    )]
    AllowlistPattern { pattern: String, source: Box<regex::Error> },
    #[error("[pipeline.actions] names unknown detector kind {0:?}; use a kind listed by `promptwall scan --list-kinds` or a custom detector's kind")]
    UnknownKind(String),
    #[error("built-in detector {kind} does not compile: {source}; this is a promptwall bug, please report it")]
    Builtin {
        kind: &'static str,
        source: Box<regex::Error>,
    },
}

/// A detector kind in the built-in catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub kind: &'static str,
    pub category: Category,
    pub description: &'static str,
}

/// Every built-in kind, secrets first, each once.
pub static KINDS: LazyLock<Vec<KindInfo>> = LazyLock::new(|| {
    let mut seen = HashSet::new();
    let mut kinds = Vec::new();
    for r in rules::builtin_rules() {
        if seen.insert(r.kind) {
            kinds.push(KindInfo {
                kind: r.kind,
                category: Category::Secret,
                description: r.description,
            });
        }
    }
    for p in PiiKind::ALL {
        kinds.push(KindInfo {
            kind: p.kind(),
            category: Category::Pii,
            description: p.description(),
        });
    }
    kinds
});

/// Documented example credentials that must never be reported.
const BUILTIN_ALLOWLIST: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AKIAI44QH8DHBEXAMPLE",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    // Example Firebase/GCP keys checked into firebase-android-sdk's tests
    // and samples (as gitleaks lists them: the independent corpus's own
    // source, so they are reported apart in its README figures).
    "AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs",
    "AIzaSyCkEhVjf3pduRDt6d1yKOMitrUEke8agEM",
    "AIzaSyDMAScliyLx7F0NPDEJi1QmyCgHIAODrlU",
    "AIzaSyD3asb-2pEZVqMkmL6M9N6nHZRR_znhrh0",
    "AIzayDNSXIbFmlXbIE6mCzDLQAqITYefhixbX4A",
    "AIzaSyAdOS2zB6NCsk1pCdZ4-P6GBdi_UUPwX7c",
    "AIzaSyASWm6HmTMdYWpgMnjRBjxcQ9CKctWmLd4",
    "AIzaSyANUvH9H9BsUccjsu2pCmEkOPjjaXeDQgY",
    "AIzaSyA5_iVawFQ8ABuTZNUdcwERLJv_a_p4wtM",
    "AIzaSyA4UrcGxgwQFTfaI3no3t7Lt1sjmdnP5sQ",
    "AIzaSyDSb51JiIcB6OJpwwMicseKRhhrOq1cS7g",
    "AIzaSyBF2RrAIm4a0mO64EShQfqfd2AFnzAvvuU",
    "AIzaSyBcE-OOIbhjyR83gm4r2MFCu4MJmprNXsw",
    "AIzaSyB8qGxt4ec15vitgn44duC5ucxaOi4FmqE",
    "AIzaSyA8vmApnrHNFE0bApF4hoZ11srVL_n0nvY",
    // Claude Code's system prompt (Co-Authored-By trailer), in every turn:
    // a vendor address, not personal data, and redacting it breaks caching.
    "noreply@anthropic.com",
];

struct CompiledRule {
    rule: SecretRule,
    regex: Regex,
    kind: Arc<str>,
    action: Action,
    has_group: bool,
    /// The match starts at the keyword (`back == 0`): the regex is compiled
    /// anchored and tried once per keyword hit.
    anchored: bool,
}

struct CompiledCustom {
    kind: Arc<str>,
    regex: Regex,
    category: Category,
    action: Action,
}

/// Keyword automaton plus, per keyword, the rules it triggers. One
/// case-insensitive automaton for all rules: one pass over the text is the
/// dominant cost, and a case-variant hit of a case-sensitive keyword only
/// costs one short regex run in its window.
struct Prefilter {
    /// The concrete DFA type (not `AhoCorasick`, which dispatches through a
    /// trait object per byte): the search loop inlines, ~3x faster.
    automaton: dfa::DFA,
    rules_of: Vec<Vec<u16>>,
}

impl Prefilter {
    fn build(rules: &[CompiledRule]) -> Option<Prefilter> {
        let mut words: Vec<&'static str> = Vec::new();
        let mut rules_of: Vec<Vec<u16>> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for &w in r.rule.keywords {
                let at = match words.iter().position(|x| x.eq_ignore_ascii_case(w)) {
                    Some(at) => at,
                    None => {
                        words.push(w);
                        rules_of.push(Vec::new());
                        words.len() - 1
                    }
                };
                rules_of[at].push(i as u16);
            }
        }
        if words.is_empty() {
            return None;
        }
        let automaton = dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&words)
            .expect("keyword automaton builds");
        Some(Prefilter { automaton, rules_of })
    }

    /// Every keyword occurrence (overlapping): `(keyword index, start)`.
    fn each_hit(&self, text: &str, mut f: impl FnMut(usize, usize)) {
        let input = Input::new(text);
        let mut state = OverlappingState::start();
        loop {
            // Unanchored overlapping search on a DFA built without a limit
            // cannot fail.
            if self.automaton.try_find_overlapping(&input, &mut state).is_err() {
                return;
            }
            match state.get_match() {
                Some(m) => f(m.pattern().as_usize(), m.start()),
                None => return,
            }
        }
    }
}

/// The compiled policy. Cheap to share (`Send + Sync`); build once.
pub struct Detector {
    rules: Vec<CompiledRule>,
    prefilter: Option<Prefilter>,
    pii: PiiScanner,
    pii_actions: [Action; PiiKind::ALL.len()],
    pii_kinds: [Arc<str>; PiiKind::ALL.len()],
    custom: Vec<CompiledCustom>,
    allow_literals: HashSet<String>,
    allow_patterns: Vec<Regex>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.rules.len())
            .field("custom", &self.custom.len())
            .finish_non_exhaustive()
    }
}

/// A candidate before overlap resolution.
struct Raw {
    start: usize,
    end: usize,
    tier: u8,
    source: Source,
}

#[derive(Clone, Copy)]
enum Source {
    Rule(usize),
    Pii(usize),
    Custom(usize),
}

const PII_TIER: u8 = 1;
const CUSTOM_TIER: u8 = 4;

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

impl Detector {
    pub fn new(policy: &DetectPolicy) -> Result<Detector, DetectError> {
        let builtin: HashSet<&str> = KINDS.iter().map(|k| k.kind).collect();
        for c in &policy.custom {
            let name_ok = !c.kind.is_empty()
                && c.kind
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok || builtin.contains(c.kind.as_str()) {
                return Err(DetectError::CustomKind(c.kind.clone()));
            }
        }
        for kind in policy.actions.keys() {
            if !builtin.contains(kind.as_str()) && !policy.custom.iter().any(|c| &c.kind == kind) {
                return Err(DetectError::UnknownKind(kind.clone()));
            }
        }

        let mut rules = Vec::new();
        for rule in rules::builtin_rules() {
            let mut action = policy.action_for(rule.kind, Category::Secret);
            // Shape-only evidence is never blocked unless the policy names
            // the kind: see `rules::at_most_reversible`.
            if action == Action::Block
                && !policy.actions.contains_key(rule.kind)
                && rules::at_most_reversible(rule.kind)
            {
                action = Action::Reversible;
            }
            if action == Action::Off {
                continue;
            }
            let anchored = rule.back == 0;
            let pattern = if anchored {
                format!("^(?:{})", rule.pattern)
            } else {
                rule.pattern.clone()
            };
            let regex = RegexBuilder::new(&pattern)
                .size_limit(64 << 20)
                .build()
                .map_err(|e| DetectError::Builtin {
                    kind: rule.kind,
                    source: Box::new(e),
                })?;
            let has_group = regex.capture_names().any(|n| n == Some("s"));
            rules.push(CompiledRule {
                kind: Arc::from(rule.kind),
                rule,
                regex,
                action,
                has_group,
                anchored,
            });
        }
        let prefilter = Prefilter::build(&rules);

        let pii_actions = PiiKind::ALL.map(|k| policy.action_for(k.kind(), Category::Pii));
        let pii_kinds = PiiKind::ALL.map(|k| Arc::from(k.kind()));

        let mut custom = Vec::new();
        for c in &policy.custom {
            let action = policy.actions.get(&c.kind).copied().unwrap_or(c.action);
            if action == Action::Off {
                continue;
            }
            let regex = Regex::new(&c.pattern).map_err(|e| DetectError::CustomPattern {
                kind: c.kind.clone(),
                source: Box::new(e),
            })?;
            let category = if c.secret { Category::Secret } else { Category::Pii };
            custom.push(CompiledCustom {
                kind: Arc::from(c.kind.as_str()),
                regex,
                category,
                action,
            });
        }

        let mut allow_literals: HashSet<String> = BUILTIN_ALLOWLIST.iter().map(|s| s.to_string()).collect();
        allow_literals.extend(policy.allowlist.iter().cloned());
        let allow_patterns = policy
            .allowlist_patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| DetectError::AllowlistPattern {
                    pattern: p.clone(),
                    source: Box::new(e),
                })
            })
            .collect::<Result<_, _>>()?;

        Ok(Detector {
            rules,
            prefilter,
            pii: PiiScanner::new(policy.private_ips_are_pii),
            pii_actions,
            pii_kinds,
            custom,
            allow_literals,
            allow_patterns,
        })
    }

    /// All findings in `text`: non-overlapping, sorted by `start`.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut raw = Vec::new();
        self.scan_secrets(text, &mut raw);
        let pii_actions = &self.pii_actions;
        self.pii.scan(
            text,
            |k| pii_actions[k as usize] != Action::Off,
            &mut |k: PiiKind, start, end| {
                raw.push(Raw {
                    start,
                    end,
                    tier: PII_TIER,
                    source: Source::Pii(k as usize),
                })
            },
        );
        for (i, c) in self.custom.iter().enumerate() {
            for m in c.regex.find_iter(text) {
                if m.end() > m.start() {
                    raw.push(Raw {
                        start: m.start(),
                        end: m.end(),
                        tier: CUSTOM_TIER,
                        source: Source::Custom(i),
                    });
                }
            }
        }
        raw.retain(|r| !self.allowlisted(&text[r.start..r.end]));
        self.resolve(raw)
    }

    fn allowlisted(&self, value: &str) -> bool {
        self.allow_literals.contains(value) || self.allow_patterns.iter().any(|p| p.is_match(value))
    }

    fn scan_secrets(&self, text: &str, raw: &mut Vec<Raw>) {
        // (rule, window start, window end) around every keyword hit.
        let mut windows: Vec<(u16, usize, usize)> = Vec::new();
        if let Some(pf) = &self.prefilter {
            pf.each_hit(text, |word, at| {
                for &r in &pf.rules_of[word] {
                    let rule = &self.rules[r as usize].rule;
                    let start = at.saturating_sub(rule.back);
                    let end = (at + rule.span + 16).min(text.len());
                    windows.push((r, start, end));
                }
            });
        }
        windows.sort_unstable();
        let mut i = 0;
        while i < windows.len() {
            let (r, start, mut end) = windows[i];
            i += 1;
            if self.rules[r as usize].anchored {
                // One anchored attempt per keyword hit (duplicates skipped).
                while i < windows.len() && windows[i].0 == r && windows[i].1 == start {
                    i += 1;
                }
                self.run_anchored(r as usize, text, start, end, raw);
                continue;
            }
            while i < windows.len() && windows[i].0 == r && windows[i].1 <= end {
                end = end.max(windows[i].2);
                i += 1;
            }
            self.run_rule(r as usize, text, start, end, raw);
        }
    }

    /// Whether `m` (the secret) inside `whole` passes the rule's checks.
    fn accept(&self, rule: &CompiledRule, text: &str, m: std::ops::Range<usize>) -> bool {
        let b = text.as_bytes();
        m.end > m.start
            && (!rule.rule.bounded || (pii::left_ok(b, m.start) && pii::right_ok(b, m.end)))
            && (rule.rule.check)(&Candidate {
                value: &text[m.clone()],
                quoted: m.start > 0 && matches!(b[m.start - 1], b'"' | b'\'' | b'`'),
                before: &text[..m.start],
                after: &text[m.end..],
            })
    }

    /// A rule whose match starts at its keyword: its regex (compiled with a
    /// leading `^`) runs once on the text from the keyword, so a keyword
    /// without a token after it costs a few steps instead of a scan of the
    /// whole window. The rules have no look-around, so slicing the text
    /// does not change what matches.
    fn run_anchored(&self, r: usize, text: &str, start: usize, end: usize, raw: &mut Vec<Raw>) {
        let rule = &self.rules[r];
        let end = ceil_boundary(text, end);
        let Some(hay) = text.get(start..end) else { return };
        let m = if rule.has_group {
            let Some(caps) = rule.regex.captures(hay) else { return };
            let whole = caps.get(0).expect("group 0");
            caps.name("s").map_or(whole.range(), |m| m.range())
        } else {
            let Some(m) = rule.regex.find(hay) else { return };
            m.range()
        };
        let m = start + m.start..start + m.end;
        if self.accept(rule, text, m.clone()) {
            raw.push(Raw {
                start: m.start,
                end: m.end,
                tier: rule.rule.tier,
                source: Source::Rule(r),
            });
        }
    }

    fn run_rule(&self, r: usize, text: &str, start: usize, end: usize, raw: &mut Vec<Raw>) {
        let rule = &self.rules[r];
        let end = ceil_boundary(text, end);
        let hay = &text[..end];
        let mut pos = floor_boundary(text, start);
        while pos < end {
            let (whole, m) = if rule.has_group {
                let Some(caps) = rule.regex.captures_at(hay, pos) else {
                    break;
                };
                let whole = caps.get(0).expect("group 0");
                match caps.name("s") {
                    Some(m) => (whole, m),
                    None => (whole, whole),
                }
            } else {
                let Some(m) = rule.regex.find_at(hay, pos) else { break };
                (m, m)
            };
            // A rejected match may hide a real one that starts inside it
            // (`KEY="token": "…"`), so retry one character further on.
            let retry = ceil_boundary(text, whole.start() + 1);
            if self.accept(rule, text, m.range()) {
                raw.push(Raw {
                    start: m.start(),
                    end: m.end(),
                    tier: rule.rule.tier,
                    source: Source::Rule(r),
                });
                pos = whole.end().max(retry);
            } else {
                pos = retry;
            }
        }
    }

    /// Most specific first, then longest; keep what does not overlap.
    fn resolve(&self, mut raw: Vec<Raw>) -> Vec<Finding> {
        raw.sort_by(|a, b| {
            b.tier
                .cmp(&a.tier)
                .then((b.end - b.start).cmp(&(a.end - a.start)))
                .then(a.start.cmp(&b.start))
        });
        // Ordered by (start, end): a sorted Vec with inserts in the middle
        // was quadratic, and a body of a million e-mail addresses of varying
        // length held a worker for minutes.
        let mut taken: std::collections::BTreeMap<(usize, usize), Source> = Default::default();
        for r in raw {
            let overlaps_prev = taken
                .range(..(r.start, 0))
                .next_back()
                .is_some_and(|(&(_, end), _)| end > r.start);
            let overlaps_next = taken
                .range((r.start, 0)..)
                .next()
                .is_some_and(|(&(start, _), _)| start < r.end);
            if !overlaps_prev && !overlaps_next {
                taken.insert((r.start, r.end), r.source);
            }
        }
        taken
            .into_iter()
            .map(|((start, end), source)| {
                let (kind, category, action) = match source {
                    Source::Rule(i) => (self.rules[i].kind.clone(), Category::Secret, self.rules[i].action),
                    Source::Pii(i) => (self.pii_kinds[i].clone(), Category::Pii, self.pii_actions[i]),
                    Source::Custom(i) => (
                        self.custom[i].kind.clone(),
                        self.custom[i].category,
                        self.custom[i].action,
                    ),
                };
                Finding {
                    kind,
                    category,
                    start,
                    end,
                    action,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

/// The pipeline scans through its `Scanner` trait.
impl crate::scan::Scanner for Detector {
    fn scan(&self, text: &str) -> Vec<crate::scan::Hit> {
        Detector::scan(self, text)
            .into_iter()
            .map(|f| crate::scan::Hit {
                kind: f.kind,
                category: f.category,
                start: f.start,
                end: f.end,
                action: f.action,
            })
            .collect()
    }
}
