//! The simulated backend: pins that remember what they were set to.

use std::convert::Infallible;

use embedded_hal::digital::{ErrorType, OutputPin, StatefulOutputPin};

/// A simulated digital output. Starts low.
#[derive(Debug, Default, Clone)]
pub struct SimPin {
    high: bool,
}

impl ErrorType for SimPin {
    type Error = Infallible;
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.high = false;
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.high = true;
        Ok(())
    }
}

impl StatefulOutputPin for SimPin {
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.high)
    }

    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.high)
    }
}
