//! Delivering engine events to pino-style loggers: `logger[level](fields, name)` with the
//! logger as `this`. A logger that throws is ignored; it never breaks a request.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Env;

use super::errors::{clear_pending_exception, exception_pending};
use weather_cache_core::engine::{Event, Field, Level};

type LogMethod<'e> = Function<'e, FnArgs<(Object<'e>, &'static str)>, Unknown<'e>>;

/// Calls `logger[method](fields, name)` for each event, on the JS thread.
pub fn emit(env: &Env, logger: &Object, events: Vec<Event>) {
    for event in events {
        let method = event.level().method();
        let Ok(Some(function)) = logger.get::<LogMethod>(method) else {
            clear_pending_exception(env);
            continue;
        };
        let Ok(fields) = fields(env, &event) else { continue };
        settled(env, function.apply(logger, FnArgs::from((fields, event.name()))));
    }
}

/// What a logger call returned is ignored, including how it fails: a throw is cleared, and a
/// rejected Promise (an async logger) gets a handler, or it would surface as the application's
/// unhandled rejection.
fn settled(env: &Env, returned: Result<Unknown>) {
    let Ok(value) = returned else {
        clear_pending_exception(env);
        return;
    };
    let mut is_promise = false;
    // SAFETY: plain N-API query on a value of this scope.
    unsafe { napi::sys::napi_is_promise(env.raw(), value.raw(), &mut is_promise) };
    if !is_promise {
        return;
    }
    // The intrinsic `%Promise.prototype%.then`, read off a promise N-API makes: neither the
    // object's own `then` (a subclass could override it) nor `globalThis.Promise` (an app may
    // have replaced it with a library whose `then` refuses native promises).
    let swallowed = (|| -> Result<()> {
        let (mut deferred, mut promise, mut prototype) = (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
        let undefined = ().into_unknown(env)?;
        // SAFETY: plain N-API calls on the JS thread; the deferred is resolved at once (an
        // unsettled one would leak).
        unsafe {
            check_status!(napi::sys::napi_create_promise(env.raw(), &mut deferred, &mut promise))?;
            check_status!(napi::sys::napi_resolve_deferred(env.raw(), deferred, undefined.raw()))?;
            check_status!(napi::sys::napi_get_prototype(env.raw(), promise, &mut prototype))?;
        }
        let prototype = Object::from_raw(env.raw(), prototype);
        let then: Function<FnArgs<(Unknown, Function<Unknown, ()>)>, Unknown> = prototype.get_named_property("then")?;
        let ignore = env.create_function_from_closure::<Unknown, (), _>("ignoreLoggerRejection", |_| Ok(()))?;
        then.apply(value, FnArgs::from((undefined, ignore)))?;
        Ok(())
    })();
    if swallowed.is_err() {
        clear_pending_exception(env);
    }
}

/// The event's fields as a plain object (the first argument pino receives).
pub fn fields<'e>(env: &'e Env, event: &Event) -> Result<Object<'e>> {
    let mut o = Object::new(env)?;
    for (name, value) in event.fields() {
        match value {
            Field::Text(text) => o.set(name, text)?,
            Field::Number(n) => o.set(name, n)?,
        }
    }
    Ok(o)
}

/// An event crossing to the JS thread; becomes `(fields, name)` there.
struct Delivery(Event);

type Dispatch = ThreadsafeFunction<Delivery, (), FnArgs<(Object<'static>, &'static str)>, Status, false, true>;

/// The service's `logger` option. Events raised off the JS thread (background refreshes) are
/// queued through a *weak* threadsafe function, so a configured logger never keeps Node alive.
#[derive(Clone)]
pub struct ServiceLogger {
    /// One per level: `logger[level]` bound to the logger, wrapped so that a throw is swallowed
    /// (a throw inside a threadsafe call would be fatal to the process).
    by_level: Arc<[Option<Dispatch>; 6]>,
}

impl ServiceLogger {
    pub fn new(env: &Env, logger: &Object) -> Result<ServiceLogger> {
        let levels = [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error, Level::Fatal];
        let mut by_level: [Option<Dispatch>; 6] = Default::default();
        for (slot, level) in by_level.iter_mut().zip(levels) {
            *slot = guarded_method(env, logger, level.method())?;
        }
        Ok(ServiceLogger { by_level: Arc::new(by_level) })
    }

    /// Queues events for delivery on the JS thread (any thread may call this).
    pub fn send(&self, events: Vec<Event>) {
        for event in events {
            if let Some(dispatch) = &self.by_level[event.level() as usize] {
                dispatch.call(Delivery(event), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }
}

/// `logger[method]`, bound and wrapped, as a weak threadsafe function; `None` if the logger has
/// no such method. A getter that throws makes the constructor throw (as for any option).
fn guarded_method(env: &Env, logger: &Object, method: &str) -> Result<Option<Dispatch>> {
    let function = match logger.get::<Unknown>(method) {
        Ok(Some(value)) if value.get_type()? == napi::ValueType::Function => {
            // SAFETY: checked to be a function.
            unsafe { value.cast::<Function<FnArgs<(Object, &str)>, Unknown>>() }?
        }
        Ok(_) => return Ok(None),
        Err(error) if exception_pending(env) => return Err(error),
        Err(_) => return Ok(None),
    };
    let bind: Function<FnArgs<(Object,)>, Function<FnArgs<(Object, &str)>, Unknown>> =
        function.get_named_property("bind")?;
    let bound = bind.apply(function, FnArgs::from((*logger,)))?;
    let bound_ref = bound.create_ref()?;
    let guarded = env.create_function_from_closure::<FnArgs<(Object, &str)>, (), _>("weatherCacheLog", move |ctx| {
        let (fields, name) = (ctx.get::<Object>(0)?, ctx.get::<String>(1)?);
        if let Ok(bound) = bound_ref.borrow_back(ctx.env) {
            settled(ctx.env, bound.call(FnArgs::from((fields, name.as_str()))));
        }
        Ok(())
    })?;
    let tsfn =
        guarded.build_threadsafe_function::<Delivery>().callee_handled::<false>().weak::<true>().build_callback(
            |ctx| {
                // Runs on the JS thread, where the event's fields object can be built.
                let fields = fields(&ctx.env, &ctx.value.0)?;
                // SAFETY: the object lives in the handle scope of this callback, which is where
                // the threadsafe function uses the arguments.
                let fields: Object<'static> = unsafe { std::mem::transmute(fields) };
                Ok(FnArgs::from((fields, ctx.value.0.name())))
            },
        )?;
    Ok(Some(tsfn))
}
