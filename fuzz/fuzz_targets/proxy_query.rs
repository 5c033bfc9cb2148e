//! Any query string for `GET /v1/weather`: never a panic, and whatever is accepted is a request
//! the engine may take (finite coordinates in range, a user id the JS API would accept too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weather_cache_server::proxy::query::{parse, MAX_USER_BYTES};

fuzz_target!(|query: &str| {
    if let Ok(q) = parse(query) {
        assert!(q.lat.is_finite() && (-90.0..=90.0).contains(&q.lat), "{}", q.lat);
        assert!(q.lon.is_finite() && (-180.0..=180.0).contains(&q.lon), "{}", q.lon);
        assert!(!q.user.is_empty() && q.user.len() <= MAX_USER_BYTES);
    }
});
