//! A loopback HTTP server for `cargo test` that speaks whatever its handler answers (OpenWeather
//! One Call 3.0 by default; Open-Meteo and MET Norway with their bodies): real sockets,
//! real reqwest, and a handler per test that decides each answer (and may hold it back).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the handler saw.
#[derive(Clone, Debug)]
pub struct Query {
    pub lat: f64,
    pub lon: f64,
    pub appid: String,
    pub target: String,
    /// The request head's header lines, as sent.
    pub headers: Vec<(String, String)>,
}

impl Query {
    /// A request header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub enum Answer {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Sends headers announcing a long body, half of it, then closes the connection.
    ResetMidBody,
}

pub fn weather(celsius: f64, main: &str) -> Answer {
    json(
        200,
        &format!(r#"{{"lat":0,"lon":0,"current":{{"temp":{celsius},"weather":[{{"id":800,"main":"{main}"}}]}}}}"#),
    )
}

/// OpenWeather's 429, with a `Retry-After` in seconds.
pub fn rate_limited(retry_after_s: u32) -> Answer {
    Answer::Respond {
        status: 429,
        headers: vec![("Retry-After".into(), retry_after_s.to_string())],
        body: br#"{"cod":429}"#.to_vec(),
    }
}

pub fn json(status: u16, body: &str) -> Answer {
    Answer::Respond {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

type Handler = Arc<dyn Fn(Query) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

pub struct Upstream {
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<Query>>>,
}

/// A flag read at every request: flip it to change what a `switched` upstream answers.
#[derive(Clone, Default)]
pub struct Switch(Arc<AtomicBool>);

impl Switch {
    pub fn new(on: bool) -> Switch {
        Switch(Arc::new(AtomicBool::new(on)))
    }

    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }
}

impl Upstream {
    /// Answers `on()` while the switch is on, `off()` otherwise.
    pub async fn switched(switch: &Switch, on: fn() -> Answer, off: fn() -> Answer) -> Upstream {
        let switch = switch.clone();
        Upstream::start(move |_| {
            let answer = if switch.0.load(Ordering::SeqCst) { on() } else { off() };
            async move { answer }
        })
        .await
    }

    pub async fn start<F, Fut>(handler: F) -> Upstream
    where
        F: Fn(Query) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(move |q| Box::pin(handler(q)));
        let seen = queries.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), seen.clone()));
            }
        });
        Upstream { addr, queries }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.queries.lock().unwrap().len()
    }

    pub fn queries(&self) -> Vec<Query> {
        self.queries.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, handler: Handler, seen: Arc<Mutex<Vec<Query>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let param = |name: &str| {
        target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("")
            .to_owned()
    };
    // OpenWeather and MET Norway say lat/lon, Open-Meteo latitude/longitude.
    let coordinate = |short: &str, long: &str| {
        let text = param(short);
        (if text.is_empty() { param(long) } else { text }).parse().unwrap_or(f64::NAN)
    };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let query = Query {
        lat: coordinate("lat", "latitude"),
        lon: coordinate("lon", "longitude"),
        appid: param("appid"),
        target: target.clone(),
        headers,
    };
    seen.lock().unwrap().push(query.clone());
    match handler(query).await {
        Answer::Respond { status, headers, body } => {
            let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&body);
            let _ = stream.write_all(&bytes).await;
        }
        Answer::ResetMidBody => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"current\":{\"te").await;
            let _ = stream.set_zero_linger();
        }
    }
    let _ = stream.shutdown().await;
}
