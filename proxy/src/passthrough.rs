//! Learned passthrough: a client that keeps rejecting our minted leaf
//! (certificate pinning, a private trust store) would otherwise break
//! silently. After `intercept.learn_passthrough_after` certificate rejections
//! by the same executable for the same server name, later connections of that
//! pair are spliced to the provider undecrypted (audited as passthrough, shown
//! by `status` and `doctor`). With `fail = "closed"` they keep being
//! intercepted, i.e. blocked, and the table says so.
//!
//! Only rejections that are about the certificate count (the client's alert:
//! unknown CA, bad/unsupported/unknown certificate), keyed by executable path,
//! so one misconfigured run of a tool can't open a path for another tool.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rustls::AlertDescription;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LearnedEntry {
    pub exe: String,
    pub server_name: String,
    /// Certificate rejections seen (counting stops once learned).
    pub failures: u32,
    /// The last rejection, as the TLS stack reported it.
    pub last_error: String,
    /// RFC 3339 time the pair crossed the threshold; None while still counting.
    pub learned_at: Option<String>,
    /// true: spliced undecrypted; false: learned but still blocked (fail = "closed").
    pub passthrough: bool,
    /// Creation order, for evicting the oldest pair still counting.
    #[serde(skip)]
    seq: u64,
}

/// Pairs tracked at most: any local user can make up executables (copies of
/// one binary) and fail handshakes on purpose, so the table is bounded.
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Default)]
pub struct LearnedPassthrough {
    entries: Mutex<BTreeMap<(String, String), LearnedEntry>>,
    seq: std::sync::atomic::AtomicU64,
}

/// Makes room for one more pair: at the cap, the oldest pair still counting
/// goes (learned pairs stay, they are what `status` reports). False when
/// every pair is learned: the new one is then not tracked, and stays
/// intercepted.
fn make_room<K: Ord + Clone>(entries: &mut BTreeMap<K, LearnedEntry>) -> bool {
    if entries.len() < MAX_ENTRIES {
        return true;
    }
    let oldest = entries
        .iter()
        .filter(|(_, e)| e.learned_at.is_none())
        .min_by_key(|(_, e)| e.seq)
        .map(|(k, _)| k.clone());
    match oldest {
        Some(k) => {
            entries.remove(&k);
            true
        }
        None => false,
    }
}

/// Whether a failed server-side handshake was the client refusing our certificate.
pub fn is_certificate_rejection(err: &std::io::Error) -> bool {
    let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return false;
    };
    matches!(
        inner,
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
        )
    )
}

impl LearnedPassthrough {
    /// Should this (exe, server name) connection be spliced instead of intercepted?
    pub fn should_pass(&self, exe: &str, server_name: &str) -> bool {
        let entries = self.entries.lock().unwrap();
        entries
            .get(&(exe.to_string(), server_name.to_string()))
            .is_some_and(|e| e.passthrough)
    }

    /// Counts a certificate rejection; returns the entry when this one crossed `threshold`
    /// (0 disables learning). `fail_closed` records the pair but keeps intercepting.
    pub fn record_rejection(
        &self,
        exe: &str,
        server_name: &str,
        error: &str,
        threshold: u32,
        fail_closed: bool,
        now: impl FnOnce() -> String,
    ) -> Option<LearnedEntry> {
        if threshold == 0 {
            return None;
        }
        let mut entries = self.entries.lock().unwrap();
        let key = (exe.to_string(), server_name.to_string());
        if !entries.contains_key(&key) && !make_room(&mut entries) {
            return None;
        }
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let e = entries.entry(key).or_insert_with(|| LearnedEntry {
            exe: exe.to_string(),
            server_name: server_name.to_string(),
            failures: 0,
            last_error: String::new(),
            learned_at: None,
            passthrough: false,
            seq,
        });
        e.last_error = error.to_string();
        if e.learned_at.is_some() {
            return None;
        }
        e.failures += 1;
        if e.failures < threshold {
            return None;
        }
        e.learned_at = Some(now());
        e.passthrough = !fail_closed;
        Some(e.clone())
    }

    /// A completed handshake: the client trusts us after all; forget its count.
    pub fn record_success(&self, exe: &str, server_name: &str) {
        let mut entries = self.entries.lock().unwrap();
        let key = (exe.to_string(), server_name.to_string());
        if entries.get(&key).is_some_and(|e| e.learned_at.is_none()) {
            entries.remove(&key);
        }
    }

    /// Pairs that crossed the threshold (for `status` and `doctor`).
    pub fn learned(&self) -> Vec<LearnedEntry> {
        self.entries
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.learned_at.is_some())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> String {
        "2026-01-01T00:00:00Z".into()
    }

    #[test]
    fn learns_after_threshold_per_exe_and_name() {
        let l = LearnedPassthrough::default();
        assert!(l
            .record_rejection("/usr/bin/curl", "api.anthropic.com", "unknown ca", 3, false, now)
            .is_none());
        assert!(l
            .record_rejection("/usr/bin/curl", "api.anthropic.com", "unknown ca", 3, false, now)
            .is_none());
        // Another tool or another name does not add to the count.
        assert!(l
            .record_rejection("/usr/bin/node", "api.anthropic.com", "unknown ca", 3, false, now)
            .is_none());
        assert!(l
            .record_rejection("/usr/bin/curl", "api.openai.com", "unknown ca", 3, false, now)
            .is_none());
        assert!(!l.should_pass("/usr/bin/curl", "api.anthropic.com"));
        let learned = l
            .record_rejection("/usr/bin/curl", "api.anthropic.com", "unknown ca", 3, false, now)
            .unwrap();
        assert_eq!((learned.failures, learned.passthrough), (3, true));
        assert!(l.should_pass("/usr/bin/curl", "api.anthropic.com"));
        assert!(!l.should_pass("/usr/bin/node", "api.anthropic.com"));
        assert_eq!(l.learned().len(), 1);
    }

    #[test]
    fn success_resets_the_count() {
        let l = LearnedPassthrough::default();
        l.record_rejection("/x", "h", "e", 2, false, now);
        l.record_success("/x", "h");
        assert!(l.record_rejection("/x", "h", "e", 2, false, now).is_none());
        assert!(l.record_rejection("/x", "h", "e", 2, false, now).is_some());
        l.record_success("/x", "h");
        assert!(l.should_pass("/x", "h"), "a learned pair stays learned");
    }

    #[test]
    fn fail_closed_records_but_keeps_blocking() {
        let l = LearnedPassthrough::default();
        let e = l.record_rejection("/x", "h", "e", 1, true, now).unwrap();
        assert!(!e.passthrough);
        assert!(!l.should_pass("/x", "h"));
        assert_eq!(l.learned().len(), 1);
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_learned_pairs() {
        let l = LearnedPassthrough::default();
        // One pair learned first, then a flood of made-up executables.
        l.record_rejection("/usr/bin/pinned", "h", "e", 1, false, now);
        for i in 0..MAX_ENTRIES * 3 {
            l.record_rejection(&format!("/tmp/copy-{i}"), "h", "e", 3, false, now);
        }
        assert_eq!(l.entries.lock().unwrap().len(), MAX_ENTRIES);
        assert!(l.should_pass("/usr/bin/pinned", "h"), "a learned pair is never evicted");
        // The newest pairs are the ones still counting.
        let last = format!("/tmp/copy-{}", MAX_ENTRIES * 3 - 1);
        l.record_rejection(&last, "h", "e", 3, false, now);
        assert!(l.record_rejection(&last, "h", "e", 3, false, now).is_some());
    }

    #[test]
    fn a_table_full_of_learned_pairs_tracks_no_new_ones() {
        let l = LearnedPassthrough::default();
        for i in 0..MAX_ENTRIES {
            l.record_rejection(&format!("/tmp/p-{i}"), "h", "e", 1, false, now);
        }
        assert!(l.record_rejection("/usr/bin/new", "h", "e", 1, false, now).is_none());
        assert!(!l.should_pass("/usr/bin/new", "h"));
        assert_eq!(l.learned().len(), MAX_ENTRIES);
    }

    #[test]
    fn zero_disables_learning() {
        let l = LearnedPassthrough::default();
        for _ in 0..10 {
            assert!(l.record_rejection("/x", "h", "e", 0, false, now).is_none());
        }
        assert!(l.learned().is_empty());
    }

    #[test]
    fn only_certificate_alerts_count() {
        let cert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        );
        let other = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
        );
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert!(is_certificate_rejection(&cert));
        assert!(!is_certificate_rejection(&other));
        assert!(!is_certificate_rejection(&eof));
    }
}
