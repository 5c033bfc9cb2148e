//! One event per decision the engine takes. The binding turns them into logger calls; building
//! one costs allocations, so callers check `enabled` first and hits stay cheap.

use crate::geo::LatLon;

/// pino's levels, in order (`"info"` in options and config files).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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

    /// pino's number for the level (`"level":40` in its JSON lines).
    pub fn pino(self) -> u32 {
        match self {
            Level::Trace => 10,
            Level::Debug => 20,
            Level::Info => 30,
            Level::Warn => 40,
            Level::Error => 50,
            Level::Fatal => 60,
            Level::Silent => u32::MAX,
        }
    }
}

/// A field's value, as loggers receive it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Field<'a> {
    Text(&'a str),
    Number(f64),
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
    /// A fetch was skipped: the provider needs an API key and has none. Once per streak (see
    /// `ProviderState::key_missing`), not per request.
    SkippedNoApiKey {
        provider: &'static str,
        message: String,
    },
    /// The provider refused the API key (HTTP 401/403); it is left alone for `cooldown_ms`.
    /// `message` says so, and never holds the key.
    KeyRejected {
        provider: &'static str,
        status: u16,
        cooldown_ms: i64,
        message: String,
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
    /// A snapshot was loaded at start: `entries` taken in, `dropped` past their stale window.
    SnapshotRestored {
        path: String,
        entries: usize,
        dropped: usize,
    },
    /// A snapshot file could not be used (corrupt, truncated, another version, unreadable): a
    /// cold start. The file was renamed to `kept_as`, or is left alone and not written over
    /// (`kept_as` empty) when it could not be renamed.
    SnapshotRejected {
        path: String,
        reason: String,
        kept_as: String,
    },
    /// Writing a snapshot failed; once per streak of failures (serving goes on).
    SnapshotFailed {
        path: String,
        reason: String,
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
            Event::SkippedNoApiKey { .. } => "weather.request.skipped.noApiKey",
            Event::KeyRejected { .. } => "weather.error.auth",
            Event::RateLimited { .. } => "weather.rate_limited",
            Event::UpstreamError { .. } => "weather.error.network",
            Event::BackoffState { .. } => "weather.backoff.state",
            Event::ProviderWarning { .. } => "weather.provider.warning",
            Event::Distance { .. } => "weather.distance.computed",
            Event::TierDegraded { .. } => "weather.tier.degraded",
            Event::TierRestored { .. } => "weather.tier.restored",
            Event::TierWarning { .. } => "weather.tier.warning",
            Event::SnapshotRestored { .. } => "weather.snapshot.restored",
            Event::SnapshotRejected { .. } => "weather.snapshot.rejected",
            Event::SnapshotFailed { .. } => "weather.snapshot.failed",
        }
    }

    /// The event's fields, named as loggers receive them (`logger.warn(fields, name)`): the
    /// same for the addon's pino loggers and for `weather-cache serve`'s JSON lines.
    pub fn fields(&self) -> Vec<(&'static str, Field<'_>)> {
        use Field::{Number as N, Text as T};
        match self {
            Event::Attempted { user, key, at } => {
                vec![("userId", T(user)), ("bucketKey", T(key)), ("lat", N(at.lat)), ("lon", N(at.lon))]
            }
            Event::Hit { user, key, age_ms, scope, .. } => vec![
                ("userId", T(user)),
                ("bucketKey", T(key)),
                ("ageMs", N(*age_ms as f64)),
                ("scope", T(scope.as_str())),
            ],
            Event::Miss { user, key } => vec![("userId", T(user)), ("bucketKey", T(key))],
            Event::Coalesced { user, key, waiters } => {
                vec![("userId", T(user)), ("bucketKey", T(key)), ("waiters", N(*waiters as f64))]
            }
            Event::Sent { provider, key, at } => {
                vec![("provider", T(provider)), ("bucketKey", T(key)), ("lat", N(at.lat)), ("lon", N(at.lon))]
            }
            Event::SkippedMinInterval { key, since_last_ms } => {
                vec![("bucketKey", T(key)), ("sinceLastMs", N(*since_last_ms as f64))]
            }
            Event::SkippedNoApiKey { provider, message } => vec![("provider", T(provider)), ("message", T(message))],
            Event::KeyRejected { provider, status, cooldown_ms, message } => vec![
                ("provider", T(provider)),
                ("status", N(f64::from(*status))),
                ("cooldownMs", N(*cooldown_ms as f64)),
                ("message", T(message)),
            ],
            Event::RateLimited { provider, retry_after_ms } => {
                vec![("provider", T(provider)), ("retryAfterMs", N(*retry_after_ms as f64))]
            }
            Event::UpstreamError { provider, key, code, message } => {
                vec![("provider", T(provider)), ("bucketKey", T(key)), ("code", T(code)), ("message", T(message))]
            }
            Event::BackoffState { provider, scope, backoff_ms } => {
                vec![("provider", T(provider)), ("scope", T(scope.as_str())), ("backoffMs", N(*backoff_ms as f64))]
            }
            Event::ProviderWarning { provider, message } => vec![("provider", T(provider)), ("message", T(message))],
            Event::TierDegraded { place, cause, reason, retry_in_ms } => vec![
                ("tier", T(place)),
                ("cause", T(cause)),
                ("reason", T(reason)),
                ("retryInMs", N(*retry_in_ms as f64)),
            ],
            Event::TierRestored { place, down_ms } => vec![("tier", T(place)), ("downMs", N(*down_ms as f64))],
            Event::TierWarning { place, message } => vec![("tier", T(place)), ("message", T(message))],
            Event::Distance { distance_km, within_km } => {
                vec![("distanceKm", N(*distance_km)), ("withinKm", N(*within_km))]
            }
            Event::SnapshotRestored { path, entries, dropped } => {
                vec![("path", T(path)), ("entries", N(*entries as f64)), ("dropped", N(*dropped as f64))]
            }
            Event::SnapshotRejected { path, reason, kept_as } => {
                vec![("path", T(path)), ("reason", T(reason)), ("keptAs", T(kept_as))]
            }
            Event::SnapshotFailed { path, reason } => vec![("path", T(path)), ("reason", T(reason))],
        }
    }

    pub fn level(&self) -> Level {
        match self {
            Event::KeyRejected { .. } => Level::Error,
            Event::SkippedNoApiKey { .. }
            | Event::RateLimited { .. }
            | Event::UpstreamError { .. }
            | Event::BackoffState { .. }
            | Event::ProviderWarning { .. }
            | Event::TierDegraded { .. }
            | Event::TierWarning { .. }
            | Event::SnapshotRejected { .. }
            | Event::SnapshotFailed { .. } => Level::Warn,
            Event::TierRestored { .. } | Event::SnapshotRestored { .. } => Level::Info,
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
