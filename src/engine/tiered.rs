//! A flight's dealings with the shared tier: before any upstream call, ask Redis.
//!
//! - Entries other instances stored answer the waiters they cover: each waiter takes the best
//!   one for its own point (fresh, or stale while its area is refreshed); the flight goes on
//!   for the others.
//! - A waiter within the radius of another instance's lease (a fetch in progress there) waits
//!   for that fetch: its landing is announced, and we poll too (pub/sub loses messages across
//!   reconnects). A lease lasts about one upstream timeout, so a holder that died only delays.
//! - The waiters no entry and no lease covers need a fetch of ours: at the spot that covers
//!   them all (a waiter's), or at the flight's location, which covers every waiter. A fetch at
//!   a waiter's spot lands for the waiters it covers, and the flight goes around once more for
//!   the rest.
//!
//! Redis trouble means fetching alone: the tier saves calls, it never stops one. A flight spends
//! at most the tier's `timeoutMs` on Redis in all, whatever Redis does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::flight::Outcome;
use super::lookup::{Served, Source};
use super::singleflight::{Herald, Need, POINT_TOLERANCE_KM};
use super::Inner;
use crate::cache::{Entry, Freshness};
use crate::geo::{distance_km, max_rounding_error_km, round_location, CellId, LatLon};
use crate::provider::{intern, observation};
use crate::tier::{in_geo_range, member, Announcement, LeaseRequest, LeaseStatus, SharedTier, Stored, MAX_POINTS};

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

/// What one flight knows of the tier.
pub(super) struct Session {
    pub tier: Arc<SharedTier>,
    token: String,
    announcements: broadcast::Receiver<Announcement>,
    /// Entries the tier returned so far.
    pub found: Vec<Arc<Entry>>,
    /// Entries the flight fetched itself at a waiter's spot.
    pub fetched: Vec<Arc<Entry>>,
    /// What is left of the flight's time for Redis (the tier's `timeoutMs`, in all).
    redis_left: Duration,
}

impl Session {
    /// Runs a Redis operation against the flight's time for Redis.
    pub async fn timed<T>(&mut self, operation: impl AsyncFnOnce(Duration) -> T) -> T {
        let started = Instant::now();
        let result = operation(self.redis_left).await;
        self.redis_left = self.redis_left.saturating_sub(started.elapsed());
        result
    }

    pub fn redis_left(&self) -> Duration {
        self.redis_left
    }
}

/// What the entries at hand do for a flight's points.
enum Decision {
    /// Every point is covered: `answer` for the first, `served` the entries chosen for any.
    Answered { answer: Arc<Entry>, served: Vec<Arc<Entry>> },
    /// Some are: those may leave now; the flight goes on for these points.
    Partly(Vec<LatLon>),
    No,
}

pub(super) enum TierStep {
    /// Entries at hand answer every waiter: the flight is done.
    Answered(Outcome),
    /// Fetch from the providers at `at` (the flight's location, or a waiter's spot when the
    /// rest are covered or will be), holding the lease if we got it.
    Fetch { at: LatLon, lease: Option<Lease> },
}

impl Inner {
    /// A session for the flight, unless the tier cannot help it: no tier, or a point beyond
    /// Redis's GEO range (polar areas stay local).
    pub(super) fn session(&self, cell: CellId, id: u64, location: LatLon) -> Option<Session> {
        let tier = self.tier()?;
        let reachable = in_geo_range(location) && self.waiting_points(cell, id).into_iter().all(in_geo_range);
        reachable.then(|| Session {
            token: format!("{:016x}-{id}", self.instance),
            announcements: tier.announcements(),
            found: Vec::new(),
            fetched: Vec::new(),
            redis_left: tier.timeout(),
            tier,
        })
    }

    /// One round of the tier step: look, wait on leases, until the flight is answered or
    /// must fetch. `may_move`: whether the fetch may go to a waiter's spot.
    pub(super) async fn consult_tier(
        self: &Arc<Self>,
        session: &mut Session,
        herald: &Herald,
        cell: CellId,
        id: u64,
        location: LatLon,
        may_move: bool,
    ) -> TierStep {
        let tier = session.tier.clone();
        let own = member(location);
        // The holder may spend a whole upstream timeout, plus its Redis round trips.
        let lease_for = Duration::from_millis(self.config.request_timeout_ms) + 3 * tier.timeout();
        let give_up = Instant::now() + lease_for + tier.timeout();
        let decimals = self.config.coordinate_decimals;
        // Points reach Redis rounded, as coordinates reach the upstream; a lease covers one
        // only with room for that rounding.
        let rounding = max_rounding_error_km(decimals);
        let mut open = self.waiting_points(cell, id);
        // A refresh with no point is for its spot alone. Otherwise an entry covering a point
        // lies within the radius of it, which lies within the radius of the flight.
        let lone_refresh = open.is_empty();
        let radius = if lone_refresh { SAME_SPOT_KM } else { self.config.proximity_km };
        let search = if lone_refresh { SAME_SPOT_KM } else { 2.0 * radius };
        let mut must_lease = false;
        let token = session.token.clone();
        loop {
            open.truncate(MAX_POINTS);
            let points: Vec<LatLon> = open.iter().map(|p| round_location(*p, decimals)).collect();
            let candidates: Vec<(LatLon, String)> =
                if may_move { points.iter().map(|p| (*p, member(*p))).collect() } else { Vec::new() };
            let now_ms = self.clock.now();
            let request = LeaseRequest {
                at: location,
                search_km: search,
                radius_km: (radius - rounding).max(SAME_SPOT_KM),
                points: &points,
                candidates: &candidates,
                member: &own,
                token: &token,
                lease: lease_for,
                now_ms,
                fresh_ms: self.config.fresh_ttl_ms,
                must_lease,
            };
            let lookup = session.timed(async |left| tier.find_or_lease(&request, left).await).await;
            let Ok(lookup) = lookup else { return TierStep::Fetch { at: location, lease: None } };
            // Where a lease we took went: our location, or the spot of a waiter.
            let held = match lookup.status {
                LeaseStatus::Acquired { candidate } => {
                    let (at, member) = candidate.and_then(|i| candidates.get(i).cloned()).unwrap_or((location, own.clone()));
                    Some((at, Lease { member, token: token.clone() }))
                }
                _ => None,
            };
            for entry in self.entries_from(&lookup.entries) {
                if !session.found.iter().any(|e| e.location == entry.location && e.fetched_at == entry.fetched_at) {
                    session.found.push(entry);
                }
            }
            match self.tier_decision(cell, id, location, lone_refresh, session) {
                Decision::Answered { answer, served } => {
                    // A lease we just took goes back at once: nothing to fetch.
                    if let Some((_, lease)) = held {
                        self.runtime.spawn(async move { tier.release(&lease.member, &lease.token).await });
                    }
                    herald.tell(&session.found, &session.fetched);
                    let fetched = !session.fetched.is_empty();
                    return TierStep::Answered(Outcome::Tier { answer, served, fetched });
                }
                Decision::Partly(rest) => {
                    herald.tell(&session.found, &session.fetched);
                    open = rest;
                }
                Decision::No => open = self.waiting_points(cell, id),
            }
            match lookup.status {
                // Fresh entries that do not cover every waiter: the rest still need a fetch,
                // ours or one in progress nearby. Ask again, for the lease this time.
                LeaseStatus::Fresh => must_lease = true,
                LeaseStatus::Acquired { .. } => {
                    let (at, lease) = held.expect("acquired");
                    if at != location {
                        // Its entry covers the open waiters, not every newcomer near the flight.
                        self.close_flight(cell, id);
                    }
                    return TierStep::Fetch { at, lease: Some(lease) };
                }
                LeaseStatus::Held { remaining } => {
                    let now = Instant::now();
                    if now >= give_up || session.redis_left().is_zero() {
                        return TierStep::Fetch { at: location, lease: None };
                    }
                    let wait = remaining.min(POLL).min(give_up - now);
                    news(&mut session.announcements, location, radius, wait).await;
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
                let validator = s.validator.as_deref().map(Into::into);
                Some(Arc::new(self.held_entry(s.location, &reading, intern(&s.provider), s.fetched_at, s.held_until, validator)))
            })
            .collect()
    }

    /// What the entries at hand do for the flight's points (under the lock). Entries from the
    /// tier that answer anyone go into the local store at once, so that newcomers find them
    /// there; a flight answered for every point takes no newcomers (its entries need not cover
    /// them). A refresh with no point is answered only by a fresh entry at its own spot.
    fn tier_decision(&self, cell: CellId, id: u64, location: LatLon, lone_refresh: bool, session: &Session) -> Decision {
        let now = self.clock.now();
        let mut state = self.lock();
        let state = &mut *state;
        let open = !self.is_closed();
        let Some(flight) = state.flights.get_mut(cell, id) else { return Decision::No };
        if lone_refresh {
            let fresh = session.found.iter().find(|e| e.location == location && e.freshness(now) == Freshness::Fresh);
            let Some(answer) = fresh.cloned() else { return Decision::No };
            flight.closed = true;
            if open {
                state.shared.offer(answer.clone());
            }
            return Decision::Answered { served: vec![answer.clone()], answer };
        }
        // Waiters within `POINT_TOLERANCE_KM` of a kept point count as that point: check with
        // that much to spare.
        let radius = self.config.proximity_km - POINT_TOLERANCE_KM;
        let mut served: Vec<Arc<Entry>> = Vec::new();
        let mut rest = Vec::new();
        for (p, need) in &flight.points {
            match best_for(&session.found, &session.fetched, *p, *need, radius, now) {
                Some(entry) => {
                    if !served.iter().any(|e| Arc::ptr_eq(e, &entry)) {
                        served.push(entry);
                    }
                }
                None => rest.push(*p),
            }
        }
        if served.is_empty() {
            return Decision::No;
        }
        if open {
            for entry in &session.found {
                state.shared.offer(entry.clone());
            }
        }
        if !rest.is_empty() {
            return Decision::Partly(rest);
        }
        flight.closed = true;
        let (p, need) = flight.points[0];
        let answer = best_for(&session.found, &session.fetched, p, need, radius, now).expect("every point is covered");
        Decision::Answered { answer, served }
    }

    fn close_flight(&self, cell: CellId, id: u64) {
        if let Some(flight) = self.lock().flights.get_mut(cell, id) {
            flight.closed = true;
        }
    }

    /// Where the flight's waiters are (or the requests a refresh is for).
    fn waiting_points(&self, cell: CellId, id: u64) -> Vec<LatLon> {
        let mut state = self.lock();
        state.flights.get_mut(cell, id).map(|f| f.points.iter().map(|(p, _)| *p).collect()).unwrap_or_default()
    }

    /// What a waiter at `at` takes from the entries its flight has before landing, if any
    /// covers it and its need accepts it.
    pub(super) fn found_for(&self, found: &[Arc<Entry>], fetched: &[Arc<Entry>], at: LatLon, need: Need) -> Option<Served> {
        let now = self.clock.now();
        let entry = best_for(found, fetched, at, need, self.config.proximity_km, now)?;
        let source = if fetched.iter().any(|e| Arc::ptr_eq(e, &entry)) {
            Source::Network
        } else if entry.freshness(now) == Freshness::Fresh {
            Source::Cache
        } else {
            Source::StaleCache
        };
        Some(Served { entry, source })
    }
}

/// The best entry for a waiter at `p` that `need` allows, live and within the radius: the
/// flight's own fetches first, then fresh before stale, then nearest. A forced refresh takes
/// only the flight's own fetches; a warmup only fresh entries.
fn best_for(found: &[Arc<Entry>], fetched: &[Arc<Entry>], p: LatLon, need: Need, radius_km: f64, now: i64) -> Option<Arc<Entry>> {
    let own = fetched.iter().map(|e| (e, true));
    let others = found.iter().map(|e| (e, false)).filter(|_| need != Need::Fetch);
    own.chain(others)
        .filter(|(e, _)| match (need, e.freshness(now)) {
            (_, Freshness::Expired) => false,
            (Need::Fresh, freshness) => freshness == Freshness::Fresh,
            _ => true,
        })
        .map(|(e, own)| (e, own, distance_km(p, e.location)))
        .filter(|(_, _, distance)| *distance <= radius_km)
        .min_by(|(a, own_a, da), (b, own_b, db)| {
            let rank = |e: &Arc<Entry>, own: bool| (!own, e.freshness(now) != Freshness::Fresh);
            rank(a, *own_a).cmp(&rank(b, *own_b)).then(da.total_cmp(db))
        })
        .map(|(e, _, _)| e.clone())
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
