//! weather-cache: a proximity-aware weather cache in front of OpenWeather One Call 3.0, exposed
//! to Node.js through napi-rs.
//!
//! The pipeline, one module per stage: `geo` (grid keys, haversine, neighbour search) →
//! `cache` (per-user and shared stores) → `engine` (lookup order, coalescing, SWR, backoff,
//! budgets, clock) → `provider` (upstream clients). Beside them, used by the engine and never
//! using it: `tier` (the shared tier on Redis); using the engine and never used by it: `proxy`
//! (the HTTP server of `weather-cache serve`). `binding` is the thin napi layer on top.

pub mod cache;
pub mod engine;
pub mod geo;
pub mod provider;
pub mod proxy;
pub mod redact;
pub mod tier;

#[cfg(test)]
mod test_support;

// napi-derive registers exports only outside `cfg(test)`; tests drive the engine directly.
#[cfg_attr(test, allow(dead_code))]
mod binding;
