//! What the agent publishes as `nodes/{id}/msg/drone-status` and `.../depot-status`.
//!
//! Field names are public JSON: snake_case with the unit in the name. A field is `null` when the
//! node has nothing that measures it (a real drone without a GPS link has no position), never a
//! made-up value.

use serde::{Deserialize, Serialize};

/// Where a status report's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// The built-in simulator.
    Sim,
    /// Real sensors and lines (linux or rpi backend).
    Hardware,
}

/// A drone's flight phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlightState {
    /// On the ground, motors off.
    Landed,
    /// Climbing to cruise altitude above the take-off point.
    TakingOff,
    /// At cruise altitude, on the route or on the way home.
    Flying,
    /// Descending to land (or, after an emergency stop, descending where it is).
    Landing,
}

/// A drone's state, from the simulator or from the node's sensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroneStatus {
    /// `sim` or `hardware`.
    pub source: StatusSource,
    /// Battery state of charge in percent (0-100). Real backends estimate it from the voltage.
    pub battery_percent: Option<f64>,
    /// Battery voltage in volts.
    pub battery_voltage_v: Option<f64>,
    /// Current out of the battery in amperes; negative while charging.
    pub battery_current_a: Option<f64>,
    /// Latitude in degrees (WGS84), north positive.
    pub latitude_deg: Option<f64>,
    /// Longitude in degrees (WGS84), east positive.
    pub longitude_deg: Option<f64>,
    /// Altitude above the take-off point in metres.
    pub altitude_m: Option<f64>,
    /// Horizontal speed over ground in metres per second.
    pub ground_speed_mps: Option<f64>,
    /// Vertical speed in metres per second, positive when climbing.
    pub vertical_speed_mps: Option<f64>,
    /// Direction of travel in degrees clockwise from true north (0-360).
    pub heading_deg: Option<f64>,
    /// Horizontal distance to the take-off point in metres.
    pub distance_to_home_m: Option<f64>,
    /// Whether the motors are armed.
    pub armed: Option<bool>,
    /// The flight phase.
    pub state: Option<FlightState>,
    /// Whether the `estop` output is on.
    pub estop_engaged: Option<bool>,
}

/// A depot door's position and motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorState {
    /// Fully open.
    Open,
    /// Fully closed.
    Closed,
    /// Commanded open and not there yet.
    Opening,
    /// Commanded closed and not there yet.
    Closing,
    /// Part-way and not moving (emergency stop). Only the simulator can tell this apart.
    Stopped,
}

/// A depot's state, from the simulator or from the node's lines and sensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepotStatus {
    /// `sim` or `hardware`.
    pub source: StatusSource,
    /// The door, from the `door` output and the `door_closed` / `door_open` inputs.
    pub door: Option<DoorState>,
    /// The `door_closed` limit switch.
    pub door_closed: Option<bool>,
    /// Whether the charger is charging a drone (the `charging` input on real depots).
    pub charging: Option<bool>,
    /// Whether a drone sits in the depot (the `drone_present` input on real depots).
    pub drone_present: Option<bool>,
    /// The docked drone's battery in percent; only the simulator knows it.
    pub drone_battery_percent: Option<f64>,
    /// Temperature inside the depot in °C (the `climate` sensor).
    pub temperature_c: Option<f64>,
    /// Relative humidity inside the depot in percent (the `climate` sensor).
    pub humidity_percent: Option<f64>,
    /// Whether the `estop` output is on.
    pub estop_engaged: Option<bool>,
}
