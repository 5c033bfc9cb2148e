//! What a saved engine state brings back: entries, a 429 cooldown, a spent day budget, an
//! area cooling down; nothing per user; nothing past its stale window.

use std::sync::Arc;

use super::tests::{config, harness_with, Harness, KEY};
use super::*;
use crate::geo::LatLon;
use crate::provider::{OpenWeather, OpenWeatherConfig};
use crate::testing::upstream::{json, rate_limited, weather, Switch, Upstream};

async fn ask(h: &Harness, user: &str, lat: f64, lon: f64) -> Result<Served, RequestError> {
    let request = Request { user, at: LatLon::new(lat, lon), mode: Mode::Normal };
    match h.engine.begin(request, &mut Recorder::new(Level::Silent)) {
        Begin::Ready(result) => result,
        Begin::Pending(pending) => pending.wait(false).await.result,
    }
}

fn budgeted(upstream: &Upstream, per_day: u64) -> Engine {
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: Some(KEY.into()),
        base_url: upstream.url(),
        coordinate_decimals: 2,
        request_timeout: std::time::Duration::from_millis(500),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    let budget = BudgetConfig { per_minute: 0, per_day, when_redis_down: WhenRedisDown::Local };
    let upstreams = vec![super::Upstream { provider: Arc::new(provider), budget }];
    Engine::new(config(|_| {}), upstreams, None, tokio::runtime::Handle::current(), None)
}

#[tokio::test]
async fn entries_and_a_rate_limit_cooldown_come_back_and_nothing_per_user_leaves() {
    let limited = Switch::new(false);
    let upstream = Upstream::switched(&limited, || rate_limited(3600), || weather(7.5, "Mist")).await;
    let before = harness_with(config(|_| {}), upstream, None).await;
    ask(&before, "alice", 48.85, 2.35).await.unwrap();
    ask(&before, "bob", -33.9, 151.2).await.unwrap();
    limited.set(true);
    assert!(matches!(ask(&before, "carol", 10.0, 10.0).await, Err(RequestError::RateLimited { .. })));
    let saved = before.engine.save();
    assert_eq!(saved.entries.len(), 2);
    let text = serde_json::to_string(&saved).unwrap();
    for private in ["alice", "bob", "carol"] {
        assert!(!text.contains(private), "{private} in {text}");
    }

    let upstream = Upstream::start(|_| async { weather(1.0, "Clear") }).await;
    let after = harness_with(config(|_| {}), upstream, None).await;
    assert_eq!(after.engine.restore(saved), Restored { entries: 2, dropped: 0 });
    let answer = ask(&after, "dave", 48.851, 2.35).await.unwrap();
    assert_eq!((answer.source, answer.entry.summary.condition.as_str()), (Source::Cache, "Mist"));
    assert_eq!(ask(&after, "erin", -33.9, 151.2).await.unwrap().source, Source::Cache);
    assert!(matches!(ask(&after, "carol", 10.0, 10.0).await, Err(RequestError::RateLimited { .. })), "the cooldown holds");
    assert_eq!(after.upstream.hits(), 0);
}

#[tokio::test]
async fn a_spent_day_budget_and_an_area_cooldown_hold_and_old_entries_are_dropped() {
    let failing = Switch::new(false);
    let upstream = Upstream::switched(&failing, || json(503, "{}"), || weather(3.0, "Snow")).await;
    let before = Harness { engine: budgeted(&upstream, 3), upstream };
    ask(&before, "u", 1.0, 1.0).await.unwrap();
    ask(&before, "u", 2.0, 1.0).await.unwrap();
    failing.set(true);
    assert!(matches!(ask(&before, "u", 3.0, 1.0).await, Err(RequestError::Status { status: 503, .. })));
    assert!(matches!(ask(&before, "u", 4.0, 1.0).await, Err(RequestError::BudgetExhausted { .. })));
    let mut saved = before.engine.save();
    assert_eq!(saved.providers[0].cooldowns.len(), 1);
    // An entry from three hours ago: past its stale window (2 h) when loaded.
    let mut old = saved.entries.pop().unwrap();
    old.fetched_at -= 3 * 3_600_000;
    saved.entries.push(old);

    let upstream = Upstream::start(|_| async { weather(1.0, "Clear") }).await;
    let after = Harness { engine: budgeted(&upstream, 3), upstream };
    assert_eq!(after.engine.restore(saved), Restored { entries: 1, dropped: 1 });
    assert!(matches!(ask(&after, "u", 5.0, 1.0).await, Err(RequestError::BudgetExhausted { .. })), "the day is spent");
    assert!(matches!(ask(&after, "u", 3.0, 1.0).await, Err(RequestError::BudgetExhausted { .. })));
    assert_eq!(after.upstream.hits(), 0);
    let cooling = after.engine.save().providers.remove(0).cooldowns;
    assert_eq!(cooling.len(), 1, "the area's cooldown came back");
    assert!(cooling[0].error.starts_with("ERR_UPSTREAM_STATUS 503"), "{}", cooling[0].error);
}

#[tokio::test]
async fn an_entrys_forecast_products_come_back_with_it() {
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let body = crate::testing::bodies::one_call(now_s / 3_600 * 3_600, 7.25);
    let upstream = Upstream::start(move |_| {
        let body = body.clone();
        async move { json(200, &body) }
    })
    .await;
    let before = harness_with(config(|_| {}), upstream, None).await;
    let fetched = ask(&before, "alice", 48.85, 2.35).await.unwrap();
    let products = fetched.entry.products.clone().expect("One Call's products");
    let saved = before.engine.save();

    let upstream = Upstream::start(|_| async { weather(1.0, "Clear") }).await;
    let after = harness_with(config(|_| {}), upstream, None).await;
    assert_eq!(after.engine.restore(saved), Restored { entries: 1, dropped: 0 });
    let answer = ask(&after, "bob", 48.85, 2.35).await.unwrap();
    assert_eq!(answer.source, Source::Cache);
    let restored = answer.entry.products.clone().expect("the products came back");
    assert_eq!(crate::tier::products::encode(&restored), crate::tier::products::encode(&products));
    assert_eq!(after.upstream.hits(), 0);
}

#[tokio::test]
async fn deadlines_from_a_clock_far_ahead_are_no_longer_than_a_running_service_sets_them() {
    let upstream = Upstream::start(|_| async { weather(1.0, "Clear") }).await;
    let h = Harness { engine: budgeted(&upstream, 3), upstream };
    let now = h.engine.now();
    let month = 30 * 86_400_000;
    let saved = EngineState {
        entries: Vec::new(),
        providers: vec![SavedProvider {
            name: "openweather".into(),
            rate_limited_until: now + month,
            budget_closed_until: now + month,
            budget: [0; 4],
            cooldowns: Vec::new(),
        }],
    };
    h.engine.restore(saved);
    let Err(RequestError::RateLimited { retry_after_ms, .. }) = ask(&h, "u", 1.0, 1.0).await else { panic!() };
    assert!(retry_after_ms <= 24 * 3_600_000, "held for {retry_after_ms} ms, a Retry-After is capped at 24 h");
    // A day on, the provider is asked again: neither the cooldown nor the closed budget held.
    h.engine.advance_time(86_400_000 + 1);
    assert_eq!(ask(&h, "u", 1.0, 1.0).await.unwrap().source, Source::Network);
    assert_eq!(h.upstream.hits(), 1);
}
