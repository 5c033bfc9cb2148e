//! Any `Retry-After` value with any `Date`: never a panic, and a delay is never zero (a "retry
//! now" falls back to the backoff) nor beyond what a `u64` of seconds can say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weather_cache_core::provider::parse_retry_after;

fuzz_target!(|input: (&str, Option<&str>)| {
    let (value, date) = input;
    if let Some(delay) = parse_retry_after(value, date) {
        assert!(!delay.is_zero());
    }
});
