//! Call budgets: at most so many upstream calls per minute and per UTC day, per provider
//! (OpenWeather's free tier is about 60 a minute and 1,000 a day, then billed per call).
//!
//! With a shared tier the count is kept in Redis, atomically for every instance (see the tier's
//! `ADMIT` script); this is the per-process count used without one, or while Redis is down when
//! `whenRedisDown` is `"local"`. Windows follow the service clock, so tests move them with
//! `advanceTime`.

use crate::cache::Millis;
use crate::tier::Limits;

/// What to do about budgets while Redis cannot be asked.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenRedisDown {
    /// Each instance enforces the whole budget by itself: N instances may spend N budgets.
    Local,
    /// No upstream call until Redis is back: cache only.
    Closed,
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub struct BudgetConfig {
    /// 0: no limit.
    pub per_minute: u64,
    /// 0: no limit.
    pub per_day: u64,
    pub when_redis_down: WhenRedisDown,
}

/// A background refresh never spends the last tenth of the day's budget: that is kept for
/// requests someone is waiting on.
pub const BACKGROUND_RESERVE: f64 = 0.1;

const MINUTE_MS: Millis = 60_000;
const DAY_MS: Millis = 86_400_000;

impl BudgetConfig {
    pub const UNLIMITED: BudgetConfig = BudgetConfig { per_minute: 0, per_day: 0, when_redis_down: WhenRedisDown::Local };

    pub fn is_limited(&self) -> bool {
        self.per_minute > 0 || self.per_day > 0
    }

    /// The limits one call is held to: a background refresh stops short of the reserve (at
    /// least one call of a day's budget), and gets `None` when the reserve is all there is.
    pub fn limits(&self, background: bool) -> Option<Limits> {
        let per_day = if background && self.per_day > 0 {
            let reserve = ((self.per_day as f64) * BACKGROUND_RESERVE).ceil() as u64;
            match self.per_day.saturating_sub(reserve.max(1)) {
                0 => return None,
                left => left,
            }
        } else {
            self.per_day
        };
        Some(Limits { per_minute: self.per_minute, per_day })
    }
}

/// Calls counted in the current minute and day of the service clock.
#[derive(Debug, Default)]
pub struct LocalBudget {
    minute: Window,
    day: Window,
}

#[derive(Debug, Default)]
struct Window {
    index: Millis,
    count: u64,
}

impl Window {
    fn count(&self, index: Millis) -> u64 {
        if self.index == index {
            self.count
        } else {
            0
        }
    }
}

impl LocalBudget {
    /// The windows as a snapshot keeps them: `[minute index, calls, day index, calls]`.
    pub fn saved(&self) -> [i64; 4] {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        [self.minute.index, count(self.minute.count), self.day.index, count(self.day.count)]
    }

    /// Takes in saved windows: a window's count is the larger of the two (a restart must not
    /// give back calls already spent); a later window replaces an earlier one.
    pub fn merge(&mut self, saved: [i64; 4]) {
        let [minute, in_minute, day, in_day] = saved;
        for (window, index, count) in [(&mut self.minute, minute, in_minute), (&mut self.day, day, in_day)] {
            let count = u64::try_from(count).unwrap_or(0);
            if index > window.index {
                *window = Window { index, count };
            } else if index == window.index {
                window.count = window.count.max(count);
            }
        }
    }

    /// Whether `admit` would count a call now (and counts nothing).
    pub fn would_admit(&self, now: Millis, limits: Limits) -> bool {
        let (minute, day) = (now.div_euclid(MINUTE_MS), now.div_euclid(DAY_MS));
        (limits.per_minute == 0 || self.minute.count(minute) < limits.per_minute)
            && (limits.per_day == 0 || self.day.count(day) < limits.per_day)
    }

    /// Counts one call if `limits` allow it; otherwise the time until the window that refused
    /// it ends.
    /// Counts a call already made, whatever the limits (a provider's several requests for one
    /// fetch: see `Answer::extra_calls`).
    pub fn charge(&mut self, now: Millis) {
        let (minute, day) = (now.div_euclid(MINUTE_MS), now.div_euclid(DAY_MS));
        let (in_minute, in_day) = (self.minute.count(minute), self.day.count(day));
        self.minute = Window { index: minute, count: in_minute + 1 };
        self.day = Window { index: day, count: in_day + 1 };
    }

    pub fn admit(&mut self, now: Millis, limits: Limits) -> Result<(), Millis> {
        let (minute, day) = (now.div_euclid(MINUTE_MS), now.div_euclid(DAY_MS));
        let (in_minute, in_day) = (self.minute.count(minute), self.day.count(day));
        if limits.per_minute > 0 && in_minute >= limits.per_minute {
            return Err((minute + 1) * MINUTE_MS - now);
        }
        if limits.per_day > 0 && in_day >= limits.per_day {
            return Err((day + 1) * DAY_MS - now);
        }
        self.minute = Window { index: minute, count: in_minute + 1 };
        self.day = Window { index: day, count: in_day + 1 };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_and_day_windows() {
        let config = BudgetConfig { per_minute: 2, per_day: 3, when_redis_down: WhenRedisDown::Local };
        let mut budget = LocalBudget::default();
        let t = 10 * DAY_MS + 5_000;
        let limits = config.limits(false).unwrap();
        assert_eq!(budget.admit(t, limits), Ok(()));
        assert_eq!(budget.admit(t + 1, limits), Ok(()));
        assert_eq!(budget.admit(t + 2, limits), Err(55_000 - 2), "the minute is spent");
        assert_eq!(budget.admit(t + 55_000, limits), Ok(()), "a new minute");
        assert_eq!(budget.admit(t + 120_000, limits), Err(DAY_MS - 125_000), "the day is spent");
        assert_eq!(budget.admit(11 * DAY_MS, limits), Ok(()), "a new UTC day");
    }

    #[test]
    fn background_refreshes_keep_the_last_tenth_of_the_day() {
        let config = BudgetConfig { per_minute: 0, per_day: 10, when_redis_down: WhenRedisDown::Local };
        assert_eq!(config.limits(true), Some(Limits { per_minute: 0, per_day: 9 }));
        let mut budget = LocalBudget::default();
        for i in 0..9 {
            assert_eq!(budget.admit(i, config.limits(true).unwrap()), Ok(()));
        }
        assert!(budget.admit(9, config.limits(true).unwrap()).is_err(), "the reserve");
        assert_eq!(budget.admit(9, config.limits(false).unwrap()), Ok(()), "a waiting request may spend it");
        assert!(!BudgetConfig::UNLIMITED.is_limited());
        // A budget of 1 a day is all reserve: background refreshes get nothing (0 would mean
        // no limit at all).
        let tiny = BudgetConfig { per_day: 1, ..config };
        assert_eq!(tiny.limits(true), None);
        assert_eq!(tiny.limits(false), Some(Limits { per_minute: 0, per_day: 1 }));
        let small = BudgetConfig { per_day: 15, ..config };
        assert_eq!(small.limits(true), Some(Limits { per_minute: 0, per_day: 13 }), "the reserve rounds up");
    }
}
