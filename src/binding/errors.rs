//! JS errors with Node-style codes and messages.

use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};

use weather_cache_core::engine::RequestError;

/// The outcome of checking an argument (napi's prelude shadows `Result`).
pub type Checked<T> = std::result::Result<T, ArgError>;

/// A bad argument or option, described before any JS object is built.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgError {
    /// `ERR_INVALID_ARG_TYPE` (TypeError).
    Type { name: String, expected: &'static str, received: String },
    /// `ERR_OUT_OF_RANGE` (RangeError).
    Range { name: String, expected: String, received: String },
    /// `ERR_INVALID_ARG_VALUE` (TypeError).
    Value { name: String, reason: String, received: String },
    /// `ERR_INVALID_STATE` (Error): the call does not fit the service's state.
    State { message: String },
    /// A getter or Proxy trap of the caller's object threw while we read it: that exception is
    /// pending, and it is what the caller gets (never an options object silently read as empty).
    Thrown,
}

impl ArgError {
    pub fn code(&self) -> &'static str {
        match self {
            ArgError::Type { .. } => "ERR_INVALID_ARG_TYPE",
            ArgError::Range { .. } => "ERR_OUT_OF_RANGE",
            ArgError::Value { .. } => "ERR_INVALID_ARG_VALUE",
            ArgError::State { .. } => "ERR_INVALID_STATE",
            ArgError::Thrown => "ERR_INVALID_ARG_VALUE",
        }
    }

    /// The message Node itself would print for the same mistake.
    pub fn message(&self) -> String {
        let kind = |name: &str| if name.contains('.') { "property" } else { "argument" };
        match self {
            ArgError::Type { name, expected, received } => {
                format!("The \"{name}\" {} must be of type {expected}. Received {received}", kind(name))
            }
            ArgError::Range { name, expected, received } => {
                format!("The value of \"{name}\" is out of range. It must be {expected}. Received {received}")
            }
            ArgError::Value { name, reason, received } => {
                format!("The {} '{name}' {reason}. Received {received}", kind(name))
            }
            ArgError::State { message } => message.clone(),
            ArgError::Thrown => "Reading the argument threw".to_owned(),
        }
    }

    /// The error as a JS value (TypeError / RangeError / Error, with `code`).
    pub fn to_js<'e>(&self, env: &'e Env) -> Result<Unknown<'e>> {
        if let (ArgError::Thrown, Some(exception)) = (self, take_pending_exception(env)) {
            return Ok(exception);
        }
        let error = napi::Error::new(self.code().to_owned(), self.message());
        Ok(match self {
            ArgError::Type { .. } | ArgError::Value { .. } | ArgError::Thrown => {
                JsTypeError::from(error).into_unknown(*env)
            }
            ArgError::Range { .. } => JsRangeError::from(error).into_unknown(*env),
            ArgError::State { .. } => JsError::from(error).into_unknown(*env),
        })
    }

    /// For synchronous throws: an error that rethrows this exact JS object.
    pub fn throw(&self, env: &Env) -> napi::Error {
        match self.to_js(env) {
            Ok(js) => napi::Error::from(js),
            Err(e) => e,
        }
    }
}

/// `Error` with `code`, and `provider`, `status` and `retryAfterMs` where they apply.
pub fn request_error<'e>(env: &'e Env, error: &RequestError) -> Result<Unknown<'e>> {
    let js = JsError::from(napi::Error::new(error.code().to_owned(), error.message())).into_unknown(*env);
    let mut object = js.coerce_to_object()?;
    if let Some(provider) = error.provider() {
        object.set("provider", provider)?;
    }
    if let RequestError::Status { status, .. } | RequestError::KeyRejected { status, .. } = error {
        object.set("status", *status)?;
    }
    if let Some(ms) = error.retry_after_ms() {
        object.set("retryAfterMs", ms as f64)?;
    }
    Ok(object.to_unknown())
}

/// Node's AbortError: `name: "AbortError"`, `code: "ABORT_ERR"`, the signal's reason as `cause`.
pub fn abort_error<'e>(env: &'e Env, reason: Unknown<'e>) -> Result<Unknown<'e>> {
    let js = JsError::from(napi::Error::new("ABORT_ERR".to_owned(), "The operation was aborted")).into_unknown(*env);
    let mut object = js.coerce_to_object()?;
    object.set("name", "AbortError")?;
    if reason.get_type()? != ValueType::Undefined {
        object.set("cause", reason)?;
    }
    Ok(object.to_unknown())
}

/// How Node's messages show a received value: `type string ('abc')`, `undefined`, …
pub fn describe(value: &Unknown) -> String {
    let ty = value.get_type().unwrap_or(ValueType::Unknown);
    match ty {
        ValueType::Undefined => "undefined".into(),
        ValueType::Null => "null".into(),
        ValueType::Number => format!("type number ({})", js_number(unsafe { value.cast::<f64>() }.unwrap_or(f64::NAN))),
        ValueType::Boolean => format!("type boolean ({})", unsafe { value.cast::<bool>() }.unwrap_or(false)),
        ValueType::String => {
            let text = unsafe { value.cast::<String>() }.unwrap_or_default();
            let shown: String = text.chars().take(25).collect();
            let ellipsis = if shown.len() < text.len() { "..." } else { "" };
            format!("type string ('{shown}'{ellipsis})")
        }
        ValueType::Function => "function".into(),
        ValueType::Object => "an instance of Object".into(),
        ValueType::BigInt => "type bigint".into(),
        ValueType::Symbol => "type symbol".into(),
        _ => "an unsupported value".into(),
    }
}

/// A number printed the way JS prints it.
pub fn js_number(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{n}")
    }
}

/// Whether user code left an exception pending (a throwing getter, say).
pub fn exception_pending(env: &Env) -> bool {
    let mut pending = false;
    // SAFETY: plain N-API query on the current env.
    unsafe { napi::sys::napi_is_exception_pending(env.raw(), &mut pending) };
    pending
}

/// Takes (and discards) an exception that user code left pending: a throwing logger or getter
/// must not turn into a throw from our call. `Function::apply` does not clear it itself.
pub fn clear_pending_exception(env: &Env) {
    let _ = take_pending_exception(env);
}

/// The exception user code left pending, cleared (so that our call can go on), if any.
pub fn take_pending_exception<'e>(env: &'e Env) -> Option<Unknown<'e>> {
    let mut pending = false;
    // SAFETY: plain N-API calls on the current env, on the JS thread we are running on.
    unsafe {
        napi::sys::napi_is_exception_pending(env.raw(), &mut pending);
        if !pending {
            return None;
        }
        let mut exception = std::ptr::null_mut();
        napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut exception);
        Some(Unknown::from_raw_unchecked(env.raw(), exception))
    }
}
