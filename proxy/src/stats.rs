//! Counters shown by `promptwall status`.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
pub struct Stats(Arc<Counters>);

#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub tls_intercepted: AtomicU64,
    pub tls_passthrough: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub audit_errors: AtomicU64,
    /// The last audit write failed: new exchanges are refused before they
    /// reach a provider until a row commits again.
    pub audit_unhealthy: AtomicBool,
    /// (uid, exe, server name) triples that keep rejecting our certificate.
    pub learned: crate::passthrough::LearnedPassthrough,
}

impl std::ops::Deref for Stats {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.0
    }
}
