//! `--access-log`: one JSON line per request, written by a thread of its own so that a slow disk
//! or reader never holds a response. It says what happened, to whom and how fast (time, request
//! id, client address and name, method, path, status, duration, where the answer came from,
//! bytes); never the query (it holds exact positions and user ids), the token or the key.
//!
//! A line is written whole or counted as dropped (`weather_cache_proxy_access_log_dropped_total`):
//! lines a full queue cannot take are dropped, and so are those a failing target (disk full,
//! closed pipe) refused; the writer carries on with the next ones. Stdout is usually a pipe that
//! Node made non-blocking: when it is full the writer waits for it (poll), it never gives up.
//! `reopen()` (SIGHUP) opens the file again by its path, for logrotate.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use weather_cache_core::cache::iso_date;

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// What one line records.
pub struct Line<'a> {
    pub request_id: &'a str,
    pub client: IpAddr,
    /// `None` without tokens.
    pub client_name: Option<&'a str>,
    pub method: &'a str,
    pub path: &'static str,
    pub protocol: &'static str,
    pub status: u16,
    pub duration_ms: f64,
    pub source: Option<&'static str>,
    /// Body bytes sent (0 for HEAD and 304).
    pub bytes: u64,
}

enum Message {
    Line(String),
    Reopen(mpsc::Sender<Result<(), String>>),
}

#[derive(Clone)]
pub struct AccessLog {
    messages: mpsc::SyncSender<Message>,
    dropped: Arc<AtomicU64>,
    /// A file (reopened on reload), not stdout.
    file: bool,
}

/// Lines queued at most: a burst larger than this while the disk stalls loses lines, not memory.
const QUEUE: usize = 65_536;

impl AccessLog {
    /// Opens the target (a file is appended to and created if needed) and starts the writer
    /// thread, which ends (having written every queued line) once every `AccessLog` clone is
    /// dropped; `written` resolves then.
    pub fn open(target: Target) -> std::io::Result<(AccessLog, oneshot::Receiver<()>)> {
        let file = matches!(target, Target::File(_));
        let mut out = Output::open(target)?;
        let (messages, queue) = mpsc::sync_channel::<Message>(QUEUE);
        let (done, written) = oneshot::channel();
        let dropped = Arc::<AtomicU64>::default();
        let counted = dropped.clone();
        std::thread::Builder::new().name("weather-cache-access-log".into()).spawn(move || {
            let mut batch = Batch::default();
            while let Ok(message) = queue.recv() {
                let mut reopen = None;
                batch.take(message, &mut reopen);
                while reopen.is_none() {
                    match queue.try_recv() {
                        Ok(more) => batch.take(more, &mut reopen),
                        Err(_) => break,
                    }
                }
                let lost = out.write_lines(&batch.text, &batch.ends);
                counted.fetch_add(lost, Ordering::Relaxed);
                batch.clear();
                if let Some(reply) = reopen {
                    let _ = reply.send(out.reopen());
                }
            }
            let _ = done.send(());
        })?;
        Ok((AccessLog { messages, dropped, file }, written))
    }

    pub fn record(&self, line: &Line<'_>) {
        let source = line.source.map_or_else(|| "null".to_owned(), |s| format!("\"{s}\""));
        let name = line.client_name.map_or_else(|| "null".to_owned(), |n| format!("\"{n}\""));
        let method: String = line.method.chars().filter(char::is_ascii_alphabetic).take(16).collect();
        let text = format!(
            "{{\"time\":\"{}\",\"requestId\":\"{}\",\"client\":\"{}\",\"clientName\":{name},\"method\":\"{method}\",\"path\":\"{}\",\"protocol\":\"{}\",\"status\":{},\"durationMs\":{:.3},\"source\":{source},\"bytes\":{}}}\n",
            rfc3339(SystemTime::now()),
            line.request_id,
            line.client,
            line.path,
            line.protocol,
            line.status,
            line.duration_ms,
            line.bytes,
        );
        if self.messages.try_send(Message::Line(text)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Opens the file again by its path (after logrotate moved it), once the lines queued
    /// before are written: `Ok(true)`. Stdout has nothing to reopen (`Ok(false)`, at once,
    /// even while a stalled reader holds the writer). Blocks while the queue is full.
    pub fn reopen(&self) -> Result<bool, String> {
        if !self.file {
            return Ok(false);
        }
        let (reply, result) = mpsc::channel();
        self.messages.send(Message::Reopen(reply)).map_err(|_| "the access log is closed".to_owned())?;
        result.recv().map_err(|_| "the access log writer stopped".to_owned())?.map(|()| true)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Lines gathered for one write, and where each ends.
#[derive(Default)]
struct Batch {
    text: String,
    ends: Vec<usize>,
}

impl Batch {
    fn take(&mut self, message: Message, reopen: &mut Option<mpsc::Sender<Result<(), String>>>) {
        match message {
            Message::Line(line) => {
                self.text.push_str(&line);
                self.ends.push(self.text.len());
            }
            Message::Reopen(reply) => *reopen = Some(reply),
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }
}

enum Output {
    Stdout,
    File { path: PathBuf, file: std::fs::File },
}

impl Output {
    fn open(target: Target) -> std::io::Result<Output> {
        Ok(match target {
            Target::Stdout => Output::Stdout,
            Target::File(path) => {
                let file = append(&path)?;
                Output::File { path, file }
            }
        })
    }

    fn reopen(&mut self) -> Result<(), String> {
        if let Output::File { path, file } = self {
            *file = append(path).map_err(|e| format!("cannot reopen the access log {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Writes `text` (lines ending at `ends`) to the end; returns how many lines were lost:
    /// every line not wholly written when the target failed.
    fn write_lines(&mut self, text: &str, ends: &[usize]) -> u64 {
        let bytes = text.as_bytes();
        let mut written = 0;
        while written < bytes.len() {
            match self.write(&bytes[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_writable(1),
                Err(_) => break,
            }
        }
        lost_lines(ends, written)
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout => write_stdout(bytes),
            Output::File { file, .. } => file.write(bytes),
        }
    }
}

/// fd 1 itself, unbuffered: std's stdout would buffer a line and report a full non-blocking
/// pipe as a failure.
#[cfg(unix)]
fn write_stdout(bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: a plain write(2) of a live slice to fd 1, which the process always has.
    let n = unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(unix))]
fn write_stdout(bytes: &[u8]) -> std::io::Result<usize> {
    let mut out = std::io::stdout().lock();
    let n = out.write(bytes)?;
    out.flush()?;
    Ok(n)
}

/// Lines (ending at `ends`) not wholly within the first `written` bytes.
fn lost_lines(ends: &[usize], written: usize) -> u64 {
    ends.iter().filter(|&&end| end > written).count() as u64
}

fn append(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Waits until `fd` can take more (a reader drained the pipe), or a second passed.
#[cfg(unix)]
fn wait_writable(fd: i32) {
    let mut poll = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: poll(2) on one pollfd that lives for the call.
    unsafe {
        libc::poll(&mut poll, 1, 1_000);
    }
}

#[cfg(not(unix))]
fn wait_writable(_fd: i32) {
    std::thread::sleep(std::time::Duration::from_millis(10));
}

/// `2026-11-22T10:01:02.345Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        iso_date(days),
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reopens_the_file_by_its_path_for_logrotate() {
        let dir = std::env::temp_dir().join(format!("weather-cache-reopen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, rotated) = (dir.join("access.log"), dir.join("access.log.1"));
        let (log, written) = AccessLog::open(Target::File(path.clone())).unwrap();
        let line = |status| Line {
            request_id: "r1",
            client: "192.0.2.7".parse().unwrap(),
            client_name: Some("alpha"),
            method: "GET",
            path: "/v1/weather",
            protocol: "HTTP/1.1",
            status,
            duration_ms: 1.0,
            source: None,
            bytes: 0,
        };
        log.record(&line(200));
        std::fs::rename(&path, &rotated).unwrap();
        log.record(&line(201));
        assert_eq!(log.reopen(), Ok(true));
        log.record(&line(202));
        drop(log);
        written.blocking_recv().unwrap();
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((old.lines().count(), new.lines().count()), (2, 1), "{old}\n{new}");
        let last: serde_json::Value = serde_json::from_str(new.trim()).unwrap();
        assert_eq!((last["status"].as_u64(), last["clientName"].as_str(), last["client"].as_str()), (Some(202), Some("alpha"), Some("192.0.2.7")));
    }

    #[test]
    fn a_failing_target_loses_only_the_lines_it_did_not_take_whole() {
        // Lines "a\n", "bb\n", "ccc\n" end at 2, 5 and 9.
        assert_eq!(lost_lines(&[2, 5, 9], 9), 0);
        assert_eq!(lost_lines(&[2, 5, 9], 5), 1);
        assert_eq!(lost_lines(&[2, 5, 9], 4), 2, "a half-written line counts as lost");
        assert_eq!(lost_lines(&[2, 5, 9], 0), 3);
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_321_320_534)), "2026-11-22T04:22:00.534Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
    }
}
