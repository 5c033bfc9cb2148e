//! Per-area cooldowns after upstream errors: 1,000 drones asking about a failing area cause one
//! upstream call per window, and in between they all get that area's last error.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::backoff::{doubling, Jitter};
use super::error::RequestError;
use crate::cache::{Millis, Nearby};
use crate::geo::{distance_km, CellId, Grid, LatLon};

#[derive(Debug)]
struct Failure {
    location: LatLon,
    until: Millis,
    consecutive: u32,
    error: RequestError,
}

/// Bounded like the shared cache: at most one record per cell, least recently failed evicted.
#[derive(Debug)]
pub struct AreaCooldowns {
    failures: LruCache<CellId, Failure>,
    nearby: Nearby,
}

pub struct CooldownPolicy {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl AreaCooldowns {
    pub fn new(capacity: NonZeroUsize) -> AreaCooldowns {
        AreaCooldowns { failures: LruCache::sparse(capacity), nearby: Nearby::default() }
    }

    /// The error of a cooling-down area within `radius_km` of `p`, and when its window ends.
    pub fn active(&mut self, grid: &Grid, p: LatLon, radius_km: f64, now: Millis) -> Option<(RequestError, Millis)> {
        if self.failures.is_empty() {
            return None;
        }
        let failures = &self.failures;
        let hit = |f: &Failure| f.until > now && distance_km(p, f.location) <= radius_km;
        let found = match self.nearby.cells(grid, p, radius_km, failures.len()) {
            Some(mut cells) => cells.find_map(|cell| failures.peek(&cell).filter(|f| hit(f))),
            None => failures.iter().map(|(_, f)| f).find(|f| hit(f)),
        };
        found.map(|f| (f.error.clone(), f.until))
    }

    /// Records a failed fetch at `location` and returns the cooldown it starts (0 when area
    /// cooldowns are off). Failures in a row double the window; a record idle for a whole
    /// maximum window is forgotten, so an area that recovered starts again from the base.
    pub fn record(
        &mut self,
        grid: &Grid,
        location: LatLon,
        now: Millis,
        error: RequestError,
        policy: &CooldownPolicy,
        jitter: &mut Jitter,
    ) -> Millis {
        if policy.base_ms == 0 {
            return 0;
        }
        let cell = grid.cell_of(location);
        let previous = self
            .failures
            .pop(&cell)
            .filter(|f| now < f.until.saturating_add(policy.max_ms as Millis))
            .map_or(0, |f| f.consecutive);
        let consecutive = previous.saturating_add(1);
        let window = jitter.apply(doubling(policy.base_ms, policy.max_ms, consecutive)).min(policy.max_ms) as Millis;
        self.failures.put(cell, Failure { location, until: now.saturating_add(window), consecutive, error });
        window
    }

    /// A success at `location` ends the cooldowns it answers for.
    pub fn clear_near(&mut self, location: LatLon, radius_km: f64) {
        if !self.failures.is_empty() {
            self.failures.retain(|_, f| distance_km(location, f.location) > radius_km);
        }
    }

    pub fn clear(&mut self) {
        self.failures.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_per_failure_and_reset_after_quiet() {
        let grid = Grid::new(0.045);
        let mut cooldowns = AreaCooldowns::new(NonZeroUsize::new(10).unwrap());
        let mut jitter = Jitter::new(0.0, 1);
        let policy = CooldownPolicy { base_ms: 5_000, max_ms: 300_000 };
        let at = LatLon::new(10.0, 10.0);
        let err = RequestError::Status { status: 503 };
        assert_eq!(cooldowns.record(&grid, at, 0, err.clone(), &policy, &mut jitter), 5_000);
        assert_eq!(cooldowns.active(&grid, LatLon::new(10.02, 10.02), 5.0, 4_999), Some((err.clone(), 5_000)));
        assert_eq!(cooldowns.active(&grid, LatLon::new(10.02, 10.02), 5.0, 5_000), None);
        assert_eq!(cooldowns.active(&grid, LatLon::new(11.0, 10.0), 5.0, 0), None, "another area");
        assert_eq!(cooldowns.record(&grid, at, 5_000, err.clone(), &policy, &mut jitter), 10_000);
        assert_eq!(cooldowns.record(&grid, at, 15_000, err.clone(), &policy, &mut jitter), 20_000);
        // Quiet for a whole maximum window: the next failure starts from the base again.
        assert_eq!(cooldowns.record(&grid, at, 35_000 + 300_000, err.clone(), &policy, &mut jitter), 5_000);
        cooldowns.clear_near(LatLon::new(10.01, 10.0), 5.0);
        assert_eq!(cooldowns.active(&grid, at, 5.0, 335_001), None, "a success clears it");
    }
}
