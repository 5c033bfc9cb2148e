//! The cross-user store: an LRU over entries, indexed by grid cell.
//!
//! A cell may hold several entries. With one per cell, a fetch at one side of a cell would
//! evict the entry that covers the other side, and two groups of clients in one cell would
//! refetch each other's area in turn (with `gridDeg: 0.1` the fleet trace made 17x the
//! upstream calls). A new entry replaces only the cell's entries it makes redundant.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::entry::{Entry, Freshness, Millis};
use super::nearby::Nearby;
use super::{best_of, Found};
use crate::geo::{distance_km, CellId, Grid, LatLon};

/// Most entries one cell keeps (the oldest go first). Only a grid much coarser than the radius
/// fills a cell; the cap bounds the work one lookup can do there.
pub const PER_CELL: usize = 64;

/// An entry's identity in the store: its address, unique while the store holds the `Arc`.
type Key = usize;

fn key_of(entry: &Arc<Entry>) -> Key {
    Arc::as_ptr(entry) as usize
}

#[derive(Debug)]
pub struct SharedCache {
    entries: LruCache<Key, Arc<Entry>>,
    cells: HashMap<CellId, CellKeys>,
    nearby: Nearby,
}

/// A cell's entries, oldest first. Most cells hold one: it lives inline (no allocation).
#[derive(Debug)]
enum CellKeys {
    One(Key),
    Many(Vec<Key>),
}

impl CellKeys {
    fn as_slice(&self) -> &[Key] {
        match self {
            CellKeys::One(key) => std::slice::from_ref(key),
            CellKeys::Many(keys) => keys,
        }
    }

    fn from_vec(mut keys: Vec<Key>) -> Option<CellKeys> {
        match keys.len() {
            0 => None,
            1 => keys.pop().map(CellKeys::One),
            _ => Some(CellKeys::Many(keys)),
        }
    }
}

impl SharedCache {
    pub fn new(capacity: NonZeroUsize) -> SharedCache {
        SharedCache { entries: LruCache::sparse(capacity), cells: HashMap::new(), nearby: Nearby::default() }
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
        let (entries, cells) = (&self.entries, &self.cells);
        let best = match self.nearby.cells(grid, p, radius_km, cells.len()) {
            Some(candidates) => best_of(
                candidates
                    .filter_map(|cell| cells.get(&cell))
                    .flat_map(CellKeys::as_slice)
                    .filter_map(|k| entries.peek(k)),
                p,
                radius_km,
                now,
                seen,
            ),
            None => best_of(entries.iter().map(|(_, entry)| entry), p, radius_km, now, seen),
        };
        if let Some(found) = &best {
            self.entries.promote(&key_of(&found.entry));
        }
        best
    }

    /// Stores `entry` in its cell. Entries of that cell it makes redundant go: expired ones,
    /// ones at the same location (a refresh) and stale ones it covers. The least recently used
    /// entry goes past capacity, and the cell's oldest past `PER_CELL`.
    pub fn insert(&mut self, entry: Arc<Entry>, radius_km: f64) {
        let now = entry.fetched_at;
        let keys = self.cells.remove(&entry.cell);
        let keys = keys.as_ref().map_or(&[][..], CellKeys::as_slice);
        let mut kept = Vec::with_capacity(keys.len() + 1);
        for &key in keys {
            let Some(old) = self.entries.peek(&key) else { continue };
            let redundant = match old.freshness(now) {
                Freshness::Expired => true,
                Freshness::Stale => distance_km(old.location, entry.location) <= radius_km,
                Freshness::Fresh => old.location == entry.location,
            };
            if redundant {
                self.entries.pop(&key);
            } else {
                kept.push(key);
            }
        }
        if kept.len() >= PER_CELL {
            // `kept` is in insertion order: the cell's oldest entries go.
            for key in kept.drain(..kept.len() + 1 - PER_CELL) {
                self.entries.pop(&key);
            }
        }
        kept.push(key_of(&entry));
        if let Some(keys) = CellKeys::from_vec(kept) {
            self.cells.insert(entry.cell, keys);
        }
        if let Some((_, evicted)) = self.entries.push(key_of(&entry), entry) {
            self.unindex(&evicted);
        }
    }

    fn unindex(&mut self, entry: &Arc<Entry>) {
        let key = key_of(entry);
        let Some(keys) = self.cells.remove(&entry.cell) else { return };
        let rest: Vec<Key> = keys.as_slice().iter().copied().filter(|k| *k != key).collect();
        if let Some(keys) = CellKeys::from_vec(rest) {
            self.cells.insert(entry.cell, keys);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn contains(&self, entry: &Arc<Entry>) -> bool {
        self.entries.contains(&key_of(entry))
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.cells.clear();
    }
}
