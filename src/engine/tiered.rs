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
use super::lookup::{Served, Source};
use super::singleflight::{Herald, Need};
use super::Inner;
use crate::cache::{Entry, Freshness};
use crate::geo::{distance_km, CellId, LatLon};
use crate::provider::{intern, observation};
use crate::geo::round_location;
use crate::tier::{member, Announcement, LeaseRequest, LeaseStatus, SharedTier, Stored, MAX_POINTS};

/// How often a waiter looks again when no announcement arrives.
const POLL: Duration = Duration::from_millis(100);

/// A background refresh nobody asked for (the stale entry the tier answered a flight with) is
/// for one area exactly: only an entry at the same rounded location replaces it.
const SAME_SPOT_KM: f64 = 0.001;

/// The area's lease in the shared tier, while this instance holds it.
pub(super) struct Lease {
    pub member: String,
    pub token: String,
}

/// What the entries found so far do for a flight's waiters.
enum Decision {
    /// Every waiter is covered: the flight is answered (`answer`: for its own location).
    Answered(Arc<Entry>),
    /// Some are: they may leave now, the flight goes on for the others (at these points).
    Partly(Vec<LatLon>),
    No,
}

pub(super) enum TierStep {
    /// The tier answered the flight.
    Answered(Outcome),
    /// Fetch from the providers at `at` (the flight's location, or a waiter's spot when the
    /// rest are covered already), holding the lease if we got it.
    Fetch { at: LatLon, lease: Option<Lease> },
}

impl Inner {
    pub(super) async fn consult_tier(
        self: &Arc<Self>,
        tier: &Arc<SharedTier>,
        herald: &Herald,
        cell: CellId,
        id: u64,
        location: LatLon,
        background: bool,
    ) -> TierStep {
        let member = member(location);
        let token = format!("{:016x}-{id}", self.instance);
        // The holder may spend a whole upstream timeout, plus its Redis round trips.
        let lease_for = Duration::from_millis(self.config.request_timeout_ms) + 3 * tier.timeout();
        // A flight is for its points: its waiters, or the request that found an entry stale. An
        // entry that covers one lies within the radius of it, which lies within the radius of
        // the flight: look twice as far. A refresh with no point is for its spot alone.
        let mut uncovered: Vec<LatLon> = self.waiting_points(cell, id);
        let radius = if uncovered.is_empty() { SAME_SPOT_KM } else { self.config.proximity_km };
        let search = if uncovered.is_empty() { SAME_SPOT_KM } else { 2.0 * radius };
        let mut announcements = tier.announcements();
        let give_up = Instant::now() + lease_for + tier.timeout();
        let mut found: Vec<Arc<Entry>> = Vec::new();
        let mut must_lease = false;
        loop {
            // A waited flight may fetch at a waiter's spot instead, when that covers every waiter
            // still open: where other instances' fetches cover the rest, a fetch at our own
            // location would mostly repeat theirs. (A refresh is for its entry's spot.)
            uncovered.truncate(MAX_POINTS);
            let candidates: Vec<(LatLon, String)> = if background {
                Vec::new()
            } else {
                uncovered
                    .iter()
                    .map(|p| {
                        let at = round_location(*p, self.config.coordinate_decimals);
                        (at, crate::tier::member(at))
                    })
                    .collect()
            };
            let request = LeaseRequest {
                at: location,
                search_km: search,
                radius_km: radius,
                points: &uncovered,
                candidates: &candidates,
                member: &member,
                token: &token,
                lease: lease_for,
                now_ms: self.clock.now(),
                fresh_ms: self.config.fresh_ttl_ms,
                must_lease,
            };
            let Ok(lookup) = tier.find_or_lease(&request).await else { return TierStep::Fetch { at: location, lease: None } };
            // Where the lease went: our location, or the spot of a waiter no lease covered.
            let (at, held) = match lookup.status {
                LeaseStatus::Acquired { candidate } => {
                    let (at, member) = candidate.and_then(|i| candidates.get(i).cloned()).unwrap_or((location, member.clone()));
                    (at, Some(Lease { member, token: token.clone() }))
                }
                _ => (location, None),
            };
            for entry in self.entries_from(&lookup.entries) {
                if !found.iter().any(|e| e.location == entry.location && e.fetched_at == entry.fetched_at) {
                    found.push(entry);
                }
            }
            match self.tier_decision(cell, id, location, background, &found) {
                Decision::Answered(answer) => {
                    // A lease we just took (answering from a stale entry) goes back at once.
                    if let Some(lease) = held {
                        let tier = tier.clone();
                        self.runtime.spawn(async move { tier.release(&lease.member, &lease.token).await });
                    }
                    return TierStep::Answered(Outcome::Tier { answer, found });
                }
                Decision::Partly(rest) => {
                    herald.found(found.clone());
                    uncovered = rest;
                }
                Decision::No => uncovered = self.waiting_points(cell, id),
            }
            match lookup.status {
                // Fresh entries that do not cover every waiter: the rest still need a fetch,
                // ours or one in progress nearby. Ask again, for the lease this time.
                LeaseStatus::Fresh => must_lease = true,
                LeaseStatus::Acquired { .. } => {
                    if at != location {
                        // Its entry will not cover every newcomer near the flight's location.
                        self.close_flight(cell, id);
                    }
                    return TierStep::Fetch { at, lease: held };
                }
                LeaseStatus::Held { remaining } => {
                    let now = Instant::now();
                    if now >= give_up {
                        return TierStep::Fetch { at: location, lease: None };
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

    /// What `found` does for the flight's points (under the lock). Entries that answer anyone
    /// go into the local store at once, so that newcomers find them there; a flight answered for
    /// every point takes no newcomers (its entries need not cover them). A background refresh
    /// with no point is answered only by a fresh entry at its own location.
    fn tier_decision(&self, cell: CellId, id: u64, location: LatLon, background: bool, found: &[Arc<Entry>]) -> Decision {
        let now = self.clock.now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(flight) = state.flights.get_mut(cell, id) else { return Decision::No };
        let answer = if background && flight.points.is_empty() {
            found.iter().find(|e| e.location == location && e.freshness(now) == Freshness::Fresh).cloned()
        } else {
            let radius = self.config.proximity_km;
            let rest: Vec<LatLon> =
                flight.points.iter().filter(|(p, need)| best_for(found, *p, *need, radius, now).is_none()).map(|(p, _)| *p).collect();
            if rest.len() == flight.points.len() {
                return Decision::No;
            }
            if !rest.is_empty() {
                for entry in found {
                    state.shared.offer(entry.clone());
                }
                // (A background refresh has no waiter to release early.)
                return if background { Decision::No } else { Decision::Partly(rest) };
            }
            let (p, need) = flight.points[0];
            best_for(found, p, need, self.config.proximity_km, now)
        };
        let Some(answer) = answer else { return Decision::No };
        flight.closed = true;
        for entry in found {
            state.shared.offer(entry.clone());
        }
        Decision::Answered(answer)
    }

    fn close_flight(&self, cell: CellId, id: u64) {
        if let Some(flight) = self.lock().flights.get_mut(cell, id) {
            flight.closed = true;
        }
    }

    /// Where the flight's waiters are (none for a background refresh).
    fn waiting_points(&self, cell: CellId, id: u64) -> Vec<LatLon> {
        let mut state = self.lock();
        state.flights.get_mut(cell, id).map(|f| f.points.iter().map(|(p, _)| *p).collect()).unwrap_or_default()
    }

    /// What a waiter at `at` takes from the entries its flight found, if any covers it.
    pub(super) fn found_for(&self, found: &[Arc<Entry>], at: LatLon, need: Need) -> Option<Served> {
        let now = self.clock.now();
        let entry = best_for(found, at, need, self.config.proximity_km, now)?;
        let source = if entry.freshness(now) == Freshness::Fresh { Source::Cache } else { Source::StaleCache };
        Some(Served { entry, source })
    }
}

/// The best entry for a waiter at `p` that `need` allows: live and within the radius, fresh
/// before stale, then nearest.
fn best_for(found: &[Arc<Entry>], p: LatLon, need: Need, radius_km: f64, now: i64) -> Option<Arc<Entry>> {
    found
        .iter()
        .filter(|e| match (need, e.freshness(now)) {
            (Need::Fetch, _) | (_, Freshness::Expired) => false,
            (Need::Fresh, freshness) => freshness == Freshness::Fresh,
            (Need::Any, _) => true,
        })
        .map(|e| (e, distance_km(p, e.location)))
        .filter(|(_, distance)| *distance <= radius_km)
        .min_by(|(a, da), (b, db)| {
            let stale = |e: &Arc<Entry>| e.freshness(now) != Freshness::Fresh;
            stale(a).cmp(&stale(b)).then(da.total_cmp(db))
        })
        .map(|(e, _)| e.clone())
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
