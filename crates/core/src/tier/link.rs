//! The tier's connection to Redis, and its replacement.
//!
//! A connection is made in the background (with its own, longer deadline, so that a slow TLS
//! handshake is not cut short by the operations' deadline) and then subscribed to the tier's
//! channel and given the scripts. Operations share it. It is replaced:
//! - when the tier says so (`reset`): after a timeout (a socket that died silently, a
//!   partition, a failover behind a NAT: nothing else would ever notice), and after a
//!   failover's answer (`READONLY` from a demoted primary that would otherwise be kept): a new
//!   connection resolves the name again, or asks the sentinels which server is the primary now;
//! - when the connection says it was dropped;
//! - when the last attempt failed, by the next operation (the circuit's probe).
//!
//! An attempt that fails (refused, or no connection within its deadline: a server that accepts
//! and never answers) is told to the tier like a failed operation: it opens the circuit.
//! Otherwise a Redis that can never be connected to would never count as down, and every
//! operation would wait on attempt after attempt.
//!
//! TCP keepalive (see `mod.rs`) catches dead peers while nothing is asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection, SendError};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::Sentinel;
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, PushInfo, PushKind, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::address::Target;

/// A connection to one server (alone, or the primary Sentinel names) or to a Cluster.
#[derive(Clone)]
pub enum Connection {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Connection::Node(c) => c.subscribe(channel).await,
            Connection::Cluster(c) => c.subscribe(channel).await,
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// What a new connection found out about the server, before any operation uses it.
pub struct Setup {
    /// The server refused the subscription (an ACL without the channel).
    pub refused: Option<RedisError>,
    /// `maxmemory-policy` and `maxmemory`, where `CONFIG GET` is allowed.
    pub eviction: Option<(String, u64)>,
}

/// How a connection attempt ended.
pub enum Attempt {
    Made(Setup),
    /// Refused, failed, or not made within the connection's deadline (then a timeout error).
    Failed(RedisError),
}

/// Told how every connection attempt ended (an attempt abandoned for a newer one is not).
pub type OnAttempt = Box<dyn Fn(Attempt) + Send + Sync>;

pub struct Link {
    target: Target,
    /// The sentinels, asked for the primary at every connection (their connections cached).
    sentinel: Option<tokio::sync::Mutex<Sentinel>>,
    channel: String,
    /// Script sources, loaded into every new connection's server(s).
    scripts: Vec<&'static str>,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// Every connection's pushes (pub/sub messages) go here.
    pushes: mpsc::UnboundedSender<PushInfo>,
    current: Mutex<Option<Arc<Slot>>>,
    generations: AtomicU64,
    /// The latest generation whose subscription the server confirmed.
    listening: watch::Sender<u64>,
    on_attempt: OnAttempt,
    runtime: tokio::runtime::Handle,
}

/// One connection (attempt): its generation, and the connection or why there is none, once
/// known.
struct Slot {
    generation: u64,
    started: Instant,
    state: watch::Receiver<Option<Result<Connection, RedisError>>>,
    task: JoinHandle<()>,
}

impl Slot {
    fn ready(&self) -> bool {
        matches!(&*self.state.borrow(), Some(Ok(_)))
    }

    fn failed(&self) -> bool {
        matches!(&*self.state.borrow(), Some(Err(_)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Settings {
    pub channel: String,
    pub scripts: Vec<&'static str>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl Link {
    /// The sentinels of a Sentinel target (checked before the tier is made).
    pub fn sentinels(target: &Target) -> Result<Option<Sentinel>, String> {
        match target {
            Target::Sentinel { sentinels, .. } => Sentinel::build(sentinels.clone())
                .map(Some)
                .map_err(|e| format!("lists no usable sentinel ({})", e.category())),
            _ => Ok(None),
        }
    }

    pub fn new(
        target: Target,
        sentinel: Option<Sentinel>,
        settings: Settings,
        pushes: mpsc::UnboundedSender<PushInfo>,
        on_attempt: OnAttempt,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Link> {
        Arc::new(Link {
            target,
            sentinel: sentinel.map(tokio::sync::Mutex::new),
            channel: settings.channel,
            scripts: settings.scripts,
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            pushes,
            current: Mutex::new(None),
            generations: AtomicU64::new(1),
            listening: watch::Sender::new(0),
            on_attempt,
            runtime,
        })
    }

    /// Starts connecting now (the tier is made eagerly, so that pub/sub is ready early).
    pub fn warm(self: &Arc<Self>) {
        drop(self.slot());
    }

    /// The connection, and its generation (to `reset` it): the current one, or one being made.
    /// A connection that failed is attempted again.
    pub async fn get(self: &Arc<Self>) -> (u64, Result<Connection, RedisError>) {
        let slot = self.slot();
        let mut state = slot.state.clone();
        let result = match state.wait_for(Option::is_some).await {
            Ok(value) => value.clone().expect("waited for Some"),
            Err(_) => Err(RedisError::from((redis::ErrorKind::Io, "the connection attempt ended"))),
        };
        (slot.generation, result)
    }

    fn slot(self: &Arc<Self>) -> Arc<Slot> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(slot) if !slot.failed() => slot.clone(),
            _ => {
                let slot = self.start();
                *current = Some(slot.clone());
                slot
            }
        }
    }

    /// Replaces connection `generation` with a new one, made now, unless it was replaced
    /// already or is still being made (its own deadline is running).
    pub fn reset(self: &Arc<Self>, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|slot| slot.generation == generation && slot.ready()) {
            *current = Some(self.start());
        }
    }

    /// Whether a connection is being made right now.
    pub fn connecting(&self) -> bool {
        self.connecting_since().is_some()
    }

    /// When the connection being made right now was begun, if one is.
    pub fn connecting_since(&self) -> Option<Instant> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|slot| slot.state.borrow().is_none()).map(|slot| slot.started)
    }

    /// How long an attempt to connect may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Resolves once the current connection's subscription is confirmed by the server.
    pub async fn listening(self: &Arc<Self>) {
        let mut listening = self.listening.subscribe();
        loop {
            let generation = self.slot().generation;
            if *listening.borrow_and_update() >= generation {
                return;
            }
            if listening.changed().await.is_err() {
                return;
            }
        }
    }

    fn start(self: &Arc<Self>) -> Arc<Slot> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (sender, state) = watch::channel(None);
        let link = Arc::downgrade(self);
        let timeout = self.connect_timeout;
        let task = self.runtime.spawn(async move {
            let Some(link) = link.upgrade() else { return };
            let result = match tokio::time::timeout(timeout, link.connect(generation)).await {
                Ok(result) => result,
                Err(_) => Err(RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out"))),
            };
            if let Err(error) = &result {
                (link.on_attempt)(Attempt::Failed(error.clone()));
            }
            drop(link);
            sender.send_replace(Some(result));
        });
        Arc::new(Slot { generation, started: Instant::now(), state, task })
    }

    async fn connect(self: &Arc<Self>, generation: u64) -> Result<Connection, RedisError> {
        let pushes = self.push_sender(generation);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_push_sender(pushes.clone());
        let connection = match &self.target {
            Target::Node(info) => {
                // A new client each time: the host name is resolved again.
                let client = Client::open(info.clone())?;
                Connection::Node(client.get_multiplexed_async_connection_with_config(&config).await?)
            }
            Target::Sentinel { service, node, .. } => {
                let sentinel = self.sentinel.as_ref().expect("a sentinel target has sentinels");
                let client = sentinel.lock().await.async_master_for(service, Some(node)).await?;
                Connection::Node(client.get_multiplexed_async_connection_with_config(&config).await?)
            }
            Target::Cluster { nodes, tls, username, password } => {
                let mut builder = ClusterClientBuilder::new(nodes.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(pushes)
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.response_timeout)
                    .tcp_settings(nodes[0].tcp_settings().clone());
                if let Some(username) = username {
                    builder = builder.username(username);
                }
                if let Some(password) = password {
                    builder = builder.password(password);
                }
                if *tls {
                    builder = builder.tls(redis::TlsMode::Secure);
                }
                Connection::Cluster(builder.build()?.get_async_connection().await?)
            }
        };
        // The subscription, and, at the same time (one round trip more in all): the scripts,
        // loaded ahead so that the first run of each is one round trip (EVALSHA), not two, and
        // how the server evicts. A pipeline on one server, each answer on its own (a refused
        // SCRIPT or CONFIG is no failure: EVALSHA falls back to EVAL by itself); on a Cluster,
        // command by command (each goes to every node).
        let mut subscriber = connection.clone();
        let subscribed = subscriber.subscribe(&self.channel);
        let mut setup = redis::pipe();
        for script in &self.scripts {
            setup.cmd("SCRIPT").arg("LOAD").arg(*script);
        }
        setup.cmd("CONFIG").arg("GET").arg("maxmemory*");
        let mut loader = connection.clone();
        let loaded = async {
            match &mut loader {
                Connection::Node(node) => setup.ignore_errors().query_async::<Vec<RedisResult<Value>>>(node).await,
                Connection::Cluster(cluster) => {
                    let mut answers = Vec::new();
                    for command in setup.cmd_iter() {
                        answers.push(command.query_async::<Value>(cluster).await);
                    }
                    Ok(answers)
                }
            }
        };
        let (subscribed, answers) = tokio::join!(subscribed, loaded);
        let refused = match subscribed {
            Ok(()) => {
                self.listening.send_modify(|g| *g = (*g).max(generation));
                None
            }
            // Refused (an ACL without the channel): the tier works without announcements;
            // waiters poll.
            Err(error) if matches!(error.kind(), redis::ErrorKind::Server(_) | redis::ErrorKind::Extension) => {
                Some(error)
            }
            Err(error) => return Err(error),
        };
        let answers = answers?;
        let eviction = answers.into_iter().last().and_then(Result::ok).and_then(eviction_policy);
        (self.on_attempt)(Attempt::Made(Setup { refused, eviction }));
        Ok(connection)
    }

    /// Forwards the connection's pushes, and notices when it is dropped.
    fn push_sender(
        self: &Arc<Self>,
        generation: u64,
    ) -> impl Fn(PushInfo) -> Result<(), SendError> + Clone + Send + Sync + 'static {
        let link: Weak<Link> = Arc::downgrade(self);
        let pushes = self.pushes.clone();
        move |push: PushInfo| {
            if push.kind == PushKind::Disconnection {
                if let Some(link) = link.upgrade() {
                    link.reset(generation);
                }
            }
            pushes.send(push).map_err(|_| SendError)
        }
    }
}

/// `maxmemory-policy` and `maxmemory` from `CONFIG GET maxmemory*` (a map in RESP3, a flat array
/// in RESP2).
fn eviction_policy(reply: Value) -> Option<(String, u64)> {
    let pairs: Vec<(String, String)> = match reply {
        Value::Map(pairs) => pairs.into_iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
        Value::Array(items) => {
            items.chunks(2).filter_map(|kv| Some((text(kv.first()?.clone())?, text(kv.get(1)?.clone())?))).collect()
        }
        _ => return None,
    };
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Some((get("maxmemory-policy")?, get("maxmemory").and_then(|m| m.parse().ok()).unwrap_or(0)))
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}
