//! Per-client limits: requests per second (`--client-rate-limit`) and upstream calls caused per
//! minute (`--client-upstream-limit`: misses that started a fetch, the cost a client imposes on
//! the API key). Each is a token bucket holding a second's (a minute's) worth, so a client may
//! burst to the limit and then keeps to its rate. Past either, the client is told to come back
//! when a token is there again (`Retry-After`); other clients are not affected.
//!
//! Clients are named (a token of `--tokens-file`) or, without tokens, their address: an IPv4
//! address, or the /64 an IPv6 address lies in (one host usually holds a whole /64). Buckets
//! live in a bounded LRU per shard: one that fell out had been idle longest, and an idle bucket
//! is full anyway. Times are the service clock's (ms), so tests move them.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

/// Who a limit counts against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Named(Arc<str>),
    Address(IpKey),
}

/// An IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpKey {
    V4(u32),
    V6(u64),
}

impl IpKey {
    pub fn of(ip: IpAddr) -> IpKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => IpKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitConfig {
    /// Requests a second; 0: no limit.
    pub requests_per_second: u32,
    /// Upstream calls caused a minute; 0: no limit.
    pub upstream_per_minute: u32,
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Rate,
    Upstream,
}

/// Tokens in a bucket as of `at` (service clock, ms).
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: i64,
}

impl Bucket {
    fn full(capacity: f64, now: i64) -> Bucket {
        Bucket { tokens: capacity, at: now }
    }

    /// Refills for the time since it was last looked at (never past `capacity`).
    fn refill(&mut self, capacity: f64, per_ms: f64, now: i64) {
        if now > self.at {
            self.tokens = (self.tokens + (now - self.at) as f64 * per_ms).min(capacity);
            self.at = now;
        }
    }

    /// Ms until one token is there (0 if it is).
    fn wait_ms(&self, per_ms: f64) -> i64 {
        if self.tokens >= 1.0 {
            0
        } else {
            ((1.0 - self.tokens) / per_ms).ceil() as i64
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Buckets {
    rate: Bucket,
    upstream: Bucket,
}

const SHARDS: usize = 16;
/// Clients tracked per shard (131,072 in all): a few MB at most, whatever the addresses.
const PER_SHARD: usize = 8_192;

pub struct Limits {
    config: LimitConfig,
    shards: Vec<Mutex<LruCache<ClientKey, Buckets>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Limits {
    pub fn new(config: LimitConfig) -> Limits {
        let capacity = NonZeroUsize::new(PER_SHARD).unwrap_or(NonZeroUsize::MIN);
        Limits {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(LruCache::new(capacity))).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn rate(&self) -> (f64, f64) {
        let n = f64::from(self.config.requests_per_second);
        (n, n / 1_000.0)
    }

    fn upstream(&self) -> (f64, f64) {
        let n = f64::from(self.config.upstream_per_minute);
        (n, n / 60_000.0)
    }

    fn with<T>(&self, key: &ClientKey, now: i64, f: impl FnOnce(&mut Buckets) -> T) -> T {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let (rate_capacity, _) = self.rate();
        let (upstream_capacity, _) = self.upstream();
        let buckets = shard.get_or_insert_mut(key.clone(), || Buckets {
            rate: Bucket::full(rate_capacity, now),
            upstream: Bucket::full(upstream_capacity, now),
        });
        f(buckets)
    }

    /// Takes one request from the client's rate bucket: `Err(ms to wait)` when it is empty.
    /// `now` is only read when a limit is set.
    pub fn admit(&self, key: &ClientKey, now: impl FnOnce() -> i64) -> Result<(), i64> {
        if self.config.requests_per_second == 0 {
            return Ok(());
        }
        let now = now();
        let (capacity, per_ms) = self.rate();
        self.with(key, now, |b| {
            b.rate.refill(capacity, per_ms, now);
            if b.rate.tokens >= 1.0 {
                b.rate.tokens -= 1.0;
                Ok(())
            } else {
                Err(b.rate.wait_ms(per_ms))
            }
        })
    }

    /// Whether the client may cause an upstream call now: `Err(ms to wait)` when its bucket
    /// holds less than one.
    pub fn upstream_allowed(&self, key: &ClientKey, now: impl FnOnce() -> i64) -> Result<(), i64> {
        if self.config.upstream_per_minute == 0 {
            return Ok(());
        }
        let now = now();
        let (capacity, per_ms) = self.upstream();
        self.with(key, now, |b| {
            b.upstream.refill(capacity, per_ms, now);
            match b.upstream.wait_ms(per_ms) {
                0 => Ok(()),
                wait => Err(wait),
            }
        })
    }

    /// Counts an upstream call the client caused. Concurrent misses admitted together may take
    /// the bucket below zero: the client then waits that much longer.
    pub fn charge_upstream(&self, key: &ClientKey, now: impl FnOnce() -> i64) {
        if self.config.upstream_per_minute == 0 {
            return;
        }
        let now = now();
        let (capacity, per_ms) = self.upstream();
        self.with(key, now, |b| {
            b.upstream.refill(capacity, per_ms, now);
            b.upstream.tokens = (b.upstream.tokens - 1.0).max(-capacity);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> ClientKey {
        ClientKey::Named(name.into())
    }

    #[test]
    fn requests_per_second_with_a_burst_of_one_second() {
        let limits = Limits::new(LimitConfig { requests_per_second: 5, upstream_per_minute: 0 });
        let t = 1_000_000;
        for _ in 0..5 {
            assert_eq!(limits.admit(&named("a"), || t), Ok(()));
        }
        assert_eq!(limits.admit(&named("a"), || t), Err(200), "one token every 200 ms");
        assert_eq!(limits.admit(&named("b"), || t), Ok(()), "another client is not affected");
        assert_eq!(limits.admit(&named("a"), || t + 150), Err(50));
        assert_eq!(limits.admit(&named("a"), || t + 200), Ok(()));
        assert_eq!(limits.admit(&named("a"), || t + 10_000), Ok(()));
        for _ in 0..4 {
            assert_eq!(limits.admit(&named("a"), || t + 10_000), Ok(()));
        }
        assert!(limits.admit(&named("a"), || t + 10_000).is_err(), "refilled to 5, never more");
    }

    #[test]
    fn upstream_calls_per_minute() {
        let limits = Limits::new(LimitConfig { requests_per_second: 0, upstream_per_minute: 2 });
        let (a, t) = (ClientKey::Address(IpKey::of("192.0.2.1".parse().unwrap())), 5_000_000);
        assert_eq!(limits.upstream_allowed(&a, || t), Ok(()));
        limits.charge_upstream(&a, || t);
        limits.charge_upstream(&a, || t);
        assert_eq!(limits.upstream_allowed(&a, || t), Err(30_000), "one call every 30 s");
        assert_eq!(limits.admit(&a, || t), Ok(()), "no request limit configured");
        assert_eq!(limits.upstream_allowed(&a, || t + 30_000), Ok(()));
        // Admitted together, three misses overdraw: the client waits for all of them.
        limits.charge_upstream(&a, || t + 30_000);
        limits.charge_upstream(&a, || t + 30_000);
        assert_eq!(limits.upstream_allowed(&a, || t + 30_000), Err(60_000));
    }

    #[test]
    fn addresses_by_host_and_by_ipv6_64() {
        let key = |s: &str| IpKey::of(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }

    #[test]
    fn memory_is_bounded_whatever_the_addresses() {
        let limits = Limits::new(LimitConfig { requests_per_second: 1, upstream_per_minute: 0 });
        for i in 0..(SHARDS * PER_SHARD + 10_000) as u32 {
            let _ = limits.admit(&ClientKey::Address(IpKey::V4(i)), || 0);
        }
        let tracked: usize = limits.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(tracked <= SHARDS * PER_SHARD);
    }
}
