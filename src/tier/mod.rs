//! The shared tier: what several instances on one API key share through Redis (or Valkey),
//! so that N of them cost the upstream what one does. Entries (GEO set + payloads), leases on
//! areas being fetched, providers' cooldowns and call budgets. The engine uses it; it knows
//! nothing of the engine.
//!
//! Redis trouble never becomes the caller's trouble: every operation has a deadline, and a
//! failure opens a circuit (see `circuit.rs`) during which operations are skipped at once and
//! the instance runs on its local tier alone. Locks here buy efficiency, not correctness: a
//! lease that expires or is lost costs at most a duplicate fetch.

mod circuit;
mod keys;
mod payload;
mod scripts;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, RedisResult, Script, Value};
use tokio::sync::{broadcast, mpsc};

pub use circuit::Transition;
pub use keys::{member, parse_member};
pub use payload::Stored;

use self::circuit::Circuit;
use self::keys::Keys;
use crate::geo::LatLon;
use crate::redact::Redactor;

/// Redis's GEO commands refuse latitudes beyond ±85.05112878 (Web Mercator): areas closer to
/// the poles stay on each instance's local tier.
pub const MAX_GEO_LATITUDE: f64 = 85.051_128;

/// Told of each change of the tier's health: the change, `host:port/db`, and the reason.
pub type Observer = Box<dyn Fn(&Transition, &str, &str) + Send + Sync>;

/// Whether Redis's GEO commands take this point.
pub fn in_geo_range(p: LatLon) -> bool {
    p.lat.abs() <= MAX_GEO_LATITUDE && p.lon.abs() <= 180.0
}

#[derive(Clone, Debug)]
pub struct TierConfig {
    /// `redis://` or `rediss://` URL (user, password, db index).
    pub url: String,
    pub key_prefix: String,
    /// Deadline of every Redis operation.
    pub timeout: Duration,
}

pub struct SharedTier {
    connection: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    timeout: Duration,
    circuit: Mutex<Circuit>,
    announcements: broadcast::Sender<Announcement>,
    /// Told of each change of health (one event per transition), with where the tier is and
    /// the failure's reason.
    observer: Observer,
    errors: Arc<AtomicU64>,
    /// `host:port/db`: how messages name the server (never with credentials).
    place: String,
    redactor: Redactor,
}

struct Scripts {
    find_or_lease: Script,
    store: Script,
    release: Script,
    admit: Script,
    cool_down: Script,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TierError {
    /// Nothing was attempted: the circuit is open, the caller's time for Redis is spent, or
    /// the request is one Redis could not take (a point beyond its GEO range).
    Skipped,
    /// The operation failed or missed its deadline (counted; the circuit knows).
    Failed(String),
}

/// What `find_or_lease` found.
#[derive(Debug)]
pub struct Lookup {
    pub status: LeaseStatus,
    /// Live entries within the radius, nearest first (fresh and stale alike).
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

#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    Admitted,
    /// The provider cools down after a 429 (seen by any instance).
    Cooling { remaining: Duration },
    /// The minute's or the day's budget is spent until then.
    OverBudget { retry_after: Duration },
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
    /// A lease answers a point within this of it.
    pub radius_km: f64,
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

impl SharedTier {
    /// Validates the URL (messages never repeat it: it may hold a password) and prepares a
    /// connection that is made on first use and remade by itself after failures. Must be called
    /// where `runtime` can be entered (it spawns the pub/sub listener there).
    pub fn new(config: TierConfig, runtime: &tokio::runtime::Handle, observer: Observer) -> Result<Arc<SharedTier>, String> {
        let url = config.url.trim();
        check_url(url)?;
        let info = url.into_connection_info().map_err(|e| format!("is not a valid Redis URL ({})", e.category()))?;
        let redactor = Redactor::new(info.redis_settings().password());
        let db = info.redis_settings().db();
        let place = format!("{}/{db}", info.addr());
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let info = info
            .set_redis_settings(settings)
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| format!("is not usable ({})", e.category()))?;
        let (pushes, received) = mpsc::unbounded_channel::<PushInfo>();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            // Our own deadline bounds every operation; the manager retries once, quickly, and
            // otherwise reconnects in the background on the next use.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100))
            .set_push_sender(pushes)
            .set_automatic_resubscription();
        let _entered = runtime.enter();
        let connection = client
            .get_connection_manager_lazy(manager_config)
            .map_err(|e| format!("is not usable ({})", e.category()))?;
        let (announcements, _) = broadcast::channel(1024);
        let tier = Arc::new(SharedTier {
            connection,
            keys: Keys::new(&config.key_prefix),
            scripts: Scripts {
                find_or_lease: Script::new(scripts::FIND_OR_LEASE),
                store: Script::new(scripts::STORE),
                release: Script::new(scripts::RELEASE),
                admit: Script::new(scripts::ADMIT),
                cool_down: Script::new(scripts::COOL_DOWN),
            },
            timeout: config.timeout,
            circuit: Mutex::new(Circuit::Closed),
            announcements,
            observer,
            errors: Arc::default(),
            place,
            redactor,
        });
        runtime.spawn(listen(received, tier.announcements.clone(), tier.keys.channel.clone()));
        runtime.spawn(subscribe(Arc::downgrade(&tier)));
        Ok(tier)
    }

    /// Where the tier is, for messages: `host:port/db`.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// The deadline of every operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Failed operations so far (timeouts, connection errors, script errors).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The failure count itself, readable after the tier is gone.
    pub fn error_counter(&self) -> Arc<AtomicU64> {
        self.errors.clone()
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

    /// Looks for entries near `request.at`; if none is fresh, for a lease nearby; if none is
    /// live, takes the caller's. One atomic round trip, taking at most `within`.
    pub async fn find_or_lease(&self, request: &LeaseRequest<'_>, within: Duration) -> Result<Lookup, TierError> {
        let points = request.points.iter().chain(request.candidates.iter().map(|(c, _)| c));
        if !in_geo_range(request.at) || !points.copied().all(in_geo_range) {
            return Err(TierError::Skipped);
        }
        let k = &self.keys;
        let mut invocation = self.scripts.find_or_lease.prepare_invoke();
        invocation
            .key(&k.entries)
            .key(&k.leases)
            .key(k.lease(request.member))
            .arg(request.at.lon)
            .arg(request.at.lat)
            .arg(search_radius(request.search_km))
            .arg(&k.entry_prefix)
            .arg(&k.lease_prefix)
            .arg(request.member)
            .arg(request.token)
            .arg(request.lease.as_millis().max(1) as u64)
            .arg(request.now_ms)
            .arg(request.fresh_ms)
            .arg(if request.must_lease { "1" } else { "0" })
            .arg(search_radius(request.radius_km))
            // Chosen by the script's haversine, checked by ours: keep a margin.
            .arg((request.radius_km - 0.02).max(0.0));
        let points = &request.points[..request.points.len().min(MAX_POINTS)];
        let candidates = request.candidates.len() == request.points.len() && !points.is_empty();
        invocation.arg(points.len()).arg(if candidates { "1" } else { "0" });
        for (i, p) in points.iter().enumerate() {
            invocation.arg(p.lon).arg(p.lat);
            if candidates {
                let (c, member) = &request.candidates[i];
                invocation.arg(c.lon).arg(c.lat).arg(member);
            }
        }
        let mut connection = self.connection.clone();
        let reply: Value = self.run(invocation.invoke_async(&mut connection), within).await?;
        let (status, remaining, payloads) = split_reply(reply).ok_or_else(|| self.malformed())?;
        let status = match status.as_str() {
            "fresh" => LeaseStatus::Fresh,
            "held" => LeaseStatus::Held { remaining: Duration::from_millis(remaining.max(1)) },
            "acquired" => LeaseStatus::Acquired { candidate: (remaining > 0).then(|| remaining as usize - 1) },
            _ => return Err(self.malformed()),
        };
        Ok(Lookup { status, entries: payloads.iter().filter_map(|p| Stored::decode(p)).collect() })
    }

    /// Writes an entry through (expiring after `ttl`), gives back the caller's lease, announces
    /// the landing.
    pub async fn store(&self, stored: &Stored, ttl: Duration, token: Option<&str>) -> Result<(), TierError> {
        if !in_geo_range(stored.location) {
            return Err(TierError::Skipped);
        }
        let k = &self.keys;
        let member = member(stored.location);
        let mut invocation = self.scripts.store.prepare_invoke();
        invocation
            .key(&k.entries)
            .key(&k.expiries)
            .key(k.entry(&member))
            .key(&k.leases)
            .key(k.lease(&member))
            .arg(stored.location.lon)
            .arg(stored.location.lat)
            .arg(&member)
            .arg(stored.encode())
            .arg(ttl.as_millis().max(1) as u64)
            .arg(token.unwrap_or(""))
            .arg(&k.channel)
            .arg(&k.entry_prefix)
            .arg(&k.lease_prefix);
        let mut connection = self.connection.clone();
        self.run(invocation.invoke_async::<Value>(&mut connection), self.timeout).await.map(drop)
    }

    /// Gives back a lease without an entry (the fetch failed), so that waiters stop waiting.
    pub async fn release(&self, member: &str, token: &str) -> Result<(), TierError> {
        let k = &self.keys;
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation.key(k.lease(member)).key(&k.leases).arg(token).arg(member).arg(&k.channel);
        let mut connection = self.connection.clone();
        self.run(invocation.invoke_async::<Value>(&mut connection), self.timeout).await.map(drop)
    }

    /// Asks to call `provider` once (counted against the budget if admitted), taking at most
    /// `within`.
    pub async fn admit(&self, provider: &str, limits: Limits, within: Duration) -> Result<Admission, TierError> {
        let k = &self.keys;
        let mut invocation = self.scripts.admit.prepare_invoke();
        invocation
            .key(k.cooldown(provider))
            .key(k.budget(provider, "minute"))
            .key(k.budget(provider, "day"))
            .arg(limits.per_minute)
            .arg(limits.per_day);
        let mut connection = self.connection.clone();
        let reply: Value = self.run(invocation.invoke_async(&mut connection), within).await?;
        let (status, ms, _) = split_reply(reply).ok_or_else(|| self.malformed())?;
        let ms = Duration::from_millis(ms.max(1));
        match status.as_str() {
            "admitted" => Ok(Admission::Admitted),
            "cooling" => Ok(Admission::Cooling { remaining: ms }),
            "budget" => Ok(Admission::OverBudget { retry_after: ms }),
            _ => Err(self.malformed()),
        }
    }

    /// Puts `provider` into cooldown for every instance (never shortening a running one).
    pub async fn cool_down(&self, provider: &str, window: Duration) -> Result<(), TierError> {
        let mut invocation = self.scripts.cool_down.prepare_invoke();
        invocation.key(self.keys.cooldown(provider)).arg(window.as_millis().max(1) as u64);
        let mut connection = self.connection.clone();
        self.run(invocation.invoke_async::<Value>(&mut connection), self.timeout).await.map(drop)
    }

    /// Runs one operation under the circuit breaker, within the tier's deadline or the caller's
    /// `within`, whichever is shorter. Running out of the caller's time is not Redis failing:
    /// it neither counts nor opens the circuit.
    async fn run<T>(&self, operation: impl Future<Output = RedisResult<T>>, within: Duration) -> Result<T, TierError> {
        let limit = self.timeout.min(within);
        if !self.usable() || limit.is_zero() {
            return Err(TierError::Skipped);
        }
        let started = Instant::now();
        match tokio::time::timeout(limit, operation).await {
            Ok(Ok(value)) => {
                let change = self.circuit().success(Instant::now(), started);
                if let Some(change) = change {
                    (self.observer)(&change, &self.place, "");
                }
                Ok(value)
            }
            Ok(Err(error)) => Err(self.failed(&describe(&error))),
            Err(_) if limit < self.timeout => Err(TierError::Skipped),
            Err(_) => Err(self.failed(&format!("no answer within {} ms", self.timeout.as_millis()))),
        }
    }

    fn failed(&self, reason: &str) -> TierError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let reason = self.redactor.redact(&format!("Redis at {}: {reason}", self.place));
        let change = self.circuit().failure(Instant::now());
        if let Some(change) = change {
            (self.observer)(&change, &self.place, &reason);
        }
        TierError::Failed(reason)
    }

    fn malformed(&self) -> TierError {
        self.failed("unexpected reply to a script")
    }

    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What went wrong, in words that never repeat a command's arguments (a server's error text
/// can quote them, and they are positions): the kind for errors from the server, the
/// transport's own message otherwise.
fn describe(error: &redis::RedisError) -> String {
    match error.kind() {
        redis::ErrorKind::Server(_) | redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => {
            format!("{} ({})", error.category(), error.code().unwrap_or("no code"))
        }
        _ if error.is_timeout() => "timed out".to_owned(),
        _ => error.to_string(),
    }
}

/// Our own checks first, so that no message of a parser can echo the URL (or its password).
fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "must be a redis:// or rediss:// URL".to_owned())?;
    if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none_or(str::is_empty) {
        return Err("must be a redis:// or rediss:// URL with a host".to_owned());
    }
    let path = parsed.path().trim_matches('/');
    if !path.is_empty() && path.parse::<u16>().is_err() {
        return Err("has an invalid database index (the path must be /<number>)".to_owned());
    }
    Ok(())
}

/// GEOSEARCH uses a slightly different Earth radius than our haversine: search a little wider
/// and let the caller measure.
fn search_radius(radius_km: f64) -> f64 {
    radius_km * 1.002 + 0.001
}

/// `{status, number, payload...}` from a script.
fn split_reply(reply: Value) -> Option<(String, u64, Vec<Vec<u8>>)> {
    let Value::Array(items) = reply else { return None };
    let mut items = items.into_iter();
    let status = match items.next()? {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok()?,
        Value::SimpleString(text) => text,
        _ => return None,
    };
    let number = match items.next()? {
        Value::Int(n) => n.max(0) as u64,
        _ => return None,
    };
    let payloads = items
        .filter_map(|v| match v {
            Value::BulkString(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    Some((status, number, payloads))
}

/// Turns pub/sub pushes on our channel into announcements. Ends when the connection manager
/// (which holds the sending half) is dropped.
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

/// Subscribes to the channel, retrying (1 s doubling to 30 s) while Redis is unreachable; after
/// that the manager resubscribes by itself on every reconnect. Ends with the tier.
async fn subscribe(tier: Weak<SharedTier>) {
    let mut backoff = circuit::FIRST_BACKOFF;
    loop {
        let Some(tier) = tier.upgrade() else { return };
        let mut connection = tier.connection.clone();
        let channel = tier.keys.channel.clone();
        let timeout = tier.timeout;
        drop(tier);
        if matches!(tokio::time::timeout(timeout * 10, connection.subscribe(&channel)).await, Ok(Ok(()))) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(circuit::MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests;
