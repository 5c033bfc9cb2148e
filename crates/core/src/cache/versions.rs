//! Versions of users' entries, for whoever remembers outside the engine what a user was
//! answered (the JS front, lib/front.js): one counter per bucket of user ids, moved whenever
//! the entries of a user in that bucket change (remembered, forgotten, evicted), never by a
//! lookup. While a user's bucket has not moved, a lookup by that user finds what it found.
//!
//! Buckets rather than one counter per service: a user's answer stays valid while other users
//! move. Buckets rather than one per user: no bookkeeping per user, and a collision only costs
//! a remembered answer (the addon answers instead).

use std::sync::atomic::{AtomicU32, Ordering};

pub const BUCKETS: usize = 1 << 16;

pub struct UserVersions(Box<[AtomicU32]>);

impl std::fmt::Debug for UserVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserVersions")
    }
}

impl Default for UserVersions {
    fn default() -> UserVersions {
        UserVersions::new()
    }
}

impl UserVersions {
    pub fn new() -> UserVersions {
        UserVersions((0..BUCKETS).map(|_| AtomicU32::new(0)).collect())
    }

    /// FNV-1a over the id's bytes, folded to `BUCKETS`.
    pub fn bucket(user: &str) -> usize {
        let hash = user.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        ((hash >> 16) ^ hash) as usize % BUCKETS
    }

    pub fn changed(&self, user: &str) {
        self.0[Self::bucket(user)].fetch_add(1, Ordering::Release);
    }

    pub fn changed_all(&self) {
        for version in self.0.iter() {
            version.fetch_add(1, Ordering::Release);
        }
    }

    pub fn get(&self, bucket: usize) -> u32 {
        self.0[bucket].load(Ordering::Acquire)
    }

    /// The counters, for a reader in another language (an external buffer of `u32`s).
    pub fn as_slice(&self) -> &[AtomicU32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_moves_its_bucket_only() {
        let versions = UserVersions::new();
        let (ada, bo) = (UserVersions::bucket("ada"), UserVersions::bucket("bo"));
        assert_ne!(ada, bo);
        versions.changed("ada");
        versions.changed("ada");
        assert_eq!((versions.get(ada), versions.get(bo)), (2, 0));
        versions.changed_all();
        assert_eq!((versions.get(ada), versions.get(bo)), (3, 1));
    }
}
