//! `--access-log`: one JSON line per request, written by a thread of its own so that a slow disk
//! never holds a response. It says what happened and how fast (time, method, path, status,
//! duration, where the answer came from, bytes); never the query (it holds exact positions and
//! user ids), the token or the key. Lines that a full queue cannot take are counted and dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::io::Write;
use std::sync::mpsc;

use tokio::sync::oneshot;

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// What one line records.
pub struct Line {
    pub method: String,
    pub path: &'static str,
    pub status: u16,
    pub duration_ms: f64,
    pub source: Option<&'static str>,
    pub bytes: usize,
}

#[derive(Clone)]
pub struct AccessLog {
    lines: mpsc::SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

/// Lines queued at most: a burst larger than this while the disk stalls loses lines, not memory.
const QUEUE: usize = 65_536;

impl AccessLog {
    /// Opens the target (a file is appended to and created if needed) and starts the writer
    /// thread, which ends (having written every queued line) once every `AccessLog` clone is
    /// dropped; `written` resolves then.
    pub fn open(target: Target) -> std::io::Result<(AccessLog, oneshot::Receiver<()>)> {
        let mut out: Box<dyn Write + Send> = match target {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::File(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (lines, queue) = mpsc::sync_channel::<String>(QUEUE);
        let (done, written) = oneshot::channel();
        std::thread::Builder::new().name("weather-cache-access-log".into()).spawn(move || {
            let mut batch = String::new();
            while let Ok(line) = queue.recv() {
                batch.push_str(&line);
                while let Ok(more) = queue.try_recv() {
                    batch.push_str(&more);
                }
                // A failing target (disk full, closed pipe) ends the log: later lines are
                // counted as dropped, requests carry on.
                if out.write_all(batch.as_bytes()).and_then(|()| out.flush()).is_err() {
                    break;
                }
                batch.clear();
            }
            let _ = done.send(());
        })?;
        Ok((AccessLog { lines, dropped: Arc::default() }, written))
    }

    pub fn record(&self, line: &Line) {
        let source = line.source.map_or_else(|| "null".to_owned(), |s| format!("\"{s}\""));
        let method: String = line.method.chars().filter(char::is_ascii_alphabetic).take(16).collect();
        let text = format!(
            "{{\"time\":\"{}\",\"method\":\"{method}\",\"path\":\"{}\",\"status\":{},\"durationMs\":{:.3},\"source\":{source},\"bytes\":{}}}\n",
            rfc3339(SystemTime::now()),
            line.path,
            line.status,
            line.duration_ms,
            line.bytes,
        );
        if self.lines.try_send(text).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// `2026-11-22T10:01:02.345Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
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
    fn formats_utc_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_321_320_534)), "2026-11-22T04:22:00.534Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
    }
}
