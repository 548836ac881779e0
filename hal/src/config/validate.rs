//! Checks a [`HalConfig`] before anything is opened, so a mistake is a message naming its key.

use std::collections::BTreeMap;

use super::{Backend, HalConfig, Pull, SensorDriver, SimConfig};
use crate::HalError;

/// The highest BCM GPIO number rppal addresses.
const RPI_MAX_BCM: u32 = 53;
/// An INA219 measures bus voltages up to 26 V: six LiPo cells at 4.2 V.
const INA219_MAX_CELLS: u8 = 6;

impl HalConfig {
    /// Checks names, pins, addresses and drivers for this config's own backend.
    pub fn validate(&self) -> Result<(), HalError> {
        self.validate_for(self.backend)
    }

    /// Checks the configuration as `backend` would use it. Devices are not touched: a missing
    /// `/dev/gpiochip0` is found by [`crate::Hardware::open`].
    pub fn validate_for(&self, backend: Backend) -> Result<(), HalError> {
        self.check_names()?;
        self.check_pins(backend)?;
        self.check_sensors(backend)?;
        self.check_serial()?;
        Ok(())
    }

    fn check_names(&self) -> Result<(), HalError> {
        let tables = [
            ("outputs", self.outputs.keys().collect::<Vec<_>>()),
            ("inputs", self.inputs.keys().collect()),
            ("sensors", self.sensors.keys().collect()),
            ("serial", self.serial.keys().collect()),
        ];
        for (table, names) in &tables {
            for name in names {
                let ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    return Err(HalError::config(
                        format!("hal.{table}.{name:?}"),
                        "names may use only letters, digits, `_` and `-`",
                    ));
                }
            }
        }
        // Steps and the CLI name a line without saying whether it is an output or an input.
        if let Some(name) = self.inputs.keys().find(|n| self.outputs.contains_key(*n)) {
            return Err(HalError::config(
                format!("hal.inputs.{name}"),
                format!("{name:?} is already an output (hal.outputs.{name}); outputs and inputs share one set of names"),
            ));
        }
        Ok(())
    }

    fn check_pins(&self, backend: Backend) -> Result<(), HalError> {
        let lines = self
            .outputs
            .iter()
            .map(|(n, c)| {
                (
                    format!("hal.outputs.{n}"),
                    c.pin,
                    c.chip.as_deref(),
                    Pull::None,
                )
            })
            .chain(
                self.inputs
                    .iter()
                    .map(|(n, c)| (format!("hal.inputs.{n}"), c.pin, c.chip.as_deref(), c.pull)),
            );
        let mut used: BTreeMap<(String, u32), String> = BTreeMap::new();
        for (key, pin, chip, pull) in lines {
            if chip.is_some() && backend == Backend::Rpi {
                return Err(HalError::config(
                    format!("{key}.chip"),
                    "`chip` is for the linux backend; the rpi backend numbers pins by BCM GPIO",
                ));
            }
            if pull != Pull::None && backend == Backend::Linux {
                return Err(HalError::config(
                    format!("{key}.pull"),
                    "the linux backend cannot set pull resistors (GPIO character device v1); set the bias in the device tree",
                ));
            }
            let Some(pin) = pin else {
                if backend == Backend::Sim {
                    continue;
                }
                return Err(HalError::config(
                    format!("{key}.pin"),
                    format!("a pin is required by the {} backend", backend.name()),
                ));
            };
            if backend == Backend::Rpi && pin > RPI_MAX_BCM {
                return Err(HalError::config(
                    format!("{key}.pin"),
                    format!("BCM GPIO {pin} does not exist (0-{RPI_MAX_BCM})"),
                ));
            }
            let chip = match backend {
                Backend::Rpi => String::new(),
                Backend::Linux | Backend::Sim => self.chip_for(chip),
            };
            if let Some(first) = used.insert((chip, pin), key.clone()) {
                return Err(HalError::config(
                    format!("{key}.pin"),
                    format!("pin {pin} is already used by {first}"),
                ));
            }
        }
        Ok(())
    }

    fn check_sensors(&self, backend: Backend) -> Result<(), HalError> {
        let mut used: BTreeMap<(&str, u16), String> = BTreeMap::new();
        for (name, sensor) in &self.sensors {
            let key = format!("hal.sensors.{name}");
            let driver = SensorDriver::from_name(&sensor.driver).ok_or_else(|| {
                let known: Vec<_> = SensorDriver::ALL.iter().map(|d| d.name()).collect();
                HalError::config(
                    format!("{key}.driver"),
                    format!(
                        "unknown driver {:?}; known drivers: {}",
                        sensor.driver,
                        known.join(", ")
                    ),
                )
            })?;
            for (role, wanted, feeds) in [
                ("battery", SensorDriver::Ina219, "drone_status"),
                ("climate", SensorDriver::Shtc3, "depot_status"),
            ] {
                if name == role && driver != wanted {
                    return Err(HalError::config(
                        format!("{key}.driver"),
                        format!(
                            "the `{role}` sensor feeds {feeds} and needs the {} driver, not {}",
                            wanted.name(),
                            driver.name()
                        ),
                    ));
                }
            }
            if sensor.bus.trim().is_empty() {
                return Err(HalError::config(
                    format!("{key}.bus"),
                    "an I²C bus such as /dev/i2c-1 is required",
                ));
            }
            if backend == Backend::Rpi && rpi_bus_number(&sensor.bus).is_none() {
                return Err(HalError::config(
                    format!("{key}.bus"),
                    format!(
                        "the rpi backend needs a bus like /dev/i2c-1, not {:?}",
                        sensor.bus
                    ),
                ));
            }
            let address = sensor.address.unwrap_or(driver.default_address());
            let valid = match driver {
                SensorDriver::Ina219 => 0x40..=0x4f,
                SensorDriver::Shtc3 => 0x70..=0x70,
            };
            if !valid.contains(&address) {
                let range = if valid.start() == valid.end() {
                    format!("{:#04x}", valid.start())
                } else {
                    format!("{:#04x}-{:#04x}", valid.start(), valid.end())
                };
                return Err(HalError::config(
                    format!("{key}.address"),
                    format!(
                        "address {address:#04x} is not an {} address ({range})",
                        driver.name()
                    ),
                ));
            }
            if let Some(first) = used.insert((sensor.bus.as_str(), address), key.clone()) {
                return Err(HalError::config(
                    format!("{key}.address"),
                    format!(
                        "address {address:#04x} on {} is already used by {first}",
                        sensor.bus
                    ),
                ));
            }
            if driver != SensorDriver::Ina219 {
                for (option, given) in [
                    ("shunt_milliohm", sensor.shunt_milliohm.is_some()),
                    ("cells", sensor.cells.is_some()),
                ] {
                    if given {
                        return Err(HalError::config(
                            format!("{key}.{option}"),
                            format!("`{option}` applies to the ina219 driver only"),
                        ));
                    }
                }
            }
            if let Some(shunt) = sensor.shunt_milliohm {
                if !(shunt.is_finite() && shunt > 0.0) {
                    return Err(HalError::config(
                        format!("{key}.shunt_milliohm"),
                        format!("the shunt must be a positive resistance, not {shunt}"),
                    ));
                }
            }
            if let Some(cells) = sensor.cells {
                if !(1..=INA219_MAX_CELLS).contains(&cells) {
                    return Err(HalError::config(
                        format!("{key}.cells"),
                        format!("an INA219 measures up to 26 V: 1-{INA219_MAX_CELLS} LiPo cells, not {cells}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_serial(&self) -> Result<(), HalError> {
        let mut used: BTreeMap<&str, String> = BTreeMap::new();
        for (name, port) in &self.serial {
            let key = format!("hal.serial.{name}");
            if port.path.trim().is_empty() {
                return Err(HalError::config(
                    format!("{key}.path"),
                    "a tty such as /dev/ttyAMA0 is required",
                ));
            }
            if port.baud == 0 {
                return Err(HalError::config(
                    format!("{key}.baud"),
                    "the baud rate must be above 0",
                ));
            }
            if let Some(first) = used.insert(port.path.as_str(), key.clone()) {
                return Err(HalError::config(
                    format!("{key}.path"),
                    format!("{} is already used by {first}", port.path),
                ));
            }
        }
        Ok(())
    }
}

impl SimConfig {
    /// Checks that the simulator's parameters describe a machine that can exist.
    pub fn validate(&self) -> Result<(), HalError> {
        let positive = [
            ("cruise_altitude_m", self.cruise_altitude_m),
            ("cruise_speed_mps", self.cruise_speed_mps),
            ("battery_capacity_mah", self.battery_capacity_mah),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(HalError::config(
                    format!("hal.sim.{field}"),
                    format!("must be above 0, not {value}"),
                ));
            }
        }
        let percents = [
            ("start_battery_percent", self.start_battery_percent),
            ("return_battery_percent", self.return_battery_percent),
            ("ambient_humidity_percent", self.ambient_humidity_percent),
        ];
        for (field, value) in percents {
            if !(0.0..=100.0).contains(&value) {
                return Err(HalError::config(
                    format!("hal.sim.{field}"),
                    format!("must be 0-100, not {value}"),
                ));
            }
        }
        if !(self.flight_current_a.is_finite() && self.flight_current_a >= 0.0) {
            return Err(HalError::config(
                "hal.sim.flight_current_a",
                "must be 0 or more",
            ));
        }
        if !self.ambient_temperature_c.is_finite() {
            return Err(HalError::config(
                "hal.sim.ambient_temperature_c",
                "must be a number",
            ));
        }
        if !(1..=14).contains(&self.battery_cells) {
            return Err(HalError::config(
                "hal.sim.battery_cells",
                format!("must be 1-14, not {}", self.battery_cells),
            ));
        }
        if self.door_travel_ms == 0 {
            return Err(HalError::config(
                "hal.sim.door_travel_ms",
                "must be above 0",
            ));
        }
        let points = std::iter::once(("hal.sim.home".to_owned(), self.home)).chain(
            self.route
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("hal.sim.route[{i}]"), *p)),
        );
        for (key, point) in points {
            if !((-90.0..=90.0).contains(&point.lat) && (-180.0..=180.0).contains(&point.lon)) {
                return Err(HalError::config(
                    key,
                    format!(
                        "({}, {}) is not a latitude/longitude in degrees",
                        point.lat, point.lon
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `N` from `/dev/i2c-N`, the form rppal opens buses by.
pub(crate) fn rpi_bus_number(bus: &str) -> Option<u8> {
    bus.strip_prefix("/dev/i2c-")?.parse().ok()
}
