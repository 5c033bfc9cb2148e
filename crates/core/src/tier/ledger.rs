//! Outage accounting: the upstream calls an instance counted alone while Redis was away (with
//! `whenRedisDown: "local"`), kept by window so that they can be added to the shared counters
//! when Redis comes back. Otherwise an outage would hand every instance a fresh budget for the
//! rest of the day.
//!
//! Windows are read on this machine's wall clock, the shared counters' on the Redis server's:
//! calls are added to the shared minute or day only if it is still the one they were made in
//! (a clock skewed across a window's edge loses those calls, never counts them twice).

use std::collections::HashMap;
use std::sync::Mutex;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default)]
pub struct Ledger {
    providers: Mutex<HashMap<String, Unshared>>,
}

/// One provider's calls not yet shared: (window index, calls) for the minute and the day.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Unshared {
    pub minute: (i64, u64),
    pub day: (i64, u64),
}

impl Ledger {
    /// Counts one call to `provider` made at `wall_ms` without Redis.
    pub fn count(&self, provider: &str, wall_ms: i64) {
        let mut providers = self.providers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let unshared = providers.entry(provider.to_owned()).or_default();
        for (window, length) in [(&mut unshared.minute, MINUTE_MS), (&mut unshared.day, DAY_MS)] {
            let index = wall_ms.div_euclid(length);
            if window.0 != index {
                *window = (index, 0);
            }
            window.1 += 1;
        }
    }

    /// Everything not yet shared, emptied (give back what could not be added).
    pub fn take(&self) -> Vec<(String, Unshared)> {
        let mut providers = self.providers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        providers.drain().collect()
    }

    /// Puts back what `take` gave when it could not be added (Redis failed again).
    pub fn give_back(&self, provider: String, unshared: Unshared) {
        let mut providers = self.providers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = providers.entry(provider).or_default();
        for (mine, theirs) in [(&mut mine.minute, unshared.minute), (&mut mine.day, unshared.day)] {
            if mine.0 == theirs.0 || mine.1 == 0 {
                *mine = (theirs.0, mine.1 + theirs.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_window_and_forgets_windows_past() {
        let ledger = Ledger::default();
        let t = 10 * DAY_MS + 5_000;
        ledger.count("openweather", t);
        ledger.count("openweather", t + 1_000);
        ledger.count("openweather", t + MINUTE_MS); // the next minute, the same day
        ledger.count("open-meteo", t);
        let mut taken = ledger.take();
        taken.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(taken[1], ("openweather".to_owned(), Unshared { minute: (t / MINUTE_MS + 1, 1), day: (10, 3) }));
        assert_eq!(taken[0].1.day, (10, 1));
        assert!(ledger.take().is_empty());
        ledger.give_back("open-meteo".into(), taken[0].1);
        ledger.count("open-meteo", t);
        assert_eq!(ledger.take()[0].1.day, (10, 2));
    }
}
