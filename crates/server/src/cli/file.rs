//! `--config FILE`: a TOML file with the service's options under `[service]` (the core's
//! `ServiceOptions`: the JS option names) and the server's under `[server]` (`ServerOptions`:
//! `listen()`'s names, plus the files secrets are read from). Flags and `WEATHER_CACHE_*`
//! variables override it, key by key.
//!
//! ```toml
//! [service]
//! freshTtlMs = 600000
//! redis = { url = "redis://10.0.0.5:6379", keyPrefix = "fleet-a" }
//!
//! [server]
//! host = "0.0.0.0"
//! tokensFile = "/etc/weather-cache/tokens"
//! apiKeyFile = "/etc/weather-cache/openweather.key"
//! ```

use serde::Deserialize;
use weather_cache_core::ServiceOptions;

/// The file as a whole. Unknown tables and keys are errors (a typo must not pass silently).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub service: ServiceOptions,
    #[serde(default)]
    pub server: ServerOptions,
}

/// The server's settings, named as `WeatherService.listen()`'s options (and the CLI's files).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerOptions {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub allowed_hosts: Option<Vec<String>>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub api_key_file: Option<String>,
    pub token_file: Option<String>,
    pub tokens_file: Option<String>,
    pub metrics_public: Option<bool>,
    pub client_rate_limit: Option<u32>,
    pub client_upstream_limit: Option<u32>,
    pub trust_proxy: Option<Vec<String>>,
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub threads: Option<u16>,
    pub access_log: Option<String>,
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub drain_delay_ms: Option<u64>,
}

/// Reads and parses `path`; the error names the file, and the key and line when TOML says.
pub fn read(path: &str) -> Result<ConfigFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config: cannot read {path} ({})", super::io_code(&e)))?;
    toml::from_str(&text).map_err(|error| {
        let place = error
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!(", line {line}")
            })
            .unwrap_or_default();
        let message = error.message().trim_end().replace('\n', " ");
        format!("--config {path}{place}: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<ConfigFile, String> {
        let dir = std::env::temp_dir().join(format!("wc-config-{}-{}", std::process::id(), text.len()));
        std::fs::write(&dir, text).unwrap();
        let result = read(dir.to_str().unwrap());
        std::fs::remove_file(&dir).unwrap();
        result
    }

    #[test]
    fn both_tables_read_into_the_options_structs() {
        let file = parsed("[service]\nfreshTtlMs = 1000\nredis = { url = \"redis://x\", keyPrefix = \"a\" }\n[server]\nport = 9000\nallowedHosts = [\"w.example\"]\n").unwrap();
        assert_eq!(file.service.fresh_ttl_ms, Some(1000));
        assert_eq!((file.server.port, file.server.allowed_hosts.as_deref()), (Some(9000), Some(&["w.example".to_owned()][..])));
    }

    #[test]
    fn a_typo_inside_redis_snapshot_or_a_provider_names_the_key() {
        // These take a string or a table: a typo in the table said "data did not match any
        // variant of untagged enum RedisOption" (or "Written"), naming neither key nor problem.
        for (text, expected) in [
            ("[service]\nredis = { url = \"redis://:hunter2@h\", keyprefix = \"a\" }\n", "line 2: unknown field `keyprefix`, expected one of `url`, `keyPrefix`, `timeoutMs`"),
            ("[service]\nsnapshot = { path = \"s\", interval = 5 }\n", "line 2: unknown field `interval`"),
            ("[service]\nproviders = [{ name = \"nws\", useragent = \"x\" }]\n", "line 2: unknown field `useragent`"),
            ("[service]\nredis = 5\n", "line 2: invalid type: integer `5`, expected a redis:// URL or a table { url, keyPrefix, timeoutMs }"),
        ] {
            let error = parsed(text).unwrap_err();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("hunter2") && !error.contains("untagged"), "{error}");
        }
        let file = parsed("[service]\nredis = \"redis://h\"\nsnapshot = \"s\"\nproviders = [\"open-meteo\", { name = \"nws\", userAgent = \"me\" }]\n").unwrap();
        assert!(matches!(file.service.redis, Some(weather_cache_core::RedisOption::Url(_))));
        assert!(matches!(file.service.snapshot, Some(weather_cache_core::options::SnapshotOption::Path(_))));
        assert_eq!(file.service.providers.map(|p| p.len()), Some(2));
    }

    #[test]
    fn a_mistyped_secret_is_named_without_its_value() {
        // A key without quotes is a TOML number: serde's message quoted it ("invalid type:
        // integer `12345678`"), so the key reached stderr and whatever collects it.
        for text in [
            "[service]\napiKey = 12345678901234567890123456789\n",
            "[service]\napiKey = 1234567890123\n",
            "[service]\napiKey = 123.4567\n",
            "[service]\nredis = { url = 98765432 }\n",
        ] {
            let error = parsed(text).unwrap_err();
            assert!(error.contains("line 2: invalid type:") && error.contains("expected a string"), "{error}");
            for digits in ["1234567", "4567", "98765432"] {
                assert!(!error.contains(digits), "{error}");
            }
        }
    }

    #[test]
    fn a_bad_key_or_value_is_named_with_its_line() {
        let error = parsed("[server]\nport = 9000\nprot = 1\n").unwrap_err();
        assert!(error.contains(", line 3: unknown field `prot`"), "{error}");
        let error = parsed("[service]\nfreshTtlMs = \"soon\"\n").unwrap_err();
        assert!(error.contains("line 2") && error.contains("u64"), "{error}");
        // Named as the other files' errors are (Node's code), not in Rust's words ("entity not found").
        assert_eq!(read("/nonexistent/weather.toml").unwrap_err(), "--config: cannot read /nonexistent/weather.toml (ENOENT)");
    }
}
