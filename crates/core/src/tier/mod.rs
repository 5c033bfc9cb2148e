//! The shared tier: what several instances on one API key share through Redis (or Valkey),
//! so that N of them cost the upstream what one does. Entries (GEO sets + payloads), leases on
//! areas being fetched, providers' and areas' cooldowns and call budgets. The engine uses it;
//! it knows nothing of the engine.
//!
//! Redis trouble never becomes the caller's trouble: every operation has a deadline, and a
//! failure opens a circuit (see `circuit.rs`) during which operations are skipped at once and
//! the instance runs on its local tier alone. The connection is replaced when a failure says
//! it is no good (see `link.rs`), so the tier recovers by itself from restarts, partitions and
//! failovers. Locks here buy efficiency, not correctness: a lease that expires or is lost costs
//! at most a duplicate fetch.

mod address;
mod circuit;
mod failure;
mod keys;
mod ledger;
mod link;
mod metrics;
mod payload;
/// Also the snapshot's form of products (`engine/snapshot.rs`): one compact form on the wire
/// and on disk.
pub mod products;
mod policy;
mod scripts;
mod tiles;
mod token;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::io::tcp::{socket2, TcpSettings};
use redis::{FromRedisValue, PushInfo, Script, ScriptInvocation, Value};
use tokio::sync::{broadcast, mpsc};

pub use circuit::Transition;
pub use failure::Cause;
pub use keys::{member, parse_member};
pub use metrics::{TierMetrics, TierStats, WaitOutcome, LATENCY_BUCKETS};
pub use payload::Stored;
pub use token::token;

use self::address::Target;
use self::circuit::Circuit;
use self::keys::{Keys, TileKeys};
use self::ledger::Ledger;
use self::link::{Connection, Link};
use self::tiles::{tiles_within, Tile};
use crate::geo::LatLon;
use crate::redact::Redactor;

/// Redis's GEO commands refuse latitudes beyond ±85.05112878 (Web Mercator): areas closer to
/// the poles stay on each instance's local tier.
pub const MAX_GEO_LATITUDE: f64 = 85.051_128;

/// The ACL rules the tier's user needs, besides its keys (`~{prefix}:*` and `~{prefix:*`) and
/// channel (`&{prefix}:landed`): the scripts' commands (`TIME` is in `@fast`, not in `@read`
/// or `@write`), `SCRIPT LOAD`/`EVALSHA`, pub/sub. The README shows it; a test runs the tier as
/// a user with exactly these rules.
pub const ACL_RULES: &str = "+@read +@write +@scripting +time +publish +subscribe";

/// What the tier tells its owner: changes of health (one per transition), and warnings about
/// how Redis is set up (each once).
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    Degraded { retry_in: Duration, cause: Cause, reason: String },
    Restored { down_for: Duration },
    Warning { message: String },
}

/// Told of each notice, with where the tier is (`host:port/db`, never credentials).
pub type Observer = Box<dyn Fn(&Notice, &str) + Send + Sync>;

/// Whether Redis's GEO commands take this point.
pub fn in_geo_range(p: LatLon) -> bool {
    p.lat.abs() <= MAX_GEO_LATITUDE && p.lon.abs() <= 180.0
}

#[derive(Clone, Debug)]
pub struct TierConfig {
    /// `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` URL (see `address.rs`).
    pub url: String,
    pub key_prefix: String,
    /// Deadline of every Redis operation.
    pub timeout: Duration,
}

pub struct SharedTier {
    link: Arc<Link>,
    /// Scripts may touch one tile's keys only (one slot each).
    cluster: bool,
    keys: Keys,
    scripts: Scripts,
    timeout: Duration,
    circuit: Mutex<Circuit>,
    announcements: broadcast::Sender<Announcement>,
    observer: Observer,
    metrics: Arc<TierMetrics>,
    ledger: Ledger,
    /// Warnings given already (each is given once).
    warned: Mutex<HashSet<String>>,
    /// How messages name the server (never with credentials).
    place: String,
    /// One per secret of the URL.
    redactors: Vec<Redactor>,
    runtime: tokio::runtime::Handle,
    this: Weak<SharedTier>,
    /// When the last answer came (ms since `epoch`): a timeout while Redis answers others is
    /// one slow operation, not Redis gone silent.
    answered: AtomicU64,
    epoch: Instant,
    /// Calls counted alone are waiting to be added to the shared counters; adding them is
    /// under way.
    unshared: AtomicBool,
    reconciling: AtomicBool,
}

/// How long a connection may take to deliver an answer that arrived as the deadline passed.
const DELIVERY_GRACE: Duration = Duration::from_millis(5);

struct Scripts {
    find_or_lease: Script,
    store: Script,
    release: Script,
    renew: Script,
    admit: Script,
    cool_down: Script,
    fail_area: Script,
    reconcile: Script,
    counts: Script,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TierError {
    /// Nothing was attempted: the circuit is open, or the request is one Redis could not take
    /// (a point beyond its GEO range).
    Skipped,
    /// The operation failed or missed its deadline (counted; the circuit knows, unless the
    /// failure was one key's data).
    Failed(String),
}

/// What `find_or_lease` found.
#[derive(Debug)]
pub struct Lookup {
    pub status: LeaseStatus,
    /// Live entries within the radius (fresh and stale alike), their `fetched_at` bounded by
    /// when Redis received them.
    pub entries: Vec<Stored>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LeaseStatus {
    /// At least one entry is fresh by the caller's clock; no lease was taken.
    Fresh,
    /// Another fetch nearby holds a lease for this long.
    Held { remaining: Duration },
    /// The caller holds the lease now: at `at`, or at the chosen candidate (an index into
    /// `candidates`).
    Acquired { candidate: Option<usize> },
}

/// A provider's calls by every instance sharing the tier, in the server's current windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedCalls {
    /// In the current minute (server time, whole minutes: not the last 60 s).
    pub this_minute: u64,
    /// In the current UTC day.
    pub today: u64,
    /// Until the current minute ends.
    pub minute_left: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    Admitted,
    /// The provider cools down after a 429 (seen by any instance).
    Cooling {
        remaining: Duration,
    },
    /// The minute's or the day's budget is spent until then.
    OverBudget {
        retry_after: Duration,
    },
    /// The area cools down after an error (seen by any instance): `failures` in a row so far,
    /// and the error, as `SharedFailure::text` wrote it.
    AreaFailing {
        remaining: Duration,
        failures: u32,
        error: String,
    },
}

/// A landing or a released lease, announced by some instance (pub/sub, best effort).
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    pub at: LatLon,
    pub landed: bool,
}

/// Most points one lease request carries (a flight's waiters, a dozen or so in practice).
pub const MAX_POINTS: usize = 64;

/// What one lease request is about.
pub struct LeaseRequest<'a> {
    /// The fetch's location (the lease's).
    pub at: LatLon,
    /// Entries are looked for within this of `at`.
    pub search_km: f64,
    /// A lease answers a point (as sent: rounded) within this of it, certainly.
    pub radius_km: f64,
    /// A lease between `radius_km` and this of a point might answer it: `covers` judges.
    pub maybe_km: f64,
    /// Whether a fetch at this lease's location answers point `i` (judged by the caller, with
    /// the exact point, which never leaves it). `None`: only certain leases count.
    pub covers: Option<&'a (dyn Fn(usize, LatLon) -> bool + Sync)>,
    /// The points that still need an entry (at most `MAX_POINTS`); none: `at` stands for them.
    pub points: &'a [LatLon],
    /// Where a fetch for each point could be made instead of `at` (its rounded location and
    /// member): the lease goes to the most central one that covers every open point. Empty:
    /// always `at`.
    pub candidates: &'a [(LatLon, String)],
    pub member: &'a str,
    pub token: &'a str,
    pub lease: Duration,
    /// The caller's service clock and fresh TTL: freshness is the reader's to judge.
    pub now_ms: i64,
    pub fresh_ms: u64,
    /// Go on to the lease even if a fresh entry is found (it does not cover everyone).
    pub must_lease: bool,
}

/// Limits for one call (0 = none).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub per_minute: u64,
    pub per_day: u64,
}

/// An area's failure, as every instance sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct AreaFailure<'a> {
    pub at: LatLon,
    pub radius_km: f64,
    pub window: Duration,
    /// Failures in a row so far (the window doubles with them).
    pub failures: u32,
    /// A record idle this long is forgotten.
    pub max_window: Duration,
    /// The error, one line (see the engine's encoding).
    pub error: &'a str,
}

/// What one lookup call asks of which tiles.
struct LookupCall<'a> {
    tiles: &'a [Tile],
    may_lease: bool,
    covered: &'a [bool],
    wait_ms: u64,
    /// Leases the caller judged already (members).
    judged: &'a [String],
}

/// What one lookup call answered.
struct LookupReply {
    status: String,
    number: u64,
    covered: Vec<bool>,
    /// Leases that might cover an open point: member and ms left.
    judge: Vec<(String, u64)>,
    entries: Vec<Stored>,
}

/// Most rounds of judging leases one lookup call makes (each judged lease is not returned
/// again: another round only meets leases taken meanwhile).
const JUDGING_ROUNDS: usize = 4;

impl SharedTier {
    /// Validates the URL (messages never repeat it: it may hold a password) and starts
    /// connecting, in the background. Must be called where `runtime` can be entered (it spawns
    /// the connection and the pub/sub listener there).
    pub fn new(
        config: TierConfig,
        runtime: &tokio::runtime::Handle,
        observer: Observer,
    ) -> Result<Arc<SharedTier>, String> {
        let address = address::parse(&config.url, &tcp_settings())?;
        let cluster = matches!(address.target, Target::Cluster { .. });
        let keys = Keys::new(&config.key_prefix);
        let (pushes, received) = mpsc::unbounded_channel::<PushInfo>();
        let sources = [
            scripts::FIND_OR_LEASE,
            scripts::STORE,
            scripts::RELEASE,
            scripts::RENEW,
            scripts::ADMIT,
            scripts::COOL_DOWN,
            scripts::FAIL_AREA,
            scripts::RECONCILE,
            scripts::COUNTS,
        ];
        let settings = link::Settings {
            channel: keys.channel.clone(),
            scripts: sources.to_vec(),
            // A connection (TLS, AUTH, the sentinels' answer, the scripts) may take longer than
            // one operation: it is made in the background, operations wait for it within
            // their own deadline.
            connect_timeout: (config.timeout * 10).max(Duration::from_secs(2)),
            response_timeout: (config.timeout * 10).max(Duration::from_secs(2)),
        };
        let sentinel = Link::sentinels(&address.target)?;
        let _entered = runtime.enter();
        let tier = Arc::new_cyclic(|this: &Weak<SharedTier>| {
            let hook = this.clone();
            let on_attempt: link::OnAttempt = Box::new(move |attempt| {
                if let Some(tier) = hook.upgrade() {
                    tier.attempted(attempt);
                }
            });
            SharedTier {
                link: Link::new(address.target, sentinel, settings, pushes, on_attempt, runtime.clone()),
                cluster,
                scripts: Scripts {
                    find_or_lease: Script::new(scripts::FIND_OR_LEASE),
                    store: Script::new(scripts::STORE),
                    release: Script::new(scripts::RELEASE),
                    renew: Script::new(scripts::RENEW),
                    admit: Script::new(scripts::ADMIT),
                    cool_down: Script::new(scripts::COOL_DOWN),
                    fail_area: Script::new(scripts::FAIL_AREA),
                    reconcile: Script::new(scripts::RECONCILE),
                    counts: Script::new(scripts::COUNTS),
                },
                keys,
                timeout: config.timeout,
                circuit: Mutex::new(Circuit::default()),
                announcements: broadcast::channel(1024).0,
                observer,
                metrics: Arc::default(),
                ledger: Ledger::default(),
                warned: Mutex::default(),
                place: address.place,
                redactors: address.secrets.iter().map(|s| Redactor::new(Some(s))).collect(),
                runtime: runtime.clone(),
                this: this.clone(),
                answered: AtomicU64::new(0),
                epoch: Instant::now(),
                unshared: AtomicBool::new(false),
                reconciling: AtomicBool::new(false),
            }
        });
        runtime.spawn(listen(received, tier.announcements.clone(), tier.keys.channel.clone()));
        tier.link.warm();
        Ok(tier)
    }

    /// Where the tier is, for messages: `host:port/db` (or the sentinels', or the cluster's).
    pub fn place(&self) -> &str {
        &self.place
    }

    /// The deadline of every operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Failed operations and connection attempts so far (timeouts, connection errors, script
    /// errors, data errors).
    pub fn errors(&self) -> u64 {
        self.metrics.errors()
    }

    /// The tier's numbers, readable after the tier is gone.
    pub fn metrics(&self) -> Arc<TierMetrics> {
        self.metrics.clone()
    }

    /// Whether the circuit is closed (Redis answered the last operation).
    pub fn is_up(&self) -> bool {
        self.circuit().is_closed()
    }

    /// Whether an operation would be attempted now (circuit closed, or a probe is due).
    pub fn usable(&self) -> bool {
        self.circuit().allows(Instant::now())
    }

    /// Landings and released leases announced by any instance (messages can be lost: waiters
    /// also poll).
    pub fn announcements(&self) -> broadcast::Receiver<Announcement> {
        self.announcements.subscribe()
    }

    /// Resolves once the server confirmed the current connection's subscription (announcements
    /// from then on reach this tier).
    pub async fn listening(&self) {
        self.link.listening().await;
    }

    /// Looks for entries near `request.at`; if none is fresh, for a lease nearby; if none is
    /// live, takes the caller's. One atomic round trip on one server, however many tiles the
    /// radii reach; on a Cluster, one per tile reached (the neighbours' first, read only, then
    /// the caller's own tile, where a lease is taken), all within the tier's deadline.
    pub async fn find_or_lease(&self, request: &LeaseRequest<'_>) -> Result<Lookup, TierError> {
        let candidates_used = request.candidates.len() == request.points.len() && !request.points.is_empty();
        let mut points: Vec<LatLon> = request.points.iter().take(MAX_POINTS).copied().collect();
        if points.is_empty() {
            points.push(request.at);
        }
        let reach = points.iter().chain(request.candidates.iter().map(|(c, _)| c));
        if !in_geo_range(request.at) || !reach.copied().all(in_geo_range) {
            return Err(TierError::Skipped);
        }
        let mut tiles = tiles_within(request.at, request.search_km);
        let mut add = |tile: Tile| {
            if !tiles.contains(&tile) {
                tiles.push(tile);
            }
        };
        for p in &points {
            tiles_within(*p, request.maybe_km.max(request.radius_km)).into_iter().for_each(&mut add);
        }
        if candidates_used {
            request.candidates.iter().for_each(|(c, _)| add(Tile::of(*c)));
        }
        let deadline = Instant::now() + self.timeout;
        // One call on one server; on a Cluster, the neighbours first (read only: their entries,
        // and which points their leases cover), then the caller's tile, told what they cover.
        let calls: Vec<(&[Tile], bool)> = if !self.cluster || tiles.len() == 1 {
            vec![(&tiles[..], true)]
        } else {
            tiles[1..].iter().map(|t| (std::slice::from_ref(t), false)).chain(std::iter::once((&tiles[..1], true))).collect()
        };
        let mut entries = Vec::new();
        let mut covered = vec![false; points.len()];
        let mut wait_ms = 0;
        let mut judged: Vec<String> = Vec::new();
        for (call_tiles, may_lease) in calls {
            for round in 0..JUDGING_ROUNDS {
                let call = LookupCall { tiles: call_tiles, may_lease, covered: &covered, wait_ms, judged: &judged };
                let reply = self.lookup(request, &points, candidates_used && may_lease, &call, deadline).await?;
                if round == 0 {
                    entries.extend(reply.entries);
                }
                covered.iter_mut().zip(&reply.covered).for_each(|(c, r)| *c |= *r);
                wait_ms = wait_ms.max(if reply.status == "fresh" { 0 } else { reply.number });
                // The leases the script could not decide on: the caller judges them with its
                // exact points.
                for (member, left) in reply.judge {
                    let Some(center) = parse_member(&member) else { continue };
                    for (i, covered) in covered.iter_mut().enumerate().filter(|(_, c)| !**c) {
                        if request.covers.is_some_and(|covers| covers(i, center)) {
                            *covered = true;
                            wait_ms = wait_ms.max(left);
                        }
                    }
                    judged.push(member);
                }
                let all_covered = covered.iter().all(|c| *c);
                let status = match reply.status.as_str() {
                    "fresh" if !request.must_lease => LeaseStatus::Fresh,
                    "held" => LeaseStatus::Held { remaining: Duration::from_millis(reply.number.max(1)) },
                    "maybe" | "open" | "fresh" if all_covered => LeaseStatus::Held { remaining: Duration::from_millis(wait_ms.max(1)) },
                    // Judged: go around with what the caller decided (a new lease only is
                    // returned again).
                    "maybe" if may_lease && round + 1 < JUDGING_ROUNDS => continue,
                    // Leases keep appearing: wait on them, and look again.
                    "maybe" if may_lease => LeaseStatus::Held { remaining: Duration::from_millis(wait_ms.max(1)) },
                    "maybe" | "open" | "fresh" if !may_lease => break,
                    "acquired" => LeaseStatus::Acquired { candidate: (reply.number > 0).then(|| reply.number as usize - 1) },
                    _ => return Err(self.malformed()),
                };
                return Ok(Lookup { status, entries });
            }
        }
        Err(self.malformed())
    }

    /// One run of the lookup script over `call.tiles`.
    async fn lookup(
        &self,
        request: &LeaseRequest<'_>,
        points: &[LatLon],
        candidates_used: bool,
        call: &LookupCall<'_>,
        deadline: Instant,
    ) -> Result<LookupReply, TierError> {
        let mut invocation = self.scripts.find_or_lease.prepare_invoke();
        for tile in call.tiles {
            let k = self.keys.tile(*tile);
            invocation.key(k.entries).key(k.payloads).key(k.leases).key(k.owners);
        }
        invocation
            .arg(request.at.lon)
            .arg(request.at.lat)
            .arg(search_radius(request.search_km))
            .arg(request.member)
            .arg(request.token)
            .arg(request.lease.as_millis().max(1) as u64)
            .arg(request.now_ms)
            .arg(request.fresh_ms)
            .arg(if request.must_lease { "1" } else { "0" })
            .arg(search_radius(request.radius_km))
            // Chosen by the script's haversine, checked by ours: keep a margin.
            .arg((request.radius_km - 0.02).max(0.0))
            .arg(if call.may_lease { "1" } else { "0" })
            .arg(call.wait_ms)
            .arg(payload::SCHEMA)
            .arg(search_radius(request.maybe_km.max(request.radius_km)))
            .arg(call.judged.join(" "))
            .arg(points.len())
            .arg(if candidates_used { "1" } else { "0" });
        for (i, p) in points.iter().enumerate() {
            invocation.arg(p.lon).arg(p.lat).arg(if call.covered[i] { "1" } else { "0" });
            if candidates_used {
                let (c, member) = &request.candidates[i];
                let tile = call.tiles.iter().position(|t| *t == Tile::of(*c)).map_or(0, |i| i + 1);
                invocation.arg(c.lon).arg(c.lat).arg(member).arg(tile);
            }
        }
        let reply: Value = self.run(deadline, &invocation).await?;
        let (status, number, covered, judge, payloads) = split_lookup(reply).ok_or_else(|| self.malformed())?;
        let entries = payloads
            .iter()
            .filter_map(|(age, payload)| Stored::decode(payload).map(|s| s.received(*age, request.now_ms)))
            .collect();
        let judge = judge
            .split_whitespace()
            .filter_map(|j| j.split_once('=').and_then(|(m, left)| Some((m.to_owned(), left.parse().ok()?))))
            .collect();
        Ok(LookupReply { status, number, covered, judge, entries })
    }

    /// Writes an entry through (expiring after `ttl`) unless the one there is newer, gives
    /// back the caller's lease, announces the landing. `Ok(false)`: a newer entry was kept.
    pub async fn store(&self, stored: &Stored, ttl: Duration, token: Option<&str>) -> Result<bool, TierError> {
        if !in_geo_range(stored.location) {
            return Err(TierError::Skipped);
        }
        let k = self.tile_keys(stored.location);
        let member = member(stored.location);
        let mut invocation = self.scripts.store.prepare_invoke();
        invocation
            .key(k.entries)
            .key(k.payloads)
            .key(k.expiries)
            .key(k.leases)
            .key(k.owners)
            .arg(stored.location.lon)
            .arg(stored.location.lat)
            .arg(&member)
            .arg(stored.encode())
            .arg(ttl.as_millis().max(1) as u64)
            .arg(token.unwrap_or(""))
            .arg(&self.keys.channel)
            .arg(stored.fetched_at);
        let written: i64 = self.run(self.deadline(), &invocation).await?;
        Ok(written == 1)
    }

    /// Gives back the lease at `at` without an entry (the fetch failed, or was cancelled), so
    /// that waiters stop waiting.
    pub async fn release(&self, at: LatLon, member: &str, token: &str) -> Result<(), TierError> {
        let k = self.tile_keys(at);
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation.key(k.leases).key(k.owners).arg(token).arg(member).arg(&self.keys.channel);
        self.run::<Value>(self.deadline(), &invocation).await.map(drop)
    }

    /// Extends the caller's lease at `at` by `lease` from now; `Ok(false)` if it is no longer
    /// the caller's.
    pub async fn renew(&self, at: LatLon, member: &str, token: &str, lease: Duration) -> Result<bool, TierError> {
        let k = self.tile_keys(at);
        let mut invocation = self.scripts.renew.prepare_invoke();
        invocation.key(k.leases).key(k.owners).arg(token).arg(member).arg(lease.as_millis().max(1) as u64);
        let owned: i64 = self.run(self.deadline(), &invocation).await?;
        Ok(owned == 1)
    }

    /// Asks to call `provider` once (counted against the budget if admitted) about the area
    /// within `radius_km` of `at` (`None`: no area, e.g. near a pole). Within the tier's
    /// deadline, like any operation (a connection still being made is waited for within it,
    /// never longer): without an answer the caller counts the call alone, and it is added to
    /// the shared counters once Redis answers.
    pub async fn admit(
        &self,
        provider: &str,
        limits: Limits,
        area: Option<(LatLon, f64)>,
    ) -> Result<Admission, TierError> {
        let k = &self.keys;
        let (at, radius) = match area.filter(|(p, _)| in_geo_range(*p)) {
            Some((p, r)) => (p, search_radius(r)),
            None => (LatLon::new(0.0, 0.0), 0.0),
        };
        let mut invocation = self.scripts.admit.prepare_invoke();
        invocation
            .key(k.cooldown(provider))
            .key(k.budget(provider, "minute"))
            .key(k.budget(provider, "day"))
            .key(k.failing(provider))
            .key(k.failures(provider))
            .arg(limits.per_minute)
            .arg(limits.per_day)
            .arg(at.lon)
            .arg(at.lat)
            .arg(radius);
        let reply: Value = self.run(self.deadline(), &invocation).await?;
        let Value::Array(items) = reply else { return Err(self.malformed()) };
        let status = items.first().and_then(text).ok_or_else(|| self.malformed())?;
        let ms = Duration::from_millis(items.get(1).and_then(integer).unwrap_or(0).max(1));
        match status.as_str() {
            "admitted" => Ok(Admission::Admitted),
            "cooling" => Ok(Admission::Cooling { remaining: ms }),
            "budget" => Ok(Admission::OverBudget { retry_after: ms }),
            "area" => Ok(Admission::AreaFailing {
                remaining: ms,
                failures: items.get(2).and_then(integer).unwrap_or(1).clamp(1, 64) as u32,
                error: items.get(3).and_then(text).unwrap_or_default(),
            }),
            _ => Err(self.malformed()),
        }
    }

    /// What every instance together has called each of `providers` in the current minute and
    /// UTC day (the counters the shared budget admits by), in their order. One round trip,
    /// within the tier's deadline: a slow Redis costs the status page one deadline, not one
    /// per provider.
    pub async fn calls(&self, providers: &[&str]) -> Result<Vec<SharedCalls>, TierError> {
        let mut invocation = self.scripts.counts.prepare_invoke();
        for provider in providers {
            invocation.key(self.keys.budget(provider, "minute")).key(self.keys.budget(provider, "day"));
        }
        let counts: Vec<i64> = self.run(self.deadline(), &invocation).await?;
        match counts.split_first() {
            Some((&left, pairs)) if pairs.len() == 2 * providers.len() => Ok(pairs
                .chunks(2)
                .map(|pair| SharedCalls {
                    this_minute: pair[0].max(0) as u64,
                    today: pair[1].max(0) as u64,
                    minute_left: Duration::from_millis(left.max(0) as u64),
                })
                .collect()),
            _ => Err(self.malformed()),
        }
    }

    /// Puts `provider` into cooldown for every instance (never shortening a running one).
    pub async fn cool_down(&self, provider: &str, window: Duration) -> Result<(), TierError> {
        let mut invocation = self.scripts.cool_down.prepare_invoke();
        invocation.key(self.keys.cooldown(provider)).arg(window.as_millis().max(1) as u64);
        self.run::<Value>(self.deadline(), &invocation).await.map(drop)
    }

    /// Tells every instance that `provider` failed for an area: they make no call there until
    /// the window ends (one call per window between them, as one process makes).
    pub async fn fail_area(&self, provider: &str, failure: &AreaFailure<'_>) -> Result<(), TierError> {
        if !in_geo_range(failure.at) {
            return Err(TierError::Skipped);
        }
        let error: String = failure.error.chars().filter(|c| !c.is_control()).take(300).collect();
        let mut invocation = self.scripts.fail_area.prepare_invoke();
        invocation
            .key(self.keys.failing(provider))
            .key(self.keys.failures(provider))
            .arg(failure.at.lon)
            .arg(failure.at.lat)
            .arg(search_radius(failure.radius_km))
            .arg(member(failure.at))
            .arg(failure.window.as_millis().max(1) as u64)
            .arg(failure.failures)
            .arg(failure.max_window.as_millis() as u64)
            .arg(error);
        self.run::<Value>(self.deadline(), &invocation).await.map(drop)
    }

    /// Notes a call to `provider` this instance counted alone (Redis could not be asked): it is
    /// added to the shared counters when Redis answers again.
    pub fn count_unshared(&self, provider: &str, wall_ms: i64) {
        self.ledger.count(provider, wall_ms);
        self.unshared.store(true, Ordering::Release);
        self.metrics.unshared_call();
    }

    /// Adds the calls counted alone to the shared counters, in the background, unless that is
    /// under way already: after an outage, and after any answer while some are noted (a call
    /// counted alone while the first connection was still being made is no outage).
    fn share_unshared(&self) {
        if !self.unshared.swap(false, Ordering::AcqRel) || self.reconciling.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(tier) = self.this.upgrade() {
            self.runtime.spawn(async move {
                tier.reconcile().await;
                tier.reconciling.store(false, Ordering::Release);
            });
        } else {
            self.reconciling.store(false, Ordering::Release);
        }
    }

    /// Adds the calls counted alone to the shared counters. Boxed: it is spawned from `run`,
    /// which it runs (a future cannot contain itself).
    fn reconcile(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move { self.reconcile_now().await })
    }

    async fn reconcile_now(&self) {
        for (provider, unshared) in self.ledger.take() {
            let mut invocation = self.scripts.reconcile.prepare_invoke();
            invocation
                .key(self.keys.budget(&provider, "minute"))
                .key(self.keys.budget(&provider, "day"))
                .arg(unshared.minute.0)
                .arg(unshared.minute.1)
                .arg(unshared.day.0)
                .arg(unshared.day.1);
            match self.run::<Vec<u64>>(self.deadline(), &invocation).await {
                Ok(added) => self.metrics.reconciled(added.get(1).copied().unwrap_or(0)),
                Err(_) => {
                    self.ledger.give_back(provider, unshared);
                    self.unshared.store(true, Ordering::Release);
                }
            }
        }
    }

    fn tile_keys(&self, at: LatLon) -> TileKeys {
        self.keys.tile(Tile::of(at))
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Runs one operation under the circuit breaker, by `deadline` (the tier's own: a caller's
    /// other business never shortens it, and a missed deadline is Redis being slow).
    /// A connection being made is not Redis failing (it has a deadline of its own, and its
    /// failure is one, see `attempted`): an operation that cannot wait for it is skipped,
    /// uncounted. Operations wait for it only during its first deadline's worth of time, and
    /// only while the circuit is closed: a connection that takes longer (a server that accepts
    /// and never answers) costs each request one deadline at most, not one per attempt.
    async fn run<T: FromRedisValue>(
        &self,
        deadline: Instant,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, TierError> {
        if !self.usable() {
            return Err(TierError::Skipped);
        }
        if let Some(since) = self.link.connecting_since() {
            if !self.is_up() || since.elapsed() >= self.timeout {
                return Err(TierError::Skipped);
            }
        }
        let started = Instant::now();
        let limit = deadline.saturating_duration_since(started);
        let mut generation = None;
        // When the request left (the round trip is measured from there), and whether it had to
        // wait for a connection being made first.
        let mut sent = started;
        let mut waited = false;
        // The connection could not be made: the attempt counted it already (see `attempted`).
        let mut unconnected = false;
        let mut attempt = Box::pin(async {
            waited = self.link.connecting();
            let (g, connection) = self.link.get().await;
            generation = Some(g);
            let mut connection: Connection = connection.inspect_err(|_| unconnected = true)?;
            sent = Instant::now();
            invocation.invoke_async(&mut connection).await
        });
        let outcome = match tokio::time::timeout(limit, &mut attempt).await {
            // A process short of CPU wakes up to its timer and to Redis's answer at once; the
            // timer must not win only because it was polled first: the connection gets a
            // moment to deliver what already arrived.
            Err(_) => tokio::time::timeout(DELIVERY_GRACE, &mut attempt).await,
            answered => answered,
        };
        drop(attempt);
        match outcome {
            Ok(Ok(value)) => {
                self.answered.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                self.metrics.round_trip(sent.elapsed());
                let change = self.circuit().success(Instant::now(), started);
                self.recovering(change);
                self.share_unshared();
                Ok(value)
            }
            // Failed for want of a connection: the attempt counted that failure, and told the
            // circuit, already.
            Ok(Err(error)) if unconnected => {
                let reason = format!("Redis at {}: could not connect: {}", self.place, failure::describe(&error));
                Err(TierError::Failed(self.redact(&reason)))
            }
            Ok(Err(error)) => {
                let cause = failure::classify(&error);
                if matches!(error.kind(), redis::ErrorKind::Server(_) | redis::ErrorKind::Extension) {
                    self.answered.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    self.metrics.round_trip(sent.elapsed());
                }
                if cause.replaces_connection() {
                    if let Some(generation) = generation {
                        self.link.reset(generation);
                    }
                }
                Err(self.failed(cause, &failure::describe(&error)))
            }
            Err(_) => match generation {
                // Redis answered other operations since this one left: it is alive, this one
                // was slow (a long queue, a process short of CPU). This operation failed; the
                // tier did not.
                Some(_) if !waited && self.answered_since(sent) => {
                    self.metrics.error(Cause::Timeout);
                    Err(TierError::Failed(format!("Redis at {}: no answer within {} ms", self.place, self.timeout.as_millis())))
                }
                // A connection that was there and went silent: suspect, replaced.
                Some(generation) if !waited => {
                    self.link.reset(generation);
                    Err(self.failed(Cause::Timeout, &format!("no answer within {} ms", self.timeout.as_millis())))
                }
                // The time went on waiting for a connection: not Redis's failure.
                _ => Err(TierError::Skipped),
            },
        }
    }

    /// Whether some operation was answered after `instant`.
    fn answered_since(&self, instant: Instant) -> bool {
        let since = instant.saturating_duration_since(self.epoch).as_millis() as u64;
        self.answered.load(Ordering::Relaxed) > since
    }

    fn failed(&self, cause: Cause, reason: &str) -> TierError {
        self.metrics.error(cause);
        TierError::Failed(self.trip(cause, reason))
    }

    /// A circuit closing after an outage: the outage is over (one event) once it stayed closed
    /// for a while (see `circuit.rs`), checked then.
    fn recovering(&self, change: Option<Transition>) {
        match change {
            Some(Transition::Settling { at }) => {
                let tier = self.this.clone();
                self.runtime.spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    if let Some(tier) = tier.upgrade() {
                        let change = tier.circuit().settle(Instant::now());
                        tier.recovering(change);
                    }
                });
            }
            Some(Transition::Restored { down_for }) => (self.observer)(&Notice::Restored { down_for }, &self.place),
            _ => {}
        }
    }

    /// Tells the circuit of a failure (one event if it opens it); returns the reason, redacted.
    fn trip(&self, cause: Cause, reason: &str) -> String {
        let reason = self.redact(&format!("Redis at {}: {reason}", self.place));
        // One key's data is that key's problem (repaired by the next write): no outage.
        if cause != Cause::Data {
            let change = self.circuit().failure(Instant::now());
            if let Some(Transition::Degraded { retry_in }) = change {
                self.metrics.opened(cause);
                (self.observer)(&Notice::Degraded { retry_in, cause, reason: reason.clone() }, &self.place);
            }
        }
        reason
    }

    fn malformed(&self) -> TierError {
        self.failed(Cause::Other, "unexpected reply to a script")
    }

    fn redact(&self, text: &str) -> String {
        self.redactors.iter().fold(text.to_owned(), |text, r| r.redact(&text))
    }

    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `message` to the observer, once in the tier's life.
    fn warn_once(&self, message: String) {
        let message = self.redact(&message);
        if self.warned.lock().unwrap_or_else(PoisonError::into_inner).insert(message.clone()) {
            (self.observer)(&Notice::Warning { message }, &self.place);
        }
    }

    /// How a connection attempt ended. A failed one is counted, and opens the circuit like a
    /// failed operation (or, open, counts as a failed probe), with one event; the next
    /// operation after the circuit's window tries again. The operations that waited for it
    /// fail with it, uncounted (one failure, counted once).
    fn attempted(&self, attempt: link::Attempt) {
        match attempt {
            link::Attempt::Made(setup) => self.connected(setup),
            link::Attempt::Failed(error) => {
                let cause = failure::classify(&error);
                let reason = if error.is_timeout() {
                    format!("no connection within {} ms", self.link.connect_timeout().as_millis())
                } else {
                    format!("could not connect: {}", failure::describe(&error))
                };
                self.metrics.error(cause);
                self.trip(cause, &reason);
            }
        }
    }

    /// A new connection: say if pub/sub was refused, or if the server may evict what must not
    /// be evicted.
    fn connected(&self, setup: link::Setup) {
        if let Some(error) = setup.refused {
            self.warn_once(format!(
                "Redis at {} refused the subscription to {} ({}): waiters poll instead of hearing landings",
                self.place,
                self.keys.channel,
                failure::describe(&error)
            ));
        }
        if let Some(message) = setup.eviction.and_then(|(policy, maxmemory)| policy::verdict(&policy, maxmemory)) {
            self.warn_once(format!("Redis at {}: {message}", self.place));
        }
    }
}

/// Nodelay for short round trips; keepalive (15 s idle, then a probe every 5 s) and, on Linux, a
/// 30 s limit on unacknowledged data, so that a peer gone without a RST is noticed while
/// nothing is asked (the tier's own deadlines notice it while something is).
fn tcp_settings() -> TcpSettings {
    let keepalive =
        socket2::TcpKeepalive::new().with_time(Duration::from_secs(15)).with_interval(Duration::from_secs(5));
    let settings = TcpSettings::default().set_nodelay(true).set_keepalive(keepalive);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let settings = settings.set_user_timeout(Duration::from_secs(30));
    settings
}

/// GEOSEARCH uses a slightly different Earth radius than our haversine: search a little wider
/// and let the caller measure.
fn search_radius(radius_km: f64) -> f64 {
    radius_km * 1.002 + 0.001
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => Some((*n).max(0) as u64),
        _ => None,
    }
}

/// `{status, number, covered, judge, age, payload, ...}` from the lookup script.
#[allow(clippy::type_complexity)]
fn split_lookup(reply: Value) -> Option<(String, u64, Vec<bool>, String, Vec<(i64, Vec<u8>)>)> {
    let Value::Array(items) = reply else { return None };
    let status = text(items.first()?)?;
    let number = integer(items.get(1)?)?;
    let covered = text(items.get(2)?)?.bytes().map(|b| b == b'1').collect();
    let judge = text(items.get(3)?)?;
    let mut payloads = Vec::new();
    let mut rest = items.into_iter().skip(4);
    while let (Some(age), Some(payload)) = (rest.next(), rest.next()) {
        if let (Value::Int(age), Value::BulkString(bytes)) = (age, payload) {
            payloads.push((age, bytes));
        }
    }
    Some((status, number, covered, judge, payloads))
}

/// Turns pub/sub pushes on our channel into announcements. Ends when every connection (each
/// holds a sending half) is gone.
async fn listen(mut pushes: mpsc::UnboundedReceiver<PushInfo>, out: broadcast::Sender<Announcement>, channel: String) {
    while let Some(push) = pushes.recv().await {
        let Some(message) = redis::Msg::from_push_info(push) else { continue };
        if message.get_channel_name() != channel {
            continue;
        }
        let Ok(text) = message.get_payload::<String>() else { continue };
        let Some((kind, member)) = text.split_once(' ') else { continue };
        if let Some(at) = parse_member(member) {
            let _ = out.send(Announcement { at, landed: kind == "landed" });
        }
    }
}

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod topology_tests;
