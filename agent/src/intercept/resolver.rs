//! Keeps resolved provider addresses in the redirect set: resolves every
//! provider host at min(TTL, configured interval) and keeps each address until
//! it has been absent from DNS for `address_keep_secs` (CDN churn).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioAsyncResolver;

use super::addresses::{AddressSet, Prefix};

/// Applies additions/removals to whichever backend is active.
pub trait AddressSink: Send + Sync + 'static {
    fn apply(&self, added: &[Prefix], removed: &[Prefix]);
}

const MIN_INTERVAL: Duration = Duration::from_secs(5);

pub fn spawn(
    hosts: Vec<String>,
    interval: Duration,
    keep: Duration,
    set: Arc<Mutex<AddressSet>>,
    sink: Arc<dyn AddressSink>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let resolver = match TokioAsyncResolver::tokio_from_system_conf() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(
                    "cannot read the system resolver config ({e}); only static provider addresses are redirected"
                );
                return;
            }
        };
        loop {
            let mut next = interval;
            let now = Instant::now();
            let mut added = Vec::new();
            for host in &hosts {
                match resolver.lookup_ip(host.as_str()).await {
                    Ok(lookup) => {
                        let ttl = lookup.valid_until().saturating_duration_since(now);
                        next = next.min(ttl.max(MIN_INTERVAL));
                        let ips: Vec<IpAddr> = lookup.iter().collect();
                        let mut set = set.lock().unwrap();
                        for ip in ips {
                            if set.saw_resolved(ip, now) {
                                added.push(Prefix::host(ip));
                            }
                        }
                    }
                    Err(e) => tracing::warn!("resolving provider host {host} failed: {e}; keeping its known addresses"),
                }
            }
            let removed = set.lock().unwrap().expire(now, keep);
            if !added.is_empty() || !removed.is_empty() {
                tracing::info!(
                    added = added.len(),
                    removed = removed.len(),
                    "provider address set updated"
                );
                sink.apply(&added, &removed);
            }
            tokio::time::sleep(next).await;
        }
    })
}
