//! The `sim` backend: [`SimWorld`] behind simulated pins, on a wall or a manual clock.

use std::time::{Duration, Instant};

use super::{assemble, Hardware, Opener, Sensor};
use crate::config::{
    Backend, HalConfig, InputConfig, OutputConfig, SensorConfig, SensorDriver, SerialConfig,
};
use crate::digital::{InputLine, OutputLine};
use crate::serial::{Loopback, SerialLink};
use crate::sim::SimWorld;
use crate::HalError;

/// The simulated machine and the clock that drives it.
pub(super) struct SimRuntime {
    pub(super) world: SimWorld,
    /// Wall-clock mode: when the simulator last caught up. `None` in manual mode.
    last_catch_up: Option<Instant>,
}

impl SimRuntime {
    pub(super) fn catch_up(&mut self) {
        if let Some(last) = &mut self.last_catch_up {
            let now = Instant::now();
            self.world.advance(now - *last);
            *last = now;
        }
    }

    pub(super) fn is_manual(&self) -> bool {
        self.last_catch_up.is_none()
    }

    /// Simulated time, in manual mode only (where it is the clock steps run on).
    pub(super) fn manual_time(&self) -> Option<Duration> {
        self.is_manual().then(|| self.world.elapsed())
    }
}

/// Wires each configured name to the simulated machine.
struct SimOpener<'w> {
    world: &'w mut SimWorld,
}

impl Opener for SimOpener<'_> {
    fn output(
        &mut self,
        _key: &str,
        name: &str,
        config: &OutputConfig,
        high: bool,
    ) -> Result<Box<dyn OutputLine>, HalError> {
        Ok(Box::new(self.world.wire_output(
            name,
            config.active_low,
            high,
        )))
    }

    fn input(
        &mut self,
        _key: &str,
        name: &str,
        config: &InputConfig,
    ) -> Result<Box<dyn InputLine>, HalError> {
        Ok(Box::new(self.world.wire_input(name, config.active_low)))
    }

    fn sensor(
        &mut self,
        _key: &str,
        driver: SensorDriver,
        _config: &SensorConfig,
    ) -> Result<Sensor, HalError> {
        Ok(Sensor::Sim(driver))
    }

    fn serial(
        &mut self,
        _key: &str,
        _config: &SerialConfig,
    ) -> Result<Box<dyn SerialLink>, HalError> {
        Ok(Box::<Loopback>::default())
    }
}

impl Hardware {
    pub(super) fn open_sim(config: &HalConfig, wall_clock: bool) -> Result<Hardware, HalError> {
        config.sim.validate()?;
        let mut world = SimWorld::new(&config.sim);
        let parts = assemble(config, &mut SimOpener { world: &mut world })?;
        let now = Instant::now();
        Ok(Hardware {
            backend: Backend::Sim,
            outputs: parts.outputs,
            inputs: parts.inputs,
            sensors: parts.sensors,
            serial: parts.serial,
            opened: now,
            sim: Some(SimRuntime {
                world,
                last_catch_up: wall_clock.then_some(now),
            }),
        })
    }
}
