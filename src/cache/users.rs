//! Per-user stores: each user's most recent entries, and an LRU over users so that memory stays
//! bounded however many user ids pass through.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::entry::{Entry, Freshness, Millis};
use super::{better, Found};
use crate::geo::{distance_km, LatLon};

/// A user's entries, newest first. The newest lives inline: with the default of one entry per
/// user, a user costs no allocation beyond its id.
#[derive(Debug)]
struct Slot {
    newest: Arc<Entry>,
    older: Vec<Arc<Entry>>,
}

#[derive(Debug)]
pub struct UserCache {
    users: LruCache<Box<str>, Slot>,
    per_user: usize,
}

impl UserCache {
    pub fn new(max_users: NonZeroUsize, per_user: NonZeroUsize) -> UserCache {
        UserCache { users: LruCache::sparse(max_users), per_user: per_user.get() }
    }

    /// The best live entry of `user` within `radius_km` of `p` (fresh before stale, then nearest).
    pub fn find(
        &mut self,
        user: &str,
        p: LatLon,
        radius_km: f64,
        now: Millis,
        seen: &mut impl FnMut(f64, bool),
    ) -> Option<Found> {
        let slot = self.users.get(user)?;
        let mut best = None;
        for entry in std::iter::once(&slot.newest).chain(&slot.older) {
            let freshness = entry.freshness(now);
            if freshness == Freshness::Expired {
                continue;
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
        }
        best
    }

    /// Makes `entry` the user's newest, dropping an older entry for the same cell and the oldest
    /// past the per-user capacity. A new user may evict the least recently seen one.
    pub fn remember(&mut self, user: &str, entry: Arc<Entry>) {
        let Some(slot) = self.users.get_mut(user) else {
            self.users.put(user.into(), Slot { newest: entry, older: Vec::new() });
            return;
        };
        if self.per_user == 1 {
            slot.newest = entry;
            return;
        }
        let previous = std::mem::replace(&mut slot.newest, entry);
        let cell = slot.newest.cell;
        slot.older.retain(|e| e.cell != cell);
        if previous.cell != cell {
            slot.older.insert(0, previous);
        }
        slot.older.truncate(self.per_user - 1);
    }

    pub fn forget(&mut self, user: &str) -> bool {
        self.users.pop(user).is_some()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn clear(&mut self) {
        self.users.clear();
    }
}
