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
async fn a_directory_at_the_path_is_a_cold_start_with_one_warning_and_left_alone() {
    let dir = dir("unreadable");
    // A directory where the file should be (`--snapshot /var/lib/weather-cache`): someone's,
    // so neither renamed nor replaced.
    let path = dir.join("cache.snap");
    fs::create_dir_all(path.join("inside")).unwrap();
    let (engine, seen) = engine(&path, Duration::from_millis(100));
    fill(&engine).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let Event::SnapshotRejected { reason, kept_as, .. } = &events[0] else { panic!("{events:?}") };
    assert!(reason.starts_with("not a regular file"), "{reason}");
    assert_eq!(kept_as, "");
    assert_eq!(engine.stats().shared_entries, 1, "serving goes on");
    engine.close();
    assert!(path.join("inside").is_dir(), "left where it was");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "nothing beside it: {:?}", fs::read_dir(&dir).unwrap().collect::<Vec<_>>());
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn two_services_of_one_process_on_one_path_do_not_write_into_each_others_temporary_file() {
    let dir = dir("two");
    let path = dir.join("cache.snap");
    let (first, first_seen) = engine(&path, Duration::from_millis(100));
    let (second, second_seen) = engine(&path, Duration::from_millis(100));
    fill(&first).await;
    fill(&second).await;
    // Both write, often at once, for a while: with one temporary file per process a rename
    // would take the other's file away (ENOENT) or half of it.
    let writers: Vec<_> = [(&first, &first_seen), (&second, &second_seen)]
        .into_iter()
        .map(|(engine, seen)| {
            let snapshotter = start_writer(engine, &path, seen);
            std::thread::spawn(move || (0..200).for_each(|_| snapshotter.write(false)))
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    first.close();
    second.close();
    let failed = |seen: &Seen| names(seen).into_iter().filter(|n| *n == "weather.snapshot.failed").count();
    assert_eq!((failed(&first_seen), failed(&second_seen)), (0, 0), "{:?} {:?}", names(&first_seen), names(&second_seen));
    assert_eq!(format::decode(&fs::read(&path).unwrap()).unwrap().entries.len(), 1, "last writer wins, whole");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
    let _ = fs::remove_dir_all(&dir);
}

/// A writer of `engine`'s state to `path`, beside the one `engine` runs itself; its events go to `seen`.
fn start_writer(engine: &Engine, path: &Path, seen: &Seen) -> Arc<Snapshotter> {
    let sink = seen.clone();
    let background: BackgroundEvents = Arc::new(move |events| sink.lock().unwrap().extend(events));
    Arc::new(Snapshotter { engine: engine.clone(), path: path.to_owned(), background: Some(background), writing: Mutex::default() })
}
