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

/// Cache key: a 64-bit hash with a per-process random seed plus the length;
/// an accidental collision (which would reuse another block's findings)
/// among the cache's entries is ~1e-10 and cannot be provoked without the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BlockKey(u64, usize, bool);

/// Scan results per text block, bounded; coding agents resend the same
/// growing transcript every turn, so only new blocks miss.
pub(crate) struct ScanCache {
    seed: foldhash::quality::RandomState,
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<BlockKey, (Arc<[SubHit]>, u64)>,
    tick: u64,
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
            capacity,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    pub fn key(&self, raw: &str, json_text: bool) -> BlockKey {
        BlockKey(self.seed.hash_one(raw), raw.len(), json_text)
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
            inner.map.insert(k, (v, tick));
        }
        if inner.map.len() > self.capacity {
            // Evict the least recently used half in one O(n) pass.
            let mut ticks: Vec<u64> = inner.map.values().map(|(_, t)| *t).collect();
            let mid = ticks.len() / 2;
            let (_, cutoff, _) = ticks.select_nth_unstable(mid);
            let cutoff = *cutoff;
            inner.map.retain(|_, (_, t)| *t > cutoff);
        }
    }
}
