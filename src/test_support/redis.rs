//! A real `redis-server` on a free loopback port, for tier tests: no persistence, a temp dir,
//! stopped on drop. Without the binary the tests skip loudly, unless `CI` is set: in CI they
//! must run (`.ci/run` installs Debian's `redis-server`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// `None` (with a message) when `redis-server` is missing outside CI.
    pub fn start(password: Option<&str>) -> Option<RedisServer> {
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            assert!(std::env::var_os("CI").is_none(), "CI is set but redis-server is missing: install it (.ci/run does)");
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server); tier tests did not run");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("weather-cache-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer { port, password: password.map(str::to_owned), child: None, dir };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
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
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        self.child = Some(command.spawn().expect("redis-server starts"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
