//! OpenWeather One Call 3.0: `GET /data/3.0/onecall?lat&lon&exclude&units=metric&appid`.

use std::sync::Once;
use std::time::Duration;

use serde::Deserialize;

use super::body::{read_bounded, transport_error};
use super::{observation, parse_retry_after, FetchFuture, Provider, ProviderError, Redactor};
use crate::cache::Observation;
use crate::geo::LatLon;

pub const DEFAULT_BASE_URL: &str = "https://api.openweathermap.org";

#[derive(Clone)]
pub struct OpenWeatherConfig {
    pub api_key: Option<String>,
    pub base_url: String,
    /// Decimals used when printing the (already rounded) coordinates into the query.
    pub coordinate_decimals: u32,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
}

pub struct OpenWeather {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    api_key: Option<String>,
    decimals: usize,
    max_response_bytes: u64,
    redactor: Redactor,
}

impl OpenWeather {
    /// Fails (with a message fit for users) when `base_url` is not an http(s) URL.
    pub fn new(config: OpenWeatherConfig) -> Result<OpenWeather, String> {
        let endpoint = endpoint(&config.base_url)?;
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            // The key is in the query string: it must never follow a redirect elsewhere. A 3xx is
            // an upstream error like any other non-2xx.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("weather-cache/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&endpoint) {
            // A proxy from the environment must never see loopback traffic (tests, sidecars).
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| format!("cannot create the HTTP client: {}", e.without_url()))?;
        let api_key = config.api_key.filter(|k| !k.is_empty());
        Ok(OpenWeather {
            client,
            endpoint,
            redactor: Redactor::new(api_key.as_deref()),
            api_key,
            decimals: config.coordinate_decimals as usize,
            max_response_bytes: config.max_response_bytes,
        })
    }

    async fn current(&self, at: LatLon) -> Result<Observation, ProviderError> {
        let key = self.api_key.as_deref().ok_or(ProviderError::NoApiKey)?;
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("lat", &format!("{:.*}", self.decimals, at.lat))
            .append_pair("lon", &format!("{:.*}", self.decimals, at.lon))
            .append_pair("exclude", "minutely,hourly,daily,alerts")
            .append_pair("units", "metric")
            .append_pair("appid", key);
        let started = std::time::Instant::now();
        let response = self.client.get(url).send().await.map_err(|e| transport_error(e, &self.redactor))?;
        let status = response.status().as_u16();
        tracing::debug!(target: "weather_cache::provider", provider = "openweather", lat = at.lat, lon = at.lon, status,
            elapsed_ms = started.elapsed().as_millis() as u64, "upstream answered");
        if status == 429 {
            let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
            let retry_after = header(reqwest::header::RETRY_AFTER)
                .and_then(|value| parse_retry_after(value, header(reqwest::header::DATE)));
            return Err(ProviderError::RateLimited { retry_after });
        }
        if !(200..300).contains(&status) {
            return Err(ProviderError::Status { status });
        }
        let body = read_bounded(response, self.max_response_bytes, &self.redactor).await?;
        parse_one_call(&body)
    }
}

impl Provider for OpenWeather {
    fn name(&self) -> &'static str {
        "openweather"
    }

    fn ready(&self) -> Result<(), ProviderError> {
        self.api_key.as_ref().map(|_| ()).ok_or(ProviderError::NoApiKey)
    }

    fn fetch(&self, at: LatLon) -> FetchFuture<'_> {
        Box::pin(self.current(at))
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
/// (`{"cod":429,…}`, `cod` as number or string) is treated as that error.
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
        Some(code) if parsed.current.is_none() && !(200..300).contains(&code) => {
            return Err(ProviderError::Status { status: code.min(u16::MAX as u64) as u16 })
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

fn endpoint(base_url: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base_url).map_err(|_| "baseUrl must be an absolute http(s) URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err("baseUrl must be an absolute http(s) URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("baseUrl must not carry a query, a fragment or credentials".to_owned());
    }
    let path = format!("{}/data/3.0/onecall", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// reqwest is built without a default TLS crypto provider (see Cargo.toml); install ring's once
/// per process. An error means another part of the process already installed one: fine.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
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
            Err(ProviderError::Status { status: 401 })
        );
    }

    #[test]
    fn endpoint_keeps_a_path_prefix() {
        assert_eq!(endpoint("http://127.0.0.1:9/").unwrap().as_str(), "http://127.0.0.1:9/data/3.0/onecall");
        assert_eq!(
            endpoint("https://example.com/proxy/").unwrap().as_str(),
            "https://example.com/proxy/data/3.0/onecall"
        );
        for bad in ["", "127.0.0.1:80", "ftp://x", "http://u:p@x", "http://x/?a=1", "mailto:a@b"] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }
}
