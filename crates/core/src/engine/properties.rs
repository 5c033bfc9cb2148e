//! Engine invariants under random use (proptest, over a real loopback upstream, manual clock):
//!
//! - no answer comes from an entry farther than `proximity_km` from the request;
//! - every begun request ends;
//! - the stats identities hold after every step, and the upstream saw exactly the fetches the
//!   counters report;
//! - no two fetches for the same area run at once: concurrent fetch locations are always more
//!   than `proximity_km` minus the rounding error apart;
//! - cooldowns are per area: failing areas each make one call per window, wherever they lie
//!   (one grid cell or several), and their windows double independently.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;

use super::tests::{assert_identity, config, harness_with, Harness};
use super::*;
use crate::geo::{distance_km, max_rounding_error_km, LatLon};
use crate::testing::strategies::offset;
use crate::testing::upstream::{json, weather, Query, Upstream};

/// What the upstream answers for a while.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Behaviour {
    Weather,
    Unavailable,
    RateLimited,
    Garbage,
}

#[derive(Clone, Debug)]
enum Op {
    Get { user: u8, spot: u8, jitter: (f64, f64), mode: Mode },
    /// Simultaneous requests from several users, near one spot or several.
    Burst(Vec<(u8, u8, (f64, f64))>),
    Advance(u64),
    Clear(u8),
    Upstream(Behaviour),
}

/// Spots a few km apart (Paris), so that radii overlap in every way: the same area, a
/// neighbour's area, or none.
const SPOTS: [(f64, f64); 6] = [(48.85, 2.35), (48.87, 2.38), (48.83, 2.30), (48.90, 2.35), (48.85, 2.45), (48.80, 2.41)];
const RADIUS_KM: f64 = 5.0;

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![6 => Just(Mode::Normal), 1 => Just(Mode::ForceRefresh), 1 => Just(Mode::Warmup)]
}

fn jitter() -> impl Strategy<Value = (f64, f64)> {
    (-1.0..=1.0f64, -1.0..=1.0f64)
}

fn op() -> impl Strategy<Value = Op> {
    let spot = 0..SPOTS.len() as u8;
    prop_oneof![
        8 => (0..6u8, spot.clone(), jitter(), mode()).prop_map(|(user, spot, jitter, mode)| Op::Get { user, spot, jitter, mode }),
        4 => prop::collection::vec((0..6u8, spot, jitter()), 2..16).prop_map(Op::Burst),
        3 => prop_oneof![0..120_000u64, 300_000..900_000u64].prop_map(Op::Advance),
        1 => (0..6u8).prop_map(Op::Clear),
        2 => prop_oneof![
            4 => Just(Behaviour::Weather),
            1 => Just(Behaviour::Unavailable),
            1 => Just(Behaviour::RateLimited),
            1 => Just(Behaviour::Garbage),
        ].prop_map(Op::Upstream),
    ]
}

/// The point a request is made at: within 3 km of its spot.
fn point(spot: u8, jitter: (f64, f64)) -> LatLon {
    let (lat, lon) = SPOTS[spot as usize];
    offset(LatLon::new(lat, lon), 3.0 / 2f64.sqrt(), jitter)
}

/// An upstream whose answers follow `behaviour`, and that records every pair of fetches it saw
/// running at once for locations closer than `min_apart_km`.
struct Watched {
    behaviour: Arc<AtomicU8>,
    overlaps: Arc<Mutex<Vec<(LatLon, LatLon)>>>,
}

async fn watched_upstream(min_apart_km: f64) -> (Upstream, Watched) {
    let behaviour = Arc::new(AtomicU8::new(Behaviour::Weather as u8));
    let overlaps = Arc::new(Mutex::new(Vec::new()));
    let running: Arc<Mutex<Vec<(u64, LatLon)>>> = Arc::new(Mutex::new(Vec::new()));
    let (b, o) = (behaviour.clone(), overlaps.clone());
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let upstream = Upstream::start(move |q: Query| {
        let (behaviour, overlaps, running) = (b.load(Ordering::SeqCst), o.clone(), running.clone());
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        let at = LatLon::new(q.lat, q.lon);
        {
            let mut running = running.lock().unwrap();
            for (_, other) in running.iter() {
                if distance_km(at, *other) <= min_apart_km {
                    overlaps.lock().unwrap().push((at, *other));
                }
            }
            running.push((id, at));
        }
        async move {
            // Long enough for other requests of a burst to arrive while this one runs.
            tokio::time::sleep(Duration::from_millis(3)).await;
            running.lock().unwrap().retain(|(other, _)| *other != id);
            match behaviour {
                0 => weather(10.0 + q.lat / 10.0, "Clouds"),
                1 => json(503, "{}"),
                2 => json(429, "{}"),
                _ => json(200, "<html>"),
            }
        }
    })
    .await;
    (upstream, Watched { behaviour, overlaps })
}

/// Awaits a begun request (at most 10 s: "every begun request ends").
async fn finish(begun: Begin) -> Result<Result<Served, RequestError>, TestCaseError> {
    match begun {
        Begin::Ready(result) => Ok(result),
        Begin::Pending(pending) => match tokio::time::timeout(Duration::from_secs(10), pending.wait(true)).await {
            Ok(reply) => Ok(reply.result),
            Err(_) => Err(TestCaseError::fail("a request never ended")),
        },
    }
}

fn check_answer(at: LatLon, result: &Result<Served, RequestError>) -> Result<(), TestCaseError> {
    if let Ok(served) = result {
        let distance = distance_km(at, served.entry.location);
        prop_assert!(distance <= RADIUS_KM, "answered from {:?}, {} km from {:?}", served.entry.location, distance, at);
    }
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let min_apart = RADIUS_KM - max_rounding_error_km(2);
    let (upstream, watched) = watched_upstream(min_apart).await;
    let h: Harness = harness_with(config(|c| c.initial_backoff_ms = 30_000), upstream, None).await;
    let user = |u: u8| format!("user-{u}");
    for op in ops {
        match op {
            Op::Get { user: u, spot, jitter, mode } => {
                let at = point(spot, jitter);
                let name = user(u);
                let begun = h.engine.begin(Request { user: &name, at, mode }, &mut Recorder::new(Level::Silent));
                check_answer(at, &finish(begun).await?)?;
            }
            Op::Burst(requests) => {
                let requests: Vec<(String, LatLon)> =
                    requests.into_iter().map(|(u, spot, jitter)| (user(u), point(spot, jitter))).collect();
                let begun: Vec<(LatLon, Begin)> = requests
                    .iter()
                    .map(|(name, at)| {
                        let request = Request { user: name, at: *at, mode: Mode::Normal };
                        (*at, h.engine.begin(request, &mut Recorder::new(Level::Silent)))
                    })
                    .collect();
                for (at, b) in begun {
                    check_answer(at, &finish(b).await?)?;
                }
            }
            Op::Advance(ms) => h.advance(ms),
            Op::Clear(u) => {
                h.engine.clear_user(&user(u));
            }
            Op::Upstream(behaviour) => watched.behaviour.store(behaviour as u8, Ordering::SeqCst),
        }
        h.settle().await;
        let stats = h.engine.stats();
        assert_identity(&stats);
        prop_assert_eq!(stats.upstream_requests as usize, h.upstream.hits(), "{:?}", stats);
    }
    let overlaps = watched.overlaps.lock().unwrap().clone();
    prop_assert!(overlaps.is_empty(), "concurrent fetches for one area: {:?}", overlaps);
    Ok(())
}

fn block_on<F: std::future::Future<Output = Result<(), TestCaseError>>>(f: F) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_use_keeps_every_invariant(ops in prop::collection::vec(op(), 1..40)) {
        block_on(run(ops))?;
    }

    /// Failing areas far enough apart to be distinct (15 km lattice, inside one 1° grid cell
    /// or across cells) each make one call per window, and each window doubles on its own.
    #[test]
    fn cooldowns_are_per_area(
        grid_deg in prop_oneof![Just(1.0), Just(0.045)],
        areas in prop::sample::subsequence((0..16).collect::<Vec<u8>>(), 1..6),
        requests in prop::collection::vec((any::<prop::sample::Index>(), jitter()), 1..40),
        late in 0..4_999u64,
    ) {
        block_on(async move {
            let upstream = Upstream::start(|_| async { json(503, "{}") }).await;
            let h = harness_with(config(|c| c.grid_deg = grid_deg), upstream, None).await;
            // A lattice 15 km apart, within about 0.6 degrees of (10.3, 10.3).
            let spot = |i: u8| offset(LatLon::new(10.3, 10.3), 30.0, ((i % 4) as f64 / 2.0 - 0.75, (i / 4) as f64 / 2.0 - 0.75));
            let get = |at: LatLon| {
                let begun = h.engine.begin(Request { user: "drone", at, mode: Mode::Normal }, &mut Recorder::new(Level::Silent));
                finish(begun)
            };
            for round in 0..2u32 {
                for &area in &areas {
                    prop_assert!(get(spot(area)).await?.is_err());
                }
                // Many more requests within 2 km of the failing spots, during the window.
                for (index, j) in &requests {
                    let area = *index.get(&areas);
                    let at = offset(spot(area), 2.0 / 2f64.sqrt(), *j);
                    prop_assert!(get(at).await?.is_err());
                }
                let expected = areas.len() * (round as usize + 1);
                prop_assert_eq!(h.upstream.hits(), expected, "one call per area per window");
                // The first window is 5 s, the second 10 s: advancing 5 s + `late` ends the
                // first one only.
                h.advance(5_000 + late);
            }
            h.advance(5_000);
            prop_assert!(get(spot(areas[0])).await?.is_err());
            prop_assert_eq!(h.upstream.hits(), areas.len() * 2 + 1);
            Ok(())
        })?;
    }
}
