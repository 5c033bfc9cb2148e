//! `WeatherService`: argument checks, then the engine, then JS values. Cache hits settle
//! synchronously (an already resolved Promise, no trip through tokio); misses settle from the
//! fetch's completion on the JS thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;

use super::abort::{self, AbortWatch};
use super::args::{self, property, type_of, Call};
use super::errors::{describe, js_number, request_error, take_pending_exception, ArgError, Checked};
use super::front::{self, FrontView};
use super::logger::{self, ServiceLogger};
use super::options;
use super::products::{self, Include, ReadInclude};
use super::proxy::WeatherProxy;
use super::reader::env_var;
use super::summaries::{Summaries, SummariesId};
use super::values::{ForecastResult, JsValueOf, WeatherStats};
use weather_cache_core::options::API_KEY_ENV;
use weather_cache_core::provider::LateKey;
use weather_cache_core::engine::{
    BackgroundEvents, Begin, Engine, Event, Level, Mode, Recorder, Reply, Request, RequestError, Served,
    Source, MAX_DURATION_MS,
};

/// The weather cache: one instance per process is the usual set-up (`weatherService`).
#[napi]
pub struct WeatherService {
    /// Built by the constructor, or on first use for the default instance (so that it reads
    /// `OPEN_WEATHER_API_KEY` when the application is ready, not when the module loads).
    service: OnceLock<Service>,
    /// `close()` was called, possibly before the default instance was ever used.
    closed: AtomicBool,
}

struct Service {
    engine: Engine,
    level: Level,
    /// Set once lib/front.js attached (see `front.rs`): `getWeather` then describes its answer.
    front: std::cell::OnceCell<Arc<FrontView>>,
    logger: Option<ServiceLogger>,
    /// Events of work no caller waits for (the proxy's requests too) go to the logger.
    background: Option<BackgroundEvents>,
    summaries: Summaries,
    /// The default instance without a key: `OPEN_WEATHER_API_KEY`, once the environment has it.
    late_key: Option<LateKey>,
}

impl Drop for Service {
    /// Runs in the `WeatherService` finalizer, on the JS thread.
    fn drop(&mut self) {
        self.summaries.release();
    }
}

/// What a request method resolves with.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Shape {
    /// `getWeather`: the summary, or `null` on any upstream trouble.
    Summary,
    /// `getForecast`: summary and meta (and the products asked for), or a rejection with a
    /// code.
    Forecast(Include),
    /// `warmup`: `undefined` either way (failures are logged and counted).
    Nothing,
}

type Settled<'e> = PromiseRaw<'e, Unknown<'e>>;

#[napi]
impl WeatherService {
    #[napi(constructor, catch_unwind, ts_args_type = "options?: WeatherServiceOptions")]
    pub fn new(env: &Env, options: Unknown) -> Result<Self> {
        let service = Service::new(env, &options, false)?;
        Ok(WeatherService { service: OnceLock::from(service), closed: AtomicBool::new(false) })
    }

    /// The default instance: configured on first use.
    pub(crate) fn lazy() -> WeatherService {
        WeatherService { service: OnceLock::new(), closed: AtomicBool::new(false) }
    }

    /// Overloads are declared in `dts-header.d.ts` (napi-rs cannot emit them). Exposed to JS by
    /// `hit_path.rs`, not by napi-rs's method glue.
    pub(crate) fn get_weather<'e>(
        &self,
        env: &'e Env,
        session: Unknown<'e>,
        second: Unknown<'e>,
        third: Unknown<'e>,
        fourth: Unknown<'e>,
    ) -> Result<Settled<'e>> {
        match args::weather_call(env, &session, &second, &third, &fourth) {
            Ok(call) => self.respond(env, call, Mode::Normal, Shape::Summary, None).or_else(|e| rejected(env, e)),
            Err(error) => PromiseRaw::reject(env, error.to_js(env)?),
        }
    }

    /// Like `getWeather`, with where the answer came from, and errors as rejections with a
    /// `code`. `forceRefresh` fetches unless the entry is younger than `minRefreshIntervalMs`;
    /// `maxAgeMs` treats an entry older than that (and than `minRefreshIntervalMs`) as a miss.
    #[napi(
        catch_unwind,
        ts_args_type = "session: WeatherSession | null | undefined, userId: string, lat: number, lon: number, options?: ForecastOptions",
        ts_return_type = "Promise<ForecastResult>"
    )]
    pub fn get_forecast<'e>(
        &self,
        env: &'e Env,
        session: Unknown<'e>,
        user_id: Unknown<'e>,
        lat: Unknown<'e>,
        lon: Unknown<'e>,
        options: Unknown<'e>,
    ) -> Result<Settled<'e>> {
        let parsed = args::forecast_call(env, &session, &user_id, &lat, &lon)
            .and_then(|call| forecast_options(env, options).map(|(mode, signal, include)| (call, mode, signal, include)));
        let (call, mode, signal, include) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return PromiseRaw::reject(env, error.to_js(env)?),
        };
        if !include.is_empty() && !self.service(env).is_ok_and(|s| s.engine.config().keep_products) {
            let message = "options.include needs a service that keeps forecast products (created without products: false)";
            return PromiseRaw::reject(env, ArgError::State { message: message.into() }.to_js(env)?);
        }
        if let Some(signal) = signal.as_ref().filter(|s| abort::is_aborted(env, s)) {
            return PromiseRaw::reject(env, super::errors::abort_error(env, abort::reason(env, signal))?);
        }
        self.respond(env, call, mode, Shape::Forecast(include), signal).or_else(|e| rejected(env, e))
    }

    /// Makes sure the area around (lat, lon) is cached (fetching if it is not fresh). Resolves
    /// once done; upstream failures resolve too (they are logged and counted), so a
    /// fire-and-forget `warmup` can never cause an unhandled rejection.
    #[napi(catch_unwind, ts_args_type = "userId: string, lat: number, lon: number", ts_return_type = "Promise<void>")]
    pub fn warmup<'e>(
        &self,
        env: &'e Env,
        user_id: Unknown<'e>,
        lat: Unknown<'e>,
        lon: Unknown<'e>,
    ) -> Result<Settled<'e>> {
        let call = args::user_id(env, Some(&user_id), "userId")
            .and_then(|user| Ok(Call { session: None, user, at: args::location(&lat, &lon, "lat", "lon")? }));
        match call {
            Ok(call) => self.respond(env, call, Mode::Warmup, Shape::Nothing, None).or_else(|e| rejected(env, e)),
            Err(error) => PromiseRaw::reject(env, error.to_js(env)?),
        }
    }

    /// Forgets a user's cached entries (e.g. on logout).
    #[napi(catch_unwind, ts_args_type = "userId: string")]
    pub fn clear_user(&self, env: &Env, user_id: Unknown) -> Result<()> {
        let user = args::user_id(env, Some(&user_id), "userId").map_err(|e| e.throw(env))?;
        self.service(env)?.engine.clear_user(user.as_str());
        Ok(())
    }

    /// Moves the manual clock forward (`clock: "manual"` only; throws `ERR_INVALID_STATE`
    /// otherwise) and returns where it is now (epoch ms): `advanceTime(0)` reads it.
    #[napi(catch_unwind, ts_args_type = "ms: number")]
    pub fn advance_time(&self, env: &Env, ms: Unknown) -> Result<f64> {
        let ms = args::finite(&ms, "ms").map_err(|e| e.throw(env))?;
        if ms < 0.0 || ms.fract() != 0.0 {
            let expected = "an integer >= 0".into();
            return Err(ArgError::Range { name: "ms".into(), expected, received: js_number(ms) }.throw(env));
        }
        let service = self.service(env)?;
        if !service.engine.advance_time(ms as u64) {
            let message = "advanceTime() needs a service created with clock: \"manual\"".into();
            return Err(ArgError::State { message }.throw(env));
        }
        if let Some(view) = service.front.get() {
            view.clock(service.engine.now());
        }
        Ok(service.engine.now() as f64)
    }

    /// Counters and gauges (see `WeatherStats`). For a periodic summary, call it from
    /// `setInterval`; the service runs no timers of its own.
    #[napi(catch_unwind)]
    pub fn stats(&self, env: &Env) -> Result<WeatherStats> {
        Ok(self.service(env)?.engine.stats().into())
    }

    /// The same numbers in the Prometheus text format (`weather_cache_*`), for `/metrics`.
    #[napi(catch_unwind)]
    pub fn metrics_text(&self, env: &Env) -> Result<String> {
        Ok(self.service(env)?.engine.stats().to_prometheus())
    }

    /// Starts the drone proxy (`weather-cache serve`) on this service: an HTTP server inside the
    /// addon, on threads of its own, answering `GET /v1/weather`, `/metrics` and `/healthz`
    /// from this cache. Resolves once listening; rejects `EADDRINUSE` and the like.
    #[napi(catch_unwind, ts_args_type = "options?: ListenOptions", ts_return_type = "Promise<WeatherProxy>")]
    pub fn listen<'e>(&self, env: &'e Env, options: Unknown<'e>) -> Result<Settled<'e>> {
        let service = match self.service(env) {
            Ok(service) => service,
            Err(error) => return rejected(env, error),
        };
        if service.engine.is_closed() {
            return PromiseRaw::reject(env, request_error(env, &RequestError::Closed)?);
        }
        service.pick_up_key(env);
        match super::proxy::listen(env, &service.engine, service.background.clone(), &options) {
            // SAFETY: converting a napi class instance to its JS object, on the JS thread.
            Ok(proxy) => {
                let value = unsafe { Unknown::from_raw_unchecked(env.raw(), WeatherProxy::to_napi_value(env.raw(), proxy)?) };
                PromiseRaw::resolve(env, value)
            }
            Err(error) => rejected(env, error),
        }
    }

    /// For lib/front.js: `{ versions, view, proximityKm, maxUsers, manualClock }` (see `front.rs`), or `null`
    /// when no front can answer exactly as the engine would: debug events on (a hit has its
    /// own), several entries per user (the nearest would win), or the service closed.
    #[napi(js_name = "frontAttach", skip_typescript, catch_unwind)]
    pub fn front_attach<'e>(&self, env: &'e Env) -> Result<Unknown<'e>> {
        let service = self.service(env)?;
        let config = service.engine.config();
        if service.level <= Level::Debug || config.per_user_capacity != 1 || service.engine.is_closed() {
            return Null.into_unknown(env);
        }
        let view = service.front.get().cloned().unwrap_or_else(FrontView::new);
        let Ok((versions, buffer)) = front::buffers(env, service.engine.watch_users(), view.clone()) else {
            return Null.into_unknown(env);
        };
        view.clock(service.engine.now());
        let _ = service.front.set(view);
        let mut object = Object::new(env)?;
        object.set("versions", versions)?;
        object.set("view", buffer)?;
        object.set("proximityKm", config.proximity_km)?;
        object.set("maxUsers", config.max_users as f64)?;
        object.set("manualClock", config.clock == weather_cache_core::engine::ClockKind::Manual)?;
        object.into_unknown(env)
    }

    /// For lib/front.js: the `hits` it answered since the last flush, by `users` in the order of
    /// their last hit.
    #[napi(js_name = "frontFlush", skip_typescript, catch_unwind)]
    pub fn front_flush(&self, env: &Env, users: Vec<String>, hits: f64) -> Result<()> {
        self.service(env)?.engine.replay_user_hits(users.iter().map(String::as_str), hits as u64);
        Ok(())
    }

    /// Settles every pending request (`getWeather` with `null`, `getForecast` with
    /// `ERR_SERVICE_CLOSED`), frees the caches; later calls reject `ERR_SERVICE_CLOSED`.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(service) = self.service.get() {
            service.engine.close();
        }
    }
}

impl WeatherService {
    fn service(&self, env: &Env) -> Result<&Service> {
        if let Some(service) = self.service.get() {
            return Ok(service);
        }
        let defaults = ().into_unknown(env)?;
        let service = Service::new(env, &defaults, true)?;
        // A default instance closed before its first use stays closed.
        if self.closed.load(Ordering::Acquire) {
            service.engine.close();
        }
        let _ = self.service.set(service);
        Ok(self.service.get().expect("just set"))
    }

    fn respond<'e>(
        &self,
        env: &'e Env,
        call: Call<'e>,
        mode: Mode,
        shape: Shape,
        signal: Option<Object<'e>>,
    ) -> Result<Settled<'e>> {
        let service = self.service(env)?;
        service.pick_up_key(env);
        let mut recorder = Recorder::new(service.level);
        let request = Request { user: call.user.as_str(), at: call.at, mode };
        let begun = match service.front.get().filter(|_| shape == Shape::Summary) {
            Some(view) => {
                let (begun, version) = service.engine.begin_versioned(request, &mut recorder);
                match (&begun, version) {
                    (Begin::Ready(Ok(served)), Some(version)) if served.source == Source::Cache => {
                        let ahead = service.engine.config().refresh_ahead_ms as i64;
                        let entry = &served.entry;
                        let until = if entry.held_until() > entry.expires_at - ahead { entry.expires_at } else { entry.expires_at - ahead };
                        view.answered(entry, until, version)
                    }
                    _ => view.nothing(),
                }
                begun
            }
            None => service.engine.begin(request, &mut recorder),
        };
        if !recorder.events.is_empty() {
            service.deliver(env, call.session.as_ref(), recorder.events);
        }
        let pending = match begun {
            Begin::Ready(Err(RequestError::Closed)) => {
                return PromiseRaw::reject(env, request_error(env, &RequestError::Closed)?);
            }
            Begin::Ready(Ok(served)) if shape == Shape::Summary => {
                return service.summaries.resolved(env, &served.entry);
            }
            Begin::Ready(result) => {
                return match settle(env, &service.engine, service.summaries.id(), shape, result)? {
                    Ok(value) => PromiseRaw::resolve(env, value),
                    Err(error) => PromiseRaw::reject(env, error),
                };
            }
            Begin::Pending(pending) => pending,
        };
        // Only a miss waits. The abort listener goes first: attaching it can fail (a hostile
        // signal), and nothing that needs releasing exists yet.
        let abort = signal.as_ref().map(|s| AbortWatch::attach(env, s)).transpose()?;
        let (watch, aborted) = abort.map_or((None, None), |(watch, notify)| (Some(watch), Some(notify)));
        // Only now is the caller's logger looked up and kept alive.
        let logger = match &call.session {
            Some(session) if service.level <= Level::Warn => session_logger(env, session).ok().flatten(),
            _ => None,
        };
        let (engine, summaries, background, level) =
            (service.engine.clone(), service.summaries.id(), service.logger.clone(), service.level);
        // Only a caller whose own logger can log them (a flight's events are warnings, with a
        // debug `sent`) takes the flight's events; otherwise they reach the service's logger
        // when the flight's landing is dropped (see `Landing`).
        let take_events = logger.is_some() && call.session.as_ref().is_some_and(|s| logs_warnings(env, s));
        // The future always succeeds (failures travel inside `Reply`), so the callback always
        // runs and releases the references it holds.
        let waiting = async move {
            let reply = match aborted {
                Some(aborted) => tokio::select! {
                    reply = pending.wait(take_events) => Some(reply),
                    _ = aborted.notified() => None,
                },
                None => Some(pending.wait(take_events).await),
            };
            Ok(reply)
        };
        env.spawn_future_with_callback(waiting, move |env, reply: Option<Reply>| {
            // Release the references before anything else can fail.
            let logger = logger.and_then(|r| {
                let object = r.get_value(env).ok();
                let _ = r.unref(env);
                object
            });
            let signal = watch.and_then(|w| w.detach(env).ok());
            // A panic here would unwind into an `extern "C"` callback and abort Node.
            catch_unwind(AssertUnwindSafe(|| {
                let Some(reply) = reply else {
                    let reason = match &signal {
                        Some(signal) => abort::reason(env, signal),
                        None => ().into_unknown(env)?,
                    };
                    return Err(napi::Error::from(super::errors::abort_error(env, reason)?));
                };
                if !reply.events.is_empty() && level != Level::Silent {
                    match (&logger, &background) {
                        (Some(logger), _) => logger::emit(env, logger, reply.events),
                        (None, Some(background)) => background.send(reply.events),
                        (None, None) => {}
                    }
                }
                match settle(env, &engine, summaries, shape, reply.result)? {
                    Ok(value) => Ok(value),
                    Err(error) => Err(napi::Error::from(error)),
                }
            }))
            .unwrap_or_else(|_| Err(napi::Error::from_reason("weather-cache: internal error (panic) while settling")))
        })
    }
}

/// A Promise rejected with what went wrong inside a call: the exception user code threw (a
/// throwing `addEventListener`, say), or the error itself. Request methods never throw.
fn rejected<'e>(env: &'e Env, error: napi::Error) -> Result<Settled<'e>> {
    let reason = match take_pending_exception(env) {
        Some(exception) => exception,
        None => JsError::from(error).into_unknown(*env),
    };
    PromiseRaw::reject(env, reason)
}

impl Service {
    fn new(env: &Env, options: &Unknown, default_instance: bool) -> Result<Service> {
        let options = options::parse(env, options, default_instance).map_err(|e| e.throw(env))?;
        let late_key = options.service.late_api_key.clone();
        let logger = options.logger.as_ref().map(|l| ServiceLogger::new(env, l)).transpose()?;
        let background: Option<BackgroundEvents> = logger.clone().map(|l| Arc::new(move |events| l.send(events)) as _);
        let runtime = napi::bindgen_prelude::within_runtime_if_available(tokio::runtime::Handle::current);
        let started = options.service.clone().resolve().and_then(|resolved| resolved.start(runtime, background.clone()));
        let engine = started.map_err(|error| options.error(error).throw(env))?;
        let level = engine.config().log_level;
        let summaries = Summaries::register(env);
        Ok(Service { engine, level, front: Default::default(), logger, background, summaries, late_key })
    }

    /// Reads `OPEN_WEATHER_API_KEY` while the default instance has no key, or has one the
    /// provider refused (a few microseconds a call then; nothing while a key works). A new
    /// value replaces a refused key at once: the refusal's cooldown was for the old key.
    fn pick_up_key(&self, env: &Env) {
        if let Some(late) = self.late_key.as_ref().filter(|key| !key.is_set() || key.is_rejected()) {
            if let Some(key) = env_var(env, API_KEY_ENV) {
                late.set(key);
            }
        }
    }

    /// Events of a call go to the session's logger, or else to the service's.
    fn deliver(&self, env: &Env, session: Option<&Object>, events: Vec<Event>) {
        match session.map(|s| session_logger_object(env, s)) {
            Some(Some(logger)) => logger::emit(env, &logger, events),
            _ => {
                if let Some(logger) = &self.logger {
                    logger.send(events);
                }
            }
        }
    }
}

/// The JS value a result resolves with (`Ok`) or rejects with (`Err`).
fn settle<'e>(
    env: &'e Env,
    engine: &Engine,
    summaries: SummariesId,
    shape: Shape,
    result: std::result::Result<Served, RequestError>,
) -> Result<std::result::Result<Unknown<'e>, Unknown<'e>>> {
    Ok(match (shape, result) {
        (Shape::Summary, Ok(served)) => Ok(summaries.get(env, &served.entry)?),
        (Shape::Summary, Err(_)) => Ok(Null.into_unknown(env)?),
        (Shape::Forecast(include), Ok(served)) => {
            let summary = JsValueOf::new(summaries.get(env, &served.entry)?);
            let key = engine.grid().key(served.entry.cell);
            let now = engine.now();
            let result = ForecastResult::of(&served, summary, key, now).into_unknown(env)?;
            if include.is_empty() {
                Ok(result)
            } else {
                let mut object = result.coerce_to_object()?;
                products::add(env, &mut object, &served.entry, include, now)?;
                Ok(object.to_unknown())
            }
        }
        (Shape::Forecast(_), Err(error)) => Err(request_error(env, &error)?),
        (Shape::Nothing, _) => Ok(().into_unknown(env)?),
    })
}

fn session_logger_object<'e>(env: &Env, session: &Object<'e>) -> Option<Object<'e>> {
    let logger = property(env, session, "logger")?;
    matches!(type_of(&logger), ValueType::Object | ValueType::Function)
        .then(|| Object::from_raw(env.raw(), logger.raw()))
}

/// Whether `session.logger.warn` is a function.
fn logs_warnings(env: &Env, session: &Object) -> bool {
    session_logger_object(env, session)
        .and_then(|logger| property(env, &logger, "warn"))
        .is_some_and(|warn| type_of(&warn) == ValueType::Function)
}

/// A reference to `session.logger`, kept alive until the call settles.
fn session_logger(env: &Env, session: &Object) -> Result<Option<ObjectRef<false>>> {
    session_logger_object(env, session).map(|logger| logger.create_ref()).transpose()
}

/// `{ forceRefresh?: boolean, maxAgeMs?: number, signal?: AbortSignal, include?: string[] }`, as
/// the request's mode (`forceRefresh` wins over `maxAgeMs`: it asks for the freshest there may
/// be) and the products asked for.
fn forecast_options<'e>(env: &'e Env, value: Unknown<'e>) -> Checked<(Mode, Option<Object<'e>>, Include)> {
    let object = match type_of(&value) {
        ValueType::Undefined | ValueType::Null => return Ok((Mode::Normal, None, Include::NONE)),
        ValueType::Object => Object::from_raw(env.raw(), value.raw()),
        _ => return Err(ArgError::Type { name: "options".into(), expected: "object", received: describe(&value) }),
    };
    let force = match args::option(&object, "forceRefresh")? {
        None => false,
        Some(v) if type_of(&v) == ValueType::Boolean => unsafe { v.cast::<bool>() }.unwrap_or(false),
        Some(v) => {
            return Err(ArgError::Type {
                name: "options.forceRefresh".into(),
                expected: "boolean",
                received: describe(&v),
            })
        }
    };
    let max_age = match args::option(&object, "maxAgeMs")? {
        None => None,
        Some(v) => {
            let ms = args::finite(&v, "options.maxAgeMs")?;
            if ms < 0.0 || ms.fract() != 0.0 || ms > MAX_DURATION_MS as f64 {
                let expected = format!("an integer >= 0 and <= {MAX_DURATION_MS}");
                return Err(ArgError::Range { name: "options.maxAgeMs".into(), expected, received: js_number(ms) });
            }
            Some(ms as u64)
        }
    };
    let mode = match (force, max_age) {
        (true, _) => Mode::ForceRefresh,
        (false, Some(ms)) => Mode::MaxAge(ms),
        (false, None) => Mode::Normal,
    };
    let signal = args::option(&object, "signal")?.map(|v| abort::signal_arg(env, v)).transpose()?;
    let include = Include::read(env, args::option(&object, "include")?)?;
    Ok((mode, signal, include))
}
