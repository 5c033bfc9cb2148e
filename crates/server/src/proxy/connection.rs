//! One client connection: TLS (when configured), then hyper's HTTP/1 or HTTP/2 server (HTTP/2
//! by ALPN under TLS; plain connections speak HTTP/1.1), with the limits a proxy on the open
//! network needs, and the timeouts and shutdown hyper leaves to us.
//!
//! - The TLS handshake and then the first request head must both arrive within the header
//!   timeout of the connection's accept: a client that sends half of either is cut off, not held.
//! - After a request a keep-alive connection may idle for the idle timeout (its next head
//!   included), then it closes.
//! - Heads are limited in count and size: `routes` answers 431 with a JSON body beyond our
//!   limits; hyper's buffer, a little larger, only stops a head too big to hold. What a
//!   connection holding half a head costs is bounded by that buffer (see the README's figure).
//!   Garbage gets 400 and a close (hyper).
//! - On shutdown a connection with nothing in flight (idle, or half a head) closes at once; one
//!   with a request in flight finishes it (`Connection: close`, or GOAWAY) within the grace.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Body as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::access_log::Line;
use super::admission::Slot;
use super::routes::{self, Body, Context};
use super::Shared;

/// The most of a head hyper buffers before it refuses it itself (431, empty body, outside the
/// counters). Over the 16 KiB `routes` enforces with a proper answer, so that a head a little
/// past that, or a 20 KiB request target, still gets a JSON 431 or 414; it bounds what a client
/// holding half a head pins (hyper's default, 400 KB, would let one pin that much).
const HYPER_MAX_BUF_BYTES: usize = routes::MAX_HEAD_BYTES + 8 * 1024;
/// An HTTP/2 header block's limit, likewise a little over `routes`' own.
const H2_MAX_HEADER_LIST_BYTES: u32 = (routes::MAX_HEAD_BYTES + 4 * 1024) as u32;
/// Concurrent HTTP/2 streams per connection.
const H2_MAX_STREAMS: u32 = 128;
/// How long a connection closing for idleness may take to flush what it owes a client: one
/// that stops reading must not hold its slot (and a thread's attention) for ever.
const DRAIN: Duration = Duration::from_secs(5);

/// The connection builders, made once: HTTP/1.1 (plain, or TLS without `h2`) and HTTP/2.
pub struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    pub fn new() -> Builders {
        let mut http1 = auto::Builder::new(TokioExecutor::new()).http1_only();
        http1
            .http1()
            .timer(TokioTimer::new())
            // Heads are timed by the connection's activity (`drive`), which costs no timer per
            // request; hyper's own would arm one for every head.
            .header_read_timeout(None)
            .max_buf_size(HYPER_MAX_BUF_BYTES)
            .keep_alive(true)
            // A client that half-closes after its request (`nc -N`) still gets the answer; the
            // request timeout bounds the wait.
            .half_close(true)
            // Answers are a few hundred bytes: one copy into one buffer, one send (not writev).
            .writev(false);
        let mut http2 = auto::Builder::new(TokioExecutor::new()).http2_only();
        http2
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(H2_MAX_HEADER_LIST_BYTES)
            // Answers are small: no need to buffer 400 KB per stream for a slow reader.
            .max_send_buf_size(64 * 1024);
        Builders { http1, http2 }
    }
}

/// Whether a request is in flight, and until when the connection may idle. A request only
/// moves the deadline (an atomic store) when it ends; `idle` looks at it when its own timer
/// fires and sleeps again if it moved: no timer is touched, nobody woken, per request.
struct Activity {
    busy: AtomicUsize,
    /// Requests that began on this connection (none: its first head never arrived).
    begun: AtomicUsize,
    /// Until when the connection may idle, in ms since `epoch`.
    idle_until_ms: AtomicU64,
    epoch: Instant,
    idle_timeout: Duration,
}

impl Activity {
    /// A connection's activity, allowed `first` for its first request head to arrive.
    fn new(first: Duration, idle_timeout: Duration) -> Activity {
        Activity {
            busy: AtomicUsize::new(0),
            begun: AtomicUsize::new(0),
            idle_until_ms: AtomicU64::new(first.as_millis() as u64),
            epoch: Instant::now(),
            idle_timeout,
        }
    }

    /// Resolves once the connection has had nothing in flight up to its idle deadline. It
    /// looks at least every idle timeout: a deadline can move earlier too (the first request
    /// ends, and the idle timeout is shorter than what was left of the header timeout).
    async fn idle(&self) {
        loop {
            let until = self.epoch + Duration::from_millis(self.idle_until_ms.load(Ordering::Acquire));
            let now = Instant::now();
            if now < until {
                tokio::time::sleep_until(until.min(now + self.idle_timeout).into()).await;
            } else if self.busy.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(self.idle_timeout).await;
            } else {
                return;
            }
        }
    }
}

/// Marks a request in flight until dropped; its end starts a new idle period.
struct Busy<'a>(&'a Activity);

impl<'a> Busy<'a> {
    fn begin(activity: &'a Activity) -> Busy<'a> {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        activity.begun.fetch_add(1, Ordering::Relaxed);
        Busy(activity)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let until = (self.0.epoch.elapsed() + self.0.idle_timeout).as_millis() as u64;
        self.0.idle_until_ms.store(until, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection until the client leaves, a timeout, or shutdown. `_slot` counts it
/// against the connection limits and `_alive` against shutdown's wait, both until it ends.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<Option<Duration>>,
    _slot: Slot,
    _alive: mpsc::Sender<()>,
) {
    // The handshake and the first head share one deadline: a slow handshake leaves less time
    // for the head, never a second header timeout.
    let first_head_by = Instant::now() + shared.config.header_timeout;
    match shared.tls.as_ref().map(super::tls::Tls::current) {
        None => drive(stream, false, false, peer, &shared, stop, first_head_by).await,
        // Boxed: a TLS connection's state (rustls's buffers, the handshake) is large, and a
        // future holds room for its largest state; plain connections need not pay for it.
        Some(tls) => Box::pin(serve_tls(stream, tls, peer, &shared, stop, first_head_by)).await,
    }
}

async fn serve_tls(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
    first_head_by: Instant,
) {
    let handshake = tokio::time::timeout_at(first_head_by.into(), tokio_rustls::TlsAcceptor::from(tls).accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            _ => {
                shared.counters.tls_failures.inc();
                return;
            }
        },
        _ = stop.changed() => return,
    };
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    drive(stream, true, http2, peer, shared, stop, first_head_by).await;
}

async fn drive<S>(
    io: S,
    tls: bool,
    http2: bool,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
    first_head_by: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    // Before the first request what is left of the header timeout applies, then the idle
    // timeout: a head (or an HTTP/2 stream) that has not arrived by then is not waited for.
    let first = first_head_by.saturating_duration_since(Instant::now());
    let activity = Arc::new(Activity::new(first, config.idle_timeout));
    let protocol = if http2 { "HTTP/2" } else { "HTTP/1.1" };
    let service = {
        let (shared, activity) = (shared.clone(), activity.clone());
        service_fn(move |request| {
            let (shared, activity) = (shared.clone(), activity.clone());
            let context = Context { peer: peer.ip(), tls, protocol };
            async move { Ok::<_, Infallible>(handle(&shared, &activity, request, context).await) }
        })
    };
    let builder = if http2 { &shared.builders.http2 } else { &shared.builders.http1 };
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            // A close is looked at before the connection is polled again: when it comes while
            // an answer is being made, that answer then says `connection: close`, and a client
            // does not send its next request down a connection about to go (picked at random,
            // the answer went out first now and then, without it).
            biased;
            _ = stop.changed(), if deadline.is_none() => {
                let grace = stop.borrow().unwrap_or_default();
                connection.as_mut().graceful_shutdown();
                if activity.busy.load(Ordering::Acquire) == 0 {
                    break; // idle, or half a head: nothing to finish
                }
                deadline = Some(Instant::now() + grace);
            }
            _ = connection.as_mut() => break,
            _ = activity.idle(), if deadline.is_none() => {
                // Nothing was ever asked, so nothing is owed: a client that never finished its
                // first head goes at once (hyper would finish that head first).
                if activity.begun.load(Ordering::Relaxed) == 0 {
                    break;
                }
                // Once: then the connection has `DRAIN` to flush and go, read or not (hyper
                // closes an idle one, or one halfway into its next head, at once).
                connection.as_mut().graceful_shutdown();
                deadline = Some(Instant::now() + DRAIN);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => break,
        }
    }
    shared.counters.open.fetch_sub(1, Ordering::Relaxed);
}

async fn handle(shared: &Arc<Shared>, activity: &Activity, request: hyper::Request<hyper::body::Incoming>, context: Context) -> hyper::Response<Body> {
    let _busy = Busy::begin(activity);
    let started = Instant::now();
    shared.counters.requests.inc();
    let request_id = shared.request_ids.of(request.headers());
    let method = request.method().clone();
    let who = routes::identify(shared, &request, &context);
    let route = who.route;
    let answer = match tokio::time::timeout(shared.config.request_timeout, routes::route(shared, request, &who, &context)).await {
        Ok(answer) => answer,
        Err(_) => routes::timed_out(route, method == hyper::Method::HEAD),
    };
    let mut response = answer.response;
    if let Some(log) = &shared.access_log {
        log.record(&Line {
            request_id: request_id.to_str().unwrap_or("-"),
            client: who.address,
            client_name: who.client.as_ref().map(|c| &*c.name),
            method: method.as_str(),
            path: route.as_str(),
            protocol: context.protocol,
            status: response.status().as_u16(),
            duration_ms: started.elapsed().as_secs_f64() * 1_000.0,
            source: answer.source,
            // What is sent: nothing for HEAD and 304, whatever Content-Length says.
            bytes: response.body().size_hint().exact().unwrap_or(0),
        });
    }
    response.headers_mut().insert(super::request_id::HEADER, request_id);
    response
}

