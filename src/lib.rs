//! weather-cache: a proximity-aware weather cache in front of OpenWeather One Call 3.0, exposed
//! to Node.js through napi-rs.

pub mod cache;
pub mod geo;
pub mod provider;

#[cfg(test)]
mod test_support;
