//! The `linux` backend: GPIO character device lines, `/dev/i2c-N` and serial ttys through
//! linux-embedded-hal (gpio-cdev, i2cdev, serialport without libudev).

use std::collections::btree_map::{BTreeMap, Entry};
use std::time::Duration;

use linux_embedded_hal::gpio_cdev::{Chip, Line, LineRequestFlags};
use linux_embedded_hal::{serialport, CdevPin, I2cdev, Serial};

use crate::config::{
    HalConfig, InputConfig, OutputConfig, SensorConfig, SensorDriver, SerialConfig,
};
use crate::digital::{InputLine, OutputLine};
use crate::error::BackendError;
use crate::hardware::{Opener, Sensor};
use crate::serial::{IoPort, SerialLink};
use crate::HalError;

/// How the agent's lines show up in `gpioinfo`.
const CONSUMER: &str = "sortie-agent";

/// Opens lines, buses and ports; GPIO chips are opened once each.
pub(crate) struct LinuxOpener<'c> {
    config: &'c HalConfig,
    chips: BTreeMap<String, Chip>,
}

impl<'c> LinuxOpener<'c> {
    pub(crate) fn new(config: &'c HalConfig) -> Self {
        Self {
            config,
            chips: BTreeMap::new(),
        }
    }

    fn line(
        &mut self,
        key: &str,
        chip: Option<&str>,
        pin: Option<u32>,
    ) -> Result<(Line, String), HalError> {
        let path = self.config.chip_for(chip);
        let pin = pin.ok_or_else(|| {
            HalError::config(
                format!("{key}.pin"),
                "a pin is required by the linux backend",
            )
        })?;
        let chip = match self.chips.entry(path.clone()) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => slot.insert(
                Chip::new(&path).map_err(|e| open_error(key, format!("GPIO chip {path:?}"), e))?,
            ),
        };
        let lines = chip.num_lines();
        if pin >= lines {
            return Err(HalError::config(
                format!("{key}.pin"),
                format!("line {pin} does not exist on {path:?}, which has {lines} lines"),
            ));
        }
        let line = chip
            .get_line(pin)
            .map_err(|e| open_error(key, format!("line {pin} of {path:?}"), e))?;
        Ok((line, format!("line {pin} of {path:?}")))
    }
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

impl Opener for LinuxOpener<'_> {
    fn output(
        &mut self,
        key: &str,
        _name: &str,
        config: &OutputConfig,
        high: bool,
    ) -> Result<Box<dyn OutputLine>, HalError> {
        let (line, device) = self.line(key, config.chip.as_deref(), config.pin)?;
        // Requested at its initial level, so the line never glitches through the other one.
        let handle = line
            .request(LineRequestFlags::OUTPUT, u8::from(high), CONSUMER)
            .map_err(|e| open_error(key, device.clone(), e))?;
        let pin = CdevPin::new(handle).map_err(|e| open_error(key, device, e))?;
        Ok(Box::new(pin))
    }

    fn input(
        &mut self,
        key: &str,
        _name: &str,
        config: &InputConfig,
    ) -> Result<Box<dyn InputLine>, HalError> {
        let (line, device) = self.line(key, config.chip.as_deref(), config.pin)?;
        let handle = line
            .request(LineRequestFlags::INPUT, 0, CONSUMER)
            .map_err(|e| open_error(key, device.clone(), e))?;
        let pin = CdevPin::new(handle).map_err(|e| open_error(key, device, e))?;
        Ok(Box::new(pin))
    }

    fn sensor(
        &mut self,
        key: &str,
        driver: SensorDriver,
        config: &SensorConfig,
    ) -> Result<Sensor, HalError> {
        let bus = I2cdev::new(&config.bus)
            .map_err(|e| open_error(key, format!("I²C bus {:?}", config.bus), e))?;
        crate::drivers::start(key, driver, config, bus).map(Sensor::Device)
    }

    fn serial(
        &mut self,
        key: &str,
        config: &SerialConfig,
    ) -> Result<Box<dyn SerialLink>, HalError> {
        let builder = serialport::new(&config.path, config.baud)
            .timeout(Duration::from_millis(config.timeout_ms));
        let port = Serial::open_from_builder(builder)
            .map_err(|e| open_error(key, format!("serial port {:?}", config.path), e))?;
        Ok(Box::new(IoPort(port.0)))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Backend, HalConfig, OutputConfig, SensorConfig};
    use crate::Hardware;

    #[test]
    fn a_missing_gpio_chip_names_the_key_and_the_path() {
        let mut config = HalConfig {
            backend: Backend::Linux,
            gpio_chip: Some("/nonexistent/gpiochip7".into()),
            ..HalConfig::default()
        };
        config
            .outputs
            .insert("door".into(), OutputConfig::on_pin(17));
        let Err(err) = Hardware::open(&config) else {
            panic!("opened a GPIO chip that does not exist");
        };
        assert_eq!(
            err.to_string(),
            "hal.outputs.door: cannot open GPIO chip \"/nonexistent/gpiochip7\""
        );
        let chain = err.chain();
        assert!(chain.contains("No such file or directory"), "{chain}");
    }

    #[test]
    fn a_missing_i2c_bus_names_the_sensor() {
        let mut config = HalConfig {
            backend: Backend::Linux,
            ..HalConfig::default()
        };
        config
            .sensors
            .insert("battery".into(), SensorConfig::ina219("/nonexistent/i2c-9"));
        let Err(err) = Hardware::open(&config) else {
            panic!("opened an I²C bus that does not exist");
        };
        assert_eq!(
            err.to_string(),
            "hal.sensors.battery: cannot open I²C bus \"/nonexistent/i2c-9\""
        );
    }
}
