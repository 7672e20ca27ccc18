//! I2C backends behind one enum, so a gateway opens a bus from the board file without caring
//! whether it is `/dev/i2c-N` or a mock.

use std::path::{Path, PathBuf};

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
    /// A handle for the device at one address. For a Linux bus this opens the device file: each
    /// device gets its own file descriptor, so a stuck device cannot hold the others' handle.
    pub fn open(&self) -> Result<I2cHandle, OpenError> {
        match self {
            I2cBus::Linux(path) => open_linux(path).map(I2cHandle::Linux),
            I2cBus::Mock(bus) => Ok(I2cHandle::Mock(bus.handle())),
        }
    }
}

fn open_linux(path: &Path) -> Result<I2cdev, OpenError> {
    I2cdev::new(path).map_err(|error| OpenError { path: path.to_owned(), source: std::io::Error::other(error) })
}

/// One device's handle on an I2C bus.
pub enum I2cHandle {
    Linux(I2cdev),
    Mock(MockI2cHandle),
}

impl std::fmt::Debug for I2cHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            I2cHandle::Linux(_) => f.write_str("I2cHandle::Linux"),
            I2cHandle::Mock(handle) => handle.fmt(f),
        }
    }
}

/// The error of either backend, keeping the embedded-hal error kind and the OS message.
#[derive(Debug, thiserror::Error)]
pub enum I2cError {
    #[error("{0}")]
    Linux(linux_embedded_hal::I2CError),
    #[error("{0}")]
    Mock(MockI2cError),
}

impl i2c::Error for I2cError {
    fn kind(&self) -> ErrorKind {
        match self {
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
            I2cHandle::Linux(dev) => dev.transaction(address, operations).map_err(I2cError::Linux),
            I2cHandle::Mock(handle) => handle.transaction(address, operations).map_err(I2cError::Mock),
        }
    }
}
