//! A provider the application writes: the Rust twin of the JS option
//! `providers: [{ name, fetch }]`. An async function from a place to a reading; everything else
//! (coalescing, caching, cooldowns, failover, budgets) is the engine's, as for the built-in
//! providers. The reading is checked like theirs (a temperature that can occur on Earth, a
//! short printable condition), and a call longer than `requestTimeoutMs` is a timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{observation, Answer, FetchFuture, Provider, ProviderError};
use crate::cache::Observation;
use crate::geo::LatLon;

/// What a custom fetch resolves to: the reading, or why there is none (a message that is logged
/// and counted as an invalid response; never put a secret in it).
pub type Fetched = Result<Observation, String>;

type FetchFn = dyn Fn(LatLon) -> Pin<Box<dyn Future<Output = Fetched> + Send>> + Send + Sync;

/// Builds the provider once its name is checked and interned and the request timeout is known.
type Build = dyn Fn(&'static str, Duration) -> Arc<dyn Provider> + Send + Sync;

/// A provider in `ServiceOptions::providers` that is not one of the built-in ones.
///
/// ```
/// use weather_cache_core::cache::Observation;
/// use weather_cache_core::provider::CustomProvider;
///
/// let station = CustomProvider::new("roof-station", |at| async move {
///     Ok(Observation { celsius: 21.5 + at.lat / 100.0, condition: "Clear".into() })
/// });
/// assert_eq!(station.name(), "roof-station");
/// ```
#[derive(Clone)]
pub struct CustomProvider {
    name: String,
    build: Arc<Build>,
}

impl CustomProvider {
    /// `fetch` is called with the rounded place (see `coordinateDecimals`), on the service's
    /// runtime. `name` (1 to 64 printable characters, not a built-in provider's) names it in
    /// events, errors, metrics and the shared tier.
    pub fn new<F, Fut>(name: impl Into<String>, fetch: F) -> CustomProvider
    where
        F: Fn(LatLon) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Fetched> + Send + 'static,
    {
        let fetch: Arc<FetchFn> = Arc::new(move |at| Box::pin(fetch(at)));
        CustomProvider::with_provider(name, move |name, timeout| {
            Arc::new(FnProvider { name, timeout, fetch: fetch.clone() }) as Arc<dyn Provider>
        })
    }

    /// A provider implemented with the full `Provider` trait (conditional requests, holds,
    /// warnings), built by `build` from its interned name and the request timeout.
    pub fn with_provider(
        name: impl Into<String>,
        build: impl Fn(&'static str, Duration) -> Arc<dyn Provider> + Send + Sync + 'static,
    ) -> CustomProvider {
        CustomProvider { name: name.into(), build: Arc::new(build) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider, named `name` (checked by the caller), asked with `timeout`.
    pub(crate) fn build(&self, name: &'static str, timeout: Duration) -> Arc<dyn Provider> {
        (self.build)(name, timeout)
    }
}

impl std::fmt::Debug for CustomProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomProvider").field("name", &self.name).finish_non_exhaustive()
    }
}

struct FnProvider {
    name: &'static str,
    timeout: Duration,
    fetch: Arc<FetchFn>,
}

impl Provider for FnProvider {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ready(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    fn fetch<'a>(&'a self, at: LatLon, _: Option<&'a str>) -> FetchFuture<'a> {
        let call = (self.fetch)(at);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Err(_) => Err(ProviderError::Timeout),
                Ok(Err(message)) => Err(ProviderError::InvalidResponse { message }),
                Ok(Ok(reading)) => observation(reading.celsius, Some(&reading.condition)).map(Answer::observed),
            }
        })
    }
}
