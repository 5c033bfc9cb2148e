//! Checking call arguments, with the errors Node itself would give.

use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};

use super::errors::{clear_pending_exception, describe, js_number, ArgError, Checked};
use weather_cache_core::geo::LatLon;

/// Longest accepted user id, in UTF-8 bytes.
pub const MAX_USER_ID_BYTES: usize = 256;

/// A user id read straight into a stack buffer: the hit path allocates nothing for it, and a
/// huge hostile id is measured and refused without being copied.
pub struct UserId {
    len: usize,
    bytes: [u8; MAX_USER_ID_BYTES + 1],
}

impl UserId {
    pub fn as_str(&self) -> &str {
        // Checked in `user_id`: valid UTF-8 from a well-formed JS string.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// What a `getWeather` / `getForecast` call is about.
pub struct Call<'e> {
    pub session: Option<Object<'e>>,
    pub user: UserId,
    pub at: LatLon,
}

/// `getWeather(session, userId, lat, long)` or `getWeather(session, lat, long)`.
/// A fourth argument, or a string second one, selects the 4-argument form; otherwise the user
/// is `session.userId` (how the Dashboard calls it).
pub fn weather_call<'e>(
    env: &'e Env,
    session: &Unknown<'e>,
    second: &Unknown<'e>,
    third: &Unknown<'e>,
    fourth: &Unknown<'e>,
) -> Checked<Call<'e>> {
    let session_object = session_arg(env, session)?;
    // The usual 4-argument call is recognised by its string user id (read in the same call).
    if let Some(user) = string_user_id(env, second, "userId")? {
        return Ok(Call { session: session_object, user, at: location(third, fourth, "lat", "long")? });
    }
    if type_of(fourth) != ValueType::Undefined {
        return Err(ArgError::Type { name: "userId".into(), expected: "string", received: describe(second) });
    }
    let Some(object) = &session_object else {
        return Err(ArgError::Type { name: "session".into(), expected: "object", received: describe(session) });
    };
    let user = user_id(env, property(env, object, "userId").as_ref(), "session.userId")?;
    Ok(Call { session: session_object, user, at: location(second, third, "lat", "long")? })
}

/// `getForecast(session, userId, lat, lon)`.
pub fn forecast_call<'e>(
    env: &'e Env,
    session: &Unknown<'e>,
    user: &Unknown<'e>,
    lat: &Unknown<'e>,
    lon: &Unknown<'e>,
) -> Checked<Call<'e>> {
    let session = session_arg(env, session)?;
    let user = user_id(env, Some(user), "userId")?;
    Ok(Call { session, user, at: location(lat, lon, "lat", "lon")? })
}

/// `null`/`undefined`, or an object (the Dashboard's `AppSession`).
pub fn session_arg<'e>(env: &'e Env, value: &Unknown<'e>) -> Checked<Option<Object<'e>>> {
    match type_of(value) {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Object | ValueType::Function => Ok(Some(Object::from_raw(env.raw(), value.raw()))),
        _ => Err(ArgError::Type { name: "session".into(), expected: "object", received: describe(value) }),
    }
}

/// A non-empty string of at most `MAX_USER_ID_BYTES` UTF-8 bytes. `None` means undefined.
pub fn user_id(env: &Env, value: Option<&Unknown>, name: &str) -> Checked<UserId> {
    let read = match value {
        Some(value) => string_user_id(env, value, name)?,
        None => None,
    };
    read.ok_or_else(|| {
        let received = value.map_or_else(|| "undefined".to_owned(), describe);
        ArgError::Type { name: name.into(), expected: "string", received }
    })
}

/// `Ok(None)` when `value` is not a string; the length query doubles as the type check.
fn string_user_id(env: &Env, value: &Unknown, name: &str) -> Checked<Option<UserId>> {
    let invalid = |received: String| ArgError::Value {
        name: name.into(),
        reason: format!("must be a non-empty string of at most {MAX_USER_ID_BYTES} bytes"),
        received,
    };
    let mut len = 0usize;
    // SAFETY: a null buffer asks only for the length; a non-string yields `napi_string_expected`,
    // so this one call is also the type check.
    let status =
        unsafe { napi::sys::napi_get_value_string_utf8(env.raw(), value.raw(), std::ptr::null_mut(), 0, &mut len) };
    if status == napi::sys::Status::napi_string_expected {
        return Ok(None);
    }
    if status != napi::sys::Status::napi_ok {
        return Err(invalid("an unreadable string".into()));
    }
    if len == 0 {
        return Err(invalid("''".into()));
    }
    if len > MAX_USER_ID_BYTES {
        return Err(invalid(format!("a string of {len} bytes")));
    }
    let mut id = UserId { len: 0, bytes: [0; MAX_USER_ID_BYTES + 1] };
    // SAFETY: the buffer holds `len` bytes plus the terminating NUL N-API writes.
    unsafe {
        napi::sys::napi_get_value_string_utf8(
            env.raw(),
            value.raw(),
            id.bytes.as_mut_ptr().cast(),
            id.bytes.len(),
            &mut id.len,
        );
    }
    if std::str::from_utf8(&id.bytes[..id.len]).is_err() {
        return Err(invalid("a string that is not valid UTF-8".into()));
    }
    // N-API writes a lone surrogate as U+FFFD, so '\uD800', '\uDC00' and '\uFFFD' would be one
    // user (and `clearUser` of one would clear the others). Such ids are refused; the check
    // reads the string again only when a U+FFFD appears, which real ids almost never contain.
    if id.bytes[..id.len].windows(3).any(|w| w == "\u{FFFD}".as_bytes()) && has_lone_surrogate(env, value) {
        let reason = "must be well-formed Unicode (no lone surrogates)".to_owned();
        return Err(ArgError::Value { name: name.into(), reason, received: "a string with a lone surrogate".into() });
    }
    Ok(Some(id))
}

/// Whether a JS string holds an unpaired UTF-16 surrogate. Only called for ids of at most
/// `MAX_USER_ID_BYTES` UTF-8 bytes, which are at most that many UTF-16 units.
fn has_lone_surrogate(env: &Env, value: &Unknown) -> bool {
    let mut units = [0u16; MAX_USER_ID_BYTES + 1];
    let mut len = 0usize;
    // SAFETY: the buffer holds `units.len()` units including the terminating NUL.
    let status = unsafe {
        napi::sys::napi_get_value_string_utf16(env.raw(), value.raw(), units.as_mut_ptr(), units.len(), &mut len)
    };
    status != napi::sys::Status::napi_ok || char::decode_utf16(units[..len].iter().copied()).any(|c| c.is_err())
}

pub fn location(lat: &Unknown, lon: &Unknown, lat_name: &str, lon_name: &str) -> Checked<LatLon> {
    let lat = bounded(lat, lat_name, 90.0)?;
    let lon = bounded(lon, lon_name, 180.0)?;
    Ok(LatLon::new(lat, lon))
}

/// A finite number in [-limit, limit].
fn bounded(value: &Unknown, name: &str, limit: f64) -> Checked<f64> {
    let n = finite(value, name)?;
    if !(-limit..=limit).contains(&n) {
        return Err(ArgError::Range {
            name: name.into(),
            expected: format!(">= -{limit} && <= {limit}"),
            received: js_number(n),
        });
    }
    Ok(n)
}

/// A number that is not NaN or ±Infinity.
pub fn finite(value: &Unknown, name: &str) -> Checked<f64> {
    let mut n = 0.0;
    // One N-API call both checks the type and reads the value (a hot path).
    // SAFETY: plain N-API read; a non-number only yields a status.
    let status = unsafe { napi::sys::napi_get_value_double(value.value().env, value.raw(), &mut n) };
    if status != napi::sys::Status::napi_ok {
        return Err(ArgError::Type { name: name.into(), expected: "number", received: describe(value) });
    }
    if !n.is_finite() {
        return Err(ArgError::Range { name: name.into(), expected: "a finite number".into(), received: js_number(n) });
    }
    Ok(n)
}

/// Reads `object[key]` of an options object; `None` when undefined. A getter (or Proxy trap)
/// that throws is the caller's error: `ArgError::Thrown` carries its exception, which the call
/// rejects (or throws) with. Never an options object silently read as empty.
pub fn option<'e>(object: &Object<'e>, key: &str) -> Checked<Option<Unknown<'e>>> {
    match object.get::<Unknown>(key) {
        Ok(Some(value)) if type_of(&value) != ValueType::Undefined => Ok(Some(value)),
        Ok(_) => Ok(None),
        Err(_) => Err(ArgError::Thrown),
    }
}

/// Reads `object[key]` of a session or a signal; `None` when undefined or when a getter throws
/// (the exception is cleared: a hostile session must not make our call throw).
pub fn property<'e>(env: &Env, object: &Object<'e>, key: &str) -> Option<Unknown<'e>> {
    match object.get::<Unknown>(key) {
        Ok(Some(value)) if type_of(&value) != ValueType::Undefined => Some(value),
        Ok(_) => None,
        Err(_) => {
            clear_pending_exception(env);
            None
        }
    }
}

pub fn type_of(value: &Unknown) -> ValueType {
    value.get_type().unwrap_or(ValueType::Unknown)
}
