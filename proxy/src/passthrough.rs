//! Learned passthrough: a client that keeps rejecting our minted leaf
//! (certificate pinning, a private trust store) would otherwise break
//! silently. After `intercept.learn_passthrough_after` certificate rejections
//! by the same executable for the same server name, later connections of that
//! pair are spliced to the provider undecrypted (audited as passthrough, shown
//! by `status` and `doctor`). With `fail = "closed"` they keep being
//! intercepted, i.e. blocked, and the table says so.
//!
//! Learning is per user: the key is (uid, executable, server name), so one
//! user who makes a shared interpreter (`/usr/bin/python3`) reject the org
//! CA cannot switch inspection off for another user's processes. It is also
//! per container: a container's root whose `/usr/bin/curl` lacks the org CA
//! does not exempt the host's root and its `/usr/bin/curl`. A learned
//! pair expires after `intercept.learned_passthrough_ttl_secs`, connections
//! without a known uid never learn, and the table is bounded.
//! Only rejections that are about the certificate count (the client's alert:
//! unknown CA, bad/unsupported/unknown certificate).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustls::AlertDescription;

/// Pairs tracked at most; a flood of distinct names cannot grow the table.
pub const MAX_ENTRIES: usize = 4096;

/// Who rejected our certificate for which name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PassthroughKey {
    pub uid: u32,
    pub exe: String,
    pub server_name: String,
    /// The container the client runs in (None: the host).
    pub container: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LearnedEntry {
    pub uid: u32,
    pub exe: String,
    pub server_name: String,
    pub container: Option<String>,
    /// Certificate rejections seen (counting stops once learned).
    pub failures: u32,
    /// The last rejection, as the TLS stack reported it.
    pub last_error: String,
    /// RFC 3339 time the pair crossed the threshold; None while still counting.
    pub learned_at: Option<String>,
    /// true: spliced undecrypted; false: learned but still blocked (fail = "closed").
    pub passthrough: bool,
    #[serde(skip)]
    learned_instant: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct LearnedPassthrough {
    entries: Mutex<BTreeMap<PassthroughKey, LearnedEntry>>,
}

/// Interpreters run many programs: for them the program learned is the
/// script, so one node script with its own trust store does not exempt
/// every node program of that user (Claude Code included).
const INTERPRETERS: &[&str] = &["node", "nodejs", "python", "ruby", "perl", "bun", "deno", "java", "php"];

/// What learning is keyed by besides uid and host: the executable, and for
/// an interpreter the first argument that is not an option (the script).
pub fn program_of(exe: &str, cmdline: Option<&str>) -> String {
    let base = exe.rsplit('/').next().unwrap_or(exe);
    let interpreter = INTERPRETERS.iter().any(|i| {
        base == *i
            || base
                .strip_prefix(i)
                .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    });
    let script = interpreter
        .then(|| cmdline.and_then(|c| c.split(' ').skip(1).find(|a| !a.starts_with('-'))))
        .flatten();
    match script {
        Some(script) => format!("{exe} {script}"),
        None => exe.to_string(),
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
    /// Should this connection be spliced instead of intercepted? A pair
    /// learned longer than `ttl` ago is forgotten (and counted afresh).
    pub fn should_pass(&self, key: &PassthroughKey, now: Instant, ttl: Duration) -> bool {
        let mut entries = self.entries.lock().unwrap();
        let Some(e) = entries.get(key) else { return false };
        if e.learned_instant
            .is_some_and(|at| now.saturating_duration_since(at) >= ttl)
        {
            entries.remove(key);
            return false;
        }
        e.passthrough
    }

    /// Counts a certificate rejection; returns the entry when this one crossed `threshold`
    /// (0 disables learning). `fail_closed` records the pair but keeps intercepting.
    #[allow(clippy::too_many_arguments)]
    pub fn record_rejection(
        &self,
        key: &PassthroughKey,
        error: &str,
        threshold: u32,
        fail_closed: bool,
        now: Instant,
        now_text: impl FnOnce() -> String,
    ) -> Option<LearnedEntry> {
        if threshold == 0 {
            return None;
        }
        let mut entries = self.entries.lock().unwrap();
        if !entries.contains_key(key) && entries.len() >= MAX_ENTRIES {
            // Make room by dropping a pair still counting; learned ones stay.
            let victim = entries
                .iter()
                .find(|(_, e)| e.learned_at.is_none())
                .map(|(k, _)| k.clone());
            entries.remove(&victim?);
        }
        let e = entries.entry(key.clone()).or_insert_with(|| LearnedEntry {
            uid: key.uid,
            exe: key.exe.clone(),
            server_name: key.server_name.clone(),
            container: key.container.clone(),
            failures: 0,
            last_error: String::new(),
            learned_at: None,
            passthrough: false,
            learned_instant: None,
        });
        e.last_error = error.to_string();
        if e.learned_at.is_some() {
            return None;
        }
        e.failures += 1;
        if e.failures < threshold {
            return None;
        }
        e.learned_at = Some(now_text());
        e.learned_instant = Some(now);
        e.passthrough = !fail_closed;
        Some(e.clone())
    }

    /// A completed handshake: the client trusts us after all; forget its count.
    pub fn record_success(&self, key: &PassthroughKey) {
        let mut entries = self.entries.lock().unwrap();
        if entries.get(key).is_some_and(|e| e.learned_at.is_none()) {
            entries.remove(key);
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

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> String {
        "2026-01-01T00:00:00Z".into()
    }

    fn key(uid: u32, exe: &str, name: &str) -> PassthroughKey {
        PassthroughKey {
            uid,
            exe: exe.into(),
            server_name: name.into(),
            container: None,
        }
    }

    fn reject(l: &LearnedPassthrough, k: &PassthroughKey, threshold: u32, closed: bool) -> Option<LearnedEntry> {
        l.record_rejection(k, "unknown ca", threshold, closed, Instant::now(), now)
    }

    #[test]
    fn learns_after_threshold_per_user_exe_and_name() {
        let l = LearnedPassthrough::default();
        let curl = key(1000, "/usr/bin/curl", "api.anthropic.com");
        assert!(reject(&l, &curl, 3, false).is_none());
        assert!(reject(&l, &curl, 3, false).is_none());
        // Another tool or another name does not add to the count.
        assert!(reject(&l, &key(1000, "/usr/bin/node", "api.anthropic.com"), 3, false).is_none());
        assert!(reject(&l, &key(1000, "/usr/bin/curl", "api.openai.com"), 3, false).is_none());
        assert!(!l.should_pass(&curl, Instant::now(), DAY));
        let learned = reject(&l, &curl, 3, false).unwrap();
        assert_eq!((learned.failures, learned.passthrough), (3, true));
        assert!(l.should_pass(&curl, Instant::now(), DAY));
        assert!(!l.should_pass(&key(1000, "/usr/bin/node", "api.anthropic.com"), Instant::now(), DAY));
        assert_eq!(l.learned().len(), 1);
    }

    #[test]
    fn passthrough_learned_by_one_user_does_not_apply_to_another() {
        let l = LearnedPassthrough::default();
        let mallory = key(1001, "/usr/bin/python3", "api.openai.com");
        for _ in 0..3 {
            reject(&l, &mallory, 3, false);
        }
        assert!(l.should_pass(&mallory, Instant::now(), DAY));
        let alice = key(1000, "/usr/bin/python3", "api.openai.com");
        assert!(
            !l.should_pass(&alice, Instant::now(), DAY),
            "alice's python stays inspected"
        );
        assert!(!l.should_pass(&key(0, "/usr/bin/python3", "api.openai.com"), Instant::now(), DAY));
    }

    #[test]
    fn passthrough_learned_in_a_container_does_not_apply_to_the_host_or_another_container() {
        let l = LearnedPassthrough::default();
        let in_container = PassthroughKey {
            container: Some("c0ffee".into()),
            ..key(0, "/usr/bin/curl", "api.openai.com")
        };
        for _ in 0..3 {
            reject(&l, &in_container, 3, false);
        }
        assert!(l.should_pass(&in_container, Instant::now(), DAY));
        let host = key(0, "/usr/bin/curl", "api.openai.com");
        assert!(
            !l.should_pass(&host, Instant::now(), DAY),
            "the host's curl stays inspected"
        );
        let other = PassthroughKey {
            container: Some("beef".into()),
            ..host
        };
        assert!(!l.should_pass(&other, Instant::now(), DAY));
        assert_eq!(l.learned()[0].container.as_deref(), Some("c0ffee"));
    }

    #[test]
    fn a_learned_pair_expires_and_is_counted_afresh() {
        let l = LearnedPassthrough::default();
        let k = key(1000, "/x", "h");
        let t0 = Instant::now();
        l.record_rejection(&k, "e", 1, false, t0, now).unwrap();
        assert!(l.should_pass(&k, t0 + Duration::from_secs(59), Duration::from_secs(60)));
        assert!(!l.should_pass(&k, t0 + Duration::from_secs(60), Duration::from_secs(60)));
        assert!(l.learned().is_empty(), "expired pairs are dropped");
    }

    #[test]
    fn a_flood_of_names_keeps_the_table_bounded_and_learned_pairs() {
        let l = LearnedPassthrough::default();
        let learned = key(1000, "/x", "learned");
        reject(&l, &learned, 1, false).unwrap();
        for i in 0..(MAX_ENTRIES * 2) {
            reject(&l, &key(1000, "/x", &format!("n{i}")), 3, false);
        }
        assert!(l.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(l.should_pass(&learned, Instant::now(), DAY));
    }

    #[test]
    fn an_interpreter_learns_per_script_not_for_all_its_programs() {
        assert_eq!(
            program_of(
                "/usr/bin/node",
                Some("node --max-old-space-size=4096 /opt/tool/cli.js run")
            ),
            "/usr/bin/node /opt/tool/cli.js"
        );
        assert_eq!(
            program_of("/usr/bin/python3.11", Some("python3 -u sync.py")),
            "/usr/bin/python3.11 sync.py"
        );
        assert_eq!(program_of("/usr/bin/curl", Some("curl -k https://x")), "/usr/bin/curl");
        assert_eq!(program_of("/usr/bin/node", None), "/usr/bin/node");
        assert_eq!(program_of("/usr/bin/nodemon", Some("nodemon x.js")), "/usr/bin/nodemon");
    }

    #[test]
    fn success_resets_the_count() {
        let l = LearnedPassthrough::default();
        let k = key(1000, "/x", "h");
        reject(&l, &k, 2, false);
        l.record_success(&k);
        assert!(reject(&l, &k, 2, false).is_none());
        assert!(reject(&l, &k, 2, false).is_some());
        l.record_success(&k);
        assert!(l.should_pass(&k, Instant::now(), DAY), "a learned pair stays learned");
    }

    #[test]
    fn fail_closed_records_but_keeps_blocking() {
        let l = LearnedPassthrough::default();
        let k = key(1000, "/x", "h");
        let e = reject(&l, &k, 1, true).unwrap();
        assert!(!e.passthrough);
        assert!(!l.should_pass(&k, Instant::now(), DAY));
        assert_eq!(l.learned().len(), 1);
    }

    #[test]
    fn zero_disables_learning() {
        let l = LearnedPassthrough::default();
        for _ in 0..10 {
            assert!(reject(&l, &key(1000, "/x", "h"), 0, false).is_none());
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
