//! Engine settings: defaults, the two presets, and range checks.

use crate::geo::{max_rounding_error_km, MAX_DECIMALS, MAX_GRID_DEG, MIN_GRID_DEG};

use super::events::Level;

#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    System,
    /// Starts at the current time and moves only when told to (`advanceTime`).
    Manual,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Every policy on: stale-while-revalidate, coalescing, backoff, cooldowns, jitter.
    Resilient,
    /// The seed's minimal spec: 10 min TTL, 5 km, one entry per user, LRU 1000, and no SWR,
    /// backoff, coalescing or jitter.
    Minimal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub fresh_ttl_ms: u64,
    /// Stale entries are served until `fetched_at + stale_ttl_ms`; 0 disables SWR.
    pub stale_ttl_ms: u64,
    pub proximity_km: f64,
    pub grid_deg: f64,
    pub shared_capacity: usize,
    pub per_user_capacity: usize,
    pub max_users: usize,
    pub coordinate_decimals: u32,
    pub coalesce: bool,
    /// Whether entries keep the forecast products of their answers (`products` option; see
    /// `cache/products.rs`). Off: nobody can ask for them, so nothing is kept, and providers
    /// are asked for the summary alone.
    pub keep_products: bool,
    pub min_refresh_interval_ms: u64,
    /// Refresh-ahead: a request for an entry with less than this left of its fresh window
    /// starts one background refresh (0: off, refreshes wait until the entry is stale).
    pub refresh_ahead_ms: u64,
    /// First rate-limit cooldown without Retry-After; 0 disables rate-limit cooldowns.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// First cooldown of an area after an upstream error; 0 disables area cooldowns.
    pub error_cooldown_ms: u64,
    pub jitter_ratio: f64,
    /// Upstream timeout (real time); a shared-tier lease lasts about this long.
    pub request_timeout_ms: u64,
    pub clock: ClockKind,
    /// Events below this level are never built.
    pub log_level: Level,
}

/// Area cooldowns double up to this (or up to `error_cooldown_ms` if that is larger).
pub const MAX_ERROR_COOLDOWN_MS: u64 = 300_000;
/// The resilient preset's refresh-ahead window, chosen from the demo fleet's numbers (README,
/// "Refresh-ahead"): stale answers near 0 for at most 5 % more upstream calls. Never more than
/// a tenth of the fresh TTL when only the TTL is set (see `ServiceOptions::resolve`).
pub const DEFAULT_REFRESH_AHEAD_MS: u64 = 20_000;
/// Upper bound for every duration option: one year.
pub const MAX_DURATION_MS: u64 = 365 * 24 * 3_600_000;

impl Config {
    pub fn preset(preset: Preset) -> Config {
        let resilient = Config {
            fresh_ttl_ms: 600_000,
            stale_ttl_ms: 7_200_000,
            proximity_km: 5.0,
            grid_deg: 0.045,
            shared_capacity: 1_000,
            per_user_capacity: 1,
            max_users: 100_000,
            coordinate_decimals: 2,
            coalesce: true,
            keep_products: true,
            min_refresh_interval_ms: 300_000,
            refresh_ahead_ms: DEFAULT_REFRESH_AHEAD_MS,
            initial_backoff_ms: 60_000,
            max_backoff_ms: 1_800_000,
            error_cooldown_ms: 5_000,
            jitter_ratio: 0.1,
            request_timeout_ms: 10_000,
            clock: ClockKind::System,
            log_level: Level::Info,
        };
        match preset {
            Preset::Resilient => resilient,
            Preset::Minimal => Config {
                stale_ttl_ms: 0,
                coalesce: false,
                min_refresh_interval_ms: 0,
                refresh_ahead_ms: 0,
                initial_backoff_ms: 0,
                max_backoff_ms: 0,
                error_cooldown_ms: 0,
                jitter_ratio: 0.0,
                ..resilient
            },
        }
    }

    pub fn max_error_cooldown_ms(&self) -> u64 {
        MAX_ERROR_COOLDOWN_MS.max(self.error_cooldown_ms)
    }

    /// Checks every range, including the relations between options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("freshTtlMs", self.fresh_ttl_ms),
            ("staleTtlMs", self.stale_ttl_ms),
            ("minRefreshIntervalMs", self.min_refresh_interval_ms),
            ("refreshAheadMs", self.refresh_ahead_ms),
            ("initialBackoffMs", self.initial_backoff_ms),
            ("maxBackoffMs", self.max_backoff_ms),
            ("errorCooldownMs", self.error_cooldown_ms),
            ("requestTimeoutMs", self.request_timeout_ms),
        ];
        for (option, value) in durations {
            check(option, value <= MAX_DURATION_MS, format!("<= {MAX_DURATION_MS}"), value)?;
        }
        check("requestTimeoutMs", self.request_timeout_ms >= 1, ">= 1", self.request_timeout_ms)?;
        // A window as long as the fresh TTL would refresh every entry on its first use.
        check(
            "refreshAheadMs",
            self.refresh_ahead_ms < self.fresh_ttl_ms || self.refresh_ahead_ms == 0,
            format!("< freshTtlMs ({}), or 0 for off", self.fresh_ttl_ms),
            self.refresh_ahead_ms,
        )?;
        check(
            "maxBackoffMs",
            self.max_backoff_ms >= self.initial_backoff_ms,
            format!(">= initialBackoffMs ({})", self.initial_backoff_ms),
            self.max_backoff_ms,
        )?;
        check(
            "gridDeg",
            (MIN_GRID_DEG..=MAX_GRID_DEG).contains(&self.grid_deg),
            format!(">= {MIN_GRID_DEG} and <= {MAX_GRID_DEG}"),
            self.grid_deg,
        )?;
        check(
            "sharedCapacity",
            (1..=10_000_000).contains(&self.shared_capacity),
            ">= 1 and <= 10000000",
            self.shared_capacity,
        )?;
        check(
            "perUserCapacity",
            (1..=1_000).contains(&self.per_user_capacity),
            ">= 1 and <= 1000",
            self.per_user_capacity,
        )?;
        check("maxUsers", (1..=100_000_000).contains(&self.max_users), ">= 1 and <= 100000000", self.max_users)?;
        check(
            "coordinateDecimals",
            self.coordinate_decimals <= MAX_DECIMALS,
            format!(">= 0 and <= {MAX_DECIMALS}"),
            self.coordinate_decimals,
        )?;
        check("jitterRatio", (0.0..1.0).contains(&self.jitter_ratio), ">= 0 and < 1", self.jitter_ratio)?;
        check(
            "proximityKm",
            self.proximity_km > 0.0 && self.proximity_km <= 1_000.0,
            "> 0 and <= 1000",
            self.proximity_km,
        )?;
        // A request must be able to hit the entry its own fetch creates, or it refetches forever.
        let rounding = max_rounding_error_km(self.coordinate_decimals);
        check(
            "proximityKm",
            self.proximity_km >= rounding,
            format!(">= {rounding:.3} (how far coordinateDecimals {} can move a point)", self.coordinate_decimals),
            self.proximity_km,
        )?;
        Ok(())
    }
}

/// An option outside its range. Rendered Node-style by the binding (`ERR_OUT_OF_RANGE`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub option: &'static str,
    pub expected: String,
    pub received: String,
}

fn check(
    option: &'static str,
    ok: bool,
    expected: impl Into<String>,
    received: impl ToString,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError { option, expected: expected.into(), received: received.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_minimal_turns_policies_off() {
        Config::preset(Preset::Resilient).validate().unwrap();
        let minimal = Config::preset(Preset::Minimal);
        minimal.validate().unwrap();
        assert!(!minimal.coalesce);
        assert_eq!((minimal.stale_ttl_ms, minimal.initial_backoff_ms, minimal.error_cooldown_ms), (0, 0, 0));
        assert_eq!((minimal.fresh_ttl_ms, minimal.proximity_km, minimal.shared_capacity), (600_000, 5.0, 1_000));
    }

    #[test]
    fn proximity_must_cover_the_rounding_error() {
        let mut config = Config::preset(Preset::Resilient);
        config.proximity_km = 0.5;
        let err = config.validate().unwrap_err();
        assert_eq!(err.option, "proximityKm");
        assert!(err.expected.starts_with(">= 0.786"), "{}", err.expected);
        config.coordinate_decimals = 3;
        config.validate().unwrap();
    }

    #[test]
    fn ranges() {
        let base = Config::preset(Preset::Resilient);
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("gridDeg", Box::new(|c| c.grid_deg = 0.0)),
            ("gridDeg", Box::new(|c| c.grid_deg = 11.0)),
            ("sharedCapacity", Box::new(|c| c.shared_capacity = 0)),
            ("perUserCapacity", Box::new(|c| c.per_user_capacity = 0)),
            ("maxUsers", Box::new(|c| c.max_users = 0)),
            ("coordinateDecimals", Box::new(|c| c.coordinate_decimals = 11)),
            ("jitterRatio", Box::new(|c| c.jitter_ratio = 1.0)),
            ("maxBackoffMs", Box::new(|c| c.max_backoff_ms = 1)),
            ("freshTtlMs", Box::new(|c| c.fresh_ttl_ms = MAX_DURATION_MS + 1)),
            ("proximityKm", Box::new(|c| c.proximity_km = f64::NAN)),
        ];
        for (option, mutate) in cases {
            let mut config = base.clone();
            mutate(&mut config);
            assert_eq!(config.validate().unwrap_err().option, option);
        }
    }
}
