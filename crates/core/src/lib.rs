//! weather-cache-core: a proximity-aware weather cache in front of OpenWeather One Call 3.0.
//!
//! The pipeline, one module per stage: `geo` (grid keys, haversine, neighbour search) →
//! `cache` (per-user and shared stores) → `engine` (lookup order, coalescing, SWR, backoff,
//! budgets, clock) → `provider` (upstream clients). Beside them, used by the engine and never
//! using it: `tier` (the shared tier on Redis).

pub mod cache;
pub mod engine;
pub mod geo;
pub mod provider;
pub mod redact;
pub mod tier;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
