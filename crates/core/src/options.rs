//! A service's options as plain data: what JS passes to `new WeatherService(options)`, what a
//! `weather-cache-server` config file holds under `[service]`, and what a Rust program builds.
//! Field names are the JS option names (`freshTtlMs`, `redis.keyPrefix`), so one document
//! describes all three.
//!
//! Types are the caller's business (the addon checks JS values, serde checks a config file);
//! every range and every relation between options is checked here, by `resolve`, with errors
//! that name the option by its path (`redis.keyPrefix`, `providers[1].userAgent`) for each
//! front end to render in its own words.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::engine::{
    tier_events, BackgroundEvents, BudgetConfig, ClockKind, Config, ConfigError, Engine, Level, Preset, Upstream,
    WhenRedisDown, MAX_DURATION_MS,
};
use crate::provider::{
    intern_configured, CustomProvider, LateKey, MetNorway, MetNorwayConfig, Nws, NwsConfig, OpenMeteo, OpenMeteoConfig,
    OpenWeather, OpenWeatherConfig, Provider, DEFAULT_BASE_URL, MET_NORWAY_BASE_URL, NWS_BASE_URL, OPEN_METEO_BASE_URL,
};
use crate::snapshot::{SnapshotConfig, DEFAULT_INTERVAL_MS, MIN_INTERVAL_MS};
use crate::tier::{SharedTier, TierConfig};

/// Read by front ends (never by `resolve`) when `apiKey` / `baseUrl` are not given.
pub const API_KEY_ENV: &str = "OPEN_WEATHER_API_KEY";
pub const BASE_URL_ENV: &str = "OPEN_WEATHER_BASE_URL";
/// The shared tier's URL for the addon's default instance and for `weather-cache serve`.
pub const REDIS_URL_ENV: &str = "WEATHER_CACHE_REDIS_URL";
/// The default instance's `logLevel`.
pub const LOG_LEVEL_ENV: &str = "WEATHER_CACHE_LOG_LEVEL";
pub const DEFAULT_KEY_PREFIX: &str = "weather-cache";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;
pub const MAX_REDIS_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1_048_576;
/// The smallest `maxResponseBytes`: an OpenWeather answer is about 500 bytes; a smaller limit
/// refuses every real answer ("exceeds 1 bytes"): a mistake, not a policy.
pub const MIN_RESPONSE_BYTES: u64 = 1_024;
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;
/// More would only lengthen every failing flight.
pub const MAX_PROVIDERS: usize = 8;
/// Largest value of the count options (capacities, decimals, budgets).
pub const MAX_COUNT: u64 = u32::MAX as u64;
const BUILT_IN: [&str; 4] = ["openweather", "open-meteo", "met-norway", "nws"];

/// A string that never shows in `{:?}` (an API key, a Redis URL with its password), nor in a
/// deserializer's error: serde's own message for a mistyped value quotes it (`apiKey =
/// 12345678` in a config file would print the key).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn unquoted<E: serde::de::Error>(kind: &str) -> E {
        E::custom(format_args!("invalid type: {kind}, expected a string (the value is not shown: it may be a secret)"))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
        Ok(Secret(value.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Secret, E> {
        Ok(Secret(value))
    }

    // The scalar kinds whose default message quotes the value; sequences and tables are
    // named without it already.
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::unquoted("boolean"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(Self::unquoted("integer"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(Self::unquoted("integer"))
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Secret, E> {
        Err(Self::unquoted("integer"))
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Secret, E> {
        Err(Self::unquoted("integer"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::unquoted("floating point"))
    }

    fn visit_char<E: serde::de::Error>(self, _: char) -> Result<Secret, E> {
        Err(Self::unquoted("character"))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(Self::unquoted("bytes"))
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `new WeatherService(options)`'s options. Every field is optional: `None` takes the default
/// (of the preset, for the policies).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceOptions {
    /// The defaults the policies come from (`resilient` unless told).
    pub preset: Option<Preset>,
    /// OpenWeather's key. Not read from the environment here (see `with_env_defaults`).
    pub api_key: Option<Secret>,
    /// OpenWeather's base URL (default `https://api.openweathermap.org`).
    pub base_url: Option<String>,
    pub fresh_ttl_ms: Option<u64>,
    pub stale_ttl_ms: Option<u64>,
    pub proximity_km: Option<f64>,
    pub grid_deg: Option<f64>,
    pub shared_capacity: Option<u64>,
    pub per_user_capacity: Option<u64>,
    pub max_users: Option<u64>,
    pub coordinate_decimals: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub coalesce: Option<bool>,
    pub clock: Option<ClockKind>,
    pub min_refresh_interval_ms: Option<u64>,
    /// Refresh-ahead window before expiry (default 20 s, at most a tenth of `freshTtlMs`
    /// unless set; 0: off).
    pub refresh_ahead_ms: Option<u64>,
    pub initial_backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    pub error_cooldown_ms: Option<u64>,
    pub jitter_ratio: Option<f64>,
    pub max_response_bytes: Option<u64>,
    /// Events below this level are never built (`info` unless told).
    pub log_level: Option<Level>,
    /// The shared tier, opt-in.
    pub redis: Option<RedisOption>,
    /// OpenWeather's call budget.
    pub budget: Option<BudgetOptions>,
    /// The upstreams in order of preference (default: OpenWeather alone).
    pub providers: Option<Vec<ProviderOption>>,
    /// OpenWeather's key when it may arrive or change while the service runs: without
    /// `apiKey`, OpenWeather uses this one as it is at each call (the JS default instance sets
    /// it from `OPEN_WEATHER_API_KEY`, and again when the provider refused it and the
    /// environment has another). Not an option of its own in JSON.
    #[serde(skip)]
    pub late_api_key: Option<LateKey>,
    /// Whether entries keep the forecast products (default true). `false` for a service whose
    /// callers never ask for them: nothing kept, One Call asked with `exclude` again.
    pub products: Option<bool>,
    /// Warm restarts: a file the cache is saved to and loaded from (see `crate::snapshot`).
    pub snapshot: Option<SnapshotOption>,
}

/// `snapshot`: a path, or the path with settings.
#[derive(Clone, Debug, PartialEq)]
pub enum SnapshotOption {
    Path(String),
    Settings(SnapshotOptions),
}

impl<'de> Deserialize<'de> for SnapshotOption {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(deserializer, "a path or a table { path, intervalMs }", SnapshotOption::Path, SnapshotOption::Settings)
    }
}

/// A string or a table, told apart by their shape. Not `#[serde(untagged)]`: its error for a
/// typo in the table ("data did not match any variant of untagged enum ...") named neither
/// the key nor the problem; here the table's own error (`unknown field ...`) stands.
fn string_or_table<'de, D, T, M>(deserializer: D, expecting: &'static str, from_string: fn(String) -> T, from_table: fn(M) -> T) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    M: Deserialize<'de>,
{
    struct Shape<T, M> {
        expecting: &'static str,
        from_string: fn(String) -> T,
        from_table: fn(M) -> T,
    }
    impl<'de, T, M: Deserialize<'de>> serde::de::Visitor<'de> for Shape<T, M> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            Ok((self.from_string)(text.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<T, E> {
            Ok((self.from_string)(text))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            M::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(self.from_table)
        }
    }
    deserializer.deserialize_any(Shape { expecting, from_string, from_table })
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotOptions {
    pub path: String,
    /// How often it is written (default 60000; at least 100). Also written on `close()`.
    pub interval_ms: Option<u64>,
}

/// `redis`: a URL, or the URL with settings.
#[derive(Clone, Debug)]
pub enum RedisOption {
    Url(Secret),
    Settings(RedisOptions),
}

impl<'de> Deserialize<'de> for RedisOption {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(deserializer, "a redis:// URL or a table { url, keyPrefix, timeoutMs }", |url| RedisOption::Url(Secret(url)), RedisOption::Settings)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisOptions {
    /// `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` (it may hold a password).
    pub url: Secret,
    /// Namespace of the keys (1 to 64 characters without braces; default `weather-cache`).
    pub key_prefix: Option<String>,
    /// Deadline of every Redis operation (1 to 60000; default 100).
    pub timeout_ms: Option<u64>,
}

/// `budget`: upstream calls a minute and a UTC day (across instances with a shared tier).
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetOptions {
    pub per_minute: Option<u64>,
    pub per_day: Option<u64>,
    pub when_redis_down: Option<WhenRedisDown>,
}

/// An entry of `providers`: a built-in one by name (`"openweather"`, `"open-meteo"`), a
/// built-in one configured, or one the application wrote.
#[derive(Clone, Debug)]
pub enum ProviderOption {
    Named(String),
    Configured(ProviderSettings),
    /// Not readable from a config file: code makes it.
    Custom {
        provider: CustomProvider,
        budget: Option<BudgetOptions>,
    },
}

impl ProviderOption {
    /// A provider the application wrote (see `CustomProvider`), without a budget.
    pub fn custom(provider: CustomProvider) -> ProviderOption {
        ProviderOption::Custom { provider, budget: None }
    }
}

impl<'de> Deserialize<'de> for ProviderOption {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(deserializer, "a provider's name or a table { name, apiKey, baseUrl, userAgent, budget }", ProviderOption::Named, ProviderOption::Configured)
    }
}

/// A built-in provider with settings of its own.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSettings {
    /// `openweather`, `open-meteo`, `met-norway` or `nws`.
    pub name: String,
    /// OpenWeather's (default: the top-level `apiKey`) or Open-Meteo's commercial key.
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
    /// MET Norway's and NWS's required identification (your application and a contact).
    pub user_agent: Option<String>,
    /// OpenWeather's defaults to the top-level `budget`; the others' to none.
    pub budget: Option<BudgetOptions>,
}

/// An option that cannot be used: which (its path, `redis.keyPrefix`) and why. Front ends name
/// it their way (`options.redis.keyPrefix` in JS, `--redis-key-prefix` for the server).
#[derive(Clone, Debug, PartialEq)]
pub struct OptionsError {
    pub option: String,
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A number outside its range (`ERR_OUT_OF_RANGE` in JS).
    Range { expected: String, received: String },
    /// A value that cannot be used (`ERR_INVALID_ARG_VALUE` in JS).
    Value { reason: String, received: String },
}

impl OptionsError {
    fn range(option: impl Into<String>, expected: impl Into<String>, received: impl ToString) -> OptionsError {
        OptionsError {
            option: option.into(),
            problem: Problem::Range { expected: expected.into(), received: received.to_string() },
        }
    }

    fn value(option: impl Into<String>, reason: impl Into<String>, received: impl Into<String>) -> OptionsError {
        OptionsError {
            option: option.into(),
            problem: Problem::Value { reason: reason.into(), received: received.into() },
        }
    }

    /// The same problem, the option named `option`.
    pub fn renamed(self, option: impl Into<String>) -> OptionsError {
        OptionsError { option: option.into(), ..self }
    }

    /// The problem alone, after the option's name: "must be >= 1 (received 0)".
    pub fn describe(&self) -> String {
        match &self.problem {
            Problem::Range { expected, received } => format!("must be {expected} (received {received})"),
            Problem::Value { reason, received } => format!("{reason} (received {received})"),
        }
    }
}

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.option, self.describe())
    }
}

impl std::error::Error for OptionsError {}

impl From<ConfigError> for OptionsError {
    fn from(error: ConfigError) -> OptionsError {
        OptionsError::range(error.option, error.expected, error.received)
    }
}

/// Options checked and completed: the engine's settings, its upstreams, the shared tier's.
pub struct Resolved {
    pub config: Config,
    pub upstreams: Vec<Upstream>,
    pub tier: Option<TierConfig>,
    pub snapshot: Option<SnapshotConfig>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let upstreams: Vec<_> = self.upstreams.iter().map(Upstream::name).collect();
        f.debug_struct("Resolved")
            .field("config", &self.config)
            .field("upstreams", &upstreams)
            .field("tier", &self.tier.as_ref().map(|t| &t.key_prefix))
            .finish()
    }
}

impl ServiceOptions {
    /// Fills `apiKey` and `baseUrl` from `OPEN_WEATHER_API_KEY` and `OPEN_WEATHER_BASE_URL`
    /// where they are not set (what the JS constructor does).
    pub fn with_env_defaults(mut self) -> ServiceOptions {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        if self.api_key.is_none() {
            self.api_key = var(API_KEY_ENV).map(Secret);
        }
        if self.base_url.is_none() {
            self.base_url = var(BASE_URL_ENV);
        }
        self
    }

    /// Whether some provider can be asked without an OpenWeather key: a keyless built-in one
    /// (Open-Meteo, MET Norway) or the application's own.
    pub fn has_keyless_provider(&self) -> bool {
        self.providers.iter().flatten().any(|p| match p {
            ProviderOption::Named(name) => name != "openweather",
            ProviderOption::Configured(settings) => settings.name != "openweather",
            ProviderOption::Custom { .. } => true,
        })
    }

    /// Checks every option (ranges, relations, provider settings, URLs) and completes them with
    /// the defaults.
    pub fn resolve(self) -> Result<Resolved, OptionsError> {
        let mut config = Config::preset(self.preset.unwrap_or(Preset::Resilient));
        let c = &mut config;
        for (option, value, target) in [
            ("freshTtlMs", self.fresh_ttl_ms, &mut c.fresh_ttl_ms),
            ("staleTtlMs", self.stale_ttl_ms, &mut c.stale_ttl_ms),
            ("minRefreshIntervalMs", self.min_refresh_interval_ms, &mut c.min_refresh_interval_ms),
            ("refreshAheadMs", self.refresh_ahead_ms, &mut c.refresh_ahead_ms),
            ("initialBackoffMs", self.initial_backoff_ms, &mut c.initial_backoff_ms),
            ("maxBackoffMs", self.max_backoff_ms, &mut c.max_backoff_ms),
            ("errorCooldownMs", self.error_cooldown_ms, &mut c.error_cooldown_ms),
            ("requestTimeoutMs", self.request_timeout_ms, &mut c.request_timeout_ms),
        ] {
            if let Some(ms) = value {
                within(option, ms, MAX_DURATION_MS)?;
                *target = ms;
            }
        }
        if self.refresh_ahead_ms.is_none() {
            // A short TTL alone must not make the default window cover most of it.
            c.refresh_ahead_ms = c.refresh_ahead_ms.min(c.fresh_ttl_ms / 10);
        }
        if self.max_backoff_ms.is_none() {
            // Raising only the first window must not collide with the preset's cap.
            c.max_backoff_ms = c.max_backoff_ms.max(c.initial_backoff_ms);
        }
        for (value, target) in [(self.proximity_km, &mut c.proximity_km), (self.grid_deg, &mut c.grid_deg)] {
            if let Some(x) = value {
                *target = x;
            }
        }
        if let Some(ratio) = self.jitter_ratio {
            c.jitter_ratio = ratio;
        }
        for (option, value, target) in [
            ("sharedCapacity", self.shared_capacity, &mut c.shared_capacity),
            ("perUserCapacity", self.per_user_capacity, &mut c.per_user_capacity),
            ("maxUsers", self.max_users, &mut c.max_users),
        ] {
            if let Some(n) = value {
                within(option, n, MAX_COUNT)?;
                *target = n as usize;
            }
        }
        if let Some(decimals) = self.coordinate_decimals {
            within("coordinateDecimals", decimals, MAX_COUNT)?;
            c.coordinate_decimals = decimals as u32;
        }
        if let Some(coalesce) = self.coalesce {
            c.coalesce = coalesce;
        }
        if let Some(products) = self.products {
            c.keep_products = products;
        }
        if let Some(clock) = self.clock {
            c.clock = clock;
        }
        if let Some(level) = self.log_level {
            c.log_level = level;
        }
        config.validate()?;
        let max_response_bytes = self.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if !(MIN_RESPONSE_BYTES..=MAX_RESPONSE_BYTES).contains(&max_response_bytes) {
            let expected = format!("an integer >= {MIN_RESPONSE_BYTES} and <= {MAX_RESPONSE_BYTES}");
            return Err(OptionsError::range("maxResponseBytes", expected, max_response_bytes));
        }
        let budget = budget("budget", self.budget)?;
        if let Some(providers) = &self.providers {
            check_providers(providers)?;
        }
        let tier = self.redis.map(tier).transpose()?;
        let snapshot = self.snapshot.map(snapshot).transpose()?;
        let openweather = OpenWeatherConfig {
            api_key: self.api_key.map(|key| key.0),
            base_url: self.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            coordinate_decimals: config.coordinate_decimals,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            max_response_bytes,
        };
        let late = self.late_api_key.as_ref();
        let upstreams = match self.providers {
            None => vec![Upstream {
                provider: built(
                    awaiting(OpenWeather::new(openweather.clone()).map(|p| p.with_products(config.keep_products)), &openweather, late),
                    "baseUrl",
                    &openweather.base_url,
                )?,
                budget,
            }],
            Some(providers) => providers
                .into_iter()
                .enumerate()
                .map(|(i, option)| {
                    upstream(option, &format!("providers[{i}]"), &openweather, budget, late, config.keep_products)
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Resolved { config, upstreams, tier, snapshot })
    }
}

impl Resolved {
    /// Starts the engine on `runtime` (and the shared tier's connection, in the background);
    /// the events of work nobody waits for (background refreshes, the tier's health) go to
    /// `background`. Fails only on a shared-tier URL that cannot be used (`redis`).
    pub fn start(
        self,
        runtime: tokio::runtime::Handle,
        background: Option<BackgroundEvents>,
    ) -> Result<Engine, OptionsError> {
        let tier = match self.tier {
            Some(config) => {
                let observer = tier_events(background.clone(), self.config.log_level);
                // The URL itself is never shown: it may hold a password.
                let tier = SharedTier::new(config, &runtime, observer)
                    .map_err(|reason| OptionsError::value("redis", reason, "a URL (not shown)"))?;
                Some(tier)
            }
            None => None,
        };
        let snapshot = self.snapshot;
        let engine = Engine::new(self.config, self.upstreams, tier, runtime.clone(), background.clone());
        if let Some(snapshot) = snapshot {
            // Loaded before the first request; the writer stops when the engine closes.
            crate::snapshot::start(&engine, &snapshot, &runtime, background);
        }
        Ok(engine)
    }
}

/// `snapshot`: a non-empty path, and an interval of at least `MIN_INTERVAL_MS`.
fn snapshot(option: SnapshotOption) -> Result<SnapshotConfig, OptionsError> {
    let (path, interval_ms, name) = match option {
        SnapshotOption::Path(path) => (path, None, "snapshot"),
        SnapshotOption::Settings(settings) => (settings.path, settings.interval_ms, "snapshot.path"),
    };
    if path.is_empty() || path.contains('\0') {
        return Err(OptionsError::value(name, "must be a file path", format!("{path:?}")));
    }
    let interval_ms = interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
    if !(MIN_INTERVAL_MS..=MAX_DURATION_MS).contains(&interval_ms) {
        let expected = format!("an integer >= {MIN_INTERVAL_MS} and <= {MAX_DURATION_MS}");
        return Err(OptionsError::range("snapshot.intervalMs", expected, interval_ms));
    }
    Ok(SnapshotConfig { path: path.into(), interval: Duration::from_millis(interval_ms) })
}

fn within(option: &str, value: u64, max: u64) -> Result<(), OptionsError> {
    if value > max {
        return Err(OptionsError::range(option, format!("an integer >= 0 and <= {max}"), value));
    }
    Ok(())
}

/// A budget's limits, each at least 1 when given.
fn budget(path: &str, options: Option<BudgetOptions>) -> Result<BudgetConfig, OptionsError> {
    let mut budget = BudgetConfig::UNLIMITED;
    let Some(options) = options else { return Ok(budget) };
    for (key, value, target) in
        [("perMinute", options.per_minute, &mut budget.per_minute), ("perDay", options.per_day, &mut budget.per_day)]
    {
        match value {
            Some(0) => {
                return Err(OptionsError::range(
                    format!("{path}.{key}"),
                    "an integer >= 1 (leave it out for no limit)",
                    0,
                ))
            }
            Some(n) => {
                within(&format!("{path}.{key}"), n, MAX_COUNT)?;
                *target = n;
            }
            None => {}
        }
    }
    budget.when_redis_down = options.when_redis_down.unwrap_or(WhenRedisDown::Local);
    Ok(budget)
}

fn tier(option: RedisOption) -> Result<TierConfig, OptionsError> {
    let mut tier = TierConfig {
        url: String::new(),
        key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        timeout: Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS),
    };
    match option {
        RedisOption::Url(url) => tier.url = url.0,
        RedisOption::Settings(settings) => {
            tier.url = settings.url.0;
            if let Some(prefix) = settings.key_prefix {
                let fits = !prefix.is_empty() && prefix.len() <= 64 && !prefix.contains(['{', '}']);
                if !fits {
                    let received = format!("'{}'", prefix.chars().take(32).collect::<String>());
                    return Err(OptionsError::value(
                        "redis.keyPrefix",
                        "must be 1 to 64 characters without braces",
                        received,
                    ));
                }
                tier.key_prefix = prefix;
            }
            if let Some(ms) = settings.timeout_ms {
                if !(1..=MAX_REDIS_TIMEOUT_MS).contains(&ms) {
                    return Err(OptionsError::range(
                        "redis.timeoutMs",
                        format!("an integer >= 1 and <= {MAX_REDIS_TIMEOUT_MS}"),
                        ms,
                    ));
                }
                tier.timeout = Duration::from_millis(ms);
            }
        }
    }
    Ok(tier)
}

/// The list's length, each entry's name, and each name once (metrics and budgets are per name).
fn check_providers(providers: &[ProviderOption]) -> Result<(), OptionsError> {
    if providers.is_empty() || providers.len() > MAX_PROVIDERS {
        let reason = format!("must list 1 to {MAX_PROVIDERS} providers");
        return Err(OptionsError::value("providers", reason, format!("{} entries", providers.len())));
    }
    let mut names: Vec<&str> = Vec::with_capacity(providers.len());
    for (i, option) in providers.iter().enumerate() {
        let path = format!("providers[{i}]");
        let name = match option {
            ProviderOption::Named(name) => {
                match name.as_str() {
                    "openweather" | "open-meteo" => name.as_str(),
                    "met-norway" => return Err(OptionsError::value(
                        path,
                        "needs { name: 'met-norway', userAgent }: MET Norway's terms require an identifying User-Agent",
                        "'met-norway'",
                    )),
                    "nws" => return Err(OptionsError::value(
                        path,
                        "needs { name: 'nws', userAgent }: NWS requires an identifying User-Agent",
                        "'nws'",
                    )),
                    other => {
                        return Err(OptionsError::value(
                            path,
                            "must be 'openweather', 'open-meteo' or an object",
                            format!("'{}'", other.chars().take(32).collect::<String>()),
                        ))
                    }
                }
            }
            ProviderOption::Configured(settings) => {
                if !BUILT_IN.contains(&settings.name.as_str()) {
                    return Err(OptionsError::value(
                        format!("{path}.name"),
                        "must be 'openweather', 'open-meteo', 'met-norway' or 'nws', or come with a fetch function",
                        shown_name(&settings.name),
                    ));
                }
                if settings.name == "met-norway" && settings.user_agent.as_deref().is_none_or(|ua| ua.trim().is_empty())
                {
                    return Err(OptionsError::value(
                        format!("{path}.userAgent"),
                        "is required: MET Norway's terms ask for an identifying User-Agent (your application and a contact)",
                        "nothing",
                    ));
                }
                if settings.name == "nws" && settings.user_agent.as_deref().is_none_or(|ua| ua.trim().is_empty()) {
                    return Err(OptionsError::value(
                        format!("{path}.userAgent"),
                        "is required: NWS asks for an identifying User-Agent (your application and a contact)",
                        "nothing",
                    ));
                }
                settings.name.as_str()
            }
            ProviderOption::Custom { provider, .. } => {
                let name = provider.name();
                let fits = !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control);
                if !fits || BUILT_IN.contains(&name) {
                    return Err(OptionsError::value(
                        format!("{path}.name"),
                        "must be 1 to 64 printable characters, and not a built-in provider's name",
                        shown_name(name),
                    ));
                }
                name
            }
        };
        if names.contains(&name) {
            let reason = "names each provider once (metrics and budgets are per name)";
            return Err(OptionsError::value(path, reason, format!("'{name}' again")));
        }
        names.push(name);
    }
    Ok(())
}

fn shown_name(name: &str) -> String {
    format!("'{}'", name.chars().filter(|c| !c.is_control()).take(32).collect::<String>())
}

/// One entry of `providers` (already checked by `check_providers`) as the engine's upstream.
fn upstream(
    option: ProviderOption,
    path: &str,
    openweather: &OpenWeatherConfig,
    top_budget: BudgetConfig,
    late: Option<&LateKey>,
    products: bool,
) -> Result<Upstream, OptionsError> {
    let timeout = openweather.request_timeout;
    let (decimals, max_response_bytes) = (openweather.coordinate_decimals, openweather.max_response_bytes);
    let settings = match option {
        ProviderOption::Named(name) => ProviderSettings { name, ..ProviderSettings::default() },
        ProviderOption::Configured(settings) => settings,
        ProviderOption::Custom { provider, budget: limits } => {
            let name = intern_configured(provider.name());
            let budget = budget(&format!("{path}.budget"), limits)?;
            return Ok(Upstream { provider: provider.build(name, timeout), budget });
        }
    };
    let budget_path = format!("{path}.budget");
    let url_path = |given: bool| if given { format!("{path}.baseUrl") } else { "baseUrl".to_owned() };
    match settings.name.as_str() {
        "openweather" => {
            let mut config = openweather.clone();
            let from = url_path(settings.base_url.is_some());
            if let Some(url) = settings.base_url {
                config.base_url = url;
            }
            if let Some(key) = settings.api_key {
                config.api_key = Some(key.0);
            }
            let budget = match settings.budget {
                Some(limits) => budget(&budget_path, Some(limits))?,
                None => top_budget,
            };
            let made = awaiting(OpenWeather::new(config.clone()).map(|p| p.with_products(products)), &config, late);
            Ok(Upstream { provider: built(made, &from, &config.base_url)?, budget })
        }
        "open-meteo" => {
            let base_url = settings.base_url.unwrap_or_else(|| OPEN_METEO_BASE_URL.to_owned());
            let config = OpenMeteoConfig {
                api_key: settings.api_key.map(|key| key.0),
                base_url: base_url.clone(),
                coordinate_decimals: decimals,
                request_timeout: timeout,
                max_response_bytes,
            };
            let budget = budget(&budget_path, settings.budget)?;
            let made = OpenMeteo::new(config).map(|p| p.with_products(products));
            Ok(Upstream { provider: built(made, &format!("{path}.baseUrl"), &base_url)?, budget })
        }
        "nws" => {
            let base_url = settings.base_url.unwrap_or_else(|| NWS_BASE_URL.to_owned());
            let config = NwsConfig {
                user_agent: settings.user_agent.unwrap_or_default(),
                base_url: base_url.clone(),
                request_timeout: timeout,
                max_response_bytes,
            };
            let budget = budget(&budget_path, settings.budget)?;
            let provider = Nws::new(config).map_err(|reason| {
                let option =
                    if reason.contains("userAgent") { format!("{path}.userAgent") } else { format!("{path}.baseUrl") };
                OptionsError::value(option, reason, shown(&base_url))
            })?;
            Ok(Upstream { provider: Arc::new(provider), budget })
        }
        _ => {
            let base_url = settings.base_url.unwrap_or_else(|| MET_NORWAY_BASE_URL.to_owned());
            let config = MetNorwayConfig {
                user_agent: settings.user_agent.unwrap_or_default(),
                base_url: base_url.clone(),
                coordinate_decimals: decimals,
                request_timeout: timeout,
                max_response_bytes,
            };
            let budget = budget(&budget_path, settings.budget)?;
            let provider = MetNorway::new(config).map_err(|reason| {
                let option =
                    if reason.contains("userAgent") { format!("{path}.userAgent") } else { format!("{path}.baseUrl") };
                OptionsError::value(option, reason, shown(&base_url))
            })?;
            Ok(Upstream { provider: Arc::new(provider), budget })
        }
    }
}

/// OpenWeather, taking the late key once set when no key was configured.
fn awaiting(
    made: Result<OpenWeather, String>,
    config: &OpenWeatherConfig,
    late: Option<&LateKey>,
) -> Result<OpenWeather, String> {
    match late.filter(|_| config.api_key.is_none()) {
        Some(late) => made.map(|provider| provider.with_late_key(late.clone())),
        None => made,
    }
}

fn built<P: Provider>(made: Result<P, String>, option: &str, url: &str) -> Result<Arc<dyn Provider>, OptionsError> {
    made.map(|p| Arc::new(p) as Arc<dyn Provider>).map_err(|reason| OptionsError::value(option, reason, shown(url)))
}

/// A URL as errors may show it: never its credentials, query or fragment (a key could sit there).
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => format!("'{}://{}{}'", url.scheme(), url.host_str().unwrap_or(""), url.path()),
        Err(_) => "a string that is not a URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(options: ServiceOptions) -> OptionsError {
        options.resolve().unwrap_err()
    }

    #[test]
    fn defaults_resolve_to_openweather_alone() {
        let resolved = ServiceOptions::default().resolve().unwrap();
        assert_eq!(resolved.config, Config::preset(Preset::Resilient));
        assert_eq!(resolved.upstreams.len(), 1);
        assert_eq!(resolved.upstreams[0].name(), "openweather");
        assert!(resolved.tier.is_none());
    }

    #[test]
    fn a_config_file_and_js_name_the_same_fields() {
        let options: ServiceOptions = serde_json::from_str(
            r#"{ "preset": "minimal", "freshTtlMs": 60000, "logLevel": "debug", "clock": "manual",
                 "redis": { "url": "redis://127.0.0.1:6379", "keyPrefix": "fleet-a" },
                 "budget": { "perMinute": 50, "whenRedisDown": "closed" },
                 "providers": ["open-meteo", { "name": "met-norway", "userAgent": "app/1 ops@example.com" }] }"#,
        )
        .unwrap();
        let resolved = options.resolve().unwrap();
        assert_eq!((resolved.config.fresh_ttl_ms, resolved.config.coalesce), (60_000, false));
        assert_eq!((resolved.config.log_level, resolved.config.clock), (Level::Debug, ClockKind::Manual));
        assert_eq!(resolved.tier.unwrap().key_prefix, "fleet-a");
        let names: Vec<_> = resolved.upstreams.iter().map(Upstream::name).collect();
        assert_eq!(names, ["open-meteo", "met-norway"]);
        let unknown = serde_json::from_str::<ServiceOptions>(r#"{ "freshTtl": 1 }"#).unwrap_err();
        assert!(unknown.to_string().contains("unknown field `freshTtl`"), "{unknown}");
    }

    #[test]
    fn errors_name_the_option_by_its_path() {
        let cases: Vec<(ServiceOptions, &str)> = vec![
            (ServiceOptions { proximity_km: Some(0.5), ..Default::default() }, "proximityKm"),
            (ServiceOptions { fresh_ttl_ms: Some(MAX_DURATION_MS + 1), ..Default::default() }, "freshTtlMs"),
            (ServiceOptions { max_response_bytes: Some(10), ..Default::default() }, "maxResponseBytes"),
            (ServiceOptions { base_url: Some("ftp://x".into()), ..Default::default() }, "baseUrl"),
            (
                ServiceOptions {
                    budget: Some(BudgetOptions { per_minute: Some(0), ..Default::default() }),
                    ..Default::default()
                },
                "budget.perMinute",
            ),
            (
                ServiceOptions {
                    redis: Some(RedisOption::Settings(RedisOptions {
                        key_prefix: Some("{x}".into()),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
                "redis.keyPrefix",
            ),
            (ServiceOptions { providers: Some(vec![]), ..Default::default() }, "providers"),
            (
                ServiceOptions {
                    providers: Some(vec![ProviderOption::Named("met-norway".into())]),
                    ..Default::default()
                },
                "providers[0]",
            ),
            (
                ServiceOptions {
                    providers: Some(vec![
                        ProviderOption::Named("open-meteo".into()),
                        ProviderOption::Configured(ProviderSettings {
                            name: "met-norway".into(),
                            ..Default::default()
                        }),
                    ]),
                    ..Default::default()
                },
                "providers[1].userAgent",
            ),
            (
                ServiceOptions {
                    providers: Some(vec![
                        ProviderOption::Named("open-meteo".into()),
                        ProviderOption::Configured(ProviderSettings {
                            name: "open-meteo".into(),
                            base_url: Some("nope".into()),
                            ..Default::default()
                        }),
                    ]),
                    ..Default::default()
                },
                "providers[1]",
            ),
        ];
        for (options, option) in cases {
            assert_eq!(error(options).option, option);
        }
        let custom = CustomProvider::new("openweather", |_| async { Err("never".to_owned()) });
        let options = ServiceOptions { providers: Some(vec![ProviderOption::custom(custom)]), ..Default::default() };
        assert_eq!(error(options).option, "providers[0].name");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let options = ServiceOptions {
            api_key: Some(Secret::new("k3y-v4lue")),
            redis: Some(RedisOption::Url(Secret::new("redis://:pa55@host"))),
            ..Default::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("k3y-v4lue") && !shown.contains("pa55"), "{shown}");
    }

    #[test]
    fn keyless_providers_are_told_apart() {
        assert!(!ServiceOptions::default().has_keyless_provider());
        let with = |name: &str| ServiceOptions {
            providers: Some(vec![ProviderOption::Named(name.into())]),
            ..Default::default()
        };
        assert!(!with("openweather").has_keyless_provider());
        assert!(with("open-meteo").has_keyless_provider());
    }
}
