//! The `[pipeline]` policy: what each detector does on a finding. Lives here
//! (not in the proxy config) so the pure detector and the CLI read one type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the pipeline does on a finding.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The request never leaves; the client gets a 422 naming the kind.
    Block,
    /// Replaced by an irreversible placeholder.
    Redact,
    /// Replaced by a placeholder that is restored in what comes back.
    Reversible,
    /// Detector disabled.
    Off,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Redact => "redact",
            Action::Reversible => "reversible",
            Action::Off => "off",
        }
    }
}

/// Credentials and personal data have separate default actions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Secret,
    Pii,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Secret => "secret",
            Category::Pii => "pii",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// The proxy's on/off switch; the detector itself ignores it so that
    /// `promptwall scan` works with the pipeline disabled.
    pub enabled: bool,
    /// Default action for credential detectors.
    pub secrets: Action,
    /// Default action for personal-data detectors.
    pub pii: Action,
    /// Per-detector override, by kind (e.g. "aws_access_key_id" = "redact").
    pub actions: BTreeMap<String, Action>,
    pub custom: Vec<CustomDetector>,
    /// Literal values never reported (documented examples, fixtures).
    pub allowlist: Vec<String>,
    /// Regexes; a finding whose value they match (anywhere; anchor with ^…$
    /// for whole values) is never reported.
    pub allowlist_patterns: Vec<String>,
    /// Private/loopback IP addresses count as PII (default: only public ones).
    pub private_ips_are_pii: bool,
    /// Secret HMAC key for fingerprints of blocked secrets, shared fleet-wide.
    /// Whoever reads it can test guesses against fingerprints, and the config
    /// is readable by the promptwall group: prefer `[audit] fingerprint_key`.
    pub fingerprint_salt: Option<String>,
}

/// The detector's view of the policy; the same type as `[pipeline]`.
pub type DetectPolicy = PipelineConfig;

/// A detector from config: a regex, the kind it reports and its action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    pub kind: String,
    pub pattern: String,
    pub action: Action,
    /// Counts as a credential (category `secret`) instead of personal data.
    #[serde(default)]
    pub secret: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secrets: Action::Block,
            pii: Action::Reversible,
            actions: BTreeMap::new(),
            custom: Vec::new(),
            allowlist: Vec::new(),
            allowlist_patterns: Vec::new(),
            private_ips_are_pii: false,
            fingerprint_salt: None,
        }
    }
}

impl PipelineConfig {
    /// The action for a built-in kind: the per-kind override, else the
    /// category default.
    pub fn action_for(&self, kind: &str, category: Category) -> Action {
        if let Some(a) = self.actions.get(kind) {
            return *a;
        }
        match category {
            Category::Secret => self.secrets,
            Category::Pii => self.pii,
        }
    }
}
