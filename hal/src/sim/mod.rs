//! The simulated backend: a deterministic drone or depot behind simulated pins.
//!
//! [`crate::Hardware`] drives and reads [`SimPin`]s through the same embedded-hal traits and
//! `active_low` handling as real pins; the simulated machine holds the other clone of each pin.
//! Time moves in fixed ticks of [`TICK`]: `advance(250 ms)` runs two ticks and keeps 50 ms for
//! later, so the readings depend on how much time has passed, not on how it was sliced.
//!
//! Names the simulator gives meaning to (any other name is a plain latch, or an input that
//! stays off):
//!
//! | kind  | outputs                                  | inputs                                              |
//! |-------|------------------------------------------|-----------------------------------------------------|
//! | drone | `estop`, `charger`                       | `landed`                                            |
//! | depot | `door` (on = open), `charger`, `estop`   | `door_closed`, `door_open`, `drone_present`, `charging` |
//!
//! Sensors read the simulated machine by driver: an `ina219` reads the drone's battery (in a
//! depot, the docked drone's), an `shtc3` the air. Serial ports loop back what is written.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{SensorDriver, SimConfig, SimKind};
use crate::drivers::{BatteryReading, SensorReading};
use crate::status::{DepotStatus, DroneStatus};

mod battery;
mod depot;
mod drone;
mod geo;
mod pin;
mod rng;
mod weather;

pub use pin::SimPin;

use depot::Depot;
use drone::Drone;
use rng::Rng;
use weather::Weather;

const TICK_MS: u64 = 100;
/// The simulator's time step.
pub const TICK: Duration = Duration::from_millis(TICK_MS);

/// What the outputs command, as the simulated machine sees it. Unwired outputs are `None`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Commands {
    pub(crate) estop: bool,
    pub(crate) charger: Option<bool>,
    pub(crate) door: Option<bool>,
}

#[derive(Debug, Clone)]
enum Machine {
    Drone(Box<Drone>),
    Depot(Box<Depot>),
}

/// A pin of the simulated machine, and whether "on" is its low level.
#[derive(Debug, Clone)]
struct Wire {
    pin: SimPin,
    active_low: bool,
}

/// The simulated machine, its weather, and its pins.
#[derive(Debug, Clone)]
pub(crate) struct SimWorld {
    machine: Machine,
    weather: Weather,
    rng: Rng,
    outputs: BTreeMap<String, Wire>,
    inputs: BTreeMap<String, Wire>,
    job_active: bool,
    ticks: u64,
    /// Time advanced but not yet ticked (less than one tick).
    carry: Duration,
}

impl SimWorld {
    pub(crate) fn new(config: &SimConfig) -> Self {
        let machine = match config.kind {
            SimKind::Drone => Machine::Drone(Box::new(Drone::new(config))),
            SimKind::Depot => Machine::Depot(Box::new(Depot::new(config))),
        };
        Self {
            machine,
            weather: Weather::new(
                config.ambient_temperature_c,
                config.ambient_humidity_percent,
            ),
            rng: Rng::new(config.seed),
            outputs: BTreeMap::new(),
            inputs: BTreeMap::new(),
            job_active: false,
            ticks: 0,
            carry: Duration::ZERO,
        }
    }

    /// A pin for the output `name`, already at the electrical level `high`.
    pub(crate) fn wire_output(&mut self, name: &str, active_low: bool, high: bool) -> SimPin {
        let pin = SimPin::new(high);
        let wire = Wire {
            pin: pin.clone(),
            active_low,
        };
        self.outputs.insert(name.to_owned(), wire);
        pin
    }

    /// A pin for the input `name`, at the level the machine gives it now.
    pub(crate) fn wire_input(&mut self, name: &str, active_low: bool) -> SimPin {
        let pin = SimPin::default();
        let wire = Wire {
            pin: pin.clone(),
            active_low,
        };
        self.inputs.insert(name.to_owned(), wire);
        self.update_inputs();
        pin
    }

    /// Simulated time since the simulator started.
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::from_millis(self.ticks.saturating_mul(TICK_MS)) + self.carry
    }

    pub(crate) fn set_job_active(&mut self, active: bool) {
        self.job_active = active;
    }

    pub(crate) fn advance(&mut self, dt: Duration) {
        self.carry += dt;
        while self.carry >= TICK {
            self.carry -= TICK;
            self.tick();
        }
    }

    fn tick(&mut self) {
        let dt_s = TICK.as_secs_f64();
        let commands = Commands {
            estop: self.output("estop") == Some(true),
            charger: self.output("charger"),
            door: self.output("door"),
        };
        self.weather.step(dt_s, &mut self.rng);
        match &mut self.machine {
            Machine::Drone(drone) => drone.step(dt_s, self.job_active, &commands, &mut self.rng),
            Machine::Depot(depot) => depot.step(TICK, self.job_active, &commands, &mut self.rng),
        }
        self.ticks += 1;
        self.update_inputs();
    }

    /// What the output `name` commands ("on" or "off"), if it is wired.
    fn output(&self, name: &str) -> Option<bool> {
        self.outputs
            .get(name)
            .map(|wire| wire.pin.level() != wire.active_low)
    }

    fn update_inputs(&self) {
        for (name, wire) in &self.inputs {
            let on = self.input_level(name);
            wire.pin.set_level(on != wire.active_low);
        }
    }

    fn input_level(&self, name: &str) -> bool {
        match (&self.machine, name) {
            (Machine::Drone(drone), "landed") => {
                drone.state() == crate::status::FlightState::Landed
            }
            (Machine::Depot(depot), "door_closed") => depot.door_closed(),
            (Machine::Depot(depot), "door_open") => depot.door_open(),
            (Machine::Depot(depot), "drone_present") => depot.drone_present(),
            (Machine::Depot(depot), "charging") => depot.charging(),
            _ => false,
        }
    }

    /// What a sensor with this driver reads in the simulated machine.
    pub(crate) fn sensor(&self, driver: SensorDriver) -> SensorReading {
        match driver {
            SensorDriver::Ina219 => SensorReading::Battery(self.battery()),
            SensorDriver::Shtc3 => SensorReading::Climate(self.weather.reading()),
        }
    }

    fn battery(&self) -> BatteryReading {
        let battery = match &self.machine {
            Machine::Drone(drone) => Some(&drone.battery),
            Machine::Depot(depot) => depot.drone_battery(),
        };
        battery.map_or(
            BatteryReading {
                voltage_v: 0.0,
                current_a: 0.0,
                percent: None,
            },
            |b| b.reading(),
        )
    }

    /// The drone's status; `None` when the simulator plays a depot.
    pub(crate) fn drone_status(&self) -> Option<DroneStatus> {
        match &self.machine {
            Machine::Drone(drone) => Some(drone.status(self.output("estop"))),
            Machine::Depot(_) => None,
        }
    }

    /// The depot's status; `None` when the simulator plays a drone.
    pub(crate) fn depot_status(&self) -> Option<DepotStatus> {
        match &self.machine {
            Machine::Depot(depot) => {
                Some(depot.status(self.weather.reading(), self.output("estop")))
            }
            Machine::Drone(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
