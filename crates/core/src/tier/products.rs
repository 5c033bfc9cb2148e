//! An entry's forecast products as the shared tier holds them (the payload's `x`): rows of
//! numbers rather than objects with names, `null` for a number the provider did not give, so
//! that 48 hours, 8 days and an hour of minutes take a few kilobytes. Decoding checks what it
//! reads as the providers' parsers do (Redis is shared) and keeps the same caps; an oversized
//! or foreign value is dropped, the summary it came with still served.

use serde::{Deserialize, Serialize};

use crate::cache::{
    Alert, Day, Details, Hour, Maybe, NextHour, Products, Sky, MAX_ALERTS, MAX_ALERT_DESCRIPTION_CHARS,
    MAX_ALERT_TITLE_CHARS, MAX_DAYS, MAX_DESCRIPTION_CHARS, MAX_HOURS, MAX_NEXT_HOUR_POINTS,
};

/// The most bytes of products a payload may carry: the caps above give at most ~21 KB of
/// alerts and ~5 KB of the rest; anything larger was not written by us.
pub const MAX_PRODUCTS_BYTES: usize = 32 * 1024;

type N = Option<f32>;

/// feels like, humidity, pressure, wind speed, gust, direction, clouds, visibility, UV,
/// precipitation, description.
type DetailsRow = (N, N, N, N, N, N, N, N, N, N, String);
/// time, °C, sky, probability, mm, wind speed, gust.
type HourRow = (u32, f32, u8, N, N, N, N);
/// date, min, max, sky, probability, mm, sunrise, sunset.
type DayRow = (i32, f32, f32, u8, N, N, u32, u32);
/// event, sender, start, end, description.
type AlertRow = (String, String, i64, i64, String);
/// start, step, mm/h.
type NextHourRow = (u32, u32, Vec<f32>);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Wire {
    z: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<DetailsRow>,
    #[serde(default)]
    h: Vec<HourRow>,
    #[serde(default)]
    y: Vec<DayRow>,
    #[serde(default)]
    a: Vec<AlertRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<NextHourRow>,
}

fn n(m: Maybe) -> N {
    m.get().map(|v| v as f32)
}

fn m(n: N) -> Maybe {
    Maybe::new(n.map(f64::from))
}

fn text(s: String, max_chars: usize) -> Box<str> {
    crate::provider::tidy(&s, max_chars).into()
}

pub fn encode(p: &Products) -> Wire {
    Wire {
        z: p.utc_offset_s,
        d: p.details.as_ref().map(|d| {
            (
                n(d.feels_like_c),
                n(d.humidity),
                n(d.pressure_hpa),
                n(d.wind_speed_ms),
                n(d.wind_gust_ms),
                n(d.wind_deg),
                n(d.clouds_pct),
                n(d.visibility_m),
                n(d.uv_index),
                n(d.precip_mm_per_h),
                d.description.to_string(),
            )
        }),
        h: p.hourly
            .iter()
            .map(|h| {
                (h.time_s, h.temp_c, h.sky.code(), n(h.precip_probability), n(h.precip_mm), n(h.wind_speed_ms), n(h.wind_gust_ms))
            })
            .collect(),
        y: p.daily
            .iter()
            .map(|d| {
                (d.date, d.min_c, d.max_c, d.sky.code(), n(d.precip_probability), n(d.precip_mm), d.sunrise_s, d.sunset_s)
            })
            .collect(),
        a: p.alerts
            .iter()
            .map(|a| (a.event.to_string(), a.sender.to_string(), a.start_s, a.end_s, a.description.to_string()))
            .collect(),
        n: p.next_hour.as_ref().map(|x| (x.start_s, x.step_s, x.mm_per_h.to_vec())),
    }
}

/// The products of a payload, checked; `None` for anything we would not have written.
pub fn decode(wire: Wire) -> Option<Products> {
    let finite = |v: f32| v.is_finite();
    if wire.h.len() > MAX_HOURS || wire.y.len() > MAX_DAYS || wire.a.len() > MAX_ALERTS {
        return None;
    }
    if wire.h.iter().any(|h| !finite(h.1)) || wire.y.iter().any(|d| !finite(d.1) || !finite(d.2)) {
        return None;
    }
    let next_hour = match wire.n {
        Some((start_s, step_s, mm)) => {
            if mm.len() > MAX_NEXT_HOUR_POINTS || step_s == 0 || mm.iter().any(|v| !finite(*v)) {
                return None;
            }
            Some(NextHour { start_s, step_s, mm_per_h: mm.into() })
        }
        None => None,
    };
    Some(Products {
        utc_offset_s: wire.z.clamp(-18 * 3_600, 18 * 3_600),
        details: wire.d.map(|d| Details {
            feels_like_c: m(d.0),
            humidity: m(d.1),
            pressure_hpa: m(d.2),
            wind_speed_ms: m(d.3),
            wind_gust_ms: m(d.4),
            wind_deg: m(d.5),
            clouds_pct: m(d.6),
            visibility_m: m(d.7),
            uv_index: m(d.8),
            precip_mm_per_h: m(d.9),
            description: text(d.10, MAX_DESCRIPTION_CHARS),
        }),
        hourly: wire
            .h
            .into_iter()
            .map(|h| Hour {
                time_s: h.0,
                temp_c: h.1,
                sky: Sky::from_code(h.2),
                precip_probability: m(h.3),
                precip_mm: m(h.4),
                wind_speed_ms: m(h.5),
                wind_gust_ms: m(h.6),
            })
            .collect(),
        daily: wire
            .y
            .into_iter()
            .map(|d| Day {
                date: d.0,
                min_c: d.1,
                max_c: d.2,
                sky: Sky::from_code(d.3),
                precip_probability: m(d.4),
                precip_mm: m(d.5),
                sunrise_s: d.6,
                sunset_s: d.7,
            })
            .collect(),
        alerts: wire
            .a
            .into_iter()
            .map(|a| Alert {
                event: text(a.0, MAX_ALERT_TITLE_CHARS),
                sender: text(a.1, MAX_ALERT_TITLE_CHARS),
                start_s: a.2,
                end_s: a.3,
                description: crate::provider::tidy_lines(&a.4, MAX_ALERT_DESCRIPTION_CHARS).into(),
            })
            .collect(),
        next_hour,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Stored;
    use super::*;
    use crate::geo::LatLon;

    fn full() -> Products {
        let body = crate::testing::bodies::one_call(1_795_341_600, 7.25);
        crate::provider::read_one_call(body.as_bytes()).unwrap().1
    }

    fn stored(products: Option<Products>) -> Stored {
        Stored {
            celsius: 7.25,
            condition: "Rain".into(),
            fetched_at: 1_795_341_600_000,
            location: LatLon::new(48.86, 2.35),
            provider: "openweather".into(),
            held_until: 0,
            validator: None,
            products: products.map(Arc::new),
        }
    }

    #[test]
    fn products_round_trip_within_their_bound() {
        let with = stored(Some(full()));
        let text = with.encode();
        assert_eq!(Stored::decode(text.as_bytes()), Some(with));
        let without = stored(None).encode();
        assert!(text.len() < 8 * 1024, "a full One Call's products: {} bytes", text.len());
        assert!(without.len() < 160 && !without.contains("\"x\""), "{without}");
    }

    #[test]
    fn the_largest_products_fit_and_a_larger_payload_loses_them_only() {
        let mut largest = full();
        let alert = Alert {
            event: "é".repeat(MAX_ALERT_TITLE_CHARS).into(),
            sender: "s".repeat(MAX_ALERT_TITLE_CHARS).into(),
            start_s: 1,
            end_s: 2,
            description: "\u{1F300}".repeat(MAX_ALERT_DESCRIPTION_CHARS).into(),
        };
        largest.alerts = vec![alert; MAX_ALERTS].into();
        let text = stored(Some(largest)).encode();
        assert!(text.len() > MAX_PRODUCTS_BYTES, "4-byte characters: {} bytes", text.len());
        let decoded = Stored::decode(text.as_bytes()).expect("the summary still reads");
        assert_eq!((decoded.products, decoded.celsius), (None, 7.25));
        let mut ascii = full();
        ascii.alerts = (0..MAX_ALERTS)
            .map(|_| Alert {
                event: "e".repeat(MAX_ALERT_TITLE_CHARS).into(),
                sender: "s".repeat(MAX_ALERT_TITLE_CHARS).into(),
                start_s: 1,
                end_s: 2,
                description: "d".repeat(MAX_ALERT_DESCRIPTION_CHARS).into(),
            })
            .collect();
        let text = stored(Some(ascii)).encode();
        assert!(Stored::decode(text.as_bytes()).unwrap().products.is_some(), "{} bytes", text.len());
    }

    #[test]
    fn foreign_products_are_refused_and_the_summary_kept() {
        let base = stored(None).encode();
        for x in [
            r#"{"z":0,"h":[[1,"hot",0,null,null,null,null]]}"#,
            r#"{"z":0,"n":[1,0,[1.0]]}"#,
            r#"[1,2]"#,
        ] {
            let text = format!("{},\"x\":{x}}}", base.trim_end_matches('}'));
            assert_eq!(Stored::decode(text.as_bytes()).map(|d| d.products), Some(None), "{x}");
        }
        let hours = format!("[{}]", vec!["[1,1.0,0,null,null,null,null]"; MAX_HOURS + 1].join(","));
        let text = format!("{},\"x\":{{\"z\":0,\"h\":{hours}}}}}", base.trim_end_matches('}'));
        assert_eq!(Stored::decode(text.as_bytes()).map(|d| d.products), Some(None), "too many hours");
    }
}
