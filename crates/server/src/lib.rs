//! weather-cache-server: the drone proxy (`weather-cache serve`) over weather-cache-core.

pub mod proxy;
