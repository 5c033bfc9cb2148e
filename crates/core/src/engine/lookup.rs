//! The order of decisions for one request.
//!
//! 1. The user's own entries, then the shared store (the cell and every neighbour the radius
//!    reaches): a fresh entry within `proximity_km` is a hit.
//! 2. A stale entry (past `expires_at`, inside the stale window) is served at once, and one
//!    background refresh of its area starts unless a fetch that covers it is already running.
//! 3. Otherwise the request needs the network: it joins a running fetch whose location is
//!    within the radius, or, unless the provider or the area is cooling down, starts one.
//!
//! `forceRefresh` and warmups skip 1-2 for entries older than `min_refresh_interval_ms`; a
//! caller's `maxAgeMs` skips them for entries older than the larger of the two. A fresh entry
//! in the last `refresh_ahead_ms` of its fresh window is served, and starts one background
//! refresh (see `refresh_ahead.rs`).

use std::sync::Arc;

use super::error::{most_telling, RequestError};
use super::events::{Event, EventSink, Level, Scope};
use super::served::{Served, Source};
use super::singleflight::{Need, Ticket};
use super::{Begin, Inner, State};
use crate::cache::{Entry, Found, Freshness};
use crate::geo::{round_location, LatLon};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Fetch unless the covering entry is younger than the minimum refresh interval.
    ForceRefresh,
    /// Make sure a fresh entry exists: a fresh or recent entry is enough, otherwise fetch.
    Warmup,
    /// The caller's own max age (ms): an entry older than that is a miss for this request,
    /// unless it is younger than the minimum refresh interval (the floor every caller shares,
    /// or one caller could make every request a fetch).
    MaxAge(u64),
}

#[derive(Copy, Clone, Debug)]
pub struct Request<'a> {
    pub user: &'a str,
    pub at: LatLon,
    pub mode: Mode,
}

/// An entry that can answer the request, and which store it came from.
struct Covering {
    found: Found,
    scope: Scope,
}

/// A request waiting for a flight.
pub struct Pending {
    ticket: Ticket,
    inner: Arc<Inner>,
    /// Where the request is, and what it accepts from entries the flight finds before landing.
    at: LatLon,
    need: Need,
    /// The entry that covered the request when it was made (a forced refresh or a warmup of a
    /// stale area): the answer if the fetch fails while it is still servable.
    fallback: Option<Arc<Entry>>,
    /// This request started the flight (a miss), rather than joining one.
    started: bool,
}

/// How a pending request ended, with the events its caller should log.
pub struct Reply {
    pub result: Result<Served, RequestError>,
    pub events: Vec<Event>,
}

impl Pending {
    /// Whether this request started the fetch it waits for (a miss), rather than joining one
    /// (coalesced). The proxy charges the upstream call to the client that caused it.
    pub fn started_fetch(&self) -> bool {
        self.started
    }

    /// Waits for the flight. With `take_events`, the reply carries the flight's own events
    /// (rate limit, errors) unless another waiter took them first; a caller with nowhere to log
    /// them passes `false`, and they reach the service's background sink instead.
    pub async fn wait(self, take_events: bool) -> Reply {
        let Pending { ticket, inner, at, need, fallback, .. } = self;
        let news = ticket.news(|news| inner.found_for(&news.found, &news.fetched, at, need).is_some()).await;
        let landing = news.landing.as_ref();
        let events = match landing {
            Some(landing) if take_events => landing.take_events(),
            _ => Vec::new(),
        };
        // The flight's own fetch at its location answers every waiter it has (they joined
        // within the radius of it); anything else answers only a waiter it covers and suits.
        let radius = inner.config.proximity_km;
        let own = landing
            .and_then(|l| l.result.as_ref().ok())
            .filter(|s| s.source == Source::Network && crate::geo::distance_km(at, s.entry.location) <= radius);
        let result = match (own, inner.found_for(&news.found, &news.fetched, at, need)) {
            (Some(served), _) => Ok(served.clone()),
            (None, Some(served)) => Ok(served),
            (None, None) => match landing.map(|l| &l.result) {
                Some(Err(error)) => inner.stale_if_error(fallback, error.clone()),
                // Unreachable by construction: a flight answered from entries at hand closed
                // to newcomers once they covered every waiter. Never an entry out of range.
                _ => inner.stale_if_error(fallback, uncovered()),
            },
        };
        Reply { result, events }
    }
}

/// The error of a waiter its flight left without an entry covering it.
fn uncovered() -> RequestError {
    RequestError::Network { provider: "weather-cache", message: "no entry covered the request".to_owned() }
}

impl Inner {
    /// The request's answer, or its wait, and the user's bucket and version right after it was
    /// decided (under the same lock), when users are watched.
    pub(super) fn begin(
        self: &Arc<Self>,
        request: Request<'_>,
        sink: &mut impl EventSink,
    ) -> (Begin, Option<(usize, u32)>) {
        if self.is_closed() {
            return (Begin::Ready(Err(RequestError::Closed)), None);
        }
        let now = self.clock.now();
        if sink.enabled(Level::Debug) {
            let key = self.grid.key(self.grid.cell_of(request.at));
            sink.emit(Event::Attempted { user: request.user.into(), key, at: request.at });
        }
        let mut state = self.lock();
        // Counted under the lock with its class, so that a snapshot never sees one without
        // the other.
        self.counters.requests.inc();
        let begun = self.decide(&mut state, request, now, sink);
        let version = state.users.version_of(request.user);
        let launches = std::mem::take(&mut state.launches);
        drop(state);
        for launch in launches {
            launch.spawn();
        }
        (begun, version)
    }

    fn decide(self: &Arc<Self>, state: &mut State, request: Request<'_>, now: i64, sink: &mut impl EventSink) -> Begin {
        let covering = self.covering(state, request.user, request.at, now, sink);
        if let Some(covering) = covering {
            let entry = &covering.found.entry;
            let fresh = covering.found.freshness == Freshness::Fresh;
            // Too recent to refetch: younger than the minimum interval, or held at the
            // provider's request (MET Norway's Expires).
            let recent = entry.age(now) < self.config.min_refresh_interval_ms as i64 || entry.held_until() > now;
            let young_enough = |max: u64| entry.age(now) <= i64::try_from(max).unwrap_or(i64::MAX);
            let serve = match request.mode {
                Mode::Normal => true,
                Mode::Warmup => fresh || recent,
                Mode::ForceRefresh => recent,
                Mode::MaxAge(max) => young_enough(max) || recent,
            };
            if serve {
                // Served only because of the floor: what the caller asked for was a fetch.
                let floored = match request.mode {
                    Mode::Normal => false,
                    Mode::Warmup => !fresh,
                    Mode::ForceRefresh => true,
                    Mode::MaxAge(max) => !young_enough(max),
                };
                if floored {
                    self.skipped_min_interval(sink, entry, now);
                }
                if !fresh {
                    self.revalidate(state, entry.clone(), request, now, sink);
                } else if self.config.refresh_ahead_ms > 0 {
                    self.refresh_ahead(state, entry, request, now);
                }
                return Begin::Ready(Ok(self.serve(state, covering, request.user, now, sink)));
            }
            return self.network(state, request, Some(covering), now, sink);
        }
        self.network(state, request, None, now, sink)
    }

    /// The best entry for the request: the user's own if fresh, else the better of the user's
    /// and the shared store's (fresh beats stale, then nearest; the user's wins ties).
    fn covering(
        &self,
        state: &mut State,
        user: &str,
        p: LatLon,
        now: i64,
        sink: &mut impl EventSink,
    ) -> Option<Covering> {
        let radius = self.config.proximity_km;
        let debug = sink.enabled(Level::Debug);
        let mut seen = |distance_km: f64, _within: bool| {
            if debug {
                sink.emit(Event::Distance { distance_km, within_km: radius });
            }
        };
        let own = state.users.find(user, p, radius, now, &mut seen);
        if let Some(found) = own.as_ref().filter(|f| f.freshness == Freshness::Fresh) {
            return Some(Covering { found: found.clone(), scope: Scope::User });
        }
        let shared = state.shared.find(&self.grid, p, radius, now, &mut seen);
        match (own, shared) {
            (Some(own), Some(shared)) if shared.better_than(&own) => {
                Some(Covering { found: shared, scope: Scope::Shared })
            }
            (Some(own), _) => Some(Covering { found: own, scope: Scope::User }),
            (None, Some(shared)) => Some(Covering { found: shared, scope: Scope::Shared }),
            (None, None) => None,
        }
    }

    /// Answers from the cache; an entry found in the shared store is copied to the user's.
    fn serve(&self, state: &mut State, covering: Covering, user: &str, now: i64, sink: &mut impl EventSink) -> Served {
        let Covering { found, scope } = covering;
        let stale = found.freshness != Freshness::Fresh;
        match (stale, scope) {
            (true, _) => self.counters.stale_hits.inc(),
            (false, Scope::User) => self.counters.user_hits.inc(),
            (false, Scope::Shared) => self.counters.shared_hits.inc(),
        }
        match scope {
            Scope::Shared => state.users.remember(user, found.entry.clone()),
            Scope::User => state.shared.touch(&found.entry),
        }
        if sink.enabled(Level::Debug) {
            let (key, age_ms) = (self.grid.key(found.entry.cell), found.entry.age(now));
            sink.emit(Event::Hit { stale, user: user.into(), key, age_ms, scope });
        }
        Served { source: if stale { Source::StaleCache } else { Source::Cache }, entry: found.entry }
    }

    /// Stale-while-revalidate: one background refresh per stale area, never for an entry
    /// younger than the minimum interval, never against a cooldown, and never while a fetch
    /// that covers the request is running (the user joins that one's result instead).
    fn revalidate(
        self: &Arc<Self>,
        state: &mut State,
        entry: Arc<Entry>,
        request: Request<'_>,
        now: i64,
        sink: &mut impl EventSink,
    ) {
        if entry.age(now) < self.config.min_refresh_interval_ms as i64 {
            if matches!(request.mode, Mode::Normal | Mode::MaxAge(_)) {
                self.skipped_min_interval(sink, &entry, now);
            }
            return;
        }
        if let Some(flight) = state.flights.find(&self.grid, request.at, self.config.proximity_km) {
            flight.join(request.user);
            return;
        }
        // `refresh` also skips the refresh when a flight near the entry's own location already
        // refreshes the area, even one too far from this request to answer it.
        self.refresh(state, &entry, Some((request.user, request.at)), now);
    }

    /// The request needs the network: join a covering flight, or start one unless refused.
    /// During a cooldown an entry that covers the request (a forced refresh's) is served.
    fn network(
        self: &Arc<Self>,
        state: &mut State,
        request: Request<'_>,
        covering: Option<Covering>,
        now: i64,
        sink: &mut impl EventSink,
    ) -> Begin {
        let debug = sink.enabled(Level::Debug);
        if self.config.coalesce {
            if let Some(flight) = state.flights.find(&self.grid, request.at, self.config.proximity_km) {
                flight.wait(request.user, request.at, need(request.mode));
                self.counters.coalesced.inc();
                if debug {
                    let (key, waiters) = (flight.key.clone(), flight.waiters);
                    sink.emit(Event::Coalesced { user: request.user.into(), key, waiters });
                }
                let fallback = covering.map(|c| c.found.entry);
                return Begin::Pending(self.pending(flight.ticket(), request, fallback, false));
            }
        }
        // Refusals are judged where the fetch would ask (the rounded location), as the flight
        // itself judges them: a request counted as a miss is never refused by its own flight.
        let location = round_location(request.at, self.config.coordinate_decimals);
        if let Some(refusal) = self.refusal(state, location, now) {
            if sink.enabled(Level::Warn) {
                for (upstream, provider) in self.upstreams.iter().zip(&mut state.providers) {
                    if let Some(event) = provider.key_missing(upstream) {
                        sink.emit(event);
                    }
                }
            }
            if let Some(covering) = covering {
                return Begin::Ready(Ok(self.serve(state, covering, request.user, now, sink)));
            }
            self.counters.rejected.inc();
            return Begin::Ready(Err(refusal));
        }
        self.counters.misses.inc();
        if debug {
            let key = self.grid.key(self.grid.cell_of(request.at));
            sink.emit(Event::Miss { user: request.user.into(), key });
        }
        let ticket = self.launch(state, location, Some(request.user), Some((request.at, need(request.mode))));
        Begin::Pending(self.pending(ticket, request, covering.map(|c| c.found.entry), true))
    }

    /// Whether `request` would start a fetch now: no entry covers it, no flight near it, and a
    /// provider may be asked. Decides nothing and counts nothing (it only refreshes the
    /// recency of what it looks at). For the proxy's per-client upstream limit.
    pub(super) fn would_fetch(&self, request: Request<'_>) -> bool {
        if self.is_closed() {
            return false;
        }
        let now = self.clock.now();
        let mut state = self.lock();
        let mut quiet = super::events::Recorder::new(Level::Silent);
        if self.covering(&mut state, request.user, request.at, now, &mut quiet).is_some() {
            return false;
        }
        if self.config.coalesce && state.flights.find(&self.grid, request.at, self.config.proximity_km).is_some() {
            return false;
        }
        let location = round_location(request.at, self.config.coordinate_decimals);
        self.refusal(&mut state, location, now).is_none()
    }

    /// Why no upstream request may be made for `p` now: `None` as soon as one provider may
    /// be asked, otherwise the most telling of their refusals.
    pub(super) fn refusal(&self, state: &mut State, p: LatLon, now: i64) -> Option<RequestError> {
        let mut refusal = None;
        for (upstream, provider) in self.upstreams.iter().zip(&mut state.providers) {
            match provider.refusal(upstream, &self.grid, p, self.config.proximity_km, now) {
                None => return None,
                Some(reason) => refusal = most_telling(refusal, reason),
            }
        }
        refusal
    }

    fn pending(self: &Arc<Self>, ticket: Ticket, request: Request<'_>, fallback: Option<Arc<Entry>>, started: bool) -> Pending {
        Pending { ticket, inner: self.clone(), at: request.at, need: need(request.mode), fallback, started }
    }

    /// Stale-if-error: a failed fetch is answered from the entry that covered the request when
    /// it was made, if that entry is still inside its stale window. (Not from whatever other
    /// fetch happened to land meanwhile: answers then depend on the order fetches land in.)
    /// The user's cache is left alone: the entry is already where it was found, and writing it
    /// back here would undo a `clearUser` that ran while the fetch was in flight.
    fn stale_if_error(&self, fallback: Option<Arc<Entry>>, error: RequestError) -> Result<Served, RequestError> {
        if error == RequestError::Closed || self.is_closed() {
            return Err(RequestError::Closed);
        }
        let now = self.clock.now();
        let Some(entry) = fallback.filter(|e| e.freshness(now) != Freshness::Expired) else {
            return Err(error);
        };
        self.counters.stale_if_error.inc();
        let fresh = entry.freshness(now) == Freshness::Fresh;
        Ok(Served { source: if fresh { Source::Cache } else { Source::StaleCache }, entry })
    }
}

/// What a request in `mode` accepts from entries its flight finds before landing.
fn need(mode: Mode) -> Need {
    match mode {
        Mode::Normal => Need::Any,
        Mode::Warmup => Need::Fresh,
        Mode::ForceRefresh => Need::Fetch,
        Mode::MaxAge(max) => Need::MaxAge(max),
    }
}

impl Inner {
    fn skipped_min_interval(&self, sink: &mut impl EventSink, entry: &Entry, now: i64) {
        if sink.enabled(Level::Debug) {
            sink.emit(Event::SkippedMinInterval { key: self.grid.key(entry.cell), since_last_ms: entry.age(now) });
        }
    }
}
