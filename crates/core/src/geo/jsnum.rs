//! JavaScript's number rounding, reproduced exactly.
//!
//! Bucket keys are specified as a TypeScript expression
//! (`${(Math.round(lat / g) * g).toFixed(5)}:…`), and Dashboard code written against that formula
//! must get the same strings from this crate. Rust rounds differently in two places: `f64::round`
//! sends negative ties away from zero (JS: toward +∞) and `{:.N}` formatting sends exact decimal
//! ties to even (JS: away from zero).

/// `Math.round`: the nearest integer, ties toward +∞. Returns `+0.0`, never `-0.0`.
pub fn js_round(x: f64) -> f64 {
    let floor = x.floor();
    // `x - floor` is exact for every finite double, so the tie test is exact too.
    let rounded = if x - floor >= 0.5 { floor + 1.0 } else { floor };
    rounded + 0.0
}

/// `Number.prototype.toFixed(digits)`, except that a result that reads as zero carries no sign
/// (`"0.00000"`, never `"-0.00000"`): keys must not depend on which side of zero a value fell.
pub fn to_fixed(x: f64, digits: usize) -> String {
    let magnitude = x.abs();
    // A value lies exactly halfway between two `digits`-decimal numbers only if it is an odd
    // multiple of 2^-(digits+1) (the halfway point is odd / (2·10^d), and it is a double only
    // when 5^d divides the odd numerator). JS rounds such ties up in magnitude, Rust to even:
    // nudging one ulp up makes Rust's exact formatting agree.
    let scaled = magnitude * f64::powi(2.0, digits as i32 + 1);
    let is_tie = scaled < 9_007_199_254_740_992.0 && scaled.fract() == 0.0 && scaled % 2.0 == 1.0;
    let magnitude = if is_tie { magnitude.next_up() } else { magnitude };
    let body = format!("{magnitude:.digits$}");
    let reads_as_zero = body.bytes().all(|b| b == b'0' || b == b'.');
    if x.is_sign_negative() && !reads_as_zero {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_matches_math_round() {
        assert_eq!(js_round(2.5), 3.0);
        assert_eq!(js_round(-2.5), -2.0);
        assert_eq!(js_round(-2.6), -3.0);
        assert_eq!(js_round(0.499_999_999_999_999_94), 0.0);
        assert!(js_round(-0.3).is_sign_positive());
    }

    #[test]
    fn to_fixed_matches_number_to_fixed() {
        // Expected strings produced by Node's `x.toFixed(d)`.
        let cases: &[(f64, usize, &str)] = &[
            (0.25, 1, "0.3"),
            (0.125, 2, "0.13"),
            (1.0 / 64.0, 5, "0.01563"),
            (-1.0 / 64.0, 5, "-0.01563"),
            (3.0 / 64.0, 5, "0.04688"),
            (180.0, 5, "180.00000"),
            (36.135, 5, "36.13500"),
            (1.005, 2, "1.00"), // 1.005 is really 1.00499999999999989…
            (-0.000_001, 5, "0.00000"),
            (-0.0, 5, "0.00000"),
        ];
        for &(x, digits, expected) in cases {
            assert_eq!(to_fixed(x, digits), expected, "{x}.toFixed({digits})");
        }
    }
}
