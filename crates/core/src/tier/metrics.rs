//! The tier's numbers, for `stats()` and `/metrics`: how long Redis takes to answer, how often
//! the circuit opened and why, how lease waits end, and the outage accounting. Atomics only:
//! recording never takes a lock, and the numbers outlive the tier (`close()` lets it go).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::failure::{Cause, OUTAGES};

/// Upper bounds of the round-trip histogram, in seconds (Prometheus buckets; `+Inf` implied).
pub const LATENCY_BUCKETS: [f64; 11] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// How a wait on another instance's lease ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Entries arrived that answer the waiters (the other fetch landed).
    Answered,
    /// The lease was given back or expired: this instance took over.
    TookOver,
    /// Waited as long as a lease lasts: fetched without one.
    GaveUp,
    /// Redis failed during the wait: fetched alone.
    TierFailed,
}

pub const WAIT_OUTCOMES: [WaitOutcome; 4] =
    [WaitOutcome::Answered, WaitOutcome::TookOver, WaitOutcome::GaveUp, WaitOutcome::TierFailed];

impl WaitOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitOutcome::Answered => "answered",
            WaitOutcome::TookOver => "took_over",
            WaitOutcome::GaveUp => "gave_up",
            WaitOutcome::TierFailed => "tier_failed",
        }
    }
}

#[derive(Debug, Default)]
pub struct TierMetrics {
    /// Failed operations and connection attempts (timeouts, connection errors, refusals, script
    /// errors, data errors).
    errors: AtomicU64,
    /// Of which: a key of the wrong type (no outage; the key is repaired).
    data_errors: AtomicU64,
    /// Per bucket of `LATENCY_BUCKETS` (not cumulative), then `+Inf`.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_micros: AtomicU64,
    /// Per cause of `OUTAGES`.
    openings: [AtomicU64; OUTAGES.len()],
    /// Per outcome of `WAIT_OUTCOMES`.
    waits: [AtomicU64; WAIT_OUTCOMES.len()],
    wait_micros: AtomicU64,
    /// Upstream calls counted by this instance alone while Redis was away, and of those, the
    /// ones added to the shared counters when it came back (the rest fell in windows past).
    unshared_calls: AtomicU64,
    reconciled_calls: AtomicU64,
}

/// A snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TierStats {
    pub errors: u64,
    pub data_errors: u64,
    /// Cumulative counts per bucket of `LATENCY_BUCKETS`, then the total (`+Inf`).
    pub latency_buckets: Vec<u64>,
    pub latency_seconds: f64,
    pub circuit_openings: Vec<(&'static str, u64)>,
    pub lease_waits: Vec<(&'static str, u64)>,
    pub lease_wait_seconds: f64,
    pub unshared_calls: u64,
    pub reconciled_calls: u64,
}

impl TierStats {
    /// Round trips measured (`+Inf`'s count).
    pub fn latency_count(&self) -> u64 {
        self.latency_buckets.last().copied().unwrap_or(0)
    }
}

impl TierMetrics {
    pub fn error(&self, cause: Cause) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if cause == Cause::Data {
            self.data_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// A round trip Redis answered (with a value or an error of its own).
    pub fn round_trip(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|le| seconds <= *le).unwrap_or(LATENCY_BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn opened(&self, cause: Cause) {
        if let Some(i) = OUTAGES.iter().position(|c| *c == cause) {
            self.openings[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn waited(&self, outcome: WaitOutcome, took: Duration) {
        let i = WAIT_OUTCOMES.iter().position(|o| *o == outcome).expect("listed");
        self.waits[i].fetch_add(1, Ordering::Relaxed);
        self.wait_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn unshared_call(&self) {
        self.unshared_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconciled(&self, calls: u64) {
        self.reconciled_calls.fetch_add(calls, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TierStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut cumulative = 0;
        let latency_buckets = self
            .latency
            .iter()
            .map(|count| {
                cumulative += load(count);
                cumulative
            })
            .collect();
        TierStats {
            errors: load(&self.errors),
            data_errors: load(&self.data_errors),
            latency_buckets,
            latency_seconds: load(&self.latency_micros) as f64 / 1e6,
            circuit_openings: OUTAGES.iter().zip(&self.openings).map(|(c, n)| (c.as_str(), load(n))).collect(),
            lease_waits: WAIT_OUTCOMES.iter().zip(&self.waits).map(|(o, n)| (o.as_str(), load(n))).collect(),
            lease_wait_seconds: load(&self.wait_micros) as f64 / 1e6,
            unshared_calls: load(&self.unshared_calls),
            reconciled_calls: load(&self.reconciled_calls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_causes_counted() {
        let metrics = TierMetrics::default();
        for ms in [0.3, 0.8, 7.0, 7.0, 3_000.0] {
            metrics.round_trip(Duration::from_secs_f64(ms / 1000.0));
        }
        metrics.opened(Cause::Timeout);
        metrics.opened(Cause::Failover);
        metrics.opened(Cause::Timeout);
        metrics.error(Cause::Data);
        metrics.waited(WaitOutcome::Answered, Duration::from_millis(250));
        let s = metrics.snapshot();
        assert_eq!(s.latency_buckets, vec![1, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 5]);
        assert_eq!(s.latency_count(), 5);
        assert!((s.latency_seconds - 3.0151).abs() < 1e-6);
        assert_eq!(s.circuit_openings[0], ("timeout", 2));
        assert_eq!(s.circuit_openings[2], ("failover", 1));
        assert_eq!((s.errors, s.data_errors), (1, 1));
        assert_eq!(s.lease_waits[0], ("answered", 1));
        assert_eq!(s.lease_wait_seconds, 0.25);
    }
}
