//! The file: bad files set aside with one warning, an unwritable path warned about once per
//! streak, the last write on close.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::cache::Observation;
use crate::options::{ProviderOption, ServiceOptions};
use crate::provider::CustomProvider;

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weather-cache-snapshot-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

type Seen = Arc<Mutex<Vec<Event>>>;

fn engine(path: &Path, interval: Duration) -> (Engine, Seen) {
    let station = CustomProvider::new("station", |_at| async { Ok(Observation { celsius: 5.0, condition: "Clear".into() }) });
    let options = ServiceOptions { providers: Some(vec![ProviderOption::custom(station)]), ..ServiceOptions::default() };
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let background: BackgroundEvents = Arc::new(move |events| sink.lock().unwrap().extend(events));
    let mut resolved = options.resolve().unwrap();
    resolved.snapshot = Some(SnapshotConfig { path: path.to_owned(), interval });
    (resolved.start(tokio::runtime::Handle::current(), Some(background)).unwrap(), seen)
}

async fn fill(engine: &Engine) {
    let request = crate::engine::Request { user: "u", at: crate::geo::LatLon::new(1.0, 1.0), mode: crate::engine::Mode::Normal };
    if let crate::engine::Begin::Pending(pending) = engine.begin(request, &mut crate::engine::Recorder::new(Level::Silent)) {
        pending.wait(false).await.result.unwrap();
    }
}

fn names(seen: &Seen) -> Vec<&'static str> {
    seen.lock().unwrap().iter().map(Event::name).collect()
}

#[tokio::test]
async fn a_bad_file_is_set_aside_with_one_warning_and_the_next_snapshot_goes_beside_it() {
    let dir = dir("bad");
    let path = dir.join("cache.snap");
    for (bad, reason) in [(&b"garbage"[..], "not a weather-cache snapshot"), (b"weather-cache-snapshot 9 2 0\n{}", "format version 9")] {
        fs::write(&path, bad).unwrap();
        let (engine, seen) = engine(&path, Duration::from_secs(3_600));
        let events = seen.lock().unwrap().clone();
        assert_eq!(events.len(), 1, "{events:?}");
        let Event::SnapshotRejected { reason: said, kept_as, .. } = &events[0] else { panic!("{events:?}") };
        assert!(said.starts_with(reason), "{said}");
        assert_eq!(fs::read(kept_as).unwrap(), bad, "kept aside as it was");
        fill(&engine).await;
        engine.close();
        let state = format::decode(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(state.entries.len(), 1, "the last snapshot, written on close");
        fs::remove_file(kept_as).unwrap();
        fs::remove_file(&path).unwrap();
    }
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unwritable_path_warns_once_per_streak_and_serving_goes_on() {
    let dir = dir("unwritable");
    let path = dir.join("missing-directory").join("cache.snap");
    let (engine, seen) = engine(&path, Duration::from_millis(100));
    fill(&engine).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(names(&seen), ["weather.snapshot.failed"], "one event for the streak");
    fill(&engine).await;
    // The directory appears: writes succeed, and the next failure is a new streak.
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    for _ in 0..100 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(format::decode(&fs::read(&path).unwrap()).is_ok());
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(names(&seen), ["weather.snapshot.failed", "weather.snapshot.failed"]);
    engine.close();
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreadable_file_is_a_cold_start_with_one_warning() {
    let dir = dir("unreadable");
    // A directory where the file should be: it cannot be read as one.
    let path = dir.join("cache.snap");
    fs::create_dir_all(path.join("inside")).unwrap();
    let (engine, seen) = engine(&path, Duration::from_secs(3_600));
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let Event::SnapshotRejected { reason, kept_as, .. } = &events[0] else { panic!("{events:?}") };
    assert!(reason.starts_with("cannot be read"), "{reason}");
    assert!(Path::new(kept_as).join("inside").is_dir(), "moved aside as it was");
    assert_eq!(engine.stats().shared_entries, 0);
    engine.close();
    assert!(format::decode(&fs::read(&path).unwrap()).is_ok(), "the next snapshot in its place");
    let _ = fs::remove_dir_all(&dir);
}
