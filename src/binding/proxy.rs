//! `service.listen(options)`: starts the drone proxy (src/proxy) on this service's engine and
//! resolves to a `WeatherProxy`. Options are checked here; everything else is the proxy's.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Env;
use napi_derive::napi;

use super::errors::{js_number, ArgError, Checked};
use super::options::Reader;
use crate::engine::{BackgroundEvents, Engine};
use crate::proxy::{AccessLogTarget, Proxy, ProxyConfig};

/// A running drone proxy (see `WeatherService.listen`). It keeps Node alive until closed, like
/// a listening `net.Server`.
#[napi]
pub struct WeatherProxy {
    proxy: Arc<Proxy>,
    url: String,
}

#[napi]
impl WeatherProxy {
    /// `http://host:port` it listens on (the port resolved when 0 was asked for).
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        u32::from(self.proxy.local_addr().port())
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
    let url = format!("http://{shown_host}:{}", proxy.local_addr().port());
    Ok(WeatherProxy { proxy, url })
}

/// Node's codes for the usual failures (`EADDRINUSE`, `EACCES`, ...); the access log's own.
fn listen_error(env: &Env, error: &std::io::Error) -> napi::Error {
    if let Some(log) = error.get_ref().and_then(|e| e.downcast_ref::<crate::proxy::AccessLogError>()) {
        let js = JsError::from(napi::Error::new("ERR_PROXY_ACCESS_LOG".to_owned(), log.0.clone())).into_unknown(*env);
        return napi::Error::from(js);
    }
    let code = match error.kind() {
        std::io::ErrorKind::AddrInUse => "EADDRINUSE",
        std::io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
        std::io::ErrorKind::PermissionDenied => "EACCES",
        _ => "ERR_PROXY_LISTEN",
    };
    let js = JsError::from(napi::Error::new(code.to_owned(), format!("listen {code}: {error}"))).into_unknown(*env);
    napi::Error::from(js)
}

fn config(env: &Env, options: &Unknown) -> Checked<ProxyConfig> {
    let reader = Reader::of(env, options, "options")?;
    // `[::1]`, as URLs write it, is `::1`.
    let host = reader.string("host")?.unwrap_or_else(|| "127.0.0.1".to_owned());
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).map(str::to_owned).unwrap_or(host);
    let port = reader.integer("port", 65_535)?.unwrap_or(8080) as u16;
    let mut config = ProxyConfig::new(&host, port);
    config.token = reader.secret("token")?.filter(|t| !t.is_empty());
    config.metrics_public = reader.boolean("metricsPublic")?.unwrap_or(false);
    if let Some(n) = reader.integer("maxConnections", 1_000_000)? {
        config.max_connections = positive("options.maxConnections", n)? as usize;
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
    if let Some(threads) = reader.integer("threads", 256)? {
        config.threads = positive("options.threads", threads)? as usize;
    }
    config.access_log = reader.string("accessLog")?.map(|path| match path.as_str() {
        "-" => AccessLogTarget::Stdout,
        _ => AccessLogTarget::File(path.into()),
    });
    Ok(config)
}

fn positive(name: &str, n: u64) -> Checked<u64> {
    if n == 0 {
        return Err(ArgError::Range { name: name.into(), expected: ">= 1".into(), received: "0".into() });
    }
    Ok(n)
}
