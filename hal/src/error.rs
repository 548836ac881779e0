//! One error type for the whole layer, and the newtype that carries a backend's own error.

use std::error::Error as StdError;
use std::fmt;

/// Errors from the hardware layer.
///
/// Configuration problems name the TOML key they come from (`hal.outputs.door.pin`), so the
/// agent can print them as they are. Device failures keep the backend's error as their
/// [`source`](std::error::Error::source) and, following the error-handling guidelines, do not
/// repeat it in their own message: print the whole chain (anyhow's `{:#}`, or
/// [`HalError::chain`]) to show the backend's words.
#[derive(Debug, thiserror::Error)]
pub enum HalError {
    /// The configuration is wrong. Found when the hardware is opened, never later.
    #[error("{key}: {problem}")]
    Config {
        /// The TOML key at fault, e.g. `hal.sensors.battery.address`.
        key: String,
        /// What is wrong with it, in words.
        problem: String,
    },
    /// A device named in the configuration could not be opened or did not answer.
    #[error("{key}: cannot open {device}")]
    Open {
        /// The TOML key of the output, input, sensor or serial port.
        key: String,
        /// The device as the user would recognise it (`GPIO chip "/dev/gpiochip0"`).
        device: String,
        /// What the backend said.
        #[source]
        source: BackendError,
    },
    /// A device failed while in use.
    #[error("{what} failed")]
    Device {
        /// The device, e.g. `output "door"`.
        what: String,
        /// What the backend said.
        #[source]
        source: BackendError,
    },
    /// No output, input, sensor or serial port of that name is configured.
    #[error("no {kind} named {name:?} is configured ({kind}s: {known})")]
    Unknown {
        /// `output`, `input`, `sensor` or `serial port`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The configured names of that kind, comma separated, or `none`.
        known: String,
    },
    /// The configuration asks for a backend this binary was built without.
    #[error("backend {backend:?} is not built into this binary (enable sortie-hal's `{backend}` feature)")]
    BackendNotBuilt {
        /// `sim`, `linux` or `rpi`.
        backend: &'static str,
    },
    /// The request makes no sense for this hardware, e.g. a depot's status from a simulated drone.
    #[error("{0}")]
    Unsupported(String),
    /// A word that names no level (see [`parse_level`](crate::parse_level)).
    #[error("{word:?} is not a level; use on/off, high/low, open/close(d), true/false or 1/0")]
    BadLevel {
        /// The word as given.
        word: String,
    },
}

impl HalError {
    /// This error and its causes on one line, `: `-separated (what anyhow's `{:#}` prints).
    pub fn chain(&self) -> String {
        let mut line = self.to_string();
        let mut cause = StdError::source(self);
        while let Some(next) = cause {
            line.push_str(": ");
            line.push_str(&next.to_string());
            cause = next.source();
        }
        line
    }

    pub(crate) fn config(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn unknown<'a>(
        kind: &'static str,
        name: &str,
        known: impl Iterator<Item = &'a String>,
    ) -> Self {
        let known: Vec<&str> = known.map(String::as_str).collect();
        Self::Unknown {
            kind,
            name: name.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        }
    }
}

/// A backend's own error (gpio-cdev, i2cdev, serialport, rppal, a driver), kept whole.
///
/// Display shows the cause's message; [`source`](std::error::Error::source) continues down the
/// cause's chain, and [`BackendError::get_ref`] allows a downcast to the concrete type.
pub struct BackendError(Box<dyn StdError + Send + Sync + 'static>);

impl BackendError {
    /// Wraps any backend error.
    pub fn new(cause: impl StdError + Send + Sync + 'static) -> Self {
        Self(Box::new(cause))
    }

    /// The backend's error itself, e.g. to `downcast_ref::<linux_embedded_hal::CdevPinError>()`.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }
}

impl From<Box<dyn StdError + Send + Sync + 'static>> for BackendError {
    fn from(cause: Box<dyn StdError + Send + Sync + 'static>) -> Self {
        Self(cause)
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}
