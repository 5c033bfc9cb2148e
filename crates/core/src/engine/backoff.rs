//! Exponential windows with jitter, and the provider-wide rate-limit cooldown built on them.

use std::time::Duration;

use crate::cache::Millis;

/// `base · 2^(attempt-1)`, capped at `max` (attempt counts from 1).
pub fn doubling(base_ms: u64, max_ms: u64, attempt: u32) -> u64 {
    let factor = 1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
    base_ms.saturating_mul(factor).min(max_ms)
}

/// Spreads windows by ±ratio so that clients that failed together do not retry together.
#[derive(Debug)]
pub struct Jitter {
    ratio: f64,
    state: u64,
}

impl Jitter {
    pub fn new(ratio: f64, seed: u64) -> Jitter {
        Jitter { ratio, state: seed | 1 }
    }

    pub fn apply(&mut self, window_ms: u64) -> u64 {
        if self.ratio == 0.0 {
            return window_ms;
        }
        // xorshift64*: plenty for spreading retries, and keeps the engine free of dependencies.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let unit = (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        (window_ms as f64 * (1.0 + self.ratio * (2.0 * unit - 1.0))).round() as u64
    }
}

/// Longest cooldown a Retry-After can ask for (a day covers a daily quota). A server sending a
/// far-future date must not stop the service until it restarts.
pub const MAX_RETRY_AFTER_MS: u64 = 24 * 3_600_000;

/// The provider-wide cooldown after HTTP 429. The limit belongs to the API key, so one 429
/// stops every area's requests.
#[derive(Debug, Default)]
pub struct RateLimit {
    until: Millis,
    consecutive: u32,
}

impl RateLimit {
    /// Time left in the cooldown, if one is running.
    pub fn remaining(&self, now: Millis) -> Option<Millis> {
        (self.until > now).then(|| self.until - now)
    }

    pub fn until(&self, now: Millis) -> Millis {
        if self.until > now {
            self.until
        } else {
            0
        }
    }

    /// Starts a cooldown and returns its length: exactly Retry-After when the server sent one
    /// (up to a day), otherwise `initial · 2^(n-1)` for the n-th 429 in a row, jittered and
    /// capped at `max_ms`.
    pub fn on_rate_limited(
        &mut self,
        now: Millis,
        retry_after: Option<Duration>,
        initial_ms: u64,
        max_ms: u64,
        jitter: &mut Jitter,
    ) -> Millis {
        self.consecutive = self.consecutive.saturating_add(1);
        let window = match retry_after {
            Some(delay) => delay.as_millis().min(MAX_RETRY_AFTER_MS as u128) as u64,
            None => jitter.apply(doubling(initial_ms, max_ms, self.consecutive)).min(max_ms),
        };
        let window = window as Millis;
        // A slower, older 429 must not shorten a cooldown already running.
        self.until = self.until.max(now.saturating_add(window));
        window
    }

    /// Cools down until `until` at least (another instance's 429, learnt from the shared tier):
    /// no call of ours was answered 429, so the doubling is left alone.
    pub fn hold_until(&mut self, until: Millis) {
        self.until = self.until.max(until);
    }

    /// A success ends the doubling. A cooldown already running is kept: the success answered a
    /// request sent before the 429 that started it.
    pub fn on_success(&mut self) {
        self.consecutive = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_caps() {
        let windows: Vec<u64> = (1..=7).map(|n| doubling(60_000, 1_800_000, n)).collect();
        assert_eq!(windows, [60_000, 120_000, 240_000, 480_000, 960_000, 1_800_000, 1_800_000]);
        assert_eq!(doubling(60_000, 1_800_000, 200), 1_800_000);
    }

    #[test]
    fn jitter_stays_within_its_ratio() {
        let mut jitter = Jitter::new(0.1, 12345);
        let samples: Vec<u64> = (0..10_000).map(|_| jitter.apply(60_000)).collect();
        assert!(samples.iter().all(|&w| (54_000..=66_000).contains(&w)));
        let spread = samples.iter().max().unwrap() - samples.iter().min().unwrap();
        assert!(spread > 10_000, "jitter actually spreads: {spread}");
        assert_eq!(Jitter::new(0.0, 1).apply(60_000), 60_000);
    }

    #[test]
    fn retry_after_is_exact_and_success_resets_the_doubling() {
        let mut jitter = Jitter::new(0.0, 1);
        let mut limit = RateLimit::default();
        assert_eq!(limit.on_rate_limited(0, Some(Duration::from_secs(120)), 60_000, 1_800_000, &mut jitter), 120_000);
        assert_eq!(limit.remaining(1_000), Some(119_000));
        assert_eq!(limit.on_rate_limited(200_000, None, 60_000, 1_800_000, &mut jitter), 120_000, "second in a row");
        limit.on_success();
        assert_eq!(limit.remaining(300_000), Some(20_000), "running cooldown kept");
        assert_eq!(limit.on_rate_limited(400_000, None, 60_000, 1_800_000, &mut jitter), 60_000, "doubling restarted");
        assert_eq!(limit.until(400_001), 460_000);
        assert_eq!(limit.until(460_000), 0);
    }

    #[test]
    fn absurd_retry_after_is_capped_at_a_day_and_jitter_never_exceeds_the_cap() {
        let mut limit = RateLimit::default();
        let forever = Duration::from_secs(999_999_999_999);
        assert_eq!(
            limit.on_rate_limited(0, Some(forever), 60_000, 1_800_000, &mut Jitter::new(0.0, 1)),
            MAX_RETRY_AFTER_MS as i64
        );
        let mut jitter = Jitter::new(0.5, 7);
        let mut limit = RateLimit::default();
        for _ in 0..20 {
            assert!(limit.on_rate_limited(0, None, 60_000, 1_800_000, &mut jitter) <= 1_800_000);
        }
    }
}
