//! [`Hardware`]: the configured lines, sensors and serial ports of one node, on one backend.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::{
    Backend, HalConfig, InputConfig, OutputConfig, SensorConfig, SensorDriver, SerialConfig,
};
use crate::digital::{DigitalInput, DigitalOutput, InputLine, OutputLine};
use crate::drivers::{SensorDevice, SensorReading};
use crate::error::BackendError;
use crate::serial::SerialLink;
use crate::status::{DepotStatus, DroneStatus};
use crate::steps::{self, Step, StepTarget, StepsReport};
use crate::HalError;

mod real_status;
#[cfg(feature = "sim")]
mod sim;

/// How often an `expect` step looks again on real hardware.
const REAL_POLL: Duration = Duration::from_millis(20);

/// Opens what a backend provides; [`assemble`] calls it once per configured name.
pub(crate) trait Opener {
    /// An output already at the electrical level `high`.
    fn output(
        &mut self,
        key: &str,
        name: &str,
        config: &OutputConfig,
        high: bool,
    ) -> Result<Box<dyn OutputLine>, HalError>;
    fn input(
        &mut self,
        key: &str,
        name: &str,
        config: &InputConfig,
    ) -> Result<Box<dyn InputLine>, HalError>;
    fn sensor(
        &mut self,
        key: &str,
        driver: SensorDriver,
        config: &SensorConfig,
    ) -> Result<Sensor, HalError>;
    fn serial(&mut self, key: &str, config: &SerialConfig)
        -> Result<Box<dyn SerialLink>, HalError>;
}

/// A configured sensor: a driver on a bus, or the simulator's view of one.
pub(crate) enum Sensor {
    // Only real backends open devices.
    #[cfg_attr(not(any(feature = "linux", feature = "rpi")), allow(dead_code))]
    Device(Box<dyn SensorDevice>),
    #[cfg(feature = "sim")]
    Sim(SensorDriver),
}

/// The hardware of one node: named outputs, inputs, sensors and serial ports on the configured
/// backend, and (on the `sim` backend) the simulated drone or depot behind them.
///
/// `Hardware` is `Send` but blocking: the agent keeps it on a dedicated thread or calls it
/// through `spawn_blocking`. Every method that reads or writes first lets the simulator catch up
/// with the time that passed (wall-clock time after [`Hardware::open`], only
/// [`Hardware::advance`] after [`Hardware::open_sim_manual`]).
pub struct Hardware {
    backend: Backend,
    outputs: BTreeMap<String, DigitalOutput>,
    inputs: BTreeMap<String, DigitalInput>,
    sensors: BTreeMap<String, Sensor>,
    serial: BTreeMap<String, Box<dyn SerialLink>>,
    opened: Instant,
    #[cfg(feature = "sim")]
    sim: Option<sim::SimRuntime>,
}

/// Everything [`assemble`] opened.
struct Parts {
    outputs: BTreeMap<String, DigitalOutput>,
    inputs: BTreeMap<String, DigitalInput>,
    sensors: BTreeMap<String, Sensor>,
    serial: BTreeMap<String, Box<dyn SerialLink>>,
}

/// Opens every configured name through `opener`; the first failure names its key.
fn assemble(config: &HalConfig, opener: &mut dyn Opener) -> Result<Parts, HalError> {
    let mut parts = Parts {
        outputs: BTreeMap::new(),
        inputs: BTreeMap::new(),
        sensors: BTreeMap::new(),
        serial: BTreeMap::new(),
    };
    for (name, output) in &config.outputs {
        let key = format!("hal.outputs.{name}");
        let high = DigitalOutput::pin_level(output.active_low, output.initial);
        let line = opener.output(&key, name, output, high)?;
        let output = DigitalOutput::new(line, output.active_low, output.initial);
        parts.outputs.insert(name.clone(), output);
    }
    for (name, input) in &config.inputs {
        let key = format!("hal.inputs.{name}");
        let line = opener.input(&key, name, input)?;
        parts
            .inputs
            .insert(name.clone(), DigitalInput::new(line, input.active_low));
    }
    for (name, sensor) in &config.sensors {
        let key = format!("hal.sensors.{name}");
        let driver = SensorDriver::from_name(&sensor.driver).ok_or_else(|| {
            HalError::config(
                format!("{key}.driver"),
                format!("unknown driver {:?}", sensor.driver),
            )
        })?;
        parts
            .sensors
            .insert(name.clone(), opener.sensor(&key, driver, sensor)?);
    }
    for (name, port) in &config.serial {
        let key = format!("hal.serial.{name}");
        parts
            .serial
            .insert(name.clone(), opener.serial(&key, port)?);
    }
    Ok(parts)
}

impl Hardware {
    /// Checks `config` and opens every device it names on its backend. On the `sim` backend the
    /// simulator then runs on wall-clock time.
    pub fn open(config: &HalConfig) -> Result<Hardware, HalError> {
        config.validate()?;
        match config.backend {
            Backend::Sim => Self::open_sim(config, true),
            Backend::Linux => Self::open_linux(config),
            Backend::Rpi => Self::open_rpi(config),
        }
    }

    /// Opens the simulator for `config`, whatever its `backend` says (so a board's
    /// configuration can be rehearsed; it is still checked as that backend would check it).
    /// Simulated time moves only through [`Hardware::advance`] and the waits of
    /// [`Hardware::run_steps`]: tests are fast and deterministic.
    pub fn open_sim_manual(config: &HalConfig) -> Result<Hardware, HalError> {
        config.validate()?;
        Self::open_sim(config, false)
    }

    #[cfg(not(feature = "sim"))]
    fn open_sim(_config: &HalConfig, _wall_clock: bool) -> Result<Hardware, HalError> {
        Err(HalError::BackendNotBuilt { backend: "sim" })
    }

    #[cfg(feature = "linux")]
    fn open_linux(config: &HalConfig) -> Result<Hardware, HalError> {
        let parts = assemble(config, &mut crate::linux::LinuxOpener::new(config))?;
        Ok(Self::real(Backend::Linux, parts))
    }

    #[cfg(not(feature = "linux"))]
    fn open_linux(_config: &HalConfig) -> Result<Hardware, HalError> {
        Err(HalError::BackendNotBuilt { backend: "linux" })
    }

    #[cfg(feature = "rpi")]
    fn open_rpi(config: &HalConfig) -> Result<Hardware, HalError> {
        let parts = assemble(config, &mut crate::rpi::RpiOpener::default())?;
        Ok(Self::real(Backend::Rpi, parts))
    }

    #[cfg(not(feature = "rpi"))]
    fn open_rpi(_config: &HalConfig) -> Result<Hardware, HalError> {
        Err(HalError::BackendNotBuilt { backend: "rpi" })
    }

    #[cfg(any(feature = "linux", feature = "rpi"))]
    fn real(backend: Backend, parts: Parts) -> Hardware {
        Hardware {
            backend,
            outputs: parts.outputs,
            inputs: parts.inputs,
            sensors: parts.sensors,
            serial: parts.serial,
            opened: Instant::now(),
            #[cfg(feature = "sim")]
            sim: None,
        }
    }

    /// The backend in use (`Sim` after [`Hardware::open_sim_manual`], whatever the config said).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The configured output names, sorted.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.keys().cloned().collect()
    }

    /// The configured input names, sorted.
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.keys().cloned().collect()
    }

    /// The configured sensor names, sorted.
    pub fn sensor_names(&self) -> Vec<String> {
        self.sensors.keys().cloned().collect()
    }

    /// The configured serial port names, sorted.
    pub fn serial_names(&self) -> Vec<String> {
        self.serial.keys().cloned().collect()
    }

    /// Drives the output `name` on (its active level) or off.
    pub fn set_output(&mut self, name: &str, on: bool) -> Result<(), HalError> {
        self.catch_up();
        let output = named(&mut self.outputs, "output", name)?;
        output.set(on).map_err(|source| HalError::Device {
            what: format!("output {name:?}"),
            source,
        })
    }

    /// The level the output `name` was last set to (on = active).
    pub fn output(&mut self, name: &str) -> Result<bool, HalError> {
        self.outputs
            .get(name)
            .map(DigitalOutput::is_on)
            .ok_or_else(|| HalError::unknown("output", name, self.outputs.keys()))
    }

    /// Reads the input `name` (on = active).
    pub fn input(&mut self, name: &str) -> Result<bool, HalError> {
        self.catch_up();
        let input = named(&mut self.inputs, "input", name)?;
        input.is_on().map_err(|source| HalError::Device {
            what: format!("input {name:?}"),
            source,
        })
    }

    /// Reads the sensor `name`.
    pub fn read_sensor(&mut self, name: &str) -> Result<SensorReading, HalError> {
        self.catch_up();
        let sensor = named(&mut self.sensors, "sensor", name)?;
        match sensor {
            Sensor::Device(device) => device.read().map_err(|source| HalError::Device {
                what: format!("sensor {name:?}"),
                source,
            }),
            #[cfg(feature = "sim")]
            Sensor::Sim(driver) => match &self.sim {
                Some(sim) => Ok(sim.world.sensor(*driver)),
                None => Err(HalError::Unsupported(format!(
                    "sensor {name:?} is simulated but the simulator is not running"
                ))),
            },
        }
    }

    /// Writes every byte of `bytes` to the serial port `name`.
    pub fn serial_write(&mut self, name: &str, bytes: &[u8]) -> Result<(), HalError> {
        self.serial_port(name)?
            .write_all(bytes)
            .map_err(|source| serial_error(name, source))
    }

    /// Reads what has arrived on the serial port `name` into `buf`, waiting up to the port's
    /// `timeout_ms` for the first byte; `Ok(0)` when nothing came.
    pub fn serial_read(&mut self, name: &str, buf: &mut [u8]) -> Result<usize, HalError> {
        self.serial_port(name)?
            .read(buf)
            .map_err(|source| serial_error(name, source))
    }

    fn serial_port(&mut self, name: &str) -> Result<&mut Box<dyn SerialLink>, HalError> {
        named(&mut self.serial, "serial port", name)
    }

    /// The drone's state: the simulated drone's, or on real backends what the node measures
    /// (the `battery` sensor, the `estop` output); unmeasured fields are `None`.
    pub fn drone_status(&mut self) -> Result<DroneStatus, HalError> {
        self.catch_up();
        #[cfg(feature = "sim")]
        if let Some(sim) = &self.sim {
            return sim.world.drone_status().ok_or_else(|| {
                HalError::Unsupported(
                    "the simulator plays a depot, not a drone (hal.sim.kind); use depot_status"
                        .into(),
                )
            });
        }
        self.measured_drone_status()
    }

    /// The depot's state: the simulated depot's, or on real backends what the node measures
    /// (the `door` output; the `door_closed`, `door_open`, `charging`, `drone_present` inputs;
    /// the `climate` sensor); unmeasured fields are `None`.
    pub fn depot_status(&mut self) -> Result<DepotStatus, HalError> {
        self.catch_up();
        #[cfg(feature = "sim")]
        if let Some(sim) = &self.sim {
            return sim.world.depot_status().ok_or_else(|| {
                HalError::Unsupported(
                    "the simulator plays a drone, not a depot (hal.sim.kind); use drone_status"
                        .into(),
                )
            });
        }
        self.measured_depot_status()
    }

    /// Runs `steps` in order and reports each one; never panics, and runs every step even after
    /// one fails (see [`Step`]). Waits sleep the thread, except in the manual simulator, where
    /// they advance simulated time.
    pub fn run_steps(&mut self, steps: &[Step]) -> StepsReport {
        steps::run(self, steps)
    }

    /// Moves simulated time forward by `dt` (on top of wall-clock time after [`Hardware::open`]).
    /// No-op on real backends.
    pub fn advance(&mut self, dt: Duration) {
        #[cfg(feature = "sim")]
        if let Some(sim) = &mut self.sim {
            sim.catch_up();
            sim.world.advance(dt);
        }
        #[cfg(not(feature = "sim"))]
        let _ = dt;
    }

    /// Tells the simulator whether a job is running: the simulated drone takes off and flies its
    /// route; the simulated depot lets its drone out once the door is open. When the job ends
    /// the drone comes home and lands. No-op on real backends.
    pub fn set_job_active(&mut self, active: bool) {
        self.catch_up();
        #[cfg(feature = "sim")]
        if let Some(sim) = &mut self.sim {
            sim.world.set_job_active(active);
        }
        #[cfg(not(feature = "sim"))]
        let _ = active;
    }

    /// Simulated time since the simulator was opened; `None` on real backends.
    pub fn sim_time(&mut self) -> Option<Duration> {
        self.catch_up();
        #[cfg(feature = "sim")]
        if let Some(sim) = &self.sim {
            return Some(sim.world.elapsed());
        }
        None
    }

    /// Lets the simulator catch up with wall-clock time (no-op otherwise).
    fn catch_up(&mut self) {
        #[cfg(feature = "sim")]
        if let Some(sim) = &mut self.sim {
            sim.catch_up();
        }
    }
}

/// The entry `name` of `map`, or an error listing the names there are.
fn named<'m, V>(
    map: &'m mut BTreeMap<String, V>,
    kind: &'static str,
    name: &str,
) -> Result<&'m mut V, HalError> {
    // Looked up twice: returning the mutable borrow from one lookup would keep `map` borrowed
    // in the error path too (the borrow checker cannot yet see that it is not).
    if !map.contains_key(name) {
        return Err(HalError::unknown(kind, name, map.keys()));
    }
    map.get_mut(name)
        .ok_or_else(|| HalError::unknown(kind, name, std::iter::empty()))
}

fn serial_error(name: &str, source: BackendError) -> HalError {
    HalError::Device {
        what: format!("serial port {name:?}"),
        source,
    }
}

impl StepTarget for Hardware {
    fn set_line(&mut self, name: &str, on: bool) -> Result<(), HalError> {
        if self.inputs.contains_key(name) {
            return Err(HalError::Unsupported(format!(
                "{name:?} is an input; only outputs can be set"
            )));
        }
        self.set_output(name, on)
    }

    fn read_line(&mut self, name: &str) -> Result<bool, HalError> {
        if self.outputs.contains_key(name) {
            return self.output(name);
        }
        self.input(name)
    }

    fn now(&mut self) -> Duration {
        #[cfg(feature = "sim")]
        if let Some(elapsed) = self.sim.as_ref().and_then(sim::SimRuntime::manual_time) {
            return elapsed;
        }
        self.opened.elapsed()
    }

    fn pause(&mut self, duration: Duration) {
        #[cfg(feature = "sim")]
        if let Some(sim) = self.sim.as_mut().filter(|sim| sim.is_manual()) {
            sim.world.advance(duration);
            return;
        }
        std::thread::sleep(duration);
    }

    fn poll_interval(&self) -> Duration {
        #[cfg(feature = "sim")]
        if self.sim.as_ref().is_some_and(sim::SimRuntime::is_manual) {
            return crate::sim::TICK;
        }
        REAL_POLL
    }
}

/// The agent moves `Hardware` onto a blocking thread; keep it that way.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Hardware>();
};

#[cfg(all(test, feature = "sim"))]
mod tests;
