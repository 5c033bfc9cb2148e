//! The forecast products `getForecast` adds on request (`include`), as frozen JS objects built
//! from the entry at answer time: past hours, days and minutes are left out, so the first hour
//! is the current one however old the entry. `#[napi(object)]` makes these the generated
//! TypeScript interfaces.

use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;

use super::args::type_of;
use super::errors::{describe, ArgError, Checked};
use weather_cache_core::cache::{iso_date, tenths, Entry, Maybe, Products, Wanted};

/// The products a call asked for.
pub type Include = Wanted;

/// Reads `include`.
pub trait ReadInclude: Sized {
    fn read(env: &Env, value: Option<Unknown>) -> Checked<Self>;
}

impl ReadInclude for Wanted {
    /// `options.include`: an array of `Wanted::NAMES` (repeats allowed), or undefined.
    fn read(env: &Env, value: Option<Unknown>) -> Checked<Include> {
        let Some(value) = value else { return Ok(Include::NONE) };
        let name = "options.include";
        if !value.is_array().unwrap_or(false) {
            return Err(ArgError::Type { name: name.into(), expected: "Array", received: describe(&value) });
        }
        let array = Object::from_raw(env.raw(), value.raw());
        let len = array.get_array_length().map_err(|_| ArgError::Thrown)?;
        let mut include = Include::NONE;
        for i in 0..len {
            let item: Unknown = array.get_element(i).map_err(|_| ArgError::Thrown)?;
            let text = (type_of(&item) == ValueType::String)
                .then(|| item.coerce_to_string().ok()?.into_utf8().ok()?.as_str().ok().map(str::to_owned))
                .flatten();
            match text.as_deref().and_then(Wanted::named) {
                Some(product) => include = include.with(product),
                None => {
                    let reason = format!("must contain only {}", Wanted::listed());
                    // As Node's own ERR_INVALID_ARG_VALUE shows a string: quoted, cut at 28 characters.
                    let received = match text {
                        Some(text) if text.chars().count() > 28 => format!("'{}...'", text.chars().take(25).collect::<String>()),
                        Some(text) => format!("'{text}'"),
                        None => describe(&item),
                    };
                    return Err(ArgError::Value { name: format!("{name}[{i}]"), reason, received });
                }
            }
        }
        Ok(include)
    }
}

/// Current conditions beyond the summary. A number the provider does not give is `null`.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct ForecastDetails {
    /// Feels-like temperature, °C (one decimal), and °F derived from the unrounded °C.
    pub feels_like_c: Option<f64>,
    pub feels_like_f: Option<f64>,
    /// Relative humidity, %.
    pub humidity: Option<f64>,
    pub pressure_hpa: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_gust_ms: Option<f64>,
    /// Where the wind comes from, degrees.
    pub wind_deg: Option<f64>,
    pub clouds_pct: Option<f64>,
    pub visibility_m: Option<f64>,
    pub uv_index: Option<f64>,
    /// Precipitation now, mm/h.
    pub precip_mm_per_h: Option<f64>,
    /// The provider's words (`"light rain"`); `""` when it has none.
    pub description: String,
}

/// One hour of the forecast.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct ForecastHour {
    /// Start of the hour, ms since the epoch.
    pub time: f64,
    pub temp_c: f64,
    pub temp_f: f64,
    pub condition: String,
    /// 0..1.
    pub precip_probability: Option<f64>,
    /// Over the hour, mm.
    pub precip_mm: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_gust_ms: Option<f64>,
}

/// One day of the forecast.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct ForecastDay {
    /// `"YYYY-MM-DD"`: the place's local date.
    pub date: String,
    pub min_c: f64,
    pub max_c: f64,
    pub min_f: f64,
    pub max_f: f64,
    pub condition: String,
    /// 0..1.
    pub precip_probability: Option<f64>,
    /// Over the day, mm.
    pub precip_mm: Option<f64>,
    /// ms since the epoch.
    pub sunrise: Option<f64>,
    pub sunset: Option<f64>,
}

/// A government alert in force or announced for the place.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct WeatherAlert {
    pub event: String,
    pub sender: String,
    /// ms since the epoch.
    pub start: f64,
    pub end: f64,
    pub description: String,
}

/// The next hour's precipitation at one minute (One Call) or quarter hour (Open-Meteo).
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct NextHourPoint {
    /// ms since the epoch.
    pub time: f64,
    /// mm/h.
    pub precip_mm: f64,
}

/// A number as the provider gave it (the shortest decimal of its `f32`, so `0.6`, not
/// `0.6000000238`).
fn shown(value: f64) -> f64 {
    let single = value as f32;
    format!("{single}").parse().unwrap_or(value)
}

fn maybe(value: Maybe) -> Option<f64> {
    value.get().map(shown)
}

/// °C as shown, and °F from the unrounded °C (a stored `f32`, see `tenths`).
fn both(celsius: f64) -> (f64, f64) {
    tenths(celsius as f32)
}

fn frozen<'e, T: ToNapiValue>(env: &'e Env, value: T) -> Result<Unknown<'e>> {
    let mut object = value.into_unknown(env)?.coerce_to_object()?;
    object.freeze()?;
    Ok(object.to_unknown())
}

fn frozen_array<'e, T: ToNapiValue>(env: &'e Env, items: impl ExactSizeIterator<Item = T>) -> Result<Unknown<'e>> {
    let mut array = env.create_array(items.len() as u32)?;
    for (i, item) in items.enumerate() {
        array.set(i as u32, frozen(env, item)?)?;
    }
    let mut object = array.coerce_to_object()?;
    object.freeze()?;
    Ok(object.to_unknown())
}

/// Sets the asked-for products on `result` (a `ForecastResult` object). An entry without
/// products (a custom provider's) answers `null` details and next hour, and empty lists.
pub fn add(env: &Env, result: &mut Object, entry: &Entry, include: Include, now: i64) -> Result<()> {
    let empty = Products::default();
    let products = entry.products.as_deref().unwrap_or(&empty);
    if include.has("details") {
        let value = match &products.details {
            Some(d) => {
                let feels = d.feels_like_c.get().map(both);
                frozen(
                    env,
                    ForecastDetails {
                        feels_like_c: feels.map(|f| f.0),
                        feels_like_f: feels.map(|f| f.1),
                        humidity: maybe(d.humidity),
                        pressure_hpa: maybe(d.pressure_hpa),
                        wind_speed_ms: maybe(d.wind_speed_ms),
                        wind_gust_ms: maybe(d.wind_gust_ms),
                        wind_deg: maybe(d.wind_deg),
                        clouds_pct: maybe(d.clouds_pct),
                        visibility_m: maybe(d.visibility_m),
                        uv_index: maybe(d.uv_index),
                        precip_mm_per_h: maybe(d.precip_mm_per_h),
                        description: d.description.to_string(),
                    },
                )?
            }
            None => Null.into_unknown(env)?,
        };
        result.set("details", value)?;
    }
    if include.has("hourly") {
        let hours = products.hours_from(now).iter().map(|h| {
            let (temp_c, temp_f) = both(h.temp_c as f64);
            ForecastHour {
                time: h.time_s as f64 * 1_000.0,
                temp_c,
                temp_f,
                condition: h.sky.as_str().to_owned(),
                precip_probability: maybe(h.precip_probability),
                precip_mm: maybe(h.precip_mm),
                wind_speed_ms: maybe(h.wind_speed_ms),
                wind_gust_ms: maybe(h.wind_gust_ms),
            }
        });
        result.set("hourly", frozen_array(env, hours)?)?;
    }
    if include.has("daily") {
        let instant = |s: u32| (s > 0).then_some(s as f64 * 1_000.0);
        let days = products.days_from(now).iter().map(|d| {
            let ((min_c, min_f), (max_c, max_f)) = (both(d.min_c as f64), both(d.max_c as f64));
            ForecastDay {
                date: iso_date(d.date as i64),
                min_c,
                max_c,
                min_f,
                max_f,
                condition: d.sky.as_str().to_owned(),
                precip_probability: maybe(d.precip_probability),
                precip_mm: maybe(d.precip_mm),
                sunrise: instant(d.sunrise_s),
                sunset: instant(d.sunset_s),
            }
        });
        result.set("daily", frozen_array(env, days)?)?;
    }
    if include.has("alerts") {
        let alerts = products.alerts.iter().map(|a| WeatherAlert {
            event: a.event.to_string(),
            sender: a.sender.to_string(),
            start: a.start_s as f64 * 1_000.0,
            end: a.end_s as f64 * 1_000.0,
            description: a.description.to_string(),
        });
        result.set("alerts", frozen_array(env, alerts)?)?;
    }
    if include.has("nextHour") {
        let value = match products.next_hour_from(now) {
            Some(points) => frozen_array(
                env,
                points.into_iter().map(|(at, mm)| NextHourPoint { time: at as f64, precip_mm: shown(mm as f64) }),
            )?,
            None => Null.into_unknown(env)?,
        };
        result.set("nextHour", value)?;
    }
    Ok(())
}
