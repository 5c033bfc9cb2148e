//! The tier's circuit breaker. After a Redis failure the instance stops asking Redis for a while
//! and runs on its local tier alone: 1 s, doubling while probes keep failing, up to 30 s. The
//! first operation after the window is the probe: its success closes the circuit. Real time,
//! not the service clock: a manual clock must not keep Redis shut out.

use std::time::{Duration, Instant};

pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub enum Circuit {
    Closed,
    Open {
        /// No operation is attempted before this.
        until: Instant,
        backoff: Duration,
        /// When the tier went down (for the `restored` event).
        since: Instant,
    },
}

/// A change worth one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Degraded { retry_in: Duration },
    Restored { down_for: Duration },
}

impl Circuit {
    pub fn allows(&self, now: Instant) -> bool {
        match self {
            Circuit::Closed => true,
            Circuit::Open { until, .. } => now >= *until,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self, Circuit::Closed)
    }

    pub fn failure(&mut self, now: Instant) -> Option<Transition> {
        match *self {
            Circuit::Closed => {
                *self = Circuit::Open { until: now + FIRST_BACKOFF, backoff: FIRST_BACKOFF, since: now };
                Some(Transition::Degraded { retry_in: FIRST_BACKOFF })
            }
            // A failed probe: wait twice as long. (An operation that started before the circuit
            // opened and fails late is no probe, and changes nothing.)
            Circuit::Open { until, backoff, since } if now >= until => {
                let backoff = (backoff * 2).min(MAX_BACKOFF);
                *self = Circuit::Open { until: now + backoff, backoff, since };
                None
            }
            Circuit::Open { .. } => None,
        }
    }

    /// An operation begun at `started` succeeded. One begun before the circuit opened proves
    /// nothing about Redis now (a slow success from before the failure).
    pub fn success(&mut self, now: Instant, started: Instant) -> Option<Transition> {
        match *self {
            Circuit::Closed => None,
            Circuit::Open { since, .. } if started < since => None,
            Circuit::Open { since, .. } => {
                *self = Circuit::Closed;
                Some(Transition::Restored { down_for: now.saturating_duration_since(since) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_doubles_and_restores() {
        let t0 = Instant::now();
        let mut circuit = Circuit::Closed;
        assert_eq!(circuit.failure(t0), Some(Transition::Degraded { retry_in: FIRST_BACKOFF }));
        assert!(!circuit.allows(t0 + Duration::from_millis(999)));
        assert_eq!(circuit.failure(t0 + Duration::from_millis(10)), None, "a late failure is no probe");
        assert!(circuit.allows(t0 + FIRST_BACKOFF));
        // Probes failing: 2 s, 4 s, ... capped at 30 s.
        let mut now = t0 + FIRST_BACKOFF;
        for expected in [2, 4, 8, 16, 30, 30] {
            assert_eq!(circuit.failure(now), None);
            assert!(!circuit.allows(now + Duration::from_secs(expected) - Duration::from_millis(1)));
            now += Duration::from_secs(expected);
            assert!(circuit.allows(now));
        }
        assert_eq!(circuit.success(now, t0 - Duration::from_millis(1)), None, "begun before it opened");
        assert_eq!(circuit.success(now, now), Some(Transition::Restored { down_for: now - t0 }));
        assert!(circuit.is_closed() && circuit.allows(now));
        assert_eq!(circuit.success(now, now), None);
    }
}
