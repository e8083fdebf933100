//! The boundary to the detection engine: a `Scanner` trait (so tests and the
//! pipeline do not depend on one detector) and the per-block scan cache.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

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
/// turn, so only new blocks miss.
pub(crate) struct ScanCache {
    seed: foldhash::quality::RandomState,
    second_seed: foldhash::quality::RandomState,
    capacity: usize,
    max_bytes: usize,
    inner: Mutex<CacheInner>,
}

/// Memory the cache may hold for its entries, findings included.
pub(crate) const MAX_CACHE_BYTES: usize = 64 << 20;

#[derive(Default)]
struct CacheInner {
    map: HashMap<BlockKey, (Arc<[SubHit]>, u64)>,
    tick: u64,
    /// Sum of [`entry_cost`] over `map`.
    bytes: usize,
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
        ScanCache {
            seed: Default::default(),
            second_seed: Default::default(),
            capacity,
            max_bytes: MAX_CACHE_BYTES,
            inner: Mutex::new(CacheInner::default()),
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
        if self.capacity == 0 {
            return vec![None; keys.len()];
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        keys.iter()
            .map(|k| {
                let entry = inner.map.get_mut(k.as_ref()?)?;
                entry.1 = tick;
                Some(entry.0.clone())
            })
            .collect()
    }

    pub fn insert_many(&self, items: Vec<(BlockKey, Arc<[SubHit]>)>) {
        if self.capacity == 0 || items.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let tick = inner.tick;
        for (k, v) in items {
            let cost = entry_cost(&v);
            // One block's findings may not take over the cache.
            if cost > self.max_bytes / 8 {
                continue;
            }
            inner.bytes += cost;
            if let Some((old, _)) = inner.map.insert(k, (v, tick)) {
                inner.bytes -= entry_cost(&old);
            }
        }
        while inner.map.len() > self.capacity || inner.bytes > self.max_bytes {
            // Evict the least recently used half in one O(n) pass.
            let mut ticks: Vec<u64> = inner.map.values().map(|(_, t)| *t).collect();
            let mid = ticks.len() / 2;
            let (_, cutoff, _) = ticks.select_nth_unstable(mid);
            let cutoff = *cutoff;
            let inner = &mut *inner;
            let mut freed = 0;
            inner.map.retain(|_, (hits, t)| {
                let keep = *t > cutoff;
                if !keep {
                    freed += entry_cost(hits);
                }
                keep
            });
            inner.bytes -= freed;
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
        let inner = cache.inner.lock().unwrap();
        let real: usize = inner.map.values().map(|(h, _)| entry_cost(h)).sum();
        assert_eq!(real, inner.bytes, "the running sum matches the entries");
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
