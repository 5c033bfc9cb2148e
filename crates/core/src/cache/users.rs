//! Per-user stores: each user's most recent entries, and an LRU over users so that memory stays
//! bounded however many user ids pass through.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::entry::{Entry, Millis};
use super::versions::UserVersions;
use super::{best_of, Found};
use crate::geo::LatLon;

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
    /// Kept once someone remembers users' answers outside (`watch`); shared, so that it can be
    /// read without the lock.
    versions: Option<Arc<UserVersions>>,
}

impl UserCache {
    pub fn new(max_users: NonZeroUsize, per_user: NonZeroUsize) -> UserCache {
        UserCache { users: LruCache::sparse(max_users), per_user: per_user.get(), versions: None }
    }

    /// The versions of users' entries, kept from now on.
    pub fn watch(&mut self) -> Arc<UserVersions> {
        self.versions.get_or_insert_with(|| Arc::new(UserVersions::new())).clone()
    }

    /// `user`'s bucket and its version, if watched.
    pub fn version_of(&self, user: &str) -> Option<(usize, u32)> {
        let versions = self.versions.as_ref()?;
        let bucket = UserVersions::bucket(user);
        Some((bucket, versions.get(bucket)))
    }

    fn changed(&self, user: &str) {
        if let Some(versions) = &self.versions {
            versions.changed(user);
        }
    }

    /// Marks `user` recently used, as a lookup would, and returns its newest entry.
    pub fn touch(&mut self, user: &str) -> Option<Arc<Entry>> {
        self.users.get(user).map(|slot| slot.newest.clone())
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
        best_of(std::iter::once(&slot.newest).chain(&slot.older), p, radius_km, now, seen)
    }

    /// Makes `entry` the user's newest, dropping an older entry for the same cell and the oldest
    /// past the per-user capacity. A new user may evict the least recently seen one.
    pub fn remember(&mut self, user: &str, entry: Arc<Entry>) {
        self.changed(user);
        let Some(slot) = self.users.get_mut(user) else {
            if let Some((evicted, _)) = self.users.push(user.into(), Slot { newest: entry, older: Vec::new() }) {
                self.changed(&evicted);
            }
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
        self.changed(user);
        self.users.pop(user).is_some()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn clear(&mut self) {
        if let Some(versions) = &self.versions {
            versions.changed_all();
        }
        self.users.clear();
    }
}
