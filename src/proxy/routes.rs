//! What the proxy answers. A cache hit is answered from the entry on this thread: no JS, no
//! allocation beyond the response itself.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /v1/weather?lat&lon[&user][&units]` | the weather, `Cache-Control: max-age` = freshness left, a weak `ETag` per entry and units, `304` for a matching `If-None-Match` |
//! | `GET /metrics` | Prometheus text (behind the token unless public) |
//! | `GET /healthz` | `ok` (always open) |
//! | `GET /` | the status page (`status.rs`), behind the token (or its cookie) |
//! | `GET /v1/status` | what the status page draws, as JSON, likewise |
//!
//! Errors are `{ "error": { "code", "message" } }`: 400 for a bad query, 401 without the token,
//! 404, 405, 414 for a query over 2 KiB, 431 for over 50 header lines or a 16 KiB head, 503
//! when there is nothing to serve (with `Retry-After` when rate limited or out of budget).

use std::sync::Arc;

use hyper::body::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::auth::{authorized, cookie_authorized};
use super::status;
use super::query::{self, Units, MAX_QUERY_BYTES};
use super::Shared;
use crate::cache::Freshness;
use crate::engine::{Begin, Mode, Recorder, RequestError, Served};
use crate::geo::LatLon;

pub type Body = Full<Bytes>;

/// Most header lines in a request head (431 beyond).
pub const MAX_HEADERS: usize = 50;
/// Largest request head, request line included, in bytes (431 beyond).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A response and what the access log says about it.
pub struct Answer {
    pub response: Response<Body>,
    pub path: &'static str,
    pub source: Option<&'static str>,
}

pub async fn route<B>(shared: &Arc<Shared>, request: &Request<B>) -> Answer {
    let uri = request.uri();
    let head = request.method() == Method::HEAD;
    let path: &'static str = match uri.path() {
        "/v1/weather" => "/v1/weather",
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/" => "/",
        "/v1/status" => "/v1/status",
        _ => "(other)",
    };
    let answer = |response| Answer { response, path, source: None };
    if uri.query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        let message = format!("query strings are limited to {MAX_QUERY_BYTES} bytes");
        return answer(error(StatusCode::URI_TOO_LONG, "ERR_QUERY_TOO_LONG", &message, head));
    }
    if request.headers().len() > MAX_HEADERS || head_bytes(request) > MAX_HEAD_BYTES {
        let message = format!("request heads are limited to {MAX_HEADERS} header lines and {MAX_HEAD_BYTES} bytes");
        return answer(error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "ERR_HEADERS_TOO_LARGE", &message, head));
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "ERR_METHOD_NOT_ALLOWED", "only GET is supported", head);
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer(response);
    }
    let open = match path {
        "/healthz" => return answer(text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8", head)),
        "/metrics" => shared.config.metrics_public,
        "/v1/weather" | "/" | "/v1/status" => false,
        _ => {
            let message = format!("no route for {}", shown(uri.path()));
            return answer(error(StatusCode::NOT_FOUND, "ERR_NOT_FOUND", &message, head));
        }
    };
    if let (false, Some(token)) = (open, &shared.config.token) {
        let bearer = authorized(request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes), token);
        let status_page = matches!(path, "/" | "/v1/status");
        let cookie = || cookie_authorized(request.headers().get(header::COOKIE).map(HeaderValue::as_bytes), token);
        if !bearer && !(status_page && cookie()) {
            let mut response = if path == "/" {
                // A browser cannot send a bearer header for a page: a form that sets the cookie.
                text(StatusCode::UNAUTHORIZED, status::LOGIN_PAGE, "text/html; charset=utf-8", head)
            } else {
                error(StatusCode::UNAUTHORIZED, "ERR_UNAUTHORIZED", "a valid bearer token is required", head)
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"weather-cache\""));
            return answer(response);
        }
    }
    match path {
        "/metrics" => {
            let body = shared.metrics();
            return answer(text(StatusCode::OK, &body, "text/plain; version=0.0.4; charset=utf-8", head));
        }
        "/" => return answer(page(status::PAGE, head)),
        "/v1/status" => {
            let mut response = text(StatusCode::OK, &shared.status(), "application/json; charset=utf-8", head);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return answer(response);
        }
        _ => {}
    }
    weather(shared, request, head).await
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

async fn weather<B>(shared: &Arc<Shared>, request: &Request<B>, head: bool) -> Answer {
    let path = "/v1/weather";
    let query = match query::parse(request.uri().query().unwrap_or("")) {
        Ok(query) => query,
        Err(e) => return Answer { response: error(StatusCode::BAD_REQUEST, e.code, &e.message, head), path, source: None },
    };
    let engine = &shared.engine;
    let at = LatLon::new(query.lat, query.lon);
    let mut recorder = Recorder::new(engine.config().log_level);
    let begun = engine.begin(crate::engine::Request { user: &query.user, at, mode: Mode::Normal }, &mut recorder);
    shared.deliver(recorder.events);
    let result = match begun {
        Begin::Ready(result) => result,
        Begin::Pending(pending) => {
            let reply = pending.wait(false).await;
            shared.deliver(reply.events);
            reply.result
        }
    };
    shared.remember(at);
    match result {
        Ok(served) => {
            let source = served.source.as_str();
            let response = weather_response(shared, request, &served, query.units, head);
            Answer { response, path, source: Some(source) }
        }
        Err(failure) => Answer { response: unavailable(&failure, head), path, source: None },
    }
}

fn weather_response<B>(shared: &Shared, request: &Request<B>, served: &Served, units: Units, head: bool) -> Response<Body> {
    let entry = &served.entry;
    let now = shared.engine.now();
    let etag = etag(entry, units);
    let max_age = match entry.freshness(now) {
        Freshness::Fresh => (entry.expires_at - now) / 1_000,
        _ => 0,
    };
    let cache_control = format!("max-age={max_age}");
    let matches = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| weak_eq(t.trim(), &etag)));
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, &cache_control);
    if matches {
        shared.counters.not_modified.inc();
        return builder.status(StatusCode::NOT_MODIFIED).body(Body::default()).expect("a valid response");
    }
    let summary = &entry.summary;
    let temp = if units == Units::Metric { summary.temp_c } else { summary.temp_f };
    let condition = serde_json::to_string(summary.condition.as_str()).unwrap_or_else(|_| "\"Unknown\"".into());
    let body = format!(
        "{{\"condition\":{condition},\"tempC\":{},\"tempF\":{},\"temp\":{},\"units\":\"{}\",\"source\":\"{}\",\"fetchedAt\":{},\"ageMs\":{}}}",
        number(summary.temp_c),
        number(summary.temp_f),
        number(temp),
        units.as_str(),
        served.source.as_str(),
        entry.fetched_at,
        entry.age(now),
    );
    builder = builder.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
    respond(builder, StatusCode::OK, body, head)
}

/// A weak validator per entry and units: the body's `ageMs` changes every millisecond, what it
/// says about the weather does not. Equal on every instance serving the same entry.
fn etag(entry: &crate::cache::Entry, units: Units) -> String {
    let place = entry.location.lat.to_bits() ^ entry.location.lon.to_bits().rotate_left(29);
    format!("W/\"{:x}-{:x}-{}\"", entry.fetched_at, place, &units.as_str()[..1])
}

/// `If-None-Match` compares weakly: `W/` prefixes aside, the same opaque tag (or `*`).
fn weak_eq(presented: &str, ours: &str) -> bool {
    presented == "*" || presented.trim_start_matches("W/") == ours.trim_start_matches("W/")
}

/// A JS-style number: integers without a fraction.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// 503 with the engine's reason; `Retry-After` when it knows how long to wait.
fn unavailable(failure: &RequestError, head: bool) -> Response<Body> {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, failure.code(), &failure.message(), head);
    if let Some(ms) = failure.retry_after_ms() {
        let seconds = ((ms.max(0) as u64).div_ceil(1_000)).max(1);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

pub fn error(status: StatusCode, code: &str, message: &str, head: bool) -> Response<Body> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store");
    respond(builder, status, body, head)
}

/// The status page: no framing elsewhere, no scripts but its own.
fn page(body: &str, head: bool) -> Response<Body> {
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-frame-options", "DENY")
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        );
    respond(builder, StatusCode::OK, body.to_owned(), head)
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
