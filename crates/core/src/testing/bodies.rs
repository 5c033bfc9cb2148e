//! Realistic forecast bodies for the loopback upstream, shaped as the providers document them
//! (One Call 3.0's API page, Open-Meteo's `/v1/forecast` docs, MET Norway's `compact` schema),
//! with optional fields left out here and there as real answers do.

/// A One Call 3.0 answer at `t0` (epoch s, on the hour) for a place 2 h east of UTC
/// `timezone_offset` 7200. 48 hours, 8 days, 61 minutes (rain from minute 40), one alert.
/// Hour 1 has no `wind_gust`, `rain`; day 2 no `rain`; `current` no `wind_gust`.
pub fn one_call(t0: u64, celsius: f64) -> String {
    let hours: Vec<String> = (0..48)
        .map(|i| {
            let dt = t0 + i * 3_600;
            let extra = if i == 1 { String::new() } else { r#","wind_gust":9.1,"rain":{"1h":0.4}"#.to_owned() };
            format!(
                r#"{{"dt":{dt},"temp":{},"feels_like":1.2,"pressure":1012,"humidity":81,"dew_point":0.3,"uvi":0,"clouds":90,"visibility":10000,"wind_speed":4.5,"wind_deg":230{extra},"weather":[{{"id":500,"main":"Rain","description":"light rain","icon":"10n"}}],"pop":0.65}}"#,
                celsius + i as f64 * 0.1
            )
        })
        .collect();
    let days: Vec<String> = (0..8)
        .map(|i| {
            let dt = t0 + i * 86_400;
            let rain = if i == 2 { String::new() } else { r#","rain":2.5"#.to_owned() };
            format!(
                r#"{{"dt":{dt},"sunrise":{},"sunset":{},"moonrise":0,"moonset":0,"moon_phase":0.5,"summary":"Rain","temp":{{"day":5,"min":{},"max":{},"night":2,"eve":4,"morn":1}},"feels_like":{{"day":3,"night":0,"eve":2,"morn":-1}},"pressure":1010,"humidity":80,"dew_point":1,"wind_speed":5,"wind_deg":220,"wind_gust":11,"weather":[{{"id":501,"main":"Rain","description":"moderate rain","icon":"10d"}}],"clouds":100,"pop":0.9{rain},"uvi":1.1}}"#,
                dt - 4 * 3_600,
                dt + 5 * 3_600,
                celsius - 3.0,
                celsius + 4.0
            )
        })
        .collect();
    let minutes: Vec<String> = (0..61)
        .map(|i| format!(r#"{{"dt":{},"precipitation":{}}}"#, t0 + i * 60, if i >= 40 { 1.8 } else { 0.0 }))
        .collect();
    format!(
        r#"{{"lat":48.86,"lon":2.35,"timezone":"Europe/Paris","timezone_offset":7200,"current":{{"dt":{t0},"sunrise":{},"sunset":{},"temp":{celsius},"feels_like":1.9,"pressure":1013,"humidity":87,"dew_point":2.1,"uvi":0.2,"clouds":75,"visibility":8000,"wind_speed":5.7,"wind_deg":240,"rain":{{"1h":0.6}},"weather":[{{"id":500,"main":"Rain","description":"light rain","icon":"10d"}}]}},"minutely":[{}],"hourly":[{}],"daily":[{}],"alerts":[{{"sender_name":"METEO-FRANCE","event":"Moderate wind warning","start":{},"end":{},"description":"Strong gusts expected.\nSecure loose objects.","tags":["Wind"]}}]}}"#,
        t0 - 20_000,
        t0 + 10_000,
        minutes.join(","),
        hours.join(","),
        days.join(","),
        t0 + 3_600,
        t0 + 12 * 3_600
    )
}

/// An Open-Meteo `/v1/forecast` answer with `timezone=auto&timeformat=unixtime`, made at
/// `t0` + 15 min (epoch s, `t0` on the hour) at +01:00: hourly from the local midnight (so the
/// hours before `t0` are past), 8 days, quarter hours with rain from `t0` + 45 min. The
/// hourly `wind_gusts_10m` is `null` at `t0` (a model without gusts there).
pub fn open_meteo(t0: u64, celsius: f64) -> String {
    let midnight = (t0 + 3_600) / 86_400 * 86_400 - 3_600;
    let hours = (t0 - midnight) / 3_600 + 49;
    let series = |f: &dyn Fn(u64) -> String| (0..hours).map(|i| f(i)).collect::<Vec<_>>().join(",");
    let at = |i: u64| midnight + i * 3_600;
    let quarters: Vec<u64> = (0..6).map(|i| t0 + i * 900).collect();
    let days: Vec<u64> = (0..8).map(|i| midnight + i * 86_400).collect();
    let list = |v: &[String]| v.join(",");
    format!(
        r#"{{"latitude":52.52,"longitude":13.42,"generationtime_ms":0.3,"utc_offset_seconds":3600,"timezone":"Europe/Berlin","timezone_abbreviation":"GMT+1","elevation":38,
"current_units":{{"time":"unixtime","interval":"seconds","temperature_2m":"°C"}},
"current":{{"time":{},"interval":900,"temperature_2m":{celsius},"weather_code":61,"apparent_temperature":-1.5,"relative_humidity_2m":90,"pressure_msl":1008.2,"wind_speed_10m":6.1,"wind_gusts_10m":12.4,"wind_direction_10m":250,"cloud_cover":100,"precipitation":0.3}},
"hourly_units":{{"time":"unixtime","temperature_2m":"°C","precipitation_probability":"%"}},
"hourly":{{"time":[{}],"temperature_2m":[{}],"precipitation_probability":[{}],"precipitation":[{}],"weather_code":[{}],"wind_speed_10m":[{}],"wind_gusts_10m":[{}]}},
"minutely_15":{{"time":[{}],"precipitation":[0.0,0.0,0.0,0.5,0.5,0.5]}},
"daily":{{"time":[{}],"weather_code":[{}],"temperature_2m_max":[{}],"temperature_2m_min":[{}],"precipitation_sum":[{}],"precipitation_probability_max":[{}],"sunrise":[{}],"sunset":[{}]}}}}"#,
        t0 + 900,
        series(&|i| at(i).to_string()),
        series(&|i| format!("{:.1}", celsius + (i % 5) as f64)),
        series(&|i| (i * 2 % 100).to_string()),
        series(&|i| format!("{:.1}", (i % 3) as f64 * 0.4)),
        series(&|i| if i % 2 == 0 { "61" } else { "3" }.to_owned()),
        series(&|_| "5.5".to_owned()),
        series(&|i| if at(i) == t0 { "null".to_owned() } else { "11.0".to_owned() }),
        list(&quarters.iter().map(u64::to_string).collect::<Vec<_>>()),
        list(&days.iter().map(u64::to_string).collect::<Vec<_>>()),
        list(&days.iter().map(|_| "63".to_owned()).collect::<Vec<_>>()),
        list(&days.iter().map(|_| format!("{:.1}", celsius + 3.0)).collect::<Vec<_>>()),
        list(&days.iter().map(|_| format!("{:.1}", celsius - 2.0)).collect::<Vec<_>>()),
        list(&days.iter().map(|_| "4.2".to_owned()).collect::<Vec<_>>()),
        list(&days.iter().enumerate().map(|(i, _)| if i == 1 { "null".to_owned() } else { "80".to_owned() }).collect::<Vec<_>>()),
        list(&days.iter().map(|d| (d + 7 * 3_600).to_string()).collect::<Vec<_>>()),
        list(&days.iter().map(|d| (d + 16 * 3_600).to_string()).collect::<Vec<_>>()),
    )
}

/// A MET Norway `compact` answer from `t0` (epoch s, on the hour) at 10.75 °E (solar offset
/// +01:00): 60 hourly steps, then 6-hourly steps for 4 days. The last hourly steps lack
/// `next_1_hours` as MET's do near the switch; step 2 has no `wind_speed`.
pub fn met_norway(t0: u64, celsius: f64) -> String {
    let mut steps = Vec::new();
    let iso = |s: u64| {
        let days = (s / 86_400) as i64;
        format!("{}T{:02}:00:00Z", crate::cache::iso_date(days), s % 86_400 / 3_600)
    };
    for i in 0..60u64 {
        let t = t0 + i * 3_600;
        let wind = if i == 2 { String::new() } else { r#","wind_speed":3.2"#.to_owned() };
        let next1 = if i < 58 {
            format!(r#","next_1_hours":{{"summary":{{"symbol_code":"lightrain_day"}},"details":{{"precipitation_amount":0.5}}}}"#)
        } else {
            String::new()
        };
        steps.push(format!(
            r#"{{"time":"{}","data":{{"instant":{{"details":{{"air_pressure_at_sea_level":1004.1,"air_temperature":{:.1},"cloud_area_fraction":96.1,"relative_humidity":88.2,"wind_from_direction":212.3{wind}}}}}{next1},"next_6_hours":{{"summary":{{"symbol_code":"cloudy"}},"details":{{"precipitation_amount":3.0}}}},"next_12_hours":{{"summary":{{"symbol_code":"cloudy"}},"details":{{}}}}}}}}"#,
            iso(t),
            celsius + (i % 24) as f64 * 0.5
        ));
    }
    let six = (t0 + 60 * 3_600).div_ceil(6 * 3_600) * 6 * 3_600;
    for i in 0..16u64 {
        steps.push(format!(
            r#"{{"time":"{}","data":{{"instant":{{"details":{{"air_temperature":{:.1},"wind_speed":5.0}}}},"next_6_hours":{{"summary":{{"symbol_code":"heavysnow"}},"details":{{"precipitation_amount":1.5}}}}}}}}"#,
            iso(six + i * 6 * 3_600),
            celsius - 5.0 + (i % 4) as f64
        ));
    }
    format!(
        r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[10.75,59.91,17]}},"properties":{{"meta":{{"updated_at":"{}","units":{{"air_temperature":"celsius","precipitation_amount":"mm"}}}},"timeseries":[{}]}}}}"#,
        iso(t0),
        steps.join(",")
    )
}

/// NWS (api.weather.gov) answers, shaped as its OpenAPI documents them, for a loopback fake at
/// `base` (`http://127.0.0.1:port`): see `nws_answer`.
pub mod nws {
    /// `/points/{lat},{lon}`: the grid's URLs (Philadelphia's office, PHI 50,75).
    pub fn points(base: &str) -> String {
        format!(
            r#"{{"@context":[],"id":"{base}/points/39.95,-75.16","type":"Feature","geometry":{{"type":"Point","coordinates":[-75.16,39.95]}},"properties":{{"@id":"{base}/points/39.95,-75.16","cwa":"PHI","forecastOffice":"{base}/offices/PHI","gridId":"PHI","gridX":50,"gridY":75,"forecast":"{base}/gridpoints/PHI/50,75/forecast","forecastHourly":"{base}/gridpoints/PHI/50,75/forecast/hourly","forecastGridData":"{base}/gridpoints/PHI/50,75","observationStations":"{base}/gridpoints/PHI/50,75/stations","timeZone":"America/New_York","radarStation":"KDIX"}}}}"#
        )
    }

    /// The station list, nearest first.
    pub fn stations(base: &str) -> String {
        format!(
            r#"{{"type":"FeatureCollection","features":[{{"id":"{base}/stations/KPHL","type":"Feature","properties":{{"stationIdentifier":"KPHL","name":"Philadelphia International Airport"}}}},{{"id":"{base}/stations/KPNE","type":"Feature","properties":{{"stationIdentifier":"KPNE","name":"Northeast Philadelphia Airport"}}}}]}}"#
        )
    }

    /// 156 hourly periods from `t0` (epoch s, on the hour) at -05:00, °F, winds as text; the
    /// second period has no `probabilityOfPrecipitation` value.
    pub fn hourly(t0: u64, fahrenheit: f64) -> String {
        let periods: Vec<String> = (0..156u64)
            .map(|i| {
                let start = t0 + i * 3_600;
                let local = start as i64 - 5 * 3_600;
                let iso = |s: i64| {
                    format!("{}T{:02}:00:00-05:00", crate::cache::iso_date(s.div_euclid(86_400)), s.rem_euclid(86_400) / 3_600)
                };
                let pop = if i == 1 { "null".to_owned() } else { format!("{}", (i * 7) % 100) };
                let icon = if i % 3 == 0 { "rain_showers,40/tsra,60" } else { "bkn" };
                format!(
                    r#"{{"number":{},"name":"","startTime":"{}","endTime":"{}","isDaytime":true,"temperature":{},"temperatureUnit":"F","temperatureTrend":"","probabilityOfPrecipitation":{{"unitCode":"wmoUnit:percent","value":{pop}}},"dewpoint":{{"unitCode":"wmoUnit:degC","value":2.2}},"relativeHumidity":{{"unitCode":"wmoUnit:percent","value":80}},"windSpeed":"{} mph","windDirection":"SW","icon":"https://api.weather.gov/icons/land/day/{icon}?size=small","shortForecast":"Chance Showers And Thunderstorms","detailedForecast":""}}"#,
                    i + 1,
                    iso(local),
                    iso(local + 3_600),
                    fahrenheit + (i % 24) as f64,
                    5 + i % 10
                )
            })
            .collect();
        format!(
            r#"{{"type":"Feature","properties":{{"units":"us","forecastGenerator":"HourlyForecastGenerator","generatedAt":"2026-11-22T10:00:00+00:00","periods":[{}]}}}}"#,
            periods.join(",")
        )
    }

    /// `observations/latest`: `celsius` may be `None` (a station's temperature is often null).
    pub fn latest(celsius: Option<f64>) -> String {
        let t = celsius.map_or("null".to_owned(), |c| c.to_string());
        format!(
            r#"{{"type":"Feature","properties":{{"station":"KPHL","timestamp":"2026-11-22T09:54:00+00:00","textDescription":"Light Rain","icon":"https://api.weather.gov/icons/land/day/rain?size=medium","temperature":{{"unitCode":"wmoUnit:degC","value":{t},"qualityControl":"V"}},"windDirection":{{"unitCode":"wmoUnit:degree_(angle)","value":230}},"windSpeed":{{"unitCode":"wmoUnit:km_h-1","value":18.36}},"windGust":{{"unitCode":"wmoUnit:km_h-1","value":null}},"barometricPressure":{{"unitCode":"wmoUnit:Pa","value":101320}},"seaLevelPressure":{{"unitCode":"wmoUnit:Pa","value":101350}},"visibility":{{"unitCode":"wmoUnit:m","value":16090}},"precipitationLastHour":{{"unitCode":"wmoUnit:mm","value":null}},"relativeHumidity":{{"unitCode":"wmoUnit:percent","value":89.5}},"windChill":{{"unitCode":"wmoUnit:degC","value":3.1}},"heatIndex":{{"unitCode":"wmoUnit:degC","value":null}}}}}}"#
        )
    }

    /// `/alerts/active?point=`: one Wind Advisory.
    pub fn alerts(t0: u64) -> String {
        let iso = |s: u64| format!("{}T{:02}:00:00+00:00", crate::cache::iso_date((s / 86_400) as i64), s % 86_400 / 3_600);
        format!(
            r#"{{"type":"FeatureCollection","features":[{{"id":"urn:oid:2.49.0.1.840.0.1","type":"Feature","properties":{{"event":"Wind Advisory","senderName":"NWS Mount Holly NJ","sent":"{}","effective":"{}","onset":"{}","expires":"{}","ends":"{}","severity":"Moderate","headline":"Wind Advisory issued","description":"* WHAT...Southwest winds 20 to 30 mph.\n\n* WHERE...Philadelphia."}}}}],"title":"Current watches, warnings, and advisories"}}"#,
            iso(t0),
            iso(t0),
            iso(t0 + 3_600),
            iso(t0 + 6 * 3_600),
            iso(t0 + 12 * 3_600)
        )
    }
}
