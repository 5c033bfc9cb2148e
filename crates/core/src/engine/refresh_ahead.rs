//! Refresh-ahead (Caffeine's `refreshAfterWrite`, nginx's `proxy_cache_background_update`): a
//! request for an entry in the last `refresh_ahead_ms` of its fresh window is answered from it
//! as usual, and starts one background refresh of its area, so that a busy area is refreshed
//! before it goes stale instead of after. Quiet areas are not refreshed: only a request starts
//! one, so the calls stay about those that stale-while-revalidate would make.
//!
//! Only an entry the request depends on is refreshed: when another entry covering the request
//! stays fresh past this one's expiry, the request would not go stale, and nothing is fetched.
//! Without that rule every overlapping entry of a busy area would be kept alive for ever
//! (stale-while-revalidate lets the redundant ones lapse: a request prefers a fresh neighbour).
//!
//! It is a background refresh like any (see `Inner::refresh`): one per area (coalesced with any
//! flight near it), never for an entry younger than the minimum refresh interval or held at the
//! provider's request, never against a cooldown, and never out of the background reserve of a
//! call budget.

use std::sync::Arc;

use super::lookup::Request;
use super::{Inner, State};
use crate::cache::{Entry, Freshness};

impl Inner {
    /// Starts a background refresh of `entry` (fresh, just served to `request`) if it is in the
    /// last part of its fresh window. Returns whether one started.
    pub(super) fn refresh_ahead(self: &Arc<Self>, state: &mut State, entry: &Arc<Entry>, request: Request<'_>, now: i64) -> bool {
        let window = i64::try_from(self.config.refresh_ahead_ms).unwrap_or(i64::MAX);
        if entry.expires_at - now > window || entry.held_until() > now || self.outlived(state, entry, request) {
            return false;
        }
        if !self.background_budget_left(state, now) {
            return false;
        }
        self.refresh(state, entry, Some((request.user, request.at)), now)
    }

    /// Whether another entry covering the request is still fresh when `entry` expires.
    fn outlived(&self, state: &mut State, entry: &Entry, request: Request<'_>) -> bool {
        let radius = self.config.proximity_km;
        state
            .shared
            .find(&self.grid, request.at, radius, entry.expires_at, &mut |_, _| {})
            .is_some_and(|found| found.freshness == Freshness::Fresh)
    }

    /// Whether a background call would be admitted by some provider's local budget (its
    /// background reserve untouched). With a shared tier the budget lives in Redis, and the
    /// flight's admission decides; a refused refresh then costs no call either.
    fn background_budget_left(&self, state: &State, now: i64) -> bool {
        if self.tier().is_some() {
            return true;
        }
        self.upstreams.iter().zip(&state.providers).any(|(upstream, provider)| {
            !upstream.budget.is_limited()
                || upstream.budget.limits(true).is_some_and(|limits| provider.budget.would_admit(now, limits))
        })
    }
}
