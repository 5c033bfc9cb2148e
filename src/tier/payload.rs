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
}

/// Short field names: a payload is about 90 bytes. `f` is also read by the Lua scripts.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    c: f64,
    w: std::borrow::Cow<'a, str>,
    f: i64,
    a: f64,
    o: f64,
    p: std::borrow::Cow<'a, str>,
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
        };
        assert_eq!(Stored::decode(stored.encode().as_bytes()), Some(stored));
        for foreign in [&b"hello"[..], b"{}", br#"{"c":1,"w":"x","f":1,"a":91,"o":0,"p":"x"}"#] {
            assert_eq!(Stored::decode(foreign), None);
        }
    }
}
