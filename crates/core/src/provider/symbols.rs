//! MET Norway's weather symbols (`symbol_code`) as OpenWeather-style conditions, for the
//! summary and the products alike.

/// A MET Norway weather symbol as an OpenWeather-style condition.
pub fn condition_of_symbol(symbol: &str) -> &'static str {
    let base = ["_day", "_night", "_polartwilight"]
        .iter()
        .find_map(|suffix| symbol.strip_suffix(suffix))
        .unwrap_or(symbol);
    match base {
        "clearsky" | "fair" => "Clear",
        "partlycloudy" | "cloudy" => "Clouds",
        "fog" => "Fog",
        // Thunder first ("rainshowersandthunder"), then snow and sleet ("sleetshowers").
        _ if base.contains("thunder") => "Thunderstorm",
        _ if base.contains("sleet") || base.contains("snow") => "Snow",
        _ if base.contains("rain") || base.contains("showers") => "Rain",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_map_to_conditions() {
        for (symbol, condition) in [
            ("clearsky_day", "Clear"),
            ("clearsky_polartwilight", "Clear"),
            ("fair_night", "Clear"),
            ("partlycloudy_day", "Clouds"),
            ("cloudy", "Clouds"),
            ("fog", "Fog"),
            ("lightrain", "Rain"),
            ("heavyrainshowers_day", "Rain"),
            ("rainshowers_night", "Rain"),
            ("sleet", "Snow"),
            ("lightsleetshowers_day", "Snow"),
            ("heavysnow", "Snow"),
            ("rainandthunder", "Thunderstorm"),
            ("heavysnowshowersandthunder_night", "Thunderstorm"),
            ("", "Unknown"),
            ("something_new", "Unknown"),
        ] {
            assert_eq!(condition_of_symbol(symbol), condition, "{symbol}");
        }
    }
}
