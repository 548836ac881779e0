//! Sortie's hardware layer.
//!
//! The agent never touches a pin or a bus directly: it opens a [`Hardware`] from the `[hal]`
//! table of its configuration ([`HalConfig`]) and uses names — outputs `door`, `estop`,
//! `relay`; inputs `door_closed`, limit switches; sensors `battery`, `climate`; serial ports
//! `fc` — so the same agent and the same jobs run on a Raspberry Pi, any Linux board, or the
//! simulator used by tests, demos and simulated fleets.
//!
//! ```
//! use std::time::Duration;
//! use sortie_hal::{HalConfig, Hardware, DoorState};
//!
//! let mut depot = Hardware::open_sim_manual(&HalConfig::example_sim_depot())?;
//! depot.set_output("door", sortie_hal::parse_level("open")?)?;
//! depot.advance(Duration::from_secs(10));
//! assert_eq!(depot.depot_status()?.door, Some(DoorState::Open));
//! assert!(!depot.input("door_closed")?);
//! # Ok::<(), sortie_hal::HalError>(())
//! ```
//!
//! Everything below the names is embedded-hal 1.0: pins are `OutputPin`/`InputPin`, sensors
//! are drivers from crates.io over `embedded_hal::i2c::I2c` (tested against embedded-hal-mock),
//! and each backend only supplies the pin and bus types.
//!
//! # Backends (cargo features)
//!
//! - `sim` (default): a deterministic drone or depot ([`sim`]); no devices are touched.
//! - `linux`: linux-embedded-hal — GPIO character device lines, `/dev/i2c-N`, serial ttys
//!   (serialport without libudev, so no C library and no pkg-config when cross-compiling).
//! - `rpi`: rppal — BCM-numbered GPIO with pull resistors, I²C, UART.
//!
//! A configuration error (a bad pin, a name used twice, an unknown driver, an address a chip
//! cannot have, a missing `/dev/gpiochip0`) is a [`HalError`] from [`Hardware::open`] that
//! names the TOML key; nothing is checked lazily.
//!
//! # Layout
//!
//! - `config/`: [`HalConfig`] and its tables (`mod.rs`), `[hal.sim]` (`sim.rs`), and the checks
//!   run before anything is opened (`validate.rs`).
//! - `hardware/`: [`Hardware`] — opening through a backend's `Opener` and the named-line,
//!   sensor, serial and status methods (`mod.rs`); status from real lines and sensors
//!   (`real_status.rs`); the simulator's clocks and wiring (`sim.rs`).
//! - `digital.rs`: object-safe wrappers over embedded-hal pins; `active_low` lives here only.
//! - `drivers/`: [`drivers::Ina219Battery`] (`ina219` crate) and [`drivers::Shtc3Climate`]
//!   (`shtcx` crate), the readings they return, and the LiPo curve.
//! - `serial.rs`: the serial-port abstraction and the simulator's loopback.
//! - `sim/`: the simulated machine — [`sim::SimPin`], the drone, the depot, battery,
//!   weather, great-circle arithmetic and a seeded generator.
//! - `linux.rs`, `rpi.rs`: the backends' openers, each behind its feature.
//! - `status.rs`: [`DroneStatus`] and [`DepotStatus`], the public telemetry payloads.
//! - `steps.rs`: [`Step`] sequences (the safe state) and their [`StepsReport`].
//! - `level.rs`: [`parse_level`] for `on`/`off`, `open`/`close` and friends.
//! - `error.rs`: [`HalError`] and [`BackendError`], which keeps the backend's error whole.

// Without any backend the crate only offers its types and open() says which feature is missing.
#![cfg_attr(
    not(any(feature = "sim", feature = "linux", feature = "rpi")),
    allow(dead_code)
)]

pub mod config;
mod digital;
pub mod drivers;
mod error;
mod hardware;
mod level;
mod serial;
#[cfg(feature = "sim")]
pub mod sim;
mod status;
mod steps;

#[cfg(feature = "linux")]
mod linux;
#[cfg(feature = "rpi")]
mod rpi;

pub use config::{Backend, HalConfig};
pub use drivers::{BatteryReading, ClimateReading, SensorReading};
pub use error::{BackendError, HalError};
pub use hardware::Hardware;
pub use level::parse_level;
pub use status::{DepotStatus, DoorState, DroneStatus, FlightState, StatusSource};
pub use steps::{Step, StepsReport};
