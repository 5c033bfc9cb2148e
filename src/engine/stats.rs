//! Monotonic counters, readable at any time without the engine's lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every accepted request lands in exactly one of `user_hits`, `shared_hits`, `stale_hits`,
/// `misses`, `coalesced` or `rejected`; every upstream request is a miss or a background refresh.
#[derive(Default, Debug)]
pub struct Counters {
    pub requests: Counter,
    pub user_hits: Counter,
    pub shared_hits: Counter,
    pub stale_hits: Counter,
    pub misses: Counter,
    pub coalesced: Counter,
    pub rejected: Counter,
    pub stale_if_error: Counter,
    pub upstream_requests: Counter,
    pub upstream_errors: Counter,
    pub rate_limited: Counter,
    pub background_refreshes: Counter,
}

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A snapshot: the counters plus gauges of the current state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub requests: u64,
    pub user_hits: u64,
    pub shared_hits: u64,
    pub stale_hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub rejected: u64,
    /// Requests whose fetch failed and that were answered from a stale entry instead.
    pub stale_if_error: u64,
    pub upstream_requests: u64,
    /// Upstream failures other than rate limits.
    pub upstream_errors: u64,
    /// HTTP 429 answers.
    pub rate_limited: u64,
    pub background_refreshes: u64,
    pub shared_entries: u64,
    pub users: u64,
    pub inflight: u64,
    /// End of the provider-wide rate-limit cooldown (epoch ms, service clock), 0 when none.
    pub backoff_until: i64,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            requests: self.requests.get(),
            user_hits: self.user_hits.get(),
            shared_hits: self.shared_hits.get(),
            stale_hits: self.stale_hits.get(),
            misses: self.misses.get(),
            coalesced: self.coalesced.get(),
            rejected: self.rejected.get(),
            stale_if_error: self.stale_if_error.get(),
            upstream_requests: self.upstream_requests.get(),
            upstream_errors: self.upstream_errors.get(),
            rate_limited: self.rate_limited.get(),
            background_refreshes: self.background_refreshes.get(),
            ..Stats::default()
        }
    }
}
