//! Warm restarts for a single instance (no Redis): the engine's state (see
//! `engine/snapshot.rs`) written to a file every `interval` and when the service closes, and
//! read back when it starts. A restart then answers known areas without an upstream call, keeps
//! a 429 cooldown the provider asked for, and does not hand out a day's budget twice.
//!
//! The file is replaced atomically (a temporary file in the same directory, fsync, rename, fsync
//! of the directory): a crash, even `kill -9` mid-write, leaves the previous snapshot or the new
//! one, never half of one. A file that cannot be used gives one warning and a cold start; it is
//! renamed aside (`<file>.rejected-<ms>`) for someone to look at, never written over. A path
//! that cannot be written gives one warning per streak of failures; serving goes on.

mod format;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::engine::{BackgroundEvents, Engine, Event, Level};

pub use format::{Rejected, VERSION};

/// Where, and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotConfig {
    pub path: PathBuf,
    pub interval: Duration,
}

pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// Shorter intervals would mostly measure the disk.
pub const MIN_INTERVAL_MS: u64 = 100;

/// Writes an engine's snapshots. Lives as long as its periodic task (until the engine closes).
pub struct Snapshotter {
    engine: Engine,
    path: PathBuf,
    background: Option<BackgroundEvents>,
    /// One write at a time (the periodic one and the last one may meet).
    writing: Mutex<Writer>,
}

#[derive(Default)]
struct Writer {
    /// The last write failed: the next failure says nothing.
    failing: bool,
    /// The file at `path` was rejected and could not be moved aside: never write over it.
    blocked: bool,
}

/// Loads the snapshot at `config.path` into `engine` (a cold start if there is none or it
/// cannot be used), then writes one every `config.interval` (on `runtime`) and a last one
/// when the engine closes.
pub fn start(
    engine: &Engine,
    config: &SnapshotConfig,
    runtime: &tokio::runtime::Handle,
    background: Option<BackgroundEvents>,
) -> Arc<Snapshotter> {
    let snapshotter = Arc::new(Snapshotter {
        engine: engine.clone(),
        path: config.path.clone(),
        background,
        writing: Mutex::new(Writer::default()),
    });
    snapshotter.load();
    // Held by the engine until `close()` runs it (the periodic task may be gone by then).
    let last = snapshotter.clone();
    engine.before_close(Box::new(move || last.write(true)));
    let periodic = snapshotter.clone();
    let interval = config.interval;
    let mut closed = engine.closed_signal();
    runtime.spawn(async move {
        loop {
            tokio::select! {
                _ = closed.wait_for(|closed| *closed) => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let writer = periodic.clone();
            // File I/O off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || writer.write(false)).await;
        }
    });
    snapshotter
}

impl Snapshotter {
    /// Writes the engine's state now. `last`: the one `close()` writes (the engine is closed,
    /// its caches not yet freed); otherwise nothing is written once the engine closed, so that
    /// a late periodic write never replaces the last one with an empty state.
    pub fn write(&self, last: bool) {
        let mut writer = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.blocked || (!last && self.engine.is_closed()) {
            return;
        }
        let bytes = format::encode(&self.engine.save(), wall_clock_ms());
        match write_atomically(&self.path, &bytes) {
            Ok(()) => writer.failing = false,
            Err(error) => {
                if !writer.failing {
                    writer.failing = true;
                    self.emit(Event::SnapshotFailed { path: self.shown(), reason: error.to_string() });
                }
            }
        }
    }

    fn load(&self) {
        remove_leftovers(&self.path);
        // A directory (or a device, a socket) at the path is not a snapshot someone can look
        // at later: it is someone's, so it is neither moved nor written over.
        if fs::metadata(&self.path).is_ok_and(|m| !m.is_file()) {
            self.writing.lock().unwrap_or_else(PoisonError::into_inner).blocked = true;
            let reason = "not a regular file (left where it is; no snapshot is written)".to_owned();
            return self.emit(Event::SnapshotRejected { path: self.shown(), reason, kept_as: String::new() });
        }
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return,
            Err(error) => return self.reject(&format!("cannot be read ({error})")),
        };
        match format::decode(&bytes) {
            Ok(state) => {
                let restored = self.engine.restore(state);
                self.emit(Event::SnapshotRestored {
                    path: self.shown(),
                    entries: restored.entries,
                    dropped: restored.dropped,
                });
            }
            Err(rejected) => self.reject(&rejected.to_string()),
        }
    }

    /// A file that cannot be used: moved aside, or left alone and never written over.
    fn reject(&self, reason: &str) {
        let aside = aside_name(&self.path, wall_clock_ms());
        let kept_as = match fs::rename(&self.path, &aside) {
            Ok(()) => aside.display().to_string(),
            Err(_) => {
                self.writing.lock().unwrap_or_else(PoisonError::into_inner).blocked = true;
                String::new()
            }
        };
        self.emit(Event::SnapshotRejected { path: self.shown(), reason: reason.to_owned(), kept_as });
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn emit(&self, event: Event) {
        let level = self.engine.config().log_level;
        if let (Some(background), true) = (&self.background, event.level() >= level && level != Level::Silent) {
            background(vec![event]);
        }
    }
}

/// `dir/.name.tmp-<pid>-<n>`: in the same directory (a rename across file systems is a copy),
/// one per write (two processes on one path, or two services of one process, do not write
/// into each other's temporary file).
fn temporary(path: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

fn aside_name(path: &Path, now: i64) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}.rejected-{now}"))
}

/// Temporary files of processes killed mid-write.
fn remove_leftovers(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(listing) = fs::read_dir(dir) else { return };
    for entry in listing.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let writer = file_name.strip_prefix(&prefix).map(|rest| rest.split('-').next().unwrap_or(""));
        let leftover = writer.is_some_and(|pid| pid != std::process::id().to_string());
        if leftover {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = temporary(path);
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
        return written;
    }
    // The rename itself is durable once the directory is (best effort: not every platform
    // opens directories).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
