//! Coarse geographic tiles: how the tier spreads a namespace over a Redis Cluster. Every key of
//! one tile shares the tile's hash tag, so one tile lives in one slot and its Lua scripts (which
//! touch several of its keys at once) run there; different tiles land on different slots, so a
//! fleet over a continent spreads over every shard. A lookup near a tile's edge asks the tiles
//! it reaches too.
//!
//! Tiles are `TILE_DEG` degrees square, named by their south-west corner. Two degrees (about
//! 220 km north-south) keep a city in one tile most of the time, so most lookups are one round
//! trip, while a continent spans hundreds of tiles.

use std::fmt;

use crate::geo::LatLon;

pub const TILE_DEG: f64 = 2.0;
/// Kilometres per degree of latitude (and of longitude on the equator), on the haversine's Earth.
const KM_PER_DEG: f64 = 6_371.0 * std::f64::consts::PI / 180.0;
const COLUMNS: i32 = (360.0 / TILE_DEG) as i32;
const ROWS: i32 = (180.0 / TILE_DEG) as i32;
/// Most tiles one lookup asks: a radius that would reach more is not a "near" lookup.
const MAX_TILES: usize = 9;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    row: i32,
    column: i32,
}

impl Tile {
    /// The tile `p` lies in (the antimeridian's east edge belongs to the westernmost column).
    pub fn of(p: LatLon) -> Tile {
        let row = (((p.lat + 90.0) / TILE_DEG).floor() as i32).clamp(0, ROWS - 1);
        let column = (((p.lon + 180.0) / TILE_DEG).floor() as i32).rem_euclid(COLUMNS);
        Tile { row, column }
    }

    fn south(self) -> f64 {
        f64::from(self.row) * TILE_DEG - 90.0
    }

    fn west(self) -> f64 {
        f64::from(self.column) * TILE_DEG - 180.0
    }
}

/// `<south>,<west>` in whole degrees: `48,2` holds Paris.
impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.south(), self.west())
    }
}

/// The tiles a disk of `km` around `p` reaches, `p`'s own first. A bounding box of the disk
/// (widened in longitude at the latitude where a degree is shortest), so never one too few.
pub fn tiles_within(p: LatLon, km: f64) -> Vec<Tile> {
    let home = Tile::of(p);
    let mut tiles = vec![home];
    let dlat = km / KM_PER_DEG;
    let (south, north) = ((p.lat - dlat).max(-90.0), (p.lat + dlat).min(90.0));
    let widest = south.abs().max(north.abs()).min(89.9).to_radians().cos();
    let dlon = (km / (KM_PER_DEG * widest)).min(180.0);
    let rows = Tile::of(LatLon::new(south, 0.0)).row..=Tile::of(LatLon::new(north, 0.0)).row;
    let first = ((p.lon - dlon + 180.0) / TILE_DEG).floor() as i32;
    let last = ((p.lon + dlon + 180.0) / TILE_DEG).floor() as i32;
    for row in rows {
        for column in first..=last {
            let tile = Tile { row, column: column.rem_euclid(COLUMNS) };
            if !tiles.contains(&tile) && tiles.len() < MAX_TILES {
                tiles.push(tile);
            }
        }
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_named_by_their_corner() {
        assert_eq!(Tile::of(LatLon::new(48.86, 2.35)).to_string(), "48,2");
        assert_eq!(Tile::of(LatLon::new(-33.87, 151.21)).to_string(), "-34,150");
        assert_eq!(Tile::of(LatLon::new(0.0, -180.0)), Tile::of(LatLon::new(0.0, 180.0)), "one antimeridian");
        assert_eq!(Tile::of(LatLon::new(90.0, 0.0)).to_string(), "88,0");
    }

    #[test]
    fn a_disk_inside_a_tile_asks_one_and_one_near_an_edge_asks_its_neighbours() {
        assert_eq!(tiles_within(LatLon::new(49.0, 3.0), 10.0), vec![Tile::of(LatLon::new(49.0, 3.0))]);
        // 5 km south of the 48th parallel, 3 km west of the 4th meridian: four tiles.
        let corner = LatLon::new(47.955, 3.96);
        let tiles = tiles_within(corner, 10.0);
        assert_eq!(tiles[0], Tile::of(corner));
        let mut names: Vec<String> = tiles.iter().map(Tile::to_string).collect();
        names.sort();
        assert_eq!(names, ["46,2", "46,4", "48,2", "48,4"]);
        // Across the antimeridian.
        let names: Vec<String> = tiles_within(LatLon::new(0.5, 179.99), 10.0).iter().map(Tile::to_string).collect();
        assert_eq!(names, ["0,178", "0,-180"]);
    }

    #[test]
    fn every_point_within_reach_is_in_a_tile_asked() {
        use crate::geo::distance_km;
        let mut seed = 7_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..20_000 {
            let p = LatLon::new(next() * 170.0 - 85.0, next() * 360.0 - 180.0);
            let q = LatLon::new((p.lat + (next() - 0.5) * 0.3).clamp(-85.0, 85.0), p.lon + (next() - 0.5) * 0.3);
            let q = LatLon::new(
                q.lat,
                if q.lon > 180.0 {
                    q.lon - 360.0
                } else if q.lon < -180.0 {
                    q.lon + 360.0
                } else {
                    q.lon
                },
            );
            let d = distance_km(p, q);
            if d <= 10.0 {
                assert!(tiles_within(p, 10.0).contains(&Tile::of(q)), "{p:?} {q:?} {d}");
            }
        }
    }
}
