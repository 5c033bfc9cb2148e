//! Counters and their snapshot. Two identities hold at every instant a snapshot can be taken
//! (every counter of them moves under the engine's lock, and `stats` reads them under it):
//!
//! - every accepted request lands in exactly one of `user_hits`, `shared_hits`, `stale_hits`,
//!   `misses`, `coalesced` or `rejected`;
//! - every flight (started by a miss or a background refresh) is still in the air, or ended in
//!   exactly one of `fetches` (it went to the providers), `tier_hits` (the shared tier answered)
//!   or `budget_rejected` (a budget refused every call it could make).
//!
//! Upstream calls are counted per provider; with failover one fetch may make several.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::tier::{TierStats, LATENCY_BUCKETS};

#[derive(Debug)]
pub struct Counters {
    pub requests: Counter,
    pub user_hits: Counter,
    pub shared_hits: Counter,
    pub stale_hits: Counter,
    pub misses: Counter,
    pub coalesced: Counter,
    pub rejected: Counter,
    pub stale_if_error: Counter,
    pub background_refreshes: Counter,
    pub fetches: Counter,
    pub tier_hits: Counter,
    pub budget_rejected: Counter,
    /// In the order of the configured providers.
    pub providers: Vec<ProviderCounters>,
}

#[derive(Debug, Default)]
pub struct ProviderCounters {
    pub upstream_requests: Counter,
    pub upstream_errors: Counter,
    pub rate_limited: Counter,
}

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
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
    /// Calls made to providers, all of them (see `providers` for each).
    pub upstream_requests: u64,
    /// Upstream failures other than rate limits.
    pub upstream_errors: u64,
    /// HTTP 429 answers.
    pub rate_limited: u64,
    pub background_refreshes: u64,
    /// Flights that went to the providers (whatever came of it, including flights `close()`
    /// cancelled and flights every provider refused without a call).
    pub fetches: u64,
    /// Flights the shared tier answered: an upstream call saved.
    pub tier_hits: u64,
    /// Failed shared-tier operations and connection attempts (Redis down, slow, or in error).
    pub tier_errors: u64,
    /// Flights a call budget refused (no call made).
    pub budget_rejected: u64,
    pub shared_entries: u64,
    pub users: u64,
    pub inflight: u64,
    /// Until when every provider is rate limited (epoch ms, service clock); 0 when one is not.
    pub backoff_until: i64,
    /// With a shared tier: whether Redis answered the last operation.
    pub tier_up: Option<bool>,
    /// With a shared tier: its round trips, circuit openings, lease waits, outage accounting.
    pub tier: Option<TierStats>,
    pub providers: Vec<ProviderStats>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderStats {
    pub name: &'static str,
    pub upstream_requests: u64,
    pub upstream_errors: u64,
    pub rate_limited: u64,
    /// End of this provider's rate-limit cooldown, 0 when none.
    pub backoff_until: i64,
}

impl Counters {
    pub fn new(providers: usize) -> Counters {
        Counters {
            requests: Counter::default(),
            user_hits: Counter::default(),
            shared_hits: Counter::default(),
            stale_hits: Counter::default(),
            misses: Counter::default(),
            coalesced: Counter::default(),
            rejected: Counter::default(),
            stale_if_error: Counter::default(),
            background_refreshes: Counter::default(),
            fetches: Counter::default(),
            tier_hits: Counter::default(),
            budget_rejected: Counter::default(),
            providers: (0..providers).map(|_| ProviderCounters::default()).collect(),
        }
    }

    /// The counters; the caller fills in the gauges and the providers' names and windows.
    pub fn snapshot(&self) -> Stats {
        let sum = |f: fn(&ProviderCounters) -> &Counter| self.providers.iter().map(|p| f(p).get()).sum();
        Stats {
            requests: self.requests.get(),
            user_hits: self.user_hits.get(),
            shared_hits: self.shared_hits.get(),
            stale_hits: self.stale_hits.get(),
            misses: self.misses.get(),
            coalesced: self.coalesced.get(),
            rejected: self.rejected.get(),
            stale_if_error: self.stale_if_error.get(),
            upstream_requests: sum(|p| &p.upstream_requests),
            upstream_errors: sum(|p| &p.upstream_errors),
            rate_limited: sum(|p| &p.rate_limited),
            background_refreshes: self.background_refreshes.get(),
            fetches: self.fetches.get(),
            tier_hits: self.tier_hits.get(),
            budget_rejected: self.budget_rejected.get(),
            providers: self
                .providers
                .iter()
                .map(|p| ProviderStats {
                    upstream_requests: p.upstream_requests.get(),
                    upstream_errors: p.upstream_errors.get(),
                    rate_limited: p.rate_limited.get(),
                    ..ProviderStats::default()
                })
                .collect(),
            ..Stats::default()
        }
    }
}

/// One sample: a suffix of the metric's name (`_bucket`, `_sum`...), a label, the value.
type Sample = (&'static str, Option<(&'static str, String)>, f64);

/// One metric of the exposition: name (without `weather_cache_`), kind, help, its samples.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<Sample>,
}

impl Stats {
    fn metrics(&self) -> Vec<Metric> {
        let one = |name, kind, help, value: f64| Metric { name, kind, help, samples: vec![("", None, value)] };
        let counter = |name, help, value: u64| one(name, "counter", help, value as f64);
        let gauge = |name, help, value: f64| one(name, "gauge", help, value);
        let per_provider = |name, counter: bool, help, value: fn(&ProviderStats) -> f64| Metric {
            name,
            kind: if counter { "counter" } else { "gauge" },
            help,
            samples: self.providers.iter().map(|p| ("", Some(("provider", p.name.to_owned())), value(p))).collect(),
        };
        let mut metrics = vec![
            counter("requests_total", "Requests accepted (valid arguments, open service).", self.requests),
            counter("user_hits_total", "Requests answered by a fresh entry in the user's own cache.", self.user_hits),
            counter("shared_hits_total", "Requests answered by a fresh entry in the shared cache.", self.shared_hits),
            counter(
                "stale_hits_total",
                "Requests answered by a stale entry (stale-while-revalidate or during a cooldown).",
                self.stale_hits,
            ),
            counter("misses_total", "Requests that started a fetch.", self.misses),
            counter("coalesced_total", "Requests that waited for a fetch another request started.", self.coalesced),
            counter(
                "rejected_total",
                "Requests refused without a fetch (no key, rate limited, budget spent, area cooling down).",
                self.rejected,
            ),
            counter("stale_if_error_total", "Failed fetches answered from a stale entry instead.", self.stale_if_error),
            counter(
                "background_refreshes_total",
                "Stale-while-revalidate refreshes started.",
                self.background_refreshes,
            ),
            counter("fetches_total", "Fetches that went to the providers.", self.fetches),
            counter("tier_hits_total", "Fetches answered by the shared tier (Redis) instead.", self.tier_hits),
            counter("tier_errors_total", "Failed shared-tier (Redis) operations.", self.tier_errors),
            counter("budget_rejected_total", "Fetches a call budget refused.", self.budget_rejected),
            per_provider("upstream_requests_total", true, "Calls sent to a provider.", |p| p.upstream_requests as f64),
            per_provider("upstream_errors_total", true, "A provider's failures other than rate limits.", |p| {
                p.upstream_errors as f64
            }),
            per_provider("rate_limited_total", true, "HTTP 429 answers from a provider.", |p| p.rate_limited as f64),
            per_provider(
                "provider_backoff_until_seconds",
                false,
                "End of a provider's rate-limit cooldown (Unix seconds, service clock); 0 when none.",
                |p| p.backoff_until as f64 / 1000.0,
            ),
            gauge("shared_entries", "Entries in the shared cache.", self.shared_entries as f64),
            gauge("users", "Users with cached entries.", self.users as f64),
            gauge("inflight", "Fetches in progress.", self.inflight as f64),
            gauge(
                "backoff_until_seconds",
                "Until when every provider is rate limited (Unix seconds, service clock); 0 when one is not.",
                self.backoff_until as f64 / 1000.0,
            ),
        ];
        if let Some(up) = self.tier_up {
            metrics.push(gauge(
                "tier_up",
                "1 while the shared tier (Redis) answers, 0 while it is bypassed.",
                up as u8 as f64,
            ));
        }
        if let Some(tier) = &self.tier {
            metrics.extend(tier_metrics(tier));
        }
        metrics
    }

    /// The Prometheus text exposition format (version 0.0.4), every name prefixed
    /// `weather_cache_`, counters ending in `_total`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(6144);
        for m in self.metrics() {
            out.push_str(&format!("# HELP weather_cache_{} {}\n", m.name, m.help));
            out.push_str(&format!("# TYPE weather_cache_{} {}\n", m.name, m.kind));
            for (suffix, label, value) in m.samples {
                match label {
                    Some((name, label)) => {
                        let label = label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                        out.push_str(&format!("weather_cache_{}{suffix}{{{name}=\"{label}\"}} {value}\n", m.name))
                    }
                    None => out.push_str(&format!("weather_cache_{}{suffix} {value}\n", m.name)),
                }
            }
        }
        out
    }
}

/// The shared tier's series: the round-trip histogram, circuit openings by cause, lease waits
/// by outcome, outage accounting.
fn tier_metrics(tier: &TierStats) -> Vec<Metric> {
    let mut latency: Vec<Sample> = LATENCY_BUCKETS
        .iter()
        .map(|le| le.to_string())
        .chain(std::iter::once("+Inf".to_owned()))
        .zip(&tier.latency_buckets)
        .map(|(le, count)| ("_bucket", Some(("le", le)), *count as f64))
        .collect();
    latency.push(("_sum", None, tier.latency_seconds));
    latency.push(("_count", None, tier.latency_count() as f64));
    let labelled = |label, pairs: &[(&'static str, u64)]| {
        pairs.iter().map(|(l, n)| ("", Some((label, (*l).to_owned())), *n as f64)).collect()
    };
    vec![
        Metric {
            name: "tier_latency_seconds",
            kind: "histogram",
            help: "Round trips to the shared tier (Redis) that Redis answered, by duration.",
            samples: latency,
        },
        Metric {
            name: "tier_circuit_openings_total",
            kind: "counter",
            help: "Times the shared tier's circuit opened (the instance went local), by cause.",
            samples: labelled("cause", &tier.circuit_openings),
        },
        Metric {
            name: "tier_data_errors_total",
            kind: "counter",
            help: "Shared-tier keys found holding the wrong type (repaired; no outage).",
            samples: vec![("", None, tier.data_errors as f64)],
        },
        Metric {
            name: "tier_lease_waits_total",
            kind: "counter",
            help: "Waits on another instance's lease, by how they ended.",
            samples: labelled("outcome", &tier.lease_waits),
        },
        Metric {
            name: "tier_lease_wait_seconds_total",
            kind: "counter",
            help: "Time spent waiting on other instances' leases.",
            samples: vec![("", None, tier.lease_wait_seconds)],
        },
        Metric {
            name: "tier_unshared_calls_total",
            kind: "counter",
            help: "Upstream calls counted by this instance alone while Redis could not be asked.",
            samples: vec![("", None, tier.unshared_calls as f64)],
        },
        Metric {
            name: "tier_reconciled_calls_total",
            kind: "counter",
            help: "Of those, calls added to the shared day counter when Redis came back.",
            samples: vec![("", None, tier.reconciled_calls as f64)],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_lists_every_metric_once() {
        let providers = vec![
            ProviderStats { name: "openweather", upstream_requests: 3, ..ProviderStats::default() },
            ProviderStats { name: "open-meteo", upstream_requests: 1, ..ProviderStats::default() },
        ];
        let stats = Stats { requests: 7, misses: 2, backoff_until: 1_700_000_000_500, providers, ..Stats::default() };
        let text = stats.to_prometheus();
        assert!(text.contains("# TYPE weather_cache_requests_total counter\nweather_cache_requests_total 7\n"));
        assert!(text.contains("# TYPE weather_cache_inflight gauge\nweather_cache_inflight 0\n"));
        assert!(text.contains("weather_cache_backoff_until_seconds 1700000000.5\n"));
        assert!(text.contains("weather_cache_upstream_requests_total{provider=\"openweather\"} 3\n"));
        assert!(text.contains("weather_cache_upstream_requests_total{provider=\"open-meteo\"} 1\n"));
        assert!(!text.contains("tier_up"), "only with a shared tier");
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 17 + 4 * 2);
        assert!(text.ends_with('\n'));
        let tier = TierStats {
            latency_buckets: vec![1, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 5],
            latency_seconds: 3.5,
            circuit_openings: vec![("timeout", 2), ("failover", 1)],
            lease_waits: vec![("answered", 3)],
            ..TierStats::default()
        };
        let with_tier = Stats { tier_up: Some(true), tier: Some(tier), ..Stats::default() }.to_prometheus();
        assert!(with_tier.contains("weather_cache_tier_up 1\n"));
        assert!(with_tier.contains("# TYPE weather_cache_tier_latency_seconds histogram\n"));
        assert!(with_tier.contains("weather_cache_tier_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(with_tier.contains("weather_cache_tier_latency_seconds_bucket{le=\"+Inf\"} 5\n"));
        assert!(with_tier
            .contains("weather_cache_tier_latency_seconds_sum 3.5\nweather_cache_tier_latency_seconds_count 5\n"));
        assert!(with_tier.contains("weather_cache_tier_circuit_openings_total{cause=\"failover\"} 1\n"));
        assert!(with_tier.contains("weather_cache_tier_lease_waits_total{outcome=\"answered\"} 3\n"));
    }
}
