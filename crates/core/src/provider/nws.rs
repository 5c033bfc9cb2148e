//! The US National Weather Service (api.weather.gov): keyless, an identifying `User-Agent`
//! required, the US only. One fetch asks several endpoints, each counted as a call:
//! - `/points/{lat},{lon}` (4 decimals at most): the place's grid and station list URLs. Its
//!   answer is stable, so it is kept as long as its `Cache-Control: max-age` says (at most a
//!   week), with the nearest station (the first of `observationStations`);
//! - the grid's `forecastHourly` (hours, and the days made from them), the nearest station's
//!   `observations/latest` (now: its `temperature` in °C may be `null`, then the current hour's
//!   forecast stands in), and `/alerts/active?point=lat,lon`.
//!
//! A `404` from `/points` means the place is outside NWS's coverage: the flight moves on to the
//! next provider without cooling the area down. URLs in answers are followed only on the
//! configured origin (a hostile answer cannot send us elsewhere).
//!
//! Conditions come from the icon codes (`.../icons/land/day/tsra,40?size=small`: `tsra`), see
//! `condition_of_icon` and the table in the README.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::body::{read_bounded, transport_error};
use super::http::{self, coordinate, endpoint, failure};
use super::json::{list, num, text, Kind};
use super::{observation, parse_rfc3339, tidy, tidy_lines, Answer, FetchFuture, Provider, ProviderError, Redactor};
use crate::cache::{
    local_day, Alert, Day, Details, Hour, Maybe, Observation, Products, Sky, MAX_ALERTS, MAX_ALERT_DESCRIPTION_CHARS,
    MAX_ALERT_TITLE_CHARS, MAX_DAYS, MAX_DESCRIPTION_CHARS, MAX_HOURS,
};
use crate::geo::LatLon;

pub const DEFAULT_BASE_URL: &str = "https://api.weather.gov";

/// NWS redirects requests with more decimals (and we follow no redirect).
const MAX_DECIMALS: usize = 4;
/// How long a `/points` answer is kept without a `max-age`, and at most.
const POINTS_DEFAULT_TTL: Duration = Duration::from_secs(3_600);
const POINTS_MAX_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Places whose `/points` answers are kept (each a few hundred bytes).
const MAX_POINTS: usize = 10_000;

#[derive(Clone)]
pub struct NwsConfig {
    /// Required by NWS: who is asking (for instance `"acme-drones/1.0 ops@acme.example"`).
    pub user_agent: String,
    pub base_url: String,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
}

pub struct Nws {
    client: reqwest::Client,
    base: reqwest::Url,
    max_response_bytes: u64,
    redactor: Redactor,
    points: Mutex<HashMap<String, Point>>,
}

/// What `/points` (and the station list) said of a place.
#[derive(Clone)]
struct Point {
    hourly: reqwest::Url,
    station: Option<reqwest::Url>,
    until: Instant,
}

impl Nws {
    pub fn new(config: NwsConfig) -> Result<Nws, String> {
        let user_agent = config.user_agent.trim();
        if user_agent.is_empty() {
            return Err("NWS requires an identifying userAgent (your application and a contact)".into());
        }
        if reqwest::header::HeaderValue::from_str(user_agent).is_err() {
            return Err("userAgent must be printable ASCII".into());
        }
        let base = endpoint(&config.base_url, "")?;
        let client = http::client(&base, config.request_timeout, user_agent)?;
        Ok(Nws {
            client,
            base,
            max_response_bytes: config.max_response_bytes,
            redactor: Redactor::new(None),
            points: Mutex::new(HashMap::new()),
        })
    }

    /// A URL an answer gave, if it is on the configured origin.
    fn followed(&self, url: Option<&str>) -> Result<reqwest::Url, ProviderError> {
        let url = url.and_then(|u| reqwest::Url::parse(u).ok()).filter(|u| u.origin() == self.base.origin());
        url.ok_or_else(|| ProviderError::InvalidResponse { message: "an NWS link is missing or leaves its origin".into() })
    }

    /// GETs `url` as GeoJSON: the body and its `max-age`; `calls` counts the request.
    async fn get(&self, url: reqwest::Url, calls: &mut u32) -> Result<(Value, Option<Duration>), ProviderError> {
        *calls += 1;
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/geo+json")
            .send()
            .await
            .map_err(|e| transport_error(e, &self.redactor))?;
        if let Some(error) = failure(&response) {
            return Err(error);
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = read_bounded(response, self.max_response_bytes, &self.redactor).await?;
        let value = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::InvalidResponse { message: "body is not the expected JSON object".into() })?;
        Ok((value, max_age))
    }

    async fn point(&self, place: &str, calls: &mut u32) -> Result<Point, ProviderError> {
        let cached = self.points.lock().unwrap_or_else(|e| e.into_inner()).get(place).cloned();
        if let Some(point) = cached.filter(|p| p.until > Instant::now()) {
            return Ok(point);
        }
        let mut url = self.base.clone();
        url.set_path(&format!("{}/points/{place}", self.base.path().trim_end_matches('/')));
        let (body, max_age) = match self.get(url, calls).await {
            Err(ProviderError::Status { status: 404, .. }) => return Err(ProviderError::OutsideCoverage),
            other => other?,
        };
        let properties = body.get("properties").unwrap_or(&Value::Null);
        let hourly = self.followed(text(properties, "forecastHourly"))?;
        let stations = self.followed(text(properties, "observationStations"));
        // The nearest station (the list is sorted by distance), kept with the point.
        let station = match stations {
            Ok(stations) => {
                let (list_body, _) = self.get(stations, calls).await?;
                let first = list(&list_body, "features").first();
                first.and_then(|f| text(f, "id")).and_then(|id| self.followed(Some(id)).ok())
            }
            Err(_) => None,
        };
        let ttl = max_age.unwrap_or(POINTS_DEFAULT_TTL).min(POINTS_MAX_TTL);
        let point = Point { hourly, station, until: Instant::now() + ttl };
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        if points.len() >= MAX_POINTS {
            points.retain(|_, p| p.until > Instant::now());
            if points.len() >= MAX_POINTS {
                points.clear();
            }
        }
        points.insert(place.to_owned(), point.clone());
        Ok(point)
    }

    async fn current(&self, at: LatLon) -> Result<Answer, ProviderError> {
        let place = format!("{},{}", coordinate(at.lat, MAX_DECIMALS), coordinate(at.lon, MAX_DECIMALS));
        let mut calls = 0;
        let result = self.ask(&place, &mut calls).await;
        tracing::debug!(target: "weather_cache::provider", provider = "nws", lat = at.lat, lon = at.lon, calls,
            ok = result.is_ok(), "upstream answered");
        result.map(|mut answer| {
            answer.extra_calls = calls.saturating_sub(1);
            answer
        })
    }

    async fn ask(&self, place: &str, calls: &mut u32) -> Result<Answer, ProviderError> {
        let point = self.point(place, calls).await?;
        let (forecast, _) = self.get(point.hourly.clone(), calls).await?;
        let latest = match &point.station {
            Some(station) => {
                let mut url = station.clone();
                url.set_path(&format!("{}/observations/latest", station.path().trim_end_matches('/')));
                // A station without a recent observation is no failure: the forecast stands in.
                self.get(url, calls).await.ok().map(|(body, _)| body)
            }
            None => None,
        };
        let mut alerts_url = self.base.clone();
        alerts_url.set_path(&format!("{}/alerts/active", self.base.path().trim_end_matches('/')));
        alerts_url.query_pairs_mut().append_pair("point", place);
        let alerts = self.get(alerts_url, calls).await.ok().map(|(body, _)| body);
        let (observation, products) = read(&forecast, latest.as_ref(), alerts.as_ref())?;
        Ok(Answer::with_products(observation, products))
    }
}

impl Provider for Nws {
    fn name(&self) -> &'static str {
        "nws"
    }

    fn ready(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    fn fetch<'a>(&'a self, at: LatLon, _: Option<&'a str>) -> FetchFuture<'a> {
        Box::pin(self.current(at))
    }
}

/// `max-age` (or `s-maxage`) of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|d| {
        let d = d.trim();
        let seconds = d.strip_prefix("s-maxage=").or_else(|| d.strip_prefix("max-age="))?;
        seconds.trim_matches('"').parse().ok().map(Duration::from_secs)
    })
}

/// The NWS icon's condition code (`.../icons/land/night/rain_showers,40/tsra,60?size=small`:
/// `rain_showers`, the first of the period) as an OpenWeather-style condition.
pub fn condition_of_icon(icon: &str) -> &'static str {
    let path = icon.split(['?', '#']).next().unwrap_or("");
    let mut parts = path.rsplit('/');
    let (last, before) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // Two conditions in one icon: `.../rain_showers,40/tsra,60`; the first names the period.
    let code = if matches!(before, "day" | "night") || before.is_empty() { last } else { before };
    match code.split(',').next().unwrap_or("") {
        "skc" | "few" | "wind_skc" | "wind_few" | "hot" | "cold" => "Clear",
        "sct" | "bkn" | "ovc" | "wind_sct" | "wind_bkn" | "wind_ovc" => "Clouds",
        "rain" | "rain_showers" | "rain_showers_hi" | "fzra" | "rain_fzra" => "Rain",
        "snow" | "rain_snow" | "rain_sleet" | "snow_sleet" | "sleet" | "snow_fzra" | "blizzard" => "Snow",
        "tsra" | "tsra_sct" | "tsra_hi" => "Thunderstorm",
        "tornado" => "Tornado",
        "hurricane" | "tropical_storm" => "Squall",
        "dust" => "Dust",
        "smoke" => "Smoke",
        "haze" => "Haze",
        "fog" => "Fog",
        _ => "Unknown",
    }
}

/// A quantitative value `{ "unitCode": "wmoUnit:degC", "value": 12.2 }` in the unit the
/// products keep (°C, m/s, hPa, m, %, mm), `None` when `null` or in a unit not known here.
fn quantity(v: &Value, key: &str) -> Option<f64> {
    let q = v.get(key)?;
    let value = num(q, "value")?;
    let unit = text(q, "unitCode").unwrap_or("");
    match unit.trim_start_matches("wmoUnit:").trim_start_matches("unit:") {
        "degC" | "percent" | "m" | "mm" | "degree_(angle)" | "m_s-1" => Some(value),
        "degF" => Some((value - 32.0) * 5.0 / 9.0),
        "km_h-1" => Some(value / 3.6),
        "Pa" => Some(value / 100.0),
        _ => None,
    }
}

/// `"10 mph"`, `"15 km/h"`, `"5 to 10 mph"` (the higher) as m/s.
fn wind_speed(text: &str) -> Option<f64> {
    let mut words = text.split_whitespace().rev();
    let unit = words.next()?;
    let value: f64 = words.next()?.parse().ok()?;
    match unit {
        "mph" => Some(value * 0.44704),
        "km/h" => Some(value / 3.6),
        "kt" | "knots" => Some(value * 0.514444),
        _ => None,
    }
}

/// A forecast period's temperature in °C (`temperature` a number with `temperatureUnit`, or
/// a quantitative value).
fn period_celsius(period: &Value) -> Option<f64> {
    match period.get("temperature")? {
        Value::Number(n) => {
            let t = n.as_f64()?;
            match text(period, "temperatureUnit") {
                Some("F") => Some((t - 32.0) * 5.0 / 9.0),
                Some("C") => Some(t),
                _ => None,
            }
        }
        Value::Object(_) => quantity(period, "temperature"),
        _ => None,
    }
}

/// The reading (the latest observation, or the current hour's forecast when the station has
/// no temperature) and the products.
fn read(forecast: &Value, latest: Option<&Value>, alerts: Option<&Value>) -> Result<(Observation, Products), ProviderError> {
    let invalid = |message: &str| ProviderError::InvalidResponse { message: message.to_owned() };
    let periods = forecast.get("properties").map(|p| list(p, "periods")).unwrap_or_default();
    let first = periods.first().ok_or_else(|| invalid("the hourly forecast has no periods"))?;
    let observed = latest.and_then(|l| l.get("properties"));
    let (celsius, condition) = match observed.and_then(|o| quantity(o, "temperature").map(|c| (o, c))) {
        // A station that reports no sky (its `icon` is `null`) leaves the condition to the
        // current hour's forecast rather than "Unknown".
        Some((o, celsius)) => (celsius, text(o, "icon").or_else(|| text(first, "icon")).map(condition_of_icon)),
        None => (
            period_celsius(first).ok_or_else(|| invalid("no temperature observed or forecast"))?,
            text(first, "icon").map(condition_of_icon),
        ),
    };
    let observation = observation(celsius, condition)?;
    let offset = text(first, "startTime").and_then(parse_rfc3339).map_or(0, |(_, offset)| offset);
    let hours: Vec<(i64, Hour)> = periods.iter().filter_map(hour).collect();
    let products = Products {
        utc_offset_s: offset,
        details: Some(details(observed, first)),
        hourly: hours.iter().map(|(_, h)| h.clone()).take(MAX_HOURS).collect(),
        daily: daily(&hours),
        alerts: alerts.map(|a| list(a, "features").iter().filter_map(alert).take(MAX_ALERTS).collect()).unwrap_or_default(),
        next_hour: None,
    };
    Ok((observation, products))
}

fn details<'a>(observed: Option<&'a Value>, first: &'a Value) -> Details {
    let o = observed.unwrap_or(&Value::Null);
    let q = |key| quantity(o, key);
    let given = |v: &'a Value, key| text(v, key).filter(|t| !t.trim().is_empty());
    let description = given(o, "textDescription").or_else(|| given(first, "shortForecast")).unwrap_or("");
    Details {
        feels_like_c: Kind::Celsius.of(q("heatIndex").or_else(|| q("windChill"))),
        humidity: Kind::Percent.of(q("relativeHumidity")),
        pressure_hpa: Kind::Hectopascals.of(q("seaLevelPressure").or_else(|| q("barometricPressure"))),
        wind_speed_ms: Kind::MetresPerSecond.of(q("windSpeed")),
        wind_gust_ms: Kind::MetresPerSecond.of(q("windGust")),
        wind_deg: Kind::Degrees.of(q("windDirection")),
        clouds_pct: Maybe::NONE,
        visibility_m: Kind::Metres.of(q("visibility")),
        uv_index: Maybe::NONE,
        precip_mm_per_h: Kind::Millimetres.of(q("precipitationLastHour")),
        description: tidy(description, MAX_DESCRIPTION_CHARS).into(),
    }
}

/// An hourly period, with its local offset.
fn hour(period: &Value) -> Option<(i64, Hour)> {
    let (start, offset) = parse_rfc3339(text(period, "startTime")?)?;
    let hour = Hour {
        time_s: u32::try_from(start).ok()? / 3_600 * 3_600,
        temp_c: Kind::Celsius.of(period_celsius(period)).get()? as f32,
        sky: Sky::of(text(period, "icon").map_or("Unknown", condition_of_icon)),
        precip_probability: Kind::Probability.of(quantity(period, "probabilityOfPrecipitation").map(|p| p / 100.0)),
        precip_mm: Maybe::NONE,
        wind_speed_ms: Kind::MetresPerSecond.of(text(period, "windSpeed").and_then(wind_speed)),
        wind_gust_ms: Kind::MetresPerSecond.of(text(period, "windGust").and_then(wind_speed)),
    };
    Some((i64::from(offset), hour))
}

/// Days from the hourly periods (about 6.5 days of them): extremes, the condition at local
/// noon (or the first hour), the highest probability. NWS's hourly forecast has no amounts,
/// sunrise or sunset: those are `null`.
fn daily(hours: &[(i64, Hour)]) -> Box<[Day]> {
    let mut days: Vec<Day> = Vec::new();
    for (offset, h) in hours {
        let date = local_day(h.time_s as i64 * 1_000, *offset as i32) as i32;
        let local_hour = (h.time_s as i64 + offset).rem_euclid(86_400) / 3_600;
        if days.last().is_none_or(|d| d.date != date) {
            if days.len() == MAX_DAYS {
                break;
            }
            days.push(Day {
                date,
                min_c: h.temp_c,
                max_c: h.temp_c,
                sky: h.sky,
                precip_probability: h.precip_probability,
                precip_mm: Maybe::NONE,
                sunrise_s: 0,
                sunset_s: 0,
            });
        }
        let day = days.last_mut().expect("just pushed");
        day.min_c = day.min_c.min(h.temp_c);
        day.max_c = day.max_c.max(h.temp_c);
        if local_hour == 12 {
            day.sky = h.sky;
        }
        let best = [day.precip_probability.get(), h.precip_probability.get()].into_iter().flatten().reduce(f64::max);
        day.precip_probability = Maybe::new(best);
    }
    days.into()
}

fn alert(feature: &Value) -> Option<Alert> {
    let p = feature.get("properties")?;
    let title = |key| tidy(text(p, key).unwrap_or(""), MAX_ALERT_TITLE_CHARS).into_boxed_str();
    let event = title("event");
    let instant = |keys: [&str; 2]| keys.iter().find_map(|k| text(p, k).and_then(parse_rfc3339)).map_or(0, |(s, _)| s);
    (!event.is_empty()).then(|| Alert {
        event,
        sender: title("senderName"),
        start_s: instant(["onset", "effective"]),
        end_s: instant(["ends", "expires"]),
        description: tidy_lines(text(p, "description").unwrap_or(""), MAX_ALERT_DESCRIPTION_CHARS).into(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::testing::bodies::nws as bodies;
    use crate::testing::nws::NwsFake;
    use crate::testing::upstream::{json, Upstream};

    const T0: u64 = 1_795_341_600; // 2026-11-22T10:00:00Z

    async fn fake(points_status: u16, max_age: &'static str) -> NwsFake {
        NwsFake::start(T0, points_status, max_age).await
    }

    fn nws(upstream: &Upstream) -> Nws {
        Nws::new(NwsConfig {
            user_agent: "weather-cache-tests/1 ops@example.test".into(),
            base_url: upstream.url(),
            request_timeout: Duration::from_millis(500),
            max_response_bytes: 1 << 20,
        })
        .unwrap()
    }

    fn paths(upstream: &Upstream) -> Vec<String> {
        upstream.queries().into_iter().map(|q| q.target).collect()
    }

    #[tokio::test]
    async fn points_then_forecast_observation_and_alerts_each_a_call() {
        let f = fake(200, "public, max-age=3600").await;
        let provider = nws(&f.upstream);
        let at = LatLon::new(39.952_58, -75.165_22);
        let answer = provider.fetch(at, None).await.unwrap();
        assert_eq!(answer.extra_calls, 4, "points, stations, hourly, latest, alerts");
        assert_eq!(
            paths(&f.upstream),
            [
                "/points/39.9526,-75.1652",
                "/gridpoints/PHI/50,75/stations",
                "/gridpoints/PHI/50,75/forecast/hourly",
                "/stations/KPHL/observations/latest",
                "/alerts/active?point=39.9526%2C-75.1652"
            ]
        );
        let query = &f.upstream.queries()[0];
        assert_eq!(query.header("user-agent"), Some("weather-cache-tests/1 ops@example.test"));
        assert_eq!(query.header("accept"), Some("application/geo+json"));
        assert_eq!(answer.observation, Some(Observation { condition: "Rain".into(), celsius: 8.3 }));
        let p = answer.products.unwrap();
        assert_eq!(p.utc_offset_s, -5 * 3_600);
        let d = p.details.as_ref().unwrap();
        assert_eq!((d.feels_like_c.get(), d.wind_gust_ms.get(), d.precip_mm_per_h.get()), (Some(3.1f32 as f64), None, None));
        assert_eq!((d.wind_speed_ms.get(), d.pressure_hpa.get()), (Some(5.1f32 as f64), Some(1013.5)));
        assert_eq!(&*d.description, "Light Rain");
        assert_eq!(p.hourly.len(), 48);
        let h = &p.hourly[0];
        assert_eq!((h.time_s, h.temp_c, h.sky.as_str()), (T0 as u32, ((46.0 - 32.0) * 5.0 / 9.0) as f32, "Rain"));
        assert_eq!((h.precip_probability.get(), p.hourly[1].precip_probability.get()), (Some(0.0), None));
        assert_eq!(p.hourly[1].sky.as_str(), "Clouds");
        assert_eq!(h.wind_speed_ms.get(), Some((5.0 * 0.44704f64) as f32 as f64));
        assert_eq!(crate::cache::iso_date(p.daily[0].date as i64), "2026-11-22", "05:00 local");
        assert_eq!(p.daily.len(), 7);
        assert_eq!((p.daily[0].sunrise_s, p.daily[0].precip_mm.get()), (0, None), "not in the hourly forecast");
        assert_eq!(p.alerts.len(), 1);
        assert_eq!((&*p.alerts[0].event, &*p.alerts[0].sender), ("Wind Advisory", "NWS Mount Holly NJ"));
        assert_eq!((p.alerts[0].start_s, p.alerts[0].end_s), (T0 as i64 + 3_600, T0 as i64 + 12 * 3_600));
        assert!(p.next_hour.is_none());

        // The point is kept (max-age=3600): three calls the next time.
        let again = provider.fetch(at, None).await.unwrap();
        assert_eq!((again.extra_calls, f.upstream.hits()), (2, 8));
    }

    #[tokio::test]
    async fn a_station_without_temperature_gives_the_current_hour_of_the_forecast() {
        let f = fake(200, "max-age=0").await;
        f.observed.store(false, Ordering::SeqCst);
        let provider = nws(&f.upstream);
        let answer = provider.fetch(LatLon::new(39.95, -75.16), None).await.unwrap();
        let observation = answer.observation.unwrap();
        assert_eq!(observation.condition, "Rain");
        assert!((observation.celsius - (46.0 - 32.0) * 5.0 / 9.0).abs() < 1e-9);
        // max-age=0: the point is asked again.
        let again = provider.fetch(LatLon::new(39.95, -75.16), None).await.unwrap();
        assert_eq!(again.extra_calls, 4);
    }

    #[tokio::test]
    async fn outside_coverage_is_not_a_failure() {
        let f = fake(404, "").await;
        let provider = nws(&f.upstream);
        assert_eq!(provider.fetch(LatLon::new(48.85, 2.35), None).await, Err(ProviderError::OutsideCoverage));
        assert_eq!(f.upstream.hits(), 1);
    }

    #[tokio::test]
    async fn links_are_followed_only_on_the_configured_origin() {
        let upstream = Upstream::start(|_| async {
            json(200, &bodies::points("http://169.254.169.254"))
        })
        .await;
        let provider = nws(&upstream);
        assert!(matches!(provider.fetch(LatLon::new(39.95, -75.16), None).await, Err(ProviderError::InvalidResponse { .. })));
        assert_eq!(upstream.hits(), 1, "nothing asked elsewhere");
    }

    #[test]
    fn icon_codes_map_to_conditions() {
        for (icon, condition) in [
            ("https://api.weather.gov/icons/land/day/skc?size=medium", "Clear"),
            ("https://api.weather.gov/icons/land/night/few", "Clear"),
            ("https://api.weather.gov/icons/land/day/ovc?size=small", "Clouds"),
            ("https://api.weather.gov/icons/land/day/bkn", "Clouds"),
            ("https://api.weather.gov/icons/land/day/rain,60?size=small", "Rain"),
            ("https://api.weather.gov/icons/land/night/rain_showers,40/tsra,60?size=small", "Rain"),
            ("https://api.weather.gov/icons/land/day/tsra_hi,20", "Thunderstorm"),
            ("https://api.weather.gov/icons/land/day/snow,80", "Snow"),
            ("https://api.weather.gov/icons/land/day/rain_snow", "Snow"),
            ("https://api.weather.gov/icons/land/day/fzra", "Rain"),
            ("https://api.weather.gov/icons/land/day/fog", "Fog"),
            ("https://api.weather.gov/icons/land/day/haze", "Haze"),
            ("https://api.weather.gov/icons/land/day/smoke", "Smoke"),
            ("https://api.weather.gov/icons/land/day/dust", "Dust"),
            ("https://api.weather.gov/icons/land/day/tornado", "Tornado"),
            ("https://api.weather.gov/icons/land/day/hurricane", "Squall"),
            ("https://api.weather.gov/icons/land/day/wind_sct", "Clouds"),
            ("https://api.weather.gov/icons/land/day/hot", "Clear"),
            ("https://api.weather.gov/icons/land/day/blizzard", "Snow"),
            ("https://api.weather.gov/icons/land/day/volcano", "Unknown"),
            ("", "Unknown"),
        ] {
            assert_eq!(condition_of_icon(icon), condition, "{icon}");
        }
    }

    #[test]
    fn winds_and_cache_control() {
        assert_eq!(wind_speed("10 mph"), Some(4.4704));
        assert_eq!(wind_speed("5 to 10 mph"), Some(4.4704));
        assert_eq!(wind_speed("18 km/h"), Some(5.0));
        assert_eq!(wind_speed("calm"), None);
        assert_eq!(max_age("public, max-age=86400, s-maxage=3600"), Some(Duration::from_secs(86_400)));
        assert_eq!(max_age("no-cache"), None);
    }
}
