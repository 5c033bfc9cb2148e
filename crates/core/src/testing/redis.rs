//! A real `redis-server` on a free loopback port, for tier tests: no persistence, a temp dir,
//! stopped on drop. Tests that need one are compiled as ignored where the binary is missing
//! (see build.rs), so reaching `start` without it means CI lacks a package: that fails loudly.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    /// Further `redis-server` arguments (`--maxmemory-policy allkeys-lru`, ...).
    extra: Vec<String>,
    child: Option<Child>,
    dir: std::path::PathBuf,
}

/// A free loopback port (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A temp dir of this test process's own.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weather-cache-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Panics (with what to install) unless `tool` runs.
pub fn require(tool: &str) {
    let runs = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    assert!(
        runs,
        "{tool} is missing: install it (apt-get install redis-server redis-sentinel redis-tools; .ci/run does)"
    );
}

impl RedisServer {
    pub fn start(password: Option<&str>) -> RedisServer {
        RedisServer::start_with(password, &[])
    }

    /// With further `redis-server` arguments, e.g. `["--maxmemory-policy", "allkeys-lru"]`.
    pub fn start_with(password: Option<&str>, extra: &[&str]) -> RedisServer {
        require("redis-server");
        let port = free_port();
        let dir = temp_dir(&format!("redis-{port}"));
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        let mut server = RedisServer { port, password: password.map(str::to_owned), extra, child: None, dir };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// An administrator's connection (the server's password, if any), for a test's own commands.
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).unwrap();
        client.get_multiplexed_async_connection().await.expect("the test's own connection")
    }

    /// `kill -9`: no goodbye to the clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        self.child = Some(command.spawn().expect("redis-server starts"));
        wait_for_port(self.port);
    }
}

/// Waits until something accepts connections on the loopback `port`.
pub fn wait_for_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
