//! `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

use std::time::{Duration, SystemTime};

/// The delay a `Retry-After` value asks for. An HTTP-date is measured from the response's own
/// `Date` header when it has one (so clock skew between us and the server does not matter),
/// otherwise from our clock.
///
/// `None` when there is no usable delay: unparseable values, and values that ask for no wait
/// at all (`0`, or a date at or before the response's `Date`). A server that rate-limits us and
/// says "retry now" has a skewed clock or a bug; taking it at its word would hammer it, so the
/// caller falls back to its exponential backoff, as for a missing header.
pub fn parse_retry_after(value: &str, server_date: Option<&str>) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long values saturate rather than overflow.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX / 1_000_000))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        let reference =
            server_date.and_then(|d| httpdate::parse_http_date(d.trim()).ok()).unwrap_or_else(SystemTime::now);
        at.duration_since(reference).ok()?
    };
    (!delay.is_zero()).then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_seconds() {
        assert_eq!(parse_retry_after("120", None), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", None), None, "no wait at all is no usable delay");
        assert!(parse_retry_after("99999999999999999999999", None).is_some());
        assert_eq!(parse_retry_after("-5", None), None);
        assert_eq!(parse_retry_after("soon", None), None);
        assert_eq!(parse_retry_after("", None), None);
    }

    #[test]
    fn http_dates_relative_to_the_server_clock() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", Some(date)), Some(Duration::from_secs(120)));
        // The obsolete forms recipients must still accept.
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", Some(date)), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:47 1994", Some(date)), Some(Duration::from_secs(10)));
        // Issue 10 #6: a date in the past (a skewed server clock) used to mean no cooldown.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", Some(date)), None);
        assert_eq!(parse_retry_after(date, Some(date)), None, "at the response's own Date");
    }

    #[test]
    fn http_date_without_server_date_uses_our_clock() {
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let delay = parse_retry_after(&in_a_minute, None).unwrap();
        assert!(delay > Duration::from_secs(58) && delay <= Duration::from_secs(61), "{delay:?}");
    }
}
