//! `serve` running, the same for the binary and the npm CLI: the engine and the proxy started
//! from a `ServeConfig`, events written as JSON lines on stderr (pino's shape), and what
//! SIGINT/SIGTERM (`shutdown`) and SIGHUP (`reload`) do. Who listens for the signals is the
//! caller's business (tokio in the binary, Node in the CLI).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weather_cache_core::engine::{BackgroundEvents, Engine, Event, Field, Level};

use crate::cli::{Exit, Program, ServeConfig};
use crate::proxy::{KeepAlive, Proxy, SetupError};

/// How long requests in flight may take to finish after SIGINT/SIGTERM (after `--drain-delay`).
pub const GRACE: Duration = Duration::from_secs(10);

/// A running `serve`.
pub struct Server {
    proxy: Arc<Proxy>,
    engine: Engine,
    program: Program,
    log: Arc<JsonLog>,
    url: String,
}

impl Server {
    /// Starts the engine (on `runtime`) and the proxy (on threads of its own), prints the
    /// warnings and where it listens. Fails as a usage error (exit 2) on an option the core
    /// refuses, an address that cannot be bound, or a file that cannot be loaded.
    pub fn start(config: ServeConfig, runtime: tokio::runtime::Handle, keep_alive: KeepAlive) -> Result<Server, Exit> {
        let program = config.program;
        let level = config.service.log_level.unwrap_or(Level::Info);
        let log = Arc::new(JsonLog::start(level));
        for warning in config.warnings.iter().filter(|_| Level::Warn >= level) {
            // Written before "listening" shows: a supervisor that reads that line has these too.
            print(2, &log.format(Level::Warn, warning, &[]));
        }
        let resolved = config.service.clone().resolve().map_err(|e| config.options_error(&e))?;
        let sink = log.clone();
        let background: BackgroundEvents = Arc::new(move |events: Vec<Event>| events.iter().for_each(|e| sink.event(e)));
        let engine = resolved.start(runtime, Some(background.clone())).map_err(|e| config.options_error(&e))?;
        let (host, port) = (config.proxy.host.clone(), config.proxy.port);
        let proxy = match Proxy::start(engine.clone(), config.proxy, Some(background), keep_alive) {
            Ok(proxy) => proxy,
            Err(error) => {
                engine.close();
                return Err(Exit::usage(program, &listen_error(&error, &host, port)));
            }
        };
        let shown_host = if host.contains(':') { format!("[{host}]") } else { host };
        let scheme = if proxy.is_tls() { "https" } else { "http" };
        let url = format!("{scheme}://{shown_host}:{}", proxy.local_addr().port());
        print(1, &format!("{}: listening on {url} (GET /v1/weather, /v1/status, /metrics, /healthz, /readyz)\n", program.command));
        Ok(Server { proxy, engine, program, log, url })
    }

    /// `http://host:port` (`https://` with TLS), the port resolved.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// SIGINT/SIGTERM: `/readyz` turns 503, `--drain-delay` passes, no new connections, idle
    /// ones closed, requests in flight finish (within `GRACE`), the cache closes.
    pub async fn shutdown(&self, signal: &str) {
        print(1, &format!("{}: {signal}, finishing requests in flight\n", self.program.command));
        self.proxy.close(GRACE).await;
        self.engine.close();
        let log = self.log.clone();
        let _ = tokio::task::spawn_blocking(move || log.flush()).await;
    }

    /// SIGHUP: rereads the tokens file and the certificate, reopens the access log; says how
    /// it went on stderr. Blocking (file reads).
    pub fn reload(&self) {
        let done = self.proxy.reload();
        if !done.errors.is_empty() {
            self.log.line(Level::Warn, &format!("reload: {}", done.errors.join("; ")), &[]);
            return;
        }
        let parts: Vec<String> = [
            done.clients.map(|n| format!("{n} clients")),
            done.certificate.then(|| "the certificate".to_owned()),
            done.access_log.then(|| "the access log".to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let what = if parts.is_empty() { "nothing (no file to reread)".to_owned() } else { parts.join(", ") };
        self.log.line(Level::Info, &format!("SIGHUP, reloaded {what}"), &[]);
    }
}

/// Why binding failed, naming the address and port (`EADDRINUSE 127.0.0.1:8080`).
fn listen_error(error: &std::io::Error, host: &str, port: u16) -> String {
    if let Some(setup) = error.get_ref().and_then(|e| e.downcast_ref::<SetupError>()) {
        return setup.message.clone();
    }
    let address = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("listen EADDRINUSE: {address} is already in use (another process listens there: pick another --port, or stop it)")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            format!("listen EADDRNOTAVAIL: {address} is not an address of this machine (--host)")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("listen EACCES: not allowed to listen on {address} (ports below 1024 need privileges)")
        }
        _ => format!("cannot listen on {address}: {error}"),
    }
}

/// Events and messages as pino writes them: `{"level":40,"time":…,"pid":…,"msg":…, fields}`.
/// Lines are written by a thread of their own: a stderr nobody reads (a full pipe) must not
/// stall the threads that answer requests; past `QUEUED` lines waiting, new ones are dropped.
struct JsonLog {
    level: Level,
    lines: SyncSender<Message>,
}

enum Message {
    Line(String),
    /// Answered once every line before it is written.
    Flush(std::sync::mpsc::Sender<()>),
}

const QUEUED: usize = 4_096;

impl JsonLog {
    fn start(level: Level) -> JsonLog {
        let (lines, queue) = sync_channel::<Message>(QUEUED);
        let _ = std::thread::Builder::new().name("weather-cache-log".into()).spawn(move || {
            for message in queue {
                match message {
                    Message::Line(text) => print(2, &text),
                    Message::Flush(done) => drop(done.send(())),
                }
            }
        });
        JsonLog { level, lines }
    }

    fn event(&self, event: &Event) {
        self.line(event.level(), event.name(), &event.fields());
    }

    fn line(&self, level: Level, msg: &str, fields: &[(&str, Field<'_>)]) {
        if level < self.level || level == Level::Silent {
            return;
        }
        let _ = self.lines.try_send(Message::Line(self.format(level, msg, fields)));
    }

    /// Waits (a second at most) until the lines logged so far are written.
    fn flush(&self) {
        let (done, written) = std::sync::mpsc::channel();
        if self.lines.send(Message::Flush(done)).is_ok() {
            let _ = written.recv_timeout(Duration::from_secs(1));
        }
    }

    fn format(&self, level: Level, msg: &str, fields: &[(&str, Field<'_>)]) -> String {
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        // pino's order: level, time, pid, msg, then the event's fields.
        let quoted = |text: &str| serde_json::Value::from(text).to_string();
        let mut text = format!("{{\"level\":{},\"time\":{time},\"pid\":{},\"msg\":{}", level.pino(), std::process::id(), quoted(msg));
        for (name, value) in fields {
            let value = match value {
                Field::Text(text) => quoted(text),
                Field::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => format!("{}", *n as i64),
                Field::Number(n) if n.is_finite() => format!("{n}"),
                Field::Number(_) => "null".to_owned(),
            };
            text.push_str(&format!(",{}:{value}", quoted(name)));
        }
        text.push_str("}\n");
        text
    }
}

/// Writes all of `text` to fd 1 or 2 unbuffered, waiting when Node left the pipe non-blocking
/// and it is full (std's writer would fail on EAGAIN).
pub fn print(fd: i32, text: &str) {
    #[cfg(unix)]
    {
        let mut bytes = text.as_bytes();
        while !bytes.is_empty() {
            // SAFETY: write(2) of a live slice to a descriptor the process always has.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n >= 0 {
                bytes = &bytes[n as usize..];
                continue;
            }
            match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::Interrupted => {}
                std::io::ErrorKind::WouldBlock => {
                    let mut poll = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                    // SAFETY: poll(2) on one pollfd that lives for the call.
                    unsafe { libc::poll(&mut poll, 1, 1_000) };
                }
                _ => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        use std::io::Write;
        let _ = if fd == 1 { std::io::stdout().write_all(text.as_bytes()) } else { std::io::stderr().write_all(text.as_bytes()) };
    }
}
