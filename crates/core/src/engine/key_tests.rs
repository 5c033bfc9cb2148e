//! The API key's two failures (issue 25 #2, #3): a provider with no key is skipped, with one
//! warning per streak; a provider that refuses the key (401/403) is left alone for
//! `KEY_REJECTED_COOLDOWN_MS`, with one error event per call it refused. Loopback upstreams,
//! manual clock.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{config, harness_with, KEY};
use super::*;
use crate::geo::LatLon;
use crate::provider::{OpenMeteo, OpenWeather, OpenWeatherConfig, Provider};
use crate::testing::upstream::{json, Upstream};

const TIMEOUT: Duration = Duration::from_millis(500);
/// OpenWeather's answer to a wrong key.
const INVALID_KEY: &str =
    r#"{"cod":401,"message":"Invalid API key. Please see https://openweathermap.org/faq#error401 for more info."}"#;

fn http_config(key: Option<&str>, upstream: &Upstream) -> OpenWeatherConfig {
    OpenWeatherConfig {
        api_key: key.map(str::to_owned),
        base_url: upstream.url(),
        coordinate_decimals: 2,
        request_timeout: TIMEOUT,
        max_response_bytes: 1 << 20,
    }
}

fn openweather(key: Option<&str>, upstream: &Upstream) -> super::Upstream {
    super::Upstream::new(Arc::new(OpenWeather::new(http_config(key, upstream)).unwrap()) as Arc<dyn Provider>)
}

fn open_meteo(key: Option<&str>, upstream: &Upstream) -> super::Upstream {
    super::Upstream::new(Arc::new(OpenMeteo::new(http_config(key, upstream)).unwrap()) as Arc<dyn Provider>)
}

fn meteo() -> crate::testing::upstream::Answer {
    json(200, r#"{"current":{"time":"2026-11-22T10:00","temperature_2m":7.4,"weather_code":61}}"#)
}

/// A request, its result and every event it (and its flight) emitted at `level` and above.
async fn ask(
    engine: &Engine,
    user: &str,
    lat: f64,
    lon: f64,
    level: Level,
) -> (Result<Served, RequestError>, Vec<Event>) {
    let mut recorder = Recorder::new(level);
    let request = Request { user, at: LatLon::new(lat, lon), mode: Mode::Normal };
    match engine.begin(request, &mut recorder) {
        Begin::Ready(result) => (result, recorder.events),
        Begin::Pending(pending) => {
            let mut reply = pending.wait(true).await;
            recorder.events.append(&mut reply.events);
            (reply.result, recorder.events)
        }
    }
}

/// Every text an event carries, and its name.
fn texts(event: &Event) -> String {
    let mut text = event.name().to_owned();
    for (name, field) in event.fields() {
        if let Field::Text(value) = field {
            text.push_str(&format!(" {name}={value}"));
        }
    }
    text
}

#[tokio::test]
async fn a_rejected_key_is_tried_once_per_cooldown_and_never_shown() {
    let upstream = Upstream::start(|_| async { json(401, INVALID_KEY) }).await;
    let h = harness_with(config(|c| c.log_level = Level::Warn), upstream, None).await;
    let mut all = Vec::new();
    let mut errors = Vec::new();
    // Areas far apart (no area cooldown covers another), over almost the whole window.
    for i in 0..30 {
        let (result, events) = ask(&h.engine, &format!("u{i}"), 10.0 + f64::from(i), 20.0, Level::Warn).await;
        errors.push(result.expect_err("no weather with a rejected key"));
        all.extend(events);
        h.advance(19_000);
    }
    assert_eq!(h.upstream.hits(), 1, "one call for the whole cooldown");
    for error in &errors {
        assert_eq!(error.code(), "ERR_UPSTREAM_AUTH");
        assert_eq!(error.provider(), Some("openweather"));
        assert!(error.message().contains("rejected the API key"), "{}", error.message());
        assert!(!error.message().contains(KEY), "{}", error.message());
    }
    assert_eq!(errors[0].retry_after_ms(), Some(KEY_REJECTED_COOLDOWN_MS));
    assert_eq!(errors[1].retry_after_ms(), Some(KEY_REJECTED_COOLDOWN_MS - 19_000));
    let rejected: Vec<&Event> = all.iter().filter(|e| e.name() == "weather.error.auth").collect();
    assert_eq!(rejected.len(), 1, "{all:?}");
    assert_eq!(rejected[0].level(), Level::Error);
    assert!(texts(rejected[0]).contains("openweather rejected the API key (HTTP 401)"), "{}", texts(rejected[0]));
    assert!(all.iter().all(|e| e.name() != "weather.error.network"), "not a network error: {all:?}");
    assert!(all.iter().all(|e| !texts(e).contains(KEY)), "{all:?}");
    let stats = h.engine.stats();
    assert_eq!(stats.providers[0].upstream_errors, 1);
    assert_eq!(stats.providers[0].upstream_requests, 1);

    // The window over (30 × 19 s = 570 s so far), the key is tried again: still refused.
    h.advance(KEY_REJECTED_COOLDOWN_MS as u64 - 570_000);
    let (result, events) = ask(&h.engine, "again", 60.0, 20.0, Level::Warn).await;
    assert_eq!(result.unwrap_err().code(), "ERR_UPSTREAM_AUTH");
    assert_eq!(h.upstream.hits(), 2);
    assert_eq!(events.iter().filter(|e| e.name() == "weather.error.auth").count(), 1);
    // `/readyz` sees it too.
    let refusals = h.engine.provider_refusals();
    assert!(matches!(refusals[0], Some(RequestError::KeyRejected { status: 401, .. })), "{refusals:?}");
}

#[tokio::test]
async fn a_key_refused_in_a_200_body_or_with_403_is_rejected_too() {
    // OpenWeather has sent its errors with status 200 and the code in the body.
    let body = Upstream::start(|_| async { json(200, INVALID_KEY) }).await;
    let h = harness_with(config(|_| {}), body, None).await;
    let (result, _) = ask(&h.engine, "u", 10.0, 20.0, Level::Warn).await;
    assert!(matches!(result, Err(RequestError::KeyRejected { status: 401, .. })), "{result:?}");

    let forbidden = Upstream::start(|_| async { json(403, r#"{"error":true,"reason":"API key invalid"}"#) }).await;
    let engine = Engine::new(
        config(|_| {}),
        vec![open_meteo(Some(KEY), &forbidden)],
        None,
        tokio::runtime::Handle::current(),
        None,
    );
    let (result, _) = ask(&engine, "u", 10.0, 20.0, Level::Warn).await;
    assert!(matches!(result, Err(RequestError::KeyRejected { status: 403, .. })), "{result:?}");
    let (result, _) = ask(&engine, "v", 30.0, 20.0, Level::Warn).await;
    assert_eq!(result.unwrap_err().code(), "ERR_UPSTREAM_AUTH");
    assert_eq!(forbidden.hits(), 1);

    // Without a key, a 403 says nothing about a key: an ordinary upstream error.
    let keyless = Upstream::start(|_| async { json(403, r#"{"error":true,"reason":"Forbidden"}"#) }).await;
    let engine =
        Engine::new(config(|_| {}), vec![open_meteo(None, &keyless)], None, tokio::runtime::Handle::current(), None);
    let (result, _) = ask(&engine, "u", 10.0, 20.0, Level::Warn).await;
    assert!(matches!(result, Err(RequestError::Status { status: 403, .. })), "{result:?}");
}

#[tokio::test]
async fn with_failover_a_rejected_key_moves_the_flight_to_the_next_provider() {
    let ow = Upstream::start(|_| async { json(401, INVALID_KEY) }).await;
    let om = Upstream::start(|_| async { meteo() }).await;
    let engine = Engine::new(
        config(|_| {}),
        vec![openweather(Some(KEY), &ow), open_meteo(None, &om)],
        None,
        tokio::runtime::Handle::current(),
        None,
    );
    let (first, events) = ask(&engine, "u0", 10.0, 20.0, Level::Warn).await;
    assert_eq!(first.unwrap().entry.provider, "open-meteo");
    assert_eq!(events.iter().filter(|e| e.name() == "weather.error.auth").count(), 1, "{events:?}");
    for i in 1..10 {
        let (result, _) = ask(&engine, &format!("u{i}"), 10.0 + f64::from(i), 20.0, Level::Warn).await;
        assert_eq!(result.unwrap().entry.provider, "open-meteo");
    }
    assert_eq!(ow.hits(), 1, "OpenWeather is not asked again during the cooldown");
    assert_eq!(om.hits(), 10);
}

#[tokio::test]
async fn a_missing_key_is_reported_once_per_streak() {
    let upstream = Upstream::start(|_| async { json(200, "{}") }).await;
    let engine =
        Engine::new(config(|_| {}), vec![openweather(None, &upstream)], None, tokio::runtime::Handle::current(), None);
    let mut skipped = Vec::new();
    for i in 0..20 {
        let (result, events) = ask(&engine, &format!("u{i}"), 10.0 + f64::from(i), 20.0, Level::Warn).await;
        assert_eq!(result.unwrap_err().code(), "ERR_NO_API_KEY");
        skipped.extend(events.into_iter().filter(|e| e.name() == "weather.request.skipped.noApiKey"));
    }
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].level(), Level::Warn);
    assert!(texts(&skipped[0]).contains("OPEN_WEATHER_API_KEY"), "{}", texts(&skipped[0]));
    assert_eq!(upstream.hits(), 0);

    // With failover, a provider skipped for want of a key is reported once too, while the
    // next one answers.
    let om = Upstream::start(|_| async { meteo() }).await;
    let engine = Engine::new(
        config(|_| {}),
        vec![openweather(None, &upstream), open_meteo(None, &om)],
        None,
        tokio::runtime::Handle::current(),
        None,
    );
    let mut skipped = 0;
    for i in 0..10 {
        let (result, events) = ask(&engine, &format!("u{i}"), 10.0 + f64::from(i), 20.0, Level::Warn).await;
        assert_eq!(result.unwrap().entry.provider, "open-meteo");
        skipped += events.iter().filter(|e| e.name() == "weather.request.skipped.noApiKey").count();
    }
    assert_eq!(skipped, 1);
    // Below warn, nothing is built.
    let quiet = Engine::new(
        config(|c| c.log_level = Level::Error),
        vec![openweather(None, &upstream)],
        None,
        tokio::runtime::Handle::current(),
        None,
    );
    let (_, events) = ask(&quiet, "u", 10.0, 20.0, Level::Error).await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn a_new_late_key_lifts_the_refusal_of_the_old_one_at_once() {
    use crate::provider::LateKey;
    // The upstream knows one good key; the operator first sets a wrong one.
    let upstream = Upstream::start(|q| async move {
        if q.appid == "g00d-k3y" {
            json(200, r#"{"current":{"temp":7.5,"weather":[{"main":"Rain"}]}}"#)
        } else {
            json(401, INVALID_KEY)
        }
    })
    .await;
    let late = LateKey::new();
    let provider = OpenWeather::new(http_config(None, &upstream)).unwrap().with_late_key(late.clone());
    let engine = Engine::new(
        config(|_| {}),
        vec![super::Upstream::new(Arc::new(provider) as Arc<dyn Provider>)],
        None,
        tokio::runtime::Handle::current(),
        None,
    );
    assert!(late.set("wr0ng-k3y".into()));
    let (result, events) = ask(&engine, "u", 10.0, 20.0, Level::Warn).await;
    assert_eq!(result.unwrap_err().code(), "ERR_UPSTREAM_AUTH");
    assert!(late.is_rejected(), "the binding looks for a new key");
    assert!(events.iter().all(|e| !texts(e).contains("wr0ng-k3y")), "{events:?}");
    let (result, _) = ask(&engine, "v", 30.0, 20.0, Level::Warn).await;
    assert_eq!(result.unwrap_err().code(), "ERR_UPSTREAM_AUTH", "the same key: the cooldown holds");
    assert_eq!(upstream.hits(), 1);

    // The fixed key is used at the next request, not in ten minutes.
    assert!(late.set("g00d-k3y".into()));
    assert!(engine.provider_refusals()[0].is_none(), "/readyz is ready again");
    let (result, _) = ask(&engine, "w", 50.0, 20.0, Level::Warn).await;
    assert_eq!(result.expect("weather with the new key").entry.provider, "openweather");
    assert_eq!(upstream.hits(), 2);
    assert_eq!(upstream.queries()[1].appid, "g00d-k3y");
    assert!(!late.is_rejected());
}
