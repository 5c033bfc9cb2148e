//! Where answers are kept: immutable entries, a shared store by grid cell, and per-user stores.

mod entry;
mod nearby;
mod products;
mod shared;
mod spatial;
mod users;
mod versions;

use std::sync::Arc;

use crate::geo::{distance_km, LatLon};

pub use entry::{Condition, Entry, Freshness, Millis, Observation, Summary, Terms};
pub use nearby::Nearby;
pub use products::{
    as_given, days_from_civil, fahrenheit, iso_date, js_round_tenth, local_day, tenths, Alert, Day, Details, Hour, Maybe, NextHour, Products, Sky, Wanted,
    MAX_ALERTS, MAX_ALERT_DESCRIPTION_CHARS, MAX_ALERT_TITLE_CHARS, MAX_DAYS, MAX_DESCRIPTION_CHARS, MAX_HOURS,
    MAX_NEXT_HOUR_POINTS,
};
pub use shared::SharedCache;
pub use spatial::{Placed, SpatialLru};
pub use users::UserCache;
pub use versions::{UserVersions, BUCKETS as USER_VERSION_BUCKETS};

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

/// The best of the candidate entries that is live and within `radius_km` of `p`. `seen`
/// observes every distance computed (for debug events).
fn best_of<'a>(
    candidates: impl Iterator<Item = &'a Arc<Entry>>,
    p: LatLon,
    radius_km: f64,
    now: Millis,
    seen: &mut impl FnMut(f64, bool),
) -> Option<Found> {
    let mut best: Option<Found> = None;
    for entry in candidates {
        let freshness = entry.freshness(now);
        if freshness == Freshness::Expired {
            continue;
        }
        let distance = distance_km(p, entry.location);
        let within = distance <= radius_km;
        seen(distance, within);
        if within {
            let found = Found { entry: entry.clone(), freshness, distance };
            if best.as_ref().is_none_or(|b| found.better_than(b)) {
                best = Some(found);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests;
