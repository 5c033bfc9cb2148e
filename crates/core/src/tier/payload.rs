//! An entry as Redis holds it: what another instance needs to serve it. Only the rounded
//! location, never a user id. Freshness is judged by the reader, from `fetched_at` and its
//! own TTLs and clock (Redis's own expiry only collects garbage), with `fetched_at` bounded by
//! when Redis received the payload: a writer's clock running ahead (or a forged payload) cannot
//! make an entry fresh for longer than its TTL.
//!
//! Payloads carry their schema version (`s`): an instance reads the versions it knows (the
//! first had no `s`) and ignores newer ones, so a rolling upgrade never fails on a payload.

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::products::{self, MAX_PRODUCTS_BYTES};
use crate::cache::Products;
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
    /// The entry's forecast products (see `products.rs`), so that another instance serves
    /// every product from the one upstream call.
    pub products: Option<Arc<Products>>,
}

/// The longest hold a payload may claim past its `fetched_at`: the providers cap theirs at a
/// day, and a foreign value must not pin an entry fresh for ever.
const MAX_HOLD_MS: i64 = 86_400_000;
/// The longest validator kept; it goes back to the provider in a header.
const MAX_VALIDATOR_BYTES: usize = 128;

/// The payload schema this build writes. 2: `s` added (1, the first, had none; same fields).
pub const SCHEMA: u32 = 2;

/// The longest payload whose products are read (the summary's fields take ~200 bytes at most).
const MAX_PAYLOAD_BYTES: usize = MAX_PRODUCTS_BYTES + 1024;

/// Short field names: a payload is about 95 bytes (plus a few KB with products, `x`, which
/// readers of before products ignore: the schema did not change). `f`, `h` and `s` are also read by the Lua
/// scripts.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(default = "first_schema")]
    s: u32,
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
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "products_or_none")]
    x: Option<products::Wire>,
}

/// Products we cannot read are dropped, not the payload: its summary is still good.
fn products_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<products::Wire>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

fn first_schema() -> u32 {
    1
}

fn is_zero(x: &i64) -> bool {
    *x == 0
}

impl Stored {
    pub fn encode(&self) -> String {
        let wire = Wire {
            s: SCHEMA,
            c: self.celsius,
            w: self.condition.as_str().into(),
            f: self.fetched_at,
            a: self.location.lat,
            o: self.location.lon,
            p: self.provider.as_str().into(),
            h: self.held_until,
            v: self.validator.as_deref().map(Into::into),
            x: self.products.as_deref().map(products::encode),
        };
        serde_json::to_string(&wire).expect("plain numbers and strings encode")
    }

    /// `None` for anything that is not a payload we wrote (another program's key, a corrupted
    /// value): Redis is shared, and what comes out of it is checked like an upstream answer.
    /// A payload of a newer schema is `None` too: this build cannot know what it means.
    pub fn decode(bytes: &[u8]) -> Option<Stored> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        let valid = wire.s <= SCHEMA
            && wire.c.is_finite()
            && (-90.0..=90.0).contains(&wire.a)
            && (-180.0..=180.0).contains(&wire.o);
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
            products: wire.x.filter(|_| bytes.len() <= MAX_PAYLOAD_BYTES).and_then(products::decode).map(Arc::new),
        })
    }
}

impl Stored {
    /// The entry as a reader at `now` (its service clock) sees it, Redis having received it
    /// `age_ms` ago (Redis's clock): the reading is no younger than that. A later `fetched_at`
    /// is moved back, and the provider's hold with it (a hold is relative to the reading).
    pub fn received(mut self, age_ms: i64, now: i64) -> Stored {
        let bound = now.saturating_sub(age_ms.max(0));
        if self.fetched_at > bound {
            let shift = self.fetched_at - bound;
            self.fetched_at = bound;
            if self.held_until > 0 {
                self.held_until = self.held_until.saturating_sub(shift).max(1);
            }
        }
        self
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
            products: None,
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
    fn schemas_it_knows_are_read_and_newer_ones_ignored() {
        let first = br#"{"c":1.5,"w":"Rain","f":7,"a":1,"o":2,"p":"openweather"}"#;
        assert_eq!(Stored::decode(first).map(|s| s.fetched_at), Some(7), "the first layout's payload");
        assert!(Stored::decode(br#"{"s":2,"c":1.5,"w":"Rain","f":7,"a":1,"o":2,"p":"openweather"}"#).is_some());
        let newer = br#"{"s":3,"c":1.5,"w":"Rain","f":7,"a":1,"o":2,"p":"openweather","x":[1,2]}"#;
        assert_eq!(Stored::decode(newer), None);
        assert!(Stored::decode(first).unwrap().encode().starts_with(r#"{"s":2,"#));
    }

    #[test]
    fn a_reading_is_no_younger_than_its_arrival_in_redis() {
        let now = 1_700_000_000_000_i64;
        let ahead = Stored {
            celsius: 1.0,
            condition: "Rain".into(),
            fetched_at: now + 365 * 86_400_000,
            location: LatLon::new(1.0, 2.0),
            provider: "met-norway".into(),
            held_until: now + 365 * 86_400_000 + 1_800_000,
            validator: None,
            products: None,
        };
        let seen = ahead.clone().received(5_000, now);
        assert_eq!(
            (seen.fetched_at, seen.held_until),
            (now - 5_000, now - 5_000 + 1_800_000),
            "the hold moves with it"
        );
        let honest = Stored { fetched_at: now - 60_000, held_until: 0, ..ahead };
        assert_eq!(honest.clone().received(5_000, now), honest, "an older reading is untouched");
    }

    #[test]
    fn a_foreign_hold_is_capped_and_a_foreign_validator_dropped() {
        let f = 1_700_000_000_000_i64;
        let text = format!(
            r#"{{"c":1,"w":"Rain","f":{f},"a":1,"o":2,"p":"met-norway","h":{},"v":"bad\r\nX: y"}}"#,
            f + 10 * MAX_HOLD_MS
        );
        let stored = Stored::decode(text.as_bytes()).expect("a payload");
        assert_eq!((stored.held_until, stored.validator), (f + MAX_HOLD_MS, None));
    }
}
