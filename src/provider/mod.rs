//! Upstream weather APIs behind one trait, so the engine never sees HTTP.

mod body;
mod names;
mod openweather;
mod reading;
mod retry_after;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use openweather::{parse_one_call, OpenWeather, OpenWeatherConfig, DEFAULT_BASE_URL};
pub use reading::{observation, MAX_CELSIUS, MIN_CELSIUS};
pub use crate::redact::Redactor;
pub use names::intern;
pub use retry_after::parse_retry_after;

use crate::cache::Observation;
use crate::geo::LatLon;

pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Observation, ProviderError>> + Send + 'a>>;

pub trait Provider: Send + Sync + 'static {
    /// Short name used in events and messages (`"openweather"`).
    fn name(&self) -> &'static str;

    /// Whether a request can be made at all (for instance, an API key is configured).
    fn ready(&self) -> Result<(), ProviderError>;

    /// Current conditions at `at`, which the caller has already rounded.
    fn fetch(&self, at: LatLon) -> FetchFuture<'_>;
}

/// Why a fetch produced no observation. Messages never contain the request URL or the key.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderError {
    NoApiKey,
    /// HTTP 429 (or a body saying `cod: 429`). `retry_after` is the server's Retry-After as a
    /// delay from now, when it sent a usable one.
    RateLimited {
        retry_after: Option<Duration>,
    },
    Status {
        status: u16,
    },
    Timeout,
    Network {
        message: String,
    },
    InvalidResponse {
        message: String,
    },
}
