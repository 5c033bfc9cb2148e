//! `GET /v1/weather?lat=..&lon=..[&user=..][&units=metric|imperial][&include=hourly,daily,..]`:
//! the query, read without
//! trusting it. Values are percent-decoded (`+` is a space) and must be UTF-8; numbers follow a
//! plain decimal grammar (no `inf`, `NaN`, hex or empty strings, which Rust's parser or a lax
//! one would accept). Every refusal says which parameter, with a Node-style code.

use weather_cache_core::cache::Wanted;

/// Longest accepted query string, in bytes (longer ones get 414).
pub const MAX_QUERY_BYTES: usize = 2048;
/// Longest accepted user id, in UTF-8 bytes (as for the JS API).
pub const MAX_USER_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    Metric,
    Imperial,
}

impl Units {
    pub fn as_str(self) -> &'static str {
        match self {
            Units::Metric => "metric",
            Units::Imperial => "imperial",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WeatherQuery {
    pub lat: f64,
    pub lon: f64,
    pub user: String,
    pub units: Units,
    /// The forecast products asked for (`include=details,hourly,daily,alerts,nextHour`).
    pub include: Wanted,
}

/// Why a query was refused: `code` and `message` go into `{ error: { code, message } }`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryError {
    pub code: &'static str,
    pub message: String,
}

fn error(code: &'static str, message: String) -> QueryError {
    QueryError { code, message }
}

pub fn parse(query: &str) -> Result<WeatherQuery, QueryError> {
    let (mut lat, mut lon, mut user, mut units, mut include) = (None, None, None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match decode(name).as_deref() {
            Some("lat") => &mut lat,
            Some("lon") => &mut lon,
            Some("user") => &mut user,
            Some("units") => &mut units,
            Some("include") => &mut include,
            _ => continue,
        };
        // The first occurrence counts, as with URLSearchParams.get.
        if slot.is_none() {
            *slot = Some(decode(value).ok_or_else(|| {
                let name = decode(name).unwrap_or_default();
                error("ERR_INVALID_ARG_VALUE", format!("The \"{name}\" query parameter is not valid UTF-8 once decoded"))
            })?);
        }
    }
    let lat = coordinate("lat", lat, 90.0)?;
    let lon = coordinate("lon", lon, 180.0)?;
    let units = match units.as_deref() {
        None | Some("metric") => Units::Metric,
        Some("imperial") => Units::Imperial,
        Some(other) => {
            return Err(error(
                "ERR_INVALID_ARG_VALUE",
                format!("The \"units\" query parameter must be 'metric' or 'imperial'. Received '{}'", shown(other)),
            ))
        }
    };
    let user = user.unwrap_or_else(|| "anonymous".to_owned());
    if user.is_empty() || user.len() > MAX_USER_BYTES {
        return Err(error(
            "ERR_INVALID_ARG_VALUE",
            format!("The \"user\" query parameter must be a non-empty string of at most {MAX_USER_BYTES} bytes"),
        ));
    }
    let mut wanted = Wanted::NONE;
    for name in include.as_deref().unwrap_or("").split(',').filter(|n| !n.is_empty()) {
        let Some(product) = Wanted::named(name) else {
            return Err(error(
                "ERR_INVALID_ARG_VALUE",
                format!("The \"include\" query parameter must list only {}. Received '{}'", Wanted::listed(), shown(name)),
            ));
        };
        wanted = wanted.with(product);
    }
    Ok(WeatherQuery { lat, lon, user, units, include: wanted })
}

fn coordinate(name: &str, raw: Option<String>, limit: f64) -> Result<f64, QueryError> {
    let Some(raw) = raw else {
        return Err(error("ERR_INVALID_ARG_TYPE", format!("The \"{name}\" query parameter is required")));
    };
    let value = number(&raw).ok_or_else(|| {
        error("ERR_INVALID_ARG_VALUE", format!("The \"{name}\" query parameter must be a number. Received '{}'", shown(&raw)))
    })?;
    if !(-limit..=limit).contains(&value) {
        return Err(error(
            "ERR_OUT_OF_RANGE",
            format!("The value of \"{name}\" is out of range. It must be >= -{limit} && <= {limit}. Received {value}"),
        ));
    }
    Ok(value)
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`, surrounding spaces and tabs
/// allowed (only those: `str::trim` would also pass an ideographic space or a no-break space).
fn number(raw: &str) -> Option<f64> {
    let text = raw.trim_matches([' ', '\t']);
    let bytes = text.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let whole = digits(&mut i);
    let fraction = if bytes.get(i) == Some(&b'.') {
        i += 1;
        digits(&mut i)
    } else {
        0
    };
    if whole == 0 && fraction == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Percent-decoding with `+` as a space; `None` when the result is not UTF-8.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex(bytes[i + 1]).is_some() && hex(bytes[i + 2]).is_some() => {
                out.push(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// At most 32 characters of what was received, for messages.
fn shown(raw: &str) -> String {
    raw.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parameters() {
        let q = parse("lat=48.8566&lon=2.3522&user=drone%2017&units=imperial").unwrap();
        assert_eq!(
            q,
            WeatherQuery { lat: 48.8566, lon: 2.3522, user: "drone 17".into(), units: Units::Imperial, include: Wanted::NONE }
        );
        let q = parse("lat=1&lon=2&include=hourly%2Calerts,hourly").unwrap();
        assert!(q.include.has("hourly") && q.include.has("alerts") && !q.include.has("daily"));
        let q = parse("lon=-180&lat=+90&pad=x&lat=1").unwrap();
        assert_eq!((q.lat, q.lon, q.user.as_str(), q.units), (90.0, -180.0, "anonymous", Units::Metric));
        assert_eq!(parse("lat=1e1&lon=.5").unwrap().lat, 10.0);
        assert_eq!(parse("lat=%20%201.5%20&lon=2").unwrap().lat, 1.5, "spaces around a number");
        assert_eq!(parse("user=a+b&lat=1&lon=1").unwrap().user, "a b");
    }

    #[test]
    fn refuses_with_codes() {
        let code = |q: &str| parse(q).unwrap_err().code;
        assert_eq!(code("lon=2"), "ERR_INVALID_ARG_TYPE");
        for bad in ["lat=abc&lon=2", "lat=&lon=2", "lat=inf&lon=2", "lat=NaN&lon=2", "lat=0x10&lon=2", "lat=1e&lon=2", "lat=.&lon=1"] {
            assert_eq!(code(bad), "ERR_INVALID_ARG_VALUE", "{bad}");
        }
        assert_eq!(code("lat=91&lon=2"), "ERR_OUT_OF_RANGE");
        assert_eq!(code("lat=1&lon=180.0001"), "ERR_OUT_OF_RANGE");
        assert_eq!(code("lat=1e400&lon=2"), "ERR_INVALID_ARG_VALUE", "not finite");
        assert_eq!(code("lat=1&lon=2&units=kelvin"), "ERR_INVALID_ARG_VALUE");
        assert_eq!(code("lat=1&lon=2&user="), "ERR_INVALID_ARG_VALUE");
        assert_eq!(code("lat=1&lon=2&include=hourly,weekly"), "ERR_INVALID_ARG_VALUE");
        assert_eq!(code(&format!("lat=1&lon=2&user={}", "x".repeat(257))), "ERR_INVALID_ARG_VALUE");
        assert_eq!(code("lat=1&lon=2&user=%ff"), "ERR_INVALID_ARG_VALUE", "not UTF-8");
        assert!(parse("lat=1&lon=2&user=%").is_ok(), "a lone % stays literal");
        for unicode_space in ["lat=%E3%80%801&lon=2", "lat=%C2%A01&lon=2", "lat=1%E2%80%83&lon=2", "lat=%0B1&lon=2", "lat=1%0A&lon=2"] {
            assert_eq!(code(unicode_space), "ERR_INVALID_ARG_VALUE", "{unicode_space}");
        }
    }
}
