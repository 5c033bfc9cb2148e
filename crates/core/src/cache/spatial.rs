//! A bounded store of things that have a place: an LRU over items, indexed by grid cell, so that
//! "what is within r km of p" visits only the cells the radius reaches. The shared cache keeps
//! its entries here, the engine its per-area cooldowns.
//!
//! A cell may hold several items. With one per cell, an item at one side of a cell would evict
//! the one that covers the other side, and two groups of clients in one cell would refetch (or
//! re-fail) each other's area in turn: with `gridDeg: 0.1` the fleet trace made 17x the
//! upstream calls, and two failing spots 5 km apart never cooled down.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroUsize;

use lru::LruCache;

use super::nearby::Nearby;
use crate::geo::{CellId, Grid, LatLon};

/// Where an item lives: its grid cell, and the exact point distances are measured from.
pub trait Placed {
    fn cell(&self) -> CellId;
    fn location(&self) -> LatLon;
}

pub struct SpatialLru<K, V> {
    items: LruCache<K, Slot<V>>,
    cells: HashMap<CellId, CellKeys<K>>,
    nearby: Nearby,
    per_cell: usize,
    /// Ticks at every insert and promotion: a full cell evicts its least recently used item.
    uses: u64,
}

struct Slot<V> {
    value: V,
    used: u64,
}

impl<K: Hash + Eq, V> std::fmt::Debug for SpatialLru<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpatialLru").field("items", &self.items.len()).field("cells", &self.cells.len()).finish()
    }
}

/// A cell's keys, oldest first. Most cells hold one: it lives inline (no allocation).
#[derive(Debug)]
enum CellKeys<K> {
    One(K),
    Many(Vec<K>),
}

impl<K: Copy + PartialEq> CellKeys<K> {
    fn as_slice(&self) -> &[K] {
        match self {
            CellKeys::One(key) => std::slice::from_ref(key),
            CellKeys::Many(keys) => keys,
        }
    }

    fn from_vec(mut keys: Vec<K>) -> Option<CellKeys<K>> {
        match keys.len() {
            0 => None,
            1 => keys.pop().map(CellKeys::One),
            _ => Some(CellKeys::Many(keys)),
        }
    }
}

impl<K: Copy + Eq + Hash, V: Placed> SpatialLru<K, V> {
    /// At most `capacity` items in all (least recently used go first), and `per_cell` in one
    /// cell (its oldest go first): only a grid much coarser than the radius fills a cell, and the
    /// cap bounds the work one lookup can do there.
    pub fn new(capacity: NonZeroUsize, per_cell: usize) -> Self {
        SpatialLru { items: LruCache::sparse(capacity), cells: HashMap::new(), nearby: Nearby::default(), per_cell, uses: 0 }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every item, most recently used first, without marking any as used.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.items.iter().map(|(_, slot)| &slot.value)
    }

    pub fn peek(&self, key: &K) -> Option<&V> {
        self.items.peek(key).map(|slot| &slot.value)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.items.contains(key)
    }

    /// Marks an item as just used; `false` if it is not (or no longer) stored.
    pub fn promote(&mut self, key: &K) -> bool {
        self.uses += 1;
        let uses = self.uses;
        self.items.get_mut(key).map(|slot| slot.used = uses).is_some()
    }

    /// Every item that may lie within `radius_km` of `p`: those of the cells the radius reaches,
    /// or all of them when that is fewer (see `Nearby`). Callers still measure the distance.
    pub fn near(&mut self, grid: &Grid, p: LatLon, radius_km: f64) -> impl Iterator<Item = (&K, &V)> + '_ {
        let (items, cells) = (&self.items, &self.cells);
        match self.nearby.cells(grid, p, radius_km, cells.len()) {
            Some(cover) => Near::Cover(
                cover
                    .filter_map(move |cell| cells.get(&cell))
                    .flat_map(CellKeys::as_slice)
                    .filter_map(move |key| items.peek(key).map(|slot| (key, &slot.value))),
            ),
            None => Near::All(items.iter().map(|(key, slot)| (key, &slot.value))),
        }
    }

    /// The items of one cell.
    pub fn near_cell(&self, cell: CellId) -> impl Iterator<Item = (&K, &V)> + '_ {
        let items = &self.items;
        self.cells
            .get(&cell)
            .map(CellKeys::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(move |key| items.peek(key).map(|slot| (key, &slot.value)))
    }

    /// Stores `value` under `key` in its cell. The cell's items for which `redundant` is true go
    /// first; then the cell's least recently used past `per_cell`, and the least recently used
    /// item of all past capacity.
    pub fn insert(&mut self, key: K, value: V, mut redundant: impl FnMut(&V) -> bool) {
        let cell = value.cell();
        let old = self.cells.remove(&cell);
        let old = old.as_ref().map_or(&[][..], CellKeys::as_slice);
        let mut kept = Vec::with_capacity(old.len() + 1);
        for &old_key in old {
            match self.items.peek(&old_key) {
                Some(slot) if redundant(&slot.value) => {
                    self.items.pop(&old_key);
                }
                Some(_) => kept.push(old_key),
                None => {}
            }
        }
        while kept.len() >= self.per_cell.max(1) {
            let items = &self.items;
            let used = |k: &K| items.peek(k).map_or(0, |slot| slot.used);
            let (index, _) = kept.iter().enumerate().min_by_key(|(_, k)| used(k)).expect("the cell is full");
            self.items.pop(&kept.remove(index));
        }
        kept.push(key);
        if let Some(keys) = CellKeys::from_vec(kept) {
            self.cells.insert(cell, keys);
        }
        self.uses += 1;
        if let Some((evicted_key, evicted)) = self.items.push(key, Slot { value, used: self.uses }) {
            if evicted_key != key {
                self.unindex(evicted_key, evicted.value.cell());
            }
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.items.pop(key)?;
        self.unindex(*key, slot.value.cell());
        Some(slot.value)
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.cells.clear();
    }

    fn unindex(&mut self, key: K, cell: CellId) {
        let Some(keys) = self.cells.remove(&cell) else { return };
        let rest: Vec<K> = keys.as_slice().iter().copied().filter(|k| *k != key).collect();
        if let Some(keys) = CellKeys::from_vec(rest) {
            self.cells.insert(cell, keys);
        }
    }
}

/// `near`'s two ways of walking, as one iterator type (no boxing on the hit path).
enum Near<C, A> {
    Cover(C),
    All(A),
}

impl<'a, K: 'a, V: 'a, C, A> Iterator for Near<C, A>
where
    C: Iterator<Item = (&'a K, &'a V)>,
    A: Iterator<Item = (&'a K, &'a V)>,
{
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Near::Cover(cover) => cover.next(),
            Near::All(all) => all.next(),
        }
    }
}
