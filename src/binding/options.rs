//! `new WeatherService(options)`: types checked here, ranges by the engine's `Config`.

use std::borrow::Cow;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};

use super::args::{finite, option, type_of};
use super::errors::{clear_pending_exception, describe, js_number, ArgError, Checked};
use weather_cache_core::engine::{BudgetConfig, ClockKind, Config, ConfigError, Level, Preset, WhenRedisDown, MAX_DURATION_MS};
use weather_cache_core::provider::{OpenWeatherConfig, DEFAULT_BASE_URL};
use weather_cache_core::tier::TierConfig;

/// Environment variables read (at construction) when `apiKey` / `baseUrl` are not given.
pub const API_KEY_ENV: &str = "OPEN_WEATHER_API_KEY";
pub const BASE_URL_ENV: &str = "OPEN_WEATHER_BASE_URL";
/// Read (on first use) by the default instance only: a shared tier is opt-in.
pub const REDIS_URL_ENV: &str = "WEATHER_CACHE_REDIS_URL";
pub const DEFAULT_KEY_PREFIX: &str = "weather-cache";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1_048_576;
/// The smallest `maxResponseBytes`: an OpenWeather answer is about 500 bytes.
pub const MIN_RESPONSE_BYTES: u64 = 1_024;

pub struct Options<'e> {
    pub config: Config,
    pub provider: OpenWeatherConfig,
    /// Where `baseUrl` came from, for error messages.
    pub base_url_from: &'static str,
    /// The service's own logger (pino-like), for events no caller is waiting for.
    pub logger: Option<Object<'e>>,
    /// OpenWeather's call budget.
    pub budget: BudgetConfig,
    /// `providers`, when given: the upstreams in order of preference (see `providers.rs`).
    pub providers: Option<Vec<super::providers::ProviderSpec<'e>>>,
    pub max_response_bytes: u64,
    /// The shared tier, and where its URL came from (for error messages).
    pub redis: Option<(TierConfig, &'static str)>,
}

/// `default_instance`: the module's `weatherService`, which also reads `WEATHER_CACHE_REDIS_URL`.
pub fn parse<'e>(env: &'e Env, value: &Unknown<'e>, default_instance: bool) -> Checked<Options<'e>> {
    let reader = Reader::of(env, value, "options")?;
    let preset = match reader.choice("preset", &["resilient", "minimal"])? {
        Some("minimal") => Preset::Minimal,
        _ => Preset::Resilient,
    };
    let mut config = Config::preset(preset);
    let c = &mut config;
    reader.duration("freshTtlMs", &mut c.fresh_ttl_ms)?;
    reader.duration("staleTtlMs", &mut c.stale_ttl_ms)?;
    reader.duration("minRefreshIntervalMs", &mut c.min_refresh_interval_ms)?;
    reader.duration("initialBackoffMs", &mut c.initial_backoff_ms)?;
    if reader.get("maxBackoffMs")?.is_none() {
        // Raising only the first window must not collide with the preset's cap.
        c.max_backoff_ms = c.max_backoff_ms.max(c.initial_backoff_ms);
    }
    reader.duration("maxBackoffMs", &mut c.max_backoff_ms)?;
    reader.duration("errorCooldownMs", &mut c.error_cooldown_ms)?;
    reader.number("proximityKm", &mut c.proximity_km)?;
    reader.number("gridDeg", &mut c.grid_deg)?;
    reader.number("jitterRatio", &mut c.jitter_ratio)?;
    let integer = |key: &str, target: &mut usize| -> Checked<()> {
        if let Some(n) = reader.integer(key, u32::MAX as u64)? {
            *target = n as usize;
        }
        Ok(())
    };
    integer("sharedCapacity", &mut c.shared_capacity)?;
    integer("perUserCapacity", &mut c.per_user_capacity)?;
    integer("maxUsers", &mut c.max_users)?;
    if let Some(decimals) = reader.integer("coordinateDecimals", u32::MAX as u64)? {
        c.coordinate_decimals = decimals as u32;
    }
    if let Some(coalesce) = reader.boolean("coalesce")? {
        c.coalesce = coalesce;
    }
    if let Some(clock) = reader.choice("clock", &["system", "manual"])? {
        c.clock = if clock == "manual" { ClockKind::Manual } else { ClockKind::System };
    }
    let levels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
    if let Some(level) = reader.choice("logLevel", &levels)? {
        c.log_level = Level::parse(level).unwrap_or(Level::Info);
    }
    if let Some(ms) = reader.integer("requestTimeoutMs", MAX_DURATION_MS)? {
        c.request_timeout_ms = ms;
    }
    config.validate().map_err(range_error)?;
    let request_timeout_ms = config.request_timeout_ms;
    let max_response_bytes = reader.integer("maxResponseBytes", 1 << 30)?.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    if max_response_bytes < MIN_RESPONSE_BYTES {
        // A smaller limit refuses every real answer ("exceeds 1 bytes"): a mistake, not a policy.
        return Err(ArgError::Range {
            name: "options.maxResponseBytes".into(),
            expected: format!("an integer >= {MIN_RESPONSE_BYTES} and <= {}", 1 << 30),
            received: max_response_bytes.to_string(),
        });
    }
    let api_key = match reader.secret("apiKey")? {
        Some(key) => Some(key),
        None => env_var(env, API_KEY_ENV),
    };
    let (base_url, base_url_from) = match (reader.string("baseUrl")?, env_var(env, BASE_URL_ENV)) {
        (Some(url), _) => (url, "options.baseUrl"),
        (None, Some(url)) => (url, "process.env.OPEN_WEATHER_BASE_URL"),
        (None, None) => (DEFAULT_BASE_URL.to_owned(), "options.baseUrl"),
    };
    let provider = OpenWeatherConfig {
        api_key,
        base_url,
        coordinate_decimals: config.coordinate_decimals,
        request_timeout: Duration::from_millis(request_timeout_ms),
        max_response_bytes,
    };
    let logger = reader.logger()?;
    let budget = budget(&reader)?;
    let providers = super::providers::parse(&reader)?;
    let redis = match redis(&reader)? {
        Some(tier) => Some((tier, "options.redis")),
        None if default_instance => env_var(env, REDIS_URL_ENV).map(|url| {
            let tier = TierConfig {
                url,
                key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
                timeout: Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS),
            };
            (tier, "process.env.WEATHER_CACHE_REDIS_URL")
        }),
        None => None,
    };
    Ok(Options { config, provider, base_url_from, logger, budget, providers, max_response_bytes, redis })
}

/// `redis: string | { url, keyPrefix?, timeoutMs? }`. The URL is checked when the tier is
/// made; no message ever repeats it (it may hold a password).
fn redis(reader: &Reader) -> Checked<Option<TierConfig>> {
    let Some(value) = reader.get("redis")? else { return Ok(None) };
    let mut tier = TierConfig {
        url: String::new(),
        key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        timeout: Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS),
    };
    match type_of(&value) {
        ValueType::Null => return Ok(None),
        ValueType::String => tier.url = unsafe { value.cast::<String>() }.unwrap_or_default(),
        ValueType::Object => {
            let options = reader.nested(&value, "options.redis");
            tier.url = options.secret("url")?.ok_or_else(|| ArgError::Type {
                name: "options.redis.url".into(),
                expected: "string",
                received: "undefined".into(),
            })?;
            if let Some(prefix) = options.string("keyPrefix")? {
                let fits = !prefix.is_empty() && prefix.len() <= 64 && !prefix.contains(['{', '}']);
                if !fits {
                    return Err(ArgError::Value {
                        name: "options.redis.keyPrefix".into(),
                        reason: "must be 1 to 64 characters without braces".into(),
                        received: format!("'{}'", prefix.chars().take(32).collect::<String>()),
                    });
                }
                tier.key_prefix = prefix;
            }
            if let Some(ms) = options.integer("timeoutMs", 60_000)? {
                if ms == 0 {
                    return Err(ArgError::Range {
                        name: "options.redis.timeoutMs".into(),
                        expected: "an integer >= 1 and <= 60000".into(),
                        received: "0".into(),
                    });
                }
                tier.timeout = Duration::from_millis(ms);
            }
        }
        _ => {
            let received = format!("type {}", format!("{:?}", type_of(&value)).to_lowercase());
            return Err(ArgError::Type { name: "options.redis".into(), expected: "string or object", received });
        }
    }
    Ok(Some(tier))
}

/// `budget: { perMinute?, perDay?, whenRedisDown? }` of `reader`'s object.
pub fn budget(reader: &Reader) -> Checked<BudgetConfig> {
    let mut budget = BudgetConfig::UNLIMITED;
    let Some(value) = reader.get("budget")? else { return Ok(budget) };
    if type_of(&value) != ValueType::Object {
        return Err(ArgError::Type { name: reader.name("budget"), expected: "object", received: describe(&value) });
    }
    let options = reader.nested(&value, reader.name("budget"));
    for (key, target) in [("perMinute", &mut budget.per_minute), ("perDay", &mut budget.per_day)] {
        if let Some(n) = options.integer(key, u32::MAX as u64)? {
            if n == 0 {
                return Err(ArgError::Range {
                    name: options.name(key),
                    expected: "an integer >= 1 (leave it out for no limit)".into(),
                    received: "0".into(),
                });
            }
            *target = n;
        }
    }
    if options.choice("whenRedisDown", &["local", "closed"])? == Some("closed") {
        budget.when_redis_down = WhenRedisDown::Closed;
    }
    Ok(budget)
}

fn range_error(error: ConfigError) -> ArgError {
    ArgError::Range { name: format!("options.{}", error.option), expected: error.expected, received: error.received }
}

/// `process.env[name]`, read through JS so that values set by the application at runtime
/// (dotenv and friends) are seen. Anything odd (no `process`, a throwing getter, a non-string)
/// reads as unset, with no exception left pending.
pub fn env_var(env: &Env, name: &str) -> Option<String> {
    let read = || -> Option<String> {
        let process: Object = env.get_global().ok()?.get_named_property("process").ok()?;
        let vars: Object = process.get_named_property("env").ok()?;
        vars.get::<String>(name).ok()?.filter(|v| !v.is_empty())
    };
    let value = read();
    clear_pending_exception(env);
    value
}

/// Reads an options object: each value checked for its type, a throwing getter rethrown, every
/// error naming the option (`options.redis.url`).
pub struct Reader<'e> {
    env: &'e Env,
    object: Option<Object<'e>>,
    /// How errors name the object read (`options`, `options.redis`, `options.providers[1]`...).
    path: Cow<'static, str>,
}

impl<'e> Reader<'e> {
    /// `value` must be `undefined` or an object.
    pub fn of(env: &'e Env, value: &Unknown<'e>, path: &'static str) -> Checked<Reader<'e>> {
        let object = match type_of(value) {
            ValueType::Undefined => None,
            ValueType::Object => Some(Object::from_raw(env.raw(), value.raw())),
            _ => return Err(ArgError::Type { name: path.into(), expected: "object", received: describe(value) }),
        };
        Ok(Reader { env, object, path: path.into() })
    }

    /// A reader of an object nested in this one (checked to be an object by the caller).
    pub fn nested(&self, value: &Unknown<'e>, path: impl Into<Cow<'static, str>>) -> Reader<'e> {
        Reader { env: self.env, object: Some(Object::from_raw(self.env.raw(), value.raw())), path: path.into() }
    }

    /// `options[key]`, `None` when undefined. A getter (or Proxy trap) that throws makes the
    /// constructor throw that exception.
    pub fn get(&self, key: &str) -> Checked<Option<Unknown<'e>>> {
        self.object.as_ref().map_or(Ok(None), |object| option(object, key))
    }

    pub fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    pub fn type_error(&self, key: &str, expected: &'static str, value: &Unknown) -> ArgError {
        ArgError::Type { name: self.name(key), expected, received: describe(value) }
    }

    pub fn string(&self, key: &str) -> Checked<Option<String>> {
        let Some(value) = self.get(key)? else { return Ok(None) };
        if type_of(&value) != ValueType::String {
            return Err(self.type_error(key, "string", &value));
        }
        Ok(unsafe { value.cast::<String>() }.ok())
    }

    /// Like `string`, but a wrong value is never echoed in the error.
    pub fn secret(&self, key: &str) -> Checked<Option<String>> {
        let Some(value) = self.get(key)? else { return Ok(None) };
        if type_of(&value) != ValueType::String {
            let received = format!("type {}", format!("{:?}", type_of(&value)).to_lowercase());
            return Err(ArgError::Type { name: self.name(key), expected: "string", received });
        }
        Ok(unsafe { value.cast::<String>() }.ok())
    }

    pub fn boolean(&self, key: &str) -> Checked<Option<bool>> {
        let Some(value) = self.get(key)? else { return Ok(None) };
        if type_of(&value) != ValueType::Boolean {
            return Err(self.type_error(key, "boolean", &value));
        }
        Ok(unsafe { value.cast::<bool>() }.ok())
    }

    /// One of `choices`, as the matching `'static` string.
    pub fn choice(&self, key: &str, choices: &[&'static str]) -> Checked<Option<&'static str>> {
        let Some(text) = self.string(key)? else { return Ok(None) };
        match choices.iter().find(|c| **c == text) {
            Some(choice) => Ok(Some(choice)),
            None => Err(ArgError::Value {
                name: self.name(key),
                reason: format!(
                    "must be one of {}",
                    choices.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ")
                ),
                received: format!("'{text}'"),
            }),
        }
    }

    pub fn number(&self, key: &str, target: &mut f64) -> Checked<()> {
        if let Some(value) = self.get(key)? {
            *target = finite(&value, &self.name(key))?;
        }
        Ok(())
    }

    /// A non-negative integer no larger than `max`.
    pub fn integer(&self, key: &str, max: u64) -> Checked<Option<u64>> {
        let Some(value) = self.get(key)? else { return Ok(None) };
        let n = finite(&value, &self.name(key))?;
        if n.fract() != 0.0 || n < 0.0 || n > max as f64 {
            return Err(ArgError::Range {
                name: self.name(key),
                expected: format!("an integer >= 0 and <= {max}"),
                received: js_number(n),
            });
        }
        Ok(Some(n as u64))
    }

    pub fn duration(&self, key: &str, target: &mut u64) -> Checked<()> {
        if let Some(ms) = self.integer(key, MAX_DURATION_MS)? {
            *target = ms;
        }
        Ok(())
    }

    /// A pino-like logger: an object (methods are looked up per event).
    fn logger(&self) -> Checked<Option<Object<'e>>> {
        let Some(value) = self.get("logger")? else { return Ok(None) };
        match type_of(&value) {
            ValueType::Object | ValueType::Function => Ok(Some(Object::from_raw(self.env.raw(), value.raw()))),
            ValueType::Null => Ok(None),
            _ => Err(self.type_error("logger", "object", &value)),
        }
    }
}
