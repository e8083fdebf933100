//! The boundary to the detection engine: a `Scanner` trait (so tests and the
//! pipeline do not depend on one detector) and the per-block scan cache.

use std::hash::BuildHasher;
use std::sync::Arc;

pub use crate::detect_api::{Action, Category};

/// One detector match in a piece of text, in the pipeline's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Detector kind, e.g. `email`, `aws_access_key_id`.
    pub kind: Arc<str>,
    pub category: Category,
    /// Byte range in the scanned text.
    pub start: usize,
    pub end: usize,
    pub action: Action,
}

/// Anything that finds secrets and personal data in text.
pub trait Scanner: Send + Sync {
    fn scan(&self, text: &str) -> Vec<Hit>;
}

impl<F> Scanner for F
where
    F: Fn(&str) -> Vec<Hit> + Send + Sync,
{
    fn scan(&self, text: &str) -> Vec<Hit> {
        self(text)
    }
}

/// `text` with every finding replaced by its `[[REDACTED_<KIND>]]`
/// placeholder, whatever the policy action; None when nothing was found.
/// For metadata the audit log keeps (a client's command line can hold the
/// very prompt a request was blocked for).
pub fn scrub(scanner: &dyn Scanner, text: &str) -> Option<String> {
    let mut hits = scanner.scan(text);
    if hits.is_empty() {
        return None;
    }
    hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for h in hits {
        // Overlapping hits: the earlier (longer) one already covers this one.
        if h.start < pos || h.end > text.len() || !text.is_char_boundary(h.start) || !text.is_char_boundary(h.end) {
            continue;
        }
        out.push_str(&text[pos..h.start]);
        out.push_str(&crate::vault::redacted_placeholder(&h.kind));
        pos = h.end;
    }
    out.push_str(&text[pos..]);
    Some(out)
}

/// Cache key: two 64-bit hashes under independent per-process random seeds
/// plus the length. A collision would reuse another block's findings (a
/// missed secret, or offsets that do not fit the text); at 128 bits it is
/// ~1e-29 among the cache's entries and cannot be provoked without the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BlockKey(u64, u64, usize, bool);

/// Scan results per text block, bounded in entries and in bytes (a block
/// can have any number of findings: a body of nothing but e-mail addresses
/// has millions); coding agents resend the same growing transcript every
/// turn, so only new blocks miss. A sharded CLOCK-Pro cache (quick_cache):
/// lookups and inserts lock one shard, eviction is incremental.
pub(crate) struct ScanCache {
    seed: foldhash::quality::RandomState,
    second_seed: foldhash::quality::RandomState,
    max_bytes: usize,
    inner: Option<quick_cache::sync::Cache<BlockKey, Arc<[SubHit]>, SlotWeighter>>,
}

/// Memory the cache may hold for its entries, findings included.
pub(crate) const MAX_CACHE_BYTES: usize = 64 << 20;

/// Shards of the cache. Each holds `1/SHARDS` of the byte bound, so the
/// largest entry admitted (`max_bytes / SHARDS`) still fits one shard
/// whatever the host's core count.
const SHARDS: usize = 8;

/// Weighs an entry as its bytes, but never less than one slot
/// (`max_bytes / capacity`): a total weight within `max_bytes` then bounds
/// both the bytes and the number of entries.
#[derive(Clone)]
struct SlotWeighter {
    slot: u64,
}

impl quick_cache::Weighter<BlockKey, Arc<[SubHit]>> for SlotWeighter {
    fn weight(&self, _key: &BlockKey, hits: &Arc<[SubHit]>) -> u64 {
        (entry_cost(hits) as u64).max(self.slot)
    }
}

/// What one entry costs: key, value and table slot, the shared slice's
/// header, and its findings (kind names are shared with the detector).
fn entry_cost(hits: &[SubHit]) -> usize {
    use std::mem::size_of;
    size_of::<BlockKey>() + size_of::<(Arc<[SubHit]>, u64)>() + 1 + 2 * size_of::<usize>() + std::mem::size_of_val(hits)
}

/// A hit inside a block; `sub` numbers the string inside a JSON-text block
/// (function-call arguments), `u32::MAX` for the block as plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubHit {
    pub sub: u32,
    pub hit: Hit,
}

impl ScanCache {
    pub fn new(capacity: usize) -> Self {
        Self::with_bounds(capacity, MAX_CACHE_BYTES)
    }

    fn with_bounds(capacity: usize, max_bytes: usize) -> Self {
        let inner = (capacity > 0).then(|| {
            let options = quick_cache::OptionsBuilder::new()
                .shards(SHARDS)
                .estimated_items_capacity(capacity)
                .weight_capacity(max_bytes as u64)
                .build()
                .expect("valid cache options");
            let weighter = SlotWeighter {
                slot: (max_bytes / capacity).max(1) as u64,
            };
            quick_cache::sync::Cache::with_options(options, weighter, Default::default(), Default::default())
        });
        ScanCache {
            seed: Default::default(),
            second_seed: Default::default(),
            max_bytes,
            inner,
        }
    }

    pub fn key(&self, raw: &str, json_text: bool) -> BlockKey {
        BlockKey(
            self.seed.hash_one(raw),
            self.second_seed.hash_one(raw),
            raw.len(),
            json_text,
        )
    }

    pub fn get_many(&self, keys: &[Option<BlockKey>]) -> Vec<Option<Arc<[SubHit]>>> {
        let Some(inner) = &self.inner else {
            return vec![None; keys.len()];
        };
        keys.iter().map(|k| inner.get(k.as_ref()?)).collect()
    }

    pub fn insert_many(&self, items: Vec<(BlockKey, Arc<[SubHit]>)>) {
        let Some(inner) = &self.inner else {
            return;
        };
        for (k, v) in items {
            // One block's findings may not take over the cache (nor be
            // larger than a shard, which would not hold it).
            if entry_cost(&v) > self.max_bytes / SHARDS {
                continue;
            }
            inner.insert(k, v);
        }
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn hits(n: usize) -> Arc<[SubHit]> {
        let hit = Hit {
            kind: "email".into(),
            category: Category::Pii,
            start: 0,
            end: 7,
            action: Action::Reversible,
        };
        vec![SubHit { sub: u32::MAX, hit }; n].into()
    }

    fn held_bytes(cache: &ScanCache) -> usize {
        let inner = cache.inner.as_ref().unwrap();
        let real: usize = inner.iter().map(|(_, h)| entry_cost(&h)).sum();
        assert!(real as u64 <= inner.weight(), "the weights cover the entries");
        real
    }

    #[test]
    fn blocks_full_of_findings_cannot_grow_the_cache_past_its_byte_bound() {
        let cache = ScanCache::new(100_000);
        // A few hundred blocks of 10,000 findings each (one shared slice
        // here; in use each block has its own) would be ~100 MiB.
        let many = hits(10_000);
        for round in 0..4u64 {
            let items = (0..50u64)
                .map(|i| (cache.key(&format!("block {round} {i}"), false), many.clone()))
                .collect();
            cache.get_many(&[]);
            cache.insert_many(items);
            assert!(held_bytes(&cache) <= MAX_CACHE_BYTES);
        }
        assert!(held_bytes(&cache) > MAX_CACHE_BYTES / 4, "the cache is still used");
        // The newest blocks are the ones kept.
        let newest = cache.key("block 3 49", false);
        assert!(cache.get_many(&[Some(newest)])[0].is_some());
    }

    #[test]
    fn many_small_blocks_cannot_grow_the_cache_past_its_entry_bound() {
        let cache = ScanCache::new(1_000);
        let one = hits(1);
        for i in 0..5_000u64 {
            cache.insert_many(vec![(cache.key(&format!("block {i}"), false), one.clone())]);
        }
        let held = cache.inner.as_ref().unwrap().len();
        assert!(held <= 1_000, "{held} entries");
        assert!(held > 250, "the cache is still used: {held} entries");
    }

    #[test]
    fn one_block_with_too_many_findings_is_not_cached() {
        let cache = ScanCache::new(100_000);
        let key = cache.key("huge", false);
        cache.insert_many(vec![(key, hits(MAX_CACHE_BYTES / 8 / size_of::<SubHit>() + 1))]);
        assert!(cache.get_many(&[Some(key)])[0].is_none());
        assert_eq!(held_bytes(&cache), 0);
    }
}

#[cfg(test)]
mod scrub_tests {
    use super::*;

    fn hit(kind: &str, start: usize, end: usize) -> Hit {
        Hit {
            kind: kind.into(),
            category: Category::Secret,
            start,
            end,
            action: Action::Block,
        }
    }

    #[test]
    fn scrub_replaces_every_finding_and_skips_overlaps() {
        let scanner = |t: &str| {
            let a = t.find("SECRET").unwrap();
            let b = t.find("me@x.io").unwrap();
            vec![
                hit("email", b, b + 7),
                hit("aws_access_key_id", a, a + 6),
                hit("inner", a + 1, a + 3),
            ]
        };
        let out = scrub(&scanner, "curl -d 'SECRET to me@x.io'").unwrap();
        assert_eq!(out, "curl -d '[[REDACTED_AWS_ACCESS_KEY_ID]] to [[REDACTED_EMAIL]]'");
        assert_eq!(scrub(&|_: &str| Vec::new(), "clean"), None);
    }
}
