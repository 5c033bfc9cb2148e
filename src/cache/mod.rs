//! Where answers are kept: immutable entries, a shared store by grid cell, and per-user stores.

mod entry;
mod nearby;
mod shared;
mod users;

use std::sync::Arc;

pub use entry::{Condition, Entry, Freshness, Millis, Observation, Summary};
pub use nearby::Nearby;
pub use shared::SharedCache;
pub use users::UserCache;

/// An entry that covers a request, and how well.
#[derive(Clone, Debug)]
pub struct Found {
    pub entry: Arc<Entry>,
    pub freshness: Freshness,
    pub distance: f64,
}

impl Found {
    /// Fresh beats stale; between equals, the nearer entry describes the weather better.
    pub fn better_than(&self, other: &Found) -> bool {
        (self.freshness, -self.distance) > (other.freshness, -other.distance)
    }
}

fn better(candidate: &Found, best: Option<&Found>) -> bool {
    best.is_none_or(|best| candidate.better_than(best))
}

#[cfg(test)]
mod tests;
