//! One event per decision the engine takes. The binding turns them into logger calls; building
//! one costs allocations, so callers check `enabled` first and hits stay cheap.

use crate::geo::LatLon;

/// pino's levels, in order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    /// Nothing is logged.
    Silent,
}

impl Level {
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" => Level::Warn,
            "error" => Level::Error,
            "fatal" => Level::Fatal,
            "silent" => Level::Silent,
            _ => return None,
        })
    }

    /// The logger method that receives events of this level.
    pub fn method(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal | Level::Silent => "fatal",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    User,
    Shared,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Shared => "shared",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BackoffScope {
    /// The whole provider (a 429: the limit is per API key).
    Provider,
    /// One area (an upstream error for that location).
    Area,
}

impl BackoffScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BackoffScope::Provider => "provider",
            BackoffScope::Area => "area",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Carries the exact request coordinates, so it is debug-only like every event that does.
    Attempted {
        user: String,
        key: String,
        at: LatLon,
    },
    Hit {
        stale: bool,
        user: String,
        key: String,
        age_ms: i64,
        scope: Scope,
    },
    Miss {
        user: String,
        key: String,
    },
    Coalesced {
        user: String,
        key: String,
        waiters: usize,
    },
    /// `at` is the rounded location actually sent upstream.
    Sent {
        provider: &'static str,
        key: String,
        at: LatLon,
    },
    SkippedMinInterval {
        key: String,
        since_last_ms: i64,
    },
    RateLimited {
        provider: &'static str,
        retry_after_ms: i64,
    },
    UpstreamError {
        provider: &'static str,
        key: String,
        code: &'static str,
        message: String,
    },
    BackoffState {
        provider: &'static str,
        scope: BackoffScope,
        backoff_ms: i64,
    },
    /// A provider answered, and said something the operator should know (MET Norway's 203).
    ProviderWarning {
        provider: &'static str,
        message: &'static str,
    },
    /// The shared tier stopped answering: the instance runs on its local tier alone.
    TierDegraded {
        /// `host:port/db`, never credentials.
        place: String,
        /// What kind of failure (`timeout`, `connection`, `failover`, `refused`, `full`, `error`).
        cause: &'static str,
        reason: String,
        retry_in_ms: i64,
    },
    /// Something about how Redis is set up that the operator should fix (an unsafe eviction
    /// policy, a refused subscription). Once per tier.
    TierWarning {
        place: String,
        message: String,
    },
    TierRestored {
        place: String,
        down_ms: i64,
    },
    Distance {
        distance_km: f64,
        within_km: f64,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Attempted { .. } => "weather.request.attempted",
            Event::Hit { stale: false, .. } => "weather.cache.hit.fresh",
            Event::Hit { stale: true, .. } => "weather.cache.hit.stale",
            Event::Miss { .. } => "weather.cache.miss",
            Event::Coalesced { .. } => "weather.request.coalesced",
            Event::Sent { .. } => "weather.request.sent",
            Event::SkippedMinInterval { .. } => "weather.request.skipped.minInterval",
            Event::RateLimited { .. } => "weather.rate_limited",
            Event::UpstreamError { .. } => "weather.error.network",
            Event::BackoffState { .. } => "weather.backoff.state",
            Event::ProviderWarning { .. } => "weather.provider.warning",
            Event::Distance { .. } => "weather.distance.computed",
            Event::TierDegraded { .. } => "weather.tier.degraded",
            Event::TierRestored { .. } => "weather.tier.restored",
            Event::TierWarning { .. } => "weather.tier.warning",
        }
    }

    pub fn level(&self) -> Level {
        match self {
            Event::RateLimited { .. }
            | Event::UpstreamError { .. }
            | Event::BackoffState { .. }
            | Event::ProviderWarning { .. }
            | Event::TierDegraded { .. }
            | Event::TierWarning { .. } => Level::Warn,
            Event::TierRestored { .. } => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// Where a request's events go while the engine decides.
pub trait EventSink {
    fn enabled(&self, level: Level) -> bool;
    fn emit(&mut self, event: Event);
}

/// Collects events at or above a level; the binding replays them to a logger afterwards, on
/// the JS thread and outside the engine's lock.
#[derive(Debug)]
pub struct Recorder {
    pub level: Level,
    pub events: Vec<Event>,
}

impl Recorder {
    pub fn new(level: Level) -> Recorder {
        Recorder { level, events: Vec::new() }
    }
}

impl EventSink for Recorder {
    fn enabled(&self, level: Level) -> bool {
        level >= self.level && self.level != Level::Silent
    }

    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }
}
