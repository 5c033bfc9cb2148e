//! A proximity-aware weather cache in front of OpenWeather One Call 3.0 (and Open-Meteo, MET
//! Norway, or a provider of your own): many clients at nearby coordinates, one upstream call.
//!
//! A request is answered from the user's own entry, or another user's within `proximityKm`, or
//! a fetch that every concurrent request for the area shares; stale entries are served while
//! they are refreshed; a 429 cools the provider down; call budgets hold across instances that
//! share a Redis. The same engine runs the Node addon (`weather-cache` on npm) and the drone
//! proxy (`weather-cache-server`).
//!
//! # Example
//!
//! A cache over a provider written in Rust (no network needed), asked twice, and its numbers:
//!
//! ```
//! use weather_cache_core::cache::Observation;
//! use weather_cache_core::provider::CustomProvider;
//! use weather_cache_core::{ProviderOption, ServiceOptions, Source, WeatherCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let station = CustomProvider::new("roof-station", |_at| async {
//!     Ok(Observation { celsius: 20.6, condition: "Clouds".to_owned() })
//! });
//! let options = ServiceOptions {
//!     providers: Some(vec![ProviderOption::custom(station)]),
//!     proximity_km: Some(5.0),
//!     ..ServiceOptions::default()
//! };
//! let cache = WeatherCache::new(options)?;
//!
//! let first = cache.get_weather("drone-7", 48.8566, 2.3522).await?;
//! assert_eq!((first.condition.as_str(), first.temp_c, first.temp_f), ("Clouds", 21.0, 69.0));
//! assert_eq!(first.source, Source::Network);
//!
//! // Another drone 3 km away is answered from the cache.
//! let second = cache.get_weather("drone-8", 48.8836, 2.3522).await?;
//! assert_eq!(second.source, Source::Cache);
//!
//! let stats = cache.stats();
//! assert_eq!((stats.requests, stats.upstream_requests), (2, 1));
//! cache.close();
//! # Ok(())
//! # }
//! ```
//!
//! With OpenWeather instead, leave `providers` out and set `api_key` (or call
//! `ServiceOptions::with_env_defaults()` to read `OPEN_WEATHER_API_KEY`). Options are plain
//! data with serde: the field names are the JS option names, so a config file
//! (`[service]` of `weather-cache-server --config`) reads into the same struct.
//!
//! # Layout
//!
//! The pipeline, one module per stage: [`geo`] (grid keys, haversine, neighbour search) →
//! [`cache`] (per-user and shared stores) → [`engine`] (lookup order, coalescing, SWR, backoff,
//! budgets, clock) → [`provider`] (upstream clients). Beside them, used by the engine and never
//! using it: [`tier`] (the shared tier on Redis). On top: [`options`] (what a service is made
//! of) and [`service`] (the `WeatherCache` facade).

pub mod cache;
pub mod engine;
pub mod geo;
pub mod options;
pub mod provider;
pub mod redact;
pub mod service;
pub mod snapshot;
pub mod tier;

/// Test support shared with weather-cache-server's tests (the `testing` feature): a loopback
/// upstream, real `redis-server` helpers, a TCP relay, proptest strategies.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use engine::{Event, Level, Source, Stats};
pub use options::{
    BudgetOptions, OptionsError, ProviderOption, RedisOption, RedisOptions, Secret, ServiceOptions, SnapshotOption,
    SnapshotOptions,
};
pub use service::{Weather, WeatherCache, WeatherError};
