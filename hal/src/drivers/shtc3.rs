//! Temperature and humidity from a Sensirion SHTC3, through the `shtcx` crate.
//!
//! The sensor sleeps between readings (it draws under 1 µA asleep and warms itself when left
//! awake): each reading wakes it, measures in normal power mode, and puts it back to sleep.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use shtcx::{LowPower, PowerMode, ShtC3};

use super::{ClimateReading, DriverError, SensorDevice, SensorReading, StdDelay};
use crate::error::BackendError;

const CHIP: &str = "SHTC3";
/// The 7-bit identifier in the SHTC3's ID register (datasheet 5.9).
const SHTC3_ID: u8 = 0x47;

/// An SHTC3 at its fixed address 0x70. `D` waits for wake-up and conversion.
pub struct Shtc3Climate<I2C, D = StdDelay> {
    chip: ShtC3<I2C>,
    delay: D,
}

impl<I2C: I2c, D: DelayNs> Shtc3Climate<I2C, D> {
    /// Wakes the sensor, checks its ID register, and puts it to sleep.
    pub fn new(i2c: I2C, delay: D) -> Result<Self, DriverError<I2C::Error>> {
        let mut sensor = Self {
            chip: shtcx::shtc3(i2c),
            delay,
        };
        sensor.chip.wakeup(&mut sensor.delay).map_err(convert)?;
        let id = sensor.chip.device_identifier().map_err(convert)?;
        if id != SHTC3_ID {
            return Err(DriverError::NotDetected {
                chip: CHIP,
                detail: format!("identifier {id:#04x}, expected {SHTC3_ID:#04x}"),
            });
        }
        sensor.chip.sleep().map_err(convert)?;
        Ok(sensor)
    }

    /// Measures temperature and humidity (about 12 ms with the sensor asleep before and after).
    pub fn read(&mut self) -> Result<ClimateReading, DriverError<I2C::Error>> {
        self.chip.wakeup(&mut self.delay).map_err(convert)?;
        let measured = self
            .chip
            .measure(PowerMode::NormalMode, &mut self.delay)
            .map_err(convert)?;
        self.chip.sleep().map_err(convert)?;
        Ok(ClimateReading {
            temperature_c: f64::from(measured.temperature.as_millidegrees_celsius()) / 1000.0,
            humidity_percent: f64::from(measured.humidity.as_millipercent()) / 1000.0,
        })
    }
}

fn convert<E: embedded_hal::i2c::Error>(error: shtcx::Error<E>) -> DriverError<E> {
    match error {
        shtcx::Error::I2c(e) => DriverError::I2c(e),
        shtcx::Error::Crc => DriverError::BadReading {
            chip: CHIP,
            detail: "checksum mismatch".into(),
        },
    }
}

impl<I2C, D> SensorDevice for Shtc3Climate<I2C, D>
where
    I2C: I2c + Send,
    I2C::Error: std::error::Error + Send + Sync + 'static,
    D: DelayNs + Send,
{
    fn read(&mut self) -> Result<SensorReading, BackendError> {
        Shtc3Climate::read(self)
            .map(SensorReading::Climate)
            .map_err(BackendError::new)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    const ADDR: u8 = 0x70;
    const WAKE_UP: [u8; 2] = [0x35, 0x17];
    const SLEEP: [u8; 2] = [0xb0, 0x98];
    const READ_ID: [u8; 2] = [0xef, 0xc8];
    const MEASURE_T_FIRST: [u8; 2] = [0x78, 0x66];

    /// Sensirion's CRC-8 (polynomial 0x31, initial 0xff), written out independently of shtcx.
    fn crc8(bytes: [u8; 2]) -> u8 {
        let mut crc = 0xffu8;
        for byte in bytes {
            crc ^= byte;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 {
                    (crc << 1) ^ 0x31
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    /// A 16-bit word as the sensor sends it: big-endian, then its CRC.
    fn word(value: u16) -> Vec<u8> {
        let bytes = value.to_be_bytes();
        vec![bytes[0], bytes[1], crc8(bytes)]
    }

    fn open_script(id_register: u16) -> Vec<Transaction> {
        vec![
            Transaction::write(ADDR, WAKE_UP.to_vec()),
            Transaction::write(ADDR, READ_ID.to_vec()),
            Transaction::read(ADDR, word(id_register)),
        ]
    }

    #[test]
    fn crc_matches_the_datasheet_example() {
        assert_eq!(crc8([0xbe, 0xef]), 0x92);
    }

    #[test]
    fn reads_temperature_and_humidity() {
        let mut script = open_script(0x0887);
        script.push(Transaction::write(ADDR, SLEEP.to_vec()));
        script.push(Transaction::write(ADDR, WAKE_UP.to_vec()));
        script.push(Transaction::write(ADDR, MEASURE_T_FIRST.to_vec()));
        // T = -45 + 175 * raw / 2^16; RH = 100 * raw / 2^16.
        let (t_raw, rh_raw) = (0x6666u16, 0x8000u16);
        let mut reply = word(t_raw);
        reply.extend(word(rh_raw));
        script.push(Transaction::read(ADDR, reply));
        script.push(Transaction::write(ADDR, SLEEP.to_vec()));
        let i2c = Mock::new(&script);
        let mut done = i2c.clone();
        let mut sensor = Shtc3Climate::new(i2c, NoopDelay).unwrap();
        let reading = sensor.read().unwrap();
        assert!((reading.temperature_c - 25.0).abs() < 0.01, "{reading:?}");
        assert!(
            (reading.humidity_percent - 50.0).abs() < 0.01,
            "{reading:?}"
        );
        done.done();
    }

    #[test]
    fn a_corrupted_reply_is_a_checksum_error() {
        let mut script = open_script(0x0887);
        script.push(Transaction::write(ADDR, SLEEP.to_vec()));
        script.push(Transaction::write(ADDR, WAKE_UP.to_vec()));
        script.push(Transaction::write(ADDR, MEASURE_T_FIRST.to_vec()));
        let mut reply = word(0x6666);
        reply.extend(word(0x8000));
        reply[2] ^= 0xff;
        script.push(Transaction::read(ADDR, reply));
        let i2c = Mock::new(&script);
        let mut done = i2c.clone();
        let mut sensor = Shtc3Climate::new(i2c, NoopDelay).unwrap();
        let err = sensor.read().unwrap_err();
        assert_eq!(err.to_string(), "bad SHTC3 reading: checksum mismatch");
        done.done();
    }

    #[test]
    fn another_chip_is_not_taken_for_an_shtc3() {
        // An SHTC1 answers the same commands with identifier 0x07.
        let i2c = Mock::new(&open_script(0x0007));
        let mut done = i2c.clone();
        let Err(err) = Shtc3Climate::new(i2c, NoopDelay) else {
            panic!("took an SHTC1 for an SHTC3");
        };
        assert_eq!(
            err.to_string(),
            "the device does not answer like an SHTC3: identifier 0x07, expected 0x47"
        );
        done.done();
    }

    #[test]
    fn a_missing_sensor_is_an_i2c_error() {
        let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
        let i2c = Mock::new(&[Transaction::write(ADDR, WAKE_UP.to_vec()).with_error(nack)]);
        let mut done = i2c.clone();
        let Err(err) = Shtc3Climate::new(i2c, NoopDelay) else {
            panic!("opened a missing SHTC3");
        };
        assert!(
            matches!(err, DriverError::I2c(kind) if kind == nack),
            "{err:?}"
        );
        done.done();
    }
}
