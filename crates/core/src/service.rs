//! `WeatherCache`: the engine for a Rust program, as the addon's `WeatherService` is for a JS
//! one. Built from `ServiceOptions`; asked with an async call; its numbers read with `stats()`.

use std::sync::Arc;

use crate::engine::{Begin, Engine, Event, Mode, Recorder, Request, RequestError, Served, Source, Stats};
use crate::geo::LatLon;
use crate::options::{OptionsError, ServiceOptions};

/// Longest user id accepted, in bytes (as in JS and in the proxy's `user` parameter).
pub const MAX_USER_BYTES: usize = 256;

/// Receives events (see `WeatherCache::with_logger`).
type Logger = Arc<dyn Fn(&Event) + Send + Sync>;

/// A weather cache. Cheap to clone: clones share one cache.
#[derive(Clone)]
pub struct WeatherCache {
    engine: Engine,
    logger: Option<Logger>,
}

/// What `get_weather` answers with.
#[derive(Clone, Debug, PartialEq)]
pub struct Weather {
    /// Short condition from the provider (`"Clouds"`, `"Rain"`…), `"Unknown"` when absent.
    pub condition: String,
    /// Rounded Celsius.
    pub temp_c: f64,
    /// Rounded Fahrenheit, from the unrounded Celsius (20.6 °C is 21 °C and 69 °F).
    pub temp_f: f64,
    /// Where the answer came from: the cache (fresh or stale) or a fetch made for it.
    pub source: Source,
    /// Which provider answered.
    pub provider: &'static str,
    /// When the provider answered (epoch ms, the service's clock).
    pub fetched_at: i64,
    pub age_ms: i64,
    /// The rounded location the provider was asked about.
    pub location: LatLon,
    /// The grid cell of that location (`"48.82500:2.34000"`).
    pub bucket_key: String,
}

/// Why `get_weather` has no weather.
#[derive(Clone, Debug, PartialEq)]
pub enum WeatherError {
    /// A coordinate out of range or not finite, or an empty or too long user id.
    InvalidArgument(String),
    /// No provider could answer (rate limited, budget spent, an error, a timeout...), or the
    /// cache was closed. `code()` is the same Node-style code the addon uses.
    Request(RequestError),
}

impl std::fmt::Display for WeatherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeatherError::InvalidArgument(message) => f.write_str(message),
            WeatherError::Request(error) => f.write_str(&error.message()),
        }
    }
}

impl std::error::Error for WeatherError {}

impl WeatherCache {
    /// A cache with `options` (see `ServiceOptions::resolve` for what is checked). Its fetches
    /// run on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn new(options: ServiceOptions) -> Result<WeatherCache, OptionsError> {
        WeatherCache::build(options, None)
    }

    /// Like `new`, and every event at or above `logLevel` goes to `logger` (events of requests
    /// as they are answered, the others as they happen). Called on the runtime's threads: keep
    /// it quick.
    pub fn with_logger(
        options: ServiceOptions,
        logger: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<WeatherCache, OptionsError> {
        WeatherCache::build(options, Some(Arc::new(logger)))
    }

    fn build(options: ServiceOptions, logger: Option<Logger>) -> Result<WeatherCache, OptionsError> {
        let background = logger.clone().map(|logger| {
            Arc::new(move |events: Vec<Event>| events.iter().for_each(|event| logger(event)))
                as crate::engine::BackgroundEvents
        });
        let engine = options.resolve()?.start(tokio::runtime::Handle::current(), background)?;
        Ok(WeatherCache { engine, logger })
    }

    /// The weather at (`lat`, `lon`) for `user`: from the user's own entry, another user's
    /// nearby one, or a fetch that every concurrent request for the area shares.
    pub async fn get_weather(&self, user: &str, lat: f64, lon: f64) -> Result<Weather, WeatherError> {
        self.ask(user, lat, lon, Mode::Normal).await
    }

    /// Like `get_weather`, but fetches unless the entry is younger than `minRefreshIntervalMs`.
    pub async fn refresh(&self, user: &str, lat: f64, lon: f64) -> Result<Weather, WeatherError> {
        self.ask(user, lat, lon, Mode::ForceRefresh).await
    }

    /// Makes sure the area is cached (fetching if it is not fresh).
    pub async fn warmup(&self, user: &str, lat: f64, lon: f64) -> Result<(), WeatherError> {
        self.ask(user, lat, lon, Mode::Warmup).await.map(drop)
    }

    /// Forgets a user's entries (e.g. on logout); `true` if there were any.
    pub fn clear_user(&self, user: &str) -> bool {
        self.engine.clear_user(user)
    }

    /// Moves a manual clock (`clock: manual`) forward; `false` on the system clock.
    pub fn advance_time(&self, ms: u64) -> bool {
        self.engine.advance_time(ms)
    }

    /// Counters and gauges: requests, hits by kind, upstream calls, errors, per provider...
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The same numbers in the Prometheus text format (`weather_cache_*`).
    pub fn metrics_text(&self) -> String {
        self.engine.stats().to_prometheus()
    }

    /// Settles every pending request (`ERR_SERVICE_CLOSED`), frees the caches and lets the
    /// shared tier's connection go; later calls fail with `ERR_SERVICE_CLOSED`.
    pub fn close(&self) {
        self.engine.close();
    }

    /// The engine itself (for the proxy, and for finer control: `begin`, `Pending`).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    async fn ask(&self, user: &str, lat: f64, lon: f64, mode: Mode) -> Result<Weather, WeatherError> {
        check(user, lat, lon)?;
        let mut recorder = Recorder::new(if self.logger.is_some() {
            self.engine.config().log_level
        } else {
            crate::engine::Level::Silent
        });
        let begun = self.engine.begin(Request { user, at: LatLon::new(lat, lon), mode }, &mut recorder);
        self.log(&recorder.events);
        let result = match begun {
            Begin::Ready(result) => result,
            Begin::Pending(pending) => {
                let reply = pending.wait(self.logger.is_some()).await;
                self.log(&reply.events);
                reply.result
            }
        };
        result.map(|served| self.weather(&served)).map_err(WeatherError::Request)
    }

    fn log(&self, events: &[Event]) {
        if let Some(logger) = &self.logger {
            events.iter().for_each(|event| logger(event));
        }
    }

    fn weather(&self, served: &Served) -> Weather {
        let entry = &served.entry;
        Weather {
            condition: entry.summary.condition.as_str().to_owned(),
            temp_c: entry.summary.temp_c,
            temp_f: entry.summary.temp_f,
            source: served.source,
            provider: entry.provider,
            fetched_at: entry.fetched_at,
            age_ms: entry.age(self.engine.now()),
            location: entry.location,
            bucket_key: self.engine.grid().key(entry.cell),
        }
    }
}

fn check(user: &str, lat: f64, lon: f64) -> Result<(), WeatherError> {
    if user.is_empty() || user.len() > MAX_USER_BYTES {
        let message = format!(
            "user must be a non-empty string of at most {MAX_USER_BYTES} bytes (received {} bytes)",
            user.len()
        );
        return Err(WeatherError::InvalidArgument(message));
    }
    for (name, value, limit) in [("lat", lat, 90.0), ("lon", lon, 180.0)] {
        if !value.is_finite() || !(-limit..=limit).contains(&value) {
            return Err(WeatherError::InvalidArgument(format!(
                "{name} must be >= -{limit} and <= {limit} (received {value})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Observation;
    use crate::engine::ClockKind;
    use crate::options::ProviderOption;
    use crate::provider::CustomProvider;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn counting(calls: Arc<AtomicUsize>) -> ProviderOption {
        ProviderOption::custom(CustomProvider::new("station", move |at| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Observation { celsius: 20.6, condition: format!("Clear at {:.0}", at.lat) }) }
        }))
    }

    #[tokio::test]
    async fn fifty_concurrent_requests_for_one_area_share_one_fetch() {
        let calls = Arc::new(AtomicUsize::new(0));
        let options = ServiceOptions { providers: Some(vec![counting(calls.clone())]), ..Default::default() };
        let cache = WeatherCache::new(options).unwrap();
        let asks = (0..50).map(|i| {
            let cache = cache.clone();
            async move { cache.get_weather(&format!("drone-{i}"), 48.8566 + f64::from(i) * 0.0001, 2.3522).await }
        });
        let answers = futures_join(asks.collect()).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|w| (w.temp_c, w.temp_f) == (21.0, 69.0))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let again = cache.get_weather("drone-0", 48.86, 2.35).await.unwrap();
        assert_eq!((again.source, again.provider, again.condition.as_str()), (Source::Cache, "station", "Clear at 49"));
        let stats = cache.stats();
        assert_eq!((stats.requests, stats.upstream_requests), (51, 1));
        cache.close();
        let closed = cache.get_weather("drone-0", 48.86, 2.35).await.unwrap_err();
        assert_eq!(closed, WeatherError::Request(RequestError::Closed));
    }

    #[tokio::test]
    async fn errors_reach_the_caller_and_events_the_logger() {
        let failing =
            ProviderOption::custom(CustomProvider::new("broken", |_| async { Err("sensor offline".to_owned()) }));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let options =
            ServiceOptions { providers: Some(vec![failing]), clock: Some(ClockKind::Manual), ..Default::default() };
        let cache = WeatherCache::with_logger(options, move |event| log.lock().unwrap().push(event.name())).unwrap();
        let error = cache.get_weather("u", 10.0, 10.0).await.unwrap_err();
        let WeatherError::Request(error) = error else { panic!("{error:?}") };
        assert_eq!(error.code(), "ERR_UPSTREAM_INVALID_RESPONSE");
        assert!(error.message().contains("sensor offline"));
        assert!(seen.lock().unwrap().contains(&"weather.error.network"), "{:?}", seen.lock().unwrap());
        let bad = cache.get_weather("u", 91.0, 0.0).await.unwrap_err();
        assert!(matches!(bad, WeatherError::InvalidArgument(ref m) if m.starts_with("lat must be")), "{bad:?}");
        assert!(matches!(cache.get_weather("", 1.0, 1.0).await, Err(WeatherError::InvalidArgument(_))));
    }

    /// Awaits every future (the crate has no `futures` dependency).
    async fn futures_join<T: Send + 'static>(
        futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
    ) -> Vec<T> {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    }
}
