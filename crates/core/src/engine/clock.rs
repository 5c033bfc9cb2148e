//! The service clock. TTLs, cooldowns and ages read it; network timeouts use real time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::ClockKind;
use crate::cache::Millis;

#[derive(Debug)]
pub enum Clock {
    System,
    /// Milliseconds since the epoch, moved only by `advance`.
    Manual(AtomicI64),
}

impl Clock {
    pub fn new(kind: ClockKind) -> Clock {
        match kind {
            ClockKind::System => Clock::System,
            ClockKind::Manual => Clock::Manual(AtomicI64::new(system_now())),
        }
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::System => system_now(),
            Clock::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock forward (saturating far beyond any date that matters, so arithmetic
    /// on it never overflows); `false` (and no effect) on the system clock.
    pub fn advance(&self, ms: u64) -> bool {
        match self {
            Clock::System => false,
            Clock::Manual(now) => {
                let step = i64::try_from(ms).unwrap_or(i64::MAX);
                let _ =
                    now.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(t.saturating_add(step).min(LATEST)));
                true
            }
        }
    }
}

/// The latest time a manual clock reaches (about 73 million years): TTLs and windows can be
/// added to it without overflow.
const LATEST: Millis = i64::MAX / 4;

fn system_now() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = Clock::new(ClockKind::Manual);
        let start = clock.now();
        assert!((start - system_now()).abs() < 5_000, "starts at the current time");
        assert_eq!(clock.now(), start);
        assert!(clock.advance(600_000));
        assert_eq!(clock.now(), start + 600_000);
        assert!(!Clock::new(ClockKind::System).advance(1));
        for _ in 0..4 {
            clock.advance(u64::MAX);
        }
        assert_eq!(clock.now(), LATEST, "saturates instead of wrapping");
    }
}
