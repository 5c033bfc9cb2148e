//! `weather-cache serve`: the drone proxy. An HTTP server (hyper: HTTP/1.1, and HTTP/2 over TLS)
//! inside the addon, on threads of its own (`runtime.rs`), in front of the engine: a cache hit
//! is answered on the proxy's threads without ever touching the JS thread. It uses the engine;
//! the engine knows nothing of it. See `routes.rs` for what it answers, `connection.rs` for
//! TLS, timeouts and shutdown, `admission.rs` for connection limits, `clients.rs`, `auth.rs`
//! and `limits.rs` for who may ask and how much, `host.rs`, `site.rs` and `forwarded.rs` for
//! where requests come from.

mod access_log;
mod admission;
mod auth;
mod cache_control;
mod clients;
mod connection;
mod counters;
pub mod forwarded;
mod host;
mod limits;
mod products;
pub mod query;
mod request_id;
mod routes;
mod runtime;
mod site;
mod status;
mod tls;
mod validators;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

pub use access_log::Target as AccessLogTarget;
pub use clients::Tokens;
pub use forwarded::Cidr;
pub use host::{is_loopback_bind, parse_name as parse_allowed_host};
pub use limits::LimitConfig;

use self::access_log::AccessLog;
use self::admission::{Admission, Refusal};
use self::clients::Clients;
use self::counters::Counters;
use self::forwarded::TrustedProxies;
use self::host::AllowedHosts;
use self::limits::Limits;
use self::request_id::RequestIds;
use self::runtime::ProxyRuntime;
use self::tls::Tls;
use weather_cache_core::engine::{BackgroundEvents, Engine, Event};
use weather_cache_core::geo::LatLon;

#[derive(Clone)]
pub struct ProxyConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Who may use `/v1/weather`, `/metrics` and the status page: nobody needs a token
    /// (`Tokens::None`), one token, or a file of named clients.
    pub tokens: Tokens,
    /// `/metrics` without the token.
    pub metrics_public: bool,
    /// PEM certificate chain and private key: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `Host` names accepted besides addresses and `localhost` (see `host.rs`).
    pub allowed_hosts: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed (see `forwarded.rs`).
    pub trust_proxy: Vec<Cidr>,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Connections from one address (IPv4, or an IPv6 /64) at once; trusted proxies aside.
    pub max_connections_per_ip: usize,
    /// Per-client requests a second and upstream calls a minute (0: no limit).
    pub limits: LimitConfig,
    /// Time for the first request head (and a TLS handshake) to arrive, enforced.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may idle between requests, its next head included.
    pub idle_timeout: Duration,
    /// Longest a request may take in all (its fetch included).
    pub request_timeout: Duration,
    /// How long `close` keeps serving, with `/readyz` answering 503, before it stops accepting
    /// (time for a load balancer to notice).
    pub drain_delay: Duration,
    pub access_log: Option<AccessLogTarget>,
    /// Threads serving connections.
    pub threads: usize,
}

/// Everything but the tokens: a `{:?}` of the config must never log one.
impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tokens = match &self.tokens {
            Tokens::None => "none".to_owned(),
            Tokens::Single(_) => "(one token)".to_owned(),
            Tokens::File(path) => format!("file {}", path.display()),
        };
        f.debug_struct("ProxyConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tokens", &tokens)
            .field("metrics_public", &self.metrics_public)
            .field("tls", &self.tls)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("trust_proxy", &self.trust_proxy)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("limits", &self.limits)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("drain_delay", &self.drain_delay)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Connections the kernel queues before they are accepted (the default, 128, overflows when a
/// fleet reconnects at once: dropped SYNs come back a second later).
const BACKLOG: u32 = 4_096;
/// Refusals answered at once at most; past that a refused connection is just closed (each
/// answer costs a write, a TLS handshake under TLS, and a short wait for the client's close).
const REFUSALS_IN_FLIGHT: usize = 256;

impl ProxyConfig {
    pub fn new(host: &str, port: u16) -> ProxyConfig {
        ProxyConfig {
            host: host.to_owned(),
            port,
            tokens: Tokens::None,
            metrics_public: false,
            tls: None,
            allowed_hosts: Vec::new(),
            trust_proxy: Vec::new(),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            limits: LimitConfig { requests_per_second: 0, upstream_per_minute: 0 },
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
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
    clients: Clients,
    tls: Option<Tls>,
    hosts: AllowedHosts,
    trusted: TrustedProxies,
    limits: Limits,
    admission: Admission,
    request_ids: RequestIds,
    builders: connection::Builders,
    /// `close` was called: `/readyz` answers 503.
    draining: AtomicBool,
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

    async fn status(&self, selected: Option<LatLon>) -> String {
        let shared = status::shared_calls(&self.engine).await;
        self.status.json(&self.engine, self.counters.requests.get(), shared.as_deref(), selected)
    }

    fn metrics(&self) -> String {
        let dropped = self.access_log.as_ref().map_or(0, AccessLog::dropped);
        format!("{}{}", self.engine.stats().to_prometheus(), self.counters.to_prometheus(dropped, &self.clients.labelled()))
    }
}

/// What `reload()` did: how many clients the tokens file holds, whether a certificate and an
/// access log were reloaded; what failed (the old state stays for those).
#[derive(Debug, Default)]
pub struct Reloaded {
    pub clients: Option<usize>,
    pub certificate: bool,
    pub access_log: bool,
    pub errors: Vec<String>,
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
    shared: Arc<Shared>,
}

/// Held while the proxy runs (the binding passes a handle that keeps Node alive).
pub type KeepAlive = Box<dyn std::any::Any + Send>;

impl Proxy {
    /// Binds `config.host:config.port` and starts serving on `config.threads` threads. Fails at
    /// once if the address cannot be bound, or the access log, the tokens or the certificate
    /// cannot be loaded (`SetupError` says which).
    pub fn start(
        engine: Engine,
        config: ProxyConfig,
        events: Option<BackgroundEvents>,
        keep_alive: KeepAlive,
    ) -> std::io::Result<Arc<Proxy>> {
        let clients = Clients::load(config.tokens.clone()).map_err(|e| SetupError::wrap(SetupKind::Tokens, e))?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(Tls::load(cert.clone(), key.clone()).map_err(|e| SetupError::wrap(SetupKind::Tls, e))?),
            None => None,
        };
        let (access_log, written) = match config.access_log.clone() {
            Some(target) => {
                let shown = match &target {
                    AccessLogTarget::Stdout => "stdout".to_owned(),
                    AccessLogTarget::File(path) => path.display().to_string(),
                };
                let (log, written) = AccessLog::open(target)
                    .map_err(|e| SetupError::wrap(SetupKind::AccessLog, format!("cannot open the access log {shown}: {e}")))?;
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
        let shared = Arc::new(Shared {
            status: status::Status::new(&engine),
            hosts: AllowedHosts::new(&config.host, &config.allowed_hosts),
            trusted: TrustedProxies::new(config.trust_proxy.clone()),
            limits: Limits::new(config.limits),
            admission: Admission::new(config.max_connections, config.max_connections_per_ip),
            request_ids: RequestIds::new(),
            builders: connection::Builders::new(),
            draining: AtomicBool::new(false),
            counters: Counters::default(),
            engine,
            config,
            events,
            access_log,
            clients,
            tls,
        });
        let stop = Arc::new(watch::channel(None).0);
        let (alive, mut connections) = mpsc::channel::<()>(1);
        let (finish, finished) = oneshot::channel();
        runtime.handle().spawn(accept(listener, shared.clone(), stop.clone(), alive));
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
            shared,
        }))
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Reads the tokens file and the certificate again and reopens the access log (SIGHUP):
    /// each that loads replaces the old one at once, without touching connections or requests
    /// in flight; each that fails leaves the old one in place and is listed in `errors`.
    /// Blocking (file reads): call it off the JS thread.
    pub fn reload(&self) -> Reloaded {
        let shared = &self.shared;
        let mut reloaded = Reloaded::default();
        if matches!(shared.config.tokens, Tokens::File(_)) {
            match shared.clients.reload() {
                Ok(n) => reloaded.clients = Some(n),
                Err(e) => reloaded.errors.push(format!("{e} (the previous tokens stay)")),
            }
        }
        if let Some(tls) = &shared.tls {
            match tls.reload() {
                Ok(()) => reloaded.certificate = true,
                Err(e) => reloaded.errors.push(format!("{e} (the previous certificate stays)")),
            }
        }
        if let Some(log) = &shared.access_log {
            match log.reopen() {
                Ok(reopened) => reloaded.access_log = reopened,
                Err(e) => reloaded.errors.push(e),
            }
        }
        shared.counters.reloads.inc();
        if !reloaded.errors.is_empty() {
            shared.counters.reload_failures.inc();
        }
        reloaded
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
            self.shared.draining.store(true, Ordering::Release);
            let drain_delay = self.shared.config.drain_delay;
            if drain_delay.is_zero() {
                self.stop.send_replace(Some(grace));
            }
            let stop = self.stop.clone();
            let finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner).take();
            let written = self.written.lock().unwrap_or_else(PoisonError::into_inner).take();
            let proxy = self.clone();
            let (done, closed) = watch::channel(false);
            // On a thread of its own: the proxy's runtime stops at the end of it.
            std::thread::spawn(move || {
                let wait = async move {
                    if !drain_delay.is_zero() {
                        // Still serving, `/readyz` saying 503, while a load balancer notices.
                        tokio::time::sleep(drain_delay).await;
                        stop.send_replace(Some(grace));
                    }
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

/// What could not be set up (told apart from a failed bind by the binding, each with its code).
#[derive(Debug)]
pub struct SetupError {
    pub kind: SetupKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupKind {
    AccessLog,
    Tokens,
    Tls,
}

impl SetupError {
    fn wrap(kind: SetupKind, message: String) -> std::io::Error {
        std::io::Error::other(SetupError { kind, message })
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SetupError {}

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
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let mut stopped = stop.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors, or a connection reset before we took it: wait a little
            // rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let exempt = shared.trusted.trusts(peer.ip());
        let slot = match shared.admission.admit(peer.ip(), exempt) {
            Ok(slot) => slot,
            Err(refusal) => {
                shared.counters.refused(refusal).inc();
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    let tls = shared.tls.as_ref().map(Tls::refusal);
                    tokio::spawn(async move {
                        refuse(stream, tls, refusal).await;
                        drop(permit);
                    });
                }
                continue;
            }
        };
        // A clone of the loop's receiver: a close sent since the loop last looked still shows.
        tokio::spawn(connection::serve(stream, peer, shared.clone(), stopped.clone(), slot, alive.clone()));
    }
}

/// Beyond a connection limit: a 503 at once, then the door. Under TLS the handshake comes first
/// (offering HTTP/1.1 only), or the answer would be noise to the client.
async fn refuse(stream: tokio::net::TcpStream, tls: Option<Arc<rustls::ServerConfig>>, refusal: Refusal) {
    let (code, message) = match refusal {
        Refusal::Full => ("ERR_TOO_MANY_CONNECTIONS", "the proxy is at its connection limit"),
        Refusal::PerAddress => ("ERR_TOO_MANY_CONNECTIONS_FROM_ADDRESS", "this address has as many connections open as it may"),
    };
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let deadline = Duration::from_secs(1);
    match tls {
        None => answer_and_linger(stream, response).await,
        Some(config) => {
            if let Ok(Ok(stream)) = tokio::time::timeout(deadline, tokio_rustls::TlsAcceptor::from(config).accept(stream)).await {
                answer_and_linger(stream, response).await;
            }
        }
    }
}

/// Writes `response`, closes the writing side, then reads what the client still sends until it
/// closes too (2 s and 64 KiB at most). Closing a socket with unread data in it sends a reset,
/// which can reach the client before the answer does and destroy it.
async fn answer_and_linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, response: String) {
    let deadline = Duration::from_secs(1);
    if !matches!(tokio::time::timeout(deadline, stream.write_all(response.as_bytes())).await, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(deadline, stream.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buffer = [0u8; 4_096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
