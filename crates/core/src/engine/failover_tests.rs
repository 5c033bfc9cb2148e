//! Several providers (issue 14): failover within one flight, per-provider cooldowns and budgets,
//! MET Norway's Expires and conditional requests. Every provider is a loopback server.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{assert_identity, config, KEY};
use super::*;
use crate::geo::LatLon;
use crate::provider::{MetNorway, MetNorwayConfig, OpenMeteo, OpenMeteoConfig, OpenWeather, OpenWeatherConfig, Provider};
use crate::testing::upstream::{json, Answer, Upstream};

const TIMEOUT: Duration = Duration::from_millis(500);

fn openweather(upstream: &Upstream) -> Arc<dyn Provider> {
    Arc::new(
        OpenWeather::new(OpenWeatherConfig {
            api_key: Some(KEY.into()),
            base_url: upstream.url(),
            coordinate_decimals: 2,
            request_timeout: TIMEOUT,
            max_response_bytes: 1 << 20,
        })
        .unwrap(),
    )
}

fn open_meteo(upstream: &Upstream) -> Arc<dyn Provider> {
    Arc::new(
        OpenMeteo::new(OpenMeteoConfig {
            api_key: None,
            base_url: upstream.url(),
            coordinate_decimals: 2,
            request_timeout: TIMEOUT,
            max_response_bytes: 1 << 20,
        })
        .unwrap(),
    )
}

const AGENT: &str = "weather-cache-tests/1 ops@example.test";

fn met_norway(upstream: &Upstream) -> Arc<dyn Provider> {
    Arc::new(
        MetNorway::new(MetNorwayConfig {
            user_agent: AGENT.into(),
            base_url: upstream.url(),
            coordinate_decimals: 2,
            request_timeout: TIMEOUT,
            max_response_bytes: 1 << 20,
        })
        .unwrap(),
    )
}

fn meteo(celsius: f64, code: u32) -> Answer {
    json(200, &format!(r#"{{"current":{{"time":"2026-11-22T10:00","temperature_2m":{celsius},"weather_code":{code}}}}}"#))
}

fn engine(adjust: impl FnOnce(&mut Config), upstreams: Vec<super::Upstream>) -> Engine {
    Engine::new(config(adjust), upstreams, None, tokio::runtime::Handle::current(), None)
}

async fn get(engine: &Engine, user: &str, lat: f64, lon: f64, mode: Mode) -> Result<Served, RequestError> {
    let request = Request { user, at: LatLon::new(lat, lon), mode };
    match engine.begin(request, &mut Recorder::new(Level::Silent)) {
        Begin::Ready(result) => result,
        Begin::Pending(pending) => pending.wait(true).await.result,
    }
}

#[tokio::test]
async fn a_rate_limited_flight_fails_over_and_every_waiter_gets_the_answer() {
    let ow = Upstream::start(|_| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        json(429, r#"{"cod":429}"#)
    })
    .await;
    let om = Upstream::start(|_| async { meteo(7.4, 61) }).await;
    let engine = engine(|_| {}, vec![super::Upstream::new(openweather(&ow)), super::Upstream::new(open_meteo(&om))]);
    let waiting: Vec<_> = (0..100)
        .map(|i| {
            let request = Request { user: "drone", at: LatLon::new(48.85 + i as f64 * 1e-4, 2.35), mode: Mode::Normal };
            engine.begin(request, &mut Recorder::new(Level::Silent))
        })
        .collect();
    for begun in waiting {
        let Begin::Pending(pending) = begun else { panic!("nothing is cached") };
        let served = pending.wait(true).await.result.unwrap();
        assert_eq!((served.entry.provider, served.entry.summary.condition.as_str()), ("open-meteo", "Rain"));
    }
    assert_eq!((ow.hits(), om.hits()), (1, 1), "one call each, for 100 waiters");
    let stats = engine.stats();
    assert_eq!((stats.misses, stats.coalesced, stats.fetches), (1, 99, 1));
    assert_eq!(stats.providers.iter().map(|p| (p.name, p.upstream_requests, p.rate_limited)).collect::<Vec<_>>(), [
        ("openweather", 1, 1),
        ("open-meteo", 1, 0)
    ]);
    assert_identity(&stats);
    // OpenWeather cools down: the next area goes straight to Open-Meteo.
    get(&engine, "drone", 10.0, 10.0, Mode::Normal).await.unwrap();
    assert_eq!((ow.hits(), om.hits()), (1, 2));
    let lat = om.queries()[1].lat;
    assert_eq!(lat, 10.0);
}

#[tokio::test]
async fn when_every_provider_fails_the_most_telling_error_wins() {
    let ow = Upstream::start(|_| async { json(503, "{}") }).await;
    let om = Upstream::start(|_| async { json(400, r#"{"error":true,"reason":"Cannot initialize WeatherVariable"}"#) })
        .await;
    let engine = engine(|_| {}, vec![super::Upstream::new(openweather(&ow)), super::Upstream::new(open_meteo(&om))]);
    let error = get(&engine, "u", 1.0, 1.0, Mode::Normal).await.unwrap_err();
    assert_eq!(error.code(), "ERR_UPSTREAM_STATUS");
    assert_eq!((ow.hits(), om.hits()), (1, 1));

    // A rate limit is more telling than a network error.
    let limited = Upstream::start(|_| async { json(429, "{}") }).await;
    let engine = engine_with_closed_second(&limited);
    let error = get(&engine, "u", 1.0, 1.0, Mode::Normal).await.unwrap_err();
    assert_eq!(error.code(), "ERR_RATE_LIMITED");
}

/// OpenWeather at `limited`, then Open-Meteo on a port nothing listens on.
fn engine_with_closed_second(limited: &Upstream) -> Engine {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let om = OpenMeteo::new(OpenMeteoConfig {
        api_key: None,
        base_url: url,
        coordinate_decimals: 2,
        request_timeout: TIMEOUT,
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    engine(|_| {}, vec![super::Upstream::new(openweather(limited)), super::Upstream::new(Arc::new(om))])
}

#[tokio::test]
async fn cooldowns_and_budgets_are_per_provider() {
    let ow = Upstream::start(|_| async { json(503, "{}") }).await;
    let om = Upstream::start(|_| async { meteo(3.0, 0) }).await;
    let mut budgeted = super::Upstream::new(open_meteo(&om));
    budgeted.budget = BudgetConfig { per_minute: 1, ..BudgetConfig::UNLIMITED };
    let engine = engine(|c| (c.fresh_ttl_ms, c.refresh_ahead_ms) = (1_000, 0), vec![super::Upstream::new(openweather(&ow)), budgeted]);
    // Budget minutes are clock minutes: start at the beginning of one, so that the steps below
    // stay inside it (the clock starts wherever the system clock is).
    engine.advance_time((60_000 - engine.now().rem_euclid(60_000)) as u64);
    // OpenWeather fails the area: it cools down for OpenWeather only; Open-Meteo answers.
    assert_eq!(get(&engine, "u", 1.0, 1.0, Mode::Normal).await.unwrap().entry.provider, "open-meteo");
    // The entry goes stale; within OpenWeather's area cooldown and past Open-Meteo's budget of
    // one call a minute, nobody may be asked: the stale entry, and no refresh.
    engine.advance_time(1_000);
    assert_eq!(get(&engine, "u", 1.0, 1.0, Mode::Normal).await.unwrap().source, Source::StaleCache);
    assert_eq!((ow.hits(), om.hits()), (1, 1));
    // Elsewhere OpenWeather is not cooling down: it is asked (and fails), Open-Meteo is out of
    // budget: the most telling error of the two.
    let error = get(&engine, "u", 30.0, 30.0, Mode::Normal).await.unwrap_err();
    assert_eq!(error.code(), "ERR_BUDGET_EXHAUSTED");
    assert_eq!((ow.hits(), om.hits()), (2, 1));
    // A minute later Open-Meteo has budget again.
    engine.advance_time(60_000);
    assert_eq!(get(&engine, "u", 30.0, 30.0, Mode::Normal).await.unwrap().entry.provider, "open-meteo");
    assert_eq!(om.hits(), 2);
}

const LAST_MODIFIED: &str = "Sun, 22 Nov 2026 09:55:12 GMT";

fn compact(celsius: f64, symbol: &str, expires_in_s: u64) -> Answer {
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000));
    let expires = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + expires_in_s));
    let body = format!(
        r#"{{"properties":{{"timeseries":[{{"time":"2026-11-22T10:00:00Z","data":{{"instant":{{"details":{{"air_temperature":{celsius}}}}},"next_1_hours":{{"summary":{{"symbol_code":"{symbol}"}}}}}}}}]}}}}"#
    );
    Answer::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Date".into(), date),
            ("Expires".into(), expires),
            ("Last-Modified".into(), LAST_MODIFIED.into()),
        ],
        body: body.into_bytes(),
    }
}

fn not_modified(expires_in_s: u64) -> Answer {
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000));
    let expires = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + expires_in_s));
    Answer::Respond { status: 304, headers: vec![("Date".into(), date), ("Expires".into(), expires)], body: Vec::new() }
}

#[tokio::test]
async fn met_norway_is_not_asked_before_expires_and_revalidates_with_if_modified_since() {
    // Expires 30 min after Date, fresh TTL 10 min: the entry is fresh for 30 minutes.
    let met = Upstream::start(|q| async move {
        if q.header("If-Modified-Since").is_some() {
            not_modified(1_800)
        } else {
            compact(-3.2, "lightsnow_day", 1_800)
        }
    })
    .await;
    let engine = engine(|c| c.min_refresh_interval_ms = 0, vec![super::Upstream::new(met_norway(&met))]);
    let first = get(&engine, "u", 59.9127, 10.7461, Mode::Normal).await.unwrap();
    assert_eq!((first.entry.provider, first.entry.summary.condition.as_str(), first.entry.celsius), ("met-norway", "Snow", -3.2));
    let q = &met.queries()[0];
    assert_eq!(q.header("User-Agent"), Some(AGENT));
    assert!(q.target.contains("lat=59.91&lon=10.75"), "{}", q.target);
    assert_eq!(q.header("If-Modified-Since"), None);
    // 20 minutes on (past the 10 min TTL, before Expires): fresh still, and a forced refresh is
    // answered from the entry.
    engine.advance_time(20 * 60_000);
    assert_eq!(get(&engine, "u", 59.9127, 10.7461, Mode::Normal).await.unwrap().source, Source::Cache);
    let forced = get(&engine, "u", 59.9127, 10.7461, Mode::ForceRefresh).await.unwrap();
    assert_eq!(forced.source, Source::Cache);
    assert_eq!(met.hits(), 1, "not asked again before Expires");
    // Past Expires, a forced refresh asks, conditionally: the 304 renews the entry for another
    // 30 minutes.
    engine.advance_time(11 * 60_000);
    let renewed = get(&engine, "u", 59.9127, 10.7461, Mode::ForceRefresh).await.unwrap();
    assert_eq!((renewed.source, renewed.entry.celsius, renewed.entry.summary.condition.as_str()), (Source::Network, -3.2, "Snow"));
    assert_eq!(met.hits(), 2);
    assert_eq!(met.queries()[1].header("If-Modified-Since"), Some(LAST_MODIFIED));
    engine.advance_time(29 * 60_000);
    assert_eq!(get(&engine, "v", 59.9127, 10.7461, Mode::ForceRefresh).await.unwrap().source, Source::Cache);
    assert_eq!(met.hits(), 2);
}

#[tokio::test]
async fn met_norway_deprecation_is_a_warning_and_the_answer_is_used() {
    let met = Upstream::start(|_| async {
        match compact(12.0, "cloudy", 600) {
            Answer::Respond { headers, body, .. } => Answer::Respond { status: 203, headers, body },
            other => other,
        }
    })
    .await;
    let engine = engine(|_| {}, vec![super::Upstream::new(met_norway(&met))]);
    let request = Request { user: "u", at: LatLon::new(60.0, 11.0), mode: Mode::Normal };
    let Begin::Pending(pending) = engine.begin(request, &mut Recorder::new(Level::Trace)) else { panic!("a fetch") };
    let reply = pending.wait(true).await;
    assert_eq!(reply.result.unwrap().entry.summary.condition.as_str(), "Clouds");
    assert!(
        reply.events.iter().any(|e| matches!(e, Event::ProviderWarning { provider: "met-norway", .. })),
        "{:?}",
        reply.events
    );
}

#[tokio::test]
async fn open_meteo_is_asked_in_its_own_terms() {
    let om = Upstream::start(|_| async { meteo(21.3, 2) }).await;
    let engine = engine(|_| {}, vec![super::Upstream::new(open_meteo(&om))]);
    let served = get(&engine, "u", 48.8566, 2.3522, Mode::Normal).await.unwrap();
    assert_eq!((served.entry.summary.condition.as_str(), served.entry.summary.temp_c), ("Clouds", 21.0));
    let target = &om.queries()[0].target;
    assert!(target.starts_with("/v1/forecast?latitude=48.86&longitude=2.35&current=temperature_2m%2Cweather_code"), "{target}");
    assert!(!target.contains("apikey"), "keyless");
}

fn nws(upstream: &Upstream) -> Arc<dyn Provider> {
    Arc::new(
        crate::provider::Nws::new(crate::provider::NwsConfig {
            user_agent: AGENT.into(),
            base_url: upstream.url(),
            request_timeout: TIMEOUT,
            max_response_bytes: 1 << 20,
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn nws_outside_its_coverage_hands_over_without_a_cooldown() {
    let outside = crate::testing::nws::NwsFake::start(1_795_341_600, 404, "").await;
    let om = Upstream::start(|_| async { meteo(12.0, 3) }).await;
    let engine = engine(
        |c| c.min_refresh_interval_ms = 0,
        vec![super::Upstream::new(nws(&outside.upstream)), super::Upstream::new(open_meteo(&om))],
    );
    let served = get(&engine, "u", 48.8566, 2.3522, Mode::Normal).await.unwrap();
    assert_eq!(served.entry.provider, "open-meteo");
    // No cooldown: a refresh of the same area asks NWS again first, and nothing counts as an error.
    engine.advance_time(60_000);
    let again = get(&engine, "u", 48.8566, 2.3522, Mode::ForceRefresh).await.unwrap();
    assert_eq!((again.entry.provider, outside.upstream.hits(), om.hits()), ("open-meteo", 2, 2));
    let stats = engine.stats();
    assert_eq!((stats.upstream_errors, stats.providers[0].upstream_errors), (0, 0));
}

#[tokio::test]
async fn an_nws_flight_counts_each_of_its_requests_against_the_budget() {
    let fake = crate::testing::nws::NwsFake::start(1_795_341_600, 200, "max-age=3600").await;
    let mut budgeted = super::Upstream::new(nws(&fake.upstream));
    budgeted.budget = BudgetConfig { per_minute: 7, ..BudgetConfig::UNLIMITED };
    let engine = engine(|_| {}, vec![budgeted]);
    let served = get(&engine, "u", 39.9526, -75.1652, Mode::Normal).await.unwrap();
    assert_eq!((served.entry.provider, fake.upstream.hits()), ("nws", 5));
    assert_eq!(engine.stats().providers[0].upstream_requests, 5, "five requests, five calls");
    // Five of seven spent: the next flight (another place: five requests again) is admitted
    // and overspends the minute (the calls were made); the one after is refused without a call.
    assert!(get(&engine, "u", 40.3, -75.1652, Mode::Normal).await.is_ok());
    assert_eq!((fake.upstream.hits(), engine.stats().providers[0].upstream_requests), (10, 10));
    let refused = get(&engine, "u", 40.7, -75.1652, Mode::Normal).await.unwrap_err();
    assert!(matches!(refused, RequestError::BudgetExhausted { provider: "nws", .. }), "{refused:?}");
    assert_eq!(fake.upstream.hits(), 10);
}
