//! The cross-user store: entries in a spatial LRU (several per grid cell, see `spatial.rs`).

use std::num::NonZeroUsize;
use std::sync::Arc;

use super::entry::{Entry, Freshness, Millis};
use super::spatial::{Placed, SpatialLru};
use super::{best_of, Found};
use crate::geo::{CellId, Grid, LatLon};

/// Most entries one cell keeps (the oldest go first).
pub const PER_CELL: usize = 64;

/// An entry's identity in the store: its address, unique while anyone holds the `Arc` (so a
/// user's copy can name the shared one to keep it recently used).
type Key = usize;

fn key_of(entry: &Arc<Entry>) -> Key {
    Arc::as_ptr(entry) as usize
}

impl Placed for Arc<Entry> {
    fn cell(&self) -> CellId {
        self.cell
    }

    fn location(&self) -> LatLon {
        self.location
    }
}

#[derive(Debug)]
pub struct SharedCache {
    entries: SpatialLru<Key, Arc<Entry>>,
}

impl SharedCache {
    pub fn new(capacity: NonZeroUsize) -> SharedCache {
        SharedCache { entries: SpatialLru::new(capacity, PER_CELL) }
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
        let best = best_of(self.entries.near(grid, p, radius_km).map(|(_, entry)| entry), p, radius_km, now, seen);
        if let Some(found) = &best {
            self.entries.promote(&key_of(&found.entry));
        }
        best
    }

    /// Marks `entry` as recently used, if the store still holds it: a hit from a user's own copy
    /// is a use of the shared entry too, or the hottest area would be evicted as if unused.
    pub fn touch(&mut self, entry: &Arc<Entry>) {
        self.entries.promote(&key_of(entry));
    }

    /// Stores `entry` in its cell. Only entries it makes useless go: expired ones, and ones at
    /// the same location (a refresh). A stale entry elsewhere in the cell stays: with equal
    /// radii the new disk never contains the old one, so the old entry still serves points the
    /// new one cannot (stale-while-revalidate and stale-if-error rely on it).
    pub fn insert(&mut self, entry: Arc<Entry>) {
        let now = entry.fetched_at;
        let location = entry.location;
        self.entries.insert(key_of(&entry), entry, |old| {
            old.freshness(now) == Freshness::Expired || old.location == location
        });
    }

    /// Stores an entry that came from elsewhere (the shared tier), unless an entry at the same
    /// location here is at least as recent: an older copy must never replace a newer one.
    pub fn offer(&mut self, entry: Arc<Entry>) {
        let (location, fetched_at) = (entry.location, entry.fetched_at);
        let newer_here = self
            .entries
            .near_cell(entry.cell)
            .any(|(_, old)| old.location == location && old.fetched_at >= fetched_at);
        if !newer_here {
            self.insert(entry);
        }
    }

    /// The newest entry at exactly `location` from `provider` (what a conditional refresh of
    /// that place revalidates), without marking it used.
    pub fn at(&self, grid: &Grid, location: LatLon, provider: &str) -> Option<Arc<Entry>> {
        self.entries
            .near_cell(grid.cell_of(location))
            .map(|(_, entry)| entry)
            .filter(|entry| entry.location == location && entry.provider == provider)
            .max_by_key(|entry| entry.fetched_at)
            .cloned()
    }

    /// Up to `limit` live entries (fresh or stale at `now`), most recently used first, without
    /// marking any as used: what the status page draws.
    pub fn live(&self, now: Millis, limit: usize) -> Vec<Arc<Entry>> {
        self.entries.values().filter(|e| e.freshness(now) != Freshness::Expired).take(limit).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub fn contains(&self, entry: &Arc<Entry>) -> bool {
        self.entries.contains(&key_of(entry))
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
