//! Simulated pins: an electrical level shared between the pin and the simulated machine.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use embedded_hal::digital::{ErrorType, InputPin, OutputPin, StatefulOutputPin};

/// A simulated digital pin. Clones share one level: the hardware layer drives or reads one
/// clone through embedded-hal's traits, the simulator the other. Starts low.
#[derive(Debug, Default, Clone)]
pub struct SimPin {
    high: Arc<AtomicBool>,
}

impl SimPin {
    /// A pin at the given level.
    pub fn new(high: bool) -> Self {
        Self {
            high: Arc::new(AtomicBool::new(high)),
        }
    }

    /// The electrical level, as the other side sees it.
    pub fn level(&self) -> bool {
        self.high.load(Ordering::Relaxed)
    }

    /// Sets the electrical level, as the other side would.
    pub fn set_level(&self, high: bool) {
        self.high.store(high, Ordering::Relaxed);
    }
}

impl ErrorType for SimPin {
    type Error = Infallible;
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set_level(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set_level(true);
        Ok(())
    }
}

impl StatefulOutputPin for SimPin {
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.level())
    }

    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.level())
    }
}

impl InputPin for SimPin {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.level())
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.level())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_level() {
        let mut driven = SimPin::default();
        let mut sensed = driven.clone();
        driven.set_high().unwrap();
        assert!(sensed.is_high().unwrap());
        assert!(driven.is_set_high().unwrap());
        sensed.set_level(false);
        assert!(driven.is_low().unwrap());
    }
}
