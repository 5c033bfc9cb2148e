//! Helpers for `cargo test`: proptest strategies for places on Earth, a loopback OpenWeather
//! server, and a real `redis-server` for the shared tier.

pub mod bodies;
pub mod nws;
pub mod redis;
pub mod redis_topology;
pub mod relay;
pub mod strategies;
pub mod upstream;
