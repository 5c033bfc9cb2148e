//! OpenWeather One Call 3.0: `GET /data/3.0/onecall?lat&lon&exclude&units=metric&appid`.

use serde::Deserialize;

use super::body::{read_bounded, transport_error};
use super::http::{HttpProviderConfig, KeyedClient};
use super::{observation, Answer, FetchFuture, LateKey, Provider, ProviderError};
use crate::cache::Observation;
use crate::geo::LatLon;

pub const DEFAULT_BASE_URL: &str = "https://api.openweathermap.org";

pub type OpenWeatherConfig = HttpProviderConfig;

pub struct OpenWeather {
    http: KeyedClient,
}

impl OpenWeather {
    /// Fails (with a message fit for users) when `base_url` is not an http(s) URL.
    pub fn new(config: OpenWeatherConfig) -> Result<OpenWeather, String> {
        Ok(OpenWeather { http: KeyedClient::new(config, "/data/3.0/onecall")? })
    }

    /// Without a configured key, takes `late`'s once it is set (the default instance's
    /// `OPEN_WEATHER_API_KEY`, set after its first call). A configured key wins.
    pub fn with_late_key(mut self, late: LateKey) -> OpenWeather {
        self.http.late_key = Some(late);
        self
    }

    async fn current(&self, at: LatLon) -> Result<Observation, ProviderError> {
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
            .append_pair("lon", &format!("{:.*}", http.decimals, at.lon))
            .append_pair("exclude", "minutely,hourly,daily,alerts")
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
        parse_one_call(&body).map_err(refused)
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
        Box::pin(async move { self.current(at).await.map(Answer::observed) })
    }
}

#[derive(Deserialize)]
struct Body {
    current: Option<Current>,
    cod: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Current {
    temp: Option<serde_json::Value>,
    #[serde(default)]
    weather: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    main: Option<serde_json::Value>,
}

/// Extracts `current.temp` (a number in a physical range: a missing reading is an error, never
/// 0 °C) and `current.weather[0].main` (`"Unknown"` when absent; see `reading.rs`). A 200 that carries an error object
/// (`{"cod":429,…}`, `cod` as number or string) is treated as that error; `cod` 401 is the key
/// refused.
pub fn parse_one_call(body: &[u8]) -> Result<Observation, ProviderError> {
    let invalid = |message: &str| ProviderError::InvalidResponse { message: message.to_owned() };
    let parsed: Body = serde_json::from_slice(body).map_err(|_| invalid("body is not the expected JSON object"))?;
    let cod = parsed.cod.as_ref().and_then(|c| match c {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    match cod {
        Some(429) => return Err(ProviderError::RateLimited { retry_after: None }),
        // `{"cod":401,"message":"Invalid API key..."}`: every request carries the key.
        Some(401) if parsed.current.is_none() => return Err(ProviderError::KeyRejected { status: 401 }),
        Some(code) if parsed.current.is_none() && !(200..300).contains(&code) => {
            return Err(ProviderError::Status { status: code.min(u16::MAX as u64) as u16, reason: None })
        }
        _ => {}
    }
    let current = parsed.current.ok_or_else(|| invalid("body has no current conditions"))?;
    let celsius = current
        .temp
        .as_ref()
        .and_then(serde_json::Value::as_f64)
        .filter(|t| t.is_finite())
        .ok_or_else(|| invalid("body lacks a numeric current.temp"))?;
    let condition = current.weather.first().and_then(|w| w.main.as_ref()).and_then(serde_json::Value::as_str);
    observation(celsius, condition)
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
