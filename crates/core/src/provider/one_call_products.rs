//! One Call 3.0's products: `current` (details), `minutely` (the next hour), `hourly` (48),
//! `daily` (8, `dt` at local noon, local dates from `timezone_offset`) and `alerts`. A part
//! missing or malformed leaves that product empty (or a field `null`); it never fails the
//! answer, whose summary stands on `current` alone.

use serde_json::Value;

use super::json::{epoch_s, list, num, sum, text, Kind};
use super::{tidy, tidy_lines};
use crate::cache::{
    local_day, Alert, Day, Details, Hour, Maybe, NextHour, Products, Sky, MAX_ALERTS, MAX_ALERT_DESCRIPTION_CHARS,
    MAX_ALERT_TITLE_CHARS, MAX_DAYS, MAX_DESCRIPTION_CHARS, MAX_HOURS, MAX_NEXT_HOUR_POINTS,
};

/// `weather[0].main` of a current, hourly or daily item.
pub fn main_of(item: &Value) -> Option<&str> {
    list(item, "weather").first().and_then(|w| text(w, "main"))
}

fn sky(item: &Value) -> Sky {
    Sky::of(main_of(item).unwrap_or(""))
}

/// `rain.1h` + `snow.1h` (mm over the last or coming hour), `None` when neither is given.
fn hour_precip(item: &Value) -> Maybe {
    let part = |name| item.get(name).and_then(|p| num(p, "1h"));
    Kind::Millimetres.of(sum([part("rain"), part("snow")]))
}

pub fn products(body: &Value) -> Products {
    let offset = num(body, "timezone_offset").filter(|o| o.abs() <= 18.0 * 3_600.0).map_or(0, |o| o as i32);
    Products {
        utc_offset_s: offset,
        details: body.get("current").map(details),
        hourly: list(body, "hourly").iter().filter_map(hour).take(MAX_HOURS).collect(),
        daily: list(body, "daily").iter().filter_map(|d| day(d, offset)).take(MAX_DAYS).collect(),
        alerts: list(body, "alerts").iter().filter_map(alert).take(MAX_ALERTS).collect(),
        next_hour: next_hour(list(body, "minutely")),
    }
}

fn details(current: &Value) -> Details {
    let description = list(current, "weather").first().and_then(|w| text(w, "description")).unwrap_or("");
    Details {
        feels_like_c: Kind::Celsius.at(current, "feels_like"),
        humidity: Kind::Percent.at(current, "humidity"),
        pressure_hpa: Kind::Hectopascals.at(current, "pressure"),
        wind_speed_ms: Kind::MetresPerSecond.at(current, "wind_speed"),
        wind_gust_ms: Kind::MetresPerSecond.at(current, "wind_gust"),
        wind_deg: Kind::Degrees.at(current, "wind_deg"),
        clouds_pct: Kind::Percent.at(current, "clouds"),
        visibility_m: Kind::Metres.at(current, "visibility"),
        uv_index: Kind::UvIndex.at(current, "uvi"),
        precip_mm_per_h: hour_precip(current),
        description: tidy(description, MAX_DESCRIPTION_CHARS).into(),
    }
}

/// An hour needs its time and a temperature; the rest may be `null`.
fn hour(item: &Value) -> Option<Hour> {
    Some(Hour {
        time_s: epoch_s(item, "dt")? / 3_600 * 3_600,
        temp_c: Kind::Celsius.at(item, "temp").get()? as f32,
        sky: sky(item),
        precip_probability: Kind::Probability.at(item, "pop"),
        precip_mm: hour_precip(item),
        wind_speed_ms: Kind::MetresPerSecond.at(item, "wind_speed"),
        wind_gust_ms: Kind::MetresPerSecond.at(item, "wind_gust"),
    })
}

/// A day needs its date and both extremes; `rain` and `snow` are plain mm here.
fn day(item: &Value, offset: i32) -> Option<Day> {
    let temp = item.get("temp")?;
    let (min, max) = (Kind::Celsius.at(temp, "min").get()?, Kind::Celsius.at(temp, "max").get()?);
    Some(Day {
        date: local_day(epoch_s(item, "dt")? as i64 * 1_000, offset) as i32,
        min_c: min.min(max) as f32,
        max_c: max.max(min) as f32,
        sky: sky(item),
        precip_probability: Kind::Probability.at(item, "pop"),
        precip_mm: Kind::Millimetres.of(sum([num(item, "rain"), num(item, "snow")])),
        sunrise_s: epoch_s(item, "sunrise").unwrap_or(0),
        sunset_s: epoch_s(item, "sunset").unwrap_or(0),
    })
}

fn alert(item: &Value) -> Option<Alert> {
    let title = |key| tidy(text(item, key).unwrap_or(""), MAX_ALERT_TITLE_CHARS).into_boxed_str();
    let event = title("event");
    (!event.is_empty()).then(|| Alert {
        event,
        sender: title("sender_name"),
        start_s: num(item, "start").map_or(0, |s| s as i64),
        end_s: num(item, "end").map_or(0, |s| s as i64),
        description: tidy_lines(text(item, "description").unwrap_or(""), MAX_ALERT_DESCRIPTION_CHARS).into(),
    })
}

/// `minutely[]` (`dt`, `precipitation` in mm/h), one a minute: kept while the points follow
/// each other a minute apart with a number, `None` when there are none.
fn next_hour(points: &[Value]) -> Option<NextHour> {
    let start_s = points.first().and_then(|p| epoch_s(p, "dt"))?;
    let mm_per_h: Box<[f32]> = points
        .iter()
        .enumerate()
        .take(MAX_NEXT_HOUR_POINTS)
        .map_while(|(i, p)| {
            let on_time = epoch_s(p, "dt") == Some(start_s.wrapping_add(60 * i as u32));
            let mm = Kind::Millimetres.at(p, "precipitation").get();
            on_time.then_some(mm).flatten().map(|mm| mm as f32)
        })
        .collect();
    (!mm_per_h.is_empty()).then_some(NextHour { start_s, step_s: 60, mm_per_h })
}
