//! Bus backends: the only crate that opens `/dev` (see ARCHITECTURE.md).
//!
//! Each backend hands out one embedded-hal bus handle per device, so every driver owns its bus
//! by value. The real backends wrap linux-embedded-hal; the mock backends host simulated chips
//! in-process so that mock mode runs the real driver code unchanged.

pub mod can;
mod host;
pub mod i2c;
pub mod mock_i2c;
pub mod mock_spi;
pub mod spi;

pub use i2c::{I2cBus, I2cError, I2cHandle, OpenError};
pub use mock_i2c::{MockI2cBus, MockI2cHandle};
pub use mock_spi::{MockSpiBus, MockSpiDevice};
pub use spi::{SpiBus, SpiConfig, SpiHandle};
