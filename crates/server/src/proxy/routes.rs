//! What the proxy answers. A cache hit is answered from the entry on this thread: no JS, no
//! allocation beyond the response itself.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /v1/weather?lat&lon[&user][&units][&include]` | the weather (and the forecast products asked for), `Cache-Control: max-age` = freshness left, a weak `ETag` per entry, units and products, `304` for a matching `If-None-Match`; a request's `Cache-Control: max-age` / `no-cache` asks for a fresher answer (`cache_control.rs`) |
//! | `GET /metrics` | Prometheus text (behind the token unless public) |
//! | `GET /healthz` | `ok`: the process serves (always open) |
//! | `GET /readyz` | `{ ready }`: 503 while draining or when no provider may be asked (always open) |
//! | `GET /` | the status page (`status.rs`), behind the token (or its cookie) |
//! | `GET /v1/status[?entry=lat,lon]` | what the status page draws, as JSON, likewise (with the next hours of the entry nearest `entry`) |
//! | `POST /login` | the status page's form: sets its cookie (see `auth.rs`) |
//!
//! Checks, in order: the request target's and head's size (414, 431), `Host` (400 without one
//! or with two, 421 for a name not served; see `host.rs`), the route (404), a browser sent by
//! another site (403, `site.rs`), the method (405), the client's request rate (429), its token
//! (401), then the route itself. Errors are
//! `{ "error": { "code", "message" } }`.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use serde_json::json;

use super::clients::Client;
use super::host::{self, HostError};
use super::limits::{ClientKey, Exceeded, IpKey};
use super::query::{self, Units, MAX_QUERY_BYTES};
use super::{auth, cache_control, products, site, status, validators, Shared};
use weather_cache_core::cache::{Freshness, Wanted};
use weather_cache_core::engine::{Begin, Mode, Recorder, RequestError, Served};
use weather_cache_core::geo::LatLon;

pub type Body = Full<Bytes>;

/// Most header lines in a request head (431 beyond).
pub const MAX_HEADERS: usize = 50;
/// Largest request head, request line included, in bytes (431 beyond).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest request target (path and query), in bytes (414 beyond).
pub const MAX_TARGET_BYTES: usize = 4 * 1024;
/// Largest login form body.
const MAX_LOGIN_BODY: usize = 4 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Weather,
    Metrics,
    Healthz,
    Readyz,
    Page,
    Status,
    Login,
    Other,
}

impl Route {
    pub fn of(path: &str) -> Route {
        match path {
            "/v1/weather" => Route::Weather,
            "/metrics" => Route::Metrics,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/" => Route::Page,
            "/v1/status" => Route::Status,
            "/login" => Route::Login,
            _ => Route::Other,
        }
    }

    /// The path as the access log shows it (any unknown path is `(other)`: paths can hold
    /// anything).
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Weather => "/v1/weather",
            Route::Metrics => "/metrics",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Page => "/",
            Route::Status => "/v1/status",
            Route::Login => "/login",
            Route::Other => "(other)",
        }
    }

    /// Probes: open to anyone, under any `Host` name, never rate limited.
    fn is_probe(self) -> bool {
        matches!(self, Route::Healthz | Route::Readyz)
    }
}

/// What the connection knows of a request.
#[derive(Clone, Copy)]
pub struct Context {
    pub peer: IpAddr,
    pub tls: bool,
    pub protocol: &'static str,
}

/// Who asks: the route, the client's address (see `forwarded.rs`) and, with tokens, the client
/// its token (or, on the status routes, its cookie) names. Known before the request runs, so
/// that a timeout is logged against them too.
pub struct Who {
    pub route: Route,
    pub address: IpAddr,
    pub client: Option<Arc<Client>>,
}

/// A response and what the access log says about it.
pub struct Answer {
    pub response: Response<Body>,
    pub source: Option<&'static str>,
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Answer {
        Answer { response, source: None }
    }
}

pub fn identify<B>(shared: &Shared, request: &Request<B>, context: &Context) -> Who {
    let route = Route::of(request.uri().path());
    let address = shared.trusted.client(context.peer, request.headers());
    let client = if shared.clients.required() && !route.is_probe() {
        auth::bearer(request.headers(), &shared.clients).or_else(|| {
            matches!(route, Route::Page | Route::Status)
                .then(|| auth::status_cookie(request.headers(), &shared.clients, context.tls))
                .flatten()
        })
    } else {
        None
    };
    Who { route, address, client }
}

/// The answer when a request ran past the request timeout: only a weather request waits on
/// anything slow (the upstream: 504); a login form whose body never came is the client's (408).
pub fn timed_out(route: Route, head: bool) -> Answer {
    let mut response = match route {
        Route::Weather => error(StatusCode::GATEWAY_TIMEOUT, "ERR_UPSTREAM_TIMEOUT", "no answer from upstream within the request timeout", head),
        Route::Login => error(StatusCode::REQUEST_TIMEOUT, "ERR_REQUEST_TIMEOUT", "the request took too long to arrive", head),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "ERR_REQUEST_TIMEOUT", "the request took too long", head),
    };
    // The fetch goes on and lands in the cache: asking again soon is likely to be answered.
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response.into()
}

pub async fn route(shared: &Arc<Shared>, request: Request<hyper::body::Incoming>, who: &Who, context: &Context) -> Answer {
    let uri = request.uri();
    let head = request.method() == Method::HEAD;
    let route = who.route;
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET_BYTES {
        let message = format!("request targets are limited to {MAX_TARGET_BYTES} bytes");
        return error(StatusCode::URI_TOO_LONG, "ERR_URI_TOO_LONG", &message, head).into();
    }
    if uri.query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        let message = format!("query strings are limited to {MAX_QUERY_BYTES} bytes");
        return error(StatusCode::URI_TOO_LONG, "ERR_QUERY_TOO_LONG", &message, head).into();
    }
    if request.headers().len() > MAX_HEADERS || head_bytes(&request) > MAX_HEAD_BYTES {
        let message = format!("request heads are limited to {MAX_HEADERS} header lines and {MAX_HEAD_BYTES} bytes");
        return error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "ERR_HEADERS_TOO_LARGE", &message, head).into();
    }
    match host::authority(&request).and_then(|authority| shared.hosts.check(authority)) {
        // HTTP/1.0 has no Host: a load balancer's health check (HAProxy's `option httpchk`)
        // sends none, and a probe is open under any name anyway. HTTP/1.1 needs one (RFC 9112).
        Err(HostError::Missing) if route.is_probe() && request.version() < Version::HTTP_11 => {}
        Err(HostError::Missing) => {
            return error(StatusCode::BAD_REQUEST, "ERR_MISSING_HOST", "a request needs a Host header", head).into();
        }
        Err(HostError::Ambiguous) => {
            let message = "a request names one host: one Host header, the same as its :authority";
            return error(StatusCode::BAD_REQUEST, "ERR_AMBIGUOUS_HOST", message, head).into();
        }
        Err(HostError::NotAllowed) if !route.is_probe() => {
            shared.counters.misdirected.inc();
            let message = "this proxy does not serve that host name (see --allowed-host)";
            return error(StatusCode::MISDIRECTED_REQUEST, "ERR_HOST_NOT_ALLOWED", message, head).into();
        }
        _ => {}
    }
    if route == Route::Other {
        let message = format!("no route for {}", shown(uri.path()));
        return error(StatusCode::NOT_FOUND, "ERR_NOT_FOUND", &message, head).into();
    }
    if !route.is_probe() && site::is_cross_site(request.method(), request.headers(), host::authority(&request).ok().flatten()) {
        shared.counters.cross_site.inc();
        let message = "this proxy does not answer requests another site makes a browser send";
        return error(StatusCode::FORBIDDEN, "ERR_CROSS_SITE", message, head).into();
    }
    let allowed = if route == Route::Login { "POST" } else { "GET, HEAD" };
    let method_ok = if route == Route::Login { request.method() == Method::POST } else { matches!(*request.method(), Method::GET | Method::HEAD) };
    if !method_ok {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "ERR_METHOD_NOT_ALLOWED", &format!("{} takes {allowed}", route.as_str()), head);
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
        return response.into();
    }
    match route {
        Route::Healthz => return text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8", head).into(),
        Route::Readyz => return readiness(shared, head).into(),
        _ => {}
    }
    let client = who.client.as_ref().unwrap_or_else(|| shared.clients.anonymous());
    client.counters.requests.inc();
    let key = match &who.client {
        Some(client) => ClientKey::Named(client.name.clone()),
        None => ClientKey::Address(IpKey::of(who.address)),
    };
    if let Err(wait_ms) = shared.limits.admit(&key, || shared.engine.now()) {
        client.counters.limited_rate.inc();
        return too_many(Exceeded::Rate, wait_ms, head).into();
    }
    let open = match route {
        Route::Metrics => shared.config.metrics_public,
        Route::Login => true,
        _ => false,
    };
    if !open && shared.clients.required() && who.client.is_none() {
        return unauthorized(route, head).into();
    }
    match route {
        Route::Metrics => text(StatusCode::OK, &shared.metrics(), "text/plain; version=0.0.4; charset=utf-8", head).into(),
        Route::Page => page(StatusCode::OK, status::PAGE, status::PAGE_POLICY, head).into(),
        Route::Status => {
            let selected = status::selected(request.uri().query());
            let mut response = text(StatusCode::OK, &shared.status(selected).await, "application/json; charset=utf-8", head);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.into()
        }
        Route::Login => login(shared, request, context.tls).await.into(),
        _ => weather(shared, &request, head, client, &key).await,
    }
}

/// 401: the login form for the page (a browser cannot send a bearer header with a page), a
/// JSON error elsewhere.
fn unauthorized(route: Route, head: bool) -> Response<Body> {
    let mut response = if route == Route::Page {
        page(StatusCode::UNAUTHORIZED, status::LOGIN_PAGE, status::LOGIN_POLICY, head)
    } else {
        error(StatusCode::UNAUTHORIZED, "ERR_UNAUTHORIZED", "a valid bearer token is required", head)
    };
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"weather-cache\""));
    response
}

/// `POST /login` (the login form): a right token gets the status cookie and is sent to the
/// page; a wrong one gets the form again. The token is read from the body, never the URL.
async fn login(shared: &Shared, request: Request<hyper::body::Incoming>, tls: bool) -> Response<Body> {
    if !shared.clients.required() {
        return see_other(None);
    }
    let body = match Limited::new(request.into_body(), MAX_LOGIN_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "ERR_BODY_TOO_LARGE", "the login form is limited to 4 KiB", false),
    };
    match auth::form_token(&body).filter(|token| shared.clients.by_token(token.as_bytes()).is_some()) {
        Some(token) => see_other(Some(auth::set_cookie(&token, tls))),
        None => unauthorized(Route::Page, false),
    }
}

fn see_other(cookie: Option<String>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, "/")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_LENGTH, 0);
    if let Some(cookie) = cookie {
        builder = builder.header(header::SET_COOKIE, cookie);
    }
    builder.body(Body::default()).expect("a valid response")
}

/// `/readyz`: whether a request that misses the cache could be answered. Not while draining,
/// nor while no provider may be asked (each without a key, rate limited or out of budget).
fn readiness(shared: &Shared, head: bool) -> Response<Body> {
    let engine = &shared.engine;
    let mut reasons = Vec::new();
    let mut retry_ms: Option<i64> = None;
    if shared.draining.load(Ordering::Acquire) || engine.is_closed() {
        reasons.push(json!({ "code": "ERR_DRAINING", "message": "the proxy is shutting down" }));
    } else {
        let refusals = engine.provider_refusals();
        if refusals.iter().all(Option::is_some) {
            for (refusal, upstream) in refusals.iter().flatten().zip(engine.upstreams()) {
                let after = refusal.retry_after_ms();
                retry_ms = match (retry_ms, after) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                reasons.push(json!({ "provider": upstream.name(), "code": refusal.code(), "message": refusal.message(), "retryAfterMs": after }));
            }
        }
    }
    let ready = reasons.is_empty();
    let body = if ready { json!({ "ready": true }) } else { json!({ "ready": false, "reasons": reasons }) };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = text(status, &body.to_string(), "application/json; charset=utf-8", head);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(ms) = retry_ms {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds(ms)));
    }
    response
}

/// The size of the head as the client sent it (HTTP/1.1 framing: `name: value\r\n` per line).
fn head_bytes<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    // The request target as sent: origin form, or absolute form with its scheme and authority.
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    let line = request.method().as_str().len() + target + " HTTP/1.1\r\n ".len();
    request.headers().iter().fold(line + 2, |sum, (name, value)| sum + name.as_str().len() + value.len() + 4)
}

async fn weather<B>(shared: &Arc<Shared>, request: &Request<B>, head: bool, client: &Client, key: &ClientKey) -> Answer {
    let query = match query::parse(request.uri().query().unwrap_or("")) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.code, &e.message, head).into(),
    };
    let engine = &shared.engine;
    if !query.include.is_empty() && !engine.config().keep_products {
        let message = "include needs a proxy that keeps forecast products";
        return error(StatusCode::BAD_REQUEST, "ERR_INVALID_STATE", message, head).into();
    }
    let at = LatLon::new(query.lat, query.lon);
    // `Cache-Control: max-age` / `no-cache`: how fresh an answer the client takes.
    let mut wanted = weather_cache_core::engine::Request { user: &query.user, at, mode: cache_control::mode(request.headers()) };
    // A client out of upstream calls is still answered from the cache (whatever age it asked
    // for), and joins fetches already running; only a request that would start one is refused.
    if let Err(wait_ms) = shared.limits.upstream_allowed(key, || engine.now()) {
        wanted.mode = Mode::Normal;
        if engine.would_fetch(wanted) {
            client.counters.limited_upstream.inc();
            return too_many(Exceeded::Upstream, wait_ms, head).into();
        }
    }
    let mut recorder = Recorder::new(engine.config().log_level);
    let begun = engine.begin(wanted, &mut recorder);
    shared.deliver(recorder.events);
    let result = match begun {
        Begin::Ready(result) => result,
        Begin::Pending(pending) => {
            if pending.started_fetch() {
                client.counters.upstream_calls.inc();
                shared.limits.charge_upstream(key, || engine.now());
            }
            let reply = pending.wait(false).await;
            shared.deliver(reply.events);
            reply.result
        }
    };
    shared.remember(at);
    match result {
        Ok(served) => {
            let source = served.source.as_str();
            let response = weather_response(shared, request, &served, query.units, query.include, head);
            Answer { response, source: Some(source) }
        }
        Err(failure) => unavailable(&failure, head).into(),
    }
}

fn weather_response<B>(
    shared: &Shared,
    request: &Request<B>,
    served: &Served,
    units: Units,
    include: Wanted,
    head: bool,
) -> Response<Body> {
    let entry = &served.entry;
    let now = shared.engine.now();
    let etag = etag(entry, units, include, now);
    let max_age = match entry.freshness(now) {
        Freshness::Fresh => (entry.expires_at - now) / 1_000,
        _ => 0,
    };
    let cache_control = format!("max-age={max_age}");
    let mut builder = Response::builder().header(header::ETAG, &etag).header(header::CACHE_CONTROL, &cache_control);
    if validators::none_match(request.headers(), &etag) {
        shared.counters.not_modified.inc();
        return builder.status(StatusCode::NOT_MODIFIED).body(Body::default()).expect("a valid response");
    }
    let summary = &entry.summary;
    let temp = if units == Units::Metric { summary.temp_c } else { summary.temp_f };
    let condition = serde_json::to_string(summary.condition.as_str()).unwrap_or_else(|_| "\"Unknown\"".into());
    let mut body = format!(
        "{{\"condition\":{condition},\"tempC\":{},\"tempF\":{},\"temp\":{},\"units\":\"{}\",\"source\":\"{}\",\"fetchedAt\":{},\"ageMs\":{}}}",
        number(summary.temp_c),
        number(summary.temp_f),
        number(temp),
        units.as_str(),
        served.source.as_str(),
        entry.fetched_at,
        entry.age(now),
    );
    if !include.is_empty() {
        // The summary's members first, as without products; then the products asked for.
        body.pop();
        for (name, value) in products::members(entry, include, units, now) {
            body.push_str(&format!(",\"{name}\":{value}"));
        }
        body.push('}');
    }
    builder = builder.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
    respond(builder, StatusCode::OK, body, head)
}

/// A weak validator per entry, units and products asked for: the body's `ageMs` changes every
/// millisecond, what it says about the weather does not; the products' past hours, days and
/// minutes leave it as time goes, so those count too. Equal on every instance serving the
/// same entry.
fn etag(entry: &weather_cache_core::cache::Entry, units: Units, include: Wanted, now: i64) -> String {
    let place = entry.location.lat.to_bits() ^ entry.location.lon.to_bits().rotate_left(29);
    let products = if include.is_empty() {
        String::new()
    } else {
        format!("-p{:x}{}", include.bits(), products::served_cut(entry, include, now))
    };
    format!("W/\"{:x}-{:x}-{}{products}\"", entry.fetched_at, place, &units.as_str()[..1])
}

/// A JS-style number: integers without a fraction.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Whole seconds to wait, at least 1 (`Retry-After`).
fn seconds(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1_000).max(1)
}

/// 429 to a client past one of its limits.
fn too_many(limit: Exceeded, wait_ms: i64, head: bool) -> Response<Body> {
    let (code, message) = match limit {
        Exceeded::Rate => ("ERR_CLIENT_RATE_LIMITED", "this client sends more requests a second than it may (--client-rate-limit)"),
        Exceeded::Upstream => ("ERR_CLIENT_UPSTREAM_LIMITED", "this client caused as many upstream calls this minute as it may (--client-upstream-limit); cached areas are still answered"),
    };
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, code, message, head);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds(wait_ms)));
    response
}

/// 503 with the engine's reason; `Retry-After` when it knows how long to wait.
fn unavailable(failure: &RequestError, head: bool) -> Response<Body> {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, failure.code(), &failure.message(), head);
    if let Some(ms) = failure.retry_after_ms() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds(ms)));
    }
    response
}

pub fn error(status: StatusCode, code: &str, message: &str, head: bool) -> Response<Body> {
    let body = json!({ "error": { "code": code, "message": message } }).to_string();
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store");
    respond(builder, status, body, head)
}

/// An HTML page (the status page or its login form): never cached, never framed, nothing
/// loaded or run but what `policy` allows.
fn page(status: StatusCode, body: &str, policy: &'static str, head: bool) -> Response<Body> {
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("content-security-policy", policy);
    respond(builder, status, body.to_owned(), head)
}

fn text(status: StatusCode, body: &str, content_type: &'static str, head: bool) -> Response<Body> {
    respond(Response::builder().header(header::CONTENT_TYPE, content_type), status, body.to_owned(), head)
}

/// HEAD gets the headers GET would, `Content-Length` included, and no body.
fn respond(builder: hyper::http::response::Builder, status: StatusCode, body: String, head: bool) -> Response<Body> {
    let builder = builder.status(status).header(header::CONTENT_LENGTH, body.len());
    let body = if head { Body::default() } else { Body::from(body) };
    builder.body(body).expect("a valid response")
}

/// A request path as messages show it: at most 64 characters.
fn shown(path: &str) -> String {
    path.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_their_log_names() {
        for (path, route) in [("/v1/weather", Route::Weather), ("/readyz", Route::Readyz), ("/login", Route::Login), ("/v1/weather/", Route::Other)] {
            assert_eq!(Route::of(path), route);
        }
        assert_eq!(Route::of("/secret-place").as_str(), "(other)");
        assert!(Route::Healthz.is_probe() && Route::Readyz.is_probe() && !Route::Metrics.is_probe());
    }

    #[test]
    fn timeouts_say_whose_fault() {
        assert_eq!(timed_out(Route::Weather, false).response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(timed_out(Route::Login, false).response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(timed_out(Route::Weather, true).response.headers()[header::RETRY_AFTER], "1");
    }
}
