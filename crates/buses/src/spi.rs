//! SPI backends behind one enum: Linux spidev files (`/dev/spidevB.C`, chip select managed by
//! the kernel) or a mock bus.

use std::path::PathBuf;

use embedded_hal::spi::{self, ErrorKind, Operation, SpiDevice};
use linux_embedded_hal::SpidevDevice;
use spidev::{SpiModeFlags, SpidevOptions};

use crate::OpenError;
use crate::mock_spi::{MockSpiBus, MockSpiDevice, MockSpiError};

/// Per-device settings from the board file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiConfig {
    /// SPI mode 0 to 3 (clock polarity and phase).
    pub mode: u8,
    pub max_speed_hz: u32,
    pub bits_per_word: u8,
}

/// An SPI bus as the board file describes it.
#[derive(Debug, Clone)]
pub enum SpiBus {
    /// A Linux spidev bus: device files `{prefix}.{chip_select}`, e.g. `/dev/spidev0.1`.
    Linux {
        prefix: PathBuf,
    },
    Mock(MockSpiBus),
}

impl SpiBus {
    /// The handle for the device at one chip select.
    ///
    /// A Linux device file is opened and configured on the first transfer, and again after
    /// that failed, so a missing bus makes its devices go offline with the reason instead of
    /// stopping the gateway.
    pub fn handle(&self, chip_select: u8, config: SpiConfig) -> SpiHandle {
        match self {
            SpiBus::Linux { prefix } => {
                let mut path = prefix.clone().into_os_string();
                path.push(format!(".{chip_select}"));
                SpiHandle::Linux(LinuxSpi { path: PathBuf::from(path), config, dev: None })
            }
            SpiBus::Mock(bus) => SpiHandle::Mock(bus.device(chip_select)),
        }
    }
}

/// One device on a Linux spidev file, opened lazily.
pub struct LinuxSpi {
    path: PathBuf,
    config: SpiConfig,
    /// The open and configured file, or `None` until that succeeded.
    dev: Option<SpidevDevice>,
}

impl LinuxSpi {
    fn dev(&mut self) -> Result<&mut SpidevDevice, SpiError> {
        match &mut self.dev {
            Some(dev) => Ok(dev),
            slot @ None => {
                let open_error = |source: std::io::Error| SpiError::Open(OpenError { path: self.path.clone(), source });
                let mut dev = SpidevDevice::open(&self.path).map_err(|e| open_error(std::io::Error::other(e)))?;
                let mode = match self.config.mode {
                    0 => SpiModeFlags::SPI_MODE_0,
                    1 => SpiModeFlags::SPI_MODE_1,
                    2 => SpiModeFlags::SPI_MODE_2,
                    _ => SpiModeFlags::SPI_MODE_3,
                };
                let options = SpidevOptions::new()
                    .mode(mode)
                    .max_speed_hz(self.config.max_speed_hz)
                    .bits_per_word(self.config.bits_per_word)
                    .build();
                dev.configure(&options).map_err(open_error)?;
                Ok(slot.insert(dev))
            }
        }
    }
}

/// One device's handle on an SPI bus; implements embedded-hal `SpiDevice`.
pub enum SpiHandle {
    Linux(LinuxSpi),
    Mock(MockSpiDevice),
}

impl std::fmt::Debug for SpiHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpiHandle::Linux(linux) => write!(f, "SpiHandle::Linux({})", linux.path.display()),
            SpiHandle::Mock(device) => device.fmt(f),
        }
    }
}

/// The error of either backend.
#[derive(Debug, thiserror::Error)]
pub enum SpiError {
    /// The device file could not be opened or configured.
    #[error("{0}")]
    Open(OpenError),
    #[error("{0}")]
    Linux(linux_embedded_hal::SPIError),
    #[error("{0}")]
    Mock(MockSpiError),
}

impl spi::Error for SpiError {
    fn kind(&self) -> ErrorKind {
        match self {
            SpiError::Open(_) => ErrorKind::Other,
            SpiError::Linux(error) => error.kind(),
            SpiError::Mock(error) => error.kind(),
        }
    }
}

impl spi::ErrorType for SpiHandle {
    type Error = SpiError;
}

impl SpiDevice<u8> for SpiHandle {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        match self {
            SpiHandle::Linux(linux) => linux.dev()?.transaction(operations).map_err(SpiError::Linux),
            SpiHandle::Mock(device) => device.transaction(operations).map_err(SpiError::Mock),
        }
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal::spi::Error as _;

    use super::*;

    const CONFIG: SpiConfig = SpiConfig { mode: 0, max_speed_hz: 1_000_000, bits_per_word: 8 };

    #[test]
    fn missing_device_file_is_a_transfer_error_naming_the_file() {
        let bus = SpiBus::Linux { prefix: PathBuf::from("/dev/spidev-busgate-missing") };
        let error = bus.handle(1, CONFIG).write(&[0]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Other);
        assert!(error.to_string().contains("/dev/spidev-busgate-missing.1"), "{error}");
    }

    #[test]
    fn mock_bus_hands_out_mock_devices() {
        let bus = SpiBus::Mock(MockSpiBus::new());
        let mut buffer = [0u8; 2];
        bus.handle(0, CONFIG).transfer_in_place(&mut buffer).unwrap();
        assert_eq!(buffer, [0xFF, 0xFF], "no chip: pulled-up MISO");
    }
}
