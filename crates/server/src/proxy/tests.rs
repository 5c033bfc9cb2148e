//! The proxy over real sockets, the engine behind it on a loopback OpenWeather and a manual
//! clock: what a drone sees (one upstream call for a crowd, the error shared, caching headers
//! that follow the clock), and what an operator sees (shutdown, the access log).
//! The CLI's flags, limits and timeouts are tested from Node in `__test__/serve.test.mjs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{AccessLogTarget, Proxy, ProxyConfig};
use weather_cache_core::engine::{ClockKind, Config, Engine, Level, Preset, Upstream as EngineUpstream};
use weather_cache_core::provider::{OpenWeather, OpenWeatherConfig};
use weather_cache_core::testing::upstream::{json, weather, Upstream};

const KEY: &str = "proxy-test-key-7c1d";

fn engine(upstream: &Upstream) -> Engine {
    let mut config = Config::preset(Preset::Resilient);
    config.clock = ClockKind::Manual;
    config.jitter_ratio = 0.0;
    config.log_level = Level::Silent;
    config.validate().unwrap();
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: Some(KEY.into()),
        base_url: upstream.url(),
        coordinate_decimals: config.coordinate_decimals,
        request_timeout: Duration::from_secs(5),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    let upstreams = vec![EngineUpstream::new(Arc::new(provider))];
    Engine::new(config, upstreams, None, tokio::runtime::Handle::current(), None)
}

fn start(engine: &Engine, adjust: impl FnOnce(&mut ProxyConfig)) -> Arc<Proxy> {
    let mut config = ProxyConfig::new("127.0.0.1", 0);
    config.threads = 2;
    adjust(&mut config);
    Proxy::start(engine.clone(), config, None, Box::new(())).unwrap()
}

/// An upstream that holds every answer until the gate opens, then answers `answer()`.
async fn gated(gate: &watch::Sender<bool>, answer: fn() -> weather_cache_core::testing::upstream::Answer) -> Upstream {
    let open = gate.subscribe();
    Upstream::start(move |_| {
        let mut open = open.clone();
        async move {
            let _ = open.wait_for(|&open| open).await;
            answer()
        }
    })
    .await
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One request on a connection of its own (`Connection: close`), read to the end.
async fn get(addr: SocketAddr, target: &str, extra_headers: &str) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{extra_headers}\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    parse(&raw)
}

fn parse(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    Response { status, headers, body: body.to_owned() }
}

fn max_age(response: &Response) -> u64 {
    let value = response.header("cache-control").unwrap();
    value.strip_prefix("max-age=").unwrap_or_else(|| panic!("{value}")).parse().unwrap()
}

async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn fifty_drones_in_one_area_make_one_call_and_all_get_its_error() {
    let (gate, _) = watch::channel(false);
    let upstream = gated(&gate, || json(503, r#"{"cod":503,"message":"busy"}"#)).await;
    let engine = engine(&upstream);
    let proxy = start(&engine, |_| {});
    let addr = proxy.local_addr();
    // Fifty drones within ~1 km of each other, all asking before the upstream answers.
    let drones: Vec<_> = (0..50)
        .map(|i| {
            let target = format!("/v1/weather?lat={}&lon={}&user=drone-{i}", 48.85 + i as f64 * 0.0002, 2.35 - i as f64 * 0.0002);
            tokio::spawn(async move { get(addr, &target, "").await })
        })
        .collect();
    until(|| engine.stats().requests == 50).await;
    gate.send_replace(true);
    for drone in drones {
        let response = drone.await.unwrap();
        assert_eq!(response.status, 503);
        assert!(response.body.contains(r#""code":"ERR_UPSTREAM_STATUS""#), "{}", response.body);
        assert!(!response.body.contains(KEY));
    }
    assert_eq!(upstream.hits(), 1);
    assert_eq!(engine.stats().coalesced, 49);
    proxy.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn cache_headers_follow_the_entry_and_the_clock() {
    let (gate, _) = watch::channel(true);
    let upstream = gated(&gate, || weather(21.5, "Clear")).await;
    let engine = engine(&upstream);
    let proxy = start(&engine, |_| {});
    let at = "/v1/weather?lat=48.85&lon=2.35&user=drone-1";

    let first = get(proxy.local_addr(), at, "").await;
    assert_eq!(first.status, 200);
    assert_eq!(max_age(&first), 600, "a new entry has its whole fresh TTL left");
    let etag = first.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");

    // Four minutes later, from another drone 1 km away: the same entry, less time left.
    engine.advance_time(240_000);
    let later = get(proxy.local_addr(), "/v1/weather?lat=48.859&lon=2.35&user=drone-2", "").await;
    assert_eq!((later.status, max_age(&later)), (200, 360));
    assert_eq!(later.header("etag"), Some(etag.as_str()));
    assert!(later.body.contains(r#""ageMs":240000"#), "{}", later.body);

    // The drone that has it asks whether it changed: it did not.
    let unchanged = get(proxy.local_addr(), at, &format!("if-none-match: {etag}\r\n")).await;
    assert_eq!((unchanged.status, unchanged.body.as_str()), (304, ""));
    assert_eq!((unchanged.header("etag"), max_age(&unchanged)), (Some(etag.as_str()), 360));
    // Another unit system is another representation.
    let imperial = get(proxy.local_addr(), &format!("{at}&units=imperial"), &format!("if-none-match: {etag}\r\n")).await;
    assert_eq!(imperial.status, 200);
    assert_ne!(imperial.header("etag"), Some(etag.as_str()));

    // Past the fresh TTL: served stale with nothing left to cache, refreshed behind it (held
    // back until both stale answers are in).
    gate.send_replace(false);
    engine.advance_time(400_000);
    let stale = get(proxy.local_addr(), at, &format!("if-none-match: {etag}\r\n")).await;
    assert_eq!((stale.status, max_age(&stale)), (304, 0));
    let stale = get(proxy.local_addr(), "/v1/weather?lat=48.85&lon=2.35&user=drone-3", "").await;
    assert!(stale.body.contains(r#""source":"stale-cache""#), "{}", stale.body);
    gate.send_replace(true);
    until(|| upstream.hits() == 2 && engine.stats().inflight == 0).await;
    let refreshed = get(proxy.local_addr(), at, &format!("if-none-match: {etag}\r\n")).await;
    assert_eq!((refreshed.status, max_age(&refreshed)), (200, 600));
    assert_ne!(refreshed.header("etag"), Some(etag.as_str()));
    assert!(refreshed.body.contains(r#""source":"cache""#), "{}", refreshed.body);
    proxy.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn close_cuts_idle_and_half_open_connections_and_lets_a_request_finish() {
    let (gate, _) = watch::channel(false);
    let upstream = gated(&gate, || weather(12.0, "Rain")).await;
    let engine = engine(&upstream);
    let proxy = start(&engine, |_| {});
    let addr = proxy.local_addr();

    let mut half_open = TcpStream::connect(addr).await.unwrap();
    half_open.write_all(b"GET /v1/weather?lat=1&lon=1 HTTP/1.1\r\nhost: dr").await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let n = idle.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let in_flight = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /v1/weather?lat=10&lon=10 HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap(); // to the end: the proxy closes it
        parse(&raw)
    });
    until(|| upstream.hits() == 1).await;

    let closing = tokio::spawn(proxy.close(Duration::from_secs(10)));
    // Idle and half-open connections have nothing in flight: closed at once.
    for stream in [&mut half_open, &mut idle] {
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "still open: {read:?}");
    }
    assert!(!closing.is_finished(), "a request is still in flight");
    // The accept loop stops on the same signal as the connections, on whichever of the proxy's
    // threads runs it next: waited for, not raced (under load a connect could still land first).
    let refused = tokio::time::timeout(Duration::from_secs(2), async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert!(refused.await.is_ok(), "still accepting 2 s after close()");
    gate.send_replace(true);
    let response = in_flight.await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    tokio::time::timeout(Duration::from_secs(2), closing).await.expect("close resolves").unwrap();
}

#[tokio::test]
async fn dropping_the_handle_leaves_the_proxy_serving() {
    let upstream = Upstream::start(|_| async { weather(5.0, "Snow") }).await;
    let engine = engine(&upstream);
    let addr = start(&engine, |_| {}).local_addr();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let response = get(addr, "/v1/weather?lat=60&lon=10", "").await;
    assert_eq!(response.status, 200);
    assert!(response.body.contains(r#""condition":"Snow""#), "{}", response.body);
}

#[tokio::test]
async fn the_access_log_says_what_happened_and_keeps_secrets_and_places_out() {
    let upstream = Upstream::start(|_| async { weather(18.0, "Clouds") }).await;
    let engine = engine(&upstream);
    let dir = std::env::temp_dir().join(format!("weather-cache-access-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    let proxy = start(&engine, |config| {
        config.tokens = super::Tokens::Single("secret-token-31".into());
        config.access_log = Some(AccessLogTarget::File(path.clone()));
    });
    let auth = "authorization: Bearer secret-token-31\r\n";
    let at = "/v1/weather?lat=51.5072&lon=-0.1276&user=pilot-77";
    assert_eq!(get(proxy.local_addr(), at, auth).await.status, 200);
    assert_eq!(get(proxy.local_addr(), at, auth).await.status, 200);
    assert_eq!(get(proxy.local_addr(), at, "authorization: Bearer wrong\r\n").await.status, 401);
    assert_eq!(get(proxy.local_addr(), "/nowhere", auth).await.status, 404);
    proxy.close(Duration::from_secs(1)).await;

    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<_> = lines.iter().map(|l| (l["path"].as_str().unwrap(), l["status"].as_u64().unwrap(), l["source"].as_str())).collect();
    assert_eq!(
        summary,
        [
            ("/v1/weather", 200, Some("network")),
            ("/v1/weather", 200, Some("cache")),
            ("/v1/weather", 401, None),
            ("(other)", 404, None),
        ]
    );
    // The exact coordinates, not a prefix: "51.5" can occur in a timestamp.
    for secret in ["secret-token-31", "wrong", KEY, "51.5072", "-0.1276", "pilot-77", "nowhere"] {
        assert!(!log.contains(secret), "{secret} in the access log:\n{log}");
    }
}

#[tokio::test]
async fn the_status_page_shows_entries_requests_and_providers_behind_the_token() {
    let upstream = Upstream::start(|_| async { weather(12.0, "Rain") }).await;
    let engine = engine(&upstream);
    let proxy = start(&engine, |c| c.tokens = super::Tokens::Single("s;cret tok".into()));
    let addr = proxy.local_addr();
    let auth = "authorization: Bearer s;cret tok\r\n";
    for (lat, lon) in [(48.85661, 2.35222), (48.857, 2.353), (40.7128, -74.006)] {
        assert_eq!(get(addr, &format!("/v1/weather?lat={lat}&lon={lon}"), auth).await.status, 200);
    }
    // Without the token: the page is a login form, the data a 401.
    let login = get(addr, "/", "").await;
    assert_eq!((login.status, login.header("content-type")), (401, Some("text/html; charset=utf-8")));
    assert!(login.body.contains(r#"action="/login""#));
    assert_eq!(get(addr, "/v1/status", "").await.status, 401);
    // With it, as a bearer header or as the cookie the login form gets.
    let cookie = format!("cookie: theme=dark; weather_cache_status={}\r\n", super::clients::cookie_value("s;cret tok"));
    let page = get(addr, "/", &cookie).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg id=\"map\""));
    for external in ["src=", "href=", "url(", "@import", "fetch('http", "fetch(\"http"] {
        assert!(!page.body.contains(external), "self-contained: {external}");
    }
    assert!(page.header("content-security-policy").is_some_and(|csp| csp.contains("default-src 'none'")));
    assert_eq!(get(addr, "/metrics", &cookie).await.status, 401, "the cookie opens the status page only");
    assert_eq!(get(addr, "/v1/weather?lat=1&lon=1", &cookie).await.status, 401, "and spends no budget");
    let status = get(addr, "/v1/status", auth).await;
    assert_eq!(status.status, 200);
    let json: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(json["requests"], 9, "every HTTP request so far");
    assert_eq!(json["engine"]["requests"], 3, "the weather requests");
    assert_eq!(json["entries"].as_array().unwrap().len(), 2, "two areas");
    assert_eq!(json["engine"]["userHits"], 1, "the same (anonymous) user, nearby");
    assert_eq!(json["providers"][0]["name"], "openweather");
    assert_eq!(json["providers"][0]["upstreamRequests"], 2);
    let recent: Vec<(f64, f64)> = json["recent"].as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect();
    assert_eq!(recent, [(48.857, 2.352), (48.857, 2.353), (40.713, -74.006)], "rounded to ~100 m");
    assert!(!status.body.contains(KEY));
    proxy.close(Duration::from_secs(1)).await;
}


#[tokio::test]
async fn per_client_limits_refill_with_the_service_clock() {
    let upstream = Upstream::start(|_| async { weather(9.0, "Clear") }).await;
    let engine = engine(&upstream);
    let proxy = start(&engine, |c| {
        c.tokens = super::Tokens::Single("fleet-token".into());
        c.limits = super::LimitConfig { requests_per_second: 3, upstream_per_minute: 2 };
    });
    let addr = proxy.local_addr();
    let auth = "authorization: Bearer fleet-token\r\n";
    // Two new areas: two upstream calls, the minute's allowance. A third new area is refused
    // before any call; a cached one is still answered.
    assert_eq!(get(addr, "/v1/weather?lat=10&lon=10", auth).await.status, 200);
    assert_eq!(get(addr, "/v1/weather?lat=-30&lon=60", auth).await.status, 200);
    let refused = get(addr, "/v1/weather?lat=50&lon=-100", auth).await;
    assert_eq!((refused.status, refused.header("retry-after")), (429, Some("30")));
    assert!(refused.body.contains("ERR_CLIENT_UPSTREAM_LIMITED"), "{}", refused.body);
    assert_eq!(upstream.hits(), 2);
    // Three requests in the same instant of the clock spent the second's allowance.
    let fast = get(addr, "/v1/weather?lat=10&lon=10", auth).await;
    assert_eq!((fast.status, fast.header("retry-after")), (429, Some("1")));
    assert!(fast.body.contains("ERR_CLIENT_RATE_LIMITED"), "{}", fast.body);
    // Half a minute later one call (and a second's requests) came back.
    engine.advance_time(30_000);
    assert_eq!(get(addr, "/v1/weather?lat=50&lon=-100", auth).await.status, 200);
    assert_eq!(get(addr, "/v1/weather?lat=-50&lon=100", auth).await.status, 429);
    assert_eq!(upstream.hits(), 3);
    let metrics = get(addr, "/metrics", auth).await;
    assert!(metrics.body.contains("weather_cache_proxy_client_limited_total{client=\"default\",limit=\"upstream\"} 2\n"), "{}", metrics.body);
    assert!(metrics.body.contains("weather_cache_proxy_client_limited_total{client=\"default\",limit=\"rate\"} 1\n"));
    assert!(metrics.body.contains("weather_cache_proxy_client_upstream_calls_total{client=\"default\"} 3\n"));
    proxy.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn readiness_follows_the_budget_and_draining() {
    let upstream = Upstream::start(|_| async { weather(9.0, "Clear") }).await;
    let mut config = Config::preset(Preset::Resilient);
    config.clock = ClockKind::Manual;
    config.jitter_ratio = 0.0;
    config.log_level = Level::Silent;
    config.validate().unwrap();
    let provider = OpenWeather::new(OpenWeatherConfig {
        api_key: Some(KEY.into()),
        base_url: upstream.url(),
        coordinate_decimals: config.coordinate_decimals,
        request_timeout: Duration::from_secs(5),
        max_response_bytes: 1 << 20,
    })
    .unwrap();
    let mut one = EngineUpstream::new(Arc::new(provider));
    one.budget = weather_cache_core::engine::BudgetConfig { per_minute: 1, per_day: 0, when_redis_down: weather_cache_core::engine::WhenRedisDown::Local };
    let engine = Engine::new(config, vec![one], None, tokio::runtime::Handle::current(), None);
    let proxy = start(&engine, |c| c.drain_delay = Duration::from_millis(300));
    let addr = proxy.local_addr();
    assert_eq!(get(addr, "/readyz", "").await.body, r#"{"ready":true}"#);
    assert_eq!(get(addr, "/v1/weather?lat=10&lon=10", "").await.status, 200);
    // The minute's one call is spent: a new area is refused, and so is readiness.
    assert_eq!(get(addr, "/v1/weather?lat=-30&lon=60", "").await.status, 503);
    let spent = get(addr, "/readyz", "").await;
    assert_eq!(spent.status, 503);
    assert!(spent.body.contains(r#""code":"ERR_BUDGET_EXHAUSTED""#), "{}", spent.body);
    assert!(spent.header("retry-after").is_some());
    engine.advance_time(60_000);
    assert_eq!(get(addr, "/readyz", "").await.status, 200, "a new minute");
    // Closing: not ready at once, still serving for the drain delay.
    let closing = tokio::spawn(proxy.close(Duration::from_secs(1)));
    let draining = get(addr, "/readyz", "").await;
    assert_eq!(draining.status, 503);
    assert!(draining.body.contains("ERR_DRAINING"), "{}", draining.body);
    assert_eq!(get(addr, "/v1/weather?lat=10&lon=10", "").await.status, 200);
    closing.await.unwrap();
}

#[tokio::test]
async fn a_requests_cache_control_asks_for_a_fresher_answer_under_the_min_interval() {
    let (gate, _) = watch::channel(true);
    let upstream = gated(&gate, || weather(21.5, "Clear")).await;
    let engine = engine(&upstream);
    let proxy = start(&engine, |_| {});
    let at = "/v1/weather?lat=48.85&lon=2.35&user=drone-1";
    assert_eq!(get(proxy.local_addr(), at, "").await.status, 200);
    // Two minutes old, younger than minRefreshIntervalMs (5 min): no client can force a call.
    engine.advance_time(120_000);
    for header in ["cache-control: max-age=60\r\n", "cache-control: no-cache\r\n"] {
        let floored = get(proxy.local_addr(), at, header).await;
        assert!(floored.body.contains(r#""ageMs":120000"#), "{}", floored.body);
    }
    assert_eq!(upstream.hits(), 1);
    // Six minutes old: a drone about to take off wants at most 2 minutes, and gets a new fetch.
    engine.advance_time(240_000);
    let plain = get(proxy.local_addr(), at, "").await;
    assert!(plain.body.contains(r#""source":"cache""#), "{}", plain.body);
    let fresher = get(proxy.local_addr(), at, "cache-control: max-age=120\r\n").await;
    assert!(fresher.body.contains(r#""source":"network""#) && fresher.body.contains(r#""ageMs":0"#), "{}", fresher.body);
    assert_eq!(upstream.hits(), 2);
    // Six minutes later again: `no-cache` is a forced refresh under the same floor.
    engine.advance_time(360_000);
    let forced = get(proxy.local_addr(), "/v1/weather?lat=48.851&lon=2.35&user=drone-2", "cache-control: no-cache\r\n").await;
    assert!(forced.body.contains(r#""source":"network""#), "{}", forced.body);
    assert_eq!(upstream.hits(), 3);
    proxy.close(Duration::from_secs(1)).await;
}
