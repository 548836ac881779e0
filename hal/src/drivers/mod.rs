//! Sensor drivers over `embedded_hal::i2c::I2c`, each a thin wrapper over a crates.io driver.
//!
//! | driver   | chip                           | crate                    | reads                      |
//! |----------|--------------------------------|--------------------------|----------------------------|
//! | `ina219` | TI INA219 current monitor      | `ina219` 0.2 (sync)      | battery voltage, current   |
//! | `shtc3`  | Sensirion SHTC3                | `shtcx` 1.0              | temperature, humidity      |
//!
//! The wrappers turn the chips' units into SI floats and the crates' errors into one
//! [`DriverError`] that keeps the bus error. They are generic over the bus, so the tests run them
//! against embedded-hal-mock's scripted I²C transactions.

use std::fmt;

use embedded_hal::delay::DelayNs;
use serde::{Deserialize, Serialize};

use crate::error::BackendError;

pub mod ina219;
pub mod shtc3;

pub use ina219::{Ina219Battery, Ina219Options};
pub use shtc3::Shtc3Climate;

/// What a battery monitor measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatteryReading {
    /// Battery voltage in volts.
    pub voltage_v: f64,
    /// Current out of the battery in amperes; negative while it charges.
    pub current_a: f64,
    /// State of charge estimated from the voltage (LiPo curve), in percent; `None` when the cell
    /// count is not configured.
    pub percent: Option<f64>,
}

/// What a climate sensor measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClimateReading {
    /// Air temperature in °C.
    pub temperature_c: f64,
    /// Relative humidity in percent.
    pub humidity_percent: f64,
}

/// A reading of any sensor, as returned by [`crate::Hardware::read_sensor`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SensorReading {
    /// From a battery monitor (`ina219`).
    Battery(BatteryReading),
    /// From a temperature/humidity sensor (`shtc3`).
    Climate(ClimateReading),
}

/// A driver's failure; `E` is the bus's error, kept whole.
#[derive(Debug)]
pub enum DriverError<E> {
    /// The I²C transfer failed (no device at the address answers with a NACK).
    I2c(E),
    /// Something answered, but not the expected chip.
    NotDetected {
        /// The chip expected, e.g. `SHTC3`.
        chip: &'static str,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The chip answered with a value outside its range, or a checksum did not match.
    BadReading {
        /// The chip, e.g. `INA219`.
        chip: &'static str,
        /// What was wrong with the answer.
        detail: String,
    },
}

impl<E: fmt::Display> fmt::Display for DriverError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::I2c(e) => write!(f, "I²C transfer failed: {e}"),
            DriverError::NotDetected { chip, detail } => {
                write!(f, "the device does not answer like an {chip}: {detail}")
            }
            DriverError::BadReading { chip, detail } => write!(f, "bad {chip} reading: {detail}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for DriverError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DriverError::I2c(e) => Some(e),
            _ => None,
        }
    }
}

/// A sensor the hardware layer can read, whatever its bus type.
pub(crate) trait SensorDevice: Send {
    fn read(&mut self) -> Result<SensorReading, BackendError>;
}

/// Starts the configured driver on an opened bus, as a boxed [`SensorDevice`].
#[cfg(any(feature = "linux", feature = "rpi"))]
pub(crate) fn start<I2C>(
    key: &str,
    driver: crate::config::SensorDriver,
    config: &crate::config::SensorConfig,
    i2c: I2C,
) -> Result<Box<dyn SensorDevice>, crate::HalError>
where
    I2C: embedded_hal::i2c::I2c + Send + 'static,
    I2C::Error: std::error::Error + Send + Sync + 'static,
{
    use crate::config::SensorDriver;
    // Validation keeps addresses within 7 bits.
    let address = config.address.unwrap_or(driver.default_address()) as u8;
    let device = format!("{} at {address:#04x} on {}", driver.name(), config.bus);
    let fail = |source: BackendError| crate::HalError::Open {
        key: key.to_owned(),
        device: device.clone(),
        source,
    };
    Ok(match driver {
        SensorDriver::Ina219 => {
            let options = Ina219Options {
                shunt_ohm: config.shunt_milliohm.unwrap_or(100.0) / 1000.0,
                cells: config.cells,
            };
            let sensor = Ina219Battery::new(i2c, address, options)
                .map_err(|e| fail(BackendError::new(e)))?;
            Box::new(sensor)
        }
        SensorDriver::Shtc3 => {
            let sensor =
                Shtc3Climate::new(i2c, StdDelay).map_err(|e| fail(BackendError::new(e)))?;
            Box::new(sensor)
        }
    })
}

/// A delay that sleeps the thread: the drivers wait for conversions this way on real boards.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDelay;

impl DelayNs for StdDelay {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(std::time::Duration::from_nanos(u64::from(ns)));
    }
}

/// Open-circuit voltage of one LiPo cell by state of charge (percent, volts), a typical curve.
const LIPO_CURVE: [(f64, f64); 12] = [
    (0.0, 3.27),
    (5.0, 3.61),
    (10.0, 3.69),
    (20.0, 3.73),
    (30.0, 3.77),
    (40.0, 3.79),
    (50.0, 3.82),
    (60.0, 3.87),
    (70.0, 3.92),
    (80.0, 3.97),
    (90.0, 4.07),
    (100.0, 4.20),
];

/// The state of charge of a LiPo cell at rest with this voltage, in percent (0-100).
///
/// Under load the voltage sags, so this reads low while the motors run.
pub fn lipo_percent(cell_v: f64) -> f64 {
    interpolate(cell_v, LIPO_CURVE.map(|(p, v)| (v, p)))
}

/// The resting voltage of a LiPo cell at this state of charge.
pub fn lipo_cell_voltage(percent: f64) -> f64 {
    interpolate(percent, LIPO_CURVE)
}

/// Piecewise-linear lookup in a table sorted by its first column, clamped at both ends.
fn interpolate(x: f64, table: [(f64, f64); 12]) -> f64 {
    let (first, last) = (table[0], table[table.len() - 1]);
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    let i = table
        .iter()
        .position(|&(tx, _)| tx > x)
        .unwrap_or(table.len() - 1);
    let ((x0, y0), (x1, y1)) = (table[i - 1], table[i]);
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lipo_curve_round_trips_and_clamps() {
        for percent in [0.0, 12.5, 50.0, 87.0, 100.0] {
            let back = lipo_percent(lipo_cell_voltage(percent));
            assert!((back - percent).abs() < 1e-9, "{percent} -> {back}");
        }
        assert_eq!(lipo_percent(4.35), 100.0);
        assert_eq!(lipo_percent(2.9), 0.0);
        assert!((lipo_cell_voltage(50.0) - 3.82).abs() < 1e-12);
    }
}
