//! Great-circle arithmetic for the simulated drone (spherical earth; metres and degrees).

use crate::config::GeoPoint;

const EARTH_RADIUS_M: f64 = 6_371_000.0;

/// Distance between two points in metres (haversine).
pub(crate) fn distance_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Initial bearing from `a` to `b`, degrees clockwise from north in [0, 360).
pub(crate) fn bearing_deg(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlon = (b.lon - a.lon).to_radians();
    let y = dlon.sin() * lat2.cos();
    let x = lat1.cos() * lat2.sin() - lat1.sin() * lat2.cos() * dlon.cos();
    y.atan2(x).to_degrees().rem_euclid(360.0)
}

/// The point `distance_m` from `a` along `bearing_deg`.
pub(crate) fn destination(a: GeoPoint, bearing_deg: f64, distance_m: f64) -> GeoPoint {
    let delta = distance_m / EARTH_RADIUS_M;
    let theta = bearing_deg.to_radians();
    let lat1 = a.lat.to_radians();
    let lon1 = a.lon.to_radians();
    let lat2 = (lat1.sin() * delta.cos() + lat1.cos() * delta.sin() * theta.cos()).asin();
    let lon2 = lon1
        + (theta.sin() * delta.sin() * lat1.cos()).atan2(delta.cos() - lat1.sin() * lat2.sin());
    GeoPoint {
        lat: lat2.to_degrees(),
        lon: lon2.to_degrees(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_lands_where_distance_and_bearing_say() {
        let start = GeoPoint {
            lat: 47.3977,
            lon: 8.5456,
        };
        let end = destination(start, 60.0, 250.0);
        assert!((distance_m(start, end) - 250.0).abs() < 1e-6);
        assert!((bearing_deg(start, end) - 60.0).abs() < 1e-6);
        // One minute of latitude is about one nautical mile.
        let north = GeoPoint {
            lat: start.lat + 1.0 / 60.0,
            lon: start.lon,
        };
        assert!((distance_m(start, north) - 1853.2).abs() < 1.0);
        assert!(bearing_deg(start, north).abs() < 1e-9);
    }
}
