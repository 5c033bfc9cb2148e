//! Open-Meteo: `GET /v1/forecast?latitude&longitude&current=temperature_2m,weather_code`.
//! Keyless on the free tier (non-commercial use only, CC BY 4.0); the commercial endpoint
//! (`customer-api.open-meteo.com`) takes `&apikey=`. Errors come as HTTP 400
//! `{"error": true, "reason": "..."}`.

use serde::Deserialize;

use super::body::{read_bounded, transport_error};
use super::http::{coordinate, HttpProviderConfig, KeyedClient};
use super::{observation, tidy, Answer, FetchFuture, Provider, ProviderError};
use crate::cache::Observation;
use crate::geo::LatLon;

pub const DEFAULT_BASE_URL: &str = "https://api.open-meteo.com";

/// The key is optional: only the commercial endpoint takes one.
pub type OpenMeteoConfig = HttpProviderConfig;

pub struct OpenMeteo {
    http: KeyedClient,
}

impl OpenMeteo {
    pub fn new(config: OpenMeteoConfig) -> Result<OpenMeteo, String> {
        Ok(OpenMeteo { http: KeyedClient::new(config, "/v1/forecast")? })
    }

    async fn current(&self, at: LatLon) -> Result<Observation, ProviderError> {
        let http = &self.http;
        let mut url = http.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("latitude", &coordinate(at.lat, http.decimals))
                .append_pair("longitude", &coordinate(at.lon, http.decimals))
                .append_pair("current", "temperature_2m,weather_code");
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
        parse_forecast(&body)
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
        Box::pin(async move { self.current(at).await.map(Answer::observed) })
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
pub fn parse_forecast(body: &[u8]) -> Result<Observation, ProviderError> {
    let invalid = |message: &str| ProviderError::InvalidResponse { message: message.to_owned() };
    let parsed: Body = serde_json::from_slice(body).map_err(|_| invalid("body is not the expected JSON object"))?;
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
    observation(celsius, Some(condition_of_wmo(code)))
}

/// A WMO weather interpretation code as an OpenWeather-style condition.
pub fn condition_of_wmo(code: Option<f64>) -> &'static str {
    let Some(code) = code.filter(|c| c.fract() == 0.0) else { return "Unknown" };
    match code as i64 {
        0 | 1 => "Clear",
        2 | 3 => "Clouds",
        45 | 48 => "Fog",
        51..=57 => "Drizzle",
        61..=67 | 80..=82 => "Rain",
        71..=77 | 85 | 86 => "Snow",
        95..=99 => "Thunderstorm",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wmo_table_case_by_case() {
        let expected = |code: i64| match code {
            0 | 1 => "Clear",
            2 | 3 => "Clouds",
            45 | 48 => "Fog",
            51..=57 => "Drizzle",
            61..=67 | 80..=82 => "Rain",
            71..=77 | 85 | 86 => "Snow",
            95..=99 => "Thunderstorm",
            _ => "Unknown",
        };
        for code in -5..=105 {
            assert_eq!(condition_of_wmo(Some(code as f64)), expected(code), "code {code}");
        }
        assert_eq!(condition_of_wmo(Some(2.5)), "Unknown");
        assert_eq!(condition_of_wmo(None), "Unknown");
    }

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
