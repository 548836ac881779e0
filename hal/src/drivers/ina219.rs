//! Battery voltage and current from a TI INA219, through the `ina219` crate's blocking driver.
//!
//! The chip is reset and left in its power-on configuration (32 V bus range, ±320 mV shunt
//! range, continuous conversions). Current is computed here from the shunt voltage and the
//! configured shunt resistance rather than with the chip's calibration register, whose integer
//! rounding the `ina219` crate itself warns about.

use embedded_hal::i2c::I2c;
use ina219::address::Address;
use ina219::calibration::UnCalibrated;
use ina219::errors::{BusVoltageReadError, InitializationErrorReason, ShuntVoltageReadError};
use ina219::SyncIna219;

use super::{lipo_percent, BatteryReading, DriverError, SensorDevice, SensorReading};
use crate::error::BackendError;

const CHIP: &str = "INA219";

/// How the INA219 is wired to the battery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ina219Options {
    /// The shunt resistor in ohm (0.1 on the common breakout boards).
    pub shunt_ohm: f64,
    /// LiPo cells in series, for the state-of-charge estimate; `None` leaves `percent` empty.
    pub cells: Option<u8>,
}

impl Default for Ina219Options {
    fn default() -> Self {
        Self {
            shunt_ohm: 0.1,
            cells: None,
        }
    }
}

/// A battery monitored by an INA219 on the high side: bus voltage is the load side of the shunt.
pub struct Ina219Battery<I2C> {
    chip: SyncIna219<I2C, UnCalibrated>,
    options: Ina219Options,
}

impl<I2C: I2c> Ina219Battery<I2C> {
    /// Resets the chip at `address` (0x40-0x4f) and checks that it comes back in its power-on
    /// configuration, which tells an INA219 from anything else that answers.
    pub fn new(
        i2c: I2C,
        address: u8,
        options: Ina219Options,
    ) -> Result<Self, DriverError<I2C::Error>> {
        let address = Address::from_byte(address).map_err(|e| DriverError::NotDetected {
            chip: CHIP,
            detail: format!("{e}"),
        })?;
        let chip = SyncIna219::new(i2c, address).map_err(|e| match e.reason {
            InitializationErrorReason::I2cError(e) => DriverError::I2c(e),
            other => DriverError::NotDetected {
                chip: CHIP,
                detail: format!("{other:?}"),
            },
        })?;
        Ok(Self { chip, options })
    }

    /// Reads the latest conversion: battery voltage (bus + shunt) and current.
    pub fn read(&mut self) -> Result<BatteryReading, DriverError<I2C::Error>> {
        let shunt = self.chip.shunt_voltage().map_err(|e| match e {
            ShuntVoltageReadError::I2cError(e) => DriverError::I2c(e),
            other => bad_reading(other),
        })?;
        let bus = self.chip.bus_voltage().map_err(|e| match e {
            BusVoltageReadError::I2cError(e) => DriverError::I2c(e),
            other => bad_reading(other),
        })?;
        let shunt_v = f64::from(shunt.shunt_voltage_uv()) * 1e-6;
        let voltage_v = f64::from(bus.voltage_mv()) * 1e-3 + shunt_v;
        Ok(BatteryReading {
            voltage_v,
            current_a: shunt_v / self.options.shunt_ohm,
            percent: self
                .options
                .cells
                .map(|cells| lipo_percent(voltage_v / f64::from(cells))),
        })
    }
}

fn bad_reading<E>(error: impl std::fmt::Display) -> DriverError<E> {
    DriverError::BadReading {
        chip: CHIP,
        detail: error.to_string(),
    }
}

impl<I2C> SensorDevice for Ina219Battery<I2C>
where
    I2C: I2c + Send,
    I2C::Error: std::error::Error + Send + Sync + 'static,
{
    fn read(&mut self) -> Result<SensorReading, BackendError> {
        Ina219Battery::read(self)
            .map(SensorReading::Battery)
            .map_err(BackendError::new)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    const ADDR: u8 = 0x41;
    /// Register numbers from the datasheet.
    const CONFIG: u8 = 0x00;
    const SHUNT: u8 = 0x01;
    const BUS: u8 = 0x02;
    /// The power-on configuration, and the same with the reset bit.
    const CONFIG_DEFAULT: u16 = 0x399f;
    const CONFIG_RESET: u16 = 0x8000 | CONFIG_DEFAULT;

    fn write(reg: u8, value: u16) -> Transaction {
        let [hi, lo] = value.to_be_bytes();
        Transaction::write(ADDR, vec![reg, hi, lo])
    }

    fn read(reg: u8, value: u16) -> Transaction {
        Transaction::write_read(ADDR, vec![reg], value.to_be_bytes().to_vec())
    }

    fn reset() -> Vec<Transaction> {
        vec![write(CONFIG, CONFIG_RESET), read(CONFIG, CONFIG_DEFAULT)]
    }

    /// The bus voltage register: millivolts / 4 from bit 3 up, conversion-ready in bit 1.
    fn bus_register(mv: u16) -> u16 {
        ((mv / 4) << 3) | 0b10
    }

    #[test]
    fn reads_battery_voltage_current_and_percent() {
        let mut script = reset();
        // 15.2 mV across 10 mΩ is 1.52 A; 16.4 V on the load side of the shunt.
        script.push(read(SHUNT, 1520));
        script.push(read(BUS, bus_register(16_400)));
        let i2c = Mock::new(&script);
        let mut done = i2c.clone();
        let options = Ina219Options {
            shunt_ohm: 0.01,
            cells: Some(4),
        };
        let mut battery = Ina219Battery::new(i2c, ADDR, options).unwrap();
        let reading = battery.read().unwrap();
        assert!((reading.voltage_v - 16.4152).abs() < 1e-9, "{reading:?}");
        assert!((reading.current_a - 1.52).abs() < 1e-9, "{reading:?}");
        // 4.1038 V per cell sits between 90 % (4.07 V) and 100 % (4.20 V).
        let percent = reading.percent.unwrap();
        assert!((92.0..93.0).contains(&percent), "{percent}");
        done.done();
    }

    #[test]
    fn charging_current_is_negative_and_percent_needs_cells() {
        let mut script = reset();
        script.push(read(SHUNT, (-500i16) as u16));
        script.push(read(BUS, bus_register(12_000)));
        let i2c = Mock::new(&script);
        let mut done = i2c.clone();
        let mut battery = Ina219Battery::new(i2c, ADDR, Ina219Options::default()).unwrap();
        let reading = battery.read().unwrap();
        // -5 mV across the default 0.1 Ω.
        assert!((reading.current_a + 0.05).abs() < 1e-9, "{reading:?}");
        assert_eq!(reading.percent, None);
        done.done();
    }

    #[test]
    fn no_device_at_the_address_is_an_i2c_error() {
        let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
        let i2c = Mock::new(&[write(CONFIG, CONFIG_RESET).with_error(nack)]);
        let mut done = i2c.clone();
        let Err(err) = Ina219Battery::new(i2c, ADDR, Ina219Options::default()) else {
            panic!("opened a missing INA219");
        };
        assert!(
            matches!(err, DriverError::I2c(kind) if kind == nack),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("I²C transfer failed: "),
            "{err}"
        );
        done.done();
    }

    #[test]
    fn another_chip_is_not_taken_for_an_ina219() {
        // Whatever sits at the address ignores the reset: its register 0 never reads back the
        // INA219's power-on value. The driver polls a bounded number of times, then gives up.
        let mut script = vec![write(CONFIG, CONFIG_RESET)];
        script.extend((0..12).map(|_| read(CONFIG, 0x1234)));
        let i2c = Mock::new(&script);
        let mut done = i2c.clone();
        let Err(err) = Ina219Battery::new(i2c, ADDR, Ina219Options::default()) else {
            panic!("took another chip for an INA219");
        };
        assert_eq!(
            err.to_string(),
            "the device does not answer like an INA219: ConfigurationNotDefaultAfterReset"
        );
        done.done();
    }

    #[test]
    fn an_out_of_range_bus_voltage_is_a_bad_reading() {
        let mut script = reset();
        script.push(read(SHUNT, 0));
        // All voltage bits set: 32.76 V, beyond the 32 V range.
        script.push(read(BUS, 0xfffa));
        let i2c = Mock::new(&script);
        let mut done = i2c.clone();
        let mut battery = Ina219Battery::new(i2c, ADDR, Ina219Options::default()).unwrap();
        let err = battery.read().unwrap_err();
        assert!(
            matches!(err, DriverError::BadReading { chip: "INA219", .. }),
            "{err:?}"
        );
        done.done();
    }

    #[test]
    fn an_address_outside_the_ina219_range_is_refused_before_any_transfer() {
        let i2c = Mock::new(&[]);
        let mut done = i2c.clone();
        let Err(err) = Ina219Battery::new(i2c, 0x70, Ina219Options::default()) else {
            panic!("accepted address 0x70");
        };
        assert!(matches!(err, DriverError::NotDetected { .. }), "{err:?}");
        done.done();
    }
}
