//! Where "now" comes from, injected so tests can move time (cooldowns,
//! quota windows).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub trait Clock: Send + Sync {
    /// Monotonic time, for intervals.
    fn now(&self) -> Instant;
    /// Wall time, for calendar boundaries and dates providers send.
    fn wall(&self) -> SystemTime;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock tests move by hand. It starts at 2027-01-15T08:00:00Z
/// (1,800,000,000 s after the epoch).
pub struct ManualClock {
    start: Instant,
    wall: Mutex<SystemTime>,
    offset: Mutex<Duration>,
}

impl ManualClock {
    pub fn new() -> std::sync::Arc<Self> {
        Self::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    /// A clock whose wall time starts at `wall`.
    pub fn at(wall: SystemTime) -> std::sync::Arc<Self> {
        std::sync::Arc::new(ManualClock {
            start: Instant::now(),
            wall: Mutex::new(wall),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    pub fn advance(&self, d: Duration) {
        *self.offset.lock().expect("clock lock") += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().expect("clock lock")
    }

    fn wall(&self) -> SystemTime {
        *self.wall.lock().expect("clock lock") + *self.offset.lock().expect("clock lock")
    }
}
