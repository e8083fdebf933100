//! Where exchanges become audit rows, and the one policy every path (HTTP,
//! refused and spliced connections, WebSocket messages) follows: an
//! exchange completes only after its row is committed, and a row that
//! cannot be committed fails the exchange visibly and stops new exchanges
//! from reaching a provider until a row commits again.
//!
//! The agent plugs the durable writer in as an [`AuditSink`]; tests plug a
//! closure.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use promptwall_audit::AuditRecord;

use crate::exchange::Exchange;
use crate::stats::Stats;

/// Writes a row durably; resolves only once it is committed.
pub type AuditSink = Arc<dyn Fn(AuditRecord) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Clears secrets and personal data from a row's free text about its
/// client process before it is stored (see [`Recorder`]).
pub type Scrubber = Arc<dyn Fn(&mut AuditRecord) + Send + Sync>;

/// The audit store refused a row; the exchange it belongs to must fail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit row could not be written ({0}); see the agent's log")]
pub struct AuditFailed(pub String);

/// Commits exchanges as rows under the one policy (module docs).
#[derive(Clone)]
pub struct Recorder {
    sink: AuditSink,
    scrub: Scrubber,
    stats: Stats,
    space: Arc<crate::audit_space::AuditSpace>,
    /// Metrics, traces and the live view learn of each committed row.
    pub observers: crate::observe::Observers,
}

impl Recorder {
    /// Every row passes `scrub` first: coding CLIs take the prompt on their
    /// command line (`gemini -p "…"`), and a spliced row's process was never
    /// inspected at all.
    pub fn new(sink: AuditSink, scrub: Scrubber, stats: Stats, space: crate::audit_space::AuditSpace) -> Self {
        Recorder {
            sink,
            scrub,
            stats,
            space: Arc::new(space),
            observers: Default::default(),
        }
    }

    /// Resolves once the row is committed. Borrows nothing, so a caller
    /// that is not `Sync` can await it.
    pub fn commit(&self, ex: Exchange) -> impl Future<Output = Result<(), AuditFailed>> + Send + 'static {
        let id = ex.id.clone();
        let started = ex.started_wall;
        let duration = ex.duration.unwrap_or_else(|| ex.started.elapsed());
        let added = ex
            .ttfb
            .filter(|_| ex.dispatched)
            .map(|ttfb| ttfb.saturating_sub(ex.upstream_wait));
        let first_chunk = ex.first_chunk;
        let mut row = ex.into_record();
        (self.scrub)(&mut row);
        // Only a row someone observes is copied.
        let observers = (!self.observers.is_empty()).then(|| (self.observers.clone(), row.clone()));
        let write = (self.sink)(row);
        let stats = self.stats.clone();
        async move {
            let result = write.await;
            if let Some((observers, row)) = observers {
                observers.notify(&crate::observe::Observed {
                    row: &row,
                    committed: result.is_ok(),
                    started,
                    duration,
                    added,
                    first_chunk,
                });
            }
            stats.audit_unhealthy.store(result.is_err(), Ordering::Relaxed);
            result.map_err(|e| {
                stats.audit_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(request_id = %id, "audit row could not be written: {e}; check the audit store (disk space, permissions)");
                AuditFailed(e)
            })
        }
    }

    /// Whether the audit store refused its last row or its disk is nearly
    /// full: then nothing new may reach a provider (it would leave
    /// unaudited). A refusal's own row is the probe that closes the gate
    /// again once the store recovers.
    pub fn is_unhealthy(&self) -> bool {
        self.stats.audit_unhealthy.load(Ordering::Relaxed) || self.space.is_low()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Client, Listener};

    fn recorder(ok: bool) -> (Recorder, Stats) {
        let stats = Stats::default();
        let sink: AuditSink = Arc::new(move |_| {
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("disk full".into())
                }
            })
        });
        let scrub: Scrubber = Arc::new(|_| {});
        let space = crate::audit_space::AuditSpace::new("", 0);
        (Recorder::new(sink, scrub, stats.clone(), space), stats)
    }

    #[tokio::test]
    async fn a_refused_row_fails_the_exchange_and_closes_the_gate_until_a_row_commits() {
        let (failing, stats) = recorder(false);
        let err = failing
            .commit(Exchange::new(Listener::Explicit, Client::default()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(failing.is_unhealthy());
        assert_eq!(stats.audit_errors.load(Ordering::Relaxed), 1);

        let (working, _) = recorder(true);
        let working = Recorder {
            stats: stats.clone(),
            ..working
        };
        working
            .commit(Exchange::new(Listener::Explicit, Client::default()))
            .await
            .unwrap();
        assert!(!working.is_unhealthy(), "a committed row reopens the gate");
    }

    struct Seen(std::sync::Mutex<Vec<(String, bool, Option<std::time::Duration>)>>);
    impl crate::observe::Observer for Seen {
        fn observe(&self, seen: &crate::observe::Observed<'_>) {
            let row = (seen.row.cmdline.clone().unwrap_or_default(), seen.committed, seen.added);
            self.0.lock().unwrap().push(row);
        }
    }

    #[tokio::test]
    async fn observers_see_each_row_as_stored_with_whether_it_committed_and_what_promptwall_added() {
        let seen = Arc::new(Seen(Default::default()));
        for store_works in [true, false] {
            let (recorder, _) = recorder(store_works);
            let recorder = Recorder {
                scrub: Arc::new(|row| row.cmdline = Some("[scrubbed]".into())),
                ..recorder
            };
            recorder.observers.add(seen.clone());
            let mut ex = Exchange::new(Listener::Explicit, Client::default());
            ex.dispatched = true;
            ex.ttfb = Some(std::time::Duration::from_millis(50));
            ex.upstream_wait = std::time::Duration::from_millis(45);
            let _ = recorder.commit(ex).await;
        }
        let added = Some(std::time::Duration::from_millis(5));
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![
                ("[scrubbed]".to_string(), true, added),
                ("[scrubbed]".to_string(), false, added)
            ]
        );
    }

    #[tokio::test]
    async fn every_row_is_scrubbed_before_the_sink_sees_it() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let rows = seen.clone();
        let sink: AuditSink = Arc::new(move |row: AuditRecord| {
            rows.lock().unwrap().push(row);
            Box::pin(async { Ok(()) })
        });
        let scrub: Scrubber = Arc::new(|row| row.cmdline = Some("[scrubbed]".into()));
        let recorder = Recorder::new(
            sink,
            scrub,
            Stats::default(),
            crate::audit_space::AuditSpace::new("", 0),
        );
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        ex.client.identity = Some(crate::origin::ClientIdentity {
            cmdline: Some("claude -p sk-secret".into()),
            ..Default::default()
        });
        recorder.commit(ex).await.unwrap();
        assert_eq!(seen.lock().unwrap()[0].cmdline.as_deref(), Some("[scrubbed]"));
    }
}
