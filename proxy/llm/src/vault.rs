//! Placeholder allocation and the value map behind reversible redaction.
//!
//! Numbers are handed out per kind in order of first appearance in the
//! request, so the same transcript prefix always yields the same placeholders
//! (stable across turns and restarts, no stored state), and every request gets
//! its own map (no collisions between conversations). A WebSocket connection
//! keeps one `Vault` across its messages, because follow-ups carry only the
//! new input.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::restore::RestoreMap;
use crate::stream::EventRestorer;
use crate::usage::Usage;

/// Reversible-redaction state of one request or one WebSocket connection.
#[derive(Default)]
pub struct Vault {
    by_value: HashMap<(String, String), String>,
    by_placeholder: HashMap<String, String>,
    next: HashMap<String, u32>,
    snapshot: Option<Arc<RestoreMap>>,
    /// Server-side event state of a WebSocket connection.
    pub(crate) ws_events: Option<EventRestorer>,
    pub(crate) ws_usage: Usage,
    /// Placeholders issued, in order, when recorded (for the next turn).
    log: Option<Vec<Issued>>,
}

/// One reversible placeholder as it was issued.
#[derive(Clone)]
pub(crate) struct Issued {
    label: String,
    value: String,
    placeholder: String,
    number: u32,
}

impl Issued {
    /// Bytes it holds, for memory bounds.
    pub(crate) fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.label.len() + self.value.len() + self.placeholder.len()
    }
}

impl std::fmt::Debug for Vault {
    // Never print the mapped values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("placeholders", &self.by_placeholder.len())
            .finish()
    }
}

impl Vault {
    pub fn new() -> Self {
        Self::default()
    }

    /// A vault that continues a conversation whose earlier placeholders are
    /// `issued`: the same values keep their placeholders, new values get the
    /// next free numbers.
    pub(crate) fn continuing(issued: &RestoreMap) -> Self {
        let mut vault = Vault::new();
        for (placeholder, value) in issued.pairs() {
            let Some((label, number)) = placeholder
                .strip_prefix("[[")
                .and_then(|p| p.strip_suffix("]]"))
                .and_then(|p| p.rsplit_once('_'))
                .and_then(|(l, n)| Some((l.to_string(), n.parse::<u32>().ok()?)))
            else {
                continue;
            };
            let next = vault.next.entry(label.clone()).or_insert(0);
            *next = (*next).max(number);
            vault
                .by_value
                .insert((label, value.to_string()), placeholder.to_string());
            vault.by_placeholder.insert(placeholder.to_string(), value.to_string());
        }
        vault
    }

    /// An empty vault that records what it issues, in order.
    pub(crate) fn recording() -> Self {
        Vault {
            log: Some(Vec::new()),
            ..Vault::default()
        }
    }

    /// The vault that issued `issued`, in that order, and nothing else:
    /// the state a request reached after issuing them. It records what it
    /// issues after them.
    pub(crate) fn replaying(issued: &[Issued]) -> Self {
        let mut vault = Vault::recording();
        for i in issued {
            vault
                .by_value
                .insert((i.label.clone(), i.value.clone()), i.placeholder.clone());
            vault.by_placeholder.insert(i.placeholder.clone(), i.value.clone());
            // Numbers grow: the last one issued is the counter.
            vault.next.insert(i.label.clone(), i.number);
        }
        vault
    }

    /// Records what it issues from now on.
    pub(crate) fn resume_recording(&mut self) {
        self.log = Some(Vec::new());
    }

    /// What a recording vault issued, in order.
    pub(crate) fn take_log(&mut self) -> Vec<Issued> {
        self.log.take().unwrap_or_default()
    }

    /// Number of reversible placeholders issued.
    pub fn len(&self) -> usize {
        self.by_placeholder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }

    /// Whether `placeholder` was issued by this vault.
    pub fn issued(&self, placeholder: &str) -> bool {
        self.by_placeholder.contains_key(placeholder)
    }

    /// The placeholder for `value` of detector `kind`, allocating the next
    /// free number unless it has one. Numbers whose placeholder the client
    /// typed literally (`taken`) are skipped, so they never get restored.
    pub(crate) fn placeholder_for(&mut self, kind: &str, value: &str, taken: &HashSet<String>) -> String {
        let label = label(kind);
        if let Some(p) = self.by_value.get(&(label.clone(), value.to_string())) {
            return p.clone();
        }
        let counter = self.next.entry(label.clone()).or_insert(0);
        let placeholder = loop {
            *counter += 1;
            let candidate = format!("[[{label}_{:03}]]", *counter);
            if !taken.contains(&candidate) {
                break candidate;
            }
        };
        if let Some(log) = &mut self.log {
            log.push(Issued {
                label: label.clone(),
                value: value.to_string(),
                placeholder: placeholder.clone(),
                number: *counter,
            });
        }
        self.by_value.insert((label, value.to_string()), placeholder.clone());
        self.by_placeholder.insert(placeholder.clone(), value.to_string());
        self.snapshot = None;
        placeholder
    }

    /// The restore map for responses; `None` when nothing was issued.
    pub(crate) fn restore_map(&mut self) -> Option<Arc<RestoreMap>> {
        if self.by_placeholder.is_empty() {
            return None;
        }
        if self.snapshot.is_none() {
            self.snapshot = Some(Arc::new(RestoreMap::new(
                self.by_placeholder.iter().map(|(k, v)| (k.clone(), v.clone())),
            )));
        }
        self.snapshot.clone()
    }
}

/// The placeholder label of a detector kind: `phone_number` -> `PHONE_NUMBER`.
pub fn label(kind: &str) -> String {
    kind.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Irreversible placeholder for the `redact` action.
pub fn redacted_placeholder(kind: &str) -> String {
    format!("[[REDACTED_{}]]", label(kind))
}

/// Every `[[LABEL_NNN]]` in `text` that starts outside the ascending,
/// disjoint byte ranges `skip`, with where it starts.
pub(crate) fn literal_placeholders_at(text: &str, skip: &[std::ops::Range<usize>]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let finder = memchr::memmem::Finder::new(b"[[");
    let mut pos = 0;
    while let Some(i) = finder.find(&bytes[pos..]) {
        let start = pos + i;
        let next_skip = skip.partition_point(|r| r.end <= start);
        let skipped = skip.get(next_skip).is_some_and(|r| r.start <= start);
        if !skipped {
            if let Some(len) = placeholder_len(&bytes[start..]) {
                found.push((start, text[start..start + len].to_string()));
            }
        }
        pos = start + 1;
    }
    found
}

/// Length of a `[[LABEL_NNN]]` at the start of `b`, if there is one.
fn placeholder_len(b: &[u8]) -> Option<usize> {
    let mut i = 2;
    while i < b.len() && i < 80 && (b[i].is_ascii_uppercase() || b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    if !b[i..].starts_with(b"]]") {
        return None;
    }
    let inner = &b[2..i];
    let digits = inner.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    let ok = digits >= 3 && inner.len() > digits + 1 && inner[inner.len() - digits - 1] == b'_';
    ok.then_some(i + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal_placeholders_set(text: &str, skip: &[std::ops::Range<usize>]) -> HashSet<String> {
        literal_placeholders_at(text, skip)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn numbering_follows_first_appearance_and_skips_typed_ones() {
        let taken = literal_placeholders_set("I typed [[EMAIL_001]] and [[x]] and [[[PHONE_007]]", &[]);
        assert_eq!(
            taken,
            HashSet::from(["[[EMAIL_001]]".to_string(), "[[PHONE_007]]".to_string()])
        );
        let mut v = Vault::new();
        assert_eq!(v.placeholder_for("email", "a@x.io", &taken), "[[EMAIL_002]]");
        assert_eq!(v.placeholder_for("email", "b@x.io", &taken), "[[EMAIL_003]]");
        assert_eq!(v.placeholder_for("email", "a@x.io", &taken), "[[EMAIL_002]]");
        assert_eq!(v.placeholder_for("phone-number", "+1", &taken), "[[PHONE_NUMBER_001]]");
        assert!(!v.issued("[[EMAIL_001]]"));
    }

    #[test]
    fn placeholders_inside_skipped_ranges_are_not_typed() {
        let text = "a [[EMAIL_001]] b [[EMAIL_002]] c [[PHONE_001]]";
        let second = text.find("[[EMAIL_002]]").unwrap();
        let taken = literal_placeholders_set(text, &[0..1, second..second + 13]);
        assert_eq!(
            taken,
            HashSet::from(["[[EMAIL_001]]".to_string(), "[[PHONE_001]]".to_string()])
        );
    }
}

/// Who may continue a Responses conversation: the local account that sent
/// it and the provider credential it was sent with. Only a truncated SHA-256
/// of both is kept, so the credential itself is never held here, and another
/// user naming the same response id cannot load its placeholders.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversationOwner([u8; 16]);

impl ConversationOwner {
    /// `uid` is the client process's user when known; `credentials` are the
    /// `(name, value)` pairs of the headers that authenticate to the provider.
    pub fn new<'c>(uid: Option<u32>, credentials: impl IntoIterator<Item = (&'c str, &'c [u8])>) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"promptwall conversation owner v1\0");
        match uid {
            Some(uid) => {
                h.update([1]);
                h.update(uid.to_be_bytes());
            }
            None => h.update([0]),
        }
        for (name, value) in credentials {
            // Length-prefixed, so no two header lists hash alike by concatenation.
            for part in [name.as_bytes(), value] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
        }
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        ConversationOwner(out)
    }
}

impl std::fmt::Debug for ConversationOwner {
    // A digest of a credential is still nothing to print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConversationOwner(..)")
    }
}

/// Placeholders issued per (owner, Responses API response id), so a
/// follow-up that names it as `previous_response_id` (the provider holds the
/// earlier turns) continues that numbering instead of reusing numbers.
/// Response ids are not secrets (they are in logs, shared transcripts and any
/// client that can read them), so the owner is part of the key: a request
/// from another user or credential starts a fresh vault. Bounded; in memory:
/// after a restart a follow-up starts a fresh numbering, as a new request does.
pub(crate) struct ConversationMemory {
    inner: quick_cache::sync::Cache<(ConversationOwner, String), Arc<RestoreMap>>,
}

impl ConversationMemory {
    pub fn new(capacity: usize) -> Self {
        ConversationMemory {
            inner: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    pub fn remember(&self, owner: ConversationOwner, response_id: &str, map: Arc<RestoreMap>) {
        self.inner.insert((owner, response_id.to_string()), map);
    }

    pub fn get(&self, owner: ConversationOwner, response_id: &str) -> Option<Arc<RestoreMap>> {
        self.inner.get(&(owner, response_id.to_string()))
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    fn map() -> Arc<RestoreMap> {
        Arc::new(RestoreMap::new(
            [("[[EMAIL_001]]".to_string(), "a@x.io".to_string())].into_iter(),
        ))
    }

    #[test]
    fn a_remembered_conversation_is_found_only_by_its_owner() {
        let memory = ConversationMemory::new(16);
        let alice = ConversationOwner::new(Some(1000), [("authorization", &b"Bearer a"[..])]);
        let bob = ConversationOwner::new(Some(1001), [("authorization", &b"Bearer a"[..])]);
        memory.remember(alice, "resp_1", map());
        assert!(memory.get(alice, "resp_1").is_some());
        assert!(memory.get(bob, "resp_1").is_none());
        assert!(memory.get(alice, "resp_2").is_none());
    }

    #[test]
    fn remembered_conversations_stay_within_the_entry_bound() {
        let memory = ConversationMemory::new(100);
        let owner = ConversationOwner::new(None, []);
        for i in 0..1_000 {
            memory.remember(owner, &format!("resp_{i}"), map());
        }
        assert!(memory.len() <= 100, "{} entries", memory.len());
        assert!(memory.get(owner, "resp_999").is_some(), "the newest is kept");
    }
}
