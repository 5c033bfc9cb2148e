//! The cross-user store: one entry per grid cell, least recently used evicted past capacity.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::entry::{Entry, Freshness, Millis};
use super::nearby::Nearby;
use super::{better, Found};
use crate::geo::{distance_km, Grid, LatLon};

#[derive(Debug)]
pub struct SharedCache {
    entries: LruCache<crate::geo::CellId, Arc<Entry>>,
    nearby: Nearby,
}

impl SharedCache {
    pub fn new(capacity: NonZeroUsize) -> SharedCache {
        SharedCache { entries: LruCache::sparse(capacity), nearby: Nearby::default() }
    }

    /// The best live entry within `radius_km` of `p` (fresh before stale, then nearest), marked
    /// as recently used. `seen` observes every distance computed (for debug events).
    pub fn find(
        &mut self,
        grid: &Grid,
        p: LatLon,
        radius_km: f64,
        now: Millis,
        seen: &mut impl FnMut(f64, bool),
    ) -> Option<Found> {
        let mut best: Option<Found> = None;
        let mut consider = |entry: &Arc<Entry>| {
            let freshness = entry.freshness(now);
            if freshness == Freshness::Expired {
                return;
            }
            let distance = distance_km(p, entry.location);
            let within = distance <= radius_km;
            seen(distance, within);
            if within {
                let found = Found { entry: entry.clone(), freshness, distance };
                if better(&found, best.as_ref()) {
                    best = Some(found);
                }
            }
        };
        match self.nearby.cells(grid, p, radius_km, self.entries.len()) {
            Some(cells) => cells.filter_map(|cell| self.entries.peek(&cell)).for_each(&mut consider),
            None => self.entries.iter().for_each(|(_, entry)| consider(entry)),
        }
        if let Some(found) = &best {
            self.entries.promote(&found.entry.cell);
        }
        best
    }

    /// Stores `entry` as its cell's entry (replacing an older one), evicting the least recently
    /// used cell past capacity.
    pub fn insert(&mut self, entry: Arc<Entry>) {
        self.entries.put(entry.cell, entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
