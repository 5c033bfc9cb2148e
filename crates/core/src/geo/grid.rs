//! The bucket grid: rows of equal latitude height, each cut into cells about as wide as they are
//! tall, and the neighbour search that finds every cell a radius can reach.

use std::f64::consts::PI;
use std::ops::RangeInclusive;

use super::distance::km_to_degrees;
use super::jsnum::{js_round, to_fixed};
use super::LatLon;

/// Integer coordinates of a cell: `row = round(lat / g)`, `col = round(lon / row width)`.
/// Stores key on these (8 bytes, no hashing of strings); the text key is only for people.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellId {
    pub row: i32,
    pub col: i32,
}

/// Smallest accepted cell height. Keys print five decimals, so smaller cells would share keys.
pub const MIN_GRID_DEG: f64 = 0.0001;
/// Largest accepted cell height.
pub const MAX_GRID_DEG: f64 = 10.0;

// Relative and absolute slack added to every search extent, so that floating-point error in the
// bounds can only make the search visit one cell too many, never one too few.
const SLACK_REL: f64 = 1e-9;
const SLACK_ABS_DEG: f64 = 1e-9;

#[derive(Clone, Debug)]
pub struct Grid {
    deg: f64,
    /// Rows run from `-last_row` to `last_row`; the outermost ones hold the poles.
    last_row: i32,
}

impl Grid {
    /// `deg` must be finite and within [MIN_GRID_DEG, MAX_GRID_DEG] (the caller validates).
    pub fn new(deg: f64) -> Grid {
        debug_assert!((MIN_GRID_DEG..=MAX_GRID_DEG).contains(&deg));
        Grid { deg, last_row: js_round(90.0 / deg) as i32 }
    }

    pub fn deg(&self) -> f64 {
        self.deg
    }

    pub fn cell_of(&self, p: LatLon) -> CellId {
        let row = self.row_of(p.lat);
        CellId { row, col: self.col_of(row, normalize_lon(p.lon)) }
    }

    /// `"{bucketLat.toFixed(5)}:{bucketLon.toFixed(5)}"`, the key shown in events and `meta`.
    pub fn key(&self, cell: CellId) -> String {
        let lat = self.row_lat(cell.row);
        let lon = f64::from(cell.col) * self.col_width(cell.row);
        format!("{}:{}", to_fixed(lat, 5), to_fixed(lon, 5))
    }

    /// Calls `visit(row, cols)` for spans of cells that together contain every point within
    /// `radius_km` of `p` (and possibly a few more). Each cell is visited at most once. The walk
    /// stops early when `visit` returns `false`.
    pub fn cover(&self, p: LatLon, radius_km: f64, mut visit: impl FnMut(i32, RangeInclusive<i32>) -> bool) {
        let reach = km_to_degrees(radius_km) * (1.0 + SLACK_REL) + SLACK_ABS_DEG;
        let (south, north) = (p.lat - reach, p.lat + reach);
        let first_row = self.row_of(south.max(-90.0));
        let last_row = self.row_of(north.min(90.0));
        // A circle that reaches a pole contains it, and with it every longitude.
        let half_width = if north >= 90.0 || south <= -90.0 {
            None
        } else {
            // Widest longitude span of a spherical cap of angular radius ρ centred at φ:
            // asin(sin ρ / cos φ), defined because the cap does not contain a pole.
            let ratio = reach.to_radians().sin() / (p.lat * PI / 180.0).cos();
            (ratio < 1.0).then(|| ratio.asin().to_degrees() * (1.0 + SLACK_REL) + SLACK_ABS_DEG)
        };
        let lon = normalize_lon(p.lon);
        for row in first_row..=last_row {
            let (first_col, last_col) = self.row_cols(row);
            let Some(w) = half_width.filter(|w| *w < 180.0) else {
                if !visit(row, first_col..=last_col) {
                    return;
                }
                continue;
            };
            let (west, east) = (lon - w, lon + w);
            // A span that crosses the antimeridian becomes two: the row's eastern end and its
            // western start. If they meet, the whole row is covered.
            let wrapped = if west < -180.0 {
                Some((self.col_of(row, west + 360.0), self.col_of(row, east)))
            } else if east >= 180.0 {
                Some((self.col_of(row, west), self.col_of(row, east - 360.0)))
            } else {
                None
            };
            let go_on = match wrapped {
                None => visit(row, self.col_of(row, west)..=self.col_of(row, east)),
                Some((east_start, west_end)) if west_end + 1 >= east_start => visit(row, first_col..=last_col),
                Some((east_start, west_end)) => visit(row, east_start..=last_col) && visit(row, first_col..=west_end),
            };
            if !go_on {
                return;
            }
        }
    }

    /// How many cells `cover` would visit: lets a store scan its entries instead when that is
    /// cheaper (tiny grids with a huge radius, or an almost empty store).
    pub fn cover_len(&self, p: LatLon, radius_km: f64) -> u64 {
        let mut cells = 0u64;
        self.cover(p, radius_km, |_, cols| {
            cells += (cols.end() - cols.start() + 1) as u64;
            true
        });
        cells
    }

    fn row_of(&self, lat: f64) -> i32 {
        (js_round(lat / self.deg) as i32).clamp(-self.last_row, self.last_row)
    }

    fn row_lat(&self, row: i32) -> f64 {
        f64::from(row) * self.deg
    }

    /// Cell width in a row, from the row's snapped latitude so that every point of the row
    /// agrees on it (cells then partition the globe). The 0.01 floor keeps polar rows finite.
    fn col_width(&self, row: i32) -> f64 {
        self.deg / (self.row_lat(row) * PI / 180.0).cos().max(0.01)
    }

    /// `lon` must be normalized to [-180, 180).
    fn col_of(&self, row: i32, lon: f64) -> i32 {
        js_round(lon / self.col_width(row)) as i32
    }

    /// First and last column of a row: those of longitudes -180 and just below 180.
    fn row_cols(&self, row: i32) -> (i32, i32) {
        (self.col_of(row, -180.0), self.col_of(row, 180f64.next_down()))
    }
}

/// Maps a longitude to [-180, 180): 180 is the same meridian as -180. In-range values are
/// returned untouched (wrapping arithmetic would perturb their last bits).
pub fn normalize_lon(lon: f64) -> f64 {
    if (-180.0..180.0).contains(&lon) {
        lon
    } else {
        (lon + 180.0).rem_euclid(360.0) - 180.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::distance_km;
    use crate::testing::strategies::{direction, grid_and_radius, offset, point};
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn key(lat: f64, lon: f64, deg: f64) -> String {
        let grid = Grid::new(deg);
        grid.key(grid.cell_of(LatLon::new(lat, lon)))
    }

    #[test]
    fn keys_follow_the_formula() {
        // Expected strings computed with the TypeScript formula in Node.
        assert_eq!(key(10.01, 10.01, 0.1), "10.00000:10.05272");
        assert_eq!(key(10.04, 10.04, 0.1), "10.00000:10.05272");
        assert_eq!(key(0.0, 0.0, 0.045), "0.00000:0.00000");
        assert_eq!(key(36.12, -86.67, 0.045), "36.13500:-86.64242");
    }

    #[test]
    fn keys_never_print_negative_zero() {
        assert_eq!(key(-0.0, -0.0, 0.045), "0.00000:0.00000");
        assert_eq!(key(-0.01, -0.01, 0.045), "0.00000:0.00000");
        assert!(!key(-0.02, -0.022, 0.045).contains("-0.00000"));
    }

    #[test]
    fn antimeridian_is_one_meridian() {
        assert_eq!(key(0.0, 180.0, 0.045), key(0.0, -180.0, 0.045));
        assert_eq!(key(45.0, 180.0, 0.1), key(45.0, -180.0, 0.1));
    }

    #[test]
    fn polar_rows_are_finite() {
        let grid = Grid::new(0.045);
        let cell = grid.cell_of(LatLon::new(90.0, 123.0));
        assert_eq!(cell.row, 2000);
        assert_eq!(grid.key(cell), "90.00000:121.50000");
        assert_eq!(grid.key(grid.cell_of(LatLon::new(-90.0, -180.0))), "-90.00000:-180.00000");
    }

    fn covered(grid: &Grid, p: LatLon, radius_km: f64) -> HashSet<CellId> {
        let mut cells = HashSet::new();
        grid.cover(p, radius_km, |row, cols| {
            for col in cols {
                assert!(cells.insert(CellId { row, col }), "cell visited twice");
            }
            true
        });
        cells
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Every point within the radius falls in a cell the cover visits, each cell once, and
        /// `cover_len` counts exactly those cells.
        #[test]
        fn cover_reaches_every_point_within_radius(
            (deg, radius_km) in grid_and_radius(),
            p in point(),
            directions in prop::collection::vec(direction(), 20),
        ) {
            let grid = Grid::new(deg);
            // Tiny cells over a pole cover whole rows of thousands of cells: worth checking, but
            // not a million at a time (stores scan instead when a cover outgrows them).
            prop_assume!(grid.cover_len(p, radius_km) <= 100_000);
            let cells = covered(&grid, p, radius_km);
            prop_assert_eq!(cells.len() as u64, grid.cover_len(p, radius_km));
            for d in directions {
                let e = offset(p, radius_km * 1.5, d);
                if distance_km(p, e) <= radius_km {
                    let cell = grid.cell_of(e);
                    prop_assert!(cells.contains(&cell), "p={:?} e={:?} cell={:?}", p, e, cell);
                }
            }
        }
    }

    #[test]
    fn cover_crosses_the_antimeridian() {
        let grid = Grid::new(0.045);
        let east = LatLon::new(0.0, 179.99);
        let west = LatLon::new(0.0, -179.99);
        assert!(covered(&grid, west, 5.0).contains(&grid.cell_of(east)));
        assert!(covered(&grid, east, 5.0).contains(&grid.cell_of(west)));
    }

    #[test]
    fn cover_stays_small_away_from_the_poles() {
        let grid = Grid::new(0.045);
        assert!(grid.cover_len(LatLon::new(48.85, 2.35), 5.0) <= 16);
        assert!(grid.cover_len(LatLon::new(0.0, 0.0), 5.0) <= 16);
    }
}
