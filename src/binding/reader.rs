//! Reading JS options objects: each value checked for its type, a throwing getter rethrown,
//! every error naming the option (`options.redis.url`). What the values may be (ranges, the
//! relations between options) is the core's business, not this file's.

use std::borrow::Cow;

use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};

use super::args::{finite, option, type_of};
use super::errors::{clear_pending_exception, describe, js_number, ArgError, Checked};
use weather_cache_core::engine::MAX_DURATION_MS;

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

    pub fn number(&self, key: &str) -> Checked<Option<f64>> {
        self.get(key)?.map(|value| finite(&value, &self.name(key))).transpose()
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

    pub fn duration(&self, key: &str) -> Checked<Option<u64>> {
        self.integer(key, MAX_DURATION_MS)
    }

    /// A pino-like logger: an object (methods are looked up per event).
    pub fn logger(&self) -> Checked<Option<Object<'e>>> {
        let Some(value) = self.get("logger")? else { return Ok(None) };
        match type_of(&value) {
            ValueType::Object | ValueType::Function => Ok(Some(Object::from_raw(self.env.raw(), value.raw()))),
            ValueType::Null => Ok(None),
            _ => Err(self.type_error("logger", "object", &value)),
        }
    }
}
