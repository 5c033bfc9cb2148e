//! `new WeatherService(options)`: each option's JS type checked here (Node's errors, naming
//! `options.x.y`), into the core's `ServiceOptions`; ranges and relations are the core's
//! (`ServiceOptions::resolve`), its errors rendered here.

use napi::bindgen_prelude::*;
use napi::{Env, ValueType};

use super::errors::{ArgError, Checked};
use super::providers;
use super::reader::{env_var, Reader};
use weather_cache_core::engine::{ClockKind, Level, Preset, MAX_DURATION_MS};
use weather_cache_core::options::{
    OptionsError, Problem, RedisOption, RedisOptions, Secret, ServiceOptions, SnapshotOption, SnapshotOptions, API_KEY_ENV,
    BASE_URL_ENV, LOG_LEVEL_ENV, MAX_COUNT, MAX_REDIS_TIMEOUT_MS, MAX_RESPONSE_BYTES, REDIS_URL_ENV,
};
use weather_cache_core::provider::LateKey;

pub struct Options<'e> {
    pub service: ServiceOptions,
    /// The service's own logger (pino-like), for events no caller is waiting for.
    pub logger: Option<Object<'e>>,
    /// Options that came from the environment, and how errors name them there.
    from_env: Vec<(&'static str, &'static str)>,
}

impl Options<'_> {
    /// A core error as Node's: `options.redis.keyPrefix`, or the environment variable a
    /// value came from.
    pub fn error(&self, error: OptionsError) -> ArgError {
        let name = match self.from_env.iter().find(|(option, _)| *option == error.option) {
            Some((_, variable)) => format!("process.env.{variable}"),
            None => format!("options.{}", error.option),
        };
        match error.problem {
            Problem::Range { expected, received } => ArgError::Range { name, expected, received },
            Problem::Value { reason, received } => ArgError::Value { name, reason, received },
        }
    }
}

/// `default_instance`: the module's `weatherService`, which also reads `WEATHER_CACHE_REDIS_URL`
/// and `WEATHER_CACHE_LOG_LEVEL`, and without a key waits for `OPEN_WEATHER_API_KEY` (see
/// `ServiceOptions::late_api_key`).
pub fn parse<'e>(env: &'e Env, value: &Unknown<'e>, default_instance: bool) -> Checked<Options<'e>> {
    let reader = Reader::of(env, value, "options")?;
    let mut o = ServiceOptions {
        preset: reader.choice("preset", &["resilient", "minimal"])?.map(|preset| match preset {
            "minimal" => Preset::Minimal,
            _ => Preset::Resilient,
        }),
        fresh_ttl_ms: reader.duration("freshTtlMs")?,
        stale_ttl_ms: reader.duration("staleTtlMs")?,
        min_refresh_interval_ms: reader.duration("minRefreshIntervalMs")?,
        refresh_ahead_ms: reader.duration("refreshAheadMs")?,
        initial_backoff_ms: reader.duration("initialBackoffMs")?,
        max_backoff_ms: reader.duration("maxBackoffMs")?,
        error_cooldown_ms: reader.duration("errorCooldownMs")?,
        proximity_km: reader.number("proximityKm")?,
        grid_deg: reader.number("gridDeg")?,
        jitter_ratio: reader.number("jitterRatio")?,
        shared_capacity: reader.integer("sharedCapacity", MAX_COUNT)?,
        per_user_capacity: reader.integer("perUserCapacity", MAX_COUNT)?,
        max_users: reader.integer("maxUsers", MAX_COUNT)?,
        coordinate_decimals: reader.integer("coordinateDecimals", MAX_COUNT)?,
        coalesce: reader.boolean("coalesce")?,
        products: reader.boolean("products")?,
        clock: reader.choice("clock", &["system", "manual"])?.map(|clock| match clock {
            "manual" => ClockKind::Manual,
            _ => ClockKind::System,
        }),
        log_level: reader.choice("logLevel", &LEVELS)?.and_then(Level::parse),
        request_timeout_ms: reader.integer("requestTimeoutMs", MAX_DURATION_MS)?,
        max_response_bytes: reader.integer("maxResponseBytes", MAX_RESPONSE_BYTES)?,
        ..ServiceOptions::default()
    };
    let mut from_env = Vec::new();
    if o.log_level.is_none() && default_instance {
        o.log_level = env_log_level(env)?;
    }
    let api_key = reader.secret("apiKey")?;
    if api_key.is_none() && default_instance {
        // The default instance follows the environment: a key set later, or one replacing a
        // key the provider refused, is taken without a restart (see `Service::pick_up_key`).
        let late = LateKey::new();
        if let Some(key) = env_var(env, API_KEY_ENV) {
            late.set(key);
        }
        o.late_api_key = Some(late);
    } else {
        o.api_key = api_key.or_else(|| env_var(env, API_KEY_ENV)).map(Secret);
    }
    o.base_url = match reader.string("baseUrl")? {
        Some(url) => Some(url),
        None => env_var(env, BASE_URL_ENV).inspect(|_| from_env.push(("baseUrl", BASE_URL_ENV))),
    };
    let logger = reader.logger()?;
    o.budget = providers::budget(&reader)?;
    o.snapshot = snapshot(&reader)?;
    o.providers = providers::parse(&reader)?;
    o.redis = match redis(&reader)? {
        Some(redis) => Some(redis),
        None if default_instance => env_var(env, REDIS_URL_ENV).map(|url| {
            from_env.push(("redis", REDIS_URL_ENV));
            RedisOption::Url(Secret(url))
        }),
        None => None,
    };
    Ok(Options { service: o, logger, from_env })
}

/// pino's level names, as `logLevel` takes them.
const LEVELS: [&str; 7] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/// `WEATHER_CACHE_LOG_LEVEL`, the default instance's `logLevel` (it takes no options). In any
/// case (`WARN`, as environment variables are often written; a misspelt level is still an
/// error); blank is unset, like empty.
fn env_log_level(env: &Env) -> Checked<Option<Level>> {
    let Some(text) = env_var(env, LOG_LEVEL_ENV) else { return Ok(None) };
    let name = text.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Ok(None);
    }
    match Level::parse(&name) {
        Some(level) => Ok(Some(level)),
        None => Err(ArgError::Value {
            name: format!("process.env.{LOG_LEVEL_ENV}"),
            reason: format!("must be one of {}", LEVELS.map(|l| format!("'{l}'")).join(", ")),
            received: format!("'{}'", text.chars().filter(|c| !c.is_control()).take(32).collect::<String>()),
        }),
    }
}

/// `redis: string | { url, keyPrefix?, timeoutMs? }`. No message ever repeats the URL (it may
/// hold a password).
fn redis(reader: &Reader) -> Checked<Option<RedisOption>> {
    let Some(value) = reader.get("redis")? else { return Ok(None) };
    match super::args::type_of(&value) {
        ValueType::Null => Ok(None),
        ValueType::String => Ok(Some(RedisOption::Url(Secret(unsafe { value.cast::<String>() }.unwrap_or_default())))),
        ValueType::Object => {
            let options = reader.nested(&value, "options.redis");
            let url = options.secret("url")?.ok_or_else(|| ArgError::Type {
                name: "options.redis.url".into(),
                expected: "string",
                received: "undefined".into(),
            })?;
            Ok(Some(RedisOption::Settings(RedisOptions {
                url: Secret(url),
                key_prefix: options.string("keyPrefix")?,
                timeout_ms: options.integer("timeoutMs", MAX_REDIS_TIMEOUT_MS)?,
            })))
        }
        _ => {
            let received = format!("type {}", format!("{:?}", super::args::type_of(&value)).to_lowercase());
            Err(ArgError::Type { name: "options.redis".into(), expected: "string or object", received })
        }
    }
}

/// `snapshot: string | { path, intervalMs? }`.
fn snapshot(reader: &Reader) -> Checked<Option<SnapshotOption>> {
    let Some(value) = reader.get("snapshot")? else { return Ok(None) };
    match super::args::type_of(&value) {
        ValueType::Null => Ok(None),
        ValueType::String => Ok(Some(SnapshotOption::Path(unsafe { value.cast::<String>() }.unwrap_or_default()))),
        ValueType::Object => {
            let options = reader.nested(&value, "options.snapshot");
            let path = options.string("path")?.ok_or_else(|| ArgError::Type {
                name: "options.snapshot.path".into(),
                expected: "string",
                received: "undefined".into(),
            })?;
            Ok(Some(SnapshotOption::Settings(SnapshotOptions { path, interval_ms: options.duration("intervalMs")? })))
        }
        _ => Err(reader.type_error("snapshot", "string or object", &value)),
    }
}
