//! The cache engine: lookup order, coalescing, stale-while-revalidate, backoff and the clock.
//! Pure Rust (no napi), so `cargo test` drives it directly.

mod backoff;
mod clock;
mod config;
mod cooldown;
mod error;
mod events;
mod flight;
mod lookup;
mod singleflight;
mod stats;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

pub use config::{ClockKind, Config, ConfigError, Preset, MAX_DURATION_MS};
pub use error::RequestError;
pub use events::{BackoffScope, Event, EventSink, Level, Recorder, Scope};
pub use lookup::{Mode, Pending, Reply, Request, Served, Source};
pub use stats::Stats;

use self::backoff::{Jitter, RateLimit};
use self::clock::Clock;
use self::cooldown::AreaCooldowns;
use self::singleflight::FlightTable;
use self::stats::Counters;
use crate::cache::{Entry, SharedCache, UserCache};
use crate::geo::Grid;
use crate::provider::Provider;

/// Receives the events of work no caller is waiting for (background refreshes).
pub type BackgroundEvents = Arc<dyn Fn(Vec<Event>) + Send + Sync>;

/// What a request gets immediately: an answer, or something to wait on.
pub enum Begin {
    Ready(Result<Served, RequestError>),
    Pending(Pending),
}

/// A cheap handle; clones share one cache.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    grid: Grid,
    clock: Clock,
    provider: Arc<dyn Provider>,
    runtime: tokio::runtime::Handle,
    counters: Counters,
    state: Mutex<State>,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
    background: Option<BackgroundEvents>,
}

/// Everything behind the lock. Held briefly (no I/O, no JS calls, no awaits).
struct State {
    users: UserCache,
    shared: SharedCache,
    flights: FlightTable,
    cooldowns: AreaCooldowns,
    rate_limit: RateLimit,
    jitter: Jitter,
    /// Fetches decided under the lock, spawned by `begin` once it is released.
    launches: Vec<flight::Launch>,
}

impl Engine {
    /// `config` must have passed `validate()`. Fetches run on `runtime`.
    pub fn new(
        config: Config,
        provider: Arc<dyn Provider>,
        runtime: tokio::runtime::Handle,
        background: Option<BackgroundEvents>,
    ) -> Engine {
        let capacity = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        let clock = Clock::new(config.clock);
        let seed = clock.now() as u64 ^ (Arc::as_ptr(&provider) as *const () as u64);
        let state = State {
            users: UserCache::new(capacity(config.max_users), capacity(config.per_user_capacity)),
            shared: SharedCache::new(capacity(config.shared_capacity)),
            flights: FlightTable::default(),
            cooldowns: AreaCooldowns::new(capacity(config.shared_capacity)),
            rate_limit: RateLimit::default(),
            jitter: Jitter::new(config.jitter_ratio, seed),
            launches: Vec::new(),
        };
        let inner = Inner {
            grid: Grid::new(config.grid_deg),
            clock,
            provider,
            runtime,
            counters: Counters::default(),
            state: Mutex::new(state),
            closed: AtomicBool::new(false),
            shutdown: watch::Sender::new(false),
            background,
            config,
        };
        Engine { inner: Arc::new(inner) }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn grid(&self) -> &Grid {
        &self.inner.grid
    }

    pub fn provider_name(&self) -> &'static str {
        self.inner.provider.name()
    }

    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Moves a manual clock; `false` when the service runs on the system clock.
    pub fn advance_time(&self, ms: u64) -> bool {
        self.inner.clock.advance(ms)
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Starts answering a request: see `lookup.rs` for the order of decisions.
    pub fn begin(&self, request: Request<'_>, sink: &mut impl EventSink) -> Begin {
        self.inner.begin(request, sink)
    }

    /// Forgets a user's entries (and keeps fetches in flight from adding one back); `true` if
    /// there were any.
    pub fn clear_user(&self, user: &str) -> bool {
        let mut state = self.inner.lock();
        state.flights.forget(user);
        state.users.forget(user)
    }

    /// Refuses new requests, settles every pending one (`Closed`) and frees the caches.
    pub fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.shutdown.send_replace(true);
        let mut state = self.inner.lock();
        state.users.clear();
        state.shared.clear();
        state.cooldowns.clear();
    }

    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.counters.snapshot();
        let now = self.inner.clock.now();
        let state = self.inner.lock();
        stats.shared_entries = state.shared.len() as u64;
        stats.users = state.users.len() as u64;
        stats.inflight = state.flights.len() as u64;
        stats.backoff_until = state.rate_limit.until(now);
        stats
    }
}

impl Inner {
    /// A panic elsewhere must not wedge every later request: the state is consistent between
    /// statements that hold the lock, so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_entry(&self, takeoff: &singleflight::Takeoff, observation: crate::cache::Observation, now: i64) -> Entry {
        let ms = |d: u64| i64::try_from(d).unwrap_or(i64::MAX / 4);
        Entry {
            cell: takeoff.cell,
            location: takeoff.location,
            celsius: observation.celsius,
            summary: crate::cache::Summary::from_observation(&observation),
            fetched_at: now,
            expires_at: now.saturating_add(ms(self.config.fresh_ttl_ms)),
            stale_until: now.saturating_add(ms(self.config.stale_ttl_ms)),
        }
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
