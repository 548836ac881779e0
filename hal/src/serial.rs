//! Named serial ports: a flight controller's telemetry link, a modem.
//!
//! Byte-oriented like `std::io`, because that is how the agent uses a link (frames in and out);
//! each backend wraps its own port type: serialport's `TTYPort` (linux), rppal's `Uart` (rpi),
//! and a loopback in the simulator.

use crate::error::BackendError;

/// A serial port, object-safe and `Send`.
pub(crate) trait SerialLink: Send {
    /// Writes every byte.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), BackendError>;
    /// Reads what has arrived, waiting up to the port's timeout for the first byte; 0 if none.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, BackendError>;
}

/// The simulator's port: what is written comes back on read.
#[cfg(any(feature = "sim", test))]
#[derive(Debug, Default)]
pub(crate) struct Loopback {
    pending: std::collections::VecDeque<u8>,
}

#[cfg(any(feature = "sim", test))]
impl SerialLink for Loopback {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.pending.extend(bytes);
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, BackendError> {
        let n = buf.len().min(self.pending.len());
        for (slot, byte) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

/// Serial links built on `std::io` ports (serialport's `TTYPort`): a timeout reads as 0 bytes.
#[cfg(feature = "linux")]
pub(crate) struct IoPort<P>(pub(crate) P);

#[cfg(feature = "linux")]
impl<P: std::io::Read + std::io::Write + Send> SerialLink for IoPort<P> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.0
            .write_all(bytes)
            .and_then(|()| self.0.flush())
            .map_err(BackendError::new)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, BackendError> {
        match self.0.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(0),
            Err(e) => Err(BackendError::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_returns_bytes_in_order_across_short_reads() {
        let mut port = Loopback::default();
        port.write_all(b"PING").unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(port.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"PIN");
        assert_eq!(port.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'G');
        assert_eq!(port.read(&mut buf).unwrap(), 0);
    }
}
