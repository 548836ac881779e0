//! `[hal.sim]`: what the simulator simulates.

use serde::{Deserialize, Serialize};

/// Which machine the simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimKind {
    /// A drone: battery, flight along `route`, outputs `estop`/`charger`, input `landed`.
    #[default]
    Drone,
    /// A depot: a door driven by the `door` output with `door_closed`/`door_open` limit
    /// switches, a charger, a docked drone, and the weather inside.
    Depot,
}

/// A point on the earth, in degrees (WGS84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Latitude in degrees, north positive.
    pub lat: f64,
    /// Longitude in degrees, east positive.
    pub lon: f64,
}

/// The simulator's parameters. Every field has a default, so `[hal.sim]` may be left out.
///
/// The simulator is deterministic: the same parameters and the same sequence of
/// [`crate::Hardware::advance`] calls and commands give the same readings; `seed` drives the
/// weather and the sensor noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// `drone` (default) or `depot`.
    pub kind: SimKind,
    /// Seed of the simulator's random numbers. Default 1.
    pub seed: u64,
    /// Where the drone takes off and lands, and where the depot stands.
    pub home: GeoPoint,
    /// Waypoints flown in order while a job is active; then the drone flies home and lands.
    /// Default: a square of about 300 m sides north-east of `home`.
    pub route: Vec<GeoPoint>,
    /// Altitude above home while flying, in metres. Default 40.
    pub cruise_altitude_m: f64,
    /// Ground speed between waypoints, in m/s. Default 10.
    pub cruise_speed_mps: f64,
    /// Battery capacity in mAh. Default 5000.
    pub battery_capacity_mah: f64,
    /// LiPo cells in series. Default 4.
    pub battery_cells: u8,
    /// State of charge when the simulator starts, in percent. Default 100.
    pub start_battery_percent: f64,
    /// Current drawn while the motors run, in amperes. Default 20.
    pub flight_current_a: f64,
    /// Below this charge the drone gives up its route and flies home. Default 20 %.
    pub return_battery_percent: f64,
    /// Depot: time the door takes from closed to open (and back), in ms. Default 8000.
    pub door_travel_ms: u64,
    /// Mean temperature around the machine, in °C. Default 20.
    pub ambient_temperature_c: f64,
    /// Mean relative humidity around the machine, in percent. Default 55.
    pub ambient_humidity_percent: f64,
}

/// PX4's default simulation home, so routes look familiar next to PX4 SITL logs.
const DEFAULT_HOME: GeoPoint = GeoPoint {
    lat: 47.397_742,
    lon: 8.545_594,
};

impl Default for SimConfig {
    fn default() -> Self {
        // About 300 m north and east (1° of longitude is ~75 km at this latitude).
        let (north, east) = (0.0027, 0.004);
        let at = |dn: f64, de: f64| GeoPoint {
            lat: DEFAULT_HOME.lat + dn,
            lon: DEFAULT_HOME.lon + de,
        };
        Self {
            kind: SimKind::Drone,
            seed: 1,
            home: DEFAULT_HOME,
            route: vec![at(north, 0.0), at(north, east), at(0.0, east)],
            cruise_altitude_m: 40.0,
            cruise_speed_mps: 10.0,
            battery_capacity_mah: 5000.0,
            battery_cells: 4,
            start_battery_percent: 100.0,
            flight_current_a: 20.0,
            return_battery_percent: 20.0,
            door_travel_ms: 8000,
            ambient_temperature_c: 20.0,
            ambient_humidity_percent: 55.0,
        }
    }
}
