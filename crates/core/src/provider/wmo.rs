//! WMO weather interpretation codes (Open-Meteo's `weather_code`) as OpenWeather-style
//! conditions, for the summary and the products alike.

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
}
