//! A flight's dealings with the shared tier: before any upstream call, ask Redis.
//!
//! - Entries other instances stored answer the waiters they cover: each waiter takes the best
//!   one for its own point (fresh, or stale while its area is refreshed); the flight goes on
//!   for the others.
//! - A waiter within the radius of another instance's lease (a fetch in progress there) waits
//!   for that fetch: its landing is announced, and we poll too (pub/sub loses messages across
//!   reconnects). A lease is renewed while its flight lives and given back when it ends
//!   (landed, failed, cancelled, or the service closed), so a holder that died only delays.
//! - The waiters no entry and no lease covers need a fetch of ours: at the spot that covers
//!   them all (a waiter's), or at the flight's location, which covers every waiter. A fetch at
//!   a waiter's spot lands for the waiters it covers, and the flight goes around once more for
//!   the rest.
//!
//! Redis trouble means fetching alone: the tier saves calls, it never stops one. Each Redis
//! operation has the tier's `timeoutMs` of its own (a lookup, the admission of a call): time
//! spent waiting on another instance's lease never shortens the admission that follows, so the
//! shared budget is never skipped for want of time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::error::RequestError;
use super::outcome::Outcome;
use super::served::{Served, Source};
use super::singleflight::{Herald, Need, POINT_TOLERANCE_KM};
use super::Inner;
use crate::cache::{Entry, Freshness};
use crate::geo::{distance_km, max_rounding_error_km, round_location, CellId, LatLon};
use crate::provider::{intern, observation};
use crate::tier::{
    in_geo_range, member, token, Announcement, LeaseRequest, LeaseStatus, SharedTier, Stored, WaitOutcome, MAX_POINTS,
};

/// How often a waiter looks again when no announcement arrives.
const POLL: Duration = Duration::from_millis(100);

/// A background refresh nobody asked for (the stale entry the tier answered a flight with) is
/// for one area exactly: only an entry at the same rounded location replaces it.
const SAME_SPOT_KM: f64 = 0.001;

/// The area's lease in the shared tier, while this instance holds it: renewed every third of a
/// lease (a flight may outlive one: a provider timing out before the next answers), and given
/// back when the flight ends, whatever ends it: with the landing (`landed`), explicitly
/// (`release`), or when dropped (a flight cancelled by `close()` or by the runtime shutting
/// down). It holds the tier, so that it can be given back after `close()` let the tier go.
pub(super) struct Lease {
    pub at: LatLon,
    pub member: String,
    pub token: String,
    pub tier: Arc<SharedTier>,
    renewal: JoinHandle<()>,
    runtime: tokio::runtime::Handle,
    settled: bool,
}

impl Lease {
    fn hold(
        tier: Arc<SharedTier>,
        at: LatLon,
        member: String,
        token: String,
        lease: Duration,
        runtime: &tokio::runtime::Handle,
    ) -> Lease {
        let renewal = runtime.spawn({
            let (tier, member, token) = (tier.clone(), member.clone(), token.clone());
            async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    // Lost (expired and taken): nothing to renew. A failed renewal is tried
                    // again a third of a lease later, while the lease still runs.
                    if let Ok(false) = tier.renew(at, &member, &token, lease).await {
                        return;
                    }
                }
            }
        });
        Lease { at, member, token, tier, renewal, runtime: runtime.clone(), settled: false }
    }

    /// Gives the lease back (compare-and-delete), in the background, within the tier's deadline.
    pub fn release(self) {
        drop(self);
    }

    /// The landing gives it back (the store script does, with this token).
    pub fn landed(mut self) -> String {
        self.settled = true;
        std::mem::take(&mut self.token)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if !self.settled {
            let (tier, at, member, token) =
                (self.tier.clone(), self.at, std::mem::take(&mut self.member), std::mem::take(&mut self.token));
            // On a runtime shutting down this is dropped at once: the lease then expires.
            self.runtime.spawn(async move { tier.release(at, &member, &token).await });
        }
    }
}

/// What one flight knows of the tier.
pub(super) struct Session {
    pub tier: Arc<SharedTier>,
    /// This flight's leases' token: random, so that no other holder can give them back.
    token: String,
    announcements: broadcast::Receiver<Announcement>,
    /// Entries the tier returned so far.
    pub found: Vec<Arc<Entry>>,
    /// Entries the flight fetched itself at a waiter's spot.
    pub fetched: Vec<Arc<Entry>>,
}

/// What the entries at hand do for a flight's points.
enum Decision {
    /// Every point is covered: `answer` for the first, `served` the entries chosen for any.
    Answered {
        answer: Arc<Entry>,
        served: Vec<Arc<Entry>>,
    },
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
            token: token(),
            announcements: tier.announcements(),
            found: Vec::new(),
            fetched: Vec::new(),
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
        // A holder renews its lease every third of it while its flight lives, so the lease need
        // not outlast the flight: only a few renewals' deadlines. What it lasts is what a
        // waiter waits when the holder is gone without a word: its process died, or Redis took
        // its lease while the answer was lost (a lookup timed out), or its release never
        // arrived. See `lease_length`.
        let lease_for = lease_length(Duration::from_millis(self.config.request_timeout_ms), tier.timeout());
        // A live holder's flight asks each provider at most once, each within the upstream
        // timeout: waiting longer than that (and one lease) means something is wrong; fetch.
        let longest_flight = Duration::from_millis(self.config.request_timeout_ms) * self.upstreams.len() as u32;
        let give_up = Instant::now() + longest_flight + lease_for + tier.timeout();
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
        // Since when this flight waits on another instance's lease, if it does.
        let mut waiting: Option<Instant> = None;
        let metrics = tier.metrics();
        let waited = |since: Option<Instant>, outcome: WaitOutcome| {
            if let Some(since) = since {
                metrics.waited(outcome, since.elapsed());
            }
        };
        loop {
            open.truncate(MAX_POINTS);
            let points: Vec<LatLon> = open.iter().map(|p| round_location(*p, decimals)).collect();
            let candidates: Vec<(LatLon, String)> =
                if may_move { points.iter().map(|p| (*p, member(*p))).collect() } else { Vec::new() };
            let now_ms = self.clock.now();
            // A lease claims the area its fetch will serve: a waiter within the radius of it
            // (exactly, as a flight of this process would take it) waits for it. Redis sees
            // rounded points only; the leases it cannot decide on (within the rounding of the
            // radius) come back, and this instance judges them with the exact points.
            let serves = self.config.proximity_km - POINT_TOLERANCE_KM;
            let exact = &open;
            let covers = move |i: usize, center: LatLon| exact.get(i).is_some_and(|p| distance_km(*p, center) <= serves);
            let request = LeaseRequest {
                at: location,
                search_km: search,
                radius_km: (radius - rounding).max(SAME_SPOT_KM),
                maybe_km: if lone_refresh { SAME_SPOT_KM } else { radius + rounding },
                covers: (!lone_refresh).then_some(&covers as &(dyn Fn(usize, LatLon) -> bool + Sync)),
                points: &points,
                candidates: &candidates,
                member: &own,
                token: &token,
                lease: lease_for,
                now_ms,
                fresh_ms: self.config.fresh_ttl_ms,
                must_lease,
            };
            let Ok(lookup) = tier.find_or_lease(&request).await else {
                waited(waiting, WaitOutcome::TierFailed);
                return TierStep::Fetch { at: location, lease: None };
            };
            // Where a lease we took went: our location, or the spot of a waiter.
            let held = match lookup.status {
                LeaseStatus::Acquired { candidate } => {
                    let (at, member) =
                        candidate.and_then(|i| candidates.get(i).cloned()).unwrap_or((location, own.clone()));
                    Some((at, Lease::hold(tier.clone(), at, member, token.clone(), lease_for, &self.runtime)))
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
                        lease.release();
                    }
                    waited(waiting, WaitOutcome::Answered);
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
                    waited(waiting, WaitOutcome::TookOver);
                    let (at, lease) = held.expect("acquired");
                    if at != location {
                        // Its entry covers the open waiters, not every newcomer near the flight.
                        self.close_flight(cell, id);
                    }
                    return TierStep::Fetch { at, lease: Some(lease) };
                }
                LeaseStatus::Held { remaining } => {
                    let now = Instant::now();
                    waiting.get_or_insert(now);
                    if now >= give_up {
                        waited(waiting, WaitOutcome::GaveUp);
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
                Some(Arc::new(self.held_entry(
                    s.location,
                    &reading,
                    intern(&s.provider),
                    s.fetched_at,
                    s.held_until,
                    validator,
                    s.products.clone(),
                )))
            })
            .collect()
    }

    /// What the entries at hand do for the flight's points (under the lock). Entries from the
    /// tier that answer anyone go into the local store at once, so that newcomers find them
    /// there; a flight answered for every point takes no newcomers (its entries need not cover
    /// them). A refresh with no point is answered only by a fresh entry at its own spot.
    fn tier_decision(
        &self,
        cell: CellId,
        id: u64,
        location: LatLon,
        lone_refresh: bool,
        session: &Session,
    ) -> Decision {
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
    pub(super) fn found_for(
        &self,
        found: &[Arc<Entry>],
        fetched: &[Arc<Entry>],
        at: LatLon,
        need: Need,
    ) -> Option<Served> {
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
fn best_for(
    found: &[Arc<Entry>],
    fetched: &[Arc<Entry>],
    p: LatLon,
    need: Need,
    radius_km: f64,
    now: i64,
) -> Option<Arc<Entry>> {
    let own = fetched.iter().map(|e| (e, true));
    let others = found.iter().map(|e| (e, false)).filter(|_| need != Need::Fetch);
    own.chain(others)
        .filter(|(e, _)| match (need, e.freshness(now)) {
            (_, Freshness::Expired) => false,
            (Need::Fresh, freshness) => freshness == Freshness::Fresh,
            (Need::MaxAge(max), _) => e.age(now) <= i64::try_from(max).unwrap_or(i64::MAX),
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

/// How long a lease lasts: 2 s, and at least ten of the tier's deadlines (a renewal every third
/// of it has three deadlines to get through), never longer than one upstream timeout and three
/// deadlines (a flight that short needs no renewal).
fn lease_length(request_timeout: Duration, tier_timeout: Duration) -> Duration {
    LEASE.max(10 * tier_timeout).min(request_timeout + 3 * tier_timeout)
}

/// What a lease lasts with the default deadlines (see `lease_length`).
const LEASE: Duration = Duration::from_secs(2);

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

/// An area's error as the shared tier carries it to other instances (one line): its code, then
/// what the code needs (`ERR_UPSTREAM_STATUS 503 reason`). Only area failures travel.
pub(super) fn shared_error(error: &RequestError) -> Option<String> {
    let line = |text: &str| text.replace(['\r', '\n'], " ");
    Some(match error {
        RequestError::Status { status, reason, .. } => {
            format!("{} {status} {}", error.code(), line(reason.as_deref().unwrap_or("")))
        }
        RequestError::Timeout { .. } => error.code().to_owned(),
        RequestError::Network { message, .. } | RequestError::InvalidResponse { message, .. } => {
            format!("{} {}", error.code(), line(message))
        }
        _ => return None,
    })
}

/// The error another instance saw, for `provider` here. Anything unreadable reads as a network
/// error: the area cools down all the same.
pub(super) fn from_shared(text: &str, provider: super::ProviderName) -> RequestError {
    let (code, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    match code {
        "ERR_UPSTREAM_STATUS" => {
            let (status, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            match status.parse::<u16>() {
                Ok(status) => {
                    RequestError::Status { provider, status, reason: (!reason.is_empty()).then(|| reason.to_owned()) }
                }
                Err(_) => RequestError::Network { provider, message: "failing (seen by another instance)".into() },
            }
        }
        "ERR_UPSTREAM_TIMEOUT" => RequestError::Timeout { provider },
        "ERR_UPSTREAM_INVALID_RESPONSE" => RequestError::InvalidResponse { provider, message: rest.to_owned() },
        _ => RequestError::Network {
            provider,
            message: if rest.is_empty() { "failing (seen by another instance)".into() } else { rest.to_owned() },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lasts_seconds_not_an_upstream_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(lease_length(ms(10_000), ms(100)), ms(2_000), "the defaults");
        assert_eq!(lease_length(ms(10_000), ms(1_000)), ms(10_000), "ten deadlines");
        assert_eq!(lease_length(ms(1_000), ms(100)), ms(1_300), "a short flight");
    }

    #[test]
    fn area_errors_travel_between_instances() {
        let p = "openweather";
        for error in [
            RequestError::Status { provider: p, status: 503, reason: Some("Service Unavailable".into()) },
            RequestError::Status { provider: p, status: 500, reason: None },
            RequestError::Timeout { provider: p },
            RequestError::Network { provider: p, message: "connection refused".into() },
            RequestError::InvalidResponse { provider: p, message: "not JSON".into() },
        ] {
            assert_eq!(from_shared(&shared_error(&error).unwrap(), p), error);
        }
        assert_eq!(shared_error(&RequestError::RateLimited { provider: p, retry_after_ms: 1 }), None);
        assert!(matches!(from_shared("garbage", p), RequestError::Network { .. }));
    }
}
