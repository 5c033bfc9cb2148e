//! What callers receive. `#[napi(object)]` makes these the generated TypeScript interfaces.

use napi_derive::napi;

use crate::cache::Entry;
use crate::engine::Served;

#[napi(object)]
pub struct WeatherSummary {
    /// Short condition from the provider (`"Clouds"`, `"Rain"`…), `"Unknown"` when absent.
    pub condition: String,
    /// Rounded Celsius.
    pub temp_c: f64,
    /// Rounded Fahrenheit, derived from the unrounded Celsius.
    pub temp_f: f64,
}

impl WeatherSummary {
    pub fn of(entry: &Entry) -> WeatherSummary {
        let s = &entry.summary;
        WeatherSummary { condition: s.condition.clone(), temp_c: s.temp_c, temp_f: s.temp_f }
    }
}

#[napi(object)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

#[napi(object)]
pub struct ForecastMeta {
    #[napi(ts_type = "WeatherSource")]
    pub source: String,
    /// When the upstream answered (epoch ms, service clock).
    pub fetched_at: f64,
    pub age_ms: f64,
    /// The rounded location the upstream was asked about.
    pub location: GeoPoint,
    pub bucket_key: String,
}

#[napi(object)]
pub struct ForecastResult {
    pub summary: WeatherSummary,
    pub meta: ForecastMeta,
}

impl ForecastResult {
    pub fn of(served: &Served, now: i64) -> ForecastResult {
        let entry = &served.entry;
        ForecastResult {
            summary: WeatherSummary::of(entry),
            meta: ForecastMeta {
                source: served.source.as_str().to_owned(),
                fetched_at: entry.fetched_at as f64,
                age_ms: entry.age(now) as f64,
                location: GeoPoint { lat: entry.location.lat, lon: entry.location.lon },
                bucket_key: entry.key.to_string(),
            },
        }
    }
}
