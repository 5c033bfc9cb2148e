//! Engine behaviour over real HTTP (the loopback server in `test_support`), on a manual clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::geo::LatLon;
use crate::provider::{OpenWeather, OpenWeatherConfig};
use crate::testing::upstream::{json, rate_limited, weather, Answer, Switch, Upstream};

pub(super) const OW: &str = "openweather";
pub(super) const KEY: &str = "test-key-5f3a9c";

pub(super) struct Harness {
    pub(super) engine: Engine,
    pub(super) upstream: Upstream,
}

pub(super) fn config(adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::preset(Preset::Resilient);
    config.clock = ClockKind::Manual;
    config.jitter_ratio = 0.0;
    config.log_level = Level::Trace;
    adjust(&mut config);
    config.validate().unwrap();
    config
}

pub(super) async fn harness_with(config: Config, upstream: Upstream, background: Option<BackgroundEvents>) -> Harness {
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: Some(KEY.into()),
        base_url: upstream.url(),
        coordinate_decimals: config.coordinate_decimals,
        request_timeout: Duration::from_millis(500),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    let engine = Engine::new(config, vec![super::Upstream::new(Arc::new(provider))], None, tokio::runtime::Handle::current(), background);
    Harness { engine, upstream }
}

/// An upstream answering every request with 20.6 °C "Clouds".
async fn harness(adjust: impl FnOnce(&mut Config)) -> Harness {
    harness_with(config(adjust), Upstream::start(|_| async { weather(20.6, "Clouds") }).await, None).await
}

impl Harness {
    async fn get(&self, user: &str, lat: f64, lon: f64) -> Result<Served, RequestError> {
        self.request(user, lat, lon, Mode::Normal).await.result
    }

    async fn request(&self, user: &str, lat: f64, lon: f64, mode: Mode) -> Reply {
        let mut recorder = Recorder::new(Level::Trace);
        let request = Request { user, at: LatLon::new(lat, lon), mode };
        match self.engine.begin(request, &mut recorder) {
            Begin::Ready(result) => Reply { result, events: recorder.events },
            Begin::Pending(pending) => {
                let mut reply = pending.wait(true).await;
                recorder.events.append(&mut reply.events);
                Reply { result: reply.result, events: recorder.events }
            }
        }
    }

    /// Begins requests without awaiting them (as concurrent callers would), then awaits all.
    async fn burst(&self, requests: &[(&str, f64, f64)]) -> Vec<Result<Served, RequestError>> {
        let mut waiting = Vec::new();
        for &(user, lat, lon) in requests {
            let request = Request { user, at: LatLon::new(lat, lon), mode: Mode::Normal };
            waiting.push(self.engine.begin(request, &mut Recorder::new(Level::Silent)));
        }
        let mut results = Vec::new();
        for begun in waiting {
            results.push(match begun {
                Begin::Ready(result) => result,
                Begin::Pending(pending) => pending.wait(true).await.result,
            });
        }
        results
    }

    pub(super) fn advance(&self, ms: u64) {
        assert!(self.engine.advance_time(ms));
    }

    /// Lets spawned work (background refreshes) finish.
    pub(super) async fn settle(&self) {
        for _ in 0..200 {
            if self.engine.stats().inflight == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("flights still in the air");
    }
}

fn source(result: &Result<Served, RequestError>) -> Source {
    result.as_ref().expect("served").source
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().filter(|e| !matches!(e, Event::Distance { .. })).map(Event::name).collect()
}

pub(super) fn assert_identity(stats: &Stats) {
    let classified =
        stats.user_hits + stats.shared_hits + stats.stale_hits + stats.misses + stats.coalesced + stats.rejected;
    assert_eq!(stats.requests, classified, "{stats:?}");
    let flights = stats.fetches + stats.tier_hits + stats.budget_rejected + stats.inflight;
    assert_eq!(stats.misses + stats.background_refreshes, flights, "{stats:?}");
}

#[tokio::test]
async fn seed_grid_scenario_makes_one_call() {
    let h = harness(|c| {
        c.grid_deg = 0.1;
        c.proximity_km = 10.0;
    })
    .await;
    let first = h.get("drone-1", 10.01, 10.01).await.unwrap();
    let second = h.get("drone-2", 10.04, 10.04).await.unwrap();
    assert_eq!(h.upstream.hits(), 1);
    assert_eq!((first.source, second.source), (Source::Network, Source::Cache));
    assert_eq!(second.entry.summary, first.entry.summary);
}

#[tokio::test]
async fn hundred_concurrent_requests_make_one_call() {
    let h = harness(|_| {}).await;
    let requests: Vec<(String, f64, f64)> =
        (0..100).map(|i| (format!("drone-{i}"), 36.1 + i as f64 * 1e-4, -86.7)).collect();
    let requests: Vec<(&str, f64, f64)> = requests.iter().map(|(u, a, b)| (u.as_str(), *a, *b)).collect();
    let results = h.burst(&requests).await;
    assert_eq!(h.upstream.hits(), 1);
    let first = results[0].as_ref().unwrap();
    for result in &results {
        let served = result.as_ref().unwrap();
        assert!(Arc::ptr_eq(&served.entry, &first.entry));
        assert_eq!(served.source, Source::Network);
    }
    let stats = h.engine.stats();
    assert_eq!((stats.misses, stats.coalesced), (1, 99));
    assert_identity(&stats);
}

#[tokio::test]
async fn distant_areas_fetch_separately() {
    let h = harness(|_| {}).await;
    let results = h.burst(&[("a", 10.0, 10.0), ("b", 40.0, -70.0), ("c", 10.001, 10.001)]).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn one_failure_reaches_every_waiter() {
    let upstream = Upstream::start(|_| async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        json(500, r#"{"cod":500,"message":"boom"}"#)
    })
    .await;
    let h = harness_with(config(|_| {}), upstream, None).await;
    let requests: Vec<(&str, f64, f64)> = (0..50).map(|_| ("drone", 5.0, 5.0)).collect();
    let results = h.burst(&requests).await;
    assert_eq!(h.upstream.hits(), 1);
    assert!(results.iter().all(|r| r.as_ref().err() == Some(&RequestError::Status { provider: OW, status: 500, reason: None })));
    // The failure is not cached, and the area cools down: no call until the window ends.
    assert_eq!(h.get("late", 5.0, 5.0).await.unwrap_err(), RequestError::Status { provider: OW, status: 500, reason: None });
    assert_eq!(h.upstream.hits(), 1);
    h.advance(5_000);
    assert_eq!(h.get("later", 5.0, 5.0).await.unwrap_err(), RequestError::Status { provider: OW, status: 500, reason: None });
    assert_eq!(h.upstream.hits(), 2);
    let stats = h.engine.stats();
    assert_eq!((stats.upstream_errors, stats.rejected), (2, 1));
    assert_identity(&stats);
}

#[tokio::test]
async fn lookup_order_user_then_shared_then_network() {
    let h = harness(|_| {}).await;
    let fetched = h.request("alice", 48.8566, 2.3522, Mode::Normal).await;
    assert_eq!(source(&fetched.result), Source::Network);
    assert_eq!(names(&fetched.events), ["weather.request.attempted", "weather.cache.miss", "weather.request.sent"]);

    let own = h.request("alice", 48.87, 2.36, Mode::Normal).await; // ~1.7 km away
    assert_eq!(source(&own.result), Source::Cache);
    assert!(matches!(
        own.events[..],
        [Event::Attempted { .. }, Event::Distance { .. }, Event::Hit { stale: false, scope: Scope::User, .. }]
    ));

    let other = h.request("bob", 48.86, 2.34, Mode::Normal).await;
    assert!(other.events.iter().any(|e| matches!(e, Event::Hit { scope: Scope::Shared, .. })));
    assert_eq!(h.upstream.hits(), 1);
    // Bob now has his own copy.
    let again = h.request("bob", 48.86, 2.34, Mode::Normal).await;
    assert!(again.events.iter().any(|e| matches!(e, Event::Hit { scope: Scope::User, .. })));

    // Beyond 5 km: a miss, even for the same user.
    assert_eq!(source(&h.get("alice", 48.8566, 2.43).await), Source::Network); // ~5.7 km east
    assert_eq!(h.upstream.hits(), 2);

    // Past the fresh TTL (stale window disabled here by asking after it ends): refetch.
    h.advance(7_200_000);
    assert_eq!(source(&h.get("alice", 48.8566, 2.3522).await), Source::Network);
    assert_eq!(h.upstream.hits(), 3);
    let stats = h.engine.stats();
    assert_eq!((stats.user_hits, stats.shared_hits, stats.misses), (2, 1, 3));
    assert_identity(&stats);
}

#[tokio::test]
async fn coordinates_go_upstream_rounded_with_the_key() {
    let h = harness(|_| {}).await;
    h.get("u", 36.123456, -86.678912).await.unwrap();
    let query = &h.upstream.queries()[0];
    assert_eq!((query.lat, query.lon), (36.12, -86.68));
    assert_eq!(query.appid, KEY);
    assert!(
        query.target.starts_with(
            "/data/3.0/onecall?lat=36.12&lon=-86.68&units=metric&appid="
        ),
        "{}",
        query.target
    );
}

#[tokio::test]
async fn fresh_ttl_without_swr_refetches_after_ten_minutes() {
    let h = harness(|c| c.stale_ttl_ms = 0).await;
    h.get("u", 1.0, 1.0).await.unwrap();
    h.advance(599_999);
    assert_eq!(source(&h.get("u", 1.0, 1.0).await), Source::Cache);
    h.advance(1);
    assert_eq!(source(&h.get("u", 1.0, 1.0).await), Source::Network);
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_then_refreshes_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let upstream = Upstream::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move { weather(10.0 + n as f64, "Rain") }
    })
    .await;
    let h = harness_with(config(|_| {}), upstream, None).await;
    h.get("u", 1.0, 1.0).await.unwrap();
    h.advance(600_000);
    // Three stale hits: all served at once, one background refresh between them.
    for user in ["u", "v", "w"] {
        let reply = h.request(user, 1.0, 1.0, Mode::Normal).await;
        assert_eq!(source(&reply.result), Source::StaleCache);
        assert_eq!(reply.result.unwrap().entry.summary.temp_c, 10.0);
    }
    h.settle().await;
    assert_eq!(h.upstream.hits(), 2);
    let fresh = h.get("u", 1.0, 1.0).await.unwrap();
    assert_eq!((fresh.source, fresh.entry.summary.temp_c), (Source::Cache, 11.0));
    let stats = h.engine.stats();
    assert_eq!((stats.stale_hits, stats.background_refreshes), (3, 1));
    assert_identity(&stats);

    // Past the stale window the entry is a miss.
    h.advance(7_200_000);
    assert_eq!(source(&h.get("u", 1.0, 1.0).await), Source::Network);
}

#[tokio::test]
async fn no_background_refresh_inside_the_min_interval() {
    let h = harness(|c| {
        c.fresh_ttl_ms = 60_000;
        c.min_refresh_interval_ms = 300_000;
    })
    .await;
    h.get("u", 1.0, 1.0).await.unwrap();
    h.advance(120_000);
    let reply = h.request("u", 1.0, 1.0, Mode::Normal).await;
    assert_eq!(source(&reply.result), Source::StaleCache);
    assert!(names(&reply.events).contains(&"weather.request.skipped.minInterval"));
    h.settle().await;
    assert_eq!(h.upstream.hits(), 1);
    h.advance(180_000);
    h.get("u", 1.0, 1.0).await.unwrap();
    h.settle().await;
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn force_refresh_respects_the_min_interval() {
    let h = harness(|_| {}).await;
    h.get("u", 1.0, 1.0).await.unwrap();
    h.advance(299_999);
    let reply = h.request("u", 1.0, 1.0, Mode::ForceRefresh).await;
    assert_eq!(source(&reply.result), Source::Cache);
    assert!(names(&reply.events).contains(&"weather.request.skipped.minInterval"));
    assert_eq!(h.upstream.hits(), 1);
    h.advance(1);
    let reply = h.request("u", 1.0, 1.0, Mode::ForceRefresh).await;
    assert_eq!(source(&reply.result), Source::Network);
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn stale_if_error_answers_from_the_stale_entry() {
    let failing = Switch::new(false);
    let upstream = Upstream::switched(&failing, || json(503, "{}"), || weather(3.0, "Snow")).await;
    let h = harness_with(config(|_| {}), upstream, None).await;
    h.get("u", 1.0, 1.0).await.unwrap();
    failing.set(true);
    h.advance(600_000);
    let forced = h.request("u", 1.0, 1.0, Mode::ForceRefresh).await;
    assert_eq!(source(&forced.result), Source::StaleCache, "the failed forced fetch falls back");
    assert_eq!(h.upstream.hits(), 2);
    assert_eq!(h.engine.stats().stale_if_error, 1);
    // During the area's cooldown, a forced refresh gets the stale entry without a call.
    let again = h.request("u", 1.0, 1.0, Mode::ForceRefresh).await;
    assert_eq!(source(&again.result), Source::StaleCache);
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn rate_limit_with_retry_after_stops_every_area() {
    let limited = Switch::new(true);
    let upstream = Upstream::switched(&limited, || rate_limited(120), || weather(1.0, "Clear")).await;
    let h = harness_with(config(|_| {}), upstream, None).await;
    let reply = h.request("u", 1.0, 1.0, Mode::Normal).await;
    assert_eq!(reply.result.unwrap_err(), RequestError::RateLimited { provider: OW, retry_after_ms: 120_000 });
    assert!(reply.events.contains(&Event::RateLimited { provider: OW, retry_after_ms: 120_000 }));
    assert!(reply.events.contains(&Event::BackoffState { provider: OW, scope: BackoffScope::Provider, backoff_ms: 120_000 }));
    limited.set(false);
    h.advance(60_000);
    // Another area, same key: still cooling down, no call.
    assert_eq!(h.get("v", -30.0, 150.0).await.unwrap_err(), RequestError::RateLimited { provider: OW, retry_after_ms: 60_000 });
    assert_eq!(h.upstream.hits(), 1);
    assert_eq!(h.engine.stats().backoff_until, h.engine.now() + 60_000);
    h.advance(60_000);
    assert_eq!(source(&h.get("v", -30.0, 150.0).await), Source::Network);
    assert_eq!(h.engine.stats().backoff_until, 0);
}

#[tokio::test]
async fn rate_limit_backoff_doubles_without_retry_after() {
    let h = harness_with(config(|_| {}), Upstream::start(|_| async { json(429, "{}") }).await, None).await;
    let mut windows = Vec::new();
    for _ in 0..7 {
        match h.get("u", 1.0, 1.0).await {
            Err(RequestError::RateLimited { retry_after_ms, .. }) => windows.push(retry_after_ms),
            other => panic!("{other:?}"),
        }
        h.advance(*windows.last().unwrap() as u64);
    }
    assert_eq!(windows, [60_000, 120_000, 240_000, 480_000, 960_000, 1_800_000, 1_800_000]);
    assert_eq!(h.upstream.hits(), 7);
}

#[tokio::test]
async fn errors_cool_an_area_down_not_the_provider() {
    let h = harness_with(
        config(|_| {}),
        Upstream::start(|q| async move {
            if q.lat > 0.0 {
                json(502, "{}")
            } else {
                weather(1.0, "Clear")
            }
        })
        .await,
        None,
    )
    .await;
    assert_eq!(h.get("u", 1.0, 1.0).await.unwrap_err(), RequestError::Status { provider: OW, status: 502, reason: None });
    // 1,000 requests for the failing area during its window: no upstream call.
    for i in 0..1_000 {
        assert!(h.get(&format!("d{i}"), 1.0 + (i % 10) as f64 * 1e-3, 1.0).await.is_err());
    }
    assert_eq!(h.upstream.hits(), 1);
    // Another area is unaffected.
    assert!(h.get("u", -1.0, 1.0).await.is_ok());
    // Consecutive failures double the window: 5 s, then 10 s.
    h.advance(5_000);
    assert!(h.get("u", 1.0, 1.0).await.is_err());
    h.advance(9_999);
    assert!(h.get("u", 1.0, 1.0).await.is_err());
    assert_eq!(h.upstream.hits(), 3);
    h.advance(1);
    assert!(h.get("u", 1.0, 1.0).await.is_err());
    assert_eq!(h.upstream.hits(), 4);
}

#[tokio::test]
async fn transport_failures_are_classified_and_never_show_the_key() {
    let cases: Vec<(Answer, &str)> = vec![
        (json(200, "{not json"), "ERR_UPSTREAM_INVALID_RESPONSE"),
        (json(200, r#"{"current":{"weather":[]}}"#), "ERR_UPSTREAM_INVALID_RESPONSE"),
        (Answer::ResetMidBody, "ERR_UPSTREAM_NETWORK"),
        (json(200, &"x".repeat(2 << 20)), "ERR_UPSTREAM_INVALID_RESPONSE"),
    ];
    for (answer, code) in cases {
        let answer = Arc::new(std::sync::Mutex::new(Some(answer)));
        let h = harness_with(
            config(|_| {}),
            Upstream::start(move |_| {
                let answer = answer.lock().unwrap().take().unwrap();
                async move { answer }
            })
            .await,
            None,
        )
        .await;
        let reply = h.request("u", 1.0, 1.0, Mode::Normal).await;
        let error = reply.result.unwrap_err();
        assert_eq!(error.code(), code);
        assert!(!format!("{error:?} {:?}", reply.events).contains(KEY));
    }
}

#[tokio::test]
async fn slow_upstream_times_out_and_closed_port_is_a_network_error() {
    let slow = Upstream::start(|_| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        weather(1.0, "Clear")
    })
    .await;
    let h = harness_with(config(|_| {}), slow, None).await;
    assert_eq!(h.get("u", 1.0, 1.0).await.unwrap_err(), RequestError::Timeout { provider: OW });

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: Some(KEY.into()),
        base_url: closed_url,
        coordinate_decimals: 2,
        request_timeout: Duration::from_secs(2),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    let engine = Engine::new(config(|_| {}), vec![super::Upstream::new(Arc::new(provider))], None, tokio::runtime::Handle::current(), None);
    let Begin::Pending(pending) = engine
        .begin(Request { user: "u", at: LatLon::new(1.0, 1.0), mode: Mode::Normal }, &mut Recorder::new(Level::Trace))
    else {
        panic!("expected a fetch");
    };
    let reply = pending.wait(true).await;
    let error = reply.result.unwrap_err();
    assert_eq!(error.code(), "ERR_UPSTREAM_NETWORK");
    let text = format!("{} {:?}", error.message(), reply.events);
    assert!(!text.contains(KEY) && !text.contains("appid") && !text.contains("http://"), "{text}");
}

#[tokio::test]
async fn no_api_key_rejects_without_a_call() {
    let upstream = Upstream::start(|_| async { weather(1.0, "Clear") }).await;
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: None,
        base_url: upstream.url(),
        coordinate_decimals: 2,
        request_timeout: Duration::from_secs(1),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    let engine = Engine::new(config(|_| {}), vec![super::Upstream::new(Arc::new(provider))], None, tokio::runtime::Handle::current(), None);
    let begun = engine
        .begin(Request { user: "u", at: LatLon::new(1.0, 1.0), mode: Mode::Normal }, &mut Recorder::new(Level::Silent));
    assert!(matches!(begun, Begin::Ready(Err(RequestError::NoApiKey { .. }))));
    assert_eq!(upstream.hits(), 0);
    assert_eq!(engine.stats().rejected, 1);
}

#[tokio::test]
async fn close_settles_everything_pending() {
    let h = harness_with(config(|_| {}), Upstream::start(|_| std::future::pending()).await, None).await;
    let pending: Vec<Begin> = (0..3)
        .map(|i| {
            h.engine.begin(
                Request { user: "u", at: LatLon::new(i as f64, 0.0), mode: Mode::Normal },
                &mut Recorder::new(Level::Silent),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.engine.close();
    for begun in pending {
        let Begin::Pending(p) = begun else { panic!("expected pending") };
        assert_eq!(p.wait(true).await.result.unwrap_err(), RequestError::Closed);
    }
    assert!(matches!(
        h.engine.begin(
            Request { user: "u", at: LatLon::new(0.0, 0.0), mode: Mode::Normal },
            &mut Recorder::new(Level::Silent)
        ),
        Begin::Ready(Err(RequestError::Closed))
    ));
    assert_eq!(h.engine.stats().inflight, 0);
}

#[tokio::test]
async fn coalescing_is_by_distance_across_the_antimeridian() {
    let h = harness(|_| {}).await;
    let results = h.burst(&[("east", 0.0, 179.99), ("west", 0.0, -179.99)]).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(h.upstream.hits(), 1);
    // And the cached entry serves the other side too.
    assert_eq!(source(&h.get("third", 0.0, -179.995).await), Source::Cache);
}

#[tokio::test]
async fn no_coalescing_when_disabled() {
    let h = harness(|c| c.coalesce = false).await;
    h.burst(&[("a", 1.0, 1.0), ("b", 1.0, 1.0), ("c", 1.0, 1.0)]).await;
    assert_eq!(h.upstream.hits(), 3);
}

#[tokio::test]
async fn background_refresh_events_go_to_the_background_sink() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let background: BackgroundEvents = Arc::new(move |events| sink.lock().unwrap().extend(events));
    let failing = Switch::new(false);
    let upstream = Upstream::switched(&failing, || json(500, "{}"), || weather(1.0, "Clear")).await;
    let h = harness_with(config(|_| {}), upstream, Some(background)).await;
    h.get("u", 1.0, 1.0).await.unwrap();
    failing.set(true);
    h.advance(600_000);
    let reply = h.request("u", 1.0, 1.0, Mode::Normal).await;
    assert_eq!(source(&reply.result), Source::StaleCache);
    h.settle().await;
    assert_eq!(
        names(&reply.events),
        ["weather.request.attempted", "weather.cache.hit.stale"],
        "the caller is not told"
    );
    assert_eq!(
        names(&seen.lock().unwrap()),
        ["weather.request.sent", "weather.error.network", "weather.backoff.state"]
    );
    let stats = h.engine.stats();
    assert_eq!((stats.background_refreshes, stats.upstream_errors), (1, 1));
    // The failed refresh left the stale entry in place.
    assert_eq!(source(&h.get("u", 1.0, 1.0).await), Source::StaleCache);
}

#[tokio::test]
async fn warmup_fetches_once_and_then_is_satisfied() {
    let h = harness(|_| {}).await;
    assert_eq!(source(&h.request("u", 1.0, 1.0, Mode::Warmup).await.result), Source::Network);
    assert_eq!(source(&h.request("u", 1.0, 1.0, Mode::Warmup).await.result), Source::Cache);
    h.advance(600_000);
    // Ten minutes old: stale and past the 5 min minimum interval, so a warmup refreshes.
    assert_eq!(source(&h.request("u", 1.0, 1.0, Mode::Warmup).await.result), Source::Network);
    assert_eq!(h.upstream.hits(), 2);
}

#[test]
fn begin_after_runtime_shutdown_neither_deadlocks_nor_hangs() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: Some(KEY.into()),
        base_url: "http://127.0.0.1:9".into(),
        coordinate_decimals: 2,
        request_timeout: Duration::from_secs(1),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    let engine = Engine::new(config(|_| {}), vec![super::Upstream::new(Arc::new(provider))], None, runtime.handle().clone(), None);
    drop(runtime);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let begun = engine.begin(
            Request { user: "u", at: LatLon::new(1.0, 1.0), mode: Mode::Normal },
            &mut Recorder::new(Level::Silent),
        );
        let Begin::Pending(pending) = begun else { panic!("expected a fetch") };
        let waiter = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = done.send(waiter.block_on(pending.wait(true)).result.map(|_| ()));
    });
    let result = finished.recv_timeout(Duration::from_secs(10)).expect("begin() or the wait hung");
    assert_eq!(result, Err(RequestError::Closed));
}

struct Panicking;

impl crate::provider::Provider for Panicking {
    fn name(&self) -> &'static str {
        "panicking"
    }
    fn ready(&self) -> Result<(), crate::provider::ProviderError> {
        Ok(())
    }
    fn fetch<'a>(&'a self, _: LatLon, _: Option<&'a str>) -> crate::provider::FetchFuture<'a> {
        Box::pin(async { panic!("a bug in the provider") })
    }
}

#[tokio::test]
async fn a_panicking_provider_is_an_area_failure_not_a_closed_service() {
    let engine = Engine::new(config(|_| {}), vec![super::Upstream::new(Arc::new(Panicking))], None, tokio::runtime::Handle::current(), None);
    let begun = engine
        .begin(Request { user: "u", at: LatLon::new(1.0, 1.0), mode: Mode::Normal }, &mut Recorder::new(Level::Silent));
    let Begin::Pending(pending) = begun else { panic!("expected a fetch") };
    let error = pending.wait(true).await.result.unwrap_err();
    assert_eq!(error.code(), "ERR_UPSTREAM_NETWORK");
    // The area cools down: the next request gets the same error without another attempt.
    let again = engine
        .begin(Request { user: "v", at: LatLon::new(1.0, 1.0), mode: Mode::Normal }, &mut Recorder::new(Level::Silent));
    assert!(matches!(again, Begin::Ready(Err(RequestError::Network { .. }))));
    assert!(!engine.is_closed());
}

#[tokio::test]
async fn joiners_count_users_not_requests() {
    let h = harness_with(
        config(|_| {}),
        Upstream::start(|_| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            weather(1.0, "Clear")
        })
        .await,
        None,
    )
    .await;
    let mut waiting = Vec::new();
    for _ in 0..1_000 {
        match h.engine.begin(
            Request { user: "poller", at: LatLon::new(1.0, 1.0), mode: Mode::Normal },
            &mut Recorder::new(Level::Silent),
        ) {
            Begin::Pending(p) => waiting.push(p),
            Begin::Ready(_) => panic!("nothing is cached yet"),
        }
    }
    assert_eq!(h.engine.inner.lock().flights.joiners(), 1);
    for p in waiting {
        p.wait(true).await.result.unwrap();
    }
    assert_eq!(h.upstream.hits(), 1);
}

#[tokio::test]
async fn clearing_a_user_during_a_fetch_keeps_it_cleared() {
    let h = harness_with(
        config(|_| {}),
        Upstream::start(|_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            weather(1.0, "Clear")
        })
        .await,
        None,
    )
    .await;
    let Begin::Pending(pending) = h.engine.begin(
        Request { user: "leaving", at: LatLon::new(1.0, 1.0), mode: Mode::Normal },
        &mut Recorder::new(Level::Silent),
    ) else {
        panic!("expected a fetch");
    };
    h.engine.clear_user("leaving");
    pending.wait(true).await.result.unwrap();
    let reply = h.request("leaving", 1.0, 1.0, Mode::Normal).await;
    assert!(
        reply.events.iter().any(|e| matches!(e, Event::Hit { scope: Scope::Shared, .. })),
        "not from a user cache: {:?}",
        names(&reply.events)
    );
}

// Issue 10, engine and cache defects: each test reproduces the reported scenario.

#[tokio::test]
async fn two_failing_areas_in_one_cell_each_cool_down() {
    // #1: A and B are 5.5 km apart in one cell; alternating requests used to make 6 calls with
    // windows doubling across the two areas.
    let h = harness_with(config(|_| {}), Upstream::start(|_| async { json(503, "{}") }).await, None).await;
    let (a, b) = ((9.97, 9.99), (10.01, 10.02));
    let mut windows = Vec::new();
    for (lat, lon) in [a, b, a, b, a, b] {
        let reply = h.request("u", lat, lon, Mode::Normal).await;
        assert_eq!(reply.result.unwrap_err(), RequestError::Status { provider: OW, status: 503, reason: None });
        windows.extend(reply.events.iter().filter_map(|e| match e {
            Event::BackoffState { provider: OW, scope: BackoffScope::Area, backoff_ms } => Some(*backoff_ms),
            _ => None,
        }));
    }
    assert_eq!(h.upstream.hits(), 2, "one call per area");
    assert_eq!(windows, [5_000, 5_000], "each area cools down from the base");
    h.advance(5_000);
    for (lat, lon) in [a, b] {
        h.get("u", lat, lon).await.unwrap_err();
    }
    assert_eq!(h.upstream.hits(), 4, "after the window each area is tried again, once");
}

#[tokio::test]
async fn a_warmup_keeps_a_stale_neighbour_that_still_serves_others() {
    // #2: B's new entry covers only part of A's disk; C is served by A alone.
    let failing = Switch::new(false);
    let upstream = Upstream::switched(&failing, || json(503, "{}"), || weather(12.0, "Rain")).await;
    let h = harness_with(config(|c| c.grid_deg = 0.1), upstream, None).await;
    h.get("u", 10.0, 9.96).await.unwrap();
    h.advance(11 * 60_000);
    assert_eq!(source(&h.request("w", 10.0, 10.0, Mode::Warmup).await.result), Source::Network);
    failing.set(true);
    let c = h.get("c", 10.0, 9.92).await;
    assert_eq!(source(&c), Source::StaleCache, "A's stale entry, not an upstream error");
    assert_eq!(c.unwrap().entry.location, LatLon::new(10.0, 9.96));
}

#[tokio::test]
async fn user_cache_hits_keep_the_shared_entry_recently_used() {
    // #3: 100 hits on X from drone-1's own copy must count as uses of X in the shared LRU.
    let h = harness(|c| c.shared_capacity = 2).await;
    let (x, y, z) = ((10.0, 10.0), (20.0, 20.0), (30.0, 30.0));
    h.get("drone-1", x.0, x.1).await.unwrap();
    h.get("other", y.0, y.1).await.unwrap();
    for _ in 0..100 {
        assert_eq!(source(&h.get("drone-1", x.0, x.1).await), Source::Cache);
    }
    h.get("other", z.0, z.1).await.unwrap();
    assert_eq!(source(&h.get("drone-2", x.0, x.1).await), Source::Cache, "X stayed: Y was the least used");
    assert_eq!(h.upstream.hits(), 3);
}

#[tokio::test]
async fn clear_user_during_a_failing_forced_refresh_stays_cleared() {
    // #4: the stale-if-error answer used to write the cleared user back.
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = failing.clone();
    let upstream = Upstream::start(move |_| {
        let fail = flag.load(Ordering::SeqCst);
        async move {
            if fail {
                tokio::time::sleep(Duration::from_millis(50)).await;
                json(503, "{}")
            } else {
                weather(5.0, "Clear")
            }
        }
    })
    .await;
    let h = harness_with(config(|_| {}), upstream, None).await;
    h.get("alice", 1.0, 1.0).await.unwrap();
    h.advance(11 * 60_000);
    failing.store(true, Ordering::SeqCst);
    let request = Request { user: "alice", at: LatLon::new(1.0, 1.0), mode: Mode::ForceRefresh };
    let Begin::Pending(pending) = h.engine.begin(request, &mut Recorder::new(Level::Silent)) else {
        panic!("expected a fetch");
    };
    h.engine.clear_user("alice");
    assert_eq!(h.engine.stats().users, 0);
    assert_eq!(pending.wait(true).await.result.unwrap().source, Source::StaleCache, "stale-if-error");
    assert_eq!(h.engine.stats().users, 0, "alice was not written back");
    let next = h.request("alice", 1.0, 1.0, Mode::Normal).await;
    assert!(!next.events.iter().any(|e| matches!(e, Event::Hit { scope: Scope::User, .. })));
}

fn rate_limited_slowly() -> impl Fn(crate::testing::upstream::Query) -> std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>> + Send + Sync + 'static {
    |_| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            json(429, "{}")
        })
    }
}

#[tokio::test]
async fn a_flights_events_reach_a_joiner_when_the_initiator_gave_up() {
    // #5: the initiator aborted (its wait was dropped); the 429 events go to the next waiter.
    let h = harness_with(config(|_| {}), Upstream::start(rate_limited_slowly()).await, None).await;
    let begin = |user| h.engine.begin(Request { user, at: LatLon::new(1.0, 1.0), mode: Mode::Normal }, &mut Recorder::new(Level::Silent));
    let (Begin::Pending(initiator), Begin::Pending(joiner)) = (begin("first"), begin("second")) else {
        panic!("expected a fetch and a joiner");
    };
    drop(initiator);
    let reply = joiner.wait(true).await;
    assert!(matches!(reply.result, Err(RequestError::RateLimited { .. })));
    assert_eq!(names(&reply.events), ["weather.request.sent", "weather.rate_limited", "weather.backoff.state"]);
}

#[tokio::test]
async fn a_flights_events_reach_the_background_sink_when_no_waiter_takes_them() {
    // #5: nobody left to log them (or nobody with a logger of its own): the service logger.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let background: BackgroundEvents = Arc::new(move |events| sink.lock().unwrap().extend(events));
    let h = harness_with(config(|_| {}), Upstream::start(rate_limited_slowly()).await, Some(background)).await;
    let begin = |user| h.engine.begin(Request { user, at: LatLon::new(1.0, 1.0), mode: Mode::Normal }, &mut Recorder::new(Level::Silent));
    let (Begin::Pending(aborted), Begin::Pending(without_logger)) = (begin("first"), begin("second")) else {
        panic!("expected a fetch and a joiner");
    };
    drop(aborted);
    assert!(without_logger.wait(false).await.events.is_empty());
    h.settle().await;
    assert_eq!(names(&seen.lock().unwrap()), ["weather.request.sent", "weather.rate_limited", "weather.backoff.state"]);
}

#[tokio::test]
async fn a_retry_after_date_in_the_past_backs_off_instead_of_hammering() {
    // #6: a provider whose clock is behind sends a date before its own `Date`.
    let upstream = Upstream::start(|_| async {
        Answer::Respond {
            status: 429,
            headers: vec![
                ("Date".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into()),
                ("Retry-After".into(), "Sun, 06 Nov 1994 08:40:00 GMT".into()),
            ],
            body: br#"{"cod":429}"#.to_vec(),
        }
    })
    .await;
    let h = harness_with(config(|_| {}), upstream, None).await;
    assert_eq!(h.get("u", 1.0, 1.0).await.unwrap_err(), RequestError::RateLimited { provider: OW, retry_after_ms: 60_000 });
    assert_eq!(h.get("u", 2.0, 2.0).await.unwrap_err(), RequestError::RateLimited { provider: OW, retry_after_ms: 60_000 });
    assert_eq!(h.upstream.hits(), 1, "the provider cools down for the backoff window");
}

#[tokio::test]
async fn two_stale_neighbours_are_not_refreshed_at_once() {
    // Found while writing the "one fetch per area" property: a forced refresh 2 km from an entry
    // makes two entries of one area; once both are stale, requests on either side (each more
    // than 5 km from the other entry) refreshed both at once, two calls for one area.
    let upstream = Upstream::start(|_| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        weather(8.0, "Clear")
    })
    .await;
    let h = harness_with(config(|_| {}), upstream, None).await;
    let (e, e2) = (LatLon::new(10.0, 10.0), LatLon::new(10.0, 10.018)); // 2 km apart
    h.get("u", e.lat, e.lon).await.unwrap();
    h.advance(6 * 60_000);
    assert_eq!(source(&h.request("u", e2.lat, e2.lon, Mode::ForceRefresh).await.result), Source::Network);
    h.advance(11 * 60_000);
    let east = LatLon::new(10.0, 10.0545); // 4 km east of e2, 6 km from e
    let west = LatLon::new(10.0, 9.9635); // 4 km west of e, 6 km from e2
    let results = h.burst(&[("a", east.lat, east.lon), ("b", west.lat, west.lon)]).await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|s| s.source == Source::StaleCache)));
    h.settle().await;
    assert_eq!(h.upstream.hits(), 3, "one background refresh for the area, not two");
}

// Issue 13: what the JS front relies on.

/// Where `user`'s request was answered from.
async fn scope_of(h: &Harness, user: &str, lat: f64, lon: f64) -> Option<Scope> {
    let reply = h.request(user, lat, lon, Mode::Normal).await;
    reply.events.iter().find_map(|e| match e {
        Event::Hit { scope, .. } => Some(*scope),
        _ => None,
    })
}

#[tokio::test]
async fn a_users_version_changes_whenever_its_entries_do() {
    let h = harness(|c| c.max_users = 2).await;
    let versions = h.engine.watch_users();
    let version = |user: &str| versions.get(crate::cache::UserVersions::bucket(user));
    let begin = |user: &str| {
        let request = Request { user, at: LatLon::new(1.0, 1.0), mode: Mode::Normal };
        h.engine.begin_versioned(request, &mut Recorder::new(Level::Silent)).1.expect("watched")
    };
    h.get("ada", 1.0, 1.0).await.unwrap();
    let (bucket, v) = begin("ada");
    assert_eq!((bucket, v), (crate::cache::UserVersions::bucket("ada"), version("ada")));
    assert_eq!(begin("ada"), (bucket, v), "a hit changes nothing");
    h.get("ada", 1.2, 1.0).await.unwrap();
    assert_ne!(version("ada"), v, "a new entry");
    let v = version("ada");
    h.get("bo", 1.0, 1.0).await.unwrap();
    h.get("cy", 1.0, 1.0).await.unwrap();
    assert_ne!(version("ada"), v, "evicted by a third user");
    let v = version("bo");
    assert!(h.engine.clear_user("bo"));
    assert_ne!(version("bo"), v, "cleared");
    let v = version("cy");
    h.engine.close();
    assert_ne!(version("cy"), v, "closed");
}

#[tokio::test]
async fn replayed_user_hits_count_and_keep_entries_recently_used() {
    // As user_cache_hits_keep_the_shared_entry_recently_used, with the hits answered outside.
    let h = harness(|c| {
        c.shared_capacity = 2;
        c.max_users = 2;
    })
    .await;
    let (x, y, z) = ((10.0, 10.0), (20.0, 20.0), (30.0, 30.0));
    h.get("drone-1", x.0, x.1).await.unwrap();
    h.get("other", y.0, y.1).await.unwrap();
    h.engine.replay_user_hits(["drone-1"], 100);
    let stats = h.engine.stats();
    assert_eq!((stats.requests, stats.user_hits), (102, 100));
    assert_identity(&stats);
    h.get("third", z.0, z.1).await.unwrap();
    assert_eq!(scope_of(&h, "drone-1", x.0, x.1).await, Some(Scope::User), "drone-1 stayed: other was the least used");
    assert_eq!(scope_of(&h, "drone-2", x.0, x.1).await, Some(Scope::Shared), "X stayed: Y was the least used");
    assert_eq!(h.upstream.hits(), 3);
}

#[tokio::test]
async fn a_flight_lands_for_its_joiners_in_the_order_they_joined() {
    // With room for two users, the first of three joiners is the one evicted, every time.
    let h = harness_with(
        config(|c| c.max_users = 2),
        Upstream::start(|_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            weather(1.0, "Clear")
        })
        .await,
        None,
    )
    .await;
    let joiners = ["u7", "u3", "u9", "u1", "u5"];
    h.burst(&joiners.map(|user| (user, 1.0, 1.0))).await.into_iter().for_each(|r| drop(r.unwrap()));
    assert_eq!(h.engine.stats().users, 2);
    assert_eq!(scope_of(&h, "u1", 1.0, 1.0).await, Some(Scope::User));
    assert_eq!(scope_of(&h, "u5", 1.0, 1.0).await, Some(Scope::User));
    for user in ["u7", "u3", "u9"] {
        assert_eq!(scope_of(&h, user, 1.0, 1.0).await, Some(Scope::Shared), "{user} was evicted");
    }
}

#[tokio::test]
async fn a_request_is_refused_where_its_fetch_would_ask() {
    // The area around A cools down at A's rounded location. P is 5.19 km from A, outside the
    // cooldown, but its fetch would ask at (10.01, 10.04), 4.5 km from A, inside: P is refused
    // at once, as its own flight would refuse it, and counted as such.
    let h = harness_with(config(|_| {}), Upstream::start(|_| async { json(503, "{}") }).await, None).await;
    h.get("u", 10.0, 10.0).await.unwrap_err();
    let reply = h.request("u", 10.0149, 10.0449, Mode::Normal).await;
    assert_eq!(reply.result.unwrap_err(), RequestError::Status { provider: OW, status: 503, reason: None });
    assert_eq!(h.upstream.hits(), 1);
    let stats = h.engine.stats();
    assert_eq!((stats.misses, stats.rejected), (1, 1), "{stats:?}");
    assert_identity(&stats);
}
