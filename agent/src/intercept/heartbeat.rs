//! Proof of life for the kernel side: connect4 redirects only while the value
//! written here is younger than the max age, so a hung agent fails open (or
//! closed) just like a dead one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ebpf::Loaded;
use super::sys::monotonic_ns;

pub const INTERVAL: Duration = Duration::from_secs(1);

pub fn beat(loaded: &Mutex<Option<Loaded>>) -> anyhow::Result<()> {
    if let Some(loaded) = loaded.lock().unwrap().as_mut() {
        loaded.write_heartbeat(monotonic_ns())?;
    }
    Ok(())
}

pub fn spawn(loaded: Arc<Mutex<Option<Loaded>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = beat(&loaded) {
                tracing::error!("{e:#}");
            }
        }
    })
}
