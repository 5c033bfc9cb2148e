//! `serve`'s flags: one table (name, type, range, environment variable) from which clap's parser
//! is built and each value checked, the same for the npm CLI and the binary.

use std::collections::BTreeMap;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

/// What a flag's value must be.
#[derive(Clone, Copy)]
pub enum Kind {
    Text,
    /// One of these words.
    Choice(&'static [&'static str]),
    Int { min: u64, max: u64 },
    Number,
    /// No value.
    Switch,
    /// Comma-separated, repeatable: all of them.
    List,
}

pub struct Flag {
    pub name: &'static str,
    pub kind: Kind,
    /// Read when the flag is not given (`WEATHER_CACHE_*`, or the names the CLI always read).
    pub env: Option<&'static str>,
}

const fn flag(name: &'static str, kind: Kind, env: Option<&'static str>) -> Flag {
    Flag { name, kind, env }
}

const MINUTE_CAP: u64 = 1_000_000;
const HOUR_MS: u64 = 3_600_000;
/// The engine's own bound for durations (a year); past it `resolve` would refuse anyway.
const YEAR_MS: u64 = 31_536_000_000;
pub const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/// Every flag of `serve`. `--api-key` and `--token` have no `WEATHER_CACHE_*` twin of their own:
/// `OPEN_WEATHER_API_KEY` and `WEATHER_CACHE_TOKEN` are theirs.
pub const FLAGS: &[Flag] = &[
    flag("config", Kind::Text, Some("WEATHER_CACHE_CONFIG")),
    flag("port", Kind::Int { min: 0, max: 65_535 }, Some("WEATHER_CACHE_PORT")),
    flag("host", Kind::Text, Some("WEATHER_CACHE_HOST")),
    flag("allowed-host", Kind::List, Some("WEATHER_CACHE_ALLOWED_HOST")),
    flag("tls-cert", Kind::Text, Some("WEATHER_CACHE_TLS_CERT")),
    flag("tls-key", Kind::Text, Some("WEATHER_CACHE_TLS_KEY")),
    flag("upstream", Kind::Text, Some("OPEN_WEATHER_BASE_URL")),
    flag("api-key", Kind::Text, Some("OPEN_WEATHER_API_KEY")),
    flag("api-key-file", Kind::Text, Some("WEATHER_CACHE_API_KEY_FILE")),
    flag("token", Kind::Text, Some("WEATHER_CACHE_TOKEN")),
    flag("token-file", Kind::Text, Some("WEATHER_CACHE_TOKEN_FILE")),
    flag("tokens-file", Kind::Text, Some("WEATHER_CACHE_TOKENS_FILE")),
    flag("metrics-public", Kind::Switch, Some("WEATHER_CACHE_METRICS_PUBLIC")),
    flag("client-rate-limit", Kind::Int { min: 1, max: MINUTE_CAP }, Some("WEATHER_CACHE_CLIENT_RATE_LIMIT")),
    flag("client-upstream-limit", Kind::Int { min: 1, max: MINUTE_CAP }, Some("WEATHER_CACHE_CLIENT_UPSTREAM_LIMIT")),
    flag("trust-proxy", Kind::List, Some("WEATHER_CACHE_TRUST_PROXY")),
    flag("max-connections", Kind::Int { min: 1, max: MINUTE_CAP }, Some("WEATHER_CACHE_MAX_CONNECTIONS")),
    flag("max-connections-per-ip", Kind::Int { min: 1, max: MINUTE_CAP }, Some("WEATHER_CACHE_MAX_CONNECTIONS_PER_IP")),
    flag("threads", Kind::Int { min: 1, max: 256 }, Some("WEATHER_CACHE_THREADS")),
    flag("access-log", Kind::Text, Some("WEATHER_CACHE_ACCESS_LOG")),
    flag("log-level", Kind::Choice(LEVELS), Some("WEATHER_CACHE_LOG_LEVEL")),
    flag("header-timeout", Kind::Int { min: 1, max: HOUR_MS }, Some("WEATHER_CACHE_HEADER_TIMEOUT")),
    flag("idle-timeout", Kind::Int { min: 1, max: HOUR_MS }, Some("WEATHER_CACHE_IDLE_TIMEOUT")),
    flag("request-timeout", Kind::Int { min: 1, max: HOUR_MS }, Some("WEATHER_CACHE_REQUEST_TIMEOUT")),
    flag("drain-delay", Kind::Int { min: 0, max: HOUR_MS }, Some("WEATHER_CACHE_DRAIN_DELAY")),
    flag("preset", Kind::Choice(&["resilient", "minimal"]), Some("WEATHER_CACHE_PRESET")),
    flag("grid-deg", Kind::Number, Some("WEATHER_CACHE_GRID_DEG")),
    flag("proximity-km", Kind::Number, Some("WEATHER_CACHE_PROXIMITY_KM")),
    flag("fresh-ttl", Kind::Int { min: 0, max: YEAR_MS }, Some("WEATHER_CACHE_FRESH_TTL")),
    flag("initial-backoff", Kind::Int { min: 0, max: YEAR_MS }, Some("WEATHER_CACHE_INITIAL_BACKOFF")),
    flag("max-backoff", Kind::Int { min: 0, max: YEAR_MS }, Some("WEATHER_CACHE_MAX_BACKOFF")),
    flag("error-cooldown", Kind::Int { min: 0, max: YEAR_MS }, Some("WEATHER_CACHE_ERROR_COOLDOWN")),
    flag("redis", Kind::Text, Some("WEATHER_CACHE_REDIS_URL")),
    flag("redis-key-prefix", Kind::Text, Some("WEATHER_CACHE_REDIS_KEY_PREFIX")),
    flag("when-redis-down", Kind::Choice(&["local", "closed"]), Some("WEATHER_CACHE_WHEN_REDIS_DOWN")),
    flag("budget-per-minute", Kind::Int { min: 1, max: u32::MAX as u64 }, Some("WEATHER_CACHE_BUDGET_PER_MINUTE")),
    flag("budget-per-day", Kind::Int { min: 1, max: u32::MAX as u64 }, Some("WEATHER_CACHE_BUDGET_PER_DAY")),
    flag("providers", Kind::Text, Some("WEATHER_CACHE_PROVIDERS")),
    flag("met-norway-user-agent", Kind::Text, Some("WEATHER_CACHE_MET_NORWAY_USER_AGENT")),
    flag("open-meteo-url", Kind::Text, Some("WEATHER_CACHE_OPEN_METEO_URL")),
    flag("met-norway-url", Kind::Text, Some("WEATHER_CACHE_MET_NORWAY_URL")),
    flag("nws-user-agent", Kind::Text, Some("WEATHER_CACHE_NWS_USER_AGENT")),
    flag("nws-url", Kind::Text, Some("WEATHER_CACHE_NWS_URL")),
    flag("snapshot", Kind::Text, Some("WEATHER_CACHE_SNAPSHOT")),
    flag("snapshot-interval", Kind::Int { min: 100, max: YEAR_MS }, Some("WEATHER_CACHE_SNAPSHOT_INTERVAL")),
];

/// A checked value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Int(u64),
    Number(f64),
    Switch,
    List(Vec<String>),
}

impl Value {
    pub fn text(&self) -> &str {
        match self {
            Value::Text(text) => text,
            _ => "",
        }
    }
}

/// Where a value came from: named in messages, and ordering the layers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Env(&'static str),
    Flag,
}

/// The values given on the command line or in the environment, by flag name.
#[derive(Default, Debug)]
pub struct Given {
    pub values: BTreeMap<&'static str, (Value, Source)>,
}

impl Given {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).map(|(value, _)| value)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(Value::text)
    }

    pub fn int(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Some(Value::Number(x)) => Some(*x),
            _ => None,
        }
    }

    pub fn list(&self, name: &str) -> Option<&[String]> {
        match self.get(name) {
            Some(Value::List(items)) => Some(items),
            _ => None,
        }
    }

    pub fn from_flag(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some((_, Source::Flag)))
    }

    /// How to name where `name` came from: `--port`, or `WEATHER_CACHE_PORT`.
    pub fn shown(&self, name: &str) -> String {
        match self.values.get(name) {
            Some((_, Source::Env(var))) => (*var).to_owned(),
            _ => format!("--{name}"),
        }
    }
}

/// What the command line asked for.
pub enum Parsed {
    Help,
    Version,
    Given(Given),
}

fn command() -> Command {
    let mut command = Command::new("serve")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::SetTrue))
        .arg(Arg::new("version").short('V').long("version").action(ArgAction::SetTrue));
    for flag in FLAGS {
        let arg = Arg::new(flag.name).long(flag.name);
        command = command.arg(match flag.kind {
            Kind::Switch => arg.action(ArgAction::SetTrue),
            // Every occurrence of a list flag counts; a later one of the others wins.
            Kind::List => arg.action(ArgAction::Append).num_args(1).allow_hyphen_values(true),
            _ => arg.action(ArgAction::Set).num_args(1).allow_hyphen_values(true),
        });
    }
    command
}

/// Parses `argv` (after `serve`), then fills what it left out from `env`.
pub fn parse(argv: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Parsed, String> {
    let matches = command()
        .try_get_matches_from(std::iter::once("serve".to_owned()).chain(argv.iter().cloned()))
        .map_err(|error| clap_message(&error))?;
    if matches.get_flag("help") {
        return Ok(Parsed::Help);
    }
    if matches.get_flag("version") {
        return Ok(Parsed::Version);
    }
    let mut given = Given::default();
    for flag in FLAGS {
        let shown = format!("--{}", flag.name);
        let value = match flag.kind {
            Kind::Switch => matches.get_flag(flag.name).then_some(Value::Switch),
            Kind::List => match matches.get_many::<String>(flag.name) {
                Some(raw) => Some(list(&shown, raw.map(String::as_str))?),
                None => None,
            },
            _ => matches.get_one::<String>(flag.name).map(|raw| check(&shown, flag.kind, raw)).transpose()?,
        };
        if let Some(value) = value {
            given.values.insert(flag.name, (value, Source::Flag));
            continue;
        }
        let Some(var) = flag.env else { continue };
        // An empty variable is unset (a token's emptiness is checked where tokens are read).
        let Some(raw) = env(var).filter(|raw| !raw.is_empty() || flag.name == "token") else { continue };
        let value = match flag.kind {
            Kind::Switch => match raw.as_str() {
                "1" | "true" | "yes" => Some(Value::Switch),
                "0" | "false" | "no" => None,
                _ => return Err(format!("{var} must be 1/true/yes or 0/false/no (got \"{raw}\")")),
            },
            Kind::List => Some(list(var, std::iter::once(raw.as_str()))?),
            kind => Some(check(var, kind, &raw)?),
        };
        if let Some(value) = value {
            given.values.insert(flag.name, (value, Source::Env(var)));
        }
    }
    Ok(Parsed::Given(given))
}

fn list<'a>(shown: &str, raw: impl Iterator<Item = &'a str>) -> Result<Value, String> {
    let mut items = Vec::new();
    for value in raw {
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(format!("{shown} has an empty item (got \"{value}\")"));
            }
            items.push(item.to_owned());
        }
    }
    Ok(Value::List(items))
}

/// A value against its kind, with the message the CLI always gave.
pub fn check(shown: &str, kind: Kind, raw: &str) -> Result<Value, String> {
    match kind {
        Kind::Text | Kind::List | Kind::Switch => Ok(Value::Text(raw.to_owned())),
        Kind::Choice(choices) => match choices.contains(&raw) {
            true => Ok(Value::Text(raw.to_owned())),
            false => Err(format!("{shown} must be one of {} (got \"{raw}\")", choices.join(", "))),
        },
        Kind::Number => number(raw)
            .map(Value::Number)
            .ok_or_else(|| format!("{shown} must be a number (got \"{raw}\")")),
        Kind::Int { min, max } => {
            let x = number(raw).ok_or_else(|| format!("{shown} must be a number (got \"{raw}\")"))?;
            if x.fract() != 0.0 {
                return Err(format!("{shown} must be an integer (got \"{raw}\")"));
            }
            if x < min as f64 {
                return Err(format!("{shown} must be >= {min} (got {raw})"));
            }
            if x > max as f64 {
                return Err(format!("{shown} must be <= {max} (got {raw})"));
            }
            Ok(Value::Int(x as u64))
        }
    }
}

/// A decimal number as people write it (`12`, `-0.5`, `1e3`): not `inf`, `NaN` or hex.
fn number(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let plain = raw.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
    let x: f64 = raw.parse().ok()?;
    (plain && raw.chars().any(|c| c.is_ascii_digit()) && x.is_finite()).then_some(x)
}

/// clap's error in the CLI's words: `unknown option: --prot (did you mean --port?)`.
fn clap_message(error: &clap::Error) -> String {
    let context = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let arg = context(ContextKind::InvalidArg).unwrap_or_default();
    let flag = arg.split([' ', '=']).next().unwrap_or_default().to_owned();
    match error.kind() {
        ErrorKind::UnknownArgument => {
            let unknown = if flag.starts_with('-') { format!("unknown option: {arg}") } else { format!("unexpected argument: {arg}") };
            match context(ContextKind::SuggestedArg) {
                Some(suggested) => format!("{unknown} (did you mean {suggested}?)"),
                None => unknown,
            }
        }
        ErrorKind::InvalidValue if context(ContextKind::InvalidValue).is_none_or(|v| v.is_empty()) => {
            format!("{flag} needs a value")
        }
        ErrorKind::TooManyValues | ErrorKind::NoEquals => format!("{flag} takes no value"),
        _ => {
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    fn parsed(args: &[&str]) -> Result<Given, String> {
        match parse(&argv(args), &|_| None)? {
            Parsed::Given(given) => Ok(given),
            _ => Err("help or version".into()),
        }
    }

    #[test]
    fn values_are_typed_and_checked_with_the_flag_named() {
        let given = parsed(&["--port=0", "--grid-deg", "0.1", "--allowed-host", "a, b", "--allowed-host=c", "--metrics-public"]).unwrap();
        assert_eq!(given.int("port"), Some(0));
        assert_eq!(given.number("grid-deg"), Some(0.1));
        assert_eq!(given.list("allowed-host").unwrap(), ["a", "b", "c"]);
        assert_eq!(given.get("metrics-public"), Some(&Value::Switch));
        for (args, message) in [
            (&["--port", "abc"][..], "--port must be a number (got \"abc\")"),
            (&["--port", "1.5"], "--port must be an integer (got \"1.5\")"),
            (&["--port", "70000"], "--port must be <= 65535 (got 70000)"),
            (&["--threads", "0"], "--threads must be >= 1 (got 0)"),
            (&["--preset", "turbo"], "--preset must be one of resilient, minimal (got \"turbo\")"),
            (&["--prot", "8080"], "unknown option: --prot (did you mean --port?)"),
            (&["--nope"], "unknown option: --nope"),
            (&["--port"], "--port needs a value"),
            (&["--metrics-public=yes"], "--metrics-public takes no value"),
            (&["--grid-deg", "inf"], "--grid-deg must be a number (got \"inf\")"),
            (&["--allowed-host", "a,,b"], "--allowed-host has an empty item (got \"a,,b\")"),
        ] {
            assert_eq!(parsed(args).unwrap_err(), message, "{args:?}");
        }
    }

    #[test]
    fn the_environment_fills_what_flags_leave_out_and_is_named_in_errors() {
        let env = |name: &str| match name {
            "WEATHER_CACHE_PORT" => Some("9000".to_owned()),
            "WEATHER_CACHE_THREADS" => Some("2".to_owned()),
            _ => None,
        };
        let Parsed::Given(given) = parse(&argv(&["--port", "8081"]), &env).unwrap() else { panic!() };
        assert_eq!((given.int("port"), given.int("threads")), (Some(8081), Some(2)));
        assert_eq!((given.shown("port"), given.shown("threads")), ("--port".to_owned(), "WEATHER_CACHE_THREADS".to_owned()));
        let bad = |name: &str| (name == "WEATHER_CACHE_PORT").then(|| "x".to_owned());
        assert_eq!(parse(&[], &bad).err().unwrap(), "WEATHER_CACHE_PORT must be a number (got \"x\")");
    }

    #[test]
    fn a_value_may_start_with_a_dash_and_help_wins() {
        assert_eq!(parsed(&["--token", "-x-"]).unwrap().text("token"), Some("-x-"));
        assert!(matches!(parse(&argv(&["--port", "1", "--help"]), &|_| None), Ok(Parsed::Help)));
        assert!(matches!(parse(&argv(&["--version"]), &|_| None), Ok(Parsed::Version)));
    }
}
