//! Open-Meteo: `GET /v1/forecast?latitude&longitude&current=temperature_2m,weather_code,...`
//! with the products' variables (see `open_meteo_products.rs`).
//! Keyless on the free tier (non-commercial use only, CC BY 4.0); the commercial endpoint
//! (`customer-api.open-meteo.com`) takes `&apikey=`. Errors come as HTTP 400
//! `{"error": true, "reason": "..."}`.

use serde::Deserialize;

use super::body::{read_bounded, transport_error};
use super::http::{coordinate, HttpProviderConfig, KeyedClient};
use super::wmo::condition_of_wmo;
use super::{observation, tidy, Answer, FetchFuture, Provider, ProviderError};
use crate::cache::{Observation, Products};
use crate::geo::LatLon;

pub const DEFAULT_BASE_URL: &str = "https://api.open-meteo.com";

/// The key is optional: only the commercial endpoint takes one.
pub type OpenMeteoConfig = HttpProviderConfig;

pub struct OpenMeteo {
    http: KeyedClient,
    /// Whether the answer's products are wanted (see `OpenWeather::with_products`).
    products: bool,
}

impl OpenMeteo {
    pub fn new(config: OpenMeteoConfig) -> Result<OpenMeteo, String> {
        Ok(OpenMeteo { http: KeyedClient::new(config, "/v1/forecast")?, products: true })
    }

    /// Without products, only `current=temperature_2m,weather_code` is asked for.
    pub fn with_products(mut self, products: bool) -> OpenMeteo {
        self.products = products;
        self
    }

    async fn current(&self, at: LatLon) -> Result<Answer, ProviderError> {
        let http = &self.http;
        let mut url = http.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("latitude", &coordinate(at.lat, http.decimals))
                .append_pair("longitude", &coordinate(at.lon, http.decimals));
            if self.products {
                for (name, value) in super::open_meteo_products::QUERY {
                    query.append_pair(name, value);
                }
            } else {
                query.append_pair("current", "temperature_2m,weather_code");
            }
            if let Some(key) = &http.api_key {
                query.append_pair("apikey", key);
            }
        }
        let response = http.client.get(url).send().await.map_err(|e| transport_error(e, &http.redactor))?;
        tracing::debug!(target: "weather_cache::provider", provider = "open-meteo", lat = at.lat, lon = at.lon,
            status = response.status().as_u16(), "upstream answered");
        match http.failure(&response) {
            // Its error answers say why (a bad parameter, a key refused): worth a read, bounded.
            Some(ProviderError::Status { status, .. }) if (400..500).contains(&status) => {
                let body = read_bounded(response, http.max_response_bytes.min(MAX_ERROR_BYTES), &http.redactor).await;
                let reason = body.ok().and_then(|b| reason_of(&b, |text| http.redactor.redact(text)));
                return Err(ProviderError::Status { status, reason });
            }
            Some(error) => return Err(error),
            None => {}
        }
        let body = read_bounded(response, http.max_response_bytes, &http.redactor).await?;
        let (observation, products) = read_forecast(&body)?;
        Ok(if self.products { Answer::with_products(observation, products) } else { Answer::observed(observation) })
    }
}

impl Provider for OpenMeteo {
    fn name(&self) -> &'static str {
        "open-meteo"
    }

    fn ready(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    fn fetch<'a>(&'a self, at: LatLon, _: Option<&'a str>) -> FetchFuture<'a> {
        Box::pin(self.current(at))
    }
}

/// The most of an error answer read for its reason.
const MAX_ERROR_BYTES: u64 = 4 * 1024;
/// The longest reason passed on.
const MAX_REASON_CHARS: usize = 200;

/// The `reason` of an error body `{"error": true, "reason": "..."}`, as one tidy line, the
/// secrets `redact`ed before it is cut (a cut through the key would leave part of it).
fn reason_of(body: &[u8], redact: impl Fn(&str) -> String) -> Option<String> {
    #[derive(Deserialize)]
    struct Error {
        reason: String,
    }
    let error: Error = serde_json::from_slice(body).ok()?;
    let whole = redact(&tidy(&error.reason, MAX_ERROR_BYTES as usize));
    Some(tidy(&whole, MAX_REASON_CHARS)).filter(|r| !r.is_empty())
}

#[derive(Deserialize)]
struct Body {
    current: Option<Current>,
    #[serde(default)]
    error: bool,
}

#[derive(Deserialize)]
struct Current {
    temperature_2m: Option<serde_json::Value>,
    weather_code: Option<serde_json::Value>,
}

/// Extracts `current.temperature_2m` (required) and `current.weather_code` (a WMO code).
#[cfg(test)]
pub fn parse_forecast(body: &[u8]) -> Result<Observation, ProviderError> {
    read_forecast(body).map(|(observation, _)| observation)
}

/// `parse_forecast`, and the answer's products.
pub fn read_forecast(body: &[u8]) -> Result<(Observation, Products), ProviderError> {
    let invalid = |message: &str| ProviderError::InvalidResponse { message: message.to_owned() };
    let whole: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid("body is not the expected JSON object"))?;
    let parsed = Body::deserialize(&whole).map_err(|_| invalid("body is not the expected JSON object"))?;
    if parsed.error {
        return Err(invalid("body is an error object"));
    }
    let current = parsed.current.ok_or_else(|| invalid("body has no current conditions"))?;
    let celsius = current
        .temperature_2m
        .as_ref()
        .and_then(serde_json::Value::as_f64)
        .filter(|t| t.is_finite())
        .ok_or_else(|| invalid("body lacks a numeric current.temperature_2m"))?;
    let code = current.weather_code.as_ref().and_then(serde_json::Value::as_f64);
    Ok((observation(celsius, Some(condition_of_wmo(code)))?, super::open_meteo_products::products(&whole)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_gives_its_reason_as_one_capped_line() {
        let keep = |text: &str| text.to_owned();
        let reason = reason_of(br#"{"error":true,"reason":"Latitude must be in range of -90 to 90"}"#, keep);
        assert_eq!(reason.as_deref(), Some("Latitude must be in range of -90 to 90"));
        let long = format!(r#"{{"error":true,"reason":"a\u0000\nb{}"}}"#, "x".repeat(1_000));
        assert_eq!(reason_of(long.as_bytes(), keep).map(|r| (r.starts_with("ab"), r.chars().count())), Some((true, 200)));
        for body in [&b"not json"[..], br#"{"error":true}"#, br#"{"reason":"   "}"#, br#"{"reason":7}"#] {
            assert_eq!(reason_of(body, keep), None);
        }
        // A key across the cut is redacted whole, not cut first and then missed.
        let key = "k3y-0123456789abcdef";
        let body = format!(r#"{{"error":true,"reason":"{}{key} is not a valid key"}}"#, "y".repeat(190));
        let redactor = crate::redact::Redactor::new(Some(key));
        let reason = reason_of(body.as_bytes(), |text| redactor.redact(text)).unwrap();
        assert!(!reason.contains("k3y-01"), "{reason}");
        assert_eq!(reason.chars().count(), 200);
    }

    #[test]
    fn reads_hourly_daily_and_quarter_hours_from_the_same_answer() {
        let t0 = 1_795_341_600; // 2026-11-22T10:00:00Z, 11:00 at +01:00
        let body = crate::testing::bodies::open_meteo(t0, 4.0);
        let (obs, p) = read_forecast(body.as_bytes()).unwrap();
        assert_eq!(obs, Observation { condition: "Rain".into(), celsius: 4.0 });
        assert_eq!(p.utc_offset_s, 3_600);
        let d = p.details.as_ref().unwrap();
        assert_eq!((d.feels_like_c.get(), d.wind_gust_ms.get(), d.visibility_m.get()), (Some(-1.5), Some(12.4f32 as f64), None));
        assert_eq!(&*d.description, "rain");
        assert_eq!(p.hourly.len(), 48, "from the current hour, the past ones of the day left out");
        let h = &p.hourly[0];
        assert_eq!((h.time_s, h.wind_gust_ms.get(), h.wind_speed_ms.get()), (t0 as u32, None, Some(5.5)));
        // The hour starting at t0 takes the precipitation labelled t0 + 1 h (index 12 from
        // the local midnight at 23:00Z the day before).
        assert_eq!((h.precip_mm.get(), h.precip_probability.get()), (Some(0.0), Some(0.24f32 as f64)));
        assert_eq!(p.daily.len(), 8);
        assert_eq!(crate::cache::iso_date(p.daily[0].date as i64), "2026-11-22");
        assert_eq!((p.daily[0].min_c, p.daily[0].max_c, p.daily[1].precip_probability.get()), (2.0, 7.0, None));
        assert!(p.alerts.is_empty());
        let next = p.next_hour.as_ref().unwrap();
        assert_eq!((next.start_s, next.step_s), (t0 as u32 + 900, 900), "from the current quarter hour");
        assert_eq!(&*next.mm_per_h, &[0.0, 2.0, 2.0, 2.0], "mm per quarter hour, as mm/h, read one step ahead");
        let (_, bare) = read_forecast(br#"{"current":{"temperature_2m":1}}"#).unwrap();
        assert!(bare.hourly.is_empty() && bare.daily.is_empty() && bare.next_hour.is_none());
    }

    #[test]
    fn parses_current_conditions_and_refuses_the_rest() {
        let obs = parse_forecast(br#"{"current":{"time":"2026-11-22T10:00","temperature_2m":7.4,"weather_code":61}}"#);
        assert_eq!(obs.unwrap(), Observation { condition: "Rain".into(), celsius: 7.4 });
        let obs = parse_forecast(br#"{"current":{"temperature_2m":-2}}"#).unwrap();
        assert_eq!(obs.condition, "Unknown");
        for body in [
            &br#"{"error":true,"reason":"Latitude must be in range of -90 to 90"}"#[..],
            br#"{"current":{"weather_code":3}}"#,
            br#"{"current":{"temperature_2m":"7"}}"#,
            br#"{"current":{"temperature_2m":999}}"#,
            b"<html>",
        ] {
            assert!(
                matches!(parse_forecast(body), Err(ProviderError::InvalidResponse { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
