//! The upstreams a flight may ask, in order of preference, and what the engine knows about each:
//! its rate-limit cooldown, its areas cooling down after errors, its call budget. Everything is
//! per provider: OpenWeather rate-limiting us says nothing about Open-Meteo.

use std::num::NonZeroUsize;
use std::sync::Arc;

use super::backoff::RateLimit;
use super::budget::{BudgetConfig, LocalBudget};
use super::cooldown::AreaCooldowns;
use super::error::RequestError;
use crate::cache::Millis;
use crate::geo::{Grid, LatLon};
use crate::provider::Provider;

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
}

impl ProviderState {
    pub fn new(capacity: NonZeroUsize) -> ProviderState {
        ProviderState {
            rate_limit: RateLimit::default(),
            cooldowns: AreaCooldowns::new(capacity),
            budget: LocalBudget::default(),
            budget_closed_until: 0,
        }
    }

    /// Why `upstream` may not be asked about `p` now, if it may not: no key, a rate-limit
    /// cooldown, a spent budget, or the area cooling down after an error of this provider.
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
        if let Some(left) = self.rate_limit.remaining(now) {
            return Some(RequestError::RateLimited { provider, retry_after_ms: left });
        }
        if self.budget_closed_until > now {
            return Some(RequestError::BudgetExhausted { provider, retry_after_ms: self.budget_closed_until - now });
        }
        self.cooldowns.active(grid, p, radius_km, now).map(|(error, _)| error)
    }
}
