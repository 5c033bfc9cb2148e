//! One client connection: hyper's HTTP/1 server with the limits a proxy on the open network
//! needs, and the timeouts and shutdown hyper leaves to us.
//!
//! - The first request head must arrive within the header timeout (hyper's, enforced by its
//!   timer): a client that sends half a head is cut off, not held.
//! - Between requests a keep-alive connection may idle for the idle timeout, then it closes.
//! - Heads are limited in count and size: `routes` answers 431 with a JSON body beyond our
//!   limits; hyper's looser ones only stop a head too big to buffer. Garbage gets 400 and a
//!   close (hyper).
//! - On shutdown a connection with nothing in flight (idle, or half a head) closes at once; one
//!   with a request in flight finishes it (answered `Connection: close`) within the grace.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit};

use super::access_log::Line;
use super::routes::{error, route, Answer, Body};
use super::Shared;

/// The most a head may hold before hyper itself refuses it (431, empty body, outside the
/// counters). Looser than the limits `routes` enforces with a proper answer, so that only a
/// head far past them meets this one: 100 header lines is hyper's default (kept on the stack,
/// where a configured count would cost a heap allocation per request); the head size is
/// checked exactly, the buffer (which one read may overshoot) bounds what is held.
const HYPER_MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a connection closing for idleness may take to flush what it owes a client: one
/// that stops reading must not hold its slot (and a thread's attention) for ever.
const DRAIN: Duration = Duration::from_secs(5);

/// Whether a request is in flight, and until when the connection may idle.
struct Activity {
    busy: AtomicUsize,
    idle_until: Mutex<Instant>,
    idle_timeout: Duration,
    /// Wakes `idle` when a request ends (its deadline moved).
    ended: Notify,
}

impl Activity {
    fn idle_until(&self) -> Instant {
        *self.idle_until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves once the connection has had nothing in flight for the idle timeout. While a
    /// request is in flight it waits for its end alone: no timer ticks however long it takes.
    async fn idle(&self) {
        loop {
            // Created before the checks: an end signalled in between still wakes it.
            let ended = self.ended.notified();
            if self.busy.load(Ordering::Acquire) > 0 {
                ended.await;
                continue;
            }
            let until = self.idle_until();
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = ended => {}
            }
        }
    }
}

/// Marks a request in flight until dropped; its end starts a new idle period.
struct Busy<'a>(&'a Activity);

impl<'a> Busy<'a> {
    fn begin(activity: &'a Activity) -> Busy<'a> {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Busy(activity)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.idle_until.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now() + self.0.idle_timeout;
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

/// Serves one connection until the client leaves, a timeout, or shutdown. `_permit` counts it
/// against the connection limit and `_alive` against shutdown's wait, both until it ends.
pub(super) async fn serve(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
    _permit: OwnedSemaphorePermit,
    _alive: mpsc::Sender<()>,
) {
    let config = &shared.config;
    // Before the first request the header timeout applies; hyper enforces it on the head
    // itself, this only lets an untouched connection go at the same time.
    let activity = Arc::new(Activity {
        busy: AtomicUsize::new(0),
        idle_until: Mutex::new(Instant::now() + config.header_timeout),
        idle_timeout: config.idle_timeout,
        ended: Notify::new(),
    });
    let service = {
        let (shared, activity) = (shared.clone(), activity.clone());
        service_fn(move |request| {
            let (shared, activity) = (shared.clone(), activity.clone());
            async move { Ok::<_, Infallible>(handle(&shared, &activity, request).await) }
        })
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_header_size(HYPER_MAX_HEAD_BYTES)
        .max_buf_size(HYPER_MAX_HEAD_BYTES)
        .keep_alive(true)
        // A client that half-closes after its request (`nc -N`) still gets the answer; the
        // request timeout bounds the wait.
        .half_close(true)
        // Answers are a few hundred bytes: one copy into one buffer, one send (not writev).
        .writev(false)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = connection.as_mut() => break,
            _ = activity.idle(), if deadline.is_none() => {
                // Once: then the connection has `DRAIN` to flush and go, read or not.
                connection.as_mut().graceful_shutdown();
                deadline = Some(Instant::now() + DRAIN);
            }
            _ = stop.changed(), if deadline.is_none() => {
                let grace = stop.borrow().unwrap_or_default();
                connection.as_mut().graceful_shutdown();
                if activity.busy.load(Ordering::Acquire) == 0 {
                    break; // idle, or half a head: nothing to finish
                }
                deadline = Some(Instant::now() + grace);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => break,
        }
    }
    shared.counters.open.fetch_sub(1, Ordering::Relaxed);
}

async fn handle(shared: &Arc<Shared>, activity: &Activity, request: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Body> {
    let _busy = Busy::begin(activity);
    let started = Instant::now();
    shared.counters.requests.inc();
    let answer = match tokio::time::timeout(shared.config.request_timeout, route(shared, &request)).await {
        Ok(answer) => answer,
        Err(_) => Answer {
            response: error(hyper::StatusCode::SERVICE_UNAVAILABLE, "ERR_REQUEST_TIMEOUT", "the request took too long", false),
            path: "/v1/weather",
            source: None,
        },
    };
    if let Some(log) = &shared.access_log {
        let bytes = answer
            .response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        log.record(&Line {
            method: request.method().as_str().to_owned(),
            path: answer.path,
            status: answer.response.status().as_u16(),
            duration_ms: started.elapsed().as_secs_f64() * 1_000.0,
            source: answer.source,
            bytes,
        });
    }
    answer.response
}
