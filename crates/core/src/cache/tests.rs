use std::num::NonZeroUsize;
use std::sync::Arc;

use super::shared::PER_CELL;
use super::*;
use crate::geo::{distance_km, Grid, LatLon};
use crate::testing::strategies::{direction, grid_and_radius, offset, point};
use proptest::prelude::*;

fn entry(grid: &Grid, lat: f64, lon: f64, fetched_at: Millis) -> Arc<Entry> {
    let location = LatLon::new(lat, lon);
    Arc::new(Entry {
        cell: grid.cell_of(location),
        location,
        celsius: 10.0,
        summary: Summary::from_observation(&Observation { condition: "Clear".into(), celsius: 10.0 }),
        provider: "test",
        fetched_at,
        expires_at: fetched_at + 600_000,
        stale_until: fetched_at + 7_200_000,
        terms: None,
        products: None,
    })
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn ignore(_: f64, _: bool) {}

#[test]
fn shared_prefers_fresh_then_nearest() {
    let grid = Grid::new(0.045);
    let mut shared = SharedCache::new(nz(10));
    let stale_near = entry(&grid, 10.0, 10.0, 0);
    let fresh_far = entry(&grid, 10.03, 10.03, 700_000);
    let fresh_near = entry(&grid, 10.0, 10.09, 700_000);
    for e in [&stale_near, &fresh_far, &fresh_near] {
        shared.insert(e.clone());
    }
    let now = 800_000;
    let found = shared.find(&grid, LatLon::new(10.0, 10.06), 5.0, now, &mut ignore).unwrap();
    assert!(Arc::ptr_eq(&found.entry, &fresh_near));
    assert_eq!(found.freshness, Freshness::Fresh);
    let found = shared.find(&grid, LatLon::new(10.0, 10.0), 5.0, now, &mut ignore).unwrap();
    assert!(Arc::ptr_eq(&found.entry, &fresh_far), "fresh at 4.7 km beats stale at 0 km");
    assert!(shared.find(&grid, LatLon::new(10.0, 10.0), 5.0, 8_000_000, &mut ignore).is_none(), "expired");
}

#[test]
fn shared_evicts_least_recently_used() {
    let grid = Grid::new(0.045);
    let mut shared = SharedCache::new(nz(2));
    let (a, b, c) = (entry(&grid, 0.0, 0.0, 0), entry(&grid, 1.0, 1.0, 0), entry(&grid, 2.0, 2.0, 0));
    shared.insert(a.clone());
    shared.insert(b.clone());
    assert!(shared.find(&grid, a.location, 1.0, 0, &mut ignore).is_some()); // a is now the most recent
    shared.insert(c.clone());
    assert_eq!(shared.len(), 2);
    assert!(shared.find(&grid, b.location, 1.0, 0, &mut ignore).is_none(), "b was evicted");
    assert!(shared.find(&grid, a.location, 1.0, 0, &mut ignore).is_some());
    assert!(shared.find(&grid, c.location, 1.0, 0, &mut ignore).is_some());
}

#[test]
fn a_refresh_replaces_its_entry_and_distinct_spots_share_a_cell() {
    // gridDeg 0.1 with 2 km: one cell holds places more than 2 km apart.
    let grid = Grid::new(0.1);
    let mut shared = SharedCache::new(nz(10));
    let west = entry(&grid, 10.0, 9.91, 0);
    let east = entry(&grid, 10.0, 9.99, 1_000);
    assert_eq!(west.cell, east.cell);
    shared.insert(west.clone());
    shared.insert(east.clone());
    assert_eq!(shared.len(), 2, "both sides of the cell stay covered");
    assert!(Arc::ptr_eq(&shared.find(&grid, west.location, 2.0, 2_000, &mut ignore).unwrap().entry, &west));
    assert!(Arc::ptr_eq(&shared.find(&grid, east.location, 2.0, 2_000, &mut ignore).unwrap().entry, &east));
    // A refresh at the same spot replaces the entry there.
    let refreshed = entry(&grid, 10.0, 9.91, 700_000);
    shared.insert(refreshed.clone());
    assert_eq!(shared.len(), 2);
    assert!(Arc::ptr_eq(&shared.find(&grid, west.location, 2.0, 700_000, &mut ignore).unwrap().entry, &refreshed));
    // An expired entry of the cell goes when a new one arrives.
    shared.insert(entry(&grid, 10.02, 9.95, 8_000_000));
    assert_eq!(shared.len(), 1);
}

#[test]
fn a_cell_keeps_at_most_per_cell_entries() {
    let grid = Grid::new(10.0);
    let mut shared = SharedCache::new(nz(1000));
    let spot = |i: usize| LatLon::new(-4.0 + (i / 10) as f64 * 0.5, -4.0 + (i % 10) as f64 * 0.5);
    for i in 0..PER_CELL + 4 {
        shared.insert(entry(&grid, spot(i).lat, spot(i).lon, i as i64));
    }
    assert_eq!(shared.len(), PER_CELL);
    assert!(shared.find(&grid, spot(0), 1.0, 100, &mut ignore).is_none(), "the least recently used went");
    assert!(shared.find(&grid, spot(PER_CELL + 3), 1.0, 100, &mut ignore).is_some());
    // A hot entry survives its cell filling up: the cell evicts by use, not by age.
    assert!(shared.find(&grid, spot(4), 1.0, 100, &mut ignore).is_some());
    let fill_from = PER_CELL + 4;
    for i in fill_from..fill_from + PER_CELL - 1 {
        shared.insert(entry(&grid, spot(i % 100).lat + 0.001, spot(i % 100).lon, i as i64));
    }
    assert!(shared.find(&grid, spot(4), 1.0, 200, &mut ignore).is_some(), "the hot entry stayed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the grid and radius, the store finds exactly what a scan of every entry finds:
    /// every entry within the radius is seen, and the nearest one is returned.
    #[test]
    fn shared_lookup_matches_brute_force(
        (deg, radius_km) in grid_and_radius(),
        spots in prop::collection::vec(point(), 1..300),
        queries in prop::collection::vec((any::<prop::sample::Index>(), direction()), 1..30),
    ) {
        let grid = Grid::new(deg);
        let mut shared = SharedCache::new(nz(100_000));
        let mut all: Vec<Arc<Entry>> = spots.iter().map(|p| entry(&grid, p.lat, p.lon, 0)).collect();
        for e in &all {
            shared.insert(e.clone());
        }
        // Crowded cells may have dropped their oldest entries, and equal locations replaced
        // each other: compare with what is stored.
        all.retain(|e| shared.contains(e));
        for (index, d) in queries {
            // Query next to a stored entry, so that most queries have candidates.
            let near = index.get(&all);
            let p = offset(near.location, radius_km, d);
            let expected = all.iter().filter(|e| distance_km(p, e.location) <= radius_km).count();
            let mut seen_within = 0;
            let found = shared.find(&grid, p, radius_km, 0, &mut |_, within| seen_within += within as usize);
            prop_assert_eq!(seen_within, expected, "p={:?}", p);
            prop_assert_eq!(found.is_some(), expected > 0);
            if let Some(found) = found {
                let nearest = all.iter().map(|e| distance_km(p, e.location)).fold(f64::INFINITY, f64::min);
                prop_assert_eq!(found.distance, nearest);
            }
        }
    }
}

#[test]
fn users_keep_their_newest_entries() {
    let grid = Grid::new(0.045);
    let mut users = UserCache::new(nz(10), nz(2));
    let (a, b, c) = (entry(&grid, 0.0, 0.0, 0), entry(&grid, 1.0, 1.0, 0), entry(&grid, 2.0, 2.0, 0));
    users.remember("u", a.clone());
    users.remember("u", b.clone());
    users.remember("u", c.clone());
    assert!(users.find("u", a.location, 1.0, 0, &mut ignore).is_none(), "capacity 2 dropped the oldest");
    assert!(users.find("u", b.location, 1.0, 0, &mut ignore).is_some());
    assert!(users.find("u", c.location, 1.0, 0, &mut ignore).is_some());
    assert!(users.find("other", c.location, 1.0, 0, &mut ignore).is_none());
    assert!(users.forget("u"));
    assert!(users.find("u", c.location, 1.0, 0, &mut ignore).is_none());
}

#[test]
fn one_entry_per_user_by_default() {
    let grid = Grid::new(0.045);
    let mut users = UserCache::new(nz(10), nz(1));
    let (a, b) = (entry(&grid, 0.0, 0.0, 0), entry(&grid, 1.0, 1.0, 0));
    users.remember("u", a.clone());
    users.remember("u", b.clone());
    assert!(users.find("u", a.location, 1.0, 0, &mut ignore).is_none());
    assert!(users.find("u", b.location, 1.0, 0, &mut ignore).is_some());
}

#[test]
fn users_are_bounded() {
    let grid = Grid::new(0.045);
    let mut users = UserCache::new(nz(3), nz(1));
    let e = entry(&grid, 0.0, 0.0, 0);
    for id in ["a", "b", "c"] {
        users.remember(id, e.clone());
    }
    assert!(users.find("a", e.location, 1.0, 0, &mut ignore).is_some()); // a is now recent
    users.remember("d", e.clone());
    assert_eq!(users.len(), 3);
    assert!(users.find("b", e.location, 1.0, 0, &mut ignore).is_none(), "b was the least recent");
    assert!(users.find("a", e.location, 1.0, 0, &mut ignore).is_some());
}
