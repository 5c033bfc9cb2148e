//! OpenWeather One Call 3.0: `GET /data/3.0/onecall?lat&lon&units=metric&appid`. Nothing is
//! excluded: every part of the answer (`current`, `minutely`, `hourly`, `daily`, `alerts`) is
//! a product some caller may ask for, and the call costs the same.

use serde_json::Value;

use super::body::{read_bounded, transport_error};
use super::http::{HttpProviderConfig, KeyedClient};
use super::one_call_products::{main_of, products};
use super::{observation, Answer, FetchFuture, LateKey, Provider, ProviderError};
use crate::cache::{Observation, Products};
use crate::geo::LatLon;

pub const DEFAULT_BASE_URL: &str = "https://api.openweathermap.org";

pub type OpenWeatherConfig = HttpProviderConfig;

pub struct OpenWeather {
    http: KeyedClient,
    /// Whether the answer's products are wanted (see `with_products`).
    products: bool,
}

impl OpenWeather {
    /// Fails (with a message fit for users) when `base_url` is not an http(s) URL.
    pub fn new(config: OpenWeatherConfig) -> Result<OpenWeather, String> {
        Ok(OpenWeather { http: KeyedClient::new(config, "/data/3.0/onecall")?, products: true })
    }

    /// Without products nobody can ask for them: the call excludes them again (a smaller
    /// answer), and the answer carries none.
    pub fn with_products(mut self, products: bool) -> OpenWeather {
        self.products = products;
        self
    }

    /// Without a configured key, takes `late`'s once it is set (the default instance's
    /// `OPEN_WEATHER_API_KEY`, set after its first call). A configured key wins.
    pub fn with_late_key(mut self, late: LateKey) -> OpenWeather {
        self.http.late_key = Some(late);
        self
    }

    async fn current(&self, at: LatLon) -> Result<Answer, ProviderError> {
        let http = &self.http;
        // The configured key, or the late one as it is now (it may change while this runs).
        let late = http.late_key.as_ref().and_then(LateKey::current).filter(|_| http.api_key.is_none());
        let (key, redactor) = match (&http.api_key, &late) {
            (Some(key), _) => (key.as_str(), &http.redactor),
            (None, Some(held)) => (held.key(), held.redactor()),
            (None, None) => return Err(ProviderError::NoApiKey),
        };
        let mut url = http.url.clone();
        url.query_pairs_mut()
            .append_pair("lat", &format!("{:.*}", http.decimals, at.lat))
            .append_pair("lon", &format!("{:.*}", http.decimals, at.lon));
        if !self.products {
            url.query_pairs_mut().append_pair("exclude", "minutely,hourly,daily,alerts");
        }
        url.query_pairs_mut()
            .append_pair("units", "metric")
            .append_pair("appid", key);
        let started = std::time::Instant::now();
        let response = http.client.get(url).send().await.map_err(|e| transport_error(e, redactor))?;
        tracing::debug!(target: "weather_cache::provider", provider = "openweather", lat = at.lat, lon = at.lon,
            status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "upstream answered");
        let refused = |error: ProviderError| {
            if let (ProviderError::KeyRejected { .. }, Some(held), Some(late_key)) = (&error, &late, &http.late_key) {
                late_key.reject(held.generation());
            }
            error
        };
        if let Some(error) = http.failure(&response) {
            return Err(refused(error));
        }
        let body = read_bounded(response, http.max_response_bytes, redactor).await?;
        let (observation, products) = read_one_call(&body).map_err(refused)?;
        Ok(if self.products { Answer::with_products(observation, products) } else { Answer::observed(observation) })
    }
}

impl Provider for OpenWeather {
    fn name(&self) -> &'static str {
        "openweather"
    }

    fn ready(&self) -> Result<(), ProviderError> {
        if self.http.has_key() { Ok(()) } else { Err(ProviderError::NoApiKey) }
    }

    fn key_generation(&self) -> u64 {
        match (&self.http.api_key, &self.http.late_key) {
            (None, Some(late)) => late.generation(),
            _ => 0,
        }
    }

    fn fetch<'a>(&'a self, at: LatLon, _: Option<&'a str>) -> FetchFuture<'a> {
        Box::pin(self.current(at))
    }
}

/// Extracts `current.temp` (a number in a physical range: a missing reading is an error, never
/// 0 °C) and `current.weather[0].main` (`"Unknown"` when absent; see `reading.rs`). A 200 that carries an error object
/// (`{"cod":429,…}`, `cod` as number or string) is treated as that error; `cod` 401 is the key
/// refused.
pub fn parse_one_call(body: &[u8]) -> Result<Observation, ProviderError> {
    read_one_call(body).map(|(observation, _)| observation)
}

/// `parse_one_call`, and the answer's products (see `one_call_products.rs`).
pub fn read_one_call(body: &[u8]) -> Result<(Observation, Products), ProviderError> {
    let invalid = |message: &str| ProviderError::InvalidResponse { message: message.to_owned() };
    let parsed: Value = serde_json::from_slice(body).map_err(|_| invalid("body is not the expected JSON object"))?;
    if !parsed.is_object() {
        return Err(invalid("body is not the expected JSON object"));
    }
    let current = parsed.get("current").filter(|c| c.is_object());
    let cod = parsed.get("cod").and_then(|c| match c {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    match cod {
        Some(429) => return Err(ProviderError::RateLimited { retry_after: None }),
        // `{"cod":401,"message":"Invalid API key..."}`: every request carries the key.
        Some(401) if current.is_none() => return Err(ProviderError::KeyRejected { status: 401 }),
        Some(code) if current.is_none() && !(200..300).contains(&code) => {
            return Err(ProviderError::Status { status: code.min(u16::MAX as u64) as u16, reason: None })
        }
        _ => {}
    }
    let current = current.ok_or_else(|| invalid("body has no current conditions"))?;
    let celsius = current
        .get("temp")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite())
        .ok_or_else(|| invalid("body lacks a numeric current.temp"))?;
    let condition = main_of(current);
    Ok((observation(celsius, condition)?, products(&parsed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_current_conditions() {
        let obs = parse_one_call(br#"{"current":{"temp":20.6,"weather":[{"main":"Clouds"}]}}"#).unwrap();
        assert_eq!(obs, Observation { condition: "Clouds".into(), celsius: 20.6 });
        let obs = parse_one_call(br#"{"current":{"temp":-3}}"#).unwrap();
        assert_eq!(obs.condition, "Unknown");
    }

    #[test]
    fn reads_every_product_of_the_same_answer() {
        let t0 = 1_795_341_600; // 2026-11-22T10:00:00Z, 12:00 at +02:00
        let body = crate::testing::bodies::one_call(t0, 7.25);
        let (obs, p) = read_one_call(body.as_bytes()).unwrap();
        assert_eq!(obs, Observation { condition: "Rain".into(), celsius: 7.25 });
        assert_eq!(p.utc_offset_s, 7_200);
        let d = p.details.as_ref().unwrap();
        assert_eq!((d.feels_like_c.get(), d.humidity.get(), d.pressure_hpa.get()), (Some(1.9f32 as f64), Some(87.0), Some(1013.0)));
        assert_eq!((d.wind_speed_ms.get(), d.wind_gust_ms.get(), d.wind_deg.get()), (Some(5.7f32 as f64), None, Some(240.0)));
        assert_eq!((d.visibility_m.get(), d.precip_mm_per_h.get(), &*d.description), (Some(8000.0), Some(0.6f32 as f64), "light rain"));
        assert_eq!(p.hourly.len(), 48);
        assert_eq!((p.hourly[0].time_s, p.hourly[0].temp_c, p.hourly[0].sky.as_str()), (t0 as u32, 7.25, "Rain"));
        assert_eq!(p.hourly[0].precip_probability.get(), Some(0.65f32 as f64));
        assert_eq!((p.hourly[1].wind_gust_ms.get(), p.hourly[1].precip_mm.get()), (None, None), "missing, not zero");
        assert_eq!(p.daily.len(), 8);
        assert_eq!(crate::cache::iso_date(p.daily[0].date as i64), "2026-11-22");
        assert_eq!((p.daily[0].min_c, p.daily[0].max_c, p.daily[2].precip_mm.get()), (4.25, 11.25, None));
        assert_eq!(p.daily[0].sunrise_s, t0 as u32 - 4 * 3_600);
        assert_eq!(p.alerts.len(), 1);
        let alert = &p.alerts[0];
        assert_eq!((&*alert.event, &*alert.sender), ("Moderate wind warning", "METEO-FRANCE"));
        assert_eq!((alert.start_s, &*alert.description), (t0 as i64 + 3_600, "Strong gusts expected.\nSecure loose objects."));
        let next = p.next_hour.as_ref().unwrap();
        assert_eq!((next.start_s, next.step_s, next.mm_per_h.len()), (t0 as u32, 60, 61));
        assert_eq!((next.mm_per_h[39], next.mm_per_h[40]), (0.0, 1.8));
    }

    #[test]
    fn a_bare_answer_has_empty_products() {
        let (_, p) = read_one_call(br#"{"current":{"temp":3,"weather":"oops","humidity":"x"},"hourly":7,"alerts":[{}]}"#).unwrap();
        let d = p.details.unwrap();
        assert_eq!((d.humidity.get(), &*d.description), (None, ""));
        assert!(p.hourly.is_empty() && p.daily.is_empty() && p.alerts.is_empty() && p.next_hour.is_none());
        let (_, p) = read_one_call(br#"{"current":{"temp":3},"hourly":[{"dt":1,"temp":500},{"temp":1}],"minutely":[]}"#).unwrap();
        assert!(p.hourly.is_empty(), "an hour without a time or a possible temperature is left out");
        assert!(p.next_hour.is_none());
    }

    #[test]
    fn rejects_bodies_without_a_reading() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"current":{}}"#,
            br#"{"current":{"temp":"20"}}"#,
            br#"{"current":{"temp":null}}"#,
        ] {
            assert!(
                matches!(parse_one_call(body), Err(ProviderError::InvalidResponse { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn impossible_readings_are_refused_and_conditions_tidied() {
        // Issue 10 #13: -1e308 °C was cached and served as -Infinity °F.
        assert!(matches!(
            parse_one_call(br#"{"current":{"temp":-1e308,"weather":[{"main":"Clear"}]}}"#),
            Err(ProviderError::InvalidResponse { .. })
        ));
        let huge = format!(r#"{{"current":{{"temp":1,"weather":[{{"main":"{}\u0007\n"}}]}}}}"#, "x".repeat(100_000));
        let obs = parse_one_call(huge.as_bytes()).unwrap();
        assert_eq!(obs.condition, "x".repeat(64));
    }

    #[test]
    fn error_objects_in_the_body() {
        assert_eq!(
            parse_one_call(br#"{"cod":429,"message":"slow down"}"#),
            Err(ProviderError::RateLimited { retry_after: None })
        );
        assert_eq!(
            parse_one_call(br#"{"cod":"429","message":"slow down"}"#),
            Err(ProviderError::RateLimited { retry_after: None })
        );
        assert_eq!(
            parse_one_call(br#"{"cod":"401","message":"Invalid API key"}"#),
            Err(ProviderError::KeyRejected { status: 401 })
        );
        assert_eq!(
            parse_one_call(br#"{"cod":"404","message":"Not found"}"#),
            Err(ProviderError::Status { status: 404, reason: None })
        );
    }
}
