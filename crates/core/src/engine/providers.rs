//! The upstreams a flight may ask, in order of preference, and what the engine knows about each:
//! its rate-limit cooldown, its areas cooling down after errors, its call budget. Everything is
//! per provider: OpenWeather rate-limiting us says nothing about Open-Meteo.

use std::num::NonZeroUsize;
use std::sync::Arc;

use super::backoff::RateLimit;
use super::budget::{BudgetConfig, LocalBudget};
use super::cooldown::AreaCooldowns;
use super::error::{RequestError, KEY_REJECTED_COOLDOWN_MS};
use super::events::Event;
use crate::cache::Millis;
use crate::geo::{Grid, LatLon};
use crate::provider::{Provider, ProviderError};

/// One upstream as configured.
#[derive(Clone)]
pub struct Upstream {
    pub provider: Arc<dyn Provider>,
    pub budget: BudgetConfig,
}

impl Upstream {
    pub fn new(provider: Arc<dyn Provider>) -> Upstream {
        Upstream { provider, budget: BudgetConfig::UNLIMITED }
    }

    pub fn name(&self) -> &'static str {
        self.provider.name()
    }
}

/// What the engine knows about one upstream (behind the engine's lock).
#[derive(Debug)]
pub(super) struct ProviderState {
    pub rate_limit: RateLimit,
    pub cooldowns: AreaCooldowns,
    pub budget: LocalBudget,
    /// The budget refused a call: until then no call is tried (and Redis is not asked again).
    pub budget_closed_until: Millis,
    /// The provider refused the API key: until then (`.0`) it is not asked; `.1` is its status,
    /// `.2` the key's generation (see `Provider::key_generation`: a new key lifts the refusal).
    pub key_rejected: Option<(Millis, u16, u64)>,
    /// A fetch skipped for want of a key was reported in this streak: the next report comes
    /// only after the provider was ready again (and then lost its key).
    pub key_missing_reported: bool,
}

impl ProviderState {
    pub fn new(capacity: NonZeroUsize) -> ProviderState {
        ProviderState {
            rate_limit: RateLimit::default(),
            cooldowns: AreaCooldowns::new(capacity),
            budget: LocalBudget::default(),
            budget_closed_until: 0,
            key_rejected: None,
            key_missing_reported: false,
        }
    }

    /// The provider refused the key at `now` with `status`: no call for the cooldown. Returns
    /// the error and the event that say so.
    pub fn key_rejected(&mut self, upstream: &Upstream, status: u16, now: Millis) -> (RequestError, Event) {
        let (provider, generation) = (upstream.name(), upstream.provider.key_generation());
        self.key_rejected = Some((now.saturating_add(KEY_REJECTED_COOLDOWN_MS), status, generation));
        let error = RequestError::KeyRejected { provider, status, retry_after_ms: KEY_REJECTED_COOLDOWN_MS };
        let cooldown_ms = KEY_REJECTED_COOLDOWN_MS;
        let event = Event::KeyRejected { provider, status, cooldown_ms, message: error.message() };
        (error, event)
    }

    /// The event for a fetch `upstream` skipped for want of a key, the first time in a streak.
    pub fn key_missing(&mut self, upstream: &Upstream) -> Option<Event> {
        if self.key_missing_reported || !matches!(upstream.provider.ready(), Err(ProviderError::NoApiKey)) {
            return None;
        }
        self.key_missing_reported = true;
        let provider = upstream.name();
        Some(Event::SkippedNoApiKey { provider, message: RequestError::NoApiKey { provider }.message() })
    }

    /// The refusal of a provider whose key was rejected, while its cooldown runs and it has
    /// the same key.
    pub fn key_refusal(&self, upstream: &Upstream, now: Millis) -> Option<RequestError> {
        let (provider, generation) = (upstream.name(), upstream.provider.key_generation());
        self.key_rejected
            .filter(|(until, _, rejected)| *until > now && *rejected == generation)
            .map(|(until, status, _)| RequestError::KeyRejected { provider, status, retry_after_ms: until - now })
    }

    /// Why `upstream` may not be asked about `p` now, if it may not: no key, a rejected key's
    /// cooldown, a rate-limit cooldown, a spent budget, or the area cooling down after an error of this provider.
    pub fn refusal(
        &mut self,
        upstream: &Upstream,
        grid: &Grid,
        p: LatLon,
        radius_km: f64,
        now: Millis,
    ) -> Option<RequestError> {
        let provider = upstream.name();
        if let Err(error) = upstream.provider.ready() {
            return Some(RequestError::from_provider(error, provider));
        }
        self.key_missing_reported = false;
        if let Some(rejected) = self.key_refusal(upstream, now) {
            return Some(rejected);
        }
        if let Some(left) = self.rate_limit.remaining(now) {
            return Some(RequestError::RateLimited { provider, retry_after_ms: left });
        }
        if self.budget_closed_until > now {
            return Some(RequestError::BudgetExhausted { provider, retry_after_ms: self.budget_closed_until - now });
        }
        self.cooldowns.active(grid, p, radius_km, now).map(|(error, _)| error)
    }
}
