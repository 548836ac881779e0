//! The `rpi` backend: a Raspberry Pi's GPIO (BCM numbers), I²C and UART through rppal.

use std::time::Duration;

use rppal::gpio::Gpio;
use rppal::i2c::I2c;
use rppal::uart::{Parity, Uart};

use crate::config::{
    rpi_bus_number, InputConfig, OutputConfig, Pull, SensorConfig, SensorDriver, SerialConfig,
};
use crate::digital::{InputLine, OutputLine};
use crate::error::BackendError;
use crate::hardware::{Opener, Sensor};
use crate::serial::SerialLink;
use crate::HalError;

/// Opens pins, buses and UARTs; the GPIO peripheral is opened on first use.
#[derive(Default)]
pub(crate) struct RpiOpener {
    gpio: Option<Gpio>,
}

fn open_error(
    key: &str,
    device: String,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> HalError {
    HalError::Open {
        key: key.to_owned(),
        device,
        source: BackendError::new(cause),
    }
}

impl RpiOpener {
    fn pin(&mut self, key: &str, pin: Option<u32>) -> Result<rppal::gpio::Pin, HalError> {
        let bcm = pin.and_then(|p| u8::try_from(p).ok()).ok_or_else(|| {
            HalError::config(
                format!("{key}.pin"),
                "a BCM GPIO number (0-53) is required by the rpi backend",
            )
        })?;
        let gpio = match &mut self.gpio {
            Some(gpio) => gpio,
            none => none.insert(
                Gpio::new().map_err(|e| open_error(key, "the Raspberry Pi GPIO".into(), e))?,
            ),
        };
        gpio.get(bcm)
            .map_err(|e| open_error(key, format!("BCM GPIO {bcm}"), e))
    }
}

impl Opener for RpiOpener {
    fn output(
        &mut self,
        key: &str,
        _name: &str,
        config: &OutputConfig,
        high: bool,
    ) -> Result<Box<dyn OutputLine>, HalError> {
        let pin = self.pin(key, config.pin)?;
        // Set to its initial level as it becomes an output, so it never glitches.
        let output = if high {
            pin.into_output_high()
        } else {
            pin.into_output_low()
        };
        Ok(Box::new(output))
    }

    fn input(
        &mut self,
        key: &str,
        _name: &str,
        config: &InputConfig,
    ) -> Result<Box<dyn InputLine>, HalError> {
        let pin = self.pin(key, config.pin)?;
        let input = match config.pull {
            Pull::None => pin.into_input(),
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
        };
        Ok(Box::new(input))
    }

    fn sensor(
        &mut self,
        key: &str,
        driver: SensorDriver,
        config: &SensorConfig,
    ) -> Result<Sensor, HalError> {
        let device = format!("I²C bus {:?}", config.bus);
        let bus = rpi_bus_number(&config.bus).ok_or_else(|| {
            HalError::config(
                format!("{key}.bus"),
                "the rpi backend needs a bus like /dev/i2c-1",
            )
        })?;
        let i2c = I2c::with_bus(bus).map_err(|e| open_error(key, device, e))?;
        crate::drivers::start(key, driver, config, i2c).map(Sensor::Device)
    }

    fn serial(
        &mut self,
        key: &str,
        config: &SerialConfig,
    ) -> Result<Box<dyn SerialLink>, HalError> {
        let device = format!("serial port {:?}", config.path);
        let mut uart = Uart::with_path(&config.path, config.baud, Parity::None, 8, 1)
            .map_err(|e| open_error(key, device.clone(), e))?;
        uart.set_read_mode(0, Duration::from_millis(config.timeout_ms))
            .and_then(|()| uart.set_write_mode(true))
            .map_err(|e| open_error(key, device, e))?;
        Ok(Box::new(RpiUart(uart)))
    }
}

/// rppal's UART: reads wait up to the configured timeout, writes block until queued.
struct RpiUart(Uart);

impl SerialLink for RpiUart {
    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), BackendError> {
        while !bytes.is_empty() {
            let written = self.0.write(bytes).map_err(BackendError::new)?;
            bytes = &bytes[written..];
        }
        self.0.drain().map_err(BackendError::new)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, BackendError> {
        self.0.read(buf).map_err(BackendError::new)
    }
}
