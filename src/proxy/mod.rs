//! `weather-cache serve`: the drone proxy. An HTTP/1.1 server (hyper) inside the addon, on
//! threads of its own (`runtime.rs`), in front of the engine: a cache hit is answered on the
//! proxy's threads without ever touching the JS thread. It uses the engine; the engine knows
//! nothing of it. See `routes.rs` for what it answers, `connection.rs` for timeouts and shutdown.

mod access_log;
mod auth;
mod connection;
pub mod query;
mod routes;
mod runtime;
mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

pub use access_log::Target as AccessLogTarget;

use self::access_log::AccessLog;
use self::runtime::ProxyRuntime;
use crate::engine::{BackgroundEvents, Engine, Event};
use crate::geo::LatLon;

#[derive(Clone)]
pub struct ProxyConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// When set, `/v1/weather` and `/metrics` need `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `/metrics` without the token.
    pub metrics_public: bool,
    /// Connections served at once; more are answered 503 and closed at once.
    pub max_connections: usize,
    /// Time for a request head to arrive (first request), enforced.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may idle between requests.
    pub idle_timeout: Duration,
    /// Longest a request may take in all (its fetch included).
    pub request_timeout: Duration,
    pub access_log: Option<AccessLogTarget>,
    /// Threads serving connections.
    pub threads: usize,
}

/// Everything but the token's value: a `{:?}` of the config must never log it.
impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("metrics_public", &self.metrics_public)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Connections the kernel queues before they are accepted (the default, 128, overflows when a
/// fleet reconnects at once: dropped SYNs come back a second later).
const BACKLOG: u32 = 4_096;

impl ProxyConfig {
    pub fn new(host: &str, port: u16) -> ProxyConfig {
        ProxyConfig {
            host: host.to_owned(),
            port,
            token: None,
            metrics_public: false,
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            access_log: None,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

/// What the connections share.
pub(crate) struct Shared {
    engine: Engine,
    config: ProxyConfig,
    counters: Counters,
    events: Option<BackgroundEvents>,
    access_log: Option<AccessLog>,
    status: status::Status,
}

impl Shared {
    /// Events of requests go to the service's logger (there is no session here).
    fn deliver(&self, events: Vec<Event>) {
        if let (false, Some(sink)) = (events.is_empty(), &self.events) {
            sink(events);
        }
    }

    /// Where requests come from (kept for the status page).
    fn remember(&self, at: LatLon) {
        self.status.seen(at);
    }

    fn status(&self) -> String {
        self.status.json(&self.engine, self.counters.requests.get())
    }

    fn metrics(&self) -> String {
        let dropped = self.access_log.as_ref().map_or(0, AccessLog::dropped);
        format!("{}{}", self.engine.stats().to_prometheus(), self.counters.to_prometheus(dropped))
    }
}

/// The proxy's own numbers, appended to the engine's in `/metrics`.
#[derive(Default)]
struct Counters {
    requests: crate::engine::Counter,
    not_modified: crate::engine::Counter,
    refused: crate::engine::Counter,
    open: AtomicI64,
}

impl Counters {
    fn to_prometheus(&self, access_log_dropped: u64) -> String {
        let series: [(&str, &str, &str, f64); 5] = [
            ("proxy_requests_total", "counter", "HTTP requests the proxy received (hyper's own answers aside: 400 to a malformed head, 431 to one over 64 KiB or 100 lines).", self.requests.get() as f64),
            ("proxy_not_modified_total", "counter", "Answers 304 Not Modified (If-None-Match).", self.not_modified.get() as f64),
            (
                "proxy_refused_connections_total",
                "counter",
                "Connections refused at the connection limit.",
                self.refused.get() as f64,
            ),
            ("proxy_open_connections", "gauge", "Connections open now.", self.open.load(Ordering::Relaxed) as f64),
            (
                "proxy_access_log_dropped_total",
                "counter",
                "Access log lines dropped because the writer fell behind.",
                access_log_dropped as f64,
            ),
        ];
        series
            .iter()
            .map(|(name, kind, help, value)| {
                format!("# HELP weather_cache_{name} {help}\n# TYPE weather_cache_{name} {kind}\nweather_cache_{name} {value}\n")
            })
            .collect()
    }
}

/// A running proxy. Dropping it leaves it running (like a listening `net.Server`); `close`
/// stops it.
pub struct Proxy {
    addr: SocketAddr,
    /// Held by the accept loop too, so that dropping the handle does not read as a close.
    stop: Arc<watch::Sender<Option<Duration>>>,
    finished: Mutex<Option<oneshot::Receiver<()>>>,
    /// Set by the first `close`: every call waits on it.
    closed: Mutex<Option<watch::Receiver<bool>>>,
    /// The access log's writer is done, awaited on close so that no line is lost.
    written: Mutex<Option<oneshot::Receiver<()>>>,
    runtime: ProxyRuntime,
}

/// Held while the proxy runs (the binding passes a handle that keeps Node alive).
pub type KeepAlive = Box<dyn std::any::Any + Send>;

impl Proxy {
    /// Binds `config.host:config.port` and starts serving on `config.threads` threads. Fails at
    /// once if the address cannot be bound or the access log opened.
    pub fn start(
        engine: Engine,
        config: ProxyConfig,
        events: Option<BackgroundEvents>,
        keep_alive: KeepAlive,
    ) -> std::io::Result<Arc<Proxy>> {
        let (access_log, written) = match config.access_log.clone() {
            Some(target) => {
                let shown = match &target {
                    AccessLogTarget::Stdout => "stdout".to_owned(),
                    AccessLogTarget::File(path) => path.display().to_string(),
                };
                let (log, written) = AccessLog::open(target).map_err(|e| AccessLogError::wrap(&shown, e))?;
                (Some(log), Some(written))
            }
            None => (None, None),
        };
        let runtime = ProxyRuntime::start(config.threads)?;
        let bound = {
            let _entered = runtime.handle().enter();
            bind(&config.host, config.port).and_then(|listener| Ok((listener.local_addr()?, listener)))
        };
        let (addr, listener) = match bound {
            Ok(bound) => bound,
            Err(error) => {
                runtime.exit();
                return Err(error);
            }
        };
        let status = status::Status::new(&engine);
        let shared = Arc::new(Shared { engine, config, counters: Counters::default(), events, access_log, status });
        let stop = Arc::new(watch::channel(None).0);
        let (alive, mut connections) = mpsc::channel::<()>(1);
        let (finish, finished) = oneshot::channel();
        runtime.handle().spawn(accept(listener, shared, stop.clone(), alive));
        runtime.handle().spawn(async move {
            // Every connection holds a sender, and so does the accept loop: `None` once all ended.
            let _ = connections.recv().await;
            drop(keep_alive);
            let _ = finish.send(());
        });
        Ok(Arc::new(Proxy {
            addr,
            stop,
            finished: Mutex::new(Some(finished)),
            closed: Mutex::new(None),
            written: Mutex::new(written),
            runtime,
        }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes idle and half-open connections at once, lets requests in flight
    /// finish within `grace`, then stops the threads. Every call resolves when that is done
    /// (later calls' `grace` is ignored).
    pub fn close(self: &Arc<Self>, grace: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        let closed = closed.get_or_insert_with(|| {
            self.stop.send_replace(Some(grace));
            let finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner).take();
            let written = self.written.lock().unwrap_or_else(PoisonError::into_inner).take();
            let proxy = self.clone();
            let (done, closed) = watch::channel(false);
            // On a thread of its own: the proxy's runtime stops at the end of it.
            std::thread::spawn(move || {
                let wait = async move {
                    if let Some(finished) = finished {
                        // Connections end by `grace` at the latest; the slack covers their last writes.
                        let _ = tokio::time::timeout(grace + Duration::from_secs(1), finished).await;
                    }
                    if let Some(written) = written {
                        let _ = tokio::time::timeout(Duration::from_secs(2), written).await;
                    }
                };
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_time().build() {
                    runtime.block_on(wait);
                }
                proxy.runtime.exit();
                let _ = done.send(true);
            });
            closed
        });
        let mut closed = closed.clone();
        Box::pin(async move {
            let _ = closed.wait_for(|done| *done).await;
        })
    }
}

/// The access log could not be opened (told apart from a failed bind by the binding).
#[derive(Debug)]
pub struct AccessLogError(pub String);

impl AccessLogError {
    fn wrap(path: &str, error: std::io::Error) -> std::io::Error {
        std::io::Error::new(error.kind(), AccessLogError(format!("cannot open the access log {path}: {error}")))
    }
}

impl std::fmt::Display for AccessLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AccessLogError {}

/// A listener on `host:port` with a deep backlog (inside the proxy's runtime).
fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host} resolves to no address")))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<Option<Duration>>>,
    alive: mpsc::Sender<()>,
) {
    let limit = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let mut stopped = stop.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before we took it: wait a little
            // rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.counters.refused.inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        // A clone of the loop's receiver: a close sent since the loop last looked still shows.
        tokio::spawn(connection::serve(stream, shared.clone(), stopped.clone(), permit, alive.clone()));
    }
}

/// Beyond the connection limit: a 503 at once, then the door.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let body = r#"{"error":{"code":"ERR_TOO_MANY_CONNECTIONS","message":"the proxy is at its connection limit"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests;
