//! The cache engine: lookup order, coalescing, stale-while-revalidate, the shared tier's use,
//! failover between providers, backoff, budgets and the clock. Pure Rust (no napi), so
//! `cargo test` drives it directly.

mod backoff;
mod budget;
mod clock;
mod config;
mod cooldown;
mod error;
mod events;
mod flight;
mod lookup;
mod outcome;
mod providers;
mod refresh_ahead;
mod served;
mod singleflight;
mod snapshot;
mod stats;
mod tiered;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

pub use budget::{BudgetConfig, WhenRedisDown, BACKGROUND_RESERVE};
pub use config::{ClockKind, Config, ConfigError, Preset, MAX_DURATION_MS};
pub use error::{ProviderName, RequestError, KEY_REJECTED_COOLDOWN_MS};
pub use events::{BackoffScope, Event, EventSink, Field, Level, Recorder, Scope};
pub use lookup::{Mode, Pending, Reply, Request};
pub use served::{Served, Source};
pub use snapshot::{EngineState, Restored, SavedCooldown, SavedEntry, SavedProvider};
pub use providers::Upstream;
pub use stats::{Counter, ProviderStats, Stats};

use self::backoff::Jitter;
use self::clock::Clock;
use self::providers::ProviderState;
use self::singleflight::FlightTable;
use self::stats::Counters;
use crate::cache::{Entry, SharedCache, UserCache};
use crate::geo::Grid;
use crate::tier::{Notice, Observer, SharedTier, TierMetrics};

/// Receives the events of work no caller is waiting for (background refreshes, the tier).
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
    /// In order of preference.
    upstreams: Vec<Upstream>,
    /// Let go of on `close()`, so that its connection closes once the last flight using it ends.
    tier: Mutex<Option<Arc<SharedTier>>>,
    /// The tier's numbers, still readable after `close()`.
    tier_metrics: Option<Arc<TierMetrics>>,
    runtime: tokio::runtime::Handle,
    counters: Counters,
    state: Mutex<State>,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
    background: Option<BackgroundEvents>,
    /// Run by `close()` before the caches are freed (a snapshot's last write).
    closing: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

/// Everything behind the lock. Held briefly (no I/O, no JS calls, no awaits).
struct State {
    users: UserCache,
    shared: SharedCache,
    flights: FlightTable,
    /// One per upstream, in the same order.
    providers: Vec<ProviderState>,
    jitter: Jitter,
    /// Fetches decided under the lock, spawned by `begin` once it is released.
    launches: Vec<flight::Launch>,
}

impl Engine {
    /// `config` must have passed `validate()`; `upstreams` must not be empty. Fetches run on
    /// `runtime`.
    pub fn new(
        config: Config,
        upstreams: Vec<Upstream>,
        tier: Option<Arc<SharedTier>>,
        runtime: tokio::runtime::Handle,
        background: Option<BackgroundEvents>,
    ) -> Engine {
        assert!(!upstreams.is_empty(), "an engine needs at least one upstream");
        let capacity = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        let clock = Clock::new(config.clock);
        let seed = jitter_seed(&clock);
        let state = State {
            users: UserCache::new(capacity(config.max_users), capacity(config.per_user_capacity)),
            shared: SharedCache::new(capacity(config.shared_capacity)),
            flights: FlightTable::default(),
            providers: upstreams.iter().map(|_| ProviderState::new(capacity(cooldown_capacity(&config)))).collect(),
            jitter: Jitter::new(config.jitter_ratio, seed),
            launches: Vec::new(),
        };
        let inner = Inner {
            grid: Grid::new(config.grid_deg),
            clock,
            counters: Counters::new(upstreams.len()),
            upstreams,
            tier_metrics: tier.as_ref().map(|t| t.metrics()),
            tier: Mutex::new(tier),
            runtime,
            state: Mutex::new(state),
            closed: AtomicBool::new(false),
            shutdown: watch::Sender::new(false),
            background,
            closing: Mutex::new(Vec::new()),
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

    /// Up to `limit` live entries of the shared store, most recently used first (for the
    /// proxy's status page; a snapshot, under the lock for as long as the copy takes).
    pub fn live_entries(&self, limit: usize) -> Vec<Arc<Entry>> {
        let now = self.inner.clock.now();
        self.inner.lock().shared.live(now, limit)
    }

    /// The configured upstreams, in order of preference.
    pub fn upstreams(&self) -> &[Upstream] {
        &self.inner.upstreams
    }

    /// The shared tier, until `close()`.
    pub fn tier(&self) -> Option<Arc<SharedTier>> {
        self.inner.tier()
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

    /// Whether `request` (mode aside) would start a fetch now: see `lookup.rs`. Read-only.
    pub fn would_fetch(&self, request: Request<'_>) -> bool {
        self.inner.would_fetch(request)
    }

    /// Why each provider, in order of preference, may not be asked at all now (no key, a
    /// rejected key, a rate-limit cooldown, a spent budget): `None` for one that may be. Areas cooling down
    /// after errors are not counted: other areas may still be asked. Read-only (the proxy's
    /// `/readyz`).
    pub fn provider_refusals(&self) -> Vec<Option<RequestError>> {
        let now = self.inner.clock.now();
        let state = self.inner.lock();
        self.inner
            .upstreams
            .iter()
            .zip(&state.providers)
            .map(|(upstream, provider)| {
                let name = upstream.name();
                if let Err(error) = upstream.provider.ready() {
                    return Some(RequestError::from_provider(error, name));
                }
                if let Some(rejected) = provider.key_refusal(upstream, now) {
                    return Some(rejected);
                }
                if let Some(left) = provider.rate_limit.remaining(now) {
                    return Some(RequestError::RateLimited { provider: name, retry_after_ms: left });
                }
                (provider.budget_closed_until > now)
                    .then(|| RequestError::BudgetExhausted { provider: name, retry_after_ms: provider.budget_closed_until - now })
            })
            .collect()
    }

    /// Starts answering a request: see `lookup.rs` for the order of decisions.
    pub fn begin(&self, request: Request<'_>, sink: &mut impl EventSink) -> Begin {
        self.inner.begin(request, sink).0
    }

    /// `begin`, and the user's version bucket and version (see `watch_users`) as the request
    /// left them. A fresh synchronous answer is then the user's newest entry, and stays what a
    /// lookup by that user finds while that version holds and the entry is fresh (with one
    /// entry per user).
    pub fn begin_versioned(&self, request: Request<'_>, sink: &mut impl EventSink) -> (Begin, Option<(usize, u32)>) {
        self.inner.begin(request, sink)
    }

    /// Versions of users' entries (see `cache/versions.rs`), kept from the first call on.
    pub fn watch_users(&self) -> Arc<crate::cache::UserVersions> {
        self.inner.lock().users.watch()
    }

    /// Accounts for hits answered outside the engine from users' remembered entries (the JS
    /// front): `hits` requests in all, by `users` in the order of their last hit. Each user and
    /// its newest entry become recently used, as that many lookups would have left them.
    pub fn replay_user_hits<'a>(&self, users: impl IntoIterator<Item = &'a str>, hits: u64) {
        let mut state = self.inner.lock();
        for user in users {
            if let Some(entry) = state.users.touch(user) {
                state.shared.touch(&entry);
            }
        }
        // Under the lock, with their class: a snapshot never sees one without the other.
        self.inner.counters.requests.add(hits);
        self.inner.counters.user_hits.add(hits);
    }

    /// Forgets a user's entries (and keeps fetches in flight from adding one back); `true` if
    /// there were any.
    pub fn clear_user(&self, user: &str) -> bool {
        let mut state = self.inner.lock();
        state.flights.forget(user);
        state.users.forget(user)
    }

    /// Runs `hook` when `close()` is called, after new requests are refused and before the
    /// caches are freed (so that it can still read them, with `save`). At once if closed.
    pub fn before_close(&self, hook: Box<dyn FnOnce() + Send>) {
        let mut hooks = self.inner.closing.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            drop(hooks);
            hook();
        } else {
            hooks.push(hook);
        }
    }

    /// Becomes `true` when the service closes: for tasks of its own that must stop then.
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Refuses new requests, settles every pending one (`Closed`) and frees the caches.
    pub fn close(&self) {
        let hooks = {
            let mut hooks = self.inner.closing.lock().unwrap_or_else(PoisonError::into_inner);
            if self.inner.closed.swap(true, Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *hooks)
        };
        self.inner.shutdown.send_replace(true);
        self.inner.tier.lock().unwrap_or_else(PoisonError::into_inner).take();
        for hook in hooks {
            hook();
        }
        let mut state = self.inner.lock();
        state.users.clear();
        state.shared.clear();
        for provider in &mut state.providers {
            provider.cooldowns.clear();
        }
    }

    /// Counters and gauges, read under the lock: the identities in `stats.rs` hold exactly.
    pub fn stats(&self) -> Stats {
        let now = self.inner.clock.now();
        let state = self.inner.lock();
        let mut stats = self.inner.counters.snapshot();
        stats.shared_entries = state.shared.len() as u64;
        stats.users = state.users.len() as u64;
        stats.inflight = state.flights.len() as u64;
        for ((out, upstream), provider) in stats.providers.iter_mut().zip(&self.inner.upstreams).zip(&state.providers) {
            out.name = upstream.name();
            out.backoff_until = provider.rate_limit.until(now);
        }
        let all_limited = stats.providers.iter().all(|p| p.backoff_until > 0);
        stats.backoff_until =
            if all_limited { stats.providers.iter().map(|p| p.backoff_until).min().unwrap_or(0) } else { 0 };
        drop(state);
        if let Some(metrics) = &self.inner.tier_metrics {
            let tier = metrics.snapshot();
            stats.tier_errors = tier.errors;
            stats.tier_up = Some(self.inner.tier().is_some_and(|tier| tier.is_up()));
            stats.tier = Some(tier);
        }
        stats
    }
}

/// Records of failing areas kept per provider: as many as shared entries, but never so few
/// that a small cache (`sharedCapacity: 1`) makes failing areas evict each other's cooldowns.
fn cooldown_capacity(config: &Config) -> usize {
    config.shared_capacity.max(1_024)
}

/// Turns the tier's notices into events for the service's logger (one per change of health,
/// one per warning).
pub fn tier_events(background: Option<BackgroundEvents>, level: Level) -> Observer {
    Box::new(move |notice, place| {
        let Some(background) = &background else { return };
        let place = place.to_owned();
        let event = match notice {
            Notice::Degraded { retry_in, cause, reason } => Event::TierDegraded {
                place,
                cause: cause.as_str(),
                reason: reason.clone(),
                retry_in_ms: retry_in.as_millis() as i64,
            },
            Notice::Restored { down_for } => Event::TierRestored { place, down_ms: down_for.as_millis() as i64 },
            Notice::Warning { message } => Event::TierWarning { place, message: message.clone() },
        };
        if event.level() >= level && level != Level::Silent {
            background(vec![event]);
        }
    })
}

/// A seed for this engine's jitter, different per engine (no secret: lease tokens come from
/// the OS's randomness, see tier/token.rs).
fn jitter_seed(clock: &Clock) -> u64 {
    let address = clock as *const Clock as u64;
    let mut x = (clock.now() as u64) ^ (u64::from(std::process::id()) << 32) ^ address.rotate_left(17);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x | 1
}

impl Inner {
    /// A panic elsewhere must not wedge every later request: the state is consistent between
    /// statements that hold the lock, so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The shared tier, until `close()`.
    fn tier(&self) -> Option<Arc<SharedTier>> {
        self.tier.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// An entry for a reading taken at `location` at `fetched_at` (service clock), which the
    /// provider asked us to hold until `held_until` (0: no such request): fresh
    /// until the later of that and the fresh TTL, and never stale for less.
    fn held_entry(
        &self,
        location: crate::geo::LatLon,
        observation: &crate::cache::Observation,
        provider: &'static str,
        fetched_at: i64,
        held_until: i64,
        validator: Option<Box<str>>,
        products: Option<Arc<crate::cache::Products>>,
    ) -> Entry {
        let ms = |d: u64| i64::try_from(d).unwrap_or(i64::MAX / 4);
        let expires_at = fetched_at.saturating_add(ms(self.config.fresh_ttl_ms)).max(held_until);
        let stale_until = fetched_at.saturating_add(ms(self.config.stale_ttl_ms));
        Entry {
            cell: self.grid.cell_of(location),
            location,
            celsius: observation.celsius,
            summary: crate::cache::Summary::from_observation(observation),
            provider,
            fetched_at,
            expires_at,
            stale_until: stale_until.max(expires_at),
            terms: crate::cache::Terms::boxed(held_until, validator),
            products: products.filter(|_| self.config.keep_products),
        }
    }
}

#[cfg(test)]
mod failover_tests;
#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod freshness_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
