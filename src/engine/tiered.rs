//! A flight's first step when instances share a tier: before any upstream call, ask Redis.
//!
//! - An entry another instance landed, within the radius of every request waiting on this
//!   flight, answers it (fresh; or stale, served while its area is refreshed, as locally).
//! - Otherwise, if another instance holds a lease on a fetch nearby, wait for its landing: the
//!   announcement wakes us, and we poll too (pub/sub loses messages across reconnects). A lease
//!   lasts about one upstream timeout, so a holder that crashed only delays us.
//! - Otherwise we hold the lease now, and fetch.
//!
//! Redis failing at any point means fetching alone: the tier saves calls, it never stops one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::flight::Outcome;
use super::Inner;
use crate::cache::{Entry, Freshness};
use crate::geo::{distance_km, CellId, LatLon};
use crate::provider::{intern, observation};
use crate::tier::{member, Announcement, LeaseRequest, LeaseStatus, SharedTier, Stored};

/// How often a waiter looks again when no announcement arrives.
const POLL: Duration = Duration::from_millis(100);

/// A background refresh is for one area exactly: only an entry at the same rounded location
/// replaces the stale one (an entry nearby would leave part of its disk stale forever).
const SAME_SPOT_KM: f64 = 0.001;

/// The area's lease in the shared tier, while this instance holds it.
pub(super) struct Lease {
    pub member: String,
    pub token: String,
}

pub(super) enum TierStep {
    /// The tier answered the flight.
    Answered(Outcome),
    /// Fetch from the providers, holding the lease if we got it.
    Fetch(Option<Lease>),
}

impl Inner {
    pub(super) async fn consult_tier(
        self: &Arc<Self>,
        tier: &Arc<SharedTier>,
        cell: CellId,
        id: u64,
        location: LatLon,
        background: bool,
    ) -> TierStep {
        let member = member(location);
        let token = format!("{:016x}-{id}", self.instance);
        // The holder may spend a whole upstream timeout, plus its Redis round trips.
        let lease_for = Duration::from_millis(self.config.request_timeout_ms) + 3 * tier.timeout();
        let radius = if background { SAME_SPOT_KM } else { self.config.proximity_km };
        let mut announcements = tier.announcements();
        let give_up = Instant::now() + lease_for + tier.timeout();
        loop {
            let request = LeaseRequest {
                at: location,
                radius_km: radius,
                member: &member,
                token: &token,
                lease: lease_for,
                now_ms: self.clock.now(),
                fresh_ms: self.config.fresh_ttl_ms,
            };
            let Ok(lookup) = tier.find_or_lease(&request).await else { return TierStep::Fetch(None) };
            let held = (lookup.status == LeaseStatus::Acquired).then(|| Lease { member: member.clone(), token: token.clone() });
            let found = self.entries_from(&lookup.entries);
            if let Some(answer) = self.tier_answer(cell, id, location, background, &found) {
                // A lease we just took (answering from a stale entry) goes back at once.
                if let Some(lease) = held {
                    let tier = tier.clone();
                    self.runtime.spawn(async move { tier.release(&lease.member, &lease.token).await });
                }
                return TierStep::Answered(Outcome::Tier { answer, found });
            }
            match lookup.status {
                // Fresh entries that do not cover every waiter: fetch for them (without a
                // lease: the others have their answer).
                LeaseStatus::Fresh | LeaseStatus::Acquired => return TierStep::Fetch(held),
                LeaseStatus::Held { remaining } => {
                    let now = Instant::now();
                    if now >= give_up {
                        return TierStep::Fetch(None);
                    }
                    let wait = remaining.min(POLL).min(give_up - now);
                    news(&mut announcements, location, radius, wait).await;
                }
            }
        }
    }

    /// The entries Redis returned, checked like an upstream answer (Redis is shared: a bug or
    /// another program could have written anything).
    fn entries_from(&self, stored: &[Stored]) -> Vec<Arc<Entry>> {
        stored
            .iter()
            .filter_map(|s| {
                let reading = observation(s.celsius, Some(&s.condition)).ok()?;
                Some(Arc::new(self.entry(s.location, &reading, intern(&s.provider), s.fetched_at)))
            })
            .collect()
    }

    /// The entry that answers the flight, if one does: live, within the radius of every waiting
    /// request (a background refresh: at the flight's own location, and fresh), fresh before
    /// stale, then nearest.
    fn tier_answer(
        &self,
        cell: CellId,
        id: u64,
        location: LatLon,
        background: bool,
        found: &[Arc<Entry>],
    ) -> Option<Arc<Entry>> {
        let now = self.clock.now();
        let radius = self.config.proximity_km;
        let state = self.lock();
        let points: &[LatLon] = state.flights.get(cell, id).map_or(&[], |f| &f.points);
        found
            .iter()
            .filter(|e| match e.freshness(now) {
                Freshness::Expired => false,
                Freshness::Stale => !background,
                Freshness::Fresh => true,
            })
            .filter(|e| if background { e.location == location } else { !points.is_empty() })
            .filter(|e| points.iter().all(|p| distance_km(*p, e.location) <= radius))
            .min_by(|a, b| {
                let key = |e: &Arc<Entry>| (e.freshness(now) != Freshness::Fresh, distance_km(location, e.location));
                let (ka, kb) = (key(a), key(b));
                ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
            })
            .cloned()
    }
}

/// Waits up to `wait` for an announcement about an area near `location` (a landing, or a lease
/// given back), whichever comes first.
async fn news(announcements: &mut broadcast::Receiver<Announcement>, location: LatLon, radius_km: f64, wait: Duration) {
    let relevant = async {
        loop {
            match announcements.recv().await {
                Ok(news) if distance_km(news.at, location) <= radius_km * 2.0 + 1.0 => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let _ = tokio::time::timeout(wait, relevant).await;
}
