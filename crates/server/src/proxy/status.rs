//! The status page: `GET /` (a self-contained HTML page, `status.html`) and `GET /v1/status`
//! (what it draws, as JSON): request and upstream rates, hits by scope, each provider's
//! cooldowns and budget (this host's calls, and with a shared tier every host's, from Redis),
//! the live cache entries and where the last requests came from.
//!
//! Rates come from samples of the counters taken when the status is asked for (the page asks
//! every 2 s), so an idle page costs nothing; `windowS` says what each rate is measured over.
//! Recent requests sit in a lock-free ring written by every `/v1/weather`, rounded to 3
//! decimals (~100 m): the page needs where the fleet is, not exact positions.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde_json::{json, Value};

use weather_cache_core::engine::{Engine, Stats};
use weather_cache_core::geo::LatLon;
use weather_cache_core::tier::SharedCalls;

/// Hours of a selected entry shown on the page.
const SELECTED_HOURS: usize = 12;

/// `?entry=lat,lon` of a status request.
pub fn selected(query: Option<&str>) -> Option<LatLon> {
    let value = query?.split('&').find_map(|pair| pair.strip_prefix("entry="))?;
    let value = value.replace("%2C", ",").replace("%2c", ",");
    let (lat, lon) = value.split_once(',')?;
    let (lat, lon): (f64, f64) = (lat.trim().parse().ok()?, lon.trim().parse().ok()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then(|| LatLon::new(lat, lon))
}

/// An entry's place and its next hours (from the current one), for the page's table.
fn next_hours(entry: &weather_cache_core::cache::Entry, now: i64) -> Value {
    let shown = |m: weather_cache_core::cache::Maybe| m.get().map(|v| format!("{}", v as f32).parse::<f64>().unwrap_or(v));
    let hours: Vec<Value> = entry
        .products
        .as_deref()
        .map(|p| p.hours_from(now).iter().take(SELECTED_HOURS).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            json!({
                "time": h.time_s as i64 * 1_000,
                "tempC": weather_cache_core::cache::tenths(h.temp_c).0,
                "condition": h.sky.as_str(),
                "precipProbability": shown(h.precip_probability),
                "precipMm": shown(h.precip_mm),
                "windSpeedMs": shown(h.wind_speed_ms),
                "windGustMs": shown(h.wind_gust_ms),
            })
        })
        .collect();
    json!({ "lat": entry.location.lat, "lon": entry.location.lon, "provider": entry.provider, "hours": hours })
}

/// The page (no external scripts, fonts or tiles: it works offline).
pub const PAGE: &str = include_str!("status.html");
/// Its Content-Security-Policy: its own inline script and style, requests to itself, nothing else.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// What `GET /` answers without the token: a form that posts it to `/login`, which sets the
/// cookie (no script: nothing on the page ever sees the token again).
pub const LOGIN_PAGE: &str = include_str!("status-login.html");
/// The form's policy: its inline style and posting to itself, nothing else (no script at all).
pub const LOGIN_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Recent requests kept for the map.
const RECENT: usize = 256;
/// Entries drawn at most.
const MAX_ENTRIES: usize = 2_000;
/// Samples older than this are dropped (the "per minute" window, and a little more).
const KEEP_SAMPLES_S: f64 = 65.0;
/// At most one sample is kept per this interval: at most ~66 are ever kept.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Status {
    started: Instant,
    /// `(lat bits, lon bits)` of the last `RECENT` requests; `next` counts every one.
    recent: Box<[(AtomicU64, AtomicU64)]>,
    next: AtomicUsize,
    samples: Mutex<VecDeque<Sample>>,
}

struct Sample {
    at: Instant,
    requests: u64,
    /// Calls per provider, in order of preference.
    calls: Vec<u64>,
}

impl Status {
    /// The counters as the proxy starts are the first sample: until a minute has passed,
    /// rates are measured since then.
    pub fn new(engine: &Engine) -> Status {
        let recent = (0..RECENT).map(|_| (AtomicU64::new(f64::NAN.to_bits()), AtomicU64::new(f64::NAN.to_bits()))).collect();
        let calls = engine.stats().providers.iter().map(|p| p.upstream_requests).collect();
        let first = Sample { at: Instant::now(), requests: 0, calls };
        Status { started: first.at, recent, next: AtomicUsize::new(0), samples: Mutex::new(VecDeque::from([first])) }
    }

    /// A request at `at` (from any proxy thread; a torn pair only misplaces one dot).
    pub fn seen(&self, at: LatLon) {
        let slot = &self.recent[self.next.fetch_add(1, Ordering::Relaxed) % RECENT];
        slot.0.store(round3(at.lat).to_bits(), Ordering::Relaxed);
        slot.1.store(round3(at.lon).to_bits(), Ordering::Relaxed);
    }

    /// The status as JSON. `proxy_requests`: requests the proxy answered so far. `shared`:
    /// with a shared tier, each provider's calls by every instance (`None` where Redis did not
    /// answer), from `shared_calls`. `selected`: the place of the entry the operator picked
    /// (`?entry=lat,lon`), whose next hours are added.
    pub fn json(&self, engine: &Engine, proxy_requests: u64, shared: Option<&[Option<SharedCalls>]>, selected: Option<LatLon>) -> String {
        let stats = engine.stats();
        let now = engine.now();
        let config = engine.config();
        let calls: Vec<u64> = stats.providers.iter().map(|p| p.upstream_requests).collect();
        let (rate, minute) = self.rates(Sample { at: Instant::now(), requests: proxy_requests, calls });
        let providers: Vec<Value> = stats
            .providers
            .iter()
            .zip(engine.upstreams())
            .enumerate()
            .map(|(i, (p, upstream))| {
                let budget = upstream.budget;
                let all_hosts = shared.and_then(|calls| calls.get(i).copied().flatten()).map(|c| {
                    json!({
                        "callsThisMinute": c.this_minute,
                        "callsToday": c.today,
                        "minuteLeftMs": c.minute_left.as_millis() as u64,
                    })
                });
                json!({
                    "name": p.name,
                    "upstreamRequests": p.upstream_requests,
                    "upstreamErrors": p.upstream_errors,
                    "rateLimited": p.rate_limited,
                    // This host's calls, over a sliding minute.
                    "callsLastMinute": minute.calls.get(i).copied().unwrap_or(0),
                    // Every host's, from Redis, in the current (whole, server-time) minute and
                    // UTC day: what a shared budget admits by.
                    "shared": all_hosts,
                    "budgetPerMinute": (budget.per_minute > 0).then_some(budget.per_minute),
                    "budgetPerDay": (budget.per_day > 0).then_some(budget.per_day),
                    "backoffLeftMs": (p.backoff_until - now).max(0),
                })
            })
            .collect();
        let live = engine.live_entries(MAX_ENTRIES);
        let selected = selected.and_then(|at| {
            let nearest = live.iter().min_by(|a, b| {
                weather_cache_core::geo::distance_km(at, a.location).total_cmp(&weather_cache_core::geo::distance_km(at, b.location))
            })?;
            Some(next_hours(nearest, now))
        });
        let entries: Vec<Value> = live
            .iter()
            .map(|e| {
                json!({
                    "lat": e.location.lat,
                    "lon": e.location.lon,
                    "fresh": e.expires_at > now,
                    "ageMs": e.age(now),
                    "provider": e.provider,
                })
            })
            .collect();
        let status = json!({
            "uptimeS": self.started.elapsed().as_secs(),
            "proximityKm": config.proximity_km,
            "requests": proxy_requests,
            "requestsPerSecond": rate.per_second,
            "rateWindowS": rate.window_s,
            "minuteWindowS": minute.window_s,
            "engine": counts(&stats),
            "hitRatio": hit_ratio(&stats),
            "providers": providers,
            "backoffLeftMs": (stats.backoff_until - now).max(0),
            "tier": stats.tier_up.map(|up| if up { "up" } else { "down" }),
            // Which counters the budget is judged by now: every host's (Redis answered), or
            // this host's alone (no tier, or Redis did not answer).
            "budgetScope": if shared.is_some_and(|calls| calls.iter().any(Option::is_some)) { "shared" } else { "host" },
            "entries": entries,
            "sharedEntries": stats.shared_entries,
            "recent": self.recent(),
            "selected": selected,
        });
        status.to_string()
    }

    /// Requests per second over the last ~10 s, and calls per provider over the last minute
    /// (or since the first sample, if younger), from the samples including `latest`.
    fn rates(&self, latest: Sample) -> (Rate, Minute) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        while samples.front().is_some_and(|s| latest.at.duration_since(s.at).as_secs_f64() > KEEP_SAMPLES_S) {
            samples.pop_front();
        }
        let since = |s: &Sample| latest.at.duration_since(s.at).as_secs_f64();
        let rate = samples
            .iter()
            .find(|s| since(s) <= 10.0)
            .filter(|s| since(s) >= 0.5)
            .map_or(Rate { per_second: 0.0, window_s: 0.0 }, |s| Rate {
                per_second: (latest.requests - s.requests) as f64 / since(s),
                window_s: since(s),
            });
        let minute = samples.iter().find(|s| since(s) <= 60.0).map_or(
            Minute { calls: vec![0; latest.calls.len()], window_s: 0.0 },
            |s| Minute { calls: latest.calls.iter().zip(&s.calls).map(|(now, then)| now - then).collect(), window_s: since(s) },
        );
        // One sample a second is all the rates need: a page (or a script) reading the status
        // in a loop must not grow the queue, nor the scan above.
        if samples.back().is_none_or(|newest| latest.at.duration_since(newest.at) >= SAMPLE_EVERY) {
            samples.push_back(latest);
        }
        (rate, minute)
    }

    fn recent(&self) -> Vec<[f64; 2]> {
        self.recent
            .iter()
            .map(|(lat, lon)| [f64::from_bits(lat.load(Ordering::Relaxed)), f64::from_bits(lon.load(Ordering::Relaxed))])
            .filter(|[lat, lon]| lat.is_finite() && lon.is_finite())
            .collect()
    }
}

/// Each provider's calls by every instance, read from the shared tier (`None` without one);
/// every provider is `None` in the list when Redis did not answer within its deadline.
pub async fn shared_calls(engine: &Engine) -> Option<Vec<Option<SharedCalls>>> {
    let tier = engine.tier()?;
    let names: Vec<&str> = engine.upstreams().iter().map(|upstream| upstream.name()).collect();
    Some(match tier.calls(&names).await {
        Ok(calls) => calls.into_iter().map(Some).collect(),
        Err(_) => vec![None; names.len()],
    })
}

struct Rate {
    per_second: f64,
    window_s: f64,
}

struct Minute {
    calls: Vec<u64>,
    window_s: f64,
}

fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

fn counts(stats: &Stats) -> Value {
    json!({
        "requests": stats.requests,
        "userHits": stats.user_hits,
        "sharedHits": stats.shared_hits,
        "staleHits": stats.stale_hits,
        "misses": stats.misses,
        "coalesced": stats.coalesced,
        "rejected": stats.rejected,
        "upstreamRequests": stats.upstream_requests,
        "inflight": stats.inflight,
    })
}

fn hit_ratio(stats: &Stats) -> Value {
    let share = |n: u64| if stats.requests == 0 { 0.0 } else { n as f64 / stats.requests as f64 };
    json!({ "user": share(stats.user_hits), "shared": share(stats.shared_hits), "stale": share(stats.stale_hits) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Status {
        let recent = (0..RECENT).map(|_| (AtomicU64::new(f64::NAN.to_bits()), AtomicU64::new(f64::NAN.to_bits()))).collect();
        Status { started: Instant::now(), recent, next: AtomicUsize::new(0), samples: Mutex::new(VecDeque::new()) }
    }

    #[test]
    fn samples_stay_few_however_often_the_status_is_read() {
        // Defect 9: every read kept a sample for 65 s (100,000 reads: 8 MB, scanned linearly
        // under the lock). Rates need one sample a second at most.
        let status = fresh();
        let start = Instant::now();
        for i in 0..100_000u64 {
            let at = start + std::time::Duration::from_millis(i * 10);
            status.rates(Sample { at, requests: i, calls: vec![i / 10] });
        }
        let kept = status.samples.lock().unwrap().len();
        assert!(kept <= 70, "{kept} samples kept for 1,000 s of reads");
        // The rates still read: 100 requests and 10 calls a second.
        let at = start + std::time::Duration::from_millis(1_000_000);
        let (rate, minute) = status.rates(Sample { at, requests: 100_000, calls: vec![10_000] });
        assert!((rate.per_second - 100.0).abs() < 2.0, "{}", rate.per_second);
        assert!((59.0..=61.0).contains(&minute.window_s), "{}", minute.window_s);
        assert!((590..=610).contains(&minute.calls[0]), "{:?}", minute.calls);
    }

    #[test]
    fn recent_requests_are_rounded_and_bounded() {
        let status = fresh();
        assert!(status.recent().is_empty());
        for i in 0..(RECENT + 10) {
            status.seen(LatLon::new(48.85661 + i as f64 * 1e-6, 2.35222));
        }
        let recent = status.recent();
        assert_eq!(recent.len(), RECENT);
        assert!(recent.iter().all(|[lat, lon]| (*lat == 48.857 || *lat == 48.858) && *lon == 2.352), "{recent:?}");
    }
}
