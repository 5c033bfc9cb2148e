//! `providers`: the upstreams a fetch may ask, in order of preference (strings for the
//! built-in ones with their defaults, objects to configure them or to plug in a JS `fetch`).
//! Checked here with errors naming the entry (`options.providers[1].userAgent`), built into the
//! engine's `Upstream`s by `build`.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::ValueType;

use super::errors::{describe, ArgError, Checked};
use super::fetcher::{FetcherOutcome, JsFetcher};
use super::options::{budget, Options, Reader};
use weather_cache_core::engine::{BudgetConfig, Upstream};
use weather_cache_core::provider::{
    intern_configured, MetNorway, MetNorwayConfig, OpenMeteo, OpenMeteoConfig, OpenWeather, OpenWeatherConfig,
    MET_NORWAY_BASE_URL, OPEN_METEO_BASE_URL,
};

/// More would only lengthen every failing flight.
const MAX_PROVIDERS: usize = 8;
const BUILT_IN: [&str; 3] = ["openweather", "open-meteo", "met-norway"];

type FetchFunction<'e> = Function<'e, FnArgs<(f64, f64, f64)>, Promise<FetcherOutcome>>;

pub enum Kind<'e> {
    /// `None`s fall back to the top-level `apiKey`, `baseUrl` and `budget`.
    OpenWeather { api_key: Option<String>, base_url: Option<String>, budget: Option<BudgetConfig> },
    OpenMeteo { api_key: Option<String>, base_url: Option<String>, budget: BudgetConfig },
    MetNorway { user_agent: String, base_url: Option<String>, budget: BudgetConfig },
    Custom { name: &'static str, fetch: FetchFunction<'e>, budget: BudgetConfig },
}

pub struct ProviderSpec<'e> {
    kind: Kind<'e>,
    /// `options.providers[i]`, for errors found when building.
    path: String,
}

/// `options.providers`, when given.
pub fn parse<'e>(reader: &Reader<'e>) -> Checked<Option<Vec<ProviderSpec<'e>>>> {
    let Some(value) = reader.get("providers")? else { return Ok(None) };
    let name = reader.name("providers");
    if !value.is_array().unwrap_or(false) {
        return Err(ArgError::Type { name, expected: "Array", received: describe(&value) });
    }
    let list = unsafe { value.cast::<Object>() }.map_err(|_| ArgError::Thrown)?;
    let length = list.get_array_length().map_err(|_| ArgError::Thrown)? as usize;
    if length == 0 || length > MAX_PROVIDERS {
        let reason = format!("must list 1 to {MAX_PROVIDERS} providers");
        return Err(ArgError::Value { name, reason, received: format!("{length} entries") });
    }
    let mut specs: Vec<ProviderSpec<'e>> = Vec::with_capacity(length);
    for i in 0..length {
        let path = format!("{name}[{i}]");
        let item = list.get_element::<Unknown>(i as u32).map_err(|_| ArgError::Thrown)?;
        let kind = spec(reader, &item, &path)?;
        let named = label(&kind);
        if specs.iter().any(|s| label(&s.kind) == named) {
            let reason = "names each provider once (metrics and budgets are per name)".into();
            return Err(ArgError::Value { name: path, reason, received: format!("'{named}' again") });
        }
        specs.push(ProviderSpec { kind, path });
    }
    Ok(Some(specs))
}

fn label<'a>(kind: &'a Kind) -> &'a str {
    match kind {
        Kind::OpenWeather { .. } => "openweather",
        Kind::OpenMeteo { .. } => "open-meteo",
        Kind::MetNorway { .. } => "met-norway",
        Kind::Custom { name, .. } => name,
    }
}

fn spec<'e>(reader: &Reader<'e>, item: &Unknown<'e>, path: &str) -> Checked<Kind<'e>> {
    match super::args::type_of(item) {
        ValueType::String => match unsafe { item.cast::<String>() }.unwrap_or_default().as_str() {
            "openweather" => Ok(Kind::OpenWeather { api_key: None, base_url: None, budget: None }),
            "open-meteo" => Ok(Kind::OpenMeteo { api_key: None, base_url: None, budget: BudgetConfig::UNLIMITED }),
            "met-norway" => Err(ArgError::Value {
                name: path.to_owned(),
                reason: "needs { name: 'met-norway', userAgent }: MET Norway's terms require an identifying User-Agent"
                    .into(),
                received: "'met-norway'".into(),
            }),
            other => Err(ArgError::Value {
                name: path.to_owned(),
                reason: "must be 'openweather', 'open-meteo' or an object".into(),
                received: format!("'{}'", other.chars().take(32).collect::<String>()),
            }),
        },
        ValueType::Object => object(reader.nested(item, path.to_owned())),
        _ => Err(ArgError::Type { name: path.to_owned(), expected: "string or object", received: describe(item) }),
    }
}

fn object<'e>(entry: Reader<'e>) -> Checked<Kind<'e>> {
    let name = entry.string("name")?.ok_or_else(|| ArgError::Type {
        name: entry.name("name"),
        expected: "string",
        received: "undefined".into(),
    })?;
    if let Some(fetch) = entry.get("fetch")? {
        if super::args::type_of(&fetch) != ValueType::Function {
            return Err(entry.type_error("fetch", "function", &fetch));
        }
        let fits = !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control);
        if !fits || BUILT_IN.contains(&name.as_str()) {
            return Err(ArgError::Value {
                name: entry.name("name"),
                reason: "must be 1 to 64 printable characters, and not a built-in provider's name".into(),
                received: format!("'{}'", name.chars().filter(|c| !c.is_control()).take(32).collect::<String>()),
            });
        }
        let fetch = unsafe { fetch.cast::<FetchFunction<'e>>() }.map_err(|_| ArgError::Thrown)?;
        return Ok(Kind::Custom { name: intern_configured(&name), fetch, budget: budget(&entry)? });
    }
    match name.as_str() {
        "openweather" => Ok(Kind::OpenWeather {
            api_key: entry.secret("apiKey")?,
            base_url: entry.string("baseUrl")?,
            budget: entry.get("budget")?.map(|_| budget(&entry)).transpose()?,
        }),
        "open-meteo" => Ok(Kind::OpenMeteo {
            api_key: entry.secret("apiKey")?,
            base_url: entry.string("baseUrl")?,
            budget: budget(&entry)?,
        }),
        "met-norway" => {
            let user_agent = entry.string("userAgent")?.filter(|ua| !ua.trim().is_empty()).ok_or_else(|| {
                ArgError::Value {
                    name: entry.name("userAgent"),
                    reason: "is required: MET Norway's terms ask for an identifying User-Agent (your application and a contact)".into(),
                    received: "nothing".into(),
                }
            })?;
            Ok(Kind::MetNorway { user_agent, base_url: entry.string("baseUrl")?, budget: budget(&entry)? })
        }
        other => Err(ArgError::Value {
            name: entry.name("name"),
            reason: "must be 'openweather', 'open-meteo' or 'met-norway', or come with a fetch function".into(),
            received: format!("'{}'", other.chars().filter(|c| !c.is_control()).take(32).collect::<String>()),
        }),
    }
}

/// The engine's upstreams for `options`: its `providers`, or OpenWeather alone as configured by
/// the top-level options.
pub fn build(options: &mut Options) -> std::result::Result<Vec<Upstream>, ArgError> {
    let timeout = Duration::from_millis(options.config.request_timeout_ms);
    let decimals = options.config.coordinate_decimals;
    let max_response_bytes = options.max_response_bytes;
    let openweather = |config: OpenWeatherConfig, from: String| {
        let received = shown(&config.base_url);
        OpenWeather::new(config).map_err(|reason| ArgError::Value { name: from, reason, received })
    };
    let Some(specs) = options.providers.take() else {
        let provider = openweather(options.provider.clone(), options.base_url_from.to_owned())?;
        return Ok(vec![Upstream { provider: std::sync::Arc::new(provider), budget: options.budget }]);
    };
    let mut upstreams = Vec::with_capacity(specs.len());
    for ProviderSpec { kind, path } in specs {
        let bad_url = |base_url: &str| {
            let received = shown(base_url);
            let name = format!("{path}.baseUrl");
            move |reason| ArgError::Value { name, reason, received }
        };
        let upstream = match kind {
            Kind::OpenWeather { api_key, base_url, budget } => {
                let mut config = options.provider.clone();
                let from = match base_url {
                    Some(url) => {
                        config.base_url = url;
                        format!("{path}.baseUrl")
                    }
                    None => options.base_url_from.to_owned(),
                };
                if api_key.is_some() {
                    config.api_key = api_key;
                }
                let provider = openweather(config, from)?;
                Upstream { provider: std::sync::Arc::new(provider), budget: budget.unwrap_or(options.budget) }
            }
            Kind::OpenMeteo { api_key, base_url, budget } => {
                let base_url = base_url.unwrap_or_else(|| OPEN_METEO_BASE_URL.to_owned());
                let config = OpenMeteoConfig {
                    api_key,
                    base_url: base_url.clone(),
                    coordinate_decimals: decimals,
                    request_timeout: timeout,
                    max_response_bytes,
                };
                let provider = OpenMeteo::new(config).map_err(bad_url(&base_url))?;
                Upstream { provider: std::sync::Arc::new(provider), budget }
            }
            Kind::MetNorway { user_agent, base_url, budget } => {
                let base_url = base_url.unwrap_or_else(|| MET_NORWAY_BASE_URL.to_owned());
                let config = MetNorwayConfig {
                    user_agent,
                    base_url: base_url.clone(),
                    coordinate_decimals: decimals,
                    request_timeout: timeout,
                    max_response_bytes,
                };
                let provider = MetNorway::new(config).map_err(|reason| {
                    let name = if reason.contains("userAgent") { format!("{path}.userAgent") } else { format!("{path}.baseUrl") };
                    ArgError::Value { name, reason, received: shown(&base_url) }
                })?;
                Upstream { provider: std::sync::Arc::new(provider), budget }
            }
            Kind::Custom { name, fetch, budget } => {
                let provider = JsFetcher::new(name, &fetch, timeout).map_err(|_| ArgError::Value {
                    name: format!("{path}.fetch"),
                    reason: "could not be made callable from the addon's threads".into(),
                    received: "a function".into(),
                })?;
                Upstream { provider: std::sync::Arc::new(provider), budget }
            }
        };
        upstreams.push(upstream);
    }
    Ok(upstreams)
}

/// A URL as errors may show it: never its credentials, query or fragment (a key could sit there).
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => format!("'{}://{}{}'", url.scheme(), url.host_str().unwrap_or(""), url.path()),
        Err(_) => "a string that is not a URL".to_owned(),
    }
}
