//! Coalescing, after Go's `x/sync/singleflight`: at most one upstream fetch per area at a time,
//! and its result broadcast to everyone who asked meanwhile.
//!
//! Unlike a key-based singleflight, "the same call" is spatial: a request joins a flight when
//! the flight's location is within the proximity radius, i.e. when the result is certain to be
//! a cache hit for it. The fetch runs as its own task, so a waiter that gives up (an aborted
//! signal) never cancels it for the others; the result still fills the cache.
//!
//! With a shared tier a flight has news before it lands: entries other instances stored. A
//! waiter within the radius of one of them leaves with it at once; the flight goes on for the
//! others. Instances thus adopt each other's entries instead of each growing its own set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::error::RequestError;
use super::events::Event;
use super::served::Served;
use super::BackgroundEvents;
use crate::cache::{Entry, Nearby};
use crate::geo::{distance_km, CellId, Grid, LatLon};

/// What a flight delivers to its waiters.
pub struct Landing {
    /// The entry (fetched, or found in the shared tier) or why there is none.
    pub result: Result<Served, RequestError>,
    /// Events of the fetch itself (rate limit, error, backoff). They must reach someone: the
    /// first waiter that can log them takes them; if none does (nobody waits, or every waiter
    /// gave up or has no logger of its own), they go to the background sink when the landing
    /// is dropped.
    events: Mutex<Vec<Event>>,
    background: Option<BackgroundEvents>,
}

impl Landing {
    pub fn new(result: Result<Served, RequestError>, events: Vec<Event>, background: Option<BackgroundEvents>) -> Landing {
        Landing { result, events: Mutex::new(events), background }
    }

    /// The flight's events, to the first caller only.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        let events = self.take_events();
        if let (false, Some(background)) = (events.is_empty(), &self.background) {
            background(events);
        }
    }
}

impl std::fmt::Debug for Landing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Landing").field("result", &self.result).finish_non_exhaustive()
    }
}

/// What a flight's waiters can see so far.
#[derive(Debug, Default)]
pub struct News {
    /// Entries the shared tier returned: a waiter within the radius of one that its need
    /// accepts leaves with it, before the flight lands.
    pub found: Vec<Arc<Entry>>,
    /// Entries the flight fetched itself at a waiter's spot, before going on for the others:
    /// these also answer a forced refresh.
    pub fetched: Vec<Arc<Entry>>,
    /// How the flight ended, once it has.
    pub landing: Option<Arc<Landing>>,
}

/// A waiter this close to a point a flight already keeps is not kept itself: coverage checks
/// allow for it.
pub const POINT_TOLERANCE_KM: f64 = 0.01;

/// What a waiting request accepts from entries found before its flight lands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// A plain request: fresh, or stale (served while the area is refreshed).
    Any,
    /// A warmup: only a fresh entry will do.
    Fresh,
    /// A forced refresh: only the flight's own fetch.
    Fetch,
    /// A caller's max age: the flight's own fetch, or an entry at most that old (ms).
    MaxAge(u64),
}

/// A set of users that remembers the order they joined in: the landing stores the result for
/// them in that order, which decides who a full users LRU evicts. (A `HashSet`'s order would
/// differ from run to run, and so would the evictions.)
#[derive(Debug, Default)]
pub struct Joiners {
    order: HashMap<Box<str>, u64>,
    next: u64,
}

impl Joiners {
    fn of(user: Option<&str>) -> Joiners {
        let mut joiners = Joiners::default();
        if let Some(user) = user {
            joiners.insert(user);
        }
        joiners
    }

    fn insert(&mut self, user: &str) {
        if !self.order.contains_key(user) {
            self.order.insert(user.into(), self.next);
            self.next += 1;
        }
    }

    fn remove(&mut self, user: &str) {
        self.order.remove(user);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// In the order they joined.
    pub fn in_order(self) -> Vec<Box<str>> {
        let mut users: Vec<_> = self.order.into_iter().collect();
        users.sort_unstable_by_key(|(_, at)| *at);
        users.into_iter().map(|(user, _)| user).collect()
    }
}

/// A flight in progress, as the table sees it.
#[derive(Debug)]
pub struct Flight {
    pub id: u64,
    pub key: String,
    /// Rounded location sent upstream; the entry will live here.
    pub location: LatLon,
    /// Users whose per-user cache receives the result (initiator and every joiner), each once
    /// however many of their requests wait.
    pub joiners: Joiners,
    /// Requests waiting on it (the initiator counts; a background refresh has none).
    pub waiters: usize,
    /// Where the waiting requests are: entries found elsewhere (the shared tier) answer the
    /// flight only if every one of them is within the radius of one.
    pub points: Vec<(LatLon, Need)>,
    /// Answered by the shared tier: it takes no more waiters (the entries it found cover its
    /// waiters, not necessarily a newcomer; a newcomer finds them in the local store instead).
    pub closed: bool,
    news: watch::Receiver<Arc<News>>,
}

impl Flight {
    pub fn ticket(&self) -> Ticket {
        Ticket(self.news.clone())
    }

    /// `user`'s cache receives the result (a request that does not wait on it, such as a
    /// stale hit whose area this flight refreshes).
    pub fn join(&mut self, user: &str) {
        self.joiners.insert(user);
    }

    /// A request at `p` waits on the flight.
    pub fn wait(&mut self, user: &str, p: LatLon, need: Need) {
        self.join(user);
        self.waiters += 1;
        // Points close to one already kept add nothing to the coverage check: with 1,000
        // drones polling one spot the list stays short.
        if !self.points.iter().any(|(q, n)| *n == need && distance_km(*q, p) < 0.01) {
            self.points.push((p, need));
        }
    }
}

/// The right to follow a flight's news.
#[derive(Debug)]
pub struct Ticket(watch::Receiver<Arc<News>>);

impl Ticket {
    /// The news once `enough` says so (or the flight has landed).
    pub async fn news(mut self, enough: impl Fn(&News) -> bool) -> Arc<News> {
        match self.0.wait_for(|news| news.landing.is_some() || enough(news)).await {
            Ok(news) => news.clone(),
            // The flight task's guard publishes before the sender can drop (even on panic or
            // runtime shutdown); this arm exists so that no path leaves a waiter pending forever.
            Err(_) => {
                let landing = Landing::new(Err(RequestError::Closed), Vec::new(), None);
                Arc::new(News { landing: Some(Arc::new(landing)), ..News::default() })
            }
        }
    }
}

/// Held by the task that performs a flight: the only way to publish its news and landing.
#[derive(Debug)]
pub struct Takeoff {
    pub id: u64,
    pub cell: CellId,
    pub key: String,
    sender: watch::Sender<Arc<News>>,
}

impl Takeoff {
    /// A handle to tell waiters about entries found before the flight lands.
    pub fn herald(&self) -> Herald {
        Herald(self.sender.clone())
    }

    pub fn publish(self, landing: Landing) {
        let (found, fetched) = {
            let news = self.sender.borrow();
            (news.found.clone(), news.fetched.clone())
        };
        // No receiver left (every waiter gave up) is fine: the cache was filled already.
        let _ = self.sender.send(Arc::new(News { found, fetched, landing: Some(Arc::new(landing)) }));
    }
}

/// Tells a flight's waiters about entries it has before it lands.
#[derive(Clone, Debug)]
pub struct Herald(watch::Sender<Arc<News>>);

impl Herald {
    pub fn tell(&self, found: &[Arc<Entry>], fetched: &[Arc<Entry>]) {
        self.0.send_replace(Arc::new(News { found: found.to_vec(), fetched: fetched.to_vec(), landing: None }));
    }
}

#[derive(Debug, Default)]
pub struct FlightTable {
    by_cell: HashMap<CellId, Vec<Flight>>,
    count: usize,
    next_id: u64,
    nearby: Nearby,
}

impl FlightTable {
    pub fn len(&self) -> usize {
        self.count
    }

    /// The nearest flight whose location is within `radius_km` of `p`.
    pub fn find(&mut self, grid: &Grid, p: LatLon, radius_km: f64) -> Option<&mut Flight> {
        if self.count == 0 {
            return None;
        }
        let mut best: Option<(CellId, usize, f64)> = None;
        let mut consider = |cell: CellId, flights: &Vec<Flight>| {
            for (index, flight) in flights.iter().enumerate().filter(|(_, f)| !f.closed) {
                let distance = distance_km(p, flight.location);
                if distance <= radius_km && best.is_none_or(|(_, _, d)| distance < d) {
                    best = Some((cell, index, distance));
                }
            }
        };
        let by_cell = &self.by_cell;
        match self.nearby.cells(grid, p, radius_km, by_cell.len()) {
            Some(cells) => cells.for_each(|cell| {
                if let Some(flights) = by_cell.get(&cell) {
                    consider(cell, flights)
                }
            }),
            None => by_cell.iter().for_each(|(cell, flights)| consider(*cell, flights)),
        }
        let (cell, index, _) = best?;
        self.by_cell.get_mut(&cell).map(|flights| &mut flights[index])
    }

    /// The flight `takeoff` names, while it is in the air.
    pub fn get_mut(&mut self, cell: CellId, id: u64) -> Option<&mut Flight> {
        self.by_cell.get_mut(&cell)?.iter_mut().find(|f| f.id == id)
    }

    /// Registers a new flight; the caller must hand the `Takeoff` to the task that fetches.
    /// `waiting` is the initiator's point, `None` for a background refresh (nobody waits).
    pub fn start(
        &mut self,
        grid: &Grid,
        location: LatLon,
        joiner: Option<&str>,
        waiting: Option<(LatLon, Need)>,
    ) -> (Takeoff, Ticket) {
        let cell = grid.cell_of(location);
        let key = grid.key(cell);
        self.next_id += 1;
        let (sender, news) = watch::channel(Arc::new(News::default()));
        let ticket = Ticket(news.clone());
        let flight = Flight {
            id: self.next_id,
            key: key.clone(),
            location,
            joiners: Joiners::of(joiner),
            waiters: usize::from(waiting.is_some()),
            points: waiting.into_iter().collect(),
            closed: false,
            news,
        };
        self.by_cell.entry(cell).or_default().push(flight);
        self.count += 1;
        (Takeoff { id: self.next_id, cell, key, sender }, ticket)
    }

    #[cfg(test)]
    pub fn joiners(&self) -> usize {
        self.by_cell.values().flatten().map(|f| f.joiners.len()).sum()
    }

    /// Takes `user` off every flight's joiners (a user who was cleared while fetches ran).
    pub fn forget(&mut self, user: &str) {
        for flight in self.by_cell.values_mut().flatten() {
            flight.joiners.remove(user);
        }
    }

    /// Removes a flight as it lands. The caller stores the result in the caches under the same
    /// lock, so that a request arriving meanwhile sees either the flight or the entry, never
    /// neither (which would start a duplicate fetch).
    pub fn land(&mut self, takeoff: &Takeoff) -> Option<Flight> {
        let flights = self.by_cell.get_mut(&takeoff.cell)?;
        let index = flights.iter().position(|f| f.id == takeoff.id)?;
        let flight = flights.swap_remove(index);
        if flights.is_empty() {
            self.by_cell.remove(&takeoff.cell);
        }
        self.count -= 1;
        Some(flight)
    }
}
