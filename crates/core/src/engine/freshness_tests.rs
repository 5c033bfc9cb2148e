//! A caller's own max age, and refresh-ahead: on the manual clock, over real HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::tests::{assert_identity, config, harness_with, Harness, KEY};
use super::*;
use crate::geo::LatLon;
use crate::provider::{OpenWeather, OpenWeatherConfig};
use crate::testing::upstream::{rate_limited, weather, Switch, Upstream};

/// An upstream whose n-th answer is 10 + n °C: which fetch an answer came from shows.
async fn counting() -> Upstream {
    let calls = Arc::new(AtomicUsize::new(0));
    Upstream::start(move |_| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move { weather(10.0 + n as f64, "Rain") }
    })
    .await
}

async fn ask(h: &Harness, user: &str, at: (f64, f64), mode: Mode) -> (Result<Served, RequestError>, Vec<Event>) {
    let mut recorder = Recorder::new(Level::Trace);
    let request = Request { user, at: LatLon::new(at.0, at.1), mode };
    match h.engine.begin(request, &mut recorder) {
        Begin::Ready(result) => (result, recorder.events),
        Begin::Pending(pending) => {
            let mut reply = pending.wait(true).await;
            recorder.events.append(&mut reply.events);
            (reply.result, recorder.events)
        }
    }
}

fn served(result: &Result<Served, RequestError>) -> (Source, f64) {
    let served = result.as_ref().expect("served");
    (served.source, served.entry.summary.temp_c)
}

const HERE: (f64, f64) = (1.0, 1.0);

#[tokio::test]
async fn max_age_treats_an_older_entry_as_a_miss_floored_by_the_min_interval() {
    let h = harness_with(config(|c| c.refresh_ahead_ms = 0), counting().await, None).await;
    assert_eq!(served(&ask(&h, "u", HERE, Mode::Normal).await.0), (Source::Network, 10.0));
    h.advance(120_000);
    // Younger than the floor (300 s): answered from the cache, and the floor is logged.
    let (result, events) = ask(&h, "u", HERE, Mode::MaxAge(60_000)).await;
    assert_eq!(served(&result), (Source::Cache, 10.0));
    assert!(events.iter().any(|e| e.name() == "weather.request.skipped.minInterval"));
    // Younger than the caller's max age: a plain hit, nothing logged about the floor.
    let (result, events) = ask(&h, "v", HERE, Mode::MaxAge(200_000)).await;
    assert_eq!(served(&result), (Source::Cache, 10.0));
    assert!(!events.iter().any(|e| e.name() == "weather.request.skipped.minInterval"));
    assert_eq!(h.upstream.hits(), 1);

    h.advance(240_000); // 360 s old: still fresh, but older than 2 minutes and than the floor
    assert_eq!(served(&ask(&h, "u", HERE, Mode::Normal).await.0), (Source::Cache, 10.0), "others still hit");
    // Fifty callers wanting at most 2 minutes: one fetch, which they all join.
    let mut waiting = Vec::new();
    for i in 0..50 {
        let user = format!("drone-{i}");
        let request = Request { user: &user, at: LatLon::new(1.0 + i as f64 * 1e-4, 1.0), mode: Mode::MaxAge(120_000) };
        waiting.push(h.engine.begin(request, &mut Recorder::new(Level::Silent)));
    }
    for begun in waiting {
        let result = match begun {
            Begin::Ready(result) => result,
            Begin::Pending(pending) => pending.wait(false).await.result,
        };
        assert_eq!(served(&result).1, 11.0, "the new fetch's answer");
    }
    assert_eq!(h.upstream.hits(), 2);
    let stats = h.engine.stats();
    assert_eq!((stats.misses, stats.coalesced), (2, 49));
    assert_identity(&stats);
}

#[tokio::test]
async fn max_age_in_a_cooldown_answers_from_the_cache_with_its_age() {
    let limited = Switch::new(false);
    let upstream = Upstream::switched(&limited, || rate_limited(3600), || weather(4.0, "Clear")).await;
    let h = harness_with(config(|c| c.refresh_ahead_ms = 0), upstream, None).await;
    ask(&h, "u", HERE, Mode::Normal).await.0.unwrap();
    limited.set(true);
    // Another area runs into the 429: the provider cools down for an hour.
    assert!(matches!(ask(&h, "v", (-30.0, 150.0), Mode::Normal).await.0, Err(RequestError::RateLimited { .. })));
    h.advance(400_000);
    let (result, _) = ask(&h, "u", HERE, Mode::MaxAge(60_000)).await;
    let answer = result.expect("the cache answers during the cooldown");
    assert_eq!(answer.source, Source::Cache);
    assert_eq!(answer.entry.age(h.engine.now()), 400_000, "older than asked for, and saying so");
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn refresh_ahead_refreshes_a_busy_entry_once_before_it_goes_stale() {
    let h = harness_with(config(|c| c.refresh_ahead_ms = 30_000), counting().await, None).await;
    ask(&h, "u", HERE, Mode::Normal).await.0.unwrap();
    h.advance(569_999); // 30.001 s left: not yet
    assert_eq!(served(&ask(&h, "u", HERE, Mode::Normal).await.0), (Source::Cache, 10.0));
    h.settle().await;
    assert_eq!(h.upstream.hits(), 1);
    h.advance(1); // 30 s left: a hundred requests, all hits, one refresh between them
    for i in 0..100 {
        let (result, _) = ask(&h, &format!("drone-{i}"), (1.0 + i as f64 * 1e-4, 1.0), Mode::Normal).await;
        assert_eq!(served(&result), (Source::Cache, 10.0));
    }
    h.settle().await;
    assert_eq!(h.upstream.hits(), 2);
    // At the old entry's expiry the area is fresh: never stale.
    h.advance(30_000);
    assert_eq!(served(&ask(&h, "u", HERE, Mode::Normal).await.0), (Source::Cache, 11.0));
    let stats = h.engine.stats();
    assert_eq!((stats.stale_hits, stats.background_refreshes), (0, 1));
    assert_identity(&stats);
}

#[tokio::test]
async fn refresh_ahead_waits_out_a_cooldown_and_the_min_interval() {
    let limited = Switch::new(false);
    let upstream = Upstream::switched(&limited, || rate_limited(3600), || weather(4.0, "Clear")).await;
    let h = harness_with(
        config(|c| {
            c.fresh_ttl_ms = 60_000;
            c.refresh_ahead_ms = 30_000;
            c.min_refresh_interval_ms = 45_000;
        }),
        upstream,
        None,
    )
    .await;
    ask(&h, "u", HERE, Mode::Normal).await.0.unwrap();
    h.advance(40_000); // in the window, but younger than the minimum interval
    ask(&h, "u", HERE, Mode::Normal).await.0.unwrap();
    h.settle().await;
    assert_eq!(h.upstream.hits(), 1);
    limited.set(true);
    assert!(ask(&h, "v", (-30.0, 150.0), Mode::Normal).await.0.is_err());
    h.advance(10_000); // 50 s old: past the interval, but the provider cools down
    for user in ["u", "w", "x"] {
        assert_eq!(ask(&h, user, HERE, Mode::Normal).await.0.unwrap().source, Source::Cache);
    }
    h.settle().await;
    assert_eq!(h.upstream.hits(), 2, "no refresh against the cooldown");
    assert_eq!(h.engine.stats().background_refreshes, 0);
}

#[tokio::test]
async fn refresh_ahead_never_spends_the_background_reserve() {
    let upstream = counting().await;
    let mut config = config(|c| c.refresh_ahead_ms = 30_000);
    config.log_level = Level::Silent;
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: Some(KEY.into()),
        base_url: upstream.url(),
        coordinate_decimals: config.coordinate_decimals,
        request_timeout: std::time::Duration::from_millis(500),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    // 10 a day: 9 for background refreshes, the last one kept for a caller who waits.
    let budget = BudgetConfig { per_minute: 0, per_day: 10, when_redis_down: WhenRedisDown::Local };
    let upstreams = vec![super::Upstream { provider: Arc::new(provider), budget }];
    let engine = Engine::new(config, upstreams, None, tokio::runtime::Handle::current(), None);
    let h = Harness { engine, upstream };
    // Start at the beginning of a UTC day, so that the day does not end mid-test.
    let now = h.engine.now();
    h.advance((86_400_000 - now.rem_euclid(86_400_000)) as u64 + 1_000);
    for i in 0..9 {
        ask(&h, "u", (i as f64, 1.0), Mode::Normal).await.0.unwrap();
    }
    assert_eq!(h.upstream.hits(), 9);
    h.advance(580_000); // every entry in its refresh-ahead window
    for i in 0..9 {
        assert_eq!(ask(&h, "u", (i as f64, 1.0), Mode::Normal).await.0.unwrap().source, Source::Cache);
    }
    h.settle().await;
    assert_eq!(h.upstream.hits(), 9, "the reserve is not spent ahead of time");
    assert_eq!(h.engine.stats().background_refreshes, 0);
    // A caller who waits may spend it.
    assert_eq!(ask(&h, "u", (50.0, 1.0), Mode::Normal).await.0.unwrap().source, Source::Network);
    assert_eq!(h.upstream.hits(), 10);
}

#[tokio::test]
async fn refresh_ahead_leaves_an_entry_alone_while_a_neighbour_outlives_it() {
    let h = harness_with(config(|c| c.refresh_ahead_ms = 30_000), counting().await, None).await;
    ask(&h, "a", (1.0, 1.0), Mode::Normal).await.0.unwrap();
    h.advance(100_000);
    // 6.7 km north: a miss of its own, whose entry expires 100 s later.
    ask(&h, "b", (1.06, 1.0), Mode::Normal).await.0.unwrap();
    assert_eq!(h.upstream.hits(), 2);
    // Between them, both cover. In the first one's window the second outlives it: no call.
    h.advance(475_000);
    assert_eq!(served(&ask(&h, "c", (1.03, 1.0), Mode::Normal).await.0).0, Source::Cache);
    h.settle().await;
    assert_eq!(h.upstream.hits(), 2);
    // In the second one's window nothing outlives it: one refresh.
    h.advance(100_000);
    assert_eq!(served(&ask(&h, "c", (1.03, 1.0), Mode::Normal).await.0).0, Source::Cache);
    h.settle().await;
    assert_eq!(h.upstream.hits(), 3);
    assert_eq!(h.engine.stats().background_refreshes, 1);
}
