//! An entry as Redis holds it: what another instance needs to serve it. Only the rounded
//! location, never a user id. Freshness is judged by the reader, from `fetched_at` and its
//! own TTLs and clock (Redis's own expiry only collects garbage).

use serde::{Deserialize, Serialize};

use crate::geo::LatLon;

#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub celsius: f64,
    pub condition: String,
    /// Epoch ms on the writer's service clock.
    pub fetched_at: i64,
    pub location: LatLon,
    pub provider: String,
    /// Until when the provider asked not to be asked again (MET Norway's `Expires`; 0 for
    /// none), on the writer's clock: every instance honours it, not only the one that fetched.
    pub held_until: i64,
    /// The provider's validator (`Last-Modified`), so that any instance's refresh is
    /// conditional.
    pub validator: Option<String>,
}

/// The longest hold a payload may claim past its `fetched_at`: the providers cap theirs at a
/// day, and a foreign value must not pin an entry fresh for ever.
const MAX_HOLD_MS: i64 = 86_400_000;
/// The longest validator kept; it goes back to the provider in a header.
const MAX_VALIDATOR_BYTES: usize = 128;

/// Short field names: a payload is about 90 bytes. `f` and `h` are also read by the Lua
/// scripts.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    c: f64,
    w: std::borrow::Cow<'a, str>,
    f: i64,
    a: f64,
    o: f64,
    p: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_zero")]
    h: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<std::borrow::Cow<'a, str>>,
}

fn is_zero(x: &i64) -> bool {
    *x == 0
}

impl Stored {
    pub fn encode(&self) -> String {
        let wire = Wire {
            c: self.celsius,
            w: self.condition.as_str().into(),
            f: self.fetched_at,
            a: self.location.lat,
            o: self.location.lon,
            p: self.provider.as_str().into(),
            h: self.held_until,
            v: self.validator.as_deref().map(Into::into),
        };
        serde_json::to_string(&wire).expect("plain numbers and strings encode")
    }

    /// `None` for anything that is not a payload we wrote (another program's key, a corrupted
    /// value): Redis is shared, and what comes out of it is checked like an upstream answer.
    pub fn decode(bytes: &[u8]) -> Option<Stored> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        let valid = wire.c.is_finite() && (-90.0..=90.0).contains(&wire.a) && (-180.0..=180.0).contains(&wire.o);
        valid.then(|| Stored {
            celsius: wire.c,
            condition: wire.w.into_owned(),
            fetched_at: wire.f,
            location: LatLon::new(wire.a, wire.o),
            provider: wire.p.into_owned(),
            held_until: if wire.h > 0 { wire.h.min(wire.f.saturating_add(MAX_HOLD_MS)) } else { 0 },
            // Printable ASCII only: anything else could not go back in a header.
            validator: wire
                .v
                .filter(|v| v.len() <= MAX_VALIDATOR_BYTES && v.bytes().all(|b| (b' '..=b'~').contains(&b)))
                .map(|v| v.into_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_values() {
        let stored = Stored {
            celsius: 20.6,
            condition: "Clouds".into(),
            fetched_at: 1_700_000_000_000,
            location: LatLon::new(48.86, 2.35),
            provider: "openweather".into(),
            held_until: 0,
            validator: None,
        };
        assert_eq!(Stored::decode(stored.encode().as_bytes()), Some(stored.clone()));
        let held = Stored {
            held_until: stored.fetched_at + 1_800_000,
            validator: Some("Sun, 22 Nov 2026 09:55:12 GMT".into()),
            provider: "met-norway".into(),
            ..stored
        };
        assert_eq!(Stored::decode(held.encode().as_bytes()), Some(held));
        for foreign in [&b"hello"[..], b"{}", br#"{"c":1,"w":"x","f":1,"a":91,"o":0,"p":"x"}"#] {
            assert_eq!(Stored::decode(foreign), None);
        }
    }

    #[test]
    fn a_foreign_hold_is_capped_and_a_foreign_validator_dropped() {
        let f = 1_700_000_000_000_i64;
        let text = format!(r#"{{"c":1,"w":"Rain","f":{f},"a":1,"o":2,"p":"met-norway","h":{},"v":"bad\r\nX: y"}}"#, f + 10 * MAX_HOLD_MS);
        let stored = Stored::decode(text.as_bytes()).expect("a payload");
        assert_eq!((stored.held_until, stored.validator), (f + MAX_HOLD_MS, None));
    }
}
