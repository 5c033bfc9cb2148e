//! A request's `Cache-Control` (RFC 9111 §5.2.1): how fresh an answer the client will take.
//! `max-age=N` makes an entry older than N seconds a miss for this request, `no-cache` asks for
//! a new fetch; both are floored by the service's `minRefreshIntervalMs`, as `getForecast`'s
//! `maxAgeMs` and `forceRefresh` are, so that no client can make every request a call.
//! Directives this cache has no use for (`no-store`, `max-stale`, ...) are ignored; so is a
//! malformed `max-age`.

use hyper::header::{HeaderMap, CACHE_CONTROL};
use weather_cache_core::engine::{Mode, MAX_DURATION_MS};

/// The engine's mode for a request with these headers: `no-cache` wins over `max-age`, the
/// smallest `max-age` over the others.
pub fn mode(headers: &HeaderMap) -> Mode {
    let mut max_age: Option<u64> = None;
    for directive in headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
    {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-cache") {
            return Mode::ForceRefresh;
        }
        if name.eq_ignore_ascii_case("max-age") {
            // delta-seconds: digits only; a value too large for us means "any age".
            if let Some(seconds) = value.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) {
                let ms = seconds.parse::<u64>().map_or(MAX_DURATION_MS, |s| s.saturating_mul(1_000).min(MAX_DURATION_MS));
                max_age = Some(max_age.map_or(ms, |m| m.min(ms)));
            }
        }
    }
    max_age.map_or(Mode::Normal, Mode::MaxAge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn of(lines: &[&str]) -> Mode {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(line).unwrap());
        }
        mode(&headers)
    }

    #[test]
    fn directives() {
        assert_eq!(of(&[]), Mode::Normal);
        assert_eq!(of(&["max-age=120"]), Mode::MaxAge(120_000));
        assert_eq!(of(&["Max-Age = \"30\", no-transform"]), Mode::MaxAge(30_000));
        assert_eq!(of(&["max-age=120", "max-age=60"]), Mode::MaxAge(60_000), "the smallest");
        assert_eq!(of(&["max-age=60, no-cache"]), Mode::ForceRefresh);
        assert_eq!(of(&["NO-CACHE"]), Mode::ForceRefresh);
        assert_eq!(of(&["max-age=0"]), Mode::MaxAge(0));
        assert_eq!(of(&["max-age=99999999999999999999999"]), Mode::MaxAge(MAX_DURATION_MS));
        for ignored in ["max-age=-1", "max-age=1.5", "max-age=", "max-age", "no-store", "max-stale=60"] {
            assert_eq!(of(&[ignored]), Mode::Normal, "{ignored}");
        }
    }
}
