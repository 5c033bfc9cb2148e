//! Helpers for `cargo test`: proptest strategies for places on Earth, and a loopback
//! OpenWeather server.

pub mod strategies;
pub mod upstream;
