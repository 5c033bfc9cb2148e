//! The tier's circuit breaker. After a Redis failure the instance stops asking Redis for a while
//! and runs on its local tier alone: 1 s, doubling while probes keep failing, up to 30 s. The
//! first operation after the window is the probe: its success closes the circuit. Real time,
//! not the service clock: a manual clock must not keep Redis shut out.
//!
//! One outage is one `Degraded` and one `Restored`, however it flaps. A Redis that is partly
//! there (a Cluster master down while the others answer, a link dropping some replies) lets a
//! probe through now and then, and fails the operation after it. So a closed circuit settles
//! for `SETTLE` before the outage is over: a failure meanwhile reopens it as the same outage
//! (no new event; its window doubling on from where it was), and `Restored` is told once the
//! circuit stayed closed that long.

use std::time::{Duration, Instant};

pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a closed circuit must stay closed for its outage to be over.
pub const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum Circuit {
    Closed {
        /// Closed after an outage, not yet for `SETTLE`.
        settling: Option<Settling>,
    },
    Open {
        /// No operation is attempted before this.
        until: Instant,
        backoff: Duration,
        /// When the tier went down (for the `restored` event).
        since: Instant,
    },
}

/// An outage whose circuit closed at `closed_at`, and may yet reopen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settling {
    closed_at: Instant,
    since: Instant,
    backoff: Duration,
}

/// A change worth one event, or (`Settling`) a check to make later.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Degraded { retry_in: Duration },
    /// The circuit closed after an outage: call `settle` at `at`.
    Settling { at: Instant },
    Restored { down_for: Duration },
}

impl Default for Circuit {
    fn default() -> Circuit {
        Circuit::Closed { settling: None }
    }
}

impl Circuit {
    pub fn allows(&self, now: Instant) -> bool {
        match self {
            Circuit::Closed { .. } => true,
            Circuit::Open { until, .. } => now >= *until,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self, Circuit::Closed { .. })
    }

    pub fn failure(&mut self, now: Instant) -> Option<Transition> {
        match *self {
            Circuit::Closed { settling: None } => {
                *self = Circuit::Open { until: now + FIRST_BACKOFF, backoff: FIRST_BACKOFF, since: now };
                Some(Transition::Degraded { retry_in: FIRST_BACKOFF })
            }
            // Closed a moment ago: the same outage goes on, and the window grows on.
            Circuit::Closed { settling: Some(Settling { since, backoff, .. }) } => {
                let backoff = (backoff * 2).min(MAX_BACKOFF);
                *self = Circuit::Open { until: now + backoff, backoff, since };
                None
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
            Circuit::Closed { .. } => self.settle(now),
            Circuit::Open { since, .. } if started < since => None,
            Circuit::Open { since, backoff, .. } => {
                *self = Circuit::Closed { settling: Some(Settling { closed_at: now, since, backoff }) };
                Some(Transition::Settling { at: now + SETTLE })
            }
        }
    }

    /// The outage is over if the circuit stayed closed for `SETTLE`.
    pub fn settle(&mut self, now: Instant) -> Option<Transition> {
        match *self {
            Circuit::Closed { settling: Some(Settling { closed_at, since, .. }) } if now >= closed_at + SETTLE => {
                *self = Circuit::Closed { settling: None };
                Some(Transition::Restored { down_for: closed_at.saturating_duration_since(since) })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_doubles_and_restores() {
        let t0 = Instant::now();
        let mut circuit = Circuit::default();
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
        assert_eq!(circuit.success(now, now), Some(Transition::Settling { at: now + SETTLE }));
        assert!(circuit.is_closed() && circuit.allows(now));
        // Restored once it stayed closed for SETTLE (by a success then, or by the check).
        assert_eq!(circuit.success(now + SETTLE / 2, now), None);
        assert_eq!(circuit.settle(now + SETTLE), Some(Transition::Restored { down_for: now - t0 }));
        assert_eq!(circuit.success(now + SETTLE, now), None);
        assert_eq!(circuit.settle(now + SETTLE), None, "once");
    }

    /// A Redis that is partly there (a Cluster master down) lets probes through and fails the
    /// operations after them: one outage, one event each way, the window growing on.
    #[test]
    fn a_flapping_outage_is_one_outage() {
        let t0 = Instant::now();
        let mut circuit = Circuit::default();
        let mut events = vec![circuit.failure(t0)];
        let mut windows = Vec::new();
        for _ in 0..8 {
            let now = match circuit {
                Circuit::Open { until, backoff, .. } => {
                    windows.push(backoff.as_secs());
                    until
                }
                Circuit::Closed { .. } => unreachable!(),
            };
            events.push(circuit.success(now, now).filter(|t| !matches!(t, Transition::Settling { .. })));
            events.push(circuit.failure(now + Duration::from_millis(300)));
        }
        let events: Vec<Transition> = events.into_iter().flatten().collect();
        assert_eq!(events, vec![Transition::Degraded { retry_in: FIRST_BACKOFF }]);
        assert_eq!(windows, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        // Then it holds: restored once, for the whole outage.
        let Circuit::Open { until, .. } = circuit else { unreachable!() };
        assert_eq!(circuit.success(until, until), Some(Transition::Settling { at: until + SETTLE }));
        assert_eq!(circuit.settle(until + SETTLE), Some(Transition::Restored { down_for: until - t0 }));
        // A failure after it settled is a new outage.
        assert_eq!(circuit.failure(until + SETTLE * 2), Some(Transition::Degraded { retry_in: FIRST_BACKOFF }));
    }
}
