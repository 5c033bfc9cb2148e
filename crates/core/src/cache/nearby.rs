//! Which stored cells to probe for entries near a point.

use std::ops::RangeInclusive;

use crate::geo::{CellId, Grid, LatLon};

/// Reusable scratch space for a store's proximity lookups (no allocation per lookup).
#[derive(Default, Debug)]
pub struct Nearby {
    spans: Vec<(i32, RangeInclusive<i32>)>,
}

impl Nearby {
    /// The cells that can hold a point within `radius_km` of `p`, or `None` when the store's
    /// `stored` cells are fewer than that cover: scanning them all is then cheaper (a tiny grid
    /// with a huge radius, a cap over a pole, or a nearly empty store).
    pub fn cells(
        &mut self,
        grid: &Grid,
        p: LatLon,
        radius_km: f64,
        stored: usize,
    ) -> Option<impl Iterator<Item = CellId> + '_> {
        if stored == 0 {
            self.spans.clear();
            return Some(self.iter());
        }
        self.spans.clear();
        let mut cells = 0usize;
        grid.cover(p, radius_km, |row, cols| {
            cells += (cols.end() - cols.start() + 1) as usize;
            self.spans.push((row, cols));
            // Past the store's size a scan is cheaper: stop building the cover.
            cells <= stored
        });
        if cells > stored {
            // Do not keep a huge buffer around for the next lookup.
            self.spans.clear();
            self.spans.shrink_to(64);
            return None;
        }
        Some(self.iter())
    }

    fn iter(&self) -> impl Iterator<Item = CellId> + '_ {
        self.spans.iter().flat_map(|(row, cols)| cols.clone().map(move |col| CellId { row: *row, col }))
    }
}
