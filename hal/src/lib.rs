//! Sortie's hardware layer.
//!
//! The agent never touches a pin or a bus directly: it asks this crate for a named output
//! (`door`, `estop`, `relay`, ...) and drives it through embedded-hal's traits, so the same agent
//! code runs on a Raspberry Pi, any Linux board, or the simulator used by tests and demos.
//!
//! This first cut holds the named-output registry and the simulated backend; the linux and rpi
//! backends, inputs, I²C sensors and the drone/depot simulation arrive with the hardware issue.

use std::collections::BTreeMap;

use embedded_hal::digital::{ErrorType, OutputPin, PinState, StatefulOutputPin};

#[cfg(feature = "sim")]
pub mod sim;

/// Errors from the hardware layer.
#[derive(Debug, thiserror::Error)]
pub enum HalError {
    /// The configuration names an output that was never registered.
    #[error("no output named {0:?} is configured")]
    UnknownOutput(String),
    /// The backend failed to drive the pin.
    #[error("output {name:?}: {cause}")]
    Pin {
        /// The output's configured name.
        name: String,
        /// What the backend said.
        cause: String,
    },
}

/// A set of named digital outputs, each behind an embedded-hal [`StatefulOutputPin`].
pub struct Outputs<P> {
    pins: BTreeMap<String, P>,
}

impl<P> Default for Outputs<P> {
    fn default() -> Self {
        Self {
            pins: BTreeMap::new(),
        }
    }
}

impl<P> Outputs<P>
where
    P: StatefulOutputPin + OutputPin + ErrorType,
{
    /// Registers `pin` under `name`, replacing any output of that name.
    pub fn insert(&mut self, name: impl Into<String>, pin: P) {
        self.pins.insert(name.into(), pin);
    }

    /// Drives the named output to `state`.
    pub fn set(&mut self, name: &str, state: PinState) -> Result<(), HalError> {
        let pin = self
            .pins
            .get_mut(name)
            .ok_or_else(|| HalError::UnknownOutput(name.to_owned()))?;
        pin.set_state(state).map_err(|e| HalError::Pin {
            name: name.to_owned(),
            cause: format!("{e:?}"),
        })
    }

    /// Reads back the named output's last driven state (true = high).
    pub fn is_high(&mut self, name: &str) -> Result<bool, HalError> {
        let pin = self
            .pins
            .get_mut(name)
            .ok_or_else(|| HalError::UnknownOutput(name.to_owned()))?;
        pin.is_set_high().map_err(|e| HalError::Pin {
            name: name.to_owned(),
            cause: format!("{e:?}"),
        })
    }

    /// The configured output names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pins.keys().map(String::as_str)
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::sim::SimPin;

    #[test]
    fn named_outputs_drive_their_pins() {
        let mut outputs = Outputs::default();
        outputs.insert("door", SimPin::default());
        outputs.insert("estop", SimPin::default());
        outputs.set("estop", PinState::High).unwrap();
        assert!(outputs.is_high("estop").unwrap());
        assert!(!outputs.is_high("door").unwrap());
        assert_eq!(outputs.names().collect::<Vec<_>>(), ["door", "estop"]);
    }

    #[test]
    fn unknown_output_is_a_clear_error() {
        let mut outputs: Outputs<SimPin> = Outputs::default();
        let err = outputs.set("lights", PinState::High).unwrap_err();
        assert_eq!(err.to_string(), "no output named \"lights\" is configured");
    }
}
