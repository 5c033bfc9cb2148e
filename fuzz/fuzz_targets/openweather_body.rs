//! Any bytes as an OpenWeather One Call body: never a panic, and whatever is accepted is a
//! reading the cache may serve (a physical temperature, a short printable condition).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weather_cache_core::provider::{parse_one_call, MAX_CELSIUS, MIN_CELSIUS};

fuzz_target!(|body: &[u8]| {
    if let Ok(observation) = parse_one_call(body) {
        assert!((MIN_CELSIUS..=MAX_CELSIUS).contains(&observation.celsius), "{}", observation.celsius);
        assert!(!observation.condition.is_empty());
        assert!(observation.condition.chars().count() <= 64);
        assert!(!observation.condition.chars().any(char::is_control));
    }
});
