//! A TCP relay between the code under test and a real server, to make the server fail the way
//! production networks do: replies held back (latency), replies lost, the open connections
//! black-holed (no byte either way, no RST: what a partition or a failover behind a NAT looks
//! like) while new connections work, and new connections sent elsewhere (a DNS name that moved
//! to another server after a failover).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub struct Relay {
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    /// Where new connections go.
    target: Mutex<SocketAddr>,
    /// How long each reply is held back.
    latency: Mutex<Duration>,
    /// Replies (server to client) are read and thrown away.
    drop_replies: AtomicBool,
    accepted: AtomicUsize,
    /// One flag per connection made so far: set, it forwards nothing either way.
    holes: Mutex<Vec<Arc<AtomicBool>>>,
    /// The pumps of every connection, stopped with the relay.
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection to `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            latency: Mutex::new(Duration::ZERO),
            drop_replies: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            holes: Mutex::default(),
            pumps: Mutex::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Relay { port, shared, accept }
    }

    /// `redis://127.0.0.1:<port>/0` through the relay.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Holds every reply back this long from now on (0: none).
    pub fn set_latency(&self, latency: Duration) {
        *self.shared.latency.lock().unwrap() = latency;
    }

    /// Throws replies away (requests still reach the server).
    pub fn drop_replies(&self, drop: bool) {
        self.shared.drop_replies.store(drop, Ordering::SeqCst);
    }

    /// Every connection open now stops passing bytes, both ways, and stays open; connections
    /// made afterwards work.
    pub fn black_hole_open_connections(&self) {
        for hole in self.shared.holes.lock().unwrap().iter() {
            hole.store(true, Ordering::SeqCst);
        }
    }

    /// New connections go to `target`; open ones stay where they are.
    pub fn switch_to(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        for pump in self.shared.pumps.lock().unwrap().drain(..) {
            pump.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let target = *shared.target.lock().unwrap();
        let Ok(server) = TcpStream::connect(target).await else { continue };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let hole = Arc::new(AtomicBool::new(false));
        shared.holes.lock().unwrap().push(hole.clone());
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let requests = tokio::spawn(pump(client_read, server_write, hole.clone(), None));
        let replies = tokio::spawn(pump(server_read, client_write, hole, Some(shared.clone())));
        shared.pumps.lock().unwrap().extend([requests, replies]);
    }
}

/// Copies `from` to `to` until either side closes. Replies (`shared` given) may be delayed or
/// dropped; a black-holed connection keeps reading (so that the sender sees no back-pressure,
/// as on a network that loses packets) and writes nothing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hole: Arc<AtomicBool>,
    shared: Option<Arc<Shared>>,
) {
    // Delayed chunks go through a queue with their due time, so that order is kept.
    let (queue, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer_hole = hole.clone();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if writer_hole.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hole.load(Ordering::SeqCst) {
            continue;
        }
        let (delay, dropped) = match &shared {
            Some(shared) => (*shared.latency.lock().unwrap(), shared.drop_replies.load(Ordering::SeqCst)),
            None => (Duration::ZERO, false),
        };
        if dropped {
            continue;
        }
        if queue.send((Instant::now() + delay, buffer[..n].to_vec())).is_err() {
            break;
        }
    }
    // A black-holed connection never closes on its own: the peer sees nothing at all.
    if hole.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    drop(queue);
    let _ = writer.await;
}
