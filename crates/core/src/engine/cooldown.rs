//! Per-area cooldowns after upstream errors: 1,000 drones asking about a failing area cause one
//! upstream call per window, and in between they all get that area's last error.
//!
//! An area is a failed fetch's location and the proximity radius around it. Records live in a
//! spatial LRU like the shared cache, several per grid cell: two failing spots in one cell each
//! keep their own window and their own count of failures in a row.

use std::num::NonZeroUsize;

use super::backoff::{doubling, Jitter};
use super::error::RequestError;
use crate::cache::{Millis, Placed, SpatialLru};
use crate::geo::{distance_km, CellId, Grid, LatLon};

/// Most records one grid cell keeps (the oldest go first).
const PER_CELL: usize = 64;

#[derive(Debug)]
struct Failure {
    cell: CellId,
    location: LatLon,
    until: Millis,
    consecutive: u32,
    error: RequestError,
}

impl Placed for Failure {
    fn cell(&self) -> CellId {
        self.cell
    }

    fn location(&self) -> LatLon {
        self.location
    }
}

/// Bounded like the shared cache: `capacity` records in all, least recently failed evicted.
#[derive(Debug)]
pub struct AreaCooldowns {
    failures: SpatialLru<u64, Failure>,
    next_id: u64,
}

pub struct CooldownPolicy {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl AreaCooldowns {
    pub fn new(capacity: NonZeroUsize) -> AreaCooldowns {
        AreaCooldowns { failures: SpatialLru::new(capacity, PER_CELL), next_id: 0 }
    }

    /// The error of a cooling-down area within `radius_km` of `p`, and when its window ends (the
    /// latest-ending one if several areas cover `p`).
    pub fn active(&mut self, grid: &Grid, p: LatLon, radius_km: f64, now: Millis) -> Option<(RequestError, Millis)> {
        if self.failures.is_empty() {
            return None;
        }
        self.failures
            .near(grid, p, radius_km)
            .map(|(_, f)| f)
            .filter(|f| f.until > now && distance_km(p, f.location) <= radius_km)
            .max_by_key(|f| f.until)
            .map(|f| (f.error.clone(), f.until))
    }

    /// Records a failed fetch at `location` and returns the cooldown it starts (0 when area
    /// cooldowns are off). It continues the nearest record within `radius_km` (the same area
    /// failing again doubles its window); a record idle for a whole maximum window is forgotten,
    /// so an area that recovered starts again from the base. Records of other areas, even in the
    /// same cell, are untouched.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        grid: &Grid,
        location: LatLon,
        radius_km: f64,
        now: Millis,
        error: RequestError,
        policy: &CooldownPolicy,
        jitter: &mut Jitter,
    ) -> Millis {
        if policy.base_ms == 0 {
            return 0;
        }
        let same_area = self.nearest(grid, location, radius_km);
        let previous = same_area
            .and_then(|id| self.failures.remove(&id))
            .filter(|f| now < f.until.saturating_add(policy.max_ms as Millis))
            .map_or(0, |f| f.consecutive);
        let consecutive = previous.saturating_add(1);
        let window = jitter.apply(doubling(policy.base_ms, policy.max_ms, consecutive)).min(policy.max_ms) as Millis;
        self.next_id += 1;
        let failure =
            Failure { cell: grid.cell_of(location), location, until: now.saturating_add(window), consecutive, error };
        self.failures.insert(self.next_id, failure, |old| old.location == location);
        window
    }

    /// The record nearest `location` within `radius_km`: the area's, which a new failure or
    /// another instance's record replaces.
    fn nearest(&mut self, grid: &Grid, location: LatLon, radius_km: f64) -> Option<u64> {
        self.failures
            .near(grid, location, radius_km)
            .map(|(id, f)| (*id, distance_km(location, f.location)))
            .filter(|(_, distance)| *distance <= radius_km)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    }

    /// Failures in a row of the record for the area at `location` (0: none).
    pub fn failures_in_a_row(&mut self, grid: &Grid, location: LatLon, radius_km: f64) -> u32 {
        self.failures
            .near(grid, location, radius_km)
            .map(|(_, f)| f)
            .filter(|f| distance_km(location, f.location) <= radius_km)
            .map(|f| f.consecutive)
            .max()
            .unwrap_or(0)
    }

    /// A failure another instance saw (through the shared tier): the area cools down here too,
    /// until `until`, with `consecutive` failures in a row so far, so that the next failure
    /// here doubles from there. A window of its own is never shortened.
    #[allow(clippy::too_many_arguments)]
    pub fn adopt(
        &mut self,
        grid: &Grid,
        location: LatLon,
        radius_km: f64,
        until: Millis,
        consecutive: u32,
        error: RequestError,
    ) {
        let same_area = self.nearest(grid, location, radius_km);
        let (until, consecutive, location) = match same_area.and_then(|id| self.failures.remove(&id)) {
            Some(own) => (own.until.max(until), own.consecutive.max(consecutive), own.location),
            None => (until, consecutive, location),
        };
        self.next_id += 1;
        let failure = Failure { cell: grid.cell_of(location), location, until, consecutive, error };
        self.failures.insert(self.next_id, failure, |old| old.location == location);
    }

    /// Every record still cooling down at `now`: place, end, failures in a row, error.
    pub fn active_records(&self, now: Millis) -> impl Iterator<Item = (LatLon, Millis, u32, &RequestError)> + '_ {
        self.failures.values().filter(move |f| f.until > now).map(|f| (f.location, f.until, f.consecutive, &f.error))
    }

    /// A success at `location` ends the cooldowns of the areas it answers for.
    pub fn clear_near(&mut self, grid: &Grid, location: LatLon, radius_km: f64) {
        if self.failures.is_empty() {
            return;
        }
        let answered: Vec<u64> = self
            .failures
            .near(grid, location, radius_km)
            .filter(|(_, f)| distance_km(location, f.location) <= radius_km)
            .map(|(id, _)| *id)
            .collect();
        for id in answered {
            self.failures.remove(&id);
        }
    }

    pub fn clear(&mut self) {
        self.failures.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OW: &str = "openweather";

    fn fixture() -> (Grid, AreaCooldowns, Jitter, CooldownPolicy) {
        let cooldowns = AreaCooldowns::new(NonZeroUsize::new(10).unwrap());
        (Grid::new(0.045), cooldowns, Jitter::new(0.0, 1), CooldownPolicy { base_ms: 5_000, max_ms: 300_000 })
    }

    #[test]
    fn windows_double_per_failure_and_reset_after_quiet() {
        let (grid, mut cooldowns, mut jitter, policy) = fixture();
        let at = LatLon::new(10.0, 10.0);
        let err = RequestError::Status { provider: OW, status: 503, reason: None };
        let mut record = |now| cooldowns.record(&grid, at, 5.0, now, err.clone(), &policy, &mut jitter);
        assert_eq!(record(0), 5_000);
        assert_eq!(record(5_000), 10_000);
        assert_eq!(record(15_000), 20_000);
        // Quiet for a whole maximum window: the next failure starts from the base again.
        assert_eq!(record(35_000 + 300_000), 5_000);
        assert_eq!(
            cooldowns.active(&grid, LatLon::new(10.02, 10.02), 5.0, 335_000 + 4_999),
            Some((err.clone(), 340_000))
        );
        assert_eq!(cooldowns.active(&grid, LatLon::new(10.02, 10.02), 5.0, 340_000), None);
        assert_eq!(cooldowns.active(&grid, LatLon::new(11.0, 10.0), 5.0, 335_000), None, "another area");
        cooldowns.clear_near(&grid, LatLon::new(10.01, 10.0), 5.0);
        assert_eq!(cooldowns.active(&grid, at, 5.0, 335_001), None, "a success clears it");
    }

    #[test]
    fn two_failing_spots_in_one_cell_keep_their_own_windows() {
        // Issue 10 #1: A and B are 5.5 km apart in one cell. Each failing twice in turn used to
        // overwrite the other's record (so neither cooled down) and inherit its count.
        let (grid, mut cooldowns, mut jitter, policy) = fixture();
        let (a, b) = (LatLon::new(9.97, 9.99), LatLon::new(10.01, 10.02));
        assert_eq!(grid.cell_of(a), grid.cell_of(b));
        assert!(distance_km(a, b) > 5.0);
        let err = RequestError::Status { provider: OW, status: 503, reason: None };
        assert_eq!(cooldowns.record(&grid, a, 5.0, 0, err.clone(), &policy, &mut jitter), 5_000);
        assert_eq!(cooldowns.record(&grid, b, 5.0, 1, err.clone(), &policy, &mut jitter), 5_000);
        assert!(cooldowns.active(&grid, a, 5.0, 2).is_some(), "A still cools down");
        assert!(cooldowns.active(&grid, b, 5.0, 2).is_some(), "B cools down too");
        // A recovering clears A only.
        cooldowns.clear_near(&grid, a, 5.0);
        assert!(cooldowns.active(&grid, a, 5.0, 2).is_none());
        assert!(cooldowns.active(&grid, b, 5.0, 2).is_some());
    }
}
