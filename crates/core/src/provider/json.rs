//! Reading optional parts of a provider's JSON without trusting their types: a field of the
//! wrong type counts as absent (a product's field is then `null`), never as an error of the
//! whole answer, whose summary may be fine.

use serde_json::Value;

/// `v[key]` as a finite number.
pub fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|n| n.is_finite())
}

/// `v[key]` as an array (empty when absent or not an array).
pub fn list<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// `v[key]` as a string.
pub fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Epoch seconds that fit the products' `u32` times (1970 to 2106).
pub fn epoch_s(v: &Value, key: &str) -> Option<u32> {
    num(v, key).filter(|s| (0.0..=u32::MAX as f64).contains(s) && s.fract() == 0.0).map(|s| s as u32)
}

/// The sum of the parts given (rain and snow), `None` when none is.
pub fn sum(parts: [Option<f64>; 2]) -> Option<f64> {
    parts.iter().flatten().copied().reduce(|a, b| a + b)
}

/// What each kind of number may be; outside its range a reading is not passed on (`null`):
/// a unit mix-up or a broken sensor must not reach a drone operator as a fact.
#[derive(Copy, Clone)]
pub enum Kind {
    Celsius,
    Percent,
    Probability,
    MetresPerSecond,
    Millimetres,
    Degrees,
    Hectopascals,
    Metres,
    UvIndex,
}

impl Kind {
    fn range(self) -> (f64, f64) {
        match self {
            Kind::Celsius => (super::MIN_CELSIUS, super::MAX_CELSIUS),
            Kind::Percent => (0.0, 100.0),
            Kind::Probability => (0.0, 1.0),
            Kind::MetresPerSecond => (0.0, 150.0),
            Kind::Millimetres => (0.0, 2_000.0),
            Kind::Degrees => (0.0, 360.0),
            Kind::Hectopascals => (300.0, 1_100.0),
            Kind::Metres => (0.0, 1_000_000.0),
            Kind::UvIndex => (0.0, 30.0),
        }
    }

    pub fn of(self, value: Option<f64>) -> crate::cache::Maybe {
        let (min, max) = self.range();
        crate::cache::Maybe::within(value, min, max)
    }

    /// `v[key]` as this kind.
    pub fn at(self, v: &Value, key: &str) -> crate::cache::Maybe {
        self.of(num(v, key))
    }
}
