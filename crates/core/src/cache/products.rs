//! The forecast products the same upstream answer carries besides the summary: details of the
//! current conditions, the next hour's precipitation, hourly and daily forecasts, alerts. They
//! are part of the entry (one call serves every product), stored compactly: `f32` numbers, a
//! missing number as NaN (see `Maybe`), times as epoch seconds, a condition as one byte. An
//! entry whose provider gives none (a custom fetch) has none and pays one pointer for it.
//!
//! Celsius is canonical: Fahrenheit is derived when served, from the unrounded Celsius.

use super::entry::{Millis, KNOWN_CONDITIONS};

/// At most this many hours are kept (One Call gives 48).
pub const MAX_HOURS: usize = 48;
/// At most this many days are kept (One Call gives 8).
pub const MAX_DAYS: usize = 8;
/// At most this many points of the next hour's precipitation (One Call's `minutely` has 61).
pub const MAX_NEXT_HOUR_POINTS: usize = 61;
/// At most this many alerts, each with its texts capped: an entry (and its shared-tier
/// payload) stays bounded whatever a provider sends.
pub const MAX_ALERTS: usize = 8;
pub const MAX_ALERT_TITLE_CHARS: usize = 120;
pub const MAX_ALERT_DESCRIPTION_CHARS: usize = 2_000;
pub const MAX_DESCRIPTION_CHARS: usize = 64;

/// Which products a caller asks for (`include`), one bit each.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted(u8);

impl Wanted {
    pub const NONE: Wanted = Wanted(0);
    /// The names callers use, in the order of their bits.
    pub const NAMES: [&'static str; 5] = ["details", "hourly", "daily", "alerts", "nextHour"];

    /// The product of that name.
    pub fn named(name: &str) -> Option<Wanted> {
        Wanted::NAMES.iter().position(|n| *n == name).map(|bit| Wanted(1 << bit))
    }

    pub fn with(self, other: Wanted) -> Wanted {
        Wanted(self.0 | other.0)
    }

    pub fn has(self, name: &str) -> bool {
        Wanted::named(name).is_some_and(|w| self.0 & w.0 != 0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// `'details', 'hourly', ...`, for messages.
    pub fn listed() -> String {
        Wanted::NAMES.map(|n| format!("'{n}'")).join(", ")
    }
}

/// A number the provider may not have given: an `f32`, NaN standing for "not given" (half the
/// size of `Option<f32>`, times six fields, times 48 hours). Read it with `get`.
#[derive(Copy, Clone, Debug)]
pub struct Maybe(f32);

impl Maybe {
    pub const NONE: Maybe = Maybe(f32::NAN);

    /// A given number, if it is one (a non-finite value is as good as none).
    pub fn new(value: Option<f64>) -> Maybe {
        match value {
            Some(v) if v.is_finite() && (v as f32).is_finite() => Maybe(v as f32),
            _ => Maybe::NONE,
        }
    }

    /// The number, when given and within `[min, max]`; none otherwise (a reading no sensor
    /// could make is not passed on).
    pub fn within(value: Option<f64>, min: f64, max: f64) -> Maybe {
        Maybe::new(value.filter(|v| (min..=max).contains(v)))
    }

    pub fn get(self) -> Option<f64> {
        (!self.0.is_nan()).then_some(self.0 as f64)
    }
}

impl PartialEq for Maybe {
    fn eq(&self, other: &Maybe) -> bool {
        self.get() == other.get()
    }
}

/// A condition in one byte: an index into OpenWeather's `main` groups (see `entry.rs`); any
/// other name is `"Unknown"` here (the summary keeps unusual names, products do not).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sky(u8);

impl Sky {
    pub fn of(name: &str) -> Sky {
        let at = KNOWN_CONDITIONS.iter().position(|known| *known == name);
        Sky(at.unwrap_or(KNOWN_CONDITIONS.len() - 1) as u8)
    }

    pub fn as_str(self) -> &'static str {
        KNOWN_CONDITIONS.get(self.0 as usize).copied().unwrap_or("Unknown")
    }

    /// The byte, for the shared tier.
    pub fn code(self) -> u8 {
        self.0
    }

    pub fn from_code(code: u8) -> Sky {
        Sky(code.min(KNOWN_CONDITIONS.len() as u8 - 1))
    }
}

/// Everything an upstream answer said besides the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Products {
    /// The place's offset from UTC, in seconds (for its local dates).
    pub utc_offset_s: i32,
    pub details: Option<Details>,
    /// From the hour the answer was made in, ascending.
    pub hourly: Box<[Hour]>,
    /// From the place's local date the answer was made on, ascending.
    pub daily: Box<[Day]>,
    pub alerts: Box<[Alert]>,
    /// `None` where the provider has no precipitation by minute or quarter hour.
    pub next_hour: Option<NextHour>,
}

/// Current conditions beyond the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Details {
    pub feels_like_c: Maybe,
    /// Relative humidity, %.
    pub humidity: Maybe,
    pub pressure_hpa: Maybe,
    pub wind_speed_ms: Maybe,
    pub wind_gust_ms: Maybe,
    /// Where the wind comes from, degrees.
    pub wind_deg: Maybe,
    pub clouds_pct: Maybe,
    pub visibility_m: Maybe,
    pub uv_index: Maybe,
    /// Precipitation now, mm/h.
    pub precip_mm_per_h: Maybe,
    /// `"light rain"`; empty when the provider has none.
    pub description: Box<str>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hour {
    /// Start of the hour, epoch seconds.
    pub time_s: u32,
    pub temp_c: f32,
    pub sky: Sky,
    /// 0..1.
    pub precip_probability: Maybe,
    /// Over the hour, mm.
    pub precip_mm: Maybe,
    pub wind_speed_ms: Maybe,
    pub wind_gust_ms: Maybe,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Day {
    /// The place's local date, as days since 1970-01-01.
    pub date: i32,
    pub min_c: f32,
    pub max_c: f32,
    pub sky: Sky,
    pub precip_probability: Maybe,
    /// Over the day, mm.
    pub precip_mm: Maybe,
    /// Epoch seconds; 0 when not given (polar day or night, or the provider has none).
    pub sunrise_s: u32,
    pub sunset_s: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub event: Box<str>,
    pub sender: Box<str>,
    /// Epoch seconds.
    pub start_s: i64,
    pub end_s: i64,
    pub description: Box<str>,
}

/// The next hour's precipitation, at a fixed step (60 s for One Call, 900 s for Open-Meteo).
#[derive(Clone, Debug, PartialEq)]
pub struct NextHour {
    /// Epoch seconds of the first point.
    pub start_s: u32,
    pub step_s: u32,
    /// mm/h at each point.
    pub mm_per_h: Box<[f32]>,
}

impl Products {
    /// The hours not yet over at `now`: the first is the current one.
    pub fn hours_from(&self, now: Millis) -> &[Hour] {
        let past = self.hourly.iter().take_while(|h| (h.time_s as i64 + 3_600) * 1_000 <= now).count();
        &self.hourly[past..]
    }

    /// The days from the place's local date at `now`.
    pub fn days_from(&self, now: Millis) -> &[Day] {
        let today = local_day(now, self.utc_offset_s);
        let past = self.daily.iter().take_while(|d| (d.date as i64) < today).count();
        &self.daily[past..]
    }

    /// The points of the next hour's precipitation from the one `now` falls in: `(epoch ms,
    /// mm/h)`.
    pub fn next_hour_from(&self, now: Millis) -> Option<Vec<(Millis, f32)>> {
        let next = self.next_hour.as_ref()?;
        let points = next.mm_per_h.iter().enumerate().map(|(i, mm)| {
            let at = (next.start_s as i64 + i as i64 * next.step_s as i64) * 1_000;
            (at, *mm)
        });
        Some(points.filter(|(at, _)| at + next.step_s as i64 * 1_000 > now).collect())
    }

    /// Bytes held for these products beyond the entry's pointer (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        let text = |s: &str| s.len();
        std::mem::size_of::<Products>()
            + self.details.as_ref().map_or(0, |d| text(&d.description))
            + std::mem::size_of_val(&*self.hourly)
            + std::mem::size_of_val(&*self.daily)
            + std::mem::size_of_val(&*self.alerts)
            + self.alerts.iter().map(|a| text(&a.event) + text(&a.sender) + text(&a.description)).sum::<usize>()
            + self.next_hour.as_ref().map_or(0, |n| std::mem::size_of_val(&*n.mm_per_h))
    }
}

/// Days since 1970-01-01 of the local date at `at` (epoch ms), `offset_s` east of UTC.
pub fn local_day(at: Millis, offset_s: i32) -> i64 {
    (at / 1_000 + offset_s as i64).div_euclid(86_400)
}

/// `"YYYY-MM-DD"` of a day counted from 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
pub fn iso_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days from 1970-01-01 of a civil date (the inverse of `iso_date`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One decimal, ties upwards as `Math.round` rounds (no `-0`): how products show temperatures.
pub fn js_round_tenth(value: f64) -> f64 {
    crate::geo::js_round(value * 10.0) / 10.0 + 0.0
}

/// Fahrenheit from unrounded Celsius, as the summary derives it.
pub fn fahrenheit(celsius: f64) -> f64 {
    celsius * 9.0 / 5.0 + 32.0
}

/// The number a stored `f32` was made from: its shortest decimal (`7.45`, not the
/// `7.4499998` the `f32` holds), so that a temperature on a tie (One Call gives two decimals)
/// rounds as the provider's number does, not downwards by the `f32`'s error.
pub fn as_given(value: f32) -> f64 {
    format!("{value}").parse().unwrap_or(value as f64)
}

/// A stored temperature as products show it: °C to one decimal, and °F to one decimal from
/// the unrounded °C (the provider's number).
pub fn tenths(celsius: f32) -> (f64, f64) {
    let celsius = as_given(celsius);
    (js_round_tenth(celsius), js_round_tenth(fahrenheit(celsius)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(time_s: u32) -> Hour {
        Hour {
            time_s,
            temp_c: 1.0,
            sky: Sky::of("Rain"),
            precip_probability: Maybe::NONE,
            precip_mm: Maybe::NONE,
            wind_speed_ms: Maybe::NONE,
            wind_gust_ms: Maybe::NONE,
        }
    }

    #[test]
    fn maybe_keeps_numbers_and_refuses_the_rest() {
        assert_eq!(Maybe::new(Some(3.5)).get(), Some(3.5));
        assert_eq!(Maybe::new(None).get(), None);
        assert_eq!(Maybe::new(Some(f64::NAN)).get(), None);
        assert_eq!(Maybe::new(Some(1e300)).get(), None, "beyond f32");
        assert_eq!(Maybe::within(Some(101.0), 0.0, 100.0).get(), None);
        assert_eq!(std::mem::size_of::<Maybe>(), 4);
    }

    #[test]
    fn skies_are_one_byte_and_unknown_names_unknown() {
        assert_eq!(Sky::of("Thunderstorm").as_str(), "Thunderstorm");
        assert_eq!(Sky::of("Volcano").as_str(), "Unknown");
        assert_eq!(Sky::from_code(255).as_str(), "Unknown");
        assert_eq!(std::mem::size_of::<Sky>(), 1);
    }

    #[test]
    fn served_from_the_current_hour_day_and_minute() {
        let t0 = 1_700_000_000 / 3_600 * 3_600;
        let products = Products {
            utc_offset_s: -5 * 3_600,
            hourly: (0..4).map(|i| hour(t0 + i * 3_600)).collect(),
            daily: (0..3)
                .map(|i| Day {
                    date: (local_day(t0 as i64 * 1_000, -5 * 3_600) + i) as i32,
                    min_c: 0.0,
                    max_c: 1.0,
                    sky: Sky::of("Clear"),
                    precip_probability: Maybe::NONE,
                    precip_mm: Maybe::NONE,
                    sunrise_s: 0,
                    sunset_s: 0,
                })
                .collect(),
            next_hour: Some(NextHour { start_s: t0, step_s: 60, mm_per_h: vec![0.0; 61].into() }),
            ..Products::default()
        };
        let at = |s: u32| s as i64 * 1_000;
        assert_eq!(products.hours_from(at(t0)).len(), 4);
        assert_eq!(products.hours_from(at(t0 + 3_599)).len(), 4, "the current hour is first");
        assert_eq!(products.hours_from(at(t0 + 3_600))[0].time_s, t0 + 3_600);
        assert_eq!(products.hours_from(at(t0 + 10 * 3_600)).len(), 0);
        assert_eq!(products.days_from(at(t0)).len(), 3);
        assert_eq!(products.days_from(at(t0) + 86_400_000).len(), 2);
        let next = products.next_hour_from(at(t0 + 90)).unwrap();
        assert_eq!((next.len(), next[0].0), (60, at(t0 + 60)));
    }

    #[test]
    fn dates_in_both_directions() {
        for (days, text) in [(0, "1970-01-01"), (-1, "1969-12-31"), (20_774, "2026-11-17"), (11_016, "2000-02-29")] {
            assert_eq!(iso_date(days), text);
            let (y, m, d) = (text[..4].parse().unwrap(), text[5..7].parse().unwrap(), text[8..].parse().unwrap());
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(local_day(86_400_000 - 1, 0), 0);
        assert_eq!(local_day(86_400_000 - 1, 3_600), 1);
        assert_eq!(local_day(0, -3_600), -1);
    }

    #[test]
    fn fahrenheit_from_unrounded_celsius() {
        assert_eq!(crate::geo::js_round(fahrenheit(20.6)), 69.0);
    }

    #[test]
    fn stored_temperatures_round_as_the_provider_numbers_do() {
        // 7.45 as an f32 is 7.4499998: rounded as such it would show 7.4.
        assert_eq!(tenths(7.45), (7.5, 45.4));
        assert_eq!(tenths(10.45).0, 10.5);
        assert_eq!(tenths(5.95).0, 6.0);
        assert_eq!(tenths(-0.04), (0.0, 31.9));
        assert_eq!(as_given(0.6), 0.6);
    }
}
