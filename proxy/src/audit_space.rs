//! Refusing before forwarding when the local audit store's disk is (nearly)
//! full. A failed row is only known after the exchange that wrote it, so
//! without this check the first prompt sent once the disk fills would leave
//! unaudited; free space is the one failure that can be seen beforehand.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Re-read free space at most this often (one statvfs per interval).
const RECHECK: Duration = Duration::from_millis(250);

pub struct AuditSpace {
    /// The directory of the SQLite store; None for a remote store.
    dir: Option<PathBuf>,
    min_free_bytes: u64,
    origin: Instant,
    checked_at_ms: AtomicU64,
    low: AtomicBool,
}

impl AuditSpace {
    /// `url` is `[audit] url`; only `sqlite://` stores live on this disk.
    pub fn new(url: &str, min_free_bytes: u64) -> Self {
        let dir = url
            .strip_prefix("sqlite://")
            .map(|rest| rest.split('?').next().unwrap_or(rest))
            .filter(|p| !p.is_empty() && *p != ":memory:")
            .map(|p| {
                Path::new(p)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."))
            });
        AuditSpace {
            dir,
            min_free_bytes,
            origin: Instant::now(),
            checked_at_ms: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
        }
    }

    /// Whether the store's filesystem has less than `[audit] min_free_bytes`
    /// available (to this unprivileged-or-not process).
    pub fn is_low(&self) -> bool {
        let Some(dir) = &self.dir else { return false };
        if self.min_free_bytes == 0 {
            return false;
        }
        let now = self.origin.elapsed().as_millis() as u64;
        let last = self.checked_at_ms.load(Ordering::Relaxed);
        if last != u64::MAX && now.saturating_sub(last) < RECHECK.as_millis() as u64 {
            return self.low.load(Ordering::Relaxed);
        }
        self.checked_at_ms.store(now, Ordering::Relaxed);
        let low = available_bytes(dir).is_some_and(|free| free < self.min_free_bytes);
        self.low.store(low, Ordering::Relaxed);
        low
    }
}

fn available_bytes(dir: &Path) -> Option<u64> {
    let path = CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // Root may write into the filesystem's reserve; nobody else can, and a
    // user filling a shared disk to the reserve must not stop root's writer.
    // SAFETY: geteuid has no preconditions.
    let blocks = if unsafe { libc::geteuid() } == 0 {
        st.f_bfree
    } else {
        st.f_bavail
    };
    Some(blocks as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_on_a_disk_below_the_threshold_is_low() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/audit.db", dir.path().display());
        assert!(AuditSpace::new(&url, u64::MAX).is_low());
        assert!(!AuditSpace::new(&url, 1).is_low());
        assert!(!AuditSpace::new(&url, 0).is_low(), "0 turns the check off");
        assert!(
            !AuditSpace::new("postgres://h/db", u64::MAX).is_low(),
            "a remote store is not on this disk"
        );
    }
}
