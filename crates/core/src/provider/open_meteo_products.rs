//! Open-Meteo's products, from the same `/v1/forecast` call as the summary: `hourly=`,
//! `daily=`, `minutely_15=` variables, `timezone=auto` (local days), `timeformat=unixtime`,
//! `wind_speed_unit=ms`. Series come as parallel arrays under `time`.
//!
//! Open-Meteo's precipitation (and its probability) is "of the preceding hour" (of the
//! preceding quarter hour for `minutely_15`): the value for the hour starting at `t` is the one
//! labelled `t + 1 h`, so series are read one step ahead, and the last step has none.

use serde_json::Value;

use super::json::{epoch_s, num, Kind};
use super::wmo::condition_of_wmo;
use super::tidy;
use crate::cache::{
    local_day, Day, Details, Hour, Maybe, NextHour, Products, Sky, MAX_DAYS, MAX_DESCRIPTION_CHARS, MAX_HOURS,
};

/// The query's product variables, `(name, value)`.
pub const QUERY: [(&str, &str); 10] = [
    (
        "current",
        "temperature_2m,weather_code,apparent_temperature,relative_humidity_2m,pressure_msl,wind_speed_10m,wind_gusts_10m,wind_direction_10m,cloud_cover,precipitation",
    ),
    ("hourly", "temperature_2m,precipitation_probability,precipitation,weather_code,wind_speed_10m,wind_gusts_10m"),
    (
        "daily",
        "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum,precipitation_probability_max,sunrise,sunset",
    ),
    ("minutely_15", "precipitation"),
    ("timezone", "auto"),
    ("timeformat", "unixtime"),
    ("wind_speed_unit", "ms"),
    ("forecast_days", "8"),
    // One more than kept: precipitation is read one step ahead.
    ("forecast_hours", "49"),
    ("forecast_minutely_15", "5"),
];

/// The `i`th number of `series[name]`.
fn at(series: &Value, name: &str, i: usize) -> Option<f64> {
    series.get(name)?.as_array()?.get(i)?.as_f64().filter(|v| v.is_finite())
}

fn times(series: &Value) -> Vec<Option<u32>> {
    let list = series.get("time").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    list.iter().map(|t| t.as_f64().filter(|s| (0.0..=u32::MAX as f64).contains(s)).map(|s| s as u32)).collect()
}

fn sky(code: Option<f64>) -> Sky {
    Sky::of(condition_of_wmo(code))
}

pub fn products(body: &Value) -> Products {
    let offset = num(body, "utc_offset_seconds").filter(|o| o.abs() <= 18.0 * 3_600.0).map_or(0, |o| o as i32);
    let current = body.get("current");
    let now = current.and_then(|c| epoch_s(c, "time")).unwrap_or(0);
    Products {
        utc_offset_s: offset,
        details: current.map(details),
        hourly: body.get("hourly").map(|h| hourly(h, now)).unwrap_or_default(),
        daily: body.get("daily").map(|d| daily(d, offset)).unwrap_or_default(),
        alerts: Box::default(),
        next_hour: body.get("minutely_15").and_then(|m| next_hour(m, now)),
    }
}

fn details(current: &Value) -> Details {
    let wmo = condition_of_wmo(num(current, "weather_code"));
    Details {
        feels_like_c: Kind::Celsius.at(current, "apparent_temperature"),
        humidity: Kind::Percent.at(current, "relative_humidity_2m"),
        pressure_hpa: Kind::Hectopascals.at(current, "pressure_msl"),
        wind_speed_ms: Kind::MetresPerSecond.at(current, "wind_speed_10m"),
        wind_gust_ms: Kind::MetresPerSecond.at(current, "wind_gusts_10m"),
        wind_deg: Kind::Degrees.at(current, "wind_direction_10m"),
        clouds_pct: Kind::Percent.at(current, "cloud_cover"),
        visibility_m: Maybe::NONE,
        uv_index: Maybe::NONE,
        precip_mm_per_h: Kind::Millimetres.at(current, "precipitation"),
        // Open-Meteo has no text: the WMO group, lower-cased, is the honest description.
        description: tidy(&if wmo == "Unknown" { String::new() } else { wmo.to_lowercase() }, MAX_DESCRIPTION_CHARS)
            .into(),
    }
}

/// Hours from the current one (`now`, the start of its quarter hour).
fn hourly(series: &Value, now: u32) -> Box<[Hour]> {
    let times = times(series);
    let hour_now = now / 3_600 * 3_600;
    (0..times.len())
        .filter_map(|i| {
            let time_s = times[i].filter(|t| *t >= hour_now)?;
            let ahead = |name| times.get(i + 1).copied().flatten().filter(|t| *t == time_s + 3_600).and(at(series, name, i + 1));
            Some(Hour {
                time_s,
                temp_c: Kind::Celsius.of(at(series, "temperature_2m", i)).get()? as f32,
                sky: sky(at(series, "weather_code", i)),
                precip_probability: Kind::Probability.of(ahead("precipitation_probability").map(|p| p / 100.0)),
                precip_mm: Kind::Millimetres.of(ahead("precipitation")),
                wind_speed_ms: Kind::MetresPerSecond.of(at(series, "wind_speed_10m", i)),
                wind_gust_ms: Kind::MetresPerSecond.of(at(series, "wind_gusts_10m", i)),
            })
        })
        .take(MAX_HOURS)
        .collect()
}

/// Days, each `time` being the local midnight.
fn daily(series: &Value, offset: i32) -> Box<[Day]> {
    let times = times(series);
    (0..times.len())
        .filter_map(|i| {
            let (min, max) = (
                Kind::Celsius.of(at(series, "temperature_2m_min", i)).get()?,
                Kind::Celsius.of(at(series, "temperature_2m_max", i)).get()?,
            );
            let instant = |name| at(series, name, i).filter(|s| (0.0..=u32::MAX as f64).contains(s)).map_or(0, |s| s as u32);
            Some(Day {
                // Midday of the day, so that a rounding of the offset cannot move the date.
                date: local_day((times[i]? as i64 + 43_200) * 1_000, offset) as i32,
                min_c: min.min(max) as f32,
                max_c: max.max(min) as f32,
                sky: sky(at(series, "weather_code", i)),
                precip_probability: Kind::Probability.of(at(series, "precipitation_probability_max", i).map(|p| p / 100.0)),
                precip_mm: Kind::Millimetres.of(at(series, "precipitation_sum", i)),
                sunrise_s: instant("sunrise"),
                sunset_s: instant("sunset"),
            })
        })
        .take(MAX_DAYS)
        .collect()
}

/// The quarter hours from the current one: mm in each (read one step ahead), as mm/h.
fn next_hour(series: &Value, now: u32) -> Option<NextHour> {
    let times = times(series);
    let first = times.iter().position(|t| t.is_some_and(|t| t + 900 > now))?;
    let start_s = times[first]?;
    let mm_per_h: Box<[f32]> = (first..times.len())
        .map_while(|i| {
            let on_time = times.get(i + 1).copied().flatten() == Some(start_s + 900 * (i - first) as u32 + 900);
            on_time.then(|| Kind::Millimetres.of(at(series, "precipitation", i + 1)).get()).flatten().map(|mm| (mm * 4.0) as f32)
        })
        .take(4)
        .collect();
    (!mm_per_h.is_empty()).then_some(NextHour { start_s, step_s: 900, mm_per_h })
}

