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

/// One line of the exposition: name (without `weather_cache_`), kind, help, value.
struct Metric {
    name: &'static str,
    counter: bool,
    help: &'static str,
    value: f64,
}

impl Stats {
    fn metrics(&self) -> [Metric; 16] {
        let counter = |name, help, value: u64| Metric { name, counter: true, help, value: value as f64 };
        let gauge = |name, help, value: f64| Metric { name, counter: false, help, value };
        [
            counter("requests_total", "Requests accepted (valid arguments, open service).", self.requests),
            counter("user_hits_total", "Requests answered by a fresh entry in the user's own cache.", self.user_hits),
            counter("shared_hits_total", "Requests answered by a fresh entry in the shared cache.", self.shared_hits),
            counter(
                "stale_hits_total",
                "Requests answered by a stale entry (stale-while-revalidate or during a cooldown).",
                self.stale_hits,
            ),
            counter("misses_total", "Requests that started an upstream fetch.", self.misses),
            counter("coalesced_total", "Requests that waited for a fetch another request started.", self.coalesced),
            counter(
                "rejected_total",
                "Requests refused without a fetch (no key, rate limited, area cooling down).",
                self.rejected,
            ),
            counter("stale_if_error_total", "Failed fetches answered from a stale entry instead.", self.stale_if_error),
            counter("upstream_requests_total", "Requests sent upstream.", self.upstream_requests),
            counter("upstream_errors_total", "Upstream failures other than rate limits.", self.upstream_errors),
            counter("rate_limited_total", "HTTP 429 answers from upstream.", self.rate_limited),
            counter(
                "background_refreshes_total",
                "Stale-while-revalidate refreshes started.",
                self.background_refreshes,
            ),
            gauge("shared_entries", "Entries in the shared cache.", self.shared_entries as f64),
            gauge("users", "Users with cached entries.", self.users as f64),
            gauge("inflight", "Upstream fetches in progress.", self.inflight as f64),
            gauge(
                "backoff_until_seconds",
                "End of the rate-limit cooldown (Unix seconds, service clock); 0 when none.",
                self.backoff_until as f64 / 1000.0,
            ),
        ]
    }

    /// The Prometheus text exposition format (version 0.0.4), every name prefixed
    /// `weather_cache_`, counters ending in `_total`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048);
        for m in self.metrics() {
            let kind = if m.counter { "counter" } else { "gauge" };
            out.push_str(&format!("# HELP weather_cache_{} {}\n", m.name, m.help));
            out.push_str(&format!("# TYPE weather_cache_{} {kind}\n", m.name));
            out.push_str(&format!("weather_cache_{} {}\n", m.name, m.value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_lists_every_metric_once() {
        let stats = Stats { requests: 7, misses: 2, backoff_until: 1_700_000_000_500, ..Stats::default() };
        let text = stats.to_prometheus();
        assert!(text.contains("# TYPE weather_cache_requests_total counter\nweather_cache_requests_total 7\n"));
        assert!(text.contains("# TYPE weather_cache_inflight gauge\nweather_cache_inflight 0\n"));
        assert!(text.contains("weather_cache_backoff_until_seconds 1700000000.5\n"));
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 16);
        assert!(text.ends_with('\n'));
    }
}
