//! The thin napi layer: argument checks, JS conversions, errors and logger calls over the pure
//! engine. Nothing here decides anything about caching.

mod abort;
mod args;
mod errors;
mod fetcher;
mod front;
mod hit_path;
mod logger;
mod options;
mod products;
mod providers;
mod proxy;
mod reader;
mod serve_command;
mod service;
mod summaries;
mod values;

use napi::bindgen_prelude::*;
use napi::Env;
use napi_derive::napi;

pub use service::WeatherService;

use weather_cache_core::geo::{distance_km as haversine, Grid, MAX_GRID_DEG, MIN_GRID_DEG};
use errors::{js_number, ArgError};

/// Great-circle distance in km (haversine, R = 6371 km).
#[napi(catch_unwind, ts_args_type = "lat1: number, lon1: number, lat2: number, lon2: number")]
pub fn distance_km(env: &Env, lat1: Unknown, lon1: Unknown, lat2: Unknown, lon2: Unknown) -> Result<f64> {
    let a = args::location(&lat1, &lon1, "lat1", "lon1").map_err(|e| e.throw(env))?;
    let b = args::location(&lat2, &lon2, "lat2", "lon2").map_err(|e| e.throw(env))?;
    Ok(haversine(a, b))
}

/// The grid cell key of a point: `"{bucketLat.toFixed(5)}:{bucketLon.toFixed(5)}"`.
#[napi(catch_unwind, ts_args_type = "lat: number, lon: number, gridDeg?: number")]
pub fn bucket_key(env: &Env, lat: Unknown, lon: Unknown, grid_deg: Unknown) -> Result<String> {
    let at = args::location(&lat, &lon, "lat", "lon").map_err(|e| e.throw(env))?;
    let deg = match args::type_of(&grid_deg) {
        napi::ValueType::Undefined => 0.045,
        _ => args::finite(&grid_deg, "gridDeg").map_err(|e| e.throw(env))?,
    };
    if !(MIN_GRID_DEG..=MAX_GRID_DEG).contains(&deg) {
        let expected = format!(">= {MIN_GRID_DEG} && <= {MAX_GRID_DEG}");
        return Err(ArgError::Range { name: "gridDeg".into(), expected, received: js_number(deg) }.throw(env));
    }
    let grid = Grid::new(deg);
    Ok(grid.key(grid.cell_of(at)))
}

/// Type-only stand-in: its name makes the generated declaration read
/// `export declare const weatherService: WeatherService` and the generated loader export it.
/// The value itself is replaced in `init` (a const cannot hold a class instance: consts are
/// exported before classes exist).
#[doc(hidden)]
pub mod marker {
    pub struct WeatherService;

    impl napi::bindgen_prelude::ToNapiValue for WeatherService {
        unsafe fn to_napi_value(env: napi::sys::napi_env, _: Self) -> napi::Result<napi::sys::napi_value> {
            unsafe { <() as napi::bindgen_prelude::ToNapiValue>::to_napi_value(env, ()) }
        }
    }
}

/// The default instance, configured on first use (so `OPEN_WEATHER_API_KEY` is read when the
/// application first asks for weather, not when it imports the module; while it has no key, or one the
/// provider refused, it looks again at each call). Its `logLevel` comes from `WEATHER_CACHE_LOG_LEVEL`.
#[allow(non_upper_case_globals)]
#[napi]
pub const weatherService: marker::WeatherService = marker::WeatherService;

#[napi(module_exports)]
pub fn init(mut exports: Object, env: Env) -> Result<()> {
    hit_path::install(&env, &exports)?;
    exports.set("weatherService", WeatherService::lazy())
}

/// An already resolved `Promise<void>`, doing nothing else: the cost of the N-API boundary
/// itself, the floor the benchmarks compare the cache's hit path with.
#[napi(ts_return_type = "Promise<void>")]
pub fn noop_resolved(env: &Env) -> Result<PromiseRaw<'_, ()>> {
    PromiseRaw::resolve(env, ())
}
