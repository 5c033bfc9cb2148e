//! Running one upstream fetch: launch it as its own task, then store and broadcast its result.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::error::RequestError;
use super::events::{BackoffScope, Event, Level};
use super::singleflight::{Landing, Takeoff, Ticket};
use super::{cooldown::CooldownPolicy, Inner, State};
use crate::cache::Observation;
use crate::geo::LatLon;
use crate::provider::ProviderError;

/// How a fetch ended, before the engine interprets it.
enum Outcome {
    Observed(Observation),
    Failed(ProviderError),
    /// The service closed (or the runtime is shutting down) first.
    Cancelled,
}

/// A fetch registered under the lock, spawned once the lock is released: spawning onto a
/// runtime that has shut down drops the task at once, and its guard then needs the lock.
pub(super) struct Launch {
    guard: Guard,
    location: LatLon,
}

impl Launch {
    pub(super) fn spawn(self) {
        let runtime = self.guard.inner.runtime.clone();
        runtime.spawn(fly(self.guard, self.location));
    }
}

/// Publishes a landing even if the fetch task is dropped before it finishes (runtime
/// shutdown): otherwise the flight would stay in the table and every request for its area
/// would wait on it forever.
struct Guard {
    inner: Arc<Inner>,
    takeoff: Option<Takeoff>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.takeoff.is_some() {
            self.land(Outcome::Cancelled);
        }
    }
}

impl Guard {
    fn land(&mut self, outcome: Outcome) {
        let Some(takeoff) = self.takeoff.take() else { return };
        let (result, events) = self.inner.land(&takeoff, outcome);
        match &result {
            Ok(entry) => {
                tracing::debug!(target: "weather_cache::flight", key = %takeoff.key, celsius = entry.celsius, "landed")
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
    /// spawns them after unlocking). Returns the ticket to wait on and the flight's bucket key.
    pub(super) fn launch(
        self: &Arc<Self>,
        state: &mut State,
        location: LatLon,
        joiner: Option<&str>,
        background: bool,
    ) -> (Ticket, String) {
        let (takeoff, ticket) = state.flights.start(&self.grid, location, joiner, !background);
        let key = takeoff.key.clone();
        self.counters.upstream_requests.inc();
        if background {
            self.background_event(|| Event::Sent { provider: self.provider.name(), key: key.clone(), at: location });
        }
        tracing::trace!(target: "weather_cache::flight", key = %key, background, "launched");
        let guard = Guard { inner: self.clone(), takeoff: Some(takeoff) };
        state.launches.push(Launch { guard, location });
        (ticket, key)
    }

    /// Stores a landed fetch's result; returns what its waiters get and the events it caused.
    /// The flight leaves the table under the same lock that stores the entry (see `land` in
    /// singleflight.rs for why).
    fn land(
        &self,
        takeoff: &Takeoff,
        outcome: Outcome,
    ) -> (Result<Arc<crate::cache::Entry>, RequestError>, Vec<Event>) {
        let now = self.clock.now();
        let warn = self.config.log_level <= Level::Warn;
        let mut events = Vec::new();
        let mut state = self.lock();
        let state = &mut *state;
        let joiners = state.flights.land(takeoff).map(|f| f.joiners).unwrap_or_default();
        let result = match outcome {
            Outcome::Cancelled => Err(RequestError::Closed),
            Outcome::Observed(observation) => {
                let entry = Arc::new(self.new_entry(takeoff, observation, now));
                if !self.closed.load(std::sync::atomic::Ordering::Acquire) {
                    state.shared.insert(entry.clone());
                    for user in &joiners {
                        state.users.remember(user, entry.clone());
                    }
                }
                state.cooldowns.clear_near(&self.grid, takeoff.location, self.config.proximity_km);
                state.rate_limit.on_success();
                Ok(entry)
            }
            Outcome::Failed(ProviderError::RateLimited { retry_after }) => {
                self.counters.rate_limited.inc();
                let (initial, max) = (self.config.initial_backoff_ms, self.config.max_backoff_ms);
                if initial == 0 {
                    // Rate-limit cooldowns are off (the minimal preset): report, do not wait.
                    Err(RequestError::from_provider(ProviderError::RateLimited { retry_after }))
                } else {
                    let window = state.rate_limit.on_rate_limited(now, retry_after, initial, max, &mut state.jitter);
                    if warn {
                        events.push(Event::RateLimited { retry_after_ms: window });
                        events.push(Event::BackoffState { scope: BackoffScope::Provider, backoff_ms: window });
                    }
                    Err(RequestError::RateLimited { retry_after_ms: state.rate_limit.remaining(now).unwrap_or(0) })
                }
            }
            Outcome::Failed(failure) => {
                self.counters.upstream_errors.inc();
                let error = RequestError::from_provider(failure);
                let policy = CooldownPolicy {
                    base_ms: self.config.error_cooldown_ms,
                    max_ms: self.config.max_error_cooldown_ms(),
                };
                let window = if error.is_area_failure() {
                    let radius = self.config.proximity_km;
                    state.cooldowns.record(&self.grid, takeoff.location, radius, now, error.clone(), &policy, &mut state.jitter)
                } else {
                    0
                };
                if warn {
                    let message = error.message(self.provider.name());
                    events.push(Event::UpstreamError { key: takeoff.key.clone(), code: error.code(), message });
                    if window > 0 {
                        events.push(Event::BackoffState { scope: BackoffScope::Area, backoff_ms: window });
                    }
                }
                Err(error)
            }
        };
        (result, events)
    }

    fn background_event(&self, event: impl FnOnce() -> Event) {
        if let Some(background) = &self.background {
            if self.config.log_level <= Level::Debug {
                background(vec![event()]);
            }
        }
    }
}

async fn fly(mut guard: Guard, location: LatLon) {
    let inner = guard.inner.clone();
    let mut shutdown = inner.shutdown.subscribe();
    let outcome = tokio::select! {
        // `wait_for` checks the current value first, so a flight launched just as the service
        // closed is cancelled at once rather than missed.
        _ = shutdown.wait_for(|closed| *closed) => Outcome::Cancelled,
        result = Contained(inner.provider.fetch(location)) => match result {
            Ok(Ok(observation)) => Outcome::Observed(observation),
            Ok(Err(failure)) => Outcome::Failed(failure),
            // A bug in a provider is an upstream failure of that area (with its cooldown),
            // not a closed service, and never a process abort.
            Err(()) => Outcome::Failed(ProviderError::Network { message: "the upstream client failed unexpectedly".into() }),
        },
    };
    guard.land(outcome);
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
