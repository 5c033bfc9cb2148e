//! Geography as pure functions: where a coordinate falls on the bucket grid, which cells a
//! radius can reach, and how far apart two points are.

mod distance;
mod grid;
mod jsnum;
mod precision;

pub use distance::{distance_km, km_to_degrees, EARTH_RADIUS_KM};
pub use grid::{normalize_lon, CellId, Grid, MAX_GRID_DEG, MIN_GRID_DEG};
pub use jsnum::js_round;
pub use precision::{max_rounding_error_km, round_location, MAX_DECIMALS};

/// A position in degrees. Latitude in [-90, 90]; longitude in [-180, 180] (both ends allowed).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    pub const fn new(lat: f64, lon: f64) -> LatLon {
        LatLon { lat, lon }
    }
}
