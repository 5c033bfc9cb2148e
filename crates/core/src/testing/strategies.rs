//! Where property tests look for trouble: half of the points fall in the hard places (near the
//! poles, near the antimeridian), the rest anywhere. proptest shrinks a failure to its minimal
//! case and records it under `proptest-regressions/`, so it is replayed on every later run.

use proptest::prelude::*;

use crate::geo::{km_to_degrees, normalize_lon, LatLon};

/// Latitude in [-90, 90], a third of them within 5° of a pole.
pub fn latitude() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => (85.0..=90.0f64, any::<bool>()).prop_map(|(lat, north)| if north { lat } else { -lat }),
        2 => -90.0..=90.0f64,
    ]
}

/// Longitude in [-180, 180), a third of them within 1° of the antimeridian.
pub fn longitude() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => (179.0..180.0f64, any::<bool>()).prop_map(|(lon, east)| if east { lon } else { -lon }),
        2 => -180.0..180.0f64,
    ]
}

pub fn point() -> impl Strategy<Value = LatLon> {
    (latitude(), longitude()).prop_map(|(lat, lon)| LatLon::new(lat, lon))
}

/// A point at most about `max_km` from `p` in a random direction: it may cross a pole or the
/// antimeridian (latitude and longitude are folded back into range). `(u, v)` are in [-1, 1].
pub fn offset(p: LatLon, max_km: f64, (u, v): (f64, f64)) -> LatLon {
    let reach = km_to_degrees(max_km);
    let mut lat = p.lat + u * reach;
    let mut lon = p.lon + v * reach / p.lat.to_radians().cos().max(0.01);
    if lat > 90.0 {
        lat = 180.0 - lat;
        lon += 180.0;
    } else if lat < -90.0 {
        lat = -180.0 - lat;
        lon += 180.0;
    }
    LatLon::new(lat, normalize_lon(lon).max(-180.0))
}

/// `(u, v)` for `offset`.
pub fn direction() -> impl Strategy<Value = (f64, f64)> {
    (-1.0..=1.0f64, -1.0..=1.0f64)
}

/// A grid and a radius worth testing together: the defaults, coarse and fine grids, radii much
/// larger and much smaller than a cell.
pub fn grid_and_radius() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        Just((0.045, 5.0)),
        Just((0.1, 10.0)),
        Just((0.045, 1.0)),
        Just((0.01, 5.0)),
        Just((1.0, 2.0)),
        Just((0.5, 150.0)),
        Just((0.001, 20.0)),
        // Anything else, up to a radius of 30 cells (a cover grows with the square of that).
        (0.0001..=10.0f64).prop_flat_map(|deg| (Just(deg), 0.8..=(deg * 111.0 * 30.0).clamp(0.81, 500.0))),
    ]
}
