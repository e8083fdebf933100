//! Who learns of each exchange once its row is committed: metrics, traces
//! and the live view. They hang off the one place every row passes
//! ([`Recorder`](crate::audit_sink::Recorder)), so no path (HTTP, spliced,
//! refused, WebSocket message) can be counted differently from how it is
//! audited.
//!
//! Observers run on the exchange's own task right after the commit: they
//! must be cheap and never block. Anything slow (an export over the
//! network) queues and returns.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use promptwall_audit::AuditRecord;

/// One exchange as its observers see it: the row as stored (scrubbed, so
/// never a secret value) and the timings a row does not keep.
#[derive(Debug)]
pub struct Observed<'a> {
    pub row: &'a AuditRecord,
    /// False when the store refused the row: the client got an error.
    pub committed: bool,
    /// Wall-clock start of the exchange.
    pub started: SystemTime,
    /// Time from the request's start to the end of its row.
    pub duration: Duration,
    /// Time promptwall itself spent before the provider's response head
    /// reached it: the time to that head minus the time waited on the
    /// provider (reading the body, inspection, routing, connecting are
    /// promptwall's). None when nothing was sent.
    pub added: Option<Duration>,
    /// Time to the first chunk of a streamed answer the client received.
    /// None for answers that did not stream.
    pub first_chunk: Option<Duration>,
}

/// Something that learns of every committed exchange.
pub trait Observer: Send + Sync {
    fn observe(&self, seen: &Observed<'_>);
}

/// The observers of one proxy; cheap to clone, shared by every copy.
#[derive(Clone, Default)]
pub struct Observers(Arc<RwLock<Vec<Arc<dyn Observer>>>>);

impl Observers {
    pub fn add(&self, observer: Arc<dyn Observer>) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).push(observer);
    }

    pub fn is_empty(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    pub(crate) fn notify(&self, seen: &Observed<'_>) {
        for o in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            o.observe(seen);
        }
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observers").finish_non_exhaustive()
    }
}
