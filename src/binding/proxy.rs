//! `service.listen(options)`: starts the drone proxy (src/proxy) on this service's engine and
//! resolves to a `WeatherProxy`. Options are checked here; everything else is the proxy's.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Env;
use napi_derive::napi;

use super::errors::{describe, js_number, ArgError, Checked};
use super::reader::Reader;
use weather_cache_core::engine::{BackgroundEvents, Engine};
use weather_cache_server::proxy::{parse_allowed_host, AccessLogTarget, Cidr, Proxy, ProxyConfig, SetupError, SetupKind, Tokens};

/// A running drone proxy (see `WeatherService.listen`). It keeps Node alive until closed, like
/// a listening `net.Server`.
#[napi]
pub struct WeatherProxy {
    proxy: Arc<Proxy>,
    url: String,
}

#[napi]
impl WeatherProxy {
    /// `http://host:port` (`https://` with TLS) it listens on (the port resolved when 0 was asked for).
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        u32::from(self.proxy.local_addr().port())
    }

    /// Reads `tokensFile` and the TLS certificate and key again and reopens the access log
    /// (what `weather-cache serve` does on SIGHUP). Each takes effect at once for new requests
    /// and connections; requests in flight finish as they began. Resolves to what was
    /// reloaded; rejects (`ERR_PROXY_RELOAD`) if anything failed to load, which then stays as
    /// it was (the rest is reloaded).
    #[napi(ts_return_type = "Promise<ProxyReloaded>")]
    pub fn reload<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ProxyReloaded>> {
        let proxy = self.proxy.clone();
        env.spawn_future_with_callback(
            async move { tokio::task::spawn_blocking(move || proxy.reload()).await.map_err(|e| napi::Error::from_reason(e.to_string())) },
            |env, reloaded| {
                if reloaded.errors.is_empty() {
                    return Ok(ProxyReloaded {
                        clients: reloaded.clients.map(|n| n as u32),
                        certificate: reloaded.certificate,
                        access_log: reloaded.access_log,
                    });
                }
                let message = format!("reload: {}", reloaded.errors.join("; "));
                let js = JsError::from(napi::Error::new("ERR_PROXY_RELOAD", message)).into_unknown(*env);
                Err(napi::Error::from(js))
            },
        )
    }

    /// Stops accepting connections, closes idle and half-open ones at once, lets requests in
    /// flight finish within `graceMs` (default 10000), then resolves. Calling it again resolves
    /// at once.
    #[napi(ts_args_type = "graceMs?: number", ts_return_type = "Promise<void>")]
    pub fn close<'e>(&self, env: &'e Env, grace_ms: Unknown<'e>) -> Result<PromiseRaw<'e, ()>> {
        let grace = match grace_ms.get_type()? {
            ValueType::Undefined => Duration::from_secs(10),
            _ => match super::args::finite(&grace_ms, "graceMs") {
                Ok(ms) if (0.0..=3_600_000.0).contains(&ms) => Duration::from_millis(ms as u64),
                Ok(ms) => {
                    let error = ArgError::Range {
                        name: "graceMs".into(),
                        expected: ">= 0 && <= 3600000".into(),
                        received: js_number(ms),
                    };
                    return PromiseRaw::reject(env, error.to_js(env)?);
                }
                Err(error) => return PromiseRaw::reject(env, error.to_js(env)?),
            },
        };
        let closing = self.proxy.close(grace);
        env.spawn_future(async move {
            closing.await;
            Ok(())
        })
    }
}

/// What `WeatherProxy.reload()` reloaded.
#[napi(object)]
pub struct ProxyReloaded {
    /// Clients in the tokens file (with `tokensFile`).
    pub clients: Option<u32>,
    /// The TLS certificate and key were read again.
    pub certificate: bool,
    /// The access log file was reopened (for logrotate).
    pub access_log: bool,
}

/// Starts a proxy in front of `engine`; the value to resolve `listen()` with.
pub fn listen(env: &Env, engine: &Engine, events: Option<BackgroundEvents>, options: &Unknown) -> Result<WeatherProxy> {
    let config = config(env, options).map_err(|e| e.throw(env))?;
    // A strong threadsafe function: Node stays alive while the proxy runs (the proxy drops it
    // once its last connection ended).
    let noop = env.create_function_from_closure::<(), (), _>("weatherProxyAlive", |_| Ok(()))?;
    let alive: ThreadsafeFunction<(), (), (), Status, false, false> =
        noop.build_threadsafe_function().callee_handled::<false>().weak::<false>().build()?;
    let shown_host = if config.host.contains(':') { format!("[{}]", config.host) } else { config.host.clone() };
    let proxy = Proxy::start(engine.clone(), config, events, Box::new(alive)).map_err(|error| listen_error(env, &error))?;
    let scheme = if proxy.is_tls() { "https" } else { "http" };
    let url = format!("{scheme}://{shown_host}:{}", proxy.local_addr().port());
    Ok(WeatherProxy { proxy, url })
}

/// Node's codes for the usual failures (`EADDRINUSE`, `EACCES`, ...); ours for what could not
/// be loaded.
fn listen_error(env: &Env, error: &std::io::Error) -> napi::Error {
    if let Some(setup) = error.get_ref().and_then(|e| e.downcast_ref::<SetupError>()) {
        let code = match setup.kind {
            SetupKind::AccessLog => "ERR_PROXY_ACCESS_LOG",
            SetupKind::Tokens => "ERR_PROXY_TOKENS",
            SetupKind::Tls => "ERR_PROXY_TLS",
        };
        let js = JsError::from(napi::Error::new(code, setup.message.clone())).into_unknown(*env);
        return napi::Error::from(js);
    }
    let code = match error.kind() {
        std::io::ErrorKind::AddrInUse => "EADDRINUSE",
        std::io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
        std::io::ErrorKind::PermissionDenied => "EACCES",
        _ => "ERR_PROXY_LISTEN",
    };
    let js = JsError::from(napi::Error::new(code, format!("listen {code}: {error}"))).into_unknown(*env);
    napi::Error::from(js)
}

fn config(env: &Env, options: &Unknown) -> Checked<ProxyConfig> {
    let reader = Reader::of(env, options, "options")?;
    // `[::1]`, as URLs write it, is `::1`.
    let host = reader.string("host")?.unwrap_or_else(|| "127.0.0.1".to_owned());
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).map(str::to_owned).unwrap_or(host);
    let port = reader.integer("port", 65_535)?.unwrap_or(8080) as u16;
    let mut config = ProxyConfig::new(&host, port);
    let token = reader.secret("token")?;
    let tokens_file = reader.string("tokensFile")?;
    config.tokens = match (token, tokens_file) {
        (Some(_), Some(_)) => {
            let reason = "excludes options.token (one token, or a file of named ones)".into();
            return Err(ArgError::Value { name: "options.tokensFile".into(), reason, received: "both".into() });
        }
        // An empty token must never read as "no token": that would turn auth off.
        (Some(token), None) if token.trim().is_empty() => {
            let reason = "must not be empty (leave it out for no token)".into();
            return Err(ArgError::Value { name: "options.token".into(), reason, received: "''".into() });
        }
        (Some(token), None) => Tokens::Single(token),
        (None, Some(path)) => Tokens::File(path.into()),
        (None, None) => Tokens::None,
    };
    config.metrics_public = reader.boolean("metricsPublic")?.unwrap_or(false);
    config.tls = match (reader.string("tlsCert")?, reader.string("tlsKey")?) {
        (Some(cert), Some(key)) => Some((cert.into(), key.into())),
        (None, None) => None,
        (cert, _) => {
            let (name, missing) = if cert.is_some() { ("options.tlsCert", "options.tlsKey") } else { ("options.tlsKey", "options.tlsCert") };
            return Err(ArgError::Value { name: name.into(), reason: format!("goes with {missing}"), received: "one of the two".into() });
        }
    };
    if let Some(names) = strings(&reader, "allowedHosts")? {
        config.allowed_hosts = names
            .iter()
            .map(|n| parse_allowed_host(n))
            .collect::<std::result::Result<_, _>>()
            .map_err(|reason| ArgError::Value { name: "options.allowedHosts".into(), reason, received: format!("{names:?}") })?;
    }
    if let Some(blocks) = strings(&reader, "trustProxy")? {
        config.trust_proxy = blocks
            .iter()
            .map(|b| Cidr::parse(b))
            .collect::<std::result::Result<_, _>>()
            .map_err(|reason| ArgError::Value { name: "options.trustProxy".into(), reason, received: format!("{blocks:?}") })?;
    }
    if let Some(n) = reader.integer("maxConnections", 1_000_000)? {
        config.max_connections = positive("options.maxConnections", n)? as usize;
    }
    if let Some(n) = reader.integer("maxConnectionsPerIp", 1_000_000)? {
        config.max_connections_per_ip = positive("options.maxConnectionsPerIp", n)? as usize;
    }
    if let Some(n) = reader.integer("clientRateLimit", 1_000_000)? {
        config.limits.requests_per_second = positive("options.clientRateLimit", n)? as u32;
    }
    if let Some(n) = reader.integer("clientUpstreamLimit", 1_000_000)? {
        config.limits.upstream_per_minute = positive("options.clientUpstreamLimit", n)? as u32;
    }
    for (key, target) in [
        ("headerTimeoutMs", &mut config.header_timeout),
        ("idleTimeoutMs", &mut config.idle_timeout),
        ("requestTimeoutMs", &mut config.request_timeout),
    ] {
        if let Some(ms) = reader.integer(key, 3_600_000)? {
            *target = Duration::from_millis(positive(&format!("options.{key}"), ms)?);
        }
    }
    if let Some(ms) = reader.integer("drainDelayMs", 3_600_000)? {
        config.drain_delay = Duration::from_millis(ms);
    }
    if let Some(threads) = reader.integer("threads", 256)? {
        config.threads = positive("options.threads", threads)? as usize;
    }
    config.access_log = reader.string("accessLog")?.map(|path| match path.as_str() {
        "-" => AccessLogTarget::Stdout,
        _ => AccessLogTarget::File(path.into()),
    });
    Ok(config)
}

/// `options[key]` as an array of strings, when given.
fn strings(reader: &Reader, key: &str) -> Checked<Option<Vec<String>>> {
    let Some(value) = reader.get(key)? else { return Ok(None) };
    let name = reader.name(key);
    if !value.is_array().unwrap_or(false) {
        return Err(ArgError::Type { name, expected: "Array", received: describe(&value) });
    }
    let list = unsafe { value.cast::<Object>() }.map_err(|_| ArgError::Thrown)?;
    let length = list.get_array_length().map_err(|_| ArgError::Thrown)?;
    (0..length)
        .map(|i| {
            let item = list.get_element::<Unknown>(i).map_err(|_| ArgError::Thrown)?;
            if super::args::type_of(&item) != ValueType::String {
                return Err(ArgError::Type { name: format!("{name}[{i}]"), expected: "string", received: describe(&item) });
            }
            unsafe { item.cast::<String>() }.map_err(|_| ArgError::Thrown)
        })
        .collect::<Checked<Vec<String>>>()
        .map(Some)
}

fn positive(name: &str, n: u64) -> Checked<u64> {
    if n == 0 {
        return Err(ArgError::Range { name: name.into(), expected: ">= 1".into(), received: "0".into() });
    }
    Ok(n)
}
