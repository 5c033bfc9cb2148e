//! What a warm restart keeps of the engine (see `crate::snapshot` for the file): the shared
//! entries with what the provider asked of them, each provider's rate-limit cooldown, its areas
//! cooling down after errors (all as absolute deadlines on the service clock) and its local
//! budget counters. Never anything per user: where people are does not go to disk.
//!
//! Restoring trusts nothing it reads beyond its shape: readings are checked like an upstream
//! answer, places like a request, and entries past their stale window (judged from `fetchedAt`
//! with the current TTLs) are dropped.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::backoff::MAX_RETRY_AFTER_MS;
use super::tiered::{from_shared, shared_error};
use super::{Engine, Inner};
use crate::cache::{Freshness, Millis};
use crate::geo::LatLon;
use crate::provider::{intern, observation};
use crate::tier::products;

/// The engine's part of a snapshot.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineState {
    pub entries: Vec<SavedEntry>,
    pub providers: Vec<SavedProvider>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedEntry {
    pub lat: f64,
    pub lon: f64,
    pub celsius: f64,
    pub condition: String,
    pub provider: String,
    pub fetched_at: Millis,
    /// The provider's terms: hold until (0: none), and its validator.
    #[serde(default)]
    pub held_until: Millis,
    #[serde(default)]
    pub validator: Option<String>,
    /// The forecast products, in the shared tier's compact form (an entry is its products
    /// too: a warm restart must not answer `include` with less than before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<products::Wire>,
}

/// What the engine knows about one provider, by name.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedProvider {
    pub name: String,
    /// End of its 429 cooldown (0: none).
    pub rate_limited_until: Millis,
    /// Until when its budget refused calls (0: never).
    pub budget_closed_until: Millis,
    /// The local budget's windows: `[minute index, calls, day index, calls]`.
    pub budget: [i64; 4],
    pub cooldowns: Vec<SavedCooldown>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedCooldown {
    pub lat: f64,
    pub lon: f64,
    pub until: Millis,
    pub failures: u32,
    /// The area's error, as the shared tier carries it (`ERR_UPSTREAM_STATUS 503 reason`).
    pub error: String,
}

/// What a restore took in.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub entries: usize,
    /// Entries past their stale window, or unusable.
    pub dropped: usize,
}

impl Engine {
    /// The engine's state now (under the lock for as long as the copy takes). Empty once
    /// `close()` freed the caches (its `before_close` hooks still see them).
    pub fn save(&self) -> EngineState {
        self.inner.save()
    }

    /// Takes in a saved state (at start, before serving): entries go into the shared store
    /// unless one at least as recent is there; cooldowns and budget counters are merged,
    /// never shortened. Providers no longer configured are ignored.
    pub fn restore(&self, state: EngineState) -> Restored {
        self.inner.restore(state)
    }
}

impl Inner {
    fn save(&self) -> EngineState {
        let now = self.clock.now();
        let state = self.lock();
        let entries = state
            .shared
            .live(now, usize::MAX)
            .into_iter()
            .map(|e| SavedEntry {
                lat: e.location.lat,
                lon: e.location.lon,
                celsius: e.celsius,
                condition: e.summary.condition.as_str().to_owned(),
                provider: e.provider.to_owned(),
                fetched_at: e.fetched_at,
                held_until: e.held_until(),
                validator: e.validator().map(str::to_owned),
                products: e.products.as_deref().map(products::encode),
            })
            .collect();
        let providers = self
            .upstreams
            .iter()
            .zip(&state.providers)
            .map(|(upstream, own)| SavedProvider {
                name: upstream.name().to_owned(),
                rate_limited_until: own.rate_limit.until(now),
                budget_closed_until: if own.budget_closed_until > now { own.budget_closed_until } else { 0 },
                budget: own.budget.saved(),
                cooldowns: own
                    .cooldowns
                    .active_records(now)
                    .filter_map(|(location, until, failures, error)| {
                        let error = shared_error(error)?;
                        Some(SavedCooldown { lat: location.lat, lon: location.lon, until, failures, error })
                    })
                    .collect(),
            })
            .collect();
        EngineState { entries, providers }
    }

    fn restore(self: &Arc<Self>, saved: EngineState) -> Restored {
        let now = self.clock.now();
        let mut restored = Restored::default();
        let mut state = self.lock();
        // Oldest first: a newer entry at the same place then replaces an older one.
        let mut entries = saved.entries;
        entries.sort_by_key(|e| e.fetched_at);
        for saved in entries {
            let entry = place(saved.lat, saved.lon).and_then(|location| {
                let reading = observation(saved.celsius, Some(&saved.condition)).ok()?;
                let validator = saved.validator.as_deref().map(Into::into);
                let provider = intern(&saved.provider);
                // Ages run on the service clock as it is, fetchedAt as saved: a manual clock
                // moved on to where the saving one was (the demo) finds them exactly as it left them.
                let products = saved.products.and_then(products::decode).map(Arc::new);
                Some(self.held_entry(location, &reading, provider, saved.fetched_at, saved.held_until, validator, products))
            });
            match entry.filter(|e| e.freshness(now) != Freshness::Expired) {
                Some(entry) => {
                    state.shared.offer(Arc::new(entry));
                    restored.entries += 1;
                }
                None => restored.dropped += 1,
            }
        }
        let radius = self.config.proximity_km;
        // Deadlines no longer than a running service would set them: a file written under a
        // clock far ahead (fixed since) must not hold a provider for weeks.
        let latest = |until: Millis, longest: u64| until.min(now.saturating_add(longest as Millis));
        for saved in saved.providers {
            let Some(index) = self.upstreams.iter().position(|u| u.name() == saved.name) else { continue };
            let provider = self.upstreams[index].name();
            let own = &mut state.providers[index];
            own.rate_limit.hold_until(latest(saved.rate_limited_until, MAX_RETRY_AFTER_MS));
            // A budget reopens at the next UTC day at the latest.
            own.budget_closed_until = own.budget_closed_until.max(latest(saved.budget_closed_until, DAY_MS));
            own.budget.merge(saved.budget);
            for cooldown in saved.cooldowns.into_iter().filter(|c| c.until > now) {
                if let Some(location) = place(cooldown.lat, cooldown.lon) {
                    let error = from_shared(&cooldown.error, provider);
                    let until = latest(cooldown.until, self.config.max_error_cooldown_ms());
                    own.cooldowns.adopt(&self.grid, location, radius, until, cooldown.failures, error);
                }
            }
        }
        restored
    }
}

const DAY_MS: u64 = 86_400_000;

/// A place read from a file: finite and on the globe, or nothing.
fn place(lat: f64, lon: f64) -> Option<LatLon> {
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then(|| LatLon::new(lat, lon))
}
