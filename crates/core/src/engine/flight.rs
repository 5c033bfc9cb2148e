//! Running one fetch as its own task, then storing and broadcasting what came of it.
//!
//! A flight first asks the shared tier, when one is configured (see `tiered.rs`): another
//! instance may have the entry already, or be fetching it right now. Then it asks the providers
//! in order of preference. Each must be admitted (no key missing, no cooldown, budget left);
//! on a 429, an error status, a timeout, a network error or an invalid body the flight moves on
//! to the next provider, so that its waiters still see one fetch. Only when every provider
//! refused does it fail, with the most telling reason.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::cooldown::CooldownPolicy;
use super::error::{most_telling, RequestError};
use super::events::{BackoffScope, Event, Level};
use super::outcome::{Fetched, Outcome};
use super::served::{Served, Source};
use super::singleflight::{Herald, Landing, Need, Takeoff, Ticket};
use super::tiered::{from_shared, shared_error, Lease, TierStep};
use super::{Inner, State, WhenRedisDown};
use crate::cache::{Entry, Freshness, Observation};
use crate::geo::LatLon;
use crate::provider::{Answer, ProviderError};
use crate::tier::{Admission, AreaFailure, SharedTier};

/// A fetch registered under the lock, spawned once the lock is released: spawning onto a
/// runtime that has shut down drops the task at once, and its guard then needs the lock.
pub(super) struct Launch {
    guard: Guard,
    location: LatLon,
    background: bool,
}

impl Launch {
    pub(super) fn spawn(self) {
        let runtime = self.guard.inner.runtime.clone();
        runtime.spawn(fly(self.guard, self.location, self.background));
    }
}

/// Publishes a landing even if the fetch task is dropped before it finishes (runtime
/// shutdown): otherwise the flight would stay in the table and every request for its area
/// would wait on it forever.
struct Guard {
    inner: Arc<Inner>,
    takeoff: Option<Takeoff>,
    /// The shared tier's lease on the area, once taken: given back when the flight lands.
    lease: Option<Lease>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.takeoff.is_some() {
            self.land(Outcome::Cancelled, Vec::new());
        }
    }
}

impl Guard {
    fn land(&mut self, outcome: Outcome, events: Vec<Event>) {
        let Some(takeoff) = self.takeoff.take() else { return };
        let (result, events) = self.inner.land(&takeoff, outcome, self.lease.take(), events);
        match &result {
            Ok(served) => {
                tracing::debug!(target: "weather_cache::flight", key = %takeoff.key, source = served.source.as_str(),
                    provider = served.entry.provider, "landed")
            }
            Err(error) => {
                tracing::debug!(target: "weather_cache::flight", key = %takeoff.key, code = error.code(), "failed")
            }
        }
        takeoff.publish(Landing::new(result, events, self.inner.background.clone()));
    }
}

impl Inner {
    /// Registers a flight for `location` and queues its fetch in `state.launches` (the caller
    /// spawns them after unlocking). `waiting` is the initiator's point; `None` makes it a
    /// background refresh.
    pub(super) fn launch(
        self: &Arc<Self>,
        state: &mut State,
        location: LatLon,
        joiner: Option<&str>,
        waiting: Option<(LatLon, Need)>,
    ) -> Ticket {
        let (takeoff, ticket) = state.flights.start(&self.grid, location, joiner, waiting);
        tracing::trace!(target: "weather_cache::flight", key = %takeoff.key, background = waiting.is_none(), "launched");
        let guard = Guard { inner: self.clone(), takeoff: Some(takeoff), lease: None };
        state.launches.push(Launch { guard, location, background: waiting.is_none() });
        ticket
    }

    /// Starts a background refresh of `entry`'s area, unless it is younger than the minimum
    /// interval, a flight near it is already refreshing it, or no provider may be asked.
    /// `asker` is the request that found the entry stale: its cache receives the result, and
    /// with a shared tier a fresh entry there that covers it answers the refresh instead.
    /// Returns whether a refresh started.
    pub(super) fn refresh(
        self: &Arc<Self>,
        state: &mut State,
        entry: &Entry,
        asker: Option<(&str, LatLon)>,
        now: i64,
    ) -> bool {
        if entry.age(now) < self.config.min_refresh_interval_ms as i64
            || state.flights.find(&self.grid, entry.location, self.config.proximity_km).is_some()
            || self.refusal(state, entry.location, now).is_some()
        {
            return false;
        }
        self.counters.background_refreshes.inc();
        self.launch(state, entry.location, asker.map(|(user, _)| user), None);
        if let Some((_, at)) = asker {
            // Not a waiter (it was served the stale entry): a point the refresh is for.
            if let Some(flight) = state.flights.find(&self.grid, entry.location, 0.0) {
                flight.points.push((at, Need::Fresh));
            }
        }
        true
    }

    /// The flight's work: the shared tier, then the providers. With a tier, the flight may
    /// fetch once at a waiter's spot (where other instances' fetches cover the rest) and then
    /// go around once more, for waiters neither covered: at worst a second fetch, at its own
    /// location, which covers every waiter.
    async fn fetch_area(
        self: &Arc<Self>,
        takeoff: (crate::geo::CellId, u64, String, Herald),
        location: LatLon,
        background: bool,
        lease: &mut Option<Lease>,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let (cell, id, key, herald) = takeoff;
        let Some(mut session) = self.session(cell, id, location) else {
            // No lookup (no tier, or a polar area): the providers, admitted by the tier if any.
            return self.ask_providers(&key, location, background, events, self.tier()).await;
        };
        let mut may_move = !background;
        loop {
            let (at, held) = match self.consult_tier(&mut session, &herald, cell, id, location, may_move).await {
                TierStep::Answered(outcome) => return outcome,
                TierStep::Fetch { at, lease } => (at, lease),
            };
            // Held by the flight's guard while the providers are asked: if the flight is
            // cancelled (the service closed), the guard gives it back.
            *lease = held;
            let outcome = self.ask_providers(&key, at, background, events, Some(session.tier.clone())).await;
            if at == location {
                return outcome;
            }
            let held = lease.take();
            // Fetched at a waiter's spot: it answers the waiters it covers now; the rest wait
            // for the fetches other instances are making, or for ours at the flight's location.
            match outcome {
                Outcome::Observed { fetched, provider, at } => {
                    let entry = self.keep(&mut self.lock(), fetched, provider, at);
                    self.write_through(Some(entry.clone()), held);
                    session.fetched.push(entry);
                    herald.tell(&session.found, &session.fetched);
                    may_move = false;
                }
                failed => {
                    self.write_through(None, held);
                    return failed;
                }
            }
        }
    }

    /// Asks the providers in order until one answers.
    async fn ask_providers(
        self: &Arc<Self>,
        key: &str,
        location: LatLon,
        background: bool,
        events: &mut Vec<Event>,
        tier: Option<Arc<SharedTier>>,
    ) -> Outcome {
        let mut reason = None;
        let mut called = false;
        for (index, upstream) in self.upstreams.iter().enumerate() {
            let now = self.clock.now();
            let refused = {
                let mut state = self.lock();
                state.providers[index].refusal(upstream, &self.grid, location, self.config.proximity_km, now)
            };
            if let Some(refused) = refused {
                if matches!(refused, RequestError::NoApiKey { .. }) && self.config.log_level <= Level::Warn {
                    events.extend(self.lock().providers[index].key_missing(upstream));
                }
                reason = most_telling(reason, refused);
                continue;
            }
            if let Err(refused) = self.admit(index, location, background, tier.as_ref()).await {
                reason = most_telling(reason, refused);
                continue;
            }
            called = true;
            self.counters.providers[index].upstream_requests.inc();
            if self.config.log_level <= Level::Debug {
                events.push(Event::Sent { provider: upstream.name(), key: key.to_owned(), at: location });
            }
            // This provider's previous answer for exactly this place, if it gave a validator:
            // a conditional request, which a 304 answers without a body.
            let previous =
                self.lock().shared.at(&self.grid, location, upstream.name()).filter(|e| e.validator().is_some());
            let validator = previous.as_ref().and_then(|e| e.validator());
            let answer = match Contained(upstream.provider.fetch(location, validator)).await {
                Ok(answer) => answer,
                // A bug in a provider is an upstream failure of that area (with its cooldown),
                // not a closed service, and never a process abort.
                Err(()) => Err(ProviderError::Network { message: "the upstream client failed unexpectedly".into() }),
            };
            if let Ok(answer) = &answer {
                self.charge_extra(index, answer.extra_calls, background, tier.as_ref());
            }
            if matches!(answer, Err(ProviderError::OutsideCoverage)) {
                // Not a failure: no cooldown, no warning; the next provider is asked.
                reason = most_telling(reason, RequestError::from_provider(ProviderError::OutsideCoverage, upstream.name()));
                continue;
            }
            match answer.and_then(|answer| fetched(answer, previous.as_deref())) {
                Ok((fetched, warning)) => {
                    if let Some(message) = warning.filter(|_| self.config.log_level <= Level::Warn) {
                        events.push(Event::ProviderWarning { provider: upstream.name(), message });
                    }
                    return Outcome::Observed { fetched, provider: index, at: location };
                }
                Err(failure) => {
                    reason = most_telling(reason, self.provider_failed(index, key, location, failure, events))
                }
            }
        }
        Outcome::Failed { error: reason.unwrap_or(RequestError::Closed), called }
    }

    /// May provider `index` be called about `location` now? With a shared tier, Redis decides
    /// (the provider's cooldown and the area's, seen by any instance; the shared budget), with
    /// a deadline of its own. Without one, or while Redis cannot be asked, this process's budget
    /// decides (or `whenRedisDown: "closed"` refuses), and the call is noted, to be added to the
    /// shared counters when Redis is back. A refusal is remembered, so that requests are refused
    /// at once until it ends.
    async fn admit(
        &self,
        index: usize,
        location: LatLon,
        background: bool,
        tier: Option<&Arc<SharedTier>>,
    ) -> Result<(), RequestError> {
        let upstream = &self.upstreams[index];
        let (provider, budget) = (upstream.name(), upstream.budget);
        let Some(limits) = budget.limits(background) else {
            // The day's budget is so small that its reserve leaves a refresh nothing.
            return Err(RequestError::BudgetExhausted { provider, retry_after_ms: day_left(self.clock.now()) });
        };
        let mut unshared = None;
        if let Some(tier) = tier {
            match tier.admit(provider, limits, Some((location, self.config.proximity_km))).await {
                Ok(Admission::Admitted) => return Ok(()),
                Ok(Admission::Cooling { remaining }) => {
                    // Another instance saw a 429: cool down here too, without a call.
                    let until = self.clock.now().saturating_add(remaining.as_millis() as i64);
                    self.lock().providers[index].rate_limit.hold_until(until);
                    return Err(RequestError::RateLimited { provider, retry_after_ms: remaining.as_millis() as i64 });
                }
                Ok(Admission::OverBudget { retry_after }) => {
                    let retry_after_ms = retry_after.as_millis() as i64;
                    self.budget_spent(index, background, retry_after_ms);
                    return Err(RequestError::BudgetExhausted { provider, retry_after_ms });
                }
                Ok(Admission::AreaFailing { remaining, failures, error }) => {
                    // Another instance's call here failed: the area cools down here too, and the
                    // next failure doubles from its count.
                    let error = from_shared(&error, provider);
                    let until = self.clock.now().saturating_add(remaining.as_millis() as i64);
                    let mut state = self.lock();
                    let radius = self.config.proximity_km;
                    state.providers[index].cooldowns.adopt(
                        &self.grid,
                        location,
                        radius,
                        until,
                        failures,
                        error.clone(),
                    );
                    return Err(error);
                }
                // Redis is down (its circuit is open, or it failed just now): the budget follows
                // `whenRedisDown`.
                Err(_) if budget.is_limited() && budget.when_redis_down == WhenRedisDown::Closed => {
                    return Err(RequestError::BudgetExhausted { provider, retry_after_ms: 1_000 });
                }
                Err(_) => unshared = Some(tier),
            }
        }
        let note = |tier: Option<&Arc<SharedTier>>| {
            if let Some(tier) = tier {
                tier.count_unshared(provider, wall_clock_ms());
            }
        };
        if !budget.is_limited() {
            note(unshared);
            return Ok(());
        }
        let now = self.clock.now();
        let admitted = self.lock().providers[index].budget.admit(now, limits);
        match admitted {
            Ok(()) => {
                note(unshared);
                Ok(())
            }
            Err(retry_after_ms) => {
                self.budget_spent(index, background, retry_after_ms);
                Err(RequestError::BudgetExhausted { provider, retry_after_ms })
            }
        }
    }

    /// Counts a provider's requests beyond the first of one fetch (see `Answer::extra_calls`):
    /// in its stats, and against its budget (the shared one with a tier, in the background; the
    /// calls were made, so they count even past the limit, which then refuses the next fetch).
    fn charge_extra(&self, index: usize, extra: u32, background: bool, tier: Option<&Arc<SharedTier>>) {
        if extra == 0 {
            return;
        }
        self.counters.providers[index].upstream_requests.add(u64::from(extra));
        let upstream = &self.upstreams[index];
        let (provider, budget) = (upstream.name(), upstream.budget);
        let Some(limits) = budget.limits(background).filter(|_| budget.is_limited()) else { return };
        match tier {
            Some(tier) => {
                let tier = tier.clone();
                self.runtime.spawn(async move {
                    for _ in 0..extra {
                        let _ = tier.admit(provider, limits, None).await;
                    }
                });
            }
            None => {
                let now = self.clock.now();
                let mut state = self.lock();
                for _ in 0..extra {
                    state.providers[index].budget.charge(now);
                }
            }
        }
    }

    /// Remembers that provider `index` is out of budget for `retry_after_ms`. Not when only a
    /// background refresh was refused: the reserve it may not touch is still there for
    /// requests someone waits on.
    fn budget_spent(&self, index: usize, background: bool, retry_after_ms: i64) {
        if !background {
            let until = self.clock.now().saturating_add(retry_after_ms);
            let mut state = self.lock();
            let provider = &mut state.providers[index];
            provider.budget_closed_until = provider.budget_closed_until.max(until);
        }
    }

    /// Records a provider's failure: a 429 cools the whole provider down (here, and in the shared
    /// tier for every instance), a rejected key cools it down here for a long while (another
    /// instance may hold another key), anything else cools the area down for that provider.
    fn provider_failed(
        self: &Arc<Self>,
        index: usize,
        key: &str,
        location: LatLon,
        failure: ProviderError,
        events: &mut Vec<Event>,
    ) -> RequestError {
        let provider = self.upstreams[index].name();
        let counters = &self.counters.providers[index];
        let warn = self.config.log_level <= Level::Warn;
        let now = self.clock.now();
        let mut state = self.lock();
        let state = &mut *state;
        let own = &mut state.providers[index];
        match failure {
            ProviderError::RateLimited { retry_after } => {
                counters.rate_limited.inc();
                let (initial, max) = (self.config.initial_backoff_ms, self.config.max_backoff_ms);
                if initial == 0 {
                    // Rate-limit cooldowns are off (the minimal preset): report, do not wait.
                    return RequestError::from_provider(ProviderError::RateLimited { retry_after }, provider);
                }
                let window = own.rate_limit.on_rate_limited(now, retry_after, initial, max, &mut state.jitter);
                if warn {
                    events.push(Event::RateLimited { provider, retry_after_ms: window });
                    events.push(Event::BackoffState { provider, scope: BackoffScope::Provider, backoff_ms: window });
                }
                if let Some(tier) = self.tier() {
                    let window = Duration::from_millis(window.max(1) as u64);
                    self.runtime.spawn(async move { tier.cool_down(provider, window).await });
                }
                RequestError::RateLimited { provider, retry_after_ms: own.rate_limit.remaining(now).unwrap_or(0) }
            }
            ProviderError::KeyRejected { status } => {
                counters.upstream_errors.inc();
                let (error, event) = own.key_rejected(&self.upstreams[index], status, now);
                if self.config.log_level <= Level::Error {
                    events.push(event);
                }
                error
            }
            failure => {
                counters.upstream_errors.inc();
                let error = RequestError::from_provider(failure, provider);
                let policy = CooldownPolicy {
                    base_ms: self.config.error_cooldown_ms,
                    max_ms: self.config.max_error_cooldown_ms(),
                };
                let radius = self.config.proximity_km;
                let window = if error.is_area_failure() {
                    own.cooldowns.record(&self.grid, location, radius, now, error.clone(), &policy, &mut state.jitter)
                } else {
                    0
                };
                // Every instance cools the area down with us: one call per window between them.
                if let (true, Some(tier), Some(text)) = (window > 0, self.tier(), shared_error(&error)) {
                    let failures = own.cooldowns.failures_in_a_row(&self.grid, location, radius);
                    let max_window = Duration::from_millis(policy.max_ms);
                    self.runtime.spawn(async move {
                        let failure = AreaFailure {
                            at: location,
                            radius_km: radius,
                            window: Duration::from_millis(window as u64),
                            failures,
                            max_window,
                            error: &text,
                        };
                        tier.fail_area(provider, &failure).await
                    });
                }
                if warn {
                    events.push(Event::UpstreamError {
                        provider,
                        key: key.to_owned(),
                        code: error.code(),
                        message: error.message(),
                    });
                    if window > 0 {
                        events.push(Event::BackoffState { provider, scope: BackoffScope::Area, backoff_ms: window });
                    }
                }
                error
            }
        }
    }

    /// Stores a landed flight's result; returns what its waiters get, and the flight's events.
    /// The flight leaves the table under the same lock that stores the entry (see `land` in
    /// singleflight.rs for why).
    fn land(
        self: &Arc<Self>,
        takeoff: &Takeoff,
        outcome: Outcome,
        lease: Option<Lease>,
        events: Vec<Event>,
    ) -> (Result<Served, RequestError>, Vec<Event>) {
        let now = self.clock.now();
        let mut state = self.lock();
        let joiners = state.flights.land(takeoff).map(|f| f.joiners.in_order()).unwrap_or_default();
        let open = !self.is_closed();
        let (result, stored) = match outcome {
            Outcome::Cancelled => {
                self.counters.fetches.inc();
                (Err(RequestError::Closed), None)
            }
            Outcome::Observed { fetched, provider, at } => {
                self.counters.fetches.inc();
                let entry = self.keep(&mut state, fetched, provider, at);
                if open {
                    for user in &joiners {
                        state.users.remember(user, entry.clone());
                    }
                }
                (Ok(Served { entry: entry.clone(), source: Source::Network }), Some(entry))
            }
            Outcome::Tier { answer, served, fetched } => {
                // Entries of the tier are in the local store already (see `tier_decision`); the
                // flight's own fetch too (`keep`).
                if fetched {
                    self.counters.fetches.inc();
                } else {
                    self.counters.tier_hits.inc();
                }
                if open {
                    // Stale-while-revalidate, as for stale local entries: those it served.
                    for entry in served.iter().filter(|e| e.freshness(now) == Freshness::Stale) {
                        self.refresh(&mut state, entry, None, now);
                    }
                }
                let source = if answer.freshness(now) == Freshness::Fresh { Source::Cache } else { Source::StaleCache };
                (Ok(Served { entry: answer, source }), None)
            }
            Outcome::Failed { error, called } => {
                if !called && matches!(error, RequestError::BudgetExhausted { .. }) {
                    self.counters.budget_rejected.inc();
                } else {
                    self.counters.fetches.inc();
                }
                (Err(error), None)
            }
        };
        let launches = std::mem::take(&mut state.launches);
        drop(state);
        for launch in launches {
            launch.spawn();
        }
        self.write_through(stored, lease);
        (result, events)
    }

    /// Keeps a provider's answer: an entry at `at` in the local store (unless the service
    /// closed), the area's cooldowns for that provider cleared, its 429 doubling ended.
    fn keep(&self, state: &mut State, fetched: Fetched, provider: usize, at: LatLon) -> Arc<Entry> {
        let now = self.clock.now();
        let Fetched { observation, hold_ms, validator, products } = fetched;
        let held_until = if hold_ms > 0 { now.saturating_add(hold_ms) } else { 0 };
        let name = self.upstreams[provider].name();
        let entry = Arc::new(self.held_entry(at, &observation, name, now, held_until, validator, products));
        if !self.is_closed() {
            state.shared.insert(entry.clone());
        }
        let own = &mut state.providers[provider];
        own.cooldowns.clear_near(&self.grid, at, self.config.proximity_km);
        own.rate_limit.on_success();
        entry
    }

    /// Stores a fetched entry in the shared tier (releasing the lease with it), or just gives
    /// the lease back. In the background: waiters never wait on Redis for it. The lease holds
    /// its tier, so that a flight ended by `close()` still gives its lease back.
    fn write_through(&self, entry: Option<Arc<Entry>>, lease: Option<Lease>) {
        let Some(tier) = lease.as_ref().map(|l| l.tier.clone()).or_else(|| self.tier()) else { return };
        let ttl_ms = if self.config.stale_ttl_ms > 0 { self.config.stale_ttl_ms } else { self.config.fresh_ttl_ms };
        match entry.filter(|e| crate::tier::in_geo_range(e.location)) {
            Some(entry) => {
                // Kept in Redis at least as long as the provider asked us to hold it.
                let hold_ms = u64::try_from(entry.held_until() - entry.fetched_at).unwrap_or(0);
                let ttl = Duration::from_millis(ttl_ms.max(hold_ms).max(1));
                let stored = crate::tier::Stored {
                    celsius: entry.celsius,
                    condition: entry.summary.condition.as_str().to_owned(),
                    fetched_at: entry.fetched_at,
                    location: entry.location,
                    provider: entry.provider.to_owned(),
                    held_until: entry.held_until(),
                    validator: entry.validator().map(str::to_owned),
                    products: entry.products.clone(),
                };
                // The lease (its renewal stopped) goes back with the landing.
                let token = lease.map(Lease::landed);
                self.runtime.spawn(async move {
                    let _ = tier.store(&stored, ttl, token.as_deref()).await;
                });
            }
            None => {
                if let Some(lease) = lease {
                    lease.release();
                }
            }
        }
    }
}

/// A provider's answer as a reading: a 304 renews `previous`'s.
fn fetched(answer: Answer, previous: Option<&Entry>) -> Result<(Fetched, Option<&'static str>), ProviderError> {
    let (observation, products) = match (answer.observation, previous) {
        (Some(observation), _) => (observation, answer.products),
        (None, Some(previous)) => (
            Observation { condition: previous.summary.condition.as_str().to_owned(), celsius: previous.celsius },
            previous.products.clone(),
        ),
        (None, None) => {
            return Err(ProviderError::InvalidResponse { message: "not modified, but nothing to renew".into() });
        }
    };
    let hold_ms = answer.hold_for.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4));
    Ok((Fetched { observation, hold_ms, validator: answer.validator, products }, answer.warning))
}

/// Real time, as the shared counters' windows (the Redis server's) run on it.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Time left in the current UTC day of the service clock.
fn day_left(now: i64) -> i64 {
    86_400_000 - now.rem_euclid(86_400_000)
}

async fn fly(mut guard: Guard, location: LatLon, background: bool) {
    let inner = guard.inner.clone();
    let Some(takeoff) = guard.takeoff.as_ref().map(|t| (t.cell, t.id, t.key.clone(), t.herald())) else { return };
    let mut shutdown = inner.shutdown.subscribe();
    let mut events = Vec::new();
    let outcome = tokio::select! {
        // `wait_for` checks the current value first, so a flight launched just as the service
        // closed is cancelled at once rather than missed.
        _ = shutdown.wait_for(|closed| *closed) => Outcome::Cancelled,
        outcome = inner.fetch_area(takeoff, location, background, &mut guard.lease, &mut events) => outcome,
    };
    guard.land(outcome, events);
}

/// Polls a future, turning a panic into `Err(())`.
struct Contained<F>(F);

impl<F: Future + Unpin> Future for Contained<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.0).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
