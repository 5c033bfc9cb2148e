//! Rounding coordinates before they leave the process (~1 km at two decimals): upstream never
//! learns a user's exact position, and nearby requests share one upstream location.

use super::distance::distance_km;
use super::LatLon;

/// Most decimals a coordinate may keep; beyond this rounding is a no-op on doubles anyway.
pub const MAX_DECIMALS: u32 = 10;

/// Rounds both coordinates to `decimals` places (half away from zero; never `-0`).
pub fn round_location(p: LatLon, decimals: u32) -> LatLon {
    LatLon::new(round_to(p.lat, decimals), round_to(p.lon, decimals))
}

fn round_to(x: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale + 0.0
}

/// Farthest a point can move when rounded to `decimals` places: half a step in both latitude
/// and longitude, at the equator where a degree of longitude is longest. A proximity radius
/// below this could leave a request outside the entry its own fetch creates.
pub fn max_rounding_error_km(decimals: u32) -> f64 {
    let half_step = 0.5 * 10f64.powi(-(decimals as i32));
    distance_km(LatLon::new(0.0, 0.0), LatLon::new(half_step, half_step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::strategies::point;
    use proptest::prelude::*;

    #[test]
    fn rounds_to_decimals() {
        assert_eq!(round_location(LatLon::new(10.014, -10.016), 2), LatLon::new(10.01, -10.02));
        assert!(round_location(LatLon::new(-0.001, -0.004), 2).lat.is_sign_positive());
        assert_eq!(round_location(LatLon::new(89.996, 179.996), 2), LatLon::new(90.0, 180.0));
    }

    proptest! {
        #[test]
        fn rounding_never_moves_a_point_further_than_the_bound(decimals in 0u32..=4, p in point()) {
            let moved = distance_km(p, round_location(p, decimals));
            prop_assert!(moved <= max_rounding_error_km(decimals) * (1.0 + 1e-12), "moved {}", moved);
        }
    }

    #[test]
    fn the_bound_at_two_decimals() {
        assert!((max_rounding_error_km(2) - 0.786).abs() < 0.001);
    }
}
