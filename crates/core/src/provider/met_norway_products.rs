//! MET Norway's products from the `compact` timeseries: steps an hour apart for ~2.5 days, then
//! six hours apart. Hours are the hourly steps (their `next_1_hours`); days take their minimum
//! and maximum over every step of the local date, and their precipitation from the periods
//! that tile the day (`next_1_hours` between hourly steps, `next_6_hours` after). `compact` has
//! no feels-like, gusts, visibility, UV, probabilities, sunrise, alerts or minutes: those are
//! `null` (or empty), never guessed.
//!
//! MET gives no time zone: the local date is the solar one, an offset of the longitude / 15
//! hours rounded (`geometry.coordinates[0]`), which can differ from the civil date by an
//! hour near time-zone edges.

use serde_json::Value;

use super::json::{list, num, Kind};
use super::symbols::condition_of_symbol;
use super::parse_rfc3339;
use crate::cache::{local_day, Day, Details, Hour, Maybe, Products, Sky, MAX_DAYS, MAX_HOURS};

struct Step<'v> {
    time_s: i64,
    data: &'v Value,
}

impl<'v> Step<'v> {
    fn instant(&self, key: &str) -> Option<f64> {
        self.data.get("instant").and_then(|i| i.get("details")).and_then(|d| num(d, key))
    }

    fn period(&self, name: &str) -> Option<&'v Value> {
        self.data.get(name)
    }

    fn symbol(&self, name: &str) -> Option<Sky> {
        let code = self.period(name)?.get("summary")?.get("symbol_code")?.as_str()?;
        Some(Sky::of(condition_of_symbol(code)))
    }

    fn amount(&self, name: &str) -> Option<f64> {
        self.period(name)?.get("details").and_then(|d| num(d, "precipitation_amount"))
    }
}

pub fn products(body: &Value) -> Products {
    let lon = body.get("geometry").map(|g| list(g, "coordinates")).and_then(|c| c.first()).and_then(Value::as_f64);
    let offset = lon.filter(|l| (-180.0..=180.0).contains(l)).map_or(0, |l| (l / 15.0).round() as i32 * 3_600);
    let series = body.get("properties").map(|p| list(p, "timeseries")).unwrap_or_default();
    let steps: Vec<Step> = series
        .iter()
        .filter_map(|s| {
            let (time_s, _) = parse_rfc3339(s.get("time")?.as_str()?)?;
            Some(Step { time_s, data: s.get("data")? })
        })
        .collect();
    Products {
        utc_offset_s: offset,
        details: steps.first().map(details),
        hourly: hourly(&steps),
        daily: daily(&steps, offset),
        alerts: Box::default(),
        next_hour: None,
    }
}

fn details(now: &Step) -> Details {
    Details {
        feels_like_c: Maybe::NONE,
        humidity: Kind::Percent.of(now.instant("relative_humidity")),
        pressure_hpa: Kind::Hectopascals.of(now.instant("air_pressure_at_sea_level")),
        wind_speed_ms: Kind::MetresPerSecond.of(now.instant("wind_speed")),
        wind_gust_ms: Kind::MetresPerSecond.of(now.instant("wind_speed_of_gust")),
        wind_deg: Kind::Degrees.of(now.instant("wind_from_direction")),
        clouds_pct: Kind::Percent.of(now.instant("cloud_area_fraction")),
        visibility_m: Maybe::NONE,
        uv_index: Kind::UvIndex.of(now.instant("ultraviolet_index_clear_sky")),
        precip_mm_per_h: Kind::Millimetres.of(now.amount("next_1_hours")),
        description: "".into(),
    }
}

/// Whether the step after `i` is an hour later (the hourly part of the series).
fn hourly_at(steps: &[Step], i: usize) -> bool {
    steps.get(i + 1).is_some_and(|next| next.time_s == steps[i].time_s + 3_600)
}

fn hourly(steps: &[Step]) -> Box<[Hour]> {
    (0..steps.len())
        .filter(|i| hourly_at(steps, *i) || steps[*i].period("next_1_hours").is_some())
        .filter_map(|i| {
            let step = &steps[i];
            Some(Hour {
                time_s: u32::try_from(step.time_s).ok()? / 3_600 * 3_600,
                temp_c: Kind::Celsius.of(step.instant("air_temperature")).get()? as f32,
                sky: step.symbol("next_1_hours").unwrap_or(Sky::of("Unknown")),
                precip_probability: Maybe::NONE,
                precip_mm: Kind::Millimetres.of(step.amount("next_1_hours")),
                wind_speed_ms: Kind::MetresPerSecond.of(step.instant("wind_speed")),
                wind_gust_ms: Kind::MetresPerSecond.of(step.instant("wind_speed_of_gust")),
            })
        })
        .take(MAX_HOURS)
        .collect()
}

fn daily(steps: &[Step], offset: i32) -> Box<[Day]> {
    let mut days: Vec<Day> = Vec::new();
    let mut precip_known: Vec<bool> = Vec::new();
    let mut noon_distance: Vec<i64> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let Some(celsius) = Kind::Celsius.of(step.instant("air_temperature")).get() else { continue };
        let date = local_day(step.time_s * 1_000, offset) as i32;
        if days.last().is_none_or(|d| d.date != date) {
            if days.len() == MAX_DAYS {
                break;
            }
            days.push(Day {
                date,
                min_c: celsius as f32,
                max_c: celsius as f32,
                sky: Sky::of("Unknown"),
                precip_probability: Maybe::NONE,
                precip_mm: Maybe::new(Some(0.0)),
                sunrise_s: 0,
                sunset_s: 0,
            });
            precip_known.push(true);
            noon_distance.push(i64::MAX);
        }
        let (day, known, distance) = (days.last_mut().unwrap(), precip_known.last_mut().unwrap(), noon_distance.last_mut().unwrap());
        day.min_c = day.min_c.min(celsius as f32);
        day.max_c = day.max_c.max(celsius as f32);
        // The period this step opens: an hour while the series is hourly, six hours after.
        let period = if hourly_at(steps, i) { "next_1_hours" } else { "next_6_hours" };
        match (step.amount(period), day.precip_mm.get()) {
            (Some(mm), Some(sum)) if *known => day.precip_mm = Kind::Millimetres.of(Some(sum + mm)),
            _ => *known = false,
        }
        // The day's condition: that of the six hours nearest its local noon.
        let local_s = (step.time_s + offset as i64).rem_euclid(86_400);
        let from_noon = (local_s - 12 * 3_600 + 3 * 3_600).abs();
        if let Some(sky) = step.symbol("next_6_hours").filter(|_| from_noon < *distance) {
            day.sky = sky;
            *distance = from_noon;
        }
    }
    for (day, known) in days.iter_mut().zip(precip_known) {
        if !known {
            day.precip_mm = Maybe::NONE;
        }
    }
    days.into()
}
