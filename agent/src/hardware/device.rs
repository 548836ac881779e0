//! The [`Device`] trait the hardware thread drives, and its implementation by the hardware
//! layer's `Hardware`.

use serde_json::{json, Map, Value};
use sortie_hal::{HalConfig, Hardware, Step};

use super::{HardwareError, HardwareHandle, StepsOutcome};
use crate::config::Reading;

/// What the agent does with hardware. Blocking: called on the hardware thread only.
pub trait Device: Send + 'static {
    /// Sets an output on (active) or off.
    fn set_output(&mut self, name: &str, on: bool) -> Result<(), HardwareError>;
    /// An output's level as last set, or an input's level now.
    fn get(&mut self, name: &str) -> Result<bool, HardwareError>;
    /// A status reading as JSON.
    fn reading(&mut self, reading: Reading) -> Result<Value, HardwareError>;
    /// Every output and input, and the status readings there are.
    fn status(&mut self) -> Value;
    /// Whether a job runs.
    fn set_job_active(&mut self, active: bool);
    /// Runs steps in order (stopping at the first failure); one line per step.
    fn run_steps(&mut self, steps: &[Step]) -> StepsOutcome;
}

/// Opens the hardware `config` describes and moves it to its thread. A bad pin or a missing
/// device is an error here, at start, with the layer's whole message.
pub fn open_hardware(config: &HalConfig) -> Result<HardwareHandle, HardwareError> {
    let hardware = Hardware::open(config)?;
    HardwareHandle::spawn(hardware)
        .map_err(|e| HardwareError(format!("starting the hardware thread: {e}")))
}

impl Device for Hardware {
    fn set_output(&mut self, name: &str, on: bool) -> Result<(), HardwareError> {
        Ok(Hardware::set_output(self, name, on)?)
    }

    fn get(&mut self, name: &str) -> Result<bool, HardwareError> {
        if self.output_names().iter().any(|n| n == name) {
            return Ok(self.output(name)?);
        }
        if self.input_names().iter().any(|n| n == name) {
            return Ok(self.input(name)?);
        }
        let list = |names: Vec<String>| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        Err(HardwareError(format!(
            "no output or input named {name:?} is configured (outputs: {}; inputs: {})",
            list(self.output_names()),
            list(self.input_names()),
        )))
    }

    fn reading(&mut self, reading: Reading) -> Result<Value, HardwareError> {
        let value = match reading {
            Reading::DroneStatus => serde_json::to_value(self.drone_status()?),
            Reading::DepotStatus => serde_json::to_value(self.depot_status()?),
        };
        value.map_err(|e| HardwareError(format!("encoding {}: {e}", reading.as_str())))
    }

    fn status(&mut self) -> Value {
        let mut outputs = Map::new();
        for name in self.output_names() {
            let level = self
                .output(&name)
                .map_or_else(|e| json!(e.chain()), |on| json!(on));
            outputs.insert(name, level);
        }
        let mut inputs = Map::new();
        for name in self.input_names() {
            let level = self
                .input(&name)
                .map_or_else(|e| json!(e.chain()), |on| json!(on));
            inputs.insert(name, level);
        }
        let mut status = Map::new();
        status.insert("outputs".into(), Value::Object(outputs));
        status.insert("inputs".into(), Value::Object(inputs));
        for reading in [Reading::DroneStatus, Reading::DepotStatus] {
            // A drone has no depot status and the other way round: leave out what fails.
            if let Ok(value) = Device::reading(self, reading) {
                status.insert(reading.as_str().replace('-', "_"), value);
            }
        }
        Value::Object(status)
    }

    fn set_job_active(&mut self, active: bool) {
        Hardware::set_job_active(self, active);
    }

    fn run_steps(&mut self, steps: &[Step]) -> StepsOutcome {
        let report = Hardware::run_steps(self, steps);
        StepsOutcome {
            ok: report.ok,
            lines: report.lines,
        }
    }
}
