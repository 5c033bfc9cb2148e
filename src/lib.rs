//! The Node addon: napi glue over weather-cache-core (the engine) and weather-cache-server (the
//! drone proxy). Argument checks, JS conversions, errors and logger calls; nothing here decides
//! anything about caching.

mod binding;
