//! The `[hal]` table of the agent's configuration.
//!
//! Every output, input, sensor and serial port has a name chosen by the node's owner (`door`,
//! `estop`, `battery`, `fc`); the agent and the safe-state steps use only those names, so the same
//! job works on the simulator, a Raspberry Pi and any other Linux board. Some names mean something
//! to this crate: see [`crate::Hardware::drone_status`] and [`crate::Hardware::depot_status`].
//!
//! ```toml
//! [hal]
//! backend = "rpi"
//! [hal.outputs.door]
//! pin = 17
//! [hal.inputs.door_closed]
//! pin = 27
//! active_low = true
//! pull = "up"
//! [hal.sensors.climate]
//! driver = "shtc3"
//! bus = "/dev/i2c-1"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod sim;
mod validate;

pub use sim::{GeoPoint, SimConfig, SimKind};
#[cfg(feature = "rpi")]
pub(crate) use validate::rpi_bus_number;

/// Where the hardware is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The built-in simulator of a drone or a depot ([`SimConfig`]); pins and buses are not used.
    #[default]
    Sim,
    /// Any Linux board: GPIO character device lines (`pin` is the line offset on `chip`),
    /// `/dev/i2c-N` buses and serial ttys, through linux-embedded-hal.
    Linux,
    /// A Raspberry Pi through rppal: `pin` is the BCM GPIO number.
    Rpi,
}

impl Backend {
    /// The backend's name as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sim => "sim",
            Backend::Linux => "linux",
            Backend::Rpi => "rpi",
        }
    }
}

/// The `[hal]` table: which backend, and the named lines, sensors and serial ports.
///
/// [`Default`] is a simulated drone with nothing named; see [`HalConfig::example_sim_drone`] and
/// [`HalConfig::example_sim_depot`] for wired examples. Check it early with
/// [`HalConfig::validate`]; [`crate::Hardware::open`] checks it again.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HalConfig {
    /// `sim` (default), `linux` or `rpi`.
    #[serde(default)]
    pub backend: Backend,
    /// linux: the GPIO character device for lines that name no `chip`. Default `/dev/gpiochip0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio_chip: Option<String>,
    /// The simulator, used when `backend = "sim"` or by [`crate::Hardware::open_sim_manual`].
    #[serde(default)]
    pub sim: SimConfig,
    /// Digital outputs by name (`door`, `estop`, `relay`, `lights`, `charger`).
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputConfig>,
    /// Digital inputs by name (`door_closed`, `door_open`, `drone_present`, limit switches).
    #[serde(default)]
    pub inputs: BTreeMap<String, InputConfig>,
    /// I²C sensors by name; `battery` and `climate` feed the status reports.
    #[serde(default)]
    pub sensors: BTreeMap<String, SensorConfig>,
    /// Serial ports by name (`fc` for a flight controller, `modem`).
    #[serde(default)]
    pub serial: BTreeMap<String, SerialConfig>,
}

/// The default GPIO character device of the linux backend.
pub const DEFAULT_GPIO_CHIP: &str = "/dev/gpiochip0";

impl HalConfig {
    /// The GPIO chip a line with this `chip` setting is on (linux backend).
    pub fn chip_for(&self, chip: Option<&str>) -> String {
        chip.or(self.gpio_chip.as_deref())
            .unwrap_or(DEFAULT_GPIO_CHIP)
            .to_owned()
    }

    /// A simulated drone wired the way [`crate::Hardware::drone_status`] expects: outputs
    /// `estop`, `lights`, `charger`; input `landed`; sensors `battery` (ina219) and `climate`
    /// (shtc3); a loopback serial port `fc`.
    pub fn example_sim_drone() -> Self {
        let mut config = Self::default();
        for (name, pin) in [("estop", 5), ("lights", 6), ("charger", 13)] {
            config
                .outputs
                .insert(name.into(), OutputConfig::on_pin(pin));
        }
        config
            .inputs
            .insert("landed".into(), InputConfig::on_pin(19));
        config
            .sensors
            .insert("battery".into(), SensorConfig::ina219("/dev/i2c-1"));
        config
            .sensors
            .insert("climate".into(), SensorConfig::shtc3("/dev/i2c-1"));
        config.serial.insert(
            "fc".into(),
            SerialConfig {
                path: "/dev/ttyAMA0".into(),
                baud: 57_600,
                timeout_ms: default_timeout_ms(),
            },
        );
        config
    }

    /// A simulated depot wired the way [`crate::Hardware::depot_status`] expects: outputs `door`,
    /// `charger`, `estop`, `lights`; inputs `door_closed`, `door_open`, `drone_present`,
    /// `charging`; sensor `climate` (shtc3).
    pub fn example_sim_depot() -> Self {
        let mut config = Self::default();
        config.sim.kind = SimKind::Depot;
        for (name, pin) in [("door", 17), ("charger", 22), ("estop", 23), ("lights", 24)] {
            config
                .outputs
                .insert(name.into(), OutputConfig::on_pin(pin));
        }
        for (name, pin) in [
            ("door_closed", 27),
            ("door_open", 25),
            ("drone_present", 5),
            ("charging", 6),
        ] {
            config.inputs.insert(name.into(), InputConfig::on_pin(pin));
        }
        config
            .sensors
            .insert("climate".into(), SensorConfig::shtc3("/dev/i2c-1"));
        config
    }
}

/// One digital output.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// linux: line offset on `chip`; rpi: BCM GPIO number. Required on real backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<u32>,
    /// linux only: the GPIO character device, if not `[hal] gpio_chip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    /// The output is "on" when its pin is low (relay boards often work this way).
    #[serde(default)]
    pub active_low: bool,
    /// The level set when the hardware is opened; `false` (off) unless said otherwise.
    #[serde(default)]
    pub initial: bool,
}

impl OutputConfig {
    /// An active-high output on `pin`, off at open.
    pub fn on_pin(pin: u32) -> Self {
        Self {
            pin: Some(pin),
            ..Self::default()
        }
    }
}

/// One digital input.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// linux: line offset on `chip`; rpi: BCM GPIO number. Required on real backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<u32>,
    /// linux only: the GPIO character device, if not `[hal] gpio_chip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    /// The input reads "on" when its pin is low (a switch to ground with a pull-up).
    #[serde(default)]
    pub active_low: bool,
    /// rpi only: the SoC's pull resistor. On linux the bias is set in the device tree.
    #[serde(default)]
    pub pull: Pull,
}

impl InputConfig {
    /// An active-high input on `pin` without pull resistor.
    pub fn on_pin(pin: u32) -> Self {
        Self {
            pin: Some(pin),
            ..Self::default()
        }
    }
}

/// An input's pull resistor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// No pull resistor (default).
    #[default]
    None,
    /// Pull up to 3.3 V.
    Up,
    /// Pull down to ground.
    Down,
}

/// One I²C sensor. `driver` is checked when the hardware is opened, so a typo is a clear
/// [`crate::HalError`] naming the key rather than a parse error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// `ina219` (battery voltage and current) or `shtc3` (temperature and humidity).
    pub driver: String,
    /// The I²C bus device, e.g. `/dev/i2c-1`.
    pub bus: String,
    /// The 7-bit address; default 0x40 for ina219, 0x70 for shtc3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u16>,
    /// ina219: the shunt resistor in milliohm. Default 100 (the common breakout boards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shunt_milliohm: Option<f64>,
    /// ina219: LiPo cells in series (1-6); enables `battery_percent`, estimated from voltage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<u8>,
}

impl SensorConfig {
    /// An INA219 at its default address, 100 mΩ shunt, 4 cells.
    pub fn ina219(bus: &str) -> Self {
        Self {
            driver: "ina219".into(),
            bus: bus.into(),
            address: None,
            shunt_milliohm: None,
            cells: Some(4),
        }
    }

    /// An SHTC3 at its (fixed) address.
    pub fn shtc3(bus: &str) -> Self {
        Self {
            driver: "shtc3".into(),
            bus: bus.into(),
            address: None,
            shunt_milliohm: None,
            cells: None,
        }
    }
}

/// The sensor drivers this crate has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorDriver {
    /// TI INA219 current/power monitor, through the `ina219` crate.
    Ina219,
    /// Sensirion SHTC3 temperature/humidity sensor, through the `shtcx` crate.
    Shtc3,
}

impl SensorDriver {
    /// Every driver, for error messages.
    pub const ALL: [SensorDriver; 2] = [SensorDriver::Ina219, SensorDriver::Shtc3];

    /// The driver named in the configuration, if there is one of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            SensorDriver::Ina219 => "ina219",
            SensorDriver::Shtc3 => "shtc3",
        }
    }

    /// The address used when the configuration gives none.
    pub fn default_address(self) -> u16 {
        match self {
            SensorDriver::Ina219 => 0x40,
            SensorDriver::Shtc3 => 0x70,
        }
    }
}

/// One serial port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// The tty, e.g. `/dev/ttyAMA0` or `/dev/ttyUSB0`. The simulator ignores it (loopback).
    pub path: String,
    /// Baud rate, e.g. 57600. 8 data bits, no parity, 1 stop bit.
    pub baud: u32,
    /// How long a read waits for the first byte before returning nothing. Default 100 ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    100
}

#[cfg(test)]
mod tests;
