//! MET Norway's Locationforecast 2.0:
//! `GET /weatherapi/locationforecast/2.0/compact?lat&lon`, at most 4 decimals.
//!
//! Its terms of service ask three things of a client, all kept here or by the engine:
//! - an identifying `User-Agent` (the operator's application and contact), without which it
//!   answers 403; the service refuses the provider without one;
//! - no request for a place before the previous answer's `Expires`: the answer says how long
//!   (`hold_for`, from `Expires` − `Date`, so that neither our clock's skew nor the manual clock
//!   matters) and the engine keeps the entry fresh that long, forced refreshes included;
//! - conditional requests: `If-Modified-Since` with exactly the previous `Last-Modified`; a
//!   `304` renews the previous reading without a body.
//!
//! A `203` means the product is deprecated: the answer is used, and the operator warned.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::body::{read_bounded, transport_error};
use super::http::{self, coordinate, endpoint, failure};
use super::symbols::condition_of_symbol;
use super::{observation, Answer, FetchFuture, Provider, ProviderError, Redactor};
use crate::cache::{Observation, Products};
use crate::geo::LatLon;

pub const DEFAULT_BASE_URL: &str = "https://api.met.no";

/// MET Norway's limit on decimals (more are refused, and would defeat its caches).
const MAX_DECIMALS: u32 = 4;

/// Longest validator kept: a `Last-Modified` date is 29 bytes.
const MAX_VALIDATOR_BYTES: usize = 64;

#[derive(Clone)]
pub struct MetNorwayConfig {
    /// Required by the terms: who is asking (for instance `"acme-dashboard/2.1 ops@acme.example"`).
    pub user_agent: String,
    pub base_url: String,
    pub coordinate_decimals: u32,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
}

pub struct MetNorway {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    decimals: usize,
    max_response_bytes: u64,
    redactor: Redactor,
}

impl MetNorway {
    pub fn new(config: MetNorwayConfig) -> Result<MetNorway, String> {
        let user_agent = config.user_agent.trim();
        if user_agent.is_empty() {
            return Err("MET Norway's terms require an identifying userAgent (your application and a contact)".into());
        }
        if reqwest::header::HeaderValue::from_str(user_agent).is_err() {
            return Err("userAgent must be printable ASCII".into());
        }
        let endpoint = endpoint(&config.base_url, "/weatherapi/locationforecast/2.0/compact")?;
        let client = http::client(&endpoint, config.request_timeout, user_agent)?;
        Ok(MetNorway {
            client,
            endpoint,
            decimals: config.coordinate_decimals.min(MAX_DECIMALS) as usize,
            max_response_bytes: config.max_response_bytes,
            redactor: Redactor::new(None),
        })
    }

    async fn current(&self, at: LatLon, validator: Option<&str>) -> Result<Answer, ProviderError> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("lat", &coordinate(at.lat, self.decimals))
            .append_pair("lon", &coordinate(at.lon, self.decimals));
        let mut request = self.client.get(url);
        if let Some(validator) = validator {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, validator);
        }
        let response = request.send().await.map_err(|e| transport_error(e, &self.redactor))?;
        let status = response.status().as_u16();
        tracing::debug!(target: "weather_cache::provider", provider = "met-norway", lat = at.lat, lon = at.lon, status,
            conditional = validator.is_some(), "upstream answered");
        if let Some(error) = failure(&response).filter(|_| status != 304) {
            return Err(error);
        }
        let headers = response.headers();
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let hold_for = hold_for(header(reqwest::header::EXPIRES), header(reqwest::header::DATE));
        let validator = header(reqwest::header::LAST_MODIFIED)
            .filter(|v| v.len() <= MAX_VALIDATOR_BYTES)
            .map(Box::from)
            .or_else(|| validator.filter(|_| status == 304).map(Box::from));
        let warning = (status == 203).then_some("MET Norway answered 203: this product is deprecated");
        if status == 304 {
            if validator.is_none() {
                return Err(ProviderError::InvalidResponse { message: "304 to an unconditional request".into() });
            }
            return Ok(Answer { observation: None, hold_for, validator, warning, products: None, extra_calls: 0 });
        }
        let body = read_bounded(response, self.max_response_bytes, &self.redactor).await?;
        let (observation, products) = read_compact(&body)?;
        Ok(Answer { observation: Some(observation), hold_for, validator, warning, products: Some(products.into()), extra_calls: 0 })
    }
}

impl Provider for MetNorway {
    fn name(&self) -> &'static str {
        "met-norway"
    }

    fn ready(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    fn fetch<'a>(&'a self, at: LatLon, validator: Option<&'a str>) -> FetchFuture<'a> {
        Box::pin(self.current(at, validator))
    }
}

/// `Expires` − `Date` (or − now, without a `Date`), when the answer has a usable `Expires` in
/// its future. At most a day: a typo upstream must not pin an entry for years.
fn hold_for(expires: Option<&str>, date: Option<&str>) -> Option<Duration> {
    let expires = httpdate::parse_http_date(expires?).ok()?;
    let now = date.and_then(|d| httpdate::parse_http_date(d).ok()).unwrap_or_else(SystemTime::now);
    let held = expires.duration_since(now).ok()?;
    (held > Duration::ZERO).then(|| held.min(Duration::from_secs(86_400)))
}

#[derive(Deserialize)]
struct Body {
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(default)]
    timeseries: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    data: Option<StepData>,
}

#[derive(Deserialize)]
struct StepData {
    instant: Option<Instant>,
    next_1_hours: Option<NextHours>,
}

#[derive(Deserialize)]
struct Instant {
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    air_temperature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct NextHours {
    summary: Option<Symbol>,
}

#[derive(Deserialize)]
struct Symbol {
    symbol_code: Option<serde_json::Value>,
}

/// Celsius from `properties.timeseries[0].data.instant.details.air_temperature` (required),
/// the condition from that step's `next_1_hours.summary.symbol_code`.
#[cfg(test)]
pub fn parse_compact(body: &[u8]) -> Result<Observation, ProviderError> {
    read_compact(body).map(|(observation, _)| observation)
}

/// `parse_compact`, and the answer's products (see `met_norway_products.rs`).
pub fn read_compact(body: &[u8]) -> Result<(Observation, Products), ProviderError> {
    let invalid = |message: &str| ProviderError::InvalidResponse { message: message.to_owned() };
    let whole: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid("body is not the expected JSON object"))?;
    let parsed = Body::deserialize(&whole).map_err(|_| invalid("body is not the expected JSON object"))?;
    let now = parsed
        .properties
        .and_then(|p| p.timeseries.into_iter().next())
        .and_then(|step| step.data)
        .ok_or_else(|| invalid("body has no timeseries"))?;
    let celsius = now
        .instant
        .and_then(|i| i.details)
        .and_then(|d| d.air_temperature)
        .and_then(|t| t.as_f64())
        .filter(|t| t.is_finite())
        .ok_or_else(|| invalid("body lacks a numeric air_temperature"))?;
    let symbol = now.next_1_hours.and_then(|n| n.summary).and_then(|s| s.symbol_code);
    let observation = observation(celsius, Some(condition_of_symbol(symbol.as_ref().and_then(|s| s.as_str()).unwrap_or(""))))?;
    Ok((observation, super::met_norway_products::products(&whole)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_first_step() {
        let body = br#"{"type":"Feature","properties":{"meta":{},"timeseries":[
            {"time":"2026-11-22T10:00:00Z","data":{"instant":{"details":{"air_temperature":-3.2}},
             "next_1_hours":{"summary":{"symbol_code":"lightsnow_day"}}}},
            {"time":"2026-11-22T11:00:00Z","data":{"instant":{"details":{"air_temperature":9}}}}]}}"#;
        assert_eq!(parse_compact(body).unwrap(), Observation { condition: "Snow".into(), celsius: -3.2 });
        for bad in [&br#"{"properties":{"timeseries":[]}}"#[..], br#"{"properties":{"timeseries":[{"data":{}}]}}"#, b"[]"] {
            assert!(matches!(parse_compact(bad), Err(ProviderError::InvalidResponse { .. })));
        }
    }

    #[test]
    fn reads_hours_then_days_from_the_timeseries() {
        let t0 = 1_795_341_600; // 2026-11-22T10:00:00Z, 11:00 solar time at 10.75 °E
        let body = crate::testing::bodies::met_norway(t0, 2.0);
        let (obs, p) = read_compact(body.as_bytes()).unwrap();
        assert_eq!(obs, Observation { condition: "Rain".into(), celsius: 2.0 });
        assert_eq!(p.utc_offset_s, 3_600);
        let d = p.details.as_ref().unwrap();
        assert_eq!((d.humidity.get(), d.feels_like_c.get(), d.precip_mm_per_h.get()), (Some(88.2f32 as f64), None, Some(0.5)));
        assert_eq!(p.hourly.len(), 48);
        assert_eq!((p.hourly[0].time_s, p.hourly[0].sky.as_str(), p.hourly[0].precip_probability.get()), (t0 as u32, "Rain", None));
        assert_eq!(p.hourly[2].wind_speed_ms.get(), None, "missing, not zero");
        assert!(p.daily.len() >= 5 && p.daily.len() <= 8, "{}", p.daily.len());
        assert_eq!(crate::cache::iso_date(p.daily[0].date as i64), "2026-11-22");
        // The first local day runs 11:00-23:00 (13 hourly steps): 2.0 to 8.0 °C, 13 × 0.5 mm.
        assert_eq!((p.daily[0].min_c, p.daily[0].max_c, p.daily[0].precip_mm.get()), (2.0, 8.0, Some(6.5)));
        assert_eq!(p.daily[0].sky.as_str(), "Clouds");
        let last = p.daily.last().unwrap();
        assert_eq!((last.sky.as_str(), last.sunrise_s, last.precip_probability.get()), ("Snow", 0, None));
        assert!(p.alerts.is_empty());
        assert!(p.next_hour.is_none(), "MET has no minutes");
    }

    #[test]
    fn holds_from_expires_minus_date() {
        let date = Some("Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(hold_for(Some("Sun, 22 Nov 2026 10:30:00 GMT"), date), Some(Duration::from_secs(1_800)));
        assert_eq!(hold_for(Some("Sun, 22 Nov 2026 09:00:00 GMT"), date), None, "already expired");
        assert_eq!(hold_for(Some("Fri, 22 Nov 2030 09:00:00 GMT"), date), Some(Duration::from_secs(86_400)), "capped");
        assert_eq!(hold_for(Some("soon"), date), None);
        assert_eq!(hold_for(None, date), None);
    }

    #[test]
    fn a_user_agent_is_required() {
        let config = |user_agent: &str| MetNorwayConfig {
            user_agent: user_agent.into(),
            base_url: DEFAULT_BASE_URL.into(),
            coordinate_decimals: 2,
            request_timeout: Duration::from_secs(1),
            max_response_bytes: 1 << 20,
        };
        assert!(MetNorway::new(config("  ")).is_err());
        assert!(MetNorway::new(config("bad\nagent")).is_err());
        assert!(MetNorway::new(config("acme-dashboard/2.1 ops@acme.example")).is_ok());
    }
}
