//! `providers` and `budget`: the upstreams a fetch may ask, in order of preference (strings for
//! the built-in ones with their defaults, objects to configure them or to plug in a JS `fetch`),
//! read into the core's `ProviderOption`s. Names, lists and settings are checked by the core.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::ValueType;

use super::args::type_of;
use super::errors::{describe, ArgError, Checked};
use super::fetcher::{FetchFunction, JsFetcher};
use super::reader::Reader;
use weather_cache_core::engine::WhenRedisDown;
use weather_cache_core::options::{BudgetOptions, ProviderOption, ProviderSettings, Secret, MAX_COUNT};
use weather_cache_core::provider::{CustomProvider, Provider};

/// `options.providers`, when given.
pub fn parse(reader: &Reader) -> Checked<Option<Vec<ProviderOption>>> {
    let Some(value) = reader.get("providers")? else { return Ok(None) };
    let name = reader.name("providers");
    if !value.is_array().unwrap_or(false) {
        return Err(ArgError::Type { name, expected: "Array", received: describe(&value) });
    }
    let list = unsafe { value.cast::<Object>() }.map_err(|_| ArgError::Thrown)?;
    let length = list.get_array_length().map_err(|_| ArgError::Thrown)?;
    let mut options = Vec::with_capacity(length.min(16) as usize);
    for i in 0..length {
        let path = format!("{name}[{i}]");
        let item = list.get_element::<Unknown>(i).map_err(|_| ArgError::Thrown)?;
        options.push(match type_of(&item) {
            ValueType::String => ProviderOption::Named(unsafe { item.cast::<String>() }.unwrap_or_default()),
            ValueType::Object => entry(reader.nested(&item, path))?,
            _ => return Err(ArgError::Type { name: path, expected: "string or object", received: describe(&item) }),
        });
    }
    Ok(Some(options))
}

fn entry(entry: Reader) -> Checked<ProviderOption> {
    let name = entry.string("name")?.ok_or_else(|| ArgError::Type {
        name: entry.name("name"),
        expected: "string",
        received: "undefined".into(),
    })?;
    if let Some(fetch) = entry.get("fetch")? {
        if type_of(&fetch) != ValueType::Function {
            return Err(entry.type_error("fetch", "function", &fetch));
        }
        let fetch = unsafe { fetch.cast::<FetchFunction>() }.map_err(|_| ArgError::Thrown)?;
        // Made callable from the engine's threads now, on the JS thread; named and given its
        // timeout once the core has checked the options.
        let call = JsFetcher::callable(&fetch).map_err(|_| ArgError::Value {
            name: entry.name("fetch"),
            reason: "could not be made callable from the addon's threads".into(),
            received: "a function".into(),
        })?;
        let provider = CustomProvider::with_provider(name, move |name, timeout| {
            Arc::new(JsFetcher::new(name, call.clone(), timeout)) as Arc<dyn Provider>
        });
        return Ok(ProviderOption::Custom { provider, budget: budget(&entry)? });
    }
    Ok(ProviderOption::Configured(ProviderSettings {
        name,
        api_key: entry.secret("apiKey")?.map(Secret),
        base_url: entry.string("baseUrl")?,
        user_agent: entry.string("userAgent")?,
        budget: budget(&entry)?,
    }))
}

/// `budget: { perMinute?, perDay?, whenRedisDown? }` of `reader`'s object, when given.
pub fn budget(reader: &Reader) -> Checked<Option<BudgetOptions>> {
    let Some(value) = reader.get("budget")? else { return Ok(None) };
    if type_of(&value) != ValueType::Object {
        return Err(ArgError::Type { name: reader.name("budget"), expected: "object", received: describe(&value) });
    }
    let options = reader.nested(&value, reader.name("budget"));
    Ok(Some(BudgetOptions {
        per_minute: options.integer("perMinute", MAX_COUNT)?,
        per_day: options.integer("perDay", MAX_COUNT)?,
        when_redis_down: options.choice("whenRedisDown", &["local", "closed"])?.map(|choice| match choice {
            "closed" => WhenRedisDown::Closed,
            _ => WhenRedisDown::Local,
        }),
    }))
}
