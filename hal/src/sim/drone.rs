//! The simulated drone: takes off when a job starts, flies the route, comes home and lands.
//!
//! ```text
//!            job active, charge above the return level, no estop
//!  landed ───────────────────────────────────────────────▶ taking_off
//!    ▲                                                         │ cruise altitude reached
//!    │ on the ground                                           ▼
//!  landing ◀──── at home (route done, job ended, battery low) flying
//!    ▲                                                         │
//!    └──────────────────────── estop (lands where it is) ──────┘
//! ```
//! After landing the drone stays down until the job ends, so one job flies the route once.

use super::battery::Battery;
use super::geo::{bearing_deg, destination, distance_m};
use super::rng::Rng;
use super::Commands;
use crate::config::{GeoPoint, SimConfig};
use crate::status::{DroneStatus, FlightState, StatusSource};

const CLIMB_RATE_MPS: f64 = 3.0;
const DESCENT_RATE_MPS: f64 = 1.5;
/// After an emergency stop the drone comes down faster (parachute-like).
const EMERGENCY_DESCENT_MPS: f64 = 4.0;

/// Where the drone is heading.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leg {
    Waypoint(usize),
    Home,
}

#[derive(Debug, Clone)]
pub(crate) struct Drone {
    pub(crate) battery: Battery,
    home: GeoPoint,
    route: Vec<GeoPoint>,
    cruise_altitude_m: f64,
    cruise_speed_mps: f64,
    flight_current_a: f64,
    return_percent: f64,
    position: GeoPoint,
    altitude_m: f64,
    heading_deg: f64,
    ground_speed_mps: f64,
    vertical_speed_mps: f64,
    state: FlightState,
    leg: Leg,
    /// The current job's flight is over; wait for the job to end before flying again.
    mission_done: bool,
}

impl Drone {
    pub(crate) fn new(config: &SimConfig) -> Self {
        Self {
            battery: Battery::new(
                config.battery_capacity_mah,
                config.battery_cells,
                config.start_battery_percent,
            ),
            home: config.home,
            route: config.route.clone(),
            cruise_altitude_m: config.cruise_altitude_m,
            cruise_speed_mps: config.cruise_speed_mps,
            flight_current_a: config.flight_current_a,
            return_percent: config.return_battery_percent,
            position: config.home,
            altitude_m: 0.0,
            heading_deg: 0.0,
            ground_speed_mps: 0.0,
            vertical_speed_mps: 0.0,
            state: FlightState::Landed,
            leg: Leg::Home,
            mission_done: false,
        }
    }

    pub(crate) fn state(&self) -> FlightState {
        self.state
    }

    pub(crate) fn step(&mut self, dt_s: f64, job_active: bool, commands: &Commands, rng: &mut Rng) {
        let must_return = !job_active || self.battery.percent() <= self.return_percent;
        if self.state != FlightState::Landed && (commands.estop || self.battery.is_empty()) {
            self.state = FlightState::Landing;
        }
        self.ground_speed_mps = 0.0;
        self.vertical_speed_mps = 0.0;
        match self.state {
            FlightState::Landed => {
                if !job_active {
                    self.mission_done = false;
                } else if !self.mission_done && !commands.estop && !must_return {
                    self.state = FlightState::TakingOff;
                    self.leg = self.first_leg();
                }
            }
            FlightState::TakingOff if !job_active => self.state = FlightState::Landing,
            FlightState::TakingOff => {
                self.vertical_speed_mps = CLIMB_RATE_MPS;
                self.altitude_m += CLIMB_RATE_MPS * dt_s;
                if self.altitude_m >= self.cruise_altitude_m {
                    self.altitude_m = self.cruise_altitude_m;
                    self.state = FlightState::Flying;
                }
            }
            FlightState::Flying => {
                if must_return {
                    self.leg = Leg::Home;
                }
                self.fly(dt_s);
            }
            FlightState::Landing => {
                let rate = if commands.estop {
                    EMERGENCY_DESCENT_MPS
                } else {
                    DESCENT_RATE_MPS
                };
                self.vertical_speed_mps = -rate;
                self.altitude_m -= rate * dt_s;
                if self.altitude_m <= 0.0 {
                    self.altitude_m = 0.0;
                    self.vertical_speed_mps = 0.0;
                    self.state = FlightState::Landed;
                    self.mission_done = true;
                }
            }
        }
        let current_a = if self.state != FlightState::Landed {
            self.flight_current_a
        } else if commands.charger == Some(true) && !self.battery.is_full() {
            -self.battery.charge_current_a()
        } else {
            0.0
        };
        self.battery.step(current_a, dt_s, rng);
    }

    fn first_leg(&self) -> Leg {
        if self.route.is_empty() {
            Leg::Home
        } else {
            Leg::Waypoint(0)
        }
    }

    /// Moves towards the current leg's target; on arrival takes the next leg, or lands at home.
    fn fly(&mut self, dt_s: f64) {
        let target = match self.leg {
            Leg::Waypoint(i) => self.route[i],
            Leg::Home => self.home,
        };
        let step_m = self.cruise_speed_mps * dt_s;
        let remaining_m = distance_m(self.position, target);
        if remaining_m <= step_m {
            self.position = target;
            match self.leg {
                Leg::Waypoint(i) if i + 1 < self.route.len() => self.leg = Leg::Waypoint(i + 1),
                Leg::Waypoint(_) => self.leg = Leg::Home,
                Leg::Home => self.state = FlightState::Landing,
            }
        } else {
            self.heading_deg = bearing_deg(self.position, target);
            self.position = destination(self.position, self.heading_deg, step_m);
        }
        // Averaged over the tick, so a short final step does not read as a slow-down.
        self.ground_speed_mps = remaining_m.min(step_m) / dt_s;
    }

    pub(crate) fn status(&self, estop: Option<bool>) -> DroneStatus {
        let battery = self.battery.reading();
        DroneStatus {
            source: StatusSource::Sim,
            battery_percent: battery.percent,
            battery_voltage_v: Some(battery.voltage_v),
            battery_current_a: Some(battery.current_a),
            latitude_deg: Some(self.position.lat),
            longitude_deg: Some(self.position.lon),
            altitude_m: Some(self.altitude_m),
            ground_speed_mps: Some(self.ground_speed_mps),
            vertical_speed_mps: Some(self.vertical_speed_mps),
            heading_deg: Some(self.heading_deg),
            distance_to_home_m: Some(distance_m(self.position, self.home)),
            armed: Some(self.state != FlightState::Landed),
            state: Some(self.state),
            estop_engaged: estop,
        }
    }
}
