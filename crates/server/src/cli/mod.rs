//! `serve`'s command line, for both ways in: the `weather-cache-server` binary and the npm CLI
//! (`npx weather-cache serve`, which hands its argv to this parser through the addon). One
//! parser, so flags, defaults, messages and exit codes cannot drift.
//!
//! Configuration comes from, highest first: flags, environment variables (`WEATHER_CACHE_*`,
//! and `OPEN_WEATHER_API_KEY` / `OPEN_WEATHER_BASE_URL`), the `--config` TOML file, defaults.
//! Everything ends in the same structs: the core's `ServiceOptions` and the proxy's config.

mod file;
pub mod flags;
mod help;

use std::path::Path;

use weather_cache_core::engine::{Level, Preset, WhenRedisDown};
use weather_cache_core::options::{BudgetOptions, ProviderSettings, SnapshotOption, SnapshotOptions};
use weather_cache_core::{OptionsError, ProviderOption, RedisOption, RedisOptions, Secret, ServiceOptions};

pub use file::{ConfigFile, ServerOptions};

use self::flags::{Given, Parsed, Source};
use crate::proxy::{is_loopback_bind, parse_allowed_host, AccessLogTarget, Cidr, ProxyConfig, Tokens};

/// Which way in: names in messages and in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// Prefix of messages (`weather-cache: unknown option ...`).
    pub name: &'static str,
    /// What the user typed (`weather-cache serve`).
    pub command: &'static str,
}

pub const NPM: Program = Program { name: "weather-cache", command: "weather-cache serve" };
pub const BINARY: Program = Program { name: "weather-cache-server", command: "weather-cache-server" };

/// The process ends here: help or the version (0), or a usage error (2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    /// A usage error: exit 2, the message and where to find help.
    pub fn usage(program: Program, message: &str) -> Exit {
        let stderr = format!("{}: {message}\nRun `{} --help` for usage.\n", program.name, program.command);
        Exit { code: 2, stdout: String::new(), stderr }
    }

    fn out(text: String) -> Exit {
        Exit { code: 0, stdout: text, stderr: String::new() }
    }
}

/// Everything `serve` runs with.
#[derive(Debug)]
pub struct ServeConfig {
    pub program: Program,
    pub service: ServiceOptions,
    pub proxy: ProxyConfig,
    /// Printed at start (as warn lines).
    pub warnings: Vec<String>,
    /// How each flag given was named (`--grid-deg`, or `WEATHER_CACHE_GRID_DEG`), and the
    /// `--config` file: what an error of the engine names.
    pub given_as: std::collections::BTreeMap<String, String>,
    pub config_path: Option<String>,
}

impl ServeConfig {
    /// A problem `ServiceOptions::resolve` found, as a usage error naming the flag.
    pub fn options_error(&self, error: &OptionsError) -> Exit {
        let flag = flag_of(&error.option);
        // Providers' settings go with `--providers`: given that way, the flags' names stand.
        let key = if error.option.starts_with("providers") { "--providers" } else { flag.as_str() };
        let name = match (self.given_as.get(key), &self.config_path) {
            (Some(shown), _) if !shown.starts_with("--") && key == flag => shown.clone(),
            (Some(_), _) => flag,
            // Not a flag nor a variable: the file's key (a flag nobody typed would mislead).
            (None, Some(path)) if flag.starts_with("--") => format!("--config {path}: [service] {}", error.option),
            (None, _) => flag,
        };
        Exit::usage(self.program, &format!("{name} {}", error.describe()))
    }
}

/// How a core option is named to a `serve` user: its flag, or `[service] name` of the file.
pub fn flag_of(option: &str) -> String {
    let flag = match option {
        "apiKey" => "--api-key-file",
        "baseUrl" => "--upstream",
        "preset" => "--preset",
        "gridDeg" => "--grid-deg",
        "proximityKm" => "--proximity-km",
        "freshTtlMs" => "--fresh-ttl",
        "initialBackoffMs" => "--initial-backoff",
        "maxBackoffMs" => "--max-backoff",
        "errorCooldownMs" => "--error-cooldown",
        "logLevel" => "--log-level",
        "redis" | "redis.url" => "--redis",
        "redis.keyPrefix" => "--redis-key-prefix",
        "budget.perMinute" => "--budget-per-minute",
        "budget.perDay" => "--budget-per-day",
        "snapshot" | "snapshot.path" => "--snapshot",
        "snapshot.intervalMs" => "--snapshot-interval",
        "budget.whenRedisDown" => "--when-redis-down",
        "providers" => "--providers",
        o if o.starts_with("providers[") && o.ends_with(".userAgent") => "--met-norway-user-agent / --nws-user-agent",
        o if o.starts_with("providers[") && o.ends_with(".baseUrl") => "--open-meteo-url / --met-norway-url / --nws-url",
        o if o.starts_with("providers[") => "--providers",
        other => return format!("[service] {other}"),
    };
    flag.to_owned()
}

/// `serve`'s argv (after the command) and environment, to what it runs with or an exit.
pub fn parse(program: Program, argv: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<ServeConfig, Exit> {
    let usage = |message: String| Exit::usage(program, &message);
    let given = match flags::parse(argv, env).map_err(usage)? {
        Parsed::Help => return Err(Exit::out(format!("{}\n", help::HELP.replace("{command}", program.command)))),
        Parsed::Version => return Err(Exit::out(format!("{} {}\n", program.name, env!("CARGO_PKG_VERSION")))),
        Parsed::Given(given) => given,
    };
    let file = match given.text("config") {
        Some(path) => file::read(path).map_err(usage)?,
        None => ConfigFile::default(),
    };
    let config_path = given.text("config").map(str::to_owned);
    let mut config = build(program, given, file).map_err(usage)?;
    config.config_path = config_path;
    // WEATHER_CACHE_<FLAG> set for a flag whose variable is named otherwise: said, not ignored.
    for flag in flags::FLAGS {
        let ruled = format!("WEATHER_CACHE_{}", flag.name.to_uppercase().replace('-', "_"));
        match flag.env {
            Some(var) if var != ruled && env(&ruled).is_some() => {
                config.warnings.push(format!("{ruled} is not read: --{} is {var}", flag.name));
            }
            _ => {}
        }
    }
    Ok(config)
}

fn build(program: Program, mut given: Given, file: ConfigFile) -> Result<ServeConfig, String> {
    let ConfigFile { mut service, mut server } = file;
    let mut warnings = Vec::new();
    // A secret given as a flag replaces its other sources in the environment (flags come
    // first): `--api-key` over WEATHER_CACHE_API_KEY_FILE, `--token` over
    // WEATHER_CACHE_TOKEN_FILE or WEATHER_CACHE_TOKENS_FILE, and the other way round.
    for group in [&["api-key", "api-key-file"][..], &["token", "token-file", "tokens-file"]] {
        if group.iter().any(|f| given.from_flag(f)) {
            given.values.retain(|name, (_, source)| !group.contains(name) || *source == Source::Flag);
        }
    }
    for (a, b) in [("api-key", "api-key-file"), ("token", "token-file")] {
        if given.from_flag(a) && given.from_flag(b) {
            return Err(format!("--{a} and --{b} exclude each other"));
        }
    }
    if given.from_flag("api-key") {
        warnings.push("--api-key puts the key in argv, where every local user can read it (ps): prefer --api-key-file or OPEN_WEATHER_API_KEY".to_owned());
    }
    if given.from_flag("token") {
        warnings.push("--token puts the token in argv, where every local user can read it (ps): prefer --token-file or WEATHER_CACHE_TOKEN".to_owned());
    }
    overlay_service(&given, &mut service)?;
    overlay_server(&given, &mut server);

    // The key: from the highest layer that has one (a file named there wins over a key below).
    let key_from_file = match (&server.api_key_file, given.values.get("api-key-file"), given.values.get("api-key")) {
        (Some(path), Some(_), _) => Some(path.clone()),
        (Some(_), None, Some(_)) => None,
        (Some(path), None, None) => Some(path.clone()),
        (None, _, _) => None,
    };
    if let Some(path) = &key_from_file {
        let shown = shown(&given, "api-key-file", "[server] apiKeyFile");
        service.api_key = Some(Secret(secret_file(&shown, path)?));
        permissions(&shown, path, &mut warnings);
    } else if let Some(key) = given.text("api-key") {
        service.api_key = Some(Secret(key.to_owned()));
    }
    let keyless = service.has_keyless_provider()
        || service.providers.iter().flatten().any(|p| matches!(p, ProviderOption::Configured(s) if s.api_key.is_some()));
    if service.api_key.as_ref().is_none_or(|key| key.expose().trim().is_empty()) && !keyless {
        return Err("no OpenWeather API key: set OPEN_WEATHER_API_KEY or pass --api-key-file <path> (or list a keyless provider: --providers open-meteo)".to_owned());
    }

    let host = server.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).map(str::to_owned).unwrap_or(host);
    let mut proxy = ProxyConfig::new(&host, server.port.unwrap_or(8080));
    proxy.tokens = tokens(&given, &server, &mut warnings)?;
    if matches!(proxy.tokens, Tokens::None) && !is_loopback_bind(&host) {
        warnings.push(format!("listening on {host} without a token: anyone who can reach the port spends the API key's budget (set --tokens-file, --token-file or WEATHER_CACHE_TOKEN)"));
    }
    proxy.tls = match (&server.tls_cert, &server.tls_key) {
        (Some(cert), Some(key)) => {
            permissions(&shown(&given, "tls-key", "[server] tlsKey"), key, &mut warnings);
            Some((cert.into(), key.into()))
        }
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".to_owned()),
    };
    if let Some(names) = &server.allowed_hosts {
        proxy.allowed_hosts = names
            .iter()
            .map(|name| parse_allowed_host(name).map_err(|reason| format!("{} {reason}", shown(&given, "allowed-host", "[server] allowedHosts"))))
            .collect::<Result<_, _>>()?;
    }
    if let Some(blocks) = &server.trust_proxy {
        proxy.trust_proxy = blocks
            .iter()
            .map(|block| Cidr::parse(block).map_err(|reason| format!("{} {reason}", shown(&given, "trust-proxy", "[server] trustProxy"))))
            .collect::<Result<_, _>>()?;
    }
    proxy.metrics_public = server.metrics_public.unwrap_or(false);
    // The file's numbers within their flags' ranges: `threads = 5000` or an endless
    // `drainDelayMs` must not pass where `--threads` / `--drain-delay` would be refused.
    let ranged = |name: &str, flag: &str, n: Option<u64>| -> Result<Option<u64>, String> {
        let Some(n) = n else { return Ok(None) };
        if let Some(flags::Flag { kind: flags::Kind::Int { min, max }, .. }) = flags::FLAGS.iter().find(|f| f.name == flag) {
            if n < *min {
                return Err(format!("[server] {name} must be >= {min} (got {n})"));
            }
            if n > *max {
                return Err(format!("[server] {name} must be <= {max} (got {n})"));
            }
        }
        Ok(Some(n))
    };
    if let Some(n) = ranged("clientRateLimit", "client-rate-limit", server.client_rate_limit.map(u64::from))? {
        proxy.limits.requests_per_second = n as u32;
    }
    if let Some(n) = ranged("clientUpstreamLimit", "client-upstream-limit", server.client_upstream_limit.map(u64::from))? {
        proxy.limits.upstream_per_minute = n as u32;
    }
    if let Some(n) = ranged("maxConnections", "max-connections", server.max_connections.map(u64::from))? {
        proxy.max_connections = n as usize;
    }
    if let Some(n) = ranged("maxConnectionsPerIp", "max-connections-per-ip", server.max_connections_per_ip.map(u64::from))? {
        proxy.max_connections_per_ip = n as usize;
    }
    if let Some(n) = ranged("threads", "threads", server.threads.map(u64::from))? {
        proxy.threads = n as usize;
    }
    for (name, flag, value, target) in [
        ("headerTimeoutMs", "header-timeout", server.header_timeout_ms, &mut proxy.header_timeout),
        ("idleTimeoutMs", "idle-timeout", server.idle_timeout_ms, &mut proxy.idle_timeout),
        ("requestTimeoutMs", "request-timeout", server.request_timeout_ms, &mut proxy.request_timeout),
        ("drainDelayMs", "drain-delay", server.drain_delay_ms, &mut proxy.drain_delay),
    ] {
        if let Some(ms) = ranged(name, flag, value)? {
            *target = std::time::Duration::from_millis(ms);
        }
    }
    proxy.access_log = server.access_log.as_deref().map(|path| match path {
        "-" => AccessLogTarget::Stdout,
        path => AccessLogTarget::File(path.into()),
    });
    let given_as = given.values.keys().map(|name| (format!("--{name}"), given.shown(name))).collect();
    Ok(ServeConfig { program, service, proxy, warnings, given_as, config_path: None })
}

/// How a setting is named in a message: its flag or variable when given so, else its file key.
fn shown(given: &Given, flag: &str, in_file: &str) -> String {
    if given.get(flag).is_some() {
        given.shown(flag)
    } else {
        in_file.to_owned()
    }
}

/// Flags and variables over `[service]`.
fn overlay_service(given: &Given, service: &mut ServiceOptions) -> Result<(), String> {
    if let Some(url) = given.text("upstream") {
        service.base_url = Some(url.to_owned());
    }
    if let Some(preset) = given.text("preset") {
        service.preset = Some(if preset == "minimal" { Preset::Minimal } else { Preset::Resilient });
    }
    if let Some(level) = given.text("log-level") {
        service.log_level = Level::parse(level);
    }
    if let Some(x) = given.number("grid-deg") {
        service.grid_deg = Some(x);
    }
    if let Some(x) = given.number("proximity-km") {
        service.proximity_km = Some(x);
    }
    for (flag, target) in [
        ("fresh-ttl", &mut service.fresh_ttl_ms),
        ("initial-backoff", &mut service.initial_backoff_ms),
        ("max-backoff", &mut service.max_backoff_ms),
        ("error-cooldown", &mut service.error_cooldown_ms),
    ] {
        if let Some(ms) = given.int(flag) {
            *target = Some(ms);
        }
    }
    let url = given.text("redis");
    let prefix = given.text("redis-key-prefix");
    if url.is_some() || prefix.is_some() {
        let mut redis = match service.redis.take() {
            Some(RedisOption::Url(url)) => RedisOptions { url, ..RedisOptions::default() },
            Some(RedisOption::Settings(settings)) => settings,
            None if url.is_none() => return Err(format!("{} goes with --redis", given.shown("redis-key-prefix"))),
            None => RedisOptions::default(),
        };
        if let Some(url) = url {
            redis.url = Secret(url.to_owned());
        }
        if let Some(prefix) = prefix {
            redis.key_prefix = Some(prefix.to_owned());
        }
        service.redis = Some(RedisOption::Settings(redis));
    }
    let budget_given = ["budget-per-minute", "budget-per-day", "when-redis-down"].iter().any(|f| given.get(f).is_some());
    if budget_given {
        let budget = service.budget.get_or_insert_with(BudgetOptions::default);
        if let Some(n) = given.int("budget-per-minute") {
            budget.per_minute = Some(n);
        }
        if let Some(n) = given.int("budget-per-day") {
            budget.per_day = Some(n);
        }
        if let Some(mode) = given.text("when-redis-down") {
            budget.when_redis_down = Some(if mode == "closed" { WhenRedisDown::Closed } else { WhenRedisDown::Local });
        }
    }
    if let Some(list) = providers(given)? {
        service.providers = Some(list);
    }
    snapshot(given, service)
}

/// `--snapshot FILE [--snapshot-interval MS]`, over a `snapshot` from the file: a path given
/// higher keeps an interval given lower, and the other way round.
fn snapshot(given: &Given, service: &mut ServiceOptions) -> Result<(), String> {
    let path = given.text("snapshot").map(str::to_owned);
    let interval = given.int("snapshot-interval");
    if path.is_none() && interval.is_none() {
        return Ok(());
    }
    let (old_path, old_interval) = match service.snapshot.take() {
        Some(SnapshotOption::Path(path)) => (Some(path), None),
        Some(SnapshotOption::Settings(s)) => (Some(s.path), s.interval_ms),
        None => (None, None),
    };
    let Some(path) = path.or(old_path) else {
        return Err(format!("{} goes with --snapshot", given.shown("snapshot-interval")));
    };
    service.snapshot = Some(match interval.or(old_interval) {
        None => SnapshotOption::Path(path),
        Some(ms) => SnapshotOption::Settings(SnapshotOptions { path, interval_ms: Some(ms) }),
    });
    Ok(())
}

/// `--providers` and the flags of each provider.
fn providers(given: &Given) -> Result<Option<Vec<ProviderOption>>, String> {
    let Some(names) = given.text("providers") else {
        for flag in ["met-norway-user-agent", "open-meteo-url", "met-norway-url", "nws-user-agent", "nws-url"] {
            if given.get(flag).is_some() {
                return Err(format!("{} goes with --providers", given.shown(flag)));
            }
        }
        return Ok(None);
    };
    const KNOWN: [&str; 4] = ["openweather", "open-meteo", "met-norway", "nws"];
    names
        .split(',')
        .map(str::trim)
        .map(|name| match name {
            "openweather" => Ok(ProviderOption::Named(name.to_owned())),
            "open-meteo" => Ok(match given.text("open-meteo-url") {
                Some(url) => ProviderOption::Configured(ProviderSettings { name: name.to_owned(), base_url: Some(url.to_owned()), ..Default::default() }),
                None => ProviderOption::Named(name.to_owned()),
            }),
            "met-norway" => match given.text("met-norway-user-agent") {
                Some(ua) => Ok(ProviderOption::Configured(ProviderSettings {
                    name: name.to_owned(),
                    user_agent: Some(ua.to_owned()),
                    base_url: given.text("met-norway-url").map(str::to_owned),
                    ..Default::default()
                })),
                None => Err("--providers met-norway needs --met-norway-user-agent (MET Norway's terms: your app and a contact)".to_owned()),
            },
            "nws" => match given.text("nws-user-agent") {
                Some(ua) => Ok(ProviderOption::Configured(ProviderSettings {
                    name: name.to_owned(),
                    user_agent: Some(ua.to_owned()),
                    base_url: given.text("nws-url").map(str::to_owned),
                    ..Default::default()
                })),
                None => Err("--providers nws needs --nws-user-agent (NWS asks for your app and a contact)".to_owned()),
            },
            other => Err(format!("--providers: unknown provider \"{other}\" (known: {})", KNOWN.join(", "))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Flags and variables over `[server]`. A secret's source given higher replaces the other
/// sources of that secret given lower.
fn overlay_server(given: &Given, server: &mut ServerOptions) {
    for (flag, target) in [
        ("host", &mut server.host),
        ("tls-cert", &mut server.tls_cert),
        ("tls-key", &mut server.tls_key),
        ("access-log", &mut server.access_log),
    ] {
        if let Some(text) = given.text(flag) {
            *target = Some(text.to_owned());
        }
    }
    if let Some(port) = given.int("port") {
        server.port = Some(port as u16);
    }
    if given.get("api-key").is_some() || given.get("api-key-file").is_some() {
        server.api_key_file = given.text("api-key-file").map(str::to_owned);
    }
    if ["token", "token-file", "tokens-file"].iter().any(|f| given.get(f).is_some()) {
        server.token_file = given.text("token-file").map(str::to_owned);
        server.tokens_file = given.text("tokens-file").map(str::to_owned);
    }
    if let Some(names) = given.list("allowed-host") {
        server.allowed_hosts = Some(names.to_vec());
    }
    if let Some(blocks) = given.list("trust-proxy") {
        server.trust_proxy = Some(blocks.to_vec());
    }
    if given.get("metrics-public").is_some() {
        server.metrics_public = Some(true);
    }
    for (flag, target) in [
        ("client-rate-limit", &mut server.client_rate_limit),
        ("client-upstream-limit", &mut server.client_upstream_limit),
        ("max-connections", &mut server.max_connections),
        ("max-connections-per-ip", &mut server.max_connections_per_ip),
    ] {
        if let Some(n) = given.int(flag) {
            *target = Some(n as u32);
        }
    }
    if let Some(n) = given.int("threads") {
        server.threads = Some(n as u16);
    }
    for (flag, target) in [
        ("header-timeout", &mut server.header_timeout_ms),
        ("idle-timeout", &mut server.idle_timeout_ms),
        ("request-timeout", &mut server.request_timeout_ms),
        ("drain-delay", &mut server.drain_delay_ms),
    ] {
        if let Some(ms) = given.int(flag) {
            *target = Some(ms);
        }
    }
}

/// Who may ask: nobody needs a token, one token, or a file of named clients.
fn tokens(given: &Given, server: &ServerOptions, warnings: &mut Vec<String>) -> Result<Tokens, String> {
    let token = given.values.get("token").map(|(value, source)| (value.text().to_owned(), source.clone()));
    let single = token.is_some() || server.token_file.is_some();
    if let Some(path) = &server.tokens_file {
        if single {
            let env_token_only = matches!(token, Some((_, Source::Env(_)))) && server.token_file.is_none();
            if !env_token_only {
                return Err("--tokens-file excludes --token and --token-file (one token, or a file of named ones)".to_owned());
            }
            warnings.push("WEATHER_CACHE_TOKEN is ignored: --tokens-file names the clients".to_owned());
        }
        permissions(&shown(given, "tokens-file", "[server] tokensFile"), path, warnings);
        return Ok(Tokens::File(path.into()));
    }
    if let Some(path) = &server.token_file {
        let shown = shown(given, "token-file", "[server] tokenFile");
        let token = secret_file(&shown, path)?;
        permissions(&shown, path, warnings);
        return Ok(Tokens::Single(token));
    }
    match token {
        // An empty token must never read as "no token": that would turn auth off.
        Some((token, source)) if token.trim().is_empty() => {
            let name = match source {
                Source::Env(var) => var.to_owned(),
                Source::Flag => "--token".to_owned(),
            };
            Err(format!("{name} is empty (leave it out for no token)"))
        }
        Some((token, _)) => Ok(Tokens::Single(token)),
        None => Ok(Tokens::None),
    }
}

/// A secret from a file: its first line, trimmed. Never echoed in errors.
fn secret_file(shown: &str, path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read {path} ({})", io_code(&e)))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(format!("{shown}: {path} is empty"));
    }
    Ok(secret)
}

/// Node's name for an I/O error (`ENOENT`, `EACCES`), as the CLI always printed.
fn io_code(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "ENOENT".to_owned(),
        std::io::ErrorKind::PermissionDenied => "EACCES".to_owned(),
        std::io::ErrorKind::IsADirectory => "EISDIR".to_owned(),
        _ => error.raw_os_error().map_or_else(|| error.kind().to_string(), |n| format!("errno {n}")),
    }
}

/// A warning when a secret's file can be read by others than its owner.
fn permissions(shown: &str, path: &str, warnings: &mut Vec<String>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(Path::new(path)) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                warnings.push(format!(
                    "{shown} {path} is readable by group or others (mode {mode:04o}): chmod 600 it (or create it with umask 077)"
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (shown, path, warnings);
}

#[cfg(test)]
mod tests;
