//! The forecast products of `/v1/weather?...&include=`: the objects `getForecast` gives (same
//! names, same `null`s, past hours left out), with each temperature also in the asked `units`
//! (`temp`, `feelsLike`, `min`, `max`), as the summary has `temp`.

use serde_json::{json, Value};

use super::query::Units;
use weather_cache_core::cache::{iso_date, tenths, Entry, Maybe, Products, Wanted};

/// A number as the provider gave it (the shortest decimal of its `f32`).
fn shown(value: f64) -> Value {
    let single = value as f32;
    json!(format!("{single}").parse::<f64>().unwrap_or(value))
}

fn maybe(value: Maybe) -> Value {
    value.get().map_or(Value::Null, shown)
}

/// °C and °F (one decimal, °F from the unrounded °C), and the one of `units`.
fn temperatures(celsius: f64, units: Units) -> (f64, f64, f64) {
    let (c, f) = tenths(celsius as f32);
    (c, f, if units == Units::Metric { c } else { f })
}

/// The products `wanted` of `entry` at `now`, as members to add to the answer's object, in
/// the order `getForecast` gives them.
pub fn members(entry: &Entry, wanted: Wanted, units: Units, now: i64) -> Vec<(&'static str, Value)> {
    let empty = Products::default();
    let p = entry.products.as_deref().unwrap_or(&empty);
    let mut out = Vec::new();
    if wanted.has("details") {
        let details = p.details.as_ref().map_or(Value::Null, |d| {
            let feels = d.feels_like_c.get().map(|c| temperatures(c, units));
            json!({
                "feelsLikeC": feels.map(|t| t.0), "feelsLikeF": feels.map(|t| t.1), "feelsLike": feels.map(|t| t.2),
                "humidity": maybe(d.humidity), "pressureHpa": maybe(d.pressure_hpa), "windSpeedMs": maybe(d.wind_speed_ms),
                "windGustMs": maybe(d.wind_gust_ms), "windDeg": maybe(d.wind_deg), "cloudsPct": maybe(d.clouds_pct),
                "visibilityM": maybe(d.visibility_m), "uvIndex": maybe(d.uv_index), "precipMmPerH": maybe(d.precip_mm_per_h),
                "description": &*d.description,
            })
        });
        out.push(("details", details));
    }
    if wanted.has("hourly") {
        let hours = p.hours_from(now).iter().map(|h| {
            let (c, f, t) = temperatures(h.temp_c as f64, units);
            json!({
                "time": h.time_s as i64 * 1_000, "tempC": c, "tempF": f, "temp": t, "condition": h.sky.as_str(),
                "precipProbability": maybe(h.precip_probability), "precipMm": maybe(h.precip_mm),
                "windSpeedMs": maybe(h.wind_speed_ms), "windGustMs": maybe(h.wind_gust_ms),
            })
        });
        out.push(("hourly", Value::Array(hours.collect())));
    }
    if wanted.has("daily") {
        let instant = |s: u32| if s > 0 { json!(s as i64 * 1_000) } else { Value::Null };
        let days = p.days_from(now).iter().map(|d| {
            let ((min_c, min_f, min), (max_c, max_f, max)) = (temperatures(d.min_c as f64, units), temperatures(d.max_c as f64, units));
            json!({
                "date": iso_date(d.date as i64), "minC": min_c, "maxC": max_c, "minF": min_f, "maxF": max_f, "min": min, "max": max,
                "condition": d.sky.as_str(), "precipProbability": maybe(d.precip_probability), "precipMm": maybe(d.precip_mm),
                "sunrise": instant(d.sunrise_s), "sunset": instant(d.sunset_s),
            })
        });
        out.push(("daily", Value::Array(days.collect())));
    }
    if wanted.has("alerts") {
        let alerts = p.alerts.iter().map(|a| {
            json!({ "event": &*a.event, "sender": &*a.sender, "start": a.start_s * 1_000, "end": a.end_s * 1_000, "description": &*a.description })
        });
        out.push(("alerts", Value::Array(alerts.collect())));
    }
    if wanted.has("nextHour") {
        let next = p.next_hour_from(now).map_or(Value::Null, |points| {
            Value::Array(points.into_iter().map(|(at, mm)| json!({ "time": at, "precipMm": shown(mm as f64) })).collect())
        });
        out.push(("nextHour", next));
    }
    out
}

/// What of the products changes with time alone, for the `ETag`: how many hours, days and
/// minutes are already past (the answer drops them).
pub fn served_cut(entry: &Entry, wanted: Wanted, now: i64) -> String {
    let Some(p) = entry.products.as_deref().filter(|_| !wanted.is_empty()) else { return String::new() };
    let hours = p.hourly.len() - p.hours_from(now).len();
    let days = p.daily.len() - p.days_from(now).len();
    let minutes = p.next_hour.as_ref().map_or(0, |n| n.mm_per_h.len()) - p.next_hour_from(now).map_or(0, |n| n.len());
    let count = |name: &str, n: usize| if wanted.has(name) { n } else { 0 };
    format!("-{:x}.{:x}.{:x}", count("hourly", hours), count("daily", days), count("nextHour", minutes))
}
