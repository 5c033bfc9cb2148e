//! Upstream weather APIs behind one trait, so the engine never sees HTTP.

mod body;
mod custom;
mod http;
mod late_key;
mod json;
mod met_norway_products;
mod metnorway;
mod names;
mod nws;
mod one_call_products;
mod open_meteo_products;
mod openmeteo;
mod openweather;
mod reading;
mod retry_after;
mod symbols;
mod timestamps;
mod wmo;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use custom::{CustomProvider, Fetched};
pub use late_key::LateKey;
pub use metnorway::{MetNorway, MetNorwayConfig, DEFAULT_BASE_URL as MET_NORWAY_BASE_URL};
pub use nws::{condition_of_icon, Nws, NwsConfig, DEFAULT_BASE_URL as NWS_BASE_URL};
pub use openmeteo::{OpenMeteo, OpenMeteoConfig, DEFAULT_BASE_URL as OPEN_METEO_BASE_URL};
pub use openweather::{parse_one_call, read_one_call, OpenWeather, OpenWeatherConfig, DEFAULT_BASE_URL};
pub use reading::{observation, tidy, tidy_lines, MAX_CELSIUS, MIN_CELSIUS};
pub use crate::redact::Redactor;
pub use names::{intern, intern_configured};
pub use retry_after::parse_retry_after;
pub use timestamps::parse_rfc3339;

use crate::cache::{Observation, Products};
use std::sync::Arc;
use crate::geo::LatLon;

pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Answer, ProviderError>> + Send + 'a>>;

pub trait Provider: Send + Sync + 'static {
    /// Short name used in events and messages (`"openweather"`).
    fn name(&self) -> &'static str;

    /// Whether a request can be made at all (for instance, an API key is configured).
    fn ready(&self) -> Result<(), ProviderError>;

    /// Current conditions at `at`, which the caller has already rounded. `validator` is what
    /// this provider said of its previous answer for exactly `at` (see `Answer::validator`),
    /// for a conditional request.
    fn fetch<'a>(&'a self, at: LatLon, validator: Option<&'a str>) -> FetchFuture<'a>;

    /// Which API key the provider uses now, for one whose key can change while it runs (the
    /// default instance's `OPEN_WEATHER_API_KEY`): a new key is a new number, and a refusal of
    /// an earlier key says nothing of it. Always 0 for a key fixed at start.
    fn key_generation(&self) -> u64 {
        0
    }
}

/// A provider's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The reading; `None` when the provider said its data has not changed since the answer
    /// `validator` names (HTTP 304): the previous reading holds, renewed.
    pub observation: Option<Observation>,
    /// How long the provider asks not to be asked again about this place (MET Norway's
    /// `Expires`, measured from its own `Date` so that a skewed clock does not matter).
    pub hold_for: Option<Duration>,
    /// What identifies this answer for a conditional request (MET Norway's `Last-Modified`).
    pub validator: Option<Box<str>>,
    /// Something the operator should know (MET Norway's 203: the product is deprecated).
    pub warning: Option<&'static str>,
    /// The forecast products the same answer carried (see `cache/products.rs`); `None` when
    /// this provider has none, or with a 304 (the previous ones hold).
    pub products: Option<Arc<Products>>,
    /// Requests made for this answer beyond the first (NWS asks several endpoints): each counts
    /// as a call, in the stats and against the budget.
    pub extra_calls: u32,
}

impl Answer {
    /// A plain reading, with nothing else to say.
    pub fn observed(observation: Observation) -> Answer {
        Answer {
            observation: Some(observation),
            hold_for: None,
            validator: None,
            warning: None,
            products: None,
            extra_calls: 0,
        }
    }

    /// A reading with its forecast products.
    pub fn with_products(observation: Observation, products: Products) -> Answer {
        Answer { products: Some(Arc::new(products)), ..Answer::observed(observation) }
    }
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
    /// HTTP 401 or 403 from a provider called with an API key: it refused the key (wrong,
    /// revoked, not subscribed to the product). A key does not fix itself, so the engine stops
    /// asking for a long while.
    KeyRejected {
        status: u16,
    },
    Status {
        status: u16,
        /// What the provider said of it, when it says (Open-Meteo's `reason`): tidied, capped,
        /// the key redacted.
        reason: Option<String>,
    },
    Timeout,
    Network {
        message: String,
    },
    InvalidResponse {
        message: String,
    },
    /// The provider does not cover the place (NWS outside the US): the next provider is asked,
    /// and the area does not cool down (nothing failed).
    OutsideCoverage,
}
