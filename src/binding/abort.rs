//! `options.signal`: an abort rejects that caller only. The shared fetch is a separate task
//! and keeps going for everyone else.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};
use tokio::sync::Notify;

use super::args::{property, type_of};
use super::errors::{clear_pending_exception, describe, ArgError, Checked};

/// An `abort` listener attached to a signal until the call settles.
pub struct AbortWatch {
    signal: ObjectRef<false>,
    listener: FunctionRef<(), ()>,
}

/// Checks that `value` looks like an AbortSignal (`aborted` and `addEventListener`).
pub fn signal_arg<'e>(env: &'e Env, value: Unknown<'e>) -> Checked<Object<'e>> {
    let looks_right = type_of(&value) == ValueType::Object && {
        let object = Object::from_raw(env.raw(), value.raw());
        let aborted = property(env, &object, "aborted").map(|v| type_of(&v));
        let add = property(env, &object, "addEventListener").map(|v| type_of(&v));
        aborted == Some(ValueType::Boolean) && add == Some(ValueType::Function)
    };
    if !looks_right {
        return Err(ArgError::Type {
            name: "options.signal".into(),
            expected: "AbortSignal",
            received: describe(&value),
        });
    }
    Ok(Object::from_raw(env.raw(), value.raw()))
}

/// `signal.aborted`; a getter that throws counts as "not aborted" (its exception is cleared, or
/// the call could never settle).
pub fn is_aborted(env: &Env, signal: &Object) -> bool {
    match property(env, signal, "aborted") {
        Some(value) if type_of(&value) == ValueType::Boolean => unsafe { value.cast::<bool>() }.unwrap_or(false),
        _ => false,
    }
}

pub fn reason<'e>(env: &'e Env, signal: &Object<'e>) -> Unknown<'e> {
    signal.get::<Unknown>("reason").ok().flatten().unwrap_or_else(|| {
        clear_pending_exception(env);
        ().into_unknown(env).expect("undefined")
    })
}

impl AbortWatch {
    /// Listens for `abort`; the returned `Notify` fires when it happens (a permit is stored, so
    /// an abort before the future first waits is not lost).
    pub fn attach(env: &Env, signal: &Object) -> Result<(AbortWatch, Arc<Notify>)> {
        let notify = Arc::new(Notify::new());
        let wake = notify.clone();
        let listener = env.create_function_from_closure::<(), (), _>("onWeatherAbort", move |_| {
            wake.notify_one();
            Ok(())
        })?;
        let mut options = Object::new(env)?;
        options.set("once", true)?;
        let add: Function<FnArgs<(&str, Function<(), ()>, Object)>, Unknown> =
            signal.get_named_property("addEventListener")?;
        add.apply(signal, FnArgs::from(("abort", listener, options)))?;
        // Aborted while the call ran (by a logger, say): the listener came too late to hear it.
        if is_aborted(env, signal) {
            notify.notify_one();
        }
        Ok((AbortWatch { signal: signal.create_ref()?, listener: listener.create_ref()? }, notify))
    }

    /// Removes the listener (on the JS thread, once the call settled) and returns the signal.
    /// Whatever the signal's `removeEventListener` does (missing, a throwing getter, a throw), no
    /// exception is left pending: the call must still settle.
    pub fn detach<'e>(self, env: &'e Env) -> Result<Object<'e>> {
        let signal = self.signal.get_value(env)?;
        let listener = self.listener.borrow_back(env)?;
        if let Some(remove) = property(env, &signal, "removeEventListener").filter(|f| type_of(f) == ValueType::Function) {
            // SAFETY: checked to be a function just above.
            let remove: Function<FnArgs<(&str, Function<(), ()>)>, Unknown> = unsafe { remove.cast() }?;
            if remove.apply(signal, FnArgs::from(("abort", listener))).is_err() {
                clear_pending_exception(env);
            }
        }
        self.signal.unref(env)?;
        Ok(signal)
    }
}
