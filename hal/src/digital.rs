//! Named digital lines over embedded-hal pins, with `active_low` handled in one place.
//!
//! Every backend hands over its own pin types (a gpio-cdev line handle, an rppal pin, a
//! simulated pin); they are boxed behind two small object-safe traits so [`crate::Hardware`] can
//! keep them in one map, whatever the backend.

use embedded_hal::digital::{InputPin, OutputPin, PinState};

use crate::error::BackendError;

/// An embedded-hal output pin, object-safe and `Send`.
pub(crate) trait OutputLine: Send {
    /// Drives the pin's electrical level.
    fn drive(&mut self, high: bool) -> Result<(), BackendError>;
}

impl<P> OutputLine for P
where
    P: OutputPin + Send,
    P::Error: std::error::Error + Send + Sync + 'static,
{
    fn drive(&mut self, high: bool) -> Result<(), BackendError> {
        self.set_state(PinState::from(high))
            .map_err(BackendError::new)
    }
}

/// An embedded-hal input pin, object-safe and `Send`.
pub(crate) trait InputLine: Send {
    /// Reads the pin's electrical level.
    fn sense(&mut self) -> Result<bool, BackendError>;
}

impl<P> InputLine for P
where
    P: InputPin + Send,
    P::Error: std::error::Error + Send + Sync + 'static,
{
    fn sense(&mut self) -> Result<bool, BackendError> {
        self.is_high().map_err(BackendError::new)
    }
}

/// A named output: "on" is the active level, which is low for an `active_low` output.
pub(crate) struct DigitalOutput {
    line: Box<dyn OutputLine>,
    active_low: bool,
    on: bool,
}

impl DigitalOutput {
    /// Takes a line that the backend has already driven to `initial` (so it did not glitch).
    pub(crate) fn new(line: Box<dyn OutputLine>, active_low: bool, initial: bool) -> Self {
        Self {
            line,
            active_low,
            on: initial,
        }
    }

    /// The electrical level that means `on` for this output.
    pub(crate) fn pin_level(active_low: bool, on: bool) -> bool {
        on != active_low
    }

    pub(crate) fn set(&mut self, on: bool) -> Result<(), BackendError> {
        self.line.drive(Self::pin_level(self.active_low, on))?;
        self.on = on;
        Ok(())
    }

    /// The level last set. Read back from memory: gpio-cdev line handles cannot report it.
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }
}

/// A named input: "on" is the active level, which is low for an `active_low` input.
pub(crate) struct DigitalInput {
    line: Box<dyn InputLine>,
    active_low: bool,
}

impl DigitalInput {
    pub(crate) fn new(line: Box<dyn InputLine>, active_low: bool) -> Self {
        Self { line, active_low }
    }

    pub(crate) fn is_on(&mut self) -> Result<bool, BackendError> {
        Ok(self.line.sense()? != self.active_low)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use embedded_hal_mock::eh1::MockError;

    use super::*;

    #[test]
    fn active_low_output_drives_low_for_on() {
        let pin = Mock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
        let mut done = pin.clone();
        let mut out = DigitalOutput::new(Box::new(pin), true, false);
        out.set(true).unwrap();
        assert!(out.is_on());
        out.set(false).unwrap();
        assert!(!out.is_on());
        done.done();
    }

    #[test]
    fn active_low_input_reads_on_when_low() {
        let pin = Mock::new(&[Transaction::get(State::Low), Transaction::get(State::High)]);
        let mut done = pin.clone();
        let mut input = DigitalInput::new(Box::new(pin), true);
        assert!(input.is_on().unwrap());
        assert!(!input.is_on().unwrap());
        done.done();
    }

    #[test]
    fn a_failed_drive_keeps_the_last_level_and_the_cause() {
        let failure = MockError::Io(std::io::ErrorKind::NotConnected);
        let pin = Mock::new(&[Transaction::set(State::High).with_error(failure.clone())]);
        let mut done = pin.clone();
        let mut out = DigitalOutput::new(Box::new(pin), false, false);
        let err = out.set(true).unwrap_err();
        assert_eq!(err.get_ref().downcast_ref::<MockError>(), Some(&failure));
        assert!(!out.is_on());
        done.done();
    }
}
