//! The simulated depot: a motorised door, a charger, and a drone that leaves and comes back.
//!
//! The door follows the `door` output (on = open) at a constant speed and stops where it is
//! while `estop` is on. While a job is active the docked drone leaves as soon as the door is
//! fully open; when the job ends it flies back for [`RETURN_FLIGHT_S`], waits in the air until
//! the door is fully open, and lands. A docked drone charges while `charger` is on (or always,
//! if no `charger` output is configured) until it is full.

use std::time::Duration;

use super::battery::Battery;
use super::rng::Rng;
use super::Commands;
use crate::config::SimConfig;
use crate::status::{DepotStatus, DoorState, StatusSource};

/// How long the drone takes to come back once its job has ended.
pub(crate) const RETURN_FLIGHT_S: f64 = 30.0;

#[derive(Debug, Clone)]
pub(crate) struct Depot {
    /// How far the door has travelled from closed, in ms of motor time (integers, so a door
    /// with an 8 s travel is open after exactly 80 ticks).
    door_position_ms: u64,
    /// -1 closing, 0 still, 1 opening.
    door_motion: i8,
    door_travel_ms: u64,
    drone: Battery,
    drone_present: bool,
    /// Seconds the away drone has been flying back, once its job ended.
    returning_s: Option<f64>,
    flight_current_a: f64,
    return_percent: f64,
    charging: bool,
}

impl Depot {
    pub(crate) fn new(config: &SimConfig) -> Self {
        Self {
            door_position_ms: 0,
            door_motion: 0,
            door_travel_ms: config.door_travel_ms,
            drone: Battery::new(
                config.battery_capacity_mah,
                config.battery_cells,
                config.start_battery_percent,
            ),
            drone_present: true,
            returning_s: None,
            flight_current_a: config.flight_current_a,
            return_percent: config.return_battery_percent,
            charging: false,
        }
    }

    pub(crate) fn door_closed(&self) -> bool {
        self.door_position_ms == 0
    }

    pub(crate) fn door_open(&self) -> bool {
        self.door_position_ms >= self.door_travel_ms
    }

    pub(crate) fn drone_present(&self) -> bool {
        self.drone_present
    }

    pub(crate) fn charging(&self) -> bool {
        self.charging
    }

    pub(crate) fn drone_battery(&self) -> Option<&Battery> {
        self.drone_present.then_some(&self.drone)
    }

    pub(crate) fn step(
        &mut self,
        dt: Duration,
        job_active: bool,
        commands: &Commands,
        rng: &mut Rng,
    ) {
        let dt_s = dt.as_secs_f64();
        self.move_door(dt, commands);
        self.move_drone(dt_s, job_active);
        self.charging = self.drone_present
            && !commands.estop
            && commands.charger != Some(false)
            && !self.drone.is_full();
        let current_a = if !self.drone_present {
            self.flight_current_a
        } else if self.charging {
            -self.drone.charge_current_a()
        } else {
            0.0
        };
        self.drone.step(current_a, dt_s, rng);
    }

    fn move_door(&mut self, dt: Duration, commands: &Commands) {
        let want_open = commands.door == Some(true);
        let step_ms = u64::try_from(dt.as_millis()).unwrap_or(u64::MAX);
        self.door_motion = if commands.estop {
            0
        } else if want_open && !self.door_open() {
            self.door_position_ms = (self.door_position_ms + step_ms).min(self.door_travel_ms);
            1
        } else if !want_open && !self.door_closed() {
            self.door_position_ms = self.door_position_ms.saturating_sub(step_ms);
            -1
        } else {
            0
        };
    }

    fn move_drone(&mut self, dt_s: f64, job_active: bool) {
        if self.drone_present {
            if job_active && self.door_open() && self.drone.percent() > self.return_percent {
                self.drone_present = false;
                self.returning_s = None;
            }
            return;
        }
        let must_return = !job_active || self.drone.percent() <= self.return_percent;
        if !must_return {
            return;
        }
        let flown = self.returning_s.get_or_insert(0.0);
        *flown += dt_s;
        if *flown >= RETURN_FLIGHT_S && self.door_open() {
            self.drone_present = true;
            self.returning_s = None;
        }
    }

    fn door_state(&self) -> DoorState {
        match self.door_motion {
            1 if self.door_open() => DoorState::Open,
            1 => DoorState::Opening,
            -1 if self.door_closed() => DoorState::Closed,
            -1 => DoorState::Closing,
            _ if self.door_open() => DoorState::Open,
            _ if self.door_closed() => DoorState::Closed,
            _ => DoorState::Stopped,
        }
    }

    pub(crate) fn status(
        &self,
        climate: crate::drivers::ClimateReading,
        estop: Option<bool>,
    ) -> DepotStatus {
        DepotStatus {
            source: StatusSource::Sim,
            door: Some(self.door_state()),
            door_closed: Some(self.door_closed()),
            charging: Some(self.charging),
            drone_present: Some(self.drone_present),
            drone_battery_percent: self.drone_battery().map(Battery::percent),
            temperature_c: Some(climate.temperature_c),
            humidity_percent: Some(climate.humidity_percent),
            estop_engaged: estop,
        }
    }
}
