//! The grid with any cell size, point and radius: keys and cells never panic, a cover visits
//! each cell once, `cover_len` counts them, and every point within the radius of the centre
//! falls in a visited cell (checked against the haversine distance, the brute-force truth).
#![no_main]

use std::collections::HashSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weather_cache_core::geo::{distance_km, km_to_degrees, normalize_lon, CellId, Grid, LatLon, MAX_GRID_DEG, MIN_GRID_DEG};

#[derive(Arbitrary, Debug)]
struct Input {
    deg: f64,
    lat: f64,
    lon: f64,
    radius_km: f64,
    /// Other points, as offsets from the centre of up to 1.5 radii (folded into [-1, 1]).
    offsets: Vec<(f64, f64)>,
}

/// A point about `u`, `v` (in [-1, 1]) times `reach_km` north and east of `p`, folded over the
/// poles and the antimeridian.
fn offset(p: LatLon, reach_km: f64, u: f64, v: f64) -> LatLon {
    let reach = km_to_degrees(reach_km);
    let (mut lat, mut lon) = (p.lat + u * reach, p.lon + v * reach / p.lat.to_radians().cos().max(0.01));
    if lat > 90.0 {
        (lat, lon) = (180.0 - lat, lon + 180.0);
    } else if lat < -90.0 {
        (lat, lon) = (-180.0 - lat, lon + 180.0);
    }
    LatLon::new(lat.clamp(-90.0, 90.0), normalize_lon(lon).max(-180.0))
}

/// Folds any double into [lo, hi] (NaN and infinities included).
fn within(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_finite() {
        lo + (x.abs() % (hi - lo + f64::EPSILON)).min(hi - lo)
    } else {
        lo
    }
}

fuzz_target!(|input: Input| {
    let deg = within(input.deg, MIN_GRID_DEG, MAX_GRID_DEG);
    let grid = Grid::new(deg);
    let p = LatLon::new(within(input.lat, -90.0, 90.0), within(input.lon, -180.0, 180.0));
    let radius_km = within(input.radius_km, 0.001, 1_000.0);
    let _ = grid.key(grid.cell_of(p));
    if grid.cover_len(p, radius_km) > 20_000 {
        return;
    }
    let mut cells = HashSet::new();
    grid.cover(p, radius_km, |row, cols| {
        for col in cols {
            assert!(cells.insert(CellId { row, col }), "cell visited twice");
        }
        true
    });
    assert_eq!(cells.len() as u64, grid.cover_len(p, radius_km));
    assert!(cells.contains(&grid.cell_of(p)), "the centre's own cell");
    for (u, v) in input.offsets.into_iter().take(64) {
        let e = offset(p, radius_km * 1.5, within(u, -1.0, 1.0), within(v, -1.0, 1.0));
        if distance_km(p, e) <= radius_km {
            assert!(cells.contains(&grid.cell_of(e)), "missed {e:?} within {radius_km} km of {p:?} (g = {deg})");
        }
    }
});
