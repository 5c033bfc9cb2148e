//! One upstream answer for one place and time. Entries are immutable and shared (`Arc`) between
//! the shared store and every user that copied them, so a copy costs a pointer.

use crate::geo::{js_round, CellId, LatLon};

/// Milliseconds since the Unix epoch, on the service clock.
pub type Millis = i64;

/// What the provider reported, in canonical units.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Short condition such as `"Clouds"`; `"Unknown"` when the provider gave none.
    pub condition: String,
    /// Unrounded Celsius, as received.
    pub celsius: f64,
}

/// What callers display: rounded once, from the unrounded value, so that °F is not derived from
/// an already rounded °C (20.6 °C is 21 °C and 69 °F, not 70 °F).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub condition: Condition,
    pub temp_c: f64,
    pub temp_f: f64,
}

impl Summary {
    pub fn from_observation(obs: &Observation) -> Summary {
        Summary {
            condition: Condition::new(&obs.condition),
            temp_c: js_round(obs.celsius),
            temp_f: js_round(obs.celsius * 9.0 / 5.0 + 32.0),
        }
    }
}

/// A condition name. OpenWeather's known `main` values cost no allocation per entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    Known(&'static str),
    Other(Box<str>),
}

/// OpenWeather's `weather[].main` groups, plus our own fallback.
pub(super) const KNOWN_CONDITIONS: [&str; 16] = [
    "Clear",
    "Clouds",
    "Rain",
    "Drizzle",
    "Thunderstorm",
    "Snow",
    "Mist",
    "Smoke",
    "Haze",
    "Dust",
    "Fog",
    "Sand",
    "Ash",
    "Squall",
    "Tornado",
    "Unknown",
];

impl Condition {
    pub fn new(name: &str) -> Condition {
        match KNOWN_CONDITIONS.iter().find(|known| **known == name) {
            Some(known) => Condition::Known(known),
            None => Condition::Other(name.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Condition::Known(name) => name,
            Condition::Other(name) => name,
        }
    }
}

/// Where an entry stands in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Freshness {
    /// Past the stale window: as good as absent.
    Expired,
    /// Past `expires_at`, still servable while a refresh runs.
    Stale,
    Fresh,
}

#[derive(Debug)]
pub struct Entry {
    pub cell: CellId,
    /// The (rounded) location the upstream was asked about; proximity is measured from here.
    pub location: LatLon,
    pub celsius: f64,
    pub summary: Summary,
    /// Which provider answered (`"openweather"`, `"open-meteo"`, ...).
    pub provider: &'static str,
    pub fetched_at: Millis,
    pub expires_at: Millis,
    pub stale_until: Millis,
    /// What the provider asked of this answer, when it asked anything (MET Norway). Boxed: most
    /// entries have none, and every entry pays for the field.
    pub terms: Option<Box<Terms>>,
    /// The forecast products of the same answer (see `products.rs`); `None` when the provider
    /// gives none. Shared: a renewal (304) or a copy from the shared tier reuses them.
    pub products: Option<std::sync::Arc<super::Products>>,
}

/// A provider's conditions on reusing its answer.
#[derive(Debug, Default, PartialEq)]
pub struct Terms {
    /// Until when the provider asked not to be asked again about this place (MET Norway's
    /// `Expires`; 0 for none): the entry stays fresh that long, and even a forced refresh is
    /// answered from it.
    pub held_until: Millis,
    /// The provider's validator of this answer, for a conditional refresh at its location.
    pub validator: Option<Box<str>>,
}

impl Terms {
    /// `None` when there is nothing to keep.
    pub fn boxed(held_until: Millis, validator: Option<Box<str>>) -> Option<Box<Terms>> {
        (held_until > 0 || validator.is_some()).then(|| Box::new(Terms { held_until, validator }))
    }
}

impl Entry {
    pub fn freshness(&self, now: Millis) -> Freshness {
        if self.expires_at > now {
            Freshness::Fresh
        } else if self.stale_until > now {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    pub fn age(&self, now: Millis) -> Millis {
        (now - self.fetched_at).max(0)
    }

    /// See `Terms::held_until` (0 for none).
    pub fn held_until(&self) -> Millis {
        self.terms.as_ref().map_or(0, |t| t.held_until)
    }

    /// See `Terms::validator`.
    pub fn validator(&self) -> Option<&str> {
        self.terms.as_ref().and_then(|t| t.validator.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(celsius: f64) -> Summary {
        Summary::from_observation(&Observation { condition: "Clear".into(), celsius })
    }

    #[test]
    fn known_conditions_are_interned() {
        assert_eq!(Condition::new("Clouds"), Condition::Known("Clouds"));
        assert_eq!(Condition::new("Volcano").as_str(), "Volcano");
    }

    #[test]
    fn fahrenheit_comes_from_unrounded_celsius() {
        let s = summary(20.6);
        assert_eq!((s.temp_c, s.temp_f), (21.0, 69.0));
        assert_eq!((summary(-40.0).temp_c, summary(-40.0).temp_f), (-40.0, -40.0));
        assert_eq!(summary(-0.4).temp_c.to_bits(), 0f64.to_bits(), "no -0 °C");
        assert_eq!(summary(-17.5).temp_c, -17.0, "ties round up like Math.round");
    }

    #[test]
    fn freshness_follows_the_clock() {
        let e = Entry {
            cell: CellId { row: 0, col: 0 },
            location: LatLon::new(0.0, 0.0),
            celsius: 1.0,
            summary: summary(1.0),
            provider: "test",
            fetched_at: 1_000,
            expires_at: 2_000,
            stale_until: 3_000,
            terms: None,
            products: None,
        };
        assert_eq!(e.freshness(1_999), Freshness::Fresh);
        assert_eq!(e.freshness(2_000), Freshness::Stale);
        assert_eq!(e.freshness(3_000), Freshness::Expired);
        assert_eq!(e.age(1_500), 500);
    }
}
