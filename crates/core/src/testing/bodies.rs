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
