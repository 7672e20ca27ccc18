//! I2C backends behind one enum, so a gateway opens a bus from the board file without caring
//! whether it is `/dev/i2c-N` or a mock.

use std::path::PathBuf;

use embedded_hal::i2c::{self, ErrorKind, Operation, SevenBitAddress};
use linux_embedded_hal::I2cdev;

use crate::mock_i2c::{MockI2cBus, MockI2cError, MockI2cHandle};

/// Opening a real bus failed.
#[derive(Debug, thiserror::Error)]
#[error("opening {path}: {source}")]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An I2C bus as the board file describes it.
#[derive(Debug, Clone)]
pub enum I2cBus {
    /// A Linux i2c-dev character device, e.g. `/dev/i2c-1`.
    Linux(PathBuf),
    Mock(MockI2cBus),
}

impl I2cBus {
    /// A handle for one device. Each device on a Linux bus gets its own file descriptor, so a
    /// stuck device cannot hold the others' handle.
    ///
    /// The device file is opened on the first transfer, and again after opening failed, so a
    /// bus that is missing at start (driver not loaded, adapter unplugged) makes its devices
    /// go offline with the reason instead of stopping the gateway, and they come back by
    /// themselves once the file exists.
    pub fn handle(&self) -> I2cHandle {
        match self {
            I2cBus::Linux(path) => I2cHandle::Linux(LinuxI2c { path: path.clone(), dev: None }),
            I2cBus::Mock(bus) => I2cHandle::Mock(bus.handle()),
        }
    }
}

/// A handle on a Linux i2c-dev file, opened lazily.
pub struct LinuxI2c {
    path: PathBuf,
    /// The open file, or `None` until it could be opened.
    dev: Option<I2cdev>,
}

impl LinuxI2c {
    fn dev(&mut self) -> Result<&mut I2cdev, I2cError> {
        match &mut self.dev {
            Some(dev) => Ok(dev),
            slot @ None => {
                let dev = I2cdev::new(&self.path).map_err(|error| {
                    I2cError::Open(OpenError { path: self.path.clone(), source: std::io::Error::other(error) })
                })?;
                Ok(slot.insert(dev))
            }
        }
    }
}

/// One device's handle on an I2C bus.
pub enum I2cHandle {
    Linux(LinuxI2c),
    Mock(MockI2cHandle),
}

impl std::fmt::Debug for I2cHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            I2cHandle::Linux(linux) => write!(f, "I2cHandle::Linux({})", linux.path.display()),
            I2cHandle::Mock(handle) => handle.fmt(f),
        }
    }
}

/// The error of either backend, keeping the embedded-hal error kind and the OS message.
#[derive(Debug, thiserror::Error)]
pub enum I2cError {
    /// The device file could not be opened.
    #[error("{0}")]
    Open(OpenError),
    #[error("{0}")]
    Linux(linux_embedded_hal::I2CError),
    #[error("{0}")]
    Mock(MockI2cError),
}

impl i2c::Error for I2cError {
    fn kind(&self) -> ErrorKind {
        match self {
            I2cError::Open(_) => ErrorKind::Other,
            I2cError::Linux(error) => error.kind(),
            I2cError::Mock(error) => error.kind(),
        }
    }
}

impl i2c::ErrorType for I2cHandle {
    type Error = I2cError;
}

impl i2c::I2c<SevenBitAddress> for I2cHandle {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        match self {
            I2cHandle::Linux(linux) => linux.dev()?.transaction(address, operations).map_err(I2cError::Linux),
            I2cHandle::Mock(handle) => handle.transaction(address, operations).map_err(I2cError::Mock),
        }
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal::i2c::{Error as _, I2c, NoAcknowledgeSource};

    use super::*;

    #[test]
    fn missing_device_file_is_a_transfer_error_not_a_panic() {
        let bus = I2cBus::Linux(PathBuf::from("/dev/i2c-busgate-test-missing"));
        let mut handle = bus.handle();
        let error = handle.write(0x40, &[0]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Other);
        assert!(error.to_string().contains("/dev/i2c-busgate-test-missing"), "{error}");
    }

    #[test]
    fn mock_bus_hands_out_mock_handles() {
        let mock = MockI2cBus::new();
        let bus = I2cBus::Mock(mock.clone());
        let error = bus.handle().write(0x40, &[0]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
    }
}
