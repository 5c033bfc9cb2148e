use super::*;

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn with_env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
}

fn temp(name: &str, text: &str, mode: u32) -> String {
    let path = std::env::temp_dir().join(format!("wc-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    path.to_str().unwrap().to_owned()
}

const KEY: &[(&str, &str)] = &[("OPEN_WEATHER_API_KEY", "k")];

#[test]
fn flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults() {
    let file = temp(
        "precedence.toml",
        "[service]\nfreshTtlMs = 1000\ngridDeg = 0.1\nproximityKm = 7.0\n[server]\nport = 9001\nthreads = 3\nheaderTimeoutMs = 700\n",
        0o600,
    );
    let env: &'static [(&str, &str)] = Box::leak(Box::new([
        ("OPEN_WEATHER_API_KEY", "k"),
        ("WEATHER_CACHE_PORT", "9002"),
        ("WEATHER_CACHE_FRESH_TTL", "2000"),
        ("WEATHER_CACHE_THREADS", "4"),
    ]));
    let config = parse(NPM, &argv(&["--config", &file, "--port", "9003", "--fresh-ttl", "3000"]), &with_env(env)).unwrap();
    // port: flag over env over file; freshTtl likewise; threads: env over file; the rest: the file's.
    assert_eq!(config.proxy.port, 9003);
    assert_eq!(config.service.fresh_ttl_ms, Some(3000));
    assert_eq!(config.proxy.threads, 4);
    assert_eq!((config.service.grid_deg, config.service.proximity_km), (Some(0.1), Some(7.0)));
    assert_eq!(config.proxy.header_timeout, std::time::Duration::from_millis(700));
    // Defaults where nobody said.
    assert_eq!((config.proxy.host.as_str(), config.proxy.max_connections), ("127.0.0.1", 10_000));
    let defaults = parse(NPM, &[], &with_env(KEY)).unwrap();
    assert_eq!((defaults.proxy.port, defaults.service.fresh_ttl_ms), (8080, None));
    std::fs::remove_file(file).unwrap();
}

#[test]
fn a_bad_config_file_is_a_usage_error_naming_the_file_and_the_key() {
    let file = temp("bad.toml", "[server]\nport = 9000\nprot = 1\n", 0o600);
    let exit = parse(BINARY, &argv(&["--config", &file]), &with_env(KEY)).unwrap_err();
    assert_eq!(exit.code, 2);
    assert!(exit.stderr.starts_with(&format!("weather-cache-server: --config {file}, line 3: unknown field `prot`")), "{}", exit.stderr);
    assert!(exit.stderr.ends_with("Run `weather-cache-server --help` for usage.\n"));
    std::fs::remove_file(file).unwrap();
}

#[test]
fn redis_flags_fill_the_core_options_and_errors_name_flags() {
    let config = parse(NPM, &argv(&["--redis", "redis://h:1", "--redis-key-prefix", "fleet-a", "--when-redis-down", "closed"]), &with_env(KEY)).unwrap();
    let Some(RedisOption::Settings(redis)) = &config.service.redis else { panic!("{:?}", config.service.redis) };
    assert_eq!((redis.url.expose(), redis.key_prefix.as_deref()), ("redis://h:1", Some("fleet-a")));
    assert_eq!(config.service.budget.unwrap().when_redis_down, Some(WhenRedisDown::Closed));
    let exit = parse(NPM, &argv(&["--redis-key-prefix", "x"]), &with_env(KEY)).unwrap_err();
    assert!(exit.stderr.starts_with("weather-cache: --redis-key-prefix goes with --redis\n"), "{}", exit.stderr);
    assert_eq!(flag_of("redis"), "--redis");
    assert_eq!(flag_of("redis.keyPrefix"), "--redis-key-prefix");
    assert_eq!(flag_of("providers[1].userAgent"), "--met-norway-user-agent / --nws-user-agent");
}

#[test]
fn no_key_and_no_keyless_provider_exits_2_naming_where_a_key_comes_from() {
    let exit = parse(NPM, &[], &|_| None).unwrap_err();
    assert_eq!(exit.code, 2);
    assert!(exit.stderr.contains("OPEN_WEATHER_API_KEY") && exit.stderr.contains("--api-key-file"), "{}", exit.stderr);
    assert!(parse(NPM, &argv(&["--providers", "open-meteo"]), &|_| None).is_ok());
}

#[test]
fn secrets_files_readable_by_others_warn_and_their_contents_never_show() {
    let open = temp("key-open", "sekrit\n", 0o644);
    let config = parse(NPM, &argv(&["--api-key-file", &open]), &|_| None).unwrap();
    assert_eq!(config.service.api_key.as_ref().map(Secret::expose), Some("sekrit"));
    assert!(config.warnings.iter().any(|w| w.starts_with(&format!("--api-key-file {open} is readable by group or others (mode 0644)"))), "{:?}", config.warnings);
    assert!(!format!("{config:?}").contains("sekrit"));
    let closed = temp("key-closed", "sekrit\n", 0o600);
    assert!(parse(NPM, &argv(&["--api-key-file", &closed]), &|_| None).unwrap().warnings.is_empty());
    let empty = temp("token-empty", "\n", 0o600);
    let exit = parse(NPM, &argv(&["--token-file", &empty]), &with_env(KEY)).unwrap_err();
    assert!(exit.stderr.contains("is empty"));
    for path in [open, closed, empty] {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn help_lists_the_routes_and_the_redis_url_forms_and_version_prints() {
    let help = parse(BINARY, &argv(&["--help"]), &|_| None).unwrap_err();
    assert_eq!(help.code, 0);
    for route in ["GET /v1/weather", "GET /v1/status", "GET /metrics", "GET /healthz", "GET /readyz", "GET /  "] {
        assert!(help.stdout.contains(route), "{route}");
    }
    assert!(help.stdout.contains("redis+sentinel://") && help.stdout.contains("redis+cluster://"));
    assert!(help.stdout.starts_with("Usage: weather-cache-server [options]"));
    let version = parse(NPM, &argv(&["--version"]), &|_| None).unwrap_err();
    assert_eq!(version.stdout, format!("weather-cache {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_secret_given_as_a_flag_beats_a_file_of_it_named_in_the_environment() {
    // A unit or an image that sets WEATHER_CACHE_*_FILE must not silently win over what the
    // operator types: flags are above the environment for secrets too.
    let key = temp("env-key", "FILEKEY\n", 0o600);
    let token = temp("env-token", "FILETOKEN\n", 0o600);
    let tokens = temp("env-tokens", "a FILETOKENS\n", 0o600);
    let env: &'static [(&str, &str)] = Box::leak(Box::new([
        ("WEATHER_CACHE_API_KEY_FILE", Box::leak(key.clone().into_boxed_str()) as &str),
        ("WEATHER_CACHE_TOKEN_FILE", Box::leak(token.clone().into_boxed_str()) as &str),
    ]));
    let config = parse(BINARY, &argv(&["--api-key", "FLAGKEY", "--token", "FLAGTOKEN"]), &with_env(env)).unwrap();
    assert_eq!(config.service.api_key.as_ref().map(Secret::expose), Some("FLAGKEY"));
    assert!(matches!(&config.proxy.tokens, Tokens::Single(t) if t == "FLAGTOKEN"), "{:?}", config.proxy.tokens);
    // The other way round: a file named by a flag beats the secret in the environment.
    let env: &'static [(&str, &str)] = Box::leak(Box::new([("OPEN_WEATHER_API_KEY", "ENVKEY"), ("WEATHER_CACHE_TOKEN", "ENVTOKEN")]));
    let config = parse(BINARY, &argv(&["--api-key-file", &key, "--token-file", &token]), &with_env(env)).unwrap();
    assert_eq!(config.service.api_key.as_ref().map(Secret::expose), Some("FILEKEY"));
    assert!(matches!(&config.proxy.tokens, Tokens::Single(t) if t == "FILETOKEN"), "{:?}", config.proxy.tokens);
    // A tokens file in the environment gives way to one token given as a flag, and back.
    let env: &'static [(&str, &str)] = Box::leak(Box::new([("OPEN_WEATHER_API_KEY", "k"), ("WEATHER_CACHE_TOKENS_FILE", Box::leak(tokens.clone().into_boxed_str()) as &str)]));
    let config = parse(BINARY, &argv(&["--token-file", &token]), &with_env(env)).unwrap();
    assert!(matches!(&config.proxy.tokens, Tokens::Single(t) if t == "FILETOKEN"), "{:?}", config.proxy.tokens);
    let env: &'static [(&str, &str)] = Box::leak(Box::new([("OPEN_WEATHER_API_KEY", "k"), ("WEATHER_CACHE_TOKEN_FILE", Box::leak(token.clone().into_boxed_str()) as &str)]));
    let config = parse(BINARY, &argv(&["--tokens-file", &tokens]), &with_env(env)).unwrap();
    assert!(matches!(&config.proxy.tokens, Tokens::File(_)), "{:?}", config.proxy.tokens);
    // Both on one layer still conflict.
    let exit = parse(BINARY, &argv(&["--tokens-file", &tokens, "--token", "t"]), &with_env(KEY)).unwrap_err();
    assert!(exit.stderr.contains("--tokens-file excludes --token and --token-file"), "{}", exit.stderr);
    for path in [key, token, tokens] {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn an_option_the_engine_refuses_is_named_as_it_was_given() {
    // The engine checks ranges after the layers are merged; its error must name what the
    // operator wrote (the variable, or the file's key), not a flag nobody typed.
    let refused = |config: ServeConfig| {
        let error = config.service.clone().resolve().unwrap_err();
        config.options_error(&error).stderr
    };
    let by_flag = parse(BINARY, &argv(&["--grid-deg", "0"]), &with_env(KEY)).unwrap();
    assert!(refused(by_flag).starts_with("weather-cache-server: --grid-deg must be"));
    let env: &'static [(&str, &str)] = &[("OPEN_WEATHER_API_KEY", "k"), ("WEATHER_CACHE_GRID_DEG", "0")];
    let by_env = parse(BINARY, &[], &with_env(env)).unwrap();
    let stderr = refused(by_env);
    assert!(stderr.starts_with("weather-cache-server: WEATHER_CACHE_GRID_DEG must be"), "{stderr}");
    let file = temp("refused.toml", "[service]\ngridDeg = 0\n", 0o600);
    let by_file = parse(BINARY, &argv(&["--config", &file]), &with_env(KEY)).unwrap();
    let stderr = refused(by_file);
    assert!(stderr.starts_with(&format!("weather-cache-server: --config {file}: [service] gridDeg must be")), "{stderr}");
    // Refused at start rather than by `resolve`: the same naming, and still no password.
    let file_redis = temp("refused-redis.toml", "[service]\nredis = \"http://u:hunter2@h/\"\n", 0o600);
    let config = parse(BINARY, &argv(&["--config", &file_redis]), &with_env(KEY)).unwrap();
    let error = weather_cache_core::OptionsError {
        option: "redis".into(),
        problem: weather_cache_core::options::Problem::Range { expected: "a redis:// URL".into(), received: "a URL (not shown)".into() },
    };
    let stderr = config.options_error(&error).stderr;
    assert!(stderr.starts_with(&format!("weather-cache-server: --config {file_redis}: [service] redis must be")), "{stderr}");
    std::fs::remove_file(file).unwrap();
    std::fs::remove_file(file_redis).unwrap();
}

#[test]
fn a_variable_named_after_a_flag_that_reads_another_one_warns() {
    // WEATHER_CACHE_<FLAG> is the rule, but --redis reads WEATHER_CACHE_REDIS_URL, --upstream
    // OPEN_WEATHER_BASE_URL and --api-key OPEN_WEATHER_API_KEY: WEATHER_CACHE_REDIS set by the
    // rule was silently ignored, and each instance ran without the shared tier.
    let env: &'static [(&str, &str)] = &[("OPEN_WEATHER_API_KEY", "k"), ("WEATHER_CACHE_REDIS", "redis://h:1"), ("WEATHER_CACHE_UPSTREAM", "http://x")];
    let config = parse(BINARY, &[], &with_env(env)).unwrap();
    assert!(config.service.redis.is_none());
    assert!(config.warnings.iter().any(|w| w == "WEATHER_CACHE_REDIS is not read: --redis is WEATHER_CACHE_REDIS_URL"), "{:?}", config.warnings);
    assert!(config.warnings.iter().any(|w| w == "WEATHER_CACHE_UPSTREAM is not read: --upstream is OPEN_WEATHER_BASE_URL"), "{:?}", config.warnings);
    assert!(parse(BINARY, &[], &with_env(KEY)).unwrap().warnings.is_empty());
}

#[test]
fn the_files_server_numbers_have_the_flags_ranges() {
    // `threads = 5000` started 5000 proxy threads and `drainDelayMs` past an hour made SIGTERM
    // wait that long, where --threads 5000 and --drain-delay 3600001 are refused.
    for (text, message) in [
        ("[server]\nthreads = 5000\n", "[server] threads must be <= 256 (got 5000)"),
        ("[server]\ndrainDelayMs = 3600001\n", "[server] drainDelayMs must be <= 3600000 (got 3600001)"),
        ("[server]\nclientRateLimit = 0\n", "[server] clientRateLimit must be >= 1 (got 0)"),
        ("[server]\nrequestTimeoutMs = 99999999\n", "[server] requestTimeoutMs must be <= 3600000 (got 99999999)"),
    ] {
        let file = temp("ranges.toml", text, 0o600);
        let exit = parse(BINARY, &argv(&["--config", &file]), &with_env(KEY)).unwrap_err();
        assert_eq!(exit.stderr.lines().next().unwrap(), format!("weather-cache-server: {message}"), "{text}");
        std::fs::remove_file(file).unwrap();
    }
    let file = temp("ranges-ok.toml", "[server]\nthreads = 256\ndrainDelayMs = 0\n", 0o600);
    assert_eq!(parse(BINARY, &argv(&["--config", &file]), &with_env(KEY)).unwrap().proxy.threads, 256);
    std::fs::remove_file(file).unwrap();
}

#[test]
fn every_flag_the_parser_takes_has_a_line_in_help() {
    // The docs check compares --help with docs/proxy.md: a flag added to the table but not to
    // the help would be accepted, yet in neither.
    for flag in flags::FLAGS {
        let line = format!("\n  --{} ", flag.name);
        assert!(help::HELP.contains(&line), "--{} has no line in --help", flag.name);
    }
}
