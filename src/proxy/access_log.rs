//! `--access-log`: one JSON line per request, written by a task of its own so that a slow disk
//! never holds a response. It says what happened and how fast (time, method, path, status,
//! duration, where the answer came from, bytes); never the query (it holds exact positions and
//! user ids), the token or the key. Lines that a full queue cannot take are counted and dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

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
    lines: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

/// Lines queued at most: a burst larger than this while the disk stalls loses lines, not memory.
const QUEUE: usize = 65_536;

impl AccessLog {
    /// Opens the target (a file is appended to and created if needed) and starts the writer,
    /// which ends (having written every queued line) once every `AccessLog` clone is dropped.
    pub async fn open(target: Target) -> std::io::Result<(AccessLog, tokio::task::JoinHandle<()>)> {
        let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match target {
            Target::Stdout => Box::new(tokio::io::stdout()),
            Target::File(path) => {
                Box::new(tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?)
            }
        };
        let (lines, mut queue) = mpsc::channel::<String>(QUEUE);
        let writer = tokio::spawn(async move {
            let mut batch = String::new();
            while let Some(line) = queue.recv().await {
                batch.push_str(&line);
                while let Ok(more) = queue.try_recv() {
                    batch.push_str(&more);
                }
                if out.write_all(batch.as_bytes()).await.is_err() {
                    return;
                }
                let _ = out.flush().await;
                batch.clear();
            }
        });
        Ok((AccessLog { lines, dropped: Arc::default() }, writer))
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
