//! The incremental next turn. A coding agent resends its whole
//! conversation every turn plus a few KB; the request that extends the
//! previous one of the same conversation is recognised by its bytes, and
//! only what is new is parsed, scanned and rewritten.
//!
//! After a request is forwarded, its [`Turn`] is remembered per owner and
//! shape: the body, where the conversation array's items end, and the
//! running state of both passes (findings, fingerprints, placeholders
//! issued) at the end of the places walked before the conversation and at
//! the end of each item, plus the rewrites and typed-placeholder positions.
//! A later request of the same owner and shape is compared byte by byte
//! with it: the items wholly inside the common prefix are reused as they
//! were (their places, findings, placeholders and rewrites), the items
//! after them are parsed and walked alone (a skeleton root whose earlier
//! items are left out) and continue both passes from the state after the
//! last shared item. The result is the full inspection's, byte for byte.
//!
//! When nothing is reused (the full inspection runs instead):
//! - another owner, no owner, or another shape: never compared;
//! - the bytes before the conversation array (`model`, and any field the
//!   client sends before it) differ, or those after it (`system`, `tools`,
//!   `metadata` when sent after the conversation) are not byte-identical;
//! - an edited or reordered item: the items from the first changed byte on
//!   are inspected again, the ones before it reused;
//! - the set of placeholders typed literally in the body changed (their
//!   numbers are skipped, so earlier numbering could change);
//! - the request continues a Responses answer (its vault does not start
//!   empty);
//! - the shape's walk is not "static parts, then the conversation item by
//!   item, last" (unknown endpoints, a conversation that is a string, two
//!   conversation keys);
//! - the new part does not parse, would pass the value or findings caps,
//!   or the previous request was blocked or refused (only forwarded
//!   requests are remembered).
//!
//! Shapes must walk each conversation item from the item alone (its
//! subtree and index); every builtin shape does (`Walk::each` takes plain
//! functions).

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use super::{Core, Outcome, Pass1, Pipeline, RequestContext};
use crate::json::{self, Lit, Node};
use crate::pipeline::{FindingRecord, Report, MAX_FINDINGS};
use crate::restore::RestoreMap;
use crate::shape::ApiShape;
use crate::vault::{self, ConversationOwner, Issued, Vault};
use crate::walk::Walk;

/// The running state after some places, in counts of what the request's
/// lists held then.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Mark {
    /// Scanner findings (before policy) so far.
    pub found: usize,
    pub findings: usize,
    pub fingerprints: usize,
    pub needs_edit: bool,
    /// Reversible placeholders issued.
    pub issued: usize,
}

/// What a forwarded request leaves for its next turn.
pub(super) struct Turn {
    body: Vec<u8>,
    /// The conversation key's literal: start, raw length, escaped.
    key: (usize, usize, bool),
    /// The conversation array's `[`, each item's end, its `]`.
    open: usize,
    ends: Vec<usize>,
    close: usize,
    /// JSON values in the body, at most.
    nodes: usize,
    /// `marks[i]`: the state after the places before the conversation and
    /// its first `i` items.
    marks: Vec<Mark>,
    model: Option<String>,
    findings: Vec<FindingRecord>,
    fingerprints: Vec<(String, String)>,
    /// Rewrites, sorted by position.
    edits: Vec<(Range<usize>, String)>,
    issued: Vec<Issued>,
    /// Placeholders typed literally, by position.
    literals: Vec<(usize, String)>,
    /// The vault after the whole request (its restore map already built),
    /// while no other request has taken it.
    vault: Option<Vault>,
}

impl Turn {
    /// A copy to grow while another request still reads this one.
    fn copy(&self) -> Turn {
        Turn {
            body: self.body.clone(),
            key: self.key,
            open: self.open,
            ends: self.ends.clone(),
            close: self.close,
            nodes: self.nodes,
            marks: self.marks.clone(),
            model: self.model.clone(),
            findings: self.findings.clone(),
            fingerprints: self.fingerprints.clone(),
            edits: self.edits.clone(),
            issued: self.issued.clone(),
            literals: self.literals.clone(),
            vault: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        text: &str,
        key: &Lit<'_>,
        nodes: usize,
        marks: Vec<Mark>,
        report: &Report,
        literals: Vec<(usize, String)>,
        edits: Vec<(Range<usize>, String)>,
        vault: &mut Vault,
    ) -> Option<Turn> {
        let b = text.as_bytes();
        let mut open = key.range().end;
        let skip_ws = |mut i: usize| {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
                i += 1;
            }
            i
        };
        open = skip_ws(open);
        if b.get(open) != Some(&b':') {
            return None;
        }
        open = skip_ws(open + 1);
        let (ends, close) = json::array_layout(text, open)?;
        if ends.len() + 1 != marks.len() {
            return None;
        }
        // Room for a few more turns without moving.
        let mut body = Vec::with_capacity(b.len() + b.len() / 8);
        body.extend_from_slice(b);
        Some(Turn {
            body,
            key: (key.start, key.raw.len(), key.escaped),
            open,
            ends,
            close,
            nodes,
            marks,
            model: report.model.clone(),
            findings: report.findings.clone(),
            fingerprints: report.fingerprints.clone(),
            edits,
            issued: vault.take_log(),
            literals,
            vault: None,
        })
    }

    /// This turn grown into the next one (its state up to the last shared
    /// item kept, the new items' added): moves only what is new.
    fn grow(mut self, text: &str, g: Grown, report: &Report) -> Turn {
        self.body.truncate(g.cut);
        self.body.extend_from_slice(&text.as_bytes()[g.cut..]);
        self.ends.truncate(g.items);
        self.ends.extend(g.ends);
        self.close = g.close;
        self.nodes = g.nodes;
        let mark = self.marks[g.items];
        self.marks.truncate(g.items + 1);
        self.marks.extend(g.marks);
        self.findings.truncate(mark.findings);
        self.findings.extend_from_slice(&report.findings[mark.findings..]);
        self.fingerprints.truncate(mark.fingerprints);
        self.fingerprints
            .extend_from_slice(&report.fingerprints[mark.fingerprints..]);
        self.edits = g.edits;
        self.issued.truncate(mark.issued);
        self.issued.extend(g.issued);
        self.literals = g.literals;
        self
    }

    /// Bytes it holds, about.
    fn size(&self) -> usize {
        use std::mem::size_of;
        let strings = |v: &[(usize, String)]| {
            v.iter()
                .map(|(_, s)| s.len() + size_of::<(usize, String)>())
                .sum::<usize>()
        };
        size_of::<Self>()
            + self.body.len()
            + self.ends.len() * size_of::<usize>()
            + self.marks.len() * size_of::<Mark>()
            + self
                .findings
                .iter()
                .map(|f| size_of::<FindingRecord>() + f.kind.len() + f.location.len())
                .sum::<usize>()
            + self
                .fingerprints
                .iter()
                .map(|(k, f)| size_of::<(String, String)>() + k.len() + f.len())
                .sum::<usize>()
            + self
                .edits
                .iter()
                .map(|(_, s)| size_of::<(Range<usize>, String)>() + s.len())
                .sum::<usize>()
            // Issued, and the vault's maps of the same.
            + 3 * self.issued.iter().map(Issued::size).sum::<usize>()
            + strings(&self.literals)
    }
}

/// How a turn grows into the next: everything but what its report holds.
pub(super) struct Grown {
    /// Items kept, and the offset after the last of them.
    items: usize,
    cut: usize,
    /// The new items' ends, the array's `]`, the values bound.
    ends: Vec<usize>,
    close: usize,
    nodes: usize,
    /// Marks after each new item.
    marks: Vec<Mark>,
    /// All rewrites, and placeholders issued after the kept ones.
    edits: Vec<(Range<usize>, String)>,
    issued: Vec<Issued>,
    literals: Vec<(usize, String)>,
}

/// Remembered turns per (owner, shape): the few most recent ones (an agent
/// runs subagents under the same credential), bounded in bytes overall
/// and per turn.
pub(super) struct TurnMemory {
    inner: Option<quick_cache::sync::Cache<TurnKey, Turns, Weigh>>,
    max_turn: usize,
}

/// Whose turns, of which shape.
type TurnKey = (ConversationOwner, &'static str);

/// An owner's most recent turns, newest first.
type Turns = Arc<[Arc<Turn>]>;

/// Turns kept per owner and shape.
const PER_OWNER: usize = 4;

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<TurnKey, Turns> for Weigh {
    fn weight(&self, _: &TurnKey, turns: &Turns) -> u64 {
        turns.iter().map(|t| t.size() as u64).sum::<u64>().max(1)
    }
}

impl TurnMemory {
    /// `max_bytes` 0 remembers nothing.
    pub(super) fn new(max_bytes: usize) -> Self {
        let inner = (max_bytes > 0).then(|| {
            let options = quick_cache::OptionsBuilder::new()
                .shards(4)
                .estimated_items_capacity(256)
                .weight_capacity(max_bytes as u64)
                .build()
                .expect("valid cache options");
            quick_cache::sync::Cache::with_options(options, Weigh, Default::default(), Default::default())
        });
        TurnMemory {
            inner,
            // A shard holds a quarter; one owner's turns fit in it.
            max_turn: max_bytes / 4 / PER_OWNER,
        }
    }

    /// Takes out the remembered turn sharing the longest byte prefix with
    /// `body`, with the length of that prefix (so it can grow in place).
    fn take(&self, owner: ConversationOwner, shape: ApiShape, body: &[u8]) -> Option<(Arc<Turn>, usize)> {
        let inner = self.inner.as_ref()?;
        let key = (owner, shape.as_str());
        let turns = inner.get(&key)?;
        let (best, common) = turns
            .iter()
            .enumerate()
            .map(|(i, t)| (i, common_prefix(&t.body, body)))
            .max_by_key(|(_, n)| *n)?;
        let rest: Vec<Arc<Turn>> = turns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, t)| t.clone())
            .collect();
        let taken = turns[best].clone();
        drop(turns);
        if rest.is_empty() {
            inner.remove(&key);
        } else {
            inner.insert(key, rest.into());
        }
        Some((taken, common))
    }

    /// Remembers `turn` as the owner's most recent.
    fn remember(&self, owner: ConversationOwner, shape: ApiShape, turn: Arc<Turn>) {
        let Some(inner) = &self.inner else {
            return;
        };
        if turn.size() > self.max_turn {
            return;
        }
        let key = (owner, shape.as_str());
        let mut turns: Vec<Arc<Turn>> = vec![turn];
        if let Some(old) = inner.get(&key) {
            turns.extend(old.iter().take(PER_OWNER - 1).cloned());
        }
        inner.insert(key, turns.into());
    }
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    // Word by word, then the mismatching word byte by byte.
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

impl Pipeline {
    /// Inspects a JSON body of `owner`, reusing what the request it extends
    /// left, and remembers this one for the next turn; with the restore map
    /// of the placeholders issued.
    pub(super) fn inspect_turn(
        &self,
        shape: ApiShape,
        text: &str,
        ctx: &RequestContext,
        owner: ConversationOwner,
    ) -> (Core, Option<Arc<RestoreMap>>) {
        if let Some((mut prev, common)) = self.turns.take(owner, shape, text.as_bytes()) {
            let kept = Arc::get_mut(&mut prev).and_then(|t| t.vault.take());
            match self.next_turn(shape, text, ctx, &prev, common, kept) {
                Some((Next::Passed { body, report, grown }, mut vault)) => {
                    let map = vault.restore_map();
                    let turn = Arc::try_unwrap(prev).unwrap_or_else(|shared| shared.copy());
                    let mut turn = turn.grow(text, grown, &report);
                    turn.vault = Some(vault);
                    self.turns.remember(owner, shape, Arc::new(turn));
                    return (Core::Pass { body, report }, map);
                }
                // A blocked request leaves the previous turn as it was.
                Some((Next::Other(core), _)) => {
                    self.turns.remember(owner, shape, prev);
                    return (core, None);
                }
                None => self.turns.remember(owner, shape, prev),
            }
        }
        let mut vault = Vault::recording();
        let (core, turn) = self.inspect_full(shape, text, ctx, &mut vault, true);
        let map = vault.restore_map();
        if let Some(mut turn) = turn {
            turn.vault = Some(vault);
            self.turns.remember(owner, shape, Arc::new(turn));
        }
        (core, map)
    }

    /// `text` as the turn after `t`, with which it shares `common` bytes;
    /// None when `t`'s results do not carry over.
    fn next_turn(
        &self,
        shape: ApiShape,
        text: &str,
        ctx: &RequestContext,
        t: &Turn,
        common: usize,
        kept: Option<Vault>,
    ) -> Option<(Next, Vault)> {
        // Everything before the conversation's first item is shared.
        if common <= t.open {
            return None;
        }
        // The items wholly inside the common prefix.
        let k = t.ends.partition_point(|&e| e <= common);
        let cut = if k == 0 { t.open + 1 } else { t.ends[k - 1] };
        // Root → conversation → item: items sit two levels down.
        let rest = json::parse_array_rest(text, cut, k > 0, 2).ok()?;
        if text.as_bytes().get(rest.close..)? != &t.body[t.close..] {
            return None;
        }
        let nodes = t.nodes + rest.nodes;
        if nodes > json::MAX_NODES {
            return None;
        }
        let (key_start, key_len, escaped) = t.key;
        let key = Lit {
            start: key_start,
            raw: text.get(key_start + 1..key_start + 1 + key_len)?,
            escaped,
        };
        let fresh = rest.items.len();
        let mut items: Vec<Node<'_>> = Vec::with_capacity(k + fresh);
        items.extend((0..k).map(|_| Node::Scalar(0..0)));
        items.extend(rest.items);
        let root = Node::Obj(vec![(key, Node::Arr(items))]);
        let mut walk = Walk::skipping_items(text, k);
        shape.walk(&mut walk, &root);
        let conversation = walk.conversation()?;
        if conversation.item_starts.len() != fresh {
            return None;
        }
        let first = conversation.before;
        let places = &walk.places[first..];
        let results = self.scan_places(places);
        let mark = t.marks[k];
        let found = mark.found + results.iter().map(|h| h.len()).sum::<usize>();
        if found > MAX_FINDINGS {
            return None;
        }
        let findings = t.findings[..mark.findings].to_vec();
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for f in &findings {
            *counts.entry(f.kind.clone()).or_default() += 1;
        }
        let mut st = Pass1 {
            report: Report {
                model: t.model.clone(),
                counts,
                fingerprints: t.fingerprints[..mark.fingerprints].to_vec(),
                findings,
                ..Default::default()
            },
            needs_edit: mark.needs_edit,
            ..Default::default()
        };
        // Marks after each new item (the one before them is `mark`).
        let bounds: Vec<usize> = if fresh == 0 {
            Vec::new()
        } else {
            conversation.item_starts[1..]
                .iter()
                .map(|s| s - first)
                .chain([places.len()])
                .collect()
        };
        let mut marks = self.pass1(&walk, places, &results, &mut st, ctx, &bounds, mark.found);
        // The previous request's vault when all it issued is kept.
        let mut vault = match kept {
            Some(mut v) if mark.issued == t.issued.len() => {
                v.resume_recording();
                v
            }
            _ => Vault::replaying(&t.issued[..mark.issued]),
        };
        // What moved: the bytes after the conversation.
        let moved = |at: usize| at + rest.close - t.close;
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        if st.needs_edit {
            edits.extend(t.edits.iter().filter(|(r, _)| r.start < cut).cloned());
            edits.extend(
                t.edits
                    .iter()
                    .filter(|(r, _)| r.start >= t.close)
                    .map(|(r, s)| (moved(r.start)..moved(r.end), s.clone())),
            );
        }
        let new_part = cut..rest.close;
        let literals = |protected: &[Range<usize>]| {
            let mut out: Vec<(usize, String)> = t.literals.iter().filter(|(p, _)| *p < cut).cloned().collect();
            let inner: Vec<Range<usize>> = protected.iter().map(|r| r.start - cut..r.end - cut).collect();
            out.extend(
                vault::literal_placeholders_at(&text[new_part.clone()], &inner)
                    .into_iter()
                    .map(|(p, s)| (p + cut, s)),
            );
            out.extend(
                t.literals
                    .iter()
                    .filter(|(p, _)| *p >= t.close)
                    .map(|(p, s)| (moved(*p), s.clone())),
            );
            out
        };
        // Typed placeholders skip numbers: the earlier places' numbering
        // holds only for the same set.
        let taken_ok = |taken: &HashSet<String>| {
            let before: HashSet<&str> = t.literals.iter().map(|(_, s)| s.as_str()).collect();
            taken.len() == before.len() && taken.iter().all(|s| before.contains(s.as_str()))
        };
        let outcome = self.finish(
            places, &results, st, &mut vault, &bounds, &mut marks, text, literals, edits, taken_ok,
        );
        match outcome {
            Outcome::Retry => None,
            Outcome::Core(core) => Some((Next::Other(core), vault)),
            Outcome::Pass {
                body,
                report,
                literals,
                edits,
            } => {
                let grown = Grown {
                    items: k,
                    cut,
                    ends: rest.ends,
                    close: rest.close,
                    nodes,
                    marks,
                    edits,
                    issued: vault.take_log(),
                    literals,
                };
                Some((Next::Passed { body, report, grown }, vault))
            }
        }
    }
}

/// A next turn inspected from its previous one.
enum Next {
    Passed {
        body: Option<String>,
        report: Report,
        grown: Grown,
    },
    /// Blocked.
    Other(Core),
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefix_finds_the_first_difference_at_every_alignment() {
        let a: Vec<u8> = (0..40u8).collect();
        for cut in 0..=40 {
            let mut b = a.clone();
            if cut < 40 {
                b[cut] ^= 0xff;
            }
            assert_eq!(common_prefix(&a, &b), cut);
            assert_eq!(common_prefix(&a[..cut], &a), cut);
        }
    }
}
